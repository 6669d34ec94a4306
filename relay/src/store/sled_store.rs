//! [`SledStore`]: the relay's durable state in a `sled` database.
//!
//! # Layout
//!
//! One tree per kind of record; `addr` is [`DeviceAddr::to_key`] (identity || device id, 36
//! bytes) and every integer is big-endian, so keys sort the way they are scanned.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `devices` | `addr` | `DeviceCertificate` (protocol codec) |
//! | `prekeys` | `addr \|\| kind u8 \|\| id u32` | `SignedPrekey`, `KemPrekey` or `OneTimePrekey` |
//! | `mailboxes` | [`mailbox_key`]: `addr \|\| seq u64` | [`encode_mailbox_value`] |
//! | `expiry` | `received_at u64 \|\| addr \|\| seq u64` | empty |
//! | `handles` | handle text | `HandleClaim` (protocol codec) |
//! | `handle_owners` | identity (32) \|\| handle text | empty (counts an identity's handles) |
//! | `handle_releases` | handle text | `issued_at` u64 of the handle's last release |
//! | `delivery_tokens` | identity (32) \|\| 0 | policy u8 \|\| digest count u32 |
//! | `delivery_tokens` | identity (32) \|\| 1 \|\| token digest (32) | state u8: 1 accepted, 2 revoked |
//! | `reachability` | identity (32) | `ReachabilityRecord` (protocol codec) |
//! | `key_packages` | `addr \|\| 1` | the last-resort KeyPackage (its bytes) |
//! | `key_packages` | `addr \|\| 2 \|\| id u64` | a pool KeyPackage; `id` from sled's `generate_id`, increasing, so the oldest sorts first |
//! | `groups` | group id (32) | [`encode_group`]: epoch u64, post key (32), previous key presence u8 (and key), next seq u64, last post u64 |
//! | `group_subscribers` | group id (32) \|\| `addr` | empty |
//! | `meta` | name | schema version, last sequence number, relay secret |
//!
//! Prekey kinds: 1 the signed prekey and 2 the last-resort KEM prekey (id 0: one each), 3
//! one-time KEM prekeys and 4 one-time X25519 prekeys by id, so a prefix scan finds the lowest
//! id first.
//!
//! # Concurrency and atomicity
//!
//! - `take_bundle` removes each one-time key with a compare-and-swap from its current value to
//!   nothing, retrying on the next key when another caller won (sled's own `pop_min` pattern):
//!   a key is handed out only by the caller whose swap removed it. It checks that a bundle can
//!   be built (certificate, signed prekey, some KEM prekey) before consuming anything. When
//!   it consumed a one-time key it flushes before it returns, so the bundle leaves the relay
//!   only once the removal is durable: a crash cannot hand the same key out twice.
//! - Handle claims and releases are compare-and-swap loops on the handle's record. A release
//!   records its `issued_at` in `handle_releases` before it removes the claim, so a claim that
//!   finds the handle free always sees the release that freed it.
//! - `put_device` and `publish_prekeys` check a cap and then write; a mutex (`directory`)
//!   serialises them. Both are rare (an authentication that changes a certificate, a publish),
//!   and re-sending the stored certificate takes a lock-free fast path.
//! - `set_delivery_tokens` reads an account's records and writes the update as one
//!   `apply_batch` on the `delivery_tokens` tree under a mutex (`tokens`): atomic, including
//!   the count the cap is checked against. Updates are rare (a new contact, a block), so the
//!   global lock of `apply_batch` costs nothing that matters.
//! - `put_reachability` is a compare-and-swap loop on the identity's record.
//! - `take_key_package` removes a pool KeyPackage with the same compare-and-swap as
//!   `take_bundle` (`take_first`) and flushes before it returns; `publish_key_packages` checks
//!   the cap and writes under `directory`, like `publish_prekeys`, and `put_device` deletes a
//!   device's KeyPackages with its prekeys when its keys change.
//! - Groups have one writer, the group commit (and the TTL sweep, which only deletes groups
//!   nobody posted to for the TTL): `put_group` writes the record, then the subscribers that
//!   changed, without a lock.
//! - Mailbox writers (`enqueue`, `ack`, `expire`, the TTL deletions of `pending`) hold the
//!   `mailbox` mutex, which guards the per-device envelope counts; readers do not take it.
//!
//! # Counts
//!
//! Envelope counts and bytes ([`stored_size`]) per device live in memory only
//! (`MailboxCounts`), rebuilt at [`SledStore::open`] by one scan of the `mailboxes` tree, then kept exact by the writers: a
//! quota check is a hash lookup, and no counter record has to be rewritten on every enqueue.
//! Removals count what `remove` says existed, so a duplicate ack or an ack racing the expiry
//! sweep is counted once. The open-time scan reads every envelope once (its value's length).
//!
//! # TTL index and crash ordering
//!
//! `expiry` lets [`SledStore::expire`] read only the expired envelopes' index entries instead of
//! every mailbox. `enqueue` writes a batch's `expiry` entries, then its `mailboxes` entries, then
//! records the batch's last sequence number in `meta`, which commits the batch; removals delete
//! the mailbox entry first, then its index entry. sled recovers a prefix of its log, so after a
//! crash every envelope still has its index entry; an index entry without an envelope is deleted
//! by the next sweep, uncounted. A batch whose record did not survive was never flushed, so no
//! sender was told it is stored: [`SledStore::open`] deletes its envelopes (sequence numbers
//! above the recorded one), so a batch is stored whole or not at all.
//!
//! The entries are single inserts, not `apply_batch`: sled serialises a batch against every
//! other operation on the database with one global lock, so each group commit would stall every
//! connection's reads and acknowledgements for as long as the batch takes.
//! `pending` applies the TTL itself, so an envelope is never delivered after its TTL, whatever
//! the sweep does. [`SledStore::last_sequence`] is the larger of the recorded one and the largest
//! stored sequence number, so it never goes back even if the record were lost.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protocol::codec::{Decode, Encode};
use protocol::frames::{
    GroupId, Handle, HandleClaim, HandleRelease, KeyPackage, PostKey, TokenPolicy,
};
use protocol::identity::{DeviceCertificate, DeviceId, IdentityKey, VerifiedDevice};
use protocol::prekeys::{KemPrekey, OneTimePrekey, PrekeyBundle, PrekeyId, SignedPrekey};
use protocol::reachability::ReachabilityRecord;
use rand::Rng;
use sled::{Batch, IVec, Tree};

use crate::config::SledSettings;

