//! Tests that fail, or cannot run in reasonable time, against today's daemon. This file is not
//! registered in `main.rs`; once chatd is fixed, move each test to its module (named in its doc
//! comment) and register that.
//!
//! - `a_handle_taken_over_by_a_new_key_...`: passes, but slowly: the handle re-check window
//!   (`HANDLE_RECHECK_MS` in chatd/src/methods.rs) is a constant 30 s with no flag to shorten
//!   it, so the test waits it out. Once chatd has a flag for it, add the flag to
//!   `RECHECK_ARGS` and set `RECHECK_WINDOW` to just past it.
//! - `a_handle_can_be_released_...` and `params_by_position_...`: fail (see their doc
//!   comments).

use std::time::Duration;

use api::ErrorCode;
use serde_json::{Value, json};
use tests::{DaemonProcess, EventStream, RelayProcess, wait_for, wait_for_next_second};

/// Extra `chatd` arguments that shorten the handle re-check window (none exist yet).
const RECHECK_ARGS: &[&str] = &[];
/// Just past the re-check window that `RECHECK_ARGS` sets (chatd's default: 30 s).
const RECHECK_WINDOW: Duration = Duration::from_millis(30_500);

/// Belongs in `key_change.rs`.
#[test]
fn a_handle_taken_over_by_a_new_key_blocks_sending_until_the_contact_is_trusted() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start_with(&relay.url(), RECHECK_ARGS);
    let mut bob = DaemonProcess::start(&relay.url());
    alice.create("alice");
    let old_bob = bob.create("bob");
    bob.call("account.register_handle", json!({ "handle": "bob" }));
    let contact = alice.add_contact("bob", "@bob");
    assert_eq!(contact["handle"], "bob", "{contact}");
    assert_eq!(contact["address"], old_bob.address.as_str());

    let hello = alice.send("bob", "hello bob");
    alice.wait_status("bob", &hello, "delivered");
    let reply = bob.send("alice", "hello alice");
    bob.wait_status("alice", &reply, "delivered");

    // Bob gives the handle up and starts over: a new account (new key) claims it. (A second
    // must pass between a claim and a release, see `wait_for_next_second`.)
    wait_for_next_second();
    bob.call("account.release_handle", json!({ "handle": "bob" }));
    bob.stop();
    std::fs::remove_dir_all(bob.data_dir()).unwrap_or_else(|e| panic!("wiping bob's data: {e}"));
    bob.restart();
    let new_bob = bob.create("bob");
    assert_ne!(new_bob.address, old_bob.address);
    wait_for_next_second();
    bob.call("account.register_handle", json!({ "handle": "bob" }));

    let mut events = EventStream::subscribe(&alice, None);
    // Waiting out the window is not an assertion: the send below is what re-checks.
    std::thread::sleep(RECHECK_WINDOW);
    let refused = alice
        .try_call(
            "messages.send",
            json!({ "to": "bob", "text": "are you still bob?" }),
        )
        .err()
        .unwrap_or_else(|| panic!("a send to a handle that changed key was accepted"));
    assert_eq!(
        refused.app_code(),
        Some(ErrorCode::UntrustedKeyChange),
        "refused with 1011: {refused}"
    );
    let changed = events.until(|e| e["kind"] == "contact.key_changed");
    let changed = changed.last().cloned().unwrap_or(Value::Null);
    assert_eq!(changed["alias"], "bob");
    assert_eq!(changed["old_address"], old_bob.address.as_str());
    assert_eq!(changed["new_address"], new_bob.address.as_str());
    let details = alice.call("contacts.get", json!({ "contact": "bob" }));
    assert_eq!(details["trust"], "key_changed", "{details}");

    let trusted = alice.call("contacts.trust", json!({ "contact": "bob" }));
    assert_eq!(trusted["trust"], "unverified", "{trusted}");
    assert_eq!(trusted["address"], new_bob.address.as_str());
    let id = alice.send("bob", "hello new bob");
    alice.wait_status("bob", &id, "delivered");
    wait_for("the new bob to show the message", || {
        let list = bob.call("conversations.list", json!({}));
        list["conversations"]
            .as_array()?
            .iter()
            .any(|c| c["last_message"]["text"] == "hello new bob")
            .then_some(())
    });
}

/// Belongs in `key_change.rs`. Fails today: chatd signs a release with the current second, and
/// the relay wants it strictly newer than the handle's claim (protocol/SPEC.md, section 10.6),
/// so a release in the same second as the claim is refused: `account.release_handle` fails
/// with 1021 relay_error, "the release is older than the claim".
#[test]
fn a_handle_can_be_released_and_claimed_again_within_one_second() {
    let relay = RelayProcess::start();
    let bob = DaemonProcess::start(&relay.url());
    let carol = DaemonProcess::start(&relay.url());
    bob.create("bob");
    carol.create("carol");
    wait_for_next_second();
    bob.call("account.register_handle", json!({ "handle": "bobby" }));
    bob.call("account.release_handle", json!({ "handle": "bobby" }));
    carol.call("account.register_handle", json!({ "handle": "bobby" }));
}

