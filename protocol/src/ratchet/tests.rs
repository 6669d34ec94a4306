//! Unit tests for the Double Ratchet: ordering, limits, tampering and state immutability.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

/// An initiator/responder pair sharing a fixed key, as PQXDH would leave them.
pub(crate) fn pair(seed: u8) -> (RatchetState, RatchetState, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let ad: Box<[u8]> = b"test associated data".as_slice().into();
    let spk = X25519Secret::generate(&mut rng);
    let alice =
        RatchetState::initiator(ad.clone(), [seed; 32], spk.public_key(), &mut rng).unwrap();
    let bob = RatchetState::responder(ad, [seed; 32], spk);
    (alice, bob, rng)
}

fn snapshot(state: &RatchetState) -> Vec<u8> {
    let mut w = Writer::new();
    state.encode_secret(&mut w);
    w.into_bytes()
}

#[test]
fn messages_flow_both_ways_with_dh_steps() {
    let (mut alice, mut bob, mut rng) = pair(1);
    assert_eq!(bob.encrypt(b"early", &mut rng), Err(EncryptError::NotReady));
    for round in 0..5u8 {
        for i in 0..3u8 {
            let m = alice.encrypt(&[round, i], &mut rng).unwrap();
            assert_eq!(bob.decrypt(&m).unwrap(), vec![round, i]);
        }
        let m = bob.encrypt(&[round], &mut rng).unwrap();
        assert_eq!(alice.decrypt(&m).unwrap(), vec![round]);
    }
}

#[test]
fn out_of_order_across_a_dh_step_decrypts_each_once() {
    let (mut alice, mut bob, mut rng) = pair(2);
    let first: Vec<_> = (0..4u8)
        .map(|i| alice.encrypt(&[i], &mut rng).unwrap())
        .collect();
    assert_eq!(bob.decrypt(&first[0]).unwrap(), vec![0]);
    let reply = bob.encrypt(b"r", &mut rng).unwrap();
    alice.decrypt(&reply).unwrap();
    let second = alice.encrypt(b"new chain", &mut rng).unwrap();
    assert_eq!(second.header.previous_chain_len, 4);
    // The new chain arrives before the rest of the old one.
    assert_eq!(bob.decrypt(&second).unwrap(), b"new chain");
    assert_eq!(bob.skipped_keys(), 3);
    for i in [3usize, 1, 2] {
        assert_eq!(bob.decrypt(&first[i]).unwrap(), vec![i as u8]);
        assert_eq!(bob.decrypt(&first[i]), Err(DecryptError::Duplicate));
    }
    assert_eq!(bob.skipped_keys(), 0);
}

#[test]
fn duplicates_are_rejected_and_change_nothing() {
    let (mut alice, mut bob, mut rng) = pair(3);
    let m0 = alice.encrypt(b"zero", &mut rng).unwrap();
    let m1 = alice.encrypt(b"one", &mut rng).unwrap();
    bob.decrypt(&m0).unwrap();
    bob.decrypt(&m1).unwrap();
    let before = snapshot(&bob);
    assert_eq!(bob.decrypt(&m1), Err(DecryptError::Duplicate));
    assert_eq!(bob.decrypt(&m0), Err(DecryptError::Duplicate));
    assert_eq!(snapshot(&bob), before);
}

#[test]
fn skip_limit_at_and_past_max_skip() {
    let (mut alice, mut bob, mut rng) = pair(4);
    let mut messages = Vec::new();
    for i in 0..=(MAX_SKIP + 1) {
        messages.push(alice.encrypt(&i.to_be_bytes(), &mut rng).unwrap());
    }
    // Index MAX_SKIP + 1 needs MAX_SKIP + 1 skipped keys: refused, state unchanged.
    let before = snapshot(&bob);
    assert_eq!(
        bob.decrypt(&messages[MAX_SKIP as usize + 1]),
        Err(DecryptError::TooFarAhead)
    );
    assert_eq!(snapshot(&bob), before);
    // Index MAX_SKIP needs exactly MAX_SKIP: accepted.
    bob.decrypt(&messages[MAX_SKIP as usize]).unwrap();
    assert_eq!(bob.skipped_keys(), MAX_SKIP as usize);
    bob.decrypt(&messages[MAX_SKIP as usize + 1]).unwrap();
    bob.decrypt(&messages[0]).unwrap();
    assert_eq!(bob.skipped_keys(), MAX_SKIP as usize - 1);
}

#[test]
fn stored_skipped_keys_are_capped_and_oldest_evicted() {
    let (mut alice, mut bob, mut rng) = pair(5);
    // Three chains of MAX_SKIP + 1 messages; Bob sees only the last of each chain.
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let chain: Vec<_> = (0..=MAX_SKIP)
            .map(|_| alice.encrypt(b"x", &mut rng).unwrap())
            .collect();
        firsts.push(chain[0].clone());
        bob.decrypt(chain.last().unwrap()).unwrap();
        let reply = bob.encrypt(b"r", &mut rng).unwrap();
        alice.decrypt(&reply).unwrap();
    }
    assert_eq!(bob.skipped_keys(), MAX_SKIPPED_KEYS);
    // The oldest chain's first key was evicted; the newest chain's is still there.
    assert_eq!(bob.decrypt(&firsts[0]), Err(DecryptError::Duplicate));
    assert_eq!(bob.decrypt(&firsts[2]).unwrap(), b"x");
}

