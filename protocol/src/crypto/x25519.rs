//! X25519 Diffie-Hellman (RFC 7748) with small-order key rejection and contributory checks.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Rng;

/// Length in bytes of an X25519 public key, secret key or shared secret.
pub const X25519_LEN: usize = 32;

/// Why an X25519 operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum X25519Error {
    /// The public key is one of the points of small order (or a non-canonical encoding of one):
    /// every scalar multiplies it to a value an attacker knows.
    #[error("X25519 public key has small order")]
    SmallOrderKey,
    /// The shared secret was all zeroes: the peer's key did not contribute (RFC 7748 section 6.1).
    #[error("X25519 shared secret is not contributory (all-zero output)")]
    NonContributory,
}

/// An X25519 public key that is not of small order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519PublicKey([u8; X25519_LEN]);

/// The little-endian u-coordinates of small order on Curve25519 and its twist, with the top bit
/// cleared (X25519 ignores it). The same blocklist libsodium uses; values p+0 and p+1 are the
/// non-canonical encodings of 0 and 1.
const SMALL_ORDER_U: [[u8; 32]; 7] = [
    // 0 (order 4)
    [0; 32],
    // 1 (order 1)
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    // 325606250916557431795983626356110631294008115727848805560023387167927233504 (order 8)
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    // 39382357235489614581723060781553021112529911719440698176882885853963445705823 (order 8)
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    // p - 1 (order 2)
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p (non-canonical 0)
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p + 1 (non-canonical 1)
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

impl X25519PublicKey {
    /// Parses a public key, refusing the small-order points of Curve25519 and its twist.
    ///
    /// Other non-canonical encodings (u >= p that is not small order) are accepted, as RFC 7748
    /// requires; they cannot force a known shared secret.
    pub fn from_bytes(bytes: [u8; X25519_LEN]) -> Result<Self, X25519Error> {
        let mut masked = bytes;
        masked[31] &= 0x7f;
        let mut small = subtle::Choice::from(0);
        for candidate in &SMALL_ORDER_U {
            small |= masked.ct_eq(candidate);
        }
        if bool::from(small) {
            return Err(X25519Error::SmallOrderKey);
        }
        Ok(Self(bytes))
    }

    /// The 32-byte encoding, exactly as parsed or generated.
    pub fn as_bytes(&self) -> &[u8; X25519_LEN] {
        &self.0
    }

    /// The 32-byte encoding.
    pub fn to_bytes(self) -> [u8; X25519_LEN] {
        self.0
    }

    /// Whether the encoding is canonical: as a little-endian integer it is below
    /// p = 2^255 - 19 (so in particular its top bit is clear).
    ///
    /// X25519 ignores the top bit and reduces the rest modulo p, so a non-canonical encoding
    /// gives the same Diffie-Hellman results as a canonical one with other bytes. Where a key's
    /// bytes identify something (a PQXDH base key names a session and keys the replay guard),
    /// only the canonical encoding may be accepted.
    pub fn is_canonical(&self) -> bool {
        const P: [u8; X25519_LEN] = {
            let mut p = [0xff; X25519_LEN];
            p[0] = 0xed;
            p[X25519_LEN - 1] = 0x7f;
            p
        };
        // Compare from the most significant byte down; equal to p is not canonical.
        self.0
            .iter()
            .rev()
            .zip(P.iter().rev())
            .find(|(ours, p)| ours != p)
            .is_some_and(|(ours, p)| ours < p)
    }
}

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519PublicKey({})", crate::hex_prefix(&self.0))
    }
}

/// An X25519 secret scalar together with its cached public key.
///
/// The public key is computed once, at generation or load time, and cached: the ratchet sends it
/// in every header and must not pay a scalar multiplication per message.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct X25519Secret {
    secret: [u8; X25519_LEN],
    #[zeroize(skip)]
    public: X25519PublicKey,
}

impl X25519Secret {
    /// Generates a fresh key pair.
    pub fn generate(rng: &mut (impl Rng + ?Sized)) -> Self {
        let mut bytes = super::random_array::<X25519_LEN>(rng);
        let secret = Self::from_bytes(&bytes);
        bytes.zeroize();
        secret
    }

