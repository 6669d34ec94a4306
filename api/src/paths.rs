//! Where the daemon's socket is by default, so the daemon and every client agree.
//!
//! The `CHATD_SOCKET` environment variable overrides the default everywhere (and `--socket`
//! overrides both, in chatd and chatctl).
//!
//! - Unix: `$XDG_RUNTIME_DIR/chatd/chatd.sock`, else `<temp dir>/chatd-<uid>/chatd.sock`. The
//!   daemon creates the directory with mode 0700 and the socket with mode 0600.
//! - Windows: the named pipe `\\.\pipe\chatd-<user name>` ([`default_pipe_name`]). Pipe names
//!   live in one machine-wide namespace; the daemon creates the pipe as its first instance and
//!   with a DACL that lets only its own user (and SYSTEM) open it, so another user's daemon or
//!   a program squatting the name makes chatd refuse to start rather than share the name.

use std::path::PathBuf;

/// The environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "CHATD_SOCKET";

/// The socket's file name inside its directory (Unix).
pub const SOCKET_FILE: &str = "chatd.sock";

/// The prefix of every local named pipe's path (Windows).
pub const PIPE_PREFIX: &str = r"\\.\pipe\";

/// The default socket path (see the module documentation): a socket file on Unix, a named
/// pipe's path on Windows.
pub fn default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    #[cfg(windows)]
    {
        PathBuf::from(default_pipe_name())
    }
    #[cfg(not(windows))]
    {
        default_socket_dir().join(SOCKET_FILE)
    }
}

/// The directory of the default socket, ignoring `CHATD_SOCKET` (Unix).
#[cfg(not(windows))]
pub fn default_socket_dir() -> PathBuf {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(runtime).join("chatd");
    }
    std::env::temp_dir().join(format!("chatd-{}", current_uid()))
}

/// The default named pipe, ignoring `CHATD_SOCKET`: `\\.\pipe\chatd-<user name>`, the user
/// name taken from `%USERNAME%` with every character other than a letter, a digit, `.`, `-`
/// or `_` replaced by `_` (and `user` when the variable is unset).
///
/// The name only keeps users from colliding by accident; it is not what keeps them apart
/// (anyone can read `%USERNAME%`). The pipe's DACL is (chatd `rpc/pipe.rs`).
pub fn default_pipe_name() -> String {
    let user = std::env::var("USERNAME").unwrap_or_default();
    pipe_name_for(&user)
}

/// `\\.\pipe\chatd-<user>` with `user` sanitised as [`default_pipe_name`] says.
fn pipe_name_for(user: &str) -> String {
    let user: String = user
        .chars()
        .take(64)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let user = if user.is_empty() { "user" } else { &user };
    format!("{PIPE_PREFIX}chatd-{user}")
}

/// The environment variable that overrides chatd's data directory.
pub const DATA_DIR_ENV: &str = "CHATD_DATA_DIR";

/// chatd's default data directory: `$CHATD_DATA_DIR`, else `$XDG_DATA_HOME/chatd`
/// (`~/.local/share/chatd`; on macOS `~/Library/Application Support/chatd`, on Windows
/// `%APPDATA%\chatd\data`), as chatd computes it.
pub fn default_data_dir() -> PathBuf {
    if let Some(path) = std::env::var_os(DATA_DIR_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    directories::ProjectDirs::from("", "", "chatd")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".chatd"))
}

/// The log file chatctl gives a chatd it starts: `$XDG_STATE_HOME/chatd/chatd.log`
/// (`~/.local/state/chatd/chatd.log`); on macOS `~/Library/Logs/chatd/chatd.log`, on Windows
/// `%LOCALAPPDATA%\chatd\logs\chatd.log`. `None` when no home directory is known.
pub fn default_log_file() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "chatd")?;
    if let Some(state) = dirs.state_dir() {
        return Some(state.join("chatd.log"));
    }
    if cfg!(target_os = "macos") {
        let base = directories::BaseDirs::new()?;
        return Some(base.home_dir().join("Library/Logs/chatd/chatd.log"));
    }
    Some(dirs.data_local_dir().join("logs").join("chatd.log"))
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

#[cfg(test)]
mod tests {
    use super::pipe_name_for;

    #[test]
    fn pipe_names_are_sanitised() {
        assert_eq!(pipe_name_for("alice"), r"\\.\pipe\chatd-alice");
        assert_eq!(
            pipe_name_for(r"DOM\bob smith"),
            r"\\.\pipe\chatd-DOM_bob_smith"
        );
        assert_eq!(pipe_name_for("Jörg.K-1_"), r"\\.\pipe\chatd-Jörg.K-1_");
        assert_eq!(pipe_name_for(""), r"\\.\pipe\chatd-user");
        assert_eq!(
            pipe_name_for(&"x".repeat(300)).len(),
            r"\\.\pipe\chatd-".len() + 64
        );
    }
}
