//! A captured delivery replayed while its signed timestamp is still inside the
//! tolerance is a replay, however short the base TTL (class: a replay
//! accepted after the done marker expired while the signed timestamp is
//! still inside the tolerance), for every timestamped scheme, tolerance shape
//! (future-dated timestamps and past-only mode included) and store.
//!
//! Root cause of the old failure: nothing tied the done marker's TTL
//! (`ReplayPolicy::new(lease, ttl)`, the caller's choice) to the time a
//! delivery stays acceptable (timestamp + past tolerance - now: up to past +
//! future with a sender whose clock runs ahead, without bound in past-only
//! mode). With a TTL shorter than that, the marker expired while the same
//! bytes still verified, and the replay was claimed `New` and processed
//! twice. Now `Webhook::replay_policy` (and `ReplayStore::claim_verified`,
//! which uses it) raises the TTL to cover the window, or refuses the delivery
//! with `Error::ReplayWindowTooLong` when no TTL can.
//!
//! Redis and PostgreSQL count TTLs on their own clocks; the tests "age" their
//! records by the time the webhook's fake clock advances (Redis `PEXPIRE`,
//! PostgreSQL `expires_at - interval`), which is what waiting would do,
//! less the real time that passed since the record was written (which those
//! clocks counted already): store time and webhook time move together, as
//! in production.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hisn_webhook_verify::replay::{Claim, MemoryReplayStore, ReplayKey, ReplayPolicy, ReplayStore};
use hisn_webhook_verify::{
    Clock, Error, GenericHmac, ManualClock, Scheme, SignInput, Tolerance, Verified, Webhook,
};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;
const DAY: i64 = 86_400;
const SCOPE: &str = "tenant";
/// An empty JSON object, the body of the property test.
const OBJ: &[u8] = b"{}";

/// The timestamped schemes, each with a secret it accepts.
fn schemes() -> Vec<(Scheme, &'static str)> {
    vec![
        (Scheme::Stripe, "whsec_replay_window_secret"),
        (
            Scheme::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (
            Scheme::StandardWebhooksEd25519,
            "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=",
        ),
        (Scheme::Slack, "slack-replay-window-secret"),
        (Scheme::Paddle, "pdl_replay_window_secret"),
        (
            Scheme::Generic(GenericHmac::default()),
            "generic-replay-window-secret",
        ),
    ]
}

/// Tolerances and where the signed timestamp lies relative to now (seconds).
fn windows() -> Vec<(&'static str, Tolerance, i64)> {
    let t = |p, f| Tolerance::new(p, f).unwrap();
    let past_only = |p| Tolerance::past_only(p).unwrap();
    vec![
        ("fresh", Tolerance::DEFAULT, 0),
        ("old", Tolerance::DEFAULT, -299),
        ("future-dated at the limit", Tolerance::DEFAULT, 300),
        ("long future tolerance", t(5, 3600), 3599),
        ("a day each way", t(DAY as u64, DAY as u64), DAY),
        ("past-only, three days ahead", past_only(300), 3 * DAY),
        ("past-only zero, one second ahead", past_only(0), 1),
    ]
}

/// A base policy far too short for any of the windows.
fn tiny() -> ReplayPolicy {
    ReplayPolicy::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap()
}

fn webhook(
    scheme: &Scheme,
    secret: &str,
    tolerance: Tolerance,
    clock: Arc<ManualClock>,
) -> Webhook {
    Webhook::builder(scheme.clone())
        .secret(secret)
        .unwrap()
        .tolerance(tolerance)
        .clock(clock)
        .build()
        .unwrap()
}

/// The key of a replay claim, owned, for the store agers.
#[derive(Debug, Clone)]
struct Owned {
    scope: String,
    provider: String,
    id: String,
}

impl Owned {
    fn key(&self) -> ReplayKey<'_> {
        ReplayKey::new(&self.scope, &self.provider, &self.id).unwrap()
    }
}

