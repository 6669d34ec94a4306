//! Per-peer-device session records (SPEC.md section 6).
//!
//! A [`SessionRecord`] holds the active session with one peer device plus up to
//! [`MAX_PREVIOUS_SESSIONS`] earlier ones, so that
//! - a message for an older session (sent before the peer saw our newer one) still decrypts;
//! - simultaneous initiation converges: when a message decrypts under a non-active session,
//!   that session becomes active if the active one was never answered, or if both were
//!   answered and it has the smaller base key. Both sides apply the same rule to the same two
//!   sessions and so pick the same one.
//!
//! The record pads plaintexts (section 7) before the ratchet encrypts them, attaches the PQXDH
//! initial header to outgoing messages until the peer answers, and pickles to an encrypted,
//! versioned blob.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::x25519::X25519PublicKey;
use crate::identity::{
    DeviceCertificate, DeviceId, IdentityKey, LocalDevice, PROTOCOL_VERSION, VerifiedDevice,
    decode_x25519, encode_x25519,
};
use crate::pickle::{self, PickleError, PickleKey};
use crate::pqxdh::{self, HandshakeError, InitialHeader, ReplayGuard, ResponderKeys};
use crate::prekeys::{PrekeyId, VerifiedBundle};
use crate::ratchet::{DecryptError, EncryptError, RatchetMessage, RatchetState};

/// How many earlier sessions a record keeps besides the active one.
pub const MAX_PREVIOUS_SESSIONS: usize = 8;

const PICKLE_KIND: &str = "session-record";
const MESSAGE_TYPE_PREKEY: u8 = 1;
const MESSAGE_TYPE_NORMAL: u8 = 2;

/// Why a session operation failed. Decryption failures leave the record unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// There is no session to encrypt with; fetch a bundle and initiate one.
    #[error("no session with this device")]
    NoSession,
    /// Session setup failed.
    #[error("session setup: {0}")]
    Handshake(#[from] HandshakeError),
    /// Encryption failed.
    #[error(transparent)]
    Encrypt(#[from] EncryptError),
    /// No session could decrypt the message; the error is the active session's.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// An initial message names prekeys this device no longer (or never) had.
    #[error("unknown prekey")]
    UnknownPrekey,
    /// An initial message comes from another device than the one this record is for.
    #[error("initial message is from an unexpected identity or device")]
    UnexpectedPeer,
}

/// What travels (inside a sealed envelope) from one device's session to another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMessage {
    /// A ratchet message preceded by the PQXDH initial header (until the peer answers).
    Prekey {
        /// The initial header.
        header: Box<InitialHeader>,
        /// The ratchet message.
        message: RatchetMessage,
    },
    /// An ordinary ratchet message.
    Normal(RatchetMessage),
}

impl Encode for SessionMessage {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Prekey { header, message } => {
                w.u8(MESSAGE_TYPE_PREKEY);
                header.encode(w);
                message.encode(w);
            }
            Self::Normal(message) => {
                w.u8(MESSAGE_TYPE_NORMAL);
                message.encode(w);
            }
        }
    }
}

impl Decode for SessionMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            MESSAGE_TYPE_PREKEY => Ok(Self::Prekey {
                header: Box::new(InitialHeader::decode(r)?),
                message: RatchetMessage::decode(r)?,
            }),
            MESSAGE_TYPE_NORMAL => Ok(Self::Normal(RatchetMessage::decode(r)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "session message",
                tag,
            }),
        }
    }
}

/// One session with a peer device.
#[derive(Clone)]
struct Session {
    ratchet: RatchetState,
    /// The initiator's PQXDH ephemeral key: identifies the session on both sides.
    base_key: X25519PublicKey,
    /// The peer's certificate.
    peer: VerifiedDevice,
    /// Set while we initiated and have not heard back: sent along with every message.
    pending: Option<Box<InitialHeader>>,
    /// Whether the peer has sent us anything in this session.
    answered: bool,
}

/// What a successful decryption yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The unpadded plaintext.
    pub plaintext: Vec<u8>,
    /// The one-time X25519 prekey the caller must now delete, if the message consumed one.
    pub consumed_one_time_prekey: Option<PrekeyId>,
    /// The one-time KEM prekey the caller must now delete, if the message consumed one.
    pub consumed_kem_prekey: Option<PrekeyId>,
}

/// Every session with one peer device.
#[derive(Clone, Default)]
pub struct SessionRecord {
    current: Option<Session>,
    /// Earlier sessions, most recent first.
    previous: Vec<Session>,
}

impl SessionRecord {
    /// A record with no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is an active session to encrypt with.
    pub fn has_session(&self) -> bool {
        self.current.is_some()
    }

