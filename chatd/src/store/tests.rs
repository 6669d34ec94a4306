//! Unit tests of the store, the backend and the vault, run against both backends where the
//! behaviour is shared.

use std::path::{Path, PathBuf};

use super::kv::Kv;
use super::seal::backend_key;
use super::*;

const PASSPHRASE: &[u8] = b"correct horse battery staple";
const CACHE: u64 = 1024 * 1024;

/// Opens the sled store in `dir` again after the test dropped every handle to it. sled lets go
/// of its directory lock when the last reference to its page cache goes, and a background
/// thread of its own may still hold one for a moment after the test's handles are gone (seen
/// on a loaded machine): a bounded number of tries, not a timed assertion.
fn reopen(dir: &Path) -> Kv {
    let mut tries = 0;
    loop {
        match Kv::open(dir, CACHE) {
            Err(StoreError::InUse) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => return other.unwrap_or_else(|e| panic!("reopening the store: {e}")),
        }
    }
}
const MESSAGES: Table = Table(1);
const CONTACTS: Table = Table(2);

/// Runs `test` against a fresh in-memory backend and a fresh sled backend in a temporary
/// directory.
fn each_backend(test: impl Fn(&Kv)) {
    test(&Kv::memory());
    let dir = tempfile::tempdir().unwrap();
    let kv = reopen(dir.path());
    test(&kv);
}

/// A store with a freshly created, protected vault.
fn new_store(kv: &Kv) -> Store {
    let keys = Vault::create(
        kv,
        Some(PASSPHRASE),
        KdfParams::INSECURE_FOR_TESTS,
        &mut rand::rng(),
    )
    .unwrap();
    Store::new(kv.clone(), keys)
}

fn put(store: &Store, table: Table, key: &[u8], value: &[u8]) {
    let mut batch = store.batch();
    batch.put(table, key, value);
    store.commit(batch).unwrap();
}

fn get(store: &Store, table: Table, key: &[u8]) -> Option<Vec<u8>> {
    store.get(table, key).unwrap().map(|value| value.to_vec())
}

/// Overwrites a raw backend entry, bypassing encryption (what an attacker with the files can do).
fn raw_put(kv: &Kv, table: Table, key: &[u8], value: &[u8]) {
    kv.apply(vec![(
        backend_key(table, key).as_slice().to_vec(),
        Some(value.to_vec()),
    )])
    .unwrap();
}

fn raw_get(kv: &Kv, table: Table, key: &[u8]) -> Vec<u8> {
    kv.get(backend_key(table, key).as_slice())
        .unwrap()
        .unwrap()
        .to_vec()
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn collect(
    iter: impl Iterator<Item = Result<(Vec<u8>, Zeroizing<Vec<u8>>), StoreError>>,
) -> Entries {
    iter.map(|entry| {
        let (key, value) = entry.unwrap();
        (key, value.to_vec())
    })
    .collect()
}

fn keys(entries: &Entries) -> Vec<Vec<u8>> {
    entries.iter().map(|(key, _)| key.clone()).collect()
}

#[test]
fn values_round_trip() {
    each_backend(|kv| {
        let store = new_store(kv);
        assert_eq!(get(&store, MESSAGES, b"a"), None);

        put(&store, MESSAGES, b"a", b"first");
        put(&store, MESSAGES, b"empty", b"");
        let long = vec![0x5a; 100_000];
        put(&store, MESSAGES, &[0xff; 300], &long);
        assert_eq!(get(&store, MESSAGES, b"a").as_deref(), Some(&b"first"[..]));
        assert_eq!(get(&store, MESSAGES, b"empty").as_deref(), Some(&b""[..]));
        assert_eq!(get(&store, MESSAGES, &[0xff; 300]), Some(long));
        // Tables are separate key spaces.
        assert_eq!(get(&store, CONTACTS, b"a"), None);

        put(&store, MESSAGES, b"a", b"second");
        assert_eq!(get(&store, MESSAGES, b"a").as_deref(), Some(&b"second"[..]));

        let mut batch = store.batch();
        batch.delete(MESSAGES, b"a");
        batch.delete(MESSAGES, b"never written");
        store.commit(batch).unwrap();
        assert_eq!(get(&store, MESSAGES, b"a"), None);
    });
}

#[test]
fn every_write_has_a_fresh_nonce() {
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"same value");
        let first = raw_get(kv, MESSAGES, b"k");
        put(&store, MESSAGES, b"k", b"same value");
        let second = raw_get(kv, MESSAGES, b"k");
        assert_ne!(first, second);
        assert_eq!(first.len(), seal::OVERHEAD + b"same value".len());
        assert_eq!(first[0], seal::VALUE_VERSION);
    });
}