/// One captured delivery: signed at `now + offset`, verified once, claimed
/// with the derived policy (`claim_verified`) or, when not `derived`, the
/// risky raw base, and completed.
async fn capture<S: ReplayStore>(
    store: &S,
    wh: &Webhook,
    clock: &ManualClock,
    scope: &str,
    n: usize,
    offset: i64,
    derived: bool,
) -> (Vec<(String, String)>, Vec<u8>, Owned, Verified, Instant) {
    let ts = clock.now_unix().checked_add_signed(offset).unwrap();
    let body = format!("{{\"delivery\":{n}}}").into_bytes();
    let headers = wh
        .sign(&SignInput::new(&body).id(&format!("msg_{n}")).timestamp(ts))
        .unwrap();
    let v = wh.verify(&headers, &body).unwrap();
    let key = Owned {
        scope: scope.to_owned(),
        provider: wh.scheme().name().to_owned(),
        id: v.replay_id(&body),
    };
    let (claim, policy) = if derived {
        store
            .claim_verified(&key.key(), wh, &v, tiny())
            .await
            .unwrap()
    } else {
        (store.claim(&key.key(), &tiny()).await.unwrap(), tiny())
    };
    let Claim::New(token) = claim else {
        panic!("first delivery must be new: {claim:?}")
    };
    let floor = if derived {
        policy.ttl()
    } else {
        Duration::ZERO
    };
    assert_eq!(token.min_done_ttl(), floor);
    // Odd deliveries complete with the raw base policy, as a caller who
    // dropped the derived one would: the token's floor still holds.
    let done_policy = if n % 2 == 1 { tiny() } else { policy };
    assert!(
        store
            .complete(&key.key(), &token, &done_policy)
            .await
            .unwrap()
    );
    (headers, body, key, v, Instant::now())
}

/// Real milliseconds since `t`.
fn real_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap()
}

/// The scenario, for one store: every scheme × window. `age(key, ms)` makes
/// the store's records `ms` older (a no-op when the store shares the clock).
async fn replayed_up_to_the_edge<S, F, Fut>(store: &S, clock: &Arc<ManualClock>, age: F)
where
    S: ReplayStore,
    F: Fn(Owned, u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut n = 0;
    for (scheme, secret) in schemes() {
        for (what, tolerance, offset) in windows() {
            let case = format!("{} / {what}", scheme.name());
            let wh = webhook(&scheme, secret, tolerance, clock.clone());
            n += 1;
            let (h, body, key, v, done_at) =
                capture(store, &wh, clock, SCOPE, n, offset, true).await;
            // The risky path, for contrast: the base TTL used as is.
            let (rh, rbody, risky, _, risky_done_at) =
                capture(store, &wh, clock, "risky", n, offset, false).await;
            // The last millisecond at which the captured request verifies.
            let until = v.accepted_until().unwrap();
            let last_ms = (until + 1) * 1000 - 1;
            let wait = last_ms - clock.now_unix_millis();
            clock.advance_millis(wait);
            age(key.clone(), wait.saturating_sub(real_ms(done_at))).await;
            age(risky.clone(), wait.saturating_sub(real_ms(risky_done_at))).await;
            let again = wh
                .verify(&h, &body)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let (claim, _) = store
                .claim_verified(&key.key(), &wh, &again, tiny())
                .await
                .unwrap();
            assert_eq!(claim, Claim::Done, "{case}: replay in the window's last ms");
            // Without the derived policy the same replay is processed again:
            // the scenario above is the one that used to fail.
            assert!(wh.verify(&rh, &rbody).is_ok(), "{case}");
            let risky_replay = store.claim(&risky.key(), &tiny()).await;
            assert!(
                matches!(risky_replay, Ok(Claim::New(_))),
                "{case}: the contrast case no longer shows the gap: {risky_replay:?}"
            );
            clock.advance_millis(1);
            assert_eq!(wh.verify(&h, &body), Err(Error::Stale), "{case}");
        }
    }
}

