//! Unit tests for safety numbers: libsignal compatibility, symmetry and the QR cross-check.

use proptest::prelude::*;

use super::*;
use crate::crypto::ed25519::Ed25519Secret;

fn key(seed_byte: u8) -> Ed25519PublicKey {
    Ed25519Secret::from_seed(&[seed_byte; 32]).public_key()
}

/// libsignal's own vector (`fingerprint_test_v1` in `rust/protocol/src/fingerprint.rs`):
/// the same iterated hash and digit encoding over Curve25519 keys (prefix `0x05`) and phone
/// numbers as stable ids. Passing it shows our construction is Signal's, byte for byte.
#[test]
fn reproduces_libsignal_vector() {
    let alice_key =
        hex::decode("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868").unwrap();
    let bob_key =
        hex::decode("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b").unwrap();
    let alice = truncate(&iterated_fingerprint(5200, &alice_key, b"+14152222222"));
    let bob = truncate(&iterated_fingerprint(5200, &bob_key, b"+14153333333"));
    assert_eq!(
        alice.to_vec(),
        hex::decode("1e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df").unwrap()
    );
    assert_eq!(
        bob.to_vec(),
        hex::decode("d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d").unwrap()
    );
    let number = SafetyNumber {
        local: alice,
        remote: bob,
    };
    assert_eq!(
        number.digits(),
        "300354477692869396892869876765458257569162576843440918079131"
    );
}

#[test]
fn both_sides_see_the_same_digits() {
    for (a, b) in [(1, 2), (2, 1), (3, 200), (77, 78)] {
        let alice = SafetyNumber::new(&key(a), &key(b));
        let bob = SafetyNumber::new(&key(b), &key(a));
        assert_eq!(alice.digits(), bob.digits());
        assert_eq!(alice.digits().len(), DIGITS_LEN);
        assert!(alice.digits().bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(alice, bob);
        assert_ne!(alice.qr_payload(), bob.qr_payload());
    }
}

#[test]
fn halves_are_ordered() {
    let number = SafetyNumber::new(&key(1), &key(2));
    let digits = number.digits();
    let (first, second) = digits.split_at(30);
    assert!(first <= second);
    let alone = |k: &Ed25519PublicKey| SafetyNumber::new(k, k).digits()[..30].to_owned();
    let mut halves = [alone(&key(1)), alone(&key(2))];
    halves.sort();
    assert_eq!(digits, halves.concat());
}

#[test]
fn talking_to_oneself_repeats_the_half() {
    let number = SafetyNumber::new(&key(9), &key(9));
    let digits = number.digits();
    assert_eq!(digits[..30], digits[30..]);
    assert_eq!(number.matches_scanned(&number.qr_payload()), Ok(true));
}

#[test]
fn different_keys_give_different_numbers() {
    let ab = SafetyNumber::new(&key(1), &key(2));
    let ac = SafetyNumber::new(&key(1), &key(3));
    let cb = SafetyNumber::new(&key(3), &key(2));
    assert_ne!(ab.digits(), ac.digits());
    assert_ne!(ab.digits(), cb.digits());
    assert_ne!(ab, ac);
    assert_ne!(ab, cb);
    assert_eq!(ab, ab.clone());
}

#[test]
fn grouped_and_display() {
    let number = SafetyNumber::new(&key(4), &key(5));
    let groups = number.grouped();
    assert!(groups.iter().all(|g| g.len() == 5));
    assert_eq!(groups.concat(), number.digits());
    assert_eq!(number.to_string(), groups.join(" "));
    assert!(format!("{number:?}").starts_with("SafetyNumber { local: "));
}

#[test]
fn qr_payload_layout() {
    let number = SafetyNumber::new(&key(4), &key(5));
    let payload = number.qr_payload();
    assert_eq!(payload.len(), QR_PAYLOAD_LEN);
    assert_eq!(payload[0], QR_VERSION);
    assert_eq!(payload[1..33], number.local);
    assert_eq!(payload[33..], number.remote);
    assert_eq!(number.local, key_fingerprint(&key(4)));
}

#[test]
fn qr_cross_check() {
    let (a, b, m) = (key(1), key(2), key(3));
    let alice = SafetyNumber::new(&a, &b);
    let bob = SafetyNumber::new(&b, &a);
    assert_eq!(alice.matches_scanned(&bob.qr_payload()), Ok(true));
    assert_eq!(bob.matches_scanned(&alice.qr_payload()), Ok(true));
    // Own code scanned back: same fingerprints, wrong orientation.
    assert_eq!(alice.matches_scanned(&alice.qr_payload()), Ok(false));
    // A man in the middle: Alice holds M's key for Bob, Bob holds M's key for Alice.
    let alice_mitm = SafetyNumber::new(&a, &m);
    let bob_mitm = SafetyNumber::new(&b, &m);
    assert_eq!(
        alice_mitm.matches_scanned(&bob_mitm.qr_payload()),
        Ok(false)
    );
    assert_eq!(
        bob_mitm.matches_scanned(&alice_mitm.qr_payload()),
        Ok(false)
    );
    assert_eq!(alice.matches_scanned(&bob_mitm.qr_payload()), Ok(false));
    assert_eq!(
        SafetyNumber::new(&m, &a).matches_scanned(&bob.qr_payload()),
        Ok(false)
    );
}

#[test]
fn bad_qr_payloads_are_errors() {
    let alice = SafetyNumber::new(&key(1), &key(2));
    let good = SafetyNumber::new(&key(2), &key(1)).qr_payload();
    assert_eq!(
        alice.matches_scanned(&[]),
        Err(DecodeError::Truncated { needed: 1 })
    );
    assert_eq!(
        alice.matches_scanned(&good[..64]),
        Err(DecodeError::Truncated { needed: 1 })
    );
    assert_eq!(
        alice.matches_scanned(&good[..10]),
        Err(DecodeError::Truncated { needed: 23 })
    );
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        alice.matches_scanned(&long),
        Err(DecodeError::TrailingBytes(1))
    );
    let mut other_version = good.clone();
    other_version[0] = 2;
    assert_eq!(
        alice.matches_scanned(&other_version),
        Err(DecodeError::UnsupportedVersion {
            what: "safety number QR payload",
            version: 2
        })
    );
    assert!(alice.matches_scanned(b"https://example.com/").is_err());
}

proptest! {
    #[test]
    fn scanning_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let alice = SafetyNumber::new(&key(1), &key(2));
        let result = alice.matches_scanned(&bytes);
        prop_assert!(result.is_err() || result == Ok(false));
    }
}
