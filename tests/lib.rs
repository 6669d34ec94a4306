//! Shared helpers for the whole-system tests in `it/` (real processes, real sockets, temp dirs):
//! find the workspace's binaries, run a `chat-relay` and `chatd` daemons as child processes,
//! kill and restart them, and wait for conditions with a bound.
//!
//! - Processes: [`RelayProcess`] (and [`shared_relay`] for tests that leave it alone),
//!   [`DaemonProcess`] with [`DaemonOptions`], [`Pair`] (two accounts that know each other).
//! - RPC: calls and message helpers on [`DaemonProcess`], [`EventStream`] for subscriptions,
//!   [`assert_received_exactly_once`] for the delivery guarantees.
//! - Other binaries: [`chatctl`], [`run_chatctl`], [`Finished`] and [`LineReader`] for
//!   commands that end or keep printing, [`KillOnDrop`] for a process that is not our child.
//! - The network: [`WsProxy`], a man in the middle between daemons and a relay.
//! - System programs from Debian's packages: [`system_tool_available`] skips or fails.
//!
//! The binaries are the ones `cargo test --workspace` builds next to this test binary
//! (`target/<profile>/`): chatctl, chatd, chat-relay and chat-tray all have integration tests
//! of their own, so cargo builds them before any test runs (`cargo test -p tests` alone does
//! not: run `cargo build --bins` first). `CHATD_TEST_BIN_DIR` overrides the directory.

pub mod bench_support;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use api::client::{Client, ClientError};
use api::methods as m;
use api::types::AccountInfo;
use serde_json::{Value, json};

/// How long a condition may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| panic!("the tests crate lives inside the workspace directory"))
        .to_path_buf()
}

/// The directory holding the workspace binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHATD_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/it-<hash> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The path of a workspace binary; panics with a hint if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// Polls `f` every 10 ms until it returns `Some`, or panics after [`PATIENCE`].
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_within(what, PATIENCE, f)
}

/// Polls `f` every 10 ms until it returns `Some`, or panics after `patience`.
pub fn wait_for_within<T>(what: &str, patience: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(start.elapsed() < patience, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the wall clock is in a later second than when called. The relay orders handle
/// claims and releases by their `issued_at` in whole seconds (protocol/SPEC.md, section 10.6),
/// so a test that claims and releases in a row must let a second pass between them.
pub fn wait_for_next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_else(|e| panic!("the clock is before 1970: {e}"))
    };
    let start = now();
    wait_for("the next second", || (now() > start).then_some(()));
}

/// Whether a system program a test drives (from Debian's packages: `dbus-run-session`,
/// `systemd-analyze`, `node`, ...) can run here. `probe` is the program and its arguments for a
/// cheap run that succeeds only if the program works (`["node", "--version"]`).
///
/// When it cannot run, the test should return early: this prints that the test was skipped
/// and why, unless `CHATD_REQUIRE_SYSTEM_TOOLS` is set (`.ci/run` sets it after installing the
/// programs), in which case it panics, so CI never passes by skipping.
pub fn system_tool_available(test: &str, probe: &[&str]) -> bool {
    let Some((program, args)) = probe.split_first() else {
        panic!("system_tool_available needs a program to probe");
    };
    let works = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if works {
        return true;
    }
    let why = format!("`{}` does not run here", probe.join(" "));
    if std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_some() {
        panic!("{test}: {why}, and CHATD_REQUIRE_SYSTEM_TOOLS is set (.ci/run installs it)");
    }
    eprintln!("{test}: SKIPPED: {why} (.ci/run installs it; see README, \"Building and testing\")");
    false
}

/// Connects to chatd's `socket` as the current user, or as uid/gid 65534 (`nobody`) with
/// `as_nobody` (which needs root), sends `daemon.status`, and says `answered` or `refused`.
/// The client is a python3 one-liner: it can drop privileges after the fork, which a Rust test
/// cannot do without `unsafe`.
pub fn connect_as_peer(socket: &Path, as_nobody: bool) -> String {
    const PEER_SCRIPT: &str = r#"
import os, socket, sys
path, drop = sys.argv[1], sys.argv[2] == "drop"
if drop:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)  # blocking: a busy daemon's full backlog makes it wait, not fail
s.settimeout(20)
try:
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\n')
    data = s.recv(65536)
