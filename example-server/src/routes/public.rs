//! Unauthenticated routes (health, sign-up, login, API-key exchange) and the
//! operator's metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hisn_crypto_vault::Verification;
use hisn_rate_limit::Outcome;
use hisn_rate_limit::http::write_retry_after;
use hisn_tenant_guard::TenantId;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{Body, Meta, Validate, text};
use crate::auth;
use crate::db::platform;
use crate::error::ApiError;
use crate::state::{AppState, now_unix};

/// `GET /health`: liveness and the schema version; no authentication.
pub(super) async fn health(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let schema = crate::db::schema_version(&s.platform).await?;
    Ok(Json(json!({ "status": "ok", "schema": schema })))
}

/// `GET /metrics`: Prometheus text of security decisions (no tenant labels),
/// for the operator only: denials by layer, 429s by tier and webhook
/// rejections are feedback to an attacker probing the controls (did that
/// forged token reach RBAC, did this burst trip the tenant tier). The
/// scraper sends the operator token (`Authorization: Bearer`, compared in
/// constant time); anything else gets the bare `401`.
pub(super) async fn metrics(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    super::operator::check_operator(&s, &headers)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::global().render(),
    )
        .into_response())
}

/// Shortest accepted password.
pub(super) const MIN_PASSWORD: usize = 12;
/// Longest accepted password.
pub(super) const MAX_PASSWORD: usize = 128;

/// Check an e-mail's shape and a password's length; returns the normalised e-mail.
pub(super) fn credentials(email: &str, password: &str) -> Result<String, ApiError> {
    text(email, 254)?;
    let (local, domain) = email
        .split_once('@')
        .ok_or(ApiError::BadRequest("invalid_email"))?;
    if local.is_empty() || !domain.contains('.') || email.contains(char::is_whitespace) {
        return Err(ApiError::BadRequest("invalid_email"));
    }
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(ApiError::BadRequest("invalid_password"));
    }
    Ok(email.to_lowercase())
}

/// Sign-up body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignUp {
    name: String,
    owner_email: String,
    owner_password: String,
}

impl Validate for SignUp {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.name, 100)?;
        credentials(&self.owner_email, &self.owner_password).map(|_| ())
    }
}

/// `POST /tenants`: create a tenant, its keys and its owner.
pub(super) async fn sign_up(
    State(s): State<AppState>,
    meta: Meta,
    Body(b): Body<SignUp>,
) -> Result<Response, ApiError> {
    let email = credentials(&b.owner_email, &b.owner_password)?;
    // Anonymous, and it hashes a password (argon2id) and creates keys and a
    // chain: the login budget per IP first, as for a login, before any work.
    let decision = s
        .login_guard
        .begin(&format!("sign-up/{}", meta.ip), meta.ip)
        .await
        .map_err(|e| ApiError::internal("login guard", &e))?;
    if let Some(resp) = login_refusal(&decision) {
        return Ok(resp);
    }
    let tenant = TenantId::from_uuid(Uuid::new_v4())?;
    let owner = Uuid::new_v4();
    let hasher = s.hasher.clone();
    let password = zeroize::Zeroizing::new(b.owner_password);
    let hash = s
        .hash_gate
        .run(move || hasher.hash(&password))
        .await?
        .map_err(|e| ApiError::internal("hash", &e))?;
    s.vault
        .provision_tenant(&tenant.to_string())
        .await
        .map_err(|e| ApiError::internal("provision tenant keys", &e))?;
    let mut tx = s.platform.begin().await?;
    platform::create_tenant(&mut tx, tenant, &b.name).await?;
    platform::insert_account(&mut tx, tenant, owner, &email, &hash, "owner").await?;
    let actor = meta.actor_named(&owner.to_string());
    s.audit
        .append(
            actor
                .event(tenant, "tenant.create")?
                .entity("tenant", &tenant.to_string())
                .subject(&owner.to_string())
                .diff(&json!({ "name": b.name, "owner": owner })),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(target: "hisn::example_server", tenant = %tenant, owner_email = %email, "tenant created");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "tenant_id": tenant.to_string(), "owner_id": owner })),
    )
        .into_response())
}

/// Login body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    tenant: String,
    email: String,
    password: String,
}

impl Validate for Login {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.tenant, 64)?;
        text(&self.email, 254)?;
        if self.password.is_empty() || self.password.len() > 1024 {
            return Err(ApiError::BadRequest("invalid_field"));
        }
        Ok(())
    }
}

/// `POST /auth/login`: budgets per account and per IP, argon2id (rehash when
/// below policy), one answer for unknown account and wrong password, audited.
/// The actor and entity of a failed login for an e-mail with no account.
const UNKNOWN_ACCOUNT: &str = "unknown";

