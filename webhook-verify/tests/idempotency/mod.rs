//! The Idempotency-Key layer: 400/422/409, byte-for-byte replay, required
//! scope, denied headers, leases, release on drop and panic, oversize
//! responses, pass-through, expiry, and 100 concurrent identical requests
//! producing one side effect; on memory, Redis and PostgreSQL.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hisn_webhook_verify::ManualClock;
use hisn_webhook_verify::idempotency::{
    BODY_OMITTED_HEADER, Begin, IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore,
    RequestBody, StoredResponse,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use tower::{Layer, ServiceExt, service_fn};

type Inner = tower::util::BoxCloneSyncService<
    Request<RequestBody<Full<Bytes>>>,
    Response<Full<Bytes>>,
    Infallible,
>;
type Svc<St = MemoryIdempotencyStore> =
    hisn_webhook_verify::idempotency::IdempotencyService<Inner, St>;

mod lapsed;
mod not_stored;
#[cfg(feature = "redis")]
mod prefix;
mod response_edges;
use response_edges::{broken_body, dropped_mid_response};

const MAX_BODY: usize = 4096;

struct Harness<St = MemoryIdempotencyStore> {
    svc: Svc<St>,
    effects: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
    clock: Arc<ManualClock>,
    store: Arc<St>,
}

fn harness(gated: bool) -> Harness {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let store = Arc::new(MemoryIdempotencyStore::with_clock(10_000, clock.clone()));
    harness_with(store, clock, gated)
}

/// The handler counts side effects, waits at the gate, and answers from the
/// request's instructions: `x-panic` panics, `x-big: N` answers an N-byte
/// body, `x-cookie` sets a cookie; `x-buffered` tells whether the body it
/// saw was buffered by the layer.
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
    let inner = handler(effects.clone(), gate.clone());
    let layer = IdempotencyLayer::new(store.clone(), |p| {
        p.headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
    .max_body(MAX_BODY)
    .unwrap()
    .deny_header("x-trace")
    .unwrap();
    let svc = layer.layer(inner);
    Harness {
        svc,
        effects,
        gate,
        clock,
        store,
    }
}

fn handler(e: Arc<AtomicUsize>, g: Arc<tokio::sync::Semaphore>) -> Inner {
    let inner = service_fn(move |req: Request<RequestBody<Full<Bytes>>>| {
        let (e, g) = (e.clone(), g.clone());
        async move {
            let n = e.fetch_add(1, Ordering::SeqCst) + 1;
            let _permit = g.acquire().await.unwrap();
            assert!(req.headers().get("x-panic").is_none(), "handler panics");
            let buffered = matches!(req.body(), Either::Left(_));
            let big: Option<usize> = req
                .headers()
                .get("x-big")
                .map(|v| v.to_str().unwrap().parse().unwrap());
            let cookie = req.headers().get("x-cookie").cloned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut resp = Response::builder()
                .status(StatusCode::CREATED)
                .header("x-effect", n.to_string())
                .header("x-buffered", if buffered { "yes" } else { "no" })
                .header("x-trace", format!("trace-{n}"));
            if let Some(c) = cookie {
                resp = resp.header("set-cookie", c);
            }
            let out = match big {
                Some(len) => Bytes::from(vec![b'z'; len]),
                None => Bytes::from(format!("created #{n} from {} bytes", body.len())),
            };
            Ok::<_, Infallible>(resp.body(Full::new(out)).unwrap())
        }
    });
    tower::util::BoxCloneSyncService::new(inner)
}

fn req(key: Option<&str>, tenant: &str, body: &'static str) -> Request<Full<Bytes>> {
    let mut b = Request::post("/t/orders?x=1").header("x-tenant", tenant);
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn with_header(mut r: Request<Full<Bytes>>, name: &'static str, v: &str) -> Request<Full<Bytes>> {
    r.headers_mut().insert(name, v.parse().unwrap());
    r
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

/// Wait (bounded, without a fixed sleep) until the handler has been entered
/// `n` times.
async fn entered(effects: &AtomicUsize, n: usize) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while effects.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("handler entered");
}

/// Retry `r` until it is no longer `409` (a shared store releases a dropped
/// request's key from a spawned task, a moment later).
async fn send_until_released<St: IdempotencyStore>(
    svc: &Svc<St>,
    r: impl Fn() -> Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    for _ in 0..500 {
        let out = send(svc, r()).await;
        if out.0 != StatusCode::CONFLICT {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the key was never released");
}

#[tokio::test]
async fn first_response_is_replayed_byte_for_byte() {
    replay_semantics(harness(false)).await;
}

async fn replay_semantics<St: IdempotencyStore>(h: Harness<St>) {
    let first = send(&h.svc, req(Some("\"k-1\""), "acme", "{\"a\":1}")).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(first.1["x-buffered"], "yes");
    let again = send(&h.svc, req(Some("\"k-1\""), "acme", "{\"a\":1}")).await;
    // Byte-for-byte except the denied header, which only the first carried.
    assert_eq!((again.0, &again.2), (first.0, &first.2));
    assert_eq!(again.1["x-effect"], first.1["x-effect"]);
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
    // Same key, other payload: 422, no side effect.
    assert_eq!(
        send(&h.svc, req(Some("\"k-1\""), "acme", "{\"a\":2}"))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
}

/// Root cause: `IdempotencyLayer::new` defaulted the scope to one global key
/// space and stored every response header. Tenant B reusing tenant A's key
/// (same payload) got A's stored response, `Set-Cookie` included: a session
/// handed across tenants. The scope is now a required constructor argument,
/// and `set-cookie` (plus the configurable deny list) is filtered both when
/// storing and when replaying.
#[tokio::test]
async fn cross_scope_key_reuse_never_sees_another_tenants_response() {
    cross_scope(harness(false)).await;
}

async fn cross_scope<St: IdempotencyStore>(h: Harness<St>) {
    let a = with_header(
        req(Some("shared-key"), "tenant-a", "{}"),
        "x-cookie",
        "sid=A-SECRET",
    );
    let first = send(&h.svc, a).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(
        first.1["set-cookie"], "sid=A-SECRET",
        "the first response is untouched"
    );
    assert_eq!(first.1["x-trace"], "trace-1");
    // Tenant B, same key, same payload: its own execution, not A's response.
    let b = send(&h.svc, req(Some("shared-key"), "tenant-b", "{}")).await;
    assert_eq!(b.0, StatusCode::CREATED);
    assert_eq!(b.1["x-effect"], "2");
    assert!(b.1.get("set-cookie").is_none());
    assert_eq!(h.effects.load(Ordering::SeqCst), 2);
    // Tenant A's own replay: same response, but no cookie and no denied header.
    let again = send(&h.svc, req(Some("shared-key"), "tenant-a", "{}")).await;
    assert_eq!((again.0, &again.2), (first.0, &first.2));
    assert_eq!(again.1["x-effect"], "1");
    assert!(again.1.get("set-cookie").is_none(), "set-cookie replayed");
    assert!(again.1.get("x-trace").is_none(), "denied header replayed");
    assert_eq!(h.effects.load(Ordering::SeqCst), 2);
}

/// Root cause: an in-flight record lived for the whole expiry and nothing
/// removed it when the request future was dropped (client gone, timeout) or
/// the handler panicked, so every retry answered `409` for 24 hours. The
/// service now holds a guard that releases the key on drop or unwind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_request_future_releases_the_key() {
    dropped(harness(true)).await;
}

async fn dropped<St: IdempotencyStore>(h: Harness<St>) {
    let svc = h.svc.clone();
    let first = tokio::spawn(async move { send(&svc, req(Some("k-drop"), "acme", "{}")).await });
    entered(&h.effects, 1).await;
    // Bounded: if the lease did not hold, this request would run and wait at
    // the gate for ever.
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        send(&h.svc, req(Some("k-drop"), "acme", "{}")),
    )
    .await;
    assert_eq!(second.map(|r| r.0), Ok(StatusCode::CONFLICT));
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    h.gate.add_permits(1_000);
    let retry = send_until_released(&h.svc, || req(Some("k-drop"), "acme", "{}")).await;
    assert_eq!(retry.0, StatusCode::CREATED);
    assert_eq!(retry.1["x-effect"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_releases_the_key() {
    panicked(harness(false)).await;
}

async fn panicked<St: IdempotencyStore>(h: Harness<St>) {
    let svc = h.svc.clone();
    let boom = with_header(req(Some("k-panic"), "acme", "{}"), "x-panic", "1");
    let first = tokio::spawn(async move { send(&svc, boom).await });
    assert!(first.await.unwrap_err().is_panic());
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
    // The retry (without the panic instruction: another fingerprint would
    // only prove the key is free if the record were gone, so the same
    // request body and path are used) runs instead of answering 409.
    let retry = send_until_released(&h.svc, || req(Some("k-panic"), "acme", "{}")).await;
    assert_eq!(retry.0, StatusCode::CREATED);
    assert_eq!(h.effects.load(Ordering::SeqCst), 2);
}

/// Root cause: a successful response larger than `max_body` became a `500`
/// and the key was released, so every retry repeated the side effect. Now
/// the client gets the whole response and completion is recorded without the
/// body: a replay answers the stored status with an empty body and
/// `idempotency-body-omitted: ?1`, never a second run.
#[tokio::test]
async fn oversize_success_records_completion_without_body() {
    oversize(harness(false)).await;
}

async fn oversize<St: IdempotencyStore>(h: Harness<St>) {
    let big = || {
        with_header(
            req(Some("k-big"), "acme", "{}"),
            "x-big",
            &(MAX_BODY + 1).to_string(),
        )
    };
    let first = send(&h.svc, big()).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(
        first.2.len(),
        MAX_BODY + 1,
        "the first response is sent whole"
    );
    assert!(first.1.get(BODY_OMITTED_HEADER).is_none());
    for _ in 0..3 {
        let again = send(&h.svc, big()).await;
        assert_eq!(again.0, StatusCode::CREATED);
        assert_eq!(again.1[BODY_OMITTED_HEADER], "?1");
        assert_eq!(again.1["x-effect"], "1");
        assert_eq!(again.1["content-length"], "0");
        assert!(again.2.is_empty());
    }
    assert_eq!(
        h.effects.load(Ordering::SeqCst),
        1,
        "no side effect repeated"
    );
    // Exactly at the bound the body is stored and replayed.
    let at = || {
        with_header(
            req(Some("k-at"), "acme", "{}"),
            "x-big",
            &MAX_BODY.to_string(),
        )
    };
    let first = send(&h.svc, at()).await;
    let again = send(&h.svc, at()).await;
    assert_eq!(again.2, first.2);
    assert_eq!(again.2.len(), MAX_BODY);
    assert!(again.1.get(BODY_OMITTED_HEADER).is_none());
    assert_eq!(h.effects.load(Ordering::SeqCst), 2);
}

/// Root cause: the service buffered (and bounded) every request body before
/// looking at the method, so a `GET`/`PUT` with a large or streaming body got
/// `413` and the inner service never saw the original body. Requests the
/// layer does not handle now pass through untouched.
#[tokio::test]
async fn unhandled_methods_pass_through_unbuffered() {
    let h = harness(false);
    let huge: &'static str = Box::leak("x".repeat(MAX_BODY * 4).into_boxed_str());
    for method in ["GET", "PUT", "DELETE"] {
        let r = Request::builder()
            .method(method)
            .uri("/t")
            .header("idempotency-key", "a b c not even valid")
            .header("idempotency-key", "repeated")
            .body(Full::new(Bytes::from_static(huge.as_bytes())))
            .unwrap();
        let (status, headers, body) = send(&h.svc, r).await;
        assert_eq!(status, StatusCode::CREATED, "{method}");
        assert_eq!(headers["x-buffered"], "no", "{method}");
        assert_eq!(
            body,
            format!(
                "created #{} from {} bytes",
                headers["x-effect"].to_str().unwrap(),
                huge.len()
            )
        );
    }
    // An optional key that is absent: also untouched.
    let effects = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(10));
    let optional = IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::new(10)), |_| {
        Some("t".into())
    })
    .required(false);
    let svc = optional.layer(handler(effects.clone(), gate));
    let r = Request::post("/")
        .header("x-tenant", "acme")
        .body(Full::new(Bytes::from_static(huge.as_bytes())))
        .unwrap();
    let resp = svc.oneshot(r).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["x-buffered"], "no");
}

/// Leases on a fake clock: the first request's lease is renewed while its
/// handler runs (so a slow handler is never run twice), while a request whose
/// worker vanished without dropping anything (a crash: here the future is
/// leaked) blocks its key for one lease only.
#[tokio::test(start_paused = true)]
async fn lease_is_renewed_while_running_and_expires_after_a_crash() {
    let h = harness(true);
    let svc = h.svc.clone();
    let slow = tokio::spawn(async move { send(&svc, req(Some("k-slow"), "acme", "{}")).await });
    entered(&h.effects, 1).await;
    // Ten leases' worth of time: the renewal every 10 s keeps the key busy.
    for _ in 0..30 {
        h.clock.advance(10);
        tokio::time::advance(Duration::from_secs(10)).await;
        tokio::task::yield_now().await;
        // Bounded: without renewal the retry would run and block at the gate.
        let retry = tokio::time::timeout(
            Duration::from_secs(5),
            send(&h.svc, req(Some("k-slow"), "acme", "{}")),
        )
        .await;
        assert_eq!(retry.map(|r| r.0), Ok(StatusCode::CONFLICT));
    }
    h.gate.add_permits(1);
    assert_eq!(slow.await.unwrap().0, StatusCode::CREATED);
    assert_eq!(h.effects.load(Ordering::SeqCst), 1);
    // Take the permit back, so the next handler blocks again.
    h.gate.acquire().await.unwrap().forget();

    // A crash: the request future is leaked, so no guard runs and nothing
    // renews.
    let crashed = Box::pin(h.svc.clone().oneshot(req(Some("k-crash"), "acme", "{}")));
    let mut crashed = std::mem::ManuallyDrop::new(crashed);
    let waker = std::task::Waker::noop();
    let _ = crashed
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker));
    assert_eq!(h.effects.load(Ordering::SeqCst), 2);
    h.clock.advance(29);
    assert_eq!(
        send(&h.svc, req(Some("k-crash"), "acme", "{}")).await.0,
        StatusCode::CONFLICT
    );
    h.clock.advance(1);
    h.gate.add_permits(10);
    let (status, headers, _) = send(&h.svc, req(Some("k-crash"), "acme", "{}")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the expired lease is taken over"
    );
    assert_eq!(headers["x-effect"], "3");
    assert!(h.store.len_in_scope("acme") >= 2);
}

#[tokio::test]
async fn missing_or_malformed_key_is_400() {
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
    let r = Request::post("/")
        .header("x-tenant", "acme")
        .header("idempotency-key", "k")
        .header("idempotency-key", "k")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(&h.svc, r).await.0,
        StatusCode::BAD_REQUEST,
        "repeated key"
    );
    let r = Request::post("/")
        .header("x-tenant", "acme")
        .header("idempotency-key", "k")
        .body(Full::new(Bytes::from(vec![0u8; MAX_BODY + 1])))
        .unwrap();
    assert_eq!(send(&h.svc, r).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.effects.load(Ordering::SeqCst), 0);
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
    let layer = || IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::new(1)), |_| None);
    assert!(layer().expiry(Duration::ZERO).is_err());
    assert!(layer().expiry(Duration::from_secs(1)).is_ok());
    assert!(layer().lease(Duration::from_millis(999)).is_err());
    assert!(layer().lease(Duration::from_secs(3601)).is_err());
    assert!(layer().lease(Duration::from_secs(3600)).is_ok());
    assert!(layer().max_body(0).is_err());
    assert!(layer().deny_header("bad header").is_err());
}

