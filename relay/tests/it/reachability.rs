//! Reachability across relays (SPEC.md 10.3 step 5, 10.9): anonymous connections, delivery
//! tokens and their admission rules, reachability records, and what the relay keeps of an
//! anonymous sender (nothing).

use std::time::Duration;

use chat_relay::metrics::{Metrics, Rejection};
use chat_relay::{Limits, RateLimit};
use protocol::codec::{Decode, Encode};
use protocol::frames::{
    AuthProof, ClientFrame, DepositEnvelope, EnvelopeId, ErrorCode, ServerFrame, TokenPolicy,
};
use protocol::frames::{Handle, HandleClaim};
use protocol::reachability::{DeliveryToken, ReachabilityRecord, RelayEndpoint};

use crate::common::*;

/// A bucket that never refills within a test.
fn bucket(burst: f64) -> RateLimit {
    RateLimit {
        per_second: 1e-9,
        burst,
    }
}

/// A token made of one repeated byte.
fn token(byte: u8) -> DeliveryToken {
    DeliveryToken([byte; 16])
}

/// An envelope for `to`, with `token`.
fn deposit_envelope(to: &Device, token: Option<&DeliveryToken>, payload: &[u8]) -> DepositEnvelope {
    DepositEnvelope {
        recipient_identity: to.local.cert.identity(),
        recipient_device: to.local.cert.device_id(),
        token: token.cloned(),
        payload: payload.to_vec(),
    }
}

fn deposit(request_id: u32, envelopes: Vec<DepositEnvelope>) -> ClientFrame {
    ClientFrame::Deposit {
        request_id: rid(request_id),
        envelopes,
    }
}

/// Deposits and returns the `SendAck`'s ids.
async fn deposit_ok(
    client: &mut chat_relay::client::RelayClient,
    request_id: u32,
    envelopes: Vec<DepositEnvelope>,
) -> Vec<EnvelopeId> {
    let n = envelopes.len();
    match request(client, deposit(request_id, envelopes)).await {
        ServerFrame::SendAck { envelope_ids, .. } => {
            assert_eq!(envelope_ids.len(), n);
            envelope_ids
        }
        other => panic!("expected a SendAck, got {other:?}"),
    }
}

/// Sets the connection's account's tokens; expects `Done`.
async fn set_tokens(
    client: &mut chat_relay::client::RelayClient,
    request_id: u32,
    policy: TokenPolicy,
    add: &[&DeliveryToken],
    revoke: &[&DeliveryToken],
) -> ServerFrame {
    request(
        client,
        ClientFrame::SetDeliveryTokens {
            request_id: rid(request_id),
            policy,
            add: add.iter().map(|t| t.digest()).collect(),
            revoke: revoke.iter().map(|t| t.digest()).collect(),
        },
    )
    .await
}

fn record(device: &Device, sequence: u64, url: &str) -> ReachabilityRecord {
    let endpoint = RelayEndpoint::new(url, None).unwrap();
    ReachabilityRecord::sign(&device.identity, sequence, vec![endpoint]).unwrap()
}

async fn fetch_record(
    client: &mut chat_relay::client::RelayClient,
    request_id: u32,
    of: &Device,
) -> Option<ReachabilityRecord> {
    let reply = request(
        client,
        ClientFrame::FetchReachability {
            request_id: rid(request_id),
            identity: of.local.cert.identity(),
        },
    )
    .await;
    match reply {
        ServerFrame::Reachability { record, .. } => record,
        other => panic!("expected Reachability, got {other:?}"),
    }
}

/// Asserts no `Deliver` reaches `client` by the end of a ping round trip after a short wait.
async fn assert_no_delivery(client: &mut chat_relay::client::RelayClient) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let nonce = rand::random();
    client.send(&ClientFrame::Ping { nonce }).await.unwrap();
    loop {
        match guard(client.recv()).await.unwrap() {
            ServerFrame::Pong { nonce: n } if n == nonce => return,
            ServerFrame::Deliver { payload, .. } => {
                panic!(
                    "unexpected delivery of {:?}",
                    String::from_utf8_lossy(&payload)
                )
            }
            _ => {}
        }
    }
}

// ---- Anonymous connections (SPEC.md 10.3 step 5) ---------------------------------------------

