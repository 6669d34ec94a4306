//! The relay's persistent state: device certificates, prekeys, KeyPackages, mailboxes, handles,
//! groups (SPEC.md 10.10), and per account the delivery-token policy and digests and the
//! reachability record (SPEC.md 10.9).
//!
//! [`Store`] is an enum over two backends with the same semantics: [`SledStore`] (durable, on
//! disk, the default) and [`MemoryStore`] (`--ephemeral`: nothing touches the disk). Every
//! method is synchronous except [`Store::flush`], which makes every earlier write durable; the
//! group commit (`commit.rs`) flushes once per batch before acknowledging the batch to its
//! senders. Synchronous methods may block, so the relay calls them only on blocking threads,
//! inside [`blocking_section`] (debug builds check it).
//!
//! What is stored about an envelope is its recipient device, the relay-assigned id, the time it
//! arrived and the opaque payload. Nothing about the sender is stored. Delivery tokens are
//! stored only as their digests, per recipient account.
//!
//! A group is its [`Group`] record (epoch, current and previous post key, next post number,
//! last post time) and its subscribers; the group commit (`commit.rs`) is its only writer
//! besides the TTL sweep ([`Store::expire_groups`]), so reading a group, deciding a post and
//! writing the group back is atomic without a lock of the store's own.

mod memory;
mod sled_store;
pub(crate) mod worker;

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

pub use memory::MemoryStore;
use protocol::frames::{
    EnvelopeId, GroupId, Handle, HandleClaim, HandleRelease, KeyPackage, PostKey, TokenPolicy,
};
use protocol::identity::{DeviceCertificate, DeviceId, IdentityKey, VerifiedDevice};
use protocol::prekeys::{KemPrekey, OneTimePrekey, PrekeyBundle, SignedPrekey};
use protocol::reachability::{DELIVERY_TOKEN_DIGEST_LEN, ReachabilityRecord};
pub use sled_store::SledStore;

/// Most one-time X25519 prekeys stored per device; a publish beyond it is refused.
pub const MAX_STORED_ONE_TIME_PREKEYS: usize = 2000;
/// Most one-time KEM prekeys stored per device; a publish beyond it is refused.
pub const MAX_STORED_KEM_PREKEYS: usize = 200;
/// Most devices stored per identity.
pub const MAX_DEVICES_PER_IDENTITY: usize = 64;
/// Most handles one identity may hold, so no identity can squat the namespace.
pub const MAX_HANDLES_PER_IDENTITY: usize = 8;
/// Most KeyPackages in one device's pool (the last-resort one not counted); a publish beyond
/// it is refused (`quota_exceeded`, SPEC.md 10.10).
pub const MAX_STORED_KEY_PACKAGES: usize = 200;
/// Most subscribers of one group; a change beyond it is refused (`group_full`).
pub const MAX_GROUP_SUBSCRIBERS: usize = 2000;

/// What an envelope counts against the byte quotas: its payload and a fixed allowance for its
/// id, arrival time, keys and index entry (SPEC.md section 10.8).
pub const ENVELOPE_OVERHEAD: u64 = 128;

/// The bytes an envelope with a payload of `payload_len` bytes counts as.
pub fn stored_size(payload_len: usize) -> u64 {
    (payload_len as u64).saturating_add(ENVELOPE_OVERHEAD)
}

/// A device mailbox address: account identity and device id.
///
/// Ordered like [`DeviceAddr::to_key`]: by identity bytes, then device id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceAddr {
    /// The account.
    pub identity: IdentityKey,
    /// The device within the account.
    pub device: DeviceId,
}

impl DeviceAddr {
    /// The 36-byte key form: identity (32) || device id (u32 big-endian). Sorting by it groups
    /// an identity's devices together.
    pub fn to_key(&self) -> [u8; 36] {
        let mut key = [0u8; 36];
        key[..32].copy_from_slice(self.identity.as_bytes());
        key[32..].copy_from_slice(&self.device.get().to_be_bytes());
        key
    }
}

impl Ord for DeviceAddr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.identity.as_bytes(), self.device).cmp(&(other.identity.as_bytes(), other.device))
    }
}

