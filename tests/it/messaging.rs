//! Two daemons and a relay, as real processes: messages both ways with delivery and read
//! receipts, unread counts, history paging with stable cursors, and the event stream (live, and
//! resumed with `since` after a reconnect).

use serde_json::{Value, json};
use tests::{EventStream, Pair, cursor, is_received, shared_relay};

#[test]
fn unread_counts_mark_read_and_receipts_work_both_ways() {
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);

    let texts: Vec<String> = (0..3).map(|i| format!("to bob {i}")).collect();
    let ids = alice.send_all("bob", &texts);
    for id in &ids {
        alice.wait_status("bob", id, "delivered");
    }
    let conversation = bob
        .find_conversation("alice")
        .unwrap_or_else(|| panic!("bob has no conversation with alice"));
    assert_eq!(conversation["unread"], 3, "{conversation}");
    assert_eq!(conversation["total"], 3, "{conversation}");
    assert_eq!(conversation["last_message"]["text"], "to bob 2");
    let received = bob.messages_in("alice", "incoming");
    let got: Vec<&str> = received
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, texts);
    assert!(received.iter().all(|m| m["read"] == false), "{received:?}");

    // Mark the first two read: two read receipts, one message still unread.
    let marked = bob.call(
        "messages.mark_read",
        json!({ "conversation": "alice", "up_to": ids[1] }),
    );
    assert_eq!(marked["marked"], 2);
    let conversation = bob
        .find_conversation("alice")
        .unwrap_or_else(|| panic!("bob lost the conversation"));
    assert_eq!(conversation["unread"], 1, "{conversation}");
    alice.wait_status("bob", &ids[0], "read");
    alice.wait_status("bob", &ids[1], "read");
    let statuses: Vec<Value> = alice
        .messages_in("bob", "outgoing")
        .iter()
        .map(|m| m["status"].clone())
        .collect();
    assert_eq!(
        statuses[2], "delivered",
        "the third was not read: {statuses:?}"
    );

    let marked = bob.call("messages.mark_read", json!({ "conversation": "alice" }));
    assert_eq!(marked["marked"], 1);
    let again = bob.call("messages.mark_read", json!({ "conversation": "alice" }));
    assert_eq!(again["marked"], 0, "marking read twice marks nothing");
    assert_eq!(
        bob.find_conversation("alice").map(|c| c["unread"].clone()),
        Some(json!(0))
    );
    alice.wait_status("bob", &ids[2], "read");

    // And the other way.
    let reply = bob.send("alice", "to alice");
    bob.wait_status("alice", &reply, "delivered");
    let conversation = alice
        .find_conversation("bob")
        .unwrap_or_else(|| panic!("alice has no conversation with bob"));
    assert_eq!(conversation["unread"], 1, "{conversation}");
    assert_eq!(conversation["total"], 4, "{conversation}");
    assert_eq!(alice.messages_in("bob", "incoming")[0]["text"], "to alice");
    alice.call("messages.mark_read", json!({ "conversation": "bob" }));
    bob.wait_status("alice", &reply, "read");
}

#[test]
fn history_pages_by_before_cursor_and_pages_stay_stable_when_messages_arrive() {
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let names = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("m{i:02}")).collect()
    };
    bob.send_one_by_one("alice", &names(0..25));
    alice.wait_incoming("bob", 25);
    let page = |before: Option<&Value>| {
        let mut params = json!({ "conversation": "bob", "limit": 10 });
        if let Some(before) = before {
            params["before"] = before.clone();
        }
        alice.call("messages.history", params)
    };
    let texts = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages in {page}"))
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let first = page(None);
    assert_eq!(
        texts(&first),
        names(15..25),
        "the newest page, oldest first"
    );
    let cursor1 = first["next_before"].clone();
    assert!(cursor1.is_string(), "a cursor to older messages: {first}");

    // New messages arrive between two page requests: the older pages do not shift.
    bob.send_one_by_one("alice", &names(25..30));
    alice.wait_incoming("bob", 30);
    let second = page(Some(&cursor1));
    assert_eq!(texts(&second), names(5..15));
    let third = page(Some(&second["next_before"]));
    assert_eq!(texts(&third), names(0..5));
    assert!(
        third["next_before"].is_null(),
        "the oldest page has no cursor: {third}"
    );
    assert_eq!(
        page(Some(&cursor1)),
        second,
        "the same cursor gives the same page"
    );
    assert_eq!(texts(&page(None)), names(20..30));
    let all: Vec<String> = alice
        .messages("bob")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(all, names(0..30));

    let error = alice
        .try_call(
            "messages.history",
            json!({ "conversation": "bob", "before": "not a cursor" }),
        )
        .err()
        .unwrap_or_else(|| panic!("a junk cursor was accepted"));
    assert!(error.app_code().is_some(), "a domain error: {error}");
}

