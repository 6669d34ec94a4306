//! The raw backend under the store: one sled tree on disk, or an in-memory ordered map with the
//! same semantics for `--ephemeral` (which must write nothing to disk, so sled's `temporary`
//! mode, which writes files, is not used).
//!
//! On disk, writes go to a write-back overlay first ([`Pending`]): the batches applied between
//! two flushes are merged there (the last write of a key wins) and reach sled as one batch,
//! with the store's commit counter ([`super::commits`]), when the store is flushed, and never
//! before: reads and scans see the overlay merged over sled. The core applies a batch per
//! request and flushes once per round, so a round that stores 100 messages used to rewrite the
//! conversation's record 100 times and each outbox entry twice (queued, then sealed); sled
//! copies a whole tree node for every write, so each of those cost a node's worth of bytes on
//! disk. And a round that fails leaves sled untouched: [`Kv::recover`] drops the overlay and
//! reopens sled, which keeps an I/O error for the rest of the process once it has seen one.
//!
//! Faults of the disk: a flush is refused while less than [`FREE_SPACE_HEADROOM`] is free,
//! so sled does not run into a full disk in the middle of a write, and a snapshot file that a
//! full disk cut short is removed before sled opens the directory (sled would refuse it).
//!
//! `Kv` stores opaque byte strings; it neither encrypts nor knows about tables. [`super::Store`]
//! and [`super::Vault`] are its only users, so the read and write methods are crate-private:
//! nothing outside the store can write a value that skipped encryption.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use sled::IVec;

use super::StoreError;
use super::commits::{self, CommitRecord, Verdict};

/// Name of the one sled tree the store keeps everything in.
const TREE_NAME: &[u8] = b"chatd/store/v1";

/// How many entries an in-memory scan copies out per lock acquisition.
const MEMORY_SCAN_CHUNK: usize = 64;

/// Free space the file system must keep after a flush. Below it the flush is refused before
/// sled writes anything: sled 0.34 keeps an I/O error (ENOSPC included) for the rest of the
/// process and, while writing a snapshot, leaves a torn snapshot file that it later refuses
/// to open. A round writes a few hundred KiB at most and sled's log segments are 512 KiB, so
/// 8 MiB leaves room for sled's snapshots and everything else the data directory holds.
pub const FREE_SPACE_HEADROOM: u64 = 8 * 1024 * 1024;

/// One write in a batch: the backend key, and the new value or `None` to delete.
pub(crate) type Op = (Vec<u8>, Option<Vec<u8>>);

/// The ordered map behind the in-memory backend.
type MemoryMap = BTreeMap<IVec, IVec>;

/// Writes applied since the last flush: the new value of each key, `None` for a deletion.
/// Moved into sled (under its lock, so no reader misses a write in between) by the flush, as
/// one sled batch with the commit counter, and only then: a round that fails leaves sled as it
/// was.
type Pending = BTreeMap<Vec<u8>, Option<IVec>>;

/// How [`Kv::open_with`] treats a store that is behind its commit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossPolicy {
    /// Refuse it with [`StoreError::LostCommits`].
    Refuse,
    /// Accept it (the user chose to, `--accept-store-loss`) and record its counter.
    Accept,
}

/// The raw key-value backend: a sled database on disk or an ordered map in memory.
///
/// Cheap to clone: clones share the same database or map, and a reopened database.
#[derive(Clone)]
pub struct Kv {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// The durable backend.
    Sled(Arc<SledStore>),
    /// The `--ephemeral` backend.
    Memory(Arc<Mutex<MemoryMap>>),
}