#[test]
fn tampering_with_any_byte_is_rejected_without_state_change() {
    let (mut alice, mut bob, mut rng) = pair(6);
    let m = alice.encrypt(b"tamper with me", &mut rng).unwrap();
    let bytes = crate::codec::Encode::to_bytes(&m);
    let before = snapshot(&bob);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        if let Ok(bad) = <RatchetMessage as crate::codec::Decode>::from_bytes(&bad) {
            assert!(bob.decrypt(&bad).is_err(), "byte {i}");
        }
        assert_eq!(snapshot(&bob), before, "byte {i}");
    }
    assert_eq!(bob.decrypt(&m).unwrap(), b"tamper with me");
}

#[test]
fn chain_exhaustion_is_an_error_not_a_panic() {
    let (mut alice, mut bob, mut rng) = pair(7);
    alice.sending.as_mut().unwrap().index = u32::MAX - 1;
    let last = alice.encrypt(b"last", &mut rng).unwrap();
    assert_eq!(last.header.index, u32::MAX - 1);
    assert_eq!(
        alice.encrypt(b"one too many", &mut rng),
        Err(EncryptError::ChainExhausted)
    );
    // The receiver refuses the jump rather than looping four billion times.
    assert_eq!(bob.decrypt(&last), Err(DecryptError::TooFarAhead));
}

#[test]
fn pickle_encoding_round_trips() {
    let (mut alice, mut bob, mut rng) = pair(8);
    let m0 = alice.encrypt(b"a", &mut rng).unwrap();
    let m1 = alice.encrypt(b"b", &mut rng).unwrap();
    bob.decrypt(&m1).unwrap();
    let bytes = snapshot(&bob);
    let mut restored = RatchetState::decode_secret(&mut Reader::new(&bytes)).unwrap();
    assert_eq!(snapshot(&restored), bytes);
    assert_eq!(restored.decrypt(&m0).unwrap(), b"a");
}

#[test]
fn debug_shows_no_key_material() {
    let (alice, _, _) = pair(9);
    let text = format!("{alice:?}");
    assert!(!text.contains(&crate::hex_prefix(&alice.root.0)));
    assert!(text.contains("RatchetState"));
}

/// SHA-256 over every message of a fixed conversation and both final states, as hex.
fn transcript_digest() -> String {
    let (mut alice, mut bob, mut rng) = pair(10);
    let mut transcript = Vec::new();
    for (round, len) in [0usize, 1, 63, 64, 256, 1000].into_iter().enumerate() {
        let plaintext = vec![u8::try_from(round).unwrap(); len];
        let sent: Vec<_> = (0..3)
            .map(|_| alice.encrypt(&plaintext, &mut rng).unwrap())
            .collect();
        // Out of order, so skipped keys are stored and used too.
        for i in [2, 0, 1] {
            transcript.extend(crate::codec::Encode::to_bytes(&sent[i]));
            assert_eq!(bob.decrypt(&sent[i]).unwrap(), plaintext);
        }
        let reply = bob.encrypt(&plaintext, &mut rng).unwrap();
        transcript.extend(crate::codec::Encode::to_bytes(&reply));
        assert_eq!(alice.decrypt(&reply).unwrap(), plaintext);
    }
    transcript.extend(snapshot(&alice));
    transcript.extend(snapshot(&bob));
    crate::crypto::kdf::sha256(&[&transcript])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Pins the exact bytes the ratchet produces (messages and pickled state) for a seeded
/// conversation, so that refactoring or optimising it cannot change the wire format unnoticed.
#[test]
fn wire_bytes_are_pinned() {
    assert_eq!(
        transcript_digest(),
        "6395e7a1a375ab53edc63b4d35fe5393e5cd64e3e5793cd67eb963b9d4a454a3"
    );
}

#[test]
fn padding_with_room_for_the_tag_is_padding() {
    for len in (0..=1100).chain([4095, 4096, 65_535, 65_536]) {
        let plaintext = vec![0x11; len];
        let padded = pad_with_room_for_tag(&plaintext).unwrap();
        assert_eq!(padded, padding::pad(&plaintext).unwrap(), "length {len}");
        assert!(
            padded.capacity() >= padded.len() + AEAD_TAG_LEN,
            "length {len}"
        );
    }
}

#[test]
fn associated_data_is_session_data_then_header_on_stack_and_heap() {
    let header = Header {
        ratchet_key: X25519Secret::from_bytes(&[7; 32]).public_key(),
        previous_chain_len: 0x0102_0304,
        index: 0x0506_0708,
    };
    for ad_len in [
        0,
        139,
        INLINE_AAD_LEN - HEADER_LEN,
        INLINE_AAD_LEN - HEADER_LEN + 1,
        1024,
    ] {
        let ad = vec![0xad; ad_len];
        let expected = [ad.clone(), crate::codec::Encode::to_bytes(&header)].concat();
        assert_eq!(
            with_associated_data(&ad, &header, <[u8]>::to_vec),
            expected,
            "ad length {ad_len}"
        );
    }
}

#[test]
fn long_session_associated_data_still_works() {
    let mut rng = ChaCha20Rng::from_seed([11; 32]);
    let ad: Box<[u8]> = vec![0x5a; 1000].into();
    let spk = X25519Secret::generate(&mut rng);
    let mut alice =
        RatchetState::initiator(ad.clone(), [11; 32], spk.public_key(), &mut rng).unwrap();
    let mut bob = RatchetState::responder(ad, [11; 32], spk);
    let m = alice.encrypt(b"long ad", &mut rng).unwrap();
    assert_eq!(bob.decrypt(&m).unwrap(), b"long ad");
    let reply = bob.encrypt(b"reply", &mut rng).unwrap();
    assert_eq!(alice.decrypt(&reply).unwrap(), b"reply");
}
