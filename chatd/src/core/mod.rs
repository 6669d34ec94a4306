//! The core: the one task that owns the account's secrets and the store, driven by a loop over
//! a closed set of inputs ([`Input`]).
//!
//! Work arrives as jobs (closures from the RPC methods), relay events and results of background
//! requests. The loop handles a round of inputs, commits each one's writes to the store as it
//! goes, runs the outbox pump, then flushes the store once (group commit) and only then lets the
//! round's effects out: RPC replies, events, frames to the relay (sends and acks). So nothing
//! leaves the daemon before the state it depends on is durable: a message is in the outbox before
//! `messages.send` answers, a received message is stored before it is acked or announced, and a
//! ratchet step is saved before its ciphertext goes out.
//!
//! State: [`Lock`] is no account -> locked -> unlocked; [`unlocked::Unlocked`] holds the keys,
//! the caches and the relay link, and dropping it (lock) zeroizes the secrets and stops the link.

pub mod account;
pub mod account_admin;
pub mod contacts;
// The group engine is tested on its own and reached by the daemon's methods once groups.* land
// (issue #17); until then the library build does not call it.
#[allow(dead_code)]
pub mod groups;
pub mod messaging;
pub mod reach;
pub mod records;
pub mod requests;
pub mod unlocked;

pub mod alias;
pub mod key_change;
pub mod resolve;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use api::events::{Event, EventKind};
use api::types::{ConnectionState, LockState};
use protocol::frames::ClientFrame;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, ApiResult};
use crate::events::EventBus;
use crate::relay_link::LinkEvent;
use crate::store::{Kv, Store, StoreError};
use unlocked::Unlocked;

/// Most inputs handled in one round before the store is flushed. A round's work (its batch,
/// sled's copies of the leaves it changes, its events) is live until the flush, so this bounds
/// the peak: with 512, a recipient catching up on a burst peaked at 36-39 MiB and kept 27-34
/// MiB after it; with 256, 29-30 MiB and 25-26 MiB, at the same throughput
/// (chatd/BENCHMARKS.md).
const MAX_ROUND: usize = 256;
/// After a failed round, the relay link is started again after this long (so the relay
/// redelivers what the round did not acknowledge), doubling with each failed round in a row
/// up to eight times as long.
const REDELIVER_MIN: Duration = Duration::from_secs(1);
/// How often the core wakes up without input (retries, prekey rotation).
const TICK: Duration = Duration::from_millis(500);
/// How long after its last write the core counts as quiet, and hands the memory freed since
/// back to the system ([`crate::memory::release_free_memory`]).
const QUIET: Duration = Duration::from_secs(2);

/// A unit of work for the core, run with exclusive access to its state.
pub type Job = Box<dyn FnOnce(&mut CoreState, &mut Txn) + Send>;

/// What the core loop reacts to.
pub enum Input {
    /// An RPC method's work.
    Job(Job),
    /// Something from the relay link of unlock generation `generation`.
    Link(u64, LinkEvent),
    /// Something from the anonymous link to another relay (its relay binding) of unlock
    /// generation `generation`.
    Foreign(u64, String, LinkEvent),
    /// Something from the authenticated link to a relay the account moved away from (its
    /// relay binding), drained until quiet.
    Draining(u64, String, LinkEvent),
    /// A background task finished; its continuation runs like a job if `generation` is current.
    Continue(u64, Job),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Job(_) => f.write_str("Job"),
            Input::Link(generation, event) => write!(f, "Link({generation}, {event:?})"),
            Input::Foreign(generation, url, event) => {
                write!(f, "Foreign({generation}, {url}, {event:?})")
            }
            Input::Draining(generation, url, event) => {
                write!(f, "Draining({generation}, {url}, {event:?})")
            }
            Input::Continue(generation, _) => write!(f, "Continue({generation})"),
        }
    }
}

/// The effects of one round, released after the store is flushed.
#[derive(Default)]
pub struct Txn {
    effects: Vec<Effect>,
    events: Vec<Event>,
    frames: Vec<ClientFrame>,
    dirty: bool,
    /// Why the round cannot be committed, once something in it failed to read or write the
    /// store: its state in memory may be ahead of the store.
    failure: Option<String>,
}

/// Something released at the end of a round, in order.
enum Effect {
    /// Runs only if the round is durable.
    Run(Box<dyn FnOnce() + Send>),
    /// An RPC answer: given `None` if the round is durable, or the error that replaces the
    /// answer if it is not.
    Answer(Box<dyn FnOnce(Option<ApiError>) + Send>),
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("effects", &self.effects.len())
            .field("events", &self.events.len())
            .field("frames", &self.frames.len())
            .field("dirty", &self.dirty)
            .field("failure", &self.failure)
            .finish()
    }
}

