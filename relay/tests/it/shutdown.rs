//! Clean shutdown (`Relay::shutdown`) with sends in flight: every `Send` that got its `SendAck`
//! is durable, found again by a new relay on the same sled directory.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{ClientFrame, EnvelopeId, ServerFrame};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

const SENDERS: u8 = 4;
const SENDS_EACH: u32 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::sled(dir.path()).await;
    let bob = Device::new(1);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    drop(b);

    let first_ack = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..SENDERS {
        let mut client = relay.connect(&Device::new(10 + s)).await;
        let payloads: Vec<Vec<u8>> = (1..=SENDS_EACH)
            .map(|n| format!("sender {s} send {n}").into_bytes())
            .collect();
        let frames: Vec<Vec<u8>> = payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                ClientFrame::Send {
                    request_id: rid(i as u32 + 1),
                    envelopes: vec![bob.envelope(payload)],
                }
                .to_bytes()
            })
            .collect();
        let first_ack = first_ack.clone();
        tasks.spawn(async move {
            // Send and read at once, so acknowledgements are seen while sends are in flight.
            let (mut sink, mut stream) = client.websocket().split();
            let send_all = async move {
                for frame in frames {
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
            };
            let read_all = async move {
                let mut acked: HashMap<EnvelopeId, Vec<u8>> = HashMap::new();
                // Every answer until the relay closes the connection.
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Binary(bytes) = message else {
                        continue;
                    };
                    if let Ok(ServerFrame::SendAck {
                        request_id,
                        envelope_ids,
                    }) = ServerFrame::from_bytes(&bytes)
                    {
                        let payload = &payloads[request_id.get() as usize - 1];
                        acked.insert(envelope_ids[0], payload.clone());
                        first_ack.notify_one();
                    }
                }
                acked
            };
            tokio::join!(send_all, read_all).1
        });
    }

    // Shut down as soon as sends are being acknowledged, with most still to come.
    guard(first_ack.notified()).await;
    guard(relay.relay.shutdown()).await.unwrap();
    let mut acked = HashMap::new();
    while let Some(result) = guard(tasks.join_next()).await {
        acked.extend(result.unwrap());
    }
    assert!(!acked.is_empty());

    // A new relay on the same directory delivers every acknowledged envelope.
    let relay = TestRelay::sled(dir.path()).await;
    let mut b = relay.connect(&bob).await;
    let mut missing = acked;
    while !missing.is_empty() {
        let (id, payload) = deliver(&mut b).await;
        if let Some(expected) = missing.remove(&id) {
            assert_eq!(payload, expected);
        }
    }
    relay.relay.shutdown().await.unwrap();
}
