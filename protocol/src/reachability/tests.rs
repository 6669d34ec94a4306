//! Unit tests for relay bindings, relay-qualified handles, reachability records and token
//! digests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::codec::{Decode, Encode};

fn identity(seed: u8) -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&[seed; 32])
}

fn endpoint(url: &str) -> RelayEndpoint {
    RelayEndpoint::new(url, None).unwrap()
}

#[test]
fn relay_urls_are_canonicalised_to_the_relay_binding() {
    let cases = [
        ("ws://127.0.0.1:7420", "ws://127.0.0.1:7420/v1"),
        ("ws://127.0.0.1:7420/", "ws://127.0.0.1:7420/v1"),
        ("ws://127.0.0.1:7420/v1/", "ws://127.0.0.1:7420/v1"),
        (
            "WSS://Relay.Example.ORG:443/v1",
            "wss://relay.example.org/v1",
        ),
        ("ws://relay.example.org:80", "ws://relay.example.org/v1"),
        (
            "wss://relay.example.org:80",
            "wss://relay.example.org:80/v1",
        ),
        (
            "wss://[2001:DB8:0:0::1]:7420",
            "wss://[2001:db8::1]:7420/v1",
        ),
        ("ws://[::1]:7420/v1", "ws://[::1]:7420/v1"),
    ];
    for (input, binding) in cases {
        assert_eq!(relay_binding(input).as_deref(), Ok(binding), "{input}");
        assert_eq!(relay_binding(binding).as_deref(), Ok(binding), "{binding}");
    }
    let refused = [
        ("http://relay.example.org", RelayUrlError::Scheme),
        ("relay.example.org", RelayUrlError::Scheme),
        ("wss://relay.example.org/v2", RelayUrlError::Path),
        ("wss://relay.example.org/v1/x", RelayUrlError::Path),
        ("wss://relay.example.org/v1?x=1", RelayUrlError::Extra),
        ("wss://relay.example.org/v1#x", RelayUrlError::Extra),
        ("wss://user@relay.example.org/v1", RelayUrlError::Extra),
        ("wss:///v1", RelayUrlError::Host),
        ("wss://relay example/v1", RelayUrlError::Host),
        ("wss://rélay.example/v1", RelayUrlError::Host),
        ("wss://[2001:db8::g]/v1", RelayUrlError::Host),
        ("wss://relay.example.org:0/v1", RelayUrlError::Port),
        ("wss://relay.example.org:65536/v1", RelayUrlError::Port),
        ("wss://relay.example.org:/v1", RelayUrlError::Port),
        ("wss://[::1]x/v1", RelayUrlError::Port),
    ];
    for (input, error) in refused {
        assert_eq!(relay_binding(input), Err(error), "{input}");
    }
    let long = format!("wss://{}.example/v1", "a".repeat(244));
    assert_eq!(relay_binding(&long), Err(RelayUrlError::TooLong));
}

#[test]
fn loopback_hosts_are_recognised() {
    for host in ["localhost", "127.0.0.1", "127.9.8.7", "[::1]"] {
        assert!(is_loopback_host(host), "{host}");
    }
    for host in [
        "relay.example.org",
        "10.0.0.1",
        "[2001:db8::1]",
        "localhost.example",
    ] {
        assert!(!is_loopback_host(host), "{host}");
    }
}

#[test]
fn qualified_handles_name_a_relay_or_none() {
    let bare = QualifiedHandle::parse("@bob").unwrap();
    assert_eq!(bare.handle.as_str(), "bob");
    assert_eq!(bare.relay, None);
    assert_eq!(bare.to_string(), "bob");

    let cases = [
        (
            "bob@relay.example.org",
            "wss://relay.example.org/v1",
            "bob@relay.example.org",
        ),
        (
            "@bob@relay.example.org:8443",
            "wss://relay.example.org:8443/v1",
            "bob@relay.example.org:8443",
        ),
        (
            "bob@127.0.0.1:7421",
            "ws://127.0.0.1:7421/v1",
            "bob@127.0.0.1:7421",
        ),
        ("bob@[::1]:7421", "ws://[::1]:7421/v1", "bob@[::1]:7421"),
        (
            "bob@ws://relay.example.org:7420/v1",
            "ws://relay.example.org:7420/v1",
            "bob@ws://relay.example.org:7420/v1",
        ),
        (
            "bob@wss://127.0.0.1:7421",
            "wss://127.0.0.1:7421/v1",
            "bob@wss://127.0.0.1:7421/v1",
        ),
    ];
    for (text, relay, shown) in cases {
        let parsed = QualifiedHandle::parse(text).unwrap();
        assert_eq!(parsed.relay.as_deref(), Some(relay), "{text}");
        assert_eq!(parsed.to_string(), shown, "{text}");
        assert_eq!(QualifiedHandle::parse(shown).unwrap(), parsed, "{shown}");
    }
    assert!(matches!(
        QualifiedHandle::parse("Bob@relay.example.org"),
        Err(QualifiedHandleError::Handle(_))
    ));
    assert!(matches!(
        QualifiedHandle::parse("bob@relay.example.org/v1"),
        Err(QualifiedHandleError::Relay(RelayUrlError::Path))
    ));
    assert!(matches!(
        QualifiedHandle::parse("bob@"),
        Err(QualifiedHandleError::Relay(RelayUrlError::Host))
    ));
    assert!(matches!(
        QualifiedHandle::parse("bob@a@b"),
        Err(QualifiedHandleError::Relay(_))
    ));
}

