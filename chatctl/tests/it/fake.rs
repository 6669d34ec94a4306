//! chatctl against the fake daemon: `status`, `send` (with and without `--wait`), `history`,
//! `watch`, `--json` output and error reporting, end to end through the socket.

use std::io::Read;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::{FakeDaemon, GATED_SINCE, MESSAGE_ID, T, assert_exit, run, stderr, stdout};

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn one_json(text: &str) -> Value {
    let documents = json_lines(text);
    assert_eq!(documents.len(), 1, "exactly one document: {text}");
    documents.into_iter().next().unwrap_or_default()
}

#[test]
fn status_for_humans_and_as_json() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["status"]), None);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.starts_with("chatd 0.1.0 (API "), "{text}");
    assert!(text.contains("unlocked, chat1fakeaddress"), "{text}");
    assert!(text.contains("ws://127.0.0.1:9/v1 (connected)"), "{text}");

    let output = run(daemon.chatctl(&["status", "--json"]), None);
    assert_exit(&output, 0);
    let document = one_json(&stdout(&output));
    assert_eq!(document["state"], "unlocked");
    assert_eq!(document["pid"], 4242);
    assert_eq!(
        document["future_field"], "kept",
        "fields a newer chatd adds pass through"
    );
    assert_eq!(daemon.requests()[0]["method"], "daemon.status");
    assert_eq!(daemon.requests()[0]["params"], json!({}));
}

#[test]
fn send_prints_the_queued_id() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["send", "bob", "hello bob"]), None);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), format!("queued {MESSAGE_ID}\n"));
    let requests = daemon.requests();
    assert_eq!(requests.len(), 1, "no subscription without --wait");
    assert_eq!(requests[0]["method"], "messages.send");
    assert_eq!(
        requests[0]["params"],
        json!({"to": "bob", "text": "hello bob"})
    );

    let output = run(daemon.chatctl(&["--json", "send", "bob", "again"]), None);
    assert_exit(&output, 0);
    let document = one_json(&stdout(&output));
    assert_eq!(
        document,
        json!({"message_id": MESSAGE_ID, "conversation": "bob", "timestamp_ms": T,
               "status": "pending"})
    );
}

#[test]
fn send_reads_the_text_from_stdin_for_a_dash() {
    let daemon = FakeDaemon::start();
    let output = run(
        daemon.chatctl(&["send", "bob", "-"]),
        Some("first line\nsecond line\n"),
    );
    assert_exit(&output, 0);
    assert_eq!(
        daemon.requests()[0]["params"]["text"],
        "first line\nsecond line"
    );
}

#[test]
fn send_wait_subscribes_first_and_waits_for_the_status() {
    let daemon = FakeDaemon::start();
    // A timeout too long to represent as a deadline means no deadline.
    let output = run(
        daemon.chatctl(&["send", "bob", "hi", "--wait", "sent", "--timeout", "1e15"]),
        None,
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), format!("sent {MESSAGE_ID}\n"));
    let methods: Vec<Value> = daemon
        .requests()
        .iter()
        .map(|r| r["method"].clone())
        .collect();
    assert_eq!(methods, [json!("events.subscribe"), json!("messages.send")]);
    assert!(
        daemon.requests()[0]["params"]["since"].is_null(),
        "only new events: no `since`"
    );

    // The fake first reports `delivered` for another message and on another subscription;
    // neither counts.
    let output = run(
        daemon.chatctl(&["--json", "send", "bob", "hi", "--wait", "delivered"]),
        None,
    );
    assert_exit(&output, 0);
    let document = one_json(&stdout(&output));
    assert_eq!(document["message_id"], MESSAGE_ID);
    assert_eq!(document["status"], "delivered");
}

#[test]
fn send_wait_times_out_with_exit_7() {
    let daemon = FakeDaemon::start();
    let output = run(
        daemon.chatctl(&["send", "bob", "hi", "--wait", "read", "--timeout", "0.3"]),
        None,
    );
    assert_exit(&output, 7);
    let err = stderr(&output);
    assert!(err.contains("timed out after 300ms"), "{err}");
    assert!(err.contains(MESSAGE_ID), "{err}");
    assert!(err.contains("it is delivered"), "{err}");
    assert!(stdout(&output).is_empty());

    let output = run(
        daemon.chatctl(&[
            "--json",
            "send",
            "bob",
            "hi",
            "--wait",
            "read",
            "--timeout",
            "0.2",
        ]),
        None,
    );
    assert_exit(&output, 7);
    let document = one_json(&stdout(&output));
    assert_eq!(document["error"]["kind"], "timeout");
    assert_eq!(document["error"]["exit_code"], 7);
}

#[test]
fn send_wait_fails_when_the_message_fails() {
    let daemon = FakeDaemon::start();
    let output = run(
        daemon.chatctl(&["send", "doomed", "hi", "--wait", "sent"]),
        None,
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(&format!("message {MESSAGE_ID} failed: no devices")),
        "{err}"
    );
}

