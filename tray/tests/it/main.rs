//! chat-tray's integration tests: the built binary, run as a user runs it, without a daemon or
//! a desktop (those are in the workspace's `tests/it/tray.rs`): its help, refusal of a bad
//! config or state file, and waiting with backoff for a daemon that is not there.
//!
//! Having these here also makes `cargo test --workspace` build the `chat-tray` binary that the
//! whole-system tests run.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn chat_tray() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-tray"));
    command
        .env_remove("CHATD_SOCKET")
        .env_remove("CHAT_TRAY_CONFIG")
        .env_remove("CHAT_TRAY_STATE_FILE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running chat-tray: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_names_the_flags() {
    let output = run(chat_tray().arg("--help"));
    assert!(output.status.success());
    let help = text(&output.stdout);
    for flag in [
        "--socket",
        "--config",
        "--state-file",
        "--privacy",
        "--terminal",
        "--no-tray-icon",
        "CHATD_SOCKET",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
    let version = run(chat_tray().arg("--version"));
    assert!(text(&version.stdout).starts_with("chat-tray "));
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("tray.toml");
    std::fs::write(&config, "privacy = true\nprivcy = false\n").unwrap_or_else(|e| panic!("{e}"));
    let output = run(chat_tray().arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("chat-tray: "), "{stderr}");
    assert!(
        stderr.contains("tray.toml") && stderr.contains("privcy"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_state_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state.toml");
    std::fs::write(&state, "cursor = \"soon\"\n").unwrap_or_else(|e| panic!("{e}"));
    let output = run(chat_tray()
        .arg("--state-file")
        .arg(&state)
        .arg("--socket")
        .arg(dir.path().join("none.sock")));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("state.toml") && stderr.contains("remove it"),
        "{stderr}"
    );
}

#[test]
fn without_a_daemon_it_says_so_and_keeps_trying() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state").join("tray.toml");
    let mut child = chat_tray()
        .arg("--state-file")
        .arg(&state)
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .arg("--no-tray-icon")
        .env("RUST_LOG", "chat_tray=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning chat-tray: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut attempts = 0;
    while attempts < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            let _ = child.kill();
            panic!("chat-tray did not retry; it logged:\n{}", seen.join("\n"));
        };
        if line.contains("not reachable") {
            attempts += 1;
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = seen.join("\n");
    assert!(log.contains("first run"), "{log}");
    assert!(log.contains("retrying with backoff"), "{log}");
    assert!(
        Path::new(&state).exists(),
        "the first-run cursor is stored before connecting"
    );
}
