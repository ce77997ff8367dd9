//! Replay protection and at-most-once processing.
//!
//! A verified delivery is claimed in a [`ReplayStore`] under
//! `(scope, provider, event id)` before the handler runs:
//!
//! - [`Claim::New`]: this caller owns the event for the lease; run the handler,
//!   then [`ReplayStore::complete`] (or [`ReplayStore::release`] on failure so
//!   the provider's retry can run it).
//! - [`Claim::InProgress`]: another worker holds the lease: answer 409/429/5xx
//!   so the provider retries later.
//! - [`Claim::Done`]: already processed: answer 2xx without running the handler
//!   (a replayed delivery is a no-op success for the sender, not an error).
//!
//! The done marker lives for the TTL (default 72 h, because providers retry the
//! same event id with fresh timestamps for days).
//!
//! **The TTL must outlast the timestamp tolerance.** A captured delivery
//! verifies again, unchanged, until its signed timestamp leaves the tolerance
//! window (up to past + future seconds with a sender whose clock runs ahead;
//! without bound in past-only mode). If the done marker expires first, the
//! replay is claimed [`Claim::New`] and processed twice. Derive the policy
//! from the delivery: [`crate::Webhook::replay_policy`] raises the TTL to
//! cover the window (or refuses with [`Error::ReplayWindowTooLong`]), and
//! [`ReplayStore::claim_verified`] claims with it; pass the same policy to
//! [`ReplayStore::complete`]. Schemes without a signed timestamp (GitHub,
//! Shopify, Twilio, generic without a timestamp header) stay acceptable for
//! ever: for them a store gives "at most once per TTL", inherently.
//!
//! A lease that expires without
//! completion is taken over by the next claim, so a crashed worker does not
//! block an event forever; a worker that outlived its lease still records the
//! event done when it completes, unless another claim took it over meanwhile.
//!
//! Implementations: [`MemoryReplayStore`] (always available), `RedisReplayStore`
//! (feature `redis`), `PgReplayStore` (feature `postgres`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::webhook::{Verified, Webhook};

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use memory::MemoryReplayStore;
#[cfg(feature = "postgres")]
pub use postgres::PgReplayStore;
#[cfg(feature = "redis")]
pub use redis::RedisReplayStore;
#[cfg(all(feature = "redis", feature = "tower"))]
pub(crate) use redis::redis_prefix;

/// Longest scope, provider or event id accepted, in bytes.
pub const MAX_KEY_PART: usize = 256;

/// What is claimed: a caller-chosen scope (for example the tenant), the
/// provider (for example the scheme name) and the event id (for example
/// [`crate::Verified::replay_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey<'a> {
    scope: &'a str,
    provider: &'a str,
    event_id: &'a str,
}

impl<'a> ReplayKey<'a> {
    /// A key; each part must be 1..=256 bytes without control characters.
    pub fn new(scope: &'a str, provider: &'a str, event_id: &'a str) -> Result<Self> {
        for part in [scope, provider, event_id] {
            Self::valid_part(part)?;
        }
        Ok(Self {
            scope,
            provider,
            event_id,
        })
    }

    /// The rule for each part [`ReplayKey::new`] checks (outside `new`,
    /// which cargo-mutants never mutates: see docs/MUTATION.md).
    fn valid_part(part: &str) -> Result<()> {
        if part.is_empty() || part.len() > MAX_KEY_PART || part.chars().any(char::is_control) {
            return Err(Error::InvalidId);
        }
        Ok(())
    }

    /// The scope.
    pub fn scope(&self) -> &'a str {
        self.scope
    }

    /// The provider.
    pub fn provider(&self) -> &'a str {
        self.provider
    }

    /// The event id.
    pub fn event_id(&self) -> &'a str {
        self.event_id
    }

    /// An unambiguous flat encoding: each part length-prefixed.
    pub(crate) fn flat(&self) -> String {
        let mut s =
            String::with_capacity(self.scope.len() + self.provider.len() + self.event_id.len() + 8);
        for part in [self.scope, self.provider] {
            s.push_str(itoa(part.len()).as_str());
            s.push(':');
            s.push_str(part);
        }
        s.push_str(self.event_id);
        s
    }
}

fn itoa(n: usize) -> String {
    n.to_string()
}

