//! The unlocked account: keys, the store, in-memory indexes of contacts and conversations, the
//! session cache, the outbox schedule and the relay link. Dropping it zeroizes every secret
//! (the protocol key types and the account record zeroize on drop) and stops the link.

use std::collections::{BTreeMap, HashMap, HashSet};

use api::ErrorCode;
use api::types::Trust;
use protocol::address::Address;
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKey, IdentityKeyPair, LocalDevice};
use protocol::pqxdh::ReplayGuard;
use protocol::session::SessionRecord;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::records::{
    AccountRecord, ContactRecord, ConversationMeta, OutboxEntry, OutboxKind, tables,
};
use crate::error::{ApiError, ApiResult};
use crate::relay_link::RelayLink;
use crate::store::{Store, StoreError};

/// A conversation id: 16 random bytes, the key of a contact and its conversation.
pub type ConvId = [u8; 16];

/// Delivery receipts owed per conversation: each message id with the key that sent it.
pub type OwedReceipts = HashMap<ConvId, Vec<([u8; 16], [u8; 32])>>;

/// Where an outbox entry stands, in memory.
#[derive(Debug, Clone)]
pub struct OutboxSlot {
    /// The conversation.
    pub conversation: ConvId,
    /// Text or control.
    pub kind: OutboxKind,
    /// The message id.
    pub message_id: [u8; 16],
    /// Whether the payloads are sealed.
    pub sealed: bool,
    /// Whether a `Send` with it is waiting for the relay's answer.
    pub in_flight: bool,
    /// Not before this instant (backoff after a failure).
    pub not_before: Option<Instant>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The unlocked account.
pub struct Unlocked {
    /// The store (shared, so a batch can be built while the rest of the state changes).
    pub store: std::sync::Arc<Store>,
    /// The wall clock (the core's, [`crate::core::CoreConfig::clock`]).
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// The account record.
    pub account: AccountRecord,
    /// The identity key pair.
    pub identity: IdentityKeyPair,
    /// This device.
    pub local: LocalDevice,
    /// Initial messages without a one-time prekey already seen.
    pub replay: ReplayGuard,
    /// Contacts by conversation id.
    pub contacts: HashMap<ConvId, ContactRecord>,
    /// Conversation counters.
    pub conversations: HashMap<ConvId, ConversationMeta>,
    /// Alias, as `alias::key` folds it (aliases ignore case) -> conversation.
    pub by_alias: HashMap<String, ConvId>,
    /// Identity -> conversation.
    pub by_identity: HashMap<[u8; 32], ConvId>,
    /// Loaded session records by (peer identity, device).
    pub sessions: HashMap<([u8; 32], u32), SessionRecord>,
    /// The outbox schedule, by outbox sequence.
    pub outbox: BTreeMap<u64, OutboxSlot>,
    /// The next outbox sequence.
    pub next_outbox_seq: u64,
    /// Conversations whose bundles are being fetched.
    pub fetching: HashSet<ConvId>,
    /// The relay link.
    pub link: Option<RelayLink>,
    /// Anonymous links to contacts' relays when they are not ours (SPEC.md 10.9).
    pub pool: crate::relay_pool::RelayPool,
    /// Authenticated links to the relays the account moved away from, drained until quiet
    /// (`account.draining`), with when each last delivered something.
    pub draining: HashMap<String, (RelayLink, Instant)>,
    /// Envelopes from the draining relays stored this round, acknowledged to their relay once
    /// the round is durable.
    pub pending_drain_acks: HashMap<String, Vec<protocol::frames::EnvelopeId>>,
    /// Failed attempts per conversation on its current route: a contact's record may list
    /// several URLs of its relay, tried in turn ([`super::reach::route`]).
    pub route_attempts: HashMap<ConvId, u32>,
    /// Why each conversation's queued messages are waiting, as last shown (so the reason is
    /// recorded once, not at every retry).
    pub held: HashMap<ConvId, String>,
    /// Reasons found this round, recorded and announced at its end
    /// (`messaging::outbox::announce_held`).
    pub pending_holds: HashMap<ConvId, String>,
    /// Whether the relay connection is up and prekeys were checked.
    pub online: bool,
    /// Background requests (bundle fetches, sends); aborted on lock.
    pub tasks: JoinSet<()>,
    /// Delivery receipts to queue at the end of the round, per conversation: the message id
    /// and the key that sent it (the receipt goes back to that key).
    pub pending_receipts: OwedReceipts,
    /// Receipts owed for messages stored this round: they wait for the next round, so that
    /// sealing them does not delay this round's flush and its `message.received` events.
    pub fresh_receipts: OwedReceipts,
    /// Envelopes stored this round, acknowledged once the round is durable.
    pub pending_acks: Vec<protocol::frames::EnvelopeId>,
    /// A one-time prekey was used since the relay's counts were last asked for.
    pub prekeys_used: bool,
    /// When the counts were last asked for.
    pub prekeys_checked: Option<Instant>,
    /// Cursors of the events in the retained log, oldest first.
    pub retained_events: std::collections::VecDeque<u64>,
    /// Whether the store key is kept without a passphrase.
    pub unprotected: bool,
    /// The `issued_at` of the last claim or release signed per handle: the relay wants each
    /// statement strictly newer than the one it holds (SPEC.md 10.6).
    pub handle_statements: HashMap<String, u64>,
    /// Recent envelope key agreements that authenticated, so a batch sealed under one costs
    /// one DH here too (zeroized with the rest on lock).
    pub opener: protocol::envelope::Opener,
    /// Whether the store holds `MESSAGE_INDEX` entries from before outgoing ids named their
    /// place. Without any, a message id that does not decrypt to a stored message (a peer's
    /// receipt may carry thousands) costs no keyed hash and no random read.
    pub has_legacy_index: bool,
}

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocked")
            .field("contacts", &self.contacts.len())
            .field("outbox", &self.outbox.len())
            .field("online", &self.online)
            .finish_non_exhaustive()
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt(what)
}