#[tokio::test]
async fn anonymous_requests_are_answered_without_auth() {
    let relay = TestRelay::memory().await;
    let mut bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    let publish = bob.prekeys(1, 2);
    assert!(matches!(
        request(&mut b, publish).await,
        ServerFrame::PrekeyCount { .. }
    ));
    let claim = HandleClaim::sign(&bob.identity, Handle::parse("bob").unwrap(), relay_now());
    assert_eq!(
        request(
            &mut b,
            ClientFrame::ClaimHandle {
                request_id: rid(2),
                claim: claim.clone()
            }
        )
        .await,
        ServerFrame::Done { request_id: rid(2) }
    );

    let (mut anon, _, _) = relay.challenged().await;
    anon.send(&ClientFrame::Ping { nonce: 5 }).await.unwrap();
    assert_eq!(
        guard(anon.recv()).await.unwrap(),
        ServerFrame::Pong { nonce: 5 }
    );
    assert_eq!(fetch_record(&mut anon, 1, &bob).await, None);
    let reply = request(
        &mut anon,
        ClientFrame::LookupHandle {
            request_id: rid(2),
            handle: Handle::parse("bob").unwrap(),
        },
    )
    .await;
    assert_eq!(
        reply,
        ServerFrame::HandleRecord {
            request_id: rid(2),
            claim: Some(claim)
        }
    );
    let reply = request(
        &mut anon,
        ClientFrame::ListDevices {
            request_id: rid(3),
            identity: bob.local.cert.identity(),
        },
    )
    .await;
    assert!(matches!(reply, ServerFrame::Devices { ref devices, .. } if devices.len() == 1));
    let reply = request(
        &mut anon,
        ClientFrame::FetchBundle {
            request_id: rid(4),
            identity: bob.local.cert.identity(),
            device_id: bob.local.cert.device_id(),
        },
    )
    .await;
    assert!(matches!(reply, ServerFrame::Bundle { .. }), "{reply:?}");
    let ids = deposit_ok(&mut anon, 5, vec![deposit_envelope(&bob, None, b"hello")]).await;
    let (id, payload) = deliver(&mut b).await;
    assert_eq!((vec![id], payload.as_slice()), (ids, &b"hello"[..]));
    let metrics = relay.relay.metrics();
    assert_eq!(Metrics::get(&metrics.anonymous), 1);
    assert_eq!(Metrics::get(&metrics.deposits), 1);
    assert_eq!(Metrics::get(&metrics.authenticated), 1);
}

/// The relay's clock now, seconds since the Unix epoch.
fn relay_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn authenticated_only_requests_on_an_anonymous_connection_are_auth_required() {
    let relay = TestRelay::memory().await;
    let bob = Device::new(2);
    let record = record(&bob, 1, "wss://relay.example/v1");
    let forbidden = [
        ClientFrame::Send {
            request_id: rid(9),
            envelopes: vec![bob.envelope(b"x")],
        },
        ClientFrame::Ack {
            envelope_ids: vec![EnvelopeId::from_bytes([1; 16])],
        },
        ClientFrame::PublishPrekeys {
            request_id: rid(9),
            signed_prekey: None,
            kem_prekeys: vec![],
            one_time_prekeys: vec![],
        },
        ClientFrame::ClaimHandle {
            request_id: rid(9),
            claim: HandleClaim::sign(&bob.identity, Handle::parse("bob").unwrap(), 1),
        },
        ClientFrame::SetDeliveryTokens {
            request_id: rid(9),
            policy: TokenPolicy::Open,
            add: vec![],
            revoke: vec![],
        },
        ClientFrame::PublishReachability {
            request_id: rid(9),
            record,
        },
        ClientFrame::PublishKeyPackages {
            request_id: rid(9),
            last_resort: None,
            key_packages: vec![],
        },
        ClientFrame::LeaveGroup {
            request_id: rid(9),
            group_id: protocol::frames::GroupId([1; 32]),
        },
    ];
    for frame in forbidden {
        // As the first frame, and after an anonymous request.
        for after_anonymous in [false, true] {
            let (mut anon, _, _) = relay.challenged().await;
            if after_anonymous {
                assert_eq!(fetch_record(&mut anon, 1, &bob).await, None);
            }
            anon.send(&frame).await.unwrap();
            assert_refused(&mut anon, ErrorCode::AuthRequired).await;
        }
    }
    assert_eq!(
        relay.relay.metrics().rejections(Rejection::AuthRequired),
        16
    );
}