#[test]
fn scans_are_ordered_and_bounded() {
    each_backend(|kv| {
        let store = new_store(kv);
        let mut batch = store.batch();
        // More entries than one in-memory scan chunk, under two prefixes, in shuffled order.
        for i in (0u16..150).rev().step_by(2).chain((0u16..150).step_by(2)) {
            let mut key = b"c1/".to_vec();
            key.extend_from_slice(&i.to_be_bytes());
            batch.put(MESSAGES, &key, &i.to_be_bytes());
        }
        batch.put(MESSAGES, b"c0/x", b"other conversation");
        batch.put(MESSAGES, b"c2", b"after the prefix");
        batch.put(CONTACTS, b"c1/\x00\x01", b"other table");
        store.commit(batch).unwrap();

        let seq = |i: u16| {
            let mut key = b"c1/".to_vec();
            key.extend_from_slice(&i.to_be_bytes());
            key
        };
        let all: Vec<Vec<u8>> = (0..150).map(seq).collect();

        let forward = collect(store.scan(MESSAGES, b"c1/"));
        assert_eq!(keys(&forward), all);
        assert_eq!(forward[7].1, 7u16.to_be_bytes());

        let backward = collect(store.scan_rev(MESSAGES, b"c1/", None));
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(keys(&backward), reversed);

        // `before` is exclusive, and need not be a stored key.
        let page = collect(store.scan_rev(MESSAGES, b"c1/", Some(&seq(100))).take(3));
        assert_eq!(keys(&page), vec![seq(99), seq(98), seq(97)]);
        let mut between = seq(100);
        between.push(0);
        let page = collect(store.scan_rev(MESSAGES, b"c1/", Some(&between)).take(2));
        assert_eq!(keys(&page), vec![seq(100), seq(99)]);
        // A `before` past the prefix does not widen the scan; one below it empties it.
        let page = collect(store.scan_rev(MESSAGES, b"c1/", Some(b"c9")));
        assert_eq!(keys(&page), reversed);
        assert!(collect(store.scan_rev(MESSAGES, b"c1/", Some(b"c1/"))).is_empty());
        assert!(collect(store.scan_rev(MESSAGES, b"c1/", Some(b"a"))).is_empty());

        let (last_key, last_value) = store.last(MESSAGES, b"c1/").unwrap().unwrap();
        assert_eq!(last_key, seq(149));
        assert_eq!(*last_value, 149u16.to_be_bytes());
        assert_eq!(store.last(MESSAGES, b"nothing").unwrap(), None);

        // The empty prefix is the whole table, and nothing from another table.
        let table = collect(store.scan(MESSAGES, b""));
        assert_eq!(table.len(), 152);
        assert_eq!(table[0].0, b"c0/x");
        assert_eq!(table[151].0, b"c2");
        assert_eq!(
            store.last(CONTACTS, b"").unwrap().unwrap().0,
            b"c1/\x00\x01"
        );
    });
}

#[test]
fn scans_handle_0xff_prefixes_and_the_last_table() {
    each_backend(|kv| {
        let store = new_store(kv);
        let last_table = Table(u8::MAX);
        let mut batch = store.batch();
        batch.put(MESSAGES, &[0xff], b"1");
        batch.put(MESSAGES, &[0xff, 0xff, 0x00], b"2");
        batch.put(Table(2), &[], b"next table, empty key");
        batch.put(last_table, &[0xff, 0xff], b"3");
        batch.put(last_table, &[0xff, 0xff, 0xff], b"4");
        store.commit(batch).unwrap();

        assert_eq!(
            keys(&collect(store.scan(MESSAGES, &[0xff]))),
            vec![vec![0xff], vec![0xff, 0xff, 0x00]]
        );
        assert_eq!(
            keys(&collect(store.scan_rev(MESSAGES, &[0xff, 0xff], None))),
            vec![vec![0xff, 0xff, 0x00]]
        );
        assert_eq!(
            keys(&collect(store.scan(last_table, &[0xff, 0xff]))),
            vec![vec![0xff, 0xff], vec![0xff, 0xff, 0xff]]
        );
        assert_eq!(
            store.last(last_table, &[0xff, 0xff]).unwrap().unwrap().0,
            vec![0xff, 0xff, 0xff]
        );
    });
}