/// Expiry is 1 s to 30 days and the lease 1 s to 1 h, every bound
/// inclusive; an accepted setting is the one the layer then holds (its
/// `Debug` shows the settings, never the store or the scope function).
#[test]
fn layer_settings_bounds_are_inclusive() {
    let ms = Duration::from_millis;
    let (second, hour, month) = (ms(1_000), ms(3_600_000), ms(30 * 86_400_000));
    let layer = || IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::new(1)), |_| None);
    assert!(layer().expiry(second - ms(1)).is_err());
    assert!(layer().expiry(month + ms(1)).is_err());
    assert!(layer().lease(second - ms(1)).is_err());
    assert!(layer().lease(hour + ms(1)).is_err());
    let low = layer()
        .expiry(second)
        .unwrap()
        .lease(second)
        .unwrap()
        .max_body(1)
        .unwrap()
        .required(false);
    assert_eq!(
        format!("{low:?}"),
        "IdempotencyLayer { required: false, expiry: 1s, lease: 1s, max_body: 1, deny: [], .. }"
    );
    let high = layer()
        .expiry(month)
        .unwrap()
        .lease(hour)
        .unwrap()
        .deny_header("X-Trace")
        .unwrap()
        .deny_header("x-trace")
        .unwrap();
    assert_eq!(
        format!("{high:?}"),
        "IdempotencyLayer { required: true, expiry: 2592000s, lease: 3600s, max_body: 1048576, deny: [\"x-trace\"], .. }"
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
    // Afterwards the stored response is replayed (minus the denied header).
    let again = send(&h.svc, req(Some("\"same\""), "acme", "{\"pay\":5}")).await;
    let first = done
        .into_iter()
        .find(|r| r.0 == StatusCode::CREATED)
        .unwrap();
    assert_eq!((again.0, again.2), (first.0, first.2));
}

