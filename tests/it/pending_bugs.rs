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