#[test]
fn scans_see_writes_made_while_iterating_without_deadlock() {
    each_backend(|kv| {
        let store = new_store(kv);
        for i in 0u8..10 {
            put(&store, MESSAGES, &[i], &[i]);
        }
        let mut seen = 0;
        for entry in store.scan(MESSAGES, b"") {
            let (key, _) = entry.unwrap();
            let mut batch = store.batch();
            batch.delete(MESSAGES, &key);
            store.commit(batch).unwrap();
            seen += 1;
        }
        assert_eq!(seen, 10);
        assert!(collect(store.scan(MESSAGES, b"")).is_empty());
    });
}

#[test]
fn batches_apply_all_or_nothing() {
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"old", b"to be deleted");

        let mut batch = store.batch();
        assert!(batch.is_empty());
        batch.put(MESSAGES, b"one", b"1");
        batch.put(CONTACTS, b"two", b"2");
        batch.delete(MESSAGES, b"old");
        batch.put(MESSAGES, b"one", b"1 again");
        assert_eq!(batch.len(), 4);
        assert!(!batch.is_empty());

        // Nothing of an uncommitted batch is visible.
        assert_eq!(get(&store, MESSAGES, b"one"), None);
        assert_eq!(get(&store, CONTACTS, b"two"), None);
        assert!(get(&store, MESSAGES, b"old").is_some());

        store.commit(batch).unwrap();
        assert_eq!(
            get(&store, MESSAGES, b"one").as_deref(),
            Some(&b"1 again"[..])
        );
        assert_eq!(get(&store, CONTACTS, b"two").as_deref(), Some(&b"2"[..]));
        assert_eq!(get(&store, MESSAGES, b"old"), None);

        // A batch dropped without a commit leaves nothing behind.
        let mut dropped = store.batch();
        dropped.put(MESSAGES, b"dropped", b"x");
        drop(dropped);
        assert_eq!(get(&store, MESSAGES, b"dropped"), None);

        store.commit(store.batch()).unwrap();
    });
}

#[test]
fn batches_are_atomic_to_concurrent_readers() {
    each_backend(|kv| {
        let store = new_store(kv);
        let rounds = 200u32;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for round in 1..=rounds {
                    let mut batch = store.batch();
                    for key in 0u8..8 {
                        batch.put(MESSAGES, &[key], &round.to_be_bytes());
                    }
                    store.commit(batch).unwrap();
                }
            });
            // With atomic batches, once key 0 shows round r, key 7 (written in the same batch,
            // and read after it) shows at least r. Applied key by key in order, a batch would
            // let a reader see key 0 new and key 7 old.
            loop {
                let zero = get(&store, MESSAGES, &[0]);
                let seven = get(&store, MESSAGES, &[7]);
                let (Some(zero), Some(seven)) = (zero, seven) else {
                    continue;
                };
                assert!(seven >= zero, "saw half a batch");
                if seven == rounds.to_be_bytes() {
                    break;
                }
            }
        });
    });
}

#[test]
fn a_value_moved_to_another_key_or_table_is_corrupt() {
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"alice", b"secret");
        let sealed = raw_get(kv, MESSAGES, b"alice");

        raw_put(kv, MESSAGES, b"mallory", &sealed);
        raw_put(kv, CONTACTS, b"alice", &sealed);
        raw_put(kv, MESSAGES, b"alice2", &sealed);
        let moved = [
            (MESSAGES, &b"mallory"[..]),
            (CONTACTS, b"alice"),
            (MESSAGES, b"alice2"),
        ];
        for (table, key) in moved {
            assert!(matches!(store.get(table, key), Err(StoreError::Corrupt(_))));
        }
        let scanned: Vec<_> = store.scan(MESSAGES, b"alice").collect();
        assert!(scanned[0].is_ok());
        assert!(matches!(scanned[1], Err(StoreError::Corrupt(_))));
        assert!(matches!(
            store.last(CONTACTS, b""),
            Err(StoreError::Corrupt(_))
        ));
        // The original still reads.
        assert_eq!(
            get(&store, MESSAGES, b"alice").as_deref(),
            Some(&b"secret"[..])
        );
    });
}

