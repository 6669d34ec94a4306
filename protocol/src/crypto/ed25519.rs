//! Ed25519 signatures (RFC 8032) with strict verification and canonical, non-weak public keys.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroize;

use super::Rng;

/// Length in bytes of an Ed25519 public key.
pub const ED25519_PUBLIC_LEN: usize = 32;
/// Length in bytes of an Ed25519 secret seed.
pub const ED25519_SECRET_LEN: usize = 32;
/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why an Ed25519 key or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ed25519Error {
    /// The bytes are not the encoding of a point on the curve.
    #[error("Ed25519 public key is not a valid curve point")]
    InvalidKey,
    /// The point is valid but the encoding is not the canonical one (y >= p, or a negative zero).
    #[error("Ed25519 public key is not canonically encoded")]
    NonCanonicalKey,
    /// The point has small order, so signatures under it prove nothing.
    #[error("Ed25519 public key has small order")]
    WeakKey,
    /// The signature does not verify under `verify_strict` (RFC 8032 plus malleability and
    /// small-order checks).
    #[error("Ed25519 signature is invalid")]
    BadSignature,
}

/// An Ed25519 public key that is canonical and not of small order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519PublicKey(VerifyingKey);

impl Ed25519PublicKey {
    /// Parses a public key, refusing invalid, non-canonical and small-order encodings.
    pub fn from_bytes(bytes: &[u8; ED25519_PUBLIC_LEN]) -> Result<Self, Ed25519Error> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Ed25519Error::InvalidKey)?;
        if key.to_edwards().compress().as_bytes() != bytes {
            return Err(Ed25519Error::NonCanonicalKey);
        }
        if key.is_weak() {
            return Err(Ed25519Error::WeakKey);
        }
        Ok(Self(key))
    }

    /// The canonical 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; ED25519_PUBLIC_LEN] {
        self.0.as_bytes()
    }

    /// The canonical 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; ED25519_PUBLIC_LEN] {
        self.0.to_bytes()
    }

    /// Verifies `signature` over `message` with `verify_strict`: non-canonical `R`/`s` and
    /// small-order `R` are refused, so signatures are not malleable.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), Ed25519Error> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| Ed25519Error::BadSignature)
    }
}

impl std::hash::Hash for Ed25519PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ed25519PublicKey({})",
            crate::hex_prefix(self.as_bytes())
        )
    }
}

/// A 64-byte Ed25519 signature, carried as bytes until it is verified.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", crate::hex_prefix(&self.0))
    }
}

/// An Ed25519 signing key (its 32-byte seed), zeroized on drop.
#[derive(Clone)]
pub struct Ed25519Secret(SigningKey);

impl Ed25519Secret {
    /// Generates a fresh key.
    pub fn generate(rng: &mut (impl Rng + ?Sized)) -> Self {
        let mut seed = super::random_array::<ED25519_SECRET_LEN>(rng);
        let key = Self::from_seed(&seed);
        seed.zeroize();
        key
    }

    /// Loads the key from its RFC 8032 32-byte seed.
    pub fn from_seed(seed: &[u8; ED25519_SECRET_LEN]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The seed, for encrypted pickles only.
    pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; ED25519_SECRET_LEN]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public key (cached inside the signing key).
    pub fn public_key(&self) -> Ed25519PublicKey {
        Ed25519PublicKey(self.0.verifying_key())
    }

    /// Signs `message` (pure Ed25519, deterministic).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for Ed25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Secret")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}
