//! Relay authentication: the challenge's relay binding and the device's signed answer
//! (SPEC.md section 10.3).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::ed25519::{Ed25519Secret, Signature};
use crate::identity::{DeviceCertificate, IdentityError, VerifiedDevice};

use super::FrameError;

/// Length of the relay's challenge nonce.
pub const AUTH_NONCE_LEN: usize = 32;
/// Longest relay id, in bytes.
pub const MAX_RELAY_ID_LEN: usize = 256;

/// Signature context for relay authentication.
pub(crate) const CONTEXT_RELAY_AUTH: &[u8] = b"chatd/v1/relay-auth\0";

/// Why a device's authentication was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The device certificate does not verify under its identity key.
    #[error("device certificate: {0}")]
    Certificate(#[from] IdentityError),
    /// The challenge signature does not verify under the certificate's device signing key.
    #[error("relay authentication signature is invalid")]
    BadSignature,
}

/// What a relay calls itself in its challenge, and what a device signs: the relay's canonical
/// URL (`wss://host[:port]/v1`, lower-case scheme and host, no default port, no trailing slash,
/// query or fragment). A daemon answers a challenge only if the relay id equals the canonical
/// form of the URL it dialled, so a signature made for one relay is useless at another.
///
/// 1 to [`MAX_RELAY_ID_LEN`] bytes; the bytes are compared exactly, never normalised.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayId(Vec<u8>);

impl RelayId {
    /// A relay id from its bytes, refusing an empty or over-long one.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FrameError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MAX_RELAY_ID_LEN {
            return Err(FrameError::OutOfRange {
                what: "relay id length",
                len: bytes.len(),
                min: 1,
                max: MAX_RELAY_ID_LEN,
            });
        }
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RelayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayId({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl Encode for RelayId {
    fn encode(&self, w: &mut Writer) {
        w.bytes16(&self.0);
    }
}

impl Decode for RelayId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = r.bytes16("relay id", MAX_RELAY_ID_LEN)?;
        if bytes.is_empty() {
            return Err(DecodeError::Invalid("empty relay id"));
        }
        Ok(Self(bytes.to_vec()))
    }
}

/// A device's answer to a relay challenge: its certificate and its device signing key's
/// signature over the challenge (the body of the `Auth` frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProof {
    /// The device's certificate, which names the identity, the device id and the signing key.
    pub certificate: DeviceCertificate,
    /// The device signing key's signature over [`auth_signed_bytes`].
    pub signature: Signature,
}

impl AuthProof {
    /// Answers the challenge (`relay_id`, `nonce`) as the device `certificate` describes.
    ///
    /// `device_signing` must be the key the certificate certifies; a proof signed with another
    /// key is refused by the relay.
    pub fn sign(
        device_signing: &Ed25519Secret,
        certificate: &DeviceCertificate,
        relay_id: &RelayId,
        nonce: &[u8; AUTH_NONCE_LEN],
    ) -> Self {
        let signature = device_signing.sign(&auth_signed_bytes(certificate, relay_id, nonce));
        Self {
            certificate: certificate.clone(),
            signature,
        }
    }

    /// [`verify_auth`] on this proof.
    pub fn verify(
        &self,
        relay_id: &RelayId,
        nonce: &[u8; AUTH_NONCE_LEN],
    ) -> Result<VerifiedDevice, AuthError> {
        verify_auth(&self.certificate, &self.signature, relay_id, nonce)
    }
}

/// The relay's check of an `Auth` frame against the challenge it sent: the certificate must
/// verify under its identity key, and `signature` must verify under the certificate's device
/// signing key over this relay's id and this connection's nonce.
pub fn verify_auth(
    certificate: &DeviceCertificate,
    signature: &Signature,
    relay_id: &RelayId,
    nonce: &[u8; AUTH_NONCE_LEN],
) -> Result<VerifiedDevice, AuthError> {
    let device = certificate.verify()?;
    device
        .signing_key()
        .verify(&auth_signed_bytes(certificate, relay_id, nonce), signature)
        .map_err(|_| AuthError::BadSignature)?;
    Ok(device)
}

/// The bytes a device signs to authenticate:
/// `"chatd/v1/relay-auth\0" || bytes16(relay_id) || nonce[32] || identity[32] || u32(device_id)`.
///
/// The identity and device id are included so that the signature also states which account
/// and device the connection is for: it cannot be reattached to a certificate from another
/// identity that certifies the same signing key.
pub fn auth_signed_bytes(
    certificate: &DeviceCertificate,
    relay_id: &RelayId,
    nonce: &[u8; AUTH_NONCE_LEN],
) -> Vec<u8> {
    let mut w = Writer::with_capacity(
        CONTEXT_RELAY_AUTH
            .len()
            .saturating_add(relay_id.as_bytes().len())
            .saturating_add(2 + AUTH_NONCE_LEN + 32 + 4),
    );
    w.raw(CONTEXT_RELAY_AUTH);
    relay_id.encode(&mut w);
    w.raw(nonce);
    certificate.identity().encode(&mut w);
    certificate.device_id().encode(&mut w);
    w.into_bytes()
}
