//! The RPC socket file (Unix): its private directory, the lock that keeps two daemons off one
//! path, the stale-socket check, the bind, the file modes, and removal on drop; or, under socket
//! activation, the listener a service manager bound, adopted as it is. Also the accept side
//! [`serve`](super::serve) drives: [`Acceptor`] with the peer-uid check, and the stream types
//! the connection loop reads and writes. `pipe.rs` is the Windows twin, with the same items.
//!
//! Directory policy: the socket's parent directory must be a real directory (looked at with
//! `lstat`: a symbolic link is refused, not followed), owned by us and closed to group and
//! others (mode `0700` or stricter), because a socket in a directory other users can enter or
//! write is reachable or replaceable by them (ARCHITECTURE.md, "Threat model"). A missing directory is
//! created with mode 0700 (and missing ancestors with it). An existing directory that fails the
//! check is refused with an error that says how to fix it; it is never `chmod`ed, because it may
//! be a directory the user relies on (a home directory, say) and tightening it silently would
//! break other things. This also refuses a directory another user planted at a predictable path
//! (`/tmp/chatd-<uid>`).

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// One accepted connection.
pub(super) type Stream = tokio::net::UnixStream;
/// The half of a connection its reader owns.
pub(super) type ReadHalf = tokio::net::unix::OwnedReadHalf;
/// The half of a connection its writer task owns.
pub(super) type WriteHalf = tokio::net::unix::OwnedWriteHalf;

/// Splits a connection into the halves its reader and writer own.
pub(super) fn split(stream: Stream) -> (ReadHalf, WriteHalf) {
    stream.into_split()
}

/// Tells a connection beyond the cap why it is closed: `line` goes out without waiting (a fresh
/// socket's send buffer is empty); if it does not, the client gets the bare close.
pub(super) fn refuse_busy(stream: Stream, line: &str, _tracker: &TaskTracker) {
    let _ = stream.try_write(line.as_bytes());
}

/// The accepting side of the socket, on the runtime: accepts connections and lets through only
/// peers running as our own (effective) uid (ARCHITECTURE.md, "Threat model").
#[derive(Debug)]
pub(super) struct Acceptor {
    listener: tokio::net::UnixListener,
    our_uid: u32,
}

impl Acceptor {
    /// The next connection, or `None` for one that was refused (and logged): its peer runs as
    /// another uid, or its peer is unknown.
    pub(super) async fn accept(&self) -> io::Result<Option<Stream>> {
        let (stream, _) = self.listener.accept().await?;
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == self.our_uid => Ok(Some(stream)),
            Ok(cred) => {
                warn!(
                    uid = cred.uid(),
                    pid = cred.pid(),
                    "refused an RPC connection from another user"
                );
                Ok(None)
            }
            Err(e) => {
                warn!(error = %e, "refused an RPC connection whose peer is unknown");
                Ok(None)
            }
        }
    }
}

/// The daemon's bound RPC socket, ready for [`serve`](super::serve).
///
/// While it lives it holds an exclusive lock on `<path>.lock` (a file left in place on purpose:
/// removing a lock file reopens the race it closes), so a second daemon started at the same
/// moment cannot remove and replace this socket. Dropping a socket it bound removes the socket
/// file, if the file at the path is still this socket; an inherited socket's file is left
/// alone, because it belongs to the service manager, which goes on listening on it.
#[derive(Debug)]
pub struct RpcListener {
    listener: UnixListener,
    socket: SocketFile,
}

