//! The event bus: cursors, the in-memory retention of transient events, and the live broadcast
//! subscribers listen to.
//!
//! A subscriber that falls [`LIVE_BUFFER`] events behind catches up from retention, from the
//! last event it was sent or, if none, from the newest one published before it subscribed:
//! never from cursor 0 (`methods`, `events.subscribe`).
//!
//! Cursors are `max(last + 1, now in microseconds)`, so they increase strictly within a run and
//! across restarts (as long as the clock does not jump back by more than the gap). Message and
//! contact events are also written to the encrypted store by the core, in the same batch as the
//! change they report, and published only after that batch is durable.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use api::events::{Event, EventKind};
use tokio::sync::broadcast;

/// How many transient (connection, lock) events are kept for `since`.
const TRANSIENT_RETAINED: usize = 256;
/// Live events a slow subscriber may fall behind before it catches up from retention.
const LIVE_BUFFER: usize = 4096;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Debug)]
struct Inner {
    last_cursor: u64,
    /// The newest cursor published so far.
    last_published: u64,
    transient: VecDeque<Event>,
}

/// The bus; shared by the core (which makes and publishes events) and the RPC subscriptions.
#[derive(Debug)]
pub struct EventBus {
    inner: Mutex<Inner>,
    live: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::with_live_buffer(LIVE_BUFFER)
    }

    /// An empty bus whose subscribers may fall `live_buffer` events behind before they catch
    /// up from retention (tests use a small one).
    pub(crate) fn with_live_buffer(live_buffer: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                last_cursor: 0,
                last_published: 0,
                transient: VecDeque::new(),
            }),
            live: broadcast::channel(live_buffer.max(1)).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the data (a
        // counter and a queue) is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes an event with the next cursor (not yet published).
    pub fn make(&self, kind: EventKind) -> Event {
        let mut inner = self.lock();
        let cursor = (inner.last_cursor + 1).max(now_us());
        inner.last_cursor = cursor;
        Event {
            cursor,
            time_ms: now_ms(),
            kind,
        }
    }

    /// Raises the cursor floor to at least `cursor` (the newest one found in the store).
    pub fn observe(&self, cursor: u64) {
        let mut inner = self.lock();
        inner.last_cursor = inner.last_cursor.max(cursor);
    }

    /// Delivers an event to live subscribers, retaining it in memory if it is transient.
    pub fn publish(&self, event: Event) {
        // Sent under the lock, so that `subscribe` sees every event either as published before
        // (at or below its cursor) or in its receiver.
        let mut inner = self.lock();
        if !event.kind.is_persistent() {
            if inner.transient.len() == TRANSIENT_RETAINED {
                inner.transient.pop_front();
            }
            inner.transient.push_back(event.clone());
        }
        inner.last_published = inner.last_published.max(event.cursor);
        let _ = self.live.send(event);
    }

    /// Listens to live events; also returns the newest cursor published before, from which a
    /// subscriber that falls behind catches up (`methods`, `events.subscribe`).
    pub fn subscribe(&self) -> (broadcast::Receiver<Event>, u64) {
        let inner = self.lock();
        (self.live.subscribe(), inner.last_published)
    }

    /// Retained transient events after `since`.
    pub fn transient_since(&self, since: u64) -> Vec<Event> {
        self.lock()
            .transient
            .iter()
            .filter(|e| e.cursor > since)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_increase_strictly_and_respect_the_floor() {
        let bus = EventBus::new();
        let a = bus.make(EventKind::Locked {});
        let b = bus.make(EventKind::Locked {});
        assert!(b.cursor > a.cursor);
        bus.observe(u64::MAX / 2);
        let c = bus.make(EventKind::Unlocked {});
        assert_eq!(c.cursor, u64::MAX / 2 + 1);
        bus.publish(c.clone());
        assert_eq!(bus.transient_since(c.cursor - 1), vec![c.clone()]);
        assert!(bus.transient_since(c.cursor).is_empty());
    }
}
