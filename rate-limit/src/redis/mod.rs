//! The Redis backend (feature `redis`): limits shared by every instance.
//!
//! - **One command per decision.** GCRA for every applicable tier runs in one
//!   Lua script (`EVALSHA`), all-or-nothing inside the script; the time is the
//!   Redis server's (`TIME`), so instance clocks do not matter. A `NOSCRIPT`
//!   answer (Redis restarted with an empty script cache) loads the script and
//!   retries once.
//! - **Keys.** `<prefix>{<tag>}:<tier>:<hex key>`; every key of one decision
//!   shares the hash tag, so the script stays in one Redis Cluster slot. Every
//!   key has a TTL that ends when its state equals an absent key's.
//! - **Failure.** Each call has a short deadline (default 50 ms, connection
//!   included). Failures feed a [`CircuitBreaker`]: while it is open, no
//!   command is sent and nothing is dialled, so a dead Redis costs no latency.
//!   Then each tier follows its [`FailureMode`]: `FailOpen` tiers are checked
//!   by this instance's in-process limiter; if any applicable tier is
//!   `FailClosed`, the decision is [`Outcome::Unavailable`] (HTTP 503 with
//!   `Retry-After`). After the cool-down one trial call goes to Redis; when it
//!   succeeds, Redis decides again.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::clock::{Clock, MonotonicClock, unix_micros};
use crate::decision::{Decision, Outcome, TierStatus};
use crate::error::{Error, Result};
use crate::key::RequestKeys;
use crate::memory::{MemoryConfig, MemoryLimiter};
use crate::policy::{FailureMode, KeyKind, Tiers};

/// Default deadline of one Redis decision.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(50);

const SCRIPT: &str = include_str!("gcra.lua");

/// Which hash tag the keys of one decision share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HashTag {
    /// One tag per prefix: every key in one slot. Right for any tier set.
    #[default]
    Fixed,
    /// The value of this key kind (e.g. the tenant): keys spread over the
    /// cluster by it, and every tier's key is scoped within it (a per-IP tier
    /// becomes per IP *within the tenant*). A request without this key is an
    /// error ([`Error::InvalidKey`]).
    ByKind(KeyKind),
}

/// Settings of a [`RedisLimiter`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    prefix: String,
    deadline: Duration,
    breaker: BreakerConfig,
    hash_tag: HashTag,
    memory: MemoryConfig,
}

impl RedisConfig {
    /// Keys under `prefix` (1..=64 printable ASCII characters without `{`,
    /// `}` or spaces, e.g. `"myapp:rl:"`). Deadline 50 ms, breaker: open after
    /// 5 failures for 2 s, fixed hash tag.
    pub fn new(prefix: &str) -> Result<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !ok {
            return Err(Error::InvalidConfig(
                "redis prefix: 1..=64 printable characters without braces",
            ));
        }
        Ok(RedisConfig {
            prefix: prefix.to_owned(),
            deadline: DEFAULT_DEADLINE,
            breaker: BreakerConfig::default().cooldown(Duration::from_secs(2))?,
            hash_tag: HashTag::Fixed,
            memory: MemoryConfig::default(),
        })
    }

    /// Deadline of one decision, connection included (1 ms..=5 s).
    pub fn deadline(mut self, d: Duration) -> Result<Self> {
        if d < Duration::from_millis(1) || d > Duration::from_secs(5) {
            return Err(Error::InvalidConfig("redis deadline must be 1 ms..=5 s"));
        }
        self.deadline = d;
        Ok(self)
    }

    /// The circuit breaker's settings.
    pub fn breaker(mut self, b: BreakerConfig) -> Self {
        self.breaker = b;
        self
    }

    /// The hash-tag rule.
    pub fn hash_tag(mut self, t: HashTag) -> Self {
        self.hash_tag = t;
        self
    }

    /// Bounds of the in-process fallback used by fail-open tiers.
    pub fn fallback_memory(mut self, m: MemoryConfig) -> Self {
        self.memory = m;
        self
    }

    pub(crate) fn hash_tag_rule(&self) -> HashTag {
        self.hash_tag
    }
}

/// A limiter whose state lives in Redis.
#[derive(Debug)]
pub struct RedisLimiter<C: Clock + Clone = MonotonicClock> {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
    config: RedisConfig,
    breaker: CircuitBreaker<C>,
    fallback: MemoryLimiter<C>,
}

