//! The crate's one error type.

/// Errors of hisn-rate-limit. Configuration errors name what is wrong; errors a
/// remote caller could see are turned into opaque `429`/`503` answers by the
/// layers and never carry backend detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A policy, tier set or breaker setting is out of range. Cause: the value
    /// named in the message; remedy: use a value inside the documented bounds.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A weighted check asked for more units than a tier's burst: such a request
    /// could never be admitted, so it is refused instead of denied forever.
    /// Remedy: split the work or raise the tier's burst.
    #[error("weight {weight} exceeds the burst {burst} of tier {tier}")]
    WeightExceedsBurst {
        /// The tier name.
        tier: &'static str,
        /// Units asked for.
        weight: u32,
        /// The tier's burst.
        burst: u32,
    },
    /// A key value is unusable (empty). Remedy: pass a non-empty value.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The Redis backend failed (connection, deadline, script error). Only
    /// operators see this; the layers answer remote callers with `503`.
    #[cfg(feature = "redis")]
    #[error("redis backend unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
