//! The RPC named pipe (Windows): the twin of `listener.rs`, with the same items, so that
//! [`serve`](super::serve) and the connection loop are one code for both platforms.
//!
//! CI runs it under wine (`tests/wine/scenario.sh`): chatd serves the pipe, chatctl drives it,
//! a restart and an autostart find it. Two claims below wine cannot check, so they are what the
//! Win32 documentation promises for the flags we pass, not what a test has seen: that a second
//! chatd is refused the pipe (wine lets it create the same name) and that the DACL keeps other
//! users out (wine runs every program as one user and does not enforce pipe DACLs).
//!
//! # Who can connect
//!
//! Unix has the 0700 directory, the 0600 socket and the peer-uid check; a named pipe has its
//! DACL, which the kernel checks when a client opens the pipe, before chatd sees anything. The
//! pipe is created with [`PIPE_SDDL`], a protected DACL with two entries: full access for the
//! pipe's owner (the `OWNER RIGHTS` SID) and for `SYSTEM`. The owner is the default owner of
//! chatd's token: the user, or, for an elevated administrator, the Administrators group, in
//! which case other elevated administrators may connect as well (they could take the pipe's
//! ownership anyway). Windows' default DACL for a pipe would also let `Everyone` and
//! `ANONYMOUS LOGON` open it for reading, which is why chatd does not rely on it. The same
//! entries keep other users from creating instances of the pipe (`FILE_CREATE_PIPE_INSTANCE`).
//! Remote clients are rejected (`PIPE_REJECT_REMOTE_CLIENTS`, interprocess's default).
//!
//! So there is no per-connection peer check: whoever opened the pipe passed the DACL. The
//! client's process id is logged at debug level.
//!
//! # One daemon per pipe
//!
//! The listener creates the pipe's first instance with `FILE_FLAG_FIRST_PIPE_INSTANCE`: if
//! another chatd (or any other program) already has a pipe of that name, creation fails and
//! chatd refuses to start with [`io::ErrorKind::AddrInUse`]. This is the pipe's counterpart of
//! the socket's lock file; there is no stale state to clean up, because a pipe disappears with
//! its last handle. What it cannot stop is a program of another user creating the name first
//! (pipe names are machine-wide): chatd then refuses to start, and clients, opened with
//! identification-only impersonation (`api::client`), cannot be impersonated by it. The client
//! does not yet check who serves the pipe; see ARCHITECTURE.md.
//!
//! # Service managers
//!
//! There is no socket activation on Windows: [`RpcListener::inherited`] is always `None`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use interprocess::os::windows::ToWtf16;
use interprocess::os::windows::named_pipe::PipeListenerOptions;
use interprocess::os::windows::named_pipe::pipe_mode::Bytes;
use interprocess::os::windows::named_pipe::tokio::{
    DuplexPipeStream, PipeListener, RecvPipeStream, SendPipeStream,
};
use interprocess::os::windows::security_descriptor::SecurityDescriptor;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio_util::task::TaskTracker;
use tracing::debug;

/// The pipe's security descriptor in SDDL: a protected DACL (`P`: no inherited entries) that
/// allows generic all (`GA`) to the object's owner (`OW`) and to `SYSTEM` (`SY`), and nobody
/// else. See the module documentation.
pub const PIPE_SDDL: &str = "D:P(A;;GA;;;OW)(A;;GA;;;SY)";

/// `ERROR_ACCESS_DENIED`, what `CreateNamedPipeW` fails with when the first-instance flag is
/// set and a pipe of that name exists.
const ERROR_ACCESS_DENIED: i32 = 5;

/// How long a connection beyond the cap may take to receive its "server is busy" line.
const BUSY_LINE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// One accepted connection: a server-side instance of the pipe.
pub(super) type Stream = DuplexPipeStream<Bytes>;
/// The half of a connection its reader owns.
pub(super) type ReadHalf = RecvPipeStream<Bytes>;

/// Splits a connection into the halves its reader and writer own.
pub(super) fn split(stream: Stream) -> (ReadHalf, WriteHalf) {
    let (read, write) = stream.split();
    (read, WriteHalf(write))
}

