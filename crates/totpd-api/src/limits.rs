//! Abuse limits of the `/api/` routes: a token bucket per API key, and a
//! lockout of client addresses that keep failing authentication.
//!
//! Both are kept in this process's memory, so with several nodes each node
//! counts on its own: the limits are per node. Memory is bounded: each table
//! has a fixed number of entries and makes room by dropping what no longer
//! matters (full buckets) or the oldest entry.
//!
//! Time is a parameter (`now: Instant`): nothing here reads the clock, so the
//! arithmetic is tested without sleeping.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Limits;

/// Most API keys with a bucket at once (over all shards).
const MAX_KEY_BUCKETS: usize = 65_536;
/// Shards of the per-key table, so concurrent requests rarely share a lock.
const KEY_SHARDS: usize = 16;
/// Most client addresses tracked by the failed-authentication lockout.
const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// How long a refused client should wait: the `Retry-After` of a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryAfter(Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (`Retry-After: 0` would invite
    /// an immediate retry that is refused again).
    pub(crate) fn whole_seconds(self) -> u64 {
        let seconds = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        seconds.max(1)
    }
}

/// The abuse limits of one node.
#[derive(Debug)]
pub(crate) struct AbuseLimits {
    per_key: Option<KeyBuckets>,
    failed_auth: Option<FailedAuth>,
}

impl AbuseLimits {
    pub(crate) fn new(limits: &Limits) -> AbuseLimits {
        AbuseLimits {
            per_key: (limits.rate_limit_per_key > 0)
                .then(|| KeyBuckets::new(limits.rate_limit_per_key, MAX_KEY_BUCKETS / KEY_SHARDS)),
            failed_auth: (limits.auth_failure_limit > 0 && !limits.auth_failure_window.is_zero())
                .then(|| {
                    FailedAuth::new(
                        limits.auth_failure_limit,
                        limits.auth_failure_window,
                        MAX_TRACKED_ADDRESSES,
                    )
                }),
        }
    }

