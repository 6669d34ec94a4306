//! `daemon stop`: stops chatd through its socket (`daemon.stop`), or, when the socket is gone
//! (deleted by a cleaner of `/tmp`, say), through the pid file chatd keeps in its data
//! directory (SIGTERM, on Unix only: on Windows the pipe is the only way), then waits until the
//! process is gone.

use std::path::Path;
use std::time::{Duration, Instant};

use api::client::Client;
use api::methods;
use api::types::{Empty, Stopping};

use super::{Ctx, Rpc, decode};
use crate::connect;
use crate::exit::{self, Failure};

/// The pid file's name in chatd's data directory (chatd's `pidfile::PID_FILE`).
const PID_FILE: &str = "chatd.pid";

/// `daemon stop`.
pub(super) fn stop(ctx: &Ctx, data_dir: Option<&Path>, timeout: Duration) -> anyhow::Result<()> {
    let socket = ctx
        .socket
        .clone()
        .unwrap_or_else(api::paths::default_socket);
    let (pid, how) = match Client::connect(&socket) {
        Ok(client) => {
            let value = Rpc { client }.call(methods::DAEMON_STOP, &Empty {})?;
            let stopping: Stopping = decode(methods::DAEMON_STOP, value)?;
            wait_gone(stopping.pid, &socket, timeout)?;
            (stopping.pid, "asked through its socket")
        }
        Err(e) if connect::nobody_listening(&e) => {
            let dir = data_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(api::paths::default_data_dir);
            let pid = stop_by_pid_file(&dir, &socket)?;
            wait_gone(pid, &socket, timeout)?;
            (pid, "its socket was gone; signalled through its pid file")
        }
        Err(e) => return Err(e.into()),
    };
    if ctx.out.is_json() {
        return ctx
            .out
            .json(&serde_json::json!({ "pid": pid, "stopped": true }));
    }
    ctx.out.text(&format!("chatd (pid {pid}) stopped ({how})"))
}

fn not_running(message: String) -> anyhow::Error {
    Failure::new(exit::UNREACHABLE, "not_running", message).into()
}

/// Sends SIGTERM to the chatd named by `<dir>/chatd.pid`.
#[cfg(unix)]
fn stop_by_pid_file(dir: &Path, socket: &Path) -> anyhow::Result<u32> {
    let file = dir.join(PID_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_running(format!(
                "chatd is not running: nothing answers on {} and {} does not exist (give \
                 --data-dir if chatd runs with another data directory)",
                socket.display(),
                file.display()
            )));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", file.display())));
        }
    };
    let pid: u32 = text.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "{} does not hold a process id: {:?}",
            file.display(),
            text.trim()
        )
    })?;
    let Some(target) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        anyhow::bail!("{} names no valid process id ({pid})", file.display());
    };
    if !alive(pid) {
        return Err(not_running(format!(
            "chatd is not running: nothing answers on {}, and pid {pid} of {} is gone (a \
             daemon that did not stop cleanly left it)",
            socket.display(),
            file.display()
        )));
    }
    if let Some(name) = process_name(pid)
        && name != "chatd"
    {
        anyhow::bail!(
            "{} names pid {pid}, but that process is {name:?}, not chatd: the file is stale \
             (chatd did not stop cleanly and the pid was reused); not signalling it",
            file.display()
        );
    }
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .map_err(|e| anyhow::anyhow!("cannot signal chatd (pid {pid}): {e}"))?;
    Ok(pid)
}

/// On Windows chatd is reached through its pipe only.
#[cfg(not(unix))]
fn stop_by_pid_file(dir: &Path, socket: &Path) -> anyhow::Result<u32> {
    let file = dir.join(PID_FILE);
    let named = std::fs::read_to_string(&file)
        .ok()
        .map(|pid| format!(" ({} names pid {})", file.display(), pid.trim()))
        .unwrap_or_default();
    Err(not_running(format!(
        "nothing answers on {}{named}; on Windows chatd can only be stopped through its pipe \
         (or with the Task Manager)",
        socket.display()
    )))
}

/// Waits until chatd's process `pid` is gone (on Windows, until its pipe is).
fn wait_gone(pid: u32, socket: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let gone = if cfg!(unix) {
            !alive(pid)
        } else {
            Client::connect(socket).is_err()
        };
        if gone {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::new(
                exit::TIMEOUT,
                "timeout",
                format!(
                    "chatd (pid {pid}) was asked to stop but is still running after {timeout:?}"
                ),
            )
            .into());
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Whether process `pid` exists and is not a zombie (a zombie has exited; only its parent's
/// bookkeeping is left).
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Some(target) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(target) {
        // EPERM: it exists, but is another user's (so not our chatd, but not gone either).
        Ok(()) | Err(rustix::io::Errno::PERM) => !zombie(pid),
        Err(_) => false,
    }
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    false
}

/// Whether `/proc` says `pid` is a zombie (Linux; elsewhere, never).
#[cfg(unix)]
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command name, which is in parentheses and may hold any
            // character, so it is found after the last `)`.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// The process's command name, where `/proc` tells it (Linux).
#[cfg(unix)]
fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim_end().to_owned())
}
