//! Safety numbers: the 60-digit fingerprint of a pair of identity keys, and its QR payload,
//! SPEC.md section 9.
//!
//! The construction is Signal's numeric fingerprint, version 0 (libsignal `fingerprint.rs`,
//! 5200 iterations of SHA-512), with two choices of ours:
//!
//! - **Key encoding**: the identity key is hashed as [`KEY_TYPE_ED25519`] (`0xED`) followed by
//!   its 32 bytes. Signal prefixes its Curve25519 keys with `0x05`; a distinct byte keeps an
//!   Ed25519 key from ever being fingerprinted as if it were a Signal key with the same 32 bytes.
//! - **Stable identifier**: the 64 ASCII bytes of the key's lower-case version-1 [`Address`].
//!   Signal binds the fingerprint to the identifier users know the peer by (a phone number, an
//!   account id); ours is the address. Since the address is a function of the key it adds no
//!   trust of its own, but it keeps the construction Signal's, and pinning it to version 1 keeps
//!   safety numbers stable if the address format ever gains a version 2.
//!
//! Each party's fingerprint is `F = H_5200`, where `H_1 = SHA-512(0x0000 || K || id || K)`,
//! `H_i = SHA-512(H_(i-1) || K)` and `K = 0xED || key`. Its first 30 bytes give 30 digits
//! (six 5-byte big-endian chunks, each mod 100000, zero-padded to 5 digits); the safety number
//! is the two 30-digit halves, the lexicographically smaller first, so both parties see the same
//! 60 digits. The QR payload carries the first 32 bytes of each fingerprint, the scanner's
//! counterpart compares them crosswise in constant time.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};

use crate::address::Address;
use crate::codec::{DecodeError, Reader};
use crate::crypto::ed25519::Ed25519PublicKey;
use crate::crypto::kdf::sha512;

/// The byte that precedes an Ed25519 identity key wherever it is hashed for a fingerprint.
pub const KEY_TYPE_ED25519: u8 = 0xED;
/// The fingerprint version hashed first, as a big-endian `u16` (Signal's displayable version 0).
pub const FINGERPRINT_VERSION: u16 = 0;
/// Number of SHA-512 invocations per fingerprint (Signal's value).
pub const ITERATIONS: u32 = 5200;
/// Number of decimal digits in a safety number.
pub const DIGITS_LEN: usize = 60;
/// Number of bytes of each fingerprint carried in the QR payload.
pub const FINGERPRINT_LEN: usize = 32;
/// The version byte that opens a QR payload.
pub const QR_VERSION: u8 = 0x01;
/// Length of a QR payload: the version byte and two fingerprints.
pub const QR_PAYLOAD_LEN: usize = 1 + 2 * FINGERPRINT_LEN;

/// The safety number of a conversation, as seen from one side: the local and the remote
/// identity key's fingerprints.
///
/// Equality is constant time and does not depend on the side: Alice's view equals Bob's view of
/// the same pair of keys, just as their digits are the same.
#[derive(Clone)]
pub struct SafetyNumber {
    local: [u8; FINGERPRINT_LEN],
    remote: [u8; FINGERPRINT_LEN],
}

impl SafetyNumber {
    /// The safety number between our identity key `local` and the peer's `remote`.
    ///
    /// Costs 10,400 SHA-512 invocations (about a millisecond); callers that show it often may
    /// keep it.
    pub fn new(local: &Ed25519PublicKey, remote: &Ed25519PublicKey) -> Self {
        Self {
            local: key_fingerprint(local),
            remote: key_fingerprint(remote),
        }
    }

    /// The 60 decimal digits, the same on both sides.
    pub fn digits(&self) -> String {
        let mut out = String::with_capacity(DIGITS_LEN);
        for chunk in self.chunks() {
            out.push_str(&format!("{chunk:05}"));
        }
        out
    }

    /// The digits as 12 groups of 5, the way they are shown to users.
    pub fn grouped(&self) -> [String; 12] {
        self.chunks().map(|chunk| format!("{chunk:05}"))
    }

