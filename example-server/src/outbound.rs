//! An outbound call to a partner API behind rate-limit's circuit breaker.
//!
//! The partner is simulated in-process (the reference server must run with
//! no network): a `base_url` whose host starts with `down.` fails after a
//! short delay, anything else answers. After 5 failures in a row the breaker
//! opens and calls fail fast with `503` for 30 s, then one trial is let through.
//!
//! One breaker per tenant (a bulkhead): what makes a call fail — the
//! integration's `base_url` and credentials — is the tenant's to choose, so
//! a shared breaker let any tenant hold every other tenant's circuit open.
//! At most [`MAX_BREAKERS`] are kept; when full, closed ones (no state worth
//! keeping) are dropped first, and if every one is open or half-open the
//! new tenant's call is refused like an open circuit (fail closed, bounded
//! memory).

use std::collections::HashMap;
use std::time::Duration;

use hisn_rate_limit::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use serde_json::{Value, json};

/// Why a partner call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// The breaker is open: no call was made.
    #[error("circuit open")]
    CircuitOpen,
    /// The partner failed or timed out.
    #[error("partner call failed")]
    Failed,
}

/// The partner API client.
#[derive(Debug, Clone)]
pub struct PartnerApi {
    config: BreakerConfig,
    breakers: std::sync::Arc<std::sync::Mutex<HashMap<String, CircuitBreaker>>>,
    timeout: Duration,
}

/// Most breakers kept at once (one per tenant that called the partner).
pub const MAX_BREAKERS: usize = 10_000;

impl Default for PartnerApi {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl PartnerApi {
    /// A client whose breaker uses `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            breakers: std::sync::Arc::default(),
            timeout: Duration::from_secs(2),
        }
    }

    /// `scope`'s breaker (created closed on first use); `None` when the map
    /// is full of breakers that are not closed.
    fn breaker(&self, scope: &str) -> Option<CircuitBreaker> {
        // A poisoned lock only means another call panicked mid-insert: the
        // map is still a valid map.
        let mut map = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = map.get(scope) {
            return Some(b.clone());
        }
        if map.len() >= MAX_BREAKERS {
            map.retain(|_, b| b.state() != BreakerState::Closed);
            if map.len() >= MAX_BREAKERS {
                return None;
            }
        }
        let b = CircuitBreaker::new("partner-api", self.config);
        map.insert(scope.to_owned(), b.clone());
        Some(b)
    }

    /// The breaker's state.
    pub fn state(&self, scope: &str) -> BreakerState {
        self.breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(scope)
            .map_or(BreakerState::Closed, CircuitBreaker::state)
    }

    /// Sync with the partner at `base_url`, authenticating with `token`,
    /// through `scope`'s (the tenant's) breaker.
    pub async fn sync(
        &self,
        scope: &str,
        base_url: &str,
        token: &[u8],
    ) -> Result<Value, OutboundError> {
        let permit = self
            .breaker(scope)
            .ok_or(OutboundError::CircuitOpen)?
            .try_acquire()
            .map_err(|_| OutboundError::CircuitOpen)?;
        match tokio::time::timeout(self.timeout, simulated_partner(base_url, token)).await {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            _ => {
                permit.failure();
                Err(OutboundError::Failed)
            }
        }
    }
}

/// The simulated partner: fails for hosts starting with `down.`.
async fn simulated_partner(base_url: &str, token: &[u8]) -> Result<Value, ()> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if host.starts_with("down.") || token.is_empty() {
        return Err(());
    }
    Ok(json!({ "synced": true, "items": 3 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn breaker_opens_after_failures_and_fails_fast() {
        let api = PartnerApi::default();
        assert!(api.sync("a", "https://ok.example/api", b"t").await.is_ok());
        for _ in 0..5 {
            assert_eq!(
                api.sync("a", "https://down.example/api", b"t").await,
                Err(OutboundError::Failed)
            );
        }
        assert_eq!(api.state("a"), BreakerState::Open);
        // Open: even a healthy partner is not called.
        assert_eq!(
            api.sync("a", "https://ok.example/api", b"t").await,
            Err(OutboundError::CircuitOpen)
        );
        // Another scope's circuit is its own.
        assert_eq!(api.state("b"), BreakerState::Closed);
        assert!(api.sync("b", "https://ok.example/api", b"t").await.is_ok());
    }

    #[tokio::test]
    async fn the_breaker_map_is_bounded_and_keeps_open_circuits() {
        let api = PartnerApi::default();
        for _ in 0..5 {
            let _ = api.sync("down", "https://down.example/api", b"t").await;
        }
        for i in 0..MAX_BREAKERS + 10 {
            let _ = api.breaker(&i.to_string());
        }
        assert!(api.breakers.lock().unwrap().len() <= MAX_BREAKERS);
        // The open circuit survived the eviction of closed ones.
        assert_eq!(api.state("down"), BreakerState::Open);
    }
}
