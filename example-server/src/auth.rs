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
/// request costs one verification per token instead of one per request, and
/// no SHA-256 per request: what a request needs that is derived from the
/// token (the session key, SHA-256 of the token in hex, and the rate-limit
/// keys) is derived once, when the token verifies, and kept with it.
///
/// Lookup: the slot is a keyed hash of the token (SipHash with this
/// process's random key, [`RandomState`](std::collections::hash_map::RandomState)),
/// and a hit requires the whole stored token to equal the presented one
/// (compared in constant time): the cache never answers for a token other
/// than the one that verified, whatever the hash does (two tokens in one
/// slot: the second one is verified and replaces the first). So the cache
/// holds the tokens it verified, in memory only (zeroed when dropped),
/// for at most their own lifetime; it is never written anywhere nor printed.
/// What verification checks does not change between two requests with the
/// same token, except time: an entry is used only while `now < exp` (the
/// token's own `exp`, read from a token that just verified, without the
/// verifier's leeway: never longer than the verifier would accept it); a
/// token that fails verification is never cached. The verifier's keys are
/// fixed for the life of the process. Bounded: at [`SESSION_CACHE_CAPACITY`]
/// entries the expired ones are dropped, and if none were, all of them.
pub struct SessionCache {
    verifier: Arc<TokenVerifier>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    entries: std::sync::Mutex<std::collections::HashMap<u64, Cached>>,
    /// Tests: every token in one slot (to check a hit needs the same token).
    #[cfg(test)]
    one_slot: bool,
}

struct Cached {
    token: zeroize::Zeroizing<String>,
    session: Arc<Verified>,
}

/// A session token that verified, and what is derived from it once.
#[derive(Debug)]
pub struct Verified {
    /// The verified context.
    pub ctx: hisn_tenant_guard::TenantContext,
    /// The token's `exp` (Unix seconds).
    pub exp: u64,
    /// SHA-256 of the token, hex: the session key (never the token itself).
    pub session: Arc<str>,
    /// The token's subject.
    pub subject: Arc<str>,
    /// The rate limiter's session key (`KeyValue::text(session)`).
    pub session_key: Option<hisn_rate_limit::KeyValue>,
    /// The rate limiter's tenant key (`KeyValue::text(tenant)`).
    pub tenant_key: Option<hisn_rate_limit::KeyValue>,
}

impl Verified {
    fn new(ctx: hisn_tenant_guard::TenantContext, token: &str, exp: u64) -> Self {
        use sha2::{Digest, Sha256};
        let session: Arc<str> = hex::encode(Sha256::digest(token.as_bytes())).into();
        Self {
            exp,
            session_key: hisn_rate_limit::KeyValue::text(&session).ok(),
            tenant_key: hisn_rate_limit::KeyValue::text(&ctx.tenant().to_string()).ok(),
            subject: ctx.subject().into(),
            session,
            ctx,
        }
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (ai, bi) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ai.remainder(), bi.remainder());
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    let mut diff = ai.zip(bi).fold(0u64, |d, (x, y)| d | (word(x) ^ word(y)));
    diff |= ar
        .iter()
        .zip(br)
        .fold(0u64, |d, (x, y)| d | u64::from(x ^ y));
    std::hint::black_box(diff) == 0
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
            hasher: std::collections::hash_map::RandomState::new(),
            entries: std::sync::Mutex::default(),
            #[cfg(test)]
            one_slot: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Cached>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slot(&self, token: &str) -> u64 {
        #[cfg(test)]
        if self.one_slot {
            return 0;
        }
        use std::hash::BuildHasher as _;
        self.hasher.hash_one(token.as_bytes())
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`TokenVerifier::verify`] of `token` at `now` (Unix seconds), with
    /// what is derived from the token.
    pub fn verify(&self, token: &str, now: u64) -> Result<Arc<Verified>, hisn_tenant_guard::Error> {
        let slot = self.slot(token);
        if let Some(c) = self.lock().get(&slot)
            && same_bytes(c.token.as_bytes(), token.as_bytes())
            && now < c.session.exp
        {
            return Ok(Arc::clone(&c.session));
        }
        let ctx = self.verifier.verify(token)?;
        let Some(exp) = expiry(token) else {
            return Ok(Arc::new(Verified::new(ctx, token, 0)));
        };
        let session = Arc::new(Verified::new(ctx, token, exp));
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&slot) {
            entries.retain(|_, c| now < c.session.exp);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            slot,
            Cached {
                token: zeroize::Zeroizing::new(token.to_owned()),
                session: Arc::clone(&session),
            },
        );
        Ok(session)
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