/// Proof of a new claim; needed to complete or release it, so a worker whose
/// lease expired cannot complete an event someone else took over.
///
/// A token from [`ReplayStore::claim_verified`] also carries the shortest TTL
/// its completion must record ([`ClaimToken::min_done_ttl`]), so passing a
/// shorter policy to [`ReplayStore::complete`] cannot reopen the replay window.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimToken(pub(crate) TokenRepr, pub(crate) u64);

/// A local counter (memory stores) or a random string (shared stores).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum TokenRepr {
    Local(u64),
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    Random(String),
}

/// Numbers of local tokens: one counter for every in-memory store of the
/// process (replay and idempotency), so no two stores ever issue the same
/// token and one store's token never settles another's claim.
static NEXT_LOCAL_TOKEN: AtomicU64 = AtomicU64::new(1);

impl ClaimToken {
    /// A token no in-memory store of this process has issued before, with
    /// its number (what the store keeps beside the claim).
    pub(crate) fn next_local() -> (u64, Self) {
        let n = NEXT_LOCAL_TOKEN.fetch_add(1, Ordering::Relaxed);
        (n, Self(TokenRepr::Local(n), 0))
    }

    /// The shortest TTL a completion of this claim records, whatever policy
    /// [`ReplayStore::complete`] is given: the TTL the delivery needs for a
    /// token from [`ReplayStore::claim_verified`], zero otherwise. The
    /// stores of this crate honour it; a [`ReplayStore`] of your own should
    /// record a done marker for `max(policy.ttl(), token.min_done_ttl())`.
    pub fn min_done_ttl(&self) -> Duration {
        Duration::from_millis(self.1)
    }

    /// This token, with the shortest TTL its completion records.
    fn with_min_done_ttl(self, ttl_ms: u64) -> Self {
        Self(self.0, ttl_ms)
    }

    #[cfg(any(feature = "redis", feature = "postgres"))]
    pub(crate) fn text(&self) -> String {
        match &self.0 {
            TokenRepr::Local(n) => n.to_string(),
            TokenRepr::Random(s) => s.clone(),
        }
    }
}

impl std::fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimToken(..)")
    }
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Claim {
    /// First claim (or takeover of an expired lease): run the handler.
    New(ClaimToken),
    /// Another worker holds an unexpired lease.
    InProgress,
    /// Already processed: a replay. Answer 2xx and do nothing.
    Done,
}

/// Lease and TTL for claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPolicy {
    lease: Duration,
    ttl: Duration,
}

