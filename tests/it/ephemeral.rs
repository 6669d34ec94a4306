//! `chatd --ephemeral`: a daemon that creates an account and exchanges messages writes no file
//! anywhere: not in its home, XDG or temp directories, not in its working directory, and not
//! next to its socket (only the socket and its lock file).

use std::ffi::OsString;
use std::path::PathBuf;

use serde_json::json;
use tests::{DaemonOptions, Pair, entries_under, private_dir, shared_relay};

#[test]
fn an_ephemeral_daemon_writes_nothing_but_its_socket() {
    let relay = shared_relay();
    let sandbox = private_dir();
    let dirs = [
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "runtime"),
        ("TMPDIR", "tmp"),
    ];
    let mut env = Vec::new();
    for (var, name) in dirs {
        env.push((
            OsString::from(var),
            sandbox.path().join(name).into_os_string(),
        ));
    }
    let mut empty: Vec<PathBuf> = dirs.iter().map(|(_, name)| PathBuf::from(name)).collect();
    empty.push(PathBuf::from("cwd"));
    empty.sort();
    for name in &empty {
        let dir = sandbox.path().join(name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    let options = DaemonOptions {
        ephemeral: true,
        env,
        cwd: Some(sandbox.path().join("cwd")),
        ..DaemonOptions::default()
    };
    let mut pair = Pair::start_options(&relay.url(), options, DaemonOptions::default());
    let status = pair.alice.call("daemon.status", json!({}));
    assert_eq!(status["ephemeral"], true, "{status}");

    let sent = pair.alice.send("bob", "from the ephemeral side");
    pair.alice.wait_status("bob", &sent, "delivered");
    pair.bob
        .call("messages.mark_read", json!({ "conversation": "alice" }));
    pair.alice.wait_status("bob", &sent, "read");
    let answer = pair.bob.send("alice", "to the ephemeral side");
    pair.bob.wait_status("alice", &answer, "delivered");
    assert_eq!(
        pair.alice.messages_in("bob", "incoming")[0]["text"],
        "to the ephemeral side"
    );

    let socket_only = |with_socket: bool| {
        let mut expected = vec![PathBuf::from("run")];
        if with_socket {
            expected.push(PathBuf::from("run/chatd.sock"));
        }
        expected.push(PathBuf::from("run/chatd.sock.lock"));
        expected
    };
    let daemon_dir = pair.alice.dir().to_path_buf();
    let check = |with_socket: bool| {
        assert_eq!(
            entries_under(sandbox.path()),
            empty,
            "home, XDG, temp and working directories stay empty"
        );
        assert_eq!(entries_under(&daemon_dir), socket_only(with_socket));
    };
    check(true);
    pair.alice.stop();
    check(false);
}