use super::{
    ClaimOutcome, DeliveryTokens, DeviceAddr, DeviceOutcome, EnqueueOutcome, Group,
    KeyPackageCount, MAX_DEVICES_PER_IDENTITY, MAX_HANDLES_PER_IDENTITY, MAX_STORED_KEM_PREKEYS,
    MAX_STORED_KEY_PACKAGES, MAX_STORED_ONE_TIME_PREKEYS, MailboxEntry, PrekeyCounts, PublishError,
    RecordOutcome, StoreError, StoreStats, TokenDigest, TokenQuotaExceeded, TokenState,
    decode_mailbox_value, encode_mailbox_value, is_expired, mailbox_key, stored_size,
    token_changes,
};

/// The layout version in `meta`; a database with another one is refused at open.
const SCHEMA_VERSION: u8 = 1;
const META_SCHEMA_VERSION: &[u8] = b"schema_version";
const META_LAST_SEQUENCE: &[u8] = b"last_sequence";
const META_RELAY_SECRET: &[u8] = b"relay_secret";

const PREKEY_SIGNED: u8 = 1;
const PREKEY_LAST_RESORT: u8 = 2;
const PREKEY_KEM: u8 = 3;
const PREKEY_ONE_TIME: u8 = 4;

const KEY_PACKAGE_LAST_RESORT: u8 = 1;
const KEY_PACKAGE_POOL: u8 = 2;

/// Index entries [`SledStore::expire`] handles per lock hold, so that a large sweep does not
/// stall senders for long.
const EXPIRE_CHUNK: usize = 1024;

/// Length of a device address key.
const ADDR_LEN: usize = 36;
/// Length of a mailbox key: address and sequence number.
const MAILBOX_KEY_LEN: usize = ADDR_LEN + 8;
/// Length of an expiry index key: arrival time, address and sequence number.
const EXPIRY_KEY_LEN: usize = 8 + MAILBOX_KEY_LEN;

/// The relay's state in a `sled` database. Cloning is cheap and shares the database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    devices: Tree,
    prekeys: Tree,
    mailboxes: Tree,
    expiry: Tree,
    handles: Tree,
    /// `identity || handle text` -> empty: which handles an identity holds (for the cap).
    handle_owners: Tree,
    /// Handle text -> `issued_at` of its last release.
    handle_releases: Tree,
    /// Per account: the token policy and digest count, and each token digest's state.
    delivery_tokens: Tree,
    /// Identity -> its newest reachability record.
    reachability: Tree,
    /// Per device: its last-resort KeyPackage and its pool, oldest first.
    key_packages: Tree,
    /// Group id -> its record.
    groups: Tree,
    /// Group id || device address -> empty: each group's subscribers.
    group_subscribers: Tree,
    meta: Tree,
    /// Serialises the read-check-write of `set_delivery_tokens`.
    tokens: Mutex<()>,
    /// Serialises the check-then-write of `put_device` and `publish_prekeys`.
    directory: Mutex<()>,
    /// Envelope counts; held by every mailbox writer.
    mailbox: Mutex<MailboxCounts>,
    /// Stored device certificates.
    device_count: AtomicU64,
}

/// What the mailbox writers keep in memory (see the module documentation).
#[derive(Debug, Default)]
struct MailboxCounts {
    /// Envelopes per device address key; devices with none are absent.
    per_device: HashMap<[u8; ADDR_LEN], usize>,
    /// Envelopes in all mailboxes.
    total: u64,
    /// [`stored_size`] of each device's envelopes (devices with none are absent) and of all.
    bytes_per_device: HashMap<[u8; ADDR_LEN], u64>,
    bytes: u64,
    /// The largest sequence number assigned.
    last_sequence: u64,
}

impl MailboxCounts {
    fn held(&self, device: &[u8; ADDR_LEN]) -> usize {
        self.per_device.get(device).copied().unwrap_or(0)
    }

    fn bytes_held(&self, device: &[u8; ADDR_LEN]) -> u64 {
        self.bytes_per_device.get(device).copied().unwrap_or(0)
    }

    /// Counts `n` envelopes of `bytes` ([`stored_size`]) together for `device`.
    fn add(&mut self, device: [u8; ADDR_LEN], n: usize, bytes: u64) {
        *self.per_device.entry(device).or_default() += n;
        self.total = self.total.saturating_add(n as u64);
        *self.bytes_per_device.entry(device).or_default() += bytes;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Uncounts one envelope whose stored value is `value_len` bytes long.
    fn remove_one(&mut self, device: &[u8; ADDR_LEN], value_len: usize) {
        if let Some(held) = self.per_device.get_mut(device) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_device.remove(device);
                self.bytes_per_device.remove(device);
            }
        }
        self.total = self.total.saturating_sub(1);
        let size = value_size(value_len);
        if let Some(bytes) = self.bytes_per_device.get_mut(device) {
            *bytes = bytes.saturating_sub(size);
        }
        self.bytes = self.bytes.saturating_sub(size);
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sled's own Debug prints every record, the relay secret included.
        let stats = self.stats();
        f.debug_struct("SledStore")
            .field("devices", &stats.devices)
            .field("envelopes", &stats.envelopes)
            .finish_non_exhaustive()
    }
}

/// Decodes a stored protocol value.
fn decode<T: Decode>(bytes: &[u8], tree: &'static str) -> Result<T, StoreError> {
    T::from_bytes(bytes).map_err(|_| StoreError::Corrupt(tree))
}

/// [`stored_size`] of an envelope whose mailbox value ([`encode_mailbox_value`]: 24 bytes,
/// then the payload) is `value_len` bytes long.
fn value_size(value_len: usize) -> u64 {
    stored_size(value_len.saturating_sub(24))
}

/// Reads a stored big-endian `u64`.
fn decode_u64(bytes: &[u8], tree: &'static str) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt(tree))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Splits a mailbox key into the device address key and the sequence number.
fn split_mailbox_key(key: &[u8]) -> Result<([u8; ADDR_LEN], u64), StoreError> {
    let key: &[u8; MAILBOX_KEY_LEN] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("mailboxes"))?;
    let (device, seq) = key
        .split_first_chunk::<ADDR_LEN>()
        .ok_or(StoreError::Corrupt("mailboxes"))?;
    Ok((*device, decode_u64(seq, "mailboxes")?))
}

/// The expiry index key of an envelope: `received_at || addr || seq`; its last 44 bytes are
/// the envelope's mailbox key.
fn expiry_key(received_at: u64, mailbox_key: &[u8; MAILBOX_KEY_LEN]) -> [u8; EXPIRY_KEY_LEN] {
    let mut key = [0u8; EXPIRY_KEY_LEN];
    key[..8].copy_from_slice(&received_at.to_be_bytes());
    key[8..].copy_from_slice(mailbox_key);
    key
}

