//! The store thread: one blocking thread, kept for the relay's life, that runs the connections' mailbox reads and
//! acknowledgements, fed by a channel.
//!
//! Each operation handed to a blocking-pool thread of its own costs a thread handoff (a thread
//! woken for it, then the waiting task woken); here the thread takes everything queued at once
//! and runs it in one go, so one wake-up of the thread serves many operations, and the callers
//! are woken as each finishes. The operations run in the order they were queued, so a mailbox
//! read queued after an `Ack` (a reconnect's backlog read, say) sees that acknowledgement
//! applied. Like every store call,
//! they never run on an async worker: a slow disk stalls this thread and the connections
//! waiting on it, not the runtime.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{DeviceAddr, MailboxEntry, Store, StoreError, blocking_section};
use crate::metrics::Metrics;

/// Most operations run per wake-up; the rest wait for the next round.
const MAX_ROUND: usize = 1_024;

/// A mailbox read: see [`Store::pending_through`].
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) addr: DeviceAddr,
    pub(crate) after: Option<u64>,
    pub(crate) through: u64,
    pub(crate) limit: usize,
    pub(crate) now: u64,
    pub(crate) ttl: u64,
}

#[derive(Debug)]
enum Op {
    Ack {
        addr: DeviceAddr,
        seqs: Vec<u64>,
        done: oneshot::Sender<()>,
    },
    Read {
        read: Read,
        reply: oneshot::Sender<Result<Vec<MailboxEntry>, StoreError>>,
    },
}

/// The handle connections queue operations with. Cloning it is cheap; the thread stops once
/// every handle is dropped and the queue is empty.
#[derive(Debug, Clone)]
pub(crate) struct StoreWorker {
    tx: mpsc::Sender<Op>,
}

impl StoreWorker {
    /// Starts the thread (a blocking-pool thread, kept for good) with room for `queue` waiting
    /// operations; the handle finishes once it has run the last one.
    pub(crate) fn spawn(
        store: Store,
        metrics: Arc<Metrics>,
        queue: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel(queue.max(1));
        let thread = tokio::task::spawn_blocking(move || {
            let mut round = Vec::with_capacity(MAX_ROUND);
            while let Some(first) = rx.blocking_recv() {
                round.push(first);
                while round.len() < MAX_ROUND {
                    match rx.try_recv() {
                        Ok(op) => round.push(op),
                        Err(_) => break,
                    }
                }
                blocking_section(|| {
                    for op in round.drain(..) {
                        run(&store, &metrics, op);
                    }
                });
            }
        });
        (Self { tx }, thread)
    }

    /// Deletes acknowledged envelopes (and counts them) on the store thread; returns once
    /// they are deleted, `false` if the thread has stopped (the relay is shutting down).
    pub(crate) async fn ack(&self, addr: DeviceAddr, seqs: Vec<u64>) -> bool {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Op::Ack { addr, seqs, done }).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// Reads a page of a mailbox, after every operation queued before it.
    pub(crate) async fn read(&self, read: Read) -> Result<Vec<MailboxEntry>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Task("the store thread has stopped".into());
        self.tx
            .send(Op::Read { read, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn run(store: &Store, metrics: &Metrics, op: Op) {
    match op {
        Op::Ack { addr, seqs, done } => {
            match store.ack(&addr, &seqs) {
                Ok(n) => Metrics::add(&metrics.envelopes_acked, n as u64),
                Err(e) => tracing::error!(error = %e, "deleting acknowledged envelopes failed"),
            }
            let _ = done.send(());
        }
        Op::Read { read, reply } => {
            let page = store.pending_through(
                &read.addr,
                read.after,
                read.through,
                read.limit,
                read.now,
                read.ttl,
            );
            // A connection that went away no longer needs its page.
            let _ = reply.send(page);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::frames::EnvelopeId;
    use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::store::MemoryStore;

    const NOW: u64 = 1_750_000_000;

    /// A store holding envelopes 1, 2 and 3 for one device, and that device.
    fn store_with_mail(store: &Store) -> DeviceAddr {
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        let identity = IdentityKeyPair::generate(&mut rng);
        let keys = DeviceKeyPair::generate(DeviceId::new(1).unwrap(), &mut rng);
        let device = LocalDevice::new(&identity, keys, NOW);
        store.put_device(&device.cert).unwrap();
        let addr = DeviceAddr {
            identity: device.cert.identity(),
            device: device.cert.device_id(),
        };
        let items: Vec<_> = (1..=3u64)
            .map(|seq| {
                let entry = MailboxEntry {
                    seq,
                    id: EnvelopeId::from_bytes([seq as u8; 16]),
                    received_at: NOW,
                    payload: vec![seq as u8; 10],
                };
                (addr, entry)
            })
            .collect();
        store.enqueue(&items, 100).unwrap();
        addr
    }

    fn read_all(addr: DeviceAddr) -> Read {
        Read {
            addr,
            after: None,
            through: u64::MAX,
            limit: 10,
            now: NOW,
            ttl: 3600,
        }
    }

    /// Operations run in queue order: a read queued after an `Ack` sees it applied, and the
    /// acknowledged envelopes are counted. The thread stops when the last handle goes.
    #[test]
    fn a_read_sees_every_ack_queued_before_it() {
        let store = Store::Memory(MemoryStore::new());
        let addr = store_with_mail(&store);
        let metrics = Arc::new(Metrics::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (worker, finished) = StoreWorker::spawn(store.clone(), metrics.clone(), 8);
            assert!(worker.ack(addr, vec![1, 3]).await);
            let page = worker.read(read_all(addr)).await.unwrap();
            assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
            drop(worker);
            finished.await.unwrap();
        });
        assert_eq!(Metrics::get(&metrics.envelopes_acked), 2);
        assert_eq!(store.mailbox_len(&addr).unwrap(), 1);
    }

    /// A stalled store (a slow disk) stalls the store thread and those waiting for it, not the
    /// async workers: other tasks go on meanwhile.
    #[test]
    fn a_stalled_store_stalls_only_those_waiting_for_it() {
        let memory = MemoryStore::new();
        let store = Store::Memory(memory.clone());
        let addr = store_with_mail(&store);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let stall = memory.stall();
        runtime.block_on(async move {
            let (worker, _thread) =
                StoreWorker::spawn(store.clone(), Arc::new(Metrics::default()), 8);
            let reader = tokio::spawn({
                let worker = worker.clone();
                async move { worker.read(read_all(addr)).await }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            let acker = tokio::spawn({
                let worker = worker.clone();
                async move { worker.ack(addr, vec![1]).await }
            });
            // The read and the ack wait on the stalled thread ...
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(!reader.is_finished() && !acker.is_finished());
            // ... while the one async worker still runs other tasks.
            assert_eq!(tokio::spawn(async { 7 }).await.unwrap(), 7);
            drop(stall);
            let page = reader.await.unwrap().unwrap();
            assert_eq!(page.len(), 3, "the read was queued before the ack");
            assert!(acker.await.unwrap());
            let page = worker.read(read_all(addr)).await.unwrap();
            assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        });
    }
}