impl RpcListener {
    /// Binds the socket at `path`.
    ///
    /// Creates the parent directory with mode 0700 if it is missing and refuses one that is not
    /// owned by us or is open to group or others (see the module documentation). Refuses to
    /// start if another daemon holds the path's lock or answers on the socket
    /// ([`io::ErrorKind::AddrInUse`]); removes a stale socket otherwise, and refuses to replace
    /// anything that is not a socket ([`io::ErrorKind::AlreadyExists`]). Binds and sets the
    /// socket's mode to 0600.
    ///
    /// Does not need a tokio runtime.
    pub fn bind(path: &Path) -> io::Result<RpcListener> {
        if path.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a socket file", path.display()),
            ));
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        ensure_private_dir(dir)?;
        let lock = lock(path)?;
        remove_stale_socket(path)?;

        let listener = UnixListener::bind(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
        })?;
        // The directory is private, so nobody else can reach the socket in the moment before
        // its mode is set (chatd's main also sets the umask to 077; in-process users may not).
        let socket = match fs::set_permissions(path, Permissions::from_mode(0o600))
            .and_then(|()| fs::symlink_metadata(path))
        {
            Ok(meta) => SocketFile {
                path: path.to_path_buf(),
                bound_here: Some((meta.dev(), meta.ino())),
                _lock: lock,
            },
            Err(e) => {
                let _ = fs::remove_file(path);
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot set the mode of {}: {e}", path.display()),
                ));
            }
        };
        listener.set_nonblocking(true)?;
        debug!(path = %path.display(), "RPC socket bound");
        Ok(RpcListener { listener, socket })
    }

    /// The listening socket a service manager passed to this process (socket activation,
    /// `activation.rs`), adopted as it is, or `None` when there is none.
    ///
    /// The socket file is not touched: no stale-socket check, no bind, no change of mode,
    /// and no removal on drop. The rest holds as for [`RpcListener::bind`]: the socket must
    /// have a path, its directory must pass the same check (though it is never created
    /// here), and the path's lock is taken, so a second daemon cannot serve the same path
    /// ([`io::ErrorKind::AddrInUse`] if one already does). [`serve`](super::serve) checks
    /// every peer's uid all the same.
    ///
    /// Call it once, early: it adopts descriptor 3 at most once per process.
    pub fn inherited() -> io::Result<Option<RpcListener>> {
        let Some(listener) = super::activation::take_listener()? else {
            return Ok(None);
        };
        let path = listener
            .local_addr()?
            .as_pathname()
            .map(Path::to_path_buf)
            .filter(|path| path.file_name().is_some())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "socket activation: the socket has no path (an abstract or unnamed \
                     socket); chatd serves a socket file (ListenStream=%t/chatd/chatd.sock)",
                )
            })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        check_private_dir(dir)?;
        let lock = lock(&path)?;
        listener.set_nonblocking(true)?;
        debug!(path = %path.display(), "RPC socket inherited");
        Ok(Some(RpcListener {
            listener,
            socket: SocketFile {
                path,
                bound_here: None,
                _lock: lock,
            },
        }))
    }

    /// The socket's path, as given to [`RpcListener::bind`] or as the inherited socket is
    /// bound.
    pub fn path(&self) -> &Path {
        &self.socket.path
    }

    /// Whether the socket was passed by a service manager rather than bound here.
    pub fn is_inherited(&self) -> bool {
        self.socket.bound_here.is_none()
    }

    /// The listening socket on the current tokio runtime, and the guard that removes its
    /// file. Fails without a tokio reactor.
    pub(super) fn into_acceptor(self) -> io::Result<(Acceptor, SocketFile)> {
        let listener = tokio::net::UnixListener::from_std(self.listener)?;
        let acceptor = Acceptor {
            listener,
            our_uid: rustix::process::geteuid().as_raw(),
        };
        Ok((acceptor, self.socket))
    }
}

/// Owns the socket file: removes it on drop if it was bound here and the file at the path is
/// still ours, and holds the path's lock until then.
#[derive(Debug)]
pub(super) struct SocketFile {
    path: PathBuf,
    /// The device and inode of the socket file this process bound; `None` for an inherited
    /// socket, whose file is never removed here.
    bound_here: Option<(u64, u64)>,
    _lock: File,
}

impl SocketFile {
    /// The socket's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Some((dev, ino)) = self.bound_here else {
            return;
        };
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == dev && meta.ino() == ino);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), error = %e, "cannot remove the RPC socket");
        }
    }
}

/// Creates `dir` (mode 0700) if it is missing; then checks that it is a directory, ours, and
/// closed to group and others.
fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
                })?;
            // The umask may have taken bits away; make the mode exactly 0700. If someone else
            // created the directory first, this fails or the check below refuses it.
            fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot set the mode of {}: {e}", dir.display()),
                )
            })?;
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot inspect {}: {e}", dir.display()),
            ));
        }
    }
    check_private_dir(dir)
}

/// Checks that `dir` is a directory (not a symbolic link to one: it is looked at with
/// `lstat`), ours, and closed to group and others.
fn check_private_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot inspect {}: {e}", dir.display())))?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symbolic link: refusing to put the RPC socket there (a link can be \
                 pointed elsewhere by whoever owns it); give the real directory",
                dir.display()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to us (uid {uid}): refusing to put the RPC socket \
                 there; choose another directory",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is open to other users (mode {mode:04o}): refusing to put the RPC socket \
                 there; run `chmod 700 {}` or choose a private directory",
                dir.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Takes the exclusive lock on `<path>.lock`, or fails with `AddrInUse` if another daemon holds
/// it.
fn lock(path: &Path) -> io::Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&lock_path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open {}: {e}", lock_path.display()),
            )
        })?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another chatd is already using {} (it holds {})",
                path.display(),
                lock_path.display()
            ),
        )),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot lock {}: {e}", lock_path.display()),
        )),
    }
}

/// Removes a socket at `path` that nobody answers on; refuses a live socket or a file that is
/// not a socket.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot inspect {}: {e}", path.display()),
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            ),
        ));
    }
    if answers(path)? {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is already listening on {}", path.display()),
        ));
    }
    match fs::remove_file(path) {
        Ok(()) => {
            debug!(path = %path.display(), "removed a stale RPC socket");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot remove the stale socket {}: {e}", path.display()),
        )),
    }
}

/// Whether something accepts connections on the socket at `path`. The connect is non-blocking,
/// so a live daemon whose backlog is full counts as live instead of hanging us.
fn answers(path: &Path) -> io::Result<bool> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    match rustix::net::connect(&socket, &addr) {
        Ok(()) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INPROGRESS) => Ok(true),
        Err(rustix::io::Errno::CONNREFUSED | rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot tell whether {} is in use: {e}", path.display()),
        )),
    }
}
