//! Exponential backoff with jitter between attempts to reach chatd: the delay doubles from
//! [`Backoff::MIN`] up to [`Backoff::MAX`], and each wait is drawn at random from the upper half
//! of the current delay, so a tray started before its daemon polls quickly at first and then
//! gently, and many clients that lost the same daemon do not retry in lockstep.

use std::time::Duration;

use rand::RngExt as _;

/// The reconnection delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
}

impl Backoff {
    /// The first delay.
    pub const MIN: Duration = Duration::from_millis(200);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(30);

    /// Starts at [`Self::MIN`].
    pub fn new() -> Self {
        Self { current: Self::MIN }
    }

    /// Back to [`Self::MIN`], after a success.
    pub fn reset(&mut self) {
        self.current = Self::MIN;
    }

    /// The next wait: random in `[current / 2, current]`; the delay then doubles.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = u64::try_from(self.current.as_millis()).unwrap_or(u64::MAX);
        let wait = rand::rng().random_range(ceiling / 2..=ceiling);
        self.current = (self.current * 2).min(Self::MAX);
        Duration::from_millis(wait)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::new();
        let mut ceiling = Backoff::MIN;
        for _ in 0..20 {
            let wait = backoff.next_wait();
            assert!(
                wait <= ceiling && wait >= ceiling / 2,
                "{wait:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(Backoff::MAX);
        }
        assert_eq!(ceiling, Backoff::MAX);
        backoff.reset();
        assert!(backoff.next_wait() <= Backoff::MIN);
    }
}
