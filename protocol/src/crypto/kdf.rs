//! HKDF-SHA256 (RFC 5869), HMAC-SHA256 (RFC 2104) and SHA-512, the only KDFs and hashes we use.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

/// Output length of SHA-256 and HMAC-SHA256.
pub const SHA256_LEN: usize = 32;

/// HKDF-SHA256 extract-then-expand into an `N`-byte array.
///
/// `N` is checked at compile time against HKDF's limit of 255 hash lengths, so expansion
/// cannot fail.
pub fn hkdf_sha256<const N: usize>(
    salt: Option<&[u8]>,
    ikm: &[&[u8]],
    info: &[&[u8]],
) -> Zeroizing<[u8; N]> {
    const {
        assert!(
            N <= 255 * SHA256_LEN,
            "HKDF-SHA256 output is at most 8160 bytes"
        )
    };
    let mut extract = hkdf::HkdfExtract::<Sha256>::new(salt);
    for part in ikm {
        extract.input_ikm(part);
    }
    let (_, hk) = extract.finalize();
    expand(&hk, info)
}

/// HKDF-SHA256 expand only, with `prk` used as the pseudorandom key (RFC 5869 section 2.3).
///
/// Used where the input is already a uniformly random 32-byte key (a ratchet message key).
pub fn hkdf_sha256_expand<const N: usize>(
    prk: &[u8; SHA256_LEN],
    info: &[&[u8]],
) -> Zeroizing<[u8; N]> {
    const {
        assert!(
            N <= 255 * SHA256_LEN,
            "HKDF-SHA256 output is at most 8160 bytes"
        )
    };
    match hkdf::Hkdf::<Sha256>::from_prk(prk) {
        Ok(hk) => expand(&hk, info),
        // A 32-byte PRK is exactly one hash length, the size `from_prk` asks for.
        Err(_) => unreachable!("a 32-byte PRK is always accepted"),
    }
}

fn expand<const N: usize>(hk: &hkdf::Hkdf<Sha256>, info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    let mut okm = Zeroizing::new([0u8; N]);
    if hk.expand_multi_info(info, okm.as_mut()).is_err() {
        // Unreachable: the const assertion in every caller bounds N below HKDF's limit.
        unreachable!("HKDF output length checked at compile time");
    }
    okm
}

/// A keyed HMAC-SHA256 state that can authenticate several inputs under one key without
/// re-hashing the key each time (the chain KDF computes two or three MACs per step).
#[derive(Clone)]
pub struct HmacSha256(Hmac<Sha256>);

impl HmacSha256 {
    /// Keys a new HMAC-SHA256 state.
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length (RFC 2104 section 3), so this cannot fail.
        match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => Self(mac),
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// HMAC of the concatenation of `parts` under this key, leaving the keyed state reusable.
    pub fn mac(&self, parts: &[&[u8]]) -> Zeroizing<[u8; SHA256_LEN]> {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for HmacSha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha256(..)")
    }
}

/// One-shot HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; SHA256_LEN]> {
    HmacSha256::new(key).mac(parts)
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; SHA256_LEN] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// SHA-512 of the concatenation of `parts`.
pub fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}
