//! Tests of the store: one suite run against both backends, then what only the sled backend
//! has (reopening, corrupt records).
//!
//! Every value stored is a real protocol value made from a seeded `ChaCha20Rng`. Where a test
//! needs hundreds of prekeys only to fill a cap, it reuses one generated key under new ids (the
//! store does not check prekey signatures; the caller does, SPEC.md section 10.4).

use std::collections::BTreeSet;
use std::path::Path;

use protocol::crypto::ed25519::Ed25519Secret;
use protocol::frames::{
    EnvelopeId, GroupId, Handle, HandleClaim, HandleRelease, KeyPackage, PostKey, TokenPolicy,
};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::prekeys::{
    KemPrekey, KemPrekeySecret, OneTimePrekey, OneTimePrekeySecret, PrekeyId, SignedPrekey,
    SignedPrekeySecret,
};
use protocol::reachability::{ReachabilityRecord, RelayEndpoint};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;

/// A fixed "now", seconds since the Unix epoch.
const NOW: u64 = 1_750_000_000;
/// The default mailbox TTL, 30 days.
const TTL: u64 = 30 * 24 * 3600;
/// A quota that no test reaches unless it means to.
const QUOTA: usize = 10_000;
/// The id every test gives the last-resort KEM prekey.
const LAST_RESORT_ID: PrekeyId = 1_000_000;

// ---- Fixtures -------------------------------------------------------------------------------

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn memory() -> Store {
    Store::Memory(MemoryStore::new())
}

/// Opens the sled store at `path`. A store dropped a moment ago may still be locked: sled's
/// flusher thread holds the database until its current pass ends, so a reopen waits for the
/// lock (bounded: 10 s).
fn open_sled(path: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(path) {
            Ok(store) => return Store::Sled(store),
            Err(e)
                if format!("{e:?}").contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("opening the store at {}: {e}", path.display()),
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn flush(store: &Store) {
    block_on(store.flush()).unwrap();
}

/// An account and its devices, ids 1..=n, certified at [`NOW`].
struct Account {
    identity: IdentityKeyPair,
    devices: Vec<LocalDevice>,
}

impl Account {
    fn new(rng: &mut ChaCha20Rng, devices: u32) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let devices = (1..=devices)
            .map(|id| {
                let keys = DeviceKeyPair::generate(DeviceId::new(id).unwrap(), rng);
                LocalDevice::new(&identity, keys, NOW)
            })
            .collect();
        Self { identity, devices }
    }

    fn addr(&self, index: usize) -> DeviceAddr {
        addr_of(&self.devices[index])
    }

    /// Stores every device's certificate.
    fn register(&self, store: &Store) {
        for device in &self.devices {
            assert_eq!(
                store.put_device(&device.cert).unwrap(),
                DeviceOutcome::Added
            );
        }
    }

    fn claim(&self, handle: &str, issued_at: u64) -> HandleClaim {
        HandleClaim::sign(&self.identity, Handle::parse(handle).unwrap(), issued_at)
    }

    fn release(&self, handle: &str, issued_at: u64) -> HandleRelease {
        HandleRelease::sign(&self.identity, Handle::parse(handle).unwrap(), issued_at)
    }
}

fn addr_of(device: &LocalDevice) -> DeviceAddr {
    DeviceAddr {
        identity: device.cert.identity(),
        device: device.cert.device_id(),
    }
}

/// A device's published prekeys: one-time KEM ids `kem_ids`, one-time X25519 ids
/// `one_time_ids`, each a freshly generated key.
struct Prekeys {
    signed: SignedPrekey,
    last_resort: KemPrekey,
    kem: Vec<KemPrekey>,
    one_time: Vec<OneTimePrekey>,
}

impl Prekeys {
    fn new(
        device: &LocalDevice,
        rng: &mut ChaCha20Rng,
        kem_ids: impl IntoIterator<Item = PrekeyId>,
        one_time_ids: impl IntoIterator<Item = PrekeyId>,
    ) -> Self {
        let signer = device.keys.signing();
        let (_, signed) = SignedPrekeySecret::generate(1, NOW, signer, rng);
        let (_, last_resort) = KemPrekeySecret::generate(LAST_RESORT_ID, true, signer, rng);
        let kem = kem_ids
            .into_iter()
            .map(|id| KemPrekeySecret::generate(id, false, signer, rng).1)
            .collect();
        let one_time = one_time_ids
            .into_iter()
            .map(|id| OneTimePrekeySecret::generate(id, rng).1)
            .collect();
        Self {
            signed,
            last_resort,
            kem,
            one_time,
        }
    }

    /// Publishes all of them: the signed prekey, the last-resort and one-time KEM prekeys and
    /// the one-time X25519 prekeys.
    fn publish(&self, store: &Store, addr: &DeviceAddr) -> PrekeyCounts {
        let mut kem = self.kem.clone();
        kem.push(self.last_resort.clone());
        store
            .publish_prekeys(addr, Some(&self.signed), &kem, &self.one_time)
            .unwrap()
            .unwrap()
    }
}

fn counts(one_time: u32, kem_one_time: u32) -> PrekeyCounts {
    PrekeyCounts {
        one_time,
        kem_one_time,
    }
}

/// An envelope with sequence number `seq`, arrived at `received_at`.
fn entry(seq: u64, received_at: u64) -> MailboxEntry {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id[8..].copy_from_slice(&(!seq).to_be_bytes());
    MailboxEntry {
        seq,
        id: EnvelopeId::from_bytes(id),
        received_at,
        payload: format!("sealed payload {seq}").into_bytes(),
    }
}

fn seqs(entries: &[MailboxEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

fn all_pending(store: &Store, addr: &DeviceAddr) -> Vec<MailboxEntry> {
    store.pending(addr, None, usize::MAX, NOW, TTL).unwrap()
}

// ---- The suite, for both backends -------------------------------------------------------------

/// Runs each named `fn(&Store)` as a test against a fresh [`MemoryStore`] and a fresh
/// [`SledStore`] in a temporary directory.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::memory());
                }
            )*
        }

        mod sled_backend {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(&super::open_sled(dir.path()));
                }
            )*
        }
    };
}

suite!(
    devices_are_listed_in_id_order,
    newer_certificate_replaces_older_is_ignored,
    new_device_keys_drop_old_prekeys,
    devices_per_identity_are_capped,
    publish_needs_a_known_device,
    publish_adds_replaces_and_counts,
    publish_over_a_cap_stores_nothing,
    take_bundle_hands_out_lowest_ids_then_last_resort,
    take_bundle_without_one_time_consumes_nothing,
    envelope_bytes_are_counted_per_mailbox_and_in_all,
    take_bundle_without_a_kem_prekey_consumes_nothing,
    concurrent_take_bundle_hands_each_key_out_once,
    pending_is_in_order_and_pages,
    pending_edge_cases,
    enqueue_refuses_unknown_devices_and_full_mailboxes,
    ack_deletes_only_this_mailboxs_envelopes,
    ttl_applies_in_pending_and_expire,
    last_sequence_only_grows,
    sequence_numbers_must_increase,
    relay_secret_is_stable,
    debug_output_holds_no_secret,
    handles_are_first_come_first_served,
    handles_per_identity_are_capped,
    concurrent_claims_have_one_winner,
    flush_succeeds,
    delivery_tokens_set_add_revoke_and_are_idempotent,
    delivery_tokens_over_the_cap_change_nothing,
    reachability_records_only_move_forward,
    key_packages_are_first_in_first_out_then_last_resort,
    key_packages_over_the_cap_store_nothing,
    new_device_keys_drop_old_key_packages,
    concurrent_key_package_fetches_hand_each_out_once,
    groups_are_written_read_and_deleted,
    groups_expire_with_the_mailbox_ttl,
);

fn devices_are_listed_in_id_order(store: &Store) {
    let mut rng = rng(1);
    let alice = Account::new(&mut rng, 3);
    let bob = Account::new(&mut rng, 1);
    for index in [2, 0, 1] {
        let outcome = store.put_device(&alice.devices[index].cert).unwrap();
        assert_eq!(outcome, DeviceOutcome::Added);
    }

    let certs = |limit| store.devices(&alice.identity.public_key(), limit).unwrap();
    let ids =
        |list: Vec<DeviceCertificate>| list.iter().map(|c| c.device_id().get()).collect::<Vec<_>>();
    assert_eq!(ids(certs(10)), [1, 2, 3]);
    assert_eq!(ids(certs(2)), [1, 2]);
    assert_eq!(certs(10)[0], *alice.devices[0].cert.certificate());
    assert!(
        store
            .devices(&bob.identity.public_key(), 10)
            .unwrap()
            .is_empty()
    );

    assert!(store.has_device(&alice.addr(1)).unwrap());
    assert!(!store.has_device(&bob.addr(0)).unwrap());
    assert_eq!(
        store.put_device(&alice.devices[1].cert).unwrap(),
        DeviceOutcome::Unchanged
    );
    assert_eq!(store.stats().devices, 3);
}