/// The prefix of one kind of a device's prekeys.
fn prekey_prefix(addr: &DeviceAddr, kind: u8) -> [u8; ADDR_LEN + 1] {
    let mut key = [0u8; ADDR_LEN + 1];
    key[..ADDR_LEN].copy_from_slice(&addr.to_key());
    key[ADDR_LEN] = kind;
    key
}

/// The key of one prekey.
fn prekey_key(addr: &DeviceAddr, kind: u8, id: PrekeyId) -> [u8; ADDR_LEN + 5] {
    let mut key = [0u8; ADDR_LEN + 5];
    key[..=ADDR_LEN].copy_from_slice(&prekey_prefix(addr, kind));
    key[ADDR_LEN + 1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// A count as the `u32` of a `PrekeyCount` frame; stored counts are bounded far below.
fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl SledStore {
    /// Opens (or creates) the database in the directory `path` with the default
    /// [`SledSettings`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &SledSettings::default())
    }

    /// Opens (or creates) the database in the directory `path`, checks its layout version and
    /// counts the stored envelopes and devices (one scan of the keys).
    pub fn open_with(path: &Path, settings: &SledSettings) -> Result<Self, StoreError> {
        let flush_every = (settings.flush_every_ms > 0).then_some(settings.flush_every_ms);
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(settings.cache_capacity_bytes)
            .flush_every_ms(flush_every)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get(META_SCHEMA_VERSION)? {
            None => {
                meta.insert(META_SCHEMA_VERSION, &[SCHEMA_VERSION][..])?;
            }
            Some(version) if version.as_ref() == [SCHEMA_VERSION] => {}
            Some(_) => return Err(StoreError::Corrupt("meta (unknown schema version)")),
        }
        let devices = db.open_tree("devices")?;
        let mailboxes = db.open_tree("mailboxes")?;

        let mut device_count = 0u64;
        for key in devices.iter().keys() {
            key?;
            device_count += 1;
        }

        let recorded = match meta.get(META_LAST_SEQUENCE)? {
            Some(bytes) => decode_u64(&bytes, "meta")?,
            None => 0,
        };
        let mut counts = MailboxCounts::default();
        let mut largest_seq = 0;
        let mut uncommitted = Vec::new();
        for item in mailboxes.iter() {
            let (key, value) = item?;
            let (device, seq) = split_mailbox_key(&key)?;
            largest_seq = largest_seq.max(seq);
            if seq > recorded {
                uncommitted.push((key, seq));
            } else {
                counts.add(device, 1, value_size(value.len()));
            }
        }
        // What a crash left of a batch that never committed (module documentation).
        let expiry = db.open_tree("expiry")?;
        for (key, seq) in uncommitted {
            if let Some(value) = mailboxes.remove(&key)?
                && let Ok(entry) = decode_mailbox_value(seq, &value)
                && let Ok(key) = <&[u8; MAILBOX_KEY_LEN]>::try_from(key.as_ref())
            {
                expiry.remove(expiry_key(entry.received_at, key))?;
            }
        }
        // Never reuse a sequence number, even one of a deleted envelope.
        counts.last_sequence = recorded.max(largest_seq);

        Ok(Self {
            inner: Arc::new(Inner {
                devices,
                prekeys: db.open_tree("prekeys")?,
                mailboxes,
                expiry,
                handles: db.open_tree("handles")?,
                handle_owners: db.open_tree("handle_owners")?,
                handle_releases: db.open_tree("handle_releases")?,
                delivery_tokens: db.open_tree("delivery_tokens")?,
                reachability: db.open_tree("reachability")?,
                key_packages: db.open_tree("key_packages")?,
                groups: db.open_tree("groups")?,
                group_subscribers: db.open_tree("group_subscribers")?,
                meta,
                tokens: Mutex::new(()),
                db,
                directory: Mutex::new(()),
                mailbox: Mutex::new(counts),
                device_count: AtomicU64::new(device_count),
            }),
        })
    }

    /// The raw database, for tests that plant corrupt records.
    #[cfg(test)]
    pub(super) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// The directory lock. It guards no data of its own, so poisoning means nothing.
    fn directory(&self) -> MutexGuard<'_, ()> {
        self.inner
            .directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The mailbox counts. A panic while they were held happens between sled calls that each
    /// completed, and the counts are updated right after the call they describe, so a poisoned
    /// lock is recovered rather than turned into a panic.
    fn mailbox(&self) -> MutexGuard<'_, MailboxCounts> {
        self.inner
            .mailbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn put_device(&self, device: &VerifiedDevice) -> Result<DeviceOutcome, StoreError> {
        let devices = &self.inner.devices;
        let addr = DeviceAddr {
            identity: device.identity(),
            device: device.device_id(),
        };
        let key = addr.to_key();
        let encoded = device.certificate().to_bytes();
        // Fast path, without the lock: the device authenticates with its stored certificate.
        if devices.get(key)?.is_some_and(|stored| stored == encoded) {
            return Ok(DeviceOutcome::Unchanged);
        }

        let _directory = self.directory();
        let Some(stored) = devices.get(key)? else {
            let mut existing = 0;
            for stored in devices.scan_prefix(device.identity().as_bytes()).keys() {
                stored?;
                existing += 1;
            }
            if existing >= MAX_DEVICES_PER_IDENTITY {
                return Ok(DeviceOutcome::TooManyDevices);
            }
            devices.insert(key, encoded)?;
            self.inner.device_count.fetch_add(1, Ordering::Relaxed);
            return Ok(DeviceOutcome::Added);
        };
        if stored == encoded {
            return Ok(DeviceOutcome::Unchanged);
        }
        // Only verified certificates are stored, so this verifies unless the record is
        // corrupt; it is how the certificate's fields are read.
        let stored = decode::<DeviceCertificate>(&stored, "devices")?
            .verify()
            .map_err(|_| StoreError::Corrupt("devices"))?;
        if stored.created_at() > device.created_at() {
            return Ok(DeviceOutcome::Outdated);
        }
        if stored.signing_key() != device.signing_key() || stored.dh_key() != device.dh_key() {
            // Prekeys first: a crash in between leaves the old certificate without prekeys,
            // never the new certificate with the old keys' prekeys.
            let mut batch = Batch::default();
            for prekey in self.inner.prekeys.scan_prefix(key).keys() {
                batch.remove(prekey?);
            }
            self.inner.prekeys.apply_batch(batch)?;
            let mut batch = Batch::default();
            for key_package in self.inner.key_packages.scan_prefix(key).keys() {
                batch.remove(key_package?);
            }
            self.inner.key_packages.apply_batch(batch)?;
        }
        devices.insert(key, encoded)?;
        Ok(DeviceOutcome::Replaced)
    }

    pub(super) fn has_device(&self, addr: &DeviceAddr) -> Result<bool, StoreError> {
        Ok(self.inner.devices.contains_key(addr.to_key())?)
    }

    pub(super) fn devices(
        &self,
        identity: &IdentityKey,
        limit: usize,
    ) -> Result<Vec<DeviceCertificate>, StoreError> {
        self.inner
            .devices
            .scan_prefix(identity.as_bytes())
            .values()
            .take(limit)
            .map(|value| decode(&value?, "devices"))
            .collect()
    }

    /// How many prekeys of one kind a device has (at most a few thousand keys to read).
    fn count_prekeys(&self, addr: &DeviceAddr, kind: u8) -> Result<usize, StoreError> {
        let mut count = 0;
        for key in self
            .inner
            .prekeys
            .scan_prefix(prekey_prefix(addr, kind))
            .keys()
        {
            key?;
            count += 1;
        }
        Ok(count)
    }

    /// The ids among `ids` that the device does not hold yet under `kind`.
    fn new_prekey_ids(
        &self,
        addr: &DeviceAddr,
        kind: u8,
        ids: impl Iterator<Item = PrekeyId>,
    ) -> Result<HashSet<PrekeyId>, StoreError> {
        let mut new = HashSet::new();
        for id in ids {
            if !self
                .inner
                .prekeys
                .contains_key(prekey_key(addr, kind, id))?
            {
                new.insert(id);
            }
        }
        Ok(new)
    }

    pub(super) fn publish_prekeys(
        &self,
        addr: &DeviceAddr,
        signed: Option<&SignedPrekey>,
        kem: &[KemPrekey],
        one_time: &[OneTimePrekey],
    ) -> Result<Result<PrekeyCounts, PublishError>, StoreError> {
        let _directory = self.directory();
        if !self.inner.devices.contains_key(addr.to_key())? {
            return Ok(Err(PublishError::UnknownDevice));
        }
        let one_time_count = self.count_prekeys(addr, PREKEY_ONE_TIME)?
            + self
                .new_prekey_ids(addr, PREKEY_ONE_TIME, one_time.iter().map(|k| k.id))?
                .len();
        let kem_count = self.count_prekeys(addr, PREKEY_KEM)?
            + self
                .new_prekey_ids(
                    addr,
                    PREKEY_KEM,
                    kem.iter().filter(|k| !k.last_resort).map(|k| k.id),
                )?
                .len();
        if one_time_count > MAX_STORED_ONE_TIME_PREKEYS || kem_count > MAX_STORED_KEM_PREKEYS {
            return Ok(Err(PublishError::TooManyPrekeys));
        }

        let mut batch = Batch::default();
        if let Some(signed) = signed {
            batch.insert(&prekey_key(addr, PREKEY_SIGNED, 0)[..], signed.to_bytes());
        }
        for key in kem {
            let (kind, id) = if key.last_resort {
                (PREKEY_LAST_RESORT, 0)
            } else {
                (PREKEY_KEM, key.id)
            };
            batch.insert(&prekey_key(addr, kind, id)[..], key.to_bytes());
        }
        for key in one_time {
            batch.insert(
                &prekey_key(addr, PREKEY_ONE_TIME, key.id)[..],
                key.to_bytes(),
            );
        }
        self.inner.prekeys.apply_batch(batch)?;
        // The `PrekeyCount` answer tells the device its keys are stored: make it true.
        self.inner.db.flush()?;
        Ok(Ok(PrekeyCounts {
            one_time: count_u32(one_time_count),
            kem_one_time: count_u32(kem_count),
        }))
    }

    /// Removes and returns the lowest-keyed prekey under `prefix`, or `None` if there is none.
    /// The removal is a compare-and-swap from the value read to nothing, so of two callers that
    /// read the same key only one gets it; the other moves on to the next key.
    fn take_first(&self, prefix: &[u8]) -> Result<Option<IVec>, StoreError> {
        take_first_in(&self.inner.prekeys, prefix)
    }

    pub(super) fn publish_key_packages(
        &self,
        addr: &DeviceAddr,
        last_resort: Option<&KeyPackage>,
        key_packages: &[KeyPackage],
    ) -> Result<Result<KeyPackageCount, PublishError>, StoreError> {
        let _directory = self.directory();
        if !self.inner.devices.contains_key(addr.to_key())? {
            return Ok(Err(PublishError::UnknownDevice));
        }
        let held = self.count_key_packages(addr)?;
        let count = held + key_packages.len();
        if count > MAX_STORED_KEY_PACKAGES {
            return Ok(Err(PublishError::TooManyPrekeys));
        }
        let tree = &self.inner.key_packages;
        let mut batch = Batch::default();
        if let Some(last_resort) = last_resort {
            batch.insert(
                &key_package_key(addr, KEY_PACKAGE_LAST_RESORT, None)[..],
                last_resort.as_bytes(),
            );
        }
        for key_package in key_packages {
            let id = self.inner.db.generate_id()?;
            batch.insert(
                &key_package_key(addr, KEY_PACKAGE_POOL, Some(id))[..],
                key_package.as_bytes(),
            );
        }
        tree.apply_batch(batch)?;
        // The `KeyPackageCount` answer tells the device its KeyPackages are stored.
        if last_resort.is_some() || !key_packages.is_empty() {
            self.inner.db.flush()?;
        }
        Ok(Ok(KeyPackageCount {
            count: count_u32(count),
            has_last_resort: tree.contains_key(key_package_key(
                addr,
                KEY_PACKAGE_LAST_RESORT,
                None,
            ))?,
        }))
    }

    /// How many pool KeyPackages a device has (at most [`MAX_STORED_KEY_PACKAGES`] to read).
    fn count_key_packages(&self, addr: &DeviceAddr) -> Result<usize, StoreError> {
        let mut count = 0;
        for key in self
            .inner
            .key_packages
            .scan_prefix(key_package_prefix(addr, KEY_PACKAGE_POOL))
            .keys()
        {
            key?;
            count += 1;
        }
        Ok(count)
    }

    pub(super) fn take_key_package(
        &self,
        addr: &DeviceAddr,
        from_pool: bool,
    ) -> Result<Option<(KeyPackage, bool)>, StoreError> {
        let tree = &self.inner.key_packages;
        let last_resort = tree.get(key_package_key(addr, KEY_PACKAGE_LAST_RESORT, None))?;
        let decode_kp =
            |bytes: &[u8]| KeyPackage::new(bytes).map_err(|_| StoreError::Corrupt("key_packages"));
        if !from_pool && let Some(last_resort) = &last_resort {
            return Ok(Some((decode_kp(last_resort)?, true)));
        }
        if let Some(taken) = take_first_in(tree, &key_package_prefix(addr, KEY_PACKAGE_POOL))? {
            // Durable before anyone sees it: after a crash a KeyPackage handed out is never
            // handed out again.
            self.inner.db.flush()?;
            return Ok(Some((decode_kp(&taken)?, false)));
        }
        last_resort
            .map(|bytes| Ok((decode_kp(&bytes)?, true)))
            .transpose()
    }

    pub(super) fn key_package_count(
        &self,
        addr: &DeviceAddr,
    ) -> Result<KeyPackageCount, StoreError> {
        Ok(KeyPackageCount {
            count: count_u32(self.count_key_packages(addr)?),
            has_last_resort: self.inner.key_packages.contains_key(key_package_key(
                addr,
                KEY_PACKAGE_LAST_RESORT,
                None,
            ))?,
        })
    }

    pub(super) fn group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        let Some(record) = self.inner.groups.get(id.0)? else {
            return Ok(None);
        };
        let mut subscribers = BTreeSet::new();
        for key in self.inner.group_subscribers.scan_prefix(id.0).keys() {
            let key = key?;
            let addr = key
                .get(32..)
                .and_then(decode_device_addr)
                .ok_or(StoreError::Corrupt("group_subscribers"))?;
            subscribers.insert(addr);
        }
        decode_group(&record, subscribers).map(Some)
    }

    pub(super) fn put_group(&self, id: &GroupId, group: &Group) -> Result<(), StoreError> {
        let tree = &self.inner.group_subscribers;
        let mut stored = BTreeSet::new();
        for key in tree.scan_prefix(id.0).keys() {
            stored.insert(key?);
        }
        let mut wanted = BTreeSet::new();
        for addr in &group.subscribers {
            let key = subscriber_key(id, addr);
            if !stored.contains(&key[..]) {
                tree.insert(key, &[][..])?;
            }
            wanted.insert(key);
        }
        for key in stored {
            if !wanted.contains(key.as_ref()) {
                tree.remove(key)?;
            }
        }
        self.inner.groups.insert(id.0, encode_group(group))?;
        Ok(())
    }

    pub(super) fn delete_group(&self, id: &GroupId) -> Result<bool, StoreError> {
        // The record first: a crash in between leaves subscribers without a record, which
        // no reader sees and the next write or deletion of this id replaces.
        let existed = self.inner.groups.remove(id.0)?.is_some();
        let mut batch = Batch::default();
        for key in self.inner.group_subscribers.scan_prefix(id.0).keys() {
            batch.remove(key?);
        }
        self.inner.group_subscribers.apply_batch(batch)?;
        Ok(existed)
    }

    pub(super) fn expire_groups(&self, now: u64, ttl: u64) -> Result<usize, StoreError> {
        let mut expired = Vec::new();
        for item in self.inner.groups.iter() {
            let (key, value) = item?;
            let group = decode_group(&value, BTreeSet::new())?;
            if is_expired(group.last_post, now, ttl) {
                let id: [u8; 32] = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("groups"))?;
                expired.push(GroupId(id));
            }
        }
        let mut removed = 0;
        for id in expired {
            if self.delete_group(&id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Removes and returns the lowest-keyed value under `prefix` in `tree` (see
/// [`SledStore::take_first`]).
fn take_first_in(tree: &Tree, prefix: &[u8]) -> Result<Option<IVec>, StoreError> {
    loop {
        let Some(first) = tree.scan_prefix(prefix).next() else {
            return Ok(None);
        };
        let (key, value) = first?;
        if tree
            .compare_and_swap(&key, Some(&value), None::<&[u8]>)?
            .is_ok()
        {
            return Ok(Some(value));
        }
    }
}

impl SledStore {
    pub(super) fn take_bundle(
        &self,
        addr: &DeviceAddr,
        one_time: bool,
    ) -> Result<Option<PrekeyBundle>, StoreError> {
        let Some(device) = self.inner.devices.get(addr.to_key())? else {
            return Ok(None);
        };
        let device: DeviceCertificate = decode(&device, "devices")?;
        let prekeys = &self.inner.prekeys;
        let Some(signed) = prekeys.get(prekey_key(addr, PREKEY_SIGNED, 0))? else {
            return Ok(None);
        };
        let signed_prekey: SignedPrekey = decode(&signed, "prekeys")?;
        let last_resort = prekeys.get(prekey_key(addr, PREKEY_LAST_RESORT, 0))?;
        let (kem, consumed_kem) = match (one_time, last_resort) {
            (false, Some(kem)) => (kem, false),
            (_, last_resort) => match self.take_first(&prekey_prefix(addr, PREKEY_KEM))? {
                Some(kem) => (kem, true),
                None => match last_resort {
                    Some(kem) => (kem, false),
                    None => return Ok(None),
                },
            },
        };
        let kem_prekey: KemPrekey = decode(&kem, "prekeys")?;
        let one_time = if one_time {
            self.take_first(&prekey_prefix(addr, PREKEY_ONE_TIME))?
        } else {
            None
        };
        let one_time_prekey = one_time
            .as_ref()
            .map(|key| decode::<OneTimePrekey>(key, "prekeys"))
            .transpose()?;
        if consumed_kem || one_time.is_some() {
            // Durable before anyone sees it: after a crash a key handed out is never handed
            // out again (module documentation).
            self.inner.db.flush()?;
        }
        Ok(Some(PrekeyBundle {
            device,
            signed_prekey,
            kem_prekey,
            one_time_prekey,
        }))
    }

    pub(super) fn prekey_counts(&self, addr: &DeviceAddr) -> Result<PrekeyCounts, StoreError> {
        Ok(PrekeyCounts {
            one_time: count_u32(self.count_prekeys(addr, PREKEY_ONE_TIME)?),
            kem_one_time: count_u32(self.count_prekeys(addr, PREKEY_KEM)?),
        })
    }

    pub(super) fn enqueue(
        &self,
        items: &[(DeviceAddr, MailboxEntry)],
        quota: usize,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        let mut counts = self.mailbox();
        let previous = counts.last_sequence;
        let mut last = previous;
        for (_, entry) in items {
            if entry.seq <= last {
                return Err(StoreError::SequenceNotIncreasing {
                    seq: entry.seq,
                    last,
                });
            }
            last = entry.seq;
        }
        // Assigned from now on, whatever happens to the writes below.
        counts.last_sequence = last;

        let mut known: HashMap<[u8; ADDR_LEN], bool> = HashMap::new();
        let mut added: HashMap<[u8; ADDR_LEN], (usize, u64)> = HashMap::new();
        let mut envelopes: Vec<([u8; MAILBOX_KEY_LEN], [u8; EXPIRY_KEY_LEN], Vec<u8>)> =
            Vec::with_capacity(items.len());
        let mut outcomes = Vec::with_capacity(items.len());
        for (addr, entry) in items {
            let device = addr.to_key();
            let is_known = match known.get(&device) {
                Some(&is_known) => is_known,
                None => {
                    let is_known = self.inner.devices.contains_key(device)?;
                    known.insert(device, is_known);
                    is_known
                }
            };
            if !is_known {
                outcomes.push(EnqueueOutcome::UnknownDevice);
                continue;
            }
            let adding = added.entry(device).or_default();
            if counts.held(&device) + adding.0 >= quota {
                outcomes.push(EnqueueOutcome::MailboxFull);
                continue;
            }
            adding.0 += 1;
            adding.1 += stored_size(entry.payload.len());
            let key = mailbox_key(addr, entry.seq);
            envelopes.push((
                key,
                expiry_key(entry.received_at, &key),
                encode_mailbox_value(entry),
            ));
            outcomes.push(EnqueueOutcome::Stored);
        }

        if !envelopes.is_empty() {
            if let Err(e) = self.write_envelopes(&envelopes) {
                // Undo what was written, as far as the database lets us; anything left has a
                // sequence number above the recorded one and is deleted at the next open.
                for (key, index, _) in &envelopes {
                    let _ = self.inner.mailboxes.remove(key);
                    let _ = self.inner.expiry.remove(index);
                }
                return Err(e);
            }
            for (device, (n, bytes)) in added {
                if n > 0 {
                    counts.add(device, n, bytes);
                }
            }
        }
        if last > previous {
            self.inner
                .meta
                .insert(META_LAST_SEQUENCE, &last.to_be_bytes()[..])?;
        }
        Ok(outcomes)
    }

    /// Writes a batch's index entries, then its envelopes (module documentation).
    fn write_envelopes(
        &self,
        envelopes: &[([u8; MAILBOX_KEY_LEN], [u8; EXPIRY_KEY_LEN], Vec<u8>)],
    ) -> Result<(), StoreError> {
        for (_, index, _) in envelopes {
            self.inner.expiry.insert(index, &[][..])?;
        }
        for (key, _, value) in envelopes {
            self.inner.mailboxes.insert(key, value.as_slice())?;
        }
        Ok(())
    }

    /// Makes every earlier write durable. sled's flush runs on its own thread pool, so this
    /// does not block the async runtime's thread while the disk syncs.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush_async().await?;
        Ok(())
    }

    /// As [`Self::flush`], blocking the calling thread until the disk has synced. This skips
    /// the hop to sled's thread pool, whose every job wakes all its idle threads.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    pub(super) fn pending(
        &self,
        addr: &DeviceAddr,
        after: Option<u64>,
        through: u64,
        limit: usize,
        now: u64,
        ttl: u64,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        let start = match after {
            None => 0,
            Some(after) => match after.checked_add(1) {
                Some(start) => start,
                None => return Ok(Vec::new()),
            },
        };
        if start > through {
            return Ok(Vec::new());
        }
        let range = mailbox_key(addr, start)..=mailbox_key(addr, through);
        let mut out = Vec::new();
        let mut expired = Vec::new();
        for item in self.inner.mailboxes.range(range) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            let (_, seq) = split_mailbox_key(&key)?;
            let entry = decode_mailbox_value(seq, &value)?;
            if is_expired(entry.received_at, now, ttl) {
                expired.push(entry);
            } else {
                out.push(entry);
            }
        }
        if !expired.is_empty() {
            let device = addr.to_key();
            let mut counts = self.mailbox();
            for entry in expired {
                let key = mailbox_key(addr, entry.seq);
                if let Some(value) = self.inner.mailboxes.remove(key)? {
                    counts.remove_one(&device, value.len());
                }
                self.inner
                    .expiry
                    .remove(expiry_key(entry.received_at, &key))?;
            }
        }
        Ok(out)
    }

    pub(super) fn ack(&self, addr: &DeviceAddr, seqs: &[u64]) -> Result<usize, StoreError> {
        let device = addr.to_key();
        let mut counts = self.mailbox();
        let mut removed = 0;
        for &seq in seqs {
            let key = mailbox_key(addr, seq);
            let Some(value) = self.inner.mailboxes.remove(key)? else {
                continue;
            };
            removed += 1;
            counts.remove_one(&device, value.len());
            // An undecodable value leaves its index entry behind, which the sweep deletes.
            if let Ok(entry) = decode_mailbox_value(seq, &value) {
                self.inner
                    .expiry
                    .remove(expiry_key(entry.received_at, &key))?;
            }
        }
        Ok(removed)
    }

    pub(super) fn expire(&self, now: u64, ttl: u64) -> Result<usize, StoreError> {
        let Some(cutoff) = now.checked_sub(ttl) else {
            return Ok(0);
        };
        // Index keys of envelopes that arrived at `cutoff` or before sort below `cutoff + 1`.
        let end = cutoff.checked_add(1).map(u64::to_be_bytes);
        let mut removed = 0;
        loop {
            let range = match end {
                Some(end) => self.inner.expiry.range(..end),
                None => self.inner.expiry.iter(),
            };
            let chunk = range
                .keys()
                .take(EXPIRE_CHUNK)
                .collect::<Result<Vec<IVec>, sled::Error>>()?;
            let mut counts = self.mailbox();
            for index_key in &chunk {
                let index_key: &[u8; EXPIRY_KEY_LEN] = index_key
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("expiry"))?;
                let (_received_at, key) = index_key
                    .split_first_chunk::<8>()
                    .ok_or(StoreError::Corrupt("expiry"))?;
                let (device, _) = split_mailbox_key(key)?;
                if let Some(value) = self.inner.mailboxes.remove(key)? {
                    removed += 1;
                    counts.remove_one(&device, value.len());
                }
                self.inner.expiry.remove(index_key)?;
            }
            drop(counts);
            if chunk.len() < EXPIRE_CHUNK {
                return Ok(removed);
            }
        }
    }

    pub(super) fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.mailbox().last_sequence)
    }

    pub(super) fn relay_secret(&self) -> Result<[u8; 32], StoreError> {
        let meta = &self.inner.meta;
        let parse = |value: &[u8]| -> Result<[u8; 32], StoreError> {
            value.try_into().map_err(|_| StoreError::Corrupt("meta"))
        };
        if let Some(secret) = meta.get(META_RELAY_SECRET)? {
            return parse(&secret);
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        match meta.compare_and_swap(META_RELAY_SECRET, None::<&[u8]>, Some(&secret[..]))? {
            Ok(()) => {
                // Once per database: a secret that could be lost in a crash would change the
                // envelope ids of everything stored after it.
                self.inner.db.flush()?;
                Ok(secret)
            }
            Err(raced) => parse(raced.current.as_deref().unwrap_or_default()),
        }
    }

    pub(super) fn claim_handle(&self, claim: &HandleClaim) -> Result<ClaimOutcome, StoreError> {
        let handles = &self.inner.handles;
        let key = claim.handle.as_str().as_bytes();
        let encoded = claim.to_bytes();
        loop {
            let current = handles.get(key)?;
            let outcome = match &current {
                None => {
                    if let Some(released) = self.inner.handle_releases.get(key)?
                        && claim.issued_at <= decode_u64(&released, "handle_releases")?
                    {
                        return Ok(ClaimOutcome::Stale);
                    }
                    ClaimOutcome::Claimed
                }
                Some(stored) => {
                    let stored: HandleClaim = decode(stored, "handles")?;
                    if stored.identity != claim.identity {
                        return Ok(ClaimOutcome::Taken);
                    }
                    if claim.issued_at <= stored.issued_at {
                        return Ok(ClaimOutcome::Stale);
                    }
                    ClaimOutcome::Renewed
                }
            };
            if outcome == ClaimOutcome::Claimed
                && self
                    .inner
                    .handle_owners
                    .scan_prefix(claim.identity.as_bytes())
                    .take(MAX_HANDLES_PER_IDENTITY)
                    .count()
                    >= MAX_HANDLES_PER_IDENTITY
            {
                return Ok(ClaimOutcome::TooManyHandles);
            }
            if handles
                .compare_and_swap(key, current, Some(&encoded[..]))?
                .is_ok()
            {
                if outcome == ClaimOutcome::Claimed {
                    self.inner
                        .handle_owners
                        .insert(owner_key(&claim.identity, &claim.handle), &[][..])?;
                }
                return Ok(outcome);
            }
        }
    }

    pub(super) fn lookup_handle(&self, handle: &Handle) -> Result<Option<HandleClaim>, StoreError> {
        self.inner
            .handles
            .get(handle.as_str().as_bytes())?
            .map(|claim| decode(&claim, "handles"))
            .transpose()
    }

    pub(super) fn release_handle(&self, release: &HandleRelease) -> Result<bool, StoreError> {
        let handles = &self.inner.handles;
        let key = release.handle.as_str().as_bytes();
        loop {
            let Some(current) = handles.get(key)? else {
                return Ok(false);
            };
            let stored: HandleClaim = decode(&current, "handles")?;
            if stored.identity != release.identity || release.issued_at <= stored.issued_at {
                return Ok(false);
            }
            // Recorded first (module documentation); a later record is never lowered.
            let released = release.issued_at.to_be_bytes();
            self.inner
                .handle_releases
                .fetch_and_update(key, |old| match old {
                    Some(old) if old >= &released[..] => Some(old.to_vec()),
                    _ => Some(released.to_vec()),
                })?;
            if handles
                .compare_and_swap(key, Some(current), None::<&[u8]>)?
                .is_ok()
            {
                self.inner
                    .handle_owners
                    .remove(owner_key(&release.identity, &release.handle))?;
                return Ok(true);
            }
        }
    }

    pub(super) fn set_delivery_tokens(
        &self,
        identity: &IdentityKey,
        policy: TokenPolicy,
        add: &[TokenDigest],
        revoke: &[TokenDigest],
        max: usize,
    ) -> Result<Result<(), TokenQuotaExceeded>, StoreError> {
        let tree = &self.inner.delivery_tokens;
        let changes = token_changes(add, revoke);
        let _tokens = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = match tree.get(token_header_key(identity))? {
            Some(header) => decode_token_header(&header)?.1,
            None => 0,
        };
        let mut batch = Batch::default();
        let mut new = 0usize;
        for (digest, state) in &changes {
            let key = token_digest_key(identity, digest);
            let current = tree.get(key)?;
            let current = current
                .map(|value| decode_token_state(&value))
                .transpose()?;
            if current.is_none() {
                new += 1;
            }
            if current != Some(*state) {
                batch.insert(&key[..], &[token_state_byte(*state)][..]);
            }
        }
        let count = held.saturating_add(new);
        if count > max {
            return Ok(Err(TokenQuotaExceeded { max }));
        }
        let count = u32::try_from(count).map_err(|_| StoreError::Corrupt("delivery_tokens"))?;
        let mut header = [0u8; 5];
        header[0] = policy_byte(policy);
        header[1..].copy_from_slice(&count.to_be_bytes());
        batch.insert(&token_header_key(identity)[..], &header[..]);
        tree.apply_batch(batch)?;
        Ok(Ok(()))
    }

    pub(super) fn delivery_tokens(
        &self,
        identity: &IdentityKey,
    ) -> Result<Option<DeliveryTokens>, StoreError> {
        let mut accounts =
            self.read_tokens(self.inner.delivery_tokens.scan_prefix(identity.as_bytes()))?;
        Ok(accounts.pop().map(|(_, tokens)| tokens))
    }

    pub(super) fn all_delivery_tokens(
        &self,
    ) -> Result<Vec<(IdentityKey, DeliveryTokens)>, StoreError> {
        self.read_tokens(self.inner.delivery_tokens.iter())
    }

    /// Reads the `delivery_tokens` records of `records` (in key order: an account's header
    /// first, then its digests) into one state per account.
    fn read_tokens(
        &self,
        records: sled::Iter,
    ) -> Result<Vec<(IdentityKey, DeliveryTokens)>, StoreError> {
        let corrupt = || StoreError::Corrupt("delivery_tokens");
        let mut accounts: Vec<(IdentityKey, DeliveryTokens)> = Vec::new();
        for record in records {
            let (key, value) = record?;
            let (identity, rest) = key.split_first_chunk::<32>().ok_or_else(corrupt)?;
            match rest {
                [0] => {
                    let identity = IdentityKey::from_bytes(identity).map_err(|_| corrupt())?;
                    let (policy, _) = decode_token_header(&value)?;
                    accounts.push((identity, DeliveryTokens::new(policy)));
                }
                [1, digest @ ..] => {
                    let digest: TokenDigest = digest.try_into().map_err(|_| corrupt())?;
                    let state = decode_token_state(&value)?;
                    // The header sorts before the account's digests.
                    match accounts.last_mut() {
                        Some((owner, tokens)) if owner.as_bytes() == identity => {
                            tokens.digests.insert(digest, state);
                        }
                        _ => return Err(corrupt()),
                    }
                }
                _ => return Err(corrupt()),
            }
        }
        Ok(accounts)
    }

    pub(super) fn put_reachability(
        &self,
        record: &ReachabilityRecord,
    ) -> Result<RecordOutcome, StoreError> {
        let tree = &self.inner.reachability;
        let key = record.identity.as_bytes();
        let encoded = record.to_bytes();
        loop {
            let current = tree.get(key)?;
            if let Some(stored) = &current {
                if stored.as_ref() == encoded.as_slice() {
                    return Ok(RecordOutcome::Unchanged);
                }
                let stored: ReachabilityRecord = decode(stored, "reachability")?;
                if stored.sequence >= record.sequence {
                    return Ok(RecordOutcome::Stale);
                }
            }
            if tree
                .compare_and_swap(key, current, Some(&encoded[..]))?
                .is_ok()
            {
                return Ok(RecordOutcome::Stored);
            }
        }
    }

    pub(super) fn reachability(
        &self,
        identity: &IdentityKey,
    ) -> Result<Option<ReachabilityRecord>, StoreError> {
        self.inner
            .reachability
            .get(identity.as_bytes())?
            .map(|record| decode(&record, "reachability"))
            .transpose()
    }

    pub(super) fn mailbox_len(&self, addr: &DeviceAddr) -> Result<usize, StoreError> {
        Ok(self.mailbox().held(&addr.to_key()))
    }

    pub(super) fn mailbox_bytes(&self, addr: &DeviceAddr) -> Result<u64, StoreError> {
        Ok(self.mailbox().bytes_held(&addr.to_key()))
    }

    pub(super) fn stats(&self) -> StoreStats {
        let counts = self.mailbox();
        StoreStats {
            envelopes: counts.total,
            envelope_bytes: counts.bytes,
            devices: self.inner.device_count.load(Ordering::Relaxed),
        }
    }
}

