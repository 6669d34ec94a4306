//! You can see what your daemon is doing (issue #16, item 5), with real processes: a chatd
//! that chatctl starts logs to `$XDG_STATE_HOME/chatd/chatd.log` (0600, no colours, no message
//! text or passphrase), `status` shows the last relay error and the log file, a second daemon
//! on the same data directory names the first one's pid, and `chatctl daemon stop` stops a
//! daemon through its socket or, with the socket deleted, through its pid file.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use tests::{
    DaemonProcess, Finished, KillOnDrop, bin, chatctl, free_addr, private_dir, run_chatctl,
    shared_relay, wait_for,
};

/// Whether process `pid` has exited (gone, or a zombie its parent has not reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z"),
        Err(_) => true,
    }
}

/// A chatd started by chatctl logs to the XDG state directory: the file exists, is the user's
/// alone, holds no ANSI escapes, and after a whole session (an account with a passphrase, a
/// contact, messages both ways, at the most verbose level) holds neither a message text nor the
/// passphrase. `status` names the file, and `daemon stop` stops the daemon through its socket.
#[test]
fn an_autostarted_daemon_logs_to_a_private_file_without_secrets() {
    let relay = shared_relay();
    let dir = private_dir();
    let socket = dir.path().join("run").join("chatd.sock");
    let state_home = dir.path().join("state");
    let passphrase_file = dir.path().join("passphrase");
    let passphrase = "canary passphrase 5f1d0a";
    let text = "canary text 9c2e77";
    let reply = "canary reply 41b8d3";
    std::fs::write(&passphrase_file, format!("{passphrase}\n")).unwrap_or_else(|e| panic!("{e}"));
    let chatd_args = format!(
        "--data-dir {} --relay {} --kdf-memory-kib 64 --kdf-iterations 1 --kdf-parallelism 1",
        dir.path().join("data").display(),
        relay.url()
    );
    let autostarting = |args: &[&str]| {
        let mut command = Command::new(bin("chatctl"));
        command
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .env_remove("CHATD_SOCKET")
            .env_remove("CHATD_LOG_FILE")
            .env("CHATD_BIN", bin("chatd"))
            .env("CHATCTL_CHATD_ARGS", &chatd_args)
            .env("XDG_STATE_HOME", &state_home)
            .env("RUST_LOG", "trace");
        command
    };
    let created = Finished::run(
        autostarting(&["--json", "init", "--name", "Canary"])
            .arg("--passphrase-file")
            .arg(&passphrase_file),
        b"",
    )
    .expect_code(0)
    .json();
    let status = run_chatctl(&socket, &["--json", "status"])
        .expect_code(0)
        .json();
    let pid = status["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("no pid in {status}"));
    let guard = KillOnDrop::new(pid);
    let log = state_home.join("chatd").join("chatd.log");
    assert_eq!(status["log_file"], log.display().to_string(), "{status}");
    let human = run_chatctl(&socket, &["status"]).expect_code(0).stdout;
    assert!(
        human.contains(&format!("log:      {}", log.display())),
        "{human}"
    );

    let bob = DaemonProcess::start(&relay.url());
    let bob_info = bob.create("bob");
    run_chatctl(&socket, &["contact", "add", "bob", &bob_info.address]).expect_code(0);
    run_chatctl(&socket, &["send", "bob", text, "--wait", "delivered"]).expect_code(0);
    // The canary account is a stranger to Bob: he accepts its message request.
    let canary = created["address"].as_str().unwrap_or_default().to_owned();
    bob.accept_request("canary", &canary);
    let alias = bob.call("contacts.list", json!({}))["contacts"][0]["alias"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    bob.send(&alias, reply);
    wait_for("the reply to arrive", || {
        let history = run_chatctl(&socket, &["--json", "history", "bob"])
            .expect_code(0)
            .json();
        history["messages"]
            .as_array()?
            .iter()
            .any(|m| m["text"] == reply)
            .then_some(())
    });
    run_chatctl(&socket, &["lock"]).expect_code(0);
    Finished::run(
        chatctl(&socket)
            .arg("unlock")
            .arg("--passphrase-file")
            .arg(&passphrase_file),
        b"",
    )
    .expect_code(0);

    let stopped = run_chatctl(&socket, &["daemon", "stop"]).expect_code(0);
    assert!(
        stopped
            .stdout
            .contains(&format!("chatd (pid {pid}) stopped")),
        "{}",
        stopped.stdout
    );
    assert!(exited(pid), "chatctl returned before chatd exited");
    drop(guard);

    let mut content = Vec::new();
    std::fs::File::open(&log)
        .and_then(|mut f| f.read_to_end(&mut content))
        .unwrap_or_else(|e| panic!("reading {}: {e}", log.display()));
    let content = String::from_utf8_lossy(&content);
    assert!(content.contains("chatd ready"), "{content}");
    assert!(
        content.contains("daemon.stop"),
        "the stop is logged: {content}"
    );
    assert!(!content.contains('\u{1b}'), "ANSI escapes in the log file");
    for secret in [text, reply, passphrase, "canary"] {
        assert!(!content.contains(secret), "the log file holds {secret:?}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the log file is the user's alone");
    }
}

/// A relay address that answers every connection with garbage: `daemon.status` and `chatctl
/// status` show the last relay error, what it was, which relay and when.
#[test]
fn status_shows_the_last_relay_error() {
    let listener = TcpListener::bind(free_addr()).unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"garbage, not HTTP\r\n\r\n");
        }
    });
    let url = format!("ws://{addr}/v1");
    let daemon = DaemonProcess::start(&url);
    daemon.call(
        "account.create",
        json!({ "name": "alice", "no_passphrase": true }),
    );
    let error = wait_for("the relay error to show", || {
        let status = daemon.call("daemon.status", json!({}));
        let error = status["last_relay_error"].clone();
        error.is_object().then_some(error)
    });
    assert_eq!(error["relay"], url.as_str(), "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("WebSocket handshake failed")),
        "{error}"
    );
    assert!(error["at_ms"].as_u64().is_some_and(|t| t > 0), "{error}");
    let human = run_chatctl(&daemon.socket(), &["status"])
        .expect_code(0)
        .stdout;
    assert!(
        human.contains("last relay error: WebSocket handshake failed") && human.contains(&url),
        "{human}"
    );
}

