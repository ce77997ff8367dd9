//! `Idempotency-Key` tower layer for API routes (IETF httpapi
//! draft-ietf-httpapi-idempotency-key-header), feature `tower`.
//!
//! For `POST` and `PATCH` requests (other methods pass through untouched):
//!
//! - the key is an sf-string (`"abc"`) or a bare token, 1 to 255 characters;
//!   a missing key is `400` when the layer is `required` (the default), a
//!   malformed key always `400`;
//! - the request is fingerprinted: SHA-256 over method, path and query, body;
//! - first request: the inner service runs, and its response (status, headers,
//!   body) is stored for the expiry (default 24 h) and replayed byte-for-byte
//!   to every later request with the same key and fingerprint;
//! - same key, different fingerprint: `422`;
//! - same key while the first is still in flight: `409`;
//! - keys live in a caller-provided scope (the tenant), so two tenants never
//!   share a key space.
//!
//! A `5xx` from the inner service (or an inner error) is not stored: the key is
//! released so the client can retry. Bodies are buffered (request and stored
//! response) up to `max_body` bytes (default 1 MiB; larger requests get `413`).
//!
//! Traps: put the layer *after* authentication and tenant resolution so the
//! scope is trustworthy; never derive the scope from a header the client
//! controls without authenticating it.

mod service;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod shared;
mod store;

use std::sync::Arc;
use std::time::Duration;

pub use service::{IdempotencyBody, IdempotencyFuture, IdempotencyService};
#[cfg(feature = "postgres")]
pub use shared::PgIdempotencyStore;
#[cfg(feature = "redis")]
pub use shared::RedisIdempotencyStore;
pub use store::{Begin, IdempotencyStore, MemoryIdempotencyStore, StoredResponse};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

/// Longest key accepted, in characters (the draft's recommendation).
pub const MAX_KEY_LEN: usize = 255;

type ScopeFn = dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync;

/// Configuration shared by every clone of the service.
pub(crate) struct Config {
    pub(crate) required: bool,
    pub(crate) expiry: Duration,
    pub(crate) max_body: usize,
    pub(crate) scope: Arc<ScopeFn>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The layer. Cheap to clone.
pub struct IdempotencyLayer<St> {
    config: Arc<Config>,
    store: Arc<St>,
}

impl<St> Clone for IdempotencyLayer<St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            store: self.store.clone(),
        }
    }
}

impl<St> std::fmt::Debug for IdempotencyLayer<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("required", &self.config.required)
            .field("expiry", &self.config.expiry)
            .field("max_body", &self.config.max_body)
            .finish_non_exhaustive()
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// Default expiry of a stored response: 24 hours.
    pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);
    /// Default body bound: 1 MiB.
    pub const DEFAULT_MAX_BODY: usize = 1 << 20;

    /// A layer over `store`: key required, 24 h expiry, one global scope.
    pub fn new(store: Arc<St>) -> Self {
        Self {
            config: Arc::new(Config {
                required: true,
                expiry: Self::DEFAULT_EXPIRY,
                max_body: Self::DEFAULT_MAX_BODY,
                scope: Arc::new(|_| Some(String::from("global"))),
                clock: Arc::new(SystemClock),
            }),
            store,
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let c = &*self.config;
        let mut new = Config {
            required: c.required,
            expiry: c.expiry,
            max_body: c.max_body,
            scope: c.scope.clone(),
            clock: c.clock.clone(),
        };
        f(&mut new);
        self.config = Arc::new(new);
        self
    }

    /// Whether a `POST`/`PATCH` without a key is refused with `400` (default
    /// `true`); when `false` such requests pass through.
    pub fn required(self, required: bool) -> Self {
        self.edit(|c| c.required = required)
    }

    /// How long a stored response is replayed (1 s to 30 days).
    pub fn expiry(self, expiry: Duration) -> Result<Self> {
        if expiry < Duration::from_secs(1) || expiry > Duration::from_secs(30 * 86_400) {
            return Err(Error::InvalidConfig(
                "idempotency expiry must be 1 s to 30 days",
            ));
        }
        Ok(self.edit(|c| c.expiry = expiry))
    }

    /// Largest request (and stored response) body, in bytes.
    pub fn max_body(self, max_body: usize) -> Result<Self> {
        if max_body == 0 {
            return Err(Error::InvalidConfig(
                "idempotency max_body must be non-zero",
            ));
        }
        Ok(self.edit(|c| c.max_body = max_body))
    }

    /// The scope of a request (for example the authenticated tenant, from a
    /// request extension). `None` refuses the request with `400`.
    pub fn scope(
        self,
        f: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|c| c.scope = Arc::new(f))
    }

    /// The clock used for expiry.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.edit(|c| c.clock = clock)
    }
}

impl<S, St> tower_layer::Layer<S> for IdempotencyLayer<St> {
    type Service = IdempotencyService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService::new(inner, self.config.clone(), self.store.clone())
    }
}

/// Parse an `Idempotency-Key` value: an sf-string (`"..."`, with `\"` and `\\`
/// escapes, printable ASCII) or a bare token; 1..=255 characters after
/// unquoting.
pub fn parse_key(raw: &[u8]) -> Option<String> {
    let key = if let Some(inner) = raw.strip_prefix(b"\"") {
        let inner = inner.strip_suffix(b"\"")?;
        let mut out = String::with_capacity(inner.len());
        let mut it = inner.iter();
        while let Some(&c) = it.next() {
            match c {
                b'\\' => match it.next() {
                    Some(&e @ (b'"' | b'\\')) => out.push(char::from(e)),
                    _ => return None,
                },
                b'"' => return None,
                0x20..=0x7e => out.push(char::from(c)),
                _ => return None,
            }
        }
        out
    } else {
        let tok = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c);
        if !raw.iter().all(|&c| tok(c)) {
            return None;
        }
        String::from_utf8(raw.to_vec()).ok()?
    };
    (!key.is_empty() && key.len() <= MAX_KEY_LEN).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sf_strings_or_tokens() {
        assert_eq!(
            parse_key(b"\"8e03978e-40d5-43e8-bc93-6894a57f9324\""),
            Some("8e03978e-40d5-43e8-bc93-6894a57f9324".into())
        );
        assert_eq!(parse_key(b"abc-123"), Some("abc-123".into()));
        assert_eq!(parse_key(br#""a\"b""#), Some("a\"b".into()));
        assert_eq!(parse_key(b"\"\""), None);
        assert_eq!(parse_key(b""), None);
        assert_eq!(parse_key(b"\"abc"), None);
        assert_eq!(parse_key(b"a b"), None);
        assert_eq!(parse_key(b"\"a\x01\""), None);
        assert_eq!(parse_key(&[b'a'; 256]), None);
        assert!(parse_key(&[b'a'; 255]).is_some());
    }
}