impl RedisLimiter<MonotonicClock> {
    /// A limiter over `tiers`. Does not fail when Redis is down: the first
    /// decisions then follow the failure modes.
    pub async fn new(client: redis::Client, tiers: Tiers, config: RedisConfig) -> Self {
        Self::with_clock(client, tiers, config, MonotonicClock::new()).await
    }
}

impl<C: Clock + Clone> RedisLimiter<C> {
    /// With an injected clock (for the breaker and the in-process fallback;
    /// Redis decisions use the server's clock).
    pub async fn with_clock(
        client: redis::Client,
        tiers: Tiers,
        config: RedisConfig,
        clock: C,
    ) -> Self {
        let breaker = CircuitBreaker::with_clock("redis", config.breaker, clock.clone());
        let fallback = MemoryLimiter::with_clock(tiers, config.memory, clock);
        let limiter = RedisLimiter {
            client,
            conn: Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            config,
            breaker,
            fallback,
        };
        let _ = tokio::time::timeout(limiter.config.deadline, limiter.connection()).await;
        limiter
    }

    /// The tier set.
    pub fn tiers(&self) -> &Tiers {
        self.fallback.tiers()
    }

    /// The breaker guarding Redis.
    pub fn breaker(&self) -> &CircuitBreaker<C> {
        &self.breaker
    }

    /// Check one unit.
    pub async fn check(&self, keys: &RequestKeys) -> Result<Decision> {
        self.check_n(keys, NonZeroU32::MIN).await
    }

    /// Check `n` units against every applicable tier, all-or-nothing, in one
    /// Redis command.
    pub async fn check_n(&self, keys: &RequestKeys, n: NonZeroU32) -> Result<Decision> {
        self.run(keys, n, None, true).await
    }

    /// What [`RedisLimiter::check_n`] would answer now, writing nothing (one
    /// command too; when Redis is unavailable, the failure modes apply as
    /// for a check). A report, not a gate.
    pub async fn peek_n(&self, keys: &RequestKeys, n: NonZeroU32) -> Result<Decision> {
        self.run(keys, n, None, false).await
    }

