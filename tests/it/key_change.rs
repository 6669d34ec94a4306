//! Key changes through real daemons (issue #16, item 3): a contact whose handle a new key
//! took over shows both keys and the new key's safety number; verifying checks the new key
//! (the old key's number is refused, saying why) and accepts it; while the change waits, the
//! new key's messages arrive and get delivery receipts, and read receipts are held until the
//! new key is accepted.

use api::ErrorCode;
use serde_json::{Value, json};
use tests::{
    DaemonProcess, EventStream, RelayProcess, run_chatctl, wait_for, wait_for_next_second,
};

/// Re-check a handle-bound contact's key before every send (the default is every 30 s).
const RECHECK_ARGS: &[&str] = &["--handle-recheck-secs", "0"];

#[test]
fn a_changed_key_is_shown_verified_against_the_new_number_and_receipts_wait_for_it() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start_with(&relay.url(), RECHECK_ARGS);
    let mut bob = DaemonProcess::start(&relay.url());
    let a = alice.create("alice");
    let old_bob = bob.create("bob");
    bob.call("account.register_handle", json!({ "handle": "bob" }));
    alice.add_contact("bob", "@bob");
    let hello = alice.send("bob", "hello bob");
    alice.wait_status("bob", &hello, "delivered");
    let old_number = alice.call("contacts.get", json!({ "contact": "bob" }))["safety_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Bob starts over: a new account (new key) claims his handle.
    wait_for_next_second();
    bob.call("account.release_handle", json!({ "handle": "bob" }));
    bob.stop();
    std::fs::remove_dir_all(bob.data_dir()).unwrap_or_else(|e| panic!("wiping bob's data: {e}"));
    bob.restart();
    let new_bob = bob.create("bob");
    wait_for_next_second();
    bob.call("account.register_handle", json!({ "handle": "bob" }));

    // Alice's next send finds the change and is refused.
    let mut events = EventStream::subscribe(&alice, None);
    let refused = alice
        .try_call(
            "messages.send",
            json!({ "to": "bob", "text": "still you?" }),
        )
        .err()
        .unwrap_or_else(|| panic!("a send to a changed key was accepted"));
    assert_eq!(refused.app_code(), Some(ErrorCode::UntrustedKeyChange));
    events.until(|e| e["kind"] == "contact.key_changed");

    // The new Bob writes to Alice; the number both sides must compare is the new key's.
    bob.add_contact("alice", &a.address);
    let new_number = bob.call("contacts.get", json!({ "contact": "alice" }))["safety_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(new_number, old_number);
    let details = alice.call("contacts.get", json!({ "contact": "bob" }));
    assert_eq!(details["trust"], "key_changed", "{details}");
    assert_eq!(details["address"], old_bob.address.as_str(), "{details}");
    assert_eq!(
        details["key_change"]["old_address"],
        old_bob.address.as_str()
    );
    assert_eq!(
        details["key_change"]["new_address"],
        new_bob.address.as_str()
    );
    assert_eq!(details["safety_number"], new_number.as_str(), "{details}");
    // The new key names the contact too.
    let by_new = alice.call("contacts.get", json!({ "contact": new_bob.address }));
    assert_eq!(by_new["alias"], "bob");

    let shown = run_chatctl(&alice.socket(), &["contact", "show", "bob"]).expect_code(0);
    let first_group = &new_number[..5];
    for expected in [
        "KEY CHANGED",
        old_bob.address.as_str(),
        new_bob.address.as_str(),
        "safety number of the NEW key",
        first_group,
    ] {
        assert!(
            shown.stdout.contains(expected),
            "{expected:?} in:\n{}",
            shown.stdout
        );
    }
    assert!(
        !shown.stdout.contains(&old_number[..20]),
        "the old number is not shown as the one to compare:\n{}",
        shown.stdout
    );

    // While the change waits: the new key's messages arrive in Bob's conversation, marked,
    // and get delivery receipts.
    let first = bob.send("alice", "it is me, new phone");
    let received = events.until(|e| e["kind"] == "message.received");
    let received = received.last().cloned().unwrap_or(Value::Null);
    assert_eq!(received["message"]["conversation"], "bob", "{received}");
    assert_eq!(received["from_changed_key"], true, "{received}");
    bob.wait_status("alice", &first, "delivered");
    assert_eq!(
        alice.messages_in("bob", "incoming")[0]["text"],
        "it is me, new phone"
    );
    // Alice reads it: the read receipt is held. A later message's delivery receipt, queued
    // after it, arriving first shows it did not go.
    run_chatctl(&alice.socket(), &["read", "bob"]).expect_code(0);
    let second = bob.send("alice", "did you get it?");
    bob.wait_status("alice", &second, "delivered");
    assert_eq!(bob.status_of("alice", &first), "delivered");

    // The old key's number no longer verifies, and the error says why.
    let out = run_chatctl(
        &alice.socket(),
        &["contact", "verify", "bob", "--safety-number", &old_number],
    )
    .expect_code(1);
    assert!(out.stderr.contains("old key"), "{}", out.stderr);
    let error = alice
        .try_call(
            "contacts.verify",
            json!({ "contact": "bob", "safety_number": old_number }),
        )
        .err()
        .unwrap_or_else(|| panic!("the old key's number verified"));
    assert_eq!(error.app_code(), Some(ErrorCode::SafetyNumberMismatch));
    assert_eq!(
        alice.call("contacts.get", json!({ "contact": "bob" }))["trust"],
        "key_changed"
    );

    // The new key's number verifies and accepts it; the held read receipt goes.
    let out = run_chatctl(
        &alice.socket(),
        &[
            "--json",
            "contact",
            "verify",
            "bob",
            "--safety-number",
            &new_number,
        ],
    )
    .expect_code(0);
    let verified = out.json();
    assert_eq!(verified["trust"], "verified", "{verified}");
    assert_eq!(verified["address"], new_bob.address.as_str(), "{verified}");
    bob.wait_status("alice", &first, "read");
    let details = alice.call("contacts.get", json!({ "contact": "bob" }));
    assert!(details.get("key_change").is_none(), "{details}");
    assert_eq!(details["safety_number"], new_number.as_str());

    // And Alice can write to the new key.
    let back = alice.send("bob", "welcome back");
    alice.wait_status("bob", &back, "delivered");
    wait_for("the new bob to show alice's message", || {
        bob.messages_in("alice", "incoming")
            .iter()
            .any(|m| m["text"] == "welcome back")
            .then_some(())
    });
}
