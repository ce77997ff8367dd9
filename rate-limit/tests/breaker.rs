//! Circuit breaker: model-checked property tests with a fake clock, and the
//! tower layers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use hisn_rate_limit::ManualClock;
use hisn_rate_limit::breaker::*;
use proptest::prelude::*;

use crate::common::*;

fn breaker(
    failures: u32,
    trials: u32,
    cooldown_ms: u64,
) -> (CircuitBreaker<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::from_micros(T0));
    let cfg = BreakerConfig::default()
        .consecutive_failures(nz(failures))
        .half_open_trials(nz(trials))
        .cooldown(Duration::from_millis(cooldown_ms))
        .unwrap();
    (
        CircuitBreaker::with_clock("test", cfg, clock.clone()),
        clock,
    )
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Call(bool),
    Abandon,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..400).prop_map(Op::Advance),
        any::<bool>().prop_map(Op::Call),
        Just(Op::Abandon),
    ]
}

/// The documented state machine, written out plainly.
#[derive(Debug)]
struct Model {
    open: bool,
    half: bool,
    opened_at: u64,
    consecutive: u32,
    issued: u32,
    ok: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Never calls through while open; exactly the configured trials while
    /// half-open; a failing trial re-opens; successful trials close.
    #[test]
    fn breaker_follows_the_documented_state_machine(
        failures in 1u32..6, trials in 1u32..4, cooldown in 1u64..1000,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let (b, clock) = breaker(failures, trials, cooldown);
        let cd = cooldown * 1000;
        let mut m = Model { open: false, half: false, opened_at: 0, consecutive: 0, issued: 0, ok: 0 };
        for o in ops {
            let now = clock.micros();
            let ask = |m: &mut Model| {
                if m.open && now >= m.opened_at + cd { m.open = false; m.half = true; m.issued = 0; m.ok = 0; }
                if m.open { return false; }
                if m.half { if m.issued >= trials { return false; } m.issued += 1; }
                true
            };
            match o {
                Op::Advance(ms) => clock.advance_micros(ms * 1000),
                Op::Abandon => {
                    let allowed = ask(&mut m);
                    let got = b.try_acquire();
                    prop_assert_eq!(got.is_ok(), allowed);
                    if allowed && m.half { m.issued -= 1; }
                    drop(got);
                }
                Op::Call(success) => {
                    let allowed = ask(&mut m);
                    let got = b.try_acquire();
                    prop_assert_eq!(got.is_ok(), allowed, "model {:?}", m);
                    let Ok(permit) = got else { continue };
                    if success {
                        permit.success();
                        if m.half { m.ok += 1; if m.ok >= trials { m.half = false; m.consecutive = 0; } }
                        else { m.consecutive = 0; }
                    } else {
                        permit.failure();
                        if m.half { m.half = false; m.open = true; m.opened_at = now; }
                        else { m.consecutive += 1; if m.consecutive >= failures { m.open = true; m.opened_at = now; m.consecutive = 0; } }
                    }
                }
            }
            let expect = if m.open && clock.micros() < m.opened_at + cd { BreakerState::Open }
                else if m.open || m.half { BreakerState::HalfOpen } else { BreakerState::Closed };
            prop_assert_eq!(b.state(), expect);
            if b.state() == BreakerState::HalfOpen && m.open { m.open = false; m.half = true; m.issued = 0; m.ok = 0; }
        }
    }
}

#[test]
fn breaker_half_open_lets_exactly_the_trials_through_and_recovers_in_one_interval() {
    let (b, clock) = breaker(2, 3, 100);
    b.try_acquire().unwrap().failure();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), BreakerState::Open);
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.retry_after, Duration::from_millis(100));
    clock.advance(Duration::from_millis(100));
    let permits: Vec<_> = (0..10).filter_map(|_| b.try_acquire().ok()).collect();
    assert_eq!(permits.len(), 3, "exactly the configured trials pass");
    for p in permits {
        p.success();
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // Results of calls from before a transition are ignored.
    let old = b.try_acquire().unwrap();
    b.try_acquire().unwrap().failure();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), BreakerState::Open);
    old.success();
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn breaker_opens_on_failure_ratio() {
    let clock = Arc::new(ManualClock::from_micros(T0));
    let cfg = BreakerConfig::default()
        .consecutive_failures(nz(100))
        .failure_ratio(
            FailureRatio::new(50, NonZeroU32::new(10).unwrap(), Duration::from_secs(10)).unwrap(),
        );
    let b = CircuitBreaker::with_clock("ratio", cfg, clock.clone());
    for i in 0..9 {
        let p = b.try_acquire().unwrap();
        if i % 2 == 0 { p.failure() } else { p.success() }
    }
    assert_eq!(b.state(), BreakerState::Closed, "below min_calls");
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), BreakerState::Open, "6 of 10 failed");
    assert!(FailureRatio::new(0, NonZeroU32::MIN, Duration::from_secs(1)).is_err());
    assert!(BreakerConfig::default().cooldown(Duration::ZERO).is_err());
}