    /// Forget the state of tier `tier` for the key of its kind in `keys`
    /// (e.g. an account's failure count after a successful login): one `DEL`.
    /// `keys` also supplies the hash tag under [`HashTag::ByKind`]. A no-op
    /// when no tier is named `tier` or `keys` lacks its key.
    ///
    /// Fails with [`Error::Backend`] when Redis is unavailable (the breaker is
    /// open, the call fails or misses its deadline): the state then stays, so
    /// a failed reset never lifts a limit.
    pub async fn reset(&self, tier: &str, keys: &RequestKeys) -> Result<()> {
        let Some(p) = self.tiers().policies().iter().find(|p| p.name() == tier) else {
            return Ok(());
        };
        let Some(k) = keys.get(p.key_kind()) else {
            return Ok(());
        };
        let key = self.key_name(&self.tag(keys)?, p.name(), &k.hex());
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| Error::Backend("redis circuit open".into()))?;
        let call = async {
            let mut conn = self.connection().await?;
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.config.deadline, call).await {
            Ok(Ok(_)) => {
                permit.success();
                Ok(())
            }
            Ok(Err(e)) => {
                permit.failure();
                *self.conn.lock() = None;
                Err(Error::Backend(Box::new(e)))
            }
            Err(e) => {
                permit.failure();
                *self.conn.lock() = None;
                Err(Error::Backend(Box::new(e)))
            }
        }
    }

    /// [`RedisLimiter::check_n`] with the script's clock replaced by `now`:
    /// only for tests comparing the script with the in-process limiter.
    #[doc(hidden)]
    pub async fn check_n_at(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
        now: SystemTime,
    ) -> Result<Decision> {
        self.run(keys, n, Some(unix_micros(now)), true).await
    }

    /// `PING` over the limiter's own connection, within the deadline: a
    /// readiness probe that does not touch the breaker.
    pub async fn ping(&self) -> Result<()> {
        let call = async {
            let mut conn = self.connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(self.config.deadline, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                *self.conn.lock() = None;
                Err(Error::Backend(Box::new(e)))
            }
            Err(e) => Err(Error::Backend(Box::new(e))),
        }
    }

    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = self.conn.lock().clone() {
            return Ok(c);
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.deadline))
            .set_response_timeout(Some(self.config.deadline));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?;
        *self.conn.lock() = Some(c.clone());
        Ok(c)
    }

    fn key_name(&self, tag: &str, tier: &str, hex: &str) -> String {
        format!("{}{{{tag}}}:{tier}:{hex}", self.config.prefix)
    }

    fn tag(&self, keys: &RequestKeys) -> Result<String> {
        Ok(match self.config.hash_tag {
            HashTag::Fixed => "tiers".to_owned(),
            HashTag::ByKind(kind) => match keys.get(kind) {
                Some(k) => format!("{}:{}", kind.label(), k.hex()),
                None => return Err(Error::InvalidKey("request lacks the hash-tag key")),
            },
        })
    }

    async fn run(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
        now: Option<u64>,
        commit: bool,
    ) -> Result<Decision> {
        let policies = self.tiers().policies();
        let tag = self.tag(keys)?;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(now.map(|t| t.to_string()).unwrap_or_default())
            .arg(n.get())
            .arg(if commit { "" } else { "1" });
        let mut applied = Vec::with_capacity(policies.len());
        for (i, p) in policies.iter().enumerate() {
            let Some(k) = keys.get(p.key_kind()) else {
                continue;
            };
            p.check_weight(n)?;
            invocation
                .key(self.key_name(&tag, p.name(), &k.hex()))
                .arg(p.interval_us())
                .arg(p.tolerance_us())
                .arg(p.burst().get());
            applied.push(i);
        }
        if applied.is_empty() {
            return Ok(Decision::new(Outcome::Allowed));
        }
        let permit = match self.breaker.try_acquire() {
            Ok(p) => p,
            Err(rejected) => return self.unavailable(keys, n, rejected.retry_after, commit),
        };
        let call = async {
            let mut conn = self.connection().await?;
            invocation.invoke_async::<Vec<i64>>(&mut conn).await
        };
        let reply = match tokio::time::timeout(self.config.deadline, call).await {
            Ok(Ok(v)) => v,
            failed => {
                permit.failure();
                *self.conn.lock() = None;
                match failed {
                    Ok(Err(e)) => tracing::warn!(
                        target: "hisn::rate_limit::redis",
                        error = %e,
                        "redis decision failed"
                    ),
                    _ => tracing::warn!(
                        target: "hisn::rate_limit::redis",
                        "redis decision missed its deadline"
                    ),
                }
                return self.unavailable(keys, n, self.config.breaker.cooldown_duration(), commit);
            }
        };
        permit.success();
        let bad = || Error::Backend("malformed script reply".into());
        if reply.len() != 2 + 2 * applied.len() {
            return Err(bad());
        }
        let mut decision = Decision::new(Outcome::Allowed);
        for (j, &i) in applied.iter().enumerate() {
            let remaining = u32::try_from(reply[2 + 2 * j]).map_err(|_| bad())?;
            let reset = u64::try_from(reply[3 + 2 * j]).map_err(|_| bad())?;
            decision.push(TierStatus::new(i, remaining, reset));
        }
        if reply[0] != 0 {
            let j = usize::try_from(reply[0] - 1).map_err(|_| bad())?;
            let tier = applied
                .get(j)
                .map(|&i| policies[i].name())
                .ok_or_else(bad)?;
            let wait = u64::try_from(reply[1]).map_err(|_| bad())?;
            decision.set_outcome(Outcome::Denied {
                tier,
                retry_after: Duration::from_micros(wait),
            });
        }
        Ok(decision)
    }

    /// Redis is unavailable: fail-closed tiers answer 503, fail-open tiers
    /// fall back to the in-process limiter.
    fn unavailable(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
        wait: Duration,
        commit: bool,
    ) -> Result<Decision> {
        let mut mask = 0u8;
        for (i, p) in self.tiers().policies().iter().enumerate() {
            if keys.get(p.key_kind()).is_none() {
                continue;
            }
            match p.failure_mode() {
                FailureMode::FailOpen => mask |= 1 << i,
                FailureMode::FailClosed => {
                    return Ok(Decision::new(Outcome::Unavailable {
                        tier: p.name(),
                        retry_after: wait.max(Duration::from_secs(1)),
                    }));
                }
            }
        }
        self.fallback.decide(keys, n, mask, commit)
    }
}
