//! State that several instances share through Redis (`REDIS_URL`), or keep
//! in process when it is unset: the API and webhook rate limits, the webhook
//! replay store and the Idempotency-Key store.
//!
//! Every Redis key starts with `HISN_REDIS_PREFIX` (default `hisn:`), then
//! `rl:api:`, `rl:webhook:`, `replay:` or `idem:`, so two deployments that
//! share a Redis do not collide when their prefixes differ.
//!
//! The login budgets (per account and per IP) live under `rl:login:`: with
//! Redis, N instances share one budget instead of granting N.
//!
//! When Redis is unreachable: each rate-limit tier does what its policy's
//! failure mode says (the policies here keep rate-limit's default,
//! fail-closed: `503` with `Retry-After`, behind the limiter's circuit
//! breaker so a dead Redis costs no latency); the replay store fails the
//! delivery with `500` (the provider retries; nothing is processed twice);
//! the Idempotency-Key layer answers `503`. Nothing falls back to a
//! per-instance store that would break "at most once" across instances.

use std::num::NonZeroU32;
use std::time::Duration;

use std::net::IpAddr;

use hisn_rate_limit::login::{LoginGuard, RedisLoginGuard};
use hisn_rate_limit::redis::{RedisConfig, RedisLimiter};
use hisn_rate_limit::{Decision, Limiter, MemoryLimiter, Policy, RequestKeys, Tiers};
use hisn_webhook_verify::idempotency::{
    Begin, IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore, StoredResponse,
};
use hisn_webhook_verify::replay::{
    Claim, ClaimToken, MemoryReplayStore, RedisReplayStore, ReplayKey, ReplayPolicy, ReplayStore,
};

/// A rate limiter in process or on Redis.
#[derive(Debug)]
pub enum SharedLimiter {
    /// This instance only.
    Memory(MemoryLimiter),
    /// Shared by every instance (GCRA in one Lua script, Redis clock).
    Redis(Box<RedisLimiter>),
}

impl SharedLimiter {
    /// On Redis under `prefix` when `client` is given, else in process.
    pub async fn new(
        tiers: Tiers,
        client: Option<&redis::Client>,
        prefix: &str,
    ) -> Result<Self, hisn_rate_limit::Error> {
        Ok(match client {
            None => Self::Memory(MemoryLimiter::new(tiers)),
            Some(c) => Self::Redis(Box::new(
                RedisLimiter::new(c.clone(), tiers, RedisConfig::new(prefix)?).await,
            )),
        })
    }

    /// The tiers.
    pub fn tiers(&self) -> &Tiers {
        match self {
            Self::Memory(m) => m.tiers(),
            Self::Redis(r) => r.tiers(),
        }
    }

    /// Check one unit.
    pub async fn check(&self, keys: &RequestKeys) -> hisn_rate_limit::Result<Decision> {
        self.check_keys(keys, NonZeroU32::MIN).await
    }
}

impl Limiter for SharedLimiter {
    fn tier_set(&self) -> &Tiers {
        self.tiers()
    }

    async fn check_keys(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
    ) -> hisn_rate_limit::Result<Decision> {
        match self {
            Self::Memory(m) => m.check_n(keys, n),
            Self::Redis(r) => r.check_n(keys, n).await,
        }
    }
}

/// Login failure budgets per account and per IP, in process or on Redis.
#[derive(Debug)]
pub enum SharedLoginGuard {
    /// This instance only.
    Memory(LoginGuard),
    /// Shared by every instance.
    Redis(Box<RedisLoginGuard>),
}

impl SharedLoginGuard {
    /// On Redis under `prefix` when `client` is given, else in process.
    pub async fn new(
        per_account: Policy,
        per_ip: Policy,
        client: Option<&redis::Client>,
        prefix: &str,
    ) -> Result<Self, hisn_rate_limit::Error> {
        Ok(match client {
            None => Self::Memory(LoginGuard::new(per_account, per_ip)?),
            Some(c) => Self::Redis(Box::new(
                RedisLoginGuard::new(c.clone(), per_account, per_ip, RedisConfig::new(prefix)?)
                    .await?,
            )),
        })
    }