#[tokio::test]
async fn an_anonymous_connection_gets_no_deliver_until_it_authenticates_once() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    // Bob has been here before (his device is known) and has mail waiting.
    drop(relay.connect(&bob).await);
    let ids = send_ok(&mut a, 1, vec![bob.envelope(b"waiting")]).await;

    let (mut anon, relay_id, nonce) = relay.challenged().await;
    assert_eq!(fetch_record(&mut anon, 1, &bob).await, None);
    assert_no_delivery(&mut anon).await;
    // A deposit to bob's own mailbox from the anonymous connection is not delivered to it.
    deposit_ok(&mut anon, 2, vec![deposit_envelope(&bob, None, b"second")]).await;
    assert_no_delivery(&mut anon).await;

    // `Auth` after anonymous requests: the connection becomes bob's, and his mail comes.
    let proof = AuthProof::sign(
        bob.local.keys.signing(),
        bob.local.cert.certificate(),
        &relay_id,
        &nonce,
    );
    anon.send(&ClientFrame::Auth(proof.clone())).await.unwrap();
    expect(&mut anon, |f| matches!(f, ServerFrame::AuthOk { .. })).await;
    let (id, payload) = deliver(&mut anon).await;
    assert_eq!((vec![id], payload.as_slice()), (ids, &b"waiting"[..]));
    let (_, payload) = deliver(&mut anon).await;
    assert_eq!(payload, b"second");
    // Authenticated, it may send what an anonymous connection may not.
    send_ok(&mut anon, 3, vec![alice.envelope(b"reply")]).await;
    // A second `Auth` is still `bad_frame`.
    anon.send(&ClientFrame::Auth(proof)).await.unwrap();
    let frames = until_closed(&mut anon).await;
    assert!(
        frames.iter().any(|f| matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::BadFrame,
                request_id: None,
                ..
            }
        )),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_failed_auth_after_anonymous_requests_closes() {
    let relay = TestRelay::memory().await;
    let bob = Device::new(2);
    let mallory = Device::new(3);
    let (mut anon, relay_id, nonce) = relay.challenged().await;
    assert_eq!(fetch_record(&mut anon, 1, &bob).await, None);
    let proof = AuthProof::sign(
        mallory.local.keys.signing(),
        bob.local.cert.certificate(),
        &relay_id,
        &nonce,
    );
    anon.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut anon, ErrorCode::AuthFailed).await;
}

#[tokio::test]
async fn silence_gets_timeout_but_an_anonymous_request_is_held_to_the_idle_timeout() {
    let relay = TestRelay::with_limits(Limits {
        handshake_timeout_ms: 400,
        idle_timeout_ms: 1_500,
        ping_interval_ms: 100,
        ..Limits::default()
    })
    .await;
    let bob = Device::new(2);
    let (mut silent, _, _) = relay.challenged().await;
    let (mut anon, _, _) = relay.challenged().await;
    assert_eq!(fetch_record(&mut anon, 1, &bob).await, None);
    assert_refused(&mut silent, ErrorCode::Timeout).await;
    // Past the handshake deadline the anonymous connection is still served...
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fetch_record(&mut anon, 2, &bob).await, None);
    // ...until it says nothing for the idle timeout (not reading, so its WebSocket layer
    // does not answer the relay's pings either).
    let started = std::time::Instant::now();
    let metrics = relay.relay.metrics();
    eventually("the idle timeout", || {
        metrics.rejections(Rejection::IdleTimeout) > 0
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(1_000));
    let frames = until_closed(&mut anon).await;
    assert!(
        frames.iter().all(|f| matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::Timeout,
                ..
            }
        )),
        "{frames:?}"
    );
}