fn newer_certificate_replaces_older_is_ignored(store: &Store) {
    let mut rng = rng(2);
    let alice = Account::new(&mut rng, 1);
    let device = &alice.devices[0];
    let recertify = |created_at| LocalDevice::new(&alice.identity, device.keys.clone(), created_at);
    let newer = recertify(NOW + 10);
    let older = recertify(NOW - 10);

    alice.register(store);
    let prekeys = Prekeys::new(device, &mut rng, [1], [1]);
    prekeys.publish(store, &alice.addr(0));

    assert_eq!(
        store.put_device(&newer.cert).unwrap(),
        DeviceOutcome::Replaced
    );
    assert_eq!(
        store.put_device(&older.cert).unwrap(),
        DeviceOutcome::Outdated
    );
    assert_eq!(
        store.put_device(&device.cert).unwrap(),
        DeviceOutcome::Outdated
    );
    assert_eq!(
        store.put_device(&newer.cert).unwrap(),
        DeviceOutcome::Unchanged
    );
    let listed = store.devices(&alice.identity.public_key(), 10).unwrap();
    assert_eq!(listed, [newer.cert.certificate().clone()]);
    assert_eq!(store.stats().devices, 1);

    // Same keys, so the prekeys stay, and the bundle carries the current certificate.
    assert_eq!(store.prekey_counts(&alice.addr(0)).unwrap(), counts(1, 1));
    let bundle = store.take_bundle(&alice.addr(0)).unwrap().unwrap();
    assert_eq!(bundle.device, *newer.cert.certificate());
    bundle.verify(Some(&alice.identity.public_key())).unwrap();
}

fn new_device_keys_drop_old_prekeys(store: &Store) {
    let mut rng = rng(3);
    let alice = Account::new(&mut rng, 2);
    alice.register(store);
    for index in 0..2 {
        Prekeys::new(&alice.devices[index], &mut rng, [1, 2], [1, 2, 3])
            .publish(store, &alice.addr(index));
    }

    // Device 1 is reinstalled: same id, new keys, newer certificate.
    let keys = DeviceKeyPair::generate(DeviceId::new(1).unwrap(), &mut rng);
    let reinstalled = LocalDevice::new(&alice.identity, keys, NOW + 1);
    assert_eq!(
        store.put_device(&reinstalled.cert).unwrap(),
        DeviceOutcome::Replaced
    );
    assert_eq!(store.prekey_counts(&alice.addr(0)).unwrap(), counts(0, 0));
    assert_eq!(store.take_bundle(&alice.addr(0)).unwrap(), None);
    // The other device keeps its prekeys.
    assert_eq!(store.prekey_counts(&alice.addr(1)).unwrap(), counts(3, 2));

    // The new keys' prekeys make bundles that verify.
    Prekeys::new(&reinstalled, &mut rng, [7], [7]).publish(store, &alice.addr(0));
    let bundle = store.take_bundle(&alice.addr(0)).unwrap().unwrap();
    bundle.verify(Some(&alice.identity.public_key())).unwrap();
    assert_eq!(bundle.kem_prekey.id, 7);
}

fn devices_per_identity_are_capped(store: &Store) {
    let mut rng = rng(4);
    let cap = u32::try_from(MAX_DEVICES_PER_IDENTITY).unwrap();
    let alice = Account::new(&mut rng, cap + 1);
    let (allowed, extra) = alice.devices.split_at(MAX_DEVICES_PER_IDENTITY);
    for device in allowed {
        assert_eq!(
            store.put_device(&device.cert).unwrap(),
            DeviceOutcome::Added
        );
    }
    assert_eq!(
        store.put_device(&extra[0].cert).unwrap(),
        DeviceOutcome::TooManyDevices
    );
    assert!(!store.has_device(&addr_of(&extra[0])).unwrap());
    let listed = store
        .devices(&alice.identity.public_key(), usize::MAX)
        .unwrap();
    assert_eq!(listed.len(), MAX_DEVICES_PER_IDENTITY);

    // Devices already stored can still be re-certified, and other identities are not affected.
    let renewed = LocalDevice::new(&alice.identity, allowed[5].keys.clone(), NOW + 1);
    assert_eq!(
        store.put_device(&renewed.cert).unwrap(),
        DeviceOutcome::Replaced
    );
    let bob = Account::new(&mut rng, 1);
    bob.register(store);
    assert_eq!(store.stats().devices, MAX_DEVICES_PER_IDENTITY as u64 + 1);
}

fn publish_needs_a_known_device(store: &Store) {
    let mut rng = rng(5);
    let alice = Account::new(&mut rng, 1);
    let prekeys = Prekeys::new(&alice.devices[0], &mut rng, [1], [1]);
    let refused = store
        .publish_prekeys(
            &alice.addr(0),
            Some(&prekeys.signed),
            &prekeys.kem,
            &prekeys.one_time,
        )
        .unwrap();
    assert_eq!(refused, Err(PublishError::UnknownDevice));
    alice.register(store);
    assert_eq!(store.prekey_counts(&alice.addr(0)).unwrap(), counts(0, 0));
    assert_eq!(store.take_bundle(&alice.addr(0)).unwrap(), None);
}

fn publish_adds_replaces_and_counts(store: &Store) {
    let mut rng = rng(6);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let addr = alice.addr(0);
    let device = &alice.devices[0];
    let first = Prekeys::new(device, &mut rng, [1, 2, 3], [1, 2, 3, 4, 5]);
    assert_eq!(first.publish(store, &addr), counts(5, 3));

    // Ids 4 and 5 again (replaced, not added), 6 and 7 new; a new signed prekey and a new
    // last-resort key replace the old ones; duplicates within one publish count once.
    let second = Prekeys::new(device, &mut rng, [3, 4], [4, 5, 6, 7, 7]);
    assert_eq!(second.publish(store, &addr), counts(7, 4));
    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(7, 4));
    let empty = store.publish_prekeys(&addr, None, &[], &[]).unwrap();
    assert_eq!(empty, Ok(counts(7, 4)));

    let mut kem_ids = Vec::new();
    let mut one_time = Vec::new();
    for _ in 0..4 {
        let bundle = store.take_bundle(&addr).unwrap().unwrap();
        assert_eq!(bundle.signed_prekey, second.signed);
        kem_ids.push(bundle.kem_prekey.id);
        one_time.push(bundle.one_time_prekey.unwrap());
    }
    assert_eq!(kem_ids, [1, 2, 3, 4]);
    // Ids 4 and 5 hold the second publish's keys.
    assert_eq!(one_time[3], second.one_time[0]);
    let bundle = store.take_bundle(&addr).unwrap().unwrap();
    assert_eq!(bundle.kem_prekey, second.last_resort);
    assert_eq!(bundle.one_time_prekey.as_ref(), Some(&second.one_time[1]));
    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(2, 0));
}

fn publish_over_a_cap_stores_nothing(store: &Store) {
    let mut rng = rng(7);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let addr = alice.addr(0);
    let base = Prekeys::new(&alice.devices[0], &mut rng, [0], [0]);
    let one_time = |ids: std::ops::Range<u32>| -> Vec<OneTimePrekey> {
        ids.map(|id| OneTimePrekey {
            id,
            ..base.one_time[0].clone()
        })
        .collect()
    };
    let kem = |ids: std::ops::Range<u32>| -> Vec<KemPrekey> {
        ids.map(|id| KemPrekey {
            id,
            ..base.kem[0].clone()
        })
        .collect()
    };
    let max_one_time = u32::try_from(MAX_STORED_ONE_TIME_PREKEYS).unwrap();
    let max_kem = u32::try_from(MAX_STORED_KEM_PREKEYS).unwrap();

    // One publish above a cap is refused.
    let refused = store
        .publish_prekeys(
            &addr,
            Some(&base.signed),
            &[],
            &one_time(0..max_one_time + 1),
        )
        .unwrap();
    assert_eq!(refused, Err(PublishError::TooManyPrekeys));
    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(0, 0));

    // Filling to the caps in two steps works; one more key is refused, signed prekey and all.
    let half = max_one_time / 2;
    store
        .publish_prekeys(&addr, None, &[], &one_time(0..half))
        .unwrap()
        .unwrap();
    let full = store
        .publish_prekeys(&addr, None, &kem(0..max_kem), &one_time(half..max_one_time))
        .unwrap();
    assert_eq!(full, Ok(counts(max_one_time, max_kem)));
    let refused = store
        .publish_prekeys(
            &addr,
            Some(&base.signed),
            &[],
            &one_time(max_one_time..max_one_time + 1),
        )
        .unwrap();
    assert_eq!(refused, Err(PublishError::TooManyPrekeys));
    let refused = store
        .publish_prekeys(&addr, Some(&base.signed), &kem(max_kem..max_kem + 1), &[])
        .unwrap();
    assert_eq!(refused, Err(PublishError::TooManyPrekeys));
    assert_eq!(
        store.prekey_counts(&addr).unwrap(),
        counts(max_one_time, max_kem)
    );
    assert_eq!(
        store.take_bundle(&addr).unwrap(),
        None,
        "the signed prekey was not stored"
    );

    // At the cap, replacing stored ids and the last-resort key is fine.
    let mut replacing = kem(0..10);
    replacing.push(base.last_resort.clone());
    let replaced = store
        .publish_prekeys(&addr, Some(&base.signed), &replacing, &one_time(0..10))
        .unwrap();
    assert_eq!(replaced, Ok(counts(max_one_time, max_kem)));
    assert!(store.take_bundle(&addr).unwrap().is_some());
}

