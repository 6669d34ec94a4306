//! [`MemoryStore`]: the relay's state in memory only (`--ephemeral`), with the same semantics as
//! the sled backend and no disk access at all.
//!
//! Everything sits behind one mutex. Every method holds it for a short, bounded amount of work
//! (at most one mailbox page, one publish or one expiry pass), which also makes each method
//! atomic: [`MemoryStore::take_bundle`] cannot hand a one-time key out twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protocol::frames::{GroupId, Handle, HandleClaim, HandleRelease, KeyPackage, TokenPolicy};
use protocol::identity::{DeviceCertificate, IdentityKey, VerifiedDevice};
use protocol::prekeys::{KemPrekey, OneTimePrekey, PrekeyBundle, PrekeyId, SignedPrekey};
use protocol::reachability::ReachabilityRecord;
use rand::Rng;

use super::{
    ClaimOutcome, DeliveryTokens, DeviceAddr, DeviceOutcome, EnqueueOutcome, Group,
    KeyPackageCount, MAX_DEVICES_PER_IDENTITY, MAX_HANDLES_PER_IDENTITY, MAX_STORED_KEM_PREKEYS,
    MAX_STORED_KEY_PACKAGES, MAX_STORED_ONE_TIME_PREKEYS, MailboxEntry, PrekeyCounts, PublishError,
    RecordOutcome, StoreError, StoreStats, TokenDigest, TokenQuotaExceeded, is_expired,
    stored_size, token_changes,
};

/// The relay's state in memory. Cloning is cheap and shares the state.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the relay secret.
        let stats = self.stats();
        f.debug_struct("MemoryStore")
            .field("devices", &stats.devices)
            .field("envelopes", &stats.envelopes)
            .finish_non_exhaustive()
    }
}

/// Everything the store holds.
#[derive(Default)]
struct State {
    /// Device certificates by (identity bytes, device id): an identity's devices are adjacent
    /// and in device id order, as in the sled `devices` tree.
    devices: BTreeMap<([u8; 32], u32), VerifiedDevice>,
    prekeys: HashMap<DeviceAddr, DevicePrekeys>,
    mailboxes: HashMap<DeviceAddr, BTreeMap<u64, MailboxEntry>>,
    /// The TTL index: (received_at, device, seq) of every stored envelope, oldest first.
    expiry: BTreeSet<(u64, DeviceAddr, u64)>,
    /// Envelopes in all mailboxes.
    envelopes: u64,
    /// [`stored_size`] of every mailbox's envelopes, and of all of them.
    mailbox_bytes: HashMap<DeviceAddr, u64>,
    envelope_bytes: u64,
    last_sequence: u64,
    relay_secret: Option<[u8; 32]>,
    handles: HashMap<Handle, HandleClaim>,
    /// How many handles each identity holds.
    handle_owners: HashMap<IdentityKey, usize>,
    /// The `issued_at` of the last release of each released handle (SPEC.md section 10.6).
    handle_releases: HashMap<Handle, u64>,
    /// Delivery-token policies and digests of the accounts that set them (SPEC.md 10.9).
    tokens: HashMap<IdentityKey, DeliveryTokens>,
    /// The newest reachability record of each account that published one.
    records: HashMap<IdentityKey, ReachabilityRecord>,
    /// Each device's KeyPackages.
    key_packages: HashMap<DeviceAddr, DeviceKeyPackages>,
    /// Groups with their subscribers.
    groups: HashMap<GroupId, Group>,
}

/// One device's published KeyPackages.
#[derive(Default)]
struct DeviceKeyPackages {
    /// Oldest first.
    pool: VecDeque<KeyPackage>,
    last_resort: Option<KeyPackage>,
}

impl DeviceKeyPackages {
    fn count(&self) -> KeyPackageCount {
        KeyPackageCount {
            count: count_u32(self.pool.len()),
            has_last_resort: self.last_resort.is_some(),
        }
    }
}

/// One device's published prekeys.
#[derive(Default)]
struct DevicePrekeys {
    signed: Option<SignedPrekey>,
    last_resort: Option<KemPrekey>,
    kem: BTreeMap<PrekeyId, KemPrekey>,
    one_time: BTreeMap<PrekeyId, OneTimePrekey>,
}

