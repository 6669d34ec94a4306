//! The daemon's stored records and their byte encodings (each versioned; the store encrypts
//! every value). Tables and key layouts are listed in [`tables`].
//!
//! Records carrying secrets (the account's seeds, prekey secrets) decode from and encode into
//! zeroizing buffers; nothing here derives `Serialize`.

use protocol::codec::{DecodeError, Reader, Writer};
use zeroize::Zeroizing;

use api::types::{Direction, MessageStatus, Trust};

/// Tables (the first byte of every store key) and what their keys are.
pub mod tables {
    use crate::store::Table;

    /// `b"account"` -> [`super::AccountRecord`]; `b"replay"` -> the PQXDH replay guard.
    pub const ACCOUNT: Table = Table(1);
    /// conversation id (16 random bytes) -> [`super::ContactRecord`].
    pub const CONTACTS: Table = Table(2);
    /// conversation id -> [`super::ConversationMeta`].
    pub const CONVERSATIONS: Table = Table(3);
    /// conversation id || sequence (u64 BE) -> [`super::MessageRecord`].
    pub const MESSAGES: Table = Table(4);
    /// Written by earlier versions, now only read: keyed hash of (`b"out"`, own identity,
    /// message id) -> conversation id || sequence, for outgoing messages whose ids were random
    /// (ids now name their sequence, `store::MessageIds`); read only if the store has any
    /// (`Unlocked::has_legacy_index`). Its `b"in"` entries are superseded by [`RECEIVED`].
    pub const MESSAGE_INDEX: Table = Table(5);
    /// outbox sequence (u64 BE) -> [`super::OutboxEntry`].
    pub const OUTBOX: Table = Table(6);
    /// keyed hash of (peer identity, device id) -> the session record's pickle.
    pub const SESSIONS: Table = Table(7);
    /// kind byte (1 signed, 2 KEM, 3 one-time) || prekey id (u32 BE) -> the secret.
    pub const PREKEYS: Table = Table(8);
    /// invite token (16 random bytes) -> [`super::InviteRecord`].
    pub const INVITES: Table = Table(9);
    /// event cursor (u64 BE) -> the event as JSON.
    pub const EVENTS: Table = Table(10);
    /// conversation id || message id -> nothing: a delivery receipt owed for a stored message.
    pub const OWED_RECEIPTS: Table = Table(11);
    /// conversation id || the sender's timestamp plus a keyed offset of the conversation
    /// (u64 BE, wrapping) || keyed hash of (sender, message id), first 8 bytes -> nothing: the
    /// messages received, for dropping repeats (`messaging::inbox::received_key`). Ordered by time
    /// within a conversation, so remembering a message touches the newest part of the tree
    /// only, and the offset keeps the clock reading out of the plaintext key.
    pub const RECEIVED: Table = Table(12);
    /// keyed hash of (record kind, openmls' name for the record) -> an MLS record in CBOR:
    /// groups' trees, epoch secrets and private keys, key packages' private keys
    /// (`groups::storage`).
    pub const GROUP_STATE: Table = Table(13);
}

const VERSION: u8 = 1;
/// The version of the account, contact and invite records written since reachability across
/// relays (they add fields at the end; version 1 records still decode, with defaults).
const VERSION_2: u8 = 2;

/// The version of the contact record written since key changes keep the new key's devices
/// (it adds `pending_devices` at the end; versions 1 and 2 still decode, without any).
const VERSION_3: u8 = 3;

/// The version of the contact record written since message requests (it adds `request` and
/// `invite_refused` at the end; versions 1 to 3 still decode, as accepted contacts).
const VERSION_4: u8 = 4;

/// Reads the version byte of a record that exists in versions 1 and 2.
fn read_version(r: &mut Reader<'_>, what: &'static str) -> Result<u8, DecodeError> {
    match r.u8()? {
        version @ (VERSION | VERSION_2) => Ok(version),
        version => Err(DecodeError::UnsupportedVersion { what, version }),
    }
}