impl Unlocked {
    /// Rebuilds the account's keys and in-memory indexes from an unlocked store.
    pub fn load(store: Store, clock: std::sync::Arc<dyn crate::clock::Clock>) -> ApiResult<Self> {
        Self::load_shared(std::sync::Arc::new(store), clock)
    }

    fn load_shared(
        store: std::sync::Arc<Store>,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> ApiResult<Self> {
        let account = store
            .get(tables::ACCOUNT, b"account")?
            .ok_or(corrupt("the account record is missing"))?;
        let account = AccountRecord::decode(&account).map_err(|_| corrupt("the account record"))?;
        let replay = match store.get(tables::ACCOUNT, b"replay")? {
            Some(bytes) => {
                use protocol::codec::Decode;
                ReplayGuard::from_bytes(&bytes).map_err(|_| corrupt("the replay guard"))?
            }
            None => ReplayGuard::new(),
        };
        let (identity, local) = keys_of(&account)?;
        let mut unlocked = Self {
            store,
            clock,
            account,
            identity,
            local,
            replay,
            contacts: HashMap::new(),
            conversations: HashMap::new(),
            by_alias: HashMap::new(),
            by_identity: HashMap::new(),
            sessions: HashMap::new(),
            outbox: BTreeMap::new(),
            next_outbox_seq: 1,
            fetching: HashSet::new(),
            link: None,
            pool: crate::relay_pool::RelayPool::default(),
            draining: HashMap::new(),
            pending_drain_acks: HashMap::new(),
            route_attempts: HashMap::new(),
            held: HashMap::new(),
            pending_holds: HashMap::new(),
            online: false,
            tasks: JoinSet::new(),
            pending_receipts: HashMap::new(),
            fresh_receipts: HashMap::new(),
            pending_acks: Vec::new(),
            prekeys_used: false,
            prekeys_checked: None,
            handle_statements: HashMap::new(),
            opener: protocol::envelope::Opener::new(),
            unprotected: false,
            retained_events: std::collections::VecDeque::new(),
            has_legacy_index: false,
        };
        unlocked.load_indexes()?;
        Ok(unlocked)
    }

    /// Loads everything this holds from the store again, as [`Unlocked::load`] would, after a
    /// round that failed to commit: caches (sessions, the envelope opener's agreements),
    /// contacts, conversations and their message sequences, the outbox and its sequence, owed
    /// receipts, the retained event log and the account record all go back to what the store
    /// holds. Kept: the store and its keys, the relay links (home, other relays', drained
    /// ones), background tasks, and what only memory knows about requests in flight (which
    /// outbox entries wait for the relay's answer, their retry times and route attempts,
    /// prekey checks, handle statement times).
    pub fn reload(&mut self) -> ApiResult<()> {
        let mut fresh = Self::load_shared(self.store.clone(), self.clock.clone())?;
        fresh.link = self.link.take();
        fresh.pool = std::mem::take(&mut self.pool);
        fresh.draining = std::mem::take(&mut self.draining);
        fresh.route_attempts = std::mem::take(&mut self.route_attempts);
        // `held` is not kept: what it says was announced may be what the failed round wrote,
        // so the next failure records its reason again.
        fresh.online = self.online;
        std::mem::swap(&mut fresh.tasks, &mut self.tasks);
        fresh.prekeys_used = self.prekeys_used;
        fresh.prekeys_checked = self.prekeys_checked;
        fresh.unprotected = self.unprotected;
        fresh.handle_statements = std::mem::take(&mut self.handle_statements);
        for (seq, slot) in &mut fresh.outbox {
            if let Some(old) = self.outbox.get(seq)
                && old.message_id == slot.message_id
            {
                slot.in_flight = old.in_flight;
                slot.not_before = old.not_before;
                slot.attempts = slot.attempts.max(old.attempts);
            }
        }
        *self = fresh;
        Ok(())
    }

    fn load_indexes(&mut self) -> ApiResult<()> {
        self.has_legacy_index = self
            .store
            .scan(tables::MESSAGE_INDEX, &[])
            .next()
            .transpose()?
            .is_some();
        let mut contacts = Vec::new();
        for item in self.store.scan(tables::CONTACTS, &[]) {
            let (key, value) = item?;
            let id: ConvId = key.try_into().map_err(|_| corrupt("a contact key"))?;
            let record = ContactRecord::decode(&value).map_err(|_| corrupt("a contact"))?;
            contacts.push((id, record));
        }
        for (id, record) in contacts {
            self.index_contact(id, record);
        }
        for item in self.store.scan(tables::CONVERSATIONS, &[]) {
            let (key, value) = item?;
            let id: ConvId = key.try_into().map_err(|_| corrupt("a conversation key"))?;
            let meta = ConversationMeta::decode(&value).map_err(|_| corrupt("a conversation"))?;
            self.conversations.insert(id, meta);
        }
        for item in self.store.scan(tables::EVENTS, &[]) {
            let (key, _) = item?;
            let cursor = <[u8; 8]>::try_from(key.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("an event key"))?;
            self.retained_events.push_back(cursor);
        }
        for item in self.store.scan(tables::OWED_RECEIPTS, &[]) {
            let (key, value) = item?;
            let conversation: ConvId = key
                .get(..16)
                .and_then(|k| k.try_into().ok())
                .ok_or(corrupt("an owed receipt key"))?;
            let id: [u8; 16] = key
                .get(16..32)
                .and_then(|k| k.try_into().ok())
                .ok_or(corrupt("an owed receipt key"))?;
            // The key that sent the message; written empty before key changes let receipts
            // out, when it was always the contact's (a contact gone since: never sent).
            let to = match <[u8; 32]>::try_from(value.as_slice()) {
                Ok(to) => to,
                Err(_) if value.is_empty() => self
                    .contacts
                    .get(&conversation)
                    .map_or([0; 32], |contact| contact.identity),
                Err(_) => return Err(corrupt("an owed receipt").into()),
            };
            self.pending_receipts
                .entry(conversation)
                .or_default()
                .push((id, to));
        }
        for item in self.store.scan(tables::OUTBOX, &[]) {
            let (key, value) = item?;
            let seq = u64::from_be_bytes(key.try_into().map_err(|_| corrupt("an outbox key"))?);
            let entry = OutboxEntry::decode(&value).map_err(|_| corrupt("an outbox entry"))?;
            self.outbox.insert(
                seq,
                OutboxSlot {
                    conversation: entry.conversation,
                    kind: entry.kind,
                    message_id: entry.message_id,
                    sealed: !entry.sealed.is_empty(),
                    in_flight: false,
                    not_before: None,
                    attempts: entry.attempts,
                },
            );
            self.next_outbox_seq = self.next_outbox_seq.max(seq + 1);
        }
        Ok(())
    }

    /// Adds a contact to the in-memory indexes (not to the store).
    pub fn index_contact(&mut self, id: ConvId, record: ContactRecord) {
        self.by_alias.insert(super::alias::key(&record.alias), id);
        self.by_identity.insert(record.identity, id);
        self.contacts.insert(id, record);
    }

    /// Removes a contact from the indexes.
    pub fn unindex_contact(&mut self, id: &ConvId) -> Option<ContactRecord> {
        let record = self.contacts.remove(id)?;
        self.by_alias.remove(&super::alias::key(&record.alias));
        if self.by_identity.get(&record.identity) == Some(id) {
            self.by_identity.remove(&record.identity);
        }
        Some(record)
    }

    /// This account's address.
    pub fn address(&self) -> String {
        Address::new(self.identity.public_key().ed25519()).to_string()
    }

    /// Finds a contact by any name for it (`super::resolve`: alias in any case, `@alias`,
    /// `@handle`, address).
    pub fn find_contact(&self, name: &str) -> ApiResult<ConvId> {
        super::resolve::contact(self, name)
    }

    /// The contact by id.
    pub fn contact(&self, id: &ConvId) -> ApiResult<&ContactRecord> {
        self.contacts
            .get(id)
            .ok_or_else(|| ApiError::not_found("contact"))
    }

    /// The contact's session record with `device`, loaded from the store on first use.
    pub fn session(&mut self, identity: [u8; 32], device: u32) -> ApiResult<&mut SessionRecord> {
        if !self.sessions.contains_key(&(identity, device)) {
            let key = self.session_key(&identity, device);
            let record = match self.store.get(tables::SESSIONS, &key)? {
                Some(pickle) => SessionRecord::from_encrypted(self.store.pickle_key(), &pickle)
                    .map_err(|_| corrupt("a session record"))?,
                None => SessionRecord::new(),
            };
            self.sessions.insert((identity, device), record);
        }
        self.sessions
            .get_mut(&(identity, device))
            .ok_or_else(|| ApiError::store("session cache"))
    }

    /// The store key of a session record.
    pub fn session_key(&self, identity: &[u8; 32], device: u32) -> [u8; 16] {
        let mut plain = [0u8; 36];
        plain[..32].copy_from_slice(identity);
        plain[32..].copy_from_slice(&device.to_be_bytes());
        self.store.index(tables::SESSIONS, &plain)
    }

    /// Writes a session record into `batch`.
    pub fn save_session(
        &self,
        batch: &mut crate::store::Batch<'_>,
        identity: &[u8; 32],
        device: u32,
    ) {
        if let Some(record) = self.sessions.get(&(*identity, device)) {
            let pickle = record.to_encrypted(self.store.pickle_key(), &mut rand::rng());
            batch.put(
                tables::SESSIONS,
                &self.session_key(identity, device),
                &pickle,
            );
        }
    }

    /// Drops every session with `identity` (cached ones and `devices`) from memory and, in
    /// `batch`, from the store.
    pub fn forget_sessions(
        &mut self,
        batch: &mut crate::store::Batch<'_>,
        identity: &[u8; 32],
        devices: &[u32],
    ) {
        let mut all: Vec<u32> = self
            .sessions
            .keys()
            .filter(|(peer, _)| peer == identity)
            .map(|(_, d)| *d)
            .chain(devices.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        for device in all {
            self.sessions.remove(&(*identity, device));
            batch.delete(tables::SESSIONS, &self.session_key(identity, device));
        }
    }

    /// Checks an alias a person chose (`super::alias::check`).
    pub fn check_alias(alias: &str) -> ApiResult<()> {
        super::alias::check(alias)
    }

    /// An alias not yet used (ignoring case), made typeable from `base` (a peer's display
    /// name, a handle), else from the address of `identity` (`super::alias::free`).
    pub fn free_alias(&self, base: &str, identity: &[u8; 32]) -> String {
        super::alias::free(&self.by_alias, base, &address_of(identity))
    }

    /// The `issued_at` (seconds) for a new claim or release of `handle`: now, or one second
    /// after the last statement about it if that is not yet in the past.
    pub fn handle_issued_at(&mut self, handle: &str, now_s: u64) -> u64 {
        // Only the last second or two matter; forget older ones so the map stays small.
        self.handle_statements.retain(|_, t| *t + 2 >= now_s);
        let last = self.handle_statements.get(handle).copied().unwrap_or(0);
        let issued_at = now_s.max(last + 1);
        self.handle_statements.insert(handle.to_owned(), issued_at);
        issued_at
    }

    /// Whether the contact may be sent to: not while its key change waits, nor while it is a
    /// message request or refused our acceptance of its invite (`super::requests`).
    pub fn check_trusted(&self, id: &ConvId) -> ApiResult<()> {
        let contact = self.contact(id)?;
        if contact.trust == Trust::KeyChanged {
            return Err(ApiError::new(
                ErrorCode::UntrustedKeyChange,
                format!(
                    "the identity key of {0} changed: compare the new safety number \
                     (`chatctl contact show {0}`), then accept the new key with `chatctl contact \
                     verify {0}` (or `chatctl contact trust {0}`)",
                    contact.alias
                ),
            ));
        }
        super::requests::check_writable(self, id)
    }
}

/// Rebuilds the identity and device keys from the account record.
pub fn keys_of(account: &AccountRecord) -> ApiResult<(IdentityKeyPair, LocalDevice)> {
    let identity = IdentityKeyPair::from_seed(&account.identity_seed);
    let device_id =
        DeviceId::new(account.device_id).map_err(|_| corrupt("the account's device id"))?;
    let keys = DeviceKeyPair::from_seeds(
        device_id,
        &account.device_signing_seed,
        &account.device_dh_secret,
    );
    let local = LocalDevice::new(&identity, keys, account.device_certified_at);
    Ok((identity, local))
}

/// Parses a 32-byte identity into a key.
pub fn identity_key(bytes: &[u8; 32]) -> ApiResult<IdentityKey> {
    IdentityKey::from_bytes(bytes).map_err(|_| ApiError::store("a stored identity key"))
}

/// The address text of an identity.
pub fn address_of(bytes: &[u8; 32]) -> String {
    match IdentityKey::from_bytes(bytes) {
        Ok(key) => Address::new(key.ed25519()).to_string(),
        Err(_) => "(invalid key)".to_owned(),
    }
}