fn take_bundle_hands_out_lowest_ids_then_last_resort(store: &Store) {
    let mut rng = rng(8);
    let alice = Account::new(&mut rng, 1);
    let addr = alice.addr(0);
    assert_eq!(store.take_bundle(&addr).unwrap(), None, "unknown device");
    alice.register(store);
    assert_eq!(store.take_bundle(&addr).unwrap(), None, "no prekeys");

    let prekeys = Prekeys::new(&alice.devices[0], &mut rng, [5, 2, 9], [7, 3]);
    prekeys.publish(store, &addr);
    let mut taken = Vec::new();
    for _ in 0..5 {
        let bundle = store.take_bundle(&addr).unwrap().unwrap();
        bundle.verify(Some(&alice.identity.public_key())).unwrap();
        assert_eq!(bundle.device, *alice.devices[0].cert.certificate());
        assert_eq!(bundle.signed_prekey, prekeys.signed);
        taken.push((bundle.kem_prekey.id, bundle.one_time_prekey.map(|k| k.id)));
    }
    let lr = LAST_RESORT_ID;
    assert_eq!(
        taken,
        [
            (2, Some(3)),
            (5, Some(7)),
            (9, None),
            (lr, None),
            (lr, None)
        ]
    );
    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(0, 0));

    // A new one-time KEM prekey is used before the last-resort one again.
    let more = Prekeys::new(&alice.devices[0], &mut rng, [11], [12]);
    store
        .publish_prekeys(&addr, None, &more.kem, &more.one_time)
        .unwrap()
        .unwrap();
    let bundle = store.take_bundle(&addr).unwrap().unwrap();
    assert_eq!(bundle.kem_prekey, more.kem[0]);
    assert_eq!(bundle.one_time_prekey, Some(more.one_time[0].clone()));
}

fn envelope_bytes_are_counted_per_mailbox_and_in_all(store: &Store) {
    let mut rng = rng(19);
    let alice = Account::new(&mut rng, 2);
    alice.register(store);
    let (a, b) = (alice.addr(0), alice.addr(1));
    let sized = |seq, received_at, len| MailboxEntry {
        payload: vec![7; len],
        ..entry(seq, received_at)
    };
    let items = [
        (a, sized(1, NOW, 1000)),
        (a, sized(2, NOW + 100, 0)),
        (b, sized(3, NOW, 50)),
        (a, sized(4, NOW + 100, 10)),
    ];
    store.enqueue(&items, 100).unwrap();
    let bytes = |addr| store.mailbox_bytes(&addr).unwrap();
    assert_eq!(
        bytes(a),
        stored_size(1000) + stored_size(0) + stored_size(10)
    );
    assert_eq!(bytes(b), stored_size(50));
    assert_eq!(store.stats().envelope_bytes, bytes(a) + bytes(b));
    // An ack, a duplicate ack, the TTL in `pending` and in `expire` each uncount once.
    assert_eq!(store.ack(&a, &[2, 2]).unwrap(), 1);
    assert_eq!(bytes(a), stored_size(1000) + stored_size(10));
    let live = store.pending(&a, None, 10, NOW + 50, 50).unwrap();
    assert_eq!(live.iter().map(|e| e.seq).collect::<Vec<_>>(), [4]);
    assert_eq!(bytes(a), stored_size(10));
    assert_eq!(store.expire(NOW + 50, 50).unwrap(), 1);
    assert_eq!(bytes(b), 0);
    assert_eq!(store.stats().envelope_bytes, stored_size(10));
    assert_eq!(store.ack(&a, &[4]).unwrap(), 1);
    assert_eq!(store.stats().envelope_bytes, 0);
}

fn take_bundle_without_one_time_consumes_nothing(store: &Store) {
    let mut rng = rng(18);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let addr = alice.addr(0);
    let prekeys = Prekeys::new(&alice.devices[0], &mut rng, [5, 2], [7, 3]);
    prekeys.publish(store, &addr);
    for _ in 0..3 {
        let bundle = store.take_bundle_with(&addr, false).unwrap().unwrap();
        bundle.verify(Some(&alice.identity.public_key())).unwrap();
        assert_eq!(bundle.kem_prekey, prekeys.last_resort);
        assert_eq!(bundle.one_time_prekey, None);
    }
    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(2, 2));
    let bundle = store.take_bundle_with(&addr, true).unwrap().unwrap();
    assert_eq!(
        (bundle.kem_prekey.id, bundle.one_time_prekey.map(|k| k.id)),
        (2, Some(3))
    );
}

fn take_bundle_without_a_kem_prekey_consumes_nothing(store: &Store) {
    let mut rng = rng(9);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let addr = alice.addr(0);
    let prekeys = Prekeys::new(&alice.devices[0], &mut rng, [1], [1, 2]);

    // One-time keys but no signed prekey, then a signed prekey but no KEM prekey.
    store
        .publish_prekeys(&addr, None, &prekeys.kem, &prekeys.one_time)
        .unwrap()
        .unwrap();
    assert_eq!(store.take_bundle(&addr).unwrap(), None);
    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(2, 1));

    let bob = Account::new(&mut rng, 1);
    bob.register(store);
    let bob_addr = bob.addr(0);
    let bob_prekeys = Prekeys::new(&bob.devices[0], &mut rng, [], [1]);
    store
        .publish_prekeys(
            &bob_addr,
            Some(&bob_prekeys.signed),
            &[],
            &bob_prekeys.one_time,
        )
        .unwrap()
        .unwrap();
    assert_eq!(store.take_bundle(&bob_addr).unwrap(), None);
    assert_eq!(store.prekey_counts(&bob_addr).unwrap(), counts(1, 0));
}

fn concurrent_take_bundle_hands_each_key_out_once(store: &Store) {
    const THREADS: usize = 8;
    const TAKES: usize = 50;
    let mut rng = rng(10);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let addr = alice.addr(0);
    let one_time_ids = 1..=u32::try_from(THREADS * TAKES).unwrap();
    let kem_ids = 1..=u32::try_from(MAX_STORED_KEM_PREKEYS).unwrap();
    let prekeys = Prekeys::new(
        &alice.devices[0],
        &mut rng,
        kem_ids.clone(),
        one_time_ids.clone(),
    );
    let published = prekeys.publish(store, &addr);
    assert_eq!(published, counts(400, 200));

    let bundles: Vec<PrekeyBundle> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    (0..TAKES)
                        .map(|_| store.take_bundle(&addr).unwrap().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });

    let one_time: Vec<PrekeyId> = bundles
        .iter()
        .map(|b| b.one_time_prekey.as_ref().unwrap().id)
        .collect();
    let distinct: BTreeSet<PrekeyId> = one_time.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        one_time.len(),
        "a one-time prekey was handed out twice"
    );
    assert_eq!(
        distinct,
        one_time_ids.collect::<BTreeSet<_>>(),
        "a one-time prekey was lost"
    );

    let kem_one_time: Vec<PrekeyId> = bundles
        .iter()
        .filter(|b| !b.kem_prekey.last_resort)
        .map(|b| b.kem_prekey.id)
        .collect();
    let distinct: BTreeSet<PrekeyId> = kem_one_time.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        kem_one_time.len(),
        "a KEM prekey was handed out twice"
    );
    assert_eq!(
        distinct,
        kem_ids.collect::<BTreeSet<_>>(),
        "a KEM prekey was lost"
    );
    let last_resort = bundles.iter().filter(|b| b.kem_prekey.last_resort).count();
    assert_eq!(last_resort, THREADS * TAKES - MAX_STORED_KEM_PREKEYS);
    for bundle in bundles.iter().filter(|b| b.kem_prekey.last_resort) {
        assert_eq!(bundle.kem_prekey, prekeys.last_resort);
    }

    assert_eq!(store.prekey_counts(&addr).unwrap(), counts(0, 0));
    let exhausted = store.take_bundle(&addr).unwrap().unwrap();
    assert_eq!(exhausted.one_time_prekey, None);
    assert_eq!(exhausted.kem_prekey, prekeys.last_resort);
}

fn pending_is_in_order_and_pages(store: &Store) {
    let mut rng = rng(11);
    let alice = Account::new(&mut rng, 2);
    alice.register(store);
    let (a, b) = (alice.addr(0), alice.addr(1));
    let items: Vec<_> = (1..=10)
        .map(|seq| (if seq % 3 == 0 { b } else { a }, entry(seq, NOW + seq)))
        .collect();
    let outcomes = store.enqueue(&items, QUOTA).unwrap();
    assert!(outcomes.iter().all(|o| *o == EnqueueOutcome::Stored));
    assert_eq!(store.stats().envelopes, 10);

    let for_a = all_pending(store, &a);
    assert_eq!(seqs(&for_a), [1, 2, 4, 5, 7, 8, 10]);
    assert_eq!(
        for_a[2],
        entry(4, NOW + 4),
        "id, arrival time and payload round-trip"
    );
    assert_eq!(seqs(&all_pending(store, &b)), [3, 6, 9]);

    // Paging with the `after` cursor.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.pending(&a, after, 3, NOW, TTL).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        pages.push(seqs(&page));
    }
    assert_eq!(pages, [vec![1, 2, 4], vec![5, 7, 8], vec![10]]);
    assert_eq!(
        seqs(&store.pending(&a, Some(3), 2, NOW, TTL).unwrap()),
        [4, 5]
    );
    assert_eq!(
        seqs(&store.pending(&b, Some(9), 10, NOW, TTL).unwrap()),
        Vec::<u64>::new()
    );
}