/// A memory store that records which store calls the layer makes.
struct Recording {
    inner: MemoryIdempotencyStore,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl Recording {
    fn log(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

impl IdempotencyStore for Recording {
    fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        lease: Duration,
    ) -> impl std::future::Future<Output = hisn_webhook_verify::Result<Begin>> + Send {
        self.log("begin");
        self.inner.begin(scope, key, fingerprint, lease)
    }

    fn renew(
        &self,
        scope: &str,
        key: &str,
        token: &hisn_webhook_verify::replay::ClaimToken,
        lease: Duration,
    ) -> impl std::future::Future<Output = hisn_webhook_verify::Result<bool>> + Send {
        self.log("renew");
        self.inner.renew(scope, key, token, lease)
    }

    fn finish(
        &self,
        scope: &str,
        key: &str,
        token: &hisn_webhook_verify::replay::ClaimToken,
        response: StoredResponse,
        expiry: Duration,
    ) -> impl std::future::Future<Output = hisn_webhook_verify::Result<()>> + Send {
        self.log("finish");
        self.inner.finish(scope, key, token, response, expiry)
    }

    fn abort(
        &self,
        scope: &str,
        key: &str,
        token: &hisn_webhook_verify::replay::ClaimToken,
    ) -> impl std::future::Future<Output = hisn_webhook_verify::Result<()>> + Send {
        self.log("abort");
        self.inner.abort(scope, key, token)
    }
}

/// A settled request costs one `begin` and one `finish`: once the response
/// is stored, the drop guard is disarmed and makes no further store call; a
/// replay costs one `begin`.
#[tokio::test]
async fn a_settled_request_makes_no_further_store_call() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let store = Arc::new(Recording {
        inner: MemoryIdempotencyStore::with_clock(10, clock.clone()),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let h = harness_with(store.clone(), clock, false);
    let first = send(&h.svc, req(Some("k"), "acme", "{}")).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(store.calls(), ["begin", "finish"]);
    let again = send(&h.svc, req(Some("k"), "acme", "{}")).await;
    assert_eq!((again.0, again.2), (first.0, first.2));
    assert_eq!(store.calls(), ["begin", "finish", "begin"]);
}

/// While a slow handler runs, the lease is renewed once every third of it
/// (10 s for the default 30 s lease), not more often: each renewal is a
/// store round trip.
#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_once_a_third_of_it() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let store = Arc::new(Recording {
        inner: MemoryIdempotencyStore::with_clock(10, clock.clone()),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let h = harness_with(store.clone(), clock, true);
    let svc = h.svc.clone();
    let slow = tokio::spawn(async move { send(&svc, req(Some("k"), "acme", "{}")).await });
    entered(&h.effects, 1).await;
    let renewals = || store.calls().iter().filter(|c| **c == "renew").count();
    // 35 s in steps of about a second (each step lets the timers fire).
    for _ in 0..35 {
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let n = renewals();
    assert!((3..=4).contains(&n), "{n} renewals in 35 s");
    h.gate.add_permits(1);
    assert_eq!(slow.await.unwrap().0, StatusCode::CREATED);
}

/// An inner service that is never ready.
#[derive(Clone)]
struct Unready;

impl tower::Service<Request<RequestBody<Full<Bytes>>>> for Unready {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Err("overloaded"))
    }

    fn call(&mut self, _: Request<RequestBody<Full<Bytes>>>) -> Self::Future {
        std::future::ready(Err("called while not ready"))
    }
}

/// The layer passes on the inner service's readiness (tower's
/// back-pressure), and its `Debug` shows nothing of the inner service.
#[tokio::test]
async fn the_inner_service_readiness_is_passed_on() {
    let layer = IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::new(1)), |_| {
        Some("t".into())
    });
    let mut svc = layer.layer(Unready);
    assert_eq!(format!("{svc:?}"), "IdempotencyService { .. }");
    assert_eq!(svc.ready().await.err(), Some("overloaded"));
}