impl Txn {
    /// Runs `f` once the round is durable.
    pub fn after(&mut self, f: impl FnOnce() + Send + 'static) {
        self.effects.push(Effect::Run(Box::new(f)));
    }

    /// Answers a request at the end of the round: `f` gets `None` once the round is durable,
    /// or the error to answer instead if the round could not be committed.
    pub fn answer(&mut self, f: impl FnOnce(Option<ApiError>) + Send + 'static) {
        self.effects.push(Effect::Answer(Box::new(f)));
    }

    /// Publishes `event` once the round is durable.
    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Sends `frame` to the relay once the round is durable.
    pub fn frame(&mut self, frame: ClientFrame) {
        self.frames.push(frame);
    }

    /// Commits a batch to the store (durable at the end of the round). A failure fails the
    /// whole round: what the round changed in memory is rolled back.
    pub fn commit(&mut self, store: &Store, batch: crate::store::Batch<'_>) -> ApiResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = store.commit(batch) {
            self.fail(&e);
            return Err(e.into());
        }
        self.dirty = true;
        Ok(())
    }

    /// Records a write made straight to the raw store rather than through a batch (the vault
    /// record of a passphrase change): the round is flushed, or failed if the write failed.
    pub fn wrote_raw<T>(&mut self, result: Result<T, crate::store::StoreError>) -> ApiResult<T> {
        match result {
            Ok(value) => {
                self.dirty = true;
                Ok(value)
            }
            Err(e) => {
                self.fail(&e);
                Err(e.into())
            }
        }
    }

    /// Marks the round as failed by a store error: it is not committed, memory is rolled back
    /// to the store, and every request of the round is answered with the error.
    pub fn fail(&mut self, error: &dyn std::fmt::Display) {
        if self.failure.is_none() {
            self.failure = Some(error.to_string());
        }
    }
}

/// Settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Extra root certificate for `wss://` relays.
    pub relay_ca_pem: Option<Vec<u8>>,
    /// The wall clock (tests move it by hand).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The relay this daemon hosts (`--host-relay`), if any: an account whose home it is
    /// carries its certificate's pin ([`reach::pin_hosted_home`]).
    pub hosted_relay: Option<HostedRelay>,
    /// The user's local relay, when this daemon has no relay configured: links to it check
    /// that its listener is the user's, and the home link to it wakes the take-over when it
    /// drops.
    pub local_relay: Option<LocalRelayLink>,
}

/// The local relay as the core sees it.
#[derive(Debug, Clone)]
pub struct LocalRelayLink {
    /// Its URL.
    pub url: String,
    /// Notified when the home link to it drops.
    pub wake: Arc<tokio::sync::Notify>,
}

impl CoreConfig {
    /// Whether `url` is the user's local relay.
    pub fn is_local_relay(&self, url: &str) -> bool {
        self.local_relay
            .as_ref()
            .is_some_and(|local| local.url == url)
    }
}

/// A relay the daemon hosts, as accounts name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedRelay {
    /// Its relay binding (the public URL, or `ws://ADDR/v1`).
    pub url: String,
    /// SHA-256 of its self-signed TLS certificate, when it serves `wss://`.
    pub tls_pin: Option<[u8; 32]>,
}

/// No account, locked, or unlocked.
pub enum Lock {
    /// The data directory has no account.
    NoAccount,
    /// The account exists; no secret is in memory.
    Locked,
    /// The account is open.
    Unlocked(Box<Unlocked>),
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lock::NoAccount => "NoAccount",
            Lock::Locked => "Locked",
            Lock::Unlocked(_) => "Unlocked",
        })
    }
}

/// Everything the core owns.
#[derive(Debug)]
pub struct CoreState {
    /// The raw store (the vault lives there even while locked).
    pub kv: Kv,
    /// The lock state.
    pub lock: Lock,
    /// Settings.
    pub config: CoreConfig,
    /// The event bus.
    pub bus: Arc<EventBus>,
    /// The relay connection's state.
    pub connection: ConnectionState,
    /// Bumped at every unlock, so late results from an earlier unlock are ignored.
    pub generation: u64,
    /// The core's own input, for background tasks to report back.
    pub inputs: mpsc::UnboundedSender<Input>,
    /// Set when a failed round could not be rolled back (the store could not be reopened or
    /// read): memory may be ahead of the store, so every round fails until it is reloaded.
    pub stale: Option<String>,
    /// Envelopes of a failed round went unacknowledged: the relay link is started again (the
    /// relay redelivers unacknowledged envelopes to a new connection) at this instant.
    pub redeliver_at: Option<tokio::time::Instant>,
    /// Rounds failed in a row, for the delay before the link is started again.
    pub failed_rounds: u32,
    /// The last error of a relay link or request, for `daemon.status`.
    pub last_relay_error: Option<api::types::RelayError>,
}

