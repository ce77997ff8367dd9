//! Retry with exponential backoff and full jitter, for idempotent requests only,
//! within a total deadline.
//!
//! Put it *outside* the breaker layer (`ServiceBuilder::new().layer(retry).layer(breaker)`)
//! so every attempt asks the breaker: an open breaker ends the retries at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use crate::error::{Error, Result};

/// A request that knows whether it may be sent twice.
pub trait Retryable: Sized {
    /// A copy to send again, or `None` when the request must not be repeated
    /// (not idempotent, or its body cannot be replayed).
    fn try_clone(&self) -> Option<Self>;
}

/// HTTP requests: only the idempotent methods of RFC 9110 §9.2.2 (GET, HEAD,
/// OPTIONS, TRACE, PUT, DELETE) are retried; POST and PATCH never are.
impl<B: Clone> Retryable for http::Request<B> {
    fn try_clone(&self) -> Option<Self> {
        use http::Method;
        let m = self.method();
        let idempotent = [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ]
        .contains(m);
        if !idempotent {
            return None;
        }
        let mut req = http::Request::new(self.body().clone());
        *req.method_mut() = m.clone();
        *req.uri_mut() = self.uri().clone();
        *req.version_mut() = self.version();
        *req.headers_mut() = self.headers().clone();
        Some(req)
    }
}

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    max_backoff: Duration,
    deadline: Duration,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all (2..=10); backoff before retry k
    /// is uniform in `[0, min(max_backoff, base·2^(k−1))]` (full jitter); no
    /// attempt starts, and a running one is abandoned, once `deadline` has
    /// passed since the first.
    pub fn new(
        max_attempts: u32,
        base: Duration,
        max_backoff: Duration,
        deadline: Duration,
    ) -> Result<Self> {
        if !(2..=10).contains(&max_attempts)
            || base.is_zero()
            || max_backoff < base
            || deadline.is_zero()
        {
            return Err(Error::InvalidConfig(
                "retry: 2..=10 attempts, base > 0, max_backoff >= base, deadline > 0",
            ));
        }
        Ok(RetryPolicy {
            max_attempts,
            base,
            max_backoff,
            deadline,
        })
    }

    /// The jitter-free ceiling of the backoff before retry number `retry` (1-based).
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Full jitter: uniform in `[0, ceiling]`.
fn jitter(ceiling: Duration) -> Duration {
    let max = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    // A failing OS RNG means no jitter (the ceiling), never a panic.
    let r = getrandom::u64().unwrap_or(u64::MAX);
    Duration::from_micros(r % max.saturating_add(1))
}

/// Error of a [`RetryService`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError<E> {
    /// The last attempt's error.
    #[error("request failed")]
    Inner(#[source] E),
    /// The total deadline passed during an attempt.
    #[error("retry deadline exceeded")]
    Deadline,
}

type Classifier<R, E> = Arc<dyn Fn(&Result<R, E>) -> bool + Send + Sync>;

/// Adds retries to a service.
pub struct RetryLayer<R, E> {
    policy: RetryPolicy,
    should_retry: Classifier<R, E>,
}

impl<R, E> std::fmt::Debug for RetryLayer<R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<R, E> Clone for RetryLayer<R, E> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: self.policy,
            should_retry: Arc::clone(&self.should_retry),
        }
    }
}

impl<R, E> RetryLayer<R, E> {
    /// Retry when `should_retry` says so (e.g. a connection error or a 503;
    /// never a breaker's "open" answer).
    pub fn new(
        policy: RetryPolicy,
        should_retry: impl Fn(&Result<R, E>) -> bool + Send + Sync + 'static,
    ) -> Self {
        RetryLayer {
            policy,
            should_retry: Arc::new(should_retry),
        }
    }
}

impl<S, R, E> Layer<S> for RetryLayer<R, E> {
    type Service = RetryService<S, R, E>;
    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RetryLayer`].
pub struct RetryService<S, R, E> {
    inner: S,
    layer: RetryLayer<R, E>,
}

impl<S: std::fmt::Debug, R, E> std::fmt::Debug for RetryService<S, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, R, E> Clone for RetryService<S, R, E> {
    fn clone(&self) -> Self {
        RetryService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, Req> Service<Req> for RetryService<S, S::Response, S::Error>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    Req: Retryable + Send + 'static,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RetryError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let policy = layer.policy;
            let deadline = tokio::time::Instant::now() + policy.deadline;
            // A request that may not be repeated gets exactly one attempt.
            let mut next = req.try_clone();
            let mut current = req;
            let mut attempt = 1;
            loop {
                let result = match tokio::time::timeout_at(deadline, inner.call(current)).await {
                    Ok(r) => r,
                    Err(_) => return Err(RetryError::Deadline),
                };
                let Some(again) = next.take() else {
                    return result.map_err(RetryError::Inner);
                };
                if attempt >= policy.max_attempts || !(layer.should_retry)(&result) {
                    return result.map_err(RetryError::Inner);
                }
                let wait = jitter(policy.backoff_ceiling(attempt));
                if tokio::time::Instant::now() + wait >= deadline {
                    return result.map_err(RetryError::Inner);
                }
                tokio::time::sleep(wait).await;
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(RetryError::Inner)?;
                next = again.try_clone();
                current = again;
                attempt += 1;
            }
        })
    }
}