except (BrokenPipeError, ConnectionResetError):
    data = b""
print("answered" if data else "refused")
"#;
    let output = Command::new("python3")
        .args(["-c", PEER_SCRIPT])
        .arg(socket)
        .arg(if as_nobody { "drop" } else { "keep" })
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}"));
    assert!(
        output.status.success(),
        "the peer script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The texts of `messages` (as `messages.history` lists them), in their order.
pub fn message_texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
}

/// A private temporary directory (mode 0700), removed on drop.
pub fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("chatd-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
    }
    dir
}

/// Every regular file under `dir`, recursively, in a stable order (symlinks are not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let file_type = entry
                .file_type()
                .unwrap_or_else(|e| panic!("cannot stat {}: {e}", entry.path().display()));
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Every entry (file, directory, socket...) under `dir`, recursively, as paths relative to it.
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let entries =
            std::fs::read_dir(&at).unwrap_or_else(|e| panic!("cannot list {}: {e}", at.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", at.display()));
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap_or(&path).to_path_buf());
        }
    }
    found.sort();
    found
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGTERM and waits for the process to exit.
fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        signal(child.id(), "-TERM");
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    kill(child);
}

/// A `chat-relay` process with durable storage in a temp dir.
#[derive(Debug)]
pub struct RelayProcess {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl RelayProcess {
    /// Starts a relay on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Self::start`], with extra command-line arguments (`--relay-id URL`, say).
    pub fn start_with(extra_args: &[&str]) -> Self {
        let mut relay = Self {
            child: None,
            addr: free_addr(),
            dir: private_dir(),
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
        };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        let child = Command::new(bin("chat-relay"))
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chat-relay: {e}"));
        self.child = Some(child);
        let addr = self.addr;
        wait_for("the relay to listen", || TcpStream::connect(addr).ok());
    }

    /// Its storage directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("relay")
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's URL (also its relay id, unless it was started with `--relay-id`).
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// Kills the relay with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Starts it again on the same port with the same data (after [`Self::kill`], or killing
    /// it first).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A relay shared by the tests running at the same time that do not stop or restart it. It
/// stops when the last of them drops its handle, so no process outlives the test binary.
pub fn shared_relay() -> Arc<RelayProcess> {
    static SHARED: Mutex<Weak<RelayProcess>> = Mutex::new(Weak::new());
    let mut slot = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(relay) = slot.upgrade() {
        return relay;
    }
    let relay = Arc::new(RelayProcess::start());
    *slot = Arc::downgrade(&relay);
    relay
}

/// How to run a `chatd` beyond the defaults (see [`DaemonProcess::start_options`]).
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Run with `--ephemeral` and without `--data-dir`.
    pub ephemeral: bool,
    /// Extra environment variables for the process.
    pub env: Vec<(OsString, OsString)>,
    /// Its working directory (default: the test's).
    pub cwd: Option<PathBuf>,
    /// A command that runs the daemon (given as its last arguments) by exec'ing it, so the
    /// process is still the daemon's: `["ip", "netns", "exec", "NS"]` runs it in a network
    /// namespace.
    pub wrapper: Vec<String>,
}

/// A `chatd` process with its own data dir and socket.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    relay: String,
    options: DaemonOptions,
}

impl DaemonProcess {
    /// Starts a daemon using the relay at `relay_url`, with test-weak Argon2id parameters.
    pub fn start(relay_url: &str) -> Self {
        Self::start_options(relay_url, DaemonOptions::default())
    }

    /// As [`Self::start`], with extra command-line arguments.
    pub fn start_with(relay_url: &str, extra_args: &[&str]) -> Self {
        let options = DaemonOptions {
            args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            ..DaemonOptions::default()
        };
        Self::start_options(relay_url, options)
    }

    /// As [`Self::start`], with [`DaemonOptions`].
    pub fn start_options(relay_url: &str, options: DaemonOptions) -> Self {
        let mut daemon = Self {
            child: None,
            dir: private_dir(),
            relay: relay_url.to_owned(),
            options,
        };
        daemon.spawn();
        daemon
    }

