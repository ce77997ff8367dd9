//! Policies and tier sets as data, with checked constructors: a policy that
//! cannot be enforced (zero quota, zero burst, a per-unit interval shorter than
//! the 1 µs clock resolution, numbers that overflow the arithmetic) cannot be
//! built.
//!
//! # The contract, precisely
//!
//! A policy "N per T with burst B" is enforced with GCRA over an *emission
//! interval* τ (whole microseconds, [`Policy::emission_interval`]) and a
//! tolerance (B − 1)·τ. For any half-open window `[s, s + W)` of length W > 0,
//! the units admitted for one key are at most
//!
//! ```text
//! B + ceil(W / τ) − 1            (Policy::max_in_window(W))
//! ```
//!
//! In [`Mode::Gcra`] τ = ceil(T / N): a fresh key may use B units at once and
//! then N per T, so a window of length T can hold up to B + N − 1 units (not N).
//! In [`Mode::Strict`] τ = ceil(T / (N − B + 1)) (B ≤ N required), which makes
//! the same bound at most N for every window of length T: "at most N in any
//! window of length T" holds for every arrival trace, at the price of a
//! sustained rate of (N − B + 1) per T. With B = 1 the sustained rate is N per T.
//!
//! Both contracts are checked by property tests on random traces.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::{Error, Result};

/// Longest period a policy may have (one leap year).
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);
/// Largest burst span (B·τ) a policy may have: ten years. Keeps every
/// timestamp the Redis script computes below 2^53 µs, so its floating-point
/// numbers are exact until the year 2255.
pub const MAX_SPAN: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// Most tiers in one [`Tiers`] set.
pub const MAX_TIERS: usize = 8;
/// Longest policy name.
pub const MAX_NAME_LEN: usize = 32;

/// What a tier is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Client IP (IPv6 grouped by prefix, /64 by default).
    Ip,
    /// Account name, normalised then hashed.
    Account,
    /// Authenticated session.
    Session,
    /// Tenant.
    Tenant,
    /// Webhook source (provider or endpoint).
    WebhookSource,
    /// An application-defined key kind, named (e.g. `"model"` for AI budgets).
    Custom(&'static str),
}

impl KeyKind {
    /// A short stable label (used in Redis key names).
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Ip => "ip",
            KeyKind::Account => "acct",
            KeyKind::Session => "sess",
            KeyKind::Tenant => "tenant",
            KeyKind::WebhookSource => "src",
            KeyKind::Custom(name) => name,
        }
    }
}

/// Which contract a policy enforces (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Plain GCRA: B at once, then N per T (a window of T may hold B + N − 1).
    #[default]
    Gcra,
    /// At most N units in any window of length T.
    Strict,
}

/// What a tier does when its shared backend (Redis) is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Deny with `503` and `Retry-After` (the default: an outage never lifts a limit).
    #[default]
    FailClosed,
    /// Fall back to the in-process limiter of this instance (the limit then
    /// holds per instance, not across instances).
    FailOpen,
}

/// Whether a tier's remaining quota is shown in the `RateLimit` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Shown to every caller.
    Always,
    /// Shown only to callers marked trusted (tenant-level numbers would tell
    /// one caller about the traffic of the others).
    TrustedOnly,
}

/// One rate-limit policy. Build with [`Policy::new`] and the checked setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    name: &'static str,
    quota: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
    kind: KeyKind,
    mode: Mode,
    failure: FailureMode,
    disclosure: Disclosure,
    interval_us: u64,
    tolerance_us: u64,
}

/// The label of a custom key kind follows the policy-name rule (checked
/// outside `Policy::new`, which cargo-mutants never mutates: see
/// docs/MUTATION.md).
fn check_kind(kind: KeyKind) -> Result<()> {
    if let KeyKind::Custom(label) = kind {
        check_name(label)?;
    }
    Ok(())
}

/// Who sees a new policy's state in headers: a tenant-wide tier only to
/// trusted callers (its remaining quota tells about other users' traffic),
/// any other tier to everyone.
fn default_disclosure(kind: KeyKind) -> Disclosure {
    if kind == KeyKind::Tenant {
        Disclosure::TrustedOnly
    } else {
        Disclosure::Always
    }
}