/// Checks that the `message.status` events of `id` in `events` only move forward (pending,
/// sent, delivered, read) and end at `last`. A step may be skipped: when the delivery receipt
/// is handled before the relay's `SendAck`, the message goes from pending to delivered.
fn assert_statuses_advance(events: &[Value], id: &str, last: &str) {
    const ORDER: [&str; 4] = ["pending", "sent", "delivered", "read"];
    let ranks: Vec<usize> = events
        .iter()
        .filter(|e| e["kind"] == "message.status" && e["message_id"] == id)
        .map(|e| {
            ORDER
                .iter()
                .position(|s| e["status"] == *s)
                .unwrap_or_else(|| panic!("an unexpected status: {e}"))
        })
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "statuses of {id} go forward, each once: {events:?}"
    );
    assert_eq!(
        ranks.last().map(|r| ORDER[*r]),
        Some(last),
        "statuses of {id}: {events:?}"
    );
}

#[test]
fn event_stream_reports_messages_and_statuses_and_resumes_after_a_reconnect_without_gaps_or_repeats()
 {
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    // `all` stays connected throughout: the reference for what the resumed stream must show.
    let mut all = EventStream::subscribe(alice, None);
    let mut first = EventStream::subscribe(alice, None);

    let m1 = bob.send("alice", "m1");
    let seen = first.until(|e| is_received(e, &m1));
    let event = seen.last().cloned().unwrap_or_default();
    assert_eq!(event["message"]["text"], "m1");
    assert_eq!(event["message"]["conversation"], "bob");
    assert_eq!(event["message"]["direction"], "incoming");
    let a1 = alice.send("bob", "a1");
    let seen = first.until(|e| {
        e["kind"] == "message.status"
            && e["message_id"] == a1.as_str()
            && e["status"] == "delivered"
    });
    assert_statuses_advance(&seen, &a1, "delivered");
    let resume_at = cursor(seen.last().unwrap_or(&Value::Null));
    drop(first);

    // While the client is away: messages in, a message out, read receipts.
    let m2 = bob.send("alice", "m2");
    let m3 = bob.send("alice", "m3");
    let a2 = alice.send("bob", "a2");
    alice.wait_incoming("bob", 3);
    bob.wait_incoming("alice", 2);
    bob.call("messages.mark_read", json!({ "conversation": "alice" }));
    alice.wait_status("bob", &a2, "read");

    // A sentinel after everything, so both streams can be read up to the same point.
    let last = bob.send("alice", "last");
    let reference = all.until(|e| is_received(e, &last));
    let mut resumed = EventStream::subscribe(alice, Some(resume_at));
    let replayed = resumed.until(|e| is_received(e, &last));

    let expected: Vec<&Value> = reference.iter().filter(|e| cursor(e) > resume_at).collect();
    let got: Vec<&Value> = replayed.iter().collect();
    assert_eq!(
        got, expected,
        "the resumed stream must be exactly the events after the cursor"
    );
    for stream in [&reference, &replayed] {
        let cursors: Vec<u64> = stream.iter().map(cursor).collect();
        assert!(
            cursors.windows(2).all(|w| w[0] < w[1]),
            "cursors increase: {cursors:?}"
        );
    }
    for id in [&m2, &m3] {
        assert_eq!(
            replayed.iter().filter(|e| is_received(e, id)).count(),
            1,
            "{id} once"
        );
    }
    assert_statuses_advance(&replayed, &a2, "read");
    assert!(
        !replayed.iter().any(|e| is_received(e, &m1)),
        "nothing from before the cursor"
    );
}
