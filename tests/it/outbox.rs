//! Nothing waits silently (issue #16, item 4), through `chatctl` against real daemons and a
//! real relay: `chatctl outbox` lists what is not sent with why it waits, `outbox cancel`
//! fails a queued message as cancelled, `outbox retry` tries at once, `resend` sends a failed
//! message's text again, a recipient the relay does not know fails the message with that
//! reason, and `send --wait` says what is true when it gives up.

use serde_json::Value;
use tests::{Pair, RelayProcess, run_chatctl, wait_for};

/// The message `id` of `conversation`, as the history has it.
fn message(pair: &Pair, conversation: &str, id: &str) -> Value {
    pair.alice
        .messages_in(conversation, "outgoing")
        .into_iter()
        .find(|m| m["message_id"] == id)
        .unwrap_or_else(|| panic!("message {id} is not in the history"))
}

/// `chatctl send TO TEXT --json` from alice; the new message's id.
fn chatctl_send(pair: &Pair, to: &str, text: &str) -> String {
    let sent = run_chatctl(&pair.alice.socket(), &["--json", "send", to, text])
        .expect_code(0)
        .json();
    sent["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {sent}"))
        .to_owned()
}

/// While the relay is down, `chatctl outbox` lists both queued messages with their recipient,
/// age and reason; `outbox cancel` takes the first out (it is `failed`, "cancelled", and
/// cannot be cancelled again); `resend` refuses a message that did not fail and sends a
/// cancelled one again as a new message; `outbox retry` sends what is left as soon as the
/// relay is back, and the outbox is then empty.
#[test]
fn outbox_lists_cancels_and_retries_and_resend_sends_again() {
    let mut relay = RelayProcess::start();
    let pair = Pair::start(&relay.url());
    let socket = pair.alice.socket();
    relay.kill();
    wait_for("alice to notice the relay is gone", || {
        let status = pair.alice.call("daemon.status", serde_json::json!({}));
        (status["connection"] != "connected").then_some(())
    });
    let first = chatctl_send(&pair, "bob", "first, to be cancelled");
    let second = chatctl_send(&pair, "bob", "second, to be retried");

    let list = run_chatctl(&socket, &["--json", "outbox"])
        .expect_code(0)
        .json();
    let messages = list["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {list}"));
    let ids: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()], "{list}");
    for entry in messages {
        assert_eq!(entry["conversation"], "bob", "{entry}");
        assert_eq!(entry["relay"], relay.url().as_str(), "{entry}");
        assert_eq!(entry["state"], "waiting", "{entry}");
        assert!(entry["age_ms"].is_u64(), "{entry}");
        assert!(entry["attempts"].is_u64(), "{entry}");
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!("the relay {}", relay.url())),
            "the reason names the relay that cannot be reached: {entry}"
        );
    }
    let human = run_chatctl(&socket, &["outbox"]).expect_code(0).stdout;
    assert!(
        human.contains(&first) && human.contains("to bob"),
        "{human}"
    );
    assert!(human.contains("waiting: "), "{human}");

    let cancelled = run_chatctl(&socket, &["outbox", "cancel", &first]).expect_code(0);
    assert!(
        cancelled.stdout.contains("cancelled"),
        "{}",
        cancelled.stdout
    );
    let record = message(&pair, "bob", &first);
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["failure"], "cancelled", "{record}");
    let again = run_chatctl(&socket, &["--json", "outbox", "cancel", &first]).expect_code(1);
    assert_eq!(
        again.json()["error"]["kind"],
        "wrong_message_state",
        "{}",
        again.stdout
    );
    let unknown = "0".repeat(32);
    run_chatctl(&socket, &["outbox", "cancel", &unknown]).expect_code(5);
    run_chatctl(&socket, &["outbox", "cancel", "not-an-id"]).expect_code(2);

    // Only a failed message can be resent; the cancelled one goes as a new message.
    let refused = run_chatctl(&socket, &["--json", "resend", &second]).expect_code(1);
    assert_eq!(
        refused.json()["error"]["kind"],
        "wrong_message_state",
        "{}",
        refused.stdout
    );
    let resent = run_chatctl(&socket, &["--json", "resend", &first])
        .expect_code(0)
        .json();
    let third = resent["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {resent}"))
        .to_owned();
    assert_ne!(third, first);
    assert_eq!(resent["conversation"], "bob", "{resent}");
    let list = run_chatctl(&socket, &["--json", "outbox"])
        .expect_code(0)
        .json();
    let ids: Vec<&str> = list["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["message_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [second.as_str(), third.as_str()], "{list}");

    relay.restart();
    let retried = run_chatctl(&socket, &["--json", "outbox", "retry"])
        .expect_code(0)
        .json();
    assert_eq!(retried["messages"], 2, "{retried}");
    pair.alice.wait_status("bob", &second, "sent");
    pair.alice.wait_status("bob", &third, "sent");
    let texts: Vec<String> = pair
        .bob
        .wait_incoming("alice", 2)
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(texts, ["second, to be retried", "first, to be cancelled"]);
    let empty = run_chatctl(&socket, &["outbox"]).expect_code(0).stdout;
    assert!(empty.contains("the outbox is empty"), "{empty}");
    run_chatctl(&socket, &["outbox", "retry", &second]).expect_code(1);
}

