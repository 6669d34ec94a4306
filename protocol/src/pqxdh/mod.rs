//! PQXDH session setup (Signal's PQXDH, revision 2; SPEC.md section 4).
//!
//! The initiator combines four X25519 results (three without a one-time prekey) and one
//! ML-KEM-1024 shared secret into the session key:
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   [DH4 = DH(EK_A, OPK_B)]
//! (CT, SS) = ML-KEM-1024.Encaps(PQPK_B)
//! SK = HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 || [DH4] || SS, info = INFO)
//! ```
//!
//! Here `IK` is a device's certified X25519 key. Every DH output is checked for contributory
//! behaviour; X25519 and ML-KEM keys are signed and hashed with disjoint type bytes (`0x05`,
//! `0x08`). The session associated data binds both account identities, both device ids and both
//! device keys. The responder refuses a replayed initial message that used no one-time prekey
//! (the [`ReplayGuard`]); one-time prekeys are single use by construction.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use zeroize::Zeroizing;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::kdf::hkdf_sha256;
use crate::crypto::kem::KEM_CIPHERTEXT_LEN;
use crate::crypto::x25519::{X25519Error, X25519PublicKey, X25519Secret};
use crate::identity::{
    DeviceCertificate, IdentityError, LocalDevice, PROTOCOL_VERSION, VerifiedDevice, decode_x25519,
    encode_x25519,
};
use crate::prekeys::{
    KemPrekeySecret, OneTimePrekeySecret, PrekeyId, SignedPrekeySecret, VerifiedBundle,
};
use crate::ratchet::RatchetState;

/// The HKDF info string for the PQXDH session key.
pub const PQXDH_INFO: &[u8] = b"chatd/v1/PQXDH_CURVE25519_SHA-256_ML-KEM-1024";

/// How many (signed prekey, base key) pairs a [`ReplayGuard`] remembers.
pub const MAX_REPLAY_ENTRIES: usize = 10_000;

/// Why a session could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The initiator's device certificate does not verify.
    #[error("initiator certificate: {0}")]
    Certificate(#[from] IdentityError),
    /// A DH input was not contributory.
    #[error(transparent)]
    Dh(#[from] X25519Error),
    /// The secrets handed in are not the ones the initial message names.
    #[error("the prekeys supplied do not match the ones the initial message used")]
    PrekeyMismatch,
    /// The initial message used no one-time prekey and was seen before.
    #[error("replayed initial message")]
    Replay,
    /// The replay guard is full; the signed prekey must be rotated before more sessions that
    /// use no one-time prekey can be accepted.
    #[error("replay guard full: rotate the signed prekey")]
    ReplayGuardFull,
    /// A device tried to open a session with itself.
    #[error("initial message claims to come from this very device")]
    SelfSession,
}

/// What the initiator sends ahead of its first ratchet messages (until the responder answers).
#[derive(Clone, PartialEq, Eq)]
pub struct InitialHeader {
    /// The initiator's device certificate.
    pub initiator: DeviceCertificate,
    /// `EK_A`, the initiator's ephemeral key; also the session's identifier. The decoder
    /// accepts only its canonical encoding (see [`X25519PublicKey::is_canonical`]).
    pub base_key: X25519PublicKey,
    /// The responder's signed prekey that was used.
    pub signed_prekey_id: PrekeyId,
    /// The responder's one-time prekey that was used, if any.
    pub one_time_prekey_id: Option<PrekeyId>,
    /// The responder's KEM prekey that was used.
    pub kem_prekey_id: PrekeyId,
    /// The ML-KEM-1024 ciphertext.
    pub kem_ciphertext: Box<[u8; KEM_CIPHERTEXT_LEN]>,
}

impl fmt::Debug for InitialHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitialHeader")
            .field("initiator", &self.initiator)
            .field("base_key", &self.base_key)
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("one_time_prekey_id", &self.one_time_prekey_id)
            .field("kem_prekey_id", &self.kem_prekey_id)
            .finish_non_exhaustive()
    }
}

impl Encode for InitialHeader {
    fn encode(&self, w: &mut Writer) {
        w.u8(PROTOCOL_VERSION);
        self.initiator.encode(w);
        encode_x25519(w, &self.base_key);
        w.u32(self.signed_prekey_id);
        match self.one_time_prekey_id {
            None => w.u8(0),
            Some(id) => {
                w.u8(1);
                w.u32(id);
            }
        }
        w.u32(self.kem_prekey_id);
        w.raw(self.kem_ciphertext.as_slice());
    }
}