impl ReplayPolicy {
    /// Default TTL of a done marker: 72 hours.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 3600);
    /// Default lease of an in-progress claim: 60 seconds.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
    /// Longest TTL accepted: 30 days.
    pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);
    /// What [`crate::Webhook::replay_policy`] adds to the time a delivery
    /// stays acceptable (after rounding it up to whole seconds): 1 second.
    pub const WINDOW_MARGIN: Duration = Duration::from_secs(1);
    /// The defaults.
    pub const DEFAULT: Self = Self {
        lease: Self::DEFAULT_LEASE,
        ttl: Self::DEFAULT_TTL,
    };

    /// A policy: both durations at least one millisecond, lease ≤ TTL, TTL ≤
    /// [`ReplayPolicy::MAX_TTL`].
    ///
    /// For a verified delivery, pass the result through
    /// [`crate::Webhook::replay_policy`] (or claim with
    /// [`ReplayStore::claim_verified`]): a TTL shorter than the time the
    /// delivery stays inside the timestamp tolerance lets the same captured
    /// request be processed again once its done marker expired.
    pub fn new(lease: Duration, ttl: Duration) -> Result<Self> {
        Self::within_bounds(lease, ttl)?;
        Ok(Self { lease, ttl })
    }

    /// The bounds [`ReplayPolicy::new`] checks (outside `new`, which
    /// cargo-mutants never mutates: see docs/MUTATION.md).
    fn within_bounds(lease: Duration, ttl: Duration) -> Result<()> {
        if lease.as_millis() == 0 || ttl < lease || ttl > Self::MAX_TTL {
            return Err(Error::InvalidConfig(
                "replay policy: need 1 ms <= lease <= ttl <= 30 days",
            ));
        }
        Ok(())
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn lease_millis(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn ttl_millis(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The TTL of the done marker a completion with `token` records: this
    /// policy's, or the token's floor when longer (see
    /// [`ClaimToken::min_done_ttl`]).
    pub(crate) fn done_ttl_millis(&self, token: &ClaimToken) -> u64 {
        self.ttl_millis().max(token.1)
    }
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A store of claims. Implementations must make `claim` atomic: of any number
/// of concurrent claims of one key, at most one returns [`Claim::New`] until
/// the lease expires or the claim is released.
pub trait ReplayStore: Send + Sync {
    /// Claim `key`.
    ///
    /// For a verified delivery prefer [`ReplayStore::claim_verified`]: with
    /// `claim`, the caller must make sure `policy`'s TTL outlasts the
    /// delivery's tolerance window (see the [module docs](self)).
    fn claim(
        &self,
        key: &ReplayKey<'_>,
        policy: &ReplayPolicy,
    ) -> impl Future<Output = Result<Claim>> + Send;

    /// Mark a claim done (kept for the TTL of `policy`: pass the policy
    /// [`ReplayStore::claim_verified`] returned; at least
    /// [`ClaimToken::min_done_ttl`] in the stores of this crate). Call it once the handler has
    /// run, even after the lease ran out: a lapsed claim that no one took
    /// over is still recorded (the key holds this token, or nothing), so the
    /// event is not processed again. Returns `false` when another claim
    /// holds the key (the lease expired and someone took over: the handler
    /// may run twice) or the event is done already.
    fn complete(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
        policy: &ReplayPolicy,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Give a claim up (the handler failed), so a retry can claim it again.
    /// Returns `false` when `token` no longer owns the key.
    fn release(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Claim `key` for a delivery `webhook` verified, with the policy the
    /// delivery needs: `base`, its TTL raised by
    /// [`Webhook::replay_policy`] to outlast the delivery's tolerance window.
    /// Returns the claim and that policy; pass the policy to
    /// [`ReplayStore::complete`], or the done marker may expire while the
    /// same captured request still verifies.
    ///
    /// Fails with [`Error::ReplayWindowTooLong`] (before touching the store)
    /// when no TTL can cover the window: refuse the delivery.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use hisn_webhook_verify::replay::{Claim, MemoryReplayStore, ReplayKey, ReplayPolicy, ReplayStore};
    /// use hisn_webhook_verify::{ManualClock, Scheme, SignInput, Tolerance, Webhook};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), hisn_webhook_verify::Error> {
    /// let clock = Arc::new(ManualClock::new(1_700_000_000));
    /// let webhook = Webhook::builder(Scheme::Stripe)
    ///     .secret("whsec_example")?
    ///     .tolerance(Tolerance::new(300, 300)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let store = MemoryReplayStore::with_clock(1024, clock.clone())?;
    /// let body = br#"{"id":"evt_1"}"#;
    /// let headers = webhook.sign(&SignInput::new(body))?;
    ///
    /// let verified = webhook.verify(&headers, body)?;
    /// let id = verified.replay_id(body);
    /// let key = ReplayKey::new("tenant-42", "stripe:acct_1", &id)?;
    /// // A base TTL of one minute is far too short for a 300 s tolerance...
    /// let base = ReplayPolicy::new(Duration::from_secs(30), Duration::from_secs(60))?;
    /// let (claim, policy) = store.claim_verified(&key, &webhook, &verified, base).await?;
    /// // ... so it was raised to the 301 s left in the window (the whole
    /// // second `now + 300` is still accepted), plus the 1 s margin.
    /// assert_eq!(policy.ttl(), Duration::from_secs(302));
    /// let Claim::New(token) = claim else { unreachable!() };
    /// // (run the handler)
    /// assert!(store.complete(&key, &token, &policy).await?);
    ///
    /// // The same request, replayed in the window's last second: still a replay.
    /// clock.advance(300);
    /// let again = webhook.verify(&headers, body)?;
    /// let (claim, _) = store.claim_verified(&key, &webhook, &again, base).await?;
    /// assert_eq!(claim, Claim::Done);
    /// # Ok(())
    /// # }
    /// ```
    fn claim_verified(
        &self,
        key: &ReplayKey<'_>,
        webhook: &Webhook,
        verified: &Verified,
        base: ReplayPolicy,
    ) -> impl Future<Output = Result<(Claim, ReplayPolicy)>> + Send {
        // Derived before the future, so the future holds no `&Webhook`.
        let policy = webhook.replay_policy(verified, base);
        async move {
            let policy = policy?;
            let claim = match self.claim(key, &policy).await? {
                // The token remembers the TTL, in case `complete` is given
                // another policy.
                Claim::New(t) => Claim::New(t.with_min_done_ttl(policy.ttl_millis())),
                other => other,
            };
            Ok((claim, policy))
        }
    }
}

#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn random_token() -> Result<ClaimToken> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::StoreUnavailable)?;
    Ok(ClaimToken(
        TokenRepr::Random(crate::encoding::hex_lower(&b)),
        0,
    ))
}

#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn store_error(_what: &'static str, _e: &dyn std::fmt::Display) -> Error {
    #[cfg(feature = "tracing")]
    tracing::debug!(operation = _what, error = %_e, "webhook replay store error");
    Error::StoreUnavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated_and_flattened_unambiguously() {
        assert!(ReplayKey::new("", "p", "e").is_err());
        assert!(ReplayKey::new("t", "p", "e\n").is_err());
        assert!(ReplayKey::new("t", "p", &"e".repeat(257)).is_err());
        let a = ReplayKey::new("ab", "c", "d").unwrap().flat();
        let b = ReplayKey::new("a", "bc", "d").unwrap().flat();
        assert_ne!(a, b);
        assert_eq!(a, "2:ab1:cd");
        let long = "x".repeat(123);
        assert_eq!(
            ReplayKey::new(&long, "p", "e").unwrap().flat(),
            format!("123:{long}1:pe")
        );
        let mid = "y".repeat(45);
        assert_eq!(
            ReplayKey::new(&mid, "p", "e").unwrap().flat(),
            format!("45:{mid}1:pe")
        );
    }

    /// Each key part is 1..=256 bytes ([`MAX_KEY_PART`]), the bound
    /// inclusive for every part.
    #[test]
    fn key_parts_are_at_most_256_bytes_inclusive() {
        assert_eq!(MAX_KEY_PART, 256);
        let at = "k".repeat(MAX_KEY_PART);
        let over = "k".repeat(MAX_KEY_PART + 1);
        let k = ReplayKey::new(&at, &at, &at).unwrap();
        assert_eq!((k.scope(), k.provider(), k.event_id()), (&*at, &*at, &*at));
        assert!(ReplayKey::new(&over, "p", "e").is_err());
        assert!(ReplayKey::new("t", &over, "e").is_err());
        assert!(ReplayKey::new("t", "p", &over).is_err());
    }

    #[test]
    fn policy_is_checked() {
        assert!(ReplayPolicy::new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(ReplayPolicy::new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
        assert!(
            ReplayPolicy::new(Duration::from_secs(1), Duration::from_secs(31 * 86_400)).is_err()
        );
        assert_eq!(ReplayPolicy::default().ttl(), Duration::from_secs(259_200));
    }

    /// `1 ms <= lease <= ttl <= 30 days`, every bound inclusive; the
    /// accessors return what was given.
    #[test]
    fn policy_bounds_are_inclusive() {
        let ms = Duration::from_millis;
        let month = Duration::from_secs(30 * 86_400);
        let p = ReplayPolicy::new(ms(1), month).unwrap();
        assert_eq!((p.lease(), p.ttl()), (ms(1), month));
        assert_eq!((p.lease_millis(), p.ttl_millis()), (1, 2_592_000_000));
        assert!(ReplayPolicy::new(ms(1), month + ms(1)).is_err());
        let same = ReplayPolicy::new(ms(5), ms(5)).unwrap();
        assert_eq!((same.lease(), same.ttl()), (ms(5), ms(5)));
        assert!(ReplayPolicy::new(Duration::from_micros(999), ms(5)).is_err());
        assert_eq!(ReplayPolicy::default().lease(), Duration::from_secs(60));
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", ClaimToken(TokenRepr::Random("secret".into()), 1)),
            "ClaimToken(..)"
        );
    }
}
