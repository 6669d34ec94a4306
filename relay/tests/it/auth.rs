//! Authentication (SPEC.md section 10.3): every way a proof can be wrong is refused with
//! `auth_failed` and a close, requests other than the anonymous ones before `AuthOk` with
//! `auth_required`, a second `Auth`
//! with `bad_frame`, and a second connection of a device replaces the first.

use chat_relay::metrics::Rejection;
use protocol::codec::{Decode, Encode};
use protocol::frames::{AuthProof, ClientFrame, ErrorCode, RelayId, ServerFrame};
use protocol::identity::{DeviceCertificate, IdentityKeyPair};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::common::*;

/// Byte offsets in an encoded `DeviceCertificate` (SPEC.md section 2.2): version, identity.
const CERT_IDENTITY: std::ops::Range<usize> = 1..33;
/// The last byte of `created_at`, just before the 64-byte signature.
const CERT_CREATED_AT_LAST: usize = 109;

#[tokio::test]
async fn bad_signature_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let mallory = Device::new(2);
    let (mut client, relay_id, nonce) = relay.challenged().await;
    // Alice's certificate, but the challenge signed with another device's key.
    let proof = AuthProof::sign(
        mallory.local.keys.signing(),
        alice.local.cert.certificate(),
        &relay_id,
        &nonce,
    );
    client.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut client, ErrorCode::AuthFailed).await;
    assert_eq!(relay.relay.metrics().rejections(Rejection::AuthFailed), 1);
    // The device itself can still authenticate.
    let mut ok = relay.connect(&alice).await;
    ok.send(&ClientFrame::Ping { nonce: 1 }).await.unwrap();
    expect(&mut ok, |f| matches!(f, ServerFrame::Pong { nonce: 1 })).await;
}

#[tokio::test]
async fn proof_for_another_connections_challenge_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let (mut first, relay_id, first_nonce) = relay.challenged().await;
    let (mut second, _, second_nonce) = relay.challenged().await;
    assert_ne!(
        first_nonce, second_nonce,
        "every connection gets a fresh nonce"
    );
    // A valid proof for the first connection, replayed on the second.
    let proof = AuthProof::sign(
        alice.local.keys.signing(),
        alice.local.cert.certificate(),
        &relay_id,
        &first_nonce,
    );
    second
        .send(&ClientFrame::Auth(proof.clone()))
        .await
        .unwrap();
    assert_refused(&mut second, ErrorCode::AuthFailed).await;
    // On its own connection the same proof is good.
    first.send(&ClientFrame::Auth(proof)).await.unwrap();
    expect(&mut first, |f| matches!(f, ServerFrame::AuthOk { .. })).await;
}

#[tokio::test]
async fn proof_for_another_relay_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let (mut client, relay_id, nonce) = relay.challenged().await;
    assert_eq!(relay_id, relay.relay_id());
    let elsewhere = RelayId::new(b"wss://other-relay.example/v1".to_vec()).unwrap();
    let proof = AuthProof::sign(
        alice.local.keys.signing(),
        alice.local.cert.certificate(),
        &elsewhere,
        &nonce,
    );
    client.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut client, ErrorCode::AuthFailed).await;
}

#[tokio::test]
async fn certificate_signed_by_another_identity_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let mallory = IdentityKeyPair::generate(&mut ChaCha20Rng::from_seed([9; 32]));
    // Mallory certifies Alice's device keys and writes Alice's identity into the certificate:
    // it names Alice, but Alice's identity key never signed it.
    let mut bytes = mallory.certify(&alice.local.keys, 1_700_000_000).to_bytes();
    bytes[CERT_IDENTITY].copy_from_slice(alice.local.cert.identity().as_bytes());
    let forged = DeviceCertificate::from_bytes(&bytes).unwrap();
    assert_eq!(forged.identity(), alice.local.cert.identity());

    let (mut client, relay_id, nonce) = relay.challenged().await;
    let proof = AuthProof::sign(alice.local.keys.signing(), &forged, &relay_id, &nonce);
    client.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut client, ErrorCode::AuthFailed).await;
}

#[tokio::test]
async fn tampered_certificate_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let mut bytes = alice.local.cert.certificate().to_bytes();
    bytes[CERT_CREATED_AT_LAST] ^= 1;
    let tampered = DeviceCertificate::from_bytes(&bytes).unwrap();

    let (mut client, relay_id, nonce) = relay.challenged().await;
    let proof = AuthProof::sign(alice.local.keys.signing(), &tampered, &relay_id, &nonce);
    client.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut client, ErrorCode::AuthFailed).await;
}

#[tokio::test]
async fn request_before_auth_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let (mut client, _, _) = relay.challenged().await;
    // Pings are allowed before authentication.
    client.send(&ClientFrame::Ping { nonce: 3 }).await.unwrap();
    assert_eq!(
        guard(client.recv()).await.unwrap(),
        ServerFrame::Pong { nonce: 3 }
    );
    // `ListDevices` and the other anonymous requests are allowed (SPEC.md 10.3 step 5,
    // `reachability.rs`); `Send` is not.
    client
        .send(&ClientFrame::Send {
            request_id: rid(1),
            envelopes: vec![alice.envelope(b"x")],
        })
        .await
        .unwrap();
    // `auth_required` concerns the connection: request id 0 (SPEC.md section 11).
    assert_refused(&mut client, ErrorCode::AuthRequired).await;
}

#[tokio::test]
async fn second_auth_is_a_bad_frame() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let (mut client, relay_id, nonce) = relay.challenged().await;
    let proof = AuthProof::sign(
        alice.local.keys.signing(),
        alice.local.cert.certificate(),
        &relay_id,
        &nonce,
    );
    client
        .send(&ClientFrame::Auth(proof.clone()))
        .await
        .unwrap();
    assert!(matches!(
        guard(client.recv()).await.unwrap(),
        ServerFrame::AuthOk { .. }
    ));
    client.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut client, ErrorCode::BadFrame).await;
}

#[tokio::test]
async fn second_connection_of_a_device_replaces_the_first() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut first = relay.connect(&alice).await;
    let mut second = relay.connect(&alice).await;
    let frames = until_closed(&mut first).await;
    assert!(frames.is_empty(), "{frames:?}");

    // The second connection is the device's: it gets the device's mail.
    let mut b = relay.connect(&bob).await;
    let ids = send_ok(&mut b, 1, vec![alice.envelope(b"to the new connection")]).await;
    let (id, payload) = deliver(&mut second).await;
    assert_eq!(
        (vec![id], payload.as_slice()),
        (ids, &b"to the new connection"[..])
    );
    second.send(&ClientFrame::Ping { nonce: 2 }).await.unwrap();
    expect(&mut second, |f| matches!(f, ServerFrame::Pong { nonce: 2 })).await;
}
