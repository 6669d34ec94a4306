//! Message requests and one-use invites through real daemons and a real relay (issue #16,
//! item 2): a stranger's first message lands in the requests list, not the contacts, gets a
//! delivery receipt but no read receipt until accepted; decline forgets it, block drops what it
//! sends (also after a restart); contacts you add and invites skip the list; a second
//! acceptance of a one-use invite is refused by the inviter's daemon, and the second acceptor
//! is told.

use api::ErrorCode;
use serde_json::{Value, json};
use tests::{DaemonProcess, EventStream, RelayProcess, run_chatctl, wait_for};

/// The requests `daemon` lists (`blocked`: the blocked ones).
fn requests(daemon: &DaemonProcess, blocked: bool) -> Vec<Value> {
    let list = daemon.call("requests.list", json!({ "blocked": blocked }));
    list["requests"].as_array().cloned().unwrap_or_default()
}

/// The request from `address`, once it is listed.
fn wait_request(daemon: &DaemonProcess, address: &str) -> Value {
    wait_for("a message request", || {
        requests(daemon, false)
            .into_iter()
            .find(|r| r["contact"]["address"] == address)
    })
}

fn contact_aliases(daemon: &DaemonProcess) -> Vec<String> {
    let list = daemon.call("contacts.list", json!({}));
    list["contacts"]
        .as_array()
        .map(|contacts| {
            contacts
                .iter()
                .filter_map(|c| c["alias"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The texts of `conversation`'s incoming messages.
fn incoming_texts(daemon: &DaemonProcess, conversation: &str) -> Vec<String> {
    daemon
        .messages_in(conversation, "incoming")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_strangers_first_message_is_a_request_with_no_read_receipt_until_accepted() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let a = alice.create("alice");
    let b = bob.create("Bob Stranger");
    let mut events = EventStream::subscribe(&alice, None);

    // Bob adds Alice himself: she is his contact at once. He is a stranger to her.
    bob.add_contact("alice", &a.address);
    let first = bob.send("alice", "hello, we met at the conference");
    let request = wait_request(&alice, &b.address);
    let alias = request["contact"]["alias"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(alias, "bob-stranger", "{request}");
    assert_eq!(request["contact"]["request"], true, "{request}");
    assert_eq!(request["contact"]["display_name"], "Bob Stranger");
    wait_for("the request's first message", || {
        (incoming_texts(&alice, &alias) == ["hello, we met at the conference"]).then_some(())
    });
    let events = events.until(|e| e["kind"] == "message.received");
    let announced = events
        .iter()
        .find(|e| e["kind"] == "request.received")
        .unwrap_or_else(|| panic!("no request.received before the message: {events:?}"));
    assert_eq!(announced["contact"]["address"], b.address.as_str());
    let received = events.last().cloned().unwrap_or_default();
    assert_eq!(received["from_request"], true, "{received}");

    // Not a contact, not a conversation; `chatctl requests` shows it.
    assert!(contact_aliases(&alice).is_empty());
    assert!(alice.find_conversation(&alias).is_none());
    let out = run_chatctl(&alice.socket(), &["requests"]).expect_code(0);
    assert!(
        out.stdout.contains(&alias) && out.stdout.contains("we met at the conference"),
        "{}",
        out.stdout
    );
    // Writing to a request is refused until it is accepted.
    let refused = alice
        .try_call("messages.send", json!({ "to": alias, "text": "hi?" }))
        .err()
        .unwrap_or_else(|| panic!("a send to a message request was accepted"));
    assert_eq!(
        refused.app_code(),
        Some(ErrorCode::MessageRequest),
        "{refused}"
    );
    let out = run_chatctl(&alice.socket(), &["send", &alias, "hi?"]).expect_code(1);
    assert!(out.stderr.contains("requests accept"), "{}", out.stderr);

    // A delivery receipt goes back; a read receipt does not. Alice reads the first message;
    // then Bob's second message is delivered: its delivery receipt left Alice after any read
    // receipt for the first would have (one conversation's outbox is first in, first out).
    bob.wait_status("alice", &first, "delivered");
    alice.call("messages.mark_read", json!({ "conversation": alias }));
    let second = bob.send("alice", "are you there?");
    bob.wait_status("alice", &second, "delivered");
    assert_eq!(bob.status_of("alice", &first), "delivered");

    // Accepting makes Bob a contact (renamed on the way); he gets Alice's introduction and
    // the read receipt held back.
    let accepted = alice.call(
        "requests.accept",
        json!({ "contact": alias, "alias": "bob" }),
    );
    assert_eq!(accepted["alias"], "bob");
    assert!(accepted.get("request").is_none(), "{accepted}");
    assert_eq!(contact_aliases(&alice), ["bob"]);
    assert!(requests(&alice, false).is_empty());
    bob.wait_status("alice", &first, "read");
    assert_eq!(
        incoming_texts(&alice, "bob"),
        ["hello, we met at the conference", "are you there?"],
        "the request's messages are the contact's conversation"
    );
    let reply = alice.send("bob", "hi Bob");
    alice.wait_status("bob", &reply, "delivered");
    wait_for("Bob to show Alice's reply", || {
        incoming_texts(&bob, "alice")
            .contains(&"hi Bob".to_owned())
            .then_some(())
    });
}

#[test]
fn a_declined_request_is_forgotten_and_a_blocked_one_stays_blocked_after_a_restart() {
    let relay = RelayProcess::start();
    let mut alice = DaemonProcess::start(&relay.url());
    let carol = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let a = alice.create("alice");
    let c = carol.create("carol");
    let b = bob.create("bob");
    // Bob is Alice's contact (she added him); his messages to her are the barrier below.
    alice.add_contact("bob", &b.address);
    bob.accept_request("alice", &a.address);
    carol.add_contact("alice", &a.address);

    carol.send("alice", "one");
    wait_request(&alice, &c.address);
    wait_for("carol's first message", || {
        (incoming_texts(&alice, "carol") == ["one"]).then_some(())
    });

    // Decline: the request and its messages are forgotten; nothing is sent to Carol.
    let mut events = EventStream::subscribe(&alice, None);
    run_chatctl(&alice.socket(), &["requests", "decline", "carol"]).expect_code(0);
    events.until(|e| e["kind"] == "contact.removed" && e["alias"] == "carol");
    assert!(requests(&alice, false).is_empty());
    let gone = alice
        .try_call("messages.history", json!({ "conversation": "carol" }))
        .err()
        .unwrap_or_else(|| panic!("a declined request's history is still there"));
    assert_eq!(gone.app_code(), Some(ErrorCode::NotFound), "{gone}");

    // Carol writes again (on the same session): a new request, with only the new message.
    // (No introduction came with it, so it is named after her address.)
    carol.send("alice", "two");
    let again = wait_request(&alice, &c.address);
    let carol_alias = again["contact"]["alias"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_for("carol's second message", || {
        (incoming_texts(&alice, &carol_alias) == ["two"]).then_some(())
    });

    // Block: the request is kept, blocked, and what Carol sends is dropped.
    let blocked = run_chatctl(
        &alice.socket(),
        &["--json", "requests", "block", &carol_alias],
    )
    .expect_code(0)
    .json();
    assert_eq!(blocked["blocked"], true, "{blocked}");
    let announced = events.until(|e| e["kind"] == "contact.block_changed");
    let announced = announced.last().cloned().unwrap_or_default();
    assert_eq!(
        announced["contact"]["alias"],
        carol_alias.as_str(),
        "{announced}"
    );
    assert_eq!(announced["contact"]["blocked"], true, "{announced}");
    assert_eq!(announced["contact"]["request"], true, "{announced}");
    assert!(requests(&alice, false).is_empty());
    assert_eq!(requests(&alice, true).len(), 1);
    let listed = run_chatctl(&alice.socket(), &["blocked"]).expect_code(0);
    assert!(
        listed.stdout.contains("blocked message requests") && listed.stdout.contains(&carol_alias),
        "{}",
        listed.stdout
    );
    let dropped_while_blocked = |alice: &DaemonProcess, text: &str, barrier: &str| {
        // Carol's envelope is in Alice's mailbox before Bob's: when Bob's message is there,
        // Carol's was handled (SPEC.md 8.1, order).
        let id = carol.send("alice", text);
        carol.wait_status("alice", &id, "sent");
        let barrier_id = bob.send("alice", barrier);
        bob.wait_status("alice", &barrier_id, "delivered");
        assert_eq!(
            incoming_texts(alice, &carol_alias),
            ["two"],
            "{text} arrived"
        );
        assert_eq!(carol.status_of("alice", &id), "sent", "{text} was answered");
    };
    dropped_while_blocked(&alice, "three", "barrier one");

    // Still blocked after a restart.
    alice.restart_unlocked();
    alice.wait_connected();
    assert_eq!(requests(&alice, true).len(), 1);
    dropped_while_blocked(&alice, "four", "barrier two");

    // Unblocked, it is an open request again. (Carol has sent five envelopes, her
    // introduction among them: the relay's burst for strangers, so she writes no more here.)
    alice.call("contacts.unblock", json!({ "contact": carol_alias }));
    assert_eq!(requests(&alice, false).len(), 1);
    assert_eq!(requests(&alice, true).len(), 0);
}

#[test]
fn an_invite_is_one_use_and_the_second_acceptor_is_told() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let carol = DaemonProcess::start(&relay.url());
    alice.create("alice");
    bob.create("bob");
    let c = carol.create("carol");
    let code = alice.call("invites.create", json!({}))["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Bob accepts first: each is the other's contact, no request on either side.
    bob.call("invites.accept", json!({ "code": code }));
    wait_for("alice to add bob from her invite", || {
        contact_aliases(&alice)
            .contains(&"bob".to_owned())
            .then_some(())
    });
    assert!(requests(&alice, false).is_empty());
    let hello = bob.send("alice", "hello from bob");
    bob.wait_status("alice", &hello, "delivered");

    // Carol accepts the same code: Alice's daemon refuses it, and Carol is told.
    let mut events = EventStream::subscribe(&carol, None);
    carol.call("invites.accept", json!({ "code": code }));
    let refused = events.until(|e| e["kind"] == "invite.refused");
    let refused = refused.last().cloned().unwrap_or_default();
    assert_eq!(refused["alias"], "alice", "{refused}");
    assert_eq!(refused["reason"], "it was already used", "{refused}");
    let shown = carol.call("contacts.get", json!({ "contact": "alice" }));
    assert_eq!(shown["invite_refused"], "it was already used", "{shown}");
    let send = carol
        .try_call("messages.send", json!({ "to": "alice", "text": "me too?" }))
        .err()
        .unwrap_or_else(|| panic!("a send after a refused invite was accepted"));
    assert_eq!(send.app_code(), Some(ErrorCode::InviteRefused), "{send}");
    let out = run_chatctl(&carol.socket(), &["send", "alice", "me too?"]).expect_code(1);
    assert!(out.stderr.contains("new invite"), "{}", out.stderr);

    // On Alice's side Carol is a message request, not a contact.
    let request = wait_request(&alice, &c.address);
    assert_eq!(request["contact"]["alias"], "carol", "{request}");
    assert_eq!(contact_aliases(&alice), ["bob"]);

    // Alice adds Carol herself (by address): that accepts the request; her introduction
    // reaches Carol, whose refusal is over.
    alice.add_contact("carol", &c.address);
    assert!(requests(&alice, false).is_empty());
    wait_for("carol to learn that alice added her", || {
        let shown = carol.call("contacts.get", json!({ "contact": "alice" }));
        shown.get("invite_refused").is_none().then_some(())
    });
    let now = carol.send("alice", "thanks for adding me");
    carol.wait_status("alice", &now, "delivered");
}