impl PartialOrd for DeviceAddr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for DeviceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{}", self.identity, self.device)
    }
}

/// One stored envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Relay-wide sequence number, increasing with every stored envelope: the mailbox order.
    pub seq: u64,
    /// The id the client sees (an encryption of `seq`, see `envelope_ids.rs`); stored so that
    /// delivery needs no cipher call.
    pub id: EnvelopeId,
    /// Arrival time, seconds since the Unix epoch (drives the TTL).
    pub received_at: u64,
    /// The opaque sealed payload.
    pub payload: Vec<u8>,
}

/// How many one-time prekeys a device has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrekeyCounts {
    /// One-time X25519 prekeys.
    pub one_time: u32,
    /// One-time (not last-resort) KEM prekeys.
    pub kem_one_time: u32,
}

/// How many KeyPackages a device has (the `KeyPackageCount` answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPackageCount {
    /// KeyPackages in the pool, the last-resort one not counted.
    pub count: u32,
    /// Whether the device has a last-resort KeyPackage.
    pub has_last_resort: bool,
}

/// One group at this relay (SPEC.md 10.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The current epoch: a commit is accepted for it alone.
    pub epoch: u64,
    /// The post key of `epoch`.
    pub post_key: PostKey,
    /// The post key of `epoch - 1`, while the group has one (after its first commit).
    pub previous_key: Option<PostKey>,
    /// The number the next post gets (the first post gets 1).
    pub next_seq: u64,
    /// When the group was opened or last posted to, seconds since the Unix epoch (drives the
    /// TTL).
    pub last_post: u64,
    /// The devices a post is fanned out to.
    pub subscribers: BTreeSet<DeviceAddr>,
}

impl Group {
    /// The post key for `epoch`, if the group accepts posts signed for it: the current key, or
    /// the previous epoch's (application and direct posts only; `previous` says whether to
    /// look there).
    pub fn key_for(&self, epoch: u64, previous: bool) -> Option<&PostKey> {
        if epoch == self.epoch {
            Some(&self.post_key)
        } else if previous && self.epoch.checked_sub(1) == Some(epoch) {
            self.previous_key.as_ref()
        } else {
            None
        }
    }
}

/// What happened to one envelope of an [`Store::enqueue`] batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Written (durable after the next [`Store::flush`]).
    Stored,
    /// The recipient's mailbox holds `quota` envelopes already; nothing was written.
    MailboxFull,
    /// No device with this address ever authenticated here; nothing was written.
    UnknownDevice,
}

/// What [`Store::put_device`] did with a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// The device was new; its certificate is stored.
    Added,
    /// The device's certificate was replaced by this one (`created_at` not older). If the
    /// device's signing or X25519 key changed, its stored prekeys were deleted: they were
    /// signed by, or belong to, the old keys, and a bundle built from them could not be used.
    Replaced,
    /// This exact certificate was stored already; nothing changed.
    Unchanged,
    /// The stored certificate for this device is newer (`created_at`); it was kept and this
    /// one ignored.
    Outdated,
    /// The identity already has [`MAX_DEVICES_PER_IDENTITY`] devices and this is another one;
    /// nothing was stored. Existing devices keep their certificates, so an identity cannot
    /// push its devices out by registering more.
    TooManyDevices,
}

/// The answer to a handle claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The handle was free and is now this identity's.
    Claimed,
    /// The identity already held the handle under an earlier claim, which this one replaced.
    Renewed,
    /// A claim or release of the handle not earlier than this claim is recorded (the identity
    /// holds the handle under a claim issued at the same time or later, or the handle was
    /// released at the same time or later); nothing changed (SPEC.md section 10.6: a claim
    /// must be later than every recorded claim and release; resending the stored claim is
    /// `Stale` too).
    Stale,
    /// Another identity holds the handle.
    Taken,
    /// The handle is free, but the identity already holds [`MAX_HANDLES_PER_IDENTITY`] others;
    /// nothing was stored.
    TooManyHandles,
}

