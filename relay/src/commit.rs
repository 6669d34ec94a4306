//! Group commit: the single writer of mailboxes.
//!
//! Connections hand `Send` requests to one task, which takes everything waiting (up to
//! `max_commit_batch` envelopes) and hands the batch to a blocking thread, which checks each
//! request (every recipient known, every mailbox under its envelope and byte quotas and the
//! store under its budget, counting this batch), writes the accepted envelopes in one batch,
//! hands them to the recipients' connections (`Router::push`), flushes once, and only then
//! answers every request of the batch. A request is all or nothing: if one of its envelopes is
//! refused, none is stored.
//!
//! On shutdown the task finishes every request already queued before it exits, so nothing a
//! client sent is left half-committed.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::frames::{EnvelopeId, ErrorCode, OutgoingEnvelope};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::envelope_ids::IdCipher;
use crate::metrics::{Metrics, Rejection};
use crate::router::Router;
use crate::store::{DeviceAddr, EnqueueOutcome, MailboxEntry, Store, StoreError, stored_size};

/// How one `Send` request ended.
#[derive(Debug)]
pub(crate) enum CommitResult {
    /// Every envelope is durable; their ids, in request order.
    Stored(Vec<EnvelopeId>),
    /// Nothing was stored: envelope `index` was refused for `code`.
    Refused {
        /// The error code for the client.
        code: ErrorCode,
        /// Which envelope (0-based).
        index: usize,
    },
    /// Storage failed; nothing is known to be durable.
    Failed,
}

struct Request {
    envelopes: Vec<OutgoingEnvelope>,
    reply: oneshot::Sender<CommitResult>,
}

/// The handle connections use to submit requests.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({} envelopes)", self.envelopes.len())
    }
}

impl Committer {
    /// Queues a request; the receiver yields its result after the batch's flush. `None` if the
    /// commit task has stopped (the relay is shutting down).
    pub(crate) async fn submit(
        &self,
        envelopes: Vec<OutgoingEnvelope>,
    ) -> Option<oneshot::Receiver<CommitResult>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { envelopes, reply }).await.ok()?;
        Some(rx)
    }
}

/// What the commit task needs.
#[derive(Debug)]
pub(crate) struct CommitTask {
    pub(crate) store: Store,
    pub(crate) router: Arc<Router>,
    pub(crate) ids: IdCipher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    /// Envelopes per mailbox.
    pub(crate) quota: usize,
    /// Bytes per mailbox ([`stored_size`]).
    pub(crate) quota_bytes: u64,
    /// Bytes in all mailboxes together.
    pub(crate) disk_budget: u64,
    pub(crate) max_batch: usize,
}

/// What one batch adds to each mailbox and to the store, so far.
#[derive(Debug, Default)]
struct Adding {
    per_mailbox: HashMap<DeviceAddr, (usize, u64)>,
    bytes: u64,
}

