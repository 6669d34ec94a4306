//! The basic path: publish, fetch a bundle, send, deliver, ack.

use protocol::frames::{ClientFrame, ServerFrame};

use crate::common::*;

#[tokio::test]
async fn publish_fetch_send_deliver_ack() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let mut bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    b.send(&bob.prekeys(1, 5)).await.unwrap();
    let counts = expect(&mut b, |f| matches!(f, ServerFrame::PrekeyCount { .. })).await;
    assert!(matches!(
        counts,
        ServerFrame::PrekeyCount {
            one_time: 5,
            kem_one_time: 0,
            ..
        }
    ));

    a.send(&ClientFrame::FetchBundle {
        request_id: rid(7),
        identity: bob.local.cert.identity(),
        device_id: bob.local.cert.device_id(),
    })
    .await
    .unwrap();
    let ServerFrame::Bundle { bundle, .. } =
        expect(&mut a, |f| matches!(f, ServerFrame::Bundle { .. })).await
    else {
        unreachable!()
    };
    bundle.verify(Some(&bob.local.cert.identity())).unwrap();
    assert!(bundle.one_time_prekey.is_some());

    a.send(&ClientFrame::Send {
        request_id: rid(8),
        envelopes: vec![bob.envelope(b"sealed")],
    })
    .await
    .unwrap();
    let ServerFrame::SendAck { envelope_ids, .. } =
        expect(&mut a, |f| matches!(f, ServerFrame::SendAck { .. })).await
    else {
        unreachable!()
    };
    let ServerFrame::Deliver {
        envelope_id,
        payload,
        ..
    } = expect(&mut b, |f| matches!(f, ServerFrame::Deliver { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(payload, b"sealed");
    assert_eq!(envelope_ids, vec![envelope_id]);
    b.send(&ClientFrame::Ack {
        envelope_ids: vec![envelope_id],
    })
    .await
    .unwrap();

    // After the ack a new connection gets nothing; before it, it would get the envelope again.
    drop(b);
    let mut b = relay.connect(&bob).await;
    b.send(&ClientFrame::Ping { nonce: 5 }).await.unwrap();
    let next = expect(&mut b, |f| {
        matches!(f, ServerFrame::Pong { .. } | ServerFrame::Deliver { .. })
    })
    .await;
    assert!(matches!(next, ServerFrame::Pong { nonce: 5 }), "{next:?}");
    relay.relay.shutdown().await.unwrap();
}
