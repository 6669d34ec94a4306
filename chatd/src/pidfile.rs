//! The pid file: `<data dir>/chatd.pid` holds the running daemon's process id, so that a
//! second daemon refused the store can name the one that holds it, and `chatctl daemon stop`
//! can find a daemon whose socket was deleted. Written once the store is open (the store's lock
//! makes this daemon the only one of the directory), removed when the daemon exits cleanly; a
//! file left by a crash names a process that is gone, which readers check.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The pid file's name inside the data directory.
pub const PID_FILE: &str = "chatd.pid";

/// The pid file of a running daemon; removed on drop if it still names this process.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id into `<dir>/chatd.pid` (through a temporary file and a
    /// rename, mode 0600 by the daemon's umask).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(PID_FILE);
        let temporary = dir.join(format!("{PID_FILE}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&temporary)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &path)?;
        Ok(Self { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The process id in `<dir>/chatd.pid`, if the file exists and holds one.
pub fn read(dir: &Path) -> Option<u32> {
    read_pid(&dir.join(PID_FILE))
}

fn read_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests;