/// A second chatd on a data directory in use names the daemon that holds it.
#[test]
fn a_store_in_use_names_the_pid_that_holds_it() {
    let relay = shared_relay();
    let first = DaemonProcess::start(&relay.url());
    let pid = first.pid().unwrap_or_else(|| panic!("running"));
    let pid_file = first.data_dir().join("chatd.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim(),
        pid.to_string()
    );
    let other = private_dir();
    let output = Command::new(bin("chatd"))
        .arg("--data-dir")
        .arg(first.data_dir())
        .arg("--socket")
        .arg(other.path().join("chatd.sock"))
        .args(["--relay", &relay.url()])
        .env_remove("CHATD_SOCKET")
        .env_remove("CHATD_LOG_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let store = first.data_dir().join("store");
    assert!(
        stderr.contains(&format!(
            "the store at {} is in use by chatd pid {pid}",
            store.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim(),
        pid.to_string(),
        "the refused daemon left the pid file alone"
    );
}

/// `chatctl daemon stop` through the socket, and, once the socket is deleted, through the pid
/// file; with neither, it says chatd is not running.
#[test]
fn daemon_stop_with_and_without_the_socket() {
    let relay = shared_relay();
    let mut daemon = DaemonProcess::start(&relay.url());
    let pid = daemon.pid().unwrap_or_else(|| panic!("running"));
    let stopped = run_chatctl(&daemon.socket(), &["--json", "daemon", "stop"])
        .expect_code(0)
        .json();
    assert_eq!(stopped["pid"], pid, "{stopped}");
    assert!(exited(pid), "chatctl returned before chatd exited");
    assert!(!daemon.socket().exists(), "chatd removed its socket");
    assert!(
        !daemon.data_dir().join("chatd.pid").exists(),
        "chatd removed its pid file"
    );

    daemon.restart();
    let pid = daemon.pid().unwrap_or_else(|| panic!("running"));
    std::fs::remove_file(daemon.socket()).unwrap_or_else(|e| panic!("{e}"));
    let data_dir = daemon.data_dir();
    let stop_by_pid = |code: i32| {
        Finished::run(
            chatctl(&daemon.socket())
                .args(["daemon", "stop", "--data-dir"])
                .arg(&data_dir),
            b"",
        )
        .expect_code(code)
    };
    let stopped = stop_by_pid(0);
    assert!(
        stopped
            .stdout
            .contains(&format!("chatd (pid {pid}) stopped"))
            && stopped.stdout.contains("pid file"),
        "{}",
        stopped.stdout
    );
    assert!(exited(pid), "chatctl returned before chatd exited");
    let again = stop_by_pid(3);
    assert!(again.stderr.contains("not running"), "{}", again.stderr);
    assert_no_pid_file(&data_dir);
}

fn assert_no_pid_file(data_dir: &Path) {
    assert!(
        !data_dir.join("chatd.pid").exists(),
        "chatd removed its pid file when it stopped"
    );
}
