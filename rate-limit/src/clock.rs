//! Injected time: every limiter and breaker reads the time from a [`Clock`], so
//! tests drive it with a [`ManualClock`] instead of sleeping.
//!
//! Limiters work in whole microseconds since the Unix epoch (the resolution of
//! Redis `TIME`, so both backends compute with the same numbers). A clock that
//! reads before the epoch is treated as the epoch; a clock that goes backwards
//! is clamped per key shard (time stands still until it catches up), which can
//! only delay admissions, never add any.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Microseconds since the Unix epoch (0 before it). Override only to make
    /// it faster; it must agree with [`Clock::now`].
    #[inline]
    fn now_micros(&self) -> u64 {
        unix_micros(self.now())
    }
}

/// Wall-clock time that advances with the CPU's time-stamp counter (via
/// `quanta`, as `governor` does): anchored to the system clock when created,
/// then monotonic, and several times cheaper to read than the system clock.
/// It does not follow later steps of the system clock (an NTP step back
/// cannot refill a limiter; a step forward does not drain one). The default
/// clock of [`crate::MemoryLimiter::new`].
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    start: quanta::Instant,
    anchor: SystemTime,
    anchor_us: u64,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock {
    /// A clock anchored at the current system time.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let start = clock.now();
        let anchor = SystemTime::now();
        MonotonicClock {
            clock,
            start,
            anchor,
            anchor_us: unix_micros(anchor),
        }
    }

    #[inline]
    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.start)
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> SystemTime {
        self.anchor + self.elapsed()
    }

    #[inline]
    fn now_micros(&self) -> u64 {
        let us = u64::try_from(self.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.anchor_us.saturating_add(us)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    #[inline]
    fn now_micros(&self) -> u64 {
        (**self).now_micros()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    #[inline]
    fn now_micros(&self) -> u64 {
        (**self).now_micros()
    }
}

/// A clock that moves only when told to, in microseconds: for tests. It can be
/// set backwards, to test what happens when the system clock steps back.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock reading `unix_secs` seconds after the epoch.
    pub fn new(unix_secs: u64) -> Self {
        Self::from_micros(unix_secs.saturating_mul(1_000_000))
    }

    /// A clock reading `micros` microseconds after the epoch.
    pub fn from_micros(micros: u64) -> Self {
        Self {
            micros: AtomicU64::new(micros),
        }
    }

    /// Set the time to `micros` microseconds after the epoch (may go backwards).
    pub fn set_micros(&self, micros: u64) {
        self.micros.store(micros, Ordering::SeqCst);
    }

    /// The time in microseconds after the epoch.
    pub fn micros(&self) -> u64 {
        self.micros.load(Ordering::SeqCst)
    }

    /// Move the time forward by `by` (saturating; sub-microsecond parts dropped).
    pub fn advance(&self, by: Duration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.advance_micros(us);
    }

    /// Move the time forward by `us` microseconds.
    pub fn advance_micros(&self, us: u64) {
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(us))
            });
    }

    /// Move the time backwards by `us` microseconds (saturating at the epoch).
    pub fn rewind_micros(&self, us: u64) {
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_sub(us))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.micros())
    }
}

/// Microseconds since the Unix epoch; a time before the epoch reads as 0.
#[inline]
pub(crate) fn unix_micros(t: SystemTime) -> u64 {
    // Seconds × 10^6 + sub-second micros: no 128-bit arithmetic on the hot path.
    t.duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(d.subsec_micros()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_can_go_back() {
        let c = ManualClock::new(100);
        assert_eq!(unix_micros(c.now()), 100_000_000);
        c.advance(Duration::from_millis(1));
        assert_eq!(c.micros(), 100_001_000);
        c.rewind_micros(2_000);
        assert_eq!(c.micros(), 99_999_000);
        c.rewind_micros(u64::MAX);
        assert_eq!(c.micros(), 0);
    }

    #[test]
    fn monotonic_clock_tracks_the_system_clock_and_never_goes_back() {
        let m = MonotonicClock::new();
        let a = m.now_micros();
        let sys = unix_micros(SystemClock.now());
        assert!(sys.abs_diff(a) < 1_000_000, "anchored to the system clock");
        let b = m.now_micros();
        assert!(b >= a);
        assert!(unix_micros(m.now()).abs_diff(m.now_micros()) < 1_000_000);
    }

    #[test]
    fn before_epoch_reads_as_zero() {
        assert_eq!(unix_micros(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(unix_micros(SystemClock.now()) > 1_577_836_800_000_000);
    }
}