/// The `handle_owners` key: identity (32) || handle text.
fn key_package_prefix(addr: &DeviceAddr, kind: u8) -> [u8; ADDR_LEN + 1] {
    let mut key = [0u8; ADDR_LEN + 1];
    key[..ADDR_LEN].copy_from_slice(&addr.to_key());
    key[ADDR_LEN] = kind;
    key
}

/// `addr || kind` for the last-resort KeyPackage, `addr || kind || id` for a pool one.
fn key_package_key(addr: &DeviceAddr, kind: u8, id: Option<u64>) -> Vec<u8> {
    let mut key = key_package_prefix(addr, kind).to_vec();
    if let Some(id) = id {
        key.extend_from_slice(&id.to_be_bytes());
    }
    key
}

fn subscriber_key(id: &GroupId, addr: &DeviceAddr) -> [u8; 32 + ADDR_LEN] {
    let mut key = [0u8; 32 + ADDR_LEN];
    key[..32].copy_from_slice(&id.0);
    key[32..].copy_from_slice(&addr.to_key());
    key
}

/// A device address from its 36-byte key form.
fn decode_device_addr(bytes: &[u8]) -> Option<DeviceAddr> {
    let (identity, device) = bytes.split_first_chunk::<32>()?;
    let device: [u8; 4] = device.try_into().ok()?;
    Some(DeviceAddr {
        identity: IdentityKey::from_bytes(identity).ok()?,
        device: DeviceId::new(u32::from_be_bytes(device)).ok()?,
    })
}

