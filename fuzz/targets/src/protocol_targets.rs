//! Targets for the protocol crate's keyed and text decoders: sealed envelopes, session
//! messages, pickles, prekey bundles, addresses, reachability and invite refusals.
//!
//! The keyed targets read their first byte as a mode: one mode hands the rest to the decoder as
//! it is (what an attacker without keys can send), the others first seal or encrypt the rest
//! with the [`fixture`]'s keys, so that the decoders behind the authentication check are
//! reached too.

use protocol::address::Address;
use protocol::codec::{Decode, Encode};
use protocol::crypto::aead;
use protocol::crypto::kdf::{hkdf_sha256, hkdf_sha256_expand};
use protocol::crypto::x25519::X25519Secret;
use protocol::envelope::{
    Content, EnvelopeError, Opener, SEAL_BATCH_INFO, SEAL_INFO, SEAL_PAYLOAD_INFO, SEAL_SEED_LEN,
    SEAL_VERSION, SEAL_VERSION_1,
};
use protocol::identity::LocalDevice;
use protocol::pickle;
use protocol::prekeys::PrekeyBundle;
use protocol::session::{SessionMessage, SessionRecord};

use crate::fixture::{self, fixture, rng};

/// The pickle kind of session records (SPEC.md section 6).
pub const SESSION_RECORD_KIND: &str = "session-record";

/// Seals `inner` (the AEAD plaintext: sender identity, device, session message) to Bob's device
/// as an envelope of `version` (1 or 2), with the ephemeral secret and seed given: SPEC.md 8.2
/// written out again here, so the target can seal bytes that are not a valid message.
pub fn seal_raw(
    version: u8,
    recipient: &LocalDevice,
    ephemeral: &[u8; 32],
    seed: &[u8; SEAL_SEED_LEN],
    inner: &[u8],
) -> Option<Vec<u8>> {
    let ephemeral = X25519Secret::from_bytes(ephemeral);
    let public = ephemeral.public_key();
    let cert = &recipient.cert;
    let dh = ephemeral.diffie_hellman(cert.dh_key()).ok()?;
    let salt = [public.as_bytes().as_slice(), cert.dh_key().as_bytes()].concat();
    let identity = cert.identity();
    let device = cert.device_id().get().to_be_bytes();
    let mut aad = vec![version];
    aad.extend_from_slice(identity.as_bytes());
    aad.extend_from_slice(&device);
    aad.extend_from_slice(public.as_bytes());
    let okm: [u8; 44] = match version {
        SEAL_VERSION_1 => *hkdf_sha256(
            Some(&salt),
            &[dh.as_bytes()],
            &[SEAL_INFO, identity.as_bytes(), &device],
        ),
        _ => {
            let root: [u8; 32] = *hkdf_sha256(
                Some(&salt),
                &[dh.as_bytes()],
                &[SEAL_BATCH_INFO, identity.as_bytes(), &device],
            );
            aad.extend_from_slice(seed);
            *hkdf_sha256_expand(&root, &[SEAL_PAYLOAD_INFO, seed])
        }
    };
    let (key, nonce) = okm.split_at(32);
    let key: [u8; 32] = key.try_into().ok()?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let mut out = vec![version];
    out.extend_from_slice(public.as_bytes());
    if version != SEAL_VERSION_1 {
        out.extend_from_slice(seed);
    }
    out.extend_from_slice(&aead::seal(&key, &nonce, &aad, inner));
    Some(out)
}

/// Sealed envelopes of both versions, opened by Bob's device. Mode 0: the rest is the relay
/// payload, opened twice by one [`Opener`] (the second time from its cache) with the same
/// outcome. Modes 1 and 2: the rest, after a 32-byte ephemeral secret and a 16-byte seed, is
/// sealed as the inner plaintext of a version 1 or 2 envelope; opening it must get past
/// authentication, and what opens must be exactly what was sealed.
pub fn envelope(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 3 {
        0 => {
            let mut opener = Opener::new();
            let first = opener.open(&f.bob, rest);
            let second = opener.open(&f.bob, rest);
            assert_eq!(first, second, "an opener's cache changed the outcome");
        }
        version => {
            let Some((ephemeral, rest)) = rest.split_first_chunk::<32>() else {
                return;
            };
            let Some((seed, inner)) = rest.split_first_chunk::<SEAL_SEED_LEN>() else {
                return;
            };
            let version = if version == 1 {
                SEAL_VERSION_1
            } else {
                SEAL_VERSION
            };
            let Some(payload) = seal_raw(version, &f.bob, ephemeral, seed, inner) else {
                return;
            };
            match Opener::new().open(&f.bob, &payload) {
                Ok(unsealed) => {
                    let mut expected = unsealed.sender_identity.as_bytes().to_vec();
                    expected.extend_from_slice(&unsealed.sender_device.get().to_be_bytes());
                    expected.extend_from_slice(&unsealed.message.to_bytes());
                    assert_eq!(expected, inner, "an envelope opened to other contents");
                }
                Err(EnvelopeError::Authentication) => {
                    panic!("an envelope sealed to Bob did not authenticate")
                }
                Err(_) => {}
            }
        }
    }
}

