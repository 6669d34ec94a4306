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
//!
//! ("Group commit" is the database technique: one flush for many writers. Groups of devices,
//! SPEC.md 10.10, are something else; this module handles their requests too, as **group
//! jobs**.) `OpenGroup`, `PostGroup` and `LeaveGroup` go through the same task, which makes it
//! the only writer of groups: a job reads its group (as this batch left it), decides, and
//! writes it back, so the epoch's compare-and-swap needs no lock, and two commits for one
//! epoch, from any connections, cannot both win. A post's group deliveries are envelopes like
//! any other: written in the batch, handed to the recipients' connections, flushed once, and
//! only then is the poster answered `GroupPosted`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use protocol::codec::Encode;
use protocol::frames::{
    EnvelopeId, ErrorCode, GroupId, GroupPost, OutgoingEnvelope, PostBody, PostKey, PostKind,
    Subscription,
};
use protocol::group_delivery::GroupDelivery;
use tokio::sync::{mpsc, oneshot};

use crate::admission::TokenGate;
use crate::clock::Clock;
use crate::envelope_ids::IdCipher;
use crate::metrics::{Metrics, Rejection};
use crate::router::Router;
use crate::store::{
    DeviceAddr, EnqueueOutcome, Group, MAX_GROUP_SUBSCRIBERS, MailboxEntry, Store, StoreError,
    stored_size,
};

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

/// A group request (SPEC.md 10.10), decided by the commit task.
#[derive(Debug)]
pub(crate) enum GroupJob {
    /// `OpenGroup`.
    Open {
        /// The new group.
        group_id: GroupId,
        /// Its epoch.
        epoch: u64,
        /// The epoch's post key.
        post_key: PostKey,
        /// Its first subscribers.
        subscribe: Vec<Subscription>,
    },
    /// `PostGroup`.
    Post(GroupPost),
    /// `LeaveGroup` by the authenticated `device`.
    Leave {
        /// The group.
        group_id: GroupId,
        /// The device leaving.
        device: DeviceAddr,
    },
}

/// How a group job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupResult {
    /// Durable: the post's (or the opening's, 0) seq and the group's epoch after it.
    Posted {
        /// The post's number.
        seq: u64,
        /// The group's epoch now.
        epoch: u64,
    },
    /// `LeaveGroup` done (durable).
    Left,
    /// Nothing changed.
    Refused {
        /// The error code for the client.
        code: ErrorCode,
        /// For humans.
        message: &'static str,
    },
    /// Storage failed; nothing is known to be durable.
    Failed,
}

enum Request {
    Send {
        envelopes: Vec<OutgoingEnvelope>,
        reply: oneshot::Sender<CommitResult>,
    },
    Group {
        /// Boxed: a post is large, and a queue of `Send`s need not pay for it.
        job: Box<GroupJob>,
        reply: oneshot::Sender<GroupResult>,
    },
}

impl Request {
    /// What the request counts as against `max_commit_batch`: its envelopes, or one.
    fn weight(&self) -> usize {
        match self {
            Self::Send { envelopes, .. } => envelopes.len(),
            Self::Group { .. } => 1,
        }
    }

    /// The most sequence numbers it can take.
    fn max_sequences(&self) -> usize {
        match self {
            Self::Send { envelopes, .. } => envelopes.len(),
            Self::Group { .. } => MAX_GROUP_SUBSCRIBERS,
        }
    }
}

/// The handle connections use to submit requests.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send { envelopes, .. } => write!(f, "Request({} envelopes)", envelopes.len()),
            Self::Group { job, .. } => write!(f, "Request({job:?})"),
        }
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
        self.tx
            .send(Request::Send { envelopes, reply })
            .await
            .ok()?;
        Some(rx)
    }

    /// Queues a group job; the receiver yields its result after the batch's flush. `None` if
    /// the commit task has stopped.
    pub(crate) async fn submit_group(
        &self,
        job: GroupJob,
    ) -> Option<oneshot::Receiver<GroupResult>> {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(job);
        self.tx.send(Request::Group { job, reply }).await.ok()?;
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
    /// Admission of group subscriptions (SPEC.md 10.9 rules, one envelope each).
    pub(crate) tokens: Arc<TokenGate>,
}

