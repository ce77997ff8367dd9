//! Session tokens: the server is its own issuer. HS256 with a pinned `kid`,
//! `iss`, `aud`, `exp` (at most 24 h), the tenant claim and roles; verified by
//! tenant-guard's [`TokenVerifier`] with the algorithm pinned.

use std::sync::Arc;
use std::time::Duration;

use hisn_crypto_vault::SecretKey;
use hisn_tenant_guard::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey, Header};
use hisn_tenant_guard::{Issuer, TenantId, TokenVerifier};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::{AppState, now_unix};

/// `iss` of the tokens this server issues.
pub const ISSUER: &str = "hisn-example-server";
/// `aud` of the tokens this server issues.
pub const AUDIENCE: &str = "hisn-example-api";
/// `kid` of the local signing key.
pub const KID: &str = "local-1";

/// The verifier for this server's tokens.
pub fn verifier(secret: &SecretKey) -> Result<TokenVerifier, hisn_tenant_guard::Error> {
    TokenVerifier::builder()
        .issuer(
            Issuer::new(ISSUER, AUDIENCE, &[Algorithm::HS256])
                .key(KID, DecodingKey::from_secret(secret.expose_secret())),
        )
        .build()
}

/// The signing key for this server's tokens.
pub fn encoding_key(secret: &SecretKey) -> EncodingKey {
    EncodingKey::from_secret(secret.expose_secret())
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    tenant_id: String,
    roles: [&'a str; 1],
    amr: &'a [&'a str],
    iat: u64,
    exp: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_time: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    must_change_password: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hisn_first_sign_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hisn_mfa_enrolled: Option<bool>,
}

/// How a session was authenticated, as its token states it (see [`crate::mfa`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionAuth<'a> {
    /// RFC 8176 methods: `pwd`, `apikey`, `otp`.
    pub amr: &'a [&'a str],
    /// When the last second factor was presented (Unix seconds).
    pub mfa_time: Option<u64>,
    /// The account's first sign-in, enrolment and password state.
    pub facts: Option<crate::db::mfa::AccountFacts>,
}

/// An issued session token.
#[derive(Debug, Serialize)]
pub struct Issued {
    /// The bearer token.
    pub token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Issue a token for `subject` in `tenant` with `role`, authenticated by `amr` (`pwd`, `apikey`).
pub fn issue(
    s: &AppState,
    tenant: TenantId,
    subject: &str,
    role: &str,
    amr: &str,
) -> Result<Issued, ApiError> {
    let auth = SessionAuth {
        amr: &[amr],
        ..SessionAuth::default()
    };
    issue_with(&s.jwt_key, s.token_ttl, tenant, subject, role, &auth)
}

/// Issue a session token stating `auth` (password sign-in with the
/// account's facts, or a step-up with `otp` and its time).
pub fn issue_session(
    s: &AppState,
    tenant: TenantId,
    subject: &str,
    role: &str,
    auth: &SessionAuth<'_>,
) -> Result<Issued, ApiError> {
    issue_with(&s.jwt_key, s.token_ttl, tenant, subject, role, auth)
}

/// [`issue`] with an explicit key and lifetime.
pub fn issue_with(
    key: &EncodingKey,
    ttl: Duration,
    tenant: TenantId,
    subject: &str,
    role: &str,
    auth: &SessionAuth<'_>,
) -> Result<Issued, ApiError> {
    let now = now_unix();
    let facts = auth.facts;
    let ttl = ttl
        .as_secs()
        .clamp(1, hisn_tenant_guard::DEFAULT_MAX_LIFETIME_SECS);
    let claims = Claims {
        iss: ISSUER,
        aud: AUDIENCE,
        sub: subject,
        tenant_id: tenant.to_string(),
        roles: [role],
        amr: auth.amr,
        iat: now,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
        mfa_time: auth.mfa_time,
        must_change_password: facts.is_some_and(|f| f.must_change_password),
        hisn_first_sign_in: facts.and_then(|f| u64::try_from(f.first_sign_in).ok()),
        hisn_mfa_enrolled: facts.map(|f| f.enrolled),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KID.to_owned());
    let token = jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| ApiError::internal("token signing", &e))?;
    Ok(Issued {
        token,
        token_type: "Bearer",
        expires_in: ttl,
    })
}

/// Shared verifier handle.
pub fn shared(v: TokenVerifier) -> Arc<TokenVerifier> {
    Arc::new(v)
}

/// Most sessions [`SessionCache`] remembers.
pub const SESSION_CACHE_CAPACITY: usize = 4096;

/// Session tokens that verified, so a client sending the same token on every
/// request costs one verification per token instead of one per request.
///
/// The key is the SHA-256 of the whole token (the request's rate-limit
/// session key is the same digest): a hit needs a token whose digest equals
/// one that verified, which for a different token is a SHA-256 second
/// preimage. No token is kept (the cache holds no credential). What
/// verification checks does not change between two requests with the same
/// token, except time: an entry is used only while `now < exp` (the token's
/// own `exp`, read from a token that just verified, without the verifier's
/// leeway: never longer than the verifier would accept it); a token that
/// fails verification is never cached. The verifier's keys are fixed for the
/// life of the process. Bounded: at [`SESSION_CACHE_CAPACITY`] entries the
/// expired ones are dropped, and if none were, all of them.
pub struct SessionCache {
    verifier: Arc<TokenVerifier>,
    capacity: usize,
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], Cached>>,
}