/// The sled database, its overlay and its commit record.
struct SledStore {
    dir: PathBuf,
    cache_capacity: u64,
    /// The open database; `None` after a failed reopen, until [`Kv::recover`] succeeds.
    open: RwLock<Option<SledOpen>>,
    pending: Mutex<Pending>,
    /// The file beside sled's that records the last flushed commit.
    record: Mutex<CommitRecord>,
    /// The store's commit counter as of the last successful flush.
    commits: AtomicU64,
    /// Set when a flush failed: sled keeps such an error, so no write is tried again until
    /// the database is reopened.
    broken: AtomicBool,
    /// The last write failure, until a flush succeeds again.
    health: Mutex<Option<String>>,
    /// A test-only fault: the write (apply or flush) with this number fails.
    #[cfg(test)]
    failpoint: Failpoint,
}

#[derive(Clone)]
struct SledOpen {
    db: sled::Db,
    tree: sled::Tree,
}

/// Numbers writes and fails the chosen one, for the tests of a round that fails.
#[cfg(test)]
#[derive(Default)]
struct Failpoint {
    /// Writes seen since armed.
    seen: AtomicU64,
    /// 1 + the number of the write that fails; 0 when disarmed.
    fail_at: AtomicU64,
}

impl Kv {
    /// Opens (creating) the sled database in `dir` with a page cache of at most
    /// `cache_capacity` bytes (the daemon passes about 8 MiB: its idle RSS matters), and
    /// checks it against its commit record, refusing a store that lost commits.
    ///
    /// Returns [`StoreError::InUse`] if another process (or another `Kv` in this one) has the
    /// directory open: sled holds an exclusive lock on it.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Kv, StoreError> {
        Self::open_with(dir, cache_capacity, LossPolicy::Refuse)
    }

    /// [`Kv::open`], with the choice of what to do with a store that lost commits.
    pub fn open_with(
        dir: &Path,
        cache_capacity: u64,
        policy: LossPolicy,
    ) -> Result<Kv, StoreError> {
        let open = open_sled(dir, cache_capacity)?;
        let store_counter = read_counter(&open.tree)?;
        let (mut record, recorded) = CommitRecord::open(dir)?;
        match commits::check(store_counter, recorded) {
            Verdict::Consistent => record.write(store_counter)?,
            Verdict::Created => {
                if store_counter > 0 {
                    tracing::warn!(
                        commits = store_counter,
                        "the store's commit record was missing; it is created from the store"
                    );
                }
                record.write(store_counter)?;
            }
            Verdict::Lost { store, recorded } => match policy {
                LossPolicy::Refuse => return Err(StoreError::LostCommits { store, recorded }),
                LossPolicy::Accept => {
                    tracing::warn!(
                        store,
                        recorded,
                        "accepting a store that lost commits (--accept-store-loss)"
                    );
                    record.reseal(store)?;
                }
            },
        }
        Ok(Kv {
            backend: Backend::Sled(Arc::new(SledStore {
                dir: dir.to_path_buf(),
                cache_capacity,
                open: RwLock::new(Some(open)),
                pending: Mutex::default(),
                record: Mutex::new(record),
                commits: AtomicU64::new(store_counter),
                broken: AtomicBool::new(false),
                health: Mutex::default(),
                #[cfg(test)]
                failpoint: Failpoint::default(),
            })),
        })
    }

    /// A new, empty in-memory backend. Nothing it holds ever reaches the disk.
    pub fn memory() -> Kv {
        Kv {
            backend: Backend::Memory(Arc::default()),
        }
    }

    /// Whether this is the in-memory backend.
    pub fn is_memory(&self) -> bool {
        matches!(self.backend, Backend::Memory(_))
    }

    /// The last write failure, while writes fail (`None` once a flush succeeds again).
    pub fn health(&self) -> Option<String> {
        match &self.backend {
            Backend::Sled(s) => lock(&s.health).clone(),
            Backend::Memory(_) => None,
        }
    }

    /// The store's commit counter as of the last successful flush (0 in memory).
    pub fn commits(&self) -> u64 {
        match &self.backend {
            Backend::Sled(s) => s.commits.load(Ordering::SeqCst),
            Backend::Memory(_) => 0,
        }
    }

    /// After a failed round: drops the writes that wait for a flush and reopens the database
    /// (sled keeps an I/O error until it is reopened), so the store holds exactly what was
    /// flushed. Returns whether the failed round's batch turned out to be in the store after
    /// all (sled had written it before the error): the caller must then not report it lost.
    pub(crate) fn recover(&self) -> Result<bool, StoreError> {
        let Backend::Sled(s) = &self.backend else {
            return Ok(false);
        };
        lock(&s.pending).clear();
        let attempted = s.commits.load(Ordering::SeqCst) + 1;
        let mut open = s.open.write().unwrap_or_else(PoisonError::into_inner);
        // Only one handle to the database may exist for sled to let it be opened again.
        *open = None;
        let reopened = open_sled(&s.dir, s.cache_capacity)?;
        let counter = read_counter(&reopened.tree)?;
        *open = Some(reopened);
        s.commits.store(counter, Ordering::SeqCst);
        s.broken.store(false, Ordering::SeqCst);
        Ok(counter >= attempted)
    }

    /// Deletes everything the store holds, for `account.delete`. On disk, sled's files and
    /// the commit record are removed from the store directory (overwriting them is left to the
    /// file system: sled's log segments are encrypted values, and without the vault record in
    /// them the master key is gone) and an empty database is opened in their place; in memory
    /// the map is cleared. Writes waiting for a flush are dropped with the rest. The caller
    /// (the core, between rounds' flushes) holds no reader open.
    pub(crate) fn wipe(&self) -> Result<(), StoreError> {
        let s = match &self.backend {
            Backend::Sled(s) => s,
            Backend::Memory(map) => {
                lock(map).clear();
                return Ok(());
            }
        };
        lock(&s.pending).clear();
        let mut open = s.open.write().unwrap_or_else(PoisonError::into_inner);
        // sled lets the directory be opened again only once every handle is gone.
        *open = None;
        let mut record = lock(&s.record);
        let entries = std::fs::read_dir(&s.dir)
            .map_err(|e| StoreError::Io(format!("listing {}: {e}", s.dir.display())))?;
        for entry in entries {
            let path = entry
                .map_err(|e| StoreError::Io(format!("listing {}: {e}", s.dir.display())))?
                .path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| StoreError::Io(format!("removing {}: {e}", path.display())))?;
        }
        let reopened = open_sled(&s.dir, s.cache_capacity)?;
        let (fresh, _) = CommitRecord::open(&s.dir)?;
        *record = fresh;
        *open = Some(reopened);
        s.commits.store(0, Ordering::SeqCst);
        s.broken.store(false, Ordering::SeqCst);
        *lock(&s.health) = None;
        Ok(())
    }

    /// Arms the test failpoint: the `n`th write from now (0 = the next; counting
    /// [`Kv::apply`] and flushes) fails as a full disk would.
    #[cfg(test)]
    pub(crate) fn fail_write(&self, n: u64) {
        if let Backend::Sled(s) = &self.backend {
            s.failpoint.seen.store(0, Ordering::SeqCst);
            s.failpoint.fail_at.store(n + 1, Ordering::SeqCst);
        }
    }

    /// Whether the armed failpoint has fired or been passed (`false` if it is still ahead).
    #[cfg(test)]
    pub(crate) fn failpoint_reached(&self) -> bool {
        match &self.backend {
            Backend::Sled(s) => s.failpoint.fail_at.load(Ordering::SeqCst) == 0,
            Backend::Memory(_) => true,
        }
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                if let Some(value) = lock(&s.pending).get(key) {
                    return Ok(value.clone());
                }
                Ok(s.tree()?.get(key)?)
            }
            Backend::Memory(map) => Ok(lock(map).get(key).cloned()),
        }
    }

    /// Stores `value` under `key` only if the key is absent; returns whether it was stored.
    pub(crate) fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                s.writable()?;
                let mut pending = lock(&s.pending);
                match pending.get(key) {
                    Some(Some(_)) => Ok(false),
                    Some(None) => {
                        pending.insert(key.to_vec(), Some(IVec::from(value)));
                        Ok(true)
                    }
                    None => {
                        if s.tree()?.contains_key(key)? {
                            Ok(false)
                        } else {
                            pending.insert(key.to_vec(), Some(IVec::from(value)));
                            Ok(true)
                        }
                    }
                }
            }
            Backend::Memory(map) => {
                let mut map = lock(map);
                if map.contains_key(key) {
                    Ok(false)
                } else {
                    map.insert(IVec::from(key), IVec::from(value));
                    Ok(true)
                }
            }
        }
    }

    /// Applies `ops` in order, atomically: a reader sees all of them or none.
    pub(crate) fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                s.writable()?;
                if let Err(e) = s.injected_fault() {
                    s.fail(&e);
                    return Err(e);
                }
                let ops: Vec<(Vec<u8>, Option<IVec>)> = ops
                    .into_iter()
                    .map(|(key, value)| (key, value.map(IVec::from)))
                    .collect();
                let mut pending = lock(&s.pending);
                for (key, value) in ops {
                    pending.insert(key, value);
                }
                Ok(())
            }
            Backend::Memory(map) => {
                // Convert before taking the lock so the critical section only links nodes.
                let ops: Vec<(IVec, Option<IVec>)> = ops
                    .into_iter()
                    .map(|(key, value)| (IVec::from(key), value.map(IVec::from)))
                    .collect();
                let mut map = lock(map);
                for (key, value) in ops {
                    match value {
                        Some(value) => map.insert(key, value),
                        None => map.remove(&key),
                    };
                }
                Ok(())
            }
        }
    }

    /// Entries with `lo <= key < hi` (as the bounds say), ascending, or descending if `rev`.
    ///
    /// The iterator holds no lock and no snapshot: like sled's, it may or may not see writes
    /// committed while it runs, including only some of the keys of a concurrent batch.
    pub(crate) fn range(&self, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, rev: bool) -> RawIter {
        if range_is_empty(&lo, &hi) {
            return RawIter::Empty;
        }
        match &self.backend {
            Backend::Sled(s) => {
                let tree = match s.tree() {
                    Ok(tree) => tree,
                    Err(e) => return RawIter::Failed(Some(e)),
                };
                // The overlay's part of the range is copied (a round's writes at most) and
                // merged with sled's: nothing reaches sled before the round's flush.
                let bounds = (as_slice(&lo), as_slice(&hi));
                let mut overlay: VecDeque<(Vec<u8>, Option<IVec>)> = lock(&s.pending)
                    .range::<[u8], _>(bounds)
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                if rev {
                    overlay = overlay.into_iter().rev().collect();
                }
                RawIter::Sled(Box::new(MergedCursor {
                    iter: tree.range::<Vec<u8>, _>((lo, hi)),
                    rev,
                    overlay,
                    peeked: None,
                }))
            }
            Backend::Memory(map) => RawIter::Memory(MemoryCursor {
                map: Arc::clone(map),
                lo,
                hi,
                rev,
                buffered: VecDeque::new(),
                exhausted: false,
            }),
        }
    }

    /// Makes every applied batch durable (sled fsyncs its log), then records the commit
    /// beside the store. A no-op in memory.
    pub(crate) fn flush_blocking(&self) -> Result<(), StoreError> {
        let Backend::Sled(s) = &self.backend else {
            return Ok(());
        };
        let (db, counter) = s.prepare_flush()?;
        let flushed = db.flush().map(|_| ()).map_err(StoreError::from);
        s.finish_flush(flushed, counter)?;
        if let Some(counter) = counter {
            s.write_record(counter);
        }
        Ok(())
    }

    /// [`Kv::flush_blocking`] on sled's flusher thread pool, without blocking the caller; the
    /// commit record is written on a blocking thread afterwards, without waiting for it (a
    /// record behind the store is accepted on open).
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let Backend::Sled(s) = &self.backend else {
            return Ok(());
        };
        let (db, counter) = s.prepare_flush()?;
        let flushed = db.flush_async().await.map(|_| ()).map_err(StoreError::from);
        s.finish_flush(flushed, counter)?;
        if let Some(counter) = counter {
            let s = Arc::clone(s);
            tokio::task::spawn_blocking(move || s.write_record(counter));
        }
        Ok(())
    }
}

