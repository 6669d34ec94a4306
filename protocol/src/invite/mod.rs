//! Invite codes (SPEC.md sections 8.3 and 8.4): the text an inviter hands out so that someone
//! can connect without a handle.
//!
//! A code is `chatinvite1` followed by the lower-case hex of an [`Invite`] and a 4-byte
//! checksum. The invite carries the inviter's signed reachability record (where to reach it)
//! and a delivery token for whoever accepts it. [`Invite::parse_code`] runs its checks in the order of [`InviteError`]'s variants
//! and trims nothing; whether the invite has expired is the caller's question (it needs the
//! time, [`Invite::is_expired`]).

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::kdf::sha256;
use crate::identity::IdentityKey;
use crate::introduction::{DISPLAY_NAME_MAX_LEN, DisplayName, INVITE_TOKEN_LEN};
use crate::reachability::{
    DELIVERY_TOKEN_LEN, DeliveryToken, MAX_REACHABILITY_LEN, ReachabilityError, ReachabilityRecord,
    UncheckedRecord,
};

/// The text every invite code starts with.
pub const INVITE_PREFIX: &str = "chatinvite1";
/// The version byte that opens an [`Invite`]. Version 1 (a bare relay URL instead of a signed
/// reachability record) is no longer read.
pub const INVITE_VERSION: u8 = 2;
/// Length of the checksum that ends an invite code's bytes.
pub const INVITE_CHECKSUM_LEN: usize = 4;
/// The checksum's hash prefix: `SHA-256(INVITE_CHECKSUM_CONTEXT || Invite)`.
pub const INVITE_CHECKSUM_CONTEXT: &[u8] = b"chatd/v1/invite";
/// Longest [`Invite`] encoding: version, reachability record, token, delivery token, name,
/// expiry (1,569 bytes).
pub const MAX_INVITE_LEN: usize =
    1 + MAX_REACHABILITY_LEN + INVITE_TOKEN_LEN + DELIVERY_TOKEN_LEN + 2 + DISPLAY_NAME_MAX_LEN + 8;
/// Longest invite code text: the prefix and two hex digits per byte of the longest invite and
/// its checksum (3,157 characters). Longer text is refused before anything else is looked at.
pub const MAX_INVITE_CODE_LEN: usize =
    INVITE_PREFIX.len() + 2 * (MAX_INVITE_LEN + INVITE_CHECKSUM_LEN);

/// Why a text is not an invite code. Variants are listed in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// The text is longer than [`MAX_INVITE_CODE_LEN`] bytes.
    #[error("the invite code is {len} bytes long, more than {MAX_INVITE_CODE_LEN}")]
    TooLong {
        /// Length of the text in bytes.
        len: usize,
    },
    /// The text does not start with [`INVITE_PREFIX`].
    #[error("not an invite code: it does not start with {INVITE_PREFIX}")]
    NotAnInvite,
    /// After the prefix, the text is not an even number of lower-case hex digits.
    #[error("the invite code is not lower-case hex")]
    NotHex,
    /// Fewer than four bytes, or the checksum does not match: a typo, or a truncated code.
    #[error("the invite code's checksum does not match (a typo?)")]
    Checksum,
    /// The checksum matches but the invite does not decode (version, field lengths, the name's
    /// rules, trailing bytes).
    #[error("the invite is malformed: {0}")]
    Malformed(DecodeError),
    /// The identity key is not an acceptable Ed25519 public key (SPEC.md 2.4, check 10).
    #[error("the invite's identity key is invalid")]
    InvalidKey,
    /// The reachability record's signature does not verify under the identity key.
    #[error("the invite's reachability record is not signed by its identity")]
    BadSignature,
}

/// What an invite code carries (SPEC.md 8.3).
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// Where the inviter is reached, signed by its identity key (which is the invite's
    /// identity).
    pub reachability: ReachabilityRecord,
    /// The one-time token the invitee's introduction carries back.
    pub token: [u8; INVITE_TOKEN_LEN],
    /// The token the invitee presents when it deposits envelopes at the inviter's relay.
    pub delivery_token: DeliveryToken,
    /// The inviter's display name.
    pub name: DisplayName,
    /// When the inviter stops accepting the token, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a one-time credential and is not shown.
        f.debug_struct("Invite")
            .field("reachability", &self.reachability)
            .field("name", &self.name)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl Encode for Invite {
    fn encode(&self, w: &mut Writer) {
        w.u8(INVITE_VERSION);
        self.reachability.encode(w);
        w.raw(&self.token);
        self.delivery_token.encode(w);
        self.name.encode(w);
        w.u64(self.expires_at_ms);
    }
}

