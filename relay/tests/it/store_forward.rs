//! Mailboxes (SPEC.md section 10.4 `Send`/`Ack`, 10.5 `Deliver`): store and forward across a
//! killed relay process, acknowledgement and redelivery, the TTL, quotas and unknown
//! recipients.
//!
//! "Nothing more is queued" is checked with a marker: deliveries come in mailbox order, so if
//! the next envelope delivered is one sent afterwards, nothing older is left.

use std::sync::Arc;

use chat_relay::clock::ManualClock;
use chat_relay::metrics::{Metrics, Rejection};
use chat_relay::{Config, Limits, RateLimit, Storage};
use protocol::frames::{ClientFrame, ErrorCode, ServerFrame};
use protocol::identity::DeviceId;

use crate::common::*;

const DAY: u64 = 24 * 3600;

#[tokio::test]
async fn envelopes_acknowledged_to_the_sender_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut relay = RelayProcess::start(&data, dir.path()).await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    // Bob registers once and goes offline.
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    drop(b);

    let mut a = relay.connect(&alice).await;
    let mut ids = send_ok(&mut a, 1, vec![bob.envelope(b"one"), bob.envelope(b"two")]).await;
    ids.extend(send_ok(&mut a, 2, vec![bob.envelope(b"three")]).await);
    relay.kill();
    drop(a);

    let relay = RelayProcess::start(&data, dir.path()).await;
    let mut b = relay.connect(&bob).await;
    for (expected_id, expected) in ids.iter().zip([&b"one"[..], b"two", b"three"]) {
        let (id, payload) = deliver(&mut b).await;
        assert_eq!((&id, payload.as_slice()), (expected_id, expected));
    }
}

#[tokio::test]
async fn acked_envelopes_are_gone_and_unacked_ones_come_back_in_order() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    drop(b);

    let mut a = relay.connect(&alice).await;
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| format!("m{i}").into_bytes()).collect();
    let mut ids = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        ids.extend(send_ok(&mut a, 10 + i as u32, vec![bob.envelope(payload)]).await);
    }

    let mut b = relay.connect(&bob).await;
    for (id, payload) in ids.iter().zip(&payloads) {
        assert_eq!(deliver(&mut b).await, (*id, payload.clone()));
    }
    ack(&mut b, &[ids[1], ids[3]]).await;
    sync(&mut b).await;
    drop(b);

    // The unacknowledged ones again, in order, with the same ids; then nothing but new mail.
    let mut b = relay.connect(&bob).await;
    for i in [0, 2, 4] {
        assert_eq!(deliver(&mut b).await, (ids[i], payloads[i].clone()));
    }
    let marker = send_ok(&mut a, 20, vec![bob.envelope(b"marker")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"marker".to_vec()));
    ack(&mut b, &[ids[0], ids[2], ids[4], marker[0]]).await;
    sync(&mut b).await;
    drop(b);

    // Everything acknowledged: a new connection gets only what is sent afterwards.
    let mut b = relay.connect(&bob).await;
    let marker = send_ok(&mut a, 21, vec![bob.envelope(b"after")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"after".to_vec()));
}

#[tokio::test]
async fn envelopes_expire_after_the_ttl() {
    let clock = ManualClock::new(1_700_000_000);
    let relay =
        TestRelay::start_with_clock(Config::new(Storage::Memory), Arc::new(clock.clone())).await;
    assert_eq!(Limits::default().envelope_ttl_secs, 30 * DAY);
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    drop(b);
    let mut a = relay.connect(&alice).await;
    let ids = send_ok(&mut a, 1, vec![bob.envelope(b"old")]).await;

    // Just under 30 days: still delivered.
    clock.advance(30 * DAY - 1);
    let mut b = relay.connect(&bob).await;
    assert_eq!(deliver(&mut b).await, (ids[0], b"old".to_vec()));
    drop(b);

    // 30 days and a second: gone, though never acknowledged.
    clock.advance(2);
    let mut b = relay.connect(&bob).await;
    let marker = send_ok(&mut a, 2, vec![bob.envelope(b"new")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"new".to_vec()));
}

