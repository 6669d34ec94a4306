//! The relay's error codes (SPEC.md section 11).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;

use crate::codec::DecodeError;

/// Why the relay refused a frame or a request, carried as a `u16` in `Error` frames.
///
/// Values not assigned here decode as [`ErrorCode::Unknown`], so a newer relay can add codes
/// without breaking older clients. Each code says whether the relay closes the connection after
/// sending it ([`ErrorCode::is_fatal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the frame did not decode, or is not allowed in this state (a second `Auth`, a
    /// server frame sent by a client). Fatal.
    BadFrame,
    /// 2: the frame's version byte is not one the relay speaks. Fatal.
    UnsupportedVersion,
    /// 3: a request arrived before authentication completed. Fatal.
    AuthRequired,
    /// 4: the certificate chain or the challenge signature did not verify. Fatal.
    AuthFailed,
    /// 5: a rate limit was hit; the request was not performed and may be retried later.
    RateLimited,
    /// 6: the frame is longer than the relay accepts. Fatal.
    FrameTooLarge,
    /// 7: a recipient's mailbox is at its quota; no envelope of the `Send` was stored.
    MailboxFull,
    /// 8: the identity, device or handle named in the request is not known to the relay.
    NotFound,
    /// 9: the device has no signed prekey or no KEM prekey to build a bundle from.
    NoPrekeys,
    /// 10: the handle is held by another identity.
    HandleTaken,
    /// 11: a handle claim or release was refused: bad signature, `issued_at` outside the
    /// relay's window or older than the current record, identity not the authenticated one, or
    /// a reserved name.
    HandleInvalid,
    /// 12: the relay's connection cap (total, per address or per device) is reached. Fatal.
    TooManyConnections,
    /// 13: the relay failed internally; the request may be retried.
    Internal,
    /// 14: a published prekey's signature does not verify under the device's signing key, or
    /// the publish would exceed the relay's per-device prekey store.
    InvalidPrekeys,
    /// 15: the authentication or idle timeout expired. Fatal.
    Timeout,
    /// 16: the relay's storage budget is used up; no envelope of the `Send` was stored. Retry
    /// later.
    StorageFull,
    /// 17: the recipient's relay admits only envelopes with a valid delivery token, and an
    /// envelope of the `Deposit` (or `Send`) had none; nothing was stored.
    TokenRequired,
    /// 18: a per-account store of the relay (delivery tokens) is full; nothing was changed.
    QuotaExceeded,
    /// 19: a reachability record was refused: its signature does not verify, it names
    /// another identity than the authenticated one, or it is older than the one stored.
    InvalidRecord,
    /// 20: a group post's epoch is not one the group accepts now (a commit for another epoch
    /// than the current one, another post for one older than the previous); nothing was
    /// stored. The client processes the commits waiting in its mailbox and posts again.
    StaleEpoch,
    /// 21: `OpenGroup` for a group id that exists; nothing changed.
    GroupExists,
    /// 22: the group would have more subscribers than the relay allows; nothing changed.
    GroupFull,
    /// 23: a group post's signature does not verify under the post key of its epoch.
    BadSignature,
    /// A value this implementation does not know; treat it like `Internal` unless it is
    /// followed by the connection closing.
    Unknown(u16),
}

