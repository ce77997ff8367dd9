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
    // Built with push_str and handed to HeaderValue without a copy (a
    // String converts into the value's shared bytes); no `format!`.
    let mut policy = String::with_capacity(96);
    let mut state = String::with_capacity(96);
    for t in decision.tiers() {
        let Some(p) = tiers.policies().get(t.tier()) else {
            continue;
        };
        if p.disclosure_mode() == Disclosure::TrustedOnly && !trusted {
            continue;
        }
        if !policy.is_empty() {
            policy.push_str(", ");
            state.push_str(", ");
        }
        // Tier names are [a-z0-9_.-]: valid sf-strings without escaping.
        for s in [&mut policy, &mut state] {
            s.push('"');
            s.push_str(p.name());
            s.push('"');
        }
        policy.push_str(";q=");
        push_u64(&mut policy, u64::from(p.quota().get()));
        policy.push_str(";w=");
        push_u64(&mut policy, ceil_secs(p.period()));
        let reset = if t.reset().is_zero() {
            0
        } else {
            ceil_secs(t.reset())
        };
        state.push_str(";r=");
        push_u64(&mut state, u64::from(t.remaining()));
        state.push_str(";t=");
        push_u64(&mut state, reset);
    }
    if policy.is_empty() {
        return;
    }
    if let (Ok(p), Ok(s)) = (HeaderValue::try_from(policy), HeaderValue::try_from(state)) {
        headers.insert("ratelimit-policy", p);
        headers.insert("ratelimit", s);
    }
}

/// Append `n` in decimal.
fn push_u64(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        s.push(char::from(b));
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

    #[test]
    fn push_u64_writes_decimal() {
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }
}