/// Why a publish (of prekeys or KeyPackages) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The device would hold more one-time prekeys (or KeyPackages) than the per-device cap.
    #[error("too many stored prekeys for this device")]
    TooManyPrekeys,
    /// The device never authenticated here.
    #[error("unknown device")]
    UnknownDevice,
}

/// A delivery token's digest, `SHA-256("chatd/v1/delivery-token" || token)`: the only form in
/// which the relay holds a token.
pub type TokenDigest = [u8; DELIVERY_TOKEN_DIGEST_LEN];

/// Where a digest stands in its account's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Envelopes with this token are admitted.
    Accepted,
    /// Envelopes with this token are dropped unseen.
    Revoked,
}

/// An account's delivery-token state (SPEC.md 10.9): its policy and the digests it accepted
/// and revoked. An account that never sent `SetDeliveryTokens` has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTokens {
    /// Whom the account admits without a token.
    pub policy: TokenPolicy,
    /// Digest -> state; a digest is in one state at a time.
    pub digests: HashMap<TokenDigest, TokenState>,
}

impl DeliveryTokens {
    /// No digests, this policy.
    pub fn new(policy: TokenPolicy) -> Self {
        Self {
            policy,
            digests: HashMap::new(),
        }
    }

    /// The state of one digest, `None` if the account never registered it.
    pub fn state(&self, digest: &TokenDigest) -> Option<TokenState> {
        self.digests.get(digest).copied()
    }

    /// Sets the policy and applies `changes` ([`token_changes`]).
    pub fn apply(&mut self, policy: TokenPolicy, changes: &HashMap<TokenDigest, TokenState>) {
        self.policy = policy;
        self.digests.extend(changes.iter().map(|(d, s)| (*d, *s)));
    }
}

/// What a `SetDeliveryTokens` does to each digest it names: every digest of `add` is accepted,
/// then every digest of `revoke` revoked (so a digest in both ends revoked). An update never
/// forgets a digest, so an account's count only grows by the digests it did not hold.
pub fn token_changes(
    add: &[TokenDigest],
    revoke: &[TokenDigest],
) -> HashMap<TokenDigest, TokenState> {
    let mut changes = HashMap::with_capacity(add.len() + revoke.len());
    for digest in add {
        changes.insert(*digest, TokenState::Accepted);
    }
    for digest in revoke {
        changes.insert(*digest, TokenState::Revoked);
    }
    changes
}

/// A `SetDeliveryTokens` would take the account over the per-account cap of digests; nothing
/// was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the account would hold more than {max} token digests")]
pub struct TokenQuotaExceeded {
    /// The cap.
    pub max: usize,
}

/// What [`Store::put_reachability`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The record is stored (the account had none, or an older one).
    Stored,
    /// The same record (same bytes) was stored already; nothing changed.
    Unchanged,
    /// The stored record's sequence is not lower; nothing changed.
    Stale,
}

/// A storage failure: the disk or the database, never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database reported an error.
    #[error("database: {0}")]
    Database(#[from] sled::Error),
    /// The blocking task running a store call failed (it panicked or was cancelled).
    #[error("store task: {0}")]
    Task(String),
    /// A stored value did not decode (corruption, or a value from a newer version).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// [`Store::enqueue`] was given a sequence number not above every earlier one (the caller
    /// broke its contract); nothing of the batch was written.
    #[error("envelope sequence number {seq} is not above {last}")]
    SequenceNotIncreasing {
        /// The offending sequence number.
        seq: u64,
        /// The largest sequence number before it.
        last: u64,
    },
}

/// Counts for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Envelopes waiting in all mailboxes.
    pub envelopes: u64,
    /// What they count as ([`stored_size`]), all mailboxes together.
    pub envelope_bytes: u64,
    /// Registered devices.
    pub devices: u64,
}

/// The relay's state, on disk or in memory.
#[derive(Debug, Clone)]
pub enum Store {
    /// Durable: a `sled` database in a directory.
    Sled(SledStore),
    /// Memory only (`--ephemeral`).
    Memory(MemoryStore),
}