#[test]
fn a_modified_value_is_corrupt() {
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"some plaintext");
        let sealed = raw_get(kv, MESSAGES, b"k");

        // Every bit of the version, nonce, ciphertext and tag matters.
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut modified = sealed.clone();
                modified[byte] ^= 1 << bit;
                raw_put(kv, MESSAGES, b"k", &modified);
                assert!(
                    matches!(store.get(MESSAGES, b"k"), Err(StoreError::Corrupt(_))),
                    "flipping bit {bit} of byte {byte} went unnoticed"
                );
            }
        }
        // Truncated at every length, and extended.
        for len in 0..sealed.len() {
            raw_put(kv, MESSAGES, b"k", &sealed[..len]);
            assert!(matches!(
                store.get(MESSAGES, b"k"),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut extended = sealed.clone();
        extended.push(0);
        raw_put(kv, MESSAGES, b"k", &extended);
        assert!(matches!(
            store.get(MESSAGES, b"k"),
            Err(StoreError::Corrupt(_))
        ));

        raw_put(kv, MESSAGES, b"k", &sealed);
        assert_eq!(
            get(&store, MESSAGES, b"k").as_deref(),
            Some(&b"some plaintext"[..])
        );
    });
}

#[test]
fn a_value_under_other_keys_is_corrupt() {
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"v");
        let other = Store::new(kv.clone(), StoreKeys::from_master(&[7; 32]));
        assert!(matches!(
            other.get(MESSAGES, b"k"),
            Err(StoreError::Corrupt(_))
        ));
    });
}

