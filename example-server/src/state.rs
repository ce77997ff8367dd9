//! Shared application state: every crate's component, built once at start-up.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRef;
use hisn_crypto_vault::{ApiKeys, PasswordHasher, PasswordParams, UrlSigner};
use hisn_rate_limit::http::KeyExtractor;
use hisn_rate_limit::{KeyKind, Policy, Tiers};
use hisn_tenant_guard::jsonwebtoken::EncodingKey;
use hisn_tenant_guard::{RolePolicy, TokenVerifier};
use hisn_webhook_verify::Webhook;

use crate::audit::Audit;
use crate::config::{Config, Rate};
use crate::db::{Admin, Platform, TenantDb};
use crate::outbound::PartnerApi;
use crate::shared::{SharedIdempotency, SharedLimiter, SharedLoginGuard, SharedReplay};

/// Unix seconds now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds now, as SQLite stores integers.
pub fn now_unix_i64() -> i64 {
    i64::try_from(now_unix()).unwrap_or(i64::MAX)
}

/// Shared state (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(s: &AppState) -> Self {
        Arc::clone(&s.verifier)
    }
}

/// Everything the handlers use.
pub struct Inner {
    /// Configuration.
    pub config: Config,
    /// Tenant data: only tenant transactions, every statement guarded.
    pub db: TenantDb,
    /// Platform tables (tenants, accounts, API keys); see [`crate::db::platform`].
    pub platform: Platform,
    /// The audited escape hatch (operator console).
    pub admin: Admin,
    /// Session token verification (HS256 pinned, `iss`/`aud`/`exp` required).
    pub verifier: Arc<TokenVerifier>,
    /// Session token signing key.
    pub jwt_key: EncodingKey,
    /// Roles to permissions.
    pub policy: RolePolicy,
    /// Field encryption with per-tenant keys (shred-checked across instances).
    pub vault: crate::keystore::TenantVault,
    /// argon2id password hashing.
    pub hasher: Arc<PasswordHasher>,
    /// The bound on concurrent password hashing ([`crate::hashing`]).
    pub hash_gate: crate::hashing::HashGate,
    /// API keys for machine clients.
    pub api_keys: ApiKeys,
    /// Attachment download URLs.
    pub url_signer: UrlSigner,
    /// The audit trail.
    pub audit: Audit,
    /// Signs audit checkpoints on demand (the schedule runs in the store).
    pub audit_key: Arc<hisn_audit_log::SigningKey>,
    /// API tiers: IP, session, tenant.
    pub limiter: Arc<SharedLimiter>,
    /// Client IP and identity keys of a request.
    pub extractor: KeyExtractor,
    /// Login budgets per account and per IP.
    pub login_guard: SharedLoginGuard,
    /// Webhook deliveries per source.
    pub webhook_limiter: Arc<SharedLimiter>,
    /// The payment provider's webhook verifier.
    pub webhook: Webhook,
    /// Webhook at-most-once store.
    pub replay: SharedReplay,
    /// Idempotency-Key store.
    pub idempotency: Arc<SharedIdempotency>,
    /// The simulated partner API behind a circuit breaker.
    pub partner: PartnerApi,
    /// Operator console bearer token (constant-time compared).
    pub operator_token: zeroize::Zeroizing<String>,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// TOTP, recovery codes, the TOTP try limit and support grants.
    pub mfa: crate::mfa::Mfa,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A policy from a configured rate.
pub fn policy(
    name: &'static str,
    rate: Rate,
    kind: KeyKind,
) -> Result<Policy, hisn_rate_limit::Error> {
    Policy::new(name, rate.quota, rate.period, kind)
}

/// A policy of a tier that may live on Redis: what it does when Redis is
/// down is `HISN_RATE_LIMIT_ON_REDIS_FAILURE` (default: closed).
pub fn shared_policy(
    name: &'static str,
    rate: Rate,
    kind: KeyKind,
    c: &Config,
) -> Result<Policy, hisn_rate_limit::Error> {
    Ok(policy(name, rate, kind)?.on_backend_failure(c.rate_limit_on_redis_failure.mode()))
}

/// The API tiers: every request per IP; authenticated requests per session and per tenant.
pub fn api_tiers(c: &Config) -> Result<Tiers, hisn_rate_limit::Error> {
    Tiers::new(vec![
        shared_policy("ip", c.ip_rate, KeyKind::Ip, c)?,
        shared_policy("session", c.session_rate, KeyKind::Session, c)?,
        shared_policy("tenant", c.tenant_rate, KeyKind::Tenant, c)?,
    ])
}

/// The password hasher (OWASP argon2id parameters).
pub fn hasher() -> PasswordHasher {
    PasswordHasher::new(PasswordParams::DEFAULT)
}