/// Tells a connection beyond the cap why it is closed. A pipe has no non-blocking write here,
/// so a tracked task writes the line, waiting at most [`BUSY_LINE_TIMEOUT`].
pub(super) fn refuse_busy(stream: Stream, line: &str, tracker: &TaskTracker) {
    let line = line.to_owned();
    tracker.spawn(async move {
        let mut stream = WriteHalf(stream.split().1);
        let _ = tokio::time::timeout(BUSY_LINE_TIMEOUT, async {
            stream.write_all(line.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
    });
}

/// The half of a connection its writer task owns.
///
/// Dropping it closes the instance at once, discarding what the client has not read. An
/// interprocess stream dropped with unflushed data would otherwise go to its "limbo" thread
/// pool, which waits for the client to read it all, forever for a client that does not read;
/// the writer task flushes (`shutdown`) itself wherever the data matters, within its timeout.
#[derive(Debug)]
pub(super) struct WriteHalf(SendPipeStream<Bytes>);

impl Drop for WriteHalf {
    fn drop(&mut self) {
        self.0.assume_flushed();
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The daemon's named pipe, ready for [`serve`](super::serve): the first instance, created,
/// waiting for a client.
#[derive(Debug)]
pub struct RpcListener {
    listener: PipeListener<Bytes, Bytes>,
    path: PathBuf,
}

impl RpcListener {
    /// Creates the pipe `path` (`\\.\pipe\NAME`) with the DACL of [`PIPE_SDDL`] as its first
    /// instance; fails with [`io::ErrorKind::AddrInUse`] if a pipe of that name exists (another
    /// chatd serves it, or another program took the name), and with
    /// [`io::ErrorKind::InvalidInput`] for a path that is not a local pipe's.
    ///
    /// Unlike the Unix listener, this needs a tokio runtime (the instance is registered with
    /// its reactor at once).
    pub fn bind(path: &Path) -> io::Result<RpcListener> {
        let name = path.to_str().unwrap_or_default();
        let valid = name
            .get(..api::paths::PIPE_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(api::paths::PIPE_PREFIX))
            && name.len() > api::paths::PIPE_PREFIX.len()
            && !name.contains('\0');
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a local named pipe: on Windows the socket is a pipe such as {}",
                    path.display(),
                    api::paths::default_pipe_name()
                ),
            ));
        }
        let wide_name = path
            .to_wtf_16()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let sddl = PIPE_SDDL
            .to_wtf_16()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let descriptor = SecurityDescriptor::deserialize(&sddl)?;
        let listener = PipeListenerOptions::new()
            .path(&*wide_name)
            .security_descriptor(Some(descriptor))
            .accept_remote(false)
            .input_buffer_size_hint(64 * 1024)
            .output_buffer_size_hint(64 * 1024)
            // `create_tokio` creates the first instance with FILE_FLAG_FIRST_PIPE_INSTANCE.
            .create_tokio_duplex::<Bytes>()
            .map_err(|e| {
                if e.raw_os_error() == Some(ERROR_ACCESS_DENIED) {
                    io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "another chatd (or another program) already owns the pipe {}",
                            path.display()
                        ),
                    )
                } else {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create the pipe {}: {e}", path.display()),
                    )
                }
            })?;
        debug!(path = %path.display(), "RPC pipe created");
        Ok(RpcListener {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Always `None`: Windows has no socket activation.
    pub fn inherited() -> io::Result<Option<RpcListener>> {
        Ok(None)
    }

    /// The pipe's path, as given to [`RpcListener::bind`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Always `false` (see [`RpcListener::inherited`]).
    pub fn is_inherited(&self) -> bool {
        false
    }

    /// The listener, and the pipe's name for the log.
    pub(super) fn into_acceptor(self) -> io::Result<(Acceptor, SocketFile)> {
        Ok((
            Acceptor {
                listener: self.listener,
            },
            SocketFile { path: self.path },
        ))
    }
}

/// The pipe's name; nothing to remove on drop, a pipe goes with its last handle.
#[derive(Debug)]
pub(super) struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    /// The pipe's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// The accepting side of the pipe. Every client that could open the pipe passed its DACL, so
/// none is refused here (see the module documentation).
#[derive(Debug)]
pub(super) struct Acceptor {
    listener: PipeListener<Bytes, Bytes>,
}

impl Acceptor {
    /// The next connection (never `None`: the DACL did the vetting). interprocess creates the
    /// next instance before it hands this one out, so a client arriving meanwhile waits in
    /// `ERROR_PIPE_BUSY` for at most that moment (`api::client` retries).
    pub(super) async fn accept(&self) -> io::Result<Option<Stream>> {
        let stream = self.listener.accept().await?;
        debug!(pid = stream.client_process_id().ok(), "RPC pipe client");
        Ok(Some(stream))
    }
}
