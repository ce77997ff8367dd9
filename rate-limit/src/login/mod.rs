//! Login-failure protection: failures are counted per account and per client
//! IP, with no permanent lockout and identical answers for existing and
//! unknown accounts.
//!
//! Use: call [`LoginGuard::begin`] *before* verifying the password. It counts
//! the attempt as a failure up front, on the account and the IP at once
//! (all-or-nothing); if it is denied, answer the same generic "try again
//! later" for every account and do not verify. When the password is right,
//! call [`LoginGuard::record_success`], which clears the account's failures
//! only (never the IP's, so one valid account cannot launder an IP's
//! guesses). A wrong password needs no further call: it is already counted.
//! Call `begin` also for unknown accounts (the guard never learns whether an
//! account exists, so it cannot answer differently).
//!
//! Why up front: a guard consulted with a read-only check and told about
//! failures afterwards lets every attempt that arrives while the first
//! password hash is still running pass the check — an attacker sending a
//! thousand guesses at once gets them all verified. `begin` admits no more
//! concurrent attempts than the budget holds. The price: the IP tier counts
//! attempts, successful logins included; size it for the logins a shared
//! address (NAT, proxy) makes. [`LoginGuard::peek`] only reports, and
//! [`LoginGuard::record_failure`] counts a failure that did not go through
//! `begin` (e.g. a failed second factor).
//!
//! Lockout is never permanent: the failure budgets refill at their policy's
//! rate, so a blocked account or IP can try again at most one emission interval
//! after failures stop. Traps left to the caller: run the password hash for
//! unknown accounts too (timing), and answer with the same status, body and
//! headers whether the account exists or not.
//!
//! **Several instances.** [`LoginGuard`] counts in this process only: behind
//! N instances an attacker spreading guesses over them gets N times each
//! budget. With the `redis` feature, [`RedisLoginGuard`] keeps the same
//! budgets in Redis, shared by every instance that uses the same key prefix
//! and tier names; same methods, same keys, async. When Redis is
//! unavailable each tier follows its policy's
//! [`FailureMode`](crate::FailureMode): `FailClosed` (the default) answers
//! [`Outcome::Unavailable`](crate::Outcome::Unavailable) — no login attempt
//! is verified until Redis is back; `FailOpen` counts in this instance's
//! memory instead (per-instance budgets for the outage).

#[cfg(feature = "redis")]
mod shared;
#[cfg(feature = "redis")]
pub use shared::RedisLoginGuard;

use std::net::IpAddr;
use std::num::NonZeroU32;

use crate::clock::{Clock, MonotonicClock};
use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::key::{KeyValue, RequestKeys};
use crate::memory::{MemoryConfig, MemoryLimiter};
use crate::policy::{KeyKind, Policy, Tiers};

/// The two tiers of a login guard (account first) and the account tier's name.
fn login_tiers(per_account: Policy, per_ip: Policy) -> Result<(Tiers, &'static str)> {
    if per_account.key_kind() != KeyKind::Account || per_ip.key_kind() != KeyKind::Ip {
        return Err(Error::InvalidConfig(
            "login guard needs an Account-keyed and an Ip-keyed policy",
        ));
    }
    let account_tier = per_account.name();
    Ok((Tiers::new(vec![per_account, per_ip])?, account_tier))
}

/// The keys of one attempt: the IP group, and the account's normalised,
/// hashed name (capped at `KeyValue::MAX_ACCOUNT_LEN`). The same for both
/// guards, so an in-process and a Redis guard key an attempt alike.
fn login_keys(account: &str, ip: IpAddr, v6_prefix: u8) -> RequestKeys {
    let mut keys = RequestKeys::new().with(KeyKind::Ip, KeyValue::ip(ip, v6_prefix));
    // An empty name cannot be an account: it shares the IP budget only.
    if let Ok(a) = KeyValue::account(account) {
        keys.set(KeyKind::Account, a);
    }
    keys
}

/// Failure budgets per account and per IP.
#[derive(Debug)]
pub struct LoginGuard<C: Clock = MonotonicClock> {
    limiter: MemoryLimiter<C>,
    account_tier: &'static str,
    v6_prefix: u8,
}

impl LoginGuard<MonotonicClock> {
    /// A guard with a [`MonotonicClock`] and default memory bounds.
    pub fn new(per_account: Policy, per_ip: Policy) -> Result<Self> {
        Self::with_clock(
            per_account,
            per_ip,
            MemoryConfig::default(),
            MonotonicClock::new(),
        )
    }
}

impl<C: Clock> LoginGuard<C> {
    /// `per_account` must be keyed by [`KeyKind::Account`], `per_ip` by [`KeyKind::Ip`].
    pub fn with_clock(
        per_account: Policy,
        per_ip: Policy,
        memory: MemoryConfig,
        clock: C,
    ) -> Result<Self> {
        let (tiers, account_tier) = login_tiers(per_account, per_ip)?;
        Ok(LoginGuard {
            limiter: MemoryLimiter::with_clock(tiers, memory, clock),
            account_tier,
            v6_prefix: 64,
        })
    }

    /// Group IPv6 clients by their first `bits` bits for the IP budget
    /// (clamped to 32..=128; default 64). A holder of a /48 has 65,536 /64s,
    /// so 48 keeps one such holder on one budget.
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.v6_prefix = bits.clamp(32, 128);
        self
    }

    fn keys(&self, account: &str, ip: IpAddr) -> RequestKeys {
        login_keys(account, ip, self.v6_prefix)
    }

    /// Start a login attempt: count it as a failure on the account and the
    /// IP at once (all-or-nothing), *before* the password is verified. Denied:
    /// do not verify; answer generically. See the module docs for why the
    /// count comes first.
    pub fn begin(&self, account: &str, ip: IpAddr) -> Result<Decision> {
        self.limiter
            .check_n(&self.keys(account, ip), NonZeroU32::MIN)
    }

    /// What [`LoginGuard::begin`] would answer now, consuming nothing. A
    /// report only: it is not a gate (concurrent attempts would all pass it).
    pub fn peek(&self, account: &str, ip: IpAddr) -> Result<Decision> {
        self.limiter
            .peek_n(&self.keys(account, ip), NonZeroU32::MIN)
    }

    /// Count one failure against the account and the IP that did not go
    /// through [`LoginGuard::begin`] (e.g. a failed second factor).
    pub fn record_failure(&self, account: &str, ip: IpAddr) -> Result<Decision> {
        self.limiter
            .check_n(&self.keys(account, ip), NonZeroU32::MIN)
    }

    /// Clear the account's failures (the IP's stay).
    pub fn record_success(&self, account: &str) {
        if let Ok(a) = KeyValue::account(account) {
            self.limiter.reset(self.account_tier, &a);
        }
    }
}