impl Decode for InitialHeader {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("initial header", PROTOCOL_VERSION)?;
        let initiator = DeviceCertificate::decode(r)?;
        // Canonical only (checked by `decode_x25519`): the base key names the session and keys
        // the replay guard, and a second encoding of the same key would slip past both.
        let base_key = decode_x25519(r, "base key")?;
        let signed_prekey_id = r.u32()?;
        let one_time_prekey_id = match r.u8()? {
            0 => None,
            1 => Some(r.u32()?),
            _ => return Err(DecodeError::Invalid("one-time prekey presence")),
        };
        let kem_prekey_id = r.u32()?;
        let kem_ciphertext = Box::new(r.array::<KEM_CIPHERTEXT_LEN>()?);
        Ok(Self {
            initiator,
            base_key,
            signed_prekey_id,
            one_time_prekey_id,
            kem_prekey_id,
            kem_ciphertext,
        })
    }
}

/// The session associated data (SPEC.md section 4.4): version, then the initiator's and the
/// responder's identity key, device id and `EncodeEC(device key)`.
pub fn session_associated_data(
    initiator: &VerifiedDevice,
    responder: &VerifiedDevice,
) -> Box<[u8]> {
    let mut w = Writer::with_capacity(1 + 2 * (32 + 4 + 33));
    w.u8(PROTOCOL_VERSION);
    for device in [initiator, responder] {
        device.identity().encode(&mut w);
        device.device_id().encode(&mut w);
        encode_x25519(&mut w, device.dh_key());
    }
    w.into_bytes().into_boxed_slice()
}

/// The initiator's result: a ratchet ready to send, and the header to send with it.
#[derive(Debug)]
pub struct Initiated {
    /// The new session's ratchet, with its first sending chain.
    pub state: RatchetState,
    /// The header the first messages carry.
    pub header: InitialHeader,
}

/// Runs the initiator side of PQXDH against a verified bundle.
pub fn initiate(
    local: &LocalDevice,
    bundle: &VerifiedBundle,
    rng: &mut (impl Rng + ?Sized),
) -> Result<Initiated, HandshakeError> {
    let ephemeral = X25519Secret::generate(rng);
    let spk = &bundle.signed_prekey.key;
    let dh1 = local.keys.dh().diffie_hellman(spk)?;
    let dh2 = ephemeral.diffie_hellman(bundle.device.dh_key())?;
    let dh3 = ephemeral.diffie_hellman(spk)?;
    let dh4 = match &bundle.one_time_prekey {
        Some(otk) => Some(ephemeral.diffie_hellman(&otk.key)?),
        None => None,
    };
    let (kem_ciphertext, kem_secret) = bundle.kem_prekey.key.encapsulate(rng);
    let shared = session_key(
        [dh1.as_bytes(), dh2.as_bytes(), dh3.as_bytes()],
        dh4.as_ref().map(|dh| dh.as_bytes()),
        &kem_secret,
    );
    let ad = session_associated_data(&local.cert, &bundle.device);
    let state = RatchetState::initiator(ad, *shared, *spk, rng)?;
    Ok(Initiated {
        state,
        header: InitialHeader {
            initiator: local.cert.certificate().clone(),
            base_key: ephemeral.public_key(),
            signed_prekey_id: bundle.signed_prekey.id,
            one_time_prekey_id: bundle.one_time_prekey.as_ref().map(|otk| otk.id),
            kem_prekey_id: bundle.kem_prekey.id,
            kem_ciphertext,
        },
    })
}

/// The responder's secrets named by an initial message, looked up by the caller.
#[derive(Debug, Clone, Copy)]
pub struct ResponderKeys<'a> {
    /// The signed prekey named by `signed_prekey_id`.
    pub signed_prekey: &'a SignedPrekeySecret,
    /// The one-time prekey named by `one_time_prekey_id`, if the message names one.
    pub one_time_prekey: Option<&'a OneTimePrekeySecret>,
    /// The KEM prekey named by `kem_prekey_id`.
    pub kem_prekey: &'a KemPrekeySecret,
}

/// The responder's result: a ratchet ready to receive, and the initiator's verified device.
#[derive(Debug)]
pub struct Responded {
    /// The new session's ratchet.
    pub state: RatchetState,
    /// The initiator, whose certificate verified.
    pub peer: VerifiedDevice,
}

