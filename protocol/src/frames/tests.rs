//! Unit tests for relay frames: authentication, handles, limits and the decoder's refusals.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::crypto::ed25519::{Ed25519Secret, Signature};
use crate::identity::{DeviceKeyPair, IdentityKeyPair, LocalDevice};
use crate::prekeys::{KemPrekeySecret, OneTimePrekeySecret, SignedPrekeySecret};

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
    for tag in [0x00, 0x03, 0x0f, 0x1d, 0x7f, 0x8b, 0xff] {
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
