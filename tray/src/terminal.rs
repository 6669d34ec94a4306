//! The menu's "Open chatctl": starts the configured terminal command (no shell in between,
//! unless the command names one) with `CHATD_SOCKET` set, so the chatctl inside talks to the
//! same daemon as the tray. The child is waited for on a thread of its own, so it leaves no
//! zombie and the tray never blocks on it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `command` (program and arguments) for the daemon at `socket`.
pub fn open(command: &[String], socket: &Path) -> std::io::Result<()> {
    let Some((program, args)) = command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the terminal command is empty",
        ));
    };
    let mut child = Command::new(program)
        .args(args)
        .env(api::paths::SOCKET_ENV, socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    std::thread::Builder::new()
        .name("terminal".into())
        .spawn(move || match child.wait() {
            Ok(status) if !status.success() => {
                tracing::info!(pid, %status, "the terminal command failed");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(pid, error = %e, "waiting for the terminal"),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(open(&["/nonexistent/terminal".to_owned()], Path::new("/x")).is_err());
    }
}
