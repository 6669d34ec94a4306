//! Who serves the socket: the checks a client makes before it sends chatd anything (a
//! passphrase, a message), so that a socket another local user planted at the default path
//! (`/tmp/chatd-<uid>/chatd.sock` when `XDG_RUNTIME_DIR` is unset) gets nothing.
//!
//! On Unix, before connecting ([`check_path`]):
//! - the socket's directory, looked at with `lstat` (a symlink is refused, not followed), is a
//!   directory, owned by our effective uid, with no permission bit for group or others (mode
//!   0700 or stricter): the rule chatd applies when it binds (ARCHITECTURE.md, "Threat model");
//! - the socket file, also with `lstat`, is a socket owned by our effective uid.
//!
//! After connecting and before the first byte is written ([`check_peer`]), on Linux and
//! Android: the peer's uid (`SO_PEERCRED`) is our effective uid. On the other Unix systems
//! (macOS, the BSDs) the peer's uid is not checked here: rustix offers no `getpeereid` and the
//! workspace has no `unsafe`. There the directory rule is what keeps another user out, and it
//! suffices: only our uid (or root) can create a socket in a 0700 directory of ours.
//!
//! A directory or socket that does not exist is not a trust failure: the caller sees
//! `NotFound`, as without these checks, and may start chatd (which creates both).
//!
//! Windows: nothing here; the pipe's DACL and chatd's first-instance flag keep other users
//! out (`paths`).

use std::fmt;
#[cfg(unix)]
use std::path::Path;

/// A check that failed: the path it concerns and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The path that failed the check (the socket or its directory).
    pub path: String,
    /// What is wrong, as a sentence fragment ("belongs to uid 1001, not to us (uid 1000)").
    pub problem: String,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.problem)
    }
}

/// What [`check_path`] found when nothing was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// The directory and the socket are there and pass the checks.
    Trusted,
    /// The directory or the socket does not exist (yet).
    Missing,
}

/// Checks the socket's directory and the socket file at `socket` (see the module
/// documentation). Makes no change and sends nothing.
#[cfg(unix)]
pub fn check_path(socket: &Path) -> Result<PathState, Untrusted> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    let ours = rustix::process::geteuid().as_raw();
    let dir = match socket.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let untrusted = |path: &Path, problem: String| Untrusted {
        path: path.display().to_string(),
        problem,
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PathState::Missing),
        Err(e) => return Err(untrusted(dir, format!("cannot be inspected: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(untrusted(
            dir,
            "is a symbolic link; the socket's directory must be a real directory".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(untrusted(dir, "is not a directory".into()));
    }
    if meta.uid() != ours {
        return Err(untrusted(
            dir,
            format!(
                "belongs to uid {}, not to us (uid {ours}): another user may have planted it",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(untrusted(
            dir,
            format!(
                "is open to other users (mode {mode:04o}); chatd's socket directory must be \
                 0700: run `chmod 700 {}`",
                dir.display()
            ),
        ));
    }
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PathState::Missing),
        Err(e) => return Err(untrusted(socket, format!("cannot be inspected: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(untrusted(socket, "is a symbolic link, not a socket".into()));
    }
    if !meta.file_type().is_socket() {
        return Err(untrusted(socket, "is not a socket".into()));
    }
    if meta.uid() != ours {
        return Err(untrusted(
            socket,
            format!(
                "belongs to uid {}, not to us (uid {ours}): another user may have planted it",
                meta.uid()
            ),
        ));
    }
    Ok(PathState::Trusted)
}

/// Checks that the process at the other end of `stream`, connected to `socket`, runs as our
/// effective uid (Linux and Android; see the module documentation for the others).
#[cfg(unix)]
pub fn check_peer(stream: &std::os::unix::net::UnixStream, socket: &Path) -> Result<(), Untrusted> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ours = rustix::process::geteuid().as_raw();
        let untrusted = |problem: String| Untrusted {
            path: socket.display().to_string(),
            problem,
        };
        let cred = rustix::net::sockopt::socket_peercred(stream).map_err(|e| {
            untrusted(format!(
                "is served by a process whose user cannot be learned: {e}"
            ))
        })?;
        let theirs = cred.uid.as_raw();
        if theirs != ours {
            return Err(untrusted(format!(
                "is served by uid {theirs} (pid {}), not by us (uid {ours})",
                cred.pid.as_raw_nonzero()
            )));
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (stream, socket);
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests;
