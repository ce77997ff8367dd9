//! Injected time: record times and checkpoint intervals come from a [`Clock`].

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// A point in time: microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Parse an RFC 3339 time (`2026-11-24T03:00:00.123456Z`), truncated to microseconds.
    ///
    /// # Errors
    /// [`Error::Malformed`](crate::Error::Malformed) when it is not RFC 3339 or
    /// out of range.
    pub fn parse_rfc3339(s: &str) -> crate::Result<Self> {
        let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| crate::error::malformed("timestamp"))?;
        let micros = t.unix_timestamp_nanos() / 1000;
        i64::try_from(micros)
            .map(Self)
            .map_err(|_| crate::error::malformed("timestamp"))
    }

    /// RFC 3339 text in UTC with microseconds, for reports.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("@{}us", self.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A source of the current time. Implement it to control time in tests or to use
/// a trusted time source.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock (UTC, microsecond resolution).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
        Timestamp(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    /// A fake clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(AtomicI64::new(t.0))
    }

    /// Set the time.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Move the time forward by `micros`.
    pub fn advance_micros(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_microseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-24T03:00:00.123456Z").unwrap();
        assert_eq!(t.unix_micros() % 1_000_000, 123_456);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(Timestamp::from_unix_micros(10));
        assert_eq!(c.now().unix_micros(), 10);
        c.advance_micros(5);
        assert_eq!(c.now().unix_micros(), 15);
    }
}
