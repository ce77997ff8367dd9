//! HMAC-signed URLs with an expiry, bound to the HTTP method and path (with its
//! query), for private document downloads.
//!
//! `sign` appends `expires=<unix seconds>&sig=<base64url(HMAC-SHA256)>` to the
//! path's query. The MAC covers `lp("hisn-vault/url/v1") || lp(METHOD) ||
//! lp(path-and-query without the two parameters) || expires (u64 BE)`. Time is a
//! parameter (Unix seconds), so tests control it.

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
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlSigner { .. }")
    }
}

impl UrlSigner {
    /// A signer with `key`.
    pub fn new(key: SecretKey) -> Self {
        Self { key }
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
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(Error::InvalidConfig(
                "signed URL lifetime must be 1s..=7 days",
            ));
        }
        let expires = now.saturating_add(ttl.as_secs());
        let sig = URL_SAFE_NO_PAD.encode(self.mac(method, path, expires));
        let sep = if path.contains('?') { '&' } else { '?' };
        Ok(format!("{path}{sep}expires={expires}&sig={sig}"))
    }

    /// Verify a signed path-and-query for `method` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`Error::SignedUrlRejected`] (opaque) for a missing or bad signature, another
    /// method or path, or expiry.
    pub fn verify(&self, method: &str, url: &str, now: u64) -> Result<()> {
        let rejected = Error::SignedUrlRejected;
        if url.len() > MAX_URL_LEN {
            return Err(rejected);
        }
        let (rest, sig) = url.rsplit_once("&sig=").ok_or(Error::SignedUrlRejected)?;
        let (path, expires) = rest
            .rsplit_once("?expires=")
            .or_else(|| rest.rsplit_once("&expires="))
            .ok_or(Error::SignedUrlRejected)?;
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(rejected);
        }
        let expires: u64 = expires.parse().map_err(|_| Error::SignedUrlRejected)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig.as_bytes())
            .map_err(|_| Error::SignedUrlRejected)?;
        let ok: bool = self.mac(method, path, expires).ct_eq(sig.as_slice()).into();
        if !ok || now >= expires {
            tracing::info!(target: "hisn_crypto_vault", "signed URL rejected");
            return Err(rejected);
        }
        Ok(())
    }
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
}