impl CoreState {
    /// The lock state as the API reports it.
    pub fn lock_state(&self) -> LockState {
        match self.lock {
            Lock::NoAccount => LockState::NoAccount,
            Lock::Locked => LockState::Locked,
            Lock::Unlocked(_) => LockState::Unlocked,
        }
    }

    /// The unlocked account, or the error that explains why there is none.
    pub fn unlocked(&mut self) -> ApiResult<&mut Unlocked> {
        match &mut self.lock {
            Lock::Unlocked(u) => Ok(u),
            Lock::Locked => Err(ApiError::locked()),
            Lock::NoAccount => Err(ApiError::no_account()),
        }
    }

    /// What opening links needs from the core, apart from the unlocked account.
    pub fn dialer(&self) -> Dialer {
        Dialer {
            generation: self.generation,
            inputs: self.inputs.clone(),
            ca_pem: self.config.relay_ca_pem.clone(),
        }
    }

    /// The requester of the link `route` names (see [`Dialer::requester`]).
    pub fn requester(&mut self, route: &reach::Route) -> ApiResult<crate::relay_link::Requester> {
        let dialer = self.dialer();
        dialer.requester(self.unlocked()?, route)
    }

    /// Notes the last thing a relay did wrong (a link that failed or dropped, a refused or
    /// unanswered request), with when, for `daemon.status`.
    pub fn note_relay_error(&mut self, relay: &str, error: String) {
        self.last_relay_error = Some(api::types::RelayError {
            relay: relay.to_owned(),
            error,
            at_ms: self.config.clock.now_ms(),
        });
    }

    /// Makes an event now (it is published after the round is durable).
    pub fn event(&self, txn: &mut Txn, kind: EventKind) -> Event {
        let event = self.bus.make(kind);
        txn.event(event.clone());
        event
    }
}

/// What the core needs to open a link to another relay: its events are tagged with the relay
/// and the unlock generation and fed into the core's input.
#[derive(Debug, Clone)]
pub struct Dialer {
    generation: u64,
    inputs: mpsc::UnboundedSender<Input>,
    ca_pem: Option<Vec<u8>>,
}

impl Dialer {
    /// The core's input, for a background task to report back.
    pub fn inputs(&self) -> mpsc::UnboundedSender<Input> {
        self.inputs.clone()
    }

    /// The unlock generation the link's reports belong to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The requester of the link `route` names: the authenticated home link, or an anonymous
    /// link to another relay from the pool, opened if needed (SPEC.md 10.9).
    pub fn requester(
        &self,
        unlocked: &mut Unlocked,
        route: &reach::Route,
    ) -> ApiResult<crate::relay_link::Requester> {
        if route.home {
            return unlocked
                .link
                .as_ref()
                .map(|l| l.requester())
                .ok_or_else(|| {
                    ApiError::new(api::ErrorCode::RelayUnreachable, "no relay connection")
                });
        }
        let url = route.url.clone();
        let generation = self.generation;
        let inputs = self.inputs.clone();
        let tasks = &mut unlocked.tasks;
        unlocked
            .pool
            .requester(&route.url, route.tls_pin, self.ca_pem.clone(), || {
                let (events_tx, mut events_rx) = mpsc::unbounded_channel();
                // Forwards the link's events into the core, tagged with the relay and this
                // unlock's generation.
                tasks.spawn(async move {
                    while let Some(event) = events_rx.recv().await {
                        if inputs
                            .send(Input::Foreign(generation, url.clone(), event))
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                events_tx
            })
            .map_err(|e| ApiError::new(api::ErrorCode::RelayUnreachable, e.to_string()))
    }
}

/// A cheap handle to the core, used by the RPC methods.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    inputs: mpsc::UnboundedSender<Input>,
    /// Delays unlock attempts after consecutive wrong passphrases; shared by every handle.
    pub unlock_throttle: Arc<tokio::sync::Mutex<account::UnlockThrottle>>,
}

impl CoreHandle {
    /// Runs `f` in the core and returns its result once the round it ran in is durable, or
    /// `store_error` (1030) if the round could not be committed.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut CoreState, &mut Txn) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |state, txn| {
            let result = f(state, txn);
            if let Err(e) = &result
                && e.code == api::ErrorCode::StoreError
            {
                // What the request changed in memory before it failed must not stay.
                txn.fail(&e.message);
            }
            txn.answer(move |failure| {
                let _ = reply.send(match failure {
                    None => result,
                    Some(error) => Err(error),
                });
            });
        });
        self.inputs
            .send(Input::Job(job))
            .map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(api::ErrorCode::StoreError, "the daemon is shutting down")
}