fn pending_edge_cases(store: &Store) {
    let mut rng = rng(12);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let a = alice.addr(0);
    assert!(all_pending(store, &a).is_empty());
    store
        .enqueue(&[(a, entry(u64::MAX - 1, NOW))], QUOTA)
        .unwrap();
    store.enqueue(&[(a, entry(u64::MAX, NOW))], QUOTA).unwrap();
    assert!(store.pending(&a, None, 0, NOW, TTL).unwrap().is_empty());
    assert_eq!(
        seqs(&store.pending(&a, Some(0), 1, NOW, TTL).unwrap()),
        [u64::MAX - 1]
    );
    assert_eq!(
        seqs(&store.pending(&a, Some(u64::MAX - 1), 9, NOW, TTL).unwrap()),
        [u64::MAX]
    );
    assert!(
        store
            .pending(&a, Some(u64::MAX), 9, NOW, TTL)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.last_sequence().unwrap(), u64::MAX);
    let refused = store.enqueue(&[(a, entry(1, NOW))], QUOTA);
    assert!(matches!(
        refused,
        Err(StoreError::SequenceNotIncreasing { .. })
    ));
}

fn enqueue_refuses_unknown_devices_and_full_mailboxes(store: &Store) {
    let mut rng = rng(13);
    let alice = Account::new(&mut rng, 2);
    let stranger = Account::new(&mut rng, 1);
    alice.register(store);
    let (a, b) = (alice.addr(0), alice.addr(1));
    let quota = 3;

    store.enqueue(&[(a, entry(1, NOW))], quota).unwrap();
    // The quota counts what is stored and what this batch adds before each envelope.
    let batch = [
        (a, entry(2, NOW)),
        (stranger.addr(0), entry(3, NOW)),
        (a, entry(4, NOW)),
        (b, entry(5, NOW)),
        (a, entry(6, NOW)),
        (a, entry(7, NOW)),
        (b, entry(8, NOW)),
    ];
    use EnqueueOutcome::{MailboxFull, Stored, UnknownDevice};
    let outcomes = store.enqueue(&batch, quota).unwrap();
    assert_eq!(
        outcomes,
        [
            Stored,
            UnknownDevice,
            Stored,
            Stored,
            MailboxFull,
            MailboxFull,
            Stored
        ]
    );
    assert_eq!(seqs(&all_pending(store, &a)), [1, 2, 4]);
    assert_eq!(seqs(&all_pending(store, &b)), [5, 8]);
    assert!(all_pending(store, &stranger.addr(0)).is_empty());
    assert_eq!(store.stats().envelopes, 5);

    // An ack makes room for exactly one more.
    assert_eq!(store.ack(&a, &[2]).unwrap(), 1);
    let outcomes = store
        .enqueue(&[(a, entry(9, NOW)), (a, entry(10, NOW))], quota)
        .unwrap();
    assert_eq!(outcomes, [Stored, MailboxFull]);
    assert_eq!(seqs(&all_pending(store, &a)), [1, 4, 9]);
    assert_eq!(store.stats().envelopes, 5);
}

fn ack_deletes_only_this_mailboxs_envelopes(store: &Store) {
    let mut rng = rng(14);
    let alice = Account::new(&mut rng, 2);
    alice.register(store);
    let (a, b) = (alice.addr(0), alice.addr(1));
    let items = [
        (a, entry(1, NOW)),
        (a, entry(2, NOW)),
        (b, entry(3, NOW)),
        (a, entry(4, NOW)),
    ];
    store.enqueue(&items, QUOTA).unwrap();

    assert_eq!(store.ack(&a, &[]).unwrap(), 0);
    assert_eq!(
        store.ack(&a, &[99, 100]).unwrap(),
        0,
        "unknown sequence numbers"
    );
    assert_eq!(store.ack(&a, &[3]).unwrap(), 0, "another device's envelope");
    assert_eq!(seqs(&all_pending(store, &b)), [3]);
    assert_eq!(
        store.ack(&a, &[2, 2, 4, 5]).unwrap(),
        2,
        "duplicates count once"
    );
    assert_eq!(seqs(&all_pending(store, &a)), [1]);
    assert_eq!(store.ack(&a, &[2, 4]).unwrap(), 0, "acknowledged already");
    assert_eq!(store.stats().envelopes, 2);
    assert_eq!(store.ack(&a, &[1]).unwrap(), 1);
    assert_eq!(store.ack(&b, &[3]).unwrap(), 1);
    assert_eq!(store.stats().envelopes, 0);
    // Acknowledged envelopes leave nothing for the sweep.
    assert_eq!(store.expire(u64::MAX, 0).unwrap(), 0);
}

fn ttl_applies_in_pending_and_expire(store: &Store) {
    let mut rng = rng(15);
    let alice = Account::new(&mut rng, 2);
    alice.register(store);
    let (a, b) = (alice.addr(0), alice.addr(1));
    let t0 = NOW;
    let items = [
        (a, entry(1, t0)),
        (b, entry(2, t0 + 5)),
        (a, entry(3, t0 + 10)),
        (b, entry(4, t0 + 10)),
        (a, entry(5, t0 + 20)),
    ];
    store.enqueue(&items, QUOTA).unwrap();

    // Nothing is due yet; `expire` before the epoch plus the TTL is a no-op.
    assert_eq!(store.expire(t0 + TTL - 1, TTL).unwrap(), 0);
    assert_eq!(store.expire(TTL - 1, TTL).unwrap(), 0);
    assert_eq!(store.stats().envelopes, 5);

    // Exactly `ttl` seconds old is expired: `pending` drops it instead of returning it, and
    // it is gone for good (and from the count), not just hidden.
    let page = store.pending(&a, None, 10, t0 + TTL, TTL).unwrap();
    assert_eq!(seqs(&page), [3, 5]);
    assert_eq!(store.stats().envelopes, 4);
    assert_eq!(seqs(&store.pending(&a, None, 10, t0, TTL).unwrap()), [3, 5]);

    // The sweep takes what is due in every mailbox and nothing else.
    assert_eq!(store.expire(t0 + TTL + 10, TTL).unwrap(), 3);
    assert_eq!(seqs(&store.pending(&a, None, 10, t0, TTL).unwrap()), [5]);
    assert!(store.pending(&b, None, 10, t0, TTL).unwrap().is_empty());
    assert_eq!(store.stats().envelopes, 1);
    assert_eq!(store.expire(t0 + TTL + 10, TTL).unwrap(), 0);

    // Expiry frees quota.
    let outcomes = store.enqueue(&[(a, entry(6, t0 + 30))], 1).unwrap();
    assert_eq!(outcomes, [EnqueueOutcome::MailboxFull]);
    assert_eq!(store.expire(t0 + 20 + TTL, TTL).unwrap(), 1);
    let outcomes = store.enqueue(&[(a, entry(7, t0 + 30))], 1).unwrap();
    assert_eq!(outcomes, [EnqueueOutcome::Stored]);

    // A TTL of 0 expires everything that arrived up to now.
    assert_eq!(store.expire(t0 + 30, 0).unwrap(), 1);
    assert_eq!(store.stats().envelopes, 0);
}

fn last_sequence_only_grows(store: &Store) {
    let mut rng = rng(16);
    let alice = Account::new(&mut rng, 1);
    let stranger = Account::new(&mut rng, 1);
    alice.register(store);
    let a = alice.addr(0);
    assert_eq!(store.last_sequence().unwrap(), 0);
    store
        .enqueue(&[(a, entry(5, NOW)), (a, entry(7, NOW))], QUOTA)
        .unwrap();
    assert_eq!(store.last_sequence().unwrap(), 7);
    assert_eq!(store.ack(&a, &[5, 7]).unwrap(), 2);
    assert_eq!(store.last_sequence().unwrap(), 7);
    // Refused envelopes' numbers count as assigned too.
    let outcomes = store
        .enqueue(&[(stranger.addr(0), entry(9, NOW))], QUOTA)
        .unwrap();
    assert_eq!(outcomes, [EnqueueOutcome::UnknownDevice]);
    assert_eq!(store.last_sequence().unwrap(), 9);
    store.enqueue(&[], QUOTA).unwrap();
    assert_eq!(store.last_sequence().unwrap(), 9);
}

