//! Introductions and display names (SPEC.md sections 8.1 and 8.4): who is writing, carried as
//! the body of a [`ContentKind::Introduction`](crate::envelope::ContentKind) message.
//!
//! An introduction names the sender (a display name), optionally a handle it holds on its
//! relay and the token of the invite it answers; version 2 adds where the sender is reached
//! (its signed reachability record) and the delivery token the receiver is to present at the
//! sender's relay. An introduction to a known contact updates both. The decoder is strict: a name that is not a
//! [`DisplayName`], a handle that is not a [`Handle`], a presence byte other than 0 or 1 and
//! trailing bytes are all refused.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::frames::{HANDLE_MAX_LEN, Handle};
use crate::reachability::{DeliveryToken, ReachabilityRecord};

/// The version byte of an [`Introduction`] without reachability fields (still written when
/// both are absent, so such an introduction has one encoding).
pub const INTRODUCTION_VERSION: u8 = 1;
/// The version byte of an [`Introduction`] with a reachability record or a delivery token.
pub const INTRODUCTION_VERSION_2: u8 = 2;
/// Most characters (Unicode scalar values) in a [`DisplayName`].
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
/// Most bytes of a [`DisplayName`]'s UTF-8 encoding: 64 characters of at most 4 bytes each.
/// A decoder refuses a longer name field before it looks at the characters.
pub const DISPLAY_NAME_MAX_LEN: usize = 4 * DISPLAY_NAME_MAX_CHARS;
/// Length of an invite token.
pub const INVITE_TOKEN_LEN: usize = 16;

/// Why a text is not a display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name has more than [`DISPLAY_NAME_MAX_CHARS`] characters.
    #[error("the name has more than {DISPLAY_NAME_MAX_CHARS} characters")]
    TooLong,
    /// The name contains a control character (Unicode category Cc).
    #[error("the name contains a control character")]
    ControlCharacter,
    /// The name starts or ends with white space (Unicode `White_Space`).
    #[error("the name starts or ends with white space")]
    Untrimmed,
}

/// A display name: 1 to 64 characters, no control character, no white space at either end.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks the rules of SPEC.md 8.4, in the order: empty, too long, control character,
    /// white space at an end.
    pub fn parse(text: &str) -> Result<Self, DisplayNameError> {
        if text.is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if text.chars().count() > DISPLAY_NAME_MAX_CHARS {
            return Err(DisplayNameError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(DisplayNameError::ControlCharacter);
        }
        if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
            return Err(DisplayNameError::Untrimmed);
        }
        Ok(Self(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({:?})", self.0)
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Encode for DisplayName {
    fn encode(&self, w: &mut Writer) {
        w.str16(&self.0);
    }
}

impl Decode for DisplayName {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let text = r.str16("display name", DISPLAY_NAME_MAX_LEN)?;
        Self::parse(text).map_err(|_| DecodeError::Invalid("display name"))
    }
}

/// The body of an introduction message (SPEC.md 8.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Introduction {
    /// The sender's display name.
    pub name: DisplayName,
    /// A handle the sender holds on its relay.
    pub handle: Option<Handle>,
    /// The token of the invite the sender accepts.
    pub invite_token: Option<[u8; INVITE_TOKEN_LEN]>,
    /// Where the sender is reached; the receiver checks it names the sender and is newer than
    /// the record it holds.
    pub reachability: Option<ReachabilityRecord>,
    /// The token the receiver presents when it deposits envelopes for the sender.
    pub delivery_token: Option<DeliveryToken>,
}

impl fmt::Debug for Introduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a one-time credential: only its presence is shown.
        f.debug_struct("Introduction")
            .field("name", &self.name)
            .field("handle", &self.handle)
            .field("invite_token", &self.invite_token.map(|_| ".."))
            .field("reachability", &self.reachability)
            .field(
                "delivery_token",
                &self.delivery_token.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

impl Encode for Introduction {
    fn encode(&self, w: &mut Writer) {
        let version_2 = self.reachability.is_some() || self.delivery_token.is_some();
        w.u8(if version_2 {
            INTRODUCTION_VERSION_2
        } else {
            INTRODUCTION_VERSION
        });
        self.name.encode(w);
        match &self.handle {
            None => w.u8(0),
            Some(handle) => {
                w.u8(1);
                w.str16(handle.as_str());
            }
        }
        match &self.invite_token {
            None => w.u8(0),
            Some(token) => {
                w.u8(1);
                w.raw(token);
            }
        }
        if version_2 {
            w.option(self.reachability.as_ref());
            w.option(self.delivery_token.as_ref());
        }
    }
}

impl Decode for Introduction {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if version != INTRODUCTION_VERSION && version != INTRODUCTION_VERSION_2 {
            return Err(DecodeError::UnsupportedVersion {
                what: "introduction",
                version,
            });
        }
        let name = DisplayName::decode(r)?;
        let handle = match r.u8()? {
            0 => None,
            1 => {
                let text = r.str16("introduction handle", HANDLE_MAX_LEN)?;
                Some(Handle::parse(text).map_err(|_| DecodeError::Invalid("introduction handle"))?)
            }
            _ => return Err(DecodeError::Invalid("introduction handle presence")),
        };
        let invite_token = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => return Err(DecodeError::Invalid("introduction token presence")),
        };
        let (reachability, delivery_token) = if version == INTRODUCTION_VERSION_2 {
            let reachability = r.option("introduction reachability presence")?;
            let delivery_token = r.option("introduction delivery token presence")?;
            if reachability.is_none() && delivery_token.is_none() {
                // Written as version 1: one encoding per introduction.
                return Err(DecodeError::Invalid(
                    "version 2 introduction without its fields",
                ));
            }
            (reachability, delivery_token)
        } else {
            (None, None)
        };
        Ok(Self {
            name,
            handle,
            invite_token,
            reachability,
            delivery_token,
        })
    }
}

#[cfg(test)]
mod tests;