#[tokio::test]
async fn anonymous_senders_are_limited_per_address() {
    let relay = TestRelay::with_limits(Limits {
        device_envelopes: bucket(3.0),
        bundle_fetches: bucket(1.0),
        ..Limits::default()
    })
    .await;
    let mut bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    let publish = bob.prekeys(1, 1);
    request(&mut b, publish).await;
    let (mut first, _, _) = relay.challenged().await;
    let (mut second, _, _) = relay.challenged().await;
    deposit_ok(
        &mut first,
        1,
        vec![
            deposit_envelope(&bob, None, b"1"),
            deposit_envelope(&bob, None, b"2"),
        ],
    )
    .await;
    deposit_ok(&mut second, 1, vec![deposit_envelope(&bob, None, b"3")]).await;
    // Both connections come from 127.0.0.1: one budget.
    let reply = request(
        &mut first,
        deposit(2, vec![deposit_envelope(&bob, None, b"4")]),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    let fetch = |request_id| ClientFrame::FetchBundle {
        request_id: rid(request_id),
        identity: bob.local.cert.identity(),
        device_id: bob.local.cert.device_id(),
    };
    assert!(matches!(
        request(&mut first, fetch(3)).await,
        ServerFrame::Bundle { .. }
    ));
    assert_eq!(
        error_code(&request(&mut second, fetch(3)).await),
        ErrorCode::RateLimited
    );
    // An authenticated device from the same address has its own budget.
    let carol = Device::new(4);
    let mut c = relay.connect(&carol).await;
    send_ok(&mut c, 1, vec![bob.envelope(b"from carol")]).await;
}

// ---- Delivery tokens (SPEC.md 10.9 rules 1-4) --------------------------------------------------

#[tokio::test]
async fn an_account_without_a_policy_admits_everything() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    let (mut anon, _, _) = relay.challenged().await;
    deposit_ok(
        &mut anon,
        1,
        vec![deposit_envelope(&bob, None, b"no token")],
    )
    .await;
    deposit_ok(
        &mut anon,
        2,
        vec![deposit_envelope(&bob, Some(&token(9)), b"unknown token")],
    )
    .await;
    deposit_ok(
        &mut a,
        1,
        vec![deposit_envelope(&bob, None, b"authenticated")],
    )
    .await;
    send_ok(&mut a, 2, vec![bob.envelope(b"send")]).await;
    for expected in [
        &b"no token"[..],
        b"unknown token",
        b"authenticated",
        b"send",
    ] {
        assert_eq!(deliver(&mut b).await.1, expected);
    }
}

#[tokio::test]
async fn accepted_tokens_are_admitted_revoked_ones_dropped_and_never_delivered() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    let (friend, blocked) = (token(1), token(2));
    assert_eq!(
        set_tokens(
            &mut b,
            1,
            TokenPolicy::TokensRequired,
            &[&friend, &blocked],
            &[]
        )
        .await,
        ServerFrame::Done { request_id: rid(1) }
    );
    let (mut anon, _, _) = relay.challenged().await;
    deposit_ok(
        &mut anon,
        1,
        vec![deposit_envelope(&bob, Some(&friend), b"one")],
    )
    .await;
    assert_eq!(deliver(&mut b).await.1, b"one");
    assert_eq!(
        set_tokens(&mut b, 2, TokenPolicy::TokensRequired, &[], &[&blocked]).await,
        ServerFrame::Done { request_id: rid(2) }
    );
    // The revoked envelopes get ids like stored ones, in order, and are never stored.
    let ids = deposit_ok(
        &mut anon,
        2,
        vec![
            deposit_envelope(&bob, Some(&blocked), b"blocked 1"),
            deposit_envelope(&bob, Some(&friend), b"two"),
            deposit_envelope(&bob, Some(&blocked), b"blocked 2"),
        ],
    )
    .await;
    let (id, payload) = deliver(&mut b).await;
    assert_eq!((id, payload.as_slice()), (ids[1], &b"two"[..]));
    // An envelope that is only dropped is acknowledged the same way; from an authenticated
    // sender too.
    let mut a = relay.connect(&alice).await;
    deposit_ok(
        &mut a,
        1,
        vec![deposit_envelope(&bob, Some(&blocked), b"blocked 3")],
    )
    .await;
    deposit_ok(
        &mut a,
        2,
        vec![deposit_envelope(&bob, Some(&friend), b"three")],
    )
    .await;
    assert_eq!(deliver(&mut b).await.1, b"three");
    assert_no_delivery(&mut b).await;
    // Nothing of them waits in the mailbox: a new connection gets only the unacknowledged.
    drop(b);
    let mut b = relay.connect(&bob).await;
    for expected in [&b"one"[..], b"two", b"three"] {
        assert_eq!(deliver(&mut b).await.1, expected);
    }
    assert_no_delivery(&mut b).await;
    let metrics = relay.relay.metrics();
    assert_eq!(Metrics::get(&metrics.envelopes_dropped), 3);
    assert_eq!(Metrics::get(&metrics.envelopes_stored), 3);
    assert_eq!(Metrics::get(&metrics.deposits), 4);
    // Re-adding a revoked token accepts it again.
    set_tokens(&mut b, 3, TokenPolicy::TokensRequired, &[&blocked], &[]).await;
    deposit_ok(
        &mut a,
        3,
        vec![deposit_envelope(&bob, Some(&blocked), b"forgiven")],
    )
    .await;
    assert_eq!(deliver(&mut b).await.1, b"forgiven");
}

