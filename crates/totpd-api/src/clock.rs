//! The one place that reads the wall clock.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use totpd_vault::UnixTime;

/// A source of the current time, so tests can pin it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in Unix milliseconds.
    fn now(&self) -> UnixTime;
}

/// The operating system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UnixTime(millis)
    }
}
