//! chatctl without a daemon: unreachable sockets, failed autostarts, and the refusals that
//! happen before any connection.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::support::{assert_exit, chatctl, run, stderr, stdout};

#[test]
fn status_without_daemon_or_autostart_exits_3() {
    let output = run(
        chatctl(&["--no-autostart", "--socket", "/nonexistent/sock", "status"]),
        None,
    );
    assert_exit(&output, 3);
    let err = stderr(&output);
    assert!(
        err.starts_with("chatctl: cannot reach chatd at /nonexistent/sock: "),
        "{err}"
    );
    assert!(
        err.matches("No such file or directory").count() == 1,
        "{err}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn json_mode_also_reports_the_error_on_stdout() {
    let output = run(
        chatctl(&[
            "--json",
            "--no-autostart",
            "--socket",
            "/nonexistent/sock",
            "status",
        ]),
        None,
    );
    assert_exit(&output, 3);
    let document: Value = serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(&output)));
    assert_eq!(document["error"]["kind"], "unreachable");
    assert_eq!(document["error"]["code"], Value::Null);
    assert_eq!(document["error"]["exit_code"], 3);
    let message = document["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("/nonexistent/sock"), "{message}");
}

#[test]
fn autostart_reports_a_missing_daemon_binary() {
    let dir = private_tempdir();
    let socket = dir.path().join("chatd.sock");
    let mut command = chatctl(&["status", "--socket"]);
    command
        .arg(&socket)
        .env("CHATD_BIN", dir.path().join("no-such-chatd"));
    let output = run(command, None);
    assert_exit(&output, 3);
    let err = stderr(&output);
    assert!(err.contains("starting chatd failed"), "{err}");
    assert!(err.contains("no-such-chatd not found"), "{err}");
}

#[test]
fn autostart_runs_chatd_with_the_socket_and_extra_args_and_notices_it_dying() {
    let dir = private_tempdir();
    let socket = dir.path().join("chatd.sock");
    let args_file = dir.path().join("args");
    let script = dir.path().join("fake-chatd");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nexit 1\n",
            args_file.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));

    let mut command = chatctl(&["status", "--socket"]);
    command
        .arg(&socket)
        .env("CHATD_BIN", &script)
        .env("CHATCTL_CHATD_ARGS", " --data-dir  /tmp/d --ephemeral ")
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env_remove("CHATD_LOG_FILE");
    let started = std::time::Instant::now();
    let output = run(command, None);
    assert_exit(&output, 3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "a daemon that exits is noticed before the 5 s start timeout"
    );
    let err = stderr(&output);
    assert!(err.contains("exited"), "{err}");
    let args = fs::read_to_string(&args_file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        args.trim_end(),
        format!(
            "--socket {} --log-file {} --data-dir /tmp/d --ephemeral",
            socket.display(),
            dir.path()
                .join("state")
                .join("chatd")
                .join("chatd.log")
                .display()
        )
    );
}

#[test]
fn verify_without_a_terminal_needs_the_number() {
    let output = run(
        chatctl(&[
            "--no-autostart",
            "--socket",
            "/nonexistent/sock",
            "contact",
            "verify",
            "bob",
        ]),
        None,
    );
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--safety-number"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn passphrase_problems_are_found_before_connecting() {
    let base = ["--no-autostart", "--socket", "/nonexistent/sock"];
    let init = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(&["init", "--name", "Alice"]);
        args.extend_from_slice(extra);
        chatctl(&args)
    };
    // Stdin is empty and not a terminal.
    let output = run(init(&[]), Some(""));
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("no passphrase"),
        "{}",
        stderr(&output)
    );

    let output = run(init(&["--passphrase-file", "/nonexistent/pass"]), None);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("cannot read the passphrase file /nonexistent/pass"),
        "{}",
        stderr(&output)
    );

    // With a passphrase on stdin, the next problem is the missing daemon.
    let output = run(init(&[]), Some("correct horse battery staple\n"));
    assert_exit(&output, 3);
    assert!(!stderr(&output).contains("correct horse"));
}

/// Texts and safety numbers chatd would refuse are refused by chatctl itself, as usage
/// errors, before it looks for a daemon (none runs here: exit 3 would mean it went looking).
#[test]
fn bad_texts_and_safety_numbers_are_usage_errors_before_any_daemon() {
    let big = "x".repeat(api::input::MAX_TEXT_LEN + 1);
    for (args, input, what) in [
        (vec!["send", "bob", "   "], None, "empty"),
        (vec!["send", "bob", "-"], Some(" \n\t\n"), "empty"),
        (vec!["send", "bob", big.as_str()], None, "at most 64 KiB"),
        (
            vec!["contact", "verify", "bob", "--safety-number", "12345 67890"],
            None,
            "60 digits",
        ),
    ] {
        let output = run(chatctl(&args), input);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(what),
            "{what}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    let output = run(chatctl(&["send", "bob"]), None);
    assert_exit(&output, 2);
    let output = run(chatctl(&["--help"]), None);
    assert_exit(&output, 0);
    let help = stdout(&output);
    for line in [
        "Exit codes:",
        "3  chatd unavailable",
        "7  timed out waiting",
    ] {
        assert!(help.contains(line), "{line:?} missing from:\n{help}");
    }
}

/// A temporary directory closed to other users, as chatctl requires of the socket's directory.
fn private_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("{e}"));
    dir
}