#[test]
fn the_vault_unlocks_with_the_right_passphrase_only() {
    each_backend(|kv| {
        assert!(!Vault::exists(kv).unwrap());
        assert_eq!(
            Vault::unlock(kv, Some(PASSPHRASE)).unwrap_err(),
            StoreError::NoVault
        );
        assert_eq!(Vault::is_protected(kv).unwrap_err(), StoreError::NoVault);

        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"v");
        assert!(Vault::exists(kv).unwrap());
        assert!(Vault::is_protected(kv).unwrap());

        assert_eq!(
            Vault::unlock(kv, Some(b"wrong")).unwrap_err(),
            StoreError::WrongPassphrase
        );
        assert_eq!(
            Vault::unlock(kv, Some(b"")).unwrap_err(),
            StoreError::WrongPassphrase
        );
        assert_eq!(
            Vault::unlock(kv, None).unwrap_err(),
            StoreError::PassphraseRequired
        );

        // The unlocked keys are the created ones.
        let unlocked = Store::new(kv.clone(), Vault::unlock(kv, Some(PASSPHRASE)).unwrap());
        assert_eq!(get(&unlocked, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(
            unlocked.index(CONTACTS, b"alice"),
            store.index(CONTACTS, b"alice")
        );
        assert_eq!(
            format!("{:?}", unlocked.pickle_key()),
            format!("{:?}", store.pickle_key())
        );

        // A second vault is refused, with or without a passphrase.
        for passphrase in [Some(PASSPHRASE), None] {
            assert_eq!(
                Vault::create(
                    kv,
                    passphrase,
                    KdfParams::INSECURE_FOR_TESTS,
                    &mut rand::rng()
                )
                .unwrap_err(),
                StoreError::VaultExists
            );
        }
        assert_eq!(get(&unlocked, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
    });
}

#[test]
fn an_unprotected_vault_unlocks_without_a_passphrase() {
    each_backend(|kv| {
        let keys = Vault::create(kv, None, KdfParams::DEFAULT, &mut rand::rng()).unwrap();
        let store = Store::new(kv.clone(), keys);
        put(&store, MESSAGES, b"k", b"v");
        assert!(!Vault::is_protected(kv).unwrap());

        for passphrase in [None, Some(PASSPHRASE)] {
            let unlocked = Store::new(kv.clone(), Vault::unlock(kv, passphrase).unwrap());
            assert_eq!(get(&unlocked, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
        }
    });
}

#[test]
fn a_tampered_vault_record_does_not_unlock() {
    each_backend(|kv| {
        new_store(kv);
        let record = raw_get(kv, Table::META, b"vault");
        assert_eq!(record.len(), 90);

        // Every bit of the record but the parameters (a flipped high bit there asks for
        // gigabytes, which is tested apart below): version and protection, salt, nonce,
        // wrapped key and tag.
        for byte in (0..2).chain(14..record.len()) {
            for bit in 0..8 {
                let mut modified = record.clone();
                modified[byte] ^= 1 << bit;
                raw_put(kv, Table::META, b"vault", &modified);
                let result = Vault::unlock(kv, Some(PASSPHRASE));
                assert!(
                    matches!(
                        result,
                        Err(StoreError::WrongPassphrase | StoreError::Corrupt(_))
                    ),
                    "flipping bit {bit} of byte {byte} gave {result:?}"
                );
            }
        }

        // Changed parameters, lower (an attacker's attempt to make guessing cheaper) or
        // higher, are caught by the wrap's associated data.
        for (at, value) in [(2, 8), (2, 72), (6, 2), (10, 2)] {
            let mut modified = record.clone();
            modified[at..at + 4].copy_from_slice(&u32::to_be_bytes(value));
            raw_put(kv, Table::META, b"vault", &modified);
            assert_eq!(
                Vault::unlock(kv, Some(PASSPHRASE)).unwrap_err(),
                StoreError::WrongPassphrase,
                "parameter at {at} set to {value}"
            );
        }
        // Parameters Argon2 refuses are corrupt.
        for at in [2, 6, 10] {
            let mut modified = record.clone();
            modified[at..at + 4].copy_from_slice(&[0; 4]);
            raw_put(kv, Table::META, b"vault", &modified);
            assert!(matches!(
                Vault::unlock(kv, Some(PASSPHRASE)),
                Err(StoreError::Corrupt(_))
            ));
        }

        // Absurd parameters are refused before any work or allocation is done for them.
        for at in [2, 6, 10] {
            let mut huge = record.clone();
            huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
            raw_put(kv, Table::META, b"vault", &huge);
            assert!(matches!(
                Vault::unlock(kv, Some(PASSPHRASE)),
                Err(StoreError::Corrupt(_))
            ));
        }

        // Truncated, extended, unknown version or protection kind.
        for len in 0..record.len() {
            raw_put(kv, Table::META, b"vault", &record[..len]);
            assert!(matches!(
                Vault::unlock(kv, Some(PASSPHRASE)),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut extended = record.clone();
        extended.push(0);
        raw_put(kv, Table::META, b"vault", &extended);
        assert!(matches!(
            Vault::unlock(kv, Some(PASSPHRASE)),
            Err(StoreError::Corrupt(_))
        ));
        for (at, value) in [(0, 2), (1, 2)] {
            let mut modified = record.clone();
            modified[at] = value;
            raw_put(kv, Table::META, b"vault", &modified);
            assert!(matches!(
                Vault::unlock(kv, Some(PASSPHRASE)),
                Err(StoreError::Corrupt(_))
            ));
            assert!(matches!(
                Vault::is_protected(kv),
                Err(StoreError::Corrupt(_))
            ));
        }

        raw_put(kv, Table::META, b"vault", &record);
        Vault::unlock(kv, Some(PASSPHRASE)).unwrap();
    });
}

#[test]
fn invalid_kdf_params_are_refused_at_creation() {
    let invalid = [
        KdfParams {
            memory_kib: 7,
            ..KdfParams::INSECURE_FOR_TESTS
        },
        KdfParams {
            iterations: 0,
            ..KdfParams::INSECURE_FOR_TESTS
        },
        KdfParams {
            parallelism: 0,
            ..KdfParams::INSECURE_FOR_TESTS
        },
        KdfParams {
            memory_kib: KdfParams::MAX_MEMORY_KIB + 1,
            ..KdfParams::INSECURE_FOR_TESTS
        },
        KdfParams {
            iterations: KdfParams::MAX_ITERATIONS + 1,
            ..KdfParams::INSECURE_FOR_TESTS
        },
        KdfParams {
            memory_kib: 8 * 65,
            parallelism: KdfParams::MAX_PARALLELISM + 1,
            ..KdfParams::INSECURE_FOR_TESTS
        },
    ];
    for params in invalid {
        let kv = Kv::memory();
        assert_eq!(
            Vault::create(&kv, Some(PASSPHRASE), params, &mut rand::rng()).unwrap_err(),
            StoreError::InvalidKdfParams,
            "{params:?}"
        );
        assert!(!Vault::exists(&kv).unwrap());
    }
}

#[test]
fn default_kdf_params_meet_rfc_9106() {
    // RFC 9106 section 4, second recommended option: m = 64 MiB, t = 3, p = 4.
    let params = KdfParams::DEFAULT;
    assert!(params.memory_kib >= 64 * 1024);
    assert!(params.iterations >= 3);
    assert_eq!(params.parallelism, 4);
}

#[test]
fn the_default_kdf_params_work() {
    // The one test with real parameters (64 MiB, about a second for both derivations), so the
    // defaults are known to be accepted by Argon2 and to round-trip through the record.
    let kv = Kv::memory();
    let created = Vault::create(&kv, Some(PASSPHRASE), KdfParams::DEFAULT, &mut rand::rng());
    let store = Store::new(kv.clone(), created.unwrap());
    put(&store, MESSAGES, b"k", b"v");
    let record = raw_get(&kv, Table::META, b"vault");
    assert_eq!(record[2..14], [0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4]);
    let unlocked = Store::new(kv.clone(), Vault::unlock(&kv, Some(PASSPHRASE)).unwrap());
    assert_eq!(get(&unlocked, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn the_index_is_keyed_and_separated_by_table() {
    let kv = Kv::memory();
    let store = new_store(&kv);
    let id = b"chat1qexampleidentitykey";
    assert_eq!(store.index(CONTACTS, id), store.index(CONTACTS, id));
    assert_ne!(store.index(CONTACTS, id), store.index(MESSAGES, id));
    assert_ne!(store.index(CONTACTS, id), store.index(CONTACTS, b"other"));

    let other = new_store(&Kv::memory());
    assert_ne!(store.index(CONTACTS, id), other.index(CONTACTS, id));
}

#[test]
fn debug_prints_no_key() {
    let keys = StoreKeys::from_master(&[0x42; 32]);
    assert_eq!(format!("{keys:?}"), "StoreKeys(..)");
    let store = Store::new(Kv::memory(), keys);
    assert_eq!(
        format!("{store:?}"),
        "Store { kv: Kv::Memory, keys: StoreKeys(..) }"
    );
    let batch = store.batch();
    assert_eq!(format!("{batch:?}"), "Batch { len: 0 }");
}

#[test]
fn flush_is_async_and_send() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"v");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(assert_send(store.flush())).unwrap();
        store.flush_blocking().unwrap();
    });
}

#[test]
fn memory_backend_reports_itself() {
    assert!(Kv::memory().is_memory());
    let dir = tempfile::tempdir().unwrap();
    assert!(!Kv::open(dir.path(), CACHE).unwrap().is_memory());
}

#[test]
fn a_reopened_sled_store_keeps_flushed_data() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let kv = Kv::open(dir.path(), CACHE).unwrap();
        let store = new_store(&kv);
        let id = store.index(CONTACTS, b"alice");
        let mut batch = store.batch();
        batch.put(CONTACTS, &id, b"Alice");
        batch.put(MESSAGES, b"m/1", b"hello");
        store.commit(batch).unwrap();
        store.flush_blocking().unwrap();
        id
    };

    let kv = reopen(dir.path());
    assert!(Vault::is_protected(&kv).unwrap());
    let store = Store::new(kv.clone(), Vault::unlock(&kv, Some(PASSPHRASE)).unwrap());
    assert_eq!(store.index(CONTACTS, b"alice"), id);
    assert_eq!(get(&store, CONTACTS, &id).as_deref(), Some(&b"Alice"[..]));
    assert_eq!(
        get(&store, MESSAGES, b"m/1").as_deref(),
        Some(&b"hello"[..])
    );
}

#[test]
fn writes_between_flushes_are_read_back_and_the_last_one_is_kept() {
    // On sled, committed batches wait in the write-back overlay until the next flush or scan;
    // every read must see them there, deletions included, and the flush must keep the last
    // write of each key.
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = Kv::open(dir.path(), CACHE).unwrap();
        let store = new_store(&kv);
        put(&store, MESSAGES, b"kept", b"old");
        put(&store, MESSAGES, b"deleted", b"flushed");
        store.flush_blocking().unwrap();

        put(&store, MESSAGES, b"kept", b"new");
        put(&store, MESSAGES, b"added", b"one");
        put(&store, MESSAGES, b"added", b"two");
        let mut batch = store.batch();
        batch.delete(MESSAGES, b"deleted");
        store.commit(batch).unwrap();
        assert_eq!(get(&store, MESSAGES, b"kept").as_deref(), Some(&b"new"[..]));
        assert_eq!(
            get(&store, MESSAGES, b"added").as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(get(&store, MESSAGES, b"deleted"), None);

        // A scan sees the same (it moves the overlay into sled first), and writes made after
        // it are seen by reads as before.
        let scanned = collect(store.scan(MESSAGES, b""));
        assert_eq!(
            scanned,
            vec![
                (b"added".to_vec(), b"two".to_vec()),
                (b"kept".to_vec(), b"new".to_vec()),
            ]
        );
        put(&store, MESSAGES, b"late", b"after the scan");
        assert_eq!(
            get(&store, MESSAGES, b"late").as_deref(),
            Some(&b"after the scan"[..])
        );
        store.flush_blocking().unwrap();
    }

    let kv = reopen(dir.path());
    let store = Store::new(kv.clone(), Vault::unlock(&kv, Some(PASSPHRASE)).unwrap());
    assert_eq!(
        keys(&collect(store.scan(MESSAGES, b""))),
        vec![b"added".to_vec(), b"kept".to_vec(), b"late".to_vec()]
    );
    assert_eq!(get(&store, MESSAGES, b"kept").as_deref(), Some(&b"new"[..]));
}

#[test]
fn insert_new_sees_unflushed_writes() {
    each_backend(|kv| {
        let key = backend_key(CONTACTS, b"claimed");
        assert!(kv.insert_new(key.as_slice(), b"first").unwrap());
        assert!(!kv.insert_new(key.as_slice(), b"second").unwrap());
        kv.apply(vec![(key.as_slice().to_vec(), None)]).unwrap();
        assert!(kv.insert_new(key.as_slice(), b"third").unwrap());
        assert_eq!(kv.get(key.as_slice()).unwrap().unwrap().as_ref(), b"third");
    });
}

#[test]
fn a_sled_directory_opens_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Kv::open(dir.path(), CACHE).unwrap();
    assert_eq!(Kv::open(dir.path(), CACHE).unwrap_err(), StoreError::InUse);
    // A clone shares the one open database.
    let clone = first.clone();
    drop(first);
    assert_eq!(Kv::open(dir.path(), CACHE).unwrap_err(), StoreError::InUse);
    drop(clone);
}

#[test]
fn sled_files_hold_no_plaintext() {
    const VALUE_CANARY: &[u8] = b"CANARY-VALUE-3f9c1a7e";
    const ID_CANARY: &[u8] = b"CANARY-CONTACT-b41d08c2";

    let dir = tempfile::tempdir().unwrap();
    {
        let kv = Kv::open(dir.path(), CACHE).unwrap();
        let store = new_store(&kv);
        let mut batch = store.batch();
        for i in 0u32..200 {
            let mut value = VALUE_CANARY.to_vec();
            value.extend_from_slice(&i.to_be_bytes());
            let mut id = ID_CANARY.to_vec();
            id.extend_from_slice(&i.to_be_bytes());
            batch.put(CONTACTS, &store.index(CONTACTS, &id), &value);
        }
        store.commit(batch).unwrap();
        store.flush_blocking().unwrap();
        // Sanity check that the files hold what was written, so the search below is not
        // vacuous: the backend key of one entry is there.
        let id = store.index(CONTACTS, &[ID_CANARY, &0u32.to_be_bytes()].concat());
        assert!(
            files_contain(dir.path(), &id),
            "the written entries are not in the files"
        );
    }

    for needle in [VALUE_CANARY, ID_CANARY, PASSPHRASE] {
        assert!(
            !files_contain(dir.path(), needle),
            "{} found in the sled files",
            String::from_utf8_lossy(needle)
        );
    }
}

/// Whether any file under `dir` contains `needle`.
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let mut pending = vec![dir.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    files.iter().any(|file| {
        std::fs::read(file)
            .unwrap()
            .windows(needle.len())
            .any(|window| window == needle)
    })
}

#[test]
fn the_store_can_be_shared_across_threads_and_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<Kv>();
    assert_send_sync::<StoreKeys>();
    assert_send::<Batch<'_>>();
    assert_send_sync::<StoreError>();
}

#[test]
fn a_rewrapped_vault_opens_with_the_new_passphrase_only() {
    const NEW: &[u8] = b"a brand new passphrase";
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"v");
        let params = KdfParams::INSECURE_FOR_TESTS;
        assert_eq!(
            Vault::rewrap(kv, Some(b"wrong"), Some(NEW), params, &mut rand::rng()).unwrap_err(),
            StoreError::WrongPassphrase
        );
        assert_eq!(
            Vault::rewrap(kv, None, Some(NEW), params, &mut rand::rng()).unwrap_err(),
            StoreError::PassphraseRequired
        );
        let rewrapped =
            Vault::rewrap(kv, Some(PASSPHRASE), Some(NEW), params, &mut rand::rng()).unwrap();
        assert!(!rewrapped.is_unprotected());
        // Nothing is written until the record replaces the old one.
        Vault::unlock(kv, Some(PASSPHRASE)).unwrap();
        assert!(Vault::replace(kv, &rewrapped).unwrap());
        assert_eq!(
            Vault::unlock(kv, Some(PASSPHRASE)).unwrap_err(),
            StoreError::WrongPassphrase
        );
        // The same master key: everything stored before still reads.
        let unlocked = Store::new(kv.clone(), Vault::unlock(kv, Some(NEW)).unwrap());
        assert_eq!(get(&unlocked, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
        // A record made from one that was replaced meanwhile is not written.
        let stale = Vault::rewrap(
            kv,
            Some(NEW),
            Some(b"third one here"),
            params,
            &mut rand::rng(),
        )
        .unwrap();
        let first = Vault::rewrap(kv, Some(NEW), None, params, &mut rand::rng()).unwrap();
        assert!(first.is_unprotected());
        assert!(Vault::replace(kv, &first).unwrap());
        assert!(!Vault::replace(kv, &stale).unwrap());
        assert!(!Vault::is_protected(kv).unwrap());
        // An unprotected vault takes no old passphrase, and can be protected again.
        assert_eq!(
            Vault::rewrap(kv, Some(NEW), Some(NEW), params, &mut rand::rng()).unwrap_err(),
            StoreError::WrongPassphrase
        );
        let protect = Vault::rewrap(kv, None, Some(NEW), params, &mut rand::rng()).unwrap();
        assert!(Vault::replace(kv, &protect).unwrap());
        let unlocked = Store::new(kv.clone(), Vault::unlock(kv, Some(NEW)).unwrap());
        assert_eq!(get(&unlocked, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
    });
}

#[test]
fn a_passphrase_change_that_is_not_flushed_leaves_the_old_passphrase() {
    const NEW: &[u8] = b"a brand new passphrase";
    let dir = tempfile::tempdir().unwrap();
    let params = KdfParams::INSECURE_FOR_TESTS;
    {
        let kv = Kv::open(dir.path(), CACHE).unwrap();
        new_store(&kv);
        let rewrapped =
            Vault::rewrap(&kv, Some(PASSPHRASE), Some(NEW), params, &mut rand::rng()).unwrap();
        assert!(Vault::replace(&kv, &rewrapped).unwrap());
        // A failed round: the overlay is dropped and sled reopened.
        assert!(!kv.recover().unwrap());
        Vault::unlock(&kv, Some(PASSPHRASE)).unwrap();
        assert!(Vault::replace(&kv, &rewrapped).unwrap());
        // A crash before the flush: the process ends with the record still in the overlay.
    }
    let kv = reopen(dir.path());
    Vault::unlock(&kv, Some(PASSPHRASE)).unwrap();
    let rewrapped =
        Vault::rewrap(&kv, Some(PASSPHRASE), Some(NEW), params, &mut rand::rng()).unwrap();
    assert!(Vault::replace(&kv, &rewrapped).unwrap());
    kv.flush_blocking().unwrap();
    drop(kv);
    let kv = reopen(dir.path());
    Vault::unlock(&kv, Some(NEW)).unwrap();
    assert_eq!(
        Vault::unlock(&kv, Some(PASSPHRASE)).unwrap_err(),
        StoreError::WrongPassphrase
    );
}

#[test]
fn a_wiped_store_holds_nothing_and_takes_a_new_vault() {
    each_backend(|kv| {
        let store = new_store(kv);
        put(&store, MESSAGES, b"k", b"v");
        kv.flush_blocking().unwrap();
        put(&store, MESSAGES, b"pending", b"not flushed");
        kv.wipe().unwrap();
        assert!(!Vault::exists(kv).unwrap());
        let everything = kv
            .range(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
            )
            .count();
        assert_eq!(everything, 0);
        let keys =
            Vault::create(kv, None, KdfParams::INSECURE_FOR_TESTS, &mut rand::rng()).unwrap();
        let fresh = Store::new(kv.clone(), keys);
        assert_eq!(get(&fresh, MESSAGES, b"k"), None);
        put(&fresh, MESSAGES, b"k2", b"v2");
        kv.flush_blocking().unwrap();
    });
    // On disk, the old files are gone and the new store opens against its new commit record.
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = Kv::open(dir.path(), CACHE).unwrap();
        let store = new_store(&kv);
        for i in 0..50u32 {
            put(&store, MESSAGES, &i.to_be_bytes(), &[7; 1000]);
            kv.flush_blocking().unwrap();
        }
        kv.wipe().unwrap();
        let keys =
            Vault::create(&kv, None, KdfParams::INSECURE_FOR_TESTS, &mut rand::rng()).unwrap();
        put(&Store::new(kv.clone(), keys), MESSAGES, b"k", b"v");
        kv.flush_blocking().unwrap();
        assert_eq!(kv.commits(), 2, "counted again from the start");
    }
    let kv = reopen(dir.path());
    assert!(!Vault::is_protected(&kv).unwrap());
    let store = Store::new(kv.clone(), Vault::unlock(&kv, None).unwrap());
    assert_eq!(get(&store, MESSAGES, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&store, MESSAGES, &0u32.to_be_bytes()), None);
}
