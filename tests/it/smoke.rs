//! Two daemons and a relay, as real processes: the first message each way (the first one a
//! message request the recipient accepts), with receipts.

use serde_json::json;
use tests::{DaemonProcess, RelayProcess, wait_for};

#[test]
fn two_daemons_exchange_messages_with_receipts() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let alice_info = alice.create("Alice");
    bob.create("Bob");
    bob.call(
        "contacts.add",
        json!({ "alias": "alice", "target": alice_info.address }),
    );
    let sent = bob.call(
        "messages.send",
        json!({ "to": "alice", "text": "hello alice" }),
    );
    let id = sent["message_id"].as_str().unwrap_or_default().to_owned();
    // Bob is a stranger to Alice: his first message is a message request, which she accepts.
    let request = wait_for("alice to receive", || {
        let list = alice.call("requests.list", json!({}));
        let first = list["requests"].get(0)?.clone();
        (first["unread"] == 1).then_some(first["contact"]["alias"].clone())
    });
    assert_eq!(request, "bob", "the introduction names the sender");
    alice.call("requests.accept", json!({ "contact": "bob" }));
    let history = alice.call("messages.history", json!({ "conversation": "bob" }));
    assert_eq!(history["messages"][0]["text"], "hello alice");
    wait_for("bob to see the delivery receipt", || {
        let history = bob.call("messages.history", json!({ "conversation": "alice" }));
        let message = history["messages"].get(0)?.clone();
        (message["message_id"] == id.as_str() && message["status"] == "delivered").then_some(())
    });
    alice.call("messages.mark_read", json!({ "conversation": "bob" }));
    wait_for("bob to see the read receipt", || {
        let history = bob.call("messages.history", json!({ "conversation": "alice" }));
        (history["messages"][0]["status"] == "read").then_some(())
    });
    alice.call("messages.send", json!({ "to": "Bob", "text": "hi bob" }));
    wait_for("bob to receive the answer", || {
        let history = bob.call("messages.history", json!({ "conversation": "alice" }));
        (history["messages"][1]["text"] == "hi bob").then_some(())
    });
}
