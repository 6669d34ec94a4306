//! The copyable text form of an account's identity key: Bech32m (BIP-350), SPEC.md section 2.4.
//!
//! An address is `chat1` followed by 53 data characters and a 6-character checksum, 64 characters
//! in all. The data part carries a version byte ([`ADDRESS_VERSION`]) and the 32-byte Ed25519
//! identity public key. Bech32m detects every error that touches at most four characters, so any
//! single typo, and any swap of two neighbouring characters, is refused with
//! [`AddressError::Checksum`] rather than silently naming another account.
//!
//! Parsing is strict: no whitespace is trimmed, mixed case is refused, the data part must have
//! exactly the length of a version-1 address with its padding bit zero (one string per key), and
//! the key must pass [`Ed25519PublicKey::from_bytes`] (canonical, not of small order).

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, ChecksumError, UncheckedHrpstring};
use bech32::{Bech32m, Fe32, Hrp};

use crate::crypto::ed25519::{ED25519_PUBLIC_LEN, Ed25519Error, Ed25519PublicKey};

/// The human-readable part every address starts with (before the separator `1`).
pub const ADDRESS_HRP: &str = "chat";
/// The version byte that opens the data part of the addresses this crate writes.
pub const ADDRESS_VERSION: u8 = 0x01;
/// Length in characters of a version-1 address: `chat`, `1`, 53 data and 6 checksum characters.
pub const ADDRESS_LEN: usize = 64;
/// The longest text [`Address::parse`] looks at: BIP-173's limit for a Bech32 string. Longer
/// input is refused with [`AddressError::TooLong`] before any other check.
pub const MAX_ADDRESS_TEXT_LEN: usize = 90;

/// Why a string is not a valid address. Variants are listed in the order the checks run, so the
/// first problem found is the one reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text is longer than [`MAX_ADDRESS_TEXT_LEN`] bytes; nothing else was checked.
    #[error(
        "address is {len} bytes long, far more than the {ADDRESS_LEN} characters of an address"
    )]
    TooLong {
        /// Length of the text in bytes.
        len: usize,
    },
    /// The text has no `1` separating the prefix from the data part, an empty prefix, or a data
    /// part too short to hold a checksum: it is not a Bech32 string at all.
    #[error("not an address: expected `{ADDRESS_HRP}1` followed by {} characters", ADDRESS_LEN - 5)]
    NotBech32,
    /// A character that cannot appear at this place: whitespace and control characters anywhere
    /// (nothing is trimmed), non-ASCII characters, and in the data part (after the last `1`) any
    /// character outside the Bech32 alphabet `qpzry9x8gf2tvdw0s3jn54khce6mua7l` (so `1`, `b`,
    /// `i` and `o` are refused there).
    #[error("character {character:?} at position {position} cannot appear in an address")]
    InvalidCharacter {
        /// Zero-based position of the character, counted in characters.
        position: usize,
        /// The offending character.
        character: char,
    },
    /// The text mixes upper- and lower-case letters. An address is all lower case or all upper
    /// case (the form QR codes use).
    #[error("address mixes upper- and lower-case letters")]
    MixedCase,
    /// The Bech32m checksum does not match: the address was mistyped or damaged.
    #[error("address checksum does not match: it was probably mistyped")]
    Checksum,
    /// A valid Bech32m string whose prefix is not [`ADDRESS_HRP`]: something else was pasted.
    #[error("not a chat address: prefix is `{found}`, expected `{ADDRESS_HRP}`")]
    WrongHrp {
        /// The prefix found, in lower case.
        found: String,
    },
    /// The version byte is not one this implementation reads (only [`ADDRESS_VERSION`] is).
    #[error("unsupported address version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The checksum is valid but the data part does not have the length of a version-1 address
    /// (the text is not [`ADDRESS_LEN`] characters long), or there is no version byte at all.
    #[error("address is {len} characters long, expected {ADDRESS_LEN}")]
    WrongLength {
        /// Length of the text in characters.
        len: usize,
    },
    /// The padding bit after the key is not zero. Only a deliberately crafted string can do
    /// this; refusing it keeps one text form per key.
    #[error("address has non-zero padding bits")]
    NonZeroPadding,
    /// The payload is well formed but the key is not a usable Ed25519 public key (not a curve
    /// point, not canonically encoded, or of small order).
    #[error("address does not hold a valid identity key: {0}")]
    InvalidKey(#[source] Ed25519Error),
}