/// Session messages (SPEC.md sections 5 and 6) as Bob's session record decrypts them. Mode 0:
/// the rest is a session message from Alice; a message that fails to decrypt must leave Bob's
/// record exactly as it was. Mode 1: Alice encrypts the rest as a plaintext and Bob must
/// decrypt it to the same bytes; the plaintext is then decoded as message content.
pub fn session_message(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let peer = (f.alice.cert.identity(), f.alice.cert.device_id());
    match mode % 2 {
        0 => {
            let Ok(message) = SessionMessage::from_bytes(rest) else {
                return;
            };
            let mut record = f.bob_record.clone();
            let mut replay = f.bob_replay.clone();
            let result = match &message {
                SessionMessage::Normal(message) => record.decrypt(message),
                SessionMessage::Prekey { header, message } => {
                    let keys = f.responder_keys(
                        header.signed_prekey_id,
                        header.one_time_prekey_id,
                        header.kem_prekey_id,
                    );
                    record
                        .decrypt_prekey(&f.bob, peer, header, message, keys, &mut replay)
                        .map(|decrypted| decrypted.plaintext)
                }
            };
            match result {
                Ok(plaintext) => {
                    let _ = Content::from_bytes(&plaintext);
                }
                Err(_) => {
                    let key = f.pickle_key();
                    assert!(
                        record.to_encrypted(&key, &mut rng(1))
                            == f.bob_record.to_encrypted(&key, &mut rng(1)),
                        "a failed decryption changed the session record"
                    );
                    assert_eq!(
                        replay, f.bob_replay,
                        "a failed decryption changed the replay guard"
                    );
                }
            }
        }
        _ => {
            let mut alice = f.alice_record.clone();
            let Ok(message) = alice.encrypt(rest, &mut rng(2)) else {
                return;
            };
            let SessionMessage::Normal(message) = message else {
                panic!("Alice's session was answered, so she sends normal messages");
            };
            let mut bob = f.bob_record.clone();
            let plaintext = bob
                .decrypt(&message)
                .unwrap_or_else(|e| panic!("Bob cannot decrypt Alice's message: {e}"));
            assert_eq!(plaintext, rest, "Bob decrypted other bytes than Alice sent");
            if let Ok(content) = Content::from_bytes(&plaintext) {
                assert_eq!(content.to_bytes(), plaintext, "content is not canonical");
            }
        }
    }
}

/// Pickles (SPEC.md section 6, encrypted session records). Mode 0: the rest is a pickle,
/// opened with the fixed key. Mode 1: the rest is sealed as a session record's plaintext with
/// that key and opened; a record that opens must pickle and open again to the same record.
pub fn pickle(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = fixture().pickle_key();
    let pickled = match mode % 2 {
        0 => rest.to_vec(),
        _ => pickle::seal(SESSION_RECORD_KIND, &key, rest, &mut rng(3)),
    };
    let Ok(record) = SessionRecord::from_encrypted(&key, &pickled) else {
        return;
    };
    let again = record.to_encrypted(&key, &mut rng(4));
    let reopened = SessionRecord::from_encrypted(&key, &again)
        .unwrap_or_else(|e| panic!("a record pickled by this code does not open: {e}"));
    assert!(
        reopened.to_encrypted(&key, &mut rng(4)) == again,
        "a session record changed through a pickle round trip"
    );
}

/// Prekey bundles (SPEC.md section 3), as chatd reads them from the relay: decoded, verified,
/// and used by Alice to start a session when they verify. A bundle that decodes re-encodes to
/// its input.
pub fn prekey_bundle(data: &[u8]) {
    let Ok(bundle) = PrekeyBundle::from_bytes(data) else {
        return;
    };
    assert_eq!(
        bundle.to_bytes(),
        data,
        "a bundle does not re-encode to its input"
    );
    let f = fixture();
    let _ = bundle.verify(Some(&f.bob.cert.identity()));
    if let Ok(verified) = bundle.verify(None) {
        let mut record = SessionRecord::new();
        if record.initiate(&f.alice, &verified, &mut rng(5)).is_ok() {
            record
                .encrypt(&fixture::text(b"hi"), &mut rng(6))
                .unwrap_or_else(|e| panic!("a new session cannot encrypt: {e}"));
        }
    }
}

