//! The Double Ratchet (Signal specification, revision 4; SPEC.md section 5).
//!
//! [`RatchetState`] is one session's ratchet. Its rules:
//! - AEAD is AES-256-GCM with a full tag, keyed per message from the chain; the associated data
//!   is the session's associated data (version, both identities and devices) followed by the
//!   encoded header.
//! - Out-of-order messages are handled by storing skipped message keys, bounded per chain by
//!   [`MAX_SKIP`] and per session by [`MAX_SKIPPED_KEYS`].
//! - Decryption computes every new key in local variables and commits them only after the AEAD
//!   tag verified, so a failed decryption leaves the state exactly as it was.
//! - A used message key is deleted, so a duplicate or replayed message fails with
//!   [`DecryptError::Duplicate`] (or as an authentication failure, if its chain is gone).
//! - The sending half of a DH ratchet step runs lazily on the next encryption; the sender's
//!   ratchet public key is cached in its [`X25519Secret`].

mod chain;
mod message;
mod skipped;

use std::fmt;

use chain::{ChainKey, MessageKey, RootKey};
pub use message::{HEADER_LEN, Header, MAX_CIPHERTEXT_LEN, RatchetMessage};
pub use skipped::MAX_SKIPPED_KEYS;
use skipped::SkippedKeys;

use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::aead::{self, AEAD_TAG_LEN};
use crate::crypto::x25519::{X25519Error, X25519PublicKey, X25519Secret};
use crate::identity::{decode_x25519, encode_x25519};
use crate::padding::{self, PaddingError, PlaintextTooLong};

/// The most message keys a single chain may skip in one step (per received message).
pub const MAX_SKIP: u32 = 1000;