/// A group record: `epoch u64 || post_key [32] || previous presence u8 (|| previous [32]) ||
/// next_seq u64 || last_post u64`.
fn encode_group(group: &Group) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + 32 + 1 + 32 + 16);
    value.extend_from_slice(&group.epoch.to_be_bytes());
    value.extend_from_slice(group.post_key.as_bytes());
    match &group.previous_key {
        Some(key) => {
            value.push(1);
            value.extend_from_slice(key.as_bytes());
        }
        None => value.push(0),
    }
    value.extend_from_slice(&group.next_seq.to_be_bytes());
    value.extend_from_slice(&group.last_post.to_be_bytes());
    value
}

fn decode_group(value: &[u8], subscribers: BTreeSet<DeviceAddr>) -> Result<Group, StoreError> {
    let corrupt = || StoreError::Corrupt("groups");
    let (epoch, rest) = value.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (post_key, rest) = rest.split_first_chunk::<32>().ok_or_else(corrupt)?;
    let (presence, mut rest) = rest.split_first().ok_or_else(corrupt)?;
    let previous_key = match presence {
        0 => None,
        1 => {
            let (key, tail) = rest.split_first_chunk::<32>().ok_or_else(corrupt)?;
            rest = tail;
            Some(PostKey::from_bytes(key).map_err(|_| corrupt())?)
        }
        _ => return Err(corrupt()),
    };
    let (next_seq, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let last_post: [u8; 8] = rest.try_into().map_err(|_| corrupt())?;
    Ok(Group {
        epoch: u64::from_be_bytes(*epoch),
        post_key: PostKey::from_bytes(post_key).map_err(|_| corrupt())?,
        previous_key,
        next_seq: u64::from_be_bytes(*next_seq),
        last_post: u64::from_be_bytes(last_post),
        subscribers,
    })
}

fn owner_key(identity: &IdentityKey, handle: &Handle) -> Vec<u8> {
    [identity.as_bytes().as_slice(), handle.as_str().as_bytes()].concat()
}

/// The `delivery_tokens` key of an account's header: identity (32) || 0.
fn token_header_key(identity: &IdentityKey) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[..32].copy_from_slice(identity.as_bytes());
    key
}

