//! Root, chain and message keys and their KDFs (SPEC.md section 5.2).
//!
//! - Root KDF: `HKDF-SHA256(salt = root key, ikm = DH output, info = "chatd/v1/ratchet-root")`,
//!   64 bytes: the new root key, then the new chain key.
//! - Chain KDF: `message key = HMAC-SHA256(chain key, 0x01)`,
//!   `next chain key = HMAC-SHA256(chain key, 0x02)` (Signal's constants).
//! - Message key expansion: `HKDF-Expand(PRK = message key, info = "chatd/v1/message-key", 44)`
//!   gives the AES-256-GCM key (32 bytes) and nonce (12 bytes).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::aead::{AEAD_KEY_LEN, AEAD_NONCE_LEN};
use crate::crypto::kdf::{HmacSha256, hkdf_sha256, hkdf_sha256_expand};
use crate::crypto::x25519::SharedSecret;

const ROOT_INFO: &[u8] = b"chatd/v1/ratchet-root";
const MESSAGE_KEY_INFO: &[u8] = b"chatd/v1/message-key";
const MESSAGE_KEY_SEED: u8 = 0x01;
const CHAIN_KEY_SEED: u8 = 0x02;

/// The root key: input to every DH ratchet step.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(pub(crate) [u8; 32]);

impl RootKey {
    /// One DH ratchet step: mixes a DH output into the root and starts a new chain.
    pub(crate) fn step(&self, dh: &SharedSecret) -> (RootKey, ChainKey) {
        let okm: Zeroizing<[u8; 64]> = hkdf_sha256(Some(&self.0), &[dh.as_bytes()], &[ROOT_INFO]);
        let mut root = [0u8; 32];
        let mut chain = [0u8; 32];
        root.copy_from_slice(&okm[..32]);
        chain.copy_from_slice(&okm[32..]);
        (
            RootKey(root),
            ChainKey {
                key: chain,
                index: 0,
            },
        )
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(..)")
    }
}

/// A sending or receiving chain key and the index of the next message it will produce.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

impl ChainKey {
    /// The message key for `self.index` and the chain key after it, or `None` when the index
    /// space is exhausted (a chain never wraps).
    pub(crate) fn step(&self) -> Option<(MessageKey, ChainKey)> {
        let next_index = self.index.checked_add(1)?;
        let mac = HmacSha256::new(&self.key);
        let message = mac.mac(&[&[MESSAGE_KEY_SEED]]);
        let next = mac.mac(&[&[CHAIN_KEY_SEED]]);
        Some((
            MessageKey {
                key: *message,
                index: self.index,
            },
            ChainKey {
                key: *next,
                index: next_index,
            },
        ))
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKey")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A single-use message key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

impl MessageKey {
    /// The AES-256-GCM key and nonce for this message.
    pub(crate) fn aead_key_nonce(&self) -> AeadKeyNonce {
        let okm: Zeroizing<[u8; AEAD_KEY_LEN + AEAD_NONCE_LEN]> =
            hkdf_sha256_expand(&self.key, &[MESSAGE_KEY_INFO]);
        let mut out = AeadKeyNonce {
            key: [0; AEAD_KEY_LEN],
            nonce: [0; AEAD_NONCE_LEN],
        };
        out.key.copy_from_slice(&okm[..AEAD_KEY_LEN]);
        out.nonce.copy_from_slice(&okm[AEAD_KEY_LEN..]);
        out
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageKey")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// An expanded message key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct AeadKeyNonce {
    pub(crate) key: [u8; AEAD_KEY_LEN],
    pub(crate) nonce: [u8; AEAD_NONCE_LEN],
}
