//! Twilio (`X-Twilio-Signature`, base64 HMAC-SHA1). The signed string is the
//! full request URL, then for a form body every parameter name and value
//! (percent-decoded), sorted by name then value; when the URL holds
//! `bodySHA256` (JSON bodies) the URL alone is signed and the body must hash
//! to that value.
//!
//! Traps: the raw body is *not* what is signed, so reordered parameters,
//! `%2B` versus `%2b` and stray `&` all verify with one signature; the
//! replay id is therefore a digest of the signed string, never of the raw
//! body. The provider's validators accept the URL with and without its
//! default port (`:443` for https, `:80` for http), so both spellings are
//! tried (at most two MACs per key) and share one replay id.

use sha2::{Digest, Sha256};

use super::SignInput;
use super::limits::Limits;
use super::parsed::{Parsed, Prefix, SigList, mac_sha1, required};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::scheme::KeyMaterial;

pub(crate) fn parse<H: Headers + ?Sized>(
    headers: &H,
    body: &[u8],
    url: Option<&str>,
    limits: &Limits,
) -> Result<Parsed<'static>> {
    let url = url.ok_or(Error::UrlRequired)?;
    if url.len() > limits.max_header {
        return Err(Error::TooLarge);
    }
    let h = required(headers, "x-twilio-signature", limits)?;
    let sig = encoding::b64_exact::<20>(h).ok_or(Error::Malformed)?;
    let mut buf = [0u8; 64];
    buf[..20].copy_from_slice(&sig);
    let (params, body_sha256) = signed_params(url, body)?;
    let (canonical, with_port) = url_spellings(url);
    let message = |u: &str| [u.as_bytes(), &params].concat();
    let replay_digest: [u8; 32] = Sha256::digest(message(&canonical)).into();
    let (first, second) = if canonical == url {
        (canonical.as_str(), with_port.as_deref())
    } else {
        (url, Some(canonical.as_str()))
    };
    let mut p = Parsed::list(
        Prefix::from_vec(message(first)),
        SigList::one(buf),
        20,
        None,
    );
    p.alt_prefix = second.map(message);
    p.body_sha256 = body_sha256;
    p.body_in_prefix = true;
    p.replay_digest = Some(replay_digest);
    Ok(p)
}

pub(crate) fn sign(first: &KeyMaterial, input: &SignInput<'_>) -> Result<Vec<(String, String)>> {
    let url = input.url.ok_or(Error::UrlRequired)?;
    let KeyMaterial::Sha1(s) = first else {
        return Err(Error::SigningUnavailable);
    };
    let (params, _) = signed_params(url, input.body)?;
    Ok(vec![(
        "X-Twilio-Signature".to_owned(),
        encoding::b64(&mac_sha1(s, url.as_bytes(), &params)),
    )])
}

/// What follows the URL in the signed string: the sorted, decoded form
/// parameters, or nothing when the URL carries `bodySHA256` (then returned).
fn signed_params(url: &str, body: &[u8]) -> Result<(Vec<u8>, Option<[u8; 32]>)> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split_once('#').map_or(q, |(q, _)| q));
    if let Some(q) = query {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("bodySHA256=") {
                let h = encoding::hex_lower_exact::<32>(v.as_bytes()).ok_or(Error::Malformed)?;
                return Ok((Vec::new(), Some(h)));
            }
        }
    }
    let mut params = form_pairs(body)?;
    params.sort();
    let mut out = Vec::with_capacity(body.len());
    for (k, v) in params {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    Ok((out, None))
}