    /// Loads a secret from its 32 bytes (clamping happens inside the scalar multiplication).
    pub fn from_bytes(bytes: &[u8; X25519_LEN]) -> Self {
        // Fixed-base multiplication through the Edwards tables: about three times cheaper than a
        // Montgomery ladder on the base point.
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*bytes));
        Self {
            secret: *bytes,
            public: X25519PublicKey(public.to_bytes()),
        }
    }

    /// The secret bytes, for encrypted pickles only.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; X25519_LEN]> {
        zeroize::Zeroizing::new(self.secret)
    }

    /// The cached public key.
    pub fn public_key(&self) -> X25519PublicKey {
        self.public
    }

    /// Diffie-Hellman with a peer's key; refuses an all-zero (non-contributory) result.
    pub fn diffie_hellman(&self, peer: &X25519PublicKey) -> Result<SharedSecret, X25519Error> {
        let out = scalar_mult(&self.secret, &peer.0);
        if bool::from(out.ct_eq(&[0u8; X25519_LEN])) {
            return Err(X25519Error::NonContributory);
        }
        Ok(SharedSecret(*out))
    }
}

impl fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519Secret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The output of an X25519 Diffie-Hellman, known to be contributory.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; X25519_LEN]);

impl SharedSecret {
    /// The 32 shared bytes, to be fed into a KDF and nowhere else.
    pub fn as_bytes(&self) -> &[u8; X25519_LEN] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// Raw RFC 7748 X25519 function, for replaying published vectors through this module.
///
/// Unlike [`X25519Secret::diffie_hellman`] it performs no checks; the vector tests use it to show
/// that the function underneath is the specified one, and the checked path for the rest. It is
/// the same computation as the checked path's ([`scalar_mult`]).
pub fn x25519_raw(scalar: [u8; X25519_LEN], u: [u8; X25519_LEN]) -> [u8; X25519_LEN] {
    *scalar_mult(&scalar, &u)
}

/// The X25519 function (RFC 7748 section 5): the u-coordinate of `[clamp(scalar)] P`, where `P`
/// is a point with u-coordinate `u` (its top bit ignored).
///
/// When `u` belongs to a point of Curve25519 itself (every key this protocol makes does), the
/// multiplication runs on the birationally equivalent Edwards curve, where curve25519-dalek's
/// variable-base multiplication takes about 70 us here against 104 us for the Montgomery ladder
/// (chatd/BENCHMARKS.md; two of these per message were a third of the daemons' CPU). Either sign
/// of the Edwards x-coordinate gives the same u-coordinate, and `mul_clamped` multiplies by the
/// clamped integer itself, not reduced modulo the group order, so points with a small-order
/// component give the ladder's result too. Points of the twist and `u = -1`, which have no
/// Edwards counterpart, take the ladder. Which way is taken depends on the public `u` only; both
/// are constant-time in the scalar.
fn scalar_mult(
    scalar: &[u8; X25519_LEN],
    u: &[u8; X25519_LEN],
) -> zeroize::Zeroizing<[u8; X25519_LEN]> {
    match curve25519_dalek::MontgomeryPoint(*u).to_edwards(0) {
        Some(point) => {
            let mut product = point.mul_clamped(*scalar);
            let mut shared = product.to_montgomery();
            let out = zeroize::Zeroizing::new(shared.to_bytes());
            product.zeroize();
            shared.zeroize();
            out
        }
        None => zeroize::Zeroizing::new(x25519_dalek::x25519(*scalar, *u)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Edwards-coordinates path gives the Montgomery ladder's result for points of the curve
    /// (the path every key of the protocol takes); the Wycheproof and RFC 7748 vectors in
    /// `tests/it/published.rs` cover the twist, non-canonical and small-order inputs.
    #[test]
    fn scalar_mult_agrees_with_the_ladder() {
        for i in 0u32..64 {
            let scalar = crate::crypto::kdf::sha256(&[b"scalar", &i.to_be_bytes()]);
            let seed = crate::crypto::kdf::sha256(&[b"point", &i.to_be_bytes()]);
            let mut u = X25519Secret::from_bytes(&seed).public_key().to_bytes();
            if i % 2 == 1 {
                u[31] |= 0x80; // X25519 ignores the top bit; so must the Edwards path
            }
            assert_eq!(
                *scalar_mult(&scalar, &u),
                x25519_dalek::x25519(scalar, u),
                "case {i}"
            );
        }
    }
}
