//! The `Idempotency-Key` service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use sha2::{Digest, Sha256};

use super::body::{IdempotencyBody, RequestBody};
use super::layer::Config;
use super::store::{Begin, IdempotencyStore, StoredResponse};
use super::{NotStored, parse_key};
use crate::replay::ClaimToken;

/// Header a replay of a body-omitted record carries (an sf-boolean, `?1`).
pub const BODY_OMITTED_HEADER: &str = "idempotency-body-omitted";

/// The future returned by [`IdempotencyService`].
pub type IdempotencyFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<IdempotencyBody<B>>, E>> + Send>>;

/// The service produced by [`super::IdempotencyLayer`]. The inner service
/// sees a [`RequestBody`]: buffered for keyed requests, the original body
/// otherwise.
pub struct IdempotencyService<S, St> {
    inner: S,
    config: Arc<Config>,
    store: Arc<St>,
}

impl<S: Clone, St> Clone for IdempotencyService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            store: self.store.clone(),
        }
    }
}

impl<S, St> std::fmt::Debug for IdempotencyService<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyService").finish_non_exhaustive()
    }
}

impl<S, St> IdempotencyService<S, St> {
    pub(crate) fn new(inner: S, config: Arc<Config>, store: Arc<St>) -> Self {
        Self {
            inner,
            config,
            store,
        }
    }
}

fn status<B>(code: StatusCode) -> Response<IdempotencyBody<B>> {
    let mut r = Response::new(IdempotencyBody::full(Bytes::from_static(
        code.canonical_reason().unwrap_or("").as_bytes(),
    )));
    *r.status_mut() = code;
    r
}