    /// How many sessions the record holds (active plus previous).
    pub fn session_count(&self) -> usize {
        usize::from(self.current.is_some()) + self.previous.len()
    }

    /// The peer of the active session.
    pub fn peer(&self) -> Option<&VerifiedDevice> {
        self.current.as_ref().map(|s| &s.peer)
    }

    /// The active session's base key (its identifier), for diagnostics and tests.
    pub fn active_base_key(&self) -> Option<X25519PublicKey> {
        self.current.as_ref().map(|s| s.base_key)
    }

    /// Starts a new session from a verified bundle; it becomes the active one.
    pub fn initiate(
        &mut self,
        local: &LocalDevice,
        bundle: &VerifiedBundle,
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<(), SessionError> {
        let init = pqxdh::initiate(local, bundle, rng)?;
        let session = Session {
            ratchet: init.state,
            base_key: init.header.base_key,
            peer: bundle.device().clone(),
            pending: Some(Box::new(init.header)),
            answered: false,
        };
        self.make_current(session);
        Ok(())
    }

    /// Pads and encrypts `plaintext` with the active session.
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<SessionMessage, SessionError> {
        let session = self.current.as_mut().ok_or(SessionError::NoSession)?;
        let message = session.ratchet.encrypt(plaintext, rng)?;
        Ok(match &session.pending {
            Some(header) => SessionMessage::Prekey {
                header: header.clone(),
                message,
            },
            None => SessionMessage::Normal(message),
        })
    }

    /// Decrypts an ordinary message with whichever session it belongs to.
    pub fn decrypt(&mut self, message: &RatchetMessage) -> Result<Vec<u8>, SessionError> {
        let mut first_error = None;
        for slot in 0..self.session_count() {
            let Some(session) = self.slot_mut(slot) else {
                break;
            };
            match decrypt_in(session, message) {
                Ok(plaintext) => {
                    self.mark_answered(slot);
                    return Ok(plaintext);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(SessionError::NoSession))
    }

    /// Decrypts a message that carries a PQXDH initial header from `expected_peer`.
    ///
    /// If a session with the header's base key exists, the message is decrypted with it.
    /// Otherwise the responder side of PQXDH runs with `keys` (the secrets the header names, or
    /// `None` if the caller has none of them) and, once the message decrypted, the new session
    /// becomes active, the replay guard records the message if it used no one-time prekey, and
    /// the result names the one-time prekeys the caller must delete.
    pub fn decrypt_prekey(
        &mut self,
        local: &LocalDevice,
        expected_peer: (IdentityKey, DeviceId),
        header: &InitialHeader,
        message: &RatchetMessage,
        keys: Option<ResponderKeys<'_>>,
        replay: &mut ReplayGuard,
    ) -> Result<Decrypted, SessionError> {
        if (header.initiator.identity(), header.initiator.device_id()) != expected_peer {
            return Err(SessionError::UnexpectedPeer);
        }
        let existing = (0..self.session_count()).find(|&slot| {
            self.slot(slot).is_some_and(|s| {
                s.base_key == header.base_key && s.peer.certificate() == &header.initiator
            })
        });
        if let Some(slot) = existing {
            let session = self.slot_mut(slot).ok_or(SessionError::NoSession)?;
            let plaintext = decrypt_in(session, message)?;
            self.mark_answered(slot);
            return Ok(Decrypted {
                plaintext,
                consumed_one_time_prekey: None,
                consumed_kem_prekey: None,
            });
        }
        let keys = keys.ok_or(SessionError::UnknownPrekey)?;
        if header.one_time_prekey_id.is_none() && replay.is_full() {
            return Err(HandshakeError::ReplayGuardFull.into());
        }
        let responded = pqxdh::respond(local, header, keys, replay)?;
        let mut session = Session {
            ratchet: responded.state,
            base_key: header.base_key,
            peer: responded.peer,
            pending: None,
            answered: true,
        };
        let plaintext = decrypt_in(&mut session, message)?;
        if header.one_time_prekey_id.is_none() {
            replay.record(header.signed_prekey_id, &header.base_key)?;
        }
        // The peer started over (or both sides started at once): the new session is active.
        self.make_current(session);
        Ok(Decrypted {
            plaintext,
            consumed_one_time_prekey: header.one_time_prekey_id,
            consumed_kem_prekey: (!keys.kem_prekey.last_resort).then_some(keys.kem_prekey.id),
        })
    }

    fn slot(&self, slot: usize) -> Option<&Session> {
        match (slot, &self.current) {
            (0, Some(current)) => Some(current),
            (n, Some(_)) => self.previous.get(n - 1),
            (n, None) => self.previous.get(n),
        }
    }

    fn slot_mut(&mut self, slot: usize) -> Option<&mut Session> {
        match (slot, &mut self.current) {
            (0, Some(current)) => Some(current),
            (n, Some(_)) => self.previous.get_mut(n - 1),
            (n, None) => self.previous.get_mut(n),
        }
    }

    fn make_current(&mut self, session: Session) {
        if let Some(old) = self.current.replace(session) {
            self.previous.insert(0, old);
            self.previous.truncate(MAX_PREVIOUS_SESSIONS);
        }
    }

    /// Records that the session in `slot` decrypted a message from the peer, and applies the
    /// convergence rule to decide whether it becomes the active session.
    fn mark_answered(&mut self, slot: usize) {
        let was_answered = match self.slot_mut(slot) {
            Some(session) => {
                let was = session.answered;
                session.answered = true;
                session.pending = None;
                was
            }
            None => return,
        };
        let current_is_slot = slot == 0 && self.current.is_some();
        if current_is_slot {
            return;
        }
        let index = if self.current.is_some() {
            slot - 1
        } else {
            slot
        };
        // A session that had been answered before and was since superseded stays superseded:
        // the peer moved on (it restarted or re-initiated). A session answered for the first
        // time is the simultaneous-initiation case: it wins over an active session that was
        // never answered, and otherwise the smaller base key wins, on both sides alike.
        let promote = match (&self.current, self.previous.get(index)) {
            (None, Some(_)) => true,
            (Some(current), Some(candidate)) => {
                !was_answered
                    && (!current.answered
                        || candidate.base_key.as_bytes() < current.base_key.as_bytes())
            }
            (_, None) => false,
        };
        if promote {
            let session = self.previous.remove(index);
            self.make_current(session);
        }
    }

    /// Seals the record as an encrypted pickle.
    pub fn to_encrypted(&self, key: &PickleKey, rng: &mut (impl Rng + ?Sized)) -> Vec<u8> {
        let sessions: Vec<&Session> = self.current.iter().chain(self.previous.iter()).collect();
        // Sized up front so the buffer holding secrets never reallocates and leaves unzeroized
        // copies behind: at most ~4 KiB per session (pending header included) plus 68 bytes per
        // skipped key.
        let skipped: usize = sessions.iter().map(|s| s.ratchet.skipped_keys()).sum();
        let mut w = Writer::with_capacity(3 + sessions.len() * 4096 + skipped * 68);
        w.u8(PROTOCOL_VERSION);
        w.u8(u8::from(self.current.is_some()));
        w.u8(u8::try_from(sessions.len()).unwrap_or(u8::MAX));
        for session in sessions {
            session.ratchet.encode_secret(&mut w);
            encode_x25519(&mut w, &session.base_key);
            session.peer.certificate().encode(&mut w);
            w.option(session.pending.as_deref());
            w.u8(u8::from(session.answered));
        }
        let plaintext = zeroize::Zeroizing::new(w.into_bytes());
        pickle::seal(PICKLE_KIND, key, &plaintext, rng)
    }

    /// Opens a record sealed by [`Self::to_encrypted`].
    pub fn from_encrypted(key: &PickleKey, pickle: &[u8]) -> Result<Self, PickleError> {
        let plaintext = pickle::open(PICKLE_KIND, key, pickle)?;
        let mut r = Reader::new(&plaintext);
        r.version("session record", PROTOCOL_VERSION)?;
        let has_current = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::Invalid("session record current flag").into()),
        };
        let count = usize::from(r.u8()?);
        if count > MAX_PREVIOUS_SESSIONS + 1 || (has_current && count == 0) {
            return Err(DecodeError::Invalid("session record count").into());
        }
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count {
            let ratchet = RatchetState::decode_secret(&mut r)?;
            let base_key = decode_x25519(&mut r, "session base key")?;
            let peer = DeviceCertificate::decode(&mut r)?
                .verify()
                .map_err(|_| DecodeError::Invalid("session peer certificate"))?;
            let pending = r.option::<InitialHeader>("pending header")?.map(Box::new);
            let answered = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("session answered flag").into()),
            };
            sessions.push(Session {
                ratchet,
                base_key,
                peer,
                pending,
                answered,
            });
        }
        r.finish()?;
        let mut sessions = sessions.into_iter();
        let current = if has_current { sessions.next() } else { None };
        Ok(Self {
            current,
            previous: sessions.collect(),
        })
    }
}

fn decrypt_in(session: &mut Session, message: &RatchetMessage) -> Result<Vec<u8>, SessionError> {
    Ok(session.ratchet.decrypt(message)?)
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("active", &self.current.as_ref().map(|s| s.base_key))
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
