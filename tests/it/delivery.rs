//! Delivery guarantees under failure: every message arrives exactly once (stored once,
//! announced once) when the recipient is offline, the relay is killed mid-stream, the sender is
//! killed right after `messages.send` returned, or the recipient is killed before its acks
//! reached the relay.

use tests::{
    Pair, RelayProcess, WsProxy, assert_received_exactly_once, message_texts, shared_relay,
    wait_for,
};

/// How many messages each scenario sends.
const N: usize = 20;

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("message {i:02}")).collect()
}

#[test]
fn messages_sent_while_the_recipient_is_stopped_all_arrive_once_and_in_order() {
    let relay = shared_relay();
    let mut pair = Pair::start(&relay.url());
    pair.bob.stop();
    // Without waiting in between: the daemon keeps a conversation's order on the wire.
    let ids = pair.alice.send_all("bob", &numbered(N));
    pair.bob.restart_unlocked();
    let received = assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    assert_eq!(
        message_texts(&received),
        numbered(N),
        "in the order they were sent"
    );
    let held: Vec<&str> = received
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(held, ids, "the ids the sender was given, in order");
    for id in &ids {
        pair.alice.wait_status("bob", id, "delivered");
    }
}

#[test]
fn messages_sent_while_the_relay_is_killed_and_restarted_all_arrive_once() {
    let mut relay = RelayProcess::start();
    let pair = Pair::start(&relay.url());
    let mut ids = Vec::new();
    for (i, text) in numbered(3 * N).iter().enumerate() {
        ids.push(pair.alice.send("bob", text));
        if i == N {
            // Some of the messages before this one are still on their way.
            relay.kill();
        }
        if i == 2 * N {
            relay.restart();
        }
    }
    let received = assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    let mut got = message_texts(&received);
    got.sort();
    assert_eq!(got, numbered(3 * N));
    for id in &ids {
        pair.alice.wait_status("bob", id, "delivered");
    }
}

#[test]
fn messages_of_a_sender_killed_right_after_sending_arrive_once_after_its_restart() {
    let relay = shared_relay();
    let mut pair = Pair::start(&relay.url());
    let ids: Vec<String> = numbered(N)
        .iter()
        .map(|text| pair.alice.send("bob", text))
        .collect();
    pair.alice.kill();
    pair.alice.restart_unlocked();
    let outgoing = pair.alice.messages_in("bob", "outgoing");
    assert_eq!(
        message_texts(&outgoing),
        numbered(N),
        "the outbox survived SIGKILL"
    );
    let received = assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    let mut got = message_texts(&received);
    got.sort();
    assert_eq!(got, numbered(N));
    for id in &ids {
        pair.alice.wait_status("bob", id, "delivered");
    }
}

#[test]
fn messages_to_a_recipient_killed_before_its_acks_reached_the_relay_arrive_once_after_its_restart()
{
    // The proxy swallows every Ack, so whatever Bob stored before the kill is still in the
    // relay's mailbox and is delivered again after the restart.
    let (_relay, proxy) = WsProxy::relay();
    let mut pair = Pair::start(&proxy.url());
    proxy.drop_acks(true);
    let ids: Vec<String> = numbered(3 * N)
        .iter()
        .map(|text| pair.alice.send("bob", text))
        .collect();
    wait_for("the first messages to reach bob", || {
        let conversation = pair.bob.find_conversation("alice")?;
        (conversation["total"].as_u64()? > 0).then_some(())
    });
    pair.bob.kill();
    assert!(
        proxy.dropped_acks() > 0,
        "bob acknowledged something before the kill"
    );
    proxy.drop_acks(false);
    pair.bob.restart_unlocked();
    let received = assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    let mut got = message_texts(&received);
    got.sort();
    assert_eq!(got, numbered(3 * N));
    // Bob owed a receipt for each message in the same batch that stored it, so the kill lost
    // none of them.
    for id in &ids {
        pair.alice.wait_status("bob", id, "delivered");
    }
}

/// A `Send` the relay refuses (over its rate limit) is not overtaken by later messages to the
/// same contact: a burst sent without waiting arrives once and in the sender's order, and every
/// message reaches "delivered". (With several `Send`s of a conversation in flight at once, the
/// refused one was retried after the ones behind it had been stored.)
#[test]
fn a_refused_send_is_not_overtaken_by_later_messages_to_the_same_contact() {
    let (_relay, proxy) = WsProxy::relay();
    let pair = Pair::start(&proxy.url());
    let first = pair.alice.send("bob", "first");
    pair.alice.wait_status("bob", &first, "delivered");
    proxy.refuse_sends(1);
    // Two JSON-RPC batches of 100 (the most a batch may hold) on one connection: the daemon
    // queues them in a few rounds, more than one `Send` frame holds (64 envelopes), so
    // several frames are needed while the refused one is still unanswered.
    let mut client = pair.alice.client();
    let texts = numbered(200);
    for (n, chunk) in texts.chunks(100).enumerate() {
        let batch: Vec<serde_json::Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, text)| {
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": n * 100 + i + 1,
                    "method": "messages.send",
                    "params": { "to": "bob", "text": text },
                })
            })
            .collect();
        let line = serde_json::to_string(&batch).unwrap_or_else(|e| panic!("{e}"));
        let answers = client
            .send_raw_line(&line)
            .unwrap_or_else(|e| panic!("the batch: {e}"));
        let answered = answers.as_array().map_or(0, Vec::len);
        assert_eq!(answered, 100, "{answers}");
    }
    // The order the sender stored them in is the order they must arrive in.
    let sent = pair.alice.messages_in("bob", "outgoing");
    let ids: Vec<String> = sent
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 201);
    let received = assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    assert_eq!(proxy.refused_sends(), 1, "one Send was refused");
    assert_eq!(
        message_texts(&received),
        message_texts(&sent),
        "in the order they were sent"
    );
    for id in &ids {
        pair.alice.wait_status("bob", id, "delivered");
    }
}
