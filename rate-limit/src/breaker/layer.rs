//! The circuit breaker as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use super::CircuitBreaker;
use crate::clock::Clock;

/// Error of a [`CircuitBreakerService`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerError<E> {
    /// The breaker is open: the inner service was not called.
    #[error("circuit open")]
    Open {
        /// Time until a trial call may pass.
        retry_after: Duration,
    },
    /// The inner service failed.
    #[error("inner service failed")]
    Inner(#[source] E),
}

type Classifier<R, E> = Arc<dyn Fn(&Result<R, E>) -> bool + Send + Sync>;

/// Wraps a service in a [`CircuitBreaker`]. `is_failure` classifies results
/// (e.g. `Err` or an HTTP 5xx); by default every `Err` is a failure.
pub struct CircuitBreakerLayer<C: Clock, R, E> {
    breaker: CircuitBreaker<C>,
    is_failure: Classifier<R, E>,
}

impl<C: Clock, R, E> std::fmt::Debug for CircuitBreakerLayer<C, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .finish_non_exhaustive()
    }
}

impl<C: Clock, R, E> Clone for CircuitBreakerLayer<C, R, E> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: self.breaker.clone(),
            is_failure: Arc::clone(&self.is_failure),
        }
    }
}

impl<C: Clock, R, E> CircuitBreakerLayer<C, R, E> {
    /// Every `Err` counts as a failure.
    pub fn new(breaker: CircuitBreaker<C>) -> Self {
        Self::with_classifier(breaker, |r: &Result<R, E>| r.is_err())
    }

    /// A custom failure classifier (e.g. `Ok(resp)` with a 5xx status is a failure).
    pub fn with_classifier(
        breaker: CircuitBreaker<C>,
        is_failure: impl Fn(&Result<R, E>) -> bool + Send + Sync + 'static,
    ) -> Self {
        CircuitBreakerLayer {
            breaker,
            is_failure: Arc::new(is_failure),
        }
    }
}

impl<S, C: Clock, R, E> Layer<S> for CircuitBreakerLayer<C, R, E> {
    type Service = CircuitBreakerService<S, C, R, E>;
    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
pub struct CircuitBreakerService<S, C: Clock, R, E> {
    inner: S,
    layer: CircuitBreakerLayer<C, R, E>,
}

impl<S: std::fmt::Debug, C: Clock, R, E> std::fmt::Debug for CircuitBreakerService<S, C, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, C: Clock, R, E> Clone for CircuitBreakerService<S, C, R, E> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, Req, C> Service<Req> for CircuitBreakerService<S, C, S::Response, S::Error>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    C: Clock + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let permit = match self.layer.breaker.try_acquire() {
            Ok(p) => p,
            Err(rejected) => {
                let retry_after = rejected.retry_after;
                return Box::pin(async move { Err(BreakerError::Open { retry_after }) });
            }
        };
        // Call the instance that was driven to readiness; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let is_failure = Arc::clone(&self.layer.is_failure);
        Box::pin(async move {
            let result = inner.call(req).await;
            if is_failure(&result) {
                permit.failure();
            } else {
                permit.success();
            }
            result.map_err(BreakerError::Inner)
        })
    }
}