/// Why a message could not be encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// The responder cannot send before it has received the initiator's first message.
    #[error("the session cannot send before it has received a message")]
    NotReady,
    /// The sending chain reached 2^32 - 1 messages; a new session is needed.
    #[error("the sending chain is exhausted")]
    ChainExhausted,
    /// The peer's ratchet key is not contributory.
    #[error(transparent)]
    Dh(#[from] X25519Error),
    /// The plaintext is longer than padding allows.
    #[error(transparent)]
    TooLong(#[from] PlaintextTooLong),
}

/// Why a message was rejected. In every case the ratchet state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The message's key was already used: a duplicate or a replay.
    #[error("duplicate or replayed message")]
    Duplicate,
    /// The message would need more than [`MAX_SKIP`] keys skipped in one chain.
    #[error("message is too far ahead of its chain (more than {MAX_SKIP} skipped)")]
    TooFarAhead,
    /// The AEAD tag did not verify: tampering, a forged message, or a message for another
    /// session.
    #[error("message authentication failed")]
    Authentication,
    /// The header's ratchet key is not contributory.
    #[error(transparent)]
    Dh(#[from] X25519Error),
    /// The message index space is exhausted.
    #[error("message index space exhausted")]
    ChainExhausted,
    /// The message authenticated but its padding is malformed: a faulty or malicious peer.
    #[error("malformed padding: {0}")]
    Padding(#[from] PaddingError),
}

/// One session's Double Ratchet state.
#[derive(Clone)]
pub struct RatchetState {
    /// Session associated data: prefix of every message's AEAD associated data.
    ad: Box<[u8]>,
    root: RootKey,
    /// Our current ratchet key pair (`DHs`), public half cached.
    self_key: X25519Secret,
    /// The peer's current ratchet public key (`DHr`), if known.
    remote_key: Option<X25519PublicKey>,
    /// `CKs`; `None` means a DH step is due before the next send.
    sending: Option<ChainKey>,
    /// `CKr` for `remote_key`.
    receiving: Option<ChainKey>,
    /// `PN`: messages sent in the previous sending chain.
    previous_sending_len: u32,
    skipped: SkippedKeys,
    /// The peer's previous ratchet keys (newest last, at most [`RETIRED_KEYS`]), so a replayed
    /// message from a finished chain is reported as a duplicate.
    retired: Vec<[u8; 32]>,
}

/// How many of the peer's previous ratchet keys are remembered for duplicate detection.
const RETIRED_KEYS: usize = 8;

impl RatchetState {
    /// The initiator's state after PQXDH: the responder's signed prekey is the first `DHr`,
    /// and the first sending DH step happens at once (Signal specification section 3.3).
    pub(crate) fn initiator(
        ad: Box<[u8]>,
        shared_key: [u8; 32],
        remote_key: X25519PublicKey,
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<Self, X25519Error> {
        let self_key = X25519Secret::generate(rng);
        let dh = self_key.diffie_hellman(&remote_key)?;
        let (root, sending) = RootKey(shared_key).step(&dh);
        Ok(Self {
            ad,
            root,
            self_key,
            remote_key: Some(remote_key),
            sending: Some(sending),
            receiving: None,
            previous_sending_len: 0,
            skipped: SkippedKeys::default(),
            retired: Vec::new(),
        })
    }

    /// The responder's state after PQXDH: its signed prekey is its first ratchet key pair.
    pub(crate) fn responder(
        ad: Box<[u8]>,
        shared_key: [u8; 32],
        signed_prekey: X25519Secret,
    ) -> Self {
        Self {
            ad,
            root: RootKey(shared_key),
            self_key: signed_prekey,
            remote_key: None,
            sending: None,
            receiving: None,
            previous_sending_len: 0,
            skipped: SkippedKeys::default(),
            retired: Vec::new(),
        }
    }

    /// The session associated data.
    pub fn associated_data(&self) -> &[u8] {
        &self.ad
    }

    /// How many skipped message keys are stored.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Whether this state has received at least one message (has a receiving chain).
    pub fn has_received(&self) -> bool {
        self.receiving.is_some()
    }

    /// Pads (SPEC.md section 7) and encrypts `plaintext` as the next message.
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<RatchetMessage, EncryptError> {
        padding::padded_len(plaintext.len())?;
        if self.sending.is_none() {
            self.start_sending_chain(rng)?;
        }
        let Some(chain) = self.sending.as_ref() else {
            return Err(EncryptError::NotReady);
        };
        let (message_key, next) = chain.step().ok_or(EncryptError::ChainExhausted)?;
        let header = Header {
            ratchet_key: self.self_key.public_key(),
            previous_chain_len: self.previous_sending_len,
            index: message_key.index,
        };
        let mut ciphertext = pad_with_room_for_tag(plaintext)?;
        seal(&self.ad, &header, &message_key, &mut ciphertext);
        self.sending = Some(next);
        Ok(RatchetMessage { header, ciphertext })
    }

    /// The sending half of a DH ratchet step: a fresh key pair and a new sending chain.
    fn start_sending_chain(&mut self, rng: &mut (impl Rng + ?Sized)) -> Result<(), EncryptError> {
        let remote = self.remote_key.ok_or(EncryptError::NotReady)?;
        let new_key = X25519Secret::generate(rng);
        let dh = new_key.diffie_hellman(&remote)?;
        let (root, chain) = self.root.step(&dh);
        self.root = root;
        self.self_key = new_key;
        self.sending = Some(chain);
        Ok(())
    }

    /// Decrypts and unpads a message. Nothing changes unless both the tag and the padding
    /// check out.
    pub fn decrypt(&mut self, message: &RatchetMessage) -> Result<Vec<u8>, DecryptError> {
        let header = &message.header;
        let ratchet = header.ratchet_key.as_bytes();

        if let Some(key) = self.skipped.get(ratchet, header.index) {
            let plaintext = open(&self.ad, message, key)?;
            self.skipped.remove(ratchet, header.index);
            return Ok(plaintext);
        }

        if self.remote_key == Some(header.ratchet_key)
            && let Some(chain) = &self.receiving
        {
            if header.index < chain.index {
                return Err(DecryptError::Duplicate);
            }
            let (skipped, key, next) = advance(chain, header.index)?;
            let plaintext = open(&self.ad, message, &key)?;
            self.receiving = Some(next);
            self.skipped.insert(ratchet, skipped);
            return Ok(plaintext);
        }

        if self.retired.contains(ratchet) {
            return Err(DecryptError::Duplicate);
        }

        // A new ratchet key from the peer: finish the current receiving chain up to `PN`,
        // then run the receiving half of a DH ratchet step.
        let old_chain_skipped = match (&self.receiving, &self.remote_key) {
            (Some(chain), Some(_)) if header.previous_chain_len > chain.index => {
                advance(chain, header.previous_chain_len)?.0
            }
            _ => Vec::new(),
        };
        let dh = self.self_key.diffie_hellman(&header.ratchet_key)?;
        let (root, chain) = self.root.step(&dh);
        let (skipped, key, next) = advance(&chain, header.index)?;
        let plaintext = open(&self.ad, message, &key)?;

        if let Some(old_remote) = self.remote_key {
            self.skipped
                .insert(old_remote.as_bytes(), old_chain_skipped);
            if self.retired.len() == RETIRED_KEYS {
                self.retired.remove(0);
            }
            self.retired.push(old_remote.to_bytes());
        }
        self.skipped.insert(ratchet, skipped);
        self.root = root;
        self.remote_key = Some(header.ratchet_key);
        self.receiving = Some(next);
        if let Some(sending) = self.sending.take() {
            self.previous_sending_len = sending.index;
        }
        Ok(plaintext)
    }
}

/// Steps `chain` to `index`, returning the skipped keys, the key for `index` and the chain
/// after it. Refuses jumps larger than [`MAX_SKIP`].
fn advance(
    chain: &ChainKey,
    index: u32,
) -> Result<(Vec<MessageKey>, MessageKey, ChainKey), DecryptError> {
    let gap = index
        .checked_sub(chain.index)
        .ok_or(DecryptError::Duplicate)?;
    if gap > MAX_SKIP {
        return Err(DecryptError::TooFarAhead);
    }
    let mut skipped = Vec::with_capacity(gap as usize);
    let mut current = chain.clone();
    loop {
        let (key, next) = current.step().ok_or(DecryptError::ChainExhausted)?;
        if key.index == index {
            return Ok((skipped, key, next));
        }
        skipped.push(key);
        current = next;
    }
}

/// [`padding::pad`], written into a buffer that already has room for the AEAD tag, so that
/// appending the tag does not reallocate and copy the message.
fn pad_with_room_for_tag(plaintext: &[u8]) -> Result<Vec<u8>, PlaintextTooLong> {
    let len = padding::padded_len(plaintext.len())?;
    let mut buffer = Vec::with_capacity(len + AEAD_TAG_LEN);
    buffer.extend_from_slice(plaintext);
    buffer.push(padding::MARKER);
    buffer.resize(len, 0);
    Ok(buffer)
}

/// Encrypts the padded plaintext in `buffer` in place and appends the tag.
fn seal(ad: &[u8], header: &Header, key: &MessageKey, buffer: &mut Vec<u8>) {
    let expanded = key.aead_key_nonce();
    let tag = with_associated_data(ad, header, |aad| {
        aead::seal_in_place(&expanded.key, &expanded.nonce, aad, buffer)
    });
    buffer.extend_from_slice(&tag);
}

/// Authenticates, decrypts and unpads; the caller commits state only on `Ok`.
fn open(ad: &[u8], message: &RatchetMessage, key: &MessageKey) -> Result<Vec<u8>, DecryptError> {
    let expanded = key.aead_key_nonce();
    let mut padded = with_associated_data(ad, &message.header, |aad| {
        aead::open(&expanded.key, &expanded.nonce, aad, &message.ciphertext)
    })
    .map_err(|_| DecryptError::Authentication)?;
    let len = padding::unpad(&padded)?.len();
    padded.truncate(len);
    Ok(padded)
}

/// Room on the stack for the message associated data; the session associated data PQXDH
/// makes is 139 bytes, so with the header it fits.
const INLINE_AAD_LEN: usize = 256;

/// Calls `f` with the message associated data: session associated data || encoded header.
/// It is assembled on the stack when it fits in [`INLINE_AAD_LEN`] bytes (always, for
/// sessions from PQXDH), to spare a heap allocation per message on each side.
fn with_associated_data<T>(ad: &[u8], header: &Header, f: impl FnOnce(&[u8]) -> T) -> T {
    let len = ad.len() + HEADER_LEN;
    let mut inline = [0u8; INLINE_AAD_LEN];
    let mut heap = Vec::new();
    let aad = match inline.get_mut(..len) {
        Some(aad) => aad,
        None => {
            heap.resize(len, 0);
            &mut heap[..]
        }
    };
    let (session, encoded_header) = aad.split_at_mut(ad.len());
    session.copy_from_slice(ad);
    encoded_header.copy_from_slice(&header.to_array());
    f(aad)
}

impl fmt::Debug for RatchetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RatchetState")
            .field("self_key", &self.self_key)
            .field("remote_key", &self.remote_key)
            .field("sending", &self.sending)
            .field("receiving", &self.receiving)
            .field("previous_sending_len", &self.previous_sending_len)
            .field("skipped_keys", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

/// Pickle encoding of the ratchet state (SPEC.md section 6.2). Only ever stored encrypted.
impl RatchetState {
    pub(crate) fn encode_secret(&self, w: &mut Writer) {
        w.bytes16(&self.ad);
        w.raw(&self.root.0);
        w.raw(self.self_key.to_bytes().as_ref());
        match &self.remote_key {
            None => w.u8(0),
            Some(key) => {
                w.u8(1);
                encode_x25519(w, key);
            }
        }
        encode_chain(w, self.sending.as_ref());
        encode_chain(w, self.receiving.as_ref());
        w.u32(self.previous_sending_len);
        let count = u16::try_from(self.skipped.len()).unwrap_or(u16::MAX);
        w.u16(count);
        for (ratchet, key) in self.skipped.iter().take(usize::from(count)) {
            w.raw(ratchet);
            w.u32(key.index);
            w.raw(&key.key);
        }
        let retired = u8::try_from(self.retired.len()).unwrap_or(u8::MAX);
        w.u8(retired);
        for key in self.retired.iter().take(usize::from(retired)) {
            w.raw(key);
        }
    }

    pub(crate) fn decode_secret(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ad = r.bytes16("session associated data", 1024)?.into();
        let root = RootKey(r.array()?);
        let self_key = X25519Secret::from_bytes(&zeroize::Zeroizing::new(r.array()?));
        let remote_key = match r.u8()? {
            0 => None,
            1 => Some(decode_x25519(r, "remote ratchet key")?),
            _ => return Err(DecodeError::Invalid("remote ratchet key presence")),
        };
        let sending = decode_chain(r)?;
        let receiving = decode_chain(r)?;
        let previous_sending_len = r.u32()?;
        let count = usize::from(r.u16()?);
        if count > MAX_SKIPPED_KEYS {
            return Err(DecodeError::TooLong {
                what: "skipped keys",
                len: count,
                max: MAX_SKIPPED_KEYS,
            });
        }
        let mut skipped = SkippedKeys::default();
        for _ in 0..count {
            let ratchet: [u8; 32] = r.array()?;
            let index = r.u32()?;
            let key = MessageKey {
                key: r.array()?,
                index,
            };
            skipped.insert(&ratchet, [key]);
        }
        let retired_count = usize::from(r.u8()?);
        if retired_count > RETIRED_KEYS {
            return Err(DecodeError::TooLong {
                what: "retired ratchet keys",
                len: retired_count,
                max: RETIRED_KEYS,
            });
        }
        let mut retired = Vec::with_capacity(retired_count);
        for _ in 0..retired_count {
            retired.push(r.array()?);
        }
        Ok(Self {
            ad,
            root,
            self_key,
            remote_key,
            sending,
            receiving,
            previous_sending_len,
            skipped,
            retired,
        })
    }
}

fn encode_chain(w: &mut Writer, chain: Option<&ChainKey>) {
    match chain {
        None => w.u8(0),
        Some(chain) => {
            w.u8(1);
            w.raw(&chain.key);
            w.u32(chain.index);
        }
    }
}

fn decode_chain(r: &mut Reader<'_>) -> Result<Option<ChainKey>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(ChainKey {
            key: r.array()?,
            index: r.u32()?,
        })),
        _ => Err(DecodeError::Invalid("chain key presence")),
    }
}

#[cfg(test)]
mod tests;