/// The name/value pairs of an `application/x-www-form-urlencoded` body, in
/// body order, as the WHATWG URL standard parses them: split on `&`, skip
/// empty pieces, split each at its first `=` (none: the value is empty), then
/// decode both. Equal to `form_urlencoded::parse` wherever this accepts (a
/// property test holds it to that, see the tests below); stricter where the
/// standard is lenient (see [`form_decode`]).
fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        params.push((form_decode(k)?, form_decode(v)?));
    }
    Ok(params)
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a
/// space, `%XX` a byte (either hex case), the result UTF-8. Kept by hand on
/// purpose: the WHATWG decoding (`form_urlencoded`) is lenient (a malformed
/// `%` escape stays literal, invalid UTF-8 becomes U+FFFD), which would let
/// more raw bodies alias one signed string, and would sign a string the
/// sender never sent; here both are refused. Where this accepts, it agrees
/// with `form_urlencoded` byte for byte (property test below).
fn form_decode(s: &[u8]) -> Result<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or(Error::Malformed)?;
                let mut byte = [0u8; 1];
                hex::decode_to_slice(hex, &mut byte).map_err(|_| Error::Malformed)?;
                out.push(byte[0]);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    // Twilio posts UTF-8 text; bytes that are not would reach the
    // application as U+FFFD, a string other than the one verified.
    String::from_utf8(out).map_err(|_| Error::Malformed)
}