    /// Starts a daemon with no `--relay` (it uses the relay it hosts, or the embedded one).
    pub fn start_without_relay(extra_args: &[&str]) -> Self {
        Self::start_with("", extra_args)
    }

    /// The daemon's own directory (data dir and socket live inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (absent when ephemeral).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The RPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("chatd.sock")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The arguments the daemon is started with.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.options.ephemeral {
            args.push("--ephemeral".to_owned());
        } else {
            args.push("--data-dir".to_owned());
            args.push(self.data_dir().display().to_string());
        }
        args.extend(
            [
                "--socket",
                &self.socket().display().to_string(),
                "--kdf-memory-kib",
                "64",
                "--kdf-iterations",
                "1",
                "--kdf-parallelism",
                "1",
            ]
            .map(str::to_owned),
        );
        if !self.relay.is_empty() {
            args.extend(["--relay".to_owned(), self.relay.clone()]);
        }
        args.extend(self.options.args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        let mut command = match self.options.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin("chatd"));
                command
            }
            None => Command::new(bin("chatd")),
        };
        command
            .args(self.args())
            .env(
                "RUST_LOG",
                std::env::var("CHATD_TEST_LOG").unwrap_or("warn".into()),
            )
            .env_remove("CHATD_SOCKET")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(cwd) = &self.options.cwd {
            command.current_dir(cwd);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chatd: {e}"));
        self.child = Some(child);
        let socket = self.socket();
        wait_for("the daemon's socket", || Client::connect(&socket).ok());
    }

    /// A new RPC connection whose reads give up after [`PATIENCE`], so a daemon that never
    /// answers fails the test instead of hanging it.
    pub fn client(&self) -> Client {
        let client =
            Client::connect(&self.socket()).unwrap_or_else(|e| panic!("connecting to chatd: {e}"));
        client
            .set_read_timeout(Some(PATIENCE))
            .unwrap_or_else(|e| panic!("setting a read timeout: {e}"));
        client
    }

    /// Calls a method and returns its result or error.
    pub fn try_call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.client().call_value(method, params)
    }

    /// Calls a method and returns its result, panicking on an error.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Creates the account `name` (no passphrase) and waits until it is connected.
    pub fn create(&self, name: &str) -> AccountInfo {
        let info = self.call(
            m::ACCOUNT_CREATE,
            json!({ "name": name, "no_passphrase": true }),
        );
        self.wait_connected();
        serde_json::from_value(info).unwrap_or_else(|e| panic!("account info: {e}"))
    }

    /// Unlocks an account created without a passphrase and waits until it is connected.
    pub fn unlock(&self) {
        self.call(m::ACCOUNT_UNLOCK, json!({}));
        self.wait_connected();
    }

    /// Waits until the relay connection is up.
    pub fn wait_connected(&self) {
        wait_for("the daemon to connect to its relay", || {
            let status = self.call(m::DAEMON_STATUS, json!({}));
            (status["connection"] == "connected").then_some(())
        });
    }

    /// Adds a contact by address or `@handle`.
    pub fn add_contact(&self, alias: &str, target: &str) -> Value {
        self.call(m::CONTACTS_ADD, json!({ "alias": alias, "target": target }))
    }

    /// Waits for a message request from `address` (a stranger who wrote first) and accepts it
    /// under the alias `alias`: it becomes a contact, and gets this account's introduction.
    pub fn accept_request(&self, alias: &str, address: &str) -> Value {
        wait_for("the message request to arrive", || {
            let list = self.call(m::REQUESTS_LIST, json!({}));
            list["requests"]
                .as_array()?
                .iter()
                .any(|r| r["contact"]["address"] == address)
                .then_some(())
        });
        self.call(
            m::REQUESTS_ACCEPT,
            json!({ "contact": address, "alias": alias }),
        )
    }

    /// Sends `text` to `to` and returns the new message's id.
    pub fn send(&self, to: &str, text: &str) -> String {
        let sent = self.call(m::MESSAGES_SEND, json!({ "to": to, "text": text }));
        sent["message_id"]
            .as_str()
            .unwrap_or_else(|| panic!("messages.send returned no id: {sent}"))
            .to_owned()
    }

    /// Sends `texts` to `to` without waiting between them and returns their ids: they leave
    /// in as many `Send` frames as the daemon likes, and arrive in this order.
    pub fn send_all(&self, to: &str, texts: &[String]) -> Vec<String> {
        texts.iter().map(|text| self.send(to, text)).collect()
    }

    /// Sends `texts` to `to` one at a time, each accepted by the relay (`sent`) before the next
    /// goes, and returns their ids: for tests that need every message at the relay before
    /// something happens (a kill, a restart). Order needs no waiting: messages sent without it
    /// arrive in the order they were sent (`send_all`).
    pub fn send_one_by_one(&self, to: &str, texts: &[String]) -> Vec<String> {
        texts
            .iter()
            .map(|text| {
                let id = self.send(to, text);
                self.wait_status(to, &id, "sent");
                id
            })
            .collect()
    }

    /// Every message of a conversation, oldest first, paging back with `before` cursors.
    pub fn messages(&self, conversation: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut before = Value::Null;
        loop {
            let page = self.call(
                m::MESSAGES_HISTORY,
                json!({ "conversation": conversation, "limit": 500, "before": before }),
            );
            let messages = page["messages"]
                .as_array()
                .unwrap_or_else(|| panic!("a history page without messages: {page}"))
                .clone();
            pages.push(messages);
            before = page["next_before"].clone();
            if before.is_null() {
                break;
            }
        }
        pages.into_iter().rev().flatten().collect()
    }

    /// The messages of a conversation in one direction (`incoming` or `outgoing`), oldest first.
    pub fn messages_in(&self, conversation: &str, direction: &str) -> Vec<Value> {
        let mut messages = self.messages(conversation);
        messages.retain(|m| m["direction"] == direction);
        messages
    }

    /// The status of the outgoing message `id` in `conversation` now ("" if it is not there).
    pub fn status_of(&self, conversation: &str, id: &str) -> String {
        self.messages_in(conversation, "outgoing")
            .iter()
            .find(|m| m["message_id"] == id)
            .and_then(|m| m["status"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Waits until the outgoing message `id` in `conversation` has reached `status` (`sent`,
    /// `delivered` or `read`) or a later one.
    pub fn wait_status(&self, conversation: &str, id: &str, status: &str) {
        let wanted = status_rank(status);
        wait_for(&format!("message {id} to be {status}"), || {
            let messages = self.messages_in(conversation, "outgoing");
            let message = messages.iter().find(|m| m["message_id"] == id)?;
            let now = message["status"].as_str().unwrap_or_default();
            assert_ne!(now, "failed", "message {id} failed: {message}");
            (status_rank(now) >= wanted).then_some(())
        });
    }

    /// Waits until `conversation` (a contact's, or a message request's) holds at least `count`
    /// incoming messages and returns them.
    pub fn wait_incoming(&self, conversation: &str, count: usize) -> Vec<Value> {
        wait_for(
            &format!("{count} incoming messages in {conversation}"),
            || {
                // A contact's conversation or a message request's.
                self.try_call(
                    m::MESSAGES_HISTORY,
                    json!({ "conversation": conversation, "limit": 1 }),
                )
                .ok()?;
                let messages = self.messages_in(conversation, "incoming");
                (messages.len() >= count).then_some(messages)
            },
        )
    }

    /// The conversation `name` in `conversations.list`, if it is there.
    pub fn find_conversation(&self, name: &str) -> Option<Value> {
        let list = self.call(m::CONVERSATIONS_LIST, json!({}));
        list["conversations"]
            .as_array()?
            .iter()
            .find(|c| c["conversation"] == name)
            .cloned()
    }

    /// Kills the daemon with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Stops the daemon with SIGTERM.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Replaces the extra command-line arguments the daemon is started with from its next
    /// start on (`restart`).
    pub fn set_args(&mut self, extra_args: &[&str]) {
        self.options.args = extra_args.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Starts it again with the same data (after `kill` or `stop`).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts it again with the same data, unlocks it and waits until it is connected.
    pub fn restart_unlocked(&mut self) {
        self.restart();
        // An account without a passphrase is unlocked by the daemon itself at start.
        wait_for("the daemon to unlock at start", || {
            let status = self.call(m::DAEMON_STATUS, json!({}));
            (status["state"] == "unlocked").then_some(())
        });
        self.wait_connected();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The order of outgoing statuses, so "delivered or later" can be asked.
fn status_rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        other => panic!("not an outgoing status: {other}"),
    }
}

/// Two accounts on one relay, `alice` and `bob`, each the other's contact under that alias.
///
/// Alice adds Bob by address; her introduction makes Bob add her (named by her display name,
/// `alice`), so a session exists both ways once `start` returns.
#[derive(Debug)]
pub struct Pair {
    /// Alice's daemon.
    pub alice: DaemonProcess,
    /// Bob's daemon.
    pub bob: DaemonProcess,
    /// Alice's account.
    pub alice_info: AccountInfo,
    /// Bob's account.
    pub bob_info: AccountInfo,
}

impl Pair {
    /// Starts both daemons with default options.
    pub fn start(relay_url: &str) -> Self {
        Self::start_options(
            relay_url,
            DaemonOptions::default(),
            DaemonOptions::default(),
        )
    }

    /// Starts both daemons with the given options.
    pub fn start_options(relay_url: &str, alice: DaemonOptions, bob: DaemonOptions) -> Self {
        let alice = DaemonProcess::start_options(relay_url, alice);
        let bob = DaemonProcess::start_options(relay_url, bob);
        let alice_info = alice.create("alice");
        let bob_info = bob.create("bob");
        alice.add_contact("bob", &bob_info.address);
        // Alice is a stranger to Bob: her introduction makes her a message request, which Bob
        // accepts (his introduction goes back), so each is the other's contact.
        bob.accept_request("alice", &alice_info.address);
        Self {
            alice,
            bob,
            alice_info,
            bob_info,
        }
    }
}

/// A subscription to a daemon's events, on a connection of its own.
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    /// The subscription id.
    pub subscription: Value,
}

impl EventStream {
    /// Subscribes, replaying the retained events after `since` first when it is given.
    pub fn subscribe(daemon: &DaemonProcess, since: Option<u64>) -> Self {
        let mut client = daemon.client();
        let params = match since {
            Some(since) => json!({ "since": since }),
            None => json!({}),
        };
        let subscription = client
            .call_value(m::EVENTS_SUBSCRIBE, params)
            .unwrap_or_else(|e| panic!("events.subscribe failed: {e}"));
        Self {
            client,
            subscription,
        }
    }

    /// The next event, panicking if none comes within [`PATIENCE`].
    pub fn next_event(&mut self) -> Value {
        let notification = self
            .client
            .next_notification()
            .unwrap_or_else(|e| panic!("no event within {PATIENCE:?}: {e}"));
        assert_eq!(notification.method, api::events::NOTIFICATION);
        assert_eq!(notification.subscription, self.subscription);
        notification.result
    }

    /// Events up to and including the first one `stop` accepts.
    pub fn until(&mut self, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next_event();
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// An event's cursor.
pub fn cursor(event: &Value) -> u64 {
    event["cursor"]
        .as_u64()
        .unwrap_or_else(|| panic!("an event without a cursor: {event}"))
}

/// Whether `event` announces the received message `id`.
pub fn is_received(event: &Value, id: &str) -> bool {
    event["kind"] == "message.received" && event["message"]["message_id"] == id
}

/// How many `message.received` events each message id has in `events`.
pub fn received_counts(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events.iter().filter(|e| e["kind"] == "message.received") {
        let id = event["message"]["message_id"].as_str().unwrap_or_default();
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Waits until `receiver` holds all the messages `ids` that `sender` sent (to `to`; they land
/// in the receiver's `conversation`), then asserts that it holds each exactly once and
/// announced each exactly once: its retained events are replayed from the start up to a
/// sentinel message the sender sends last. Returns the incoming messages, oldest first.
pub fn assert_received_exactly_once(
    sender: &DaemonProcess,
    to: &str,
    receiver: &DaemonProcess,
    conversation: &str,
    ids: &[String],
) -> Vec<Value> {
    let all = wait_for("every message to arrive", || {
        let incoming = receiver
            .find_conversation(conversation)
            .map(|_| receiver.messages_in(conversation, "incoming"))?;
        ids.iter()
            .all(|id| incoming.iter().any(|m| m["message_id"] == id.as_str()))
            .then_some(incoming)
    });
    let held: Vec<&str> = all
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default())
        .collect();
    let mut unique = held.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        held.len(),
        "a message is stored twice: {held:?}"
    );
    assert_eq!(held.len(), ids.len(), "unexpected extra messages: {held:?}");

    let sentinel = sender.send(to, "sentinel");
    let mut events = EventStream::subscribe(receiver, Some(0));
    let seen = events.until(|e| is_received(e, &sentinel));
    let counts = received_counts(&seen);
    for id in ids {
        assert_eq!(
            counts.get(id).copied().unwrap_or(0),
            1,
            "message {id} was announced {} times",
            counts.get(id).copied().unwrap_or(0)
        );
    }
    assert_eq!(
        counts.len(),
        ids.len() + 1,
        "unexpected announcements: {counts:?}"
    );
    all
}

/// A `chatctl` command talking to the daemon at `socket` (`--no-autostart`), with the
/// environment cleared of the variables that would redirect it.
pub fn chatctl(socket: &Path) -> Command {
    let mut command = Command::new(bin("chatctl"));
    command
        .arg("--socket")
        .arg(socket)
        .arg("--no-autostart")
        .env_remove("CHATD_SOCKET")
        .env_remove("CHATD_BIN")
        .env_remove("CHATCTL_CHATD_ARGS")
        .stdin(Stdio::null());
    command
}

/// What a command that ran to the end printed, and how it exited.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// Runs `command` to the end, feeding it `input` on stdin.
    pub fn run(command: &mut Command, input: &[u8]) -> Self {
        use std::io::Write;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .unwrap_or_else(|e| panic!("writing to {command:?}: {e}"));
        }
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {command:?}: {e}"));
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with everything it printed unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Standard output parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

/// Runs `chatctl --socket SOCKET --no-autostart ARGS...` to the end with an empty stdin.
pub fn run_chatctl(socket: &Path, args: &[&str]) -> Finished {
    Finished::run(chatctl(socket).args(args), b"")
}

/// A long-running child (`chatctl watch`, say) whose stdout lines a thread collects; killed on
/// drop.
#[derive(Debug)]
pub struct LineReader {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LineReader {
    /// Spawns `command` with its stdout piped.
    pub fn spawn(command: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{command:?} has no stdout"));
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The lines up to and including the first that `stop` accepts; panics if the child ends
    /// or prints no such line within [`PATIENCE`].
    pub fn until(&self, what: &str, mut stop: impl FnMut(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = stop(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("no line with {what} ({e}); got: {seen:#?}"),
            }
        }
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Kills a process that is not our child (a chatd that `chatctl` started, say) when dropped,
/// unless it was stopped with [`KillOnDrop::terminate`].
#[derive(Debug)]
pub struct KillOnDrop {
    pid: u32,
    armed: bool,
}

impl KillOnDrop {
    /// Guards the process `pid`.
    pub fn new(pid: u32) -> Self {
        Self { pid, armed: true }
    }

    /// Sends SIGTERM and waits until `stopped` says it has stopped (the process is not ours to
    /// wait for, so the caller knows the sign: a socket removed, say).
    pub fn terminate(mut self, mut stopped: impl FnMut() -> bool) {
        signal(self.pid, "-TERM");
        wait_for(&format!("process {} to stop", self.pid), || {
            stopped().then_some(())
        });
        self.armed = false;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            signal(self.pid, "-KILL");
        }
    }
}

/// Sends a signal (`-TERM`, `-KILL`) with kill(1).
fn signal(pid: u32, which: &str) {
    let _ = Command::new("kill")
        .arg(which)
        .arg(pid.to_string())
        .status();
}

/// A man-in-the-middle WebSocket proxy between daemons and a relay, as a hostile network or
/// relay would be: it forwards every binary frame both ways, and on request flips a byte in the
/// payload of one `Deliver` frame, or swallows the daemons' `Ack` frames (protocol/SPEC.md,
/// section 10).
///
/// The daemons dial the proxy, so the relay must name the proxy's URL in its challenge: start
/// it with [`WsProxy::relay`].
#[derive(Debug)]
pub struct WsProxy {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    rules: Arc<ProxyRules>,
}

/// What the proxy does to frames, changed by the test while it runs.
#[derive(Debug, Default)]
struct ProxyRules {
    corrupt_next_deliver: std::sync::atomic::AtomicBool,
    corrupted: std::sync::atomic::AtomicUsize,
    drop_acks: std::sync::atomic::AtomicBool,
    dropped_acks: std::sync::atomic::AtomicUsize,
    refuse_sends: std::sync::atomic::AtomicUsize,
    refused_sends: std::sync::atomic::AtomicUsize,
    /// A reachability record (encoded) put into every `Reachability` answer instead of the
    /// relay's, as a lying relay would.
    fake_reachability: Mutex<Option<Vec<u8>>>,
    faked_reachability: std::sync::atomic::AtomicUsize,
}

/// The frame type bytes the proxy looks at (after the version byte 1).
const FRAME_DELIVER: u8 = 0x86;
/// The type byte of a `Reachability` answer.
const FRAME_REACHABILITY: u8 = 0x8a;
const FRAME_ACK: u8 = 0x15;
const FRAME_SEND: u8 = 0x14;
/// The type byte of a `Deposit` frame (what chatd sends since SPEC.md 10.9).
const FRAME_DEPOSIT: u8 = 0x19;
/// Where a `Deliver` frame's payload starts: version, type, envelope id (16), received_at
/// (u64), payload length (u32).
const DELIVER_PAYLOAD_AT: usize = 2 + 16 + 8 + 4;

impl WsProxy {
    /// Starts a relay whose relay id is the URL of a proxy in front of it, and that proxy.
    pub fn relay() -> (RelayProcess, WsProxy) {
        let addr = free_addr();
        let relay_id = format!("ws://{addr}/v1");
        let relay = RelayProcess::start_with(&["--relay-id", &relay_id]);
        let proxy = WsProxy::start(addr, relay.addr());
        (relay, proxy)
    }

    /// Listens on `addr` and forwards each connection to the relay at `upstream`.
    pub fn start(addr: SocketAddr, upstream: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime for the proxy: {e}"));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("the proxy cannot listen on {addr}: {e}"));
        let rules = Arc::new(ProxyRules::default());
        let shared = Arc::clone(&rules);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(proxy_connection(stream, upstream, Arc::clone(&shared)));
            }
        });
        Self {
            runtime: Some(runtime),
            addr,
            rules,
        }
    }

    /// The URL daemons dial (and the relay's id).
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// Answers every `FetchReachability` with `record` (its encoding), whatever the relay holds.
    pub fn fake_reachability(&self, record: Vec<u8>) {
        *self
            .rules
            .fake_reachability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record);
    }

    /// How many `Reachability` answers were replaced so far.
    pub fn faked_reachability(&self) -> usize {
        self.rules
            .faked_reachability
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Flips one byte in the payload of the next `Deliver` frame, on whichever connection.
    pub fn corrupt_next_deliver(&self) {
        self.rules
            .corrupt_next_deliver
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many `Deliver` frames were corrupted so far.
    pub fn corrupted(&self) -> usize {
        self.rules
            .corrupted
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts or stops swallowing the `Ack` frames daemons send.
    pub fn drop_acks(&self, on: bool) {
        self.rules
            .drop_acks
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many `Ack` frames were swallowed so far.
    pub fn dropped_acks(&self) -> usize {
        self.rules
            .dropped_acks
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Refuses the next `count` `Send` or `Deposit` frames daemons send, as a relay over its
    /// rate limit does (`rate_limited`, SPEC.md 10.5), without passing them on.
    pub fn refuse_sends(&self, count: usize) {
        self.rules
            .refuse_sends
            .store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many `Send` or `Deposit` frames were refused so far.
    pub fn refused_sends(&self) -> usize {
        self.rules
            .refused_sends
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for WsProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Accepts the daemon's WebSocket, dials the relay, and pumps frames both ways until either
/// side closes.
async fn proxy_connection(
    client: tokio::net::TcpStream,
    upstream: SocketAddr,
    rules: Arc<ProxyRules>,
) {
    use futures_util::{SinkExt, StreamExt};
    use std::sync::atomic::Ordering::SeqCst;
    use tokio_tungstenite::tungstenite::Message;

    let Ok(client) = tokio_tungstenite::accept_async(client).await else {
        return;
    };
    let Ok(tcp) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let Ok((relay, _)) = tokio_tungstenite::client_async(format!("ws://{upstream}/v1"), tcp).await
    else {
        return;
    };
    let (mut to_client, mut from_client) = client.split();
    let (mut to_relay, mut from_relay) = relay.split();
    // Answers the proxy makes up itself, merged into the relay's frames to the client.
    let (answers, mut made_up) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let upward = async {
        // A refusal is held back until the daemon's next `Send` has gone on to the relay (or
        // 300 ms passed without one): a daemon that keeps several `Send`s of a conversation in
        // flight has then had the later one stored before it hears of the refusal, which is
        // the race a real relay's rate limit can produce.
        let mut held_refusal: Option<Message> = None;
        loop {
            let next = match held_refusal.is_some() {
                true => tokio::select! {
                    next = from_client.next() => next,
                    () = tokio::time::sleep(Duration::from_millis(300)) => {
                        if let Some(refusal) = held_refusal.take() {
                            let _ = answers.send(refusal);
                        }
                        continue;
                    }
                },
                false => from_client.next().await,
            };
            let Some(Ok(message)) = next else { break };
            if let Message::Binary(frame) = &message
                && frame.get(1) == Some(&FRAME_ACK)
                && rules.drop_acks.load(SeqCst)
            {
                rules.dropped_acks.fetch_add(1, SeqCst);
                continue;
            }
            let is_send = matches!(&message, Message::Binary(frame)
                if frame.get(1) == Some(&FRAME_SEND) || frame.get(1) == Some(&FRAME_DEPOSIT));
            if let Message::Binary(frame) = &message
                && is_send
                && rules
                    .refuse_sends
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                use protocol::codec::{Decode, Encode};
                use protocol::frames::{ClientFrame, ErrorCode, ServerFrame};
                if let Ok(
                    ClientFrame::Send { request_id, .. } | ClientFrame::Deposit { request_id, .. },
                ) = ClientFrame::from_bytes(frame)
                {
                    let refusal =
                        ServerFrame::error(Some(request_id), ErrorCode::RateLimited, "slow down");
                    rules.refused_sends.fetch_add(1, SeqCst);
                    if let Some(earlier) =
                        held_refusal.replace(Message::Binary(refusal.to_bytes().into()))
                    {
                        let _ = answers.send(earlier);
                    }
                    continue;
                }
            }
            if matches!(message, Message::Binary(_) | Message::Close(_))
                && to_relay.send(message).await.is_err()
            {
                break;
            }
            if is_send && let Some(refusal) = held_refusal.take() {
                let _ = answers.send(refusal);
            }
        }
    };
    let downward = async {
        loop {
            let mut message = tokio::select! {
                relayed = from_relay.next() => match relayed {
                    Some(Ok(message)) => message,
                    _ => break,
                },
                Some(answer) = made_up.recv() => answer,
            };
            if let Message::Binary(frame) = &message
                && frame.get(1) == Some(&FRAME_DELIVER)
                && frame.len() > DELIVER_PAYLOAD_AT
                && rules.corrupt_next_deliver.swap(false, SeqCst)
            {
                let mut bytes = frame.to_vec();
                let at = DELIVER_PAYLOAD_AT + (bytes.len() - DELIVER_PAYLOAD_AT) / 2;
                bytes[at] ^= 0x01;
                message = Message::Binary(bytes.into());
                rules.corrupted.fetch_add(1, SeqCst);
            }
            if let Message::Binary(frame) = &message
                && frame.get(1) == Some(&FRAME_REACHABILITY)
                && let Some(record) = rules
                    .fake_reachability
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                && let Some(request_id) = frame.get(2..6)
            {
                // version, type, the answer's request id, then the record, present.
                let mut bytes = vec![1, FRAME_REACHABILITY];
                bytes.extend_from_slice(request_id);
                bytes.push(1);
                bytes.extend_from_slice(&record);
                message = Message::Binary(bytes.into());
                rules.faked_reachability.fetch_add(1, SeqCst);
            }
            if matches!(message, Message::Binary(_) | Message::Close(_))
                && to_client.send(message).await.is_err()
            {
                break;
            }
        }
    };
    tokio::select! {
        () = upward => {}
        () = downward => {}
    }
}
