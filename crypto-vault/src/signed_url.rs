//! HMAC-signed URLs with an expiry, bound to the HTTP method and path (with its
//! query), for private document downloads.
//!
//! `sign` appends `expires=<unix seconds>&sig=<base64url(HMAC-SHA256)>` to the
//! path's query. The MAC covers `lp("hisn-vault/url/v1") || lp(METHOD) ||
//! lp(path-and-query without the two parameters) || expires (u64 BE)`. Time is a
//! parameter (Unix seconds), so tests control it.
//!
//! Only the canonical spelling verifies: the URL must equal, byte for byte,
//! what [`UrlSigner::sign`] produces for its path, expiry and signature
//! (`expires` in decimal without leading zeros, then exactly one `sig` in
//! unpadded base64url, each appearing once, separated by `?` or `&` as the path
//! requires). A path whose query already has an `expires` or `sig` parameter
//! is refused when signing. Verification also refuses an expiry further than
//! the signer's maximum lifetime ahead of `now` (default [`MAX_TTL`]), so a URL
//! minted by a misconfigured signer or a clock far ahead does not live for
//! years.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::format::push_lp;
use crate::secret::SecretKey;
use crate::wrap::hmac_sha256;

/// Default lifetime of a signed URL: 10 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Longest lifetime accepted: 7 days.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest URL accepted by the verifier.
pub const MAX_URL_LEN: usize = 8192;

/// Signs and verifies URLs under one key. `Debug` never prints the key.
pub struct UrlSigner {
    key: SecretKey,
    max_ttl: Duration,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlSigner { .. }")
    }
}

impl UrlSigner {
    /// A signer with `key`.
    pub fn new(key: SecretKey) -> Self {
        Self {
            key,
            max_ttl: MAX_TTL,
        }
    }

    /// Lower the longest lifetime this signer signs and verifies (1 s ..=
    /// [`MAX_TTL`], the default).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside that range.
    pub fn with_max_ttl(mut self, max_ttl: Duration) -> Result<Self> {
        if max_ttl.is_zero() || max_ttl > MAX_TTL {
            return Err(Error::InvalidConfig(
                "signed URL maximum lifetime must be 1s..=7 days",
            ));
        }
        self.max_ttl = max_ttl;
        Ok(self)
    }

    /// The longest lifetime signed and verified.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    fn mac(&self, method: &str, path: &str, expires: u64) -> [u8; 32] {
        let mut msg = Vec::with_capacity(64 + path.len());
        push_lp(&mut msg, b"hisn-vault/url/v1");
        push_lp(&mut msg, method.to_ascii_uppercase().as_bytes());
        push_lp(&mut msg, path.as_bytes());
        msg.extend_from_slice(&expires.to_be_bytes());
        hmac_sha256(self.key.expose_secret(), &[&msg])
    }

    /// Sign `path` (starting with `/`, may carry a query) for `method`, valid for
    /// [`DEFAULT_TTL`] from `now` (Unix seconds).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `path` does not start with `/` or has a fragment.
    pub fn sign(&self, method: &str, path: &str, now: u64) -> Result<String> {
        self.sign_with_ttl(method, path, now, DEFAULT_TTL)
    }

    /// Like [`UrlSigner::sign`] with an explicit lifetime (1 s ..= [`MAX_TTL`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad path or lifetime.
    pub fn sign_with_ttl(
        &self,
        method: &str,
        path: &str,
        now: u64,
        ttl: Duration,
    ) -> Result<String> {
        if !path.starts_with('/') || path.contains('#') {
            return Err(Error::InvalidConfig(
                "path must start with / and have no fragment",
            ));
        }
        if has_reserved_param(path) {
            return Err(Error::InvalidConfig(
                "path query must not have an expires or sig parameter",
            ));
        }
        if ttl.is_zero() || ttl > self.max_ttl {
            return Err(Error::InvalidConfig(
                "signed URL lifetime must be 1s..=the signer's maximum",
            ));
        }
        let expires = now.saturating_add(ttl.as_secs());
        Ok(self.canonical(method, path, expires))
    }

    /// The one spelling of a signed URL.
    fn canonical(&self, method: &str, path: &str, expires: u64) -> String {
        let sig = URL_SAFE_NO_PAD.encode(self.mac(method, path, expires));
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}expires={expires}&sig={sig}")
    }

    /// Verify a signed path-and-query for `method` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`Error::SignedUrlRejected`] (opaque) for a missing or bad signature, another
    /// method or path, any spelling other than the canonical one, expiry, or an
    /// expiry more than the maximum lifetime ahead of `now`.
    pub fn verify(&self, method: &str, url: &str, now: u64) -> Result<()> {
        let verdict = self.check(method, url, now);
        if verdict.is_none() {
            tracing::info!(target: "hisn_crypto_vault", "signed URL rejected");
        }
        verdict.ok_or(Error::SignedUrlRejected)
    }

    fn check(&self, method: &str, url: &str, now: u64) -> Option<()> {
        if url.len() > MAX_URL_LEN {
            return None;
        }
        // Split off the last two parameters; everything else is the signed path.
        let (rest, _sig) = url.rsplit_once("&sig=")?;
        let at = rest.rfind("expires=")?;
        let sep = rest[..at].chars().next_back()?;
        let path = &rest[..at - sep.len_utf8()];
        let expires = &rest[at + "expires=".len()..];
        if !matches!(sep, '?' | '&') || !path.starts_with('/') || has_reserved_param(path) {
            return None;
        }
        if expires.is_empty() || expires.len() > 20 || !expires.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        // Byte-for-byte equal to the canonical spelling (leading zeros, padding,
        // a second `sig`, the wrong separator all differ), in constant time.
        let expected = self.canonical(method, path, expires);
        let same: bool = expected.as_bytes().ct_eq(url.as_bytes()).into();
        let live = now < expires && expires - now <= self.max_ttl.as_secs();
        (same && live).then_some(())
    }
}

