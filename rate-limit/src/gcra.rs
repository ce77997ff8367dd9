//! The GCRA arithmetic, in whole microseconds. The Redis script
//! (`src/redis/gcra.lua`) implements exactly these formulas, and a property
//! test checks decision-for-decision equality with `governor`'s GCRA.
//!
//! State per key is one number, the theoretical arrival time (TAT). A request
//! of `n` units at `now` is admitted iff
//! `max(TAT, now) + n·τ − τ − tolerance <= now`, and then
//! `TAT := max(TAT, now) + n·τ`. A denied request changes nothing.

/// Admit `n` units at `now`: `Ok(new_tat)` or `Err(allow_at)`, the earliest
/// time at which the same request succeeds with no other traffic.
#[inline]
pub(crate) fn decide(
    tat: u64,
    now: u64,
    interval: u64,
    tolerance: u64,
    n: u32,
) -> Result<u64, u64> {
    // Checked, not saturating: a TAT stuck at `u64::MAX` would stop growing
    // and admit every later request. A TAT that cannot be represented (a
    // clock reading near the end of `u64` µs) denies, with the largest wait.
    let Some(new_tat) = interval
        .checked_mul(u64::from(n))
        .and_then(|cost| tat.max(now).checked_add(cost))
    else {
        return Err(u64::MAX);
    };
    let allow_at = new_tat.saturating_sub(tolerance.saturating_add(interval));
    if allow_at <= now {
        Ok(new_tat)
    } else {
        Err(allow_at)
    }
}

/// Units a request could still use at `now` given `tat` (capped at the burst).
#[inline]
pub(crate) fn remaining(tat: u64, now: u64, interval: u64, tolerance: u64, burst: u32) -> u32 {
    let slack = now
        .saturating_add(tolerance)
        .saturating_add(interval)
        .saturating_sub(tat);
    let units = slack / interval.max(1);
    u32::try_from(units).unwrap_or(u32::MAX).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        // τ = 10, B = 3 → tolerance 20.
        let (iv, tol) = (10, 20);
        let mut tat = 100;
        for _ in 0..3 {
            tat = decide(tat, 100, iv, tol, 1).unwrap_or_else(|e| panic!("denied until {e}"));
        }
        assert_eq!(decide(tat, 100, iv, tol, 1), Err(110));
        assert_eq!(decide(tat, 109, iv, tol, 1), Err(110));
        assert_eq!(decide(tat, 110, iv, tol, 1), Ok(140));
        assert_eq!(remaining(100, 100, iv, tol, 3), 3);
        assert_eq!(remaining(130, 100, iv, tol, 3), 0);
        assert_eq!(decide(100, 100, iv, tol, 4), Err(110));
        // Overflow denies instead of saturating (which admitted forever).
        assert_eq!(
            decide(u64::MAX - 5, u64::MAX - 5, iv, tol, 1),
            Err(u64::MAX)
        );
        assert_eq!(decide(0, u64::MAX, iv, tol, 1), Err(u64::MAX));
    }
}
