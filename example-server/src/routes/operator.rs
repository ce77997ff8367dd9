//! The operator console: the only route that reads across the tenant
//! boundary, through tenant-guard's audited escape hatch. Every use needs the
//! operator token and an `X-Reason`, and is appended to the *target tenant's*
//! audit chain before the connection is handed out (no record, no access).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use hisn_tenant_guard::TenantId;
use hisn_tenant_guard::db::{AuditFuture, UnscopedAccess, UnscopedAuditHook};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::extract::{Ids, Meta};
use crate::audit::{Actor, Audit};
use crate::error::ApiError;
use crate::state::AppState;

/// Writes each escape-hatch use to the target tenant's audit chain.
#[derive(Debug, Clone)]
pub struct EscapeHatchAudit {
    audit: Audit,
}

impl EscapeHatchAudit {
    /// Over `audit`.
    pub fn new(audit: Audit) -> Self {
        Self { audit }
    }
}

impl UnscopedAuditHook for EscapeHatchAudit {
    fn record<'a>(&'a self, access: UnscopedAccess<'a>) -> AuditFuture<'a> {
        Box::pin(async move {
            let Some(tenant) = access.target_tenant else {
                return Err("cross-tenant access is not offered by this console".into());
            };
            let (actor, ip, request_id) = parse_actor(access.actor);
            let at = crate::audit::audit_tenant(tenant).map_err(|_| "tenant id")?;
            let mut event =
                hisn_audit_log::Event::escape_hatch(&at, actor, access.admin, access.reason);
            if let Some(ip) = ip {
                event = event.source_ip(ip);
            }
            if let Some(id) = request_id {
                event = event.request_id(id);
            }
            self.audit
                .append(event)
                .await
                .map_err(|_| "audit append failed")?;
            crate::metrics::global().escape_hatch();
            Ok(())
        })
    }
}

/// The hook's actor string carries `operator|<ip>|<request id>` (the hook
/// trait passes only an actor and a reason).
fn actor_string(a: &Actor) -> String {
    format!("{}|{}|{}", a.actor, a.ip, a.request_id)
}

fn parse_actor(s: &str) -> (&str, Option<std::net::IpAddr>, Option<&str>) {
    let mut it = s.splitn(3, '|');
    let actor = it.next().unwrap_or("operator");
    let ip = it.next().and_then(|i| i.parse().ok());
    (actor, ip, it.next())
}

/// The operator console token (constant-time compared), else `401`.
pub(super) fn check_operator(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Never "" == "": the key file refuses a short token, and so does this.
    if token.is_empty()
        || s.operator_token.is_empty()
        || !bool::from(token.as_bytes().ct_eq(s.operator_token.as_bytes()))
    {
        crate::metrics::global().deny("operator");
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

/// Path of the summary.
#[derive(Debug, Deserialize)]
pub(super) struct OperatorPath {
    tenant: String,
}

/// `GET /operator/tenants/{tenant}/summary`: row counts of one tenant.
pub(super) async fn summary(
    State(s): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    Ids(p): Ids<OperatorPath>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_operator(&s, &headers)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|r| r.len() >= 8)
        .ok_or(ApiError::BadRequest("reason_required"))?
        .to_owned();
    let tenant: TenantId = p.tenant.parse().map_err(|_| ApiError::NotFound)?;
    if !crate::db::platform::tenant_active(&s.platform, tenant).await? {
        return Err(ApiError::NotFound);
    }
    let actor = actor_string(&meta.actor_named("operator"));
    let Some(rows) = s.admin.tenant_counts(tenant, &actor, &reason).await? else {
        // PostgreSQL without HISN_ADMIN_DATABASE_URL: no role may read across tenants.
        return Err(ApiError::Unavailable);
    };
    let mut counts = serde_json::Map::new();
    for (table, n) in rows {
        counts.insert(table.to_owned(), json!(n));
    }
    Ok(Json(
        json!({ "tenant": tenant.to_string(), "counts": counts }),
    ))
}