#[tokio::test]
async fn strangers_are_refused_under_tokens_required() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let carol = Device::new(3);
    let mut b = relay.connect(&bob).await;
    let mut c = relay.connect(&carol).await;
    let friend = token(1);
    set_tokens(&mut b, 1, TokenPolicy::TokensRequired, &[&friend], &[]).await;
    let (mut anon, _, _) = relay.challenged().await;
    let mut a = relay.connect(&alice).await;
    let refused = [
        deposit(1, vec![deposit_envelope(&bob, None, b"no token")]),
        deposit(2, vec![deposit_envelope(&bob, Some(&token(7)), b"unknown")]),
        // All or nothing: carol's envelope and the one with a token are not stored either.
        deposit(
            3,
            vec![
                deposit_envelope(&carol, None, b"to carol"),
                deposit_envelope(&bob, Some(&friend), b"with token"),
                deposit_envelope(&bob, None, b"stranger"),
            ],
        ),
    ];
    for frame in refused {
        let reply = request(&mut anon, frame).await;
        assert_eq!(error_code(&reply), ErrorCode::TokenRequired);
    }
    // `Send` carries no token: refused alike, even from an authenticated device.
    let reply = request(
        &mut a,
        ClientFrame::Send {
            request_id: rid(1),
            envelopes: vec![bob.envelope(b"send")],
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::TokenRequired);
    assert_eq!(
        relay.relay.metrics().rejections(Rejection::TokenRequired),
        4
    );
    // The connections go on.
    deposit_ok(
        &mut anon,
        4,
        vec![deposit_envelope(&bob, Some(&friend), b"ok")],
    )
    .await;
    assert_eq!(deliver(&mut b).await.1, b"ok");
    assert_no_delivery(&mut b).await;
    assert_no_delivery(&mut c).await;
    // Open again: strangers are admitted (at the stranger rate).
    set_tokens(&mut b, 2, TokenPolicy::Open, &[], &[]).await;
    send_ok(&mut a, 2, vec![bob.envelope(b"welcome")]).await;
    assert_eq!(deliver(&mut b).await.1, b"welcome");
}