fn sequence_numbers_must_increase(store: &Store) {
    let mut rng = rng(17);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    let a = alice.addr(0);
    store.enqueue(&[(a, entry(10, NOW))], QUOTA).unwrap();
    for batch in [
        vec![(a, entry(10, NOW))],
        vec![(a, entry(3, NOW))],
        vec![(a, entry(11, NOW)), (a, entry(11, NOW))],
        vec![(a, entry(12, NOW)), (a, entry(11, NOW))],
    ] {
        let refused = store.enqueue(&batch, QUOTA);
        assert!(
            matches!(refused, Err(StoreError::SequenceNotIncreasing { .. })),
            "{refused:?}"
        );
    }
    // Nothing of a refused batch was written.
    assert_eq!(seqs(&all_pending(store, &a)), [10]);
    assert_eq!(store.last_sequence().unwrap(), 10);
    assert_eq!(store.stats().envelopes, 1);
}

fn relay_secret_is_stable(store: &Store) {
    let secret = store.relay_secret().unwrap();
    assert_ne!(secret, [0; 32]);
    assert_eq!(store.relay_secret().unwrap(), secret);
    let other = memory().relay_secret().unwrap();
    assert_ne!(other, secret);
}

fn debug_output_holds_no_secret(store: &Store) {
    let secret = store.relay_secret().unwrap();
    let debug = format!("{store:?}");
    let as_array = format!("{:?}", &secret[..4]);
    let as_hex: String = secret[..4].iter().map(|b| format!("{b:02x}")).collect();
    for leak in [&as_array[1..as_array.len() - 1], &as_hex, "secret"] {
        assert!(!debug.contains(leak), "{debug}");
    }
}

/// A token digest made of one repeated byte.
fn digest(byte: u8) -> TokenDigest {
    [byte; 32]
}

/// A record of `account` at `url`, numbered `sequence`.
fn record(account: &Account, sequence: u64, url: &str) -> ReachabilityRecord {
    let endpoint = RelayEndpoint::new(url, None).unwrap();
    ReachabilityRecord::sign(&account.identity, sequence, vec![endpoint]).unwrap()
}

fn delivery_tokens_set_add_revoke_and_are_idempotent(store: &Store) {
    let mut rng = rng(40);
    let alice = Account::new(&mut rng, 1);
    let bob = Account::new(&mut rng, 1);
    let me = alice.identity.public_key();
    assert_eq!(store.delivery_tokens(&me).unwrap(), None);
    assert!(store.all_delivery_tokens().unwrap().is_empty());

    let set = |policy, add: &[TokenDigest], revoke: &[TokenDigest]| {
        store
            .set_delivery_tokens(&me, policy, add, revoke, 100)
            .unwrap()
            .unwrap();
    };
    // A policy alone creates the account's state.
    set(TokenPolicy::Open, &[], &[]);
    let tokens = store.delivery_tokens(&me).unwrap().unwrap();
    assert_eq!(tokens, DeliveryTokens::new(TokenPolicy::Open));

    set(
        TokenPolicy::TokensRequired,
        &[digest(1), digest(2), digest(3)],
        &[digest(4)],
    );
    let tokens = store.delivery_tokens(&me).unwrap().unwrap();
    assert_eq!(tokens.policy, TokenPolicy::TokensRequired);
    assert_eq!(tokens.state(&digest(1)), Some(TokenState::Accepted));
    assert_eq!(tokens.state(&digest(4)), Some(TokenState::Revoked));
    assert_eq!(tokens.state(&digest(5)), None);

    // Revoking takes a digest off the accepted list, adding takes it off the revoked one; a
    // digest in both lists of one update ends revoked.
    set(
        TokenPolicy::TokensRequired,
        &[digest(4), digest(3)],
        &[digest(1), digest(3)],
    );
    let after = store.delivery_tokens(&me).unwrap().unwrap();
    assert_eq!(after.state(&digest(1)), Some(TokenState::Revoked));
    assert_eq!(after.state(&digest(2)), Some(TokenState::Accepted));
    assert_eq!(after.state(&digest(3)), Some(TokenState::Revoked));
    assert_eq!(after.state(&digest(4)), Some(TokenState::Accepted));
    assert_eq!(after.digests.len(), 4);

    // The same update again changes nothing.
    set(
        TokenPolicy::TokensRequired,
        &[digest(4), digest(3)],
        &[digest(1), digest(3)],
    );
    assert_eq!(store.delivery_tokens(&me).unwrap().unwrap(), after);

    // Accounts are separate; the list of all has both.
    let other = bob.identity.public_key();
    store
        .set_delivery_tokens(&other, TokenPolicy::Open, &[digest(1)], &[], 100)
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .delivery_tokens(&other)
            .unwrap()
            .unwrap()
            .state(&digest(1)),
        Some(TokenState::Accepted)
    );
    assert_eq!(store.delivery_tokens(&me).unwrap().unwrap(), after);
    let mut all = store.all_delivery_tokens().unwrap();
    all.sort_by_key(|(identity, _)| *identity.as_bytes());
    let mut expected = vec![
        (me, after),
        (other, store.delivery_tokens(&other).unwrap().unwrap()),
    ];
    expected.sort_by_key(|(identity, _)| *identity.as_bytes());
    assert_eq!(all, expected);
}

fn delivery_tokens_over_the_cap_change_nothing(store: &Store) {
    let mut rng = rng(41);
    let alice = Account::new(&mut rng, 1);
    let me = alice.identity.public_key();
    let max = 4;
    store
        .set_delivery_tokens(
            &me,
            TokenPolicy::Open,
            &[digest(1), digest(2)],
            &[digest(3)],
            max,
        )
        .unwrap()
        .unwrap();
    let before = store.delivery_tokens(&me).unwrap().unwrap();
    // Two new digests would make five: refused whole, the policy change included.
    let refused = store
        .set_delivery_tokens(
            &me,
            TokenPolicy::TokensRequired,
            &[digest(4)],
            &[digest(5), digest(1)],
            max,
        )
        .unwrap();
    assert_eq!(refused, Err(TokenQuotaExceeded { max }));
    assert_eq!(store.delivery_tokens(&me).unwrap().unwrap(), before);
    // Moving digests between the lists and one new digest fit.
    store
        .set_delivery_tokens(
            &me,
            TokenPolicy::TokensRequired,
            &[digest(3), digest(4)],
            &[digest(1), digest(2)],
            max,
        )
        .unwrap()
        .unwrap();
    let after = store.delivery_tokens(&me).unwrap().unwrap();
    assert_eq!(after.digests.len(), 4);
    assert_eq!(after.policy, TokenPolicy::TokensRequired);
    // At the cap, an update naming only held digests still goes through.
    store
        .set_delivery_tokens(&me, TokenPolicy::Open, &[digest(1)], &[digest(4)], max)
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .set_delivery_tokens(&me, TokenPolicy::Open, &[digest(9)], &[], max)
            .unwrap(),
        Err(TokenQuotaExceeded { max })
    );
}

fn reachability_records_only_move_forward(store: &Store) {
    let mut rng = rng(42);
    let alice = Account::new(&mut rng, 1);
    let bob = Account::new(&mut rng, 1);
    let me = alice.identity.public_key();
    assert_eq!(store.reachability(&me).unwrap(), None);
    let first = record(&alice, 10, "wss://one.example/v1");
    assert_eq!(
        store.put_reachability(&first).unwrap(),
        RecordOutcome::Stored
    );
    assert_eq!(
        store.put_reachability(&first).unwrap(),
        RecordOutcome::Unchanged
    );
    // The same sequence with other contents, and an older one, are stale.
    let same_sequence = record(&alice, 10, "wss://two.example/v1");
    assert_eq!(
        store.put_reachability(&same_sequence).unwrap(),
        RecordOutcome::Stale
    );
    let older = record(&alice, 9, "wss://two.example/v1");
    assert_eq!(
        store.put_reachability(&older).unwrap(),
        RecordOutcome::Stale
    );
    assert_eq!(store.reachability(&me).unwrap(), Some(first));
    let newer = record(&alice, 11, "wss://two.example/v1");
    assert_eq!(
        store.put_reachability(&newer).unwrap(),
        RecordOutcome::Stored
    );
    assert_eq!(store.reachability(&me).unwrap(), Some(newer.clone()));
    // Another identity's record is its own.
    let bobs = record(&bob, 1, "wss://one.example/v1");
    assert_eq!(
        store.put_reachability(&bobs).unwrap(),
        RecordOutcome::Stored
    );
    assert_eq!(store.reachability(&me).unwrap(), Some(newer));
    assert_eq!(
        store.reachability(&bob.identity.public_key()).unwrap(),
        Some(bobs)
    );
}

