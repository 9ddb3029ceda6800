//! Abuse limits of the `/api/` routes: an optional token bucket per API key,
//! and a lockout of clients that keep failing authentication.
//!
//! Both are kept in this process's memory, so with several nodes each node
//! counts on its own: the limits are per node. Memory is bounded: each table
//! has a fixed number of entries. The key buckets make room by dropping full
//! buckets (as good as absent), then the least recently used one. The lockout
//! tables make room by dropping expired entries first, then the oldest
//! entries that are still counting; an active lockout is never dropped. A
//! lockout table full of active lockouts tracks no new entry until one
//! expires: new clients' failures are then answered 401 as usual, never 429,
//! so filling the table neither frees a lockout nor locks anybody else out.
//!
//! The lockout counts failures per (client, key id), so an attacker guessing
//! secrets for one key id does not lock out the other keys used from the same
//! address (a NAT, a proxy, a node's loopback). A client as a whole may fail
//! [`ADDRESS_LIMIT_FACTOR`] times as often; beyond that, only the key ids
//! that authenticated successfully from it while its failures were counted
//! are still looked at, which stops an attacker cycling key ids without
//! locking out the agents already working from that address.
//!
//! Time is a parameter (`now: Instant`): nothing here reads the clock, so the
//! arithmetic is tested without sleeping.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher as _, Hash, Hasher as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Limits;

/// Most API keys with a bucket at once (over all shards).
const MAX_KEY_BUCKETS: usize = 65_536;
/// Shards of the per-key table, so concurrent requests rarely share a lock.
const KEY_SHARDS: usize = 16;
/// Most (client, key id) pairs tracked by the failed-authentication lockout.
const MAX_TRACKED_PAIRS: usize = 65_536;
/// Most clients tracked by the failed-authentication lockout.
const MAX_TRACKED_CLIENTS: usize = 65_536;
/// A client as a whole is locked out (for key ids it has not used
/// successfully) after this many times the per-key failure limit.
pub(crate) const ADDRESS_LIMIT_FACTOR: u32 = 10;
/// Most key ids remembered per client as having authenticated successfully.
const MAX_TRUSTED_KEYS: usize = 32;
/// Most time between two sweeps of expired lockout entries.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Longest lockout window honoured; longer settings are cut to this, so no
/// deadline can overflow the clock.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// How long a refused client should wait: the `Retry-After` of a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryAfter(Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (`Retry-After: 0` would invite
    /// an immediate retry that is refused again).
    pub(crate) fn whole_seconds(self) -> u64 {
        let seconds = self
            .0
            .as_secs()
            .saturating_add(u64::from(self.0.subsec_nanos() > 0));
        seconds.max(1)
    }
}