#[cfg(feature = "tower")]
mod layer {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    fn failing(
        calls: Arc<AtomicU32>,
    ) -> impl Service<http::Request<()>, Response = u16, Error = &'static str, Future = impl Send>
    + Clone
    + Send {
        service_fn(move |_req: http::Request<()>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<u16, _>("down")
            }
        })
    }

    #[tokio::test]
    async fn breaker_layer_stops_calling_a_dead_dependency() {
        let (b, clock) = breaker(5, 1, 30_000);
        let calls = Arc::new(AtomicU32::new(0));
        let svc = CircuitBreakerLayer::new(b.clone()).layer(failing(calls.clone()));
        for _ in 0..20 {
            let r = svc.clone().oneshot(http::Request::new(())).await;
            assert!(r.is_err());
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "open breaker must not call through"
        );
        let r = svc.clone().oneshot(http::Request::new(())).await;
        assert!(matches!(r, Err(BreakerError::Open { .. })));
        clock.advance(Duration::from_secs(30));
        let _ = svc.clone().oneshot(http::Request::new(())).await;
        assert_eq!(calls.load(Ordering::SeqCst), 6, "one trial when half-open");
        assert_eq!(b.state(), BreakerState::Open);
    }

    fn retrying(
        calls: Arc<AtomicU32>,
        policy: RetryPolicy,
    ) -> impl Service<http::Request<()>, Response = u16, Error = RetryError<&'static str>> + Clone
    {
        ServiceBuilder::new()
            .layer(RetryLayer::new(policy, |r: &Result<u16, &'static str>| {
                r.is_err()
            }))
            .service(failing(calls))
    }

    #[tokio::test(start_paused = true)]
    async fn retry_only_for_idempotent_requests_and_within_the_deadline() {
        let policy = RetryPolicy::new(
            4,
            Duration::from_millis(100),
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
        .unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let get = http::Request::get("/x").body(()).unwrap();
        assert!(retrying(calls.clone(), policy).oneshot(get).await.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "GET retried up to max_attempts"
        );

        for method in [http::Method::POST, http::Method::PATCH] {
            let calls = Arc::new(AtomicU32::new(0));
            let req = http::Request::builder()
                .method(method)
                .uri("/x")
                .body(())
                .unwrap();
            assert!(retrying(calls.clone(), policy).oneshot(req).await.is_err());
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "non-idempotent requests are never retried"
            );
        }

        // A deadline shorter than the first backoff ceiling: at most the retries that fit.
        let tight = RetryPolicy::new(
            10,
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_secs(6),
        )
        .unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let start = tokio::time::Instant::now();
        let _ = retrying(calls.clone(), tight)
            .oneshot(http::Request::get("/").body(()).unwrap())
            .await;
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "no attempt starts after the deadline"
        );
        assert!(calls.load(Ordering::SeqCst) >= 1);

        // An attempt still running at the deadline is abandoned.
        let hang = service_fn(|_req: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<u16, &'static str>(200)
        });
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(tight, |r: &Result<u16, &'static str>| {
                r.is_err()
            }))
            .service(hang);
        let start = tokio::time::Instant::now();
        let r = svc.oneshot(http::Request::get("/").body(()).unwrap()).await;
        assert!(matches!(r, Err(RetryError::Deadline)));
        assert_eq!(start.elapsed(), Duration::from_secs(6));
    }

    #[test]
    fn backoff_ceiling_doubles_and_is_capped() {
        let p = RetryPolicy::new(
            5,
            Duration::from_millis(100),
            Duration::from_millis(350),
            Duration::from_secs(9),
        )
        .unwrap();
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(2), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(350));
        assert_eq!(p.backoff_ceiling(40), Duration::from_millis(350));
        assert!(
            RetryPolicy::new(
                1,
                Duration::from_millis(1),
                Duration::from_millis(1),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
