//! Prekeys and prekey bundles (SPEC.md section 3).
//!
//! A device publishes, signed by its device signing key: one current signed X25519 prekey, a
//! batch of signed ML-KEM-1024 prekeys (one-time, plus one "last resort" key that is reused when
//! the one-time ones run out), and a batch of unsigned one-time X25519 prekeys. A
//! [`PrekeyBundle`] is what the relay hands an initiator; [`PrekeyBundle::verify`] checks the
//! certificate chain and both prekey signatures and yields the [`VerifiedBundle`] that PQXDH
//! requires.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::ed25519::{Ed25519Error, Ed25519PublicKey, Ed25519Secret, Signature};
use crate::crypto::kem::{KEM_PUBLIC_LEN, KemPublicKey, KemSecret};
use crate::crypto::x25519::{X25519PublicKey, X25519Secret};
use crate::identity::{
    DeviceCertificate, IdentityError, IdentityKey, KEY_TYPE_ML_KEM_1024, PROTOCOL_VERSION,
    VerifiedDevice, decode_x25519, encode_x25519,
};

/// Signature context for signed X25519 prekeys.
const CONTEXT_SIGNED_PREKEY: &[u8] = b"chatd/v1/signed-prekey\0";
/// Signature context for ML-KEM prekeys.
const CONTEXT_KEM_PREKEY: &[u8] = b"chatd/v1/kem-prekey\0";

/// Why a bundle or prekey was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The device certificate does not verify.
    #[error("device certificate: {0}")]
    Certificate(#[from] IdentityError),
    /// The signed prekey's signature does not verify under the device key.
    #[error("signed prekey signature is invalid")]
    SignedPrekeySignature,
    /// The KEM prekey's signature does not verify under the device key.
    #[error("KEM prekey signature is invalid")]
    KemPrekeySignature,
    /// The bundle is for a different account than the one asked for.
    #[error("bundle belongs to another identity")]
    WrongIdentity,
}

/// A prekey number, chosen by the device that owns the key.
pub type PrekeyId = u32;

/// A signed X25519 prekey as published (`SPK` in PQXDH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPrekey {
    /// Its number.
    pub id: PrekeyId,
    /// The public key.
    pub key: X25519PublicKey,
    /// When it was generated, seconds since the Unix epoch (drives rotation).
    pub created_at: u64,
    /// The device signing key's signature over context || id || `EncodeEC(key)` || created_at.
    pub signature: Signature,
}

impl SignedPrekey {
    /// Checks the signature under a device signing key (the relay does this on publish).
    pub fn verify(&self, device_signing_key: &Ed25519PublicKey) -> Result<(), BundleError> {
        device_signing_key
            .verify(
                &Self::signed_bytes(self.id, &self.key, self.created_at),
                &self.signature,
            )
            .map_err(|_: Ed25519Error| BundleError::SignedPrekeySignature)
    }

    fn signed_bytes(id: PrekeyId, key: &X25519PublicKey, created_at: u64) -> Vec<u8> {
        let mut w = Writer::with_capacity(CONTEXT_SIGNED_PREKEY.len() + 45);
        w.raw(CONTEXT_SIGNED_PREKEY);
        w.u32(id);
        encode_x25519(&mut w, key);
        w.u64(created_at);
        w.into_bytes()
    }
}

impl Encode for SignedPrekey {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.id);
        encode_x25519(w, &self.key);
        w.u64(self.created_at);
        w.raw(&self.signature.0);
    }
}

impl Decode for SignedPrekey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: r.u32()?,
            key: decode_x25519(r, "signed prekey")?,
            created_at: r.u64()?,
            signature: Signature(r.array()?),
        })
    }
}

/// A signed ML-KEM-1024 prekey as published (`PQSPK`/`PQOPK` in PQXDH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KemPrekey {
    /// Its number.
    pub id: PrekeyId,
    /// True for the last-resort key, which is reused rather than consumed.
    pub last_resort: bool,
    /// The encapsulation key.
    pub key: KemPublicKey,
    /// The device signing key's signature over
    /// context || id || last_resort || `EncodeKEM(key)`.
    pub signature: Signature,
}

impl KemPrekey {
    /// Checks the signature under a device signing key (the relay does this on publish).
    pub fn verify(&self, device_signing_key: &Ed25519PublicKey) -> Result<(), BundleError> {
        device_signing_key
            .verify(
                &Self::signed_bytes(self.id, self.last_resort, &self.key),
                &self.signature,
            )
            .map_err(|_: Ed25519Error| BundleError::KemPrekeySignature)
    }

    fn signed_bytes(id: PrekeyId, last_resort: bool, key: &KemPublicKey) -> Vec<u8> {
        let mut w = Writer::with_capacity(CONTEXT_KEM_PREKEY.len() + 6 + KEM_PUBLIC_LEN);
        w.raw(CONTEXT_KEM_PREKEY);
        w.u32(id);
        w.u8(u8::from(last_resort));
        encode_kem(&mut w, key);
        w.into_bytes()
    }
}

/// Writes `EncodeKEM(key)`: the ML-KEM-1024 type byte and the 1568-byte key.
pub(crate) fn encode_kem(w: &mut Writer, key: &KemPublicKey) {
    w.u8(KEY_TYPE_ML_KEM_1024);
    w.raw(key.as_bytes());
}

impl Encode for KemPrekey {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.id);
        w.u8(u8::from(self.last_resort));
        encode_kem(w, &self.key);
        w.raw(&self.signature.0);
    }
}

