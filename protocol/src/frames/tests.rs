//! Unit tests for relay frames: authentication, handles, limits and the decoder's refusals.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::crypto::ed25519::{Ed25519Secret, Signature};
use crate::identity::{DeviceKeyPair, IdentityKeyPair, LocalDevice};
use crate::prekeys::{KemPrekeySecret, OneTimePrekeySecret, SignedPrekeySecret};
use crate::reachability::DeliveryToken;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn device(rng: &mut ChaCha20Rng, id: u32) -> (IdentityKeyPair, LocalDevice) {
    let identity = IdentityKeyPair::generate(rng);
    let keys = DeviceKeyPair::generate(DeviceId::new(id).unwrap(), rng);
    let local = LocalDevice::new(&identity, keys, 1_700_000_000);
    (identity, local)
}

fn rid(id: u32) -> RequestId {
    RequestId::new(id).unwrap()
}

fn relay() -> RelayId {
    RelayId::new("wss://relay.example/v1").unwrap()
}

fn handle(text: &str) -> Handle {
    Handle::parse(text).unwrap()
}

fn client_round_trip(frame: &ClientFrame) -> Vec<u8> {
    frame.check_limits().unwrap();
    let bytes = frame.to_bytes();
    assert!(bytes.len() <= MAX_FRAME_LEN);
    assert_eq!(&ClientFrame::from_bytes(&bytes).unwrap(), frame);
    bytes
}

fn server_round_trip(frame: &ServerFrame) -> Vec<u8> {
    frame.check_limits().unwrap();
    let bytes = frame.to_bytes();
    assert!(bytes.len() <= MAX_FRAME_LEN);
    assert_eq!(&ServerFrame::from_bytes(&bytes).unwrap(), frame);
    bytes
}

// ---- Authentication -------------------------------------------------------------------------

#[test]
fn auth_proof_verifies_and_names_the_device() {
    let mut rng = rng(1);
    let (identity, local) = device(&mut rng, 7);
    let nonce = [9u8; AUTH_NONCE_LEN];
    let proof = AuthProof::sign(
        local.keys.signing(),
        local.cert.certificate(),
        &relay(),
        &nonce,
    );
    let device = proof.verify(&relay(), &nonce).unwrap();
    assert_eq!(device.identity(), identity.public_key());
    assert_eq!(device.device_id().get(), 7);
    assert_eq!(
        device.signing_key(),
        &local.keys.signing().public_key(),
        "the verified device carries the key the relay will check prekeys with"
    );
    // Through the wire and back, via the free function.
    let frame = ClientFrame::Auth(proof);
    let bytes = client_round_trip(&frame);
    let ClientFrame::Auth(decoded) = ClientFrame::from_bytes(&bytes).unwrap() else {
        panic!("not an auth frame");
    };
    verify_auth(&decoded.certificate, &decoded.signature, &relay(), &nonce).unwrap();
}

#[test]
fn auth_for_another_challenge_or_relay_is_refused() {
    let mut rng = rng(2);
    let (_, local) = device(&mut rng, 1);
    let nonce = [1u8; AUTH_NONCE_LEN];
    let proof = AuthProof::sign(
        local.keys.signing(),
        local.cert.certificate(),
        &relay(),
        &nonce,
    );
    let mut other_nonce = nonce;
    other_nonce[31] ^= 1;
    assert_eq!(
        proof.verify(&relay(), &other_nonce),
        Err(AuthError::BadSignature)
    );
    let other_relay = RelayId::new("wss://evil.example/v1").unwrap();
    assert_eq!(
        proof.verify(&other_relay, &nonce),
        Err(AuthError::BadSignature)
    );
    // A relay id that is a prefix of the real one is a different relay: the length prefix
    // keeps `relay_id || nonce` unambiguous.
    let prefix = RelayId::new("wss://relay.example/v").unwrap();
    assert_eq!(proof.verify(&prefix, &nonce), Err(AuthError::BadSignature));
}

