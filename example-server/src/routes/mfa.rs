//! The account's own second factor and password: TOTP enrolment (start,
//! confirm with one code), step-up (a TOTP code or a recovery code issues a
//! session with `amr` `otp` and the factor's time), and the password change
//! (the only route a must-change-password session may use).
//!
//! Every code try passes the TOTP limiter first (5 per account per 30-second
//! step, strict window: crypto-vault's `RECOMMENDED_TRIES_PER_STEP`), then the
//! failure ceiling (100 consecutive failures lock the factor until a recovery
//! code is used: `RECOMMENDED_MAX_FAILURES`). An account without TOTP answers
//! exactly like a wrong code. The last accepted step and the recovery-code
//! set change only by compare-and-set, so a code is accepted once even when
//! two requests (or two instances) race with it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hisn_crypto_vault::{
    Ciphertext, FieldContext, PendingTotp, StoredRecoveryCodes, Totp, TotpParams,
};
use hisn_rate_limit::http::write_retry_after;
use hisn_rate_limit::{KeyKind, KeyValue, Outcome, RequestKeys};
use hisn_tenant_guard::{Permission, TenantId};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::extract::{Body, Meta, Validate, require, text};
use super::grants::Session;
use super::public::{MAX_PASSWORD, MIN_PASSWORD, login_refusal};
use crate::auth::{self, SessionAuth};
use crate::db::mfa as store;
use crate::error::ApiError;
use crate::state::{AppState, now_unix};

/// Recovery codes per batch.
const RECOVERY_CODES: usize = hisn_crypto_vault::recovery::DEFAULT_COUNT;

/// The account behind a session: a user of the tenant, never a grant or an API key.
fn account(ctx: &Session) -> Result<Uuid, ApiError> {
    if ctx.grant().is_some() {
        crate::metrics::global().deny("grant");
        return Err(ApiError::Forbidden);
    }
    ctx.user().map(|u| u.as_uuid()).ok_or(ApiError::Forbidden)
}

fn field<'a>(
    tenant: &'a str,
    column: &'a str,
    account: &'a str,
) -> Result<FieldContext<'a>, ApiError> {
    FieldContext::new(tenant, "account_totp", column, account)
        .map_err(|e| ApiError::internal("field context", &e))
}

/// The TOTP try limit (per account per step window): `Some` is the `429`
/// (or a `500` when the limiter fails).
async fn limit(s: &AppState, tenant: TenantId, account: &str) -> Option<Response> {
    let key = match KeyValue::account(&format!("{tenant}/{account}")) {
        Ok(k) => k,
        Err(e) => return Some(ApiError::internal("totp limiter key", &e).into_response()),
    };
    let decision = match s
        .mfa
        .limiter
        .check(&RequestKeys::new().with(KeyKind::Account, key))
        .await
    {
        Ok(d) => d,
        Err(e) => return Some(ApiError::internal("totp limiter", &e).into_response()),
    };
    let mut resp = match decision.outcome() {
        Outcome::Allowed => return None,
        Outcome::Denied { .. } => {
            crate::metrics::global().rate_limited("totp_account");
            ApiError::TooManyRequests.into_response()
        }
        // The shared limiter is unreachable and fails closed: 503, like the
        // rest of the API, not a 429 the client would read as its own tries.
        _ => ApiError::Unavailable.into_response(),
    };
    write_retry_after(resp.headers_mut(), decision.retry_after());
    Some(resp)
}

/// A session token after a second factor: the session's methods plus `otp`,
/// the factor's time, the account's current facts.
async fn stepped_up(s: &AppState, ctx: &Session, account: Uuid) -> Result<auth::Issued, ApiError> {
    let facts = store::facts(&s.platform, ctx.tenant(), account).await?;
    let role = store::account(&s.platform, ctx.tenant(), account)
        .await?
        .ok_or(ApiError::Forbidden)?
        .1;
    let mut amr: Vec<&str> = ctx
        .auth()
        .amr()
        .iter()
        .map(String::as_str)
        .filter(|m| *m != "otp")
        .collect();
    amr.push("otp");
    let session = SessionAuth {
        amr: &amr,
        mfa_time: Some(now_unix()),
        facts: Some(facts),
    };
    auth::issue_session(s, ctx.tenant(), &account.to_string(), &role, &session)
}