#[tokio::test]
async fn strangers_are_rate_limited_per_recipient_under_open() {
    let relay = TestRelay::with_limits(Limits {
        stranger_envelopes: bucket(3.0),
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let carol = Device::new(3);
    let mut b = relay.connect(&bob).await;
    let mut c = relay.connect(&carol).await;
    let friend = token(1);
    set_tokens(&mut b, 1, TokenPolicy::Open, &[&friend], &[]).await;
    set_tokens(&mut c, 1, TokenPolicy::Open, &[], &[]).await;
    let (mut anon, _, _) = relay.challenged().await;
    let mut a = relay.connect(&alice).await;
    deposit_ok(
        &mut anon,
        1,
        vec![
            deposit_envelope(&bob, None, b"s1"),
            deposit_envelope(&bob, Some(&token(8)), b"s2"),
        ],
    )
    .await;
    send_ok(&mut a, 1, vec![bob.envelope(b"s3")]).await;
    // The fourth stranger envelope for bob is over the rate; the whole request is refused.
    let reply = request(
        &mut anon,
        deposit(
            2,
            vec![
                deposit_envelope(&carol, None, b"carol 1"),
                deposit_envelope(&bob, None, b"s4"),
            ],
        ),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    // Bob's contacts are not limited by it, and carol's budget was given back whole.
    deposit_ok(
        &mut anon,
        3,
        vec![deposit_envelope(&bob, Some(&friend), b"friend")],
    )
    .await;
    for n in 0..3u8 {
        deposit_ok(
            &mut anon,
            4 + u32::from(n),
            vec![deposit_envelope(&carol, None, &[n])],
        )
        .await;
    }
    let reply = request(
        &mut a,
        ClientFrame::Send {
            request_id: rid(2),
            envelopes: vec![carol.envelope(b"over")],
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    for expected in [&b"s1"[..], b"s2", b"s3", b"friend"] {
        assert_eq!(deliver(&mut b).await.1, expected);
    }
    assert_no_delivery(&mut b).await;
    assert_eq!(
        relay
            .relay
            .metrics()
            .rejections(Rejection::StrangerRateLimited),
        2
    );
}

#[tokio::test]
async fn set_delivery_tokens_over_the_account_cap_is_quota_exceeded() {
    let relay = TestRelay::with_limits(Limits {
        max_tokens_per_account: 3,
        ..Limits::default()
    })
    .await;
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    let (t1, t2, t3, t4) = (token(1), token(2), token(3), token(4));
    assert_eq!(
        set_tokens(&mut b, 1, TokenPolicy::TokensRequired, &[&t1, &t2], &[&t3]).await,
        ServerFrame::Done { request_id: rid(1) }
    );
    // Idempotent: the same update again is fine at the cap.
    assert_eq!(
        set_tokens(&mut b, 2, TokenPolicy::TokensRequired, &[&t1, &t2], &[&t3]).await,
        ServerFrame::Done { request_id: rid(2) }
    );
    let reply = set_tokens(&mut b, 3, TokenPolicy::Open, &[&t4], &[]).await;
    assert_eq!(error_code(&reply), ErrorCode::QuotaExceeded);
    assert_eq!(
        relay.relay.metrics().rejections(Rejection::QuotaExceeded),
        1
    );
    // Nothing changed: t4 is still a stranger's, and the policy still tokens_required.
    let (mut anon, _, _) = relay.challenged().await;
    let reply = request(
        &mut anon,
        deposit(1, vec![deposit_envelope(&bob, Some(&t4), b"x")]),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::TokenRequired);
    deposit_ok(&mut anon, 2, vec![deposit_envelope(&bob, Some(&t1), b"ok")]).await;
    assert_eq!(deliver(&mut b).await.1, b"ok");
}

// ---- Reachability records --------------------------------------------------------------------

#[tokio::test]
async fn records_are_verified_only_move_forward_and_are_fetched_anonymously() {
    let relay = TestRelay::memory().await;
    let bob = Device::new(2);
    let carol = Device::new(3);
    let mut b = relay.connect(&bob).await;
    let publish = |request_id: u32, record: ReachabilityRecord| ClientFrame::PublishReachability {
        request_id: rid(request_id),
        record,
    };
    let first = record(&bob, 100, "wss://home.example/v1");

    // A bad signature.
    let mut bytes = first.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = ReachabilityRecord::from_bytes(&bytes).unwrap();
    let reply = request(&mut b, publish(1, forged)).await;
    assert_eq!(error_code(&reply), ErrorCode::InvalidRecord);
    // Another identity's record, validly signed by it.
    let reply = request(
        &mut b,
        publish(2, record(&carol, 100, "wss://x.example/v1")),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::InvalidRecord);

    assert_eq!(
        request(&mut b, publish(3, first.clone())).await,
        ServerFrame::Done { request_id: rid(3) }
    );
    // The same bytes again: `Done`, unchanged.
    assert_eq!(
        request(&mut b, publish(4, first.clone())).await,
        ServerFrame::Done { request_id: rid(4) }
    );
    // Older, and the same sequence with other contents: stale.
    let reply = request(&mut b, publish(5, record(&bob, 99, "wss://old.example/v1"))).await;
    assert_eq!(error_code(&reply), ErrorCode::InvalidRecord);
    let reply = request(
        &mut b,
        publish(6, record(&bob, 100, "wss://other.example/v1")),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::InvalidRecord);

    let (mut anon, _, _) = relay.challenged().await;
    assert_eq!(fetch_record(&mut anon, 1, &bob).await, Some(first));
    let newer = record(&bob, 101, "wss://new.example/v1");
    assert_eq!(
        request(&mut b, publish(7, newer.clone())).await,
        ServerFrame::Done { request_id: rid(7) }
    );
    assert_eq!(fetch_record(&mut anon, 2, &bob).await, Some(newer));
    assert_eq!(fetch_record(&mut anon, 3, &carol).await, None);
    assert_eq!(
        relay.relay.metrics().rejections(Rejection::InvalidRecord),
        4
    );
}

// ---- Durability and what is stored -----------------------------------------------------------

#[tokio::test]
async fn tokens_policy_and_records_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bob = Device::new(2);
    let carol = Device::new(3);
    let (friend, blocked) = (token(1), token(2));
    let published = record(&bob, 7, "wss://home.example/v1");
    {
        let relay = TestRelay::sled(dir.path()).await;
        let mut b = relay.connect(&bob).await;
        let _c = relay.connect(&carol).await;
        set_tokens(
            &mut b,
            1,
            TokenPolicy::TokensRequired,
            &[&friend],
            &[&blocked],
        )
        .await;
        let reply = request(
            &mut b,
            ClientFrame::PublishReachability {
                request_id: rid(2),
                record: published.clone(),
            },
        )
        .await;
        assert_eq!(reply, ServerFrame::Done { request_id: rid(2) });
        drop(b);
        relay.relay.shutdown().await.unwrap();
    }
    let relay = TestRelay::sled(dir.path()).await;
    let (mut anon, _, _) = relay.challenged().await;
    assert_eq!(fetch_record(&mut anon, 1, &bob).await, Some(published));
    let reply = request(
        &mut anon,
        deposit(2, vec![deposit_envelope(&bob, None, b"x")]),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::TokenRequired);
    // Carol never set a policy: she admits everything.
    deposit_ok(
        &mut anon,
        3,
        vec![deposit_envelope(&carol, None, b"to carol")],
    )
    .await;
    deposit_ok(
        &mut anon,
        4,
        vec![deposit_envelope(&bob, Some(&blocked), b"blocked")],
    )
    .await;
    deposit_ok(
        &mut anon,
        5,
        vec![deposit_envelope(&bob, Some(&friend), b"friend")],
    )
    .await;
    let mut b = relay.connect(&bob).await;
    assert_eq!(deliver(&mut b).await.1, b"friend");
    assert_no_delivery(&mut b).await;
    assert_eq!(Metrics::get(&relay.relay.metrics().envelopes_dropped), 1);
}

/// Whether `needle` occurs in any file under `dir`.
fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut found = false;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            found |= bytes.windows(needle.len()).any(|w| w == needle);
        }
    }
    found
}

#[tokio::test]
async fn the_store_holds_nothing_of_an_anonymous_sender() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Device::new(1);
    let bob = Device::new(2);
    let friend = token(0x5a);
    let payload = b"an opaque sealed envelope, recognisable in the files";
    {
        let relay = TestRelay::sled(dir.path()).await;
        let mut b = relay.connect(&bob).await;
        set_tokens(&mut b, 1, TokenPolicy::TokensRequired, &[&friend], &[]).await;
        drop(b);
        // The sender's home relay is elsewhere: it never authenticates here.
        let (mut anon, _, _) = relay.challenged().await;
        deposit_ok(
            &mut anon,
            1,
            vec![deposit_envelope(&bob, Some(&friend), payload)],
        )
        .await;
        drop(anon);
        relay.relay.shutdown().await.unwrap();
    }
    // What was stored is in the files (the scan works)...
    assert!(files_contain(dir.path(), payload));
    assert!(files_contain(
        dir.path(),
        bob.local.cert.identity().as_bytes()
    ));
    // ...and nothing of the sender: not its identity or device key, nor the token itself.
    assert!(!files_contain(
        dir.path(),
        sender.local.cert.identity().as_bytes()
    ));
    assert!(!files_contain(
        dir.path(),
        sender.local.cert.signing_key().as_bytes()
    ));
    assert!(!files_contain(dir.path(), &friend.0));
}