#[tokio::test]
async fn full_mailbox_refuses_the_whole_send() {
    let relay = TestRelay::with_limits(Limits {
        mailbox_quota: 3,
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let carol = Device::new(3);
    for device in [&bob, &carol] {
        let mut c = relay.connect(device).await;
        sync(&mut c).await;
    }
    let mut a = relay.connect(&alice).await;
    let mut stored = send_ok(&mut a, 1, vec![bob.envelope(b"b1"), bob.envelope(b"b2")]).await;

    // Carol's envelope would fit, Bob's two would not: nothing of the request is stored.
    let reply = request(
        &mut a,
        ClientFrame::Send {
            request_id: rid(2),
            envelopes: vec![
                carol.envelope(b"c1"),
                bob.envelope(b"b3"),
                bob.envelope(b"b4"),
            ],
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::MailboxFull);
    assert_eq!(relay.relay.metrics().rejections(Rejection::MailboxFull), 1);

    // Bob's mailbox has room for exactly one more, so the refused request left nothing in it.
    stored.extend(send_ok(&mut a, 3, vec![bob.envelope(b"b3")]).await);
    let reply = request(
        &mut a,
        ClientFrame::Send {
            request_id: rid(4),
            envelopes: vec![bob.envelope(b"b4")],
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::MailboxFull);

    let mut c = relay.connect(&carol).await;
    let marker = send_ok(&mut a, 5, vec![carol.envelope(b"marker")]).await;
    assert_eq!(deliver(&mut c).await, (marker[0], b"marker".to_vec()));

    let mut b = relay.connect(&bob).await;
    for (id, payload) in stored.iter().zip([&b"b1"[..], b"b2", b"b3"]) {
        assert_eq!(deliver(&mut b).await, (*id, payload.to_vec()));
    }
    // Acknowledging makes room again.
    ack(&mut b, &stored).await;
    sync(&mut b).await;
    let marker = send_ok(&mut a, 6, vec![bob.envelope(b"room")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"room".to_vec()));
}

#[tokio::test]
async fn unknown_recipient_is_not_found_and_nothing_is_stored() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let stranger = Device::new(3);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    drop(b);
    let mut a = relay.connect(&alice).await;

    let mut bobs_other_device = bob.envelope(b"x");
    bobs_other_device.recipient_device = DeviceId::new(2).unwrap();
    for (n, envelopes) in [
        vec![stranger.envelope(b"x")],
        vec![bobs_other_device],
        vec![bob.envelope(b"lost"), stranger.envelope(b"x")],
    ]
    .into_iter()
    .enumerate()
    {
        let request_id = rid(1 + n as u32);
        let reply = request(
            &mut a,
            ClientFrame::Send {
                request_id,
                envelopes,
            },
        )
        .await;
        assert_eq!(error_code(&reply), ErrorCode::NotFound);
        assert_eq!(reply.request_id(), Some(request_id));
    }

    let mut b = relay.connect(&bob).await;
    let marker = send_ok(&mut a, 9, vec![bob.envelope(b"marker")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"marker".to_vec()));
}

#[tokio::test]
async fn an_ack_only_removes_the_acking_devices_envelopes() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    let to_alice = send_ok(&mut b, 1, vec![alice.envelope(b"for alice")]).await;
    assert_eq!(deliver(&mut a).await.0, to_alice[0]);
    drop(a);
    // Bob names Alice's envelope: not his, so nothing happens.
    ack(&mut b, &to_alice).await;
    sync(&mut b).await;
    let mut a = relay.connect(&alice).await;
    assert_eq!(deliver(&mut a).await, (to_alice[0], b"for alice".to_vec()));
}

#[tokio::test]
async fn at_most_the_delivery_window_is_unacknowledged() {
    let relay = TestRelay::with_limits(Limits {
        delivery_window: 2,
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    drop(b);
    let mut a = relay.connect(&alice).await;
    let envelopes = (0..5).map(|i| bob.envelope(&[i])).collect();
    let ids = send_ok(&mut a, 1, envelopes).await;

    let mut b = relay.connect(&bob).await;
    assert_eq!(deliver(&mut b).await.0, ids[0]);
    assert_eq!(deliver(&mut b).await.0, ids[1]);
    // The window is full: the relay answers the ping and pushes nothing more.
    b.send(&ClientFrame::Ping { nonce: 7 }).await.unwrap();
    let next = expect(&mut b, |_| true).await;
    assert_eq!(next, protocol::frames::ServerFrame::Pong { nonce: 7 });
    // Each ack opens the window again, in mailbox order.
    ack(&mut b, &ids[..1]).await;
    assert_eq!(deliver(&mut b).await.0, ids[2]);
    ack(&mut b, &ids[1..3]).await;
    assert_eq!(deliver(&mut b).await.0, ids[3]);
    assert_eq!(deliver(&mut b).await.0, ids[4]);
}

/// The next `Deliver` frame, whole.
async fn deliver_frame(client: &mut chat_relay::client::RelayClient) -> ServerFrame {
    expect(client, |f| matches!(f, ServerFrame::Deliver { .. })).await
}

/// Envelopes committed while their recipient is connected are pushed from the relay's memory
/// (the live queue); unacknowledged, they come again from the store after a reconnect, and the
/// frames are the same: id, arrival time and payload.
#[tokio::test]
async fn an_envelope_pushed_live_is_the_one_redelivered_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::sled(dir.path()).await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    let mut a = relay.connect(&alice).await;
    let mut ids = Vec::new();
    let mut live = Vec::new();
    for i in 0..3u8 {
        ids.extend(send_ok(&mut a, u32::from(i) + 1, vec![bob.envelope(&[i; 40])]).await);
        live.push(deliver_frame(&mut b).await);
    }
    drop(b);
    let mut b = relay.connect(&bob).await;
    for (id, pushed) in ids.iter().zip(&live) {
        let again = deliver_frame(&mut b).await;
        assert_eq!(&again, pushed);
        assert!(matches!(again, ServerFrame::Deliver { envelope_id, .. } if envelope_id == *id));
    }
    // Acknowledged now, they are gone; new mail comes live after the backlog.
    ack(&mut b, &ids).await;
    let marker = send_ok(&mut a, 10, vec![bob.envelope(b"marker")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"marker".to_vec()));
    drop(b);
    let mut b = relay.connect(&bob).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"marker".to_vec()));
}

/// A recipient that stops acknowledging while mail keeps coming overflows its live queue; the
/// relay then reads the store again, and every envelope still arrives once, in order.
#[tokio::test]
async fn a_recipient_past_its_live_queue_gets_everything_once_in_order() {
    let fast = RateLimit {
        per_second: 1e9,
        burst: 1e9,
    };
    let relay = TestRelay::with_limits(Limits {
        delivery_window: 4,
        device_frames: fast,
        device_envelopes: fast,
        device_bytes: fast,
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    let mut a = relay.connect(&alice).await;
    // More than a live queue holds (1,024), sent while Bob's window is full.
    let mut ids = Vec::new();
    for request in 0..20u32 {
        let envelopes = (0..64u32)
            .map(|i| bob.envelope(&(request * 64 + i).to_be_bytes()))
            .collect();
        ids.extend(send_ok(&mut a, request + 1, envelopes).await);
    }
    let mut expected = ids.iter().enumerate();
    let mut received = 0;
    while received < ids.len() {
        let (id, payload) = deliver(&mut b).await;
        let (i, expected_id) = expected.next().unwrap();
        assert_eq!(id, *expected_id, "envelope {i}");
        assert_eq!(payload, (i as u32).to_be_bytes());
        ack(&mut b, &[id]).await;
        received += 1;
    }
    let marker = send_ok(&mut a, 100, vec![bob.envelope(b"marker")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"marker".to_vec()));
}

/// Acknowledgements run on the relay's store thread, many connections' in one round; a clean
/// shutdown flushes every one applied, so none of those envelopes comes back.
#[tokio::test]
async fn acknowledgements_are_applied_and_flushed_by_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::sled(dir.path()).await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    let mut a = relay.connect(&alice).await;
    let envelopes = (0..50u8).map(|i| bob.envelope(&[i])).collect();
    let ids = send_ok(&mut a, 1, envelopes).await;
    let mut delivered = Vec::new();
    for _ in &ids {
        delivered.push(deliver(&mut b).await.0);
    }
    assert_eq!(delivered, ids);
    // One Ack per envelope, sent back to back without waiting, and one for all of them.
    for id in &ids[..25] {
        ack(&mut b, &[*id]).await;
    }
    ack(&mut b, &ids[25..]).await;
    sync(&mut b).await;
    let metrics = relay.relay.metrics();
    assert_eq!(Metrics::get(&metrics.envelopes_acked), 50);
    let marker = send_ok(&mut a, 2, vec![bob.envelope(b"marker")]).await;
    assert_eq!(deliver(&mut b).await.0, marker[0]);
    drop((a, b));
    relay.relay.shutdown().await.unwrap();

    let relay = TestRelay::sled(dir.path()).await;
    let mut b = relay.connect(&bob).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"marker".to_vec()));
}

/// An envelope that waits in the relay's memory behind a full delivery window past the TTL is
/// not delivered, as one in the store would not be.
#[tokio::test]
async fn an_envelope_held_in_memory_past_the_ttl_is_not_delivered() {
    let clock = ManualClock::new(1_700_000_000);
    let mut config = Config::new(Storage::Memory);
    config.limits.delivery_window = 1;
    let relay = TestRelay::start_with_clock(config, Arc::new(clock.clone())).await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    let mut a = relay.connect(&alice).await;
    let ids = send_ok(
        &mut a,
        1,
        vec![bob.envelope(b"first"), bob.envelope(b"second")],
    )
    .await;
    assert_eq!(deliver(&mut b).await, (ids[0], b"first".to_vec()));
    clock.advance(30 * DAY + 1);
    ack(&mut b, &ids[..1]).await;
    let marker = send_ok(&mut a, 2, vec![bob.envelope(b"new")]).await;
    assert_eq!(deliver(&mut b).await, (marker[0], b"new".to_vec()));
}