fn opt_array<const N: usize>(w: &mut Writer, v: Option<&[u8; N]>) {
    match v {
        None => w.u8(0),
        Some(bytes) => {
            w.u8(1);
            w.raw(bytes);
        }
    }
}

fn read_opt_array<const N: usize>(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<[u8; N]>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.array()?)),
        _ => Err(DecodeError::Invalid(what)),
    }
}

/// Longest text field in a record (names, aliases, handles, URLs, failure reasons).
pub const MAX_SHORT_TEXT: usize = 4096;

fn opt_str(w: &mut Writer, v: Option<&str>) {
    match v {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.str16(s);
        }
    }
}

fn read_opt_str(r: &mut Reader<'_>, what: &'static str) -> Result<Option<String>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.str16(what, MAX_SHORT_TEXT)?.to_owned())),
        _ => Err(DecodeError::Invalid(what)),
    }
}

fn read_bool(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid(what)),
    }
}

/// The account: who we are and the seeds of our keys.
#[derive(Clone)]
pub struct AccountRecord {
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at_ms: u64,
    /// The relay URL (also the relay id it must present).
    pub relay_url: String,
    /// Ed25519 identity seed.
    pub identity_seed: Zeroizing<[u8; 32]>,
    /// This device's number.
    pub device_id: u32,
    /// Device signing seed.
    pub device_signing_seed: Zeroizing<[u8; 32]>,
    /// Device X25519 secret.
    pub device_dh_secret: Zeroizing<[u8; 32]>,
    /// When the device certificate was made (seconds), so it is reproduced exactly.
    pub device_certified_at: u64,
    /// Handles registered on the relay.
    pub handles: Vec<String>,
    /// The next prekey id to hand out (all kinds share the counter).
    pub next_prekey_id: u32,
    /// The signed prekey currently published.
    pub signed_prekey_id: u32,
    /// When that signed prekey was made (ms).
    pub signed_prekey_created_ms: u64,
    /// The sequence of the account's current reachability record (SPEC.md 10.9); the record
    /// itself is signed again from it when needed (Ed25519 signatures are deterministic). 0
    /// until the first is made.
    pub reach_sequence: u64,
    /// The pin of the home relay's TLS certificate, when it is a self-signed one (a daemon
    /// hosting its own relay).
    pub tls_pin: Option<[u8; 32]>,
    /// Relays the account moved away from, still drained until their mailboxes are empty.
    pub draining: Vec<String>,
    /// Whether the home relay admits envelopes from strangers (policy `open`) or only from
    /// contacts holding a delivery token (`tokens_required`).
    pub accept_strangers: bool,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("device_id", &self.device_id)
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl AccountRecord {
    /// Encodes into a zeroizing buffer.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(512);
        w.u8(VERSION_2);
        w.str16(&self.name);
        w.u64(self.created_at_ms);
        w.str16(&self.relay_url);
        w.raw(self.identity_seed.as_ref());
        w.u32(self.device_id);
        w.raw(self.device_signing_seed.as_ref());
        w.raw(self.device_dh_secret.as_ref());
        w.u64(self.device_certified_at);
        w.u16(u16::try_from(self.handles.len()).unwrap_or(u16::MAX));
        for handle in &self.handles {
            w.str16(handle);
        }
        w.u32(self.next_prekey_id);
        w.u32(self.signed_prekey_id);
        w.u64(self.signed_prekey_created_ms);
        w.u64(self.reach_sequence);
        opt_array(&mut w, self.tls_pin.as_ref());
        w.u16(u16::try_from(self.draining.len()).unwrap_or(u16::MAX));
        for url in &self.draining {
            w.str16(url);
        }
        w.u8(u8::from(self.accept_strangers));
        Zeroizing::new(w.into_bytes())
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = read_version(&mut r, "account record")?;
        let name = r.str16("name", MAX_SHORT_TEXT)?.to_owned();
        let created_at_ms = r.u64()?;
        let relay_url = r.str16("relay url", MAX_SHORT_TEXT)?.to_owned();
        let identity_seed = Zeroizing::new(r.array()?);
        let device_id = r.u32()?;
        let device_signing_seed = Zeroizing::new(r.array()?);
        let device_dh_secret = Zeroizing::new(r.array()?);
        let device_certified_at = r.u64()?;
        let count = usize::from(r.u16()?);
        let mut handles = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            handles.push(r.str16("handle", MAX_SHORT_TEXT)?.to_owned());
        }
        let mut record = Self {
            name,
            created_at_ms,
            relay_url,
            identity_seed,
            device_id,
            device_signing_seed,
            device_dh_secret,
            device_certified_at,
            handles,
            next_prekey_id: r.u32()?,
            signed_prekey_id: r.u32()?,
            signed_prekey_created_ms: r.u64()?,
            reach_sequence: 0,
            tls_pin: None,
            draining: Vec::new(),
            accept_strangers: true,
        };
        if version == VERSION_2 {
            record.reach_sequence = r.u64()?;
            record.tls_pin = read_opt_array(&mut r, "tls pin")?;
            let count = usize::from(r.u16()?);
            for _ in 0..count.min(16) {
                record
                    .draining
                    .push(r.str16("draining relay", MAX_SHORT_TEXT)?.to_owned());
            }
            if count > 16 {
                return Err(DecodeError::Invalid("draining relays"));
            }
            record.accept_strangers = read_bool(&mut r, "stranger policy")?;
        }
        r.finish()?;
        Ok(record)
    }
}