/// Past-only mode with a timestamp beyond what any TTL covers: refused before
/// the store is touched, whatever the base; just under the cap is claimed.
async fn refused_over_the_cap<S: ReplayStore>(store: &S, clock: &Arc<ManualClock>) {
    let max = i64::try_from(ReplayPolicy::MAX_TTL.as_secs()).unwrap();
    for (scheme, secret) in schemes() {
        let wh = webhook(
            &scheme,
            secret,
            Tolerance::past_only(300).unwrap(),
            clock.clone(),
        );
        let body = b"{\"far\":true}";
        let ts = clock.now_unix().checked_add_signed(max - 301).unwrap();
        let h = wh
            .sign(&SignInput::new(body).id("msg_far").timestamp(ts))
            .unwrap();
        let v = wh.verify(&h, body).unwrap();
        let key = ReplayKey::new("cap", scheme.name(), "far").unwrap();
        for base in [tiny(), ReplayPolicy::DEFAULT] {
            assert_eq!(
                store.claim_verified(&key, &wh, &v, base).await,
                Err(Error::ReplayWindowTooLong),
                "{}",
                scheme.name()
            );
        }
        let after = store.claim(&key, &tiny()).await;
        assert!(
            matches!(after, Ok(Claim::New(_))),
            "the refused claim touched the store: {after:?}"
        );
        let h = wh
            .sign(&SignInput::new(body).id("msg_far").timestamp(ts - 1))
            .unwrap();
        let v = wh.verify(&h, body).unwrap();
        let key = ReplayKey::new("cap", scheme.name(), "near").unwrap();
        let (claim, policy) = store.claim_verified(&key, &wh, &v, tiny()).await.unwrap();
        assert!(matches!(claim, Claim::New(_)), "{claim:?}");
        assert_eq!(policy.ttl(), ReplayPolicy::MAX_TTL);
    }
}

fn memory() -> (Arc<ManualClock>, MemoryReplayStore) {
    let clock = Arc::new(ManualClock::new(NOW));
    let store = MemoryReplayStore::with_clock(1024, clock.clone()).unwrap();
    (clock, store)
}

#[tokio::test]
async fn replay_after_the_marker_expired_inside_the_tolerance_memory() {
    let (clock, store) = memory();
    // The store reads the same clock: nothing more to age.
    replayed_up_to_the_edge(&store, &clock, |_, _| std::future::ready(())).await;
}

#[tokio::test]
async fn replay_window_over_the_ttl_cap_is_refused_memory() {
    let (clock, store) = memory();
    refused_over_the_cap(&store, &clock).await;
}

