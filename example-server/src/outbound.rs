//! An outbound call to a partner API behind rate-limit's circuit breaker.
//!
//! The partner is simulated in-process (the reference server must run with
//! no network): a `base_url` whose host starts with `down.` fails after a
//! short delay, anything else answers. After 5 failures in a row the breaker
//! opens and calls fail fast with `503` for 30 s, then one trial is let through.

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
    breaker: CircuitBreaker,
    timeout: Duration,
}

impl Default for PartnerApi {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl PartnerApi {
    /// A client whose breaker uses `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            breaker: CircuitBreaker::new("partner-api", config),
            timeout: Duration::from_secs(2),
        }
    }

    /// The breaker's state.
    pub fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Sync with the partner at `base_url`, authenticating with `token`.
    pub async fn sync(&self, base_url: &str, token: &[u8]) -> Result<Value, OutboundError> {
        let permit = self
            .breaker
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
        assert!(api.sync("https://ok.example/api", b"t").await.is_ok());
        for _ in 0..5 {
            assert_eq!(
                api.sync("https://down.example/api", b"t").await,
                Err(OutboundError::Failed)
            );
        }
        assert_eq!(api.state(), BreakerState::Open);
        // Open: even a healthy partner is not called.
        assert_eq!(
            api.sync("https://ok.example/api", b"t").await,
            Err(OutboundError::CircuitOpen)
        );
    }
}