/// A relay that does not know the recipient (its relay lost its account: its storage wiped,
/// a fresh relay on the same address) answers `not_found`: the message fails at once with that
/// reason instead of staying queued, and `send --wait` says so.
#[test]
fn a_recipient_the_relay_does_not_know_fails_with_the_reason() {
    let mut relay = RelayProcess::start();
    let mut pair = Pair::start(&relay.url());
    let socket = pair.alice.socket();
    pair.bob.kill();
    relay.kill();
    std::fs::remove_dir_all(relay.data_dir()).unwrap_or_else(|e| panic!("{e}"));
    relay.restart();
    pair.alice.wait_connected();
    let failed = run_chatctl(
        &socket,
        &[
            "send",
            "bob",
            "into the void",
            "--wait",
            "sent",
            "--timeout",
            "20",
        ],
    )
    .expect_code(1);
    assert!(
        failed.stderr.contains("failed") && failed.stderr.contains("has no mailbox"),
        "{}",
        failed.stderr
    );
    let list = run_chatctl(&socket, &["--json", "outbox"])
        .expect_code(0)
        .json();
    assert_eq!(list["messages"], serde_json::json!([]), "{list}");
    let history = pair.alice.messages_in("bob", "outgoing");
    let last = history.last().unwrap_or_else(|| panic!("no message"));
    assert_eq!(last["status"], "failed", "{last}");
    let failure = last["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("not_found") && failure.contains(&relay.url()),
        "{failure}"
    );
}

/// `send --wait` that gives up says what is true: a message the relay cannot take yet is
/// queued and retried, with the reason; a delivered one waits only for its reader, and
/// nothing is retried.
#[test]
fn send_wait_says_what_is_true_when_it_gives_up() {
    let mut relay = RelayProcess::start();
    let pair = Pair::start(&relay.url());
    let socket = pair.alice.socket();

    let delivered = run_chatctl(
        &socket,
        &[
            "send",
            "bob",
            "read me",
            "--wait",
            "read",
            "--timeout",
            "10",
        ],
    )
    .expect_code(7);
    let id = pair.alice.messages_in("bob", "outgoing")[0]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    pair.alice.wait_status("bob", &id, "delivered");
    // Delivered within the 10 s (or, on a machine slow enough, at least at the relay): in
    // both cases nothing is retried, and it says so.
    assert!(
        (delivered.stderr.contains("it is delivered") || delivered.stderr.contains("it is sent"))
            && delivered.stderr.contains("nothing is being retried"),
        "{}",
        delivered.stderr
    );
    assert!(
        !delivered.stderr.contains("keeps trying"),
        "{}",
        delivered.stderr
    );

    relay.kill();
    wait_for("alice to notice the relay is gone", || {
        let status = pair.alice.call("daemon.status", serde_json::json!({}));
        (status["connection"] != "connected").then_some(())
    });
    let queued = run_chatctl(
        &socket,
        &["send", "bob", "later", "--wait", "sent", "--timeout", "1"],
    )
    .expect_code(7);
    assert!(
        queued
            .stderr
            .contains("it is still queued, and chatd keeps trying: ")
            && queued.stderr.contains(&relay.url()),
        "{}",
        queued.stderr
    );
}
