//! How long a replay store must remember a verified delivery.
//!
//! A captured delivery verifies again, byte for byte, until its signed
//! timestamp leaves the tolerance window: up to `past` seconds after the
//! timestamp, which is up to `past + future` seconds from now when the
//! sender's clock runs ahead, and any time at all in past-only mode with a
//! future-dated timestamp. A done marker that expires earlier lets the very
//! same request be claimed [`crate::replay::Claim::New`] and processed a
//! second time. [`Webhook::replay_policy`] sizes the TTL from the delivery
//! itself, so no choice of base policy can open that gap.

use std::time::Duration;

use super::{Verified, Webhook, debug_event};
use crate::error::{Error, Result};
use crate::replay::ReplayPolicy;

impl Webhook {
    /// The replay policy `verified` needs: `base`, with its TTL raised (never
    /// lowered) to outlast the time the same delivery still verifies.
    ///
    /// The time left is measured on this webhook's clock, from now to the end
    /// of the last second [`Verified::accepted_until`] (the signed timestamp
    /// plus the past tolerance of the webhook that verified it), rounded up
    /// to whole seconds, plus [`ReplayPolicy::WINDOW_MARGIN`]. A done marker
    /// is written when the handler completes, after this call, so it lives
    /// at least that long. The lease is `base`'s.
    ///
    /// - Schemes without a signed timestamp (GitHub, Shopify, Twilio, generic
    ///   without a timestamp header): `base` unchanged. Such a delivery
    ///   verifies for ever, so a replay store gives "at most once per TTL",
    ///   inherently; keep the TTL long (the 72 h default).
    /// - [`Error::ReplayWindowTooLong`] when the TTL needed exceeds
    ///   [`ReplayPolicy::MAX_TTL`] (30 days): only past-only mode
    ///   ([`crate::Tolerance::past_only`]) with a timestamp about 30 days or
    ///   more in the future gets there. No store could remember the delivery
    ///   for as long as it verifies, so refuse it (fail closed).
    ///
    /// Pass the result to both [`crate::replay::ReplayStore::claim`] and
    /// [`crate::replay::ReplayStore::complete`], or use
    /// [`crate::replay::ReplayStore::claim_verified`], which does the first.
    /// Replay stores on Redis or PostgreSQL count the TTL on their own clock
    /// from the moment they record completion; instances whose clocks
    /// disagree by more than the margin widen the window by the difference
    /// (keep clocks synchronised, or a base TTL well above the tolerance).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use hisn_webhook_verify::replay::ReplayPolicy;
    /// use hisn_webhook_verify::{Error, ManualClock, Scheme, SignInput, Tolerance, Webhook};
    ///
    /// const NOW: u64 = 1_700_000_000;
    /// let stripe = |tolerance| {
    ///     Webhook::builder(Scheme::Stripe)
    ///         .secret("whsec_example")?
    ///         .tolerance(tolerance)
    ///         .clock(Arc::new(ManualClock::new(NOW)))
    ///         .build()
    /// };
    /// let base = ReplayPolicy::new(Duration::from_secs(1), Duration::from_secs(10))?;
    /// let body = b"{}";
    ///
    /// // Signed by a sender whose clock is 250 s ahead: it verifies until the
    /// // end of second NOW + 550, 551 s from now; plus 1 s of margin.
    /// let wh = stripe(Tolerance::new(300, 300)?)?;
    /// let headers = wh.sign(&SignInput::new(body).timestamp(NOW + 250))?;
    /// let v = wh.verify(&headers, body)?;
    /// assert_eq!(v.accepted_until(), Some(NOW + 550));
    /// let policy = wh.replay_policy(&v, base)?;
    /// assert_eq!((policy.lease(), policy.ttl()), (base.lease(), Duration::from_secs(552)));
    ///
    /// // Past-only mode accepts any future timestamp; 40 days ahead cannot be
    /// // covered by any store, so the delivery must be refused.
    /// let wh = stripe(Tolerance::past_only(300)?)?;
    /// let headers = wh.sign(&SignInput::new(body).timestamp(NOW + 40 * 86_400))?;
    /// let v = wh.verify(&headers, body)?;
    /// assert_eq!(wh.replay_policy(&v, base), Err(Error::ReplayWindowTooLong));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn replay_policy(&self, verified: &Verified, base: ReplayPolicy) -> Result<ReplayPolicy> {
        let Some(until) = verified.accepted_until() else {
            return Ok(base);
        };
        let res = covering(base, window_ttl(until, self.clock.now_unix_millis()));
        if res.is_err() {
            debug_event(&self.scheme, "replay window longer than any replay TTL");
        }
        res
    }
}