/// `POST /t/{tenant}/mfa/totp`: start (or restart) TOTP enrolment. The
/// secret and `otpauth://` URI are shown once; the secret is stored
/// encrypted as pending until a code confirms it. Replacing an enrolled
/// factor needs a recent second factor.
pub(super) async fn enrol_start(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = account(&ctx)?;
    let (tenant, uid) = (ctx.tenant(), id.to_string());
    let (email, _, _) = store::account(&s.platform, tenant, id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    let enrolled = store::totp(&s.platform, tenant, &uid)
        .await?
        .is_some_and(|r| r.secret.is_some());
    if enrolled {
        let max_age = s.config.step_up_max_age_secs;
        let fresh = ctx
            .auth()
            .second_factor_time()
            .is_some_and(|t| now_unix().saturating_sub(t) <= max_age);
        if !fresh {
            crate::metrics::global().deny("step_up");
            return Err(ApiError::StepUpRequired(Some(max_age)));
        }
    }
    let pending = PendingTotp::generate(TotpParams::DEFAULT)
        .map_err(|e| ApiError::internal("totp generate", &e))?;
    let uri = pending
        .uri(crate::mfa::TOTP_ISSUER, &email)
        .map_err(|e| ApiError::internal("otpauth uri", &e))?;
    let t = tenant.to_string();
    let sealed = pending
        .seal_in(
            s.vault
                .checked(&t)
                .await
                .map_err(|e| ApiError::vault("%s", &e))?,
            &field(&t, "pending", &uid)?,
        )
        .await
        .map_err(|e| ApiError::vault("%s", &e))?;
    s.audit
        .append(
            meta.actor(&ctx)
                .event(tenant, "mfa.totp.enrol_start")?
                .entity("user", &uid)
                .subject(&uid)
                .diff(&json!({ "replacing": enrolled })),
        )
        .await?;
    store::set_pending(&s.platform, tenant, &uid, &sealed.to_text()).await?;
    let secret = pending.secret_base32();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "secret": secret.as_str(), "otpauth_uri": uri.as_str(), "digits": 6, "period": 30 })),
    )
        .into_response())
}

/// A one-time code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Code {
    code: String,
}

impl Validate for Code {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.code, 64)
    }
}

/// Count a failed code and audit it; the answer for every failure.
async fn failed(s: &AppState, ctx: &Session, meta: &Meta, uid: &str, what: &str) -> ApiError {
    crate::metrics::global().deny("totp");
    if let Err(e) = store::record_failure(&s.platform, ctx.tenant(), uid).await {
        return ApiError::from(e);
    }
    let event = match meta.actor(ctx).event(ctx.tenant(), what) {
        Ok(ev) => ev.entity("user", uid).subject(uid),
        Err(e) => return e,
    };
    match s.audit.append(event).await {
        Ok(_) => ApiError::Denied("invalid_code"),
        Err(e) => e,
    }
}