impl Decode for Invite {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let unchecked = UncheckedInvite::decode(r)?;
        unchecked.check().map_err(|e| match e {
            InviteError::BadSignature => DecodeError::Invalid("invite reachability signature"),
            _ => DecodeError::Invalid("invite identity key"),
        })
    }
}

/// An invite whose identity key has not been checked yet, so that [`Invite::parse_code`] can
/// report a malformed structure before a bad key.
struct UncheckedInvite {
    reachability: UncheckedRecord,
    token: [u8; INVITE_TOKEN_LEN],
    delivery_token: DeliveryToken,
    name: DisplayName,
    expires_at_ms: u64,
}

impl UncheckedInvite {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("invite", INVITE_VERSION)?;
        Ok(Self {
            reachability: UncheckedRecord::decode(r)?,
            token: r.array()?,
            delivery_token: DeliveryToken::decode(r)?,
            name: DisplayName::decode(r)?,
            expires_at_ms: r.u64()?,
        })
    }

    fn check(self) -> Result<Invite, InviteError> {
        let reachability = self.reachability.check().ok_or(InviteError::InvalidKey)?;
        reachability
            .verify()
            .map_err(|_| InviteError::BadSignature)?;
        Ok(Invite {
            reachability,
            token: self.token,
            delivery_token: self.delivery_token,
            name: self.name,
            expires_at_ms: self.expires_at_ms,
        })
    }
}

impl Invite {
    /// The inviter's identity key (the reachability record's).
    pub fn identity(&self) -> IdentityKey {
        self.reachability.identity
    }

    /// Whether the invite's record is signed by its identity (always so for a parsed invite).
    pub fn verify(&self) -> Result<(), ReachabilityError> {
        self.reachability.verify()
    }

    /// The invite code: prefix, then lower-case hex of the invite and its checksum.
    pub fn to_code(&self) -> String {
        let mut bytes = self.to_bytes();
        let check = sha256(&[INVITE_CHECKSUM_CONTEXT, &bytes]);
        bytes.extend_from_slice(check.get(..INVITE_CHECKSUM_LEN).unwrap_or_default());
        let mut text = String::with_capacity(INVITE_PREFIX.len() + 2 * bytes.len());
        text.push_str(INVITE_PREFIX);
        for b in bytes {
            text.push(hex_digit(b >> 4));
            text.push(hex_digit(b & 0x0f));
        }
        text
    }

    /// Parses an invite code exactly as written (nothing is trimmed; a frontend may trim
    /// pasted text first).
    pub fn parse_code(text: &str) -> Result<Self, InviteError> {
        if text.len() > MAX_INVITE_CODE_LEN {
            return Err(InviteError::TooLong { len: text.len() });
        }
        let hex = text
            .strip_prefix(INVITE_PREFIX)
            .ok_or(InviteError::NotAnInvite)?;
        let bytes = decode_lower_hex(hex).ok_or(InviteError::NotHex)?;
        let split = bytes
            .len()
            .checked_sub(INVITE_CHECKSUM_LEN)
            .ok_or(InviteError::Checksum)?;
        let (body, check) = bytes.split_at(split);
        if sha256(&[INVITE_CHECKSUM_CONTEXT, body]).get(..INVITE_CHECKSUM_LEN) != Some(check) {
            return Err(InviteError::Checksum);
        }
        let mut r = Reader::new(body);
        let unchecked = UncheckedInvite::decode(&mut r).map_err(InviteError::Malformed)?;
        r.finish().map_err(InviteError::Malformed)?;
        unchecked.check()
    }

    /// Whether the invite has expired at `now_ms` (milliseconds since the Unix epoch): it is
    /// good up to and including `expires_at_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms > self.expires_at_ms
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// Decodes an even number of lower-case hex digits; `None` for anything else.
fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(value(*hi)? << 4 | value(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