impl SledStore {
    /// The open tree, or the error that explains why there is none.
    fn tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.handle()?.tree)
    }

    fn handle(&self) -> Result<SledOpen, StoreError> {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Io("the store is closed after a failed write".into()))
    }

    /// Fails if a flush failed since the database was last opened.
    fn writable(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            let error = lock(&self.health).clone().unwrap_or_default();
            return Err(StoreError::Io(format!(
                "writes are refused until the store is reopened after: {error}"
            )));
        }
        Ok(())
    }

    /// Checks the free space, then moves the overlay into sled as one batch with the next
    /// commit counter. Returns the database to flush and the counter (`None` if nothing was
    /// waiting).
    fn prepare_flush(&self) -> Result<(sled::Db, Option<u64>), StoreError> {
        self.writable()?;
        let handle = self.handle()?;
        let pending = lock(&self.pending);
        if pending.is_empty() {
            return Ok((handle.db, None));
        }
        let result = self.check_free_space().and_then(|()| self.injected_fault());
        if let Err(e) = result {
            drop(pending);
            self.fail(&e);
            return Err(e);
        }
        let counter = self.commits.load(Ordering::SeqCst) + 1;
        let mut batch = sled::Batch::default();
        for (key, value) in pending.iter() {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.clone()),
                None => batch.remove(key.as_slice()),
            }
        }
        batch.insert(commits::STORE_KEY, &commits::encode_counter(counter)[..]);
        let mut pending = pending;
        if let Err(e) = handle.tree.apply_batch(batch) {
            let e = StoreError::from(e);
            drop(pending);
            self.fail(&e);
            return Err(e);
        }
        pending.clear();
        Ok((handle.db, Some(counter)))
    }

    fn finish_flush(
        &self,
        flushed: Result<(), StoreError>,
        counter: Option<u64>,
    ) -> Result<(), StoreError> {
        if let Err(e) = flushed {
            self.fail(&e);
            return Err(e);
        }
        if let Some(counter) = counter {
            self.commits.store(counter, Ordering::SeqCst);
        }
        *lock(&self.health) = None;
        Ok(())
    }

    fn fail(&self, error: &StoreError) {
        *lock(&self.health) = Some(error.to_string());
        self.broken.store(true, Ordering::SeqCst);
    }

    fn write_record(&self, counter: u64) {
        let mut record = lock(&self.record);
        // A record written late for a store wiped meanwhile (`Kv::wipe` sets the counter back
        // to 0 under this lock) would put the new store behind its record.
        if counter > self.commits.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = record.write(counter) {
            tracing::error!(error = %e, "could not write the store's commit record");
        }
    }

    /// Refuses a flush that would leave less than [`FREE_SPACE_HEADROOM`] free.
    fn check_free_space(&self) -> Result<(), StoreError> {
        let Some(free) = free_bytes(&self.dir) else {
            return Ok(());
        };
        if free < FREE_SPACE_HEADROOM {
            return Err(StoreError::Io(format!(
                "the disk is full: {} KiB free in {}, and chatd keeps {} MiB free so that the \
                 store is never cut off in the middle of a write",
                free / 1024,
                self.dir.display(),
                FREE_SPACE_HEADROOM / (1024 * 1024)
            )));
        }
        Ok(())
    }

    #[cfg(test)]
    fn injected_fault(&self) -> Result<(), StoreError> {
        let fail_at = self.failpoint.fail_at.load(Ordering::SeqCst);
        if fail_at == 0 {
            return Ok(());
        }
        let seen = self.failpoint.seen.fetch_add(1, Ordering::SeqCst);
        if seen + 1 == fail_at {
            self.failpoint.fail_at.store(0, Ordering::SeqCst);
            return Err(StoreError::Io("No space left on device (injected)".into()));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn injected_fault(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Free bytes for an unprivileged user on the file system of `dir` (`None` if unknown).
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Opens sled in `dir`, first removing snapshot files that a write cut off left behind.
fn open_sled(dir: &Path, cache_capacity: u64) -> Result<SledOpen, StoreError> {
    remove_torn_snapshots(dir);
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity)
        // The core flushes after every round that wrote; sled's own timer would only
        // wake a thread to find nothing new.
        .flush_every_ms(None)
        .open()
        .map_err(open_error)?;
    let tree = db.open_tree(TREE_NAME)?;
    Ok(SledOpen { db, tree })
}

/// The commit counter the store holds.
fn read_counter(tree: &sled::Tree) -> Result<u64, StoreError> {
    let value = tree.get(commits::STORE_KEY)?;
    commits::decode_counter(value.as_deref())
}

/// sled 0.34 writes a snapshot to `snap.<lsn>.generating` and renames it when complete, but
/// on open it also reads a `.generating` file, and refuses the whole store ("empty/corrupt
/// snapshot file found") when that file was cut short, as a full disk does. A torn
/// `.generating` file was never renamed, so sled had not yet relied on it: removing it gives
/// back the store as it was before the snapshot began. A complete one (a crash between its
/// sync and its rename) is left for sled to use.
pub(crate) fn remove_torn_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        let path = entry.path();
        let complete = std::fs::read(&path).is_ok_and(|bytes| snapshot_is_complete(&bytes));
        if complete {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::warn!(
                file = %path.display(),
                "removed a snapshot file a failed write had cut short"
            ),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "could not remove a torn snapshot file")
            }
        }
    }
}

