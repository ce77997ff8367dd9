//! The rate-limit tower layer and service.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::extract::KeyExtractor;
use super::headers::{write_ratelimit_headers, write_retry_after};
use crate::decision::Outcome;
use crate::limiter::Limiter;
use crate::policy::KeyKind;

/// Rate-limits every request through `limiter` with keys from `extractor`.
#[derive(Debug)]
pub struct RateLimitLayer<L> {
    limiter: Arc<L>,
    extractor: Arc<KeyExtractor>,
}

impl<L> Clone for RateLimitLayer<L> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: Arc::clone(&self.limiter),
            extractor: Arc::clone(&self.extractor),
        }
    }
}

impl<L: Limiter> RateLimitLayer<L> {
    /// A layer over a shared limiter.
    pub fn new(limiter: Arc<L>, extractor: KeyExtractor) -> Self {
        RateLimitLayer {
            limiter,
            extractor: Arc::new(extractor),
        }
    }
}

impl<S, L: Limiter> Layer<S> for RateLimitLayer<L> {
    type Service = RateLimitService<S, L>;
    fn layer(&self, inner: S) -> Self::Service {
        let needs_ip = self
            .limiter
            .tier_set()
            .policies()
            .iter()
            .any(|p| p.key_kind() == KeyKind::Ip);
        RateLimitService {
            inner,
            layer: self.clone(),
            needs_ip,
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimitService<S, L> {
    inner: S,
    layer: RateLimitLayer<L>,
    needs_ip: bool,
}

impl<S: Clone, L> Clone for RateLimitService<S, L> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
            needs_ip: self.needs_ip,
        }
    }
}

fn status<RB: Default>(code: StatusCode) -> Response<RB> {
    let mut r = Response::new(RB::default());
    *r.status_mut() = code;
    r
}

impl<S, L, B, RB> Service<Request<B>> for RateLimitService<S, L>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    L: Limiter,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (keys, trusted) = self.layer.extractor.keys(&req);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = Arc::clone(&self.layer.limiter);
        let needs_ip = self.needs_ip;
        Box::pin(async move {
            if needs_ip && keys.get(KeyKind::Ip).is_none() {
                // Fail closed: an IP tier without a peer address is a wiring error
                // (no `PeerAddr` extension), not a reason to skip the limit.
                tracing::error!(
                    target: "hisn::rate_limit::http",
                    "IP tier configured but the request has no PeerAddr extension"
                );
                return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
            }
            let decision = match limiter.check_keys(&keys, NonZeroU32::MIN).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(target: "hisn::rate_limit::http", error = %e, "rate-limit check failed");
                    return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
                }
            };
            match decision.outcome() {
                Outcome::Allowed => {
                    let mut resp = inner.call(req).await?;
                    write_ratelimit_headers(
                        resp.headers_mut(),
                        &decision,
                        limiter.tier_set(),
                        trusted,
                    );
                    Ok(resp)
                }
                Outcome::Denied { tier, retry_after } => {
                    tracing::info!(target: "hisn::rate_limit::http", tier, "request rate-limited");
                    let mut resp = status(StatusCode::TOO_MANY_REQUESTS);
                    write_retry_after(resp.headers_mut(), retry_after);
                    write_ratelimit_headers(
                        resp.headers_mut(),
                        &decision,
                        limiter.tier_set(),
                        trusted,
                    );
                    Ok(resp)
                }
                Outcome::Unavailable { tier, retry_after } => {
                    tracing::warn!(target: "hisn::rate_limit::http", tier, "limiter unavailable: fail closed");
                    let mut resp = status(StatusCode::SERVICE_UNAVAILABLE);
                    write_retry_after(resp.headers_mut(), retry_after);
                    Ok(resp)
                }
            }
        })
    }
}