/// A contact, and the conversation with it (they share the conversation id).
#[derive(Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// Local name.
    pub alias: String,
    /// The pinned identity key.
    pub identity: [u8; 32],
    /// The handle the contact was found by.
    pub handle: Option<String>,
    /// The name the contact gave.
    pub display_name: Option<String>,
    /// Trust in the pinned key.
    pub trust: Trust,
    /// The key the handle now names, while `trust` is `KeyChanged`.
    pub pending_identity: Option<[u8; 32]>,
    /// When added.
    pub added_at_ms: u64,
    /// When the handle was last checked against the relay.
    pub handle_checked_ms: u64,
    /// The contact's devices, as last listed by the relay.
    pub devices: Vec<u32>,
    /// The contact's newest verified reachability record (SPEC.md 10.9), encoded; `None`
    /// until one is known.
    pub reach: Option<Vec<u8>>,
    /// Where the contact is, when no record is known: the relay its handle or address was
    /// found on. `None` with no record: the account's own home relay.
    pub relay_hint: Option<String>,
    /// The token the contact gave us, presented with every envelope to it.
    pub send_token: Option<[u8; 16]>,
    /// The token we gave the contact (its digest is registered at our home relay).
    pub our_token: Option<[u8; 16]>,
    /// Blocked: its token is revoked at our relay and what it sends is dropped.
    pub blocked: bool,
    /// The devices of `pending_identity` that wrote to us while the key change waits for the
    /// user (delivery receipts go back to them; they become `devices` when the key is
    /// accepted).
    pub pending_devices: Vec<u32>,
    /// A message request: a stranger who wrote first, not accepted yet (`core::requests`).
    /// Hidden from the contact list; no read receipt nor introduction goes to it.
    pub request: bool,
    /// The contact's daemon refused the invite we accepted from it: the reason's wire byte
    /// (SPEC.md 8.1, invite refused), 0 when not refused.
    pub invite_refused: u8,
}

impl std::fmt::Debug for ContactRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The delivery tokens are credentials: only whether they are there is shown.
        f.debug_struct("ContactRecord")
            .field("alias", &self.alias)
            .field("trust", &self.trust)
            .field("devices", &self.devices)
            .field("relay_hint", &self.relay_hint)
            .field("send_token", &self.send_token.map(|_| ".."))
            .field("our_token", &self.our_token.map(|_| ".."))
            .field("blocked", &self.blocked)
            .field("request", &self.request)
            .field("invite_refused", &self.invite_refused)
            .finish_non_exhaustive()
    }
}