thread_local! {
    /// Whether this thread is inside [`blocking_section`].
    static IN_BLOCKING_SECTION: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which makes store calls, marked as running where blocking is fine: a
/// `spawn_blocking` thread or a dedicated one. Every synchronous [`Store`] method may block
/// (sled's I/O, the store's locks, which a group commit holds while it writes), so the relay
/// never calls one on an async worker thread, where it would stall every connection the
/// worker serves; debug builds check it (`check_thread`).
pub(crate) fn blocking_section<T>(f: impl FnOnce() -> T) -> T {
    let outer = IN_BLOCKING_SECTION.replace(true);
    let result = f();
    IN_BLOCKING_SECTION.set(outer);
    result
}

/// Debug builds: a synchronous store call on a thread that runs an async runtime, outside
/// [`blocking_section`], is a bug and panics. Threads without a runtime (tests, tools) are
/// free to call.
fn check_thread() {
    if cfg!(debug_assertions)
        && !IN_BLOCKING_SECTION.get()
        && tokio::runtime::Handle::try_current().is_ok()
    {
        panic!(
            "a blocking store call on an async runtime thread: use `blocking_section` on a blocking thread"
        );
    }
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {{
        check_thread();
        match $self {
            Store::Sled($store) => $call,
            Store::Memory($store) => $call,
        }
    }};
}

impl Store {
    /// Records (or replaces with a newer one) a device's certificate. Called after the device
    /// authenticated with it, hence the [`VerifiedDevice`]. A certificate with an older
    /// `created_at` than the stored one is ignored; a new device beyond
    /// [`MAX_DEVICES_PER_IDENTITY`] is refused. See [`DeviceOutcome`].
    pub fn put_device(&self, device: &VerifiedDevice) -> Result<DeviceOutcome, StoreError> {
        dispatch!(self, s => s.put_device(device))
    }

    /// Whether a device with this address has authenticated here.
    pub fn has_device(&self, addr: &DeviceAddr) -> Result<bool, StoreError> {
        dispatch!(self, s => s.has_device(addr))
    }

    /// An identity's device certificates, in device id order, at most `limit`.
    pub fn devices(
        &self,
        identity: &IdentityKey,
        limit: usize,
    ) -> Result<Vec<DeviceCertificate>, StoreError> {
        dispatch!(self, s => s.devices(identity, limit))
    }

    /// Stores published prekeys for a device: a signed prekey replaces the current one; a
    /// last-resort KEM prekey replaces the current last-resort one (the last of `kem` wins if
    /// it holds several); one-time KEM and X25519 prekeys are added (one with an id already
    /// stored replaces it). Signatures were checked by the caller. Returns the counts after
    /// the publish, or refuses the whole publish (nothing stored) if the device would hold more
    /// than [`MAX_STORED_ONE_TIME_PREKEYS`] or [`MAX_STORED_KEM_PREKEYS`] one-time prekeys.
    /// An empty publish just returns the counts.
    pub fn publish_prekeys(
        &self,
        addr: &DeviceAddr,
        signed: Option<&SignedPrekey>,
        kem: &[KemPrekey],
        one_time: &[OneTimePrekey],
    ) -> Result<Result<PrekeyCounts, PublishError>, StoreError> {
        dispatch!(self, s => s.publish_prekeys(addr, signed, kem, one_time))
    }

    /// Hands out a bundle for a device, atomically consuming one one-time X25519 prekey (if
    /// any is left) and one one-time KEM prekey (or, when none is left, using the last-resort
    /// one). Two concurrent calls never hand out the same one-time key; the lowest ids go
    /// first. `None` when the device is unknown or has not published a signed prekey and a KEM
    /// prekey (nothing is consumed then).
    pub fn take_bundle(&self, addr: &DeviceAddr) -> Result<Option<PrekeyBundle>, StoreError> {
        dispatch!(self, s => s.take_bundle(addr, true))
    }

    /// As [`Self::take_bundle`] with `one_time` true; with `one_time` false the bundle
    /// consumes nothing: it carries no one-time X25519 prekey and the last-resort KEM prekey
    /// (a one-time KEM prekey only if the device has no last-resort one). The relay hands out
    /// such bundles past a target identity's one-time prekey rate (SPEC.md section 10.8).
    pub fn take_bundle_with(
        &self,
        addr: &DeviceAddr,
        one_time: bool,
    ) -> Result<Option<PrekeyBundle>, StoreError> {
        dispatch!(self, s => s.take_bundle(addr, one_time))
    }

    /// The one-time prekeys a device has left.
    pub fn prekey_counts(&self, addr: &DeviceAddr) -> Result<PrekeyCounts, StoreError> {
        dispatch!(self, s => s.prekey_counts(addr))
    }

    /// Adds KeyPackages to a device's pool (after the ones it holds: first in, first out) and
    /// replaces its last-resort KeyPackage if one is given; refuses the whole publish (nothing
    /// stored) if the pool would hold more than [`MAX_STORED_KEY_PACKAGES`]. Durable before it
    /// returns (sled flushes). An empty publish just returns the count.
    pub fn publish_key_packages(
        &self,
        addr: &DeviceAddr,
        last_resort: Option<&KeyPackage>,
        key_packages: &[KeyPackage],
    ) -> Result<Result<KeyPackageCount, PublishError>, StoreError> {
        dispatch!(self, s => s.publish_key_packages(addr, last_resort, key_packages))
    }

    /// Hands out one of a device's KeyPackages: with `from_pool`, atomically removes the
    /// oldest of its pool (two concurrent calls never get the same one; the removal is durable
    /// before this returns), or when the pool is empty returns the last-resort one without
    /// removing it; without `from_pool`, the last-resort one if there is one (nothing is
    /// consumed), else the pool's oldest. The flag says whether it is the last-resort one.
    /// `None` when the device has none at all (or is unknown).
    pub fn take_key_package(
        &self,
        addr: &DeviceAddr,
        from_pool: bool,
    ) -> Result<Option<(KeyPackage, bool)>, StoreError> {
        dispatch!(self, s => s.take_key_package(addr, from_pool))
    }

    /// How many KeyPackages a device has.
    pub fn key_package_count(&self, addr: &DeviceAddr) -> Result<KeyPackageCount, StoreError> {
        dispatch!(self, s => s.key_package_count(addr))
    }

    /// A group, with its subscribers.
    pub fn group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        dispatch!(self, s => s.group(id))
    }

    /// Writes a group (creating it or replacing the stored record and subscriber set). Not
    /// durable until [`Self::flush`]. Only the group commit calls it.
    pub fn put_group(&self, id: &GroupId, group: &Group) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_group(id, group))
    }

    /// Deletes a group and its subscribers; whether it existed.
    pub fn delete_group(&self, id: &GroupId) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_group(id))
    }

    /// Deletes every group opened or last posted to `ttl` seconds or more before `now` (the
    /// mailbox TTL: its posts have expired from every mailbox too); returns how many.
    pub fn expire_groups(&self, now: u64, ttl: u64) -> Result<usize, StoreError> {
        dispatch!(self, s => s.expire_groups(now, ttl))
    }

    /// Writes a batch of envelopes, each checked against its recipient's mailbox `quota`
    /// (counting what this batch adds). Not durable until [`Self::flush`]. Sequence numbers are
    /// assigned by the caller, increasing, above [`Self::last_sequence`]; a batch that breaks
    /// this is refused whole with [`StoreError::SequenceNotIncreasing`]. Every sequence number
    /// of the batch counts as assigned, refused envelopes' too.
    ///
    /// Each envelope is judged alone: a batch can store some envelopes and refuse others.
    pub fn enqueue(
        &self,
        items: &[(DeviceAddr, MailboxEntry)],
        quota: usize,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        dispatch!(self, s => s.enqueue(items, quota))
    }

    /// How many envelopes `addr`'s mailbox holds (O(1): counts are kept per device).
    pub fn mailbox_len(&self, addr: &DeviceAddr) -> Result<usize, StoreError> {
        dispatch!(self, s => s.mailbox_len(addr))
    }

    /// What `addr`'s envelopes count as ([`stored_size`]; O(1) like [`Self::mailbox_len`]).
    pub fn mailbox_bytes(&self, addr: &DeviceAddr) -> Result<u64, StoreError> {
        dispatch!(self, s => s.mailbox_bytes(addr))
    }

    /// Makes every earlier write durable (sled: fsync; memory: nothing to do).
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Sled(s) => s.flush().await,
            Store::Memory(_) => Ok(()),
        }
    }

    /// As [`Self::flush`], on the calling thread, for code already on a blocking thread.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        check_thread();
        match self {
            Store::Sled(s) => s.flush_blocking(),
            Store::Memory(_) => Ok(()),
        }
    }

    /// Up to `limit` envelopes for `addr` with sequence numbers greater than `after` (all when
    /// `None`), in sequence order. Envelopes that arrived `ttl` seconds or more before `now` are
    /// deleted instead of returned (those met before the `limit`-th live one), so the TTL holds
    /// between [`Self::expire`] sweeps.
    pub fn pending(
        &self,
        addr: &DeviceAddr,
        after: Option<u64>,
        limit: usize,
        now: u64,
        ttl: u64,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        dispatch!(self, s => s.pending(addr, after, u64::MAX, limit, now, ttl))
    }

    /// As [`Self::pending`], of the envelopes numbered up to `through` (inclusive) only.
    pub fn pending_through(
        &self,
        addr: &DeviceAddr,
        after: Option<u64>,
        through: u64,
        limit: usize,
        now: u64,
        ttl: u64,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        dispatch!(self, s => s.pending(addr, after, through, limit, now, ttl))
    }

    /// Deletes acknowledged envelopes (by sequence number) from `addr`'s mailbox; returns how
    /// many existed. Sequence numbers not in this mailbox (acknowledged already, expired, or
    /// another device's) are ignored.
    pub fn ack(&self, addr: &DeviceAddr, seqs: &[u64]) -> Result<usize, StoreError> {
        dispatch!(self, s => s.ack(addr, seqs))
    }

    /// Deletes every envelope that arrived `ttl` seconds or more before `now`; returns how many.
    pub fn expire(&self, now: u64, ttl: u64) -> Result<usize, StoreError> {
        dispatch!(self, s => s.expire(now, ttl))
    }

    /// The largest envelope sequence number ever assigned (0 if none), so a restarted relay
    /// continues above it even if every envelope was acknowledged.
    pub fn last_sequence(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.last_sequence())
    }

    /// A 32-byte secret of this relay, created on first use and kept for the store's lifetime
    /// (the envelope id cipher key). Never leaves the relay.
    pub fn relay_secret(&self) -> Result<[u8; 32], StoreError> {
        dispatch!(self, s => s.relay_secret())
    }

    /// First come, first served: stores a verified claim unless another identity holds the
    /// handle, or the same identity holds it under a later claim. See [`ClaimOutcome`].
    pub fn claim_handle(&self, claim: &HandleClaim) -> Result<ClaimOutcome, StoreError> {
        dispatch!(self, s => s.claim_handle(claim))
    }

    /// The claim for a handle, if any.
    pub fn lookup_handle(&self, handle: &Handle) -> Result<Option<HandleClaim>, StoreError> {
        dispatch!(self, s => s.lookup_handle(handle))
    }

    /// Removes a handle if the verified release comes from the identity holding it and is
    /// later (`issued_at`) than the stored claim, so a release of an earlier claim cannot undo
    /// a later one, and records the release's `issued_at`: a later claim of the handle, by
    /// anyone, must be later than it. Returns whether the handle was removed.
    pub fn release_handle(&self, release: &HandleRelease) -> Result<bool, StoreError> {
        dispatch!(self, s => s.release_handle(release))
    }

    /// Sets `identity`'s delivery-token policy and applies `add` and `revoke`
    /// ([`token_changes`]), atomically: the update is refused whole (nothing changed) if the
    /// account would then hold more than `max` digests, accepted and revoked together. Not
    /// durable until [`Self::flush`]. Only digests are stored, never tokens.
    pub fn set_delivery_tokens(
        &self,
        identity: &IdentityKey,
        policy: TokenPolicy,
        add: &[TokenDigest],
        revoke: &[TokenDigest],
        max: usize,
    ) -> Result<Result<(), TokenQuotaExceeded>, StoreError> {
        dispatch!(self, s => s.set_delivery_tokens(identity, policy, add, revoke, max))
    }

    /// `identity`'s delivery-token state, `None` if it never set one.
    pub fn delivery_tokens(
        &self,
        identity: &IdentityKey,
    ) -> Result<Option<DeliveryTokens>, StoreError> {
        dispatch!(self, s => s.delivery_tokens(identity))
    }

    /// Every account's delivery-token state, for the relay to hold in memory (`admission.rs`).
    pub fn all_delivery_tokens(&self) -> Result<Vec<(IdentityKey, DeliveryTokens)>, StoreError> {
        dispatch!(self, s => s.all_delivery_tokens())
    }

    /// Stores a reachability record (its signature and identity checked by the caller) unless
    /// the stored one of the same identity has a sequence at least as high. Not durable until
    /// [`Self::flush`].
    pub fn put_reachability(
        &self,
        record: &ReachabilityRecord,
    ) -> Result<RecordOutcome, StoreError> {
        dispatch!(self, s => s.put_reachability(record))
    }

    /// `identity`'s stored reachability record.
    pub fn reachability(
        &self,
        identity: &IdentityKey,
    ) -> Result<Option<ReachabilityRecord>, StoreError> {
        dispatch!(self, s => s.reachability(identity))
    }

    /// Counts for metrics.
    pub fn stats(&self) -> StoreStats {
        dispatch!(self, s => s.stats())
    }
}