/// Whether a sled snapshot file ends with its length and a matching CRC-32 (sled 0.34's
/// `write_snapshot`: the snapshot, its length as u64 and the CRC-32 of the snapshot, both
/// little-endian).
fn snapshot_is_complete(bytes: &[u8]) -> bool {
    let Some(body_len) = bytes.len().checked_sub(12) else {
        return false;
    };
    if body_len == 0 {
        return false;
    }
    let (body, tail) = bytes.split_at(body_len);
    let Ok(crc) = <[u8; 4]>::try_from(&tail[8..]) else {
        return false;
    };
    u32::from_le_bytes(crc) == crc32fast::hash(body)
}

impl fmt::Debug for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sled's own `Debug` walks the whole tree; print only which backend this is.
        match &self.backend {
            Backend::Sled(_) => f.write_str("Kv::Sled"),
            Backend::Memory(_) => f.write_str("Kv::Memory"),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Corruption { .. } => StoreError::Corrupt("sled found its files corrupt"),
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// Maps the error of opening sled, recognising its "directory locked" error.
fn open_error(error: sled::Error) -> StoreError {
    // sled reports a held lock as a plain `io::Error` of kind `Other` with this message
    // (sled 0.34.7, `Config::open_file`), so the message is all there is to match on.
    if let sled::Error::Io(io) = &error
        && io.to_string().contains("could not acquire lock")
    {
        return StoreError::InUse;
    }
    error.into()
}

/// Locks the in-memory map. A panic while it was held cannot leave it inconsistent (every
/// critical section is a sequence of whole `BTreeMap` operations), so poisoning is ignored.
fn lock<T>(map: &Mutex<T>) -> MutexGuard<'_, T> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether no key can satisfy both bounds. `BTreeMap::range` panics on such bounds, so they
/// are caught here first.
fn range_is_empty(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(lo), Bound::Included(hi)) => lo > hi,
        (Bound::Included(lo), Bound::Excluded(hi))
        | (Bound::Excluded(lo), Bound::Included(hi))
        | (Bound::Excluded(lo), Bound::Excluded(hi)) => lo >= hi,
    }
}