impl Decode for KemPrekey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.u32()?;
        let last_resort = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::Invalid("KEM prekey last-resort flag")),
        };
        let tag = r.u8()?;
        if tag != KEY_TYPE_ML_KEM_1024 {
            return Err(DecodeError::UnknownTag {
                what: "KEM prekey",
                tag,
            });
        }
        let key = KemPublicKey::from_bytes(&r.array()?)
            .map_err(|_| DecodeError::Invalid("KEM prekey"))?;
        Ok(Self {
            id,
            last_resort,
            key,
            signature: Signature(r.array()?),
        })
    }
}

/// An unsigned one-time X25519 prekey as published (`OPK` in PQXDH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimePrekey {
    /// Its number.
    pub id: PrekeyId,
    /// The public key.
    pub key: X25519PublicKey,
}

impl Encode for OneTimePrekey {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.id);
        encode_x25519(w, &self.key);
    }
}

impl Decode for OneTimePrekey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: r.u32()?,
            key: decode_x25519(r, "one-time prekey")?,
        })
    }
}

/// Everything an initiator needs to open a session with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrekeyBundle {
    /// The device's certificate.
    pub device: DeviceCertificate,
    /// The device's current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// A one-time KEM prekey, or the last-resort one.
    pub kem_prekey: KemPrekey,
    /// A one-time X25519 prekey, absent when the device has run out.
    pub one_time_prekey: Option<OneTimePrekey>,
}

impl PrekeyBundle {
    /// Checks the certificate chain (identity -> device -> prekeys) and, if given, that the
    /// bundle belongs to `expected_identity`.
    pub fn verify(
        &self,
        expected_identity: Option<&IdentityKey>,
    ) -> Result<VerifiedBundle, BundleError> {
        let device = self.device.verify()?;
        if let Some(expected) = expected_identity
            && device.identity() != *expected
        {
            return Err(BundleError::WrongIdentity);
        }
        self.signed_prekey.verify(device.signing_key())?;
        self.kem_prekey.verify(device.signing_key())?;
        Ok(VerifiedBundle {
            device,
            signed_prekey: self.signed_prekey.clone(),
            kem_prekey: self.kem_prekey.clone(),
            one_time_prekey: self.one_time_prekey.clone(),
        })
    }
}

impl Encode for PrekeyBundle {
    fn encode(&self, w: &mut Writer) {
        w.u8(PROTOCOL_VERSION);
        self.device.encode(w);
        self.signed_prekey.encode(w);
        self.kem_prekey.encode(w);
        w.option(self.one_time_prekey.as_ref());
    }
}

impl Decode for PrekeyBundle {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("prekey bundle", PROTOCOL_VERSION)?;
        Ok(Self {
            device: DeviceCertificate::decode(r)?,
            signed_prekey: SignedPrekey::decode(r)?,
            kem_prekey: KemPrekey::decode(r)?,
            one_time_prekey: r.option("one-time prekey presence")?,
        })
    }
}

/// A bundle whose signatures all verified. Only [`PrekeyBundle::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub(crate) device: VerifiedDevice,
    pub(crate) signed_prekey: SignedPrekey,
    pub(crate) kem_prekey: KemPrekey,
    pub(crate) one_time_prekey: Option<OneTimePrekey>,
}

impl VerifiedBundle {
    /// The device the bundle belongs to.
    pub fn device(&self) -> &VerifiedDevice {
        &self.device
    }
}

/// The secret half of a signed prekey, kept by its device.
#[derive(Clone)]
pub struct SignedPrekeySecret {
    /// Its number.
    pub id: PrekeyId,
    /// The key pair.
    pub key: X25519Secret,
    /// When it was generated.
    pub created_at: u64,
}

impl SignedPrekeySecret {
    /// Generates a signed prekey and its public, signed form.
    pub fn generate(
        id: PrekeyId,
        created_at: u64,
        signer: &Ed25519Secret,
        rng: &mut (impl Rng + ?Sized),
    ) -> (Self, SignedPrekey) {
        let key = X25519Secret::generate(rng);
        let public = key.public_key();
        let signature = signer.sign(&SignedPrekey::signed_bytes(id, &public, created_at));
        (
            Self {
                id,
                key,
                created_at,
            },
            SignedPrekey {
                id,
                key: public,
                created_at,
                signature,
            },
        )
    }
}

impl fmt::Debug for SignedPrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPrekeySecret")
            .field("id", &self.id)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The secret half of a KEM prekey.
#[derive(Debug, Clone)]
pub struct KemPrekeySecret {
    /// Its number.
    pub id: PrekeyId,
    /// True for the last-resort key.
    pub last_resort: bool,
    /// The decapsulation key.
    pub key: KemSecret,
}

impl KemPrekeySecret {
    /// Generates a KEM prekey and its public, signed form.
    pub fn generate(
        id: PrekeyId,
        last_resort: bool,
        signer: &Ed25519Secret,
        rng: &mut (impl Rng + ?Sized),
    ) -> (Self, KemPrekey) {
        let key = KemSecret::generate(rng);
        let public = key.public_key().clone();
        let signature = signer.sign(&KemPrekey::signed_bytes(id, last_resort, &public));
        (
            Self {
                id,
                last_resort,
                key,
            },
            KemPrekey {
                id,
                last_resort,
                key: public,
                signature,
            },
        )
    }
}

/// The secret half of a one-time prekey.
#[derive(Debug, Clone)]
pub struct OneTimePrekeySecret {
    /// Its number.
    pub id: PrekeyId,
    /// The key pair.
    pub key: X25519Secret,
}

impl OneTimePrekeySecret {
    /// Generates a one-time prekey and its public form.
    pub fn generate(id: PrekeyId, rng: &mut (impl Rng + ?Sized)) -> (Self, OneTimePrekey) {
        let key = X25519Secret::generate(rng);
        let public = OneTimePrekey {
            id,
            key: key.public_key(),
        };
        (Self { id, key }, public)
    }
}

#[cfg(test)]
mod tests;
