//! Sealed envelopes and message content (SPEC.md section 8).
//!
//! Two layers travel inside what the relay sees as an opaque blob:
//! - [`Content`], the plaintext of a ratchet message (padded by the ratchet): message id,
//!   timestamp, content kind and body.
//! - The seal: the sender's identity and device and the [`SessionMessage`], encrypted to the
//!   recipient device's X25519 key with a fresh ephemeral key ("sealed sender"). The relay
//!   learns the recipient device (from the send frame) and the blob's length, nothing else.
//!
//! The seal gives confidentiality of the sender's identity, not authentication: the sender is
//! authenticated by the session, whose associated data binds both identities, and for an
//! initial message by the certificate in the PQXDH header, which must match the sealed claim.

use std::fmt;

use zeroize::Zeroizing;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::aead::{self, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use crate::crypto::kdf::hkdf_sha256;
use crate::crypto::x25519::{X25519Error, X25519PublicKey, X25519Secret};
use crate::identity::{DeviceId, IdentityKey, LocalDevice, PROTOCOL_VERSION, VerifiedDevice};
use crate::session::SessionMessage;

/// HKDF info prefix for the seal key.
pub const SEAL_INFO: &[u8] = b"chatd/v1/sealed-sender";
/// Largest message body [`Content`] accepts.
pub const MAX_BODY_LEN: usize = 192 * 1024;
/// Fixed overhead of a sealed blob: version, ephemeral key, AEAD tag.
pub const SEAL_OVERHEAD: usize = 1 + 32 + AEAD_TAG_LEN;

/// Why an envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The blob is shorter than the fixed overhead.
    #[error("sealed envelope is truncated")]
    Truncated,
    /// Unknown envelope version.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// The ephemeral key is of small order or the DH was not contributory.
    #[error(transparent)]
    Dh(#[from] X25519Error),
    /// The seal did not authenticate: not for this device, or modified in transit.
    #[error("sealed envelope authentication failed")]
    Authentication,
    /// The sealed contents do not decode.
    #[error("sealed contents are malformed: {0}")]
    Decode(#[from] DecodeError),
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentKind {
    /// A UTF-8 text message.
    Text,
    /// A delivery receipt: the body lists the 16-byte ids of delivered messages.
    DeliveryReceipt,
    /// A read receipt: the body lists the 16-byte ids of read messages.
    ReadReceipt,
    /// An introduction: the sender's name, a handle and an invite token (SPEC.md 8.1).
    Introduction,
    /// A kind this version does not know; carried so newer peers can extend the protocol.
    Other(UnknownKind),
}

/// A content kind byte this version does not define (5 to 255). Only decoding makes one, so
/// `ContentKind::Other` can never hold a byte that means a known kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownKind(u8);

impl UnknownKind {
    /// The wire byte.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl ContentKind {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Text => 1,
            Self::DeliveryReceipt => 2,
            Self::ReadReceipt => 3,
            Self::Introduction => 4,
            Self::Other(UnknownKind(b)) => b,
        }
    }

    /// Parses the wire byte; 0 is reserved.
    pub fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            0 => return Err(DecodeError::Invalid("content kind 0")),
            1 => Self::Text,
            2 => Self::DeliveryReceipt,
            3 => Self::ReadReceipt,
            4 => Self::Introduction,
            other => Self::Other(UnknownKind(other)),
        })
    }
}

/// The plaintext of a ratchet message.
#[derive(Clone, PartialEq, Eq)]
pub struct Content {
    /// Sender-chosen random id; receivers dedup on it and receipts refer to it.
    pub message_id: [u8; 16],
    /// Sender's clock when the message was written, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What the body is.
    pub kind: ContentKind,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Content")
            .field("message_id", &crate::hex_prefix(&self.message_id))
            .field("timestamp_ms", &self.timestamp_ms)
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Encode for Content {
    fn encode(&self, w: &mut Writer) {
        w.u8(PROTOCOL_VERSION);
        w.raw(&self.message_id);
        w.u64(self.timestamp_ms);
        w.u8(self.kind.to_byte());
        w.bytes32(&self.body);
    }
}

impl Decode for Content {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("content", PROTOCOL_VERSION)?;
        Ok(Self {
            message_id: r.array()?,
            timestamp_ms: r.u64()?,
            kind: ContentKind::from_byte(r.u8()?)?,
            body: r.bytes32("message body", MAX_BODY_LEN)?.to_vec(),
        })
    }
}

