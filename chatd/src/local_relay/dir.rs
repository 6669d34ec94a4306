//! The local relay's directory: created 0700 (or checked: the user's, closed to others), it
//! holds the relay's store (`store/`), the address the relay listens on (`address`, chosen
//! once and reused, since accounts sign their home relay's URL into their records) and the
//! process id of the daemon hosting it now (`host.pid`). An old embedded relay store found in
//! a daemon's data directory is moved in the first time.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::owner::{self, Listener};

/// The file that records the local relay's address.
pub const ADDRESS_FILE: &str = "address";
/// The file that holds the hosting daemon's process id while it hosts.
pub const PID_FILE: &str = "host.pid";
/// The relay store's directory inside the local-relay directory.
pub const STORE_DIR: &str = "store";
/// Where chatd kept the embedded relay's store before it had a directory of its own: inside
/// the data directory of whichever daemon hosted it.
pub const OLD_EMBEDDED_DIR: &str = "embedded-relay";

/// An opened local-relay directory and the relay's address.
#[derive(Debug, Clone)]
pub struct LocalRelayDir {
    path: PathBuf,
    addr: SocketAddr,
}

impl LocalRelayDir {
    /// Opens `path` for a daemon that may host the relay: creates it 0700 (or checks it),
    /// moves the old embedded relay store of `data_dir` in if this directory has no store
    /// yet, and settles the address: `addr_override` (`--embedded-relay-addr`) if given, else
    /// the recorded one, else, the first time, `default` if no other user listens there (on
    /// Linux; elsewhere if it is free), else a free loopback port the system picks. A new
    /// address is recorded (the override too, when nothing was recorded).
    pub fn open(
        path: &Path,
        data_dir: Option<&Path>,
        addr_override: Option<SocketAddr>,
        default: SocketAddr,
    ) -> anyhow::Result<Self> {
        crate::daemon::open_private_dir(
            path,
            "the local relay's directory",
            "the relay's mailboxes and handles",
            "--local-relay-dir",
        )?;
        if let Some(data_dir) = data_dir {
            migrate(path, data_dir);
        }
        let addr = match (read_address(path)?, addr_override) {
            (_, Some(addr)) | (Some(addr), None) => addr,
            (None, None) => first_address(default)?,
        };
        let addr = match record_address(path, addr)? {
            Some(recorded) if addr_override.is_none() => recorded,
            _ => addr,
        };
        Ok(Self {
            path: path.to_owned(),
            addr,
        })
    }

    /// The directory as a daemon that never hosts sees it (an ephemeral one, which writes
    /// nothing): the recorded address (or `addr_override`, or `default`), nothing created.
    pub fn read_only(
        path: &Path,
        addr_override: Option<SocketAddr>,
        default: SocketAddr,
    ) -> anyhow::Result<Self> {
        let recorded = match std::fs::metadata(path) {
            Ok(_) => read_address(path)?,
            Err(_) => None,
        };
        Ok(Self {
            path: path.to_owned(),
            addr: addr_override.or(recorded).unwrap_or(default),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's URL (its relay id and the home of accounts created on it).
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// The relay store's directory.
    pub fn store(&self) -> PathBuf {
        self.path.join(STORE_DIR)
    }

    /// Records `pid` as the hosting daemon (replacing what a daemon that was killed left).
    pub fn write_pid(&self, pid: u32) -> std::io::Result<()> {
        write_replacing(&self.path.join(PID_FILE), format!("{pid}\n").as_bytes())
    }

    /// Removes the pid file if it still names `pid`.
    pub fn clear_pid(&self, pid: u32) {
        if self.host_pid() == Some(pid) {
            let _ = std::fs::remove_file(self.path.join(PID_FILE));
        }
    }

    /// The process id in the pid file, if it names a process that runs (a daemon killed
    /// while hosting leaves its file behind).
    pub fn host_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.path.join(PID_FILE)).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        process_runs(pid).then_some(pid)
    }
}

/// Whether process `pid` exists (Linux: `/proc/PID`; elsewhere assumed).
fn process_runs(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        true
    }
}

