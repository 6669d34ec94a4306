//! Versioned, encrypted "pickles": how secret state leaves this crate (SPEC.md section 6.2).
//!
//! ```text
//! pickle = version (0x01) || salt[32] || AES-256-GCM(key, nonce, aad, plaintext)
//! key || nonce = HKDF-SHA256(salt, ikm = pickle key, info = "chatd/v1/pickle/" || kind)
//! aad = "chatd/v1/pickle/" || kind || version
//! ```
//!
//! A fresh random salt per pickle gives a fresh AEAD key and nonce, so one long-lived pickle
//! key can seal any number of pickles. `kind` names the pickled type, so a pickle of one type
//! cannot be opened as another.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::aead::{self, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use crate::crypto::kdf::hkdf_sha256;
use crate::crypto::{Rng, random_array};

/// Pickle format version.
pub const PICKLE_VERSION: u8 = 1;
const SALT_LEN: usize = 32;
const LABEL: &[u8] = b"chatd/v1/pickle/";

/// The 32-byte key pickles are sealed with (chatd derives it from its store key).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PickleKey([u8; 32]);

impl PickleKey {
    /// Wraps 32 key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for PickleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PickleKey(..)")
    }
}

/// Why a pickle could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    /// Shorter than the fixed overhead.
    #[error("pickle is truncated")]
    Truncated,
    /// A pickle version this implementation does not read.
    #[error("unsupported pickle version {0}")]
    UnsupportedVersion(u8),
    /// Wrong key, wrong kind, or modified bytes.
    #[error("pickle authentication failed (wrong key or corrupted)")]
    Authentication,
    /// The decrypted contents do not decode.
    #[error("pickle contents are malformed: {0}")]
    Decode(#[from] crate::codec::DecodeError),
}

fn derive(
    key: &PickleKey,
    salt: &[u8; SALT_LEN],
    kind: &str,
) -> Zeroizing<[u8; AEAD_KEY_LEN + AEAD_NONCE_LEN]> {
    hkdf_sha256(Some(salt), &[&key.0], &[LABEL, kind.as_bytes()])
}

fn split(
    okm: &[u8; AEAD_KEY_LEN + AEAD_NONCE_LEN],
) -> (Zeroizing<[u8; AEAD_KEY_LEN]>, [u8; AEAD_NONCE_LEN]) {
    let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    let mut nonce = [0u8; AEAD_NONCE_LEN];
    key.copy_from_slice(&okm[..AEAD_KEY_LEN]);
    nonce.copy_from_slice(&okm[AEAD_KEY_LEN..]);
    (key, nonce)
}

fn aad(kind: &str) -> Vec<u8> {
    [LABEL, kind.as_bytes(), &[PICKLE_VERSION]].concat()
}

/// Seals `plaintext` as a pickle of `kind`.
pub fn seal(
    kind: &str,
    key: &PickleKey,
    plaintext: &[u8],
    rng: &mut (impl Rng + ?Sized),
) -> Vec<u8> {
    let salt = random_array::<SALT_LEN>(rng);
    let (aead_key, nonce) = split(&derive(key, &salt, kind));
    let mut out = Vec::with_capacity(1 + SALT_LEN + plaintext.len() + AEAD_TAG_LEN);
    out.push(PICKLE_VERSION);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&aead::seal(&aead_key, &nonce, &aad(kind), plaintext));
    out
}

/// Opens a pickle of `kind`.
pub fn open(kind: &str, key: &PickleKey, pickle: &[u8]) -> Result<Zeroizing<Vec<u8>>, PickleError> {
    let (&version, rest) = pickle.split_first().ok_or(PickleError::Truncated)?;
    if version != PICKLE_VERSION {
        return Err(PickleError::UnsupportedVersion(version));
    }
    if rest.len() < SALT_LEN + AEAD_TAG_LEN {
        return Err(PickleError::Truncated);
    }
    let (salt, sealed) = rest.split_at(SALT_LEN);
    let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| PickleError::Truncated)?;
    let (aead_key, nonce) = split(&derive(key, &salt, kind));
    aead::open(&aead_key, &nonce, &aad(kind), sealed)
        .map(Zeroizing::new)
        .map_err(|_| PickleError::Authentication)
}
