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
    assert!(matches!(ContentKind::from_byte(5), Ok(ContentKind::Other(k)) if k.get() == 5));
    let mut zero_kind = content.to_bytes();
    zero_kind[25] = 0;
    assert_eq!(
        Content::from_bytes(&zero_kind).unwrap_err(),
        DecodeError::Invalid("content kind 0")
    );
    let text = format!("{content:?}");
    assert!(text.contains("body_len: 100"));
}