/// The answer to every request of a round that could not be committed.
fn round_failed(error: &str, kept: bool) -> ApiError {
    let outcome = if kept {
        "the store had kept the request after all, but its answer could not be confirmed in \
         time; check before repeating it"
    } else {
        "nothing of this request was kept"
    };
    ApiError::new(
        api::ErrorCode::StoreError,
        format!("the store could not write: {error}; {outcome}"),
    )
}

/// Starts the core task on `kv`; it runs until `shutdown` fires, then flushes and returns.
pub fn start(
    kv: Kv,
    config: CoreConfig,
    bus: Arc<EventBus>,
) -> Result<(CoreHandle, CoreTask), StoreError> {
    let lock = if crate::store::Vault::exists(&kv)? {
        Lock::Locked
    } else {
        Lock::NoAccount
    };
    let (inputs, receiver) = mpsc::unbounded_channel();
    let state = CoreState {
        kv,
        lock,
        config,
        bus,
        connection: ConnectionState::Offline,
        generation: 0,
        inputs: inputs.clone(),
        stale: None,
        redeliver_at: None,
        failed_rounds: 0,
        last_relay_error: None,
    };
    Ok((
        CoreHandle {
            inputs,
            unlock_throttle: Arc::default(),
        },
        CoreTask {
            state,
            receiver,
            last_write: None,
        },
    ))
}

/// The core loop, to be spawned.
#[derive(Debug)]
pub struct CoreTask {
    state: CoreState,
    receiver: mpsc::UnboundedReceiver<Input>,
    /// When a round last wrote to the store, until the quiet time after it has been used.
    last_write: Option<std::time::Instant>,
}

