//! Break-glass support grants instead of impersonation, and the [`Session`]
//! every tenant route extracts.
//!
//! The operator console issues a grant (`POST
//! /operator/tenants/{tenant}/grants`: support user, reason, ticket, at most
//! 24 h, read-only unless it lists permissions), signed with the console's
//! Ed25519 key, recorded in `support_grants` and in the tenant's audit chain.
//! The support user sends it as the bearer token on the tenant's ordinary
//! routes: the [`Session`] extractor verifies it (public key only), refuses
//! another tenant (`404`), a revoked or expired grant (`401`), appends the use
//! to the tenant's audit chain and records a notification for the tenant's
//! admins (either failing: `503`, no access). The session's context has no
//! roles: `require` allows exactly the grant's permissions (a write under a
//! read-only grant is `403`), the query guard scopes every statement to the
//! grant's tenant, and the password change and TOTP routes refuse grant
//! sessions. No route turns a grant into the customer's own session.

use std::ops::Deref;

use axum::Json;
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hisn_tenant_guard::axum::TenantRejection;
use hisn_tenant_guard::grant::{GRANT_TYP, GrantAccess, GrantRequest};
use hisn_tenant_guard::{MfaStatus, Permission, TenantContext, TenantId};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Body, Ids, Meta, Page, Validate, require, text};
use crate::db::mfa::{self as store, GrantRow};
use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a tenant route: a session token of the tenant (with the
/// account's MFA facts attached) or a support grant for the tenant.
#[derive(Debug, Clone)]
pub struct Session(pub TenantContext);

impl Deref for Session {
    type Target = TenantContext;
    fn deref(&self) -> &TenantContext {
        &self.0
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `token` declares itself a grant. Only the dispatch: the grant
/// verifier checks the type again with the signature, and the access-token
/// verifier refuses grants.
fn is_grant(token: &str) -> bool {
    hisn_tenant_guard::jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.typ)
        .is_some_and(|t| t == GRANT_TYP)
}

/// The account facts the token carries (signed by this server at sign-in),
/// for tenant-guard's enrolment rule. A token without them (API keys) gets
/// none: an admin role without them is treated as past its grace period.
fn with_facts(ctx: TenantContext) -> TenantContext {
    let first = ctx
        .claim("hisn_first_sign_in")
        .and_then(serde_json::Value::as_u64);
    let enrolled = ctx
        .claim("hisn_mfa_enrolled")
        .and_then(serde_json::Value::as_bool);
    match (first, enrolled) {
        (Some(f), Some(e)) => ctx.with_mfa_status(MfaStatus::new(f, e)),
        _ => ctx,
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let session = Self::open(parts, s).await?;
        // Session tokens are stateless: one issued before the tenant was
        // erased still verifies until its `exp`. A write must not recreate
        // rows in an erased tenant (nothing would erase them again), so a
        // state-changing request checks the tenant first (one indexed read;
        // reads of an erased tenant find nothing) and answers an erased
        // tenant like a missing one.
        if !parts.method.is_safe() {
            match crate::db::platform::tenant_active(&s.platform, session.tenant()).await {
                Ok(true) => {}
                Ok(false) => {
                    crate::metrics::global().deny("erased_tenant");
                    return Err(ApiError::NotFound.into_response());
                }
                Err(e) => return Err(ApiError::from(e).into_response()),
            }
        }
        Ok(session)
    }
}

impl Session {
    /// The session of the request (a verified session token, a support
    /// grant opened for the path's tenant, or tenant-guard's extractor).
    async fn open(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        if let Some(verified) = super::extract::verified_session(parts, s).await {
            return verified.map(|ctx| Self(with_facts(ctx)));
        }
        let grant = bearer(parts).filter(|t| is_grant(t)).map(str::to_owned);
        let Some(token) = grant else {
            let ctx = TenantContext::from_request_parts(parts, s)
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(Self(with_facts(ctx)));
        };
        let params = RawPathParams::from_request_parts(parts, s)
            .await
            .map_err(|_| TenantRejection::NotFound.into_response())?;
        let tenant = params
            .iter()
            .find(|(k, _)| *k == "tenant")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| TenantRejection::NotFound.into_response())?;
        let meta = Meta::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        // Our fields first: the hook cuts long labels at the end, so a long
        // path cannot push out (or forge) the IP and request id.
        let action = format!(
            "{}|{}|{} {}",
            meta.ip,
            meta.request_id,
            parts.method,
            parts.uri.path()
        );
        match s.mfa.verifier.open(&token, &tenant, &action).await {
            Ok(session) => Ok(Self(session.into_context())),
            Err(e) => {
                crate::metrics::global().deny("grant");
                Err(match e {
                    hisn_tenant_guard::Error::NotFound => TenantRejection::NotFound,
                    hisn_tenant_guard::Error::GrantHook => TenantRejection::Unavailable,
                    _ => TenantRejection::Unauthorized,
                }
                .into_response())
            }
        }
    }
}

/// Split the hook's action label back into `(ip, request id, action)`.
pub(crate) fn parse_action(label: &str) -> (Option<std::net::IpAddr>, Option<&str>, &str) {
    let mut it = label.splitn(3, '|');
    let ip = it.next().and_then(|i| i.parse().ok());
    let request_id = it.next();
    (ip, request_id, it.next().unwrap_or(label))
}

/// A grant request from the operator console.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewGrant {
    support_user: String,
    reason: String,
    ticket: String,
    ttl_secs: u64,
    /// Absent: read-only.
    permissions: Option<Vec<String>>,
}

