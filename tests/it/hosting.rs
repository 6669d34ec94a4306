//! Relays inside daemons: `--host-relay` serves peers directly, and with no relay configured
//! daemons share the user's local relay, which one of them hosts.

use serde_json::json;
use tests::{DaemonProcess, free_addr, private_dir, wait_for};

fn exchange(alice: &DaemonProcess, bob: &DaemonProcess, alice_address: &str) {
    bob.call(
        "contacts.add",
        json!({ "alias": "alice", "target": alice_address }),
    );
    bob.call(
        "messages.send",
        json!({ "to": "alice", "text": "over a hosted relay" }),
    );
    // Bob is a stranger to Alice: his message is a message request.
    wait_for("alice to receive", || {
        let list = alice.call("requests.list", json!({}));
        let last = list["requests"].get(0)?["last_message"]["text"].clone();
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
    assert_eq!(status["relay_kind"], "hosted");
    assert_eq!(status["local_relay"], serde_json::Value::Null);
    let a = alice.create("Alice");
    let bob = DaemonProcess::start(&url);
    bob.create("Bob");
    exchange(&alice, &bob, &a.address);
}

/// With no relay configured, daemons share the user's local relay: the first hosts it with
/// its state in the local relay's directory, the second uses it, and both say who hosts it.
/// (Take-over when the host stops: `local_relay.rs`.)
#[test]
fn daemons_without_a_relay_share_the_users_local_relay() {
    let temp = private_dir();
    let dir = temp.path().join("local-relay").display().to_string();
    let addr = free_addr().to_string();
    let alice = DaemonProcess::start_without_relay(&[
        "--local-relay-dir",
        &dir,
        "--embedded-relay-addr",
        &addr,
    ]);
    let url = format!("ws://{addr}/v1");
    let hosting = wait_for("alice to host the local relay", || {
        let status = alice.call("daemon.status", json!({}));
        (status["local_relay"]["hosted_here"] == true).then_some(status)
    });
    assert_eq!(hosting["hosted_relay"], url.as_str());
    assert_eq!(hosting["relay_kind"], "local");
    assert_eq!(hosting["local_relay"]["dir"], dir.as_str());
    // Bob finds the address alice recorded in the directory.
    let bob = DaemonProcess::start_without_relay(&["--local-relay-dir", &dir]);
    let status = bob.call("daemon.status", json!({}));
    assert_eq!(status["relay_url"], url.as_str(), "{status}");
    assert_eq!(
        status["hosted_relay"],
        serde_json::Value::Null,
        "the second daemon uses the first one's relay"
    );
    assert_eq!(
        status["local_relay"]["host_pid"],
        serde_json::json!(alice.pid())
    );
    let a = alice.create("Alice");
    bob.create("Bob");
    exchange(&alice, &bob, &a.address);
    assert!(
        std::path::Path::new(&dir).join("store").is_dir(),
        "the relay's state is in the local relay's directory"
    );
    assert!(!alice.data_dir().join("embedded-relay").exists());
}
