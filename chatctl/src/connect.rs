//! Connecting to chatd, and starting it when its socket is absent (as gpg-agent is started).
//!
//! Autostart runs `chatd --socket PATH [--log-file LOG] [$CHATCTL_CHATD_ARGS...]` detached
//! (null stdio, its own process group, so a Ctrl-C meant for chatctl does not reach it), then
//! connects again until the socket answers, for up to [`START_TIMEOUT`]. The binary is
//! `$CHATD_BIN`, else `chatd` next to this executable, else `chatd` on `PATH`. Having no
//! terminal, the daemon logs to `LOG`, `api::paths::default_log_file()`
//! (`$XDG_STATE_HOME/chatd/chatd.log`), unless `$CHATD_LOG_FILE` or a `--log-file` in
//! `$CHATCTL_CHATD_ARGS` names another file.
//!
//! On Windows `PATH` is the named pipe's (`\\.\pipe\chatd-<user>`), the binary `chatd.exe`, and
//! the daemon is started with `DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP`: no console of its
//! own or chatctl's (closing the terminal does not end it) and no Ctrl-C from chatctl's
//! console, and without chatctl's own standard handles (`connect/handles.rs`), so that
//! `chatctl status | cat` ends when chatctl does. A missing pipe is `NotFound`, as a missing
//! socket is on Unix. CI runs this path under wine (tests/wine/scenario.sh).

use std::ffi::OsString;
use std::io;
#[cfg(unix)]
use std::os::unix::process::CommandExt as _;
#[cfg(windows)]
use std::os::windows::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::client::{Client, ClientError};

use crate::exit::{self, Failure};

/// The environment variable naming the chatd binary to autostart.
pub const BIN_ENV: &str = "CHATD_BIN";
/// The environment variable with extra arguments for an autostarted chatd (split on whitespace).
pub const ARGS_ENV: &str = "CHATCTL_CHATD_ARGS";
/// How long an autostarted chatd has to open its socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Windows process creation flags for the autostarted daemon: `DETACHED_PROCESS` (no console)
/// and `CREATE_NEW_PROCESS_GROUP` (Ctrl-C in chatctl's console is not its business).
#[cfg(windows)]
const DETACHED_CREATION_FLAGS: u32 = 0x0000_0008 | 0x0000_0200;
/// How long to keep trying after the started chatd failed, in case a chatd another chatctl
/// started at the same moment is about to answer.
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// Connects to the socket at `socket`, starting chatd first if allowed and needed.
pub fn connect(socket: &Path, autostart: bool) -> anyhow::Result<Client> {
    let first = match Client::connect(socket) {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    if !autostart || !nobody_listening(&first) {
        return Err(first.into());
    }
    start_and_connect(socket).map_err(|why| {
        Failure::new(
            exit::UNREACHABLE,
            "unreachable",
            format!("{first}; starting chatd failed: {why:#}"),
        )
        .into()
    })
}

/// Whether the error says that no daemon is there (rather than, say, a permission problem that
/// starting another daemon would not fix). A socket that failed the safety checks
/// ([`ClientError::Untrusted`]) is not "nobody": chatd is not started over it.
pub(crate) fn nobody_listening(err: &ClientError) -> bool {
    match err {
        ClientError::Unreachable { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        ),
        _ => false,
    }
}

fn start_and_connect(socket: &Path) -> anyhow::Result<Client> {
    let binary = daemon_binary();
    let mut command = Command::new(&binary);
    let extra = extra_args();
    command.arg("--socket").arg(socket);
    if let Some(log) = log_file(&extra) {
        command.arg("--log-file").arg(log);
    }
    command
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(windows)]
    {
        command.creation_flags(DETACHED_CREATION_FLAGS);
        handles::keep_standard_handles();
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!(
            "{} not found (looked next to chatctl and on PATH; set {BIN_ENV} to choose it)",
            binary.display()
        ),
        _ => anyhow::Error::new(e).context(format!("cannot run {}", binary.display())),
    })?;

    let mut deadline = Instant::now() + START_TIMEOUT;
    let mut failed = None;
    let mut pause = Duration::from_millis(2);
    loop {
        match Client::connect(socket) {
            Ok(client) => return Ok(client),
            Err(e) if !nobody_listening(&e) => return Err(e.into()),
            Err(_) => {}
        }
        // A daemon that forks into the background exits successfully; only a failure means it
        // will never answer. Even then another chatctl may have started a chatd at the same
        // moment (ours then exits because that one holds the socket), so keep trying briefly.
        if failed.is_none()
            && let Some(status) = child.try_wait().context("cannot watch chatd")?
            && !status.success()
        {
            failed = Some(status);
            deadline = deadline.min(Instant::now() + EXIT_GRACE);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            match failed {
                Some(status) => bail!(
                    "{} exited ({status}) before opening its socket; run it by hand to see why",
                    binary.display()
                ),
                None => bail!(
                    "{} did not open its socket within {} s",
                    binary.display(),
                    START_TIMEOUT.as_secs()
                ),
            }
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// `$CHATD_BIN`, else `chatd` next to this executable (`chatd.exe` on Windows), else plain
/// `chatd` (found on `PATH`).
fn daemon_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(BIN_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let file_name = format!("chatd{}", std::env::consts::EXE_SUFFIX);
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&file_name)))
        .filter(|path| path.is_file());
    sibling.unwrap_or_else(|| PathBuf::from("chatd"))
}

/// The log file to give the started chatd: the default one, unless chatd is told another
/// (`$CHATD_LOG_FILE`, or `--log-file` among the extra arguments).
fn log_file(extra: &[OsString]) -> Option<PathBuf> {
    let named = extra.iter().any(|arg| {
        arg.to_str()
            .is_some_and(|a| a == "--log-file" || a.starts_with("--log-file="))
    });
    let from_env = std::env::var_os("CHATD_LOG_FILE").is_some_and(|v| !v.is_empty());
    if named || from_env {
        return None;
    }
    api::paths::default_log_file()
}

/// The words of `$CHATCTL_CHATD_ARGS`.
fn extra_args() -> Vec<OsString> {
    std::env::var_os(ARGS_ENV)
        .map(|args| split_args(&args.to_string_lossy()))
        .unwrap_or_default()
}

/// Splits on whitespace; no quoting (the variable is for tests and simple setups).
fn split_args(text: &str) -> Vec<OsString> {
    text.split_whitespace().map(OsString::from).collect()
}

#[cfg(windows)]
mod handles;
#[cfg(test)]
mod tests;