    /// Whether `client` is locked out for failing authentication too often.
    /// Runs before the credentials are looked at.
    pub(crate) fn check_client(&self, client: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        match &self.failed_auth {
            Some(failed) => failed.check(client, now),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `client`. Returns true when this
    /// failure locked the address out.
    pub(crate) fn record_auth_failure(&self, client: IpAddr, now: Instant) -> bool {
        match &self.failed_auth {
            Some(failed) => failed.record_failure(client, now),
            None => false,
        }
    }

    /// Takes one request from the bucket of `key_id` (an authenticated key).
    pub(crate) fn check_key(&self, key_id: &str, now: Instant) -> Result<(), RetryAfter> {
        match &self.per_key {
            Some(buckets) => buckets.take(key_id, now),
            None => Ok(()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The tables hold plain numbers that stay consistent even if a holder
    // panicked mid-update: keep going rather than fail every request.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A token bucket per API key: `rate` requests per second, bursts of `rate`.
#[derive(Debug)]
struct KeyBuckets {
    rate: f64,
    shard_capacity: usize,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// The bucket refilled up to `now`, never beyond the burst.
    fn refilled(self, rate: f64, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        Bucket {
            tokens: (self.tokens + elapsed * rate).min(rate),
            updated: now.max(self.updated),
        }
    }
}

impl KeyBuckets {
    fn new(per_second: u32, shard_capacity: usize) -> KeyBuckets {
        KeyBuckets {
            rate: f64::from(per_second),
            shard_capacity: shard_capacity.max(1),
            shards: (0..KEY_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn take(&self, key_id: &str, now: Instant) -> Result<(), RetryAfter> {
        let mut hasher = DefaultHasher::new();
        key_id.hash(&mut hasher);
        // The remainder is below KEY_SHARDS, so it fits in usize.
        let index = usize::try_from(hasher.finish() % KEY_SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(index) else {
            return Ok(());
        };
        let mut buckets = lock(shard);
        let rate = self.rate;
        if !buckets.contains_key(key_id) && buckets.len() >= self.shard_capacity {
            make_room(&mut buckets, self.shard_capacity, rate, now);
        }
        // Look up before inserting, so the common case allocates nothing.
        if !buckets.contains_key(key_id) {
            buckets.insert(
                key_id.to_owned(),
                Bucket {
                    tokens: rate,
                    updated: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(key_id) else {
            return Ok(());
        };
        *bucket = bucket.refilled(rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
            Err(RetryAfter(Duration::from_secs_f64(wait)))
        }
    }
}

/// Frees room in a full shard. A bucket that has refilled completely is the
/// same as no bucket, so dropping those changes nothing; only if every key
/// is busy does the least recently used one lose its history.
fn make_room(buckets: &mut HashMap<String, Bucket>, capacity: usize, rate: f64, now: Instant) {
    buckets.retain(|_, bucket| bucket.refilled(rate, now).tokens < rate);
    if buckets.len() >= capacity
        && let Some(oldest) = buckets
            .iter()
            .min_by_key(|(_, bucket)| bucket.updated)
            .map(|(key, _)| key.clone())
    {
        buckets.remove(&oldest);
    }
}

/// Client addresses as the lockout counts them: an IPv6 client usually holds
/// a whole /64, so its addresses count as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Client {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl From<IpAddr> for Client {
    fn from(address: IpAddr) -> Client {
        match address {
            IpAddr::V4(v4) => Client::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.octets()),
                None => {
                    let [a, b, c, d, ..] = v6.segments();
                    let mut prefix = [0u8; 8];
                    for (chunk, segment) in prefix.chunks_exact_mut(2).zip([a, b, c, d]) {
                        chunk.copy_from_slice(&segment.to_be_bytes());
                    }
                    Client::V6Prefix(prefix)
                }
            },
        }
    }
}

/// After `limit` failed authentications from one client within `window`,
/// that client is refused for `window`, before its credentials are looked at.
#[derive(Debug)]
struct FailedAuth {
    limit: u32,
    window: Duration,
    capacity: usize,
    /// Entries in the table: lets the common case (no failures anywhere)
    /// skip the lock.
    tracked: AtomicUsize,
    table: Mutex<FailureTable>,
}

#[derive(Debug, Default)]
struct FailureTable {
    entries: HashMap<Client, Failures>,
    /// Clients in the order they were first tracked: the oldest goes first
    /// when the table is full. Holds exactly the keys of `entries`.
    order: VecDeque<Client>,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

impl FailedAuth {
    fn new(limit: u32, window: Duration, capacity: usize) -> FailedAuth {
        FailedAuth {
            limit,
            window,
            capacity: capacity.max(1),
            tracked: AtomicUsize::new(0),
            table: Mutex::new(FailureTable::default()),
        }
    }

    fn check(&self, address: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let table = lock(&self.table);
        match table
            .entries
            .get(&Client::from(address))
            .and_then(|f| f.blocked_until)
        {
            Some(until) if until > now => Err(RetryAfter(until - now)),
            _ => Ok(()),
        }
    }

    fn record_failure(&self, address: IpAddr, now: Instant) -> bool {
        let client = Client::from(address);
        let mut table = lock(&self.table);
        let table = &mut *table;
        if !table.entries.contains_key(&client) {
            while table.entries.len() >= self.capacity {
                let Some(oldest) = table.order.pop_front() else {
                    break;
                };
                table.entries.remove(&oldest);
            }
            table.order.push_back(client);
        }
        let fresh = Failures {
            window_start: now,
            count: 0,
            blocked_until: None,
        };
        let failures = match table.entries.entry(client) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => slot.insert(fresh),
        };
        let window_over = now.saturating_duration_since(failures.window_start) >= self.window;
        let block_over = failures.blocked_until.is_some_and(|until| until <= now);
        if window_over || block_over {
            *failures = fresh;
        }
        failures.count = failures.count.saturating_add(1);
        let locks_out = failures.count >= self.limit && failures.blocked_until.is_none();
        if locks_out {
            failures.blocked_until = Some(now + self.window);
        }
        self.tracked.store(table.entries.len(), Ordering::Relaxed);
        locks_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limits(per_key: u32, failures: u32, window_secs: u64) -> Limits {
        Limits {
            rate_limit_per_key: per_key,
            auth_failure_limit: failures,
            auth_failure_window: Duration::from_secs(window_secs),
            ..Limits::default()
        }
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_key_gets_its_burst_then_one_request_per_refill_interval() {
        let guard = AbuseLimits::new(&limits(5, 0, 0));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(guard.check_key("tk_a", t0), Ok(()));
        }
        let refused = guard.check_key("tk_a", t0).unwrap_err();
        assert_eq!(refused.whole_seconds(), 1);
        // Another key has its own bucket.
        assert_eq!(guard.check_key("tk_b", t0), Ok(()));
        // 5 per second: one token back after 200 ms, not before.
        assert!(
            guard
                .check_key("tk_a", t0 + Duration::from_millis(150))
                .is_err()
        );
        assert_eq!(
            guard.check_key("tk_a", t0 + Duration::from_millis(210)),
            Ok(())
        );
        // A long pause refills to the burst, never beyond it.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(guard.check_key("tk_a", later), Ok(()));
        }
        assert!(guard.check_key("tk_a", later).is_err());
    }

    #[test]
    fn zero_disables_each_limit() {
        let guard = AbuseLimits::new(&limits(0, 0, 10));
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(guard.check_key("tk_a", now), Ok(()));
            assert!(!guard.record_auth_failure(A, now));
        }
        assert_eq!(guard.check_client(A, now), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        assert_eq!(RetryAfter(Duration::ZERO).whole_seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(1)).whole_seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_secs(2)).whole_seconds(), 2);
        assert_eq!(RetryAfter(Duration::from_millis(2001)).whole_seconds(), 3);
    }

    #[test]
    fn an_address_is_locked_out_after_the_limit_for_one_window() {
        let guard = AbuseLimits::new(&limits(0, 3, 10));
        let t0 = Instant::now();
        assert!(!guard.record_auth_failure(A, t0));
        assert!(!guard.record_auth_failure(A, t0));
        assert_eq!(guard.check_client(A, t0), Ok(()));
        assert!(guard.record_auth_failure(A, t0 + Duration::from_secs(1)));
        let refused = guard
            .check_client(A, t0 + Duration::from_millis(1500))
            .unwrap_err();
        assert_eq!(refused.whole_seconds(), 10);
        // Other addresses are not affected.
        assert_eq!(guard.check_client(B, t0 + Duration::from_secs(2)), Ok(()));
        // Locked until the window after the locking failure has passed.
        assert!(guard.check_client(A, t0 + Duration::from_secs(10)).is_err());
        assert_eq!(guard.check_client(A, t0 + Duration::from_secs(11)), Ok(()));
        // Then it starts counting afresh.
        assert!(!guard.record_auth_failure(A, t0 + Duration::from_secs(11)));
        assert_eq!(guard.check_client(A, t0 + Duration::from_secs(11)), Ok(()));
    }

    #[test]
    fn failures_spread_over_more_than_a_window_do_not_lock_out() {
        let guard = AbuseLimits::new(&limits(0, 3, 10));
        let t0 = Instant::now();
        for i in 0..30 {
            let now = t0 + Duration::from_secs(6 * i);
            assert!(!guard.record_auth_failure(A, now), "failure {i}");
            assert_eq!(guard.check_client(A, now), Ok(()));
        }
    }

    #[test]
    fn ipv6_clients_count_per_64_prefix_and_mapped_ipv4_as_ipv4() {
        let guard = AbuseLimits::new(&limits(0, 2, 10));
        let now = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        guard.record_auth_failure(one, now);
        assert!(guard.record_auth_failure(same_64, now));
        assert!(guard.check_client(one, now).is_err());
        assert_eq!(guard.check_client(other_64, now), Ok(()));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        guard.record_auth_failure(A, now);
        assert!(guard.record_auth_failure(mapped, now));
        assert!(guard.check_client(A, now).is_err());
        assert_eq!(
            guard.check_client(IpAddr::V6(Ipv6Addr::LOCALHOST), now),
            Ok(())
        );
    }

    #[test]
    fn the_address_table_is_bounded_and_drops_the_oldest_first() {
        let failed = FailedAuth::new(2, Duration::from_secs(60), 100);
        let now = Instant::now();
        let address = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        assert!(!failed.record_failure(address(0), now));
        assert!(failed.record_failure(address(0), now));
        for i in 1..=99 {
            failed.record_failure(address(i), now);
        }
        assert!(
            failed.check(address(0), now).is_err(),
            "still tracked at 100"
        );
        failed.record_failure(address(100), now);
        let table = lock(&failed.table);
        assert_eq!(table.entries.len(), 100);
        assert_eq!(table.order.len(), 100);
        assert!(!table.entries.contains_key(&Client::from(address(0))));
        drop(table);
        assert_eq!(failed.check(address(0), now), Ok(()));
        for i in 101..10_000 {
            failed.record_failure(address(i), now);
        }
        assert_eq!(lock(&failed.table).entries.len(), 100);
    }

    #[test]
    fn the_key_table_is_bounded_and_drops_idle_buckets_before_busy_ones() {
        let buckets = KeyBuckets::new(1, 8);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert!(buckets.take(&format!("tk_old_{i}"), t0).is_ok());
        }
        let bounded =
            |buckets: &KeyBuckets| buckets.shards.iter().all(|shard| lock(shard).len() <= 8);
        assert!(bounded(&buckets));
        // Ten seconds later the old buckets are full again, as good as absent.
        let t1 = t0 + Duration::from_secs(10);
        assert!(buckets.take("tk_busy", t1).is_ok());
        assert!(buckets.take("tk_busy", t1).is_err());
        for i in 0..1000 {
            let _ = buckets.take(&format!("tk_new_{i}"), t0 + Duration::from_secs(9));
        }
        assert!(bounded(&buckets));
        // The busy key kept its empty bucket through all that churn.
        assert!(buckets.take("tk_busy", t1).is_err());
    }
}
