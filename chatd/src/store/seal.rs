//! The value envelope: how one stored value is encrypted, and the associated data that binds
//! it to its table and key (the at-rest format is in the parent module's documentation).

use protocol::codec::{DecodeError, Reader};
use protocol::crypto::aead::{self, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use zeroize::Zeroizing;

use super::{StoreError, Table};

/// Version byte of a sealed value.
pub(crate) const VALUE_VERSION: u8 = 1;

/// The label every value's associated data starts with.
pub(crate) const AAD_LABEL: &[u8] = b"chatd/store/v1";

/// Version byte and nonce, in front of the ciphertext.
const HEADER_LEN: usize = 1 + AEAD_NONCE_LEN;

/// Bytes a sealed value has beyond its plaintext.
pub(crate) const OVERHEAD: usize = HEADER_LEN + AEAD_TAG_LEN;

/// How many bytes a [`SmallBuf`] holds without allocating: the AAD of any key up to 100 bytes.
const INLINE: usize = 128;

/// A byte string assembled from parts, kept on the stack when short.
///
/// Backend keys and associated data are built for every read and write; for the usual short keys
/// this costs no allocation. The contents are never secret (keys and associated data only).
pub(crate) enum SmallBuf {
    /// Up to [`INLINE`] bytes, the first `len` of which are used.
    Inline { bytes: [u8; INLINE], len: usize },
    /// Anything longer.
    Heap(Vec<u8>),
}

impl SmallBuf {
    /// The concatenation of `parts`.
    pub(crate) fn concat(parts: &[&[u8]]) -> Self {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        if total > INLINE {
            return Self::Heap(parts.concat());
        }
        let mut bytes = [0u8; INLINE];
        let mut len = 0;
        for part in parts {
            // In bounds: the parts add up to `total`, at most INLINE bytes.
            bytes[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        Self::Inline { bytes, len }
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { bytes, len } => bytes.get(..*len).unwrap_or(bytes),
            Self::Heap(bytes) => bytes,
        }
    }
}

/// The backend key of `key` in `table`: the table byte, then the key.
pub(crate) fn backend_key(table: Table, key: &[u8]) -> SmallBuf {
    SmallBuf::concat(&[&[table.0], key])
}

/// The associated data of the value stored under `key` in `table`:
/// `"chatd/store/v1" || table || u32 BE key length || key`.
pub(crate) fn associated_data(table: Table, key: &[u8]) -> SmallBuf {
    // A key can never reach 4 GiB (sled and the daemon's own keys are far smaller); saturating
    // keeps this total without a panic path.
    let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes();
    SmallBuf::concat(&[AAD_LABEL, &[table.0], &key_len, key])
}

/// Encrypts `plaintext` for `key` in `table` under `value_key` with `nonce`, returning
/// `version || nonce || ciphertext || tag` in one allocation.
pub(crate) fn seal_value(
    value_key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    table: Table,
    key: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(VALUE_VERSION);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let aad = associated_data(table, key);
    // In bounds: `out` holds the header and then the plaintext, which is encrypted in place so
    // no plaintext copy is left behind.
    let tag = aead::seal_in_place(value_key, nonce, aad.as_slice(), &mut out[HEADER_LEN..]);
    out.extend_from_slice(&tag);
    out
}

/// Decrypts a value read from `key` in `table`, checking its version, length and tag.
pub(crate) fn open_value(
    value_key: &[u8; AEAD_KEY_LEN],
    table: Table,
    key: &[u8],
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let mut reader = Reader::new(stored);
    reader
        .version("store value", VALUE_VERSION)
        .map_err(|error| match error {
            DecodeError::UnsupportedVersion { .. } => {
                StoreError::Corrupt("a stored value has an unknown version")
            }
            _ => StoreError::Corrupt("a stored value is empty"),
        })?;
    let nonce: [u8; AEAD_NONCE_LEN] = reader
        .array()
        .map_err(|_| StoreError::Corrupt("a stored value is truncated"))?;
    let sealed = reader.rest();
    if sealed.len() < AEAD_TAG_LEN {
        return Err(StoreError::Corrupt("a stored value is truncated"));
    }
    let aad = associated_data(table, key);
    aead::open(value_key, &nonce, aad.as_slice(), sealed)
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Corrupt("a stored value failed authentication"))
}
