//! Unit tests for PQXDH: agreement, every binding, replays and weak keys.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair};
use crate::prekeys::{KemPrekeySecret, PrekeyBundle};

struct Responder {
    local: LocalDevice,
    spk: SignedPrekeySecret,
    kem: KemPrekeySecret,
    otk: OneTimePrekeySecret,
    bundle: PrekeyBundle,
}

fn device(rng: &mut ChaCha20Rng, id: u32) -> LocalDevice {
    let identity = IdentityKeyPair::generate(rng);
    LocalDevice::new(
        &identity,
        DeviceKeyPair::generate(DeviceId::new(id).unwrap(), rng),
        0,
    )
}

fn responder(rng: &mut ChaCha20Rng, with_otk: bool) -> Responder {
    let local = device(rng, 7);
    let (spk, spk_pub) = SignedPrekeySecret::generate(1, 0, local.keys.signing(), rng);
    let (kem, kem_pub) = KemPrekeySecret::generate(2, false, local.keys.signing(), rng);
    let (otk, otk_pub) = OneTimePrekeySecret::generate(3, rng);
    let bundle = PrekeyBundle {
        device: local.cert.certificate().clone(),
        signed_prekey: spk_pub,
        kem_prekey: kem_pub,
        one_time_prekey: with_otk.then_some(otk_pub),
    };
    Responder {
        local,
        spk,
        kem,
        otk,
        bundle,
    }
}

fn keys(r: &Responder, with_otk: bool) -> ResponderKeys<'_> {
    ResponderKeys {
        signed_prekey: &r.spk,
        one_time_prekey: with_otk.then_some(&r.otk),
        kem_prekey: &r.kem,
    }
}

#[test]
fn both_sides_agree_with_and_without_one_time_prekey() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    for with_otk in [true, false] {
        let alice = device(&mut rng, 1);
        let bob = responder(&mut rng, with_otk);
        let bundle = bob.bundle.verify(None).unwrap();
        let mut init = initiate(&alice, &bundle, &mut rng).unwrap();
        let header = InitialHeader::from_bytes(&init.header.to_bytes()).unwrap();
        assert_eq!(header, init.header);
        let mut resp = respond(
            &bob.local,
            &header,
            keys(&bob, with_otk),
            &ReplayGuard::new(),
        )
        .unwrap();
        assert_eq!(resp.peer.identity(), alice.cert.identity());
        assert_eq!(resp.state.associated_data(), init.state.associated_data());
        let m = init.state.encrypt(b"hello", &mut rng).unwrap();
        assert_eq!(resp.state.decrypt(&m).unwrap(), b"hello");
        let reply = resp.state.encrypt(b"hi", &mut rng).unwrap();
        assert_eq!(init.state.decrypt(&reply).unwrap(), b"hi");
    }
}

#[test]
fn mismatched_or_tampered_inputs_do_not_agree() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let alice = device(&mut rng, 1);
    let bob = responder(&mut rng, true);
    let bundle = bob.bundle.verify(None).unwrap();
    let mut init = initiate(&alice, &bundle, &mut rng).unwrap();
    let m = init.state.encrypt(b"hello", &mut rng).unwrap();

    // Wrong secrets for the ids named.
    let mut other = responder(&mut rng, true);
    other.spk.id = 1;
    let wrong = ResponderKeys {
        signed_prekey: &other.spk,
        ..keys(&bob, true)
    };
    let mut resp = respond(&bob.local, &init.header, wrong, &ReplayGuard::new()).unwrap();
    assert!(resp.state.decrypt(&m).is_err());

    // Omitting the one-time prekey the header names is a mismatch.
    assert_eq!(
        respond(
            &bob.local,
            &init.header,
            keys(&bob, false),
            &ReplayGuard::new()
        )
        .unwrap_err(),
        HandshakeError::PrekeyMismatch
    );

    // A flipped KEM ciphertext bit yields another secret (implicit rejection): no agreement.
    let mut header = init.header.clone();
    header.kem_ciphertext[100] ^= 1;
    let mut resp = respond(&bob.local, &header, keys(&bob, true), &ReplayGuard::new()).unwrap();
    assert_eq!(
        resp.state.decrypt(&m).unwrap_err(),
        crate::ratchet::DecryptError::Authentication
    );

    // Another base key: no agreement.
    let mut header = init.header.clone();
    header.base_key = X25519Secret::generate(&mut rng).public_key();
    let mut resp = respond(&bob.local, &header, keys(&bob, true), &ReplayGuard::new()).unwrap();
    assert!(resp.state.decrypt(&m).is_err());
}