    /// The payload to show as a QR code for the other device to scan: [`QR_VERSION`], the local
    /// fingerprint, the remote fingerprint ([`QR_PAYLOAD_LEN`] bytes).
    pub fn qr_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(QR_PAYLOAD_LEN);
        out.push(QR_VERSION);
        out.extend_from_slice(&self.local);
        out.extend_from_slice(&self.remote);
        out
    }

    /// Checks a payload scanned from the peer's screen. The peer's local fingerprint must be our
    /// remote one and the other way round; the comparison is constant time.
    ///
    /// `Ok(false)` means the keys differ (a different or substituted key, or our own code
    /// scanned back); an `Err` means the scan is not a safety number payload of this version.
    pub fn matches_scanned(&self, scanned: &[u8]) -> Result<bool, DecodeError> {
        let mut r = Reader::new(scanned);
        r.version("safety number QR payload", QR_VERSION)?;
        let their_local: [u8; FINGERPRINT_LEN] = r.array()?;
        let their_remote: [u8; FINGERPRINT_LEN] = r.array()?;
        r.finish()?;
        let same = their_local.ct_eq(&self.remote) & their_remote.ct_eq(&self.local);
        Ok(same.into())
    }

    /// The twelve 5-digit chunks: the smaller 30-digit half first (comparing the chunks in order
    /// is comparing the zero-padded digit strings).
    fn chunks(&self) -> [u32; 12] {
        let local = half(&self.local);
        let remote = half(&self.remote);
        let (first, second) = if local <= remote {
            (local, remote)
        } else {
            (remote, local)
        };
        let mut out = [0u32; 12];
        let (a, b) = out.split_at_mut(6);
        a.copy_from_slice(&first);
        b.copy_from_slice(&second);
        out
    }
}

impl PartialEq for SafetyNumber {
    fn eq(&self, other: &Self) -> bool {
        let same_side = self.local.ct_eq(&other.local) & self.remote.ct_eq(&other.remote);
        let other_side = self.local.ct_eq(&other.remote) & self.remote.ct_eq(&other.local);
        let equal: Choice = same_side | other_side;
        equal.into()
    }
}

impl Eq for SafetyNumber {}

impl fmt::Display for SafetyNumber {
    /// The 12 groups of 5 digits separated by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, chunk) in self.chunks().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{chunk:05}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetyNumber")
            .field("local", &crate::hex_prefix(&self.local))
            .field("remote", &crate::hex_prefix(&self.remote))
            .finish()
    }
}

/// The first [`FINGERPRINT_LEN`] bytes of one party's fingerprint (see the module docs).
fn key_fingerprint(key: &Ed25519PublicKey) -> [u8; FINGERPRINT_LEN] {
    let mut encoded = [KEY_TYPE_ED25519; 33];
    let [_, rest @ ..] = &mut encoded;
    *rest = key.to_bytes();
    let stable_id = Address::new(key).to_string();
    truncate(&iterated_fingerprint(
        ITERATIONS,
        &encoded,
        stable_id.as_bytes(),
    ))
}

/// Signal's iterated hash: `iterations` SHA-512 invocations, the first over
/// `version || key || stable_id || key`, each next one over `previous || key`.
fn iterated_fingerprint(iterations: u32, key: &[u8], stable_id: &[u8]) -> [u8; 64] {
    let version = FINGERPRINT_VERSION.to_be_bytes();
    let mut hash = sha512(&[&version, key, stable_id, key]);
    for _ in 1..iterations {
        hash = sha512(&[&hash, key]);
    }
    hash
}

fn truncate(hash: &[u8; 64]) -> [u8; FINGERPRINT_LEN] {
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(hash.split_at(FINGERPRINT_LEN).0);
    out
}

/// Six 5-digit chunks from the first 30 bytes: each 5-byte big-endian chunk mod 100000.
fn half(fingerprint: &[u8]) -> [u32; 6] {
    let mut out = [0u32; 6];
    for (slot, chunk) in out.iter_mut().zip(fingerprint.chunks_exact(5)) {
        let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        // value % 100_000 < 100_000 fits in a u32.
        *slot = (value % 100_000) as u32;
    }
    out
}

#[cfg(test)]
mod tests;
