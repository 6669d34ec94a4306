//! Unit tests for content encoding and the sealed-sender layer.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::identity::{DeviceKeyPair, IdentityKeyPair};
use crate::prekeys::{KemPrekeySecret, PrekeyBundle, SignedPrekeySecret};
use crate::session::SessionRecord;

fn device(rng: &mut ChaCha20Rng, id: u32) -> LocalDevice {
    let identity = IdentityKeyPair::generate(rng);
    LocalDevice::new(
        &identity,
        DeviceKeyPair::generate(DeviceId::new(id).unwrap(), rng),
        0,
    )
}

fn message(rng: &mut ChaCha20Rng, alice: &LocalDevice, bob: &LocalDevice) -> SessionMessage {
    let (_, spk) = SignedPrekeySecret::generate(1, 0, bob.keys.signing(), rng);
    let (_, kem) = KemPrekeySecret::generate(2, true, bob.keys.signing(), rng);
    let bundle = PrekeyBundle {
        device: bob.cert.certificate().clone(),
        signed_prekey: spk,
        kem_prekey: kem,
        one_time_prekey: None,
    };
    let mut record = SessionRecord::new();
    record
        .initiate(alice, &bundle.verify(None).unwrap(), rng)
        .unwrap();
    let content = Content {
        message_id: [7; 16],
        timestamp_ms: 1_700_000_000_000,
        kind: ContentKind::Text,
        body: b"hello".to_vec(),
    };
    record.encrypt(&content.to_bytes(), rng).unwrap()
}

/// A seeded generator, two devices and a first message from the first to the second.
fn parties(seed: u8) -> (ChaCha20Rng, LocalDevice, LocalDevice, SessionMessage) {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let alice = device(&mut rng, 1);
    let bob = device(&mut rng, 2);
    let msg = message(&mut rng, &alice, &bob);
    (rng, alice, bob, msg)
}

#[test]
fn seal_and_open_round_trip() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let alice = device(&mut rng, 1);
    let bob = device(&mut rng, 2);
    let msg = message(&mut rng, &alice, &bob);
    let payload = seal(&alice, &bob.cert, &msg, &mut rng).unwrap();
    let opened = open(&bob, &payload).unwrap();
    assert_eq!(opened.sender_identity, alice.cert.identity());
    assert_eq!(opened.sender_device, alice.cert.device_id());
    assert_eq!(opened.message, msg);
    // The sender's identity does not appear in the payload.
    let id = alice.cert.identity();
    assert!(!payload.windows(32).any(|w| w == id.as_bytes()));
}

#[test]
fn only_the_recipient_device_opens_it_and_every_byte_is_authenticated() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let alice = device(&mut rng, 1);
    let bob = device(&mut rng, 2);
    let carol = device(&mut rng, 3);
    let msg = message(&mut rng, &alice, &bob);
    let payload = seal(&alice, &bob.cert, &msg, &mut rng).unwrap();
    assert_eq!(
        open(&carol, &payload).unwrap_err(),
        EnvelopeError::Authentication
    );
    for i in 0..payload.len() {
        let mut bad = payload.clone();
        bad[i] ^= 0x80;
        assert!(open(&bob, &bad).is_err(), "byte {i}");
    }
    for len in 0..payload.len() {
        assert!(open(&bob, &payload[..len]).is_err());
    }
}

#[test]
fn content_round_trips_and_rejects_bad_input() {
    let content = Content {
        message_id: [1; 16],
        timestamp_ms: 42,
        kind: ContentKind::from_byte(200).unwrap(),
        body: vec![0; 100],
    };
    assert_eq!(Content::from_bytes(&content.to_bytes()).unwrap(), content);
    for byte in 1..=255u8 {
        assert_eq!(ContentKind::from_byte(byte).unwrap().to_byte(), byte);
    }
    assert_eq!(ContentKind::from_byte(4), Ok(ContentKind::Introduction));
    assert_eq!(ContentKind::from_byte(5), Ok(ContentKind::InviteRefused));
    assert_eq!(ContentKind::InviteRefused.to_byte(), 5);
    assert!(matches!(ContentKind::from_byte(6), Ok(ContentKind::Other(k)) if k.get() == 6));
    let mut zero_kind = content.to_bytes();
    zero_kind[25] = 0;
    assert_eq!(
        Content::from_bytes(&zero_kind).unwrap_err(),
        DecodeError::Invalid("content kind 0")
    );
    let text = format!("{content:?}");
    assert!(text.contains("body_len: 100"));
}

