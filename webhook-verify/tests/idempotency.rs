//! The Idempotency-Key layer: 400/422/409, byte-for-byte replay, scope, expiry,
//! and 100 concurrent identical requests producing one side effect.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hisn_webhook_verify::ManualClock;
use hisn_webhook_verify::idempotency::{
    IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

type Svc<St = MemoryIdempotencyStore> = hisn_webhook_verify::idempotency::IdempotencyService<
    tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>,
    St,
>;

struct Harness<St = MemoryIdempotencyStore> {
    svc: Svc<St>,
    effects: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
    clock: Arc<ManualClock>,
}

fn harness(gated: bool) -> Harness {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let store = Arc::new(MemoryIdempotencyStore::with_clock(10_000, clock.clone()));
    harness_with(store, clock, gated)
}

fn harness_with<St: IdempotencyStore>(
    store: Arc<St>,
    clock: Arc<ManualClock>,
    gated: bool,
) -> Harness<St> {
    let effects = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(if gated {
        0
    } else {
        1_000_000
    }));
    let (e, g) = (effects.clone(), gate.clone());
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let (e, g) = (e.clone(), g.clone());
        async move {
            let n = e.fetch_add(1, Ordering::SeqCst) + 1;
            let _permit = g.acquire().await.unwrap();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let resp = Response::builder()
                .status(StatusCode::CREATED)
                .header("x-effect", n.to_string())
                .body(Full::new(Bytes::from(format!(
                    "created #{n} from {} bytes",
                    body.len()
                ))))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    let layer = IdempotencyLayer::new(store)
        .clock(clock.clone())
        .scope(|p| {
            p.headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let svc = layer.layer(tower::util::BoxCloneSyncService::new(inner));
    Harness {
        svc,
        effects,
        gate,
        clock,
    }
}

fn req(key: Option<&str>, tenant: &str, body: &'static str) -> Request<Full<Bytes>> {
    let mut b = Request::post("/t/orders?x=1").header("x-tenant", tenant);
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn send<St: IdempotencyStore>(
    svc: &Svc<St>,
    r: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let resp = svc.clone().oneshot(r).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn first_response_is_replayed_byte_for_byte() {
    replay_semantics(harness(false)).await;
}

async fn replay_semantics<St: IdempotencyStore>(h: Harness<St>) {
    let first = send(&h.svc, req(Some("\"k-1\""), "acme", "{\"a\":1}")).await;
    assert_eq!(first.0, StatusCode::CREATED);
    let again = send(&h.svc, req(Some("\"k-1\""), "acme", "{\"a\":1}")).await;
    assert_eq!(again, first);
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
    // Same key, other payload: 422, no side effect.
    assert_eq!(
        send(&h.svc, req(Some("\"k-1\""), "acme", "{\"a\":2}"))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Same key in another tenant's scope: independent.
    assert_eq!(
        send(&h.svc, req(Some("\"k-1\""), "globex", "{\"a\":2}"))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(h.effects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn missing_or_malformed_key_is_400_and_get_passes_through() {
    let h = harness(false);
    assert_eq!(
        send(&h.svc, req(None, "acme", "{}")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&h.svc, req(Some("\"unterminated"), "acme", "{}"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let long = "a".repeat(256);
    let r = Request::post("/")
        .header("x-tenant", "acme")
        .header("idempotency-key", long)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&h.svc, r).await.0, StatusCode::BAD_REQUEST);
    let r = Request::post("/")
        .header("idempotency-key", "k")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(&h.svc, r).await.0,
        StatusCode::BAD_REQUEST,
        "no scope: refused"
    );
    assert_eq!(h.effects.load(Ordering::SeqCst), 0);
    let r = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(&h.svc, r).await.0, StatusCode::CREATED);
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expiry_forgets_the_key() {
    let h = harness(false);
    send(&h.svc, req(Some("k"), "acme", "{}")).await;
    h.clock.advance(24 * 3600 - 1);
    send(&h.svc, req(Some("k"), "acme", "{}")).await;
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
    h.clock.advance(1);
    let (status, headers, _) = send(&h.svc, req(Some("k"), "acme", "{}")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-effect"], "2");
    assert!(
        IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::new(1)))
            .expiry(Duration::ZERO)
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_identical_requests_one_side_effect() {
    one_side_effect(harness(true)).await;
}

async fn one_side_effect<St: IdempotencyStore>(h: Harness<St>) {
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let svc = h.svc.clone();
        tasks.push(tokio::spawn(async move {
            send(&svc, req(Some("\"same\""), "acme", "{\"pay\":5}")).await
        }));
    }
    // Wait (without sleeping) until the first request reached the handler, and
    // the other 99 have answered.
    let mut done = Vec::new();
    let pending = tasks;
    // A bound on the wait (not a sleep): if the layer let a second request
    // through, it would block at the gate and this fails instead of hanging.
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while pending.iter().filter(|t| t.is_finished()).count() < 99 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "99 requests did not get 409 while the first was in flight"
    );
    h.gate.add_permits(1);
    for t in pending {
        done.push(t.await.unwrap());
    }
    let created = done.iter().filter(|r| r.0 == StatusCode::CREATED).count();
    let conflict = done.iter().filter(|r| r.0 == StatusCode::CONFLICT).count();
    assert_eq!((created, conflict), (1, 99));
    assert_eq!(
        h.effects.load(Ordering::SeqCst),
        1,
        "exactly one side effect"
    );
    // Afterwards the stored response is replayed.
    let again = send(&h.svc, req(Some("\"same\""), "acme", "{\"pay\":5}")).await;
    assert_eq!(
        again,
        done.into_iter()
            .find(|r| r.0 == StatusCode::CREATED)
            .unwrap()
    );
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use hisn_webhook_verify::idempotency::RedisIdempotencyStore;

    async fn store(
        name: &str,
    ) -> Option<(hisn_test_support::TestRedis, Arc<RedisIdempotencyStore>)> {
        let r = hisn_test_support::redis(name).await?;
        let s = RedisIdempotencyStore::new(r.connection().await, r.prefix()).unwrap();
        Some((r, Arc::new(s)))
    }

    #[tokio::test]
    async fn redis_idempotency_replays_and_scopes() {
        let Some((_r, s)) = store("redis_idem_replay").await else {
            return;
        };
        replay_semantics(harness_with(s, Arc::new(ManualClock::new(0)), false)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_idempotency_hundred_concurrent_one_side_effect() {
        let Some((_r, s)) = store("redis_idem_concurrent").await else {
            return;
        };
        one_side_effect(harness_with(s, Arc::new(ManualClock::new(0)), true)).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;
    use hisn_webhook_verify::idempotency::PgIdempotencyStore;

    async fn store(
        name: &str,
    ) -> Option<(hisn_test_support::TestDatabase, Arc<PgIdempotencyStore>)> {
        let db = hisn_test_support::postgres(name).await?;
        let s = PgIdempotencyStore::new(db.pool().await);
        s.migrate().await.unwrap();
        Some((db, Arc::new(s)))
    }

    #[tokio::test]
    async fn postgres_idempotency_replays_and_scopes() {
        let Some((_db, s)) = store("pg_idem_replay").await else {
            return;
        };
        replay_semantics(harness_with(s, Arc::new(ManualClock::new(0)), false)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_idempotency_hundred_concurrent_one_side_effect() {
        let Some((_db, s)) = store("pg_idem_concurrent").await else {
            return;
        };
        one_side_effect(harness_with(s, Arc::new(ManualClock::new(0)), true)).await;
    }
}
