//! The response side after the handler returned: a request dropped while the
//! body is read, and a body that fails. The side effect has happened in both,
//! so the key is never released for a second run.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hisn_webhook_verify::ManualClock;
use hisn_webhook_verify::idempotency::{
    BODY_OMITTED_HEADER, IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore, RequestBody,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

use super::entered;

/// A response body that sends one frame and then never ends.
struct Hanging(bool);

impl http_body::Body for Hanging {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.0 {
            return std::task::Poll::Pending;
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{")))))
    }
}

/// Root cause (of a trap in the drop guard itself): once the handler has
/// returned, its side effect has happened; releasing the key when the
/// request is dropped while the response body is still being read would let
/// the retry run it again. From that point on the guard records completion
/// (without the body) instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_after_the_handler_returned_never_runs_twice() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    dropped_mid_response(Arc::new(MemoryIdempotencyStore::with_clock(10, clock))).await;
}

pub(super) async fn dropped_mid_response<St: IdempotencyStore>(store: Arc<St>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let inner = service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        let r = r.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            let resp = Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("x-run", "1")
                .body(Hanging(false))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    let svc = IdempotencyLayer::new(store, |_| Some("acme".to_owned())).layer(inner);
    let call = || {
        Request::post("/pay")
            .header("idempotency-key", "k-mid")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let s = svc.clone();
    let first = tokio::spawn(async move { s.oneshot(call()).await.map(|r| r.status()) });
    entered(&runs, 1).await;
    // Give the layer a moment to start reading the (endless) body.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for _ in 0..500 {
        // Bounded: a retry that ran the handler again would wait for ever
        // on its endless body.
        let resp = tokio::time::timeout(Duration::from_secs(10), svc.clone().oneshot(call()))
            .await
            .unwrap_or_else(|_| panic!("the retry hung: {} runs", runs.load(Ordering::SeqCst)))
            .unwrap();
        if resp.status() == StatusCode::CONFLICT {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(resp.headers()[BODY_OMITTED_HEADER], "?1");
        assert_eq!(resp.headers()["x-run"], "1");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran twice");
        return;
    }
    panic!("the key was never settled");
}

/// A response body that sends one frame and then fails.
struct Broken(bool);

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if self.0 {
            return std::task::Poll::Ready(Some(Err(std::io::Error::other("reset"))));
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{")))))
    }
}

/// A response body that fails after the handler returned: the side effect
/// happened, so completion is recorded (without the body) rather than the key
/// released for a second run.
#[tokio::test]
async fn broken_response_body_is_recorded_not_released() {
    broken_body(Arc::new(MemoryIdempotencyStore::new(10))).await;
}

pub(super) async fn broken_body<St: IdempotencyStore>(store: Arc<St>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let inner = service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        r.fetch_add(1, Ordering::SeqCst);
        async move {
            let resp = Response::builder()
                .status(StatusCode::OK)
                .header("set-cookie", "sid=x")
                .body(Broken(false))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    let svc = IdempotencyLayer::new(store, |_| Some("acme".to_owned())).layer(inner);
    let call = || {
        Request::patch("/pay")
            .header("idempotency-key", "k-broken")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    for _ in 0..3 {
        let resp = svc.clone().oneshot(call()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[BODY_OMITTED_HEADER], "?1");
        assert!(resp.headers().get("set-cookie").is_none());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