impl CoreTask {
    /// Runs until `shutdown` resolves (or every handle is gone).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut txn = Txn::default();
            let first = tokio::select! {
                () = &mut shutdown => break,
                input = self.receiver.recv() => match input {
                    None => break,
                    Some(input) => Some(input),
                },
                _ = tick.tick() => None,
            };
            self.reload_if_stale(&mut txn);
            match first {
                Some(input) => self.handle(input, &mut txn),
                None => {
                    self.release_memory_when_quiet();
                    self.redeliver_when_due();
                    self.tick(&mut txn);
                }
            }
            let mut handled = 1;
            while handled < MAX_ROUND {
                match self.receiver.try_recv() {
                    Ok(input) => self.handle(input, &mut txn),
                    Err(_) => break,
                }
                handled += 1;
            }
            self.finish_round(txn).await;
        }
        // Shutdown: whatever was committed becomes durable; secrets are dropped (zeroized).
        if let Err(e) = self.state.kv.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        self.state.lock = Lock::Locked;
    }

    fn handle(&mut self, input: Input, txn: &mut Txn) {
        match input {
            Input::Job(job) => job(&mut self.state, txn),
            Input::Link(generation, event) => {
                if generation == self.state.generation {
                    messaging::on_link_event(&mut self.state, event, txn);
                }
            }
            Input::Foreign(generation, url, event) => {
                if generation == self.state.generation {
                    messaging::on_foreign_event(&mut self.state, &url, event);
                }
            }
            Input::Draining(generation, url, event) => {
                if generation == self.state.generation {
                    messaging::on_draining_event(&mut self.state, &url, event, txn);
                }
            }
            Input::Continue(generation, job) => {
                if generation == self.state.generation {
                    job(&mut self.state, txn);
                }
            }
        }
    }

    /// After a burst of writes (sled's pages, messages, envelopes), the memory freed since is
    /// returned once the core has been quiet for [`QUIET`], on a blocking thread.
    fn release_memory_when_quiet(&mut self) {
        if self.last_write.is_some_and(|at| at.elapsed() >= QUIET) {
            self.last_write = None;
            tokio::task::spawn_blocking(crate::memory::release_free_memory);
        }
    }

    fn tick(&mut self, txn: &mut Txn) {
        messaging::on_tick(&mut self.state, txn);
    }

    async fn finish_round(&mut self, mut txn: Txn) {
        if txn.failure.is_none() {
            messaging::pump(&mut self.state, &mut txn);
        }
        if txn.dirty {
            self.last_write = Some(std::time::Instant::now());
        }
        let mut failure = txn.failure.take();
        if failure.is_none()
            && txn.dirty
            && let Err(e) = self.state.kv.flush().await
        {
            failure = Some(e.to_string());
        }
        if let Some(error) = failure {
            // The round's effects must not escape if its state is not durable: requests are
            // answered with the error, events, frames and sends are dropped (the relay
            // delivers again what was not acknowledged), and memory goes back to the store.
            tracing::error!(%error, "a round could not be committed; rolling back to the store");
            if !self.roll_back(&error) {
                let answer = round_failed(&error, false);
                for effect in txn.effects {
                    if let Effect::Answer(answer_with) = effect {
                        answer_with(Some(answer.clone()));
                    }
                }
                return;
            }
            tracing::warn!("the store had kept the failed round after all; releasing it");
        } else if txn.dirty {
            self.state.failed_rounds = 0;
        }
        for event in txn.events {
            self.state.bus.publish(event);
        }
        if let Lock::Unlocked(unlocked) = &self.state.lock
            && let Some(link) = &unlocked.link
        {
            for frame in txn.frames {
                link.send(frame);
            }
        }
        for effect in txn.effects {
            match effect {
                Effect::Run(run) => run(),
                Effect::Answer(answer) => answer(None),
            }
        }
    }

    /// Brings memory back to what the store holds after a failed round: the store is reopened
    /// without the round's writes and the unlocked account's store-derived state is loaded
    /// again (keys, the relay link and background tasks are kept). Returns true if the store
    /// turned out to hold the whole round after all (memory then already matches it).
    fn roll_back(&mut self, error: &str) -> bool {
        self.state.failed_rounds = self.state.failed_rounds.saturating_add(1);
        let delay = REDELIVER_MIN * (1 << (self.state.failed_rounds - 1).min(3));
        self.state.redeliver_at = Some(tokio::time::Instant::now() + delay);
        match self.state.kv.recover() {
            Ok(true) => {
                self.state.stale = None;
                return true;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not reopen the store");
                self.state.stale = Some(format!("{error}; reopening the store: {e}"));
                return false;
            }
        }
        self.reload();
        false
    }

    /// Loads the unlocked account's state from the store again; on failure, the core stays
    /// stale (every round fails) and tries again at the next round.
    fn reload(&mut self) {
        let result = match &mut self.state.lock {
            Lock::Unlocked(unlocked) => unlocked.reload(),
            _ => Ok(()),
        };
        match result {
            Ok(()) => self.state.stale = None,
            Err(e) if e.code == api::ErrorCode::StoreError && self.state.kv.health().is_some() => {
                self.state.stale = Some(e.message);
            }
            Err(e) => {
                // The store is readable but holds no account to load (a failed
                // account.create): go back to what it holds.
                tracing::error!(error = %e, "could not reload the account; locking");
                self.state.lock = match crate::store::Vault::exists(&self.state.kv) {
                    Ok(true) => Lock::Locked,
                    _ => Lock::NoAccount,
                };
                self.state.stale = None;
            }
        }
    }

    /// Before a round: if memory could not be rolled back yet, try again; while it cannot,
    /// the round fails.
    fn reload_if_stale(&mut self, txn: &mut Txn) {
        let Some(error) = self.state.stale.clone() else {
            return;
        };
        match self.state.kv.recover() {
            Ok(_) => self.reload(),
            Err(e) => self.state.stale = Some(format!("{error}; reopening the store: {e}")),
        }
        if let Some(error) = &self.state.stale {
            txn.fail(error);
        }
    }

    /// After a failed round left envelopes unacknowledged, starts the relay link again once
    /// its delay has passed, so the relay delivers them again.
    fn redeliver_when_due(&mut self) {
        let due = self
            .state
            .redeliver_at
            .is_some_and(|at| at <= tokio::time::Instant::now());
        if !due || self.state.stale.is_some() {
            return;
        }
        self.state.redeliver_at = None;
        if matches!(self.state.lock, Lock::Unlocked(_)) {
            tracing::info!("reconnecting to the relay for the envelopes of a failed round");
            account::restart_link(&mut self.state);
        }
    }
}
