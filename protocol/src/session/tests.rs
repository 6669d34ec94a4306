//! Unit tests for session records: setup, convergence, old sessions, resets and pickles.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::identity::{DeviceKeyPair, IdentityKeyPair};
use crate::prekeys::{KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, SignedPrekeySecret};

/// A device with its published prekeys and their secrets.
struct Peer {
    local: LocalDevice,
    spk: SignedPrekeySecret,
    kem: KemPrekeySecret,
    otks: Vec<OneTimePrekeySecret>,
    bundle: PrekeyBundle,
    guard: ReplayGuard,
}

impl Peer {
    fn new(rng: &mut ChaCha20Rng, device: u32) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let local = LocalDevice::new(
            &identity,
            DeviceKeyPair::generate(DeviceId::new(device).unwrap(), rng),
            0,
        );
        let (spk, spk_pub) = SignedPrekeySecret::generate(1, 0, local.keys.signing(), rng);
        let (kem, kem_pub) = KemPrekeySecret::generate(2, true, local.keys.signing(), rng);
        let bundle = PrekeyBundle {
            device: local.cert.certificate().clone(),
            signed_prekey: spk_pub,
            kem_prekey: kem_pub,
            one_time_prekey: None,
        };
        Self {
            local,
            spk,
            kem,
            otks: Vec::new(),
            bundle,
            guard: ReplayGuard::new(),
        }
    }

    /// A fresh bundle with a new one-time prekey.
    fn bundle_with_otk(&mut self, rng: &mut ChaCha20Rng, id: u32) -> VerifiedBundle {
        let (otk, otk_pub) = OneTimePrekeySecret::generate(id, rng);
        self.otks.push(otk);
        let mut bundle = self.bundle.clone();
        bundle.one_time_prekey = Some(otk_pub);
        bundle.verify(None).unwrap()
    }

    fn me(&self) -> (IdentityKey, DeviceId) {
        (self.local.cert.identity(), self.local.cert.device_id())
    }

    /// Receives a session message from `from` into `record`, as chatd would.
    fn receive(
        &mut self,
        record: &mut SessionRecord,
        from: (IdentityKey, DeviceId),
        msg: &SessionMessage,
    ) -> Result<Vec<u8>, SessionError> {
        match msg {
            SessionMessage::Normal(m) => record.decrypt(m),
            SessionMessage::Prekey { header, message } => {
                let otk = header
                    .one_time_prekey_id
                    .and_then(|id| self.otks.iter().find(|k| k.id == id));
                let keys = ResponderKeys {
                    signed_prekey: &self.spk,
                    one_time_prekey: otk,
                    kem_prekey: &self.kem,
                };
                let keys = (header.one_time_prekey_id.is_none() || otk.is_some()).then_some(keys);
                let out = record.decrypt_prekey(
                    &self.local,
                    from,
                    header,
                    message,
                    keys,
                    &mut self.guard,
                )?;
                if let Some(id) = out.consumed_one_time_prekey {
                    self.otks.retain(|k| k.id != id);
                }
                Ok(out.plaintext)
            }
        }
    }
}

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

#[test]
fn initiator_sends_prekey_messages_until_answered() {
    let mut rng = rng(1);
    let mut alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let (mut a, mut b) = (SessionRecord::new(), SessionRecord::new());
    let bundle = bob.bundle_with_otk(&mut rng, 9);
    a.initiate(&alice.local, &bundle, &mut rng).unwrap();
    let m1 = a.encrypt(b"one", &mut rng).unwrap();
    let m2 = a.encrypt(b"two", &mut rng).unwrap();
    assert!(matches!(m1, SessionMessage::Prekey { .. }));
    assert!(matches!(m2, SessionMessage::Prekey { .. }));
    // Out of order: the second prekey message first. The one-time prekey is consumed once.
    assert_eq!(bob.receive(&mut b, alice.me(), &m2).unwrap(), b"two");
    assert!(bob.otks.is_empty());
    assert_eq!(bob.receive(&mut b, alice.me(), &m1).unwrap(), b"one");
    assert_eq!(b.session_count(), 1);
    let reply = b.encrypt(b"three", &mut rng).unwrap();
    assert!(matches!(reply, SessionMessage::Normal(_)));
    assert_eq!(alice.receive(&mut a, bob.me(), &reply).unwrap(), b"three");
    assert!(matches!(
        a.encrypt(b"four", &mut rng).unwrap(),
        SessionMessage::Normal(_)
    ));
}