fn trust_byte(trust: Trust) -> u8 {
    match trust {
        Trust::Unverified => 0,
        Trust::Verified => 1,
        Trust::KeyChanged => 2,
    }
}

impl ContactRecord {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256 + self.reach.as_ref().map_or(0, Vec::len));
        w.u8(VERSION_4);
        w.str16(&self.alias);
        w.raw(&self.identity);
        opt_str(&mut w, self.handle.as_deref());
        opt_str(&mut w, self.display_name.as_deref());
        w.u8(trust_byte(self.trust));
        match &self.pending_identity {
            None => w.u8(0),
            Some(key) => {
                w.u8(1);
                w.raw(key);
            }
        }
        w.u64(self.added_at_ms);
        w.u64(self.handle_checked_ms);
        w.u16(u16::try_from(self.devices.len()).unwrap_or(u16::MAX));
        for device in &self.devices {
            w.u32(*device);
        }
        match &self.reach {
            None => w.u8(0),
            Some(record) => {
                w.u8(1);
                w.bytes16(record);
            }
        }
        opt_str(&mut w, self.relay_hint.as_deref());
        opt_array(&mut w, self.send_token.as_ref());
        opt_array(&mut w, self.our_token.as_ref());
        w.u8(u8::from(self.blocked));
        w.u16(u16::try_from(self.pending_devices.len()).unwrap_or(u16::MAX));
        for device in &self.pending_devices {
            w.u32(*device);
        }
        w.u8(u8::from(self.request));
        w.u8(self.invite_refused);
        w.into_bytes()
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = match r.u8()? {
            version @ (VERSION | VERSION_2 | VERSION_3 | VERSION_4) => version,
            version => {
                return Err(DecodeError::UnsupportedVersion {
                    what: "contact record",
                    version,
                });
            }
        };
        let alias = r.str16("alias", MAX_SHORT_TEXT)?.to_owned();
        let identity = r.array()?;
        let handle = read_opt_str(&mut r, "handle")?;
        let display_name = read_opt_str(&mut r, "display name")?;
        let trust = match r.u8()? {
            0 => Trust::Unverified,
            1 => Trust::Verified,
            2 => Trust::KeyChanged,
            _ => return Err(DecodeError::Invalid("trust")),
        };
        let pending_identity = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => return Err(DecodeError::Invalid("pending identity")),
        };
        let added_at_ms = r.u64()?;
        let handle_checked_ms = r.u64()?;
        let count = usize::from(r.u16()?);
        let mut devices = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            devices.push(r.u32()?);
        }
        let mut record = Self {
            alias,
            identity,
            handle,
            display_name,
            trust,
            pending_identity,
            added_at_ms,
            handle_checked_ms,
            devices,
            reach: None,
            relay_hint: None,
            send_token: None,
            our_token: None,
            blocked: false,
            pending_devices: Vec::new(),
            request: false,
            invite_refused: 0,
        };
        if version >= VERSION_2 {
            record.reach = match r.u8()? {
                0 => None,
                1 => Some(r.bytes16("reachability record", MAX_SHORT_TEXT)?.to_vec()),
                _ => return Err(DecodeError::Invalid("reachability presence")),
            };
            record.relay_hint = read_opt_str(&mut r, "relay hint")?;
            record.send_token = read_opt_array(&mut r, "send token")?;
            record.our_token = read_opt_array(&mut r, "our token")?;
            record.blocked = read_bool(&mut r, "blocked flag")?;
        }
        if version >= VERSION_3 {
            let count = usize::from(r.u16()?);
            if count > 64 {
                return Err(DecodeError::Invalid("pending devices"));
            }
            for _ in 0..count {
                record.pending_devices.push(r.u32()?);
            }
        }
        if version >= VERSION_4 {
            record.request = read_bool(&mut r, "request flag")?;
            record.invite_refused = r.u8()?;
        }
        r.finish()?;
        Ok(record)
    }
}

