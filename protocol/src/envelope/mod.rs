//! Sealed envelopes and message content (SPEC.md section 8).
//!
//! Two layers travel inside what the relay sees as an opaque blob:
//! - [`Content`], the plaintext of a ratchet message (padded by the ratchet): message id,
//!   timestamp, content kind and body.
//! - The seal: the sender's identity and device and the [`SessionMessage`], encrypted to the
//!   recipient device's X25519 key ("sealed sender"). A [`Sealer`] agrees one key with a fresh
//!   ephemeral key and seals any number of payloads under it, each with its own random seed;
//!   an [`Opener`] keeps the last few agreements that authenticated. The relay learns the
//!   recipient device (from the send frame) and the blob's length, nothing else.
//!
//! The seal gives confidentiality of the sender's identity, not authentication: the sender is
//! authenticated by the session, whose associated data binds both identities, and for an
//! initial message by the certificate in the PQXDH header, which must match the sealed claim.

use std::collections::VecDeque;
use std::fmt;

use zeroize::Zeroizing;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::aead::{self, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use crate::crypto::kdf::{SHA256_LEN, hkdf_sha256, hkdf_sha256_expand};
use crate::crypto::x25519::{X25519Error, X25519PublicKey, X25519Secret};
use crate::crypto::{Rng, random_array};
use crate::identity::{DeviceId, IdentityKey, LocalDevice, PROTOCOL_VERSION, VerifiedDevice};
use crate::session::SessionMessage;

/// HKDF info prefix for a version 1 payload's key (opened, no longer sealed).
pub const SEAL_INFO: &[u8] = b"chatd/v1/sealed-sender";
/// HKDF info prefix for a version 2 batch root.
pub const SEAL_BATCH_INFO: &[u8] = b"chatd/v1/sealed-sender-batch";
/// HKDF info prefix for a version 2 payload's key, from the root and the payload's seed.
pub const SEAL_PAYLOAD_INFO: &[u8] = b"chatd/v1/sealed-sender-payload";
/// The envelope version [`seal`] writes.
pub const SEAL_VERSION: u8 = 2;
/// The first envelope version: one key agreement per payload.
pub const SEAL_VERSION_1: u8 = 1;
/// Length of a version 2 payload's random seed.
pub const SEAL_SEED_LEN: usize = 16;
/// Largest message body [`Content`] accepts.
pub const MAX_BODY_LEN: usize = 192 * 1024;
/// Longest [`Content`] encoding: version, message id, timestamp, kind, body length and the
/// largest body.
pub const MAX_CONTENT_LEN: usize = 1 + 16 + 8 + 1 + 4 + MAX_BODY_LEN;
/// Fixed overhead of a sealed payload: version, ephemeral key, seed, AEAD tag.
pub const SEAL_OVERHEAD: usize = 1 + 32 + SEAL_SEED_LEN + AEAD_TAG_LEN;
/// Fixed overhead of a version 1 payload: version, ephemeral key, AEAD tag.
pub const SEAL_V1_OVERHEAD: usize = 1 + 32 + AEAD_TAG_LEN;

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
    /// An invite refusal: the token of an invite the sender did not honour and why
    /// ([`InviteRefusal`](crate::invite_refusal::InviteRefusal), SPEC.md 8.1).
    InviteRefused,
    /// A kind this version does not know; carried so newer peers can extend the protocol.
    Other(UnknownKind),
}

/// A content kind byte this version does not define (6 to 255). Only decoding makes one, so
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
            Self::InviteRefused => 5,
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
            5 => Self::InviteRefused,
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

/// HKDF over a key agreement with a recipient device, as both versions derive from it:
/// salt `E.public || recipient device key`, info `label || recipient identity || device id`.
fn from_agreement<const N: usize>(
    label: &[u8],
    dh: &[u8; 32],
    ephemeral: &X25519PublicKey,
    recipient_identity: &IdentityKey,
    recipient_device: DeviceId,
    recipient_key: &X25519PublicKey,
) -> Zeroizing<[u8; N]> {
    hkdf_sha256(
        Some(&[ephemeral.as_bytes().as_slice(), recipient_key.as_bytes()].concat()),
        &[dh],
        &[
            label,
            recipient_identity.as_bytes(),
            &recipient_device.get().to_be_bytes(),
        ],
    )
}

/// Derives one version 2 payload's AEAD key and nonce from the batch root and its seed.
fn v2_keys(
    root: &[u8; SHA256_LEN],
    seed: &[u8; SEAL_SEED_LEN],
) -> (Zeroizing<[u8; AEAD_KEY_LEN]>, [u8; AEAD_NONCE_LEN]) {
    let okm: Zeroizing<[u8; AEAD_KEY_LEN + AEAD_NONCE_LEN]> =
        hkdf_sha256_expand(root, &[SEAL_PAYLOAD_INFO, seed]);
    split_key_nonce(&okm)
}

