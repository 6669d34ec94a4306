//! `contrib/chatd_client.py`, the standard-library Python client, against two real daemons: its
//! CLI sends a message and `watch` receives one through `events.subscribe`, its library raises
//! chatd's errors with code and kind, and it finds the default socket as `api::paths` does.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use tests::{Finished, LineReader, Pair, shared_relay};

/// The client script in the workspace.
fn script() -> PathBuf {
    tests::workspace_root()
        .join("contrib")
        .join("chatd_client.py")
}

/// `python3` with the environment cleared of the socket variables, or `None` (with a note
/// printed) when there is no python3.
fn python3() -> Option<Command> {
    if !tests::system_tool_available("python_client", &["python3", "--version"]) {
        return None;
    }
    let mut command = Command::new("python3");
    command
        .env_remove("CHATD_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    Some(command)
}

/// A Python snippet with the client module importable; `sys` is imported.
fn snippet(code: &str) -> Option<Command> {
    let mut command = python3()?;
    let contrib = script()
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    command.arg("-c").arg(format!(
        "import sys\nsys.path.insert(0, {contrib:?})\n{code}"
    ));
    Some(command)
}

#[test]
fn python_client_sends_and_receives_through_subscribe() {
    let Some(mut send) = python3() else { return };
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let alice_socket = pair.alice.socket().display().to_string();

    let sent = Finished::run(
        send.arg(script()).args([
            "--socket",
            &alice_socket,
            "send",
            "bob",
            "hello from python",
        ]),
        b"",
    )
    .expect_code(0);
    let id = sent.stdout.trim().to_owned();
    assert_eq!(id.len(), 32, "it prints the message id: {:?}", sent.stdout);
    pair.alice.wait_status("bob", &id, "delivered");
    let received = pair.bob.messages_in("alice", "incoming");
    assert_eq!(received[0]["text"], "hello from python");
    assert_eq!(received[0]["message_id"], id.as_str());

    let Some(mut watch) = python3() else { return };
    let watch = LineReader::spawn(watch.arg(script()).args([
        "--socket",
        &alice_socket,
        "watch",
        "--since",
        "0",
    ]));
    let answer = pair.bob.send("alice", "hello python");
    let lines = watch.until("the answer", |line| line.contains("hello python"));
    let event: Value = serde_json::from_str(lines.last().map_or("", String::as_str))
        .unwrap_or_else(|e| panic!("watch printed {lines:?}: {e}"));
    assert_eq!(event["kind"], "message.received", "{event}");
    assert_eq!(event["message"]["message_id"], answer.as_str());
    assert!(event["cursor"].is_u64(), "{event}");
}

#[test]
fn python_client_raises_chatd_errors_with_code_and_kind() {
    let Some(mut command) = snippet(
        r#"
import json
from chatd_client import ChatdClient, ChatdError
with ChatdClient(sys.argv[1], timeout=20) as chatd:
    status = chatd.call("daemon.status")
    try:
        chatd.call("messages.history", conversation="nobody")
        print("no error")
    except ChatdError as e:
        print(json.dumps({"code": e.code, "kind": e.kind, "pid": status["pid"]}))
"#,
    ) else {
        return;
    };
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let finished = Finished::run(command.arg(pair.alice.socket()), b"").expect_code(0);
    let printed: Value = serde_json::from_str(finished.stdout.trim())
        .unwrap_or_else(|e| panic!("printed {:?}: {e}", finished.stdout));
    let status = pair.alice.call("daemon.status", json!({}));
    assert_eq!(
        printed,
        json!({ "code": 1010, "kind": "not_found", "pid": status["pid"] })
    );
}

#[test]
fn python_client_finds_the_default_socket_as_api_paths_does() {
    let code = "from chatd_client import default_socket_path\nprint(default_socket_path())";
    let uid = api::paths::current_uid();
    let cases: &[(&[(&str, &str)], String)] = &[
        (
            &[
                ("CHATD_SOCKET", "/x/chatd.sock"),
                ("XDG_RUNTIME_DIR", "/run/user/7"),
            ],
            "/x/chatd.sock".to_owned(),
        ),
        (
            &[("CHATD_SOCKET", ""), ("XDG_RUNTIME_DIR", "/run/user/7")],
            "/run/user/7/chatd/chatd.sock".to_owned(),
        ),
        (
            &[("XDG_RUNTIME_DIR", ""), ("TMPDIR", "/var/tmp/t")],
            format!("/var/tmp/t/chatd-{uid}/chatd.sock"),
        ),
    ];
    for (env, expected) in cases {
        let Some(mut command) = snippet(code) else {
            return;
        };
        command.envs(env.iter().copied());
        let finished = Finished::run(&mut command, b"").expect_code(0);
        assert_eq!(finished.stdout.trim(), expected, "with {env:?}");
    }
    // With neither variable and no TMPDIR: /tmp, as Rust's std::env::temp_dir() on Unix.
    let Some(mut command) = snippet(code) else {
        return;
    };
    let finished = Finished::run(command.env_remove("TMPDIR"), b"").expect_code(0);
    assert_eq!(
        finished.stdout.trim(),
        format!("/tmp/chatd-{uid}/chatd.sock")
    );
}