/// An iterator over raw entries, from [`Kv::range`].
pub(crate) enum RawIter {
    /// The range was empty.
    Empty,
    /// A sled range merged with the overlay's writes.
    Sled(Box<MergedCursor>),
    /// An in-memory range.
    Memory(MemoryCursor),
    /// The overlay could not be written to sled before the scan: yields the error once.
    Failed(Option<StoreError>),
}

impl Iterator for RawIter {
    type Item = Result<(IVec, IVec), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RawIter::Empty => None,
            RawIter::Sled(cursor) => cursor.next(),
            RawIter::Memory(cursor) => cursor.next().map(Ok),
            RawIter::Failed(error) => error.take().map(Err),
        }
    }
}

/// A sled range, walked backwards if `rev`, merged with the overlay's part of it (a key in the
/// overlay hides sled's value; a deletion there hides the key).
pub(crate) struct MergedCursor {
    iter: sled::Iter,
    rev: bool,
    /// The overlay's entries in the range, in walking order.
    overlay: VecDeque<(Vec<u8>, Option<IVec>)>,
    /// sled's next entry, read but not yet yielded.
    peeked: Option<(IVec, IVec)>,
}

impl MergedCursor {
    fn next(&mut self) -> Option<Result<(IVec, IVec), StoreError>> {
        loop {
            if self.peeked.is_none() {
                let next = if self.rev {
                    self.iter.next_back()
                } else {
                    self.iter.next()
                };
                match next {
                    Some(Ok(entry)) => self.peeked = Some(entry),
                    Some(Err(e)) => return Some(Err(e.into())),
                    None => {}
                }
            }
            let overlay_first = match (&self.peeked, self.overlay.front()) {
                (None, None) => return None,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((sled_key, _)), Some((key, _))) => {
                    let ordering = key.as_slice().cmp(sled_key.as_ref());
                    if ordering == std::cmp::Ordering::Equal {
                        // The overlay's write replaces sled's value.
                        self.peeked = None;
                        true
                    } else {
                        (ordering == std::cmp::Ordering::Less) != self.rev
                    }
                }
            };
            if overlay_first {
                let (key, value) = self.overlay.pop_front()?;
                match value {
                    Some(value) => return Some(Ok((IVec::from(key), value))),
                    None => continue,
                }
            }
            return self.peeked.take().map(Ok);
        }
    }
}