fn split_key_nonce(
    okm: &[u8; AEAD_KEY_LEN + AEAD_NONCE_LEN],
) -> (Zeroizing<[u8; AEAD_KEY_LEN]>, [u8; AEAD_NONCE_LEN]) {
    let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    let mut nonce = [0u8; AEAD_NONCE_LEN];
    key.copy_from_slice(&okm[..AEAD_KEY_LEN]);
    nonce.copy_from_slice(&okm[AEAD_KEY_LEN..]);
    (key, nonce)
}

/// The associated data of both versions: version byte, recipient, ephemeral key, and for
/// version 2 the payload's seed.
fn seal_aad(
    version: u8,
    recipient_identity: &IdentityKey,
    recipient_device: DeviceId,
    ephemeral: &X25519PublicKey,
    seed: Option<&[u8; SEAL_SEED_LEN]>,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(1 + 32 + 4 + 32 + SEAL_SEED_LEN);
    w.u8(version);
    recipient_identity.encode(&mut w);
    recipient_device.encode(&mut w);
    w.raw(ephemeral.as_bytes());
    if let Some(seed) = seed {
        w.raw(seed);
    }
    w.into_bytes()
}

/// One key agreement with one recipient device, from which any number of payloads to that
/// device are sealed (envelope version 2, SPEC.md 8.2). Each payload gets a fresh random seed
/// and so its own AEAD key and nonce. chatd makes one per device per sending round; the relay
/// sees those payloads arrive together on the sender's authenticated connection anyway, so
/// the shared ephemeral key tells it nothing new.
pub struct Sealer {
    recipient_identity: IdentityKey,
    recipient_device: DeviceId,
    recipient_key: X25519PublicKey,
    ephemeral: X25519PublicKey,
    root: Zeroizing<[u8; SHA256_LEN]>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("recipient_device", &self.recipient_device)
            .field("ephemeral", &crate::hex_prefix(self.ephemeral.as_bytes()))
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Makes a fresh ephemeral key and agrees a batch root with `recipient`.
    pub fn new(
        recipient: &VerifiedDevice,
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<Self, EnvelopeError> {
        let ephemeral = X25519Secret::generate(rng);
        let ephemeral_public = ephemeral.public_key();
        let dh = ephemeral.diffie_hellman(recipient.dh_key())?;
        let root = from_agreement(
            SEAL_BATCH_INFO,
            dh.as_bytes(),
            &ephemeral_public,
            &recipient.identity(),
            recipient.device_id(),
            recipient.dh_key(),
        );
        Ok(Self {
            recipient_identity: recipient.identity(),
            recipient_device: recipient.device_id(),
            recipient_key: *recipient.dh_key(),
            ephemeral: ephemeral_public,
            root,
        })
    }

    /// Whether this sealer seals to `recipient` (its identity, device and device key).
    pub fn seals_to(&self, recipient: &VerifiedDevice) -> bool {
        self.recipient_identity == recipient.identity()
            && self.recipient_device == recipient.device_id()
            && self.recipient_key == *recipient.dh_key()
    }

    /// Seals a session message from `sender`, returning the relay payload.
    pub fn seal(
        &self,
        sender: &LocalDevice,
        message: &SessionMessage,
        rng: &mut (impl Rng + ?Sized),
    ) -> Vec<u8> {
        let seed: [u8; SEAL_SEED_LEN] = random_array(rng);
        let (key, nonce) = v2_keys(&self.root, &seed);
        let mut inner = Writer::new();
        sender.cert.identity().encode(&mut inner);
        sender.cert.device_id().encode(&mut inner);
        message.encode(&mut inner);
        let aad = seal_aad(
            SEAL_VERSION,
            &self.recipient_identity,
            self.recipient_device,
            &self.ephemeral,
            Some(&seed),
        );
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + inner.as_bytes().len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(self.ephemeral.as_bytes());
        out.extend_from_slice(&seed);
        let start = out.len();
        out.extend_from_slice(inner.as_bytes());
        let tag = aead::seal_in_place(&key, &nonce, &aad, &mut out[start..]);
        out.extend_from_slice(&tag);
        out
    }
}

/// Seals one session message from `sender` to `recipient` under a key agreement of its own
/// (a [`Sealer`] used once).
pub fn seal(
    sender: &LocalDevice,
    recipient: &VerifiedDevice,
    message: &SessionMessage,
    rng: &mut (impl Rng + ?Sized),
) -> Result<Vec<u8>, EnvelopeError> {
    Ok(Sealer::new(recipient, rng)?.seal(sender, message, rng))
}

/// How many recent version 2 key agreements an [`Opener`] keeps.
pub const OPENER_CAPACITY: usize = 16;

/// Opens payloads for one local device, keeping the roots of the last [`OPENER_CAPACITY`]
/// version 2 key agreements that authenticated a payload, so that a batch costs the recipient
/// one DH too. A root enters only after its payload's tag verified, so forged ephemeral keys
/// cannot push out real ones; roots are zeroized when evicted or dropped.
#[derive(Default)]
pub struct Opener {
    /// Least recently used first.
    recent: VecDeque<CachedAgreement>,
}

/// One remembered version 2 key agreement.
struct CachedAgreement {
    /// The local device key it was made with.
    local_key: [u8; 32],
    /// The sender's ephemeral key.
    ephemeral: [u8; 32],
    /// The batch root (zeroized on drop).
    root: Zeroizing<[u8; SHA256_LEN]>,
    /// The sender identity the last payload under it named, decoded: decoding checks an
    /// Ed25519 point, which costs as much again as the rest of opening a further payload.
    sender: Option<IdentityKey>,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("cached", &self.recent.len())
            .finish()
    }
}

