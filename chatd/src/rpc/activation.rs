//! Socket activation: the listening socket a service manager passes to chatd (systemd's
//! `chatd.socket`, or `systemd-socket-activate`), per the `sd_listen_fds(3)` protocol.
//!
//! The manager binds and listens, then starts chatd with the socket as file descriptor 3,
//! `LISTEN_FDS=1` and `LISTEN_PID=<chatd's pid>`. [`take_listener`] adopts that descriptor
//! once, checks that it is a listening Unix stream socket, and marks it close-on-exec (the
//! manager passes it inheritable). [`RpcListener::inherited`](super::RpcListener::inherited)
//! does the rest: the directory check and the single-instance lock, and it never changes,
//! unlinks or re-creates the socket file.
//!
//! The variables are left in the environment: removing them (`std::env::remove_var`) is only
//! sound while no other thread reads the environment, and the daemon already runs on a tokio
//! runtime when it gets here. Nothing is lost by leaving them: chatd starts no child process,
//! a child would ignore `LISTEN_FDS` anyway because `LISTEN_PID` names chatd and not the
//! child, and the descriptor itself is close-on-exec from here on.
//!
//! Linux only (the adoption checks the descriptor through `/proc/self/fd`); elsewhere
//! [`take_listener`] ignores the variables and returns `None`.

use std::io;
use std::os::unix::net::UnixListener;

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
#[cfg(target_os = "linux")]
const LISTEN_FDS_START: i32 = 3;

/// The listening socket passed by a service manager, if this process was started with one.
///
/// Returns `Ok(None)` when `LISTEN_PID` is unset or names another process (the variables
/// were meant for a parent, and leaked into our environment) or `LISTEN_FDS` is unset or 0,
/// and on every later call. Fails when the variables are malformed, name more than one
/// descriptor (chatd serves one socket), or when descriptor 3 is not a listening Unix stream
/// socket.
pub fn take_listener() -> io::Result<Option<UnixListener>> {
    #[cfg(target_os = "linux")]
    {
        linux::take_listener()
    }
    #[cfg(not(target_os = "linux"))]
    {
        if std::env::var_os("LISTEN_FDS").is_some() {
            tracing::warn!("LISTEN_FDS is set, but socket activation is only supported on Linux");
        }
        Ok(None)
    }
}

/// Reads `LISTEN_PID` and `LISTEN_FDS`: how many descriptors were passed to the process `pid`.
/// `Ok(0)` when none were passed to it.
fn passed_fds(pid: u32, listen_pid: Option<&str>, listen_fds: Option<&str>) -> io::Result<u32> {
    let invalid = |what: &str, value: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket activation: {what} is not a number: {value:?}"),
        )
    };
    let Some(listen_pid) = listen_pid.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let listen_pid: u32 = listen_pid
        .parse()
        .map_err(|_| invalid("LISTEN_PID", listen_pid))?;
    if listen_pid != pid {
        return Ok(0);
    }
    let Some(listen_fds) = listen_fds.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    listen_fds
        .parse()
        .map_err(|_| invalid("LISTEN_FDS", listen_fds))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::io::FdFlags;
    use rustix::net::{AddressFamily, SocketType};

    use super::{LISTEN_FDS_START, passed_fds};

    /// Set once descriptor 3 has been adopted (or refused), so that it is never adopted twice.
    static CLAIMED: AtomicBool = AtomicBool::new(false);

    pub(super) fn take_listener() -> io::Result<Option<UnixListener>> {
        let listen_pid = std::env::var("LISTEN_PID").ok();
        let listen_fds = std::env::var("LISTEN_FDS").ok();
        let count = passed_fds(
            std::process::id(),
            listen_pid.as_deref(),
            listen_fds.as_deref(),
        )?;
        match count {
            0 => return Ok(None),
            1 => {}
            n => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "socket activation passed {n} sockets; chatd serves exactly one \
                         (one ListenStream= in chatd.socket)"
                    ),
                ));
            }
        }
        if CLAIMED.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        // Descriptor 3 must be open and a socket before it is adopted; readlink on /proc
        // tells without touching the descriptor.
        let link =
            std::fs::read_link(format!("/proc/self/fd/{LISTEN_FDS_START}")).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("socket activation: descriptor {LISTEN_FDS_START} is not open: {e}"),
                )
            })?;
        if !link.to_string_lossy().starts_with("socket:") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "socket activation: descriptor {LISTEN_FDS_START} is not a socket ({})",
                    link.display()
                ),
            ));
        }
        // SAFETY: `from_raw_fd` needs an open descriptor that nothing else owns.
        // - Open: /proc/self/fd/3 was just read as a socket, and nothing closes a descriptor
        //   it does not own; nothing owns this one yet.
        // - Owned by nothing else: LISTEN_PID is our pid, so by the sd_listen_fds(3) contract
        //   descriptor 3 was passed to this process image at exec; it was not opened by any
        //   code in this process, and nothing in chatd or its dependencies adopts descriptors
        //   it did not open. `CLAIMED` makes this the only adoption in the process.
        // Should a broken environment break that contract anyway, the checks below release
        // the descriptor with `into_raw_fd` (never closing it) unless it is a listening Unix
        // stream socket, which chatd creates only after this point.
        #[allow(unsafe_code)]
        let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
        match check_listening_unix_stream(&fd) {
            Ok(()) => {}
            Err(e) => {
                let _ = fd.into_raw_fd();
                return Err(e);
            }
        }
        // The manager passes the descriptor inheritable; no child of ours should get it.
        rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
        Ok(Some(UnixListener::from(fd)))
    }

    fn check_listening_unix_stream(fd: &impl AsFd) -> io::Result<()> {
        let refuse = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket activation: descriptor {LISTEN_FDS_START} is {what}"),
            )
        };
        let domain = rustix::net::sockopt::socket_domain(fd)?;
        if domain != AddressFamily::UNIX {
            return Err(refuse(format!(
                "not a Unix socket (family {})",
                domain.as_raw()
            )));
        }
        if rustix::net::sockopt::socket_type(fd)? != SocketType::STREAM {
            return Err(refuse("not a stream socket (ListenStream=)".into()));
        }
        if !rustix::net::sockopt::socket_acceptconn(fd)? {
            return Err(refuse("not listening".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::passed_fds;

    #[test]
    fn the_variables_count_only_for_the_process_they_name() {
        assert_eq!(passed_fds(42, None, Some("1")).ok(), Some(0));
        assert_eq!(passed_fds(42, Some(""), Some("1")).ok(), Some(0));
        assert_eq!(passed_fds(42, Some("41"), Some("1")).ok(), Some(0));
        assert_eq!(passed_fds(42, Some("42"), None).ok(), Some(0));
        assert_eq!(passed_fds(42, Some("42"), Some("1")).ok(), Some(1));
        assert_eq!(passed_fds(42, Some("42"), Some("2")).ok(), Some(2));
        assert!(passed_fds(42, Some("x"), Some("1")).is_err());
        assert!(passed_fds(42, Some("42"), Some("-1")).is_err());
    }
}