#[test]
fn one_sealer_seals_a_batch_that_an_opener_opens_with_one_agreement() {
    let (mut rng, alice, bob, msg) = parties(3);
    let sealer = Sealer::new(&bob.cert, &mut rng).unwrap();
    assert!(sealer.seals_to(&bob.cert));
    assert!(!sealer.seals_to(&alice.cert));
    let payloads: Vec<Vec<u8>> = (0..5)
        .map(|_| sealer.seal(&alice, &msg, &mut rng))
        .collect();
    // One ephemeral key, a fresh seed (and so a different ciphertext) each.
    for p in &payloads {
        assert_eq!(p[0], SEAL_VERSION);
        assert_eq!(p[1..33], payloads[0][1..33]);
    }
    for (i, a) in payloads.iter().enumerate() {
        for b in &payloads[i + 1..] {
            assert_ne!(a[33..33 + SEAL_SEED_LEN], b[33..33 + SEAL_SEED_LEN]);
            assert_ne!(a[33 + SEAL_SEED_LEN..], b[33 + SEAL_SEED_LEN..]);
        }
    }
    let mut opener = Opener::new();
    for p in &payloads {
        let opened = opener.open(&bob, p).unwrap();
        assert_eq!(opened.message, msg);
        assert_eq!(opened.sender_identity, alice.cert.identity());
        assert_eq!(opener.cached(), 1);
        // The same as opening without a cache.
        assert_eq!(open(&bob, p).unwrap(), opened);
    }
}

#[test]
fn a_cached_agreement_still_authenticates_every_byte_and_the_recipient() {
    let (mut rng, alice, bob, msg) = parties(4);
    let carol = device(&mut rng, 3);
    let sealer = Sealer::new(&bob.cert, &mut rng).unwrap();
    let first = sealer.seal(&alice, &msg, &mut rng);
    let second = sealer.seal(&alice, &msg, &mut rng);
    let mut opener = Opener::new();
    opener.open(&bob, &first).unwrap();
    assert_eq!(opener.cached(), 1);
    for i in 0..second.len() {
        let mut bad = second.clone();
        bad[i] ^= 0x01;
        assert!(opener.open(&bob, &bad).is_err(), "byte {i}");
    }
    for len in 0..second.len() {
        assert!(opener.open(&bob, &second[..len]).is_err(), "length {len}");
    }
    // Another device never gets bob's cached root.
    assert_eq!(
        opener.open(&carol, &second).unwrap_err(),
        EnvelopeError::Authentication
    );
    // Swapping in another payload's seed breaks the tag.
    let mut swapped = second.clone();
    swapped[33..33 + SEAL_SEED_LEN].copy_from_slice(&first[33..33 + SEAL_SEED_LEN]);
    assert_eq!(
        opener.open(&bob, &swapped).unwrap_err(),
        EnvelopeError::Authentication
    );
    // None of that disturbed the cache.
    assert_eq!(opener.cached(), 1);
    assert_eq!(opener.open(&bob, &second).unwrap().message, msg);
}

#[test]
fn only_authenticated_agreements_are_cached_and_the_cache_is_bounded() {
    let (mut rng, alice, bob, msg) = parties(5);
    let mut opener = Opener::new();
    // A forged payload: a valid ephemeral key, garbage after it.
    let mut forged = seal(&alice, &bob.cert, &msg, &mut rng).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        opener.open(&bob, &forged).unwrap_err(),
        EnvelopeError::Authentication
    );
    assert_eq!(opener.cached(), 0);
    let oldest = seal(&alice, &bob.cert, &msg, &mut rng).unwrap();
    opener.open(&bob, &oldest).unwrap();
    for _ in 0..OPENER_CAPACITY {
        let p = seal(&alice, &bob.cert, &msg, &mut rng).unwrap();
        opener.open(&bob, &p).unwrap();
        assert!(opener.cached() <= OPENER_CAPACITY);
    }
    assert_eq!(opener.cached(), OPENER_CAPACITY);
    // Evicted, the oldest agreement is simply computed again.
    assert_eq!(opener.open(&bob, &oldest).unwrap().message, msg);
    assert_eq!(opener.cached(), OPENER_CAPACITY);
}