/// Whether the query of `path` has a parameter that a server could read as
/// `expires` or `sig`: the name is compared after percent-decoding, `+` as a
/// space, surrounding white space trimmed and ASCII case folded, and `;` counts
/// as a separator as well as `&` (some frameworks split on it).
fn has_reserved_param(path: &str) -> bool {
    path.split_once('?').is_some_and(|(_, q)| {
        q.split(['&', ';']).any(|kv| {
            let name = kv.split_once('=').map_or(kv, |(n, _)| n);
            let name = decode_name(name);
            let name = name.trim_ascii();
            name.eq_ignore_ascii_case(b"expires") || name.eq_ignore_ascii_case(b"sig")
        })
    })
}

/// Percent-decode a query parameter name (`+` is a space); a `%` not followed
/// by two hex digits stays as it is. Decoded repeatedly until stable, so a
/// double-encoded name (`%2565xpires`) is caught too.
fn decode_name(name: &str) -> Vec<u8> {
    let mut cur = name.as_bytes().to_vec();
    // Each round shortens the name, so this ends; 8 rounds bound the work.
    for _ in 0..8 {
        let mut out = Vec::with_capacity(cur.len());
        let mut i = 0;
        while i < cur.len() {
            let b = cur[i];
            let hex = |c: u8| char::from(c).to_digit(16);
            match (b, cur.get(i + 1).copied(), cur.get(i + 2).copied()) {
                (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                    let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                    out.push(u8::try_from(v).unwrap_or(0));
                    i += 3;
                }
                (b'+', _, _) => {
                    out.push(b' ');
                    i += 1;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        if out == cur {
            break;
        }
        cur = out;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> UrlSigner {
        UrlSigner::new(SecretKey::from_bytes([5; 32]))
    }

    #[test]
    fn sign_verify_and_default_ttl() {
        let url = s().sign("GET", "/docs/42.pdf", 1_000).unwrap();
        assert!(url.starts_with("/docs/42.pdf?expires=1600&sig="), "{url}");
        s().verify("GET", &url, 1_599).unwrap();
        s().verify("get", &url, 1_000).unwrap();
        assert!(matches!(
            s().verify("GET", &url, 1_600),
            Err(Error::SignedUrlRejected)
        ));
        assert!(s().verify("PUT", &url, 1_000).is_err());
        assert!(s().verify("GET", &url.replace("42", "43"), 1_000).is_err());
        assert!(
            s().verify("GET", &url.replace("1600", "9999"), 1_000)
                .is_err()
        );
        assert!(
            UrlSigner::new(SecretKey::from_bytes([6; 32]))
                .verify("GET", &url, 1_000)
                .is_err()
        );
        assert!(s().verify("GET", "/docs/42.pdf", 1_000).is_err());
    }

    #[test]
    fn query_is_covered_and_ttl_is_bounded() {
        let url = s()
            .sign_with_ttl("GET", "/f?v=2", 0, Duration::from_secs(5))
            .unwrap();
        assert!(url.starts_with("/f?v=2&expires=5&sig="));
        s().verify("GET", &url, 4).unwrap();
        assert!(s().verify("GET", &url.replace("v=2", "v=3"), 4).is_err());
        assert!(s().sign_with_ttl("GET", "/f", 0, Duration::ZERO).is_err());
        assert!(
            s().sign_with_ttl("GET", "/f", 0, MAX_TTL + Duration::from_secs(1))
                .is_err()
        );
        assert!(s().sign("GET", "relative", 0).is_err());
    }

    /// Signed URLs: only the canonical spelling verifies, within the maximum
    /// lifetime (class: non-canonical signed URLs verify).
    ///
    /// Root cause: `verify` split the URL at the last `&sig=` and `expires=` and
    /// parsed the expiry as a number, so `expires=0001600`, a padded signature,
    /// or extra `expires`/`sig` parameters in the signed part all verified as
    /// other spellings of one URL (caches and logs see different URLs; a second
    /// `sig` hides in the path); and the expiry was only checked against the
    /// past, so a URL minted with a far-future expiry lived for years. Now the
    /// URL must equal the canonical spelling byte for byte and its expiry must
    /// be within the maximum lifetime.
    #[test]
    fn signed_urls_only_the_canonical_spelling_verifies() {
        let url = s().sign("GET", "/docs/42.pdf", 1_000).unwrap();
        s().verify("GET", &url, 1_000).unwrap();
        let (head, sig) = url.split_once("&sig=").unwrap();
        let spellings = [
            url.replace("expires=1600", "expires=01600"),
            url.replace("expires=1600", "expires=00001600"),
            format!("{url}="),
            format!("{url}&sig={sig}"),
            format!("{head}&sig={sig}&sig={sig}"),
            url.replace("?expires=", "&expires="),
            url.replace("/docs/42.pdf?", "/docs/42.pdf?expires=1600&"),
            format!(
                "{}&expires=1600&sig={sig}",
                head.replace("?expires=1600", "?sig=x")
            ),
            url.replace("&sig=", "&SIG="),
            format!("{url}#frag"),
        ];
        for bad in &spellings {
            assert!(
                matches!(s().verify("GET", bad, 1_000), Err(Error::SignedUrlRejected)),
                "{bad} verified"
            );
        }
        // A query of its own keeps working; one with a reserved name cannot be signed.
        let q = s().sign("GET", "/f?a=1&b=2", 1_000).unwrap();
        s().verify("GET", &q, 1_000).unwrap();
        assert!(s().sign("GET", "/f?sig=1", 1_000).is_err());
        assert!(s().sign("GET", "/f?a=1&expires=9", 1_000).is_err());
    }

    /// Signed URLs: a parameter a server reads as `expires` or `sig` cannot
    /// hide in the signed path under another spelling (class: non-canonical
    /// reserved parameter names).
    ///
    /// Root cause: `sign` refused only the literal names `expires` and `sig`,
    /// so `/f?%65xpires=9999999999`, `/f?SIG=x`, `/f?expires+=1` or
    /// `/f?a=1;expires=9` were signed; a framework that percent-decodes names,
    /// folds case or splits on `;` then sees two `expires` (or `sig`) values
    /// in one authentic URL and may read the forged one first (a "lifetime"
    /// the verifier never checked). Names are now compared after decoding,
    /// trimming and ASCII case folding, with `;` as a separator too.
    #[test]
    fn signed_urls_reserved_names_are_refused_in_every_spelling() {
        for path in [
            "/f?%65xpires=9999999999",
            "/f?%45XPIRES=1",
            "/f?%2565xpires=1",
            "/f?%73ig=abc",
            "/f?s%69g=abc",
            "/f?SIG=abc",
            "/f?Expires=1",
            "/f?expires+=1",
            "/f?+sig=1",
            "/f?%20expires=1",
            "/f?a=1;expires=9",
            "/f?a=1&sig",
            "/f?a=1&expires",
        ] {
            assert!(
                matches!(s().sign("GET", path, 1_000), Err(Error::InvalidConfig(_))),
                "{path} was signed"
            );
        }
        // Names that only contain the reserved words still work.
        for path in [
            "/f?expiresAt=1",
            "/f?signature=1",
            "/f?a=expires",
            "/f?x%=1",
        ] {
            let url = s().sign("GET", path, 1_000).unwrap();
            s().verify("GET", &url, 1_000).unwrap();
        }
    }

    /// Signed URLs: other spellings of a valid URL and expiry edge values are
    /// refused (review attacks that held against the canonical check).
    #[test]
    fn signed_urls_other_spellings_and_expiry_edges_are_refused() {
        let url = s().sign("GET", "/d?a=1&b=2", 1_000).unwrap();
        s().verify("GET", &url, 1_000).unwrap();
        let (head, sig) = url.split_once("&sig=").unwrap();
        let upper: String = sig.chars().map(|c| c.to_ascii_uppercase()).collect();
        let bad = [
            url.replace("expires=", "%65xpires="),
            url.replace("&sig=", "&%73ig="),
            url.replace("expires=1600", "expires=%31600"),
            url.replace("expires=1600", "expires=+1600"),
            url.replace("expires=1600", "expires=-1600"),
            url.replace("expires=1600", "expires= 1600"),
            url.replace("expires=1600", "expires=1600 "),
            url.replace("a=1&b=2", "b=2&a=1"),
            url.replace("a=1", "a=%31"),
            format!("{url}&"),
            format!("{url}&&"),
            format!("{head}&&sig={sig}"),
            format!("{head}&sig={upper}"),
            format!("{head}&sig=%{sig}"),
            format!("{head}&sig="),
            format!("{head}&sig={sig}%3D"),
            format!("{url}#"),
            url.replace("?a=1&b=2&", "?"),
            url.replace("&b=2", "&b=2&"),
            url.replace("&expires=1600", "&expires=1600&x="),
        ];
        for b in &bad {
            assert!(s().verify("GET", b, 1_000).is_err(), "{b} verified");
        }
        // Expiry beyond u64 and i64 edges: refused, no panic.
        for e in [
            "18446744073709551616",
            "99999999999999999999999",
            "9223372036854775808",
        ] {
            let u = format!("/f?expires={e}&sig={sig}");
            assert!(s().verify("GET", &u, 1_000).is_err());
        }
        let max = s().sign("GET", "/f", u64::MAX - 5).unwrap();
        s().verify("GET", &max, u64::MAX - 5).unwrap();
        assert!(s().verify("GET", &max, u64::MAX).is_err());
        // Exactly at the maximum lifetime verifies; one second more does not.
        let ttl = MAX_TTL.as_secs();
        let at = s().sign_with_ttl("GET", "/f", 0, MAX_TTL).unwrap();
        s().verify("GET", &at, 0).unwrap();
        let hour = s().with_max_ttl(Duration::from_secs(3600)).unwrap();
        assert!(hour.verify("GET", &at, ttl - 3601).is_err());
        hour.verify("GET", &at, ttl - 3600).unwrap();
        hour.verify("GET", &at, ttl - 1).unwrap();
        assert!(hour.verify("GET", &at, ttl).is_err());
    }

    #[test]
    fn signed_urls_verification_enforces_the_maximum_lifetime() {
        // Signed by a clock 30 days ahead (or any signer with a longer lifetime):
        // refused until it is within the maximum lifetime of expiring.
        let far = 1_000 + 30 * 24 * 3600;
        let url = s().sign("GET", "/f", far).unwrap();
        assert!(s().verify("GET", &url, 1_000).is_err());
        s().verify("GET", &url, far).unwrap();
        // A signer with a one-hour maximum refuses a (validly signed) 7-day URL.
        let week = s().sign_with_ttl("GET", "/f", 0, MAX_TTL).unwrap();
        s().verify("GET", &week, 0).unwrap();
        let hour = s().with_max_ttl(Duration::from_secs(3600)).unwrap();
        assert!(hour.verify("GET", &week, 0).is_err());
        assert!(hour.verify("GET", &week, MAX_TTL.as_secs() - 3600).is_ok());
        assert!(
            hour.sign_with_ttl("GET", "/f", 0, Duration::from_secs(3601))
                .is_err()
        );
        assert!(s().with_max_ttl(Duration::ZERO).is_err());
        assert!(s().with_max_ttl(MAX_TTL + Duration::from_secs(1)).is_err());
    }
}
