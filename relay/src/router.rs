//! Which device is connected where: one live connection per device, so new mail can wake it
//! and a second connection of the same device can replace the first. The router also carries
//! freshly committed envelopes to their recipients' connections (the live queue), so a
//! connected device is served from memory instead of reading back what was just written.
//!
//! How the live queue and the store divide the work, per connection: the group commit hands
//! every written batch to [`Router::push`] (after the writes, before the flush), which queues
//! each envelope for its recipient's connection, if it has one, and then records the batch's
//! last sequence number as `pushed_through`, all under the router lock. A connection that
//! registers under the same lock reads `pushed_through` as its `backlog_until`: every
//! envelope numbered up to it was completely written before, so it reads those from the store
//! (the backlog); every envelope numbered above it comes through its live queue. The two sets
//! are disjoint and together hold every envelope written for the device, in sequence order.
//! A queue that would pass its bounds (per connection, and all queues together) is emptied
//! and marked overflowed instead; its connection then takes a new `backlog_until`
//! ([`Router::resync`]) and reads the store again, so memory stays bounded whatever the
//! recipients do.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{DeviceAddr, MailboxEntry, stored_size};

/// Most envelopes one connection's live queue holds.
const LIVE_QUEUE_ENVELOPES: usize = 1_024;
/// Most bytes ([`stored_size`]) one connection's live queue holds.
const LIVE_QUEUE_BYTES: u64 = 512 * 1024;
/// Most bytes all live queues hold together.
const LIVE_TOTAL_BYTES: usize = 64 * 1024 * 1024;

/// One connection's queue of envelopes committed after its `backlog_until`.
#[derive(Debug, Default)]
pub(crate) struct LiveQueue {
    entries: VecDeque<MailboxEntry>,
    bytes: u64,
    /// Envelopes were dropped: the connection must read the store again ([`Router::resync`]).
    overflowed: bool,
}

/// What [`Router::take`] found in a live queue.
#[derive(Debug)]
pub(crate) enum Live {
    /// Envelopes in sequence order, at most the number asked for; `more` if some are left.
    Entries {
        entries: Vec<MailboxEntry>,
        more: bool,
    },
    /// The queue overflowed: envelopes were dropped and must be read from the store.
    Overflowed,
}

#[derive(Debug)]
struct Entry {
    conn_id: u64,
    wake: Arc<Notify>,
    kick: CancellationToken,
    live: Arc<Mutex<LiveQueue>>,
}

#[derive(Debug, Default)]
struct Map {
    connections: HashMap<DeviceAddr, Entry>,
    /// The last sequence number of the last batch handed to [`Router::push`].
    pushed_through: u64,
}

/// The device -> connection map.
#[derive(Debug)]
pub(crate) struct Router {
    live: Mutex<Map>,
    next_conn: AtomicU64,
    /// Bytes in all live queues.
    queued_bytes: AtomicUsize,
}

/// A connection's place in the router.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) conn_id: u64,
    /// Notified when new mail for the device is written (before its flush: SPEC.md, "Send and
    /// group commit").
    pub(crate) wake: Arc<Notify>,
    /// Cancelled when another connection of the same device replaces this one.
    pub(crate) kick: CancellationToken,
    /// Envelopes numbered up to this are read from the store; those above it come through
    /// the live queue (module documentation).
    pub(crate) backlog_until: u64,
    live: Arc<Mutex<LiveQueue>>,
}

