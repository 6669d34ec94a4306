//! Resource floods (SPEC.md section 10.8, "Byte quotas" and "Bundles"): byte quotas per
//! mailbox, the relay's storage budget, the byte rate per sending device, and bundle fetches
//! limited per requester and, for one-time prekeys, per target identity.

use chat_relay::metrics::Rejection;
use chat_relay::store::stored_size;
use chat_relay::{Limits, RateLimit};
use protocol::frames::{ClientFrame, ErrorCode, ServerFrame};

use crate::common::*;

/// A bucket that never refills within a test.
fn bucket(burst: f64) -> RateLimit {
    RateLimit {
        per_second: 1e-9,
        burst,
    }
}

fn send(request_id: u32, envelopes: Vec<protocol::frames::OutgoingEnvelope>) -> ClientFrame {
    ClientFrame::Send {
        request_id: rid(request_id),
        envelopes,
    }
}

#[tokio::test]
async fn a_mailbox_holds_at_most_its_byte_quota() {
    // Room for two 1,000-byte envelopes, not three.
    let relay = TestRelay::with_limits(Limits {
        mailbox_quota_bytes: 2 * stored_size(1000) + 10,
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let carol = Device::new(3);
    let mut a = relay.connect(&alice).await;
    let _b = relay.connect(&bob).await;
    let _c = relay.connect(&carol).await;
    let big = vec![1u8; 1000];
    send_ok(&mut a, 1, vec![bob.envelope(&big)]).await;
    // One request over the quota is refused whole: carol's envelope is not stored either.
    let reply = request(
        &mut a,
        send(
            2,
            vec![carol.envelope(b"x"), bob.envelope(&big), bob.envelope(&big)],
        ),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::MailboxFull);
    send_ok(&mut a, 3, vec![bob.envelope(&big)]).await;
    let reply = request(&mut a, send(4, vec![bob.envelope(b"x")])).await;
    assert_eq!(error_code(&reply), ErrorCode::MailboxFull);
    // Other mailboxes are not affected.
    send_ok(&mut a, 5, vec![carol.envelope(&big)]).await;
}

#[tokio::test]
async fn the_storage_budget_refuses_with_storage_full_and_frees_on_ack() {
    let relay = TestRelay::with_limits(Limits {
        disk_budget_bytes: 3 * stored_size(1000),
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let carol = Device::new(3);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    let _c = relay.connect(&carol).await;
    let big = vec![1u8; 1000];
    send_ok(&mut a, 1, vec![bob.envelope(&big), carol.envelope(&big)]).await;
    // The third fits, a fourth does not, whichever mailbox it is for.
    let reply = request(
        &mut a,
        send(2, vec![carol.envelope(&big), bob.envelope(&big)]),
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::StorageFull);
    assert!(!ErrorCode::StorageFull.is_fatal());
    assert_eq!(relay.relay.metrics().rejections(Rejection::StorageFull), 1);
    send_ok(&mut a, 3, vec![carol.envelope(&big)]).await;
    let reply = request(&mut a, send(4, vec![bob.envelope(b"x")])).await;
    assert_eq!(error_code(&reply), ErrorCode::StorageFull);
    // Bob takes his envelope: room again.
    let (id, _) = deliver(&mut b).await;
    ack(&mut b, &[id]).await;
    sync(&mut b).await;
    send_ok(&mut a, 5, vec![bob.envelope(&big)]).await;
}

#[tokio::test]
async fn a_device_may_send_only_so_many_bytes() {
    let relay = TestRelay::with_limits(Limits {
        device_bytes: bucket(5000.0),
        ..Limits::default()
    })
    .await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let _b = relay.connect(&bob).await;
    let mut other = relay.connect(&Device::new(3)).await;
    let chunk = vec![1u8; 2000];
    send_ok(&mut a, 1, vec![bob.envelope(&chunk)]).await;
    send_ok(&mut a, 2, vec![bob.envelope(&chunk)]).await;
    let reply = request(&mut a, send(3, vec![bob.envelope(&chunk)])).await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    // Smaller envelopes still fit in what is left; another device has its own budget.
    send_ok(&mut a, 4, vec![bob.envelope(&[1; 900])]).await;
    send_ok(&mut other, 5, vec![bob.envelope(&chunk)]).await;
}

/// The one-time prekey id of a bundle reply.
fn one_time_of(reply: &ServerFrame) -> Option<u32> {
    match reply {
        ServerFrame::Bundle { bundle, .. } => bundle.one_time_prekey.as_ref().map(|k| k.id),
        other => panic!("expected a bundle, got {other:?}"),
    }
}

#[tokio::test]
async fn one_time_prekeys_are_handed_out_at_a_rate_per_target_identity() {
    let relay = TestRelay::with_limits(Limits {
        one_time_prekeys: bucket(3.0),
        ..Limits::default()
    })
    .await;
    let mut bob = Device::new(1);
    let mut b = relay.connect(&bob).await;
    let reply = request(&mut b, bob.prekeys(1, 50)).await;
    assert!(
        matches!(reply, ServerFrame::PrekeyCount { one_time: 50, .. }),
        "{reply:?}"
    );
    let fetch = |n| ClientFrame::FetchBundle {
        request_id: rid(n),
        identity: bob.local.cert.identity(),
        device_id: bob.local.cert.device_id(),
    };
    // Strangers, each with its own requester budget, share the target's.
    let mut handed_out = Vec::new();
    for n in 0..10u8 {
        let mut stranger = relay.connect(&Device::new(100 + n)).await;
        let reply = request(&mut stranger, fetch(10 + u32::from(n))).await;
        if let ServerFrame::Bundle { bundle, .. } = &reply {
            bundle.verify(Some(&bob.local.cert.identity())).unwrap();
            if bundle.one_time_prekey.is_none() {
                assert!(bundle.kem_prekey.last_resort, "{bundle:?}");
            }
        }
        handed_out.push(one_time_of(&reply));
    }
    assert_eq!(
        handed_out,
        [
            Some(100),
            Some(101),
            Some(102),
            None,
            None,
            None,
            None,
            None,
            None,
            None
        ]
    );
    // Nothing more was consumed.
    let reply = request(
        &mut b,
        ClientFrame::PublishPrekeys {
            request_id: rid(2),
            signed_prekey: None,
            kem_prekeys: Vec::new(),
            one_time_prekeys: Vec::new(),
        },
    )
    .await;
    assert!(
        matches!(reply, ServerFrame::PrekeyCount { one_time: 47, .. }),
        "{reply:?}"
    );
}

#[tokio::test]
async fn bundle_fetches_are_rate_limited_per_requester() {
    let relay = TestRelay::with_limits(Limits {
        bundle_fetches: bucket(5.0),
        ..Limits::default()
    })
    .await;
    let mut bob = Device::new(1);
    let mut b = relay.connect(&bob).await;
    request(&mut b, bob.prekeys(1, 20)).await;
    let fetch = |n| ClientFrame::FetchBundle {
        request_id: rid(n),
        identity: bob.local.cert.identity(),
        device_id: bob.local.cert.device_id(),
    };
    let mut stranger = relay.connect(&Device::new(50)).await;
    for n in 0..5 {
        one_time_of(&request(&mut stranger, fetch(10 + n)).await);
    }
    let reply = request(&mut stranger, fetch(20)).await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    // Another requester is served.
    let mut other = relay.connect(&Device::new(51)).await;
    assert_eq!(
        one_time_of(&request(&mut other, fetch(21)).await),
        Some(105)
    );
}