#[test]
fn daemon_errors_keep_their_code_and_kind() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["send", "nobody", "hi"]), None);
    assert_exit(&output, 5);
    assert_eq!(
        stderr(&output),
        "chatctl: no contact named nobody (code 1010)\n"
    );
    assert!(stdout(&output).is_empty());

    let output = run(daemon.chatctl(&["--json", "send", "nobody", "hi"]), None);
    assert_exit(&output, 5);
    let document = one_json(&stdout(&output));
    assert_eq!(
        document,
        json!({"error": {"code": 1010, "kind": "not_found",
                         "message": "no contact named nobody (code 1010)", "exit_code": 5}})
    );

    // A method this chatd lacks is an error of its own kind.
    let output = run(daemon.chatctl(&["--json", "invite"]), None);
    assert_exit(&output, 1);
    assert_eq!(
        one_json(&stdout(&output))["error"]["kind"],
        "method_not_found"
    );
}

#[test]
fn history_is_oldest_first_with_marks() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["history", "bob", "--limit", "2"]), None);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "[2026-03-14 15:09] bob: dinner?\n[2026-03-14 15:09] me: see you at 8 ✓✓\n"
    );
    assert!(
        stderr(&output).contains("--before cursor-41"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        daemon.requests()[0]["params"],
        json!({"conversation": "bob", "limit": 2, "before": null})
    );
}

#[test]
fn contact_show_draws_the_number_and_qr_code_for_humans_only() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["contact", "show", "bob"]), None);
    assert_exit(&output, 0);
    let text = stdout(&output);
    for row in [
        "  01234 56789 01234 56789\n",
        "  01234 56789 01234 56789\n",
        "  01234 56789 01234 56789\n",
    ] {
        assert!(text.contains(row), "{text}");
    }
    assert!(text.contains('█'), "a QR code: {text}");
    assert_eq!(daemon.requests()[0]["params"], json!({"contact": "bob"}));

    let output = run(daemon.chatctl(&["contact", "show", "bob", "--json"]), None);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(!text.contains('█'), "no QR art in JSON: {text}");
    let document = one_json(&text);
    assert_eq!(document["alias"], "bob");
    assert_eq!(document["safety_qr"], "c0ffee".repeat(10));
    assert_eq!(
        document["safety_number_groups"].as_array().map(Vec::len),
        Some(12)
    );
}

#[test]
fn watch_prints_events_until_chatd_goes_away() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["watch", "--since", "0"]), None);
    assert_exit(&output, 3);
    assert_eq!(
        stdout(&output),
        "[2026-03-14 15:09] bob: hello from bob\n\
         [2026-03-14 15:09] relay ws://127.0.0.1:9/v1: connected\n\
         [2026-03-14 15:09] group.created (an event this chatctl does not know)\n"
    );
    assert!(stderr(&output).contains("chatd closed the connection"));
    assert_eq!(daemon.requests()[0]["params"], json!({"since": 0}));

    let output = run(daemon.chatctl(&["--json", "watch", "--since", "1"]), None);
    assert_exit(&output, 3);
    let documents = json_lines(&stdout(&output));
    let kinds: Vec<&str> = documents
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["message.received", "relay.connection", "group.created", ""]
    );
    assert_eq!(
        documents[2]["group"], "g",
        "unknown events pass through whole"
    );
    // The error document comes last, after the events.
    assert_eq!(documents[3]["error"]["kind"], "disconnected");
    assert_eq!(documents[3]["error"]["exit_code"], 3);
}

#[test]
fn watch_exits_0_when_stdout_is_closed() {
    let daemon = FakeDaemon::start();
    let mut command = daemon.chatctl(&["watch", "--since", &GATED_SINCE.to_string()]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chatctl: {e}"));
    // Closing the read end before any event is sent makes the first write fail for certain.
    drop(child.stdout.take());
    daemon.open_gate();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "{err}");
}

/// A chatd that has all its connections taken answers a new one with a "server is busy" error
/// (id null, code -32009) and closes it: chatctl says so and exits 3 (chatd unavailable), not
/// 1 with "invalid response".
#[test]
fn a_busy_daemon_exits_3_with_a_clear_message() {
    use std::io::Write as _;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap_or_else(|e| panic!("chmod: {e}"));
    let socket = dir.path().join("chatd.sock");
    let listener =
        std::os::unix::net::UnixListener::bind(&socket).unwrap_or_else(|e| panic!("bind: {e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.write_all(
                b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32009,\"message\":\
                  \"Server is busy, try again later: too many connections (at most 64)\"}}\n",
            );
        }
    });
    for json in [false, true] {
        let mut command = crate::support::chatctl(&["--no-autostart", "--socket"]);
        command.arg(&socket).arg("status");
        if json {
            command.arg("--json");
        }
        let output = run(command, None);
        assert_exit(&output, 3);
        let err = stderr(&output);
        assert!(err.contains("Server is busy"), "{err}");
        assert!(!err.contains("invalid response"), "{err}");
        if json {
            let document = one_json(&stdout(&output));
            assert_eq!(document["error"]["kind"], "busy");
            assert_eq!(document["error"]["code"], -32009);
            assert_eq!(document["error"]["exit_code"], 3);
        } else {
            assert!(err.contains("hint: chatd serves a limited number"), "{err}");
        }
    }
}

#[test]
fn trust_on_a_key_that_did_not_change_says_so_and_accepts_nothing() {
    let daemon = FakeDaemon::start();
    let output = run(daemon.chatctl(&["contact", "trust", "bob"]), None);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("bob's key has not changed"),
        "{}",
        stdout(&output)
    );
    let methods: Vec<Value> = daemon
        .requests()
        .iter()
        .map(|r| r["method"].clone())
        .collect();
    assert_eq!(
        methods,
        vec![json!("contacts.get")],
        "contacts.trust was not called"
    );
}