/// Counters of a conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationMeta {
    /// The next message's sequence number.
    pub next_seq: u64,
    /// Messages stored.
    pub total: u64,
    /// Unread incoming messages.
    pub unread: u32,
    /// Incoming messages with a sequence number below this are read.
    pub read_below: u64,
    /// When the last message was stored.
    pub last_activity_ms: u64,
}

impl ConversationMeta {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(40);
        w.u8(VERSION);
        w.u64(self.next_seq);
        w.u64(self.total);
        w.u32(self.unread);
        w.u64(self.read_below);
        w.u64(self.last_activity_ms);
        w.into_bytes()
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version("conversation record", VERSION)?;
        let meta = Self {
            next_seq: r.u64()?,
            total: r.u64()?,
            unread: r.u32()?,
            read_below: r.u64()?,
            last_activity_ms: r.u64()?,
        };
        r.finish()?;
        Ok(meta)
    }
}

/// A message in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The sender's id for it.
    pub message_id: [u8; 16],
    /// In or out.
    pub direction: Direction,
    /// Sender's clock.
    pub timestamp_ms: u64,
    /// When stored here.
    pub stored_at_ms: u64,
    /// Status of an outgoing message.
    pub status: Option<MessageStatus>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Whether an incoming message was read.
    pub read: bool,
    /// The text.
    pub text: String,
}

fn status_byte(status: Option<MessageStatus>) -> u8 {
    match status {
        None => 0,
        Some(MessageStatus::Pending) => 1,
        Some(MessageStatus::Sent) => 2,
        Some(MessageStatus::Delivered) => 3,
        Some(MessageStatus::Read) => 4,
        Some(MessageStatus::Failed) => 5,
    }
}

impl MessageRecord {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48 + self.text.len());
        w.u8(VERSION);
        w.raw(&self.message_id);
        w.u8(match self.direction {
            Direction::Incoming => 0,
            Direction::Outgoing => 1,
        });
        w.u64(self.timestamp_ms);
        w.u64(self.stored_at_ms);
        w.u8(status_byte(self.status));
        opt_str(&mut w, self.failure.as_deref());
        w.u8(u8::from(self.read));
        w.bytes32(self.text.as_bytes());
        w.into_bytes()
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version("message record", VERSION)?;
        let message_id = r.array()?;
        let direction = match r.u8()? {
            0 => Direction::Incoming,
            1 => Direction::Outgoing,
            _ => return Err(DecodeError::Invalid("direction")),
        };
        let timestamp_ms = r.u64()?;
        let stored_at_ms = r.u64()?;
        let status = match r.u8()? {
            0 => None,
            1 => Some(MessageStatus::Pending),
            2 => Some(MessageStatus::Sent),
            3 => Some(MessageStatus::Delivered),
            4 => Some(MessageStatus::Read),
            5 => Some(MessageStatus::Failed),
            _ => return Err(DecodeError::Invalid("status")),
        };
        let failure = read_opt_str(&mut r, "failure")?;
        let read = read_bool(&mut r, "read flag")?;
        // A peer's invalid UTF-8 is stored lossily, and each bad byte can become a 3-byte
        // replacement character: allow for that, or such a message would make the history
        // unreadable.
        let text = std::str::from_utf8(r.bytes32("text", 3 * protocol::envelope::MAX_BODY_LEN)?)
            .map_err(|_| DecodeError::Invalid("text"))?
            .to_owned();
        r.finish()?;
        Ok(Self {
            message_id,
            direction,
            timestamp_ms,
            stored_at_ms,
            status,
            failure,
            read,
            text,
        })
    }
}

/// What an outbox entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A text message in the history (its status is tracked).
    Text,
    /// A read receipt or introduction: not in the history.
    Control,
    /// A delivery receipt (written as `Control` before key changes let them out alone): not
    /// in the history, and sent while the contact's key change waits for the user, to the
    /// key whose message it acknowledges (`sealed_for`).
    DeliveryReceipt,
}

