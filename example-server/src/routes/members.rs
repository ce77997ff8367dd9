//! Members (accounts) and API keys of a tenant: admin routes over the
//! platform tables, each query naming the session's tenant.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hisn_tenant_guard::{Permission, Role, TenantContext, TenantId};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{
    Body, Ids, Meta, TenantPath, Validate, parse_id, require, require_step_up, text,
};
use super::grants::Session;
use super::public::credentials;
use crate::db::platform;
use crate::error::ApiError;
use crate::state::{AppState, now_unix};

/// Roles an admin may hand out (`owner` only by an owner).
const ROLES: &[&str] = &["owner", "admin", "member", "viewer"];

fn check_role(s: &AppState, ctx: &TenantContext, role: &str) -> Result<(), ApiError> {
    if !ROLES.contains(&role) {
        return Err(ApiError::BadRequest("invalid_role"));
    }
    if role == "owner" && !ctx.roles().contains(&Role::OWNER) {
        return Err(ApiError::Forbidden);
    }
    let _ = s;
    Ok(())
}

/// `GET /t/{tenant}/members` (admin).
pub(super) async fn list(
    State(s): State<AppState>,
    ctx: Session,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    let items = platform::members(&s.platform, ctx.tenant()).await?;
    let total = items.len();
    Ok(Json(json!({ "items": items, "total": total })))
}

/// New member.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMember {
    email: String,
    password: String,
    role: String,
}

impl Validate for NewMember {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.role, 16)?;
        credentials(&self.email, &self.password).map(|_| ())
    }
}

/// `POST /t/{tenant}/members` (admin).
pub(super) async fn create(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<NewMember>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    check_role(&s, &ctx, &b.role)?;
    let email = credentials(&b.email, &b.password)?;
    let hasher = s.hasher.clone();
    let password = zeroize::Zeroizing::new(b.password);
    let hash = s
        .hash_gate
        .run(move || hasher.hash(&password))
        .await?
        .map_err(|e| ApiError::internal("hash", &e))?;
    let id = Uuid::new_v4();
    let mut tx = s.platform.begin().await?;
    platform::insert_account(&mut tx, ctx.tenant(), id, &email, &hash, &b.role).await?;
    // The admin chose this password: the member replaces it at first sign-in.
    crate::db::mfa::require_password_change(&mut tx, ctx.tenant(), id).await?;
    let uid = id.to_string();
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "member.create")?
                .entity("user", &uid)
                .subject(&uid)
                .transition("none", &b.role),
        )
        .await?;
    tx.commit().await?;
    // The e-mail is personal data: the log writer redacts it (pii-redact).
    tracing::info!(target: "hisn::example_server", member_email = %email, role = %b.role, "member created");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// Role change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleChange {
    role: String,
}

impl Validate for RoleChange {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.role, 16)
    }
}

/// `PATCH /t/{tenant}/members/{id}/role` (admin): audited as a role change.
pub(super) async fn set_role(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<TenantPath>,
    Body(b): Body<RoleChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    check_role(&s, &ctx, &b.role)?;
    let id = parse_id(&p.id)?;
    let before = platform::member_role(&s.platform, ctx.tenant(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if before == "owner" && !ctx.roles().contains(&Role::OWNER) {
        return Err(ApiError::Forbidden);
    }
    let audit_tenant = crate::audit::audit_tenant(ctx.tenant())?;
    let event = hisn_audit_log::Event::role_change(
        &audit_tenant,
        ctx.subject(),
        &id.to_string(),
        &before,
        &b.role,
    )
    .source_ip(meta.ip)
    .request_id(&meta.request_id);
    s.audit.append(event).await?;
    if platform::set_member_role(&s.platform, ctx.tenant(), id, &b.role).await? != 1 {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({ "id": id, "role": b.role })))
}

/// `GET /t/{tenant}/api-keys` (admin): no secrets.
pub(super) async fn list_keys(
    State(s): State<AppState>,
    ctx: Session,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    let items = platform::api_keys(&s.platform, ctx.tenant()).await?;
    let total = items.len();
    Ok(Json(json!({ "items": items, "total": total })))
}

/// New API key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    name: String,
    role: String,
    ttl_days: Option<u32>,
}

impl Validate for NewKey {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.name, 100)?;
        if !matches!(self.role.as_str(), "member" | "viewer") {
            return Err(ApiError::BadRequest("invalid_role"));
        }
        if self.ttl_days.is_some_and(|d| d == 0 || d > 365) {
            return Err(ApiError::BadRequest("invalid_ttl"));
        }
        Ok(())
    }
}

/// The owner an API key record is bound to (crypto-vault's `mint_for` /
/// `verify_for`): its tenant and table. The stored hash covers the token
/// (whose public id names the row), this owner, the role (the key's one
/// scope) and the expiry, so a record moved to another tenant, or whose role
/// or expiry was edited in the database, no longer verifies.
pub(super) fn key_owner(tenant: TenantId) -> String {
    format!("{tenant}/api_keys")
}

/// `POST /t/{tenant}/api-keys` (admin): the token is shown once; only its
/// peppered hash (bound to tenant, role and expiry) is stored.
pub(super) async fn create_key(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<NewKey>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    let expires = now_unix() + u64::from(b.ttl_days.unwrap_or(90)) * 86_400;
    let (token, record) = s
        .api_keys
        .mint_for(&key_owner(ctx.tenant()), [b.role.clone()], Some(expires))
        .map_err(|e| ApiError::internal("mint api key", &e))?;
    platform::insert_api_key(
        &s.platform,
        ctx.tenant(),
        &record.id,
        &b.name,
        &record.hash,
        &b.role,
        ctx.subject(),
        i64::try_from(expires).ok(),
    )
    .await?;
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "api_key.create")?
                .entity("api_key", &record.id)
                .diff(&json!({ "name": b.name, "role": b.role, "expires_at": expires })),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": record.id, "api_key": token.expose_secret(), "expires_at": expires })),
    )
        .into_response())
}

/// Path of one API key (`{id}` is the key's public id, not a UUID).
#[derive(Debug, Deserialize)]
pub(super) struct KeyPath {
    #[allow(dead_code)] // checked by the TenantContext extractor
    tenant: String,
    id: String,
}

/// `DELETE /t/{tenant}/api-keys/{id}` (admin).
pub(super) async fn revoke_key(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<KeyPath>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    if p.id.len() > 64 || !p.id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound);
    }
    if !platform::revoke_api_key(&s.platform, ctx.tenant(), &p.id).await? {
        return Err(ApiError::NotFound);
    }
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "api_key.revoke")?
                .entity("api_key", &p.id),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