impl Opener {
    /// An opener with nothing cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many key agreements are cached.
    pub fn cached(&self) -> usize {
        self.recent.len()
    }

    /// Opens a relay payload of either version addressed to `local`.
    pub fn open(&mut self, local: &LocalDevice, payload: &[u8]) -> Result<Unsealed, EnvelopeError> {
        let version = *payload.first().ok_or(EnvelopeError::Truncated)?;
        match version {
            SEAL_VERSION_1 => open_v1(local, payload),
            SEAL_VERSION => self.open_v2(local, payload),
            other => Err(EnvelopeError::UnsupportedVersion(other)),
        }
    }

    fn open_v2(&mut self, local: &LocalDevice, payload: &[u8]) -> Result<Unsealed, EnvelopeError> {
        if payload.len() < SEAL_OVERHEAD {
            return Err(EnvelopeError::Truncated);
        }
        let mut r = Reader::new(&payload[1..]);
        let ephemeral = X25519PublicKey::from_bytes(r.array()?)?;
        let seed: [u8; SEAL_SEED_LEN] = r.array()?;
        let local_key = *local.cert.dh_key().as_bytes();
        let cached = self
            .recent
            .iter()
            .position(|c| c.local_key == local_key && c.ephemeral == *ephemeral.as_bytes());
        let (root, known_sender) = match cached.and_then(|i| self.recent.get(i)) {
            Some(entry) => (entry.root.clone(), entry.sender),
            None => {
                let dh = local.keys.dh().diffie_hellman(&ephemeral)?;
                let root = from_agreement(
                    SEAL_BATCH_INFO,
                    dh.as_bytes(),
                    &ephemeral,
                    &local.cert.identity(),
                    local.cert.device_id(),
                    local.cert.dh_key(),
                );
                (root, None)
            }
        };
        let (key, nonce) = v2_keys(&root, &seed);
        let aad = seal_aad(
            SEAL_VERSION,
            &local.cert.identity(),
            local.cert.device_id(),
            &ephemeral,
            Some(&seed),
        );
        let inner =
            aead::open(&key, &nonce, &aad, r.rest()).map_err(|_| EnvelopeError::Authentication)?;
        let unsealed = decode_inner(&inner, known_sender.as_ref())?;
        // Authenticated: remembered as the most recently used agreement.
        let entry = match cached.and_then(|i| self.recent.remove(i)) {
            Some(entry) => entry,
            None => {
                if self.recent.len() == OPENER_CAPACITY {
                    self.recent.pop_front();
                }
                CachedAgreement {
                    local_key,
                    ephemeral: *ephemeral.as_bytes(),
                    root,
                    sender: None,
                }
            }
        };
        self.recent.push_back(CachedAgreement {
            sender: Some(unsealed.sender_identity),
            ..entry
        });
        Ok(unsealed)
    }
}

/// Opens a relay payload of either version addressed to `local`, caching nothing.
pub fn open(local: &LocalDevice, payload: &[u8]) -> Result<Unsealed, EnvelopeError> {
    Opener::new().open(local, payload)
}

/// Opens a version 1 payload: one key agreement per payload. Nothing seals these any more,
/// but outboxes and mailboxes written before version 2 still hold them.
fn open_v1(local: &LocalDevice, payload: &[u8]) -> Result<Unsealed, EnvelopeError> {
    if payload.len() < SEAL_V1_OVERHEAD {
        return Err(EnvelopeError::Truncated);
    }
    let mut r = Reader::new(&payload[1..]);
    let ephemeral = X25519PublicKey::from_bytes(r.array()?)?;
    let dh = local.keys.dh().diffie_hellman(&ephemeral)?;
    let okm = from_agreement(
        SEAL_INFO,
        dh.as_bytes(),
        &ephemeral,
        &local.cert.identity(),
        local.cert.device_id(),
        local.cert.dh_key(),
    );
    let (key, nonce) = split_key_nonce(&okm);
    let aad = seal_aad(
        SEAL_VERSION_1,
        &local.cert.identity(),
        local.cert.device_id(),
        &ephemeral,
        None,
    );
    let inner =
        aead::open(&key, &nonce, &aad, r.rest()).map_err(|_| EnvelopeError::Authentication)?;
    decode_inner(&inner, None)
}

/// Decodes the AEAD plaintext of either version: sender identity, sender device, message.
/// `known` is an identity decoded before, used instead of decoding the same bytes again.
fn decode_inner(inner: &[u8], known: Option<&IdentityKey>) -> Result<Unsealed, EnvelopeError> {
    let mut r = Reader::new(inner);
    let sender_identity = match known {
        Some(known) if inner.get(..32) == Some(known.as_bytes().as_slice()) => {
            r.array::<32>()?;
            *known
        }
        _ => IdentityKey::decode(&mut r)?,
    };
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
