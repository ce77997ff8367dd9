//! Bounds and tolerances, each a type with a checked constructor.

use crate::error::{Error, Result};

/// Timestamp tolerance: how far in the past and in the future a signed
/// timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    past: u64,
    future: Option<u64>,
}

impl Tolerance {
    /// 300 s in the past and 300 s in the future.
    pub const DEFAULT: Self = Self {
        past: 300,
        future: Some(300),
    };
    /// The largest tolerance accepted on either side (one day).
    pub const MAX_SECS: u64 = 86_400;

    /// Separate past and future tolerances in seconds (each at most [`Tolerance::MAX_SECS`]).
    pub fn new(past_secs: u64, future_secs: u64) -> Result<Self> {
        Self::within_bounds(past_secs, future_secs)?;
        Ok(Self {
            past: past_secs,
            future: Some(future_secs),
        })
    }

    /// The bounds [`Tolerance::new`] checks (outside `new`, which
    /// cargo-mutants never mutates: see docs/MUTATION.md).
    fn within_bounds(past_secs: u64, future_secs: u64) -> Result<()> {
        if past_secs > Self::MAX_SECS || future_secs > Self::MAX_SECS {
            return Err(Error::InvalidConfig("tolerance exceeds one day"));
        }
        Ok(())
    }

    /// Past-only mode, as Stripe's own libraries check: a timestamp older than
    /// `past_secs` is refused, any future timestamp is accepted. Prefer
    /// [`Tolerance::new`] with a replay store.
    pub fn past_only(past_secs: u64) -> Result<Self> {
        if past_secs > Self::MAX_SECS {
            return Err(Error::InvalidConfig("tolerance exceeds one day"));
        }
        Ok(Self {
            past: past_secs,
            future: None,
        })
    }

    /// The last Unix second at which a delivery signed at `ts` passes
    /// [`Tolerance::check`] (`now <= ts + past`; whole seconds, so every
    /// millisecond of that second passes too). Saturates: a timestamp near
    /// `u64::MAX` stays acceptable "forever", which callers refuse.
    pub(crate) fn accepted_until(&self, ts: u64) -> u64 {
        ts.saturating_add(self.past)
    }

    pub(crate) fn check(&self, ts: u64, now: u64) -> Result<()> {
        if ts < now.saturating_sub(self.past) {
            return Err(Error::Stale);
        }
        if let Some(f) = self.future
            && ts > now.saturating_add(f)
        {
            return Err(Error::Stale);
        }
        Ok(())
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Bounds checked before any MAC runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_body: usize,
    pub(crate) max_header: usize,
    pub(crate) max_entries: usize,
}

impl Limits {
    /// Default body limit: 1 MiB.
    pub const DEFAULT_MAX_BODY: usize = 1 << 20;
    /// Default limit on one signature-carrying header value: 4 KiB.
    pub const DEFAULT_MAX_HEADER: usize = 4096;
    /// Default limit on the number of signature entries in a header: 8.
    pub const DEFAULT_MAX_ENTRIES: usize = 8;
    /// Upper bound for `max_entries`.
    pub const MAX_ENTRIES: usize = 64;
    /// Upper bound for `max_header`.
    pub const MAX_HEADER: usize = 64 * 1024;
    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_body: Self::DEFAULT_MAX_BODY,
        max_header: Self::DEFAULT_MAX_HEADER,
        max_entries: Self::DEFAULT_MAX_ENTRIES,
    };

    /// Checked limits: every value non-zero, `max_header` ≤ [`Limits::MAX_HEADER`],
    /// `max_entries` ≤ [`Limits::MAX_ENTRIES`].
    pub fn new(max_body: usize, max_header: usize, max_entries: usize) -> Result<Self> {
        Self::within_bounds(max_body, max_header, max_entries)?;
        Ok(Self {
            max_body,
            max_header,
            max_entries,
        })
    }

    /// The bounds [`Limits::new`] checks (outside `new`, which
    /// cargo-mutants never mutates: see docs/MUTATION.md).
    fn within_bounds(max_body: usize, max_header: usize, max_entries: usize) -> Result<()> {
        if max_body == 0 || max_header == 0 || max_entries == 0 {
            return Err(Error::InvalidConfig("limits must be non-zero"));
        }
        if max_header > Self::MAX_HEADER || max_entries > Self::MAX_ENTRIES {
            return Err(Error::InvalidConfig("limit above its maximum"));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Most keys a keyring holds.
pub const MAX_KEYS: usize = 16;
/// Longest message id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