/// The recorded address, if any.
fn read_address(dir: &Path) -> anyhow::Result<Option<SocketAddr>> {
    let file = dir.join(ADDRESS_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("reading {}", file.display())));
        }
    };
    text.trim().parse().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "{} does not hold an address (it holds {:?}); accounts on the local relay are \
             homed at the address it held, so put that back (e.g. 127.0.0.1:7420)",
            file.display(),
            text.trim().chars().take(64).collect::<String>()
        )
    })
}

/// Records `addr` unless an address is recorded already (another daemon may have been
/// quicker): returns the recorded one in that case.
fn record_address(dir: &Path, addr: SocketAddr) -> anyhow::Result<Option<SocketAddr>> {
    if let Some(recorded) = read_address(dir)? {
        return Ok(Some(recorded));
    }
    let file = dir.join(ADDRESS_FILE);
    let temp = dir.join(format!("{ADDRESS_FILE}.{}.tmp", std::process::id()));
    let written = write_synced(&temp, format!("{addr}\n").as_bytes())
        .and_then(|()| std::fs::hard_link(&temp, &file));
    let _ = std::fs::remove_file(&temp);
    match written {
        Ok(()) => {
            tracing::info!(%addr, dir = %dir.display(), "recorded the local relay's address");
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_address(dir),
        Err(e) => Err(anyhow::Error::new(e).context(format!("writing {}", file.display()))),
    }
}

/// The address to record the first time: `default` unless another user listens there (or,
/// where the owner cannot be told, unless anything listens there), else a free loopback
/// port the system picks.
pub(super) fn first_address(default: SocketAddr) -> anyhow::Result<SocketAddr> {
    let usable = match owner::listener_owner(default) {
        Listener::None | Listener::Ours => true,
        Listener::Foreign(uid) => {
            tracing::warn!(%default, uid, "another user listens on the default local relay address; picking another port");
            false
        }
        Listener::Unknown => TcpListener::bind(default).is_ok(),
    };
    if usable {
        return Ok(default);
    }
    let any = SocketAddr::new(default.ip(), 0);
    let free = TcpListener::bind(any)
        .and_then(|l| l.local_addr())
        .with_context(|| format!("finding a free port on {}", default.ip()))?;
    Ok(free)
}

/// Moves the old embedded relay store of `data_dir` into `dir` when `dir` has no store yet,
/// so a user keeps their handles and mail. Failures are logged, not fatal: the relay then
/// starts with an empty store, as it would have for a new user.
fn migrate(dir: &Path, data_dir: &Path) {
    let old = data_dir.join(OLD_EMBEDDED_DIR);
    let new = dir.join(STORE_DIR);
    if !has_entries(&old) || has_entries(&new) {
        return;
    }
    if store_in_use(&old) {
        tracing::warn!(old = %old.display(), "the old embedded relay store is in use by another process; it will be moved when it is free");
        return;
    }
    // An empty store directory (made by a daemon that hosted before this one migrated) is
    // replaced.
    let _ = std::fs::remove_dir(&new);
    match std::fs::rename(&old, &new) {
        Ok(()) => {
            tracing::info!(from = %old.display(), to = %new.display(), "moved the embedded relay's store to the local relay's directory")
        }
        Err(e) => {
            tracing::error!(from = %old.display(), to = %new.display(), error = %e, "could not move the old embedded relay store")
        }
    }
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Whether a process holds sled's lock on the store in `dir` (sled locks its `db` file).
fn store_in_use(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use rustix::fs::{FlockOperation, flock};
        let Ok(file) = std::fs::OpenOptions::new().read(true).open(dir.join("db")) else {
            return false;
        };
        let locked = flock(&file, FlockOperation::NonBlockingLockExclusive).is_err();
        let _ = flock(&file, FlockOperation::Unlock);
        locked
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Writes `bytes` to a new file `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` atomically (a temporary file and a rename).
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}
