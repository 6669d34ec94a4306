//! Account identity keys, device keys and the certificates that bind them (SPEC.md section 2).
//!
//! An account is an Ed25519 identity key. Each device has its own Ed25519 signing key (relay
//! authentication, prekey signatures) and its own X25519 key for PQXDH, both certified by the
//! identity key in a [`DeviceCertificate`]. Checking a certificate yields a [`VerifiedDevice`],
//! the proof value that session setup requires, so an unchecked certificate cannot reach PQXDH.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::ed25519::{Ed25519Error, Ed25519PublicKey, Ed25519Secret, Signature};
use crate::crypto::x25519::{X25519PublicKey, X25519Secret};

/// Protocol version carried in certificates, bundles and session setup.
pub const PROTOCOL_VERSION: u8 = 1;

/// Type byte that prefixes an X25519 key wherever one is signed or hashed (`EncodeEC`).
pub const KEY_TYPE_X25519: u8 = 0x05;
/// Type byte that prefixes an ML-KEM-1024 key wherever one is signed or hashed (`EncodeKEM`).
pub const KEY_TYPE_ML_KEM_1024: u8 = 0x08;
/// Type byte that prefixes an Ed25519 key wherever one is hashed.
pub const KEY_TYPE_ED25519: u8 = 0xed;

/// Signature context for device certificates (SPEC.md section 2.2).
pub(crate) const CONTEXT_DEVICE_CERT: &[u8] = b"chatd/v1/device-certificate\0";

/// Why a key, certificate or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A key or signature check failed.
    #[error(transparent)]
    Ed25519(#[from] Ed25519Error),
    /// The certificate is for another protocol version.
    #[error("unsupported certificate version {0}")]
    UnsupportedVersion(u8),
    /// Device id 0 is reserved.
    #[error("device id 0 is reserved")]
    ReservedDeviceId,
}

/// An account's long-term public identity key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKey(Ed25519PublicKey);

impl IdentityKey {
    /// Parses an identity key, refusing invalid, non-canonical and weak keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        Ok(Self(Ed25519PublicKey::from_bytes(bytes)?))
    }

    /// The underlying Ed25519 key.
    pub fn ed25519(&self) -> &Ed25519PublicKey {
        &self.0
    }

    /// The 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", crate::hex_prefix(self.as_bytes()))
    }
}

impl Encode for IdentityKey {
    fn encode(&self, w: &mut Writer) {
        w.raw(self.as_bytes());
    }
}

impl Decode for IdentityKey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_bytes(&r.array()?).map_err(|_| DecodeError::Invalid("identity key"))
    }
}

/// An account's identity key pair. Whoever holds it can certify devices for the account.
#[derive(Clone)]
pub struct IdentityKeyPair {
    secret: Ed25519Secret,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// Generates a new account identity.
    pub fn generate(rng: &mut (impl Rng + ?Sized)) -> Self {
        Self::from_secret(Ed25519Secret::generate(rng))
    }

    /// Loads an identity from its 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_secret(Ed25519Secret::from_seed(seed))
    }

    fn from_secret(secret: Ed25519Secret) -> Self {
        let public = IdentityKey(secret.public_key());
        Self { secret, public }
    }

    /// The seed, for encrypted storage only.
    pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.secret.to_seed()
    }

    /// The public identity key.
    pub fn public_key(&self) -> IdentityKey {
        self.public
    }

    /// Signs `message` with the identity key. Callers must prefix a context string of their own
    /// (`chatd/v1/...\0`) so that no signature can be replayed in another role.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.secret.sign(message)
    }

    /// Certifies a device's keys for this account.
    pub fn certify(&self, device: &DeviceKeyPair, created_at: u64) -> DeviceCertificate {
        let mut cert = DeviceCertificate {
            identity: self.public,
            device_id: device.device_id,
            signing_key: device.signing.public_key(),
            dh_key: device.dh.public_key(),
            created_at,
            signature: Signature([0; 64]),
        };
        cert.signature = self.secret.sign(&cert.signed_bytes());
        cert
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A device number within an account, unique per account. 0 is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(u32);

impl DeviceId {
    /// A device id; 0 is reserved and refused.
    pub fn new(id: u32) -> Result<Self, IdentityError> {
        if id == 0 {
            Err(IdentityError::ReservedDeviceId)
        } else {
            Ok(Self(id))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Encode for DeviceId {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.0);
    }
}

impl Decode for DeviceId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::new(r.u32()?).map_err(|_| DecodeError::Invalid("device id"))
    }
}

/// A device's own secret keys: Ed25519 for signing, X25519 for PQXDH.
#[derive(Clone)]
pub struct DeviceKeyPair {
    device_id: DeviceId,
    signing: Ed25519Secret,
    dh: X25519Secret,
}

impl DeviceKeyPair {
    /// Generates keys for a new device.
    pub fn generate(device_id: DeviceId, rng: &mut (impl Rng + ?Sized)) -> Self {
        Self {
            device_id,
            signing: Ed25519Secret::generate(rng),
            dh: X25519Secret::generate(rng),
        }
    }

    /// Loads device keys from their seeds.
    pub fn from_seeds(device_id: DeviceId, signing_seed: &[u8; 32], dh_secret: &[u8; 32]) -> Self {
        Self {
            device_id,
            signing: Ed25519Secret::from_seed(signing_seed),
            dh: X25519Secret::from_bytes(dh_secret),
        }
    }

