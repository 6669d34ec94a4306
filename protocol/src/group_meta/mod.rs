//! Group metadata (SPEC.md 13.3): the body of the chatd group context extension of every MLS
//! group chatd makes. It carries the group's name, description and admins, so every member
//! holds the same values in every epoch (the group context is agreed by the key schedule), and
//! the admin rules every member enforces on every commit read their admins from it.
//!
//! The decoder is strict: another version, a name or description over its limit or holding a
//! control character, no admin or a repeated one, and trailing bytes are all refused.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::identity::IdentityKey;

/// The MLS extension type of the metadata, in RFC 9420's private-use range (0xF000-0xFFFF).
pub const GROUP_METADATA_EXTENSION_TYPE: u16 = 0xF0C0;
/// The version byte of [`GroupMetadata`]; it is also the group protocol version (a later one
/// starts a new group).
pub const GROUP_METADATA_VERSION: u8 = 1;
/// Most bytes of a group name (UTF-8).
pub const MAX_GROUP_NAME_LEN: usize = 128;
/// Most bytes of a group description (UTF-8).
pub const MAX_GROUP_DESCRIPTION_LEN: usize = 1024;
/// Most admins of a group (accounts).
pub const MAX_GROUP_ADMINS: usize = 64;

/// A group's name, description and admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// The name members see, 1 to [`MAX_GROUP_NAME_LEN`] bytes without control characters.
    pub name: String,
    /// What the group is for, 0 to [`MAX_GROUP_DESCRIPTION_LEN`] bytes; line breaks allowed,
    /// other control characters not.
    pub description: String,
    /// The accounts (all their devices) that may add and remove members and change the
    /// metadata: 1 to [`MAX_GROUP_ADMINS`], no repeats.
    pub admins: Vec<IdentityKey>,
}

/// Whether `text` is acceptable for a field; `newlines` allows `\n`.
fn clean(text: &str, newlines: bool) -> bool {
    text.chars()
        .all(|c| !c.is_control() || (newlines && c == '\n'))
}

impl GroupMetadata {
    /// Checks the limits an encoder must keep (the decoder refuses anything else).
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.name.is_empty() || self.name.len() > MAX_GROUP_NAME_LEN || !clean(&self.name, false)
        {
            return Err(DecodeError::Invalid("group name"));
        }
        if self.description.len() > MAX_GROUP_DESCRIPTION_LEN || !clean(&self.description, true) {
            return Err(DecodeError::Invalid("group description"));
        }
        if self.admins.is_empty() || self.admins.len() > MAX_GROUP_ADMINS {
            return Err(DecodeError::Invalid("group admins"));
        }
        for (i, admin) in self.admins.iter().enumerate() {
            if self.admins.iter().take(i).any(|earlier| earlier == admin) {
                return Err(DecodeError::Invalid("group admins"));
            }
        }
        Ok(())
    }

    /// Whether `identity` is an admin.
    pub fn is_admin(&self, identity: &IdentityKey) -> bool {
        self.admins.contains(identity)
    }
}

impl Encode for GroupMetadata {
    fn encode(&self, w: &mut Writer) {
        w.u8(GROUP_METADATA_VERSION);
        w.str16(&self.name);
        w.str16(&self.description);
        w.list(&self.admins);
    }
}

impl Decode for GroupMetadata {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("group metadata", GROUP_METADATA_VERSION)?;
        let name = r.str16("group name", MAX_GROUP_NAME_LEN)?.to_owned();
        let description = r
            .str16("group description", MAX_GROUP_DESCRIPTION_LEN)?
            .to_owned();
        let admins = r.list("group admins", MAX_GROUP_ADMINS)?;
        let metadata = Self {
            name,
            description,
            admins,
        };
        metadata.check()?;
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests;
