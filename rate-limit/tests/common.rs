//! Shared helpers.
#![allow(dead_code, unreachable_pub)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use hisn_rate_limit::*;

pub const T0: u64 = 1_700_000_000_000_000;

pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

pub fn policy(name: &'static str, quota: u32, period: Duration, kind: KeyKind) -> Policy {
    Policy::new(name, nz(quota), period, kind).unwrap()
}

pub fn limiter(policies: Vec<Policy>) -> (MemoryLimiter<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::from_micros(T0));
    let l = MemoryLimiter::with_clock(
        Tiers::new(policies).unwrap(),
        MemoryConfig::default(),
        clock.clone(),
    );
    (l, clock)
}

pub fn session(s: &str) -> RequestKeys {
    RequestKeys::new().with(KeyKind::Session, KeyValue::text(s).unwrap())
}

pub fn session_tenant(s: &str, t: &str) -> RequestKeys {
    session(s).with(KeyKind::Tenant, KeyValue::text(t).unwrap())
}