#[test]
fn versions_and_lengths_are_checked_before_any_key_agreement() {
    let (mut rng, alice, bob, msg) = parties(6);
    let payload = seal(&alice, &bob.cert, &msg, &mut rng).unwrap();
    assert_eq!(open(&bob, &[]).unwrap_err(), EnvelopeError::Truncated);
    for version in [0u8, 3, 0xff] {
        let mut other = payload.clone();
        other[0] = version;
        assert_eq!(
            open(&bob, &other).unwrap_err(),
            EnvelopeError::UnsupportedVersion(version)
        );
    }
    assert_eq!(
        open(&bob, &payload[..SEAL_OVERHEAD - 1]).unwrap_err(),
        EnvelopeError::Truncated
    );
    // A small-order ephemeral key is refused as such.
    let mut small = payload.clone();
    small[1..33].copy_from_slice(&[0; 32]);
    assert!(matches!(
        open(&bob, &small).unwrap_err(),
        EnvelopeError::Dh(_)
    ));
}

#[test]
fn the_remembered_sender_is_used_only_for_the_same_bytes() {
    let (mut rng, alice, bob, msg) = parties(7);
    let carol = device(&mut rng, 3);
    let sealer = Sealer::new(&bob.cert, &mut rng).unwrap();
    let mut opener = Opener::new();
    // Under one agreement the claimed sender can change from payload to payload (the session
    // authenticates it); each payload reports its own.
    for sender in [&alice, &alice, &carol, &alice] {
        let opened = opener
            .open(&bob, &sealer.seal(sender, &msg, &mut rng))
            .unwrap();
        assert_eq!(opened.sender_identity, sender.cert.identity());
        assert_eq!(opened.sender_device, sender.cert.device_id());
    }
    assert_eq!(opener.cached(), 1);
}

#[test]
fn content_body_limit_holds_at_the_boundary() {
    let content = |len: usize| Content {
        message_id: [1; 16],
        timestamp_ms: 2,
        kind: ContentKind::Text,
        body: vec![0x61; len],
    };
    let largest = content(MAX_BODY_LEN).to_bytes();
    assert_eq!(largest.len(), MAX_CONTENT_LEN);
    assert_eq!(
        Content::from_bytes(&largest).unwrap(),
        content(MAX_BODY_LEN)
    );
    assert_eq!(
        Content::from_bytes(&content(MAX_BODY_LEN + 1).to_bytes()),
        Err(DecodeError::TooLong {
            what: "message body",
            len: MAX_BODY_LEN + 1,
            max: MAX_BODY_LEN
        })
    );
}

/// SPEC.md 8.4: the largest content, sent as a PreKey message that used a one-time prekey (the
/// longest initial header) and sealed, is 202,657 bytes: within the relay's payload limit.
#[test]
fn the_largest_content_sealed_as_a_prekey_message_fits_a_relay_payload() {
    use crate::prekeys::OneTimePrekeySecret;
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let alice = device(&mut rng, 1);
    let bob = device(&mut rng, 2);
    let (_, spk) = SignedPrekeySecret::generate(1, 0, bob.keys.signing(), &mut rng);
    let (_, kem) = KemPrekeySecret::generate(2, false, bob.keys.signing(), &mut rng);
    let (_, otk) = OneTimePrekeySecret::generate(3, &mut rng);
    let bundle = PrekeyBundle {
        device: bob.cert.certificate().clone(),
        signed_prekey: spk,
        kem_prekey: kem,
        one_time_prekey: Some(otk),
    };
    let mut record = SessionRecord::new();
    record
        .initiate(&alice, &bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    let content = Content {
        message_id: [7; 16],
        timestamp_ms: 0,
        kind: ContentKind::Text,
        body: vec![0x61; MAX_BODY_LEN],
    };
    let message = record.encrypt(&content.to_bytes(), &mut rng).unwrap();
    let SessionMessage::Prekey {
        header,
        message: ratchet,
    } = &message
    else {
        panic!("a first message carries the initial header");
    };
    assert_eq!(header.to_bytes().len(), 1789);
    // Content padded to 200,704 bytes, plus the tag.
    assert_eq!(ratchet.ciphertext.len(), 200_720);
    let payload = seal(&alice, &bob.cert, &message, &mut rng).unwrap();
    assert_eq!(payload.len(), 202_657);
    assert!(payload.len() <= crate::frames::MAX_PAYLOAD_LEN);
}
