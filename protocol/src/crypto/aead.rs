//! AES-256-GCM with a full 128-bit tag (NIST SP 800-38D), the only AEAD we use.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

/// AES-256 key length.
pub const AEAD_KEY_LEN: usize = 32;
/// GCM nonce length.
pub const AEAD_NONCE_LEN: usize = 12;
/// GCM tag length: the full 16 bytes, never truncated.
pub const AEAD_TAG_LEN: usize = 16;

/// Authentication failed: wrong key, nonce, associated data, or a modified ciphertext or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEAD authentication failed")]
pub struct AeadError;

/// Encrypts `plaintext` and returns `ciphertext || tag`.
pub fn seal(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + AEAD_TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = seal_in_place(key, nonce, aad, &mut out);
    out.extend_from_slice(&tag);
    out
}

/// Encrypts `buffer` in place and returns the detached tag.
pub fn seal_in_place(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; AEAD_TAG_LEN] {
    let cipher = Aes256Gcm::new(key.into());
    match cipher.encrypt_inout_detached(&Nonce::from(*nonce), aad, buffer.into()) {
        Ok(tag) => tag.into(),
        // aes-gcm only fails to encrypt past 2^36 - 32 bytes; our frames are far smaller.
        Err(_) => unreachable!("AES-GCM plaintext length limit exceeded"),
    }
}

/// Decrypts `ciphertext || tag`, returning the plaintext or [`AeadError`].
pub fn open(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, AeadError> {
    let body_len = sealed.len().checked_sub(AEAD_TAG_LEN).ok_or(AeadError)?;
    let (body, tag) = sealed.split_at(body_len);
    let tag: [u8; AEAD_TAG_LEN] = tag.try_into().map_err(|_| AeadError)?;
    let mut out = body.to_vec();
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt_inout_detached(
            &Nonce::from(*nonce),
            aad,
            out.as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| AeadError)?;
    Ok(out)
}