impl Registration {
    /// A registration in no router: an anonymous session's, never woken, replaced or fed.
    pub(crate) fn detached() -> Self {
        Self {
            conn_id: u64::MAX,
            wake: Arc::new(Notify::new()),
            kick: CancellationToken::new(),
            backlog_until: 0,
            live: Arc::new(Mutex::new(LiveQueue::default())),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Router {
    /// A router whose first [`Self::push`] will be of sequence numbers above `last_sequence`
    /// (the store's [`crate::store::Store::last_sequence`]).
    pub(crate) fn new(last_sequence: u64) -> Self {
        Self {
            live: Mutex::new(Map {
                connections: HashMap::new(),
                pushed_through: last_sequence,
            }),
            next_conn: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
        }
    }

    /// Empties a queue (its connection is gone or must read the store), releasing its bytes.
    fn discard(&self, queue: &mut LiveQueue) {
        queue.entries.clear();
        self.release(queue.bytes);
        queue.bytes = 0;
    }

    fn release(&self, bytes: u64) {
        self.queued_bytes.fetch_sub(
            usize::try_from(bytes).unwrap_or(usize::MAX),
            Ordering::Relaxed,
        );
    }

    /// Registers a connection for `addr`, replacing (and kicking) any earlier one.
    pub(crate) fn register(&self, addr: DeviceAddr) -> Registration {
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let kick = CancellationToken::new();
        let live = Arc::new(Mutex::new(LiveQueue::default()));
        let entry = Entry {
            conn_id,
            wake: wake.clone(),
            kick: kick.clone(),
            live: live.clone(),
        };
        let backlog_until = {
            let mut map = lock(&self.live);
            if let Some(old) = map.connections.insert(addr, entry) {
                old.kick.cancel();
                let mut queue = lock(&old.live);
                self.discard(&mut queue);
                queue.overflowed = true;
            }
            map.pushed_through
        };
        // Mail may have arrived before this connection registered: look once at start.
        wake.notify_one();
        Registration {
            conn_id,
            wake,
            kick,
            backlog_until,
            live,
        }
    }

    /// Removes `addr`'s entry if it still belongs to `conn_id`.
    pub(crate) fn unregister(&self, addr: &DeviceAddr, conn_id: u64) {
        let mut map = lock(&self.live);
        if map
            .connections
            .get(addr)
            .is_some_and(|e| e.conn_id == conn_id)
            && let Some(old) = map.connections.remove(addr)
        {
            let mut queue = lock(&old.live);
            self.discard(&mut queue);
            queue.overflowed = true;
        }
    }

    /// Hands a written batch to the connected recipients (in the batch's order, which is
    /// sequence order) and wakes them; `last_seq` is the batch's last sequence number.
    /// Envelopes of devices that are not connected are dropped: they are in the store.
    pub(crate) fn push(&self, batch: Vec<(DeviceAddr, MailboxEntry)>, last_seq: u64) {
        let mut woken: Vec<Arc<Notify>> = Vec::new();
        let mut map = lock(&self.live);
        for (addr, entry) in batch {
            let Some(connection) = map.connections.get(&addr) else {
                continue;
            };
            let mut queue = lock(&connection.live);
            if queue.overflowed {
                continue;
            }
            let size = stored_size(entry.payload.len());
            let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
            let fits = queue.entries.len() < LIVE_QUEUE_ENVELOPES
                && queue.bytes.saturating_add(size) <= LIVE_QUEUE_BYTES
                && self
                    .queued_bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                        total
                            .checked_add(size_usize)
                            .filter(|&t| t <= LIVE_TOTAL_BYTES)
                    })
                    .is_ok();
            if fits {
                queue.entries.push_back(entry);
                queue.bytes = queue.bytes.saturating_add(size);
            } else {
                self.discard(&mut queue);
                queue.overflowed = true;
            }
            if woken
                .last()
                .is_none_or(|w| !Arc::ptr_eq(w, &connection.wake))
            {
                woken.push(connection.wake.clone());
            }
        }
        map.pushed_through = map.pushed_through.max(last_seq);
        drop(map);
        for wake in woken {
            wake.notify_one();
        }
    }

    /// Takes up to `limit` envelopes from `registration`'s live queue.
    pub(crate) fn take(&self, registration: &Registration, limit: usize) -> Live {
        let mut queue = lock(&registration.live);
        if queue.overflowed {
            return Live::Overflowed;
        }
        let n = limit.min(queue.entries.len());
        let entries: Vec<MailboxEntry> = queue.entries.drain(..n).collect();
        let bytes = entries
            .iter()
            .map(|e| stored_size(e.payload.len()))
            .fold(0u64, u64::saturating_add);
        queue.bytes = queue.bytes.saturating_sub(bytes);
        self.release(bytes);
        Live::Entries {
            entries,
            more: !queue.entries.is_empty(),
        }
    }

    /// After [`Live::Overflowed`]: empties the queue and returns the new `backlog_until`, up
    /// to which the connection reads the store before taking from its queue again. A
    /// connection that was replaced stays overflowed (it is being closed).
    pub(crate) fn resync(&self, registration: &mut Registration, addr: &DeviceAddr) -> u64 {
        let map = lock(&self.live);
        let mut queue = lock(&registration.live);
        self.discard(&mut queue);
        if map
            .connections
            .get(addr)
            .is_some_and(|e| e.conn_id == registration.conn_id)
        {
            queue.overflowed = false;
        }
        registration.backlog_until = map.pushed_through;
        map.pushed_through
    }

    /// Bytes in all live queues (tests).
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use protocol::frames::EnvelopeId;
    use protocol::identity::{DeviceId, IdentityKeyPair};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn addr(seed: u8) -> DeviceAddr {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        DeviceAddr {
            identity: IdentityKeyPair::generate(&mut rng).public_key(),
            device: DeviceId::new(1).unwrap(),
        }
    }

    fn entry(seq: u64) -> MailboxEntry {
        MailboxEntry {
            seq,
            id: EnvelopeId::from_bytes([seq as u8; 16]),
            received_at: 1_700_000_000,
            payload: vec![7; 100],
        }
    }

    fn seqs(live: Live) -> (Vec<u64>, bool) {
        match live {
            Live::Entries { entries, more } => (entries.iter().map(|e| e.seq).collect(), more),
            Live::Overflowed => panic!("overflowed"),
        }
    }

    /// A connection reads the store up to what was pushed before it registered and takes the
    /// rest from its queue, in order; devices without a connection get nothing queued.
    #[test]
    fn the_backlog_ends_where_the_live_queue_starts() {
        let (bob, carol) = (addr(1), addr(2));
        let router = Router::new(10);
        router.push(vec![(bob, entry(11)), (carol, entry(12))], 12);
        let registration = router.register(bob);
        assert_eq!(registration.backlog_until, 12);
        router.push(
            vec![(bob, entry(13)), (carol, entry(14)), (bob, entry(15))],
            15,
        );
        assert_eq!(seqs(router.take(&registration, 1)), (vec![13], true));
        assert_eq!(seqs(router.take(&registration, 10)), (vec![15], false));
        assert_eq!(router.queued_bytes(), 0);
        // Carol, connecting now, reads everything from the store.
        assert_eq!(router.register(carol).backlog_until, 15);
    }

    /// A full queue is emptied and marked; after a resync the connection reads the store up to
    /// the last push and the queue takes new envelopes again.
    #[test]
    fn an_overflowing_queue_sends_its_connection_back_to_the_store() {
        let bob = addr(1);
        let router = Router::new(0);
        let mut registration = router.register(bob);
        let batch: Vec<_> = (1..=LIVE_QUEUE_ENVELOPES as u64 + 1)
            .map(|seq| (bob, entry(seq)))
            .collect();
        router.push(batch, LIVE_QUEUE_ENVELOPES as u64 + 1);
        assert!(matches!(router.take(&registration, 10), Live::Overflowed));
        assert_eq!(router.queued_bytes(), 0);
        // Still overflowed until the connection resyncs: later pushes are not queued.
        router.push(vec![(bob, entry(2000))], 2000);
        assert!(matches!(router.take(&registration, 10), Live::Overflowed));
        assert_eq!(router.resync(&mut registration, &bob), 2000);
        assert_eq!(registration.backlog_until, 2000);
        router.push(vec![(bob, entry(2001))], 2001);
        assert_eq!(seqs(router.take(&registration, 10)), (vec![2001], false));
    }

    /// Queued bytes are released when a connection goes or is replaced, and a replaced
    /// connection gets nothing more.
    #[test]
    fn a_replaced_or_closed_connection_releases_its_queue() {
        let bob = addr(1);
        let router = Router::new(0);
        let mut first = router.register(bob);
        router.push(vec![(bob, entry(1))], 1);
        assert!(router.queued_bytes() > 0);
        let second = router.register(bob);
        assert!(first.kick.is_cancelled());
        assert_eq!(router.queued_bytes(), 0);
        assert!(matches!(router.take(&first, 10), Live::Overflowed));
        router.resync(&mut first, &bob);
        assert!(matches!(router.take(&first, 10), Live::Overflowed));
        router.push(vec![(bob, entry(2))], 2);
        assert_eq!(seqs(router.take(&second, 10)), (vec![2], false));
        router.push(vec![(bob, entry(3))], 3);
        router.unregister(&bob, first.conn_id);
        assert!(router.queued_bytes() > 0, "only the owner unregisters");
        router.unregister(&bob, second.conn_id);
        assert_eq!(router.queued_bytes(), 0);
    }
}