impl ErrorCode {
    /// Every assigned code, in value order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::BadFrame,
        ErrorCode::UnsupportedVersion,
        ErrorCode::AuthRequired,
        ErrorCode::AuthFailed,
        ErrorCode::RateLimited,
        ErrorCode::FrameTooLarge,
        ErrorCode::MailboxFull,
        ErrorCode::NotFound,
        ErrorCode::NoPrekeys,
        ErrorCode::HandleTaken,
        ErrorCode::HandleInvalid,
        ErrorCode::TooManyConnections,
        ErrorCode::Internal,
        ErrorCode::InvalidPrekeys,
        ErrorCode::Timeout,
        ErrorCode::StorageFull,
        ErrorCode::TokenRequired,
        ErrorCode::QuotaExceeded,
        ErrorCode::InvalidRecord,
        ErrorCode::StaleEpoch,
        ErrorCode::GroupExists,
        ErrorCode::GroupFull,
        ErrorCode::BadSignature,
    ];

    /// The code for a wire value; unassigned values become [`ErrorCode::Unknown`].
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Self::BadFrame,
            2 => Self::UnsupportedVersion,
            3 => Self::AuthRequired,
            4 => Self::AuthFailed,
            5 => Self::RateLimited,
            6 => Self::FrameTooLarge,
            7 => Self::MailboxFull,
            8 => Self::NotFound,
            9 => Self::NoPrekeys,
            10 => Self::HandleTaken,
            11 => Self::HandleInvalid,
            12 => Self::TooManyConnections,
            13 => Self::Internal,
            14 => Self::InvalidPrekeys,
            15 => Self::Timeout,
            16 => Self::StorageFull,
            17 => Self::TokenRequired,
            18 => Self::QuotaExceeded,
            19 => Self::InvalidRecord,
            20 => Self::StaleEpoch,
            21 => Self::GroupExists,
            22 => Self::GroupFull,
            23 => Self::BadSignature,
            other => Self::Unknown(other),
        }
    }

    /// The wire value. `Unknown(v)` is `v` (which should be an unassigned value: an
    /// `Unknown` holding an assigned value decodes as that code).
    pub fn to_u16(self) -> u16 {
        match self {
            Self::BadFrame => 1,
            Self::UnsupportedVersion => 2,
            Self::AuthRequired => 3,
            Self::AuthFailed => 4,
            Self::RateLimited => 5,
            Self::FrameTooLarge => 6,
            Self::MailboxFull => 7,
            Self::NotFound => 8,
            Self::NoPrekeys => 9,
            Self::HandleTaken => 10,
            Self::HandleInvalid => 11,
            Self::TooManyConnections => 12,
            Self::Internal => 13,
            Self::InvalidPrekeys => 14,
            Self::Timeout => 15,
            Self::StorageFull => 16,
            Self::TokenRequired => 17,
            Self::QuotaExceeded => 18,
            Self::InvalidRecord => 19,
            Self::StaleEpoch => 20,
            Self::GroupExists => 21,
            Self::GroupFull => 22,
            Self::BadSignature => 23,
            Self::Unknown(value) => value,
        }
    }

    /// The stable snake_case name used in SPEC.md and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::UnsupportedVersion => "unsupported_version",
            Self::AuthRequired => "auth_required",
            Self::AuthFailed => "auth_failed",
            Self::RateLimited => "rate_limited",
            Self::FrameTooLarge => "frame_too_large",
            Self::MailboxFull => "mailbox_full",
            Self::NotFound => "not_found",
            Self::NoPrekeys => "no_prekeys",
            Self::HandleTaken => "handle_taken",
            Self::HandleInvalid => "handle_invalid",
            Self::TooManyConnections => "too_many_connections",
            Self::Internal => "internal",
            Self::InvalidPrekeys => "invalid_prekeys",
            Self::Timeout => "timeout",
            Self::StorageFull => "storage_full",
            Self::TokenRequired => "token_required",
            Self::QuotaExceeded => "quota_exceeded",
            Self::InvalidRecord => "invalid_record",
            Self::StaleEpoch => "stale_epoch",
            Self::GroupExists => "group_exists",
            Self::GroupFull => "group_full",
            Self::BadSignature => "bad_signature",
            Self::Unknown(_) => "unknown",
        }
    }

    /// True if the relay closes the connection right after sending this code.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::BadFrame
                | Self::UnsupportedVersion
                | Self::AuthRequired
                | Self::AuthFailed
                | Self::FrameTooLarge
                | Self::TooManyConnections
                | Self::Timeout
        )
    }

    /// The code a relay answers an undecodable client frame with: `unsupported_version` when
    /// the frame's own version byte is wrong, `frame_too_large` when the frame exceeds
    /// [`super::MAX_FRAME_LEN`], `bad_frame` otherwise.
    pub fn for_decode_error(error: &DecodeError) -> Self {
        match error {
            DecodeError::UnsupportedVersion {
                what: super::FRAME_WHAT,
                ..
            } => Self::UnsupportedVersion,
            DecodeError::TooLong {
                what: super::FRAME_WHAT,
                ..
            } => Self::FrameTooLarge,
            _ => Self::BadFrame,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(value) => write!(f, "unknown error code {value}"),
            other => write!(f, "{} ({})", other.name(), other.to_u16()),
        }
    }
}
