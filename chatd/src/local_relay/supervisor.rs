//! The take-over loop: every daemon of the user with no relay configured runs one, and the
//! first that can bind the local relay's address and open its store hosts the relay; the
//! others try again every second or two (a failed bind costs nothing) and at once when their
//! relay link drops, so when the host stops, however it stops, another daemon takes over
//! with the same store within seconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_relay::{Relay, Storage};
use rand::RngExt as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::LocalRelayDir;
use super::owner::{self, Listener};

/// Shortest wait between two attempts to host.
const RETRY_MIN: Duration = Duration::from_millis(1000);
/// Longest wait between two attempts to host.
const RETRY_MAX: Duration = Duration::from_millis(2000);
/// Failures to open the store in a row (each after binding the address) before the failure
/// is shown in `daemon.status`: one or two happen while another daemon lets the store go.
const STORE_FAILURES_SHOWN: u32 = 5;

/// What the supervisor last found, for `daemon.status`.
#[derive(Debug, Clone, Default)]
struct Seen {
    hosting: bool,
    error: Option<String>,
}

/// The user's local relay as this daemon runs it: the directory, and the task that hosts the
/// relay or waits to take it over.
#[derive(Debug)]
pub struct LocalRelay {
    dir: LocalRelayDir,
    can_host: bool,
    seen: Arc<Mutex<Seen>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LocalRelay {
    /// Starts the supervisor for `dir`. A daemon that may not host (`can_host` false: an
    /// ephemeral one, which writes nothing) only watches who listens on the address.
    pub fn start(dir: LocalRelayDir, can_host: bool) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(
            dir.clone(),
            can_host,
            seen.clone(),
            wake.clone(),
            stop.clone(),
        ));
        Self {
            dir,
            can_host,
            seen,
            wake,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// The relay's URL.
    pub fn url(&self) -> String {
        self.dir.url()
    }

    /// Notified when the daemon's link to the local relay drops: the supervisor tries to host
    /// at once instead of at its next turn.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// What `daemon.status` says about the local relay.
    pub fn status(&self) -> api::types::LocalRelayStatus {
        let seen = self.seen();
        let host_pid = if seen.hosting {
            Some(std::process::id())
        } else {
            self.dir.host_pid()
        };
        api::types::LocalRelayStatus {
            url: self.dir.url(),
            dir: self.dir.path().display().to_string(),
            hosted_here: seen.hosting,
            host_pid,
            can_host: self.can_host,
            error: seen.error,
        }
    }

    /// Stops hosting (the store is flushed and closed, the pid file removed) or waiting.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for LocalRelay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Why an attempt to host failed.
enum Attempt {
    /// Something listens on the address already (another daemon hosts, or another program).
    AddressInUse,
    /// The address was free but the store could not be opened (another process has it).
    Store(String),
    /// Binding failed for another reason.
    Bind(String),
}

async fn supervise(
    dir: LocalRelayDir,
    can_host: bool,
    seen: Arc<Mutex<Seen>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let set = |hosting: bool, error: Option<String>| {
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.error != error
            && let Some(error) = &error
        {
            tracing::warn!(%error, "local relay");
        }
        *seen = Seen { hosting, error };
    };
    let mut store_failures = 0u32;
    loop {
        let attempt = if can_host {
            match host(&dir).await {
                Ok(relay) => {
                    set(true, None);
                    serve(&dir, relay, &stop).await;
                    set(false, None);
                    return;
                }
                Err(attempt) => attempt,
            }
        } else {
            Attempt::AddressInUse
        };
        let error = match attempt {
            Attempt::AddressInUse => {
                store_failures = 0;
                foreign_listener(&dir)
            }
            Attempt::Store(error) => {
                store_failures = store_failures.saturating_add(1);
                (store_failures >= STORE_FAILURES_SHOWN).then(|| {
                    format!(
                        "cannot open the local relay's store in {}: {error}",
                        dir.store().display()
                    )
                })
            }
            Attempt::Bind(error) => Some(error),
        };
        set(false, error);
        let wait = rand::rng().random_range(RETRY_MIN..=RETRY_MAX);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// The error to show when the address is taken by another user's socket (Linux), if it is.
pub fn foreign_listener(dir: &LocalRelayDir) -> Option<String> {
    match owner::listener_owner(dir.addr()) {
        Listener::Foreign(uid) => Some(foreign_message(dir.addr(), uid)),
        Listener::None | Listener::Ours | Listener::Unknown => None,
    }
}

/// Says that `addr` is another user's (`uid`) and that chatd will not use it.
pub fn foreign_message(addr: std::net::SocketAddr, uid: u32) -> String {
    format!(
        "the local relay's address {addr} is held by another user (uid {uid}): chatd does not \
         connect to it, since that user's program would see your metadata and hand out your \
         handles. Stop that program, or give your daemons another address \
         (--embedded-relay-addr, or a new address in the local relay's directory)"
    )
}

/// Binds the address, then opens the store: the listener is dropped if the store cannot be
/// opened (sled's lock lets one process at a time have it).
async fn host(dir: &LocalRelayDir) -> Result<Relay, Attempt> {
    let listener = match TcpListener::bind(dir.addr()).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(Attempt::AddressInUse),
        Err(e) => {
            return Err(Attempt::Bind(format!(
                "cannot listen on the local relay's address {}: {e}",
                dir.addr()
            )));
        }
    };
    if let Err(e) = crate::daemon::create_private_dir(&dir.store()) {
        return Err(Attempt::Store(e.to_string()));
    }
    let config = chat_relay::Config::new(Storage::Disk(dir.store()));
    Relay::start(listener, config)
        .await
        .map_err(|e| Attempt::Store(format!("{e:#}")))
}

/// Hosts until `stop`, with the pid file naming this process meanwhile.
async fn serve(dir: &LocalRelayDir, relay: Relay, stop: &CancellationToken) {
    let pid = std::process::id();
    tracing::info!(addr = %relay.local_addr(), dir = %dir.path().display(), "hosting the local relay");
    if let Err(e) = dir.write_pid(pid) {
        tracing::warn!(error = %e, "cannot write the local relay's pid file");
    }
    stop.cancelled().await;
    if let Err(e) = relay.shutdown().await {
        tracing::warn!(error = %format!("{e:#}"), "local relay shutdown");
    }
    dir.clear_pid(pid);
}