impl Policy {
    /// `quota` units per `period`, keyed by `kind`, burst = quota, GCRA mode,
    /// fail-closed. `name` is 1..=32 of `[a-z0-9_.-]` (it appears in headers
    /// and Redis keys).
    pub fn new(
        name: &'static str,
        quota: NonZeroU32,
        period: Duration,
        kind: KeyKind,
    ) -> Result<Self> {
        check_name(name)?;
        check_kind(kind)?;
        let disclosure = default_disclosure(kind);
        let mut p = Policy {
            name,
            quota,
            period,
            burst: quota,
            kind,
            mode: Mode::Gcra,
            failure: FailureMode::FailClosed,
            disclosure,
            interval_us: 0,
            tolerance_us: 0,
        };
        p.derive()?;
        Ok(p)
    }

    /// Set the burst (units usable at once by a fresh key).
    pub fn with_burst(mut self, burst: NonZeroU32) -> Result<Self> {
        self.burst = burst;
        self.derive()?;
        Ok(self)
    }

    /// Switch to [`Mode::Strict`] ("at most N in any window of T"); needs burst ≤ quota.
    pub fn strict(mut self) -> Result<Self> {
        self.mode = Mode::Strict;
        self.derive()?;
        Ok(self)
    }

    /// Set the failure mode for shared backends.
    pub fn on_backend_failure(mut self, mode: FailureMode) -> Self {
        self.failure = mode;
        self
    }

    /// Set who may see this tier's remaining quota.
    pub fn disclosure(mut self, d: Disclosure) -> Self {
        self.disclosure = d;
        self
    }

    fn derive(&mut self) -> Result<()> {
        if self.period > MAX_PERIOD {
            return Err(Error::InvalidConfig("period longer than MAX_PERIOD"));
        }
        let period_us = u64::try_from(self.period.as_micros())
            .map_err(|_| Error::InvalidConfig("period out of range"))?;
        let quota = u64::from(self.quota.get());
        let burst = u64::from(self.burst.get());
        // Units the interval divides the period into.
        let slots = match self.mode {
            Mode::Gcra => quota,
            Mode::Strict => {
                if burst > quota {
                    return Err(Error::InvalidConfig("strict mode needs burst <= quota"));
                }
                quota - burst + 1
            }
        };
        if period_us < slots {
            return Err(Error::InvalidConfig(
                "period per unit is shorter than the 1 microsecond clock resolution",
            ));
        }
        let interval = period_us.div_ceil(slots);
        let span = interval
            .checked_mul(burst)
            .filter(|s| u128::from(*s) <= MAX_SPAN.as_micros())
            .ok_or(Error::InvalidConfig(
                "burst x interval longer than MAX_SPAN",
            ))?;
        self.interval_us = interval;
        self.tolerance_us = span - interval;
        Ok(())
    }

    /// The policy name.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Units per period (N).
    pub fn quota(&self) -> NonZeroU32 {
        self.quota
    }
    /// The period (T).
    pub fn period(&self) -> Duration {
        self.period
    }
    /// Units a fresh key may use at once (B).
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }
    /// What the tier is keyed by.
    pub fn key_kind(&self) -> KeyKind {
        self.kind
    }
    /// The enforced contract.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Behaviour when a shared backend is down.
    pub fn failure_mode(&self) -> FailureMode {
        self.failure
    }
    /// Who may see this tier's remaining quota.
    pub fn disclosure_mode(&self) -> Disclosure {
        self.disclosure
    }
    /// The emission interval τ (whole microseconds).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }
    pub(crate) fn interval_us(&self) -> u64 {
        self.interval_us
    }
    pub(crate) fn tolerance_us(&self) -> u64 {
        self.tolerance_us
    }

    /// `Err(WeightExceedsBurst)` when `n` units could never pass this tier.
    pub(crate) fn check_weight(&self, n: NonZeroU32) -> Result<()> {
        if n > self.burst {
            return Err(Error::WeightExceedsBurst {
                tier: self.name,
                weight: n.get(),
                burst: self.burst.get(),
            });
        }
        Ok(())
    }

    /// The most units one key can be admitted in any half-open window of
    /// length `window`: B + ceil(W / τ) − 1 (0 for an empty window).
    pub fn max_in_window(&self, window: Duration) -> u64 {
        let w = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        if w == 0 {
            return 0;
        }
        // Saturating: for a window near `u64::MAX` µs and τ = 1 µs the plain
        // sum overflowed (a panic in debug builds, a wrapped tiny bound in release).
        u64::from(self.burst.get() - 1).saturating_add(w.div_ceil(self.interval_us))
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(
            "names are 1..=32 characters of [a-z0-9_.-]",
        ))
    }
}

