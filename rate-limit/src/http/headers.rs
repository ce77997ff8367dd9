//! `Retry-After` and the IETF httpapi `RateLimit-Policy` / `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers, structured fields: one list item per
//! tier, named by the tier's sf-string name).
//!
//! `RateLimit-Policy: "session";q=10;w=5, "tenant";q=100;w=60`
//! `RateLimit: "session";r=9;t=1, "tenant";r=99;t=1`
//!
//! `q`/`w` are the configured quota and period (seconds, rounded up); `r` is
//! what the key could use right now and `t` the seconds until it is back to its
//! full burst (rounded up). Tiers marked [`Disclosure::TrustedOnly`] (tenant
//! tiers by default) are left out unless the caller is trusted: their numbers
//! would tell one caller about the traffic of others.

use std::fmt::Write;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::decision::Decision;
use crate::policy::{Disclosure, Tiers};

/// Whole seconds, rounded up; at least 1 (a `Retry-After: 0` invites a retry storm).
pub fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// Write `RateLimit-Policy` and `RateLimit` for the tiers the caller may see
/// (`tiers` is the limiter's tier set the decision was made over).
pub fn write_ratelimit_headers(
    headers: &mut HeaderMap,
    decision: &Decision,
    tiers: &Tiers,
    trusted: bool,
) {
    let mut policy = String::new();
    let mut state = String::new();
    for t in decision.tiers() {
        let Some(p) = tiers.policies().get(t.tier()) else {
            continue;
        };
        if p.disclosure_mode() == Disclosure::TrustedOnly && !trusted {
            continue;
        }
        let sep = if policy.is_empty() { "" } else { ", " };
        // Tier names are [a-z0-9_.-]: valid sf-strings without escaping.
        let _ = write!(
            policy,
            "{sep}\"{}\";q={};w={}",
            p.name(),
            p.quota(),
            ceil_secs(p.period())
        );
        let reset = if t.reset().is_zero() {
            0
        } else {
            ceil_secs(t.reset())
        };
        let _ = write!(
            state,
            "{sep}\"{}\";r={};t={}",
            p.name(),
            t.remaining(),
            reset
        );
    }
    if policy.is_empty() {
        return;
    }
    if let (Ok(p), Ok(s)) = (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&state),
    ) {
        headers.insert("ratelimit-policy", p);
        headers.insert("ratelimit", s);
    }
}

/// Write `Retry-After` (delay-seconds, ≥ 1).
pub fn write_retry_after(headers: &mut HeaderMap, wait: Duration) {
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(ceil_secs(wait)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_micros(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(
            ceil_secs(Duration::from_secs(59) + Duration::from_nanos(1)),
            60
        );
    }
}