/// A message waiting for the relay's acknowledgement.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The conversation (contact).
    pub conversation: [u8; 16],
    /// Text or control.
    pub kind: OutboxKind,
    /// The message id (for a text message, the history's).
    pub message_id: [u8; 16],
    /// The encoded `Content`, until it is encrypted.
    pub content: Zeroizing<Vec<u8>>,
    /// The sealed payloads per recipient device, once encrypted (then resent as they are).
    pub sealed: Vec<(u32, Vec<u8>)>,
    /// The identity they are sealed for.
    pub sealed_for: [u8; 32],
    /// Send attempts so far.
    pub attempts: u32,
    /// When it was queued.
    pub queued_at_ms: u64,
}

impl std::fmt::Debug for OutboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxEntry")
            .field("kind", &self.kind)
            .field("sealed", &self.sealed.len())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl OutboxEntry {
    /// Encodes.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let sealed_len: usize = self.sealed.iter().map(|(_, p)| p.len() + 8).sum();
        let mut w = Writer::with_capacity(128 + self.content.len() + sealed_len);
        w.u8(VERSION);
        w.raw(&self.conversation);
        w.u8(match self.kind {
            OutboxKind::Text => 0,
            OutboxKind::Control => 1,
            OutboxKind::DeliveryReceipt => 2,
        });
        w.raw(&self.message_id);
        w.bytes32(&self.content);
        w.u16(u16::try_from(self.sealed.len()).unwrap_or(u16::MAX));
        for (device, payload) in &self.sealed {
            w.u32(*device);
            w.bytes32(payload);
        }
        w.raw(&self.sealed_for);
        w.u32(self.attempts);
        w.u64(self.queued_at_ms);
        Zeroizing::new(w.into_bytes())
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version("outbox entry", VERSION)?;
        let conversation = r.array()?;
        let kind = match r.u8()? {
            0 => OutboxKind::Text,
            1 => OutboxKind::Control,
            2 => OutboxKind::DeliveryReceipt,
            _ => return Err(DecodeError::Invalid("outbox kind")),
        };
        let message_id = r.array()?;
        let content = Zeroizing::new(r.bytes32("content", 2 * 1024 * 1024)?.to_vec());
        let count = usize::from(r.u16()?);
        let mut sealed = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let device = r.u32()?;
            let payload = r
                .bytes32("payload", protocol::frames::MAX_PAYLOAD_LEN)?
                .to_vec();
            sealed.push((device, payload));
        }
        let entry = Self {
            conversation,
            kind,
            message_id,
            content,
            sealed,
            sealed_for: r.array()?,
            attempts: r.u32()?,
            queued_at_ms: r.u64()?,
        };
        r.finish()?;
        Ok(entry)
    }
}

/// An invite this account created.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InviteRecord {
    /// When it stops working.
    pub expires_at_ms: u64,
    /// Whether someone used it.
    pub used: bool,
    /// The delivery token the code hands out; it becomes the new contact's `our_token`.
    pub delivery_token: Option<[u8; 16]>,
}

impl std::fmt::Debug for InviteRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The delivery token is a credential: only whether it is there is shown.
        f.debug_struct("InviteRecord")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("used", &self.used)
            .field("delivery_token", &self.delivery_token.map(|_| ".."))
            .finish()
    }
}

impl InviteRecord {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(28);
        w.u8(VERSION_2);
        w.u64(self.expires_at_ms);
        w.u8(u8::from(self.used));
        opt_array(&mut w, self.delivery_token.as_ref());
        w.into_bytes()
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = read_version(&mut r, "invite record")?;
        let record = Self {
            expires_at_ms: r.u64()?,
            used: read_bool(&mut r, "used flag")?,
            delivery_token: if version == VERSION_2 {
                read_opt_array(&mut r, "delivery token")?
            } else {
                None
            },
        };
        r.finish()?;
        Ok(record)
    }
}