/// Renew, finish and abort act only for the token that began the request.
async fn store_token_contract<St: IdempotencyStore>(s: &St) {
    let lease = Duration::from_secs(30);
    let Begin::New(t) = s.begin("t", "k", [1; 32], lease).await.unwrap() else {
        panic!("new")
    };
    let Begin::New(other) = s.begin("t", "k2", [1; 32], lease).await.unwrap() else {
        panic!("new")
    };
    assert!(s.renew("t", "k", &t, lease).await.unwrap());
    assert!(!s.renew("t", "k", &other, lease).await.unwrap());
    s.abort("t", "k", &other).await.unwrap();
    assert_eq!(
        s.begin("t", "k", [1; 32], lease).await.unwrap(),
        Begin::InFlight
    );
    s.finish(
        "t",
        "k",
        &other,
        StoredResponse::new(200, vec![], b"x".to_vec()),
        lease,
    )
    .await
    .unwrap();
    assert_eq!(
        s.begin("t", "k", [1; 32], lease).await.unwrap(),
        Begin::InFlight
    );
    let resp = StoredResponse::new(200, vec![], b"ok".to_vec());
    s.finish("t", "k", &t, resp.clone(), lease).await.unwrap();
    assert_eq!(
        s.begin("t", "k", [1; 32], lease).await.unwrap(),
        Begin::Completed(resp)
    );
    assert!(
        !s.renew("t", "k", &t, lease).await.unwrap(),
        "done records are not renewed"
    );
}

