//! A socket another local user planted where chatctl looks (issue #14, item 3): chatctl checks
//! who serves it before it sends anything, refuses with exit code 3 and a message naming the
//! path and the problem, and the planted server receives not one byte: not the passphrase of
//! `unlock`, not the text of `send`.
//!
//! The planted server answers like a daemon (a locked account, a queued message), so a chatctl
//! without the checks would go on to send the passphrase and the text, and the test would see
//! them. Cases that need another uid (a directory or socket owned by uid 65534, a server process
//! running as 65534) need root; without it they fail under `CHATD_REQUIRE_SYSTEM_TOOLS` and are
//! skipped (with a message) otherwise.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use api::types::{ConnectionState, DaemonStatus, LockState};
use serde_json::{Value, json};

use crate::support::{assert_exit, chatctl, run, stderr};

/// The uid that plays "another local user" (nobody).
const OTHER_UID: u32 = 65534;
/// The passphrase and the text chatctl must never hand to a planted server.
const PASSPHRASE: &str = "correct horse battery staple";
const TEXT: &str = "the secret text";

/// A server that answers like a daemon and records every byte it receives.
struct Planted {
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Planted {
    fn serve(listener: UnixListener) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (shared, count, live) = (received.clone(), connections.clone(), open.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                live.fetch_add(1, Ordering::SeqCst);
                let (shared, live) = (shared.clone(), live.clone());
                thread::spawn(move || {
                    answer_like_a_daemon(stream, &shared);
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            received,
            connections,
            open,
        }
    }

    /// What the server received, once every connection to it has closed.
    fn received(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "a connection stays open");
            thread::sleep(Duration::from_millis(5));
        }
        let bytes = self.received.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn answer_like_a_daemon(stream: UnixStream, received: &Mutex<Vec<u8>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(line.as_bytes());
        let request: Value = serde_json::from_str(&line).unwrap_or_default();
        let result = match request["method"].as_str() {
            Some("daemon.status") => serde_json::to_value(locked_status()).unwrap_or_default(),
            Some("messages.send") => json!({"message_id": "00", "conversation": "bob",
                                            "timestamp_ms": 1, "status": "pending"}),
            _ => json!({}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
        if writer.write_all(format!("{answer}\n").as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
}

fn locked_status() -> DaemonStatus {
    DaemonStatus {
        version: "0.1.0".to_owned(),
        api_version: api::API_VERSION.to_owned(),
        pid: 4242,
        uptime_ms: 1,
        state: LockState::Locked,
        ephemeral: false,
        relay_url: None,
        connection: ConnectionState::Offline,
        address: None,
        outbox: None,
        hosted_relay: None,
        other_relays: Vec::new(),
        passphrase_protected: Some(true),
        store_error: None,
        last_relay_error: None,
        log_file: None,
        relay_kind: None,
        local_relay: None,
    }
}

fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // Others must be able to reach what is inside, as in /tmp.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    dir
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn bind(path: &Path) -> UnixListener {
    UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()))
}

fn passphrase_file(dir: &Path) -> PathBuf {
    let path = dir.join("passphrase");
    fs::write(&path, format!("{PASSPHRASE}\n")).unwrap_or_else(|e| panic!("write: {e}"));
    path
}

/// Runs `chatctl unlock` and `chatctl send` with `command` (which chooses the socket) and
/// checks that both refuse with exit code 3 and a message naming `bad_path` and `problem`.
fn assert_refused(
    command: impl Fn(&[&str]) -> Command,
    passphrase: &Path,
    bad_path: &Path,
    problem: &str,
) {
    let passphrase = passphrase.display().to_string();
    for args in [
        vec!["unlock", "--passphrase-file", &passphrase],
        vec!["send", "bob", TEXT],
    ] {
        let output = run(command(&args), None);
        assert_exit(&output, 3);
        let stderr = stderr(&output);
        assert!(
            stderr.contains("refusing to talk to chatd's socket"),
            "{stderr}"
        );
        assert!(stderr.contains(&bad_path.display().to_string()), "{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
        assert!(stderr.contains("nothing was sent"), "{stderr}");
    }
}

fn with_socket(socket: &Path) -> impl Fn(&[&str]) -> Command + '_ {
    move |args| {
        let mut command = chatctl(&["--no-autostart", "--socket"]);
        command.arg(socket).args(args);
        command
    }
}

/// Whether the test can play another uid; when it cannot, it fails under
/// `CHATD_REQUIRE_SYSTEM_TOOLS` and says it was skipped otherwise.
fn is_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_some() {
        panic!("{test}: needs root to play another uid, and CHATD_REQUIRE_SYSTEM_TOOLS is set");
    }
    eprintln!("{test}: SKIPPED: needs root to play another uid");
    false
}

#[test]
fn a_socket_directory_open_to_others_gets_nothing() {
    let dir = tempdir();
    let run_dir = dir.path().join("run");
    mkdir(&run_dir, 0o755);
    let socket = run_dir.join("chatd.sock");
    let planted = Planted::serve(bind(&socket));
    let passphrase = passphrase_file(dir.path());
    assert_refused(
        with_socket(&socket),
        &passphrase,
        &run_dir,
        "open to other users (mode 0755)",
    );
    assert_eq!(planted.received(), "");
    assert_eq!(
        planted.connections.load(Ordering::SeqCst),
        0,
        "not even a connection"
    );
}

#[test]
fn a_symlinked_socket_directory_gets_nothing() {
    let dir = tempdir();
    let real = dir.path().join("real");
    mkdir(&real, 0o700);
    let planted = Planted::serve(bind(&real.join("chatd.sock")));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
    let passphrase = passphrase_file(dir.path());
    assert_refused(
        with_socket(&link.join("chatd.sock")),
        &passphrase,
        &link,
        "symbolic link",
    );
    assert_eq!(planted.received(), "");
}

/// The scenario of the issue: no `XDG_RUNTIME_DIR`, and another user created
/// `<temp dir>/chatd-<uid>/chatd.sock` first. chatctl finds it by the default path.
#[test]
fn a_socket_planted_at_the_default_path_by_another_user_gets_nothing() {
    if !is_root("a_socket_planted_at_the_default_path_by_another_user_gets_nothing") {
        return;
    }
    let tmp = tempdir();
    let our_dir = tmp
        .path()
        .join(format!("chatd-{}", api::paths::current_uid()));
    mkdir(&our_dir, 0o700);
    let socket = our_dir.join(api::paths::SOCKET_FILE);
    let planted = Planted::serve(bind(&socket));
    for path in [&socket, &our_dir] {
        std::os::unix::fs::chown(path, Some(OTHER_UID), Some(OTHER_UID))
            .unwrap_or_else(|e| panic!("chown: {e}"));
    }
    let passphrase = passphrase_file(tmp.path());
    let by_default = |args: &[&str]| {
        let mut command = chatctl(&["--no-autostart"]);
        command
            .args(args)
            .env("TMPDIR", tmp.path())
            .env_remove("XDG_RUNTIME_DIR");
        command
    };
    assert_refused(by_default, &passphrase, &our_dir, "belongs to uid 65534");

    // The directory is ours again, the socket still theirs.
    std::os::unix::fs::chown(&our_dir, Some(rustix::process::geteuid().as_raw()), None)
        .unwrap_or_else(|e| panic!("chown: {e}"));
    assert_refused(by_default, &passphrase, &socket, "belongs to uid 65534");
    assert_eq!(planted.received(), "");
}

/// A server running as another uid whose socket file passes every path check (moved into our
/// private directory and given to us): the peer's uid (`SO_PEERCRED`) is what refuses it.
#[test]
fn a_server_of_another_uid_gets_nothing_even_from_a_private_directory() {
    let test = "a_server_of_another_uid_gets_nothing_even_from_a_private_directory";
    if !is_root(test) {
        return;
    }
    let python_works = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python_works {
        if std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_some() {
            panic!("{test}: python3 does not run, and CHATD_REQUIRE_SYSTEM_TOOLS is set");
        }
        eprintln!("{test}: SKIPPED: python3 does not run");
        return;
    }
    let tmp = tempdir();
    let stage = tmp.path().join("stage");
    mkdir(&stage, 0o777);
    let staged = stage.join("chatd.sock");
    // Accepts one connection and prints everything it received, once the client has gone.
    const SERVER: &str = r#"
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
"#;
    let mut server = Command::new("python3")
        .args(["-c", SERVER])
        .arg(&staged)
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let mut lines = BufReader::new(server.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(line, "listening\n");

    let ours = tmp.path().join("ours");
    mkdir(&ours, 0o700);
    let socket = ours.join("chatd.sock");
    fs::rename(&staged, &socket).unwrap_or_else(|e| panic!("rename: {e}"));
    std::os::unix::fs::chown(&socket, Some(rustix::process::geteuid().as_raw()), None)
        .unwrap_or_else(|e| panic!("chown: {e}"));

    let output = run(with_socket(&socket)(&["send", "bob", TEXT]), None);
    assert_exit(&output, 3);
    let stderr = stderr(&output);
    assert!(stderr.contains("is served by uid 65534"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");

    let mut rest = String::new();
    lines
        .read_to_string(&mut rest)
        .unwrap_or_else(|e| panic!("read: {e}"));
    let _ = server.wait();
    assert_eq!(rest, "b''\n", "the server of another uid received nothing");
}