/// Belongs in `rpc_abuse.rs`. Fails today: params are documented as objects, by name
/// (api/src/types.rs), but an array is bound to the fields in declaration order (serde's
/// derived `Deserialize` accepts a sequence for a struct), so `["alice", 5]` is taken as
/// `{"conversation": "alice", "limit": 5}` and field order silently becomes part of the API.
#[test]
fn params_by_position_are_refused_as_invalid_params() {
    let relay = RelayProcess::start();
    let daemon = DaemonProcess::start(&relay.url());
    let mut client = daemon.client();
    let response = client
        .send_raw_line(
            r#"{"jsonrpc":"2.0","id":1,"method":"messages.history","params":["alice",5]}"#,
        )
        .unwrap_or_else(|e| panic!("no answer: {e}"));
    assert_eq!(response["error"]["code"], -32602, "{response}");
}

/// Belongs in `chatctl.rs` (or a daemon test). Fails today: `account.info` always reports
/// `unprotected: false` (chatd/src/core/account.rs, `info`); only `account.create` and
/// `account.unlock` fill it in. So `chatctl whoami` hides that the keys are unprotected.
#[test]
fn account_info_reports_an_account_without_passphrase_as_unprotected() {
    let relay = RelayProcess::start();
    let daemon = DaemonProcess::start(&relay.url());
    let created = daemon.call(
        "account.create",
        json!({ "name": "dave", "no_passphrase": true }),
    );
    assert_eq!(created["unprotected"], true, "{created}");
    let info = daemon.call("account.info", json!({}));
    assert_eq!(info["unprotected"], true, "{info}");
}

/// Belongs in `chatctl.rs`. Fails today: a target that is neither a contact nor `@name` is
/// parsed as an address, so `chatctl send nobody hi` fails with 1012 invalid_address (exit 2,
/// "usage") where `chatctl --help` promises exit 5 for an unknown contact, as `history nobody`
/// gives.
#[test]
fn sending_to_an_unknown_alias_is_not_found() {
    let relay = RelayProcess::start();
    let daemon = DaemonProcess::start(&relay.url());
    daemon.create("erin");
    let error = daemon
        .try_call("messages.send", json!({ "to": "nobody", "text": "hi" }))
        .err()
        .unwrap_or_else(|| panic!("sent to nobody"));
    assert_eq!(error.app_code(), Some(ErrorCode::NotFound), "{error}");
    let sent = tests::run_chatctl(&daemon.socket(), &["send", "nobody", "hi"]);
    assert_eq!(sent.code, Some(5), "{}", sent.stderr);
}

/// Belongs in `chatctl.rs`. Fails today: `chatctl unlock` always asks for a passphrase and
/// refuses an empty one, so an account created with `init --no-passphrase` can only be unlocked
/// with a made-up passphrase file (chatd ignores its contents) or over RPC.
#[test]
fn chatctl_unlocks_an_account_created_without_passphrase() {
    let relay = RelayProcess::start();
    let daemon = DaemonProcess::start(&relay.url());
    let socket = daemon.socket();
    tests::run_chatctl(&socket, &["init", "--name", "Frank", "--no-passphrase"]).expect_code(0);
    tests::run_chatctl(&socket, &["lock"]).expect_code(0);
    tests::run_chatctl(&socket, &["unlock"]).expect_code(0);
}

/// Belongs in `delivery.rs`. Fails today (most runs; it depends on chatd's random backoff): a
/// message queued while earlier ones to the same contact wait out a retry overtakes them.
///
/// When a contact has no prekeys on the relay yet, `on_bundles` (chatd/src/core/messaging.rs)
/// puts the conversation's unsealed outbox entries into backoff (`not_before`), but an entry
/// queued afterwards has no `not_before`, so `seal_ready` seals and sends it at once, ahead of
/// the older ones. Here Alice's introduction and first message wait for Bob's prekeys; her
/// second message, sent once Bob is online, arrives first: Bob sees "second" before "first"
/// and, not knowing her name yet, files her under an alias made from her address (the same
/// happens when `chatctl init`, `contact add` and `send` run in a row against a fresh peer).
#[test]
fn a_message_does_not_overtake_earlier_ones_waiting_for_the_recipients_prekeys() {
    let mut relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let mut bob = DaemonProcess::start(&relay.url());
    alice.create("alice");
    // Bob's account is made while the relay is down, so it has no prekeys there yet.
    relay.kill();
    let bob_info = bob.call(
        "account.create",
        json!({ "name": "bob", "no_passphrase": true }),
    );
    bob.stop();
    relay.restart();
    alice.wait_connected();
    alice.add_contact("bob", bob_info["address"].as_str().unwrap_or_default());
    alice.send("bob", "first");
    // Let the outbox retry (and back off) a few times; not an assertion.
    std::thread::sleep(Duration::from_millis(1500));
    bob.restart_unlocked();
    alice.send("bob", "second");
    let conversation = wait_for("bob to receive both messages", || {
        let list = bob.call("conversations.list", json!({}));
        let first = list["conversations"].get(0)?.clone();
        (first["total"] == 2).then_some(first)
    });
    let name = conversation["conversation"].as_str().unwrap_or_default();
    let texts: Vec<Value> = bob
        .messages_in(name, "incoming")
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["first", "second"], "in the order they were sent");
    assert_eq!(name, "alice", "the introduction came first");
}