/// The `delivery_tokens` key of one digest: identity (32) || 1 || digest (32).
fn token_digest_key(identity: &IdentityKey, digest: &TokenDigest) -> [u8; 65] {
    let mut key = [0u8; 65];
    key[..32].copy_from_slice(identity.as_bytes());
    key[32] = 1;
    key[33..].copy_from_slice(digest);
    key
}

fn policy_byte(policy: TokenPolicy) -> u8 {
    match policy {
        TokenPolicy::Open => 0,
        TokenPolicy::TokensRequired => 1,
    }
}

/// Reads a header: policy u8 || digest count u32.
fn decode_token_header(value: &[u8]) -> Result<(TokenPolicy, usize), StoreError> {
    let corrupt = || StoreError::Corrupt("delivery_tokens");
    let (policy, count) = value.split_first().ok_or_else(corrupt)?;
    let policy = match policy {
        0 => TokenPolicy::Open,
        1 => TokenPolicy::TokensRequired,
        _ => return Err(corrupt()),
    };
    let count: [u8; 4] = count.try_into().map_err(|_| corrupt())?;
    Ok((policy, u32::from_be_bytes(count) as usize))
}

fn token_state_byte(state: TokenState) -> u8 {
    match state {
        TokenState::Accepted => 1,
        TokenState::Revoked => 2,
    }
}

fn decode_token_state(value: &[u8]) -> Result<TokenState, StoreError> {
    match value {
        [1] => Ok(TokenState::Accepted),
        [2] => Ok(TokenState::Revoked),
        _ => Err(StoreError::Corrupt("delivery_tokens")),
    }
}
