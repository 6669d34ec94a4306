//! Token buckets, one per key (device or IP address), in a map that forgets idle keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;

/// Past this many keys the map sweeps out buckets that have refilled completely.
const SWEEP_AT: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by `K`, all with the same rate.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    limit: RateLimit,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Copy> RateLimiter<K> {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket if it has them.
    pub(crate) fn try_take(&self, key: K, cost: f64, now: Instant) -> bool {
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= SWEEP_AT {
            let limit = self.limit;
            buckets.retain(|_, b| refill(limit, *b, now).tokens < limit.burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.limit.burst,
            last: now,
        });
        *bucket = refill(self.limit, *bucket, now);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            true
        } else {
            false
        }
    }
}

fn refill(limit: RateLimit, bucket: Bucket, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
    Bucket {
        tokens: (bucket.tokens + elapsed * limit.per_second).min(limit.burst),
        last: now,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_burst_then_the_rate() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 5.0,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.try_take(1u8, 1.0, t0));
        }
        assert!(!limiter.try_take(1u8, 1.0, t0));
        assert!(limiter.try_take(2u8, 1.0, t0), "keys are independent");
        assert!(limiter.try_take(1u8, 1.0, t0 + Duration::from_millis(100)));
        assert!(!limiter.try_take(1u8, 1.0, t0 + Duration::from_millis(100)));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limiter.try_take(1u8, 1.0, later));
        }
        assert!(!limiter.try_take(1u8, 1.0, later));
    }
}
