//! The `Idempotency-Key` service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use sha2::{Digest, Sha256};

use super::store::{Begin, IdempotencyStore, StoredResponse};
use super::{Config, parse_key};

/// Response body: the inner service's own body when the request passed
/// through, or a buffered (stored or replayed) body.
pub type IdempotencyBody<B> = Either<Full<Bytes>, B>;

/// The future returned by [`IdempotencyService`].
pub type IdempotencyFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<IdempotencyBody<B>>, E>> + Send>>;

/// The service produced by [`super::IdempotencyLayer`]. The inner service sees
/// the request body buffered as `Full<Bytes>`.
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
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(
        code.canonical_reason().unwrap_or("").as_bytes(),
    ))));
    *r.status_mut() = code;
    r
}

fn replay<B>(stored: StoredResponse) -> Response<IdempotencyBody<B>> {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(stored.body))));
    *r.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(&value),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

impl<S, St, ReqB, ResB> tower_service::Service<Request<ReqB>> for IdempotencyService<S, St>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<ResB>>
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
            let Ok(collected) = Limited::new(body, config.max_body).collect().await else {
                return Ok(status(StatusCode::PAYLOAD_TOO_LARGE));
            };
            let body = collected.to_bytes();
            let keyed_method = parts.method == Method::POST || parts.method == Method::PATCH;
            let raw_key = {
                let mut all = parts.headers.get_all("idempotency-key").iter();
                match (all.next(), all.next()) {
                    (_, Some(_)) => return Ok(status(StatusCode::BAD_REQUEST)),
                    (k, None) => k.map(|v| v.as_bytes().to_vec()),
                }
            };
            let key = match (keyed_method, raw_key) {
                (false, _) | (true, None) if !(keyed_method && config.required) => {
                    let resp = inner
                        .call(Request::from_parts(parts, Full::new(body)))
                        .await?;
                    return Ok(resp.map(Either::Right));
                }
                (_, None) => return Ok(status(StatusCode::BAD_REQUEST)),
                (_, Some(raw)) => match parse_key(&raw) {
                    Some(k) => k,
                    None => return Ok(status(StatusCode::BAD_REQUEST)),
                },
            };
            let Some(scope) = (config.scope)(&parts) else {
                return Ok(status(StatusCode::BAD_REQUEST));
            };
            let fingerprint: [u8; 32] = {
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
                h.update(&body);
                h.finalize().into()
            };
            let token = match store.begin(&scope, &key, fingerprint, config.expiry).await {
                Ok(Begin::New(t)) => t,
                Ok(Begin::InFlight) => return Ok(status(StatusCode::CONFLICT)),
                Ok(Begin::Mismatch) => return Ok(status(StatusCode::UNPROCESSABLE_ENTITY)),
                Ok(Begin::Completed(stored)) => return Ok(replay(stored)),
                Err(_) => return Ok(status(StatusCode::SERVICE_UNAVAILABLE)),
            };
            let resp = match inner
                .call(Request::from_parts(parts, Full::new(body)))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = store.abort(&scope, &key, &token).await;
                    return Err(e);
                }
            };
            let (rparts, rbody) = resp.into_parts();
            let Ok(collected) = Limited::new(rbody, config.max_body).collect().await else {
                let _ = store.abort(&scope, &key, &token).await;
                return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
            };
            let rbytes = collected.to_bytes();
            if rparts.status.is_server_error() {
                let _ = store.abort(&scope, &key, &token).await;
            } else {
                let stored = StoredResponse {
                    status: rparts.status.as_u16(),
                    headers: rparts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                        .collect(),
                    body: rbytes.to_vec(),
                };
                if store
                    .finish(&scope, &key, &token, stored, config.expiry)
                    .await
                    .is_err()
                {
                    return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
                }
            }
            Ok(Response::from_parts(
                rparts,
                Either::Left(Full::new(rbytes)),
            ))
        })
    }
}
