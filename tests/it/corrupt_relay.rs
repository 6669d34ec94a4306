//! A relay (or network) that corrupts one envelope in transit: the recipient drops it without
//! showing anything, the session survives, and later messages flow both ways.

use serde_json::json;
use tests::{EventStream, Pair, WsProxy, is_received, received_counts, wait_for};

#[test]
fn a_corrupted_envelope_is_rejected_and_later_messages_still_arrive_both_ways() {
    let (_relay, proxy) = WsProxy::relay();
    let pair = Pair::start(&proxy.url());
    let (alice, bob) = (&pair.alice, &pair.bob);

    // Sessions both ways, and nothing left in flight once Bob has his receipt.
    let hello = alice.send("bob", "hello");
    alice.wait_status("bob", &hello, "delivered");
    let reply = bob.send("alice", "reply");
    bob.wait_status("alice", &reply, "delivered");

    proxy.corrupt_next_deliver();
    let lost = alice.send("bob", "corrupted in transit");
    wait_for("the proxy to corrupt the envelope", || {
        (proxy.corrupted() == 1).then_some(())
    });
    let after = alice.send("bob", "after the corruption");
    alice.wait_status("bob", &after, "delivered");

    let texts: Vec<String> = bob
        .messages_in("alice", "incoming")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        texts,
        ["hello", "after the corruption"],
        "the corrupted message is not shown"
    );
    let status = alice
        .messages_in("bob", "outgoing")
        .iter()
        .find(|m| m["message_id"] == lost.as_str())
        .map(|m| m["status"].clone());
    assert_eq!(
        status,
        Some(json!("sent")),
        "no delivery receipt for what Bob never read"
    );

    // The session is intact: Bob answers, and Alice reads it.
    let answer = bob.send("alice", "still here");
    bob.wait_status("alice", &answer, "delivered");
    assert_eq!(
        alice
            .messages_in("bob", "incoming")
            .last()
            .map(|m| m["text"].clone()),
        Some(json!("still here"))
    );
    let status = bob.call("daemon.status", json!({}));
    assert_eq!(status["connection"], "connected", "{status}");

    let events = EventStream::subscribe(bob, Some(0)).until(|e| is_received(e, &after));
    let counts = received_counts(&events);
    assert_eq!(
        counts.get(&lost),
        None,
        "the corrupted message was never announced"
    );
    assert_eq!(counts.get(&hello), Some(&1));
    assert_eq!(counts.get(&after), Some(&1));
}