#[test]
fn replayed_initial_message_is_refused() {
    let mut rng = rng(2);
    let alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    a.initiate(&alice.local, &bob.bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    let m = a.encrypt(b"once", &mut rng).unwrap();
    let mut b = SessionRecord::new();
    assert_eq!(bob.receive(&mut b, alice.me(), &m).unwrap(), b"once");
    // Same record: the session exists, so this is a plain duplicate.
    assert_eq!(
        bob.receive(&mut b, alice.me(), &m).unwrap_err(),
        SessionError::Decrypt(DecryptError::Duplicate)
    );
    // A fresh record (the session was dropped): the replay guard refuses it.
    let mut fresh = SessionRecord::new();
    assert_eq!(
        bob.receive(&mut fresh, alice.me(), &m).unwrap_err(),
        SessionError::Handshake(HandshakeError::Replay)
    );
}

#[test]
fn prekey_message_from_another_sender_than_claimed_is_refused() {
    let mut rng = rng(3);
    let alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let mallory = Peer::new(&mut rng, 3);
    let mut a = SessionRecord::new();
    a.initiate(&alice.local, &bob.bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    let m = a.encrypt(b"hi", &mut rng).unwrap();
    let mut b = SessionRecord::new();
    assert_eq!(
        bob.receive(&mut b, mallory.me(), &m).unwrap_err(),
        SessionError::UnexpectedPeer
    );
}

fn simultaneous(seed: u8) {
    let mut rng = rng(seed);
    let mut alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let (mut a, mut b) = (SessionRecord::new(), SessionRecord::new());
    let bob_bundle = bob.bundle_with_otk(&mut rng, 10);
    let alice_bundle = alice.bundle_with_otk(&mut rng, 20);
    a.initiate(&alice.local, &bob_bundle, &mut rng).unwrap();
    b.initiate(&bob.local, &alice_bundle, &mut rng).unwrap();
    let from_a = a.encrypt(b"a1", &mut rng).unwrap();
    let from_b = b.encrypt(b"b1", &mut rng).unwrap();
    // The two initial messages cross.
    assert_eq!(bob.receive(&mut b, alice.me(), &from_a).unwrap(), b"a1");
    assert_eq!(alice.receive(&mut a, bob.me(), &from_b).unwrap(), b"b1");
    // Both keep talking, with messages crossing again, then each side reads the other's.
    let a2 = a.encrypt(b"a2", &mut rng).unwrap();
    let b2 = b.encrypt(b"b2", &mut rng).unwrap();
    assert_eq!(bob.receive(&mut b, alice.me(), &a2).unwrap(), b"a2");
    assert_eq!(alice.receive(&mut a, bob.me(), &b2).unwrap(), b"b2");
    for round in 0..3u8 {
        let m = a.encrypt(&[round], &mut rng).unwrap();
        assert_eq!(bob.receive(&mut b, alice.me(), &m).unwrap(), vec![round]);
        let m = b.encrypt(&[round], &mut rng).unwrap();
        assert_eq!(alice.receive(&mut a, bob.me(), &m).unwrap(), vec![round]);
    }
    assert_eq!(
        a.active_base_key(),
        b.active_base_key(),
        "seed {seed}: sessions did not converge"
    );
}

#[test]
fn simultaneous_initiation_converges() {
    // Different seeds give both orders of the two base keys.
    for seed in 10..20 {
        simultaneous(seed);
    }
}

#[test]
fn peer_reset_is_followed_and_old_messages_still_decrypt() {
    let mut rng = rng(4);
    let alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    let mut b = SessionRecord::new();
    a.initiate(&alice.local, &bob.bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    bob.receive(&mut b, alice.me(), &a.encrypt(b"hello", &mut rng).unwrap())
        .unwrap();
    alice.receive_ok(&mut a, bob.me(), &b.encrypt(b"hi", &mut rng).unwrap());
    let delayed = a.encrypt(b"delayed on the old session", &mut rng).unwrap();
    // Alice loses her state and starts over.
    let mut a2 = SessionRecord::new();
    a2.initiate(&alice.local, &bob.bundle_with_otk(&mut rng, 5), &mut rng)
        .unwrap();
    let fresh = a2.encrypt(b"new session", &mut rng).unwrap();
    assert_eq!(
        bob.receive(&mut b, alice.me(), &fresh).unwrap(),
        b"new session"
    );
    let new_base = b.active_base_key();
    // The delayed message on the old session still decrypts, without reviving that session.
    assert_eq!(
        bob.receive(&mut b, alice.me(), &delayed).unwrap(),
        b"delayed on the old session"
    );
    assert_eq!(b.active_base_key(), new_base);
    let reply = b.encrypt(b"ok", &mut rng).unwrap();
    assert_eq!(alice.receive_ok(&mut a2, bob.me(), &reply), b"ok");
}

impl Peer {
    fn receive_ok(
        &self,
        record: &mut SessionRecord,
        _from: (IdentityKey, DeviceId),
        msg: &SessionMessage,
    ) -> Vec<u8> {
        match msg {
            SessionMessage::Normal(m) => record.decrypt(m).unwrap(),
            SessionMessage::Prekey { .. } => panic!("expected a normal message"),
        }
    }
}

#[test]
fn previous_sessions_are_bounded() {
    let mut rng = rng(5);
    let alice = Peer::new(&mut rng, 1);
    let bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    let bundle = bob.bundle.verify(None).unwrap();
    for _ in 0..(MAX_PREVIOUS_SESSIONS + 5) {
        a.initiate(&alice.local, &bundle, &mut rng).unwrap();
    }
    assert_eq!(a.session_count(), MAX_PREVIOUS_SESSIONS + 1);
}

#[test]
fn pickle_round_trips_and_refuses_wrong_key_or_tampering() {
    let mut rng = rng(6);
    let alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    let mut b = SessionRecord::new();
    a.initiate(&alice.local, &bob.bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    let m0 = a.encrypt(b"zero", &mut rng).unwrap();
    let m1 = a.encrypt(b"one", &mut rng).unwrap();
    bob.receive(&mut b, alice.me(), &m1).unwrap();
    let key = PickleKey::new([9; 32]);
    let pickled = b.to_encrypted(&key, &mut rng);
    let mut restored = SessionRecord::from_encrypted(&key, &pickled).unwrap();
    assert_eq!(
        bob.receive(&mut restored, alice.me(), &m0).unwrap(),
        b"zero"
    );
    // Pickling an initiator record keeps its pending header.
    let pickled_a = a.to_encrypted(&key, &mut rng);
    let mut restored_a = SessionRecord::from_encrypted(&key, &pickled_a).unwrap();
    assert!(matches!(
        restored_a.encrypt(b"x", &mut rng).unwrap(),
        SessionMessage::Prekey { .. }
    ));

    assert_eq!(
        SessionRecord::from_encrypted(&PickleKey::new([8; 32]), &pickled).unwrap_err(),
        PickleError::Authentication
    );
    for i in [0, 1, 40, pickled.len() - 1] {
        let mut bad = pickled.clone();
        bad[i] ^= 1;
        assert!(SessionRecord::from_encrypted(&key, &bad).is_err());
    }
    assert!(SessionRecord::from_encrypted(&key, &pickled[..10]).is_err());
    let text = format!("{b:?}");
    assert!(!text.contains("09090909"));
}

#[test]
fn session_messages_round_trip_through_the_codec() {
    let mut rng = rng(7);
    let alice = Peer::new(&mut rng, 1);
    let bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    a.initiate(&alice.local, &bob.bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    let m = a.encrypt(b"codec", &mut rng).unwrap();
    assert_eq!(SessionMessage::from_bytes(&m.to_bytes()).unwrap(), m);
    assert_eq!(
        SessionMessage::from_bytes(&[9]).unwrap_err(),
        DecodeError::UnknownTag {
            what: "session message",
            tag: 9
        }
    );
}

#[test]
fn replayed_initial_message_with_a_non_canonical_base_key_is_refused() {
    // X25519 ignores the top bit of a u-coordinate (RFC 7748 section 5), so flipping it in the
    // base key gives the same DH outputs and the same session key. The copy must not pass as a
    // new session: the replay guard and the session lookup key on the base key's bytes.
    let mut rng = rng(8);
    let alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    a.initiate(&alice.local, &bob.bundle.verify(None).unwrap(), &mut rng)
        .unwrap();
    let m = a.encrypt(b"once", &mut rng).unwrap();
    let mut b = SessionRecord::new();
    assert_eq!(bob.receive(&mut b, alice.me(), &m).unwrap(), b"once");
    let mut bytes = m.to_bytes();
    // Message type, header version, the 174-byte certificate, then `EncodeEC(base key)`: the
    // last of those bytes is the key's most significant one.
    let top_byte = 1 + 1 + 174 + 33 - 1;
    bytes[top_byte] ^= 0x80;
    match SessionMessage::from_bytes(&bytes) {
        Err(e) => assert_eq!(e, DecodeError::Invalid("base key")),
        Ok(replayed) => {
            for record in [&mut SessionRecord::new(), &mut b] {
                let result = bob.receive(record, alice.me(), &replayed);
                assert!(result.is_err(), "replay accepted: {result:?}");
            }
        }
    }
}

/// SPEC.md 6.1, "Answered": a responder's session is answered from the PreKey message that
/// creates it, so it never holds an initial header and, once superseded, a later message in it
/// does not bring it back, not even over an unanswered session of our own.
#[test]
fn a_responders_session_is_answered_from_the_message_that_creates_it() {
    let mut rng = rng(6);
    let mut alice = Peer::new(&mut rng, 1);
    let mut bob = Peer::new(&mut rng, 2);
    let mut a = SessionRecord::new();
    let bundle = bob.bundle_with_otk(&mut rng, 7);
    a.initiate(&alice.local, &bundle, &mut rng).unwrap();
    let first = a.encrypt(b"first", &mut rng).unwrap();
    let mut b = SessionRecord::new();
    assert_eq!(bob.receive(&mut b, alice.me(), &first).unwrap(), b"first");
    let responded = b.active_base_key().unwrap();
    // The flag survives a pickle.
    let key = PickleKey::new([7; 32]);
    let mut b = SessionRecord::from_encrypted(&key, &b.to_encrypted(&key, &mut rng)).unwrap();
    // Nothing is left to answer: the responder's first message is Normal.
    assert!(matches!(
        b.clone().encrypt(b"reply", &mut rng).unwrap(),
        SessionMessage::Normal(_)
    ));
    // Bob, before replying, starts a session of his own: active and unanswered.
    b.initiate(&bob.local, &alice.bundle_with_otk(&mut rng, 8), &mut rng)
        .unwrap();
    let own = b.active_base_key().unwrap();
    assert_ne!(own, responded);
    // Alice, who has heard nothing, sends again with her initial header. It decrypts under the
    // responder's session, which had been answered all along and so stays superseded.
    let second = a.encrypt(b"second", &mut rng).unwrap();
    assert!(matches!(second, SessionMessage::Prekey { .. }));
    assert_eq!(bob.receive(&mut b, alice.me(), &second).unwrap(), b"second");
    assert_eq!(b.active_base_key(), Some(own));
    assert_eq!(b.session_count(), 2);
}
