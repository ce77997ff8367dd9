//! The rate-limit tower layer (feature `tower`): key extractors, `429` with
//! `Retry-After` (whole seconds rounded up, never 0), `503` with `Retry-After`
//! when a fail-closed tier's backend is down, and the IETF `RateLimit-Policy`
//! / `RateLimit` headers.
//!
//! Traps this module handles and you must not undo:
//! - `X-Forwarded-For` is attacker-written: it is believed only from the
//!   proxies you list ([`TrustedProxies`]); the default trusts none.
//! - IPv6 clients hold whole /64s: keys group IPv6 by prefix.
//! - Tenant, session and account keys come from the [`RateLimitIdentity`]
//!   extension set by *your* authentication layer, never from raw headers.
//! - A configured IP tier with no [`PeerAddr`] extension answers `500`
//!   instead of silently skipping the limit.
//! - Tenant-level numbers are not shown to untrusted callers.

mod extract;
pub mod forwarded;
mod headers;
mod layer;

pub use extract::{KeyExtractor, PeerAddr, RateLimitIdentity};
pub use forwarded::TrustedProxies;
pub use headers::{ceil_secs, write_ratelimit_headers, write_retry_after};
pub use layer::{RateLimitLayer, RateLimitService};