    fn setup(ttl: u64) -> (SessionCache, EncodingKey, Duration, Arc<ManualClock>) {
        let secret = SecretKey::from_bytes([7u8; 32]);
        // One second ahead: a token issued just after a second boundary
        // (`iat` = now + 1) is not in the verifier's future (no leeway).
        let clock = Arc::new(ManualClock::new(now_unix() + 1));
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

    fn token(key: &EncodingKey, ttl: Duration, subject: &str) -> String {
        let tenant = TenantId::from_uuid(uuid::Uuid::new_v4()).unwrap();
        let auth = SessionAuth {
            amr: &["pwd"],
            ..SessionAuth::default()
        };
        issue_with(key, ttl, tenant, subject, "viewer", &auth)
            .unwrap()
            .token
    }

    #[test]
    fn a_cached_session_is_the_verified_one_and_ends_at_exp() {
        let (cache, key, ttl, clock) = setup(60);
        let t = token(&key, ttl, "alice");
        let now = clock.now_unix();
        let first = cache.verify(&t, now).unwrap();
        assert_eq!(cache.len(), 1);
        let again = cache.verify(&t, now + 30).unwrap();
        assert_eq!(again.ctx.subject(), "alice");
        assert_eq!(again.ctx.tenant(), first.ctx.tenant());
        let exp = expiry(&t).unwrap();
        assert!(exp > now && exp <= now + 60);
        // Past exp (and the verifier's leeway) the entry is not used: the
        // verifier decides, and refuses.
        let late = exp + hisn_tenant_guard::MAX_LEEWAY_SECS + 1;
        clock.set(late);
        assert!(cache.verify(&t, late).is_err());
    }

    #[test]
    fn a_token_that_fails_is_refused_and_not_cached() {
        let (cache, key, ttl, _) = setup(60);
        let t = token(&key, ttl, "alice");
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(cache.verify(&forged, now_unix()).is_err());
        assert!(cache.is_empty());
        // A token signed with another key does not verify through the cache either.
        let other = encoding_key(&SecretKey::from_bytes([8u8; 32]));
        let t2 = token(&other, ttl, "mallory");
        assert!(cache.verify(&t2, now_unix()).is_err());
        assert!(cache.is_empty());
    }

    #[test]
    fn each_token_is_its_own_entry() {
        let (cache, key, ttl, _) = setup(60);
        let t = token(&key, ttl, "alice");
        let t2 = token(&key, ttl, "bob");
        assert_eq!(cache.verify(&t, now_unix()).unwrap().ctx.subject(), "alice");
        assert_eq!(cache.verify(&t2, now_unix()).unwrap().ctx.subject(), "bob");
        assert_eq!(cache.verify(&t, now_unix()).unwrap().ctx.subject(), "alice");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let (cache, key, ttl, _) = setup(60);
        for i in 0..10 {
            let t = token(&key, ttl, &format!("user{i}"));
            assert_eq!(
                cache.verify(&t, now_unix()).unwrap().ctx.subject(),
                format!("user{i}")
            );
            assert!(cache.len() <= 3, "{}", cache.len());
        }
    }

    #[test]
    fn a_hit_needs_the_same_token_not_the_same_slot() {
        let (mut cache, key, ttl, _) = setup(60);
        cache.one_slot = true;
        let alice = token(&key, ttl, "alice");
        let now = now_unix();
        assert_eq!(cache.verify(&alice, now).unwrap().ctx.subject(), "alice");
        // A forged token in alice's slot: verified (and refused), never
        // answered from alice's entry.
        let mut forged = alice.clone();
        forged.pop();
        forged.push(if alice.ends_with('A') { 'B' } else { 'A' });
        assert!(cache.verify(&forged, now).is_err());
        // Another valid token in the same slot is its own session.
        let bob = token(&key, ttl, "bob");
        let b = cache.verify(&bob, now).unwrap();
        assert_eq!(b.ctx.subject(), "bob");
        assert_eq!(&*b.subject, "bob");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.verify(&alice, now).unwrap().ctx.subject(), "alice");
    }

    #[test]
    fn derived_keys_are_the_token_digest_and_the_tenant() {
        use sha2::{Digest as _, Sha256};
        let (cache, key, ttl, _) = setup(60);
        let t = token(&key, ttl, "alice");
        let v = cache.verify(&t, now_unix()).unwrap();
        let hex = hex::encode(Sha256::digest(t.as_bytes()));
        assert_eq!(&*v.session, hex.as_str());
        assert_eq!(v.session_key, hisn_rate_limit::KeyValue::text(&hex).ok());
        assert_eq!(
            v.tenant_key,
            hisn_rate_limit::KeyValue::text(&v.ctx.tenant().to_string()).ok()
        );
    }

    #[test]
    fn same_bytes_compares_every_byte() {
        let a = b"0123456789abcdefXYZ".to_vec();
        assert!(same_bytes(&a, &a.clone()));
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 1;
            assert!(!same_bytes(&a, &b), "{i}");
        }
        assert!(!same_bytes(&a, &a[..a.len() - 1]));
        assert!(same_bytes(b"", b""));
    }
}