/// An in-flight token renews only the record of the store that issued it
/// (class: claim tokens repeat across store instances; every
/// `MemoryIdempotencyStore` numbered its tokens from 1).
#[tokio::test]
async fn claim_tokens_repeat_across_stores_never_renew_another_stores_record() {
    let (one, two) = (
        MemoryIdempotencyStore::new(10),
        MemoryIdempotencyStore::new(10),
    );
    let lease = Duration::from_secs(30);
    let Begin::New(t1) = one.begin("s", "k", [1; 32], lease).await.unwrap() else {
        panic!("first use must be new")
    };
    let Begin::New(t2) = two.begin("s", "k", [1; 32], lease).await.unwrap() else {
        panic!("first use must be new")
    };
    assert_ne!(t1, t2, "two stores issued the same token");
    assert!(!two.renew("s", "k", &t1, lease).await.unwrap());
    assert!(two.renew("s", "k", &t2, lease).await.unwrap());
    assert!(one.renew("s", "k", &t1, lease).await.unwrap());
}

#[tokio::test]
async fn memory_renew_and_finish_need_the_owning_token() {
    store_token_contract(&MemoryIdempotencyStore::new(10)).await;
}

/// The same scenarios against a shared store: `$h(name, gated)` builds a
/// harness (or `None` when the service is not configured).
macro_rules! shared_store_tests {
    ($h:ident) => {
        #[tokio::test]
        async fn idempotency_replays() {
            let Some((_g, h)) = $h("idem_replay", false).await else {
                return;
            };
            replay_semantics(h).await;
        }

        #[tokio::test]
        async fn cross_scope_key_reuse_never_sees_another_tenants_response() {
            let Some((_g, h)) = $h("idem_scope", false).await else {
                return;
            };
            cross_scope(h).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn dropped_request_future_releases_the_key() {
            let Some((_g, h)) = $h("idem_drop", true).await else {
                return;
            };
            dropped(h).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn panicking_handler_releases_the_key() {
            let Some((_g, h)) = $h("idem_panic", false).await else {
                return;
            };
            panicked(h).await;
        }

        #[tokio::test]
        async fn oversize_success_records_completion_without_body() {
            let Some((_g, h)) = $h("idem_big", false).await else {
                return;
            };
            oversize(h).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn hundred_concurrent_identical_requests_one_side_effect() {
            let Some((_g, h)) = $h("idem_concurrent", true).await else {
                return;
            };
            one_side_effect(h).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn dropped_after_the_handler_returned_never_runs_twice() {
            let Some((_g, h)) = $h("idem_mid", false).await else {
                return;
            };
            dropped_mid_response(h.store.clone()).await;
        }

        #[tokio::test]
        async fn broken_response_body_is_recorded_not_released() {
            let Some((_g, h)) = $h("idem_broken", false).await else {
                return;
            };
            broken_body(h.store.clone()).await;
        }

        #[tokio::test]
        async fn renew_and_finish_need_the_owning_token() {
            let Some((_g, h)) = $h("idem_token", false).await else {
                return;
            };
            store_token_contract(&*h.store).await;
        }
    };
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use hisn_webhook_verify::idempotency::RedisIdempotencyStore;

    async fn h(
        name: &str,
        gated: bool,
    ) -> Option<(hisn_test_support::TestRedis, Harness<RedisIdempotencyStore>)> {
        let r = hisn_test_support::redis(&format!("redis_{name}")).await?;
        let s = RedisIdempotencyStore::new(r.connection().await, r.prefix()).unwrap();
        Some((
            r,
            harness_with(Arc::new(s), Arc::new(ManualClock::new(0)), gated),
        ))
    }

    shared_store_tests!(h);

    /// `Debug` names the key prefix and nothing of the connection.
    #[tokio::test]
    async fn debug_shows_the_prefix_only() {
        let Some(r) = hisn_test_support::redis("redis_idem_debug").await else {
            return;
        };
        let s = RedisIdempotencyStore::new(r.connection().await, r.prefix()).unwrap();
        assert_eq!(
            format!("{s:?}"),
            format!("RedisIdempotencyStore {{ prefix: {:?}, .. }}", r.prefix())
        );
    }
}

#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;
    use hisn_webhook_verify::idempotency::PgIdempotencyStore;

    async fn h(
        name: &str,
        gated: bool,
    ) -> Option<(hisn_test_support::TestDatabase, Harness<PgIdempotencyStore>)> {
        let db = hisn_test_support::postgres(&format!("pg_{name}")).await?;
        let s = PgIdempotencyStore::new(db.pool().await);
        s.migrate().await.unwrap();
        Some((
            db,
            harness_with(Arc::new(s), Arc::new(ManualClock::new(0)), gated),
        ))
    }

    shared_store_tests!(h);
}
