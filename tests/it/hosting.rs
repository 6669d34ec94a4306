//! Relays inside daemons: `--host-relay` serves peers directly, and with no relay configured
//! daemons share the embedded relay that the first of them hosts.

use serde_json::json;
use tests::{DaemonProcess, free_addr, wait_for};

fn exchange(alice: &DaemonProcess, bob: &DaemonProcess, alice_address: &str) {
    bob.call(
        "contacts.add",
        json!({ "alias": "alice", "target": alice_address }),
    );
    bob.call(
        "messages.send",
        json!({ "to": "alice", "text": "over a hosted relay" }),
    );
    wait_for("alice to receive", || {
        let list = alice.call("conversations.list", json!({}));
        let last = list["conversations"].get(0)?["last_message"]["text"].clone();
        (last == "over a hosted relay").then_some(())
    });
}

#[test]
fn a_daemon_hosts_a_relay_for_its_peers() {
    let addr = free_addr().to_string();
    let alice = DaemonProcess::start_without_relay(&["--host-relay", &addr]);
    let status = alice.call("daemon.status", json!({}));
    let url = format!("ws://{addr}/v1");
    assert_eq!(status["hosted_relay"], url.as_str());
    assert_eq!(
        status["relay_url"],
        url.as_str(),
        "with no --relay it uses its own"
    );
    let a = alice.create("Alice");
    let bob = DaemonProcess::start(&url);
    bob.create("Bob");
    exchange(&alice, &bob, &a.address);
}

#[test]
fn daemons_without_a_relay_share_the_embedded_one() {
    let addr = free_addr().to_string();
    let alice = DaemonProcess::start_without_relay(&["--embedded-relay-addr", &addr]);
    let bob = DaemonProcess::start_without_relay(&["--embedded-relay-addr", &addr]);
    let url = format!("ws://{addr}/v1");
    assert_eq!(
        alice.call("daemon.status", json!({}))["hosted_relay"],
        url.as_str()
    );
    assert_eq!(
        bob.call("daemon.status", json!({}))["hosted_relay"],
        serde_json::Value::Null,
        "the second daemon uses the first one's relay"
    );
    let a = alice.create("Alice");
    bob.create("Bob");
    exchange(&alice, &bob, &a.address);
}