struct Cached {
    ctx: hisn_tenant_guard::TenantContext,
    exp: u64,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    /// A cache in front of `verifier` holding at most `capacity` sessions.
    pub fn new(verifier: Arc<TokenVerifier>, capacity: usize) -> Self {
        Self {
            verifier,
            capacity: capacity.max(1),
            entries: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], Cached>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`TokenVerifier::verify`] of `token`, whose SHA-256 is `digest`, at
    /// `now` (Unix seconds).
    pub fn verify(
        &self,
        token: &str,
        digest: &[u8; 32],
        now: u64,
    ) -> Result<hisn_tenant_guard::TenantContext, hisn_tenant_guard::Error> {
        if let Some(c) = self.lock().get(digest)
            && now < c.exp
        {
            return Ok(c.ctx.clone());
        }
        let ctx = self.verifier.verify(token)?;
        if let Some(exp) = expiry(token) {
            let mut entries = self.lock();
            if entries.len() >= self.capacity && !entries.contains_key(digest) {
                entries.retain(|_, c| now < c.exp);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(
                *digest,
                Cached {
                    ctx: ctx.clone(),
                    exp,
                },
            );
        }
        Ok(ctx)
    }
}

/// The `exp` of a token that has just verified (so its payload is well
/// formed and signed): `None` if it cannot be read, and then nothing is cached.
fn expiry(token: &str) -> Option<u64> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Exp>(&raw).ok().map(|e| e.exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hisn_tenant_guard::{Clock as _, ManualClock};
    use sha2::{Digest, Sha256};

    fn setup(ttl: u64) -> (SessionCache, EncodingKey, Duration, Arc<ManualClock>) {
        let secret = SecretKey::from_bytes([7u8; 32]);
        let clock = Arc::new(ManualClock::new(now_unix()));
        let v = TokenVerifier::builder()
            .issuer(
                Issuer::new(ISSUER, AUDIENCE, &[Algorithm::HS256])
                    .key(KID, DecodingKey::from_secret(secret.expose_secret())),
            )
            .clock(clock.clone())
            .build()
            .unwrap();
        let cache = SessionCache::new(Arc::new(v), 3);
        (
            cache,
            encoding_key(&secret),
            Duration::from_secs(ttl),
            clock,
        )
    }

    fn token(key: &EncodingKey, ttl: Duration, subject: &str) -> (String, [u8; 32]) {
        let tenant = TenantId::from_uuid(uuid::Uuid::new_v4()).unwrap();
        let auth = SessionAuth {
            amr: &["pwd"],
            ..SessionAuth::default()
        };
        let t = issue_with(key, ttl, tenant, subject, "viewer", &auth)
            .unwrap()
            .token;
        let d: [u8; 32] = Sha256::digest(t.as_bytes()).into();
        (t, d)
    }

    #[test]
    fn a_cached_session_is_the_verified_one_and_ends_at_exp() {
        let (cache, key, ttl, clock) = setup(60);
        let (t, d) = token(&key, ttl, "alice");
        let now = clock.now_unix();
        let first = cache.verify(&t, &d, now).unwrap();
        assert_eq!(cache.len(), 1);
        let again = cache.verify(&t, &d, now + 30).unwrap();
        assert_eq!(again.subject(), "alice");
        assert_eq!(again.tenant(), first.tenant());
        let exp = expiry(&t).unwrap();
        assert!(exp > now && exp <= now + 60);
        // Past exp (and the verifier's leeway) the entry is not used: the
        // verifier decides, and refuses.
        let late = exp + hisn_tenant_guard::MAX_LEEWAY_SECS + 1;
        clock.set(late);
        assert!(cache.verify(&t, &d, late).is_err());
    }

    #[test]
    fn a_token_that_fails_is_refused_and_not_cached() {
        let (cache, key, ttl, _) = setup(60);
        let (t, _) = token(&key, ttl, "alice");
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        let d: [u8; 32] = Sha256::digest(forged.as_bytes()).into();
        assert!(cache.verify(&forged, &d, now_unix()).is_err());
        assert!(cache.is_empty());
        // A token signed with another key does not verify through the cache either.
        let other = encoding_key(&SecretKey::from_bytes([8u8; 32]));
        let (t2, d2) = token(&other, ttl, "mallory");
        assert!(cache.verify(&t2, &d2, now_unix()).is_err());
        assert!(cache.is_empty());
    }

    #[test]
    fn each_token_is_its_own_entry() {
        let (cache, key, ttl, _) = setup(60);
        let (t, d) = token(&key, ttl, "alice");
        let (t2, d2) = token(&key, ttl, "bob");
        assert_eq!(cache.verify(&t, &d, now_unix()).unwrap().subject(), "alice");
        assert_eq!(cache.verify(&t2, &d2, now_unix()).unwrap().subject(), "bob");
        assert_eq!(cache.verify(&t, &d, now_unix()).unwrap().subject(), "alice");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let (cache, key, ttl, _) = setup(60);
        for i in 0..10 {
            let (t, d) = token(&key, ttl, &format!("user{i}"));
            assert_eq!(
                cache.verify(&t, &d, now_unix()).unwrap().subject(),
                format!("user{i}")
            );
            assert!(cache.len() <= 3, "{}", cache.len());
        }
    }
}