impl CommitTask {
    /// Starts the task; it runs until every [`Committer`] is dropped and the queue is empty.
    /// `last_sequence` is the store's [`Store::last_sequence`].
    pub(crate) fn spawn(
        self,
        queue: usize,
        last_sequence: u64,
    ) -> (Committer, tokio::task::JoinHandle<()>) {
        let next_seq = last_sequence.saturating_add(1);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let handle = tokio::spawn(Arc::new(self).run(rx, next_seq));
        (Committer { tx }, handle)
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Request>, mut next_seq: u64) {
        while let Some(first) = rx.recv().await {
            let mut count = first.envelopes.len();
            let mut batch = vec![first];
            while count < self.max_batch {
                match rx.try_recv() {
                    Ok(request) => {
                        count += request.envelopes.len();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            // Every store call of a batch (the checks, the writes, the flush) and the mailbox
            // lock they take run on one blocking thread, never on an async worker: one hop
            // off the runtime per batch.
            let this = self.clone();
            let seq = next_seq;
            let committed = tokio::task::spawn_blocking(move || {
                crate::store::blocking_section(|| this.commit(batch, seq))
            });
            match committed.await {
                Ok(next) => next_seq = next,
                Err(e) => {
                    // The batch's senders see their reply channels dropped: `internal`. Skip
                    // every sequence number the batch could have taken.
                    tracing::error!(error = %e, "the group commit panicked");
                    next_seq = next_seq.saturating_add(count as u64);
                }
            }
        }
    }

    /// Commits one batch on a blocking thread; returns the next free sequence number.
    fn commit(&self, batch: Vec<Request>, mut next_seq: u64) -> u64 {
        let now = self.clock.now();
        let mut adding = Adding::default();
        let mut writes: Vec<(DeviceAddr, MailboxEntry)> = Vec::new();
        let mut results: Vec<(oneshot::Sender<CommitResult>, CommitResult)> =
            Vec::with_capacity(batch.len());
        for request in batch {
            match self.check(&request.envelopes, &adding) {
                Err((code, index, reason)) => {
                    if let Some(reason) = reason {
                        self.metrics.reject(reason);
                    }
                    results.push((request.reply, CommitResult::Refused { code, index }));
                }
                Ok(()) => {
                    let mut ids = Vec::with_capacity(request.envelopes.len());
                    for envelope in request.envelopes {
                        let addr = DeviceAddr {
                            identity: envelope.recipient_identity,
                            device: envelope.recipient_device,
                        };
                        let seq = next_seq;
                        next_seq = next_seq.saturating_add(1);
                        let id = self.ids.id_for(seq);
                        ids.push(id);
                        let size = stored_size(envelope.payload.len());
                        let mailbox = adding.per_mailbox.entry(addr).or_default();
                        mailbox.0 += 1;
                        mailbox.1 = mailbox.1.saturating_add(size);
                        adding.bytes = adding.bytes.saturating_add(size);
                        writes.push((
                            addr,
                            MailboxEntry {
                                seq,
                                id,
                                received_at: now,
                                payload: envelope.payload,
                            },
                        ));
                    }
                    results.push((request.reply, CommitResult::Stored(ids)));
                }
            }
        }

        let stored = writes.len() as u64;
        let durable = self.write(writes);
        if durable {
            Metrics::add(&self.metrics.envelopes_stored, stored);
            Metrics::add(&self.metrics.commits, 1);
        }
        for (reply, result) in results {
            let result = match result {
                CommitResult::Stored(_) if !durable => CommitResult::Failed,
                other => other,
            };
            // A sender that went away no longer needs its answer.
            let _ = reply.send(result);
        }
        next_seq
    }

    /// Checks a request against the store and what this batch already adds: every recipient
    /// known, every mailbox under its envelope and byte quotas, the store under its budget.
    fn check(
        &self,
        envelopes: &[OutgoingEnvelope],
        adding: &Adding,
    ) -> Result<(), (ErrorCode, usize, Option<Rejection>)> {
        let internal = |index, e: StoreError| {
            tracing::error!(error = %e, "reading the store for a commit check failed");
            (ErrorCode::Internal, index, None)
        };
        let stored_bytes = self.store.stats().envelope_bytes;
        let mut mine: HashMap<DeviceAddr, (usize, u64)> = HashMap::new();
        let mut my_bytes = 0u64;
        for (index, envelope) in envelopes.iter().enumerate() {
            let addr = DeviceAddr {
                identity: envelope.recipient_identity,
                device: envelope.recipient_device,
            };
            match self.store.has_device(&addr) {
                Ok(true) => {}
                Ok(false) => {
                    return Err((ErrorCode::NotFound, index, Some(Rejection::UnknownDevice)));
                }
                Err(e) => return Err(internal(index, e)),
            }
            let held = self
                .store
                .mailbox_len(&addr)
                .map_err(|e| internal(index, e))?;
            let held_bytes = self
                .store
                .mailbox_bytes(&addr)
                .map_err(|e| internal(index, e))?;
            let (pending, pending_bytes) =
                adding.per_mailbox.get(&addr).copied().unwrap_or_default();
            let size = stored_size(envelope.payload.len());
            let (count, bytes) = mine.entry(addr).or_default();
            *count += 1;
            *bytes = bytes.saturating_add(size);
            my_bytes = my_bytes.saturating_add(size);
            if held.saturating_add(pending).saturating_add(*count) > self.quota
                || held_bytes
                    .saturating_add(pending_bytes)
                    .saturating_add(*bytes)
                    > self.quota_bytes
            {
                return Err((ErrorCode::MailboxFull, index, Some(Rejection::MailboxFull)));
            }
            if stored_bytes
                .saturating_add(adding.bytes)
                .saturating_add(my_bytes)
                > self.disk_budget
            {
                return Err((ErrorCode::StorageFull, index, Some(Rejection::StorageFull)));
            }
        }
        Ok(())
    }

    /// Writes, hands the written envelopes to their recipients' connections
    /// ([`Router::push`], which wakes them), and flushes; returns whether the batch is
    /// durable. Runs on the commit's blocking thread.
    ///
    /// Delivery does not wait for the flush (SPEC.md, "Delivery"): the fsync is then off the
    /// path from sender to recipient, and nothing can be lost by it, since the senders' `SendAck`s
    /// still wait for it. If the flush fails, or the relay dies before it, the senders get no
    /// `SendAck` and send the same sealed envelopes again, which a recipient that already has
    /// them drops as ratchet duplicates.
    fn write(&self, writes: Vec<(DeviceAddr, MailboxEntry)>) -> bool {
        let Some(last_seq) = writes.last().map(|(_, entry)| entry.seq) else {
            return true;
        };
        // The quota was checked in `check` against the same counts (this task is the only
        // writer), so the store need not check it again.
        let written = (|| {
            let outcomes = self.store.enqueue(&writes, usize::MAX)?;
            if !outcomes.iter().all(|o| *o == EnqueueOutcome::Stored) {
                return Ok(false);
            }
            self.router.push(writes, last_seq);
            self.store.flush_blocking()?;
            Ok::<_, StoreError>(true)
        })();
        match written {
            Ok(true) => true,
            Ok(false) => {
                tracing::error!("store refused envelopes that passed the commit checks");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "writing or flushing envelopes failed");
                false
            }
        }
    }
}
