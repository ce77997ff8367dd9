//! `Idempotency-Key` tower layer for API routes (IETF httpapi
//! draft-ietf-httpapi-idempotency-key-header), feature `tower`.
//!
//! For `POST` and `PATCH` requests carrying a key:
//!
//! - the key is an sf-string (`"abc"`) or a bare token, 1 to 255 characters;
//!   a missing key is `400` when the layer is `required` (the default), a
//!   malformed or repeated key always `400`;
//! - keys live in the scope the layer's (required) scope function returns for
//!   the request: the authenticated tenant and credential. There is no global
//!   default key space;
//! - the request is fingerprinted: SHA-256 over method, path and query, body;
//! - first request: an in-flight record with a lease (default 30 s) is
//!   created, renewed while the request runs, and released if the request
//!   future is dropped or the handler panics; the response (status, headers
//!   except `set-cookie` and the configured deny list, body) is then stored
//!   for the expiry (default 24 h) and replayed to every later request with
//!   the same key and fingerprint;
//! - same key, different fingerprint: `422`;
//! - same key while the first is still in flight: `409`.
//!
//! Every other request (other methods; no key when the key is optional)
//! passes through untouched: its body is neither buffered nor bounded.
//!
//! A `5xx` from the inner service (or an inner error) is not stored: the key is
//! released so the client can retry. Request bodies of keyed requests are
//! buffered up to `max_body` bytes (default 1 MiB; larger requests get `413`).
//! A successful response larger than `max_body` is sent in full, and its
//! completion recorded without the body: a replay answers the stored status
//! and headers with an empty body and [`BODY_OMITTED_HEADER`]` : ?1`, never a
//! second run of the side effect.
//!
//! Traps: put the layer *after* authentication and tenant resolution so the
//! scope is trustworthy; never derive the scope from a header the client
//! controls without authenticating it. Lease renewal and the release of a
//! dropped request run on the current tokio runtime; without one, a dropped
//! request's key answers `409` until its lease runs out.

mod body;
mod layer;
mod memory;
mod service;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod shared;
mod store;

pub use body::{IdempotencyBody, RequestBody};
pub use layer::{ALWAYS_DENIED, IdempotencyLayer};
pub use memory::MemoryIdempotencyStore;
pub use service::{BODY_OMITTED_HEADER, IdempotencyFuture, IdempotencyService};
#[cfg(feature = "postgres")]
pub use shared::PgIdempotencyStore;
#[cfg(feature = "redis")]
pub use shared::RedisIdempotencyStore;
pub use store::{Begin, IdempotencyStore, StoredResponse};

/// Longest key accepted, in characters (the draft's recommendation).
pub const MAX_KEY_LEN: usize = 255;

/// Parse an `Idempotency-Key` value: an sf-string (`"..."`, with `\"` and `\\`
/// escapes, printable ASCII) or a bare token; 1..=255 characters after
/// unquoting.
///
/// Hand-written on purpose: no structured-field parser (such as `sfv`) is in
/// the dependency tree, and this grammar is two productions of RFC 8941
/// (sf-string, and the token form the draft's examples use), each tested.
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