/// An account address: an identity public key and its Bech32m text form.
///
/// `Display` writes the lower-case form; [`Address::parse`] (or `str::parse`) reads it back, in
/// lower or upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    key: Ed25519PublicKey,
}

impl Address {
    /// The address of an identity key.
    pub fn new(key: &Ed25519PublicKey) -> Self {
        Self { key: *key }
    }

    /// The identity key this address names.
    pub fn public_key(&self) -> &Ed25519PublicKey {
        &self.key
    }

    /// Parses the text form, all lower case or all upper case, refusing anything else (see
    /// [`AddressError`] for the checks, in the order they run).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.len() > MAX_ADDRESS_TEXT_LEN {
            return Err(AddressError::TooLong { len: text.len() });
        }
        check_characters(text)?;

        let unchecked = UncheckedHrpstring::new(text).map_err(|_| AddressError::NotBech32)?;
        let checked: CheckedHrpstring<'_> = unchecked
            .validate_and_remove_checksum::<Bech32m>()
            .map_err(|err| match err {
                ChecksumError::InvalidResidue => AddressError::Checksum,
                // Too short to hold a checksum (the 90-byte cap keeps us far below
                // Bech32m's code length, the only other failure).
                _ => AddressError::NotBech32,
            })?;
        if checked.hrp() != HRP {
            return Err(AddressError::WrongHrp {
                found: checked.hrp().to_lowercase(),
            });
        }

        // Version first, so a future version with another length is reported as a version.
        match checked.byte_iter().next() {
            Some(ADDRESS_VERSION) => {}
            Some(version) => return Err(AddressError::UnsupportedVersion { version }),
            None => return Err(AddressError::WrongLength { len: text.len() }),
        }
        if checked.data_part_ascii_no_checksum().len() != DATA_CHARS {
            return Err(AddressError::WrongLength { len: text.len() });
        }
        if checked.validate_segwit_padding().is_err() {
            return Err(AddressError::NonZeroPadding);
        }

        let mut payload = [0u8; PAYLOAD_LEN];
        let mut bytes = checked.byte_iter();
        for slot in payload.iter_mut() {
            // 53 characters hold 265 bits, so all 33 bytes are present.
            *slot = bytes
                .next()
                .ok_or(AddressError::WrongLength { len: text.len() })?;
        }
        let [_version, key @ ..] = payload;
        let key = Ed25519PublicKey::from_bytes(&key).map_err(AddressError::InvalidKey)?;
        Ok(Self { key })
    }
}

impl From<Ed25519PublicKey> for Address {
    fn from(key: Ed25519PublicKey) -> Self {
        Self { key }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = [0u8; PAYLOAD_LEN];
        let [version, key @ ..] = &mut payload;
        *version = ADDRESS_VERSION;
        *key = self.key.to_bytes();
        // Encoding fails only past Bech32m's 1023-character code length; ours is 64.
        bech32::encode_lower_to_fmt::<Bech32m, _>(f, HRP, &payload).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// Number of 5-bit data characters (checksum excluded) that carry the 33-byte payload:
/// 33 * 8 = 264 bits round up to 53 * 5 = 265 bits, the last bit being zero padding.
const DATA_CHARS: usize = 53;
/// Length of the payload: the version byte and the key.
const PAYLOAD_LEN: usize = 1 + ED25519_PUBLIC_LEN;
/// The parsed form of [`ADDRESS_HRP`]; it is four characters of the allowed set, so
/// `parse_unchecked` is sound.
const HRP: Hrp = Hrp::parse_unchecked(ADDRESS_HRP);

/// Checks every character for its place (see [`AddressError::InvalidCharacter`]), then the
/// case. Run before the `bech32` crate sees the text so errors can name a position.
fn check_characters(text: &str) -> Result<(), AddressError> {
    let separator = text.rfind('1');
    let (mut upper, mut lower) = (false, false);
    for (position, (index, character)) in text.char_indices().enumerate() {
        let allowed = match separator {
            Some(sep) if index > sep => Fe32::from_char(character).is_ok(),
            _ => character.is_ascii_graphic(),
        };
        if !allowed {
            return Err(AddressError::InvalidCharacter {
                position,
                character,
            });
        }
        upper |= character.is_ascii_uppercase();
        lower |= character.is_ascii_lowercase();
    }
    if upper && lower {
        return Err(AddressError::MixedCase);
    }
    if separator.is_none() {
        return Err(AddressError::NotBech32);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
