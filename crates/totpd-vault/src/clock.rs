//! The one place that reads the clocks.
//!
//! Everything else takes time as a parameter: vault operations take a
//! [`UnixTime`], the abuse limits take an [`Instant`]. Front ends hold a
//! [`Clock`] (in production [`SystemClock`]) and read it at the edge, so a
//! test can pin either clock. clippy's `disallowed-methods` (clippy.toml)
//! refuses `SystemTime::now`, `Instant::now` and `OffsetDateTime::now_utc`
//! anywhere but here.
//!
//! Timers that sleep on tokio (`tokio::time::Instant`, `sleep`) use tokio's
//! clock, which tests can pause and advance, so they are allowed as well.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::UnixTime;

/// A source of the current time, so tests can pin it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock now, in Unix milliseconds.
    fn now(&self) -> UnixTime;

    /// Monotonic now, for measuring intervals (lockout windows, latency).
    fn monotonic(&self) -> Instant {
        monotonic_now()
    }
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one wall-clock read.
    fn now(&self) -> UnixTime {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UnixTime(millis)
    }
}

/// The monotonic clock, for code that measures an interval and has no
/// [`Clock`] at hand (request latency, cache ages).
#[allow(clippy::disallowed_methods)] // The one monotonic-clock read.
pub fn monotonic_now() -> Instant {
    Instant::now()
}

/// Nanoseconds since the Unix epoch, for unique names (never for logic).
#[allow(clippy::disallowed_methods)] // The wall clock, for uniqueness only.
pub fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// A wall clock that moves only when told to, for tests of time windows
/// (verification throttling, expiry) without sleeping. Shared by every
/// front end that holds it, so several in-process nodes agree on the time.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: UnixTime) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(now.0))
    }

    /// Moves the clock forward by `millis` (or back, for a negative value).
    pub fn advance(&self, millis: i64) {
        self.0
            .fetch_add(millis, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
