//! Thin, misuse-resistant wrappers around the primitive crates (ARCHITECTURE.md, "Threat model
//! and cryptography").
//!
//! This is the only module that names `x25519-dalek`, `ed25519-dalek`, `ml-kem`, `aes-gcm`,
//! `hkdf` and `hmac`. Everything above it works with these types, which
//! - reject weak and non-canonical public keys at parse time,
//! - refuse non-contributory Diffie-Hellman results,
//! - verify Ed25519 signatures with `verify_strict` only,
//! - zeroize every secret on drop and print no secret in `Debug`.
//!
//! The published test vectors (RFC 7748, RFC 8032, RFC 5869, Wycheproof) are replayed through
//! these wrappers, not through the underlying crates, so the vectors check what we actually use.

pub mod aead;
pub mod ed25519;
pub mod kdf;
pub mod kem;
pub mod x25519;

use rand_core::CryptoRng;

/// The random number generator every randomised function takes as an argument.
///
/// `protocol` never reaches for a global RNG: callers hand one in, so tests and vectors are
/// reproducible with a seeded generator.
pub trait Rng: CryptoRng {}
impl<T: CryptoRng + ?Sized> Rng for T {}

/// Fills a fresh array with random bytes.
pub(crate) fn random_array<const N: usize>(rng: &mut (impl Rng + ?Sized)) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}