fn replay<B>(stored: StoredResponse, config: &Config) -> Response<IdempotencyBody<B>> {
    let mut r = Response::new(IdempotencyBody::full(Bytes::from(stored.body)));
    *r.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in stored.headers {
        // Filtered again on the way out: records written before a header was
        // denied must not leak it either.
        if config.denied(&name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    if stored.body_omitted {
        r.headers_mut()
            .insert(BODY_OMITTED_HEADER, HeaderValue::from_static("?1"));
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

/// Headers that describe the body; not kept when the body is omitted.
const BODY_HEADERS: [http::HeaderName; 4] = [
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_TYPE,
    http::header::CONTENT_ENCODING,
    http::header::TRANSFER_ENCODING,
];

/// Whether a response is recorded for the key. Not a `5xx` (the server
/// failed: the client retries), not a `429` (refused before any work,
/// `Retry-After` applies: a stored `429` would answer every retry with it
/// for the whole expiry), and not one the handler marked [`NotStored`].
fn storable(parts: &http::response::Parts) -> bool {
    !(parts.status.is_server_error()
        || parts.status == StatusCode::TOO_MANY_REQUESTS
        || parts.extensions.get::<NotStored>().is_some())
}

fn stored_headers(
    headers: &http::HeaderMap,
    config: &Config,
    body_omitted: bool,
) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(n, _)| !config.denied(n.as_str()))
        .filter(|(n, _)| !(body_omitted && BODY_HEADERS.contains(n)))
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// What the guard does if the request future is dropped (client gone,
/// timeout) or unwinds (the handler panicked) before the record is settled.
enum OnDrop {
    /// The handler has not returned: release the key so a retry runs.
    Release,
    /// The handler returned (its side effect happened) but the response was
    /// not stored yet: record completion without the body, as for an
    /// oversize response, so a retry never runs it again.
    Complete(StoredResponse, Duration),
}

/// Settles an in-flight record when dropped while armed. The store call is
/// polled once in place (the memory store completes there) and, if it is
/// still pending, spawned on the current tokio runtime; without one, the
/// lease expiry is the backstop.
struct SettleOnDrop<St: IdempotencyStore> {
    store: Arc<St>,
    scope: String,
    key: String,
    armed: Option<(ClaimToken, OnDrop)>,
}

impl<St: IdempotencyStore> SettleOnDrop<St> {
    fn disarm(&mut self) -> Option<ClaimToken> {
        self.armed.take().map(|(t, _)| t)
    }

    fn complete_on_drop(&mut self, response: StoredResponse, expiry: Duration) {
        if let Some((_, on_drop)) = &mut self.armed {
            *on_drop = OnDrop::Complete(response, expiry);
        }
    }
}

impl<St: IdempotencyStore> Drop for SettleOnDrop<St> {
    fn drop(&mut self) {
        let Some((token, on_drop)) = self.armed.take() else {
            return;
        };
        let store = self.store.clone();
        let (scope, key) = (
            std::mem::take(&mut self.scope),
            std::mem::take(&mut self.key),
        );
        let mut settle = Box::pin(async move {
            let _ = match on_drop {
                OnDrop::Release => store.abort(&scope, &key, &token).await,
                OnDrop::Complete(response, expiry) => {
                    store.finish(&scope, &key, &token, response, expiry).await
                }
            };
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if settle.as_mut().poll(&mut cx).is_pending()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            drop(rt.spawn(settle));
        }
    }
}

/// Drive `fut` to completion, renewing the lease every third of it. Without
/// a tokio runtime the lease is not renewed (and expires after `lease`).
async fn renewing<F: Future, St: IdempotencyStore>(
    fut: F,
    store: &St,
    scope: &str,
    key: &str,
    token: &ClaimToken,
    lease: Duration,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    if tokio::runtime::Handle::try_current().is_err() {
        return fut.await;
    }
    let period = (lease / 3).max(Duration::from_millis(100));
    let mut tick = std::pin::pin!(tokio::time::sleep(period));
    loop {
        let done = std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            if tick.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if let Some(v) = done {
            return v;
        }
        // A lost lease (`false`) or a store error is not fatal here: `finish`
        // checks the token again, so a request that lost its lease never
        // overwrites its successor's record.
        let _ = store.renew(scope, key, token, lease).await;
        tick.as_mut().reset(tokio::time::Instant::now() + period);
    }
}

enum Capped {
    Whole(Bytes),
    /// The body went past the bound: the bytes read so far.
    Over(Bytes),
}

/// Read `body` up to `max` bytes (trailers are dropped, as before).
async fn read_capped<B>(body: &mut Pin<Box<B>>, max: usize) -> Result<Capped, B::Error>
where
    B: Body<Data = Bytes>,
{
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > max {
                return Ok(Capped::Over(buf.freeze()));
            }
        }
    }
    Ok(Capped::Whole(buf.freeze()))
}

fn fingerprint(parts: &http::request::Parts, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(parts.method.as_str().as_bytes());
    h.update([0]);
    h.update(
        parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .as_bytes(),
    );
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

impl<S, St, ReqB, ResB> tower_service::Service<Request<ReqB>> for IdempotencyService<S, St>
where
    S: tower_service::Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: IdempotencyStore,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = Response<IdempotencyBody<ResB>>;
    type Error = S::Error;
    type Future = IdempotencyFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let store = self.store.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            // Methods the layer does not handle, and unkeyed requests when the
            // key is optional, pass through untouched: body not buffered, not
            // bounded, response not read.
            let keyed_method = parts.method == Method::POST || parts.method == Method::PATCH;
            let raw_key = {
                let mut all = parts.headers.get_all("idempotency-key").iter();
                match (all.next(), all.next()) {
                    (_, Some(_)) if keyed_method => return Ok(status(StatusCode::BAD_REQUEST)),
                    (k, _) => k.map(|v| v.as_bytes().to_vec()),
                }
            };
            let raw_key = match (keyed_method, raw_key) {
                (true, Some(raw)) => raw,
                (true, None) if config.required => return Ok(status(StatusCode::BAD_REQUEST)),
                _ => {
                    let req = Request::from_parts(parts, Either::Right(body));
                    let resp = inner.call(req).await?;
                    return Ok(resp.map(IdempotencyBody::inner));
                }
            };
            let Some(key) = parse_key(&raw_key) else {
                return Ok(status(StatusCode::BAD_REQUEST));
            };
            let Some(scope) = (config.scope)(&parts) else {
                return Ok(status(StatusCode::BAD_REQUEST));
            };
            let Ok(collected) = Limited::new(body, config.max_body).collect().await else {
                return Ok(status(StatusCode::PAYLOAD_TOO_LARGE));
            };
            let body = collected.to_bytes();
            let fp = fingerprint(&parts, &body);
            let lease = config.lease.min(config.expiry);
            let token = match store.begin(&scope, &key, fp, lease).await {
                Ok(Begin::New(t)) => t,
                Ok(Begin::InFlight) => return Ok(status(StatusCode::CONFLICT)),
                Ok(Begin::Mismatch) => return Ok(status(StatusCode::UNPROCESSABLE_ENTITY)),
                Ok(Begin::Completed(stored)) => return Ok(replay(stored, &config)),
                Err(_) => return Ok(status(StatusCode::SERVICE_UNAVAILABLE)),
            };
            let mut guard = SettleOnDrop {
                store: store.clone(),
                scope: scope.clone(),
                key: key.clone(),
                armed: Some((token.clone(), OnDrop::Release)),
            };
            let req = Request::from_parts(parts, Either::Left(Full::new(body)));
            let run = async {
                let resp = inner.call(req).await?;
                let (rparts, rbody) = resp.into_parts();
                let mut rbody = Box::pin(rbody);
                if !storable(&rparts) {
                    // Not stored: pass it on unread; the key is released below.
                    return Ok::<_, S::Error>((rparts, None, rbody));
                }
                guard.complete_on_drop(
                    StoredResponse::without_body(
                        rparts.status.as_u16(),
                        stored_headers(&rparts.headers, &config, true),
                    ),
                    config.expiry,
                );
                let capped = read_capped(&mut rbody, config.max_body).await;
                Ok((rparts, Some(capped), rbody))
            };
            let ran = renewing(run, &*store, &scope, &key, &token, lease).await;
            let (rparts, capped, rbody) = match ran {
                Ok(r) => r,
                Err(e) => {
                    // The inner service failed: release now (not from the
                    // guard, later) so the client's retry finds the key free.
                    if let Some(t) = guard.disarm() {
                        let _ = store.abort(&scope, &key, &t).await;
                    }
                    return Err(e);
                }
            };
            let (stored, body) = match capped {
                None => {
                    if let Some(t) = guard.disarm() {
                        let _ = store.abort(&scope, &key, &t).await;
                    }
                    return Ok(Response::from_parts(
                        rparts,
                        IdempotencyBody::prefixed(None, rbody),
                    ));
                }
                Some(Err(_)) => {
                    // The response broke mid-body after the handler returned
                    // (its side effect happened): record completion without
                    // the body and answer as a replay of it would.
                    let stored = StoredResponse::without_body(
                        rparts.status.as_u16(),
                        stored_headers(&rparts.headers, &config, true),
                    );
                    if store
                        .finish(&scope, &key, &token, stored.clone(), config.expiry)
                        .await
                        .is_ok()
                    {
                        guard.disarm();
                    }
                    return Ok(replay(stored, &config));
                }
                Some(Ok(Capped::Whole(bytes))) => (
                    StoredResponse::new(
                        rparts.status.as_u16(),
                        stored_headers(&rparts.headers, &config, false),
                        bytes.to_vec(),
                    ),
                    IdempotencyBody::full(bytes),
                ),
                Some(Ok(Capped::Over(head))) => (
                    // Completion is recorded without the body, so a retry
                    // never repeats the side effect.
                    StoredResponse::without_body(
                        rparts.status.as_u16(),
                        stored_headers(&rparts.headers, &config, true),
                    ),
                    IdempotencyBody::prefixed(Some(head), rbody),
                ),
            };
            // The guard stays armed (to record completion without the body)
            // until the store confirms: a drop or a store error here leaves
            // one more attempt to the guard, never a released key.
            if store
                .finish(&scope, &key, &token, stored, config.expiry)
                .await
                .is_err()
            {
                return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
            }
            guard.disarm();
            Ok(Response::from_parts(rparts, body))
        })
    }
}