/// `POST /t/{tenant}/mfa/totp/confirm`: one valid code completes the
/// enrolment. Answers the recovery codes (shown once; stored hashed) and a
/// session token with the second factor.
pub(super) async fn enrol_confirm(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<Code>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = account(&ctx)?;
    let (tenant, uid) = (ctx.tenant(), id.to_string());
    if let Some(resp) = limit(&s, tenant, &uid).await {
        return Ok(resp);
    }
    let row = store::totp(&s.platform, tenant, &uid)
        .await?
        .unwrap_or_default();
    let Some(pending_text) = row.pending else {
        return Err(failed(&s, &ctx, &meta, &uid, "mfa.totp.enrol_failed").await);
    };
    let t = tenant.to_string();
    let ct =
        Ciphertext::from_text(&pending_text).map_err(|e| ApiError::internal("pending totp", &e))?;
    let pending = PendingTotp::open_in(
        s.vault
            .checked(&t)
            .await
            .map_err(|e| ApiError::vault("%s", &e))?,
        &field(&t, "pending", &uid)?,
        &ct,
    )
    .await
    .map_err(|e| ApiError::vault("%s", &e))?;
    let Ok((active, step)) = s.mfa.totp.confirm(&pending, &b.code) else {
        return Err(failed(&s, &ctx, &meta, &uid, "mfa.totp.enrol_failed").await);
    };
    let sealed = active
        .seal_in(
            s.vault
                .checked(&t)
                .await
                .map_err(|e| ApiError::vault("%s", &e))?,
            &field(&t, "secret", &uid)?,
        )
        .await
        .map_err(|e| ApiError::vault("%s", &e))?;
    let (batch, hashes) = s
        .mfa
        .recovery
        .generate_for(&field(&t, "recovery", &uid)?, RECOVERY_CODES)
        .map_err(|e| ApiError::internal("recovery codes", &e))?;
    s.audit
        .append(
            meta.actor(&ctx)
                .event(tenant, "mfa.totp.enrolled")?
                .entity("user", &uid)
                .subject(&uid)
                .diff(&json!({ "recovery_codes": batch.len() })),
        )
        .await?;
    let step = i64::try_from(step).map_err(|e| ApiError::internal("totp step", &e))?;
    if !store::activate(
        &s.platform,
        tenant,
        &uid,
        &pending_text,
        &sealed.to_text(),
        step,
        &hashes.to_text(),
    )
    .await?
    {
        // Another confirmation (or a new enrolment) won the race.
        return Err(ApiError::Denied("invalid_code"));
    }
    let issued = stepped_up(&s, &ctx, id).await?;
    let codes: Vec<&str> = batch.codes().collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "recovery_codes": codes, "session": issued })),
    )
        .into_response())
}

/// A step-up: a TOTP code or a recovery code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepUp {
    code: Option<String>,
    recovery_code: Option<String>,
}

impl Validate for StepUp {
    fn validate(&self) -> Result<(), ApiError> {
        match (&self.code, &self.recovery_code) {
            (Some(c), None) | (None, Some(c)) => text(c, 64),
            _ => Err(ApiError::BadRequest("code_or_recovery_code")),
        }
    }
}

/// `POST /t/{tenant}/mfa/step-up`: present the second factor; answers a
/// session token whose `amr` holds `otp` and whose `mfa_time` is now (what
/// admin-only actions require). A recovery code is spent (single use) and
/// unlocks a factor locked by too many failures.
pub(super) async fn step_up(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<StepUp>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = account(&ctx)?;
    let (tenant, uid) = (ctx.tenant(), id.to_string());
    if let Some(resp) = limit(&s, tenant, &uid).await {
        return Ok(resp);
    }
    let row = store::totp(&s.platform, tenant, &uid)
        .await?
        .unwrap_or_default();
    let t = tenant.to_string();
    let (Some(secret), Some(recovery)) = (row.secret, row.recovery) else {
        // Not enrolled: the same answer (and the same counting) as a wrong code.
        return Err(failed(&s, &ctx, &meta, &uid, "mfa.step_up_failed").await);
    };
    if let Some(input) = b.recovery_code {
        let input = Zeroizing::new(input);
        let mut set = StoredRecoveryCodes::from_text(&recovery)
            .map_err(|e| ApiError::internal("recovery codes", &e))?;
        // Bound to this account's row: a set copied from another account's
        // row (or an unbound set) verifies nothing here.
        let owner = field(&t, "recovery", &uid)?;
        let Ok(i) = s.mfa.recovery.verify_for(&owner, &set, &input) else {
            return Err(failed(&s, &ctx, &meta, &uid, "mfa.recovery_code_failed").await);
        };
        set.remove(i);
        s.audit
            .append(
                meta.actor(&ctx)
                    .event(tenant, "mfa.recovery_code_used")?
                    .entity("user", &uid)
                    .subject(&uid)
                    .diff(&json!({ "remaining": set.len() })),
            )
            .await?;
        if !store::spend_recovery(&s.platform, tenant, &uid, &recovery, &set.to_text()).await? {
            // Spent (or another code used) by a concurrent request.
            return Err(failed(&s, &ctx, &meta, &uid, "mfa.recovery_code_failed").await);
        }
    } else {
        if row.failures >= s.mfa.max_failures {
            crate::metrics::global().deny("totp");
            return Err(ApiError::Denied("totp_locked"));
        }
        let code = Zeroizing::new(b.code.unwrap_or_default());
        let ct =
            Ciphertext::from_text(&secret).map_err(|e| ApiError::internal("totp secret", &e))?;
        let totp = Totp::open_in(
            s.vault
                .checked(&t)
                .await
                .map_err(|e| ApiError::vault("%s", &e))?,
            &field(&t, "secret", &uid)?,
            &ct,
        )
        .await
        .map_err(|e| ApiError::vault("%s", &e))?;
        let last = row.last_step.and_then(|l| u64::try_from(l).ok());
        let step = match s.mfa.totp.verify(&totp, &code, last) {
            Ok(step) => i64::try_from(step).map_err(|e| ApiError::internal("totp step", &e))?,
            Err(_) => return Err(failed(&s, &ctx, &meta, &uid, "mfa.step_up_failed").await),
        };
        if !store::advance_step(&s.platform, tenant, &uid, step).await? {
            // A concurrent request accepted this step first: a replay.
            return Err(failed(&s, &ctx, &meta, &uid, "mfa.step_up_failed").await);
        }
        s.audit
            .append(
                meta.actor(&ctx)
                    .event(tenant, "mfa.step_up")?
                    .entity("user", &uid)
                    .subject(&uid),
            )
            .await?;
    }
    Ok(Json(stepped_up(&s, &ctx, id).await?).into_response())
}

