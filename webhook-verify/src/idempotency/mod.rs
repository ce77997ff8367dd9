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
//! A `5xx` or a `429` from the inner service (or an inner error) is not
//! stored: the key is released so the client can retry (a stored `429` would
//! answer every retry with it until the record expires). A handler whose
//! response must not be stored for another reason (a transient failure it
//! answers with a `4xx`, before any side effect) inserts [`NotStored`] into
//! the response's extensions. Never mark a response whose side effect
//! happened: the retry runs it again. Request bodies of keyed requests are
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

/// A response extension: the layer passes the response on but does not store
/// it, and releases the key so the client's retry runs the handler again (as
/// for a `5xx`). For a response that did nothing, for example a transient
/// refusal the client should retry; never for one whose side effect
/// happened.
///
/// ```
/// use hisn_webhook_verify::idempotency::NotStored;
/// let mut resp = http::Response::new(());
/// *resp.status_mut() = http::StatusCode::CONFLICT; // a lock held elsewhere: retry
/// resp.extensions_mut().insert(NotStored);
/// assert!(resp.extensions().get::<NotStored>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotStored;

/// Parse an `Idempotency-Key` value: an sf-string (`"..."`, with `\"` and `\\`
/// escapes, printable ASCII) or a bare token; 1..=255 characters after
/// unquoting. Leading and trailing spaces are ignored, as RFC 8941 §4.2
/// parsing does; parameters (`"k";a=1`) and every other structured type are
/// refused.
///
/// Hand-written on purpose (two productions of RFC 8941, no allocation beyond
/// the key), and held to the `sfv` crate in a differential property test: a
/// value `sfv` parses as a string or token item without parameters gives the
/// same key here, and a quoted value is accepted here only if `sfv` reads it
/// as that string. One documented extension: a bare key may start with a
/// digit (clients send unquoted UUIDs), which RFC 8941 would read as a number
/// or refuse; its characters are then taken literally, so it never aliases a
/// different quoted key.
pub fn parse_key(raw: &[u8]) -> Option<String> {
    let start = raw.iter().position(|&c| c != b' ')?;
    let end = raw
        .iter()
        .rposition(|&c| c != b' ')
        .map_or(start, |e| e + 1);
    let raw = &raw[start..end];
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
        // RFC 8941 §4.2 discards leading and trailing SP (not tabs).
        assert_eq!(parse_key(b"  \"k\"  "), Some("k".into()));
        assert_eq!(parse_key(b" k "), Some("k".into()));
        assert_eq!(parse_key(b"   "), None);
        assert_eq!(parse_key(b"\t\"k\""), None);
        // Parameters, inner lists, byte sequences, display strings: refused.
        for bad in [
            &br#""k";a=1"#[..],
            b"k;a",
            b"(k)",
            b":aGk=:",
            br#"%"k""#,
            b"?1",
            b"@1",
        ] {
            assert_eq!(parse_key(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        // 255 characters after unquoting, escapes counted once.
        let mut q = b"\"".to_vec();
        q.extend(std::iter::repeat_n(&b"\\\\"[..], 255).flatten());
        q.push(b'"');
        assert_eq!(parse_key(&q).map(|k| k.len()), Some(255));
    }

    /// A bare `"` inside a quoted key ends the sf-string, so `"a"b"` is not a
    /// key: read as `a"b` it would alias the escaped `"a\"b"`.
    #[test]
    fn unescaped_quote_inside_a_quoted_key_is_refused() {
        assert_eq!(parse_key(br#""a\"b""#), Some("a\"b".into()));
        assert_eq!(parse_key(br#""a"b""#), None);
        assert_eq!(parse_key(br#""""#), None);
        assert_eq!(parse_key(br#""a""""#), None);
    }

    /// One piece of a generated header value: quotes, escapes, spaces,
    /// separators of other structured types, non-ASCII and control bytes.
    fn piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(vec![
                &b"\""[..],
                b"\\",
                b"\\\"",
                b"\\\\",
                b" ",
                b"\t",
                b";",
                b"=",
                b",",
                b"(",
                b")",
                b":",
                b"/",
                b"*",
                b"?",
                b"@",
                b"%",
                b"1",
                b"a",
                b"Z",
                b"-",
                b".",
                b"\x7f",
                b"\x00",
                "\u{e9}".as_bytes(),
                b"\xff",
            ])
            .prop_map(<[u8]>::to_vec),
            "[ -~]{0,4}".prop_map(String::into_bytes),
        ]
    }

    /// What `sfv` says the key is: a string or token item without
    /// parameters, of 1..=255 characters.
    fn sfv_key(raw: &[u8]) -> Option<std::result::Result<String, String>> {
        let item: sfv::Item = sfv::Parser::new(raw).parse().ok()?;
        if !item.params.is_empty() {
            return None;
        }
        let (key, quoted) = match item.bare_item {
            sfv::BareItem::String(s) => (s.as_str().to_owned(), true),
            sfv::BareItem::Token(t) => (t.as_str().to_owned(), false),
            _ => return None,
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        Some(if quoted { Ok(key) } else { Err(key) })
    }

    proptest::proptest! {
        /// Differential test against `sfv` (RFC 8941/9651).
        #[test]
        fn keys_agree_with_the_sfv_parser(
            pieces in proptest::collection::vec(piece(), 0..12)
        ) {
            let raw: Vec<u8> = pieces.concat();
            let ours = parse_key(&raw);
            match sfv_key(&raw) {
                // sfv reads a string or token: the same key here.
                Some(Ok(k) | Err(k)) => proptest::prop_assert_eq!(ours, Some(k)),
                None => {
                    let trimmed = String::from_utf8_lossy(&raw).trim_matches(' ').to_owned();
                    if let Some(k) = ours {
                        // Only the documented extension: an unquoted key,
                        // taken literally.
                        proptest::prop_assert!(!trimmed.starts_with('"'), "quoted {trimmed:?}");
                        proptest::prop_assert_eq!(k, trimmed);
                    }
                }
            }
        }

        /// Every quoted key round-trips through sfv's serializer and parser.
        #[test]
        fn quoted_keys_round_trip_through_sfv(key in "[ -~]{1,255}") {
            let item = sfv::Item::new(sfv::String::from_string(key.clone()).unwrap());
            let wire = sfv::ItemSerializer::new()
                .bare_item(&item.bare_item)
                .finish();
            proptest::prop_assert_eq!(parse_key(wire.as_bytes()), Some(key));
        }
    }
}
