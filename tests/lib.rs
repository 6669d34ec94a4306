//! Shared helpers for the whole-system tests in `it/` (real processes, real sockets, temp dirs):
//! find the workspace's binaries, run a `chat-relay` and `chatd` daemons as child processes,
//! kill and restart them, and wait for conditions with a bound.
//!
//! The binaries are the ones `cargo test --workspace` builds next to this test binary
//! (`target/<profile>/`): chatctl, chatd and chat-relay all have integration tests of their
//! own, so cargo builds them before any test runs. `CHATD_TEST_BIN_DIR` overrides the
//! directory.

pub mod bench_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::client::Client;
use api::types::AccountInfo;
use serde_json::{Value, json};

/// How long a condition may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

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
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
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

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGTERM and waits for the process to exit.
fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
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
}

impl RelayProcess {
    /// Starts a relay on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let mut relay = Self {
            child: None,
            addr: free_addr(),
            dir: private_dir(),
        };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        let child = Command::new(bin("chat-relay"))
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(self.dir.path().join("relay"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chat-relay: {e}"));
        self.child = Some(child);
        let addr = self.addr;
        wait_for("the relay to listen", || TcpStream::connect(addr).ok());
    }

    /// The relay's URL (also its relay id).
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// Kills the relay with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Starts it again on the same port with the same data.
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

/// A `chatd` process with its own data dir and socket.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    relay: String,
    extra_args: Vec<String>,
}

impl DaemonProcess {
    /// Starts a daemon using the relay at `relay_url`, with test-weak Argon2id parameters.
    pub fn start(relay_url: &str) -> Self {
        Self::start_with(relay_url, &[])
    }

    /// As [`Self::start`], with extra command-line arguments.
    pub fn start_with(relay_url: &str, extra_args: &[&str]) -> Self {
        let mut daemon = Self {
            child: None,
            dir: private_dir(),
            relay: relay_url.to_owned(),
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
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

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The RPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("chatd.sock")
    }

    /// The arguments the daemon is started with.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            self.data_dir().display().to_string(),
            "--socket".to_owned(),
            self.socket().display().to_string(),
            "--kdf-memory-kib".to_owned(),
            "64".to_owned(),
            "--kdf-iterations".to_owned(),
            "1".to_owned(),
            "--kdf-parallelism".to_owned(),
            "1".to_owned(),
        ];
        if !self.relay.is_empty() {
            args.extend(["--relay".to_owned(), self.relay.clone()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        let child = Command::new(bin("chatd"))
            .args(self.args())
            .env(
                "RUST_LOG",
                std::env::var("CHATD_TEST_LOG").unwrap_or("warn".into()),
            )
            .env_remove("CHATD_SOCKET")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chatd: {e}"));
        self.child = Some(child);
        let socket = self.socket();
        wait_for("the daemon's socket", || Client::connect(&socket).ok());
    }

    /// A new RPC connection.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket()).unwrap_or_else(|e| panic!("connecting to chatd: {e}"))
    }

    /// Calls a method and returns its result, panicking on an error.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.client()
            .call_value(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Creates the account `name` (no passphrase) and waits until it is connected.
    pub fn create(&self, name: &str) -> AccountInfo {
        let info = self.call(
            api::methods::ACCOUNT_CREATE,
            json!({ "name": name, "no_passphrase": true }),
        );
        self.wait_connected();
        serde_json::from_value(info).unwrap_or_else(|e| panic!("account info: {e}"))
    }

    /// Waits until the relay connection is up.
    pub fn wait_connected(&self) {
        wait_for("the daemon to connect to its relay", || {
            let status = self.call(api::methods::DAEMON_STATUS, json!({}));
            (status["connection"] == "connected").then_some(())
        });
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

    /// Starts it again with the same data (after `kill` or `stop`).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
