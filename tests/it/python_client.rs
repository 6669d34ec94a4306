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

/// A socket that another user could have planted gets nothing from the Python client, as from
/// chatctl: a directory open to others, a symlinked directory, and (as root) a socket served by
/// a process of another uid from a directory that passes every path check (`SO_PEERCRED`).
#[test]
fn python_client_sends_nothing_to_a_planted_socket() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let code = r#"
from chatd_client import ChatdClient, ChatdError
try:
    ChatdClient(sys.argv[1], timeout=20).call("messages.send", to="bob", text="the secret")
    print("sent")
except ChatdError as e:
    print(e)
"#;
    let tmp = tests::private_dir();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
    let listeners: Vec<_> = [open.join("chatd.sock"), real.join("chatd.sock")]
        .iter()
        .map(|path| {
            let listener = std::os::unix::net::UnixListener::bind(path)
                .unwrap_or_else(|e| panic!("bind: {e}"));
            listener
                .set_nonblocking(true)
                .unwrap_or_else(|e| panic!("nonblocking: {e}"));
            listener
        })
        .collect();
    for (socket, problem) in [
        (
            open.join("chatd.sock"),
            "is open to other users (mode 0755)",
        ),
        (link.join("chatd.sock"), "is a symbolic link"),
    ] {
        let Some(mut command) = snippet(code) else {
            return;
        };
        let finished = Finished::run(command.arg(&socket), b"").expect_code(0);
        let printed = finished.stdout.trim();
        assert!(
            printed.starts_with("refusing to talk to chatd's socket"),
            "{printed}"
        );
        assert!(printed.contains(problem), "{printed}");
        assert!(printed.ends_with("nothing was sent"), "{printed}");
    }
    for listener in &listeners {
        assert!(
            listener.accept().is_err(),
            "the planted server was not even connected to"
        );
    }

    if api::paths::current_uid() != 0 {
        assert!(
            std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_none(),
            "the peer check needs root, and CHATD_REQUIRE_SYSTEM_TOOLS is set"
        );
        eprintln!(
            "python_client_sends_nothing_to_a_planted_socket: SKIPPED the peer check: needs root"
        );
        return;
    }
    // A server of uid 65534, bound in a shared directory, then moved into our private one
    // and given to us: only SO_PEERCRED can tell.
    let stage = tmp.path().join("stage");
    std::fs::create_dir(&stage).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let staged = stage.join("chatd.sock");
    let Some(mut command) = snippet(code) else {
        return;
    };
    let Some(mut server) = python3() else { return };
    let mut server = server
        .args([
            "-c",
            r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(4)
print("listening", flush=True)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(20)
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
print(repr(data), flush=True)
"#,
        ])
        .arg(&staged)
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        server.stdout.take().unwrap_or_else(|| panic!("stdout")),
    ));
    let mut next_line = move || lines.next().and_then(Result::ok);
    assert_eq!(next_line().as_deref(), Some("listening"));
    let socket = real.join("peer.sock");
    std::fs::rename(&staged, &socket).unwrap_or_else(|e| panic!("rename: {e}"));
    std::os::unix::fs::chown(&socket, Some(0), None).unwrap_or_else(|e| panic!("chown: {e}"));
    let finished = Finished::run(command.arg(&socket), b"").expect_code(0);
    let printed = finished.stdout.trim();
    assert!(printed.contains("is served by uid 65534"), "{printed}");
    assert_eq!(
        next_line().as_deref(),
        Some("b''"),
        "the server got nothing"
    );
    let _ = server.wait();
}
