//! The result of one rate-limit decision.

use std::time::Duration;

use crate::policy::{Disclosure, MAX_TIERS, Policy};

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

/// One tier's state after a decision, for the `RateLimit` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStatus {
    /// Tier name.
    pub name: &'static str,
    /// Quota (N) and period (T) of the policy.
    pub quota: u32,
    /// The policy period.
    pub period: Duration,
    /// Units usable now (after this decision).
    pub remaining: u32,
    /// Time until the key is back to its full burst.
    pub reset: Duration,
    /// Who may see these numbers.
    pub disclosure: Disclosure,
}

impl TierStatus {
    pub(crate) fn new(p: &Policy, remaining: u32, reset_us: u64) -> Self {
        TierStatus {
            name: p.name(),
            quota: p.quota().get(),
            period: p.period(),
            remaining,
            reset: Duration::from_micros(reset_us),
            disclosure: p.disclosure_mode(),
        }
    }
}

const EMPTY: TierStatus = TierStatus {
    name: "",
    quota: 0,
    period: Duration::ZERO,
    remaining: 0,
    reset: Duration::ZERO,
    disclosure: Disclosure::Always,
};

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
            tiers: [EMPTY; MAX_TIERS],
        }
    }

    pub(crate) fn push(&mut self, s: TierStatus) {
        if let Some(slot) = self.tiers.get_mut(self.len) {
            *slot = s;
            self.len += 1;
        }
    }

    pub(crate) fn set_outcome(&mut self, o: Outcome) {
        self.outcome = o;
    }

    /// The outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the request was admitted.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// The denying (or unavailable) tier, if any.
    pub fn denied_by(&self) -> Option<&'static str> {
        match self.outcome {
            Outcome::Allowed => None,
            Outcome::Denied { tier, .. } | Outcome::Unavailable { tier, .. } => Some(tier),
        }
    }

    /// The wait before a retry can succeed (zero when allowed).
    pub fn retry_after(&self) -> Duration {
        match self.outcome {
            Outcome::Allowed => Duration::ZERO,
            Outcome::Denied { retry_after, .. } | Outcome::Unavailable { retry_after, .. } => {
                retry_after
            }
        }
    }

    /// The applicable tiers' states, in tier order.
    pub fn tiers(&self) -> &[TierStatus] {
        &self.tiers[..self.len]
    }
}