/// Account addresses (SPEC.md section 2.4) as a user types them: an address that parses
/// prints back to the same text, and that text parses to the same key.
pub fn address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(address) = Address::parse(text) else {
        return;
    };
    let printed = address.to_string();
    let again = Address::parse(&printed)
        .unwrap_or_else(|e| panic!("a printed address {printed:?} does not parse: {e}"));
    assert_eq!(again, address, "an address changed through its text");
}

/// Reachability (SPEC.md 10.9) and introductions (8.1), which carry records between contacts.
/// The first byte picks the decoder: 0 a `ReachabilityRecord`, 1 an `Introduction`, 2 a relay
/// URL, 3 a relay-qualified handle. A record or introduction that decodes re-encodes to the
/// same bytes; a relay binding is its own binding; a qualified handle reads back from its text.
pub fn reachability(data: &[u8]) {
    use protocol::introduction::Introduction;
    use protocol::reachability::{QualifiedHandle, ReachabilityRecord, relay_binding};
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(record) = ReachabilityRecord::from_bytes(input) {
                assert_eq!(record.to_bytes(), input, "a record decodes non-canonically");
                let _ = record.verify();
            }
        }
        1 => {
            if let Ok(intro) = Introduction::from_bytes(input) {
                assert_eq!(
                    intro.to_bytes(),
                    input,
                    "an introduction decodes non-canonically"
                );
            }
        }
        2 => {
            let text = String::from_utf8_lossy(input);
            if let Ok(binding) = relay_binding(&text) {
                assert_eq!(
                    relay_binding(&binding).as_deref(),
                    Ok(binding.as_str()),
                    "a relay binding is not its own binding"
                );
            }
        }
        _ => {
            let text = String::from_utf8_lossy(input);
            if let Ok(handle) = QualifiedHandle::parse(&text) {
                let shown = handle.to_string();
                assert_eq!(
                    QualifiedHandle::parse(&shown).as_ref(),
                    Ok(&handle),
                    "a qualified handle changed through its text {shown:?}"
                );
            }
        }
    }
}

/// Invite refusals (SPEC.md 8.1), the body of a kind 5 Content, which any peer can send. A
/// refusal that decodes is exactly `INVITE_REFUSAL_LEN` bytes and re-encodes to the same bytes.
pub fn invite_refusal(data: &[u8]) {
    use protocol::invite_refusal::{INVITE_REFUSAL_LEN, InviteRefusal};
    if let Ok(refusal) = InviteRefusal::from_bytes(data) {
        assert_eq!(
            data.len(),
            INVITE_REFUSAL_LEN,
            "a refusal of another length decodes"
        );
        assert_eq!(
            refusal.to_bytes(),
            data,
            "an invite refusal decodes non-canonically"
        );
        assert!(!refusal.reason.describe().is_empty());
    }
}

/// Group deliveries (SPEC.md 10.10), the `Deliver` payload of a group post, which a device reads
/// from its relay. A delivery that decodes re-encodes to the same bytes and is no longer than an
/// envelope payload.
pub fn group_delivery(data: &[u8]) {
    use protocol::frames::MAX_PAYLOAD_LEN;
    use protocol::group_delivery::GroupDelivery;
    let is_group = GroupDelivery::is_group_delivery(data);
    if let Ok(delivery) = GroupDelivery::from_bytes(data) {
        assert!(is_group, "a delivery with another first byte decodes");
        assert!(
            data.len() <= MAX_PAYLOAD_LEN,
            "an over-long delivery decodes"
        );
        assert_eq!(
            delivery.to_bytes(),
            data,
            "a group delivery decodes non-canonically"
        );
    }
}

/// Group metadata (SPEC.md 13.3), which any member of a group can put in its group context. A
/// value that decodes keeps every rule and re-encodes to the same bytes.
pub fn group_meta(data: &[u8]) {
    use protocol::group_meta::GroupMetadata;
    if let Ok(metadata) = GroupMetadata::from_bytes(data) {
        assert!(metadata.check().is_ok(), "decoded metadata breaks a rule");
        assert_eq!(
            metadata.to_bytes(),
            data,
            "group metadata decodes non-canonically"
        );
    }
}
