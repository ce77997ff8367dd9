//! The result of one rate-limit decision.

use std::time::Duration;

use crate::policy::MAX_TIERS;

/// Why a request was or was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every applicable tier admitted the request; quota was consumed on all.
    Allowed,
    /// `tier` denied it (the tier with the longest wait when several did);
    /// no tier consumed quota. Retrying after `retry_after` with no other
    /// traffic succeeds. HTTP: `429`.
    Denied {
        /// The denying tier's name.
        tier: &'static str,
        /// Time until the request would be admitted.
        retry_after: Duration,
    },
    /// A fail-closed tier's shared backend is unavailable. HTTP: `503`.
    Unavailable {
        /// The fail-closed tier's name.
        tier: &'static str,
        /// Suggested wait (the breaker's remaining cool-down, at least 1 s).
        retry_after: Duration,
    },
}

/// One tier's state after a decision, for the `RateLimit` headers. Small on
/// purpose (a decision is returned by value on every request): the tier's
/// name, quota and period are in its [`crate::Policy`], found by
/// [`TierStatus::tier`] in the limiter's [`crate::Tiers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierStatus {
    tier: u8,
    remaining: u32,
    reset_us: u64,
}

impl TierStatus {
    #[inline]
    pub(crate) fn new(tier: usize, remaining: u32, reset_us: u64) -> Self {
        TierStatus {
            tier: u8::try_from(tier).unwrap_or(u8::MAX),
            remaining,
            reset_us,
        }
    }

    /// Index of the tier in its [`crate::Tiers`] set.
    #[inline]
    pub fn tier(&self) -> usize {
        usize::from(self.tier)
    }

    /// Units usable now (after this decision).
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Time until the key is back to its full burst.
    #[inline]
    pub fn reset(&self) -> Duration {
        Duration::from_micros(self.reset_us)
    }
}

/// A decision: the outcome and the state of every applicable tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    outcome: Outcome,
    len: usize,
    tiers: [TierStatus; MAX_TIERS],
}

impl Decision {
    pub(crate) fn new(outcome: Outcome) -> Self {
        Decision {
            outcome,
            len: 0,
            tiers: [TierStatus {
                tier: 0,
                remaining: 0,
                reset_us: 0,
            }; MAX_TIERS],
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn push(&mut self, s: TierStatus) {
        if let Some(slot) = self.tiers.get_mut(self.len) {
            *slot = s;
            self.len += 1;
        }
    }

    /// Put the status at position `i` (in tier order), counting every
    /// position up to it as filled.
    #[inline]
    pub(crate) fn set(&mut self, i: usize, s: TierStatus) {
        if let Some(slot) = self.tiers.get_mut(i) {
            *slot = s;
            self.len = self.len.max(i + 1);
        }
    }

    pub(crate) fn set_outcome(&mut self, o: Outcome) {
        self.outcome = o;
    }

    /// The outcome.
    #[inline]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the request was admitted.
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// The denying (or unavailable) tier, if any.
    #[inline]
    pub fn denied_by(&self) -> Option<&'static str> {
        match self.outcome {
            Outcome::Allowed => None,
            Outcome::Denied { tier, .. } | Outcome::Unavailable { tier, .. } => Some(tier),
        }
    }

    /// The wait before a retry can succeed (zero when allowed).
    #[inline]
    pub fn retry_after(&self) -> Duration {
        match self.outcome {
            Outcome::Allowed => Duration::ZERO,
            Outcome::Denied { retry_after, .. } | Outcome::Unavailable { retry_after, .. } => {
                retry_after
            }
        }
    }

    /// The applicable tiers' states, in tier order.
    #[inline]
    pub fn tiers(&self) -> &[TierStatus] {
        &self.tiers[..self.len]
    }
}
