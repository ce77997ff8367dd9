//! Injected time: every tolerance, expiry and lease is computed from a [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in whole seconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;

    /// Milliseconds since the Unix epoch (default: seconds × 1000).
    fn now_unix_millis(&self) -> u64 {
        self.now_unix().saturating_mul(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        // A clock before 1970 is treated as the epoch: every timestamp then looks
        // future-dated and is refused by the future tolerance (fails closed).
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn now_unix_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to: for tests and for the CLI's `--now`.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock reading `unix` seconds.
    pub fn new(unix: u64) -> Self {
        Self {
            millis: AtomicU64::new(unix.saturating_mul(1000)),
        }
    }

    /// Set the time to `unix` seconds.
    pub fn set(&self, unix: u64) {
        self.millis
            .store(unix.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Move the time forward by `millis` milliseconds.
    pub fn advance_millis(&self, millis: u64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Move the time forward by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.advance_millis(secs.saturating_mul(1000));
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.millis.load(Ordering::SeqCst) / 1000
    }

    fn now_unix_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_unix(&self) -> u64 {
        (**self).now_unix()
    }

    fn now_unix_millis(&self) -> u64 {
        (**self).now_unix_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(100);
        assert_eq!(c.now_unix(), 100);
        c.advance_millis(1500);
        assert_eq!(c.now_unix(), 101);
        assert_eq!(c.now_unix_millis(), 101_500);
        c.set(7);
        assert_eq!(c.now_unix(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix() > 1_577_836_800);
    }
}