impl Validate for NewGrant {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.support_user, 128)?;
        if self.reason.trim().chars().count() < 8 {
            return Err(ApiError::BadRequest("reason_required"));
        }
        text(&self.reason, 1024)?;
        text(&self.ticket, 128)?;
        if self.ttl_secs == 0 || self.ttl_secs > hisn_tenant_guard::grant::MAX_GRANT_LIFETIME_SECS {
            return Err(ApiError::BadRequest("invalid_ttl"));
        }
        if let Some(p) = &self.permissions
            && (p.is_empty() || p.len() > 16 || p.iter().any(|x| text(x, 64).is_err()))
        {
            return Err(ApiError::BadRequest("invalid_permissions"));
        }
        Ok(())
    }
}

/// Path of a tenant in the console.
#[derive(Debug, Deserialize)]
pub(super) struct ConsoleTenant {
    tenant: String,
}

/// Path of one grant in the console.
#[derive(Debug, Deserialize)]
pub(super) struct ConsoleGrant {
    tenant: String,
    id: String,
}

async fn console_tenant(
    s: &AppState,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<TenantId, ApiError> {
    super::operator::check_operator(s, headers)?;
    let tenant: TenantId = tenant.parse().map_err(|_| ApiError::NotFound)?;
    if !crate::db::platform::tenant_active(&s.platform, tenant).await? {
        return Err(ApiError::NotFound);
    }
    Ok(tenant)
}

/// `POST /operator/tenants/{tenant}/grants` (operator token): sign a grant
/// for one support user on one tenant; recorded and audited in the tenant's
/// chain before the token is handed out.
pub(super) async fn issue(
    State(s): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    Ids(p): Ids<ConsoleTenant>,
    Body(b): Body<NewGrant>,
) -> Result<Response, ApiError> {
    let tenant = console_tenant(&s, &headers, &p.tenant).await?;
    let mut request = GrantRequest::read_only(
        b.support_user.as_str(),
        tenant,
        b.reason.as_str(),
        b.ticket.as_str(),
        std::time::Duration::from_secs(b.ttl_secs),
    );
    if let Some(perms) = &b.permissions {
        let perms = perms
            .iter()
            .map(|x| Permission::new(x).map_err(|_| ApiError::BadRequest("invalid_permissions")))
            .collect::<Result<Vec<_>, _>>()?;
        request = request.permissions(perms);
    }
    let (grant, token) = s
        .mfa
        .signer
        .sign(&request)
        .map_err(|_| ApiError::BadRequest("invalid_grant"))?;
    let access = match grant.access() {
        GrantAccess::Permissions(set) => set
            .iter()
            .map(Permission::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => "read_only".to_owned(),
    };
    let row = GrantRow {
        id: grant.id().to_string(),
        support_user: grant.support_user().to_owned(),
        access,
        reason: grant.reason().to_owned(),
        ticket: grant.ticket().to_owned(),
        issued_at: i64::try_from(grant.issued_at()).unwrap_or(i64::MAX),
        expires_at: i64::try_from(grant.expires_at()).unwrap_or(i64::MAX),
        revoked_at: None,
    };
    s.audit
        .append(
            meta.actor_named("operator")
                .event(tenant, "grant.issue")?
                .entity("support_grant", &row.id)
                .subject(&row.support_user)
                .diff(&json!({ "support_user": row.support_user, "access": row.access, "reason": row.reason, "ticket": row.ticket, "expires_at": row.expires_at })),
        )
        .await?;
    store::insert_grant(&s.platform, tenant, &row).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "grant_id": row.id, "token": token, "tenant_id": tenant.to_string(), "access": row.access, "expires_at": row.expires_at })),
    )
        .into_response())
}

/// `DELETE /operator/tenants/{tenant}/grants/{id}` (operator token and an
/// `X-Reason`, audited): revoke; every later use is refused (`401`).
pub(super) async fn revoke(
    State(s): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    Ids(p): Ids<ConsoleGrant>,
) -> Result<Response, ApiError> {
    let tenant = console_tenant(&s, &headers, &p.tenant).await?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|r| r.chars().count() >= 8 && r.len() <= 1024)
        .ok_or(ApiError::BadRequest("reason_required"))?
        .to_owned();
    let id = super::extract::parse_id(&p.id)?.to_string();
    if !store::grant_live(&s.platform, tenant, &id).await? {
        return Err(ApiError::NotFound);
    }
    s.audit
        .append(
            meta.actor_named("operator")
                .event(tenant, "grant.revoke")?
                .entity("support_grant", &id)
                .diff(&json!({ "reason": reason })),
        )
        .await?;
    if !store::revoke_grant(&s.platform, tenant, &id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /t/{tenant}/notifications` (admin): what the tenant's admins were
/// told, such as every use of a support grant on their tenant.
pub(super) async fn notifications(
    State(s): State<AppState>,
    ctx: Session,
    page: Page,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    let (limit, offset) = page.bounds();
    let items = store::notifications(&s.platform, ctx.tenant(), limit, offset).await?;
    Ok(Json(json!({ "items": items })))
}
