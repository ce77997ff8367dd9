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