impl DevicePrekeys {
    fn counts(&self) -> PrekeyCounts {
        PrekeyCounts {
            one_time: count_u32(self.one_time.len()),
            kem_one_time: count_u32(self.kem.len()),
        }
    }
}

/// A count as the `u32` of a `PrekeyCount` frame; stored counts are bounded far below.
fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn device_key(addr: &DeviceAddr) -> ([u8; 32], u32) {
    (*addr.identity.as_bytes(), addr.device.get())
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state. A panic while the lock was held cannot leave it half-updated in a way that
    /// matters more than losing the relay would (every method updates its counters last), so
    /// a poisoned lock is recovered rather than turned into a panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the store's lock until the returned guard is dropped: every call waits until
    /// then, as on a stalled disk (tests).
    #[cfg(test)]
    pub(crate) fn stall(&self) -> impl Sized + '_ {
        self.lock()
    }

    pub(super) fn put_device(&self, device: &VerifiedDevice) -> Result<DeviceOutcome, StoreError> {
        let mut state = self.lock();
        let identity = *device.identity().as_bytes();
        let key = (identity, device.device_id().get());
        if let Some(stored) = state.devices.get(&key) {
            if stored == device {
                return Ok(DeviceOutcome::Unchanged);
            }
            if stored.created_at() > device.created_at() {
                return Ok(DeviceOutcome::Outdated);
            }
            let keys_changed =
                stored.signing_key() != device.signing_key() || stored.dh_key() != device.dh_key();
            state.devices.insert(key, device.clone());
            if keys_changed {
                let addr = DeviceAddr {
                    identity: device.identity(),
                    device: device.device_id(),
                };
                state.prekeys.remove(&addr);
                state.key_packages.remove(&addr);
            }
            return Ok(DeviceOutcome::Replaced);
        }
        let existing = state
            .devices
            .range((identity, 0)..=(identity, u32::MAX))
            .count();
        if existing >= MAX_DEVICES_PER_IDENTITY {
            return Ok(DeviceOutcome::TooManyDevices);
        }
        state.devices.insert(key, device.clone());
        Ok(DeviceOutcome::Added)
    }

    pub(super) fn has_device(&self, addr: &DeviceAddr) -> Result<bool, StoreError> {
        Ok(self.lock().devices.contains_key(&device_key(addr)))
    }

    pub(super) fn devices(
        &self,
        identity: &IdentityKey,
        limit: usize,
    ) -> Result<Vec<DeviceCertificate>, StoreError> {
        let identity = *identity.as_bytes();
        Ok(self
            .lock()
            .devices
            .range((identity, 0)..=(identity, u32::MAX))
            .take(limit)
            .map(|(_, device)| device.certificate().clone())
            .collect())
    }

    pub(super) fn publish_prekeys(
        &self,
        addr: &DeviceAddr,
        signed: Option<&SignedPrekey>,
        kem: &[KemPrekey],
        one_time: &[OneTimePrekey],
    ) -> Result<Result<PrekeyCounts, PublishError>, StoreError> {
        let mut state = self.lock();
        if !state.devices.contains_key(&device_key(addr)) {
            return Ok(Err(PublishError::UnknownDevice));
        }
        let prekeys = state.prekeys.entry(*addr).or_default();

        let new_one_time: HashSet<PrekeyId> = one_time
            .iter()
            .map(|k| k.id)
            .filter(|id| !prekeys.one_time.contains_key(id))
            .collect();
        let new_kem: HashSet<PrekeyId> = kem
            .iter()
            .filter(|k| !k.last_resort)
            .map(|k| k.id)
            .filter(|id| !prekeys.kem.contains_key(id))
            .collect();
        if prekeys.one_time.len() + new_one_time.len() > MAX_STORED_ONE_TIME_PREKEYS
            || prekeys.kem.len() + new_kem.len() > MAX_STORED_KEM_PREKEYS
        {
            return Ok(Err(PublishError::TooManyPrekeys));
        }

        if let Some(signed) = signed {
            prekeys.signed = Some(signed.clone());
        }
        for key in kem {
            if key.last_resort {
                prekeys.last_resort = Some(key.clone());
            } else {
                prekeys.kem.insert(key.id, key.clone());
            }
        }
        for key in one_time {
            prekeys.one_time.insert(key.id, key.clone());
        }
        Ok(Ok(prekeys.counts()))
    }

    pub(super) fn take_bundle(
        &self,
        addr: &DeviceAddr,
        one_time: bool,
    ) -> Result<Option<PrekeyBundle>, StoreError> {
        let mut state = self.lock();
        let Some(device) = state.devices.get(&device_key(addr)) else {
            return Ok(None);
        };
        let device = device.certificate().clone();
        let Some(prekeys) = state.prekeys.get_mut(addr) else {
            return Ok(None);
        };
        let Some(signed_prekey) = prekeys.signed.clone() else {
            return Ok(None);
        };
        // Check that a KEM prekey exists before consuming anything.
        let kem_prekey = match (one_time, &prekeys.last_resort) {
            (false, Some(kem)) => kem.clone(),
            _ => match prekeys.kem.pop_first() {
                Some((_, kem)) => kem,
                None => match &prekeys.last_resort {
                    Some(kem) => kem.clone(),
                    None => return Ok(None),
                },
            },
        };
        let one_time_prekey = if one_time {
            prekeys.one_time.pop_first().map(|(_, key)| key)
        } else {
            None
        };
        Ok(Some(PrekeyBundle {
            device,
            signed_prekey,
            kem_prekey,
            one_time_prekey,
        }))
    }

    pub(super) fn publish_key_packages(
        &self,
        addr: &DeviceAddr,
        last_resort: Option<&KeyPackage>,
        key_packages: &[KeyPackage],
    ) -> Result<Result<KeyPackageCount, PublishError>, StoreError> {
        let mut state = self.lock();
        if !state.devices.contains_key(&device_key(addr)) {
            return Ok(Err(PublishError::UnknownDevice));
        }
        let held = state.key_packages.entry(*addr).or_default();
        if held.pool.len() + key_packages.len() > MAX_STORED_KEY_PACKAGES {
            return Ok(Err(PublishError::TooManyPrekeys));
        }
        if let Some(last_resort) = last_resort {
            held.last_resort = Some(last_resort.clone());
        }
        held.pool.extend(key_packages.iter().cloned());
        Ok(Ok(held.count()))
    }

    pub(super) fn take_key_package(
        &self,
        addr: &DeviceAddr,
        from_pool: bool,
    ) -> Result<Option<(KeyPackage, bool)>, StoreError> {
        let mut state = self.lock();
        let Some(held) = state.key_packages.get_mut(addr) else {
            return Ok(None);
        };
        if !from_pool && let Some(last_resort) = &held.last_resort {
            return Ok(Some((last_resort.clone(), true)));
        }
        if let Some(key_package) = held.pool.pop_front() {
            return Ok(Some((key_package, false)));
        }
        Ok(held.last_resort.clone().map(|kp| (kp, true)))
    }

    pub(super) fn key_package_count(
        &self,
        addr: &DeviceAddr,
    ) -> Result<KeyPackageCount, StoreError> {
        Ok(self
            .lock()
            .key_packages
            .get(addr)
            .map(DeviceKeyPackages::count)
            .unwrap_or_default())
    }

    pub(super) fn group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self.lock().groups.get(id).cloned())
    }

    pub(super) fn put_group(&self, id: &GroupId, group: &Group) -> Result<(), StoreError> {
        self.lock().groups.insert(*id, group.clone());
        Ok(())
    }

    pub(super) fn delete_group(&self, id: &GroupId) -> Result<bool, StoreError> {
        Ok(self.lock().groups.remove(id).is_some())
    }

    pub(super) fn expire_groups(&self, now: u64, ttl: u64) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let before = state.groups.len();
        state
            .groups
            .retain(|_, group| !is_expired(group.last_post, now, ttl));
        Ok(before - state.groups.len())
    }

    pub(super) fn prekey_counts(&self, addr: &DeviceAddr) -> Result<PrekeyCounts, StoreError> {
        Ok(self
            .lock()
            .prekeys
            .get(addr)
            .map(DevicePrekeys::counts)
            .unwrap_or_default())
    }

    pub(super) fn enqueue(
        &self,
        items: &[(DeviceAddr, MailboxEntry)],
        quota: usize,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        let mut state = self.lock();
        let mut last = state.last_sequence;
        for (_, entry) in items {
            if entry.seq <= last {
                return Err(StoreError::SequenceNotIncreasing {
                    seq: entry.seq,
                    last,
                });
            }
            last = entry.seq;
        }
        state.last_sequence = last;

        let mut outcomes = Vec::with_capacity(items.len());
        for (addr, entry) in items {
            if !state.devices.contains_key(&device_key(addr)) {
                outcomes.push(EnqueueOutcome::UnknownDevice);
                continue;
            }
            let held = state.mailboxes.get(addr).map_or(0, BTreeMap::len);
            if held >= quota {
                outcomes.push(EnqueueOutcome::MailboxFull);
                continue;
            }
            let mailbox = state.mailboxes.entry(*addr).or_default();
            mailbox.insert(entry.seq, entry.clone());
            state.expiry.insert((entry.received_at, *addr, entry.seq));
            state.envelopes += 1;
            let size = stored_size(entry.payload.len());
            *state.mailbox_bytes.entry(*addr).or_default() += size;
            state.envelope_bytes = state.envelope_bytes.saturating_add(size);
            outcomes.push(EnqueueOutcome::Stored);
        }
        Ok(outcomes)
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
        let mut state = self.lock();
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
        let mut out = Vec::new();
        let mut expired = Vec::new();
        if let Some(mailbox) = state.mailboxes.get(addr) {
            for entry in mailbox.range(start..=through) {
                if out.len() >= limit {
                    break;
                }
                let (&seq, entry) = entry;
                if is_expired(entry.received_at, now, ttl) {
                    expired.push((entry.received_at, seq));
                } else {
                    out.push(entry.clone());
                }
            }
        }
        for (received_at, seq) in expired {
            state.remove_envelope(addr, seq, received_at);
        }
        Ok(out)
    }

    pub(super) fn ack(&self, addr: &DeviceAddr, seqs: &[u64]) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let mut removed = 0;
        for &seq in seqs {
            let received_at = state
                .mailboxes
                .get(addr)
                .and_then(|mailbox| mailbox.get(&seq))
                .map(|entry| entry.received_at);
            if let Some(received_at) = received_at {
                state.remove_envelope(addr, seq, received_at);
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub(super) fn expire(&self, now: u64, ttl: u64) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let mut removed = 0;
        while let Some(&(received_at, addr, seq)) = state.expiry.first() {
            if !is_expired(received_at, now, ttl) {
                break;
            }
            state.remove_envelope(&addr, seq, received_at);
            removed += 1;
        }
        Ok(removed)
    }

    pub(super) fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.lock().last_sequence)
    }

    pub(super) fn relay_secret(&self) -> Result<[u8; 32], StoreError> {
        let mut state = self.lock();
        Ok(*state.relay_secret.get_or_insert_with(|| {
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            secret
        }))
    }

    pub(super) fn claim_handle(&self, claim: &HandleClaim) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        let outcome = match state.handles.get(&claim.handle) {
            None if state
                .handle_releases
                .get(&claim.handle)
                .is_some_and(|&released| claim.issued_at <= released) =>
            {
                return Ok(ClaimOutcome::Stale);
            }
            None => ClaimOutcome::Claimed,
            Some(stored) if stored.identity != claim.identity => return Ok(ClaimOutcome::Taken),
            Some(stored) if claim.issued_at <= stored.issued_at => return Ok(ClaimOutcome::Stale),
            Some(_) => ClaimOutcome::Renewed,
        };
        if outcome == ClaimOutcome::Claimed {
            let held = state.handle_owners.entry(claim.identity).or_default();
            if *held >= MAX_HANDLES_PER_IDENTITY {
                return Ok(ClaimOutcome::TooManyHandles);
            }
            *held += 1;
        }
        state.handles.insert(claim.handle.clone(), claim.clone());
        Ok(outcome)
    }

    pub(super) fn lookup_handle(&self, handle: &Handle) -> Result<Option<HandleClaim>, StoreError> {
        Ok(self.lock().handles.get(handle).cloned())
    }

    pub(super) fn release_handle(&self, release: &HandleRelease) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let holds = state.handles.get(&release.handle).is_some_and(|stored| {
            stored.identity == release.identity && release.issued_at > stored.issued_at
        });
        if holds {
            state.handles.remove(&release.handle);
            state
                .handle_releases
                .insert(release.handle.clone(), release.issued_at);
            if let Some(held) = state.handle_owners.get_mut(&release.identity) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    state.handle_owners.remove(&release.identity);
                }
            }
        }
        Ok(holds)
    }

    pub(super) fn set_delivery_tokens(
        &self,
        identity: &IdentityKey,
        policy: TokenPolicy,
        add: &[TokenDigest],
        revoke: &[TokenDigest],
        max: usize,
    ) -> Result<Result<(), TokenQuotaExceeded>, StoreError> {
        let changes = token_changes(add, revoke);
        let mut state = self.lock();
        let tokens = state.tokens.get(identity);
        let held = tokens.map_or(0, |t| t.digests.len());
        let new = changes
            .keys()
            .filter(|d| tokens.is_none_or(|t| t.state(d).is_none()))
            .count();
        if held.saturating_add(new) > max {
            return Ok(Err(TokenQuotaExceeded { max }));
        }
        state
            .tokens
            .entry(*identity)
            .or_insert_with(|| DeliveryTokens::new(policy))
            .apply(policy, &changes);
        Ok(Ok(()))
    }

    pub(super) fn delivery_tokens(
        &self,
        identity: &IdentityKey,
    ) -> Result<Option<DeliveryTokens>, StoreError> {
        Ok(self.lock().tokens.get(identity).cloned())
    }

    pub(super) fn all_delivery_tokens(
        &self,
    ) -> Result<Vec<(IdentityKey, DeliveryTokens)>, StoreError> {
        Ok(self
            .lock()
            .tokens
            .iter()
            .map(|(identity, tokens)| (*identity, tokens.clone()))
            .collect())
    }

    pub(super) fn put_reachability(
        &self,
        record: &ReachabilityRecord,
    ) -> Result<RecordOutcome, StoreError> {
        let mut state = self.lock();
        match state.records.get(&record.identity) {
            Some(stored) if stored == record => return Ok(RecordOutcome::Unchanged),
            Some(stored) if stored.sequence >= record.sequence => return Ok(RecordOutcome::Stale),
            _ => {}
        }
        state.records.insert(record.identity, record.clone());
        Ok(RecordOutcome::Stored)
    }

    pub(super) fn reachability(
        &self,
        identity: &IdentityKey,
    ) -> Result<Option<ReachabilityRecord>, StoreError> {
        Ok(self.lock().records.get(identity).cloned())
    }

    pub(super) fn mailbox_len(&self, addr: &DeviceAddr) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .mailboxes
            .get(addr)
            .map_or(0, |mailbox| mailbox.len()))
    }

    pub(super) fn mailbox_bytes(&self, addr: &DeviceAddr) -> Result<u64, StoreError> {
        Ok(self.lock().mailbox_bytes.get(addr).copied().unwrap_or(0))
    }

    pub(super) fn stats(&self) -> StoreStats {
        let state = self.lock();
        StoreStats {
            envelopes: state.envelopes,
            envelope_bytes: state.envelope_bytes,
            devices: state.devices.len() as u64,
        }
    }
}

impl State {
    /// Removes one envelope known to be stored, from its mailbox, the TTL index and the count.
    fn remove_envelope(&mut self, addr: &DeviceAddr, seq: u64, received_at: u64) {
        let mut now_empty = false;
        if let Some(mailbox) = self.mailboxes.get_mut(addr)
            && let Some(entry) = mailbox.remove(&seq)
        {
            self.envelopes = self.envelopes.saturating_sub(1);
            let size = stored_size(entry.payload.len());
            self.envelope_bytes = self.envelope_bytes.saturating_sub(size);
            if let Some(bytes) = self.mailbox_bytes.get_mut(addr) {
                *bytes = bytes.saturating_sub(size);
            }
            now_empty = mailbox.is_empty();
        }
        if now_empty {
            self.mailboxes.remove(addr);
            self.mailbox_bytes.remove(addr);
        }
        self.expiry.remove(&(received_at, *addr, seq));
    }
}