/// The URL without its default port (the canonical spelling) and, when the
/// URL has no port, the spelling with the default port. A non-default port,
/// an unknown scheme or an unparsable authority give no second spelling.
fn url_spellings(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let default = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return (url.to_owned(), None);
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    // The host starts after any userinfo; an IPv6 literal is bracketed.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_colon = match host_port.rfind(']') {
        Some(close) => host_port[close..].find(':').map(|i| close + i),
        None => host_port.rfind(':'),
    };
    let head = &url[..scheme.len() + 3 + host_start];
    match port_colon {
        Some(c) if &host_port[c + 1..] == default => {
            let without = format!("{head}{}{tail}", &host_port[..c]);
            (without, Some(url.to_owned()))
        }
        Some(_) => (url.to_owned(), None),
        None if host_port.is_empty() => (url.to_owned(), None),
        None => {
            let with = format!("{head}{host_port}:{default}{tail}");
            (url.to_owned(), Some(with))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_is_strict() {
        assert_eq!(form_decode(b"a+b%2Fc%2f").unwrap(), "a b/c/");
        assert_eq!(form_decode(b"%2B%2b+%20").unwrap(), "++  ");
        assert_eq!(form_decode(b"%e2%82%AC\xc3\xa9").unwrap(), "\u{20ac}\u{e9}");
        assert_eq!(form_decode(b"%2"), Err(Error::Malformed));
        assert_eq!(form_decode(b"%zz"), Err(Error::Malformed));
        assert_eq!(form_decode(b"%"), Err(Error::Malformed));
        // Not UTF-8 (escaped or raw): refused, not turned into U+FFFD.
        assert_eq!(form_decode(b"%FF"), Err(Error::Malformed));
        assert_eq!(form_decode(b"%e2%82"), Err(Error::Malformed));
        assert_eq!(form_decode(b"\xff"), Err(Error::Malformed));
    }

    #[test]
    fn form_pairs_split_like_the_standard() {
        let p = |b: &[u8]| form_pairs(b).unwrap();
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            p(b"&&a=1&&b&=v&c==d&"),
            [s("a", "1"), s("b", ""), s("", "v"), s("c", "=d")]
        );
        // Duplicate names keep body order here; the signed string sorts them.
        assert_eq!(p(b"x=2&x=1"), [s("x", "2"), s("x", "1")]);
        assert_eq!(
            signed_params("https://h/", b"x=2&x=1&a=%2B").unwrap().0,
            b"a+x1x2"
        );
    }

    /// One piece of a generated form body: the interesting spellings
    /// (`+`, `%20`, `%2B`/`%2b`, separators, escapes good and bad, raw and
    /// escaped non-ASCII, bytes that are not UTF-8).
    fn piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(vec![
                &b"a"[..],
                b"B",
                b"=",
                b"&",
                b"+",
                b"%",
                b"%2",
                b"%20",
                b"%2B",
                b"%2b",
                b"%zz",
                b"%3D",
                b"%26",
                b"%25",
                b"%e2%82%ac",
                b"%C3%A9",
                b"%FF",
                b"%c3",
                "\u{e9}".as_bytes(),
                "\u{1F600}".as_bytes(),
                b"\xff",
                b" ",
                b"%%",
                b"%0",
            ])
            .prop_map(<[u8]>::to_vec),
            proptest::collection::vec(any::<u8>(), 0..3),
        ]
    }

    /// A `%` not followed by two hex digits (checked independently of
    /// `form_decode`).
    fn has_bad_escape(b: &[u8]) -> bool {
        b.iter().enumerate().any(|(i, &c)| {
            c == b'%'
                && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        })
    }

    proptest::proptest! {
        /// Differential test against `form_urlencoded` (servo/rust-url, the
        /// WHATWG parser): wherever the hand-written decoder accepts, the pairs
        /// are exactly the standard's; it refuses exactly the bodies the
        /// standard would decode leniently (a malformed escape, or bytes that
        /// are not UTF-8 and become U+FFFD).
        #[test]
        fn form_decoding_matches_the_whatwg_parser(
            pieces in proptest::collection::vec(piece(), 0..16)
        ) {
            let body: Vec<u8> = pieces.concat();
            // No genuine U+FFFD (UTF-8 EF BF BD) raw or escaped, so a U+FFFD in
            // the standard's output always marks bytes that were not UTF-8.
            let lower = body.to_ascii_lowercase();
            proptest::prop_assume!(!body.contains(&0xEF) && !lower.windows(3).any(|w| w == b"%ef"));
            let oracle: Vec<(String, String)> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let lenient = has_bad_escape(&body)
                || oracle.iter().any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
            match form_pairs(&body) {
                Ok(ours) => {
                    proptest::prop_assert!(!lenient);
                    proptest::prop_assert_eq!(ours, oracle);
                }
                Err(e) => {
                    proptest::prop_assert_eq!(e, Error::Malformed);
                    proptest::prop_assert!(lenient, "refused a body the standard decodes exactly");
                }
            }
        }
    }

    #[test]
    fn default_ports_are_spelled_both_ways() {
        let both = |u: &str| url_spellings(u);
        assert_eq!(
            both("https://example.com/hook?a=1"),
            (
                "https://example.com/hook?a=1".into(),
                Some("https://example.com:443/hook?a=1".into())
            )
        );
        assert_eq!(
            both("https://example.com:443/hook"),
            (
                "https://example.com/hook".into(),
                Some("https://example.com:443/hook".into())
            )
        );
        assert_eq!(
            both("http://u:p@example.com:80?x"),
            (
                "http://u:p@example.com?x".into(),
                Some("http://u:p@example.com:80?x".into())
            )
        );
        assert_eq!(
            both("https://[::1]/h"),
            ("https://[::1]/h".into(), Some("https://[::1]:443/h".into()))
        );
        // Non-default ports, the other scheme's default, odd URLs: one spelling.
        for one in [
            "https://example.com:8443/h",
            "https://example.com:80/h",
            "http://example.com:443/h",
            "ftp://example.com/h",
            "not a url",
            "https:///h",
        ] {
            assert_eq!(both(one), (one.to_owned(), None), "{one}");
        }
    }

    /// The port is the one after the host: the host starts after the
    /// userinfo's `@` (whose `:` separates user and password, never a
    /// port), and a bracketed IPv6 literal's colons are not a port either.
    #[test]
    fn the_port_is_read_after_the_userinfo_and_an_ipv6_literal() {
        let two = |canonical: &str, ported: &str| (canonical.to_owned(), Some(ported.to_owned()));
        // `:` ends the userinfo right before the `@`: no port, so one is added.
        assert_eq!(
            url_spellings("https://u:@example.com/h"),
            two("https://u:@example.com/h", "https://u:@example.com:443/h")
        );
        // The default port after an IPv6 literal is found and dropped.
        assert_eq!(
            url_spellings("https://[::1]:443/h"),
            two("https://[::1]/h", "https://[::1]:443/h")
        );
        assert_eq!(
            url_spellings("http://[fe80::1]:80"),
            two("http://[fe80::1]", "http://[fe80::1]:80")
        );
        // A non-default port after an IPv6 literal, or userinfo without a
        // host: one spelling.
        for one in ["https://[::1]:8443/h", "https://u@/h"] {
            assert_eq!(url_spellings(one), (one.to_owned(), None), "{one}");
        }
    }
}