/// A password change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

impl Validate for PasswordChange {
    fn validate(&self) -> Result<(), ApiError> {
        if self.current_password.is_empty() || self.current_password.len() > 1024 {
            return Err(ApiError::BadRequest("invalid_field"));
        }
        let n = self.new_password.chars().count();
        if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
            return Err(ApiError::BadRequest("invalid_password"));
        }
        if self.new_password == self.current_password {
            return Err(ApiError::BadRequest("password_unchanged"));
        }
        Ok(())
    }
}

/// `POST /t/{tenant}/me/password`: the current password (under the login
/// budget of the account) and a new one; lifts must-change-password and
/// answers a fresh session token.
pub(super) async fn change_password(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<PasswordChange>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::CHANGE_PASSWORD)?;
    let id = account(&ctx)?;
    let (tenant, uid) = (ctx.tenant(), id.to_string());
    let (email, role, hash) = store::account(&s.platform, tenant, id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    let account_key = format!("{tenant}/{email}");
    let decision = s
        .login_guard
        .begin(&account_key, meta.ip)
        .await
        .map_err(|e| ApiError::internal("login guard", &e))?;
    if let Some(resp) = login_refusal(&decision) {
        return Ok(resp);
    }
    let hasher = s.hasher.clone();
    let current = Zeroizing::new(b.current_password);
    let new = Zeroizing::new(b.new_password);
    let stored = hash.clone();
    let (ok, new_hash) = s
        .hash_gate
        .run(move || {
            let ok = hasher.verify(&current, &stored).is_ok_and(|v| v.is_valid());
            let new_hash = if ok { Some(hasher.hash(&new)) } else { None };
            (ok, new_hash)
        })
        .await?;
    let Some(Ok(new_hash)) = new_hash.filter(|_| ok) else {
        s.audit
            .append(
                meta.actor(&ctx)
                    .event(tenant, "auth.password_change_failed")?
                    .entity("user", &uid)
                    .subject(&uid),
            )
            .await?;
        return Err(ApiError::Denied("invalid_password"));
    };
    s.audit
        .append(
            meta.actor(&ctx)
                .event(tenant, "auth.password_change")?
                .entity("user", &uid)
                .subject(&uid),
        )
        .await?;
    if !store::change_password(&s.platform, tenant, id, &hash, &new_hash).await? {
        return Err(ApiError::Conflict("password_changed_concurrently"));
    }
    s.login_guard.record_success(&account_key).await;
    let facts = store::facts(&s.platform, tenant, id).await?;
    let amr: Vec<&str> = ctx.auth().amr().iter().map(String::as_str).collect();
    let session = SessionAuth {
        amr: &amr,
        mfa_time: ctx.auth().second_factor_time(),
        facts: Some(facts),
    };
    Ok(Json(auth::issue_session(&s, tenant, &uid, &role, &session)?).into_response())
}