#[test]
fn initiator_certificate_must_verify() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let alice = device(&mut rng, 1);
    let bob = responder(&mut rng, false);
    let bundle = bob.bundle.verify(None).unwrap();
    let init = initiate(&alice, &bundle, &mut rng).unwrap();
    let mut bytes = init.header.to_bytes();
    // The certificate's signature is its last 64 bytes; it starts after the version byte.
    let cert_len = alice.cert.certificate().to_bytes().len();
    bytes[cert_len] ^= 1;
    let header = InitialHeader::from_bytes(&bytes).unwrap();
    assert!(matches!(
        respond(&bob.local, &header, keys(&bob, false), &ReplayGuard::new()),
        Err(HandshakeError::Certificate(_))
    ));
}

#[test]
fn replay_without_one_time_prekey_is_refused_once_recorded() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let alice = device(&mut rng, 1);
    let bob = responder(&mut rng, false);
    let bundle = bob.bundle.verify(None).unwrap();
    let init = initiate(&alice, &bundle, &mut rng).unwrap();
    let mut guard = ReplayGuard::new();
    respond(&bob.local, &init.header, keys(&bob, false), &guard).unwrap();
    guard.record(1, &init.header.base_key).unwrap();
    assert_eq!(
        respond(&bob.local, &init.header, keys(&bob, false), &guard).unwrap_err(),
        HandshakeError::Replay
    );
    // Rotation frees the entries.
    guard.forget_signed_prekey(1);
    assert!(guard.is_empty());
}

#[test]
fn replay_guard_is_bounded_and_fails_closed() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let mut guard = ReplayGuard::new();
    for _ in 0..MAX_REPLAY_ENTRIES {
        guard
            .record(1, &X25519Secret::generate(&mut rng).public_key())
            .unwrap();
    }
    assert!(guard.is_full());
    let extra = X25519Secret::generate(&mut rng).public_key();
    assert_eq!(
        guard.record(2, &extra),
        Err(HandshakeError::ReplayGuardFull)
    );
    let bytes = guard.to_bytes();
    assert_eq!(ReplayGuard::from_bytes(&bytes).unwrap(), guard);
}

#[test]
fn session_with_oneself_is_refused() {
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let bob = responder(&mut rng, false);
    let bundle = bob.bundle.verify(None).unwrap();
    let init = initiate(&bob.local, &bundle, &mut rng).unwrap();
    assert_eq!(
        respond(
            &bob.local,
            &init.header,
            keys(&bob, false),
            &ReplayGuard::new()
        )
        .unwrap_err(),
        HandshakeError::SelfSession
    );
}

#[test]
fn base_key_must_be_canonical() {
    let canonical = |bytes: [u8; 32]| X25519PublicKey::from_bytes(bytes).unwrap().is_canonical();
    let mut below_p = [0xff; 32];
    below_p[0] = 0xeb;
    below_p[31] = 0x7f;
    let mut above_p = below_p;
    above_p[0] = 0xef;
    assert!(canonical(below_p), "p - 2");
    assert!(!canonical(above_p), "p + 2");
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let alice = device(&mut rng, 1);
    let bob = responder(&mut rng, false);
    let init = initiate(&alice, &bob.bundle.verify(None).unwrap(), &mut rng).unwrap();
    assert!(init.header.base_key.is_canonical());
    let mut bytes = init.header.to_bytes();
    // Version, certificate, key type byte, then the key; its last byte holds the top bit.
    bytes[1 + 174 + 1 + 31] ^= 0x80;
    assert_eq!(
        InitialHeader::from_bytes(&bytes),
        Err(DecodeError::Invalid("base key"))
    );
}