    /// Count an attempt before the password is verified (see
    /// [`LoginGuard::begin`]). Not allowed: do not verify.
    pub async fn begin(&self, account: &str, ip: IpAddr) -> hisn_rate_limit::Result<Decision> {
        match self {
            Self::Memory(g) => g.begin(account, ip),
            Self::Redis(g) => g.begin(account, ip).await,
        }
    }

    /// Clear the account's failures (never the IP's). On Redis failure the
    /// count stays (no limit is lifted) and the login goes on: logged only.
    pub async fn record_success(&self, account: &str) {
        match self {
            Self::Memory(g) => g.record_success(account),
            Self::Redis(g) => {
                if let Err(e) = g.record_success(account).await {
                    tracing::warn!(error = %e, "login budget not cleared (redis)");
                }
            }
        }
    }
}

/// The webhook replay store.
#[derive(Debug)]
pub enum SharedReplay {
    /// This instance only.
    Memory(MemoryReplayStore),
    /// Shared (`SET NX PX`).
    Redis(RedisReplayStore),
}

impl ReplayStore for SharedReplay {
    async fn claim(
        &self,
        key: &ReplayKey<'_>,
        policy: &ReplayPolicy,
    ) -> hisn_webhook_verify::Result<Claim> {
        match self {
            Self::Memory(s) => s.claim(key, policy).await,
            Self::Redis(s) => s.claim(key, policy).await,
        }
    }

    async fn complete(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
        policy: &ReplayPolicy,
    ) -> hisn_webhook_verify::Result<bool> {
        match self {
            Self::Memory(s) => s.complete(key, token, policy).await,
            Self::Redis(s) => s.complete(key, token, policy).await,
        }
    }

    async fn release(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
    ) -> hisn_webhook_verify::Result<bool> {
        match self {
            Self::Memory(s) => s.release(key, token).await,
            Self::Redis(s) => s.release(key, token).await,
        }
    }
}

/// The Idempotency-Key store.
#[derive(Debug)]
pub enum SharedIdempotency {
    /// This instance only.
    Memory(MemoryIdempotencyStore),
    /// Shared.
    Redis(RedisIdempotencyStore),
}

impl IdempotencyStore for SharedIdempotency {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        lease: Duration,
    ) -> hisn_webhook_verify::Result<Begin> {
        match self {
            Self::Memory(s) => s.begin(scope, key, fingerprint, lease).await,
            Self::Redis(s) => s.begin(scope, key, fingerprint, lease).await,
        }
    }

    async fn renew(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> hisn_webhook_verify::Result<bool> {
        match self {
            Self::Memory(s) => s.renew(scope, key, token, lease).await,
            Self::Redis(s) => s.renew(scope, key, token, lease).await,
        }
    }

    async fn finish(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        response: StoredResponse,
        expiry: Duration,
    ) -> hisn_webhook_verify::Result<()> {
        match self {
            Self::Memory(s) => s.finish(scope, key, token, response, expiry).await,
            Self::Redis(s) => s.finish(scope, key, token, response, expiry).await,
        }
    }

    async fn abort(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
    ) -> hisn_webhook_verify::Result<()> {
        match self {
            Self::Memory(s) => s.abort(scope, key, token).await,
            Self::Redis(s) => s.abort(scope, key, token).await,
        }
    }
}

/// The shared stores, built from `REDIS_URL` (or in process).
#[derive(Debug)]
pub struct Shared {
    /// Replay store.
    pub replay: SharedReplay,
    /// Idempotency-Key store.
    pub idempotency: SharedIdempotency,
}

/// Open the Redis stores under `prefix` (one multiplexed connection, made at
/// start-up: a Redis that is down at start is a start-up error), or the
/// in-process ones.
pub async fn stores(
    client: Option<&redis::Client>,
    prefix: &str,
) -> Result<Shared, Box<dyn std::error::Error + Send + Sync>> {
    let Some(client) = client else {
        return Ok(Shared {
            replay: SharedReplay::Memory(MemoryReplayStore::default()),
            idempotency: SharedIdempotency::Memory(MemoryIdempotencyStore::new(10_000)),
        });
    };
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "redis: connection timed out")??;
    Ok(Shared {
        replay: SharedReplay::Redis(RedisReplayStore::new(
            conn.clone(),
            &format!("{prefix}replay:"),
        )?),
        idempotency: SharedIdempotency::Redis(RedisIdempotencyStore::new(
            conn,
            &format!("{prefix}idem:"),
        )?),
    })
}
