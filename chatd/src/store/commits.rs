//! The commit record: a counter of the store's flushed rounds, kept both in the store (in the
//! batch of every flush that writes) and in a small file beside sled's (`chatd-commits` in the
//! store directory) that is written after the flush succeeded. On open the store's counter must
//! be at least the file's; a store that is behind lost commits it had acknowledged (sled can
//! silently open an older state after a crash and a damaged byte) and is refused.
//!
//! The file holds two slots of [`SLOT_LEN`] bytes; commit `n` is written into slot `n % 2`
//! and synced, so a write torn by a crash leaves the other slot, one commit older, intact.
//! A slot is `"chatdcr1" (8 ASCII bytes) || counter (u64, big-endian) || CRC-32 (IEEE) of the
//! first 16 bytes (u32, big-endian) || 4 zero bytes`. The counter the file records is the
//! largest of its valid slots.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The file's name, inside the store's directory.
pub const FILE_NAME: &str = "chatd-commits";
/// The backend key of the store's own copy of the counter (in the vault's table, 0).
pub const STORE_KEY: &[u8] = b"\x00commits";
/// Bytes per slot.
pub const SLOT_LEN: usize = 24;
const MAGIC: &[u8; 8] = b"chatdcr1";

/// What [`check`] concluded about a store and its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The store is at or ahead of the record (ahead: a crash came between the flush and the
    /// record's write). The record is brought up to the store.
    Consistent,
    /// There is no record file: a store from before the record existed, or a new one. It is
    /// created from the store's counter.
    Created,
    /// The store is behind the record: it lost `recorded - store` acknowledged commits.
    Lost {
        /// The store's counter.
        store: u64,
        /// The record's counter.
        recorded: u64,
    },
}

/// The record file of the store in `dir`, open for writing.
#[derive(Debug)]
pub struct CommitRecord {
    file: File,
    path: PathBuf,
    /// The last counter written (and synced).
    written: u64,
}

impl CommitRecord {
    /// Opens (creating) the record in the store directory `dir` and reads it: `None` if the
    /// file did not exist or holds no valid slot.
    pub fn open(dir: &Path) -> Result<(CommitRecord, Option<u64>), StoreError> {
        let path = dir.join(FILE_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|e| io_error(&path, &e))?;
        let mut bytes = Vec::with_capacity(2 * SLOT_LEN);
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(&path, &e))?;
        let recorded = bytes.chunks(SLOT_LEN).filter_map(decode_slot).max();
        Ok((
            CommitRecord {
                file,
                path,
                written: recorded.unwrap_or(0),
            },
            recorded,
        ))
    }

    /// Records `counter` (if it is newer than the last one written) and syncs the file.
    pub fn write(&mut self, counter: u64) -> Result<(), StoreError> {
        if counter <= self.written {
            return Ok(());
        }
        self.write_slot(counter)
    }

    /// Records `counter` even if it is older than what the file holds (after the user
    /// accepted a store that lost commits): both slots are rewritten.
    pub fn reseal(&mut self, counter: u64) -> Result<(), StoreError> {
        self.put(0, counter)?;
        self.put(1, counter)?;
        self.file
            .sync_data()
            .map_err(|e| io_error(&self.path, &e))?;
        self.written = counter;
        Ok(())
    }

    fn write_slot(&mut self, counter: u64) -> Result<(), StoreError> {
        self.put((counter % 2) as usize, counter)?;
        self.file
            .sync_data()
            .map_err(|e| io_error(&self.path, &e))?;
        self.written = counter;
        Ok(())
    }

    fn put(&mut self, slot: usize, counter: u64) -> Result<(), StoreError> {
        let bytes = encode_slot(counter);
        self.file
            .seek(SeekFrom::Start((slot * SLOT_LEN) as u64))
            .and_then(|_| self.file.write_all(&bytes))
            .map_err(|e| io_error(&self.path, &e))
    }
}

/// Compares the store's counter with the record's (`None`: no record).
pub fn check(store: u64, recorded: Option<u64>) -> Verdict {
    match recorded {
        None => Verdict::Created,
        Some(recorded) if store >= recorded => Verdict::Consistent,
        Some(recorded) => Verdict::Lost { store, recorded },
    }
}

/// The counter as stored in the store.
pub fn encode_counter(counter: u64) -> [u8; 8] {
    counter.to_be_bytes()
}

/// The store's counter from its stored bytes (absent: 0; not 8 bytes: corrupt).
pub fn decode_counter(bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("the store's commit counter")),
    }
}

fn encode_slot(counter: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&counter.to_be_bytes());
    let crc = crc32fast::hash(&slot[..16]);
    slot[16..20].copy_from_slice(&crc.to_be_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<u64> {
    let slot: &[u8; SLOT_LEN] = slot.try_into().ok()?;
    if &slot[..8] != MAGIC || slot[20..] != [0; 4] {
        return None;
    }
    let crc = u32::from_be_bytes(slot[16..20].try_into().ok()?);
    if crc != crc32fast::hash(&slot[..16]) {
        return None;
    }
    Some(u64::from_be_bytes(slot[8..16].try_into().ok()?))
}

fn io_error(path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_may_be_ahead_but_not_behind() {
        assert_eq!(check(7, Some(7)), Verdict::Consistent);
        assert_eq!(
            check(8, Some(7)),
            Verdict::Consistent,
            "a crash between the writes"
        );
        assert_eq!(
            check(6, Some(7)),
            Verdict::Lost {
                store: 6,
                recorded: 7
            }
        );
        assert_eq!(check(0, None), Verdict::Created);
        assert_eq!(check(12, None), Verdict::Created);
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_commit() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (mut record, recorded) =
            CommitRecord::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded, None);
        for n in 1..=5 {
            record.write(n).unwrap_or_else(|e| panic!("{e}"));
        }
        drop(record);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        // Commit 5 is in slot 1; damage it as a torn write would.
        bytes[SLOT_LEN + 12] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let (_, recorded) = CommitRecord::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded, Some(4));
    }

    #[test]
    fn a_resealed_record_holds_the_older_counter() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (mut record, _) = CommitRecord::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        for n in 1..=9 {
            record.write(n).unwrap_or_else(|e| panic!("{e}"));
        }
        record.reseal(3).unwrap_or_else(|e| panic!("{e}"));
        drop(record);
        let (mut record, recorded) =
            CommitRecord::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded, Some(3));
        record.write(4).unwrap_or_else(|e| panic!("{e}"));
        drop(record);
        let (_, recorded) = CommitRecord::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded, Some(4));
    }
}
