//! Invite refusals (SPEC.md section 8.1): the body of a
//! [`ContentKind::InviteRefused`](crate::envelope::ContentKind) message, with which a receiver
//! answers an introduction whose invite token it cannot honour, and the reasons it gives.
//!
//! An [`InviteRefusal`] cites the refused token and says why: the invite was used already, it
//! had expired, or the receiver never issued it. The encoding is fixed at
//! [`INVITE_REFUSAL_LEN`] bytes and the decoder is strict: another version, a reason byte this
//! version does not define, a short body and trailing bytes are all refused.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::introduction::INVITE_TOKEN_LEN;

/// The version byte of an [`InviteRefusal`].
pub const INVITE_REFUSAL_VERSION: u8 = 1;
/// Length of an [`InviteRefusal`]'s encoding: version, token and reason.
pub const INVITE_REFUSAL_LEN: usize = 1 + INVITE_TOKEN_LEN + 1;

/// Why an invite token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Someone accepted the invite first (invites are for one use).
    Used,
    /// The invite had expired.
    Expired,
    /// The refusing account never issued an invite with this token.
    Unknown,
}

impl RefusalReason {
    /// Every reason, in wire-byte order.
    pub const ALL: [Self; 3] = [Self::Used, Self::Expired, Self::Unknown];

    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Used => 1,
            Self::Expired => 2,
            Self::Unknown => 3,
        }
    }

    /// Parses the wire byte; only 1, 2 and 3 are reasons.
    pub fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            1 => Self::Used,
            2 => Self::Expired,
            3 => Self::Unknown,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "invite refusal reason",
                    tag,
                });
            }
        })
    }

    /// A short English phrase for a user, completing "the invite was refused: ...".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Used => "it was already used",
            Self::Expired => "it had expired",
            Self::Unknown => "this account never issued it",
        }
    }
}

/// The body of an invite refusal message (SPEC.md 8.1).
#[derive(Clone, PartialEq, Eq)]
pub struct InviteRefusal {
    /// The token of the invite the refused introduction presented.
    pub invite_token: [u8; INVITE_TOKEN_LEN],
    /// Why it was refused.
    pub reason: RefusalReason,
}

impl fmt::Debug for InviteRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token was a one-time credential: it is not shown.
        f.debug_struct("InviteRefusal")
            .field("invite_token", &"..")
            .field("reason", &self.reason)
            .finish()
    }
}

impl Encode for InviteRefusal {
    fn encode(&self, w: &mut Writer) {
        w.u8(INVITE_REFUSAL_VERSION);
        w.raw(&self.invite_token);
        w.u8(self.reason.to_byte());
    }
}

impl Decode for InviteRefusal {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("invite refusal", INVITE_REFUSAL_VERSION)?;
        let invite_token = r.array()?;
        let reason = RefusalReason::from_byte(r.u8()?)?;
        Ok(Self {
            invite_token,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
