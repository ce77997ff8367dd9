//! [`RedisLoginGuard`]: the login budgets of [`LoginGuard`](super::LoginGuard),
//! kept in Redis so that every instance shares them.

use std::net::IpAddr;
use std::num::NonZeroU32;

use crate::clock::{Clock, MonotonicClock};
use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::key::{KeyValue, RequestKeys};
use crate::policy::{KeyKind, Policy};
use crate::redis::{HashTag, RedisConfig, RedisLimiter};

use super::{login_keys, login_tiers};

/// Failure budgets per account and per IP, shared by every instance through
/// Redis (feature `redis`).
///
/// The contract of [`LoginGuard`](super::LoginGuard), methods of the same
/// names, async: [`begin`](Self::begin) counts the attempt on the account
/// and the IP at once (all-or-nothing, one Lua script with the Redis server's
/// clock) before the password is verified; [`record_success`](Self::record_success)
/// clears the account's count only; the budgets refill at their policy's
/// rate (no permanent lockout); the keys never depend on whether the account
/// exists; account names are normalised and hashed as by
/// [`KeyValue::account`] (over-long names share one key), so Redis never
/// holds a login name (client IPs do appear in key names, as hex).
///
/// **Sharing.** Instances share a budget when they use the same Redis, the
/// same [`RedisConfig`] prefix, the same tier names and policies and the same
/// IPv6 grouping. The hash tag must be [`HashTag::Fixed`] (the default):
/// tagging by account would scope the IP budget within each account, and
/// tagging by IP the reverse, each handing an attacker fresh budgets.
///
/// **Redis unavailable** (down, slow past the deadline, or the breaker open):
/// each tier follows its policy's [`FailureMode`](crate::FailureMode).
/// - `FailClosed` (the default): `begin`, `record_failure` and `peek` answer
///   [`Outcome::Unavailable`](crate::Outcome::Unavailable) with a
///   `Retry-After` of at least one second. Do not verify the password; answer
///   the same generic "try again later" (or 503) for every account. Logins
///   stop during the outage; guesses do too.
/// - `FailOpen` on both tiers: this instance counts in its own memory for the
///   outage (bounded by [`RedisConfig::fallback_memory`]), so the budgets hold
///   per instance, N times over across N instances, and the counts do not
///   carry over into Redis when it returns. Choose it only if availability
///   of login matters more than the brute-force bound during an outage.
///
/// [`record_success`](Self::record_success) fails with [`Error::Backend`]
/// when Redis is unavailable: the account's count then stays (no limit is
/// lifted), and the login whose password was right may proceed.
#[derive(Debug)]
pub struct RedisLoginGuard<C: Clock + Clone = MonotonicClock> {
    limiter: RedisLimiter<C>,
    account_tier: &'static str,
    v6_prefix: u8,
}

impl RedisLoginGuard<MonotonicClock> {
    /// A guard over `client`. `per_account` must be keyed by
    /// [`KeyKind::Account`], `per_ip` by [`KeyKind::Ip`]; `config` must keep
    /// the fixed hash tag. Does not fail when Redis is down: the first
    /// attempts then follow the failure modes.
    pub async fn new(
        client: redis::Client,
        per_account: Policy,
        per_ip: Policy,
        config: RedisConfig,
    ) -> Result<Self> {
        Self::with_clock(client, per_account, per_ip, config, MonotonicClock::new()).await
    }
}

impl<C: Clock + Clone> RedisLoginGuard<C> {
    /// With an injected clock (for the breaker and the fail-open fallback;
    /// Redis counts with the server's clock).
    pub async fn with_clock(
        client: redis::Client,
        per_account: Policy,
        per_ip: Policy,
        config: RedisConfig,
        clock: C,
    ) -> Result<Self> {
        if config.hash_tag_rule() != HashTag::Fixed {
            return Err(Error::InvalidConfig(
                "login guard needs the fixed hash tag (per-key tags split its budgets)",
            ));
        }
        let (tiers, account_tier) = login_tiers(per_account, per_ip)?;
        Ok(RedisLoginGuard {
            limiter: RedisLimiter::with_clock(client, tiers, config, clock).await,
            account_tier,
            v6_prefix: 64,
        })
    }

    /// Group IPv6 clients by their first `bits` bits for the IP budget
    /// (clamped to 32..=128; default 64). Every instance must use the same.
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.v6_prefix = bits.clamp(32, 128);
        self
    }

    /// The limiter underneath: its breaker, and [`RedisLimiter::ping`] for
    /// readiness probes.
    pub fn limiter(&self) -> &RedisLimiter<C> {
        &self.limiter
    }

    /// Start a login attempt: count it as a failure on the account and the
    /// IP at once, in Redis, *before* the password is verified. Not allowed
    /// (denied, or unavailable under `FailClosed`): do not verify; answer
    /// generically.
    pub async fn begin(&self, account: &str, ip: IpAddr) -> Result<Decision> {
        self.limiter
            .check_n(&login_keys(account, ip, self.v6_prefix), NonZeroU32::MIN)
            .await
    }

    /// What [`RedisLoginGuard::begin`] would answer now, consuming nothing.
    /// A report only, not a gate.
    pub async fn peek(&self, account: &str, ip: IpAddr) -> Result<Decision> {
        self.limiter
            .peek_n(&login_keys(account, ip, self.v6_prefix), NonZeroU32::MIN)
            .await
    }

    /// Count one failure against the account and the IP that did not go
    /// through [`RedisLoginGuard::begin`] (e.g. a failed second factor).
    pub async fn record_failure(&self, account: &str, ip: IpAddr) -> Result<Decision> {
        self.limiter
            .check_n(&login_keys(account, ip, self.v6_prefix), NonZeroU32::MIN)
            .await
    }

    /// Clear the account's failures on every instance (the IP's stay).
    /// `Err(Error::Backend)` when Redis is unavailable: nothing was cleared.
    pub async fn record_success(&self, account: &str) -> Result<()> {
        match KeyValue::account(account) {
            Ok(a) => {
                let keys = RequestKeys::new().with(KeyKind::Account, a);
                self.limiter.reset(self.account_tier, &keys).await
            }
            // An empty name has no account budget to clear.
            Err(_) => Ok(()),
        }
    }
}