/// Walks a range of the in-memory map a chunk at a time, so that no lock is held between
/// calls (a caller may write to the store while it iterates) and nothing is copied up front.
pub(crate) struct MemoryCursor {
    map: Arc<Mutex<MemoryMap>>,
    /// Bounds of what is left to walk; the walked end moves past each chunk.
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    rev: bool,
    buffered: VecDeque<(IVec, IVec)>,
    exhausted: bool,
}

impl MemoryCursor {
    fn next(&mut self) -> Option<(IVec, IVec)> {
        if self.buffered.is_empty() && !self.exhausted {
            self.refill();
        }
        self.buffered.pop_front()
    }

    fn refill(&mut self) {
        if range_is_empty(&self.lo, &self.hi) {
            self.exhausted = true;
            return;
        }
        {
            let map = lock(&self.map);
            let range = map.range::<[u8], _>((as_slice(&self.lo), as_slice(&self.hi)));
            let chunk = range.map(|(key, value)| (key.clone(), value.clone()));
            if self.rev {
                self.buffered.extend(chunk.rev().take(MEMORY_SCAN_CHUNK));
            } else {
                self.buffered.extend(chunk.take(MEMORY_SCAN_CHUNK));
            }
        }
        if self.buffered.len() < MEMORY_SCAN_CHUNK {
            self.exhausted = true;
        }
        if let Some((last, _)) = self.buffered.back() {
            let next = Bound::Excluded(last.to_vec());
            if self.rev {
                self.hi = next;
            } else {
                self.lo = next;
            }
        }
    }
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