/// What a failed authentication changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NewLockouts {
    /// This failure locked the key id out for this client.
    pub key: bool,
    /// This failure locked the client out for key ids it has not used
    /// successfully.
    pub client: bool,
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
                        MAX_TRACKED_PAIRS,
                        MAX_TRACKED_CLIENTS,
                    )
                }),
        }
    }

    /// Whether `client` is locked out for `key_id` (as sent, not yet
    /// checked). Runs before the credentials are checked.
    pub(crate) fn check_client(
        &self,
        client: IpAddr,
        key_id: &str,
        now: Instant,
    ) -> Result<(), RetryAfter> {
        match &self.failed_auth {
            Some(failed) => failed.check(client, key_id, now),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication of `key_id` from `client`.
    pub(crate) fn record_auth_failure(
        &self,
        client: IpAddr,
        key_id: &str,
        now: Instant,
    ) -> NewLockouts {
        match &self.failed_auth {
            Some(failed) => failed.record_failure(client, key_id, now),
            None => NewLockouts::default(),
        }
    }

    /// Notes that `key_id` authenticated from `client`: while the client's
    /// failures are counted, that key id stays usable from it even once the
    /// client as a whole is locked out.
    pub(crate) fn record_auth_success(&self, client: IpAddr, key_id: &str, now: Instant) {
        if let Some(failed) = &self.failed_auth {
            failed.record_success(client, key_id, now);
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
            Err(RetryAfter(
                Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(1)),
            ))
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
/// a whole /64, so its addresses count as one; an IPv4-mapped IPv6 address
/// counts as its IPv4 address.
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

/// A key id as the lockout stores it: a keyed 64-bit hash, so an entry's
/// size does not depend on what a client sent and the table never holds
/// client text (a secret pasted into the key id header, say).
type KeyTag = u64;

/// `now + after`, saturating at the farthest instant the clock can hold
/// rather than overflowing.
fn deadline(now: Instant, after: Duration) -> Instant {
    let mut after = after;
    loop {
        if let Some(at) = now.checked_add(after) {
            return at;
        }
        after /= 2;
        if after.is_zero() {
            return now;
        }
    }
}

/// Failures of one tracked thing (a client, or a key id from a client)
/// within a window, and its lockout.
#[derive(Clone, Copy, Debug)]
struct Counter {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

impl Counter {
    fn new(now: Instant) -> Counter {
        Counter {
            window_start: now,
            count: 0,
            blocked_until: None,
        }
    }

    /// How long it stays locked out, if it is.
    fn blocked(&self, now: Instant) -> Option<RetryAfter> {
        self.blocked_until
            .filter(|until| *until > now)
            .map(|until| RetryAfter(until.saturating_duration_since(now)))
    }

    /// An entry that is as good as absent: its lockout is over, or it is not
    /// locked out and its window has passed.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        match self.blocked_until {
            Some(until) => until <= now,
            None => now.saturating_duration_since(self.window_start) >= window,
        }
    }

    /// When the entry expires if nothing else happens.
    fn expiry(&self, window: Duration) -> Instant {
        self.blocked_until
            .unwrap_or_else(|| deadline(self.window_start, window))
    }

    /// Counts one failure. Returns true when this failure locked it out.
    fn record(&mut self, now: Instant, limit: u32, window: Duration) -> bool {
        if self.expired(now, window) {
            *self = Counter::new(now);
        }
        self.count = self.count.saturating_add(1);
        let locks_out = self.count >= limit && self.blocked_until.is_none();
        if locks_out {
            self.blocked_until = Some(deadline(now, window));
        }
        locks_out
    }
}

/// What the lockout knows about one client.
#[derive(Clone, Debug)]
struct ClientEntry {
    failures: Counter,
    /// Key ids that authenticated successfully from this client since its
    /// failures started being counted: the client's own lockout does not
    /// apply to them (their per-key lockout still does).
    trusted: Vec<KeyTag>,
}

trait Tracked {
    fn counter(&self) -> &Counter;
}

impl Tracked for Counter {
    fn counter(&self) -> &Counter {
        self
    }
}

impl Tracked for ClientEntry {
    fn counter(&self) -> &Counter {
        &self.failures
    }
}

/// A bounded table of lockout entries.
#[derive(Debug)]
struct Table<K, V> {
    name: &'static str,
    capacity: usize,
    entries: HashMap<K, V>,
    /// Keys of `entries`, oldest first: the order in which entries that are
    /// still counting are dropped when room is needed.
    order: VecDeque<K>,
    /// Set when the table is full of active lockouts: no room before then.
    full_until: Option<Instant>,
}

impl<K: Copy + Eq + Hash, V: Tracked> Table<K, V> {
    fn new(name: &'static str, capacity: usize) -> Table<K, V> {
        Table {
            name,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            full_until: None,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key)
    }

    /// The entry of `key`, made with `make` if new; None when the table is
    /// full of active lockouts (then `key` is not tracked).
    fn entry(
        &mut self,
        key: K,
        now: Instant,
        window: Duration,
        make: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        if !self.entries.contains_key(&key) {
            if !self.make_room(now, window) {
                return None;
            }
            self.entries.insert(key, make());
            self.order.push_back(key);
        }
        self.entries.get_mut(&key)
    }

    /// Drops every expired entry.
    fn sweep(&mut self, now: Instant, window: Duration) {
        self.entries
            .retain(|_, entry| !entry.counter().expired(now, window));
        let entries = &self.entries;
        self.order.retain(|key| entries.contains_key(key));
        if self.entries.len() < self.capacity {
            self.full_until = None;
        }
    }

    /// Makes room for one more entry. Drops every expired entry first; if
    /// that frees less than a sixteenth of the table, also the oldest
    /// entries that are still counting (so the next many insertions need no
    /// sweep); never an active lockout. Returns false when every entry is an
    /// active lockout.
    fn make_room(&mut self, now: Instant, window: Duration) -> bool {
        if self.entries.len() < self.capacity {
            return true;
        }
        if self.full_until.is_some_and(|until| now < until) {
            return false;
        }
        self.entries
            .retain(|_, entry| !entry.counter().expired(now, window));
        let target = self.capacity - (self.capacity / 16).max(1);
        let entries = &mut self.entries;
        self.order.retain(|key| {
            let Some(entry) = entries.get(key) else {
                return false;
            };
            if entries.len() > target && entry.counter().blocked(now).is_none() {
                entries.remove(key);
                return false;
            }
            true
        });
        if self.entries.len() < self.capacity {
            self.full_until = None;
            return true;
        }
        let was_full = self.full_until.is_some();
        self.full_until = self
            .entries
            .values()
            .map(|entry| entry.counter().expiry(window))
            .min();
        if !was_full {
            tracing::warn!(
                table = self.name,
                entries = self.entries.len(),
                "the failed-authentication lockout table is full of active lockouts; new clients are not tracked until one expires"
            );
        }
        false
    }
}

/// The failed-authentication lockout. After `key_limit` failed
/// authentications of one key id from one client within `window`, that key
/// id is refused from that client for `window`, before its secret is
/// checked. After `client_limit` failures from one client over all key ids,
/// the client is refused for `window` for every key id except those that
/// authenticated successfully from it since its failures started being
/// counted.
#[derive(Debug)]
struct FailedAuth {
    key_limit: u32,
    client_limit: u32,
    window: Duration,
    keys: RandomState,
    /// Entries in both tables: lets the common case (no failures anywhere)
    /// skip the lock.
    tracked: AtomicUsize,
    tables: Mutex<Tables>,
}

#[derive(Debug)]
struct Tables {
    pairs: Table<(Client, KeyTag), Counter>,
    clients: Table<Client, ClientEntry>,
    /// When expired entries are next dropped, so that once failures are
    /// over the tables empty and requests skip the lock again.
    next_sweep: Option<Instant>,
}

impl Tables {
    fn len(&self) -> usize {
        self.pairs.len().saturating_add(self.clients.len())
    }

    fn sweep_if_due(&mut self, now: Instant, window: Duration) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.pairs.sweep(now, window);
        self.clients.sweep(now, window);
        self.next_sweep = Some(deadline(now, window.min(SWEEP_INTERVAL)));
    }
}

impl FailedAuth {
    fn new(
        limit: u32,
        window: Duration,
        pair_capacity: usize,
        client_capacity: usize,
    ) -> FailedAuth {
        FailedAuth {
            key_limit: limit,
            client_limit: limit.saturating_mul(ADDRESS_LIMIT_FACTOR),
            window: window.min(MAX_WINDOW),
            keys: RandomState::new(),
            tracked: AtomicUsize::new(0),
            tables: Mutex::new(Tables {
                pairs: Table::new("key ids per client", pair_capacity),
                clients: Table::new("clients", client_capacity),
                next_sweep: None,
            }),
        }
    }

    fn tag(&self, key_id: &str) -> KeyTag {
        self.keys.hash_one(key_id)
    }

    fn check(&self, address: IpAddr, key_id: &str, now: Instant) -> Result<(), RetryAfter> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let client = Client::from(address);
        let tag = self.tag(key_id);
        let mut tables = lock(&self.tables);
        tables.sweep_if_due(now, self.window);
        self.tracked.store(tables.len(), Ordering::Relaxed);
        if let Some(wait) = tables
            .pairs
            .get(&(client, tag))
            .and_then(|failures| failures.blocked(now))
        {
            return Err(wait);
        }
        match tables.clients.get(&client) {
            Some(entry) if !entry.trusted.contains(&tag) => match entry.failures.blocked(now) {
                Some(wait) => Err(wait),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn record_failure(&self, address: IpAddr, key_id: &str, now: Instant) -> NewLockouts {
        let client = Client::from(address);
        let tag = self.tag(key_id);
        let window = self.window;
        let mut tables = lock(&self.tables);
        let key = tables
            .pairs
            .entry((client, tag), now, window, || Counter::new(now))
            .is_some_and(|failures| failures.record(now, self.key_limit, window));
        let client = tables
            .clients
            .entry(client, now, window, || ClientEntry {
                failures: Counter::new(now),
                trusted: Vec::new(),
            })
            .is_some_and(|entry| {
                if entry.failures.expired(now, window) {
                    entry.trusted.clear();
                }
                entry.failures.record(now, self.client_limit, window)
            });
        self.tracked.store(tables.len(), Ordering::Relaxed);
        NewLockouts { key, client }
    }

    fn record_success(&self, address: IpAddr, key_id: &str, now: Instant) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let client = Client::from(address);
        let tag = self.tag(key_id);
        let mut tables = lock(&self.tables);
        if let Some(entry) = tables.clients.get_mut(&client)
            && !entry.failures.expired(now, self.window)
            && !entry.trusted.contains(&tag)
            && entry.trusted.len() < MAX_TRUSTED_KEYS
        {
            entry.trusted.push(tag);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests may read the clocks.
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
    const KEY: &str = "tk_attacked";
    const OTHER_KEY: &str = "tk_other";

    fn v6(prefix: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, prefix, 0, 0, 0, 1))
    }

    #[test]
    fn the_per_key_rate_limit_is_off_by_default() {
        let guard = AbuseLimits::new(&Limits::default());
        let now = Instant::now();
        for _ in 0..100_000 {
            assert_eq!(guard.check_key("tk_a", now), Ok(()));
        }
    }

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
            assert_eq!(
                guard.record_auth_failure(A, KEY, now),
                NewLockouts::default()
            );
        }
        assert_eq!(guard.check_client(A, KEY, now), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        assert_eq!(RetryAfter(Duration::ZERO).whole_seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(1)).whole_seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_secs(2)).whole_seconds(), 2);
        assert_eq!(RetryAfter(Duration::from_millis(2001)).whole_seconds(), 3);
        assert_eq!(RetryAfter(Duration::MAX).whole_seconds(), u64::MAX);
    }

    #[test]
    fn a_key_id_is_locked_out_from_an_address_after_the_limit_for_one_window() {
        let guard = AbuseLimits::new(&limits(0, 3, 10));
        let t0 = Instant::now();
        assert_eq!(
            guard.record_auth_failure(A, KEY, t0),
            NewLockouts::default()
        );
        guard.record_auth_failure(A, KEY, t0);
        assert_eq!(guard.check_client(A, KEY, t0), Ok(()));
        let third = guard.record_auth_failure(A, KEY, t0 + Duration::from_secs(1));
        assert_eq!(
            third,
            NewLockouts {
                key: true,
                client: false
            }
        );
        let refused = guard
            .check_client(A, KEY, t0 + Duration::from_millis(1500))
            .unwrap_err();
        assert_eq!(refused.whole_seconds(), 10);
        // Other key ids from the same address, and the same key id from
        // other addresses, are not affected.
        assert_eq!(
            guard.check_client(A, OTHER_KEY, t0 + Duration::from_secs(2)),
            Ok(())
        );
        assert_eq!(
            guard.check_client(B, KEY, t0 + Duration::from_secs(2)),
            Ok(())
        );
        // Locked until the window after the locking failure has passed.
        assert!(
            guard
                .check_client(A, KEY, t0 + Duration::from_secs(10))
                .is_err()
        );
        assert_eq!(
            guard.check_client(A, KEY, t0 + Duration::from_secs(11)),
            Ok(())
        );
        // Then it starts counting afresh.
        let after = t0 + Duration::from_secs(11);
        assert_eq!(
            guard.record_auth_failure(A, KEY, after),
            NewLockouts::default()
        );
        assert_eq!(guard.check_client(A, KEY, after), Ok(()));
    }

    #[test]
    fn failures_spread_over_more_than_a_window_do_not_lock_out() {
        let guard = AbuseLimits::new(&limits(0, 3, 10));
        let t0 = Instant::now();
        for i in 0..30 {
            let now = t0 + Duration::from_secs(6 * i);
            assert_eq!(
                guard.record_auth_failure(A, KEY, now),
                NewLockouts::default(),
                "failure {i}"
            );
            assert_eq!(guard.check_client(A, KEY, now), Ok(()));
        }
    }

    #[test]
    fn an_address_cycling_key_ids_is_stopped_at_ten_times_the_limit() {
        let guard = AbuseLimits::new(&limits(0, 3, 10));
        let now = Instant::now();
        // A key that authenticated from A once A's failures were counted.
        guard.record_auth_failure(A, "tk_guess_0", now);
        guard.record_auth_success(A, KEY, now);
        for i in 1..29 {
            let key_id = format!("tk_guess_{i}");
            assert_eq!(guard.check_client(A, &key_id, now), Ok(()), "guess {i}");
            assert_eq!(
                guard.record_auth_failure(A, &key_id, now),
                NewLockouts::default()
            );
        }
        assert_eq!(guard.check_client(A, "tk_guess_29", now), Ok(()));
        assert!(guard.record_auth_failure(A, "tk_guess_29", now).client);
        // Key ids never used from A successfully are refused before their
        // secret is checked...
        assert!(guard.check_client(A, "tk_guess_30", now).is_err());
        assert!(guard.check_client(A, OTHER_KEY, now).is_err());
        // ...but the key that was in use keeps working, and so does
        // every key id from another address.
        assert_eq!(guard.check_client(A, KEY, now), Ok(()));
        assert_eq!(guard.check_client(B, "tk_guess_30", now), Ok(()));
        // The working key still has its own limit from A.
        for _ in 0..3 {
            guard.record_auth_failure(A, KEY, now);
        }
        assert!(guard.check_client(A, KEY, now).is_err());
        // After the window, A starts afresh.
        let later = now + Duration::from_secs(11);
        assert_eq!(guard.check_client(A, "tk_guess_30", later), Ok(()));
        assert_eq!(guard.check_client(A, KEY, later), Ok(()));
    }

    #[test]
    fn a_success_before_any_failure_earns_no_trust() {
        let guard = AbuseLimits::new(&limits(0, 1, 10));
        let now = Instant::now();
        // Nothing is tracked yet: nothing to remember.
        guard.record_auth_success(A, KEY, now);
        for i in 0..10 {
            guard.record_auth_failure(A, &format!("tk_guess_{i}"), now);
        }
        assert!(guard.check_client(A, KEY, now).is_err());
    }

    #[test]
    fn ipv6_clients_count_per_64_prefix_and_mapped_ipv4_as_ipv4() {
        let guard = AbuseLimits::new(&limits(0, 2, 10));
        let now = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        guard.record_auth_failure(one, KEY, now);
        assert!(guard.record_auth_failure(same_64, KEY, now).key);
        assert!(guard.check_client(one, KEY, now).is_err());
        assert_eq!(guard.check_client(other_64, KEY, now), Ok(()));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        guard.record_auth_failure(A, KEY, now);
        assert!(guard.record_auth_failure(mapped, KEY, now).key);
        assert!(guard.check_client(A, KEY, now).is_err());
        assert_eq!(
            guard.check_client(IpAddr::V6(Ipv6Addr::LOCALHOST), KEY, now),
            Ok(())
        );
    }

    #[test]
    fn cycling_many_64_prefixes_does_not_clear_an_active_lockout() {
        let failed = FailedAuth::new(2, Duration::from_secs(60), 100, 100);
        let now = Instant::now();
        let mine = v6(0xffff);
        failed.record_failure(mine, KEY, now);
        assert!(failed.record_failure(mine, KEY, now).key);
        for i in 0..10_000 {
            failed.record_failure(v6(i), KEY, now + Duration::from_millis(u64::from(i)));
        }
        let tables = lock(&failed.tables);
        assert!(tables.pairs.len() <= 100 && tables.clients.len() <= 100);
        assert_eq!(tables.pairs.order.len(), tables.pairs.len());
        assert_eq!(tables.clients.order.len(), tables.clients.len());
        drop(tables);
        assert!(
            failed
                .check(mine, KEY, now + Duration::from_secs(30))
                .is_err()
        );
    }

    #[test]
    fn a_full_table_drops_expired_entries_before_those_still_counting() {
        let failed = FailedAuth::new(5, Duration::from_secs(10), 100, 1000);
        let t0 = Instant::now();
        let address = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        // 50 old entries, then 50 recent ones that are still counting.
        for i in 0..50 {
            failed.record_failure(address(i), KEY, t0);
        }
        let t1 = t0 + Duration::from_secs(8);
        for i in 50..100 {
            for _ in 0..4 {
                failed.record_failure(address(i), KEY, t1);
            }
        }
        // Once the old ones have expired, a newcomer takes their room and
        // every recent entry keeps its count: one more failure locks it out.
        let t2 = t0 + Duration::from_secs(11);
        failed.record_failure(address(100), KEY, t2);
        assert_eq!(lock(&failed.tables).pairs.len(), 51);
        for i in 50..100 {
            assert!(failed.record_failure(address(i), KEY, t2).key, "entry {i}");
        }
    }

    #[test]
    fn a_table_full_of_active_lockouts_tracks_no_newcomer_until_one_expires() {
        let failed = FailedAuth::new(1, Duration::from_secs(10), 4, 1000);
        let t0 = Instant::now();
        for i in 0..4 {
            assert!(failed.record_failure(v6(i), KEY, t0).key);
        }
        // A newcomer's failures are not tracked: never locked out...
        let t1 = t0 + Duration::from_secs(5);
        // (only the ceiling of the client as a whole, ten times the limit,
        // still applies to it).
        for _ in 0..9 {
            assert!(!failed.record_failure(v6(100), KEY, t1).key);
            assert_eq!(failed.check(v6(100), KEY, t1), Ok(()));
        }
        assert!(failed.record_failure(v6(100), KEY, t1).client);
        // ...and every lockout stays.
        for i in 0..4 {
            assert!(failed.check(v6(i), KEY, t1).is_err(), "lockout {i}");
        }
        // Once the lockouts are over, newcomers are tracked again.
        let t2 = t0 + Duration::from_secs(10);
        assert!(failed.record_failure(v6(100), KEY, t2).key);
        assert!(failed.check(v6(100), KEY, t2).is_err());
    }

    #[test]
    fn once_failures_have_expired_the_tables_empty_and_requests_skip_the_lock() {
        let failed = FailedAuth::new(2, Duration::from_secs(10), 100, 100);
        let t0 = Instant::now();
        for i in 0..20 {
            failed.record_failure(v6(i), KEY, t0);
        }
        assert!(failed.check(v6(0), KEY, t0).is_ok());
        assert_eq!(failed.tracked.load(Ordering::Relaxed), 40);
        // A lockout keeps its entries for as long as it lasts.
        failed.record_failure(A, KEY, t0 + Duration::from_secs(5));
        assert!(
            failed
                .record_failure(A, KEY, t0 + Duration::from_secs(5))
                .key
        );
        assert!(failed.check(A, KEY, t0 + Duration::from_secs(11)).is_err());
        assert_eq!(failed.tracked.load(Ordering::Relaxed), 2);
        assert_eq!(failed.check(A, KEY, t0 + Duration::from_secs(16)), Ok(()));
        assert_eq!(failed.tracked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_window_too_large_for_the_clock_does_not_panic() {
        for window in [Duration::from_secs(u64::MAX), Duration::MAX] {
            let guard = AbuseLimits::new(&Limits {
                auth_failure_limit: 1,
                auth_failure_window: window,
                ..Limits::default()
            });
            let now = Instant::now();
            assert!(guard.record_auth_failure(A, KEY, now).key);
            let wait = guard.check_client(A, KEY, now).unwrap_err();
            assert!(wait.whole_seconds() >= 365 * 24 * 60 * 60);
        }
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