/// The mailbox key of an envelope: device address (36 bytes) || seq (u64 big-endian), so a
/// device's envelopes are contiguous and in arrival order.
pub(crate) fn mailbox_key(addr: &DeviceAddr, seq: u64) -> [u8; 44] {
    let mut key = [0u8; 44];
    key[..36].copy_from_slice(&addr.to_key());
    key[36..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Whether an envelope that arrived at `received_at` has outlived `ttl` at `now`: it arrived
/// `ttl` seconds or more before `now`. Both backends, and both [`Store::pending`] and
/// [`Store::expire`], use this one definition.
pub(crate) fn is_expired(received_at: u64, now: u64, ttl: u64) -> bool {
    now.checked_sub(ttl)
        .is_some_and(|cutoff| received_at <= cutoff)
}

/// Encodes a mailbox value: `id [16] || received_at u64 || payload`.
pub(crate) fn encode_mailbox_value(entry: &MailboxEntry) -> Vec<u8> {
    let mut value = Vec::with_capacity(24 + entry.payload.len());
    value.extend_from_slice(entry.id.as_bytes());
    value.extend_from_slice(&entry.received_at.to_be_bytes());
    value.extend_from_slice(&entry.payload);
    value
}

/// Decodes a mailbox value stored under sequence number `seq`.
pub(crate) fn decode_mailbox_value(seq: u64, value: &[u8]) -> Result<MailboxEntry, StoreError> {
    let (id, rest) = value
        .split_first_chunk::<16>()
        .ok_or(StoreError::Corrupt("mailbox"))?;
    let (time, payload) = rest
        .split_first_chunk::<8>()
        .ok_or(StoreError::Corrupt("mailbox"))?;
    Ok(MailboxEntry {
        seq,
        id: EnvelopeId::from_bytes(*id),
        received_at: u64::from_be_bytes(*time),
        payload: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod thread_check {
    use super::*;

    /// The check that keeps store calls off async workers: it trips on a runtime thread and
    /// not inside a blocking section or off any runtime.
    #[test]
    fn store_calls_on_a_runtime_thread_panic_in_debug_builds() {
        let store = Store::Memory(MemoryStore::new());
        assert_eq!(store.last_sequence().unwrap(), 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let on_worker = runtime.block_on(async {
            let store = store.clone();
            tokio::spawn(async move { store.last_sequence() }).await
        });
        assert_eq!(on_worker.is_err(), cfg!(debug_assertions), "{on_worker:?}");
        let in_section = runtime.block_on(async {
            let store = store.clone();
            tokio::task::spawn_blocking(move || blocking_section(|| store.last_sequence())).await
        });
        assert_eq!(in_section.unwrap().unwrap(), 0);
    }
}
