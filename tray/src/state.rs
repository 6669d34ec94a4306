//! The resume cursor on disk: the cursor of the last event chat-tray has handled, in a small
//! TOML file (`cursor = N`, with a format `version`), replaced atomically (a temporary file in
//! the same directory, synced, then renamed over the old one) so a crash leaves the old cursor
//! or the new one, never a torn file.
//!
//! On start, chat-tray subscribes with `since` = this cursor, so the events it missed while it
//! or chatd was away are delivered once and the ones it already showed are not. When the file
//! does not exist (a first run), the cursor starts at the current time: chatd's cursors are at
//! least its clock in microseconds when the event was made (api's `events` module), so `since`
//! = now skips the history instead of flooding the desktop with every message ever retained.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The file format's version.
const VERSION: u32 = 1;

/// The state file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRecord {
    version: u32,
    cursor: u64,
}

/// The state file and the cursor last written to it.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    saved: Option<u64>,
}

impl StateFile {
    /// Opens the state file at `path`: reads the cursor it holds, if the file exists.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let saved = match fs::read_to_string(path) {
            Ok(text) => Some(parse(&text).with_context(|| {
                format!(
                    "{} is not a chat-tray state file (remove it to start from now)",
                    path.display()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            saved,
        })
    }

    /// The stored cursor, if any.
    pub fn cursor(&self) -> Option<u64> {
        self.saved
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `cursor` unless it is the one already stored.
    pub fn save(&mut self, cursor: u64) -> anyhow::Result<()> {
        if self.saved == Some(cursor) {
            return Ok(());
        }
        write_atomically(&self.path, &render(cursor))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.saved = Some(cursor);
        Ok(())
    }
}

/// A cursor for "from now on": the current time in microseconds (see the module doc).
pub fn cursor_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn parse(text: &str) -> anyhow::Result<u64> {
    let record: StateRecord = toml::from_str(text)?;
    anyhow::ensure!(
        record.version == VERSION,
        "unknown state file version {}",
        record.version
    );
    Ok(record.cursor)
}

fn render(cursor: u64) -> String {
    format!(
        "# chat-tray's resume cursor: the last chatd event it handled. Safe to delete\n\
         # (chat-tray then starts from now).\nversion = {VERSION}\ncursor = {cursor}\n"
    )
}

/// Writes `contents` to a temporary file beside `path`, syncs it, and renames it over `path`,
/// creating the directory (0700) if needed.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        // The rename itself is durable once the directory is synced (best effort: not every
        // platform can open a directory).
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_has_no_cursor_and_saves_round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("deeper").join("state.toml");
        let mut state = StateFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(state.cursor(), None);
        state.save(42).unwrap_or_else(|e| panic!("{e:#}"));
        state
            .save(1_700_000_000_000_001)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let again = StateFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(again.cursor(), Some(1_700_000_000_000_001));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap_or(dir.path()))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["state.toml"],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("state.toml");
        for junk in [
            "cursor = -1\nversion = 1",
            "version = 2\ncursor = 5",
            "\u{0}\u{1}",
            "",
        ] {
            fs::write(&path, junk).unwrap_or_else(|e| panic!("{e}"));
            let err = StateFile::open(&path).err();
            assert!(
                err.is_some_and(|e| format!("{e:#}").contains("state.toml")),
                "{junk:?} must be refused"
            );
        }
    }

    #[test]
    fn now_is_a_plausible_cursor() {
        // 2020-01-01 in microseconds: chatd's cursors are at least its clock in µs.
        assert!(cursor_now() > 1_577_836_800_000_000);
    }
}
