//! The raw backend under the store: one sled tree on disk, or an in-memory ordered map with the
//! same semantics for `--ephemeral` (which must write nothing to disk, so sled's `temporary`
//! mode, which writes files, is not used).
//!
//! On disk, writes go to a write-back overlay first ([`Pending`]): the batches applied between
//! two flushes are merged there (the last write of a key wins) and reach sled as one batch
//! when the store is flushed or scanned. The core applies a batch per request and flushes once
//! per round, so a round that stores 100 messages used to rewrite the conversation's record
//! 100 times and each outbox entry twice (queued, then sealed); sled copies a whole tree node
//! for every write, so each of those cost a node's worth of bytes on disk. Reads see the
//! overlay, so nothing changes for callers but the cost.
//!
//! `Kv` stores opaque byte strings; it neither encrypts nor knows about tables. [`super::Store`]
//! and [`super::Vault`] are its only users, so the read and write methods are crate-private:
//! nothing outside the store can write a value that skipped encryption.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::IVec;

use super::StoreError;

/// Name of the one sled tree the store keeps everything in.
const TREE_NAME: &[u8] = b"chatd/store/v1";

/// How many entries an in-memory scan copies out per lock acquisition.
const MEMORY_SCAN_CHUNK: usize = 64;

/// One write in a batch: the backend key, and the new value or `None` to delete.
pub(crate) type Op = (Vec<u8>, Option<Vec<u8>>);

/// The ordered map behind the in-memory backend.
type MemoryMap = BTreeMap<IVec, IVec>;

/// Writes applied since the last drain into sled: the new value of each key, `None` for a
/// deletion. Drained (under its lock, so no reader misses a write in between) by flushes and
/// range scans.
type Pending = BTreeMap<Vec<u8>, Option<IVec>>;

/// The raw key-value backend: a sled database on disk or an ordered map in memory.
///
/// Cheap to clone: clones share the same database or map.
#[derive(Clone)]
pub struct Kv {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// The durable backend. `db` is kept for flushing; everything lives in `tree`, behind the
    /// `pending` overlay.
    Sled {
        db: sled::Db,
        tree: sled::Tree,
        pending: Arc<Mutex<Pending>>,
    },
    /// The `--ephemeral` backend.
    Memory(Arc<Mutex<MemoryMap>>),
}

impl Kv {
    /// Opens (creating) the sled database in `dir` with a page cache of at most
    /// `cache_capacity` bytes (the daemon passes about 8 MiB: its idle RSS matters).
    ///
    /// Returns [`StoreError::InUse`] if another process (or another `Kv` in this one) has the
    /// directory open: sled holds an exclusive lock on it.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Kv, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            // The core flushes after every round that wrote; sled's own timer would only
            // wake a thread to find nothing new.
            .flush_every_ms(None)
            .open()
            .map_err(open_error)?;
        let tree = db.open_tree(TREE_NAME)?;
        Ok(Kv {
            backend: Backend::Sled {
                db,
                tree,
                pending: Arc::default(),
            },
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

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match &self.backend {
            Backend::Sled { tree, pending, .. } => {
                if let Some(value) = lock(pending).get(key) {
                    return Ok(value.clone());
                }
                Ok(tree.get(key)?)
            }
            Backend::Memory(map) => Ok(lock(map).get(key).cloned()),
        }
    }

    /// Stores `value` under `key` only if the key is absent; returns whether it was stored.
    pub(crate) fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled { tree, pending, .. } => {
                let mut pending = lock(pending);
                match pending.get(key) {
                    Some(Some(_)) => Ok(false),
                    Some(None) => {
                        pending.insert(key.to_vec(), Some(IVec::from(value)));
                        Ok(true)
                    }
                    None => Ok(tree
                        .compare_and_swap(key, None::<&[u8]>, Some(value))?
                        .is_ok()),
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
            Backend::Sled { pending, .. } => {
                let ops: Vec<(Vec<u8>, Option<IVec>)> = ops
                    .into_iter()
                    .map(|(key, value)| (key, value.map(IVec::from)))
                    .collect();
                let mut pending = lock(pending);
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
            Backend::Sled { tree, .. } => {
                // Scans are rare (history pages, start-up): merging the overlay into sled
                // first is simpler than merging two ordered iterators, and as cheap.
                if let Err(e) = self.drain() {
                    return RawIter::Failed(Some(e));
                }
                RawIter::Sled {
                    iter: tree.range::<Vec<u8>, _>((lo, hi)),
                    rev,
                }
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

    /// Makes every applied batch durable (sled fsyncs its log). A no-op in memory.
    pub(crate) fn flush_blocking(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled { db, .. } => {
                self.drain()?;
                db.flush()?;
                Ok(())
            }
            Backend::Memory(_) => Ok(()),
        }
    }

    /// [`Kv::flush_blocking`] on sled's flusher thread pool, without blocking the caller.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled { db, .. } => {
                self.drain()?;
                db.flush_async().await?;
                Ok(())
            }
            Backend::Memory(_) => Ok(()),
        }
    }

    /// Moves the overlay's writes into sled as one atomic batch. The overlay's lock is held
    /// until sled has them, so a concurrent `get` sees each write in one place or the other.
    fn drain(&self) -> Result<(), StoreError> {
        let Backend::Sled { tree, pending, .. } = &self.backend else {
            return Ok(());
        };
        let mut pending = lock(pending);
        if pending.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in pending.iter() {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.clone()),
                None => batch.remove(key.as_slice()),
            }
        }
        tree.apply_batch(batch)?;
        pending.clear();
        Ok(())
    }
}

impl fmt::Debug for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sled's own `Debug` walks the whole tree; print only which backend this is.
        match &self.backend {
            Backend::Sled { .. } => f.write_str("Kv::Sled"),
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
    /// A sled range, walked backwards if `rev`.
    Sled { iter: sled::Iter, rev: bool },
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
            RawIter::Sled { iter, rev: false } => iter.next().map(|entry| Ok(entry?)),
            RawIter::Sled { iter, rev: true } => iter.next_back().map(|entry| Ok(entry?)),
            RawIter::Memory(cursor) => cursor.next().map(Ok),
            RawIter::Failed(error) => error.take().map(Err),
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