/// Belongs in `delivery.rs` (as the last check of
/// `messages_to_a_recipient_killed_before_its_acks_reached_the_relay_...`). Fails rarely (seen
/// once in about twenty loaded runs of the suite): a message the recipient stored just before
/// it was killed can stay "sent" for the sender forever.
///
/// chatd commits a received message (with the ratchet step) in one batch and queues its
/// delivery receipt in another (`pending_receipts`, flushed by the pump). sled's background
/// flush can make the first durable without the second; after the restart the relay delivers
/// the envelope again (never acked), the ratchet calls it a duplicate, and `receive_inner`
/// returns without a receipt (the content-level repeat path in `receive_text`, which does send
/// one, is never reached). Fix: queue the receipt in the message's batch, or answer a
/// duplicate envelope with a receipt.
#[test]
fn every_message_stored_before_a_recipient_crash_is_eventually_delivered() {
    let (_relay, proxy) = tests::WsProxy::relay();
    let mut pair = tests::Pair::start(&proxy.url());
    proxy.drop_acks(true);
    let mut ids = Vec::new();
    // Several crashes, each a chance to land between the two commits.
    for round in 0..3 {
        for i in 0..20 {
            ids.push(
                pair.alice
                    .send("bob", &format!("round {round} message {i}")),
            );
        }
        let before = ids.len() - 20;
        wait_for("some messages of this round to reach bob", || {
            let stored = pair.bob.find_conversation("alice")?["total"].as_u64()?;
            (stored > before as u64).then_some(())
        });
        pair.bob.kill();
        pair.bob.restart_unlocked();
    }
    proxy.drop_acks(false);
    pair.bob.restart_unlocked();
    tests::assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    for id in &ids {
        pair.alice.wait_status("bob", id, "delivered");
    }
}

/// Belongs in `delivery.rs` (as an order check in
/// `messages_sent_while_the_relay_is_killed_and_restarted_all_arrive_once`). Fails every run:
/// the message in flight when the relay connection dropped arrives after every message sent
/// later.
///
/// A `Send` that fails puts its outbox entries into backoff (`not_before`), while entries
/// queued later have none, so `start_sends` sends them first once the link is back. Order per
/// contact should hold across retries (hold back a conversation's later entries while an
/// earlier one waits).
#[test]
fn messages_in_flight_when_the_relay_dies_keep_their_order() {
    let mut relay = RelayProcess::start();
    let pair = tests::Pair::start(&relay.url());
    let texts: Vec<String> = (0..30).map(|i| format!("message {i:02}")).collect();
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        ids.push(pair.alice.send("bob", text));
        if i == 10 {
            relay.kill();
        }
        if i == 20 {
            relay.restart();
        }
    }
    let received =
        tests::assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    let got: Vec<&str> = received
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, texts, "in the order they were sent");
}

/// Belongs in `delivery.rs`. Seen to fail once, not reproduced since (cause not pinned down):
/// in a loaded run of the whole suite (`--test-threads 6`), three messages Alice sent one after
/// the other without waiting were stored by Bob out of order ("to bob 2" before "to bob 1"),
/// all delivered, with no daemon or relay restart.
///
/// A likely mechanism: each `messages.send` is its own core round, so each message becomes its
/// own `Send` group, and `start_sends` runs each group in a task of its own (up to
/// `MAX_SENDS_IN_FLIGHT` = 16 at once); nothing orders those tasks, so a later one can hand its
/// frame to the link first. The registered tests send one message at a time where they check
/// order (`DaemonProcess::send_one_by_one`).
#[test]
fn messages_sent_in_quick_succession_arrive_in_order() {
    let relay = RelayProcess::start();
    let pair = tests::Pair::start(&relay.url());
    let texts: Vec<String> = (0..100).map(|i| format!("message {i:03}")).collect();
    let ids: Vec<String> = texts.iter().map(|t| pair.alice.send("bob", t)).collect();
    let received =
        tests::assert_received_exactly_once(&pair.alice, "bob", &pair.bob, "alice", &ids);
    let got: Vec<&str> = received
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, texts, "in the order they were sent");
}