    /// The device number.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The signing key (relay authentication, prekey signatures).
    pub fn signing(&self) -> &Ed25519Secret {
        &self.signing
    }

    /// The X25519 key used as `IK` in PQXDH.
    pub fn dh(&self) -> &X25519Secret {
        &self.dh
    }
}

impl fmt::Debug for DeviceKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeyPair")
            .field("device_id", &self.device_id)
            .field("signing", &self.signing)
            .field("dh", &self.dh)
            .finish()
    }
}

/// An identity key's signature over a device's keys (SPEC.md section 2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    identity: IdentityKey,
    device_id: DeviceId,
    signing_key: Ed25519PublicKey,
    dh_key: X25519PublicKey,
    created_at: u64,
    signature: Signature,
}

impl DeviceCertificate {
    /// The bytes the identity key signs: context || body (the encoding without the signature).
    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(CONTEXT_DEVICE_CERT.len() + 120);
        w.raw(CONTEXT_DEVICE_CERT);
        self.encode_body(&mut w);
        w.into_bytes()
    }

    fn encode_body(&self, w: &mut Writer) {
        w.u8(PROTOCOL_VERSION);
        self.identity.encode(w);
        self.device_id.encode(w);
        w.raw(self.signing_key.as_bytes());
        w.u8(KEY_TYPE_X25519);
        w.raw(self.dh_key.as_bytes());
        w.u64(self.created_at);
    }

    /// Checks the identity key's signature and returns the proof that later steps require.
    pub fn verify(&self) -> Result<VerifiedDevice, IdentityError> {
        self.identity
            .ed25519()
            .verify(&self.signed_bytes(), &self.signature)?;
        Ok(VerifiedDevice { cert: self.clone() })
    }

    /// The account this device belongs to (unverified until [`Self::verify`]).
    pub fn identity(&self) -> IdentityKey {
        self.identity
    }

    /// The device number (unverified until [`Self::verify`]).
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }
}

impl Encode for DeviceCertificate {
    fn encode(&self, w: &mut Writer) {
        self.encode_body(w);
        w.raw(&self.signature.0);
    }
}

impl Decode for DeviceCertificate {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("device certificate", PROTOCOL_VERSION)?;
        let identity = IdentityKey::decode(r)?;
        let device_id = DeviceId::decode(r)?;
        let signing_key = Ed25519PublicKey::from_bytes(&r.array()?)
            .map_err(|_| DecodeError::Invalid("device signing key"))?;
        let dh_key = decode_x25519(r, "device DH key")?;
        let created_at = r.u64()?;
        let signature = Signature(r.array()?);
        Ok(Self {
            identity,
            device_id,
            signing_key,
            dh_key,
            created_at,
            signature,
        })
    }
}

/// Reads `EncodeEC(key)`: the X25519 type byte and 32 bytes, refusing small-order keys and
/// non-canonical encodings.
///
/// X25519 ignores the top bit and reduces `u` modulo p, so several byte strings act as the same
/// key. Where key bytes identify something (a PQXDH base key names a session and keys the
/// replay guard, a ratchet key selects a chain) a second encoding of the same key would slip
/// past those checks, so every key inside our structures must be canonical, which every X25519
/// implementation produces (SPEC.md section 1).
pub(crate) fn decode_x25519(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<X25519PublicKey, DecodeError> {
    let tag = r.u8()?;
    if tag != KEY_TYPE_X25519 {
        return Err(DecodeError::UnknownTag { what, tag });
    }
    let key = X25519PublicKey::from_bytes(r.array()?).map_err(|_| DecodeError::Invalid(what))?;
    if !key.is_canonical() {
        return Err(DecodeError::Invalid(what));
    }
    Ok(key)
}

/// Writes `EncodeEC(key)`.
pub(crate) fn encode_x25519(w: &mut Writer, key: &X25519PublicKey) {
    w.u8(KEY_TYPE_X25519);
    w.raw(key.as_bytes());
}

/// A device certificate whose signature has been checked. Only [`DeviceCertificate::verify`]
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    cert: DeviceCertificate,
}

impl VerifiedDevice {
    /// The account identity key.
    pub fn identity(&self) -> IdentityKey {
        self.cert.identity
    }

    /// The device number.
    pub fn device_id(&self) -> DeviceId {
        self.cert.device_id
    }

    /// The device's signing key.
    pub fn signing_key(&self) -> &Ed25519PublicKey {
        &self.cert.signing_key
    }

    /// The device's X25519 key (`IK` in PQXDH).
    pub fn dh_key(&self) -> &X25519PublicKey {
        &self.cert.dh_key
    }

    /// When the identity certified the device (seconds since the Unix epoch, as claimed).
    pub fn created_at(&self) -> u64 {
        self.cert.created_at
    }

    /// The certificate itself, for forwarding.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.cert
    }
}

/// A device's complete secret state: its keys and its own certificate.
#[derive(Debug, Clone)]
pub struct LocalDevice {
    /// The device's secret keys.
    pub keys: DeviceKeyPair,
    /// The device's own certificate, already verified.
    pub cert: VerifiedDevice,
}

impl LocalDevice {
    /// Creates and certifies a device in one step.
    pub fn new(identity: &IdentityKeyPair, keys: DeviceKeyPair, created_at: u64) -> Self {
        let cert = VerifiedDevice {
            cert: identity.certify(&keys, created_at),
        };
        Self { keys, cert }
    }
}

#[cfg(test)]
mod tests;
