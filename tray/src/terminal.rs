//! The menu's "Open chatctl": starts the configured terminal command (no shell in between,
//! unless the command names one) with `CHATD_SOCKET` set, so the chatctl inside talks to the
//! same daemon as the tray. The child is waited for on a thread of its own, so it leaves no
//! zombie and the tray never blocks on it.
//!
//! With the default command, whose `x-terminal-emulator` only Debian and its derivatives
//! provide, the common terminal emulators are tried in turn ([`FALLBACKS`]); when none is on
//! `PATH`, [`open`] says so ([`OpenError::NoTerminal`]) and the caller tells the user what to
//! run instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::DEFAULT_TERMINAL;

/// Terminal emulators tried when the default `x-terminal-emulator` is missing, each with the
/// arguments after which it takes the command to run.
pub const FALLBACKS: &[(&str, &[&str])] = &[
    ("xdg-terminal-exec", &[]),
    ("gnome-terminal", &["--"]),
    ("konsole", &["-e"]),
    ("xfce4-terminal", &["-x"]),
    ("foot", &[]),
    ("kitty", &[]),
    ("alacritty", &["-e"]),
    ("wezterm", &["start", "--"]),
    ("xterm", &["-e"]),
];

/// Why no terminal opened.
#[derive(Debug)]
pub enum OpenError {
    /// The default command was asked for and no terminal emulator is on `PATH`.
    NoTerminal {
        /// The programs looked for, in order.
        tried: Vec<String>,
    },
    /// The command could not be started.
    Failed {
        /// Its program.
        program: String,
        /// Why.
        error: std::io::Error,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoTerminal { tried } => {
                write!(f, "no terminal emulator found (tried {})", tried.join(", "))
            }
            Self::Failed { program, error } => write!(f, "cannot start {program}: {error}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Starts `command` (program and arguments) for the daemon at `socket`, or, when `command` is
/// [`DEFAULT_TERMINAL`] and its program is missing, the first terminal of [`FALLBACKS`] found
/// on `PATH` with the same command inside.
pub fn open(command: &[String], socket: &Path) -> Result<(), OpenError> {
    let command = resolve(command, std::env::var_os("PATH").as_deref())?;
    let Some((program, args)) = command.split_first() else {
        return Err(OpenError::Failed {
            program: String::new(),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the terminal command is empty",
            ),
        });
    };
    let failed = |error| OpenError::Failed {
        program: program.clone(),
        error,
    };
    let mut child = Command::new(program)
        .args(args)
        .env(api::paths::SOCKET_ENV, socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(failed)?;
    let pid = child.id();
    std::thread::Builder::new()
        .name("terminal".into())
        .spawn(move || match child.wait() {
            Ok(status) if !status.success() => {
                tracing::info!(pid, %status, "the terminal command failed");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(pid, error = %e, "waiting for the terminal"),
        })
        .map_err(failed)?;
    Ok(())
}

/// The command to run: `command` itself unless it is the default one and its program is not
/// on `path`; then a fallback terminal with the default command's inner command.
pub fn resolve(
    command: &[String],
    path: Option<&std::ffi::OsStr>,
) -> Result<Vec<String>, OpenError> {
    let is_default = command
        .iter()
        .map(String::as_str)
        .eq(DEFAULT_TERMINAL.iter().copied());
    if !is_default || find(DEFAULT_TERMINAL[0], path).is_some() {
        return Ok(command.to_vec());
    }
    // The default command is `x-terminal-emulator -e <inner...>`.
    let inner = &DEFAULT_TERMINAL[2..];
    for (program, args) in FALLBACKS {
        if find(program, path).is_some() {
            return Ok(std::iter::once(*program)
                .chain(args.iter().copied())
                .chain(inner.iter().copied())
                .map(str::to_owned)
                .collect());
        }
    }
    let tried = std::iter::once(DEFAULT_TERMINAL[0])
        .chain(FALLBACKS.iter().map(|(program, _)| *program))
        .map(str::to_owned)
        .collect();
    Err(OpenError::NoTerminal { tried })
}

/// `program` as found in the directories of `path` (an executable file).
fn find(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_command() -> Vec<String> {
        DEFAULT_TERMINAL.iter().map(|s| (*s).to_owned()).collect()
    }

    #[cfg(unix)]
    fn executable(dir: &Path, name: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[cfg(unix)]
    #[test]
    fn the_command_runs_with_the_socket_in_its_environment() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path().join("out");
        let script = format!("printf %s \"$CHATD_SOCKET\" > '{}'", out.display());
        let command = ["sh".to_owned(), "-c".to_owned(), script];
        open(&command, Path::new("/run/test/chatd.sock")).unwrap_or_else(|e| panic!("{e}"));
        let start = std::time::Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&out)
                && !text.is_empty()
            {
                assert_eq!(text, "/run/test/chatd.sock");
                break;
            }
            assert!(start.elapsed().as_secs() < 10, "the command did not run");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(open(&[], Path::new("/x")).is_err());
        let missing = open(&["/nonexistent/terminal".to_owned()], Path::new("/x"));
        assert!(
            matches!(&missing, Err(OpenError::Failed { program, .. }) if program == "/nonexistent/terminal"),
            "{missing:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_default_falls_back_to_a_terminal_on_path_and_says_when_there_is_none() {
        let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = empty.path().as_os_str();
        let none = resolve(&default_command(), Some(path));
        let Err(OpenError::NoTerminal { tried }) = none else {
            panic!("{none:?}");
        };
        assert_eq!(tried[0], "x-terminal-emulator");
        assert!(tried.iter().any(|t| t == "xterm"), "{tried:?}");
        assert!(matches!(
            resolve(&default_command(), None),
            Err(OpenError::NoTerminal { .. })
        ));

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Not executable: not a terminal.
        std::fs::write(dir.path().join("konsole"), "").unwrap_or_else(|e| panic!("{e}"));
        executable(dir.path(), "xterm");
        let path =
            std::env::join_paths([empty.path(), dir.path()]).unwrap_or_else(|e| panic!("{e}"));
        let command = resolve(&default_command(), Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(command[..2], ["xterm", "-e"]);
        assert_eq!(command[2..], default_command()[2..]);

        executable(dir.path(), "x-terminal-emulator");
        let command = resolve(&default_command(), Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(command, default_command());

        // A command of the user's own is run as given, found or not.
        let own = vec!["my-term".to_owned(), "-x".to_owned()];
        assert_eq!(
            resolve(&own, Some(empty.path().as_os_str())).ok(),
            Some(own)
        );
    }
}