fn handles_per_identity_are_capped(store: &Store) {
    let mut rng = rng(19);
    let alice = Account::new(&mut rng, 1);
    let names: Vec<String> = (0..=MAX_HANDLES_PER_IDENTITY)
        .map(|i| format!("alice{i}"))
        .collect();
    for name in &names[..MAX_HANDLES_PER_IDENTITY] {
        assert_eq!(
            store.claim_handle(&alice.claim(name, NOW)).unwrap(),
            ClaimOutcome::Claimed
        );
    }
    let extra = &names[MAX_HANDLES_PER_IDENTITY];
    assert_eq!(
        store.claim_handle(&alice.claim(extra, NOW)).unwrap(),
        ClaimOutcome::TooManyHandles
    );
    assert_eq!(
        store.lookup_handle(&Handle::parse(extra).unwrap()).unwrap(),
        None
    );
    // Renewing a held handle is not a new one; releasing one makes room.
    assert_eq!(
        store
            .claim_handle(&alice.claim(&names[0], NOW + 1))
            .unwrap(),
        ClaimOutcome::Renewed
    );
    assert!(
        store
            .release_handle(&alice.release(&names[1], NOW + 1))
            .unwrap()
    );
    assert_eq!(
        store.claim_handle(&alice.claim(extra, NOW + 1)).unwrap(),
        ClaimOutcome::Claimed
    );
}

fn handles_are_first_come_first_served(store: &Store) {
    let mut rng = rng(18);
    let alice = Account::new(&mut rng, 1);
    let bob = Account::new(&mut rng, 1);
    let handle = Handle::parse("alice").unwrap();
    assert_eq!(store.lookup_handle(&handle).unwrap(), None);
    assert!(!store.release_handle(&alice.release("alice", NOW)).unwrap());

    let claim = alice.claim("alice", NOW);
    assert_eq!(store.claim_handle(&claim).unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.lookup_handle(&handle).unwrap(), Some(claim.clone()));
    // Not later than the recorded claim: the same claim resent, or another of the same second.
    assert_eq!(
        store.claim_handle(&claim).unwrap(),
        ClaimOutcome::Stale,
        "resent"
    );
    assert_eq!(
        store.claim_handle(&alice.claim("alice", NOW)).unwrap(),
        ClaimOutcome::Stale,
        "same issued_at"
    );
    assert_eq!(
        store.claim_handle(&bob.claim("alice", NOW + 5)).unwrap(),
        ClaimOutcome::Taken
    );

    let renewal = alice.claim("alice", NOW + 10);
    assert_eq!(store.claim_handle(&renewal).unwrap(), ClaimOutcome::Renewed);
    assert_eq!(
        store.claim_handle(&alice.claim("alice", NOW + 1)).unwrap(),
        ClaimOutcome::Stale
    );
    assert_eq!(store.lookup_handle(&handle).unwrap(), Some(renewal.clone()));

    // Only the holder releases, and not with a release older than its claim.
    assert!(
        !store
            .release_handle(&bob.release("alice", NOW + 20))
            .unwrap()
    );
    assert!(
        !store
            .release_handle(&alice.release("alice", NOW + 5))
            .unwrap()
    );
    assert!(
        !store
            .release_handle(&alice.release("alice", NOW + 10))
            .unwrap(),
        "a release must be later than the claim"
    );
    assert_eq!(store.lookup_handle(&handle).unwrap(), Some(renewal.clone()));
    assert!(
        store
            .release_handle(&alice.release("alice", NOW + 11))
            .unwrap()
    );
    assert_eq!(store.lookup_handle(&handle).unwrap(), None);
    // The release is recorded: neither the old claim replayed nor anyone's claim not later
    // than the release takes the handle back.
    for stale in [
        renewal,
        alice.claim("alice", NOW + 11),
        bob.claim("alice", NOW + 11),
    ] {
        assert_eq!(store.claim_handle(&stale).unwrap(), ClaimOutcome::Stale);
    }
    assert_eq!(store.lookup_handle(&handle).unwrap(), None);
    assert!(
        !store
            .release_handle(&alice.release("alice", NOW + 30))
            .unwrap()
    );

    // Free again: the next claim wins, whoever makes it. Other handles are independent.
    let bobs = bob.claim("alice", NOW + 40);
    assert_eq!(store.claim_handle(&bobs).unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.lookup_handle(&handle).unwrap(), Some(bobs));
    let other = alice.claim("alice.2", NOW);
    assert_eq!(store.claim_handle(&other).unwrap(), ClaimOutcome::Claimed);
}

fn concurrent_claims_have_one_winner(store: &Store) {
    let mut rng = rng(19);
    let claims: Vec<HandleClaim> = (0..8)
        .map(|_| Account::new(&mut rng, 0).claim("popular", NOW))
        .collect();
    let outcomes: Vec<ClaimOutcome> = std::thread::scope(|scope| {
        let workers: Vec<_> = claims
            .iter()
            .map(|claim| scope.spawn(|| store.claim_handle(claim).unwrap()))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..8)
        .filter(|&i| outcomes[i] == ClaimOutcome::Claimed)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ClaimOutcome::Claimed | ClaimOutcome::Taken))
    );
    let stored = store
        .lookup_handle(&Handle::parse("popular").unwrap())
        .unwrap();
    assert_eq!(stored.as_ref(), Some(&claims[winners[0]]));
}

fn flush_succeeds(store: &Store) {
    let mut rng = rng(20);
    let alice = Account::new(&mut rng, 1);
    alice.register(store);
    store
        .enqueue(&[(alice.addr(0), entry(1, NOW))], QUOTA)
        .unwrap();
    flush(store);
    assert_eq!(all_pending(store, &alice.addr(0)).len(), 1);
}

// ---- KeyPackages and groups (SPEC.md 10.10) ---------------------------------------------------

fn key_package(n: u32) -> KeyPackage {
    KeyPackage::new(n.to_be_bytes().repeat(3)).unwrap()
}

fn key_package_count(count: u32, has_last_resort: bool) -> KeyPackageCount {
    KeyPackageCount {
        count,
        has_last_resort,
    }
}

fn key_packages_are_first_in_first_out_then_last_resort(store: &Store) {
    let mut rng = rng(40);
    let alice = Account::new(&mut rng, 1);
    let a = alice.addr(0);
    // Unknown devices can neither publish nor be fetched from.
    assert_eq!(
        store
            .publish_key_packages(&a, None, &[key_package(1)])
            .unwrap(),
        Err(PublishError::UnknownDevice)
    );
    assert_eq!(store.take_key_package(&a, true).unwrap(), None);
    alice.register(store);
    assert_eq!(
        store.publish_key_packages(&a, None, &[]).unwrap(),
        Ok(key_package_count(0, false))
    );
    assert_eq!(store.take_key_package(&a, true).unwrap(), None);
    assert_eq!(
        store
            .publish_key_packages(
                &a,
                Some(&key_package(100)),
                &[key_package(1), key_package(2)]
            )
            .unwrap(),
        Ok(key_package_count(2, true))
    );
    assert_eq!(
        store
            .publish_key_packages(&a, None, &[key_package(3)])
            .unwrap(),
        Ok(key_package_count(3, true))
    );
    // Without the pool: the last-resort one, nothing consumed.
    assert_eq!(
        store.take_key_package(&a, false).unwrap(),
        Some((key_package(100), true))
    );
    assert_eq!(
        store.key_package_count(&a).unwrap(),
        key_package_count(3, true)
    );
    for n in 1..=3 {
        assert_eq!(
            store.take_key_package(&a, true).unwrap(),
            Some((key_package(n), false))
        );
    }
    // An empty pool hands out the last-resort one again and again.
    for _ in 0..2 {
        assert_eq!(
            store.take_key_package(&a, true).unwrap(),
            Some((key_package(100), true))
        );
    }
    // A new last-resort one replaces the old.
    store
        .publish_key_packages(&a, Some(&key_package(101)), &[])
        .unwrap()
        .unwrap();
    assert_eq!(
        store.take_key_package(&a, true).unwrap(),
        Some((key_package(101), true))
    );
    assert_eq!(
        store.key_package_count(&a).unwrap(),
        key_package_count(0, true)
    );
}

fn key_packages_over_the_cap_store_nothing(store: &Store) {
    let mut rng = rng(41);
    let alice = Account::new(&mut rng, 1);
    let a = alice.addr(0);
    alice.register(store);
    let full: Vec<KeyPackage> = (0..MAX_STORED_KEY_PACKAGES as u32 - 1)
        .map(key_package)
        .collect();
    assert_eq!(
        store.publish_key_packages(&a, None, &full).unwrap(),
        Ok(key_package_count(MAX_STORED_KEY_PACKAGES as u32 - 1, false))
    );
    assert_eq!(
        store
            .publish_key_packages(&a, Some(&key_package(9)), &[key_package(1), key_package(2)])
            .unwrap(),
        Err(PublishError::TooManyPrekeys)
    );
    // Nothing of the refused publish was stored, not even its last-resort KeyPackage.
    assert_eq!(
        store.key_package_count(&a).unwrap(),
        key_package_count(MAX_STORED_KEY_PACKAGES as u32 - 1, false)
    );
    assert_eq!(
        store
            .publish_key_packages(&a, None, &[key_package(1)])
            .unwrap(),
        Ok(key_package_count(MAX_STORED_KEY_PACKAGES as u32, false))
    );
}

