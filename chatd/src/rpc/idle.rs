//! Idle connections: when each connection last sent a request, whether anything can still
//! write to it (a subscription, a call in flight), the idle timeout, and, when the server is
//! full, the choice of the connection to close so that a new one is served.
//!
//! A connection is *busy* while something other than its dispatcher holds a sender of its
//! outgoing channel: a subscription's sink (jsonrpsee keeps one per subscription until it ends)
//! or a request's task. It is *idle* otherwise. Counting the channel's senders (through a weak
//! sender, which does not keep the channel open) answers that without hooks in jsonrpsee.
//!
//! Rules ([`ServerLimits::idle_timeout`](super::ServerLimits::idle_timeout)): a connection that
//! is idle and has sent no request for the idle timeout is closed; a busy one never is. When
//! every place is taken, the idle connection that sent its last request longest ago is closed
//! to make room for the new one; only when none is idle does the new one get the "server is
//! busy" answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::mpsc::WeakSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the server knows about one open connection.
#[derive(Debug)]
pub(super) struct Activity {
    last_request: Mutex<Instant>,
    /// Counts the senders of the connection's outgoing channel.
    senders: WeakSender<Box<RawValue>>,
    /// How many senders an idle connection has (its dispatcher's).
    idle_senders: usize,
    /// Fired to close the connection (idle timeout or eviction).
    close: CancellationToken,
}

impl Activity {
    /// A connection that sent nothing yet; `senders` counts its outgoing channel's senders,
    /// of which an idle connection has `idle_senders`.
    pub(super) fn new(senders: WeakSender<Box<RawValue>>, idle_senders: usize) -> Self {
        Self {
            last_request: Mutex::new(Instant::now()),
            senders,
            idle_senders,
            close: CancellationToken::new(),
        }
    }

    /// Records a request.
    pub(super) fn touch(&self) {
        *self.lock() = Instant::now();
    }

    /// When the connection last sent a request (or opened).
    fn last_request(&self) -> Instant {
        *self.lock()
    }

    /// Whether nothing but the dispatcher can write to the connection: no subscription, no
    /// call in flight.
    fn is_idle(&self) -> bool {
        self.senders.strong_count() <= self.idle_senders
    }

    /// Resolves when the connection is to be closed.
    pub(super) async fn closed(&self) {
        self.close.cancelled().await;
    }

    /// Resolves once the connection has been idle, without a request, for `timeout`. A
    /// connection found busy when its time is up is looked at again a `timeout` later, so it is
    /// closed at most two timeouts after its last subscription or call ended.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.last_request() + timeout;
            tokio::time::sleep_until(deadline).await;
            if self.last_request() + timeout > Instant::now() {
                continue;
            }
            if self.is_idle() {
                return;
            }
            self.touch();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        // A poisoned lock holds an instant all the same.
        self.last_request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every open connection's [`Activity`], by connection id.
#[derive(Debug, Default)]
pub(super) struct Registry {
    open: Mutex<HashMap<usize, Arc<Activity>>>,
}

impl Registry {
    /// Adds connection `id`, until the returned guard is dropped.
    pub(super) fn register(self: &Arc<Self>, id: usize, activity: Arc<Activity>) -> Registered {
        self.lock().insert(id, activity);
        Registered {
            registry: Arc::clone(self),
            id,
        }
    }

    /// Closes the idle connection whose last request is the oldest; false if none is idle.
    pub(super) fn evict_longest_idle(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|activity| !activity.close.is_cancelled() && activity.is_idle())
            .min_by_key(|activity| activity.last_request());
        match victim {
            Some(activity) => {
                activity.close.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Arc<Activity>>> {
        // A poisoned lock only means a panic elsewhere; the map is still consistent.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps a connection in the [`Registry`] while it lives.
#[derive(Debug)]
pub(super) struct Registered {
    registry: Arc<Registry>,
    id: usize,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}