/// Builds a `MESSAGES` key.
pub fn message_key(conversation: &[u8; 16], seq: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(conversation);
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_trailing_bytes() {
        let contact = ContactRecord {
            alias: "bob".into(),
            identity: [7; 32],
            handle: Some("bob".into()),
            display_name: None,
            trust: Trust::KeyChanged,
            pending_identity: Some([8; 32]),
            added_at_ms: 5,
            handle_checked_ms: 6,
            devices: vec![1, 2],
            reach: Some(vec![1, 2, 3]),
            relay_hint: Some("ws://127.0.0.1:7421/v1".into()),
            send_token: Some([9; 16]),
            our_token: None,
            blocked: true,
            pending_devices: vec![3],
            request: true,
            invite_refused: 1,
        };
        assert_eq!(
            ContactRecord::decode(&contact.encode()),
            Ok(contact.clone())
        );
        let mut long = contact.encode();
        long.push(0);
        assert!(ContactRecord::decode(&long).is_err());

        let message = MessageRecord {
            message_id: [1; 16],
            direction: Direction::Outgoing,
            timestamp_ms: 1,
            stored_at_ms: 2,
            status: Some(MessageStatus::Delivered),
            failure: None,
            read: false,
            text: "héllo".into(),
        };
        assert_eq!(
            MessageRecord::decode(&message.encode()),
            Ok(message.clone())
        );
        // The largest body a peer can send, all invalid UTF-8, as stored after lossy decoding.
        let lossy = MessageRecord {
            text: "\u{FFFD}".repeat(protocol::envelope::MAX_BODY_LEN),
            ..message
        };
        assert_eq!(MessageRecord::decode(&lossy.encode()), Ok(lossy));

        let entry = OutboxEntry {
            conversation: [3; 16],
            kind: OutboxKind::Text,
            message_id: [4; 16],
            content: Zeroizing::new(vec![9; 40]),
            sealed: vec![(1, vec![5; 100])],
            sealed_for: [6; 32],
            attempts: 2,
            queued_at_ms: 3,
        };
        let decoded = OutboxEntry::decode(&entry.encode());
        assert!(decoded.as_ref().is_ok_and(|d| d == &entry), "{decoded:?}");

        let meta = ConversationMeta {
            next_seq: 3,
            total: 3,
            unread: 1,
            read_below: 2,
            last_activity_ms: 9,
        };
        assert_eq!(ConversationMeta::decode(&meta.encode()), Ok(meta));

        let invite = InviteRecord {
            expires_at_ms: 7,
            used: false,
            delivery_token: Some([2; 16]),
        };
        assert_eq!(InviteRecord::decode(&invite.encode()), Ok(invite));
        for truncated in 0..meta.encode().len() {
            assert!(ConversationMeta::decode(&meta.encode()[..truncated]).is_err());
        }
    }

    #[test]
    fn debug_shows_no_delivery_token() {
        let invite = InviteRecord {
            expires_at_ms: 7,
            used: false,
            delivery_token: Some([0xab; 16]),
        };
        let text = format!("{invite:?}");
        assert!(!text.contains("171") && !text.contains("ab"), "{text}");
    }

    #[test]
    fn version_1_records_still_decode_with_defaults() {
        // A version 1 contact: alias, identity, no handle, no name, unverified, no pending
        // key, added at 5, checked at 6, no devices.
        let mut w = Writer::new();
        w.u8(1);
        w.str16("bob");
        w.raw(&[7; 32]);
        w.u8(0);
        w.u8(0);
        w.u8(0);
        w.u8(0);
        w.u64(5);
        w.u64(6);
        w.u16(0);
        let contact = ContactRecord::decode(&w.into_bytes()).unwrap();
        assert_eq!(contact.reach, None);
        assert_eq!(contact.our_token, None);
        assert!(!contact.blocked);
        assert!(!contact.request, "an old contact is an accepted one");
        let mut w = Writer::new();
        w.u8(1);
        w.u64(9);
        w.u8(1);
        let invite = InviteRecord::decode(&w.into_bytes()).unwrap();
        assert_eq!(invite.delivery_token, None);
        assert!(invite.used);
    }
}