/// An ordered set of tiers: a request passes only if every applicable tier
/// passes, all-or-nothing.
#[derive(Debug, Clone)]
pub struct Tiers {
    policies: Vec<Policy>,
}

impl Tiers {
    /// 1..=[`MAX_TIERS`] policies with distinct names.
    pub fn new(policies: Vec<Policy>) -> Result<Self> {
        Self::check_set(&policies)?;
        Ok(Tiers { policies })
    }

    /// The rules [`Tiers::new`] checks (outside `new`, which cargo-mutants
    /// never mutates: see docs/MUTATION.md).
    fn check_set(policies: &[Policy]) -> Result<()> {
        if policies.is_empty() || policies.len() > MAX_TIERS {
            return Err(Error::InvalidConfig("a tier set holds 1..=8 policies"));
        }
        for (i, p) in policies.iter().enumerate() {
            if policies[..i].iter().any(|q| q.name == p.name) {
                return Err(Error::InvalidConfig("tier names must be distinct"));
            }
        }
        Ok(())
    }

    /// The policies, in order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The number of tiers.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Always false (a tier set is never empty).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    #[test]
    fn invalid_policies_cannot_be_built() {
        let s = Duration::from_secs(1);
        assert!(Policy::new("", nz(1), s, KeyKind::Ip).is_err());
        assert!(Policy::new("Upper", nz(1), s, KeyKind::Ip).is_err());
        assert!(Policy::new("a b", nz(1), s, KeyKind::Ip).is_err());
        assert!(Policy::new("x", nz(1), Duration::ZERO, KeyKind::Ip).is_err());
        assert!(Policy::new("x", nz(10), Duration::from_micros(9), KeyKind::Ip).is_err());
        assert!(Policy::new("x", nz(1), MAX_PERIOD + s, KeyKind::Ip).is_err());
        let p = Policy::new("x", nz(10), s, KeyKind::Ip).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.clone().with_burst(nz(u32::MAX)).is_err());
        assert!(
            p.clone()
                .with_burst(nz(11))
                .and_then(Policy::strict)
                .is_err()
        );
        assert!(Policy::new("x", nz(1), s, KeyKind::Custom("Bad")).is_err());
        assert!(Tiers::new(vec![]).is_err());
        assert!(Tiers::new(vec![p.clone(), p]).is_err());
    }

    #[test]
    fn a_tier_set_holds_up_to_max_tiers_distinct_policies() {
        const NAMES: [&str; MAX_TIERS + 1] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"];
        let tiers = |n: usize| {
            Tiers::new(
                NAMES[..n]
                    .iter()
                    .map(|name| {
                        Policy::new(name, nz(10), Duration::from_secs(1), KeyKind::Ip)
                            .unwrap_or_else(|e| panic!("{e}"))
                    })
                    .collect(),
            )
        };
        assert_eq!(MAX_TIERS, 8);
        assert_eq!(tiers(1).map(|t| t.len()).ok(), Some(1));
        assert_eq!(tiers(MAX_TIERS).map(|t| t.len()).ok(), Some(MAX_TIERS));
        assert!(tiers(MAX_TIERS + 1).is_err());
    }

    #[test]
    fn period_limit_is_one_leap_year_inclusive_and_span_ten_leap_years() {
        assert_eq!(MAX_PERIOD, Duration::from_secs(31_622_400));
        assert_eq!(MAX_SPAN, Duration::from_secs(316_224_000));
        // The limit itself is a valid period; one microsecond more is not.
        assert!(Policy::new("x", nz(1), MAX_PERIOD, KeyKind::Ip).is_ok());
        let over = MAX_PERIOD + Duration::from_micros(1);
        assert!(Policy::new("x", nz(1), over, KeyKind::Ip).is_err());
    }

    #[test]
    fn strict_mode_accepts_burst_equal_to_quota() {
        let p = Policy::new("x", nz(10), Duration::from_secs(1), KeyKind::Ip)
            .and_then(|p| p.with_burst(nz(10)))
            .and_then(Policy::strict)
            .unwrap_or_else(|e| panic!("{e}"));
        // N − B + 1 = 1 slot: τ is the whole period, and a window of T holds N.
        assert_eq!(p.emission_interval(), Duration::from_secs(1));
        assert_eq!(p.max_in_window(Duration::from_secs(1)), 10);
        assert_eq!(p.mode(), Mode::Strict);
    }

    #[test]
    fn tier_set_reports_its_size_and_is_never_empty() {
        let s = Duration::from_secs(1);
        let a = Policy::new("a", nz(1), s, KeyKind::Ip).unwrap_or_else(|e| panic!("{e}"));
        let b = Policy::new("b", nz(1), s, KeyKind::Tenant).unwrap_or_else(|e| panic!("{e}"));
        let t = Tiers::new(vec![a, b]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.policies().len(), 2);
        assert!(!t.is_empty());
    }

    #[test]
    fn key_kind_labels_are_the_stable_redis_key_parts() {
        // Redis key names are built from these: changing one orphans every
        // stored key (a silent quota reset on deploy).
        assert_eq!(KeyKind::Ip.label(), "ip");
        assert_eq!(KeyKind::Account.label(), "acct");
        assert_eq!(KeyKind::Session.label(), "sess");
        assert_eq!(KeyKind::Tenant.label(), "tenant");
        assert_eq!(KeyKind::WebhookSource.label(), "src");
        assert_eq!(KeyKind::Custom("model").label(), "model");
    }

    #[test]
    fn interval_and_bound_follow_the_documented_formulas() {
        let p = Policy::new("x", nz(10), Duration::from_secs(5), KeyKind::Session)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.emission_interval(), Duration::from_millis(500));
        // B + ceil(T/τ) − 1 = 10 + 10 − 1.
        assert_eq!(p.max_in_window(Duration::from_secs(5)), 19);
        let s = p
            .clone()
            .with_burst(nz(4))
            .and_then(Policy::strict)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.max_in_window(Duration::from_secs(5)), 10);
        assert_eq!(s.emission_interval(), Duration::from_micros(714_286));
        assert_eq!(
            Policy::new("t", nz(1), Duration::from_secs(1), KeyKind::Tenant)
                .map(|p| p.disclosure_mode())
                .ok(),
            Some(Disclosure::TrustedOnly)
        );
    }

    /// Overflow at the u64 edges of the window bound.
    ///
    /// Root cause: `max_in_window` added the burst to `ceil(W / τ)` with plain
    /// `+`; with τ = 1 µs and a window of `Duration::MAX` (saturated to
    /// `u64::MAX` µs) the sum overflowed: a panic in debug builds and a wrapped,
    /// far too small bound in release. The sum saturates now.
    #[test]
    fn overflow_window_bound_saturates_at_u64_edges() {
        let p = Policy::new("x", nz(1_000_000), Duration::from_secs(1), KeyKind::Ip)
            .and_then(|p| p.with_burst(nz(7)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.emission_interval(), Duration::from_micros(1));
        assert_eq!(p.max_in_window(Duration::MAX), u64::MAX);
        assert_eq!(p.max_in_window(Duration::from_micros(u64::MAX)), u64::MAX);
        assert_eq!(
            p.max_in_window(Duration::from_micros(u64::MAX - 7)),
            u64::MAX - 1
        );
        assert_eq!(p.max_in_window(Duration::from_micros(1)), 7);
    }
}
