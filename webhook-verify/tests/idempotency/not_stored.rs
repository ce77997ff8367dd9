//! Responses the layer passes on without storing: a `5xx`, a `429`, and any
//! response the handler marks `NotStored`. The key is released, so the
//! client's retry with the same key runs the handler again and its answer is
//! the one stored; every other status (a `4xx` included) is stored and
//! replayed.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use hisn_webhook_verify::ManualClock;
use hisn_webhook_verify::idempotency::{
    IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore, NotStored, RequestBody,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

/// The handler answers its first call with `status` (marked `NotStored` when
/// `mark`) and every later call with `201`; it counts its runs.
async fn first_answer_then_retry<St: IdempotencyStore>(
    store: Arc<St>,
    status: StatusCode,
    mark: bool,
) -> (usize, Vec<StatusCode>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let inner = service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        let r = r.clone();
        async move {
            let n = r.fetch_add(1, Ordering::SeqCst);
            let mut resp = Response::new(Full::new(Bytes::from(format!("run {n}"))));
            if n == 0 {
                *resp.status_mut() = status;
                if mark {
                    resp.extensions_mut().insert(NotStored);
                }
            } else {
                *resp.status_mut() = StatusCode::CREATED;
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let svc = IdempotencyLayer::new(store, |_| Some("tenant".to_owned())).layer(inner);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let req = Request::post("/orders")
            .header("idempotency-key", "\"k\"")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let resp = svc.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let _ = resp.into_body().collect().await.unwrap();
        seen.push(status);
    }
    (runs.load(Ordering::SeqCst), seen)
}

fn store() -> Arc<MemoryIdempotencyStore> {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    Arc::new(MemoryIdempotencyStore::with_clock(10, clock))
}

#[tokio::test]
async fn server_errors_and_429_are_not_stored_and_the_retry_runs() {
    for status in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (runs, seen) = first_answer_then_retry(store(), status, false).await;
        assert_eq!(runs, 2, "{status}: the retry runs the handler once more");
        assert_eq!(
            seen,
            [status, StatusCode::CREATED, StatusCode::CREATED],
            "{status}: the retry's answer is the one stored"
        );
    }
}

#[tokio::test]
async fn a_response_marked_not_stored_releases_the_key() {
    for status in [
        StatusCode::CONFLICT,
        StatusCode::OK,
        StatusCode::BAD_REQUEST,
    ] {
        let (runs, seen) = first_answer_then_retry(store(), status, true).await;
        assert_eq!(runs, 2, "{status}");
        assert_eq!(seen, [status, StatusCode::CREATED, StatusCode::CREATED]);
    }
}

/// The control: an unmarked `4xx` (other than `429`) is the handler's
/// answer, stored and replayed; the handler runs once.
#[tokio::test]
async fn other_client_errors_are_stored_and_replayed() {
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::CONFLICT,
        StatusCode::NOT_FOUND,
    ] {
        let (runs, seen) = first_answer_then_retry(store(), status, false).await;
        assert_eq!(runs, 1, "{status}");
        assert_eq!(seen, [status; 3]);
    }
}
