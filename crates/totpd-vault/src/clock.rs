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
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::UnixTime;

/// What [`Clock::sleep_until`] returns.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of the current time, so tests can pin it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock now, in Unix milliseconds.
    fn now(&self) -> UnixTime;

    /// Waits until this clock reads `at` or later (at once if it already
    /// does). Dropping the future ends the wait and leaves nothing behind.
    /// The default sleeps on tokio's timer for the difference, so a clock
    /// that jumps meanwhile may end it early or late: callers check
    /// [`Clock::now`] again afterwards.
    fn sleep_until(&self, at: UnixTime) -> Sleep<'_> {
        let wait = u64::try_from(at.0.saturating_sub(self.now().0)).unwrap_or(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }

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

/// A wall clock that only moves when told to ([`ManualClock::set`],
/// [`ManualClock::advance`]), for tests of time-dependent behaviour that
/// must not depend on how fast the machine is. Its monotonic clock is the
/// real one.
#[derive(Debug)]
pub struct ManualClock {
    now: tokio::sync::watch::Sender<i64>,
}

impl ManualClock {
    /// A clock that reads `start` until it is moved.
    pub fn new(start: UnixTime) -> ManualClock {
        ManualClock {
            now: tokio::sync::watch::Sender::new(start.0),
        }
    }

    /// Sets the time (backwards too), waking every sleeper whose time has
    /// come.
    pub fn set(&self, now: UnixTime) {
        self.now.send_replace(now.0);
    }

    /// Moves the time forward by `millis`.
    pub fn advance(&self, millis: i64) {
        self.now
            .send_modify(|now| *now = now.saturating_add(millis));
    }

    /// How many [`Clock::sleep_until`] futures of this clock are waiting
    /// now: a wait whose future was dropped is no longer counted.
    pub fn sleepers(&self) -> usize {
        self.now.receiver_count()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(*self.now.borrow())
    }

    fn sleep_until(&self, at: UnixTime) -> Sleep<'_> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, which outlives this
            // borrow of it, so the wait ends only when the time comes.
            let _ = now.wait_for(|now| *now >= at.0).await;
        })
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