/// A sealed envelope, opened: the claimed sender and the session message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    /// The sender's account, as claimed inside the seal (authenticated by the session).
    pub sender_identity: IdentityKey,
    /// The sender's device, as claimed inside the seal.
    pub sender_device: DeviceId,
    /// The message for the sender's session record.
    pub message: SessionMessage,
}

fn seal_keys(
    dh: &[u8; 32],
    ephemeral: &X25519PublicKey,
    recipient_identity: &IdentityKey,
    recipient_device: DeviceId,
    recipient_key: &X25519PublicKey,
) -> (Zeroizing<[u8; AEAD_KEY_LEN]>, [u8; AEAD_NONCE_LEN]) {
    let okm: Zeroizing<[u8; AEAD_KEY_LEN + AEAD_NONCE_LEN]> = hkdf_sha256(
        Some(&[ephemeral.as_bytes().as_slice(), recipient_key.as_bytes()].concat()),
        &[dh],
        &[
            SEAL_INFO,
            recipient_identity.as_bytes(),
            &recipient_device.get().to_be_bytes(),
        ],
    );
    let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    let mut nonce = [0u8; AEAD_NONCE_LEN];
    key.copy_from_slice(&okm[..AEAD_KEY_LEN]);
    nonce.copy_from_slice(&okm[AEAD_KEY_LEN..]);
    (key, nonce)
}

fn seal_aad(
    recipient_identity: &IdentityKey,
    recipient_device: DeviceId,
    ephemeral: &X25519PublicKey,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(1 + 32 + 4 + 32);
    w.u8(PROTOCOL_VERSION);
    recipient_identity.encode(&mut w);
    recipient_device.encode(&mut w);
    w.raw(ephemeral.as_bytes());
    w.into_bytes()
}

/// Seals a session message from `sender` to `recipient`, returning the relay payload.
pub fn seal(
    sender: &LocalDevice,
    recipient: &VerifiedDevice,
    message: &SessionMessage,
    rng: &mut (impl Rng + ?Sized),
) -> Result<Vec<u8>, EnvelopeError> {
    let ephemeral = X25519Secret::generate(rng);
    let ephemeral_public = ephemeral.public_key();
    let dh = ephemeral.diffie_hellman(recipient.dh_key())?;
    let (key, nonce) = seal_keys(
        dh.as_bytes(),
        &ephemeral_public,
        &recipient.identity(),
        recipient.device_id(),
        recipient.dh_key(),
    );
    let mut inner = Writer::new();
    sender.cert.identity().encode(&mut inner);
    sender.cert.device_id().encode(&mut inner);
    message.encode(&mut inner);
    let aad = seal_aad(
        &recipient.identity(),
        recipient.device_id(),
        &ephemeral_public,
    );
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + inner.as_bytes().len());
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(ephemeral_public.as_bytes());
    out.extend_from_slice(&aead::seal(&key, &nonce, &aad, inner.as_bytes()));
    Ok(out)
}

/// Opens a relay payload addressed to `local`.
pub fn open(local: &LocalDevice, payload: &[u8]) -> Result<Unsealed, EnvelopeError> {
    if payload.len() < SEAL_OVERHEAD {
        return Err(EnvelopeError::Truncated);
    }
    let mut r = Reader::new(payload);
    let version = r.u8()?;
    if version != PROTOCOL_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let ephemeral = X25519PublicKey::from_bytes(r.array()?)?;
    let dh = local.keys.dh().diffie_hellman(&ephemeral)?;
    let (key, nonce) = seal_keys(
        dh.as_bytes(),
        &ephemeral,
        &local.cert.identity(),
        local.cert.device_id(),
        local.cert.dh_key(),
    );
    let aad = seal_aad(&local.cert.identity(), local.cert.device_id(), &ephemeral);
    let inner =
        aead::open(&key, &nonce, &aad, r.rest()).map_err(|_| EnvelopeError::Authentication)?;
    let mut r = Reader::new(&inner);
    let sender_identity = IdentityKey::decode(&mut r)?;
    let sender_device = DeviceId::decode(&mut r)?;
    let message = SessionMessage::decode(&mut r)?;
    r.finish()?;
    Ok(Unsealed {
        sender_identity,
        sender_device,
        message,
    })
}

#[cfg(test)]
mod tests;
