//! Wall-clock time for the daemon's core (message timestamps, outbox expiry, invite expiry,
//! signed prekey rotation, handle re-checks), behind a trait so tests can move time forward by
//! days without waiting. Delays measured on the monotonic clock (retry backoff, deadlines) use
//! tokio's `Instant`, which tests pause and advance with `tokio::time::pause`.

use std::fmt;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::events::now_ms()
    }
}

/// A clock that only moves when told to (tests).
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

#[cfg(test)]
impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The clock the daemon runs on.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(shared.now_ms(), 1_000);
        clock.advance(7 * 24 * 3600 * 1000);
        assert_eq!(shared.now_ms(), 1_000 + 7 * 24 * 3600 * 1000);
        assert!(
            SystemClock.now_ms() > 1_700_000_000_000,
            "the system clock reads now"
        );
    }
}
