//! Where the daemon's socket is by default, so the daemon and every client agree.
//!
//! Order: the `CHATD_SOCKET` environment variable, else `$XDG_RUNTIME_DIR/chatd/chatd.sock`,
//! else `<temp dir>/chatd-<uid>/chatd.sock`. The daemon creates the directory with mode 0700
//! and the socket with mode 0600.

use std::path::PathBuf;

/// The environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "CHATD_SOCKET";

/// The socket's file name inside its directory.
pub const SOCKET_FILE: &str = "chatd.sock";

/// The default socket path (see the module documentation).
pub fn default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    default_socket_dir().join(SOCKET_FILE)
}

/// The directory of the default socket, ignoring `CHATD_SOCKET`.
pub fn default_socket_dir() -> PathBuf {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(runtime).join("chatd");
    }
    std::env::temp_dir().join(format!("chatd-{}", current_uid()))
}

/// The current user's id (0 where the platform has none).
pub fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::getuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        0
    }
}
