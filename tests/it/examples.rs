//! The example clients in `contrib/examples/` (Python with the standard library, Node.js with no
//! packages) against two real daemons: each prints the daemon's status, sends a message that
//! arrives in the peer's history, replays a message received before it started (`--since`), and
//! prints one the peer sends while it watches. Python finds the socket through `CHATD_SOCKET`,
//! Node through `XDG_RUNTIME_DIR`, so both halves of the default-path rules run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;

use tests::{Finished, LineReader, Pair, shared_relay};

/// `contrib/examples/<dir>/<file>` in the workspace.
fn example(dir: &str, file: &str) -> PathBuf {
    tests::workspace_root()
        .join("contrib")
        .join("examples")
        .join(dir)
        .join(file)
}

/// `python3 chatd_example.py`, or `None` when there is no python3.
fn python() -> Option<Command> {
    if !tests::system_tool_available("examples", &["python3", "--version"]) {
        return None;
    }
    let mut command = Command::new("python3");
    command
        .arg(example("python", "chatd_example.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Some(command)
}

/// `node chatd_example.js`, or `None` when there is no node.
fn node() -> Option<Command> {
    if !tests::system_tool_available("examples", &["node", "--version"]) {
        return None;
    }
    let mut command = Command::new("node");
    command.arg(example("node", "chatd_example.js"));
    Some(command)
}

/// Runs the example as Alice: it must report the daemon unlocked, send to Bob, replay what
/// Bob sent before it started, and print what Bob sends while it watches. `command` is the
/// example with its socket already arranged.
fn exercise(language: &str, pair: &Pair, mut command: Command) {
    let early = format!("sent to the {language} example before it started");
    let early_id = pair.bob.send("alice", &early);
    pair.alice.wait_incoming("bob", 1);

    let text = format!("hello from the {language} example");
    let example = LineReader::spawn(command.args(["--since", "0", "bob", &text]));

    let lines = example.until("the status line", |l| l.starts_with("chatd "));
    let status = lines.last().map_or("", String::as_str);
    assert!(
        status.contains(": unlocked, relay connected"),
        "{language}: {status}"
    );

    let lines = example.until("the sent line", |l| l.starts_with("sent "));
    let sent = lines.last().map_or("", String::as_str);
    let id = sent
        .strip_prefix("sent ")
        .and_then(|rest| rest.strip_suffix(" to bob"))
        .unwrap_or_else(|| panic!("{language}: {sent:?}"));
    assert_eq!(id.len(), 32, "{language} prints the message id: {sent:?}");
    pair.alice.wait_status("bob", id, "delivered");
    let received = pair.bob.messages_in("alice", "incoming");
    assert!(
        received
            .iter()
            .any(|m| m["message_id"] == id && m["text"] == text.as_str()),
        "{language}: Bob's history lacks {id} {text:?}: {received:?}"
    );

    let lines = example.until("the replayed message", |l| l.contains(&early));
    let replayed = lines.last().map_or("", String::as_str);
    assert!(
        replayed.starts_with('[') && replayed.ends_with(&format!("] bob: {early}")),
        "{language}: {replayed:?} (message {early_id})"
    );

    let answer = format!("an answer for the {language} example, \u{1b}[31mred");
    pair.bob.send("alice", &answer);
    let lines = example.until("the answer", |l| l.contains("an answer for"));
    let printed = lines.last().map_or("", String::as_str);
    assert!(
        printed.ends_with(&format!(
            "] bob: an answer for the {language} example, \\x1b[31mred"
        )) || printed.ends_with(&format!(
            "] bob: an answer for the {language} example, \\u001b[31mred"
        )),
        "{language} prints peer text with control characters escaped: {printed:?}"
    );
    assert!(!printed.contains('\u{1b}'), "{language}: {printed:?}");
}

#[test]
fn python_example_sends_replays_and_watches() {
    let Some(mut command) = python() else { return };
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    command
        .env_remove("XDG_RUNTIME_DIR")
        .env("CHATD_SOCKET", pair.alice.socket());
    exercise("python", &pair, command);
}

#[test]
fn node_example_sends_replays_and_watches() {
    let Some(mut command) = node() else { return };
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    // $XDG_RUNTIME_DIR/chatd/chatd.sock, pointing at Alice's socket.
    let runtime = tests::private_dir();
    let chatd_dir = runtime.path().join("chatd");
    std::fs::create_dir(&chatd_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::set_permissions(&chatd_dir, std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    // A hard link, not a symbolic one: the example refuses a socket path that is a symbolic
    // link (examples_refuse_a_socket_another_user_could_have_planted).
    std::fs::hard_link(pair.alice.socket(), chatd_dir.join("chatd.sock"))
        .unwrap_or_else(|e| panic!("link: {e}"));
    command
        .env_remove("CHATD_SOCKET")
        .env("XDG_RUNTIME_DIR", runtime.path());
    exercise("node", &pair, command);
}

#[test]
fn examples_report_an_unreachable_daemon() {
    let dir = tests::private_dir();
    let missing = dir.path().join("no-chatd.sock");
    for command in [python(), node()].into_iter().flatten() {
        let mut command = command;
        let finished = Finished::run(command.arg("--socket").arg(&missing), b"").expect_code(1);
        assert!(
            finished
                .stderr
                .starts_with("chatd_example: cannot talk to chatd at ")
                && finished.stderr.contains("no-chatd.sock"),
            "{command:?}: {}",
            finished.stderr
        );
        assert!(finished.stdout.is_empty(), "{}", finished.stdout);
    }
}

/// Before sending anything, both examples refuse a socket another local user could have put in
/// their way: one in a directory others can write to or enter, and one reached through a
/// symbolic link. A real daemon serves each socket, so a refusal is the check, not a failed
/// connection.
#[test]
fn examples_refuse_a_socket_another_user_could_have_planted() {
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let dir = tests::private_dir();
    // A directory open to others holding a (hard) link to Alice's real socket.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let in_open = open.join("chatd.sock");
    std::fs::hard_link(pair.alice.socket(), &in_open).unwrap_or_else(|e| panic!("link: {e}"));
    // A private directory whose socket path is a symbolic link to Alice's socket.
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let linked = private.join("chatd.sock");
    std::os::unix::fs::symlink(pair.alice.socket(), &linked)
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    let before = pair.alice.messages_in("bob", "outgoing").len();
    for (socket, problem) in [
        (&in_open, "is open to other users"),
        (&linked, "is a symbolic link"),
    ] {
        for command in [python(), node()].into_iter().flatten() {
            let mut command = command;
            let finished = Finished::run(
                command.arg("--socket").arg(socket).args(["bob", "planted"]),
                b"",
            )
            .expect_code(1);
            assert!(
                finished
                    .stderr
                    .contains("refusing to talk to chatd's socket")
                    && finished.stderr.contains(problem)
                    && finished.stderr.contains("nothing was sent"),
                "{command:?}: {}",
                finished.stderr
            );
        }
    }
    assert_eq!(
        pair.alice.messages_in("bob", "outgoing").len(),
        before,
        "nothing was sent through a refused socket"
    );
}