/// Runs the responder side of PQXDH. The caller must record the message in the replay guard
/// (and delete a used one-time or KEM prekey) only once the first ratchet message decrypted.
pub fn respond(
    local: &LocalDevice,
    header: &InitialHeader,
    keys: ResponderKeys<'_>,
    replay: &ReplayGuard,
) -> Result<Responded, HandshakeError> {
    if keys.signed_prekey.id != header.signed_prekey_id
        || keys.kem_prekey.id != header.kem_prekey_id
        || keys.one_time_prekey.map(|k| k.id) != header.one_time_prekey_id
    {
        return Err(HandshakeError::PrekeyMismatch);
    }
    if header.one_time_prekey_id.is_none()
        && replay.contains(header.signed_prekey_id, &header.base_key)
    {
        return Err(HandshakeError::Replay);
    }
    let peer = header.initiator.verify()?;
    if peer.identity() == local.cert.identity() && peer.device_id() == local.cert.device_id() {
        return Err(HandshakeError::SelfSession);
    }
    let spk = &keys.signed_prekey.key;
    let dh1 = spk.diffie_hellman(peer.dh_key())?;
    let dh2 = local.keys.dh().diffie_hellman(&header.base_key)?;
    let dh3 = spk.diffie_hellman(&header.base_key)?;
    let dh4 = match keys.one_time_prekey {
        Some(otk) => Some(otk.key.diffie_hellman(&header.base_key)?),
        None => None,
    };
    let kem_secret = keys.kem_prekey.key.decapsulate(&header.kem_ciphertext);
    let shared = session_key(
        [dh1.as_bytes(), dh2.as_bytes(), dh3.as_bytes()],
        dh4.as_ref().map(|dh| dh.as_bytes()),
        &kem_secret,
    );
    let ad = session_associated_data(&peer, &local.cert);
    Ok(Responded {
        state: RatchetState::responder(ad, *shared, spk.clone()),
        peer,
    })
}

fn session_key(
    dh: [&[u8; 32]; 3],
    dh4: Option<&[u8; 32]>,
    kem_secret: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let [dh1, dh2, dh3] = dh;
    let mut ikm: Vec<&[u8]> = vec![&[0xff; 32], dh1, dh2, dh3];
    if let Some(dh4) = dh4 {
        ikm.push(dh4);
    }
    ikm.push(kem_secret);
    hkdf_sha256(Some(&[0u8; 32]), &ikm, &[PQXDH_INFO])
}

/// Remembers the base keys of accepted initial messages that used no one-time prekey, per
/// signed prekey, so a replay of such a message is refused (SPEC.md section 4.6).
///
/// Bounded by [`MAX_REPLAY_ENTRIES`]; when full it refuses new entries (fails closed) rather
/// than forgetting old ones. Rotating the signed prekey and calling
/// [`ReplayGuard::forget_signed_prekey`] for the retired one frees its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    seen: BTreeMap<PrekeyId, HashSet<[u8; 32]>>,
    len: usize,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this (signed prekey, base key) pair was recorded.
    pub fn contains(&self, signed_prekey_id: PrekeyId, base_key: &X25519PublicKey) -> bool {
        self.seen
            .get(&signed_prekey_id)
            .is_some_and(|set| set.contains(base_key.as_bytes()))
    }

    /// Records a pair; refuses when the guard is full.
    pub fn record(
        &mut self,
        signed_prekey_id: PrekeyId,
        base_key: &X25519PublicKey,
    ) -> Result<(), HandshakeError> {
        if self.contains(signed_prekey_id, base_key) {
            return Ok(());
        }
        if self.len >= MAX_REPLAY_ENTRIES {
            return Err(HandshakeError::ReplayGuardFull);
        }
        self.seen
            .entry(signed_prekey_id)
            .or_default()
            .insert(base_key.to_bytes());
        self.len += 1;
        Ok(())
    }

    /// Whether the guard is at capacity (chatd rotates its signed prekey before this).
    pub fn is_full(&self) -> bool {
        self.len >= MAX_REPLAY_ENTRIES
    }

    /// How many pairs are recorded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every entry for a signed prekey that was retired (and deleted).
    pub fn forget_signed_prekey(&mut self, signed_prekey_id: PrekeyId) {
        if let Some(set) = self.seen.remove(&signed_prekey_id) {
            self.len -= set.len();
        }
    }
}

impl Encode for ReplayGuard {
    fn encode(&self, w: &mut Writer) {
        w.u8(PROTOCOL_VERSION);
        w.u32(u32::try_from(self.len).unwrap_or(u32::MAX));
        for (id, set) in &self.seen {
            let mut keys: Vec<_> = set.iter().collect();
            keys.sort();
            for key in keys {
                w.u32(*id);
                w.raw(key);
            }
        }
    }
}

impl Decode for ReplayGuard {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("replay guard", PROTOCOL_VERSION)?;
        let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if count > MAX_REPLAY_ENTRIES {
            return Err(DecodeError::TooLong {
                what: "replay guard entries",
                len: count,
                max: MAX_REPLAY_ENTRIES,
            });
        }
        let mut guard = Self::new();
        for _ in 0..count {
            let id = r.u32()?;
            let key: [u8; 32] = r.array()?;
            if !guard.seen.entry(id).or_default().insert(key) {
                return Err(DecodeError::Invalid("duplicate replay guard entry"));
            }
            guard.len += 1;
        }
        Ok(guard)
    }
}

#[cfg(test)]
mod tests;
