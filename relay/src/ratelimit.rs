//! Token buckets, one per key (device, identity, or client network), in sharded maps that a
//! timer sweeps; the key a client address is limited under ([`ip_key`]); and the count of open
//! connections per client network ([`IpSlots`]).
//!
//! Taking a token locks one shard of sixteen, for a hash lookup: no frame ever pays for the
//! other keys. Buckets that have refilled completely hold nothing a fresh bucket would not, so
//! [`RateLimiter::sweep`], run by the server on a timer, forgets them one shard at a time.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::config::RateLimit;

/// Shards per limiter: enough that connections on different worker threads rarely meet.
const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

type Shard<K> = Mutex<HashMap<K, Bucket>>;

/// Token buckets keyed by `K`, all with the same rate.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    limit: RateLimit,
    hasher: RandomState,
    shards: [Shard<K>; SHARDS],
}

impl<K: Eq + Hash + Copy> RateLimiter<K> {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    /// A bucket map only ever holds whole buckets between statements, so a poisoned lock is
    /// recovered.
    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, Bucket>> {
        // The remainder is below `SHARDS`, so the index is in bounds.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `cost` tokens from `key`'s bucket if it has them.
    pub(crate) fn try_take(&self, key: K, cost: f64, now: Instant) -> bool {
        let mut buckets = self.shard(&key);
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

    /// Puts `cost` tokens back into `key`'s bucket (up to its burst): a request refused after
    /// it took them, for another reason, did not use them.
    pub(crate) fn give_back(&self, key: K, cost: f64, now: Instant) {
        let mut buckets = self.shard(&key);
        if let Some(bucket) = buckets.get_mut(&key) {
            let refilled = refill(self.limit, *bucket, now);
            *bucket = Bucket {
                tokens: (refilled.tokens + cost).min(self.limit.burst),
                last: refilled.last,
            };
        }
    }

    /// How many buckets are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Forgets the buckets that have refilled completely by `now`; returns how many are left.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let limit = self.limit;
        let mut left = 0;
        for shard in self.shards.iter() {
            let mut buckets = shard.lock().unwrap_or_else(PoisonError::into_inner);
            buckets.retain(|_, b| refill(limit, *b, now).tokens < limit.burst);
            left += buckets.len();
        }
        left
    }
}

fn refill(limit: RateLimit, bucket: Bucket, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
    Bucket {
        tokens: (bucket.tokens + elapsed * limit.per_second).min(limit.burst),
        last: now,
    }
}

/// The key per-address limits use for a client address: an IPv4 address itself (also when it
/// comes IPv4-mapped), an IPv6 address's /64 network, since one subscriber usually holds a
/// whole /64 and could otherwise take a fresh address for every connection.
pub(crate) fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// Counts open connections per client network key; an [`IpSlot`] gives its slot back on drop.
#[derive(Debug, Default)]
pub(crate) struct IpSlots(Mutex<HashMap<IpAddr, usize>>);

/// One open connection's place in [`IpSlots`].
#[derive(Debug)]
pub(crate) struct IpSlot {
    slots: Arc<IpSlots>,
    ip: IpAddr,
}

impl IpSlot {
    /// The client network key this slot counts under.
    pub(crate) fn key(&self) -> IpAddr {
        self.ip
    }
}

impl IpSlots {
    /// Counts only change whole, so a poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for `ip` if it holds fewer than `max`.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.lock();
        let count = counts.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
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

    #[test]
    fn tokens_given_back_are_there_again_up_to_the_burst() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        assert!(limiter.try_take(1u8, 3.0, t0));
        assert!(!limiter.try_take(1u8, 1.0, t0));
        limiter.give_back(1u8, 2.0, t0);
        assert!(limiter.try_take(1u8, 2.0, t0));
        assert!(!limiter.try_take(1u8, 1.0, t0));
        limiter.give_back(1u8, 10.0, t0);
        assert!(limiter.try_take(1u8, 3.0, t0));
        assert!(!limiter.try_take(1u8, 1.0, t0));
    }

    #[test]
    fn the_sweep_forgets_only_full_buckets() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 2.0,
        });
        let t0 = Instant::now();
        for key in 0..1000u32 {
            assert!(limiter.try_take(key, 1.0, t0));
        }
        // Nothing has refilled yet: an emptied bucket is not forgotten (that would refill it).
        assert!(limiter.try_take(7, 1.0, t0));
        assert_eq!(limiter.sweep(t0), 1000);
        assert!(!limiter.try_take(7, 1.0, t0));
        // Key 7 is still empty half a second on; the others have refilled and go.
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(limiter.sweep(later), 1);
        assert!(limiter.try_take(7, 1.0, later));
        assert!(!limiter.try_take(7, 1.0, later));
    }

    /// Taking a token never sweeps: however many idle buckets there are, a frame pays for
    /// one lookup, and only [`RateLimiter::sweep`] (a timer's) forgets them.
    #[test]
    fn taking_a_token_never_sweeps() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1000.0,
            burst: 1.0,
        });
        let t0 = Instant::now();
        for key in 0..10_000u32 {
            assert!(limiter.try_take(key, 1.0, t0));
        }
        // Every bucket has refilled: all of them could be forgotten, none is.
        let later = t0 + Duration::from_secs(1);
        assert!(limiter.try_take(10_000, 1.0, later));
        assert_eq!(limiter.len(), 10_001);
        assert_eq!(limiter.sweep(later), 1);
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let key = |s: &str| ip_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.5"), key("::ffff:203.0.113.5"));
        assert_ne!(key("203.0.113.5"), key("203.0.113.6"));
    }
}