#[test]
fn auth_signed_by_another_device_key_is_refused() {
    let mut rng = rng(3);
    let (_, local) = device(&mut rng, 1);
    let stranger = Ed25519Secret::generate(&mut rng);
    let nonce = [2u8; AUTH_NONCE_LEN];
    let proof = AuthProof::sign(&stranger, local.cert.certificate(), &relay(), &nonce);
    assert_eq!(proof.verify(&relay(), &nonce), Err(AuthError::BadSignature));
    // Even the identity key itself cannot stand in for the device key.
    let (identity, _) = device(&mut rng, 1);
    let cert = identity.certify(&local.keys, 5);
    let as_identity = AuthProof {
        certificate: cert.clone(),
        signature: Ed25519Secret::from_seed(&identity.to_seed()).sign(&auth_signed_bytes(
            &cert,
            &relay(),
            &nonce,
        )),
    };
    assert_eq!(
        as_identity.verify(&relay(), &nonce),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn auth_with_a_certificate_from_another_identity_is_refused() {
    let mut rng = rng(4);
    let (_, local) = device(&mut rng, 1);
    let nonce = [3u8; AUTH_NONCE_LEN];
    let proof = AuthProof::sign(
        local.keys.signing(),
        local.cert.certificate(),
        &relay(),
        &nonce,
    );

    // Another identity validly certifies the same device keys: the certificate verifies, but
    // the signature names the first identity, so it cannot be moved onto this certificate.
    let thief = IdentityKeyPair::generate(&mut rng);
    let stolen = AuthProof {
        certificate: thief.certify(&local.keys, 1_700_000_000),
        signature: proof.signature,
    };
    stolen.certificate.verify().unwrap();
    assert_eq!(
        stolen.verify(&relay(), &nonce),
        Err(AuthError::BadSignature)
    );

    // A certificate naming the first identity but signed by another does not verify at all.
    let mut bytes = local.cert.certificate().to_bytes();
    let forged_sig = thief.certify(&local.keys, 1_700_000_000).to_bytes();
    let at = bytes.len() - 64;
    bytes[at..].copy_from_slice(&forged_sig[at..]);
    let forged = AuthProof {
        certificate: DeviceCertificate::from_bytes(&bytes).unwrap(),
        signature: proof.signature,
    };
    assert!(matches!(
        forged.verify(&relay(), &nonce),
        Err(AuthError::Certificate(_))
    ));
}

#[test]
fn relay_id_length_is_bounded() {
    assert!(RelayId::new(Vec::new()).is_err());
    assert!(RelayId::new(vec![b'a'; MAX_RELAY_ID_LEN]).is_ok());
    assert_eq!(
        RelayId::new(vec![b'a'; MAX_RELAY_ID_LEN + 1]),
        Err(FrameError::OutOfRange {
            what: "relay id length",
            len: MAX_RELAY_ID_LEN + 1,
            min: 1,
            max: MAX_RELAY_ID_LEN
        })
    );
    let long = ServerFrame::Challenge {
        relay_id: RelayId::new(vec![b'a'; MAX_RELAY_ID_LEN]).unwrap(),
        nonce: [0; AUTH_NONCE_LEN],
        server_time: 0,
    };
    let mut bytes = server_round_trip(&long);
    // Claim one more byte of relay id than allowed.
    bytes[2..4].copy_from_slice(&(MAX_RELAY_ID_LEN as u16 + 1).to_be_bytes());
    bytes.insert(4, b'a');
    assert!(matches!(
        ServerFrame::from_bytes(&bytes),
        Err(DecodeError::TooLong {
            what: "relay id",
            ..
        })
    ));
    // An empty relay id is refused too.
    let empty = [1, 0x80, 0, 0]
        .iter()
        .chain(&[0u8; 40])
        .copied()
        .collect::<Vec<_>>();
    assert_eq!(
        ServerFrame::from_bytes(&empty),
        Err(DecodeError::Invalid("empty relay id"))
    );
}

// ---- Handles --------------------------------------------------------------------------------

#[test]
fn handle_syntax() {
    for good in [
        "abc",
        "alice",
        "a.b_c.9",
        "z23456789012345678901234567890ab",
        "a__",
    ] {
        assert_eq!(Handle::parse(good).unwrap().as_str(), good);
        assert_eq!(good.parse::<Handle>().unwrap().to_string(), good);
    }
    for bad in [
        "",
        "ab",
        "Alice",
        "alicE",
        "1abc",
        "_abc",
        ".abc",
        "al ice",
        "al-ice",
        "alice!",
        "ålice",
        "aliçe",
        "a23456789012345678901234567890abc",
        "abc\0",
    ] {
        assert!(Handle::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn invalid_handles_are_refused_on_decode() {
    let good = ClientFrame::LookupHandle {
        request_id: rid(1),
        handle: handle("alice"),
    };
    let bytes = client_round_trip(&good);
    // version, type, request id (4), then str16.
    for bad in [&b"Alice"[..], b"1lice", b"al-ce", b"al", b"\xff\xfelic"] {
        let mut frame = bytes[..6].to_vec();
        frame.extend_from_slice(&(bad.len() as u16).to_be_bytes());
        frame.extend_from_slice(bad);
        assert_eq!(
            ClientFrame::from_bytes(&frame),
            Err(DecodeError::Invalid("handle")),
            "{bad:?}"
        );
    }
    let mut long = bytes[..6].to_vec();
    long.extend_from_slice(&33u16.to_be_bytes());
    long.extend_from_slice(&[b'a'; 33]);
    assert!(matches!(
        ClientFrame::from_bytes(&long),
        Err(DecodeError::TooLong { what: "handle", .. })
    ));
}

#[test]
fn handle_claims_sign_and_verify() {
    let mut rng = rng(5);
    let (identity, _) = device(&mut rng, 1);
    let claim = HandleClaim::sign(&identity, handle("alice"), 1_700_000_123);
    claim.verify().unwrap();
    assert_eq!(claim.identity, identity.public_key());
    let frame = ClientFrame::ClaimHandle {
        request_id: rid(3),
        claim: claim.clone(),
    };
    client_round_trip(&frame);
    let record = ServerFrame::HandleRecord {
        request_id: rid(4),
        claim: Some(claim.clone()),
    };
    let bytes = server_round_trip(&record);
    let ServerFrame::HandleRecord {
        claim: Some(decoded),
        ..
    } = ServerFrame::from_bytes(&bytes).unwrap()
    else {
        panic!("not a handle record");
    };
    decoded.verify().unwrap();

    let mut tampered = claim.clone();
    tampered.handle = handle("alicf");
    assert_eq!(tampered.verify(), Err(HandleError::BadSignature));
    let mut tampered = claim.clone();
    tampered.issued_at += 1;
    assert_eq!(tampered.verify(), Err(HandleError::BadSignature));
    let mut tampered = claim.clone();
    tampered.identity = IdentityKeyPair::generate(&mut rng).public_key();
    assert_eq!(tampered.verify(), Err(HandleError::BadSignature));
    let mut tampered = claim.clone();
    tampered.signature.0[0] ^= 1;
    assert_eq!(tampered.verify(), Err(HandleError::BadSignature));
}

#[test]
fn claims_and_releases_are_not_interchangeable() {
    let mut rng = rng(6);
    let (identity, _) = device(&mut rng, 1);
    let claim = HandleClaim::sign(&identity, handle("bob"), 10);
    let release = HandleRelease::sign(&identity, handle("bob"), 10);
    release.verify().unwrap();
    assert_ne!(claim.signature, release.signature);
    let as_release = HandleRelease::from_parts(
        claim.handle.clone(),
        claim.identity,
        claim.issued_at,
        claim.signature,
    );
    assert_eq!(as_release.verify(), Err(HandleError::BadSignature));
    let as_claim = HandleClaim::from_parts(
        release.handle.clone(),
        release.identity,
        release.issued_at,
        release.signature,
    );
    assert_eq!(as_claim.verify(), Err(HandleError::BadSignature));
    client_round_trip(&ClientFrame::ReleaseHandle {
        request_id: rid(9),
        release,
    });
}

// ---- Framing --------------------------------------------------------------------------------

#[test]
fn ping_and_pong_are_the_same_bytes_in_both_directions() {
    for nonce in [0, 1, u64::MAX] {
        assert_eq!(
            ClientFrame::Ping { nonce }.to_bytes(),
            ServerFrame::Ping { nonce }.to_bytes()
        );
        assert_eq!(
            ClientFrame::Pong { nonce }.to_bytes(),
            ServerFrame::Pong { nonce }.to_bytes()
        );
    }
    assert_eq!(
        ClientFrame::Ping { nonce: 0x0102 }.to_bytes(),
        [1, 1, 0, 0, 0, 0, 0, 0, 1, 2]
    );
}

#[test]
fn frames_of_the_other_direction_are_unknown_types() {
    let server = ServerFrame::Done { request_id: rid(1) }.to_bytes();
    assert_eq!(
        ClientFrame::from_bytes(&server),
        Err(DecodeError::UnknownTag {
            what: "client frame type",
            tag: 0x88
        })
    );
    let client = ClientFrame::ListDevices {
        request_id: rid(1),
        identity: IdentityKeyPair::generate(&mut rng(7)).public_key(),
    }
    .to_bytes();
    assert_eq!(
        ServerFrame::from_bytes(&client),
        Err(DecodeError::UnknownTag {
            what: "server frame type",
            tag: 0x13
        })
    );
    for tag in [0x00, 0x03, 0x0f, 0x22, 0x7f, 0x8e, 0xff] {
        assert!(matches!(
            ClientFrame::from_bytes(&[1, tag, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(DecodeError::UnknownTag { .. })
        ));
        assert!(matches!(
            ServerFrame::from_bytes(&[1, tag, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(DecodeError::UnknownTag { .. })
        ));
    }
}

#[test]
fn version_truncation_and_trailing_bytes() {
    let ping = ClientFrame::Ping { nonce: 5 }.to_bytes();
    let mut v2 = ping.clone();
    v2[0] = 2;
    let err = ClientFrame::from_bytes(&v2).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedVersion {
            what: "frame",
            version: 2
        }
    );
    assert_eq!(
        ErrorCode::for_decode_error(&err),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        ClientFrame::from_bytes(&ping[..7]),
        Err(DecodeError::Truncated { needed: 3 })
    );
    assert_eq!(
        ClientFrame::from_bytes(&[]),
        Err(DecodeError::Truncated { needed: 1 })
    );
    let mut long = ping.clone();
    long.push(0);
    assert_eq!(
        ClientFrame::from_bytes(&long),
        Err(DecodeError::TrailingBytes(1))
    );
    assert_eq!(
        ErrorCode::for_decode_error(&DecodeError::TrailingBytes(1)),
        ErrorCode::BadFrame
    );
    // A nested structure's version is not the frame's version.
    assert_eq!(
        ErrorCode::for_decode_error(&DecodeError::UnsupportedVersion {
            what: "device certificate",
            version: 9
        }),
        ErrorCode::BadFrame
    );
}

#[test]
fn oversized_input_is_refused_unread() {
    let huge = vec![0u8; MAX_FRAME_LEN + 1];
    let err = ServerFrame::from_bytes(&huge).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLong {
            what: "frame",
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        }
    );
    assert_eq!(ErrorCode::for_decode_error(&err), ErrorCode::FrameTooLarge);
    assert!(matches!(
        ClientFrame::from_bytes(&huge),
        Err(DecodeError::TooLong { what: "frame", .. })
    ));
}

#[test]
fn request_id_zero_is_refused_except_in_errors() {
    assert_eq!(RequestId::new(0), None);
    let done = ServerFrame::Done { request_id: rid(1) }.to_bytes();
    let mut zero = done.clone();
    zero[5] = 0;
    assert_eq!(
        ServerFrame::from_bytes(&zero),
        Err(DecodeError::Invalid("request id 0"))
    );
    let fetch = ClientFrame::LookupHandle {
        request_id: rid(1),
        handle: handle("abc"),
    }
    .to_bytes();
    let mut zero = fetch.clone();
    zero[5] = 0;
    assert_eq!(
        ClientFrame::from_bytes(&zero),
        Err(DecodeError::Invalid("request id 0"))
    );
    let error = ServerFrame::error(None, ErrorCode::Timeout, "idle");
    let bytes = server_round_trip(&error);
    assert_eq!(&bytes[2..6], &[0, 0, 0, 0]);
    assert_eq!(error.request_id(), None);
}

#[test]
fn request_ids_are_reported() {
    let mut rng = rng(8);
    let (identity, local) = device(&mut rng, 2);
    assert_eq!(ClientFrame::Ping { nonce: 1 }.request_id(), None);
    assert_eq!(
        ClientFrame::ListDevices {
            request_id: rid(77),
            identity: identity.public_key()
        }
        .request_id(),
        Some(rid(77))
    );
    assert_eq!(
        ServerFrame::error(Some(rid(5)), ErrorCode::NotFound, "no such device").request_id(),
        Some(rid(5))
    );
    assert_eq!(
        ServerFrame::Devices {
            request_id: rid(6),
            devices: vec![local.cert.certificate().clone()]
        }
        .request_id(),
        Some(rid(6))
    );
}

// ---- Limits ---------------------------------------------------------------------------------

fn envelope(identity: IdentityKey, len: usize) -> OutgoingEnvelope {
    OutgoingEnvelope {
        recipient_identity: identity,
        recipient_device: DeviceId::new(1).unwrap(),
        payload: vec![0xab; len],
    }
}

#[test]
fn the_largest_frames_fit_and_one_more_is_refused() {
    let mut rng = rng(9);
    let (identity, local) = device(&mut rng, 3);
    let id = identity.public_key();

    // Send: the most envelopes, the most payload.
    let per = MAX_SEND_PAYLOAD_TOTAL / MAX_ENVELOPES_PER_SEND;
    let full = ClientFrame::Send {
        request_id: rid(1),
        envelopes: (0..MAX_ENVELOPES_PER_SEND)
            .map(|_| envelope(id, per))
            .collect(),
    };
    let bytes = client_round_trip(&full);
    assert_eq!(bytes.len(), 1_051_144, "SPEC.md states this size");

    // One envelope more.
    let ClientFrame::Send { envelopes, .. } = &full else {
        unreachable!()
    };
    let mut more = envelopes.clone();
    more.push(envelope(id, 1));
    more[0].payload.pop();
    let over = ClientFrame::Send {
        request_id: rid(1),
        envelopes: more,
    };
    assert!(over.check_limits().is_err());
    assert!(matches!(
        ClientFrame::from_bytes(&over.to_bytes()),
        Err(DecodeError::TooLong {
            what: "envelope list",
            ..
        })
    ));

    // One payload byte more in total.
    let mut heavier = envelopes.clone();
    heavier[63].payload.push(0);
    let over = ClientFrame::Send {
        request_id: rid(1),
        envelopes: heavier,
    };
    assert!(over.check_limits().is_err());
    assert!(matches!(
        ClientFrame::from_bytes(&over.to_bytes()),
        Err(DecodeError::TooLong {
            what: "send payload total",
            ..
        })
    ));

    // The biggest single payload, and one byte more.
    let single = ClientFrame::Send {
        request_id: rid(1),
        envelopes: vec![envelope(id, MAX_PAYLOAD_LEN)],
    };
    client_round_trip(&single);
    let over = ClientFrame::Send {
        request_id: rid(1),
        envelopes: vec![envelope(id, MAX_PAYLOAD_LEN + 1)],
    };
    assert!(over.check_limits().is_err());
    assert!(matches!(
        ClientFrame::from_bytes(&over.to_bytes()),
        Err(DecodeError::TooLong {
            what: "payload",
            ..
        })
    ));
    let deliver = ServerFrame::Deliver {
        envelope_id: EnvelopeId::from_bytes([1; 16]),
        received_at: 1,
        payload: vec![7; MAX_PAYLOAD_LEN],
    };
    server_round_trip(&deliver);

    // Publish: the most prekeys of each kind.
    let signing = local.keys.signing();
    let (_, spk) = SignedPrekeySecret::generate(1, 2, signing, &mut rng);
    let (_, kem) = KemPrekeySecret::generate(1, false, signing, &mut rng);
    let (_, otk) = OneTimePrekeySecret::generate(1, &mut rng);
    let publish = |kems: usize, otks: usize| ClientFrame::PublishPrekeys {
        request_id: rid(2),
        signed_prekey: Some(spk.clone()),
        kem_prekeys: vec![kem.clone(); kems],
        one_time_prekeys: vec![otk.clone(); otks],
    };
    let full = publish(
        MAX_KEM_PREKEYS_PER_PUBLISH,
        MAX_ONE_TIME_PREKEYS_PER_PUBLISH,
    );
    assert_eq!(client_round_trip(&full).len(), wire_len::MAX_PUBLISH);
    for over in [
        publish(MAX_KEM_PREKEYS_PER_PUBLISH + 1, 0),
        publish(0, MAX_ONE_TIME_PREKEYS_PER_PUBLISH + 1),
    ] {
        assert!(over.check_limits().is_err());
        assert!(matches!(
            ClientFrame::from_bytes(&over.to_bytes()),
            Err(DecodeError::TooLong { .. })
        ));
    }

    // Ack and SendAck.
    let ack = |n: usize| ClientFrame::Ack {
        envelope_ids: vec![EnvelopeId::from_bytes([3; 16]); n],
    };
    assert_eq!(
        client_round_trip(&ack(MAX_ACK_IDS)).len(),
        wire_len::MAX_ACK
    );
    assert!(ack(MAX_ACK_IDS + 1).check_limits().is_err());
    assert!(ClientFrame::from_bytes(&ack(MAX_ACK_IDS + 1).to_bytes()).is_err());
    let send_ack = |n: usize| ServerFrame::SendAck {
        request_id: rid(3),
        envelope_ids: vec![EnvelopeId::from_bytes([4; 16]); n],
    };
    server_round_trip(&send_ack(MAX_ENVELOPES_PER_SEND));
    assert!(send_ack(MAX_ENVELOPES_PER_SEND + 1).check_limits().is_err());
    assert!(ServerFrame::from_bytes(&send_ack(MAX_ENVELOPES_PER_SEND + 1).to_bytes()).is_err());

    // Devices.
    let devices = |n: usize| ServerFrame::Devices {
        request_id: rid(4),
        devices: vec![local.cert.certificate().clone(); n],
    };
    assert_eq!(
        server_round_trip(&devices(MAX_DEVICES_PER_LIST)).len(),
        wire_len::MAX_DEVICES
    );
    assert!(devices(MAX_DEVICES_PER_LIST + 1).check_limits().is_err());
    assert!(ServerFrame::from_bytes(&devices(MAX_DEVICES_PER_LIST + 1).to_bytes()).is_err());
    server_round_trip(&devices(0));
}

#[test]
fn empty_lists_and_payloads_are_refused_where_meaningless() {
    let id = IdentityKeyPair::generate(&mut rng(10)).public_key();
    let empty_send = ClientFrame::Send {
        request_id: rid(1),
        envelopes: Vec::new(),
    };
    assert!(empty_send.check_limits().is_err());
    assert_eq!(
        ClientFrame::from_bytes(&empty_send.to_bytes()),
        Err(DecodeError::Invalid("envelope list"))
    );
    let empty_payload = ClientFrame::Send {
        request_id: rid(1),
        envelopes: vec![envelope(id, 0)],
    };
    assert!(empty_payload.check_limits().is_err());
    assert_eq!(
        ClientFrame::from_bytes(&empty_payload.to_bytes()),
        Err(DecodeError::Invalid("empty payload"))
    );
    let empty_ack = ClientFrame::Ack {
        envelope_ids: Vec::new(),
    };
    assert!(empty_ack.check_limits().is_err());
    assert_eq!(
        ClientFrame::from_bytes(&empty_ack.to_bytes()),
        Err(DecodeError::Invalid("ack id list"))
    );
    let empty_deliver = ServerFrame::Deliver {
        envelope_id: EnvelopeId::from_bytes([0; 16]),
        received_at: 0,
        payload: Vec::new(),
    };
    assert!(empty_deliver.check_limits().is_err());
    assert_eq!(
        ServerFrame::from_bytes(&empty_deliver.to_bytes()),
        Err(DecodeError::Invalid("empty payload"))
    );
}

#[test]
fn lying_counts_fail_as_truncated_before_decoding_items() {
    // An Ack claiming 1024 ids with one behind it.
    let mut bytes = vec![1, 0x15, 0x04, 0x00];
    bytes.extend_from_slice(&[5; 16]);
    assert_eq!(
        ClientFrame::from_bytes(&bytes),
        Err(DecodeError::Truncated { needed: 1023 * 16 })
    );
    // A publish claiming 100 KEM prekeys with 10 bytes behind it.
    let mut bytes = vec![1, 0x11, 0, 0, 0, 1, 0, 0, 100];
    bytes.extend_from_slice(&[0; 10]);
    assert_eq!(
        ClientFrame::from_bytes(&bytes),
        Err(DecodeError::Truncated {
            needed: 100 * wire_len::KEM_PREKEY - 10
        })
    );
    // A payload length of 4 GiB - 1 is over the limit before it is anything else.
    let mut bytes = vec![1, 0x86];
    bytes.extend_from_slice(&[0; 24]);
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        ServerFrame::from_bytes(&bytes),
        Err(DecodeError::TooLong {
            what: "payload",
            ..
        })
    ));
}

#[test]
fn option_and_flag_bytes_are_strict() {
    let record = ServerFrame::HandleRecord {
        request_id: rid(1),
        claim: None,
    };
    let mut bytes = server_round_trip(&record);
    assert_eq!(bytes, [1, 0x87, 0, 0, 0, 1, 0]);
    bytes[6] = 2;
    assert_eq!(
        ServerFrame::from_bytes(&bytes),
        Err(DecodeError::Invalid("handle claim presence"))
    );
}

// ---- Errors ---------------------------------------------------------------------------------

#[test]
fn error_codes_round_trip_and_unknown_values_survive() {
    for value in 0..=u16::MAX {
        assert_eq!(ErrorCode::from_u16(value).to_u16(), value);
    }
    for (i, code) in ErrorCode::ALL.iter().enumerate() {
        assert_eq!(usize::from(code.to_u16()), i + 1);
        assert_ne!(code.name(), "unknown");
    }
    let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ErrorCode::ALL.len());
    assert_eq!(ErrorCode::from_u16(0), ErrorCode::Unknown(0));
    assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
    let frame = ServerFrame::error(Some(rid(2)), ErrorCode::Unknown(999), "from the future");
    server_round_trip(&frame);
    assert!(ErrorCode::AuthFailed.is_fatal());
    assert!(!ErrorCode::RateLimited.is_fatal());
    assert_eq!(ErrorCode::MailboxFull.to_string(), "mailbox_full (7)");
}

#[test]
fn error_messages_are_cleaned_and_cut_on_encode() {
    let frame = ServerFrame::error(None, ErrorCode::Internal, "line one\nline two\x1b[31m");
    let decoded = ServerFrame::from_bytes(&frame.to_bytes()).unwrap();
    let ServerFrame::Error { message, .. } = decoded else {
        panic!("not an error frame");
    };
    assert_eq!(message, "line one line two [31m");

    // 100 three-byte characters: cut to 85 whole characters (255 bytes).
    let long = "€".repeat(100);
    let frame = ServerFrame::error(None, ErrorCode::Internal, long);
    let ServerFrame::Error { message, .. } = ServerFrame::from_bytes(&frame.to_bytes()).unwrap()
    else {
        panic!("not an error frame");
    };
    assert_eq!(message, "€".repeat(85));

    let exact = "x".repeat(MAX_ERROR_MESSAGE_LEN);
    server_round_trip(&ServerFrame::error(None, ErrorCode::Internal, exact));
}

#[test]
fn error_messages_with_control_characters_are_refused_on_decode() {
    let mut bytes = vec![1, 0x89, 0, 0, 0, 0, 0, 13, 0, 3];
    bytes.extend_from_slice(b"a\x07b");
    assert_eq!(
        ServerFrame::from_bytes(&bytes),
        Err(DecodeError::Invalid("error message"))
    );
    let mut bytes = vec![1, 0x89, 0, 0, 0, 0, 0, 13, 0, 2];
    bytes.extend_from_slice(b"\xc3\x28");
    assert_eq!(
        ServerFrame::from_bytes(&bytes),
        Err(DecodeError::Invalid("error message"))
    );
}

#[test]
fn every_type_byte_is_distinct_and_named() {
    let mut rng = rng(11);
    let (identity, local) = device(&mut rng, 1);
    let id = identity.public_key();
    let claim = HandleClaim::sign(&identity, handle("abc"), 1);
    let release = HandleRelease::sign(&identity, handle("abc"), 2);
    let clients = [
        ClientFrame::Ping { nonce: 1 },
        ClientFrame::Pong { nonce: 1 },
        ClientFrame::Auth(AuthProof {
            certificate: local.cert.certificate().clone(),
            signature: Signature([0; 64]),
        }),
        ClientFrame::PublishPrekeys {
            request_id: rid(1),
            signed_prekey: None,
            kem_prekeys: Vec::new(),
            one_time_prekeys: Vec::new(),
        },
        ClientFrame::FetchBundle {
            request_id: rid(1),
            identity: id,
            device_id: DeviceId::new(1).unwrap(),
        },
        ClientFrame::ListDevices {
            request_id: rid(1),
            identity: id,
        },
        ClientFrame::Send {
            request_id: rid(1),
            envelopes: vec![envelope(id, 1)],
        },
        ClientFrame::Ack {
            envelope_ids: vec![EnvelopeId::from_bytes([0; 16])],
        },
        ClientFrame::ClaimHandle {
            request_id: rid(1),
            claim: claim.clone(),
        },
        ClientFrame::LookupHandle {
            request_id: rid(1),
            handle: handle("abc"),
        },
        ClientFrame::ReleaseHandle {
            request_id: rid(1),
            release,
        },
    ];
    let types: Vec<u8> = clients.iter().map(ClientFrame::type_byte).collect();
    assert_eq!(
        types,
        [
            0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18
        ]
    );
    let mut names: Vec<_> = clients.iter().map(ClientFrame::name).collect();
    names.dedup();
    assert_eq!(names.len(), clients.len());
    for frame in &clients {
        assert_eq!(client_round_trip(frame)[1], frame.type_byte());
    }
}

// ---- Groups and KeyPackages (SPEC.md 10.10) -------------------------------------------------

fn post_secret(seed: u8) -> Ed25519Secret {
    Ed25519Secret::from_seed(&[seed; 32])
}

fn member(rng: &mut ChaCha20Rng, device: u32) -> DeviceAddress {
    DeviceAddress {
        identity: IdentityKeyPair::generate(rng).public_key(),
        device_id: DeviceId::new(device).unwrap(),
    }
}

fn subscription(device: DeviceAddress, token: Option<[u8; 16]>) -> Subscription {
    Subscription {
        device,
        token: token.map(DeliveryToken),
    }
}

fn post(body: PostBody, len: usize) -> GroupPost {
    GroupPost::sign(&post_secret(1), GroupId([4; 32]), 7, body, vec![0x5a; len])
}

fn post_frame(post: GroupPost) -> ClientFrame {
    ClientFrame::PostGroup {
        request_id: rid(9),
        post,
    }
}

/// The offset of a post's kind byte in a `PostGroup` frame: header, request id, group id,
/// epoch.
const KIND_AT: usize = 2 + 4 + 32 + 8;

#[test]
fn group_frames_round_trip() {
    let mut rng = rng(20);
    let a = member(&mut rng, 1);
    let b = member(&mut rng, 2);
    let kp = KeyPackage::new(vec![1, 2, 3]).unwrap();
    let clients = [
        ClientFrame::PublishKeyPackages {
            request_id: rid(1),
            last_resort: Some(kp.clone()),
            key_packages: vec![kp.clone(), KeyPackage::new(vec![9; 100]).unwrap()],
        },
        ClientFrame::FetchKeyPackage {
            request_id: rid(2),
            identity: a.identity,
            device_id: a.device_id,
        },
        ClientFrame::OpenGroup {
            request_id: rid(3),
            group_id: GroupId([1; 32]),
            epoch: 0,
            post_key: PostKey::of(&post_secret(1)),
            subscribe: vec![subscription(a, None), subscription(b, Some([3; 16]))],
        },
        post_frame(post(PostBody::Application, 10)),
        post_frame(post(
            PostBody::Commit {
                next_post_key: PostKey::of(&post_secret(2)),
                subscribe: vec![subscription(b, None)],
                unsubscribe: vec![a],
            },
            10,
        )),
        post_frame(post(
            PostBody::Direct {
                recipients: vec![b],
            },
            10,
        )),
        ClientFrame::LeaveGroup {
            request_id: rid(4),
            group_id: GroupId([1; 32]),
        },
    ];
    for frame in &clients {
        let bytes = client_round_trip(frame);
        assert_eq!(ClientFrame::peek_request_id(&bytes), frame.request_id());
    }
    // SPEC.md sizes.
    assert_eq!(clients[1].to_bytes().len(), 42);
    assert_eq!(clients[6].to_bytes().len(), 38);
    let empty = ClientFrame::PublishKeyPackages {
        request_id: rid(5),
        last_resort: None,
        key_packages: Vec::new(),
    };
    assert_eq!(client_round_trip(&empty), [1, 0x1d, 0, 0, 0, 5, 0, 0, 0]);
    let servers = [
        ServerFrame::KeyPackageCount {
            request_id: rid(1),
            count: 17,
            has_last_resort: true,
        },
        ServerFrame::KeyPackage {
            request_id: rid(2),
            key_package: kp,
            last_resort: false,
        },
        ServerFrame::GroupPosted {
            request_id: rid(3),
            seq: 5,
            epoch: 2,
        },
    ];
    for frame in &servers {
        server_round_trip(frame);
    }
    assert_eq!(servers[0].to_bytes().len(), 11);
    assert_eq!(servers[2].to_bytes().len(), 22);
}

#[test]
fn post_signatures_cover_every_field_but_the_request_id() {
    let mut rng = rng(21);
    let b = member(&mut rng, 2);
    let commit = post(
        PostBody::Commit {
            next_post_key: PostKey::of(&post_secret(2)),
            subscribe: vec![subscription(b, None)],
            unsubscribe: Vec::new(),
        },
        12,
    );
    let key = PostKey::of(&post_secret(1));
    commit.verify(&key).unwrap();
    assert!(commit.verify(&PostKey::of(&post_secret(2))).is_err());
    // The signed bytes are the context and the frame body from the group id through the
    // payload, exactly as encoded.
    let frame = post_frame(commit.clone()).to_bytes();
    let signed = commit.signed_bytes();
    assert_eq!(&signed[..20], b"chatd/v1/group-post\0");
    assert_eq!(&signed[20..], &frame[6..frame.len() - 64]);
    assert_eq!(post_signed_bytes(&frame[6..frame.len() - 64]), signed);
    // Another request id: the same signature still verifies.
    let ClientFrame::PostGroup { post: again, .. } = ClientFrame::from_bytes(
        &ClientFrame::PostGroup {
            request_id: rid(1234),
            post: commit.clone(),
        }
        .to_bytes(),
    )
    .unwrap() else {
        panic!("not a post");
    };
    again.verify(&key).unwrap();
    // Any signed byte changed: refused.
    for at in 6..frame.len() - 64 {
        let mut bytes = frame.clone();
        bytes[at] ^= 1;
        if let Ok(ClientFrame::PostGroup { post, .. }) = ClientFrame::from_bytes(&bytes) {
            assert!(post.verify(&key).is_err(), "byte {at} is not signed");
        }
    }
}

#[test]
fn post_fields_must_fit_their_kind() {
    let mut rng = rng(22);
    let a = member(&mut rng, 1);
    let next = PostKey::of(&post_secret(2));
    // Encode each wrong combination by hand: the typed body cannot express them.
    let raw = |kind: u8,
               next_key: Option<&PostKey>,
               subscribe: &[Subscription],
               unsubscribe: &[DeviceAddress],
               recipients: &[DeviceAddress]| {
        let mut w = Writer::new();
        w.u8(1);
        w.u8(0x20);
        w.u32(9);
        w.raw(&[4; 32]);
        w.u64(7);
        w.u8(kind);
        w.option(next_key);
        w.list(subscribe);
        w.list(unsubscribe);
        w.list(recipients);
        w.bytes32(&[1, 2, 3]);
        w.raw(&[0; 64]);
        w.into_bytes()
    };
    let sub = [subscription(a, None)];
    let addr = [a];
    let bad = [
        raw(0, Some(&next), &[], &[], &[]),
        raw(0, None, &sub, &[], &[]),
        raw(0, None, &[], &addr, &[]),
        raw(0, None, &[], &[], &addr),
        raw(1, None, &[], &[], &[]),
        raw(1, Some(&next), &[], &[], &addr),
        raw(2, None, &[], &[], &[]),
        raw(2, Some(&next), &[], &[], &addr),
        raw(2, None, &sub, &[], &addr),
        raw(2, None, &[], &addr, &addr),
    ];
    for (i, bytes) in bad.iter().enumerate() {
        assert_eq!(
            ClientFrame::from_bytes(bytes),
            Err(DecodeError::Invalid("group post fields for its kind")),
            "case {i}"
        );
    }
    // The right combinations decode (the signature is not the decoder's business).
    for bytes in [
        raw(0, None, &[], &[], &[]),
        raw(1, Some(&next), &[], &[], &[]),
        raw(1, Some(&next), &sub, &addr, &[]),
        raw(2, None, &[], &[], &addr),
    ] {
        let frame = ClientFrame::from_bytes(&bytes).unwrap();
        assert_eq!(frame.to_bytes(), bytes);
    }
    // An unknown kind.
    let mut unknown = raw(0, None, &[], &[], &[]);
    unknown[KIND_AT] = 3;
    assert_eq!(
        ClientFrame::from_bytes(&unknown),
        Err(DecodeError::UnknownTag {
            what: "post kind",
            tag: 3
        })
    );
    // A direct post without recipients fails the limits check too.
    let empty_direct = post(
        PostBody::Direct {
            recipients: Vec::new(),
        },
        3,
    );
    assert!(empty_direct.check_limits().is_err());
}

#[test]
fn bad_post_keys_and_identities_are_refused() {
    let good = ClientFrame::OpenGroup {
        request_id: rid(3),
        group_id: GroupId([1; 32]),
        epoch: 0,
        post_key: PostKey::of(&post_secret(1)),
        subscribe: vec![subscription(member(&mut rng(23), 1), None)],
    };
    let bytes = client_round_trip(&good);
    let key_at = 2 + 4 + 32 + 8;
    // The identity point (small order) and a non-canonical encoding.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    for bad_key in [identity_point, [0xff; 32]] {
        let mut bytes = bytes.clone();
        bytes[key_at..key_at + 32].copy_from_slice(&bad_key);
        assert_eq!(
            ClientFrame::from_bytes(&bytes),
            Err(DecodeError::Invalid("post key"))
        );
    }
    // A subscription naming a small-order identity, and device id 0.
    let sub_at = key_at + 32 + 2;
    let mut bytes_bad_identity = bytes.clone();
    bytes_bad_identity[sub_at..sub_at + 32].copy_from_slice(&identity_point);
    assert_eq!(
        ClientFrame::from_bytes(&bytes_bad_identity),
        Err(DecodeError::Invalid("identity key"))
    );
    let mut zero_device = bytes.clone();
    zero_device[sub_at + 32..sub_at + 36].copy_from_slice(&[0; 4]);
    assert_eq!(
        ClientFrame::from_bytes(&zero_device),
        Err(DecodeError::Invalid("device id"))
    );
    // A token presence byte other than 0 or 1.
    let mut presence = bytes.clone();
    presence[sub_at + 36] = 2;
    assert_eq!(
        ClientFrame::from_bytes(&presence),
        Err(DecodeError::Invalid("delivery token presence"))
    );
    // Trailing bytes.
    let mut long = bytes;
    long.push(0);
    assert_eq!(
        ClientFrame::from_bytes(&long),
        Err(DecodeError::TrailingBytes(1))
    );
    // Flags in replies are 0 or 1.
    let mut count = server_round_trip(&ServerFrame::KeyPackageCount {
        request_id: rid(1),
        count: 0,
        has_last_resort: false,
    });
    count[10] = 2;
    assert_eq!(
        ServerFrame::from_bytes(&count),
        Err(DecodeError::Invalid("last-resort flag"))
    );
}

#[test]
fn group_lists_and_lengths_are_bounded() {
    let mut rng = rng(24);
    let a = member(&mut rng, 1);
    // KeyPackages: 1 to 8,192 bytes, at most 100 per publish.
    assert!(KeyPackage::new(Vec::new()).is_err());
    assert!(KeyPackage::new(vec![0; MAX_KEY_PACKAGE_LEN + 1]).is_err());
    let largest = KeyPackage::new(vec![1; MAX_KEY_PACKAGE_LEN]).unwrap();
    let publish = |n: usize| ClientFrame::PublishKeyPackages {
        request_id: rid(1),
        last_resort: Some(largest.clone()),
        key_packages: vec![largest.clone(); n],
    };
    assert_eq!(
        client_round_trip(&publish(MAX_KEY_PACKAGES_PER_PUBLISH)).len(),
        wire_len::MAX_PUBLISH_KEY_PACKAGES
    );
    assert!(
        publish(MAX_KEY_PACKAGES_PER_PUBLISH + 1)
            .check_limits()
            .is_err()
    );
    assert!(matches!(
        ClientFrame::from_bytes(&publish(MAX_KEY_PACKAGES_PER_PUBLISH + 1).to_bytes()),
        Err(DecodeError::TooLong {
            what: "key package list",
            ..
        })
    ));
    let mut long_kp = ServerFrame::KeyPackage {
        request_id: rid(1),
        key_package: largest.clone(),
        last_resort: true,
    }
    .to_bytes();
    long_kp[6..8].copy_from_slice(&(MAX_KEY_PACKAGE_LEN as u16 + 1).to_be_bytes());
    long_kp.insert(8, 0);
    assert!(matches!(
        ServerFrame::from_bytes(&long_kp),
        Err(DecodeError::TooLong {
            what: "key package",
            ..
        })
    ));
    let empty_kp = [1, 0x8c, 0, 0, 0, 1, 0, 0, 0];
    assert_eq!(
        ServerFrame::from_bytes(&empty_kp),
        Err(DecodeError::Invalid("empty key package"))
    );

    // OpenGroup: 1 to 1,000 subscriptions.
    let open = |n: usize| ClientFrame::OpenGroup {
        request_id: rid(2),
        group_id: GroupId([2; 32]),
        epoch: 1,
        post_key: PostKey::of(&post_secret(1)),
        subscribe: vec![subscription(a, Some([1; 16])); n],
    };
    assert_eq!(
        client_round_trip(&open(MAX_GROUP_CHANGES)).len(),
        wire_len::MAX_OPEN_GROUP
    );
    for n in [0, MAX_GROUP_CHANGES + 1] {
        assert!(open(n).check_limits().is_err());
        assert!(ClientFrame::from_bytes(&open(n).to_bytes()).is_err());
    }
    assert_eq!(
        ClientFrame::from_bytes(&open(0).to_bytes()),
        Err(DecodeError::Invalid("subscription list"))
    );

    // PostGroup: lists of at most 1,000, payloads of 1 to 262,094 bytes.
    let commit = |subs: usize, unsubs: usize| {
        post(
            PostBody::Commit {
                next_post_key: PostKey::of(&post_secret(2)),
                subscribe: vec![subscription(a, None); subs],
                unsubscribe: vec![a; unsubs],
            },
            1,
        )
    };
    client_round_trip(&post_frame(commit(MAX_GROUP_CHANGES, MAX_GROUP_CHANGES)));
    for over in [
        commit(MAX_GROUP_CHANGES + 1, 0),
        commit(0, MAX_GROUP_CHANGES + 1),
        post(
            PostBody::Direct {
                recipients: vec![a; MAX_GROUP_CHANGES + 1],
            },
            1,
        ),
    ] {
        assert!(over.check_limits().is_err());
        assert!(matches!(
            ClientFrame::from_bytes(&post_frame(over).to_bytes()),
            Err(DecodeError::TooLong { .. })
        ));
    }
    let full = post(PostBody::Application, MAX_GROUP_POST_LEN);
    client_round_trip(&post_frame(full));
    let over = post(PostBody::Application, MAX_GROUP_POST_LEN + 1);
    assert!(over.check_limits().is_err());
    assert!(matches!(
        ClientFrame::from_bytes(&post_frame(over).to_bytes()),
        Err(DecodeError::TooLong {
            what: "group post",
            ..
        })
    ));
    let empty = post(PostBody::Application, 0);
    assert!(empty.check_limits().is_err());
    assert_eq!(
        ClientFrame::from_bytes(&post_frame(empty).to_bytes()),
        Err(DecodeError::Invalid("empty group post"))
    );
    // A lying subscription count fails as truncated before anything is decoded.
    let mut bytes = vec![1, 0x1f, 0, 0, 0, 1];
    bytes.extend_from_slice(&[0; 40]);
    bytes.extend_from_slice(PostKey::of(&post_secret(1)).as_bytes());
    bytes.extend_from_slice(&1000u16.to_be_bytes());
    assert_eq!(
        ClientFrame::from_bytes(&bytes),
        Err(DecodeError::Truncated {
            needed: 1000 * group::SUBSCRIPTION_MIN_LEN
        })
    );
}

#[test]
fn new_error_codes_have_their_values() {
    assert_eq!(ErrorCode::StaleEpoch.to_u16(), 20);
    assert_eq!(ErrorCode::GroupExists.to_u16(), 21);
    assert_eq!(ErrorCode::GroupFull.to_u16(), 22);
    assert_eq!(ErrorCode::BadSignature.to_u16(), 23);
    for code in [
        ErrorCode::StaleEpoch,
        ErrorCode::GroupExists,
        ErrorCode::GroupFull,
        ErrorCode::BadSignature,
    ] {
        assert!(!code.is_fatal(), "{code}");
    }
    assert_eq!(ErrorCode::from_u16(23).name(), "bad_signature");
}