fn new_device_keys_drop_old_key_packages(store: &Store) {
    let mut rng = rng(42);
    let alice = Account::new(&mut rng, 2);
    alice.register(store);
    for index in 0..2 {
        store
            .publish_key_packages(&alice.addr(index), Some(&key_package(9)), &[key_package(1)])
            .unwrap()
            .unwrap();
    }
    let keys = DeviceKeyPair::generate(DeviceId::new(1).unwrap(), &mut rng);
    let reinstalled = LocalDevice::new(&alice.identity, keys, NOW + 1);
    assert_eq!(
        store.put_device(&reinstalled.cert).unwrap(),
        DeviceOutcome::Replaced
    );
    assert_eq!(
        store.key_package_count(&alice.addr(0)).unwrap(),
        key_package_count(0, false)
    );
    assert_eq!(store.take_key_package(&alice.addr(0), true).unwrap(), None);
    assert_eq!(
        store.key_package_count(&alice.addr(1)).unwrap(),
        key_package_count(1, true)
    );
}

fn concurrent_key_package_fetches_hand_each_out_once(store: &Store) {
    let mut rng = rng(43);
    let alice = Account::new(&mut rng, 1);
    let a = alice.addr(0);
    alice.register(store);
    let published: Vec<KeyPackage> = (0..100).map(key_package).collect();
    store
        .publish_key_packages(&a, Some(&key_package(1000)), &published)
        .unwrap()
        .unwrap();
    let taken: Vec<(KeyPackage, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..30)
                        .map(|_| store.take_key_package(&a, true).unwrap().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let pool: Vec<&KeyPackage> = taken.iter().filter(|(_, lr)| !lr).map(|(k, _)| k).collect();
    let unique: BTreeSet<&[u8]> = pool.iter().map(|k| k.as_bytes()).collect();
    assert_eq!(pool.len(), 100, "every pool KeyPackage handed out");
    assert_eq!(unique.len(), 100, "none twice");
    assert_eq!(taken.iter().filter(|(_, lr)| *lr).count(), 20);
}

fn group(epoch: u64, subscribers: &[DeviceAddr], last_post: u64) -> Group {
    Group {
        epoch,
        post_key: PostKey::of(&Ed25519Secret::from_seed(&[epoch as u8; 32])),
        previous_key: (epoch > 0)
            .then(|| PostKey::of(&Ed25519Secret::from_seed(&[epoch as u8 - 1; 32]))),
        next_seq: epoch + 1,
        last_post,
        subscribers: subscribers.iter().copied().collect(),
    }
}

fn groups_are_written_read_and_deleted(store: &Store) {
    let mut rng = rng(44);
    let alice = Account::new(&mut rng, 2);
    let bob = Account::new(&mut rng, 1);
    let (a, b, c) = (alice.addr(0), alice.addr(1), bob.addr(0));
    let id = GroupId([1; 32]);
    let other = GroupId([2; 32]);
    assert_eq!(store.group(&id).unwrap(), None);
    let first = group(0, &[a, c], NOW);
    store.put_group(&id, &first).unwrap();
    store.put_group(&other, &group(3, &[b], NOW)).unwrap();
    assert_eq!(store.group(&id).unwrap(), Some(first));
    // A commit: new epoch and keys, one subscriber out, one in.
    let second = group(1, &[a, b], NOW + 5);
    store.put_group(&id, &second).unwrap();
    assert_eq!(store.group(&id).unwrap(), Some(second));
    assert_eq!(store.group(&other).unwrap(), Some(group(3, &[b], NOW)));
    assert!(store.delete_group(&id).unwrap());
    assert!(!store.delete_group(&id).unwrap());
    assert_eq!(store.group(&id).unwrap(), None);
    // A group opened again under the id starts from what it is given.
    store.put_group(&id, &group(0, &[c], NOW)).unwrap();
    assert_eq!(store.group(&id).unwrap(), Some(group(0, &[c], NOW)));
}

fn groups_expire_with_the_mailbox_ttl(store: &Store) {
    let mut rng = rng(45);
    let alice = Account::new(&mut rng, 1);
    let a = alice.addr(0);
    let old = GroupId([1; 32]);
    let fresh = GroupId([2; 32]);
    store.put_group(&old, &group(0, &[a], NOW - TTL)).unwrap();
    store
        .put_group(&fresh, &group(0, &[a], NOW - TTL + 1))
        .unwrap();
    assert_eq!(store.expire_groups(NOW, TTL).unwrap(), 1);
    assert_eq!(store.group(&old).unwrap(), None);
    assert!(store.group(&fresh).unwrap().is_some());
    assert_eq!(store.expire_groups(NOW, TTL).unwrap(), 0);
}

// ---- Sled only: reopening and corrupt records --------------------------------------------------

mod sled_only {
    use super::*;

    fn raw(store: &Store) -> &sled::Db {
        match store {
            Store::Sled(store) => store.db(),
            Store::Memory(_) => unreachable!("a sled test"),
        }
    }

    #[test]
    fn groups_and_key_packages_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(46);
        let alice = Account::new(&mut rng, 2);
        let (a, b) = (alice.addr(0), alice.addr(1));
        let id = GroupId([7; 32]);
        {
            let store = open_sled(dir.path());
            alice.register(&store);
            store
                .publish_key_packages(&a, Some(&key_package(9)), &[key_package(1), key_package(2)])
                .unwrap()
                .unwrap();
            assert_eq!(
                store.take_key_package(&a, true).unwrap(),
                Some((key_package(1), false))
            );
            store.put_group(&id, &group(2, &[a, b], NOW)).unwrap();
            flush(&store);
        }
        let store = open_sled(dir.path());
        assert_eq!(store.group(&id).unwrap(), Some(group(2, &[a, b], NOW)));
        assert_eq!(
            store.key_package_count(&a).unwrap(),
            key_package_count(1, true)
        );
        // The pool's order survives, and new KeyPackages go after the old ones.
        store
            .publish_key_packages(&a, None, &[key_package(3)])
            .unwrap()
            .unwrap();
        for n in [2, 3] {
            assert_eq!(
                store.take_key_package(&a, true).unwrap(),
                Some((key_package(n), false))
            );
        }
    }

    #[test]
    fn reopen_finds_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(30);
        let alice = Account::new(&mut rng, 2);
        let bob = Account::new(&mut rng, 1);
        let (a, b, c) = (alice.addr(0), alice.addr(1), bob.addr(0));
        let prekeys = Prekeys::new(&alice.devices[0], &mut rng, [1, 2, 3], [1, 2, 3, 4]);
        let claim = alice.claim("alice", NOW);
        let quota = 3;

        let (secret, first_bundle) = {
            let store = open_sled(dir.path());
            alice.register(&store);
            bob.register(&store);
            prekeys.publish(&store, &a);
            let first_bundle = store.take_bundle(&a).unwrap().unwrap();
            let items = [
                (a, entry(1, NOW)),
                (c, entry(2, NOW + 1)),
                (a, entry(3, NOW + 2)),
                (b, entry(4, NOW + 3)),
                (a, entry(5, NOW + 4)),
                (c, entry(6, NOW + 5)),
            ];
            store.enqueue(&items, quota).unwrap();
            assert_eq!(store.ack(&b, &[4]).unwrap(), 1);
            assert_eq!(store.claim_handle(&claim).unwrap(), ClaimOutcome::Claimed);
            let bobs = bob.claim("bobby", NOW);
            assert_eq!(store.claim_handle(&bobs).unwrap(), ClaimOutcome::Claimed);
            assert!(
                store
                    .release_handle(&bob.release("bobby", NOW + 5))
                    .unwrap()
            );
            let secret = store.relay_secret().unwrap();
            flush(&store);
            (secret, first_bundle)
        };

        let store = open_sled(dir.path());
        assert_eq!(
            store.stats(),
            StoreStats {
                envelopes: 5,
                // Counted again from the stored envelopes: five 16-byte payloads.
                envelope_bytes: 5 * stored_size(16),
                devices: 3
            }
        );
        let listed = store.devices(&alice.identity.public_key(), 10).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(store.has_device(&c).unwrap());
        assert_eq!(
            store.put_device(&alice.devices[0].cert).unwrap(),
            DeviceOutcome::Unchanged
        );

        assert_eq!(store.prekey_counts(&a).unwrap(), counts(3, 2));
        let bundle = store.take_bundle(&a).unwrap().unwrap();
        assert_eq!(bundle.signed_prekey, prekeys.signed);
        assert_eq!(bundle.kem_prekey.id, 2);
        assert_eq!(bundle.one_time_prekey.unwrap().id, 2);
        assert_ne!(bundle.kem_prekey, first_bundle.kem_prekey);

        assert_eq!(
            all_pending(&store, &a),
            [entry(1, NOW), entry(3, NOW + 2), entry(5, NOW + 4)]
        );
        assert_eq!(seqs(&all_pending(&store, &c)), [2, 6]);
        assert!(all_pending(&store, &b).is_empty());
        assert_eq!(store.last_sequence().unwrap(), 6);
        // The counts were rebuilt: `a` is at its quota, `c` has room for one.
        let outcomes = store
            .enqueue(
                &[(a, entry(7, NOW)), (c, entry(8, NOW)), (c, entry(9, NOW))],
                quota,
            )
            .unwrap();
        use EnqueueOutcome::{MailboxFull, Stored};
        assert_eq!(outcomes, [MailboxFull, Stored, MailboxFull]);

        let handle = Handle::parse("alice").unwrap();
        assert_eq!(store.lookup_handle(&handle).unwrap(), Some(claim));
        // The release survived: a claim not later than it is refused, a later one accepted.
        assert_eq!(
            store.claim_handle(&alice.claim("bobby", NOW + 5)).unwrap(),
            ClaimOutcome::Stale
        );
        assert_eq!(
            store.claim_handle(&alice.claim("bobby", NOW + 6)).unwrap(),
            ClaimOutcome::Claimed
        );
        assert_eq!(store.relay_secret().unwrap(), secret);

        // The TTL index survived too: 1, 2 and 3 are due, and 8 (stored at NOW after reopening).
        assert_eq!(store.expire(NOW + 2 + TTL, TTL).unwrap(), 4);
        assert_eq!(seqs(&all_pending(&store, &a)), [5]);
    }

    #[test]
    fn tokens_and_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(43);
        let alice = Account::new(&mut rng, 1);
        let me = alice.identity.public_key();
        let published = record(&alice, 5, "wss://home.example/v1");
        let before = {
            let store = open_sled(dir.path());
            store
                .set_delivery_tokens(
                    &me,
                    TokenPolicy::TokensRequired,
                    &[digest(1), digest(2)],
                    &[digest(3)],
                    100,
                )
                .unwrap()
                .unwrap();
            assert_eq!(
                store.put_reachability(&published).unwrap(),
                RecordOutcome::Stored
            );
            flush(&store);
            store.delivery_tokens(&me).unwrap().unwrap()
        };
        let store = open_sled(dir.path());
        assert_eq!(store.delivery_tokens(&me).unwrap(), Some(before.clone()));
        assert_eq!(store.all_delivery_tokens().unwrap(), vec![(me, before)]);
        assert_eq!(store.reachability(&me).unwrap(), Some(published.clone()));
        assert_eq!(
            store.put_reachability(&published).unwrap(),
            RecordOutcome::Unchanged
        );
        // The count survived too: the cap still counts the three digests held.
        assert_eq!(
            store
                .set_delivery_tokens(&me, TokenPolicy::Open, &[digest(4)], &[], 3)
                .unwrap(),
            Err(TokenQuotaExceeded { max: 3 })
        );
    }

    #[test]
    fn corrupt_token_records_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(44);
        let alice = Account::new(&mut rng, 1);
        let me = alice.identity.public_key();
        let store = open_sled(dir.path());
        store
            .set_delivery_tokens(&me, TokenPolicy::Open, &[digest(1)], &[], 100)
            .unwrap()
            .unwrap();
        let tree = raw(&store).open_tree("delivery_tokens").unwrap();
        let mut key = me.as_bytes().to_vec();
        key.push(1);
        key.extend_from_slice(&digest(1));
        tree.insert(&key, &[7u8][..]).unwrap();
        assert!(corrupt(store.delivery_tokens(&me)));
        assert!(corrupt(store.all_delivery_tokens()));
        let records = raw(&store).open_tree("reachability").unwrap();
        records.insert(me.as_bytes(), &[1u8, 2, 3][..]).unwrap();
        assert!(corrupt(store.reachability(&me)));
    }

    #[test]
    fn last_sequence_survives_reopen_when_everything_was_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(31);
        let alice = Account::new(&mut rng, 1);
        let a = alice.addr(0);
        {
            let store = open_sled(dir.path());
            alice.register(&store);
            store
                .enqueue(&[(a, entry(41, NOW)), (a, entry(42, NOW))], QUOTA)
                .unwrap();
            assert_eq!(store.ack(&a, &[41, 42]).unwrap(), 2);
            flush(&store);
        }
        let store = open_sled(dir.path());
        assert_eq!(store.last_sequence().unwrap(), 42);
        assert_eq!(store.stats().envelopes, 0);
        let refused = store.enqueue(&[(a, entry(42, NOW))], QUOTA);
        assert!(matches!(
            refused,
            Err(StoreError::SequenceNotIncreasing { seq: 42, last: 42 })
        ));
    }

    #[test]
    fn last_sequence_is_at_least_the_largest_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(32);
        let alice = Account::new(&mut rng, 1);
        let a = alice.addr(0);
        {
            let store = open_sled(dir.path());
            alice.register(&store);
            store.enqueue(&[(a, entry(7, NOW))], QUOTA).unwrap();
            // As if the record had been lost in a crash.
            raw(&store)
                .open_tree("meta")
                .unwrap()
                .remove("last_sequence")
                .unwrap();
            flush(&store);
        }
        let store = open_sled(dir.path());
        assert_eq!(store.last_sequence().unwrap(), 7);
    }

    #[test]
    fn a_batch_whose_record_was_lost_is_deleted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng(34);
        let alice = Account::new(&mut rng, 1);
        let a = alice.addr(0);
        {
            let store = open_sled(dir.path());
            alice.register(&store);
            store.enqueue(&[(a, entry(5, NOW))], QUOTA).unwrap();
            store
                .enqueue(&[(a, entry(6, NOW)), (a, entry(7, NOW + 1))], QUOTA)
                .unwrap();
            // As if a crash had kept the second batch's envelopes but not its record.
            raw(&store)
                .open_tree("meta")
                .unwrap()
                .insert("last_sequence", &5u64.to_be_bytes()[..])
                .unwrap();
            flush(&store);
        }
        let store = open_sled(dir.path());
        assert_eq!(seqs(&all_pending(&store, &a)), [5]);
        assert_eq!(store.mailbox_len(&a).unwrap(), 1);
        assert_eq!(store.stats().envelopes, 1);
        // Their numbers are not reused, and their index entries went with them.
        assert_eq!(store.last_sequence().unwrap(), 7);
        assert_eq!(store.expire(NOW + 1 + TTL, TTL).unwrap(), 1);
    }

    #[test]
    fn expire_deletes_index_entries_without_an_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_sled(dir.path());
        let mut rng = rng(33);
        let alice = Account::new(&mut rng, 1);
        alice.register(&store);
        let a = alice.addr(0);
        store
            .enqueue(&[(a, entry(1, NOW)), (a, entry(2, NOW + 1))], QUOTA)
            .unwrap();
        // An index entry whose envelope is gone, as a crash between two writes could leave.
        raw(&store)
            .open_tree("mailboxes")
            .unwrap()
            .remove(mailbox_key(&a, 1))
            .unwrap();
        assert_eq!(store.expire(NOW + 1 + TTL, TTL).unwrap(), 1);
        assert!(raw(&store).open_tree("expiry").unwrap().is_empty());
    }

    fn corrupt<T>(result: Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Corrupt(_)))
    }

    #[test]
    fn corrupt_records_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_sled(dir.path());
        let mut rng = rng(34);
        let alice = Account::new(&mut rng, 1);
        alice.register(&store);
        let a = alice.addr(0);
        let db = raw(&store);

        Prekeys::new(&alice.devices[0], &mut rng, [1], [1]).publish(&store, &a);
        let prekeys = db.open_tree("prekeys").unwrap();
        let signed_key = prekeys.iter().keys().next().unwrap().unwrap();
        prekeys.insert(signed_key, &b"not a prekey"[..]).unwrap();
        assert!(corrupt(store.take_bundle(&a)));

        store.enqueue(&[(a, entry(1, NOW))], QUOTA).unwrap();
        db.open_tree("mailboxes")
            .unwrap()
            .insert(mailbox_key(&a, 1), &[1u8; 10][..])
            .unwrap();
        assert!(corrupt(store.pending(&a, None, 10, NOW, TTL)));

        db.open_tree("devices")
            .unwrap()
            .insert(a.to_key(), &b"not a certificate"[..])
            .unwrap();
        assert!(corrupt(store.devices(&alice.identity.public_key(), 10)));
        let renewed = LocalDevice::new(&alice.identity, alice.devices[0].keys.clone(), NOW + 1);
        assert!(corrupt(store.put_device(&renewed.cert)));

        let claim = alice.claim("alice", NOW);
        db.open_tree("handles")
            .unwrap()
            .insert("alice", &b"not a claim"[..])
            .unwrap();
        assert!(corrupt(store.lookup_handle(&claim.handle)));
        assert!(corrupt(store.claim_handle(&claim)));
        assert!(corrupt(store.release_handle(&alice.release("alice", NOW))));

        db.open_tree("meta")
            .unwrap()
            .insert("relay_secret", &[7u8; 31][..])
            .unwrap();
        assert!(corrupt(store.relay_secret()));
    }

    #[test]
    fn corrupt_meta_or_keys_refuse_to_open() {
        for (tree, key, value) in [
            ("meta", &b"schema_version"[..], &[2u8][..]),
            ("meta", &b"last_sequence"[..], &[1u8; 7][..]),
            ("mailboxes", &b"short key"[..], &b"value"[..]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = open_sled(dir.path());
                raw(&store)
                    .open_tree(tree)
                    .unwrap()
                    .insert(key, value)
                    .unwrap();
                flush(&store);
            }
            let reopened = SledStore::open(dir.path());
            assert!(matches!(reopened, Err(StoreError::Corrupt(_))), "{tree}");
        }
    }
}