/// The TTL that outlasts a delivery accepted until the end of second
/// `accepted_until`, from `now_ms`: the milliseconds left, rounded up to whole
/// seconds, plus the margin. `None` when that does not fit in a `u64` (a
/// timestamp near `u64::MAX`: acceptable "for ever").
fn window_ttl(accepted_until: u64, now_ms: u64) -> Option<Duration> {
    // The first refused instant.
    let stale_at_ms = accepted_until.checked_add(1)?.checked_mul(1000)?;
    let left_ms = stale_at_ms.saturating_sub(now_ms);
    let secs = left_ms
        .div_ceil(1000)
        .checked_add(ReplayPolicy::WINDOW_MARGIN.as_secs())?;
    Some(Duration::from_secs(secs))
}

/// `base`, or `base` with its TTL raised to `needed`; an error when `needed`
/// is above what a policy may hold (fail closed).
fn covering(base: ReplayPolicy, needed: Option<Duration>) -> Result<ReplayPolicy> {
    match needed {
        Some(ttl) if ttl <= base.ttl() => Ok(base),
        // ttl > base.ttl() >= lease, and within the cap: always valid.
        Some(ttl) if ttl <= ReplayPolicy::MAX_TTL => ReplayPolicy::new(base.lease(), ttl),
        _ => Err(Error::ReplayWindowTooLong),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::scheme::Scheme;
    use crate::webhook::{SignInput, Tolerance};

    const NOW: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn tiny() -> ReplayPolicy {
        ReplayPolicy::new(Duration::from_millis(1), Duration::from_millis(1)).unwrap()
    }

    fn stripe(tolerance: Tolerance, clock: Arc<ManualClock>) -> Webhook {
        Webhook::builder(Scheme::Stripe)
            .secret("whsec_replay_window")
            .unwrap()
            .tolerance(tolerance)
            .clock(clock)
            .build()
            .unwrap()
    }

    /// Verify a Stripe delivery signed at `ts` on a webhook whose clock reads
    /// `now_ms`, and derive its policy from `base`.
    fn derived(
        tolerance: Tolerance,
        ts: u64,
        now_ms: u64,
        base: ReplayPolicy,
    ) -> Result<ReplayPolicy> {
        let clock = Arc::new(ManualClock::new(0));
        clock.advance_millis(now_ms);
        let wh = stripe(tolerance, clock);
        let h = wh.sign(&SignInput::new(b"{}").timestamp(ts))?;
        let v = wh.verify(&h, b"{}")?;
        wh.replay_policy(&v, base)
    }

    fn ttl(tolerance: Tolerance, ts: u64, now_ms: u64) -> Duration {
        derived(tolerance, ts, now_ms, tiny()).unwrap().ttl()
    }

    /// The window ends with the last whole second `ts + past`: at its first
    /// millisecond 1 s is left, at its last 1 ms, both rounded up to 1 s,
    /// plus the 1 s margin. Once it is over only the margin is left.
    #[test]
    fn ttl_at_the_window_edge_rounds_up_and_adds_the_margin() {
        let t = Tolerance::new(300, 300).unwrap();
        let ts = NOW - 300; // now is the last accepted second
        assert_eq!(ttl(t, ts, NOW * 1000), secs(2));
        assert_eq!(ttl(t, ts, NOW * 1000 + 999), secs(2));
        assert_eq!(ttl(t, ts + 1, NOW * 1000 + 999), secs(2 + 1));
        assert_eq!(ttl(t, ts + 1, NOW * 1000 + 1), secs(2 + 1));
        // A verified delivery whose policy is asked for after the window.
        assert_eq!(window_ttl(NOW, (NOW + 1) * 1000), Some(secs(1)));
        assert_eq!(window_ttl(NOW, (NOW + 1) * 1000 - 1), Some(secs(2)));
        assert_eq!(window_ttl(NOW, (NOW + 50) * 1000), Some(secs(1)));
    }

    /// Fresh, past and future-dated timestamps: the TTL covers `past` after
    /// the timestamp, wherever the timestamp lies in the window.
    #[test]
    fn ttl_covers_past_after_the_timestamp_wherever_it_lies() {
        let t = Tolerance::new(300, 300).unwrap();
        let now = NOW * 1000;
        assert_eq!(ttl(t, NOW, now), secs(301 + 1));
        assert_eq!(ttl(t, NOW - 120, now), secs(181 + 1));
        assert_eq!(ttl(t, NOW + 300, now), secs(601 + 1));
        let asym = Tolerance::new(60, 3600).unwrap();
        assert_eq!(ttl(asym, NOW + 3600, now), secs(3661 + 1));
        let past_only = Tolerance::past_only(300).unwrap();
        assert_eq!(
            ttl(past_only, NOW + 10 * DAY, now),
            secs(10 * DAY + 301 + 1)
        );
    }

    /// The base policy is a floor: a longer base TTL is kept, and the lease
    /// is always the base's.
    #[test]
    fn base_is_a_floor_and_keeps_its_lease() {
        let t = Tolerance::new(300, 300).unwrap();
        let base = ReplayPolicy::new(secs(7), secs(302)).unwrap();
        assert_eq!(derived(t, NOW, NOW * 1000, base), Ok(base));
        let base = ReplayPolicy::new(secs(7), secs(301)).unwrap();
        let raised = derived(t, NOW, NOW * 1000, base).unwrap();
        assert_eq!((raised.lease(), raised.ttl()), (secs(7), secs(302)));
        assert_eq!(
            derived(t, NOW, NOW * 1000, ReplayPolicy::DEFAULT),
            Ok(ReplayPolicy::DEFAULT)
        );
    }

    /// Without a signed timestamp the base is returned unchanged, however
    /// short: such deliveries are "at most once per TTL".
    #[test]
    fn schemes_without_a_timestamp_keep_the_base() {
        let wh = Webhook::builder(Scheme::GitHub)
            .secret("github replay window")
            .unwrap()
            .clock(Arc::new(ManualClock::new(NOW)))
            .build()
            .unwrap();
        let h = wh.sign(&SignInput::new(b"{}")).unwrap();
        let v = wh.verify(&h, b"{}").unwrap();
        assert_eq!(v.accepted_until(), None);
        assert_eq!(wh.replay_policy(&v, tiny()), Ok(tiny()));
    }

    /// Past-only mode: a TTL of exactly 30 days is allowed, one second more
    /// is refused, and so are the largest timestamps (no overflow).
    #[test]
    fn over_the_ttl_cap_is_refused() {
        let t = Tolerance::past_only(300).unwrap();
        let max = ReplayPolicy::MAX_TTL.as_secs();
        // Left: ts + 300 + 1 - NOW seconds, plus the 1 s margin.
        let at_cap = NOW + max - 302;
        assert_eq!(ttl(t, at_cap, NOW * 1000), ReplayPolicy::MAX_TTL);
        assert_eq!(
            derived(t, at_cap + 1, NOW * 1000, tiny()),
            Err(Error::ReplayWindowTooLong)
        );
        assert_eq!(
            derived(t, at_cap + 1, NOW * 1000, ReplayPolicy::DEFAULT),
            Err(Error::ReplayWindowTooLong)
        );
        // The largest timestamp the parsers accept (12 digits).
        assert_eq!(
            derived(t, 999_999_999_999, NOW * 1000, tiny()),
            Err(Error::ReplayWindowTooLong)
        );
        assert_eq!(window_ttl(u64::MAX, 0), None);
        assert_eq!(window_ttl(u64::MAX / 1000, 0), None);
        assert_eq!(covering(tiny(), None), Err(Error::ReplayWindowTooLong));
    }
}