/// What one batch adds to each mailbox and to the store, so far, and the groups it changed.
#[derive(Debug, Default)]
struct Adding {
    per_mailbox: HashMap<DeviceAddr, (usize, u64)>,
    bytes: u64,
    /// Groups as this batch leaves them (`None`: deleted), written after the envelopes.
    groups: HashMap<GroupId, Option<Group>>,
}

/// A group job's refusal.
fn refused(code: ErrorCode, message: &'static str) -> GroupResult {
    GroupResult::Refused { code, message }
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
            let mut count = first.weight();
            let mut sequences = first.max_sequences();
            let mut batch = vec![first];
            while count < self.max_batch {
                match rx.try_recv() {
                    Ok(request) => {
                        count += request.weight();
                        sequences += request.max_sequences();
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
                    next_seq = next_seq.saturating_add(sequences as u64);
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
        let mut group_results: Vec<(oneshot::Sender<GroupResult>, GroupResult)> = Vec::new();
        for request in batch {
            let (envelopes, reply) = match request {
                Request::Send { envelopes, reply } => (envelopes, reply),
                Request::Group { job, reply } => {
                    let result = self.group_job(*job, now, &mut adding, &mut writes, &mut next_seq);
                    group_results.push((reply, result));
                    continue;
                }
            };
            match self.check(&envelopes, &adding) {
                Err((code, index, reason)) => {
                    if let Some(reason) = reason {
                        self.metrics.reject(reason);
                    }
                    results.push((reply, CommitResult::Refused { code, index }));
                }
                Ok(()) => {
                    let mut ids = Vec::with_capacity(envelopes.len());
                    for envelope in envelopes {
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
                    results.push((reply, CommitResult::Stored(ids)));
                }
            }
        }

        let stored = writes.len() as u64;
        let durable = self.write(writes, adding.groups);
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
        for (reply, result) in group_results {
            let result = match result {
                GroupResult::Posted { .. } | GroupResult::Left if !durable => GroupResult::Failed,
                other => other,
            };
            let _ = reply.send(result);
        }
        next_seq
    }

    /// The group as this batch left it, or as stored.
    fn load_group(&self, adding: &Adding, id: &GroupId) -> Result<Option<Group>, StoreError> {
        match adding.groups.get(id) {
            Some(group) => Ok(group.clone()),
            None => self.store.group(id),
        }
    }

    /// Decides one group job against the store and this batch so far; an accepted post adds
    /// its deliveries to `writes` and the group's new state to `adding`.
    fn group_job(
        &self,
        job: GroupJob,
        now: u64,
        adding: &mut Adding,
        writes: &mut Vec<(DeviceAddr, MailboxEntry)>,
        next_seq: &mut u64,
    ) -> GroupResult {
        let result = match job {
            GroupJob::Open {
                group_id,
                epoch,
                post_key,
                subscribe,
            } => self.open_group(group_id, epoch, post_key, &subscribe, now, adding),
            GroupJob::Post(post) => self.post(post, now, adding, writes, next_seq),
            GroupJob::Leave { group_id, device } => match self.load_group(adding, &group_id) {
                Ok(Some(mut group)) => {
                    group.subscribers.remove(&device);
                    let after = (!group.subscribers.is_empty()).then_some(group);
                    adding.groups.insert(group_id, after);
                    Ok(GroupResult::Left)
                }
                Ok(None) => Ok(refused(ErrorCode::NotFound, "unknown group")),
                Err(e) => Err(e),
            },
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading the store for a group job failed");
            refused(ErrorCode::Internal, "relay storage failed")
        })
    }

    /// The devices of `subscribe` that are admitted (SPEC.md 10.10: like one `Deposit`
    /// envelope each; a revoked token drops its subscription silently), or the refusal.
    fn admit_subscriptions(
        &self,
        subscribe: &[Subscription],
    ) -> Result<Result<Vec<DeviceAddr>, GroupResult>, StoreError> {
        let tokens: Vec<_> = subscribe.iter().map(|s| s.token.clone()).collect();
        let plan = match self.tokens.admit_recipients(
            subscribe.iter().map(|s| s.device.identity),
            &tokens,
            Instant::now(),
        ) {
            Ok(plan) => plan,
            Err(refusal) => {
                self.metrics.reject(refusal.rejection);
                let message = match refusal.code {
                    ErrorCode::TokenRequired => "a subscription needs a delivery token",
                    _ => "too many subscriptions from strangers",
                };
                return Ok(Err(refused(refusal.code, message)));
            }
        };
        let mut devices = Vec::with_capacity(subscribe.len());
        for (index, subscription) in subscribe.iter().enumerate() {
            if plan.is_dropped(index) {
                continue;
            }
            let addr = DeviceAddr {
                identity: subscription.device.identity,
                device: subscription.device.device_id,
            };
            if !self.store.has_device(&addr)? {
                self.metrics.reject(Rejection::UnknownDevice);
                return Ok(Err(refused(
                    ErrorCode::NotFound,
                    "a subscribed device is unknown here",
                )));
            }
            devices.push(addr);
        }
        Ok(Ok(devices))
    }

    fn open_group(
        &self,
        group_id: GroupId,
        epoch: u64,
        post_key: PostKey,
        subscribe: &[Subscription],
        now: u64,
        adding: &mut Adding,
    ) -> Result<GroupResult, StoreError> {
        if self.load_group(adding, &group_id)?.is_some() {
            return Ok(refused(ErrorCode::GroupExists, "the group exists"));
        }
        let subscribers: BTreeSet<DeviceAddr> = match self.admit_subscriptions(subscribe)? {
            Ok(devices) => devices.into_iter().collect(),
            Err(refusal) => return Ok(refusal),
        };
        if subscribers.len() > MAX_GROUP_SUBSCRIBERS {
            return Ok(refused(ErrorCode::GroupFull, "too many subscribers"));
        }
        let group = Group {
            epoch,
            post_key,
            previous_key: None,
            next_seq: 1,
            last_post: now,
            subscribers,
        };
        adding.groups.insert(group_id, Some(group));
        Ok(GroupResult::Posted { seq: 0, epoch })
    }

    /// A `PostGroup`, checked in the order of SPEC.md 10.10.
    fn post(
        &self,
        post: GroupPost,
        now: u64,
        adding: &mut Adding,
        writes: &mut Vec<(DeviceAddr, MailboxEntry)>,
        next_seq: &mut u64,
    ) -> Result<GroupResult, StoreError> {
        let Some(mut group) = self.load_group(adding, &post.group_id)? else {
            return Ok(refused(ErrorCode::NotFound, "unknown group"));
        };
        let kind = post.body.kind();
        let Some(key) = group.key_for(post.epoch, kind != PostKind::Commit) else {
            return Ok(refused(
                ErrorCode::StaleEpoch,
                "the group does not accept posts for this epoch",
            ));
        };
        if post.verify(key).is_err() {
            return Ok(refused(
                ErrorCode::BadSignature,
                "the post's signature does not verify under the epoch's post key",
            ));
        }
        let mut after = group.subscribers.clone();
        let recipients: BTreeSet<DeviceAddr> = match &post.body {
            PostBody::Application => group.subscribers.clone(),
            PostBody::Commit {
                subscribe,
                unsubscribe,
                ..
            } => {
                let added = match self.admit_subscriptions(subscribe)? {
                    Ok(devices) => devices,
                    Err(refusal) => return Ok(refusal),
                };
                for device in unsubscribe {
                    after.remove(&DeviceAddr {
                        identity: device.identity,
                        device: device.device_id,
                    });
                }
                after.extend(added);
                if after.len() > MAX_GROUP_SUBSCRIBERS {
                    return Ok(refused(ErrorCode::GroupFull, "too many subscribers"));
                }
                group.subscribers.clone()
            }
            PostBody::Direct { recipients } => {
                let mut chosen = BTreeSet::new();
                for device in recipients {
                    let addr = DeviceAddr {
                        identity: device.identity,
                        device: device.device_id,
                    };
                    if !group.subscribers.contains(&addr) {
                        return Ok(refused(
                            ErrorCode::NotFound,
                            "a recipient is not subscribed to the group",
                        ));
                    }
                    chosen.insert(addr);
                }
                chosen
            }
        };
        let Some(new_epoch) = (match &post.body {
            PostBody::Commit { .. } => group.epoch.checked_add(1),
            _ => Some(group.epoch),
        }) else {
            return Ok(refused(
                ErrorCode::StaleEpoch,
                "the group's epochs are used up",
            ));
        };

        let seq = group.next_seq;
        let delivery = GroupDelivery {
            group_id: post.group_id,
            seq,
            epoch: post.epoch,
            kind,
            payload: post.payload,
        }
        .to_bytes();
        let size = stored_size(delivery.len());
        // Recipients whose mailbox is full are skipped; the relay's budget refuses the post.
        let stored_bytes = self.store.stats().envelope_bytes;
        let mut taking = Vec::with_capacity(recipients.len());
        let mut skipped = 0u64;
        for addr in recipients {
            let held = self.store.mailbox_len(&addr)?;
            let held_bytes = self.store.mailbox_bytes(&addr)?;
            let (pending, pending_bytes) =
                adding.per_mailbox.get(&addr).copied().unwrap_or_default();
            if held.saturating_add(pending).saturating_add(1) > self.quota
                || held_bytes
                    .saturating_add(pending_bytes)
                    .saturating_add(size)
                    > self.quota_bytes
            {
                skipped += 1;
                continue;
            }
            taking.push(addr);
        }
        let total = size.saturating_mul(taking.len() as u64);
        if stored_bytes
            .saturating_add(adding.bytes)
            .saturating_add(total)
            > self.disk_budget
        {
            self.metrics.reject(Rejection::StorageFull);
            return Ok(refused(
                ErrorCode::StorageFull,
                "the relay's storage is full",
            ));
        }
        for addr in taking {
            let entry_seq = *next_seq;
            *next_seq = next_seq.saturating_add(1);
            let mailbox = adding.per_mailbox.entry(addr).or_default();
            mailbox.0 += 1;
            mailbox.1 = mailbox.1.saturating_add(size);
            adding.bytes = adding.bytes.saturating_add(size);
            writes.push((
                addr,
                MailboxEntry {
                    seq: entry_seq,
                    id: self.ids.id_for(entry_seq),
                    received_at: now,
                    payload: delivery.clone(),
                },
            ));
            Metrics::add(&self.metrics.group_deliveries, 1);
        }
        if skipped > 0 {
            Metrics::add(&self.metrics.group_skipped_full, skipped);
        }
        if let PostBody::Commit { next_post_key, .. } = &post.body {
            group.previous_key = Some(group.post_key);
            group.post_key = *next_post_key;
            group.subscribers = after;
        }
        group.epoch = new_epoch;
        group.next_seq = seq.saturating_add(1);
        group.last_post = now;
        adding.groups.insert(post.group_id, Some(group));
        let counter = match kind {
            PostKind::Application => 0,
            PostKind::Commit => 1,
            PostKind::Direct => 2,
        };
        if let Some(counter) = self.metrics.group_posts.get(counter) {
            Metrics::add(counter, 1);
        }
        Ok(GroupResult::Posted {
            seq,
            epoch: new_epoch,
        })
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
    ///
    /// The groups the batch changed are written after its envelopes and before the flush: a
    /// post's deliveries are never lost behind a group that moved on without them.
    fn write(
        &self,
        writes: Vec<(DeviceAddr, MailboxEntry)>,
        groups: HashMap<GroupId, Option<Group>>,
    ) -> bool {
        let last_seq = writes.last().map(|(_, entry)| entry.seq);
        if last_seq.is_none() && groups.is_empty() {
            return true;
        }
        // The quota was checked in `check` against the same counts (this task is the only
        // writer), so the store need not check it again.
        let written = (|| {
            if !writes.is_empty() {
                let outcomes = self.store.enqueue(&writes, usize::MAX)?;
                if !outcomes.iter().all(|o| *o == EnqueueOutcome::Stored) {
                    return Ok(false);
                }
            }
            for (id, group) in &groups {
                match group {
                    Some(group) => self.store.put_group(id, group)?,
                    None => {
                        self.store.delete_group(id)?;
                    }
                }
            }
            if let Some(last_seq) = last_seq {
                self.router.push(writes, last_seq);
            }
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