pub(super) async fn login(
    State(s): State<AppState>,
    meta: Meta,
    Body(b): Body<Login>,
) -> Result<Response, ApiError> {
    let email = b.email.to_lowercase();
    let tenant = b.tenant.parse::<TenantId>().ok();
    // The budget is the account's, however its tenant is spelt: `TenantId`
    // parses any case, so the raw string would give each spelling a budget
    // of its own. An unparsable tenant (no account) is keyed lowercased.
    let account_key = match tenant {
        Some(t) => format!("{t}/{email}"),
        None => format!("{}/{}", b.tenant.to_lowercase(), email),
    };
    let decision = s
        .login_guard
        .begin(&account_key, meta.ip)
        .await
        .map_err(|e| ApiError::internal("login guard", &e))?;
    if let Some(resp) = login_refusal(&decision) {
        return Ok(resp);
    }
    // A hashing slot before the account is looked up: a full gate answers
    // the same 503 for every account, and the attempt above already counted
    // against the account's and the IP's budgets.
    let permit = s.hash_gate.acquire().await?;
    let account = match tenant {
        Some(t) => platform::find_account(&s.platform, t, &email).await?,
        None => None,
    };
    let hasher = s.hasher.clone();
    let password = zeroize::Zeroizing::new(b.password);
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let (verdict, password) = permit
        .run(move || {
            let v = match &stored {
                Some(h) => hasher.verify(&password, h),
                // Unknown account: the same work, then the same answer.
                None => hasher
                    .dummy_verify(&password)
                    .map(|_| Verification::Invalid),
            };
            (v, password)
        })
        .await?;
    let verdict = verdict.unwrap_or(Verification::Invalid);
    let known = account.as_ref().map(|a| a.id.to_string());
    let (Some(tenant), Some(account), true) = (tenant, account, verdict.is_valid()) else {
        // The same work for a wrong password and an unknown e-mail, or the
        // fsynced append before the 401 would tell them apart by timing
        // (e-mail enumeration): in an existing tenant both append one
        // `auth.login_failed` record (an unknown account as `unknown`, the
        // attempted e-mail never recorded); an unknown or erased tenant gets
        // none in either case (no chain per invented tenant id).
        if let Some(t) = tenant
            && platform::tenant_active(&s.platform, t).await?
        {
            let who = known.as_deref().unwrap_or(UNKNOWN_ACCOUNT);
            let mut event = meta
                .actor_named(who)
                .event(t, "auth.login_failed")?
                .entity("user", who);
            if known.is_some() {
                event = event.subject(who);
            }
            s.audit.append(event).await?;
        }
        return Err(ApiError::Unauthorized);
    };
    let mut rehashed = false;
    if verdict == Verification::ValidNeedsRehash {
        // Opportunistic: with the gate full the login goes on and the hash
        // is upgraded at a later login (a correct password must not be
        // answered 503 after it was checked).
        let hasher = s.hasher.clone();
        match s.hash_gate.run(move || hasher.hash(&password)).await {
            Ok(new_hash) => {
                let new_hash = new_hash.map_err(|e| ApiError::internal("hash", &e))?;
                platform::set_password_hash(&s.platform, tenant, account.id, &new_hash).await?;
                rehashed = true;
            }
            Err(ApiError::Overloaded) => {}
            Err(e) => return Err(e),
        }
    }
    s.login_guard.record_success(&account_key).await;
    let user = account.id.to_string();
    let actor = meta.actor_named(&user);
    s.audit
        .append(
            actor
                .event(tenant, "auth.login")?
                .entity("user", &user)
                .subject(&user)
                .diff(&json!({ "rehashed": rehashed })),
        )
        .await?;
    // First sign-in (the MFA grace period starts), enrolment and password state.
    let facts = crate::db::mfa::sign_in(&s.platform, tenant, account.id).await?;
    let session = auth::SessionAuth {
        amr: &["pwd"],
        mfa_time: None,
        facts: Some(facts),
    };
    Ok(Json(auth::issue_session(
        &s,
        tenant,
        &user,
        &account.role,
        &session,
    )?)
    .into_response())
}

/// API-key exchange body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyExchange {
    api_key: String,
}

impl Validate for KeyExchange {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.api_key, 200)
    }
}

/// `POST /auth/token`: exchange an API key for a short-lived session token
/// (the machine client's login).
pub(super) async fn api_key_token(
    State(s): State<AppState>,
    meta: Meta,
    Body(b): Body<KeyExchange>,
) -> Result<Response, ApiError> {
    let refuse = || {
        crate::metrics::global().deny("api_key");
        ApiError::Unauthorized
    };
    let id = s.api_keys.parse_id(&b.api_key).map_err(|_| refuse())?;
    let row = platform::api_key_by_id(&s.platform, id)
        .await?
        .ok_or_else(refuse)?;
    let tenant: TenantId = row.tenant.parse().map_err(|_| refuse())?;
    let record = hisn_crypto_vault::ApiKeyRecord {
        id: row.id.clone(),
        hash: row.hash.as_slice().try_into().map_err(|_| refuse())?,
        scopes: [row.role.clone()].into_iter().collect(),
        expires_at: row.expires_at.and_then(|e| u64::try_from(e).ok()),
        revoked: row.revoked,
    };
    // Bound: the tenant column, the role and the expiry as stored are part
    // of the hash (a moved or edited record fails like a wrong key).
    s.api_keys
        .verify_for(
            &super::members::key_owner(tenant),
            &b.api_key,
            &record,
            now_unix(),
            None,
        )
        .map_err(|_| refuse())?;
    if !platform::tenant_active(&s.platform, tenant).await? {
        return Err(refuse());
    }
    let subject = format!("apikey:{}", row.id);
    s.audit
        .append(
            meta.actor_named(&subject)
                .event(tenant, "auth.api_key")?
                .entity("api_key", &row.id),
        )
        .await?;
    Ok(Json(auth::issue(&s, tenant, &subject, &row.role, "apikey")?).into_response())
}

/// The answer to a login-budget decision that refuses (`None` when it
/// allows): 429, or 503 when the limiter's store is down under fail-closed,
/// the same for every account; with `Retry-After`.
pub(crate) fn login_refusal(decision: &hisn_rate_limit::Decision) -> Option<Response> {
    if decision.is_allowed() {
        return None;
    }
    crate::metrics::global().rate_limited(decision.denied_by().unwrap_or("login"));
    let refusal = match decision.outcome() {
        Outcome::Unavailable { .. } => ApiError::Unavailable,
        _ => ApiError::TooManyRequests,
    };
    let mut resp = refusal.into_response();
    write_retry_after(resp.headers_mut(), decision.retry_after());
    Some(resp)
}