/// Schemes without a signed timestamp keep the base policy: "at most once per
/// TTL" is all a store can give them, and the docs say so.
#[tokio::test]
async fn schemes_without_a_timestamp_keep_the_base_policy() {
    let (clock, store) = memory();
    let wh = webhook(&Scheme::GitHub, "github-window", Tolerance::DEFAULT, clock);
    let h = wh.sign(&SignInput::new(b"{}")).unwrap();
    let v = wh.verify(&h, b"{}").unwrap();
    let key = ReplayKey::new(SCOPE, "github", "e").unwrap();
    let (claim, policy) = store.claim_verified(&key, &wh, &v, tiny()).await.unwrap();
    assert!(matches!(claim, Claim::New(_)));
    assert_eq!(policy, tiny());
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn replay_after_the_marker_expired_inside_the_tolerance_redis() {
    use hisn_webhook_verify::replay::RedisReplayStore;
    let Some(r) = hisn_test_support::redis("replay_window_redis").await else {
        return;
    };
    let store = RedisReplayStore::new(r.connection().await, r.prefix()).unwrap();
    let conn = r.connection().await;
    let clock = Arc::new(ManualClock::new(NOW));
    replayed_up_to_the_edge(&store, &clock, |k, ms| {
        let mut conn = conn.clone();
        let flat = format!(
            "{}:{}{}:{}{}",
            k.scope.len(),
            k.scope,
            k.provider.len(),
            k.provider,
            k.id
        );
        let key = r.key(&flat);
        async move {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let left = u64::try_from(pttl).unwrap_or(0);
            if left > ms {
                let _: () = redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(left - ms)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            } else {
                let _: () = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    refused_over_the_cap(&store, &clock).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn replay_after_the_marker_expired_inside_the_tolerance_postgres() {
    use hisn_webhook_verify::replay::PgReplayStore;
    let Some(db) = hisn_test_support::postgres("replay_window_postgres").await else {
        return;
    };
    let pool = db.pool().await;
    let store = PgReplayStore::new(pool.clone());
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    replayed_up_to_the_edge(&store, &clock, |k, ms| {
        let pool = pool.clone();
        async move {
            let r = sqlx::query(
                "update hisn_webhook_replay set expires_at = expires_at - $1 * interval '1 millisecond' \
                 where scope = $2 and provider = $3 and event_id = $4",
            )
            .bind(i64::try_from(ms).unwrap())
            .bind(&k.scope)
            .bind(&k.provider)
            .bind(&k.id)
            .execute(&pool)
            .await
            .unwrap();
            assert_eq!(r.rows_affected(), 1, "{k:?}");
        }
    })
    .await;
    refused_over_the_cap(&store, &clock).await;
}

/// `ReplayPolicy::MAX_TTL` in milliseconds (checked by the test below).
const MAX_TTL_MS: u64 = 30 * 86_400_000;

#[test]
fn max_ttl_is_thirty_days() {
    assert_eq!(ReplayPolicy::MAX_TTL.as_millis(), u128::from(MAX_TTL_MS));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the tolerance (past-only included), the timestamp's place in
    /// it, the sub-second phase of the clock and the base TTL: the derived
    /// TTL keeps the done marker alive through the last millisecond the
    /// delivery verifies, with the margin to spare; or, only when that needs
    /// more than the 30-day cap, the delivery is refused.
    #[test]
    fn derived_ttl_covers_the_acceptance_window(
        past in 0u64..=86_400,
        future in proptest::option::of(0u64..=86_400),
        phase_ms in 0u64..1000,
        offset_pick in any::<u64>(),
        base_ttl_ms in 1u64..=MAX_TTL_MS,
    ) {
        let tolerance = match future {
            Some(f) => Tolerance::new(past, f).unwrap(),
            None => Tolerance::past_only(past).unwrap(),
        };
        // Anywhere in the window; past-only reaches beyond the 30-day cap.
        let ahead = future.unwrap_or(40 * 86_400);
        let offset = i64::try_from(offset_pick % (past + ahead + 1)).unwrap()
            - i64::try_from(past).unwrap();
        let clock = Arc::new(ManualClock::new(NOW));
        clock.advance_millis(phase_ms);
        let store = MemoryReplayStore::with_clock(64, clock.clone()).unwrap();
        let wh = webhook(&Scheme::Stripe, "whsec_prop", tolerance, clock.clone());
        let ts = NOW.checked_add_signed(offset).unwrap();
        let h = wh.sign(&SignInput::new(OBJ).timestamp(ts)).unwrap();
        let v = wh.verify(&h, OBJ).unwrap();
        let base = ReplayPolicy::new(Duration::from_millis(1), Duration::from_millis(base_ttl_ms)).unwrap();
        let last_ms = (ts + past + 1) * 1000 - 1;
        let left_ms = last_ms + 1 - (NOW * 1000 + phase_ms);
        let policy = match wh.replay_policy(&v, base) {
            Ok(p) => p,
            Err(e) => {
                prop_assert_eq!(e, Error::ReplayWindowTooLong);
                prop_assert!(left_ms > MAX_TTL_MS - 1000);
                return Ok(());
            }
        };
        prop_assert_eq!(policy.lease(), base.lease());
        prop_assert!(policy.ttl() >= base.ttl());
        let ttl_ms = u64::try_from(policy.ttl().as_millis()).unwrap();
        // Never longer than needed: the base, or the window rounded up + 1 s.
        prop_assert!(ttl_ms == base_ttl_ms || ttl_ms < left_ms + 2000, "{} {}", ttl_ms, left_ms);
        let key = ReplayKey::new("t", "stripe", "e").unwrap();
        let Ok(Claim::New(token)) = store.claim_now(&key, &policy) else {
            return Err(TestCaseError::fail("first claim"));
        };
        prop_assert!(store.complete(&key, &token, &policy).now_or_never_ok());
        // The last verifying millisecond: still verifies, and is a replay.
        clock.advance_millis(last_ms - clock.now_unix_millis());
        prop_assert!(wh.verify(&h, OBJ).is_ok());
        prop_assert_eq!(store.claim_now(&key, &policy), Ok(Claim::Done));
        // Stale from the next millisecond, and already a margin before the
        // marker expires.
        clock.advance_millis(1);
        prop_assert_eq!(wh.verify(&h, OBJ), Err(Error::Stale));
        let expires_ms = NOW * 1000 + phase_ms + ttl_ms;
        prop_assert!(expires_ms >= last_ms + 1 + 1000);
    }
}

/// Polls a future that is ready at once (the memory store's).
trait NowOrNever {
    fn now_or_never_ok(self) -> bool;
}

impl<F: Future<Output = hisn_webhook_verify::Result<bool>>> NowOrNever for F {
    fn now_or_never_ok(self) -> bool {
        let mut f = std::pin::pin!(self);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        matches!(f.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(true)))
    }
}
