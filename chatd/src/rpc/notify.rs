//! Readiness and shutdown notices to a service manager: the `sd_notify(3)` protocol, one
//! datagram of `KEY=VALUE` lines to the Unix socket named by `NOTIFY_SOCKET` (a path, or an
//! abstract address written with a leading `@`).
//!
//! chatd sends `READY=1` once its RPC socket accepts connections ([`super::serve`] calls the
//! daemon's hook at that moment) and `STOPPING=1` when shutdown begins, each with a `STATUS=`
//! line for `systemctl status`. Without `NOTIFY_SOCKET` every notice is a no-op, and a notice
//! that cannot be sent is logged and otherwise ignored: the daemon never fails for it.
//!
//! `NOTIFY_SOCKET` is read once and left in the environment (see `activation.rs` for why the
//! variables are not removed). A child process could only ever send notices on chatd's behalf
//! if the unit said `NotifyAccess=all`; `chatd.service` says `NotifyAccess=main`, and chatd
//! starts no children.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// How long one notice may wait for room in the manager's socket buffer.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends notices to the service manager that started the daemon, if any.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// A notifier for the socket in `NOTIFY_SOCKET`, or one that sends nothing when the
    /// variable is unset, empty or unusable (the last is logged).
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) if !value.is_empty() => Self::to_address(&value.to_string_lossy()),
            _ => Self::none(),
        }
    }

    /// A notifier that sends nothing.
    pub fn none() -> Self {
        Self { target: None }
    }

    /// A notifier for `address` in `NOTIFY_SOCKET`'s syntax (a path, or `@name`).
    fn to_address(address: &str) -> Self {
        let target = parse_address(address).and_then(|addr| {
            let socket = UnixDatagram::unbound()?;
            socket.set_write_timeout(Some(SEND_TIMEOUT))?;
            Ok((socket, addr))
        });
        match target {
            Ok(target) => Self {
                target: Some(target),
            },
            Err(e) => {
                tracing::warn!(address, error = %e, "NOTIFY_SOCKET is set but unusable; no readiness notices");
                Self::none()
            }
        }
    }

    /// Whether notices go anywhere.
    #[cfg(test)]
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`, with `status` (one line) for `systemctl status`.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)));
    }

    /// `STOPPING=1`: the daemon has begun to shut down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=Stopping\n");
    }

    fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        match socket.send_to_addr(message.as_bytes(), addr) {
            Ok(_) => tracing::debug!(message, "notified the service manager"),
            Err(e) => tracing::warn!(error = %e, "could not notify the service manager"),
        }
    }
}

/// `NOTIFY_SOCKET`'s value as an address: an absolute path, or `@name` for the abstract
/// namespace (Linux).
fn parse_address(address: &str) -> io::Result<SocketAddr> {
    if address.starts_with('/') {
        return SocketAddr::from_pathname(address);
    }
    if let Some(name) = address.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt as _;
            return SocketAddr::from_abstract_name(name.as_bytes());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract socket addresses exist only on Linux",
            ));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "neither an absolute path nor an abstract address (@name)",
    ))
}

/// `text` with line breaks replaced, so that it stays one `STATUS=` line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("recv: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notices_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        let notifier = Notifier::to_address(&path.to_string_lossy());
        assert!(notifier.is_enabled());
        notifier.ready("Serving\nhere");
        assert_eq!(receive(&manager), "READY=1\nSTATUS=Serving here\n");
        notifier.stopping();
        assert_eq!(receive(&manager), "STOPPING=1\nSTATUS=Stopping\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn notices_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("chatd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes())
            .unwrap_or_else(|e| panic!("address: {e}"));
        let manager = UnixDatagram::bind_addr(&addr).unwrap_or_else(|e| panic!("bind: {e}"));
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        Notifier::to_address(&format!("@{name}")).ready("up");
        assert_eq!(receive(&manager), "READY=1\nSTATUS=up\n");
    }

    #[test]
    fn unusable_addresses_send_nothing() {
        assert!(!Notifier::none().is_enabled());
        assert!(!Notifier::to_address("relative/path").is_enabled());
        assert!(!Notifier::to_address("vsock:2:1234").is_enabled());
        // Sending with no target is a no-op, not an error.
        Notifier::none().ready("nothing");
        Notifier::none().stopping();
    }
}