#[test]
fn a_record_verifies_round_trips_and_refuses_tampering() {
    let alice = identity(1);
    let relays = vec![
        RelayEndpoint::new("wss://[2001:db8::1]:7420", Some([7; 32])).unwrap(),
        endpoint("wss://relay.example.org"),
    ];
    let record = ReachabilityRecord::sign(&alice, 1_700_000_000_000, relays).unwrap();
    record.verify().unwrap();
    record.verify_for(&alice.public_key()).unwrap();
    assert_eq!(record.home().unwrap().url(), "wss://[2001:db8::1]:7420/v1");
    let bytes = record.to_bytes();
    assert_eq!(ReachabilityRecord::from_bytes(&bytes).unwrap(), record);

    // Every flipped bit either fails to decode or fails to verify.
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[i] ^= 1 << bit;
            if let Ok(decoded) = ReachabilityRecord::from_bytes(&tampered) {
                assert!(decoded.verify().is_err(), "byte {i} bit {bit}");
            }
        }
    }
    assert_eq!(
        record.verify_for(&identity(2).public_key()),
        Err(ReachabilityError::WrongIdentity)
    );
}

#[test]
fn only_a_newer_record_supersedes() {
    let alice = identity(1);
    let old = ReachabilityRecord::sign(&alice, 10, vec![endpoint("wss://a.example")]).unwrap();
    let new = ReachabilityRecord::sign(&alice, 11, vec![endpoint("wss://b.example")]).unwrap();
    new.supersedes(&old).unwrap();
    assert_eq!(old.supersedes(&new), Err(ReachabilityError::Stale));
    assert_eq!(old.supersedes(&old), Err(ReachabilityError::Stale));
    let mallory =
        ReachabilityRecord::sign(&identity(3), 99, vec![endpoint("wss://m.example")]).unwrap();
    assert_eq!(
        mallory.supersedes(&old),
        Err(ReachabilityError::WrongIdentity)
    );
    // A record whose relays were swapped by someone else does not verify.
    let mut forged = new.clone();
    forged.relays = vec![endpoint("wss://m.example")];
    assert_eq!(
        forged.supersedes(&old),
        Err(ReachabilityError::BadSignature)
    );
}

#[test]
fn records_list_one_to_four_different_relays() {
    let alice = identity(1);
    assert_eq!(
        ReachabilityRecord::sign(&alice, 1, vec![]),
        Err(ReachabilityError::Relays)
    );
    let five: Vec<_> = (0..5)
        .map(|i| endpoint(&format!("wss://r{i}.example")))
        .collect();
    assert_eq!(
        ReachabilityRecord::sign(&alice, 1, five),
        Err(ReachabilityError::Relays)
    );
    assert_eq!(
        ReachabilityRecord::sign(
            &alice,
            1,
            vec![
                endpoint("wss://a.example"),
                endpoint("wss://A.example:443/v1/")
            ]
        ),
        Err(ReachabilityError::Relays)
    );
}

#[test]
fn the_decoder_is_strict() {
    let alice = identity(1);
    let record = ReachabilityRecord::sign(&alice, 5, vec![endpoint("ws://a.example")]).unwrap();
    let good = record.to_bytes();
    let url_at = 1 + 32 + 8 + 1 + 2;
    assert_eq!(&good[url_at..url_at + 15], b"ws://a.example/");

    // A URL that is not in canonical form.
    let mut upper = good.clone();
    upper[url_at + 5] = b'A';
    assert!(ReachabilityRecord::from_bytes(&upper).is_err());
    // A relay count of 0 or 5.
    for count in [0u8, 5] {
        let mut bad = good.clone();
        bad[1 + 32 + 8] = count;
        assert!(ReachabilityRecord::from_bytes(&bad).is_err());
    }
    // A pin presence byte other than 0 or 1.
    let mut presence = good.clone();
    presence[url_at + 17] = 2;
    assert!(ReachabilityRecord::from_bytes(&presence).is_err());
    // Another version, truncation, trailing bytes.
    let mut version = good.clone();
    version[0] = 2;
    assert!(ReachabilityRecord::from_bytes(&version).is_err());
    assert!(ReachabilityRecord::from_bytes(&good[..good.len() - 1]).is_err());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(ReachabilityRecord::from_bytes(&trailing).is_err());
    assert_eq!(good.len(), MIN_REACHABILITY_LEN + 8);
}

#[test]
fn the_longest_record_is_the_documented_size() {
    let alice = identity(1);
    let relays: Vec<_> = (0..4)
        .map(|i| {
            let host = format!("{i}{}", "a".repeat(232));
            RelayEndpoint::new(&format!("wss://{host}.example:65535/v1"), Some([1; 32])).unwrap()
        })
        .collect();
    assert!(relays.iter().all(|r| r.url().len() == MAX_RELAY_ID_LEN));
    let record = ReachabilityRecord::sign(&alice, u64::MAX, relays).unwrap();
    assert_eq!(record.to_bytes().len(), MAX_REACHABILITY_LEN);
    assert_eq!(MAX_REACHABILITY_LEN, 1270);
}

#[test]
fn a_token_digest_is_sha256_of_the_context_and_token() {
    let token = DeliveryToken([0x42; DELIVERY_TOKEN_LEN]);
    let mut input = b"chatd/v1/delivery-token".to_vec();
    input.extend_from_slice(&[0x42; 16]);
    assert_eq!(token.digest(), sha256(&[&input]));
    assert_eq!(format!("{token:?}"), "DeliveryToken(..)");
}
