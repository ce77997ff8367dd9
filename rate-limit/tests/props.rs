//! Property tests with a fake clock: both contracts, agreement with governor,
//! convergence, no state change on denial, exact Retry-After, clock steps back.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use hisn_rate_limit::*;
use proptest::prelude::*;

use crate::common::*;

#[derive(Debug, Clone)]
struct Spec {
    quota: u32,
    period_us: u64,
    burst: u32,
    strict: bool,
}

impl Spec {
    fn policy(&self) -> Option<Policy> {
        let p = Policy::new(
            "p",
            nz(self.quota),
            Duration::from_micros(self.period_us),
            KeyKind::Session,
        )
        .ok()?
        .with_burst(nz(self.burst))
        .ok()?;
        if self.strict {
            p.strict().ok()
        } else {
            Some(p)
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (1u32..20, 1_000u64..10_000_000, 1u32..20, any::<bool>()).prop_map(
        |(quota, period_us, burst, strict)| {
            // Strict mode needs burst <= quota.
            let burst = if strict { burst.min(quota) } else { burst };
            Spec {
                quota,
                period_us,
                burst,
                strict,
            }
        },
    )
}

/// Arrivals as (gap before it in µs as a fraction of the period in 1/64ths, units).
fn trace() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec((0u64..48, 1u32..4), 1..160)
}

/// Run a trace on one key; returns (time, units) of each admission.
fn run(
    l: &MemoryLimiter<Arc<ManualClock>>,
    clock: &ManualClock,
    p: &Policy,
    tr: &[(u64, u32)],
) -> Vec<(u64, u32)> {
    let period = u64::try_from(p.period().as_micros()).unwrap();
    let mut admitted = Vec::new();
    for &(gap, n) in tr {
        clock.advance_micros(gap * period / 64);
        let n = n.min(p.burst().get());
        if l.check_n(&session("k"), nz(n)).unwrap().is_allowed() {
            admitted.push((clock.micros(), n));
        }
    }
    admitted
}

/// The most units admitted in any half-open window [s, s + w) starting at an admission.
fn max_in_any_window(admitted: &[(u64, u32)], w: u64) -> u64 {
    admitted
        .iter()
        .map(|&(s, _)| {
            admitted
                .iter()
                .filter(|&&(t, _)| t >= s && t < s + w)
                .map(|&(_, n)| u64::from(n))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// GCRA: at most B + ceil(W/τ) − 1 units in any window W; strict: at most N in any window T.
    #[test]
    fn window_contracts_hold_for_random_traces(s in spec(), tr in trace(), wfrac in 1u64..256) {
        let Some(p) = s.policy() else { return Ok(()) };
        let (l, clock) = limiter(vec![p.clone()]);
        let admitted = run(&l, &clock, &p, &tr);
        let w = (s.period_us * wfrac / 64).max(1);
        prop_assert!(max_in_any_window(&admitted, w) <= p.max_in_window(Duration::from_micros(w)));
        let in_period = max_in_any_window(&admitted, s.period_us);
        if s.strict {
            prop_assert!(in_period <= u64::from(s.quota), "strict: {in_period} > {}", s.quota);
        } else {
            prop_assert!(in_period <= u64::from(s.burst) + u64::from(s.quota) - 1 + 1);
        }
    }

    /// The in-process GCRA decides exactly like governor's for the same quota.
    #[test]
    fn decisions_match_governor(s in spec(), tr in trace()) {
        let Some(p) = s.policy() else { return Ok(()) };
        let (l, clock) = limiter(vec![p.clone()]);
        let quota = Quota::with_period(p.emission_interval()).unwrap().allow_burst(p.burst());
        let gclock = FakeRelativeClock::default();
        let gov = RateLimiter::direct_with_clock(quota, gclock.clone());
        let period = s.period_us;
        for &(gap, n) in &tr {
            let step = gap * period / 64;
            clock.advance_micros(step);
            gclock.advance(Duration::from_micros(step));
            let n = n.min(p.burst().get());
            let ours = l.check_n(&session("k"), nz(n)).unwrap().is_allowed();
            let theirs = matches!(gov.check_n(NonZeroU32::new(n).unwrap()), Ok(Ok(())));
            prop_assert_eq!(ours, theirs);
        }
    }

    /// Sustained traffic faster than the policy converges to its rate.
    #[test]
    fn sustained_rate_converges(s in spec(), periods in 2u64..20, per in 2u64..8) {
        let Some(p) = s.policy() else { return Ok(()) };
        let (l, clock) = limiter(vec![p.clone()]);
        let tau = u64::try_from(p.emission_interval().as_micros()).unwrap();
        let step = (tau / per).max(1);
        let total = s.period_us * periods;
        let mut admitted = 0u64;
        let mut elapsed = 0;
        while elapsed < total {
            if l.check(&session("k")).unwrap().is_allowed() { admitted += 1; }
            clock.advance_micros(step);
            elapsed += step;
        }
        // Arrivals every `step` see a grant every ceil(τ/step)·step ≤ τ + step, so
        // over [0, total) at least total/(τ+step) units pass (→ total/τ as the
        // arrivals get denser), and at most B + ceil(total/τ) − 1.
        let effective = step * tau.div_ceil(step);
        prop_assert!(admitted >= total / effective, "{admitted} < {}", total / effective);
        prop_assert!(admitted <= p.max_in_window(Duration::from_micros(total)));
    }

    /// A denied check changes no state: replaying only the admitted calls on a
    /// fresh limiter admits all of them and leaves identical state; the same
    /// holds for the other tiers when one tier denies.
    #[test]
    fn denied_checks_change_no_state(s in spec(), tr in trace(), sessions in prop::collection::vec(0u8..3, 160)) {
        let Some(p) = s.policy() else { return Ok(()) };
        let tenant = Policy::new("tenant", nz(s.quota * 2), Duration::from_micros(s.period_us), KeyKind::Tenant).unwrap();
        let (a, ca) = limiter(vec![p.clone(), tenant.clone()]);
        let (b, cb) = limiter(vec![p.clone(), tenant.clone()]);
        let period = s.period_us;
        let max_n = p.burst().get().min(tenant.burst().get());
        let mut replay = Vec::new();
        for (i, &(gap, n)) in tr.iter().enumerate() {
            ca.advance_micros(gap * period / 64);
            let keys = session_tenant(&format!("s{}", sessions[i]), "t");
            let n = n.min(max_n);
            if a.check_n(&keys, nz(n)).unwrap().is_allowed() {
                replay.push((ca.micros(), keys, n));
            }
        }
        for (t, keys, n) in &replay {
            cb.set_micros(*t);
            prop_assert!(b.check_n(keys, nz(*n)).unwrap().is_allowed());
        }
        cb.set_micros(ca.micros());
        for sess in 0..3 {
            let keys = session_tenant(&format!("s{sess}"), "t");
            for n in 1..=max_n {
                prop_assert_eq!(a.peek_n(&keys, nz(n)).unwrap(), b.peek_n(&keys, nz(n)).unwrap());
            }
        }
    }

    /// A retry at now + Retry-After succeeds with no other traffic; one
    /// microsecond earlier it is still denied.
    #[test]
    fn retry_at_retry_after_succeeds_and_not_before(s in spec(), tr in trace(), n in 1u32..4) {
        let Some(p) = s.policy() else { return Ok(()) };
        let (l, clock) = limiter(vec![p.clone()]);
        run(&l, &clock, &p, &tr);
        let n = nz(n.min(p.burst().get()));
        let d = l.check_n(&session("k"), n).unwrap();
        if !d.is_allowed() {
            let wait = u64::try_from(d.retry_after().as_micros()).unwrap();
            prop_assert!(wait > 0);
            clock.advance_micros(wait - 1);
            prop_assert!(!l.peek_n(&session("k"), n).unwrap().is_allowed());
            clock.advance_micros(1);
            prop_assert!(l.check_n(&session("k"), n).unwrap().is_allowed());
        }
    }

    /// A clock that jumps backwards neither panics nor over-admits: the window
    /// contract holds against the running maximum of the clock.
    #[test]
    fn clock_going_backwards_neither_panics_nor_over_admits(
        s in spec(),
        steps in prop::collection::vec((any::<bool>(), 0u64..64, 1u32..3), 1..160),
        wfrac in 1u64..128,
    ) {
        let Some(p) = s.policy() else { return Ok(()) };
        let (l, clock) = limiter(vec![p.clone()]);
        let mut high = 0;
        let mut admitted = Vec::new();
        for (back, frac, n) in steps {
            let d = frac * s.period_us / 32;
            if back { clock.rewind_micros(d) } else { clock.advance_micros(d) }
            high = high.max(clock.micros());
            let n = n.min(p.burst().get());
            if l.check_n(&session("k"), nz(n)).unwrap().is_allowed() {
                admitted.push((high, n));
            }
        }
        let w = (s.period_us * wfrac / 64).max(1);
        prop_assert!(max_in_any_window(&admitted, w) <= p.max_in_window(Duration::from_micros(w)));
    }
}
