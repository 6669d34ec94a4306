//! The log file of `--log-file`: a size-capped, rotated file the daemon's `tracing` output goes
//! to instead of stderr (what `chatctl` asks of a daemon it starts, which has no terminal).
//!
//! The file is created 0600 (its directory 0700); when a write would take it past
//! [`MAX_BYTES`], it becomes `PATH.1` (`PATH.1` becomes `PATH.2`, and so on; `PATH.{KEEP - 1}`
//! is deleted), so at most [`KEEP`] files of about [`MAX_BYTES`] each are kept. A write that
//! fails (a full disk) is reported to `tracing` as an error and the next write tries again:
//! losing a log line must not stop the daemon. Nothing in the file is coloured: `main` turns
//! ANSI escapes off for it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A log file grows to about this size before it is rotated.
pub const MAX_BYTES: u64 = 1024 * 1024;
/// How many files are kept: the live one and `KEEP - 1` rotated ones.
pub const KEEP: usize = 5;

/// A log file rotated by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    len: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    /// Opens (appends to) the log file at `path`, creating it and its directory.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::with_limits(path, MAX_BYTES, KEEP)
    }

    /// [`RotatingFile::open`] with other limits (for tests).
    pub fn with_limits(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::daemon::create_private_dir(dir)?;
        }
        let file = open_private(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            len,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
        })
    }

    /// The path of rotated file number `n` (`PATH.n`).
    pub fn rotated(path: &Path, n: usize) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 1 {
            self.file = open_private_truncated(&self.path)?;
            self.len = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(Self::rotated(&self.path, self.keep - 1));
        for n in (1..self.keep - 1).rev() {
            let from = Self::rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, Self::rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, Self::rotated(&self.path, 1))?;
        self.file = open_private(&self.path)?;
        self.len = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.len > 0 && self.len + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    open_with(options, path)
}

fn open_private_truncated(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).write(true).truncate(true);
    open_with(options, path)
}

fn open_with(options: OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut options = options;
        options.mode(0o600);
        let file = options.open(path)?;
        // A file that existed before keeps its mode: make it the user's alone.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

#[cfg(test)]
mod tests;
