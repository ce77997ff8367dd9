//! Audit trail, data-subject report, export and erasure of a tenant.

use axum::Json;
use axum::extract::State;
use hisn_tenant_guard::Permission;
use serde::Deserialize;
use serde_json::json;

use super::extract::{Body, Ids, Meta, Page, Validate, require, require_step_up};
use super::grants::Session;
use crate::db::platform;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /t/{tenant}/audit?limit=&offset=` (admin): the tenant's chain, newest
/// last, with whether it verifies against the signed checkpoints: the
/// verdict over `verification.verified_size` records, whose whole-chain part
/// is `verification.full_verified_age_secs` old.
pub(super) async fn list(
    State(s): State<AppState>,
    ctx: Session,
    page: Page,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    let (limit, offset) = page.bounds();
    let tenant = ctx.tenant();
    let records = s
        .audit
        .records(
            tenant,
            u64::try_from(offset).unwrap_or(0),
            u64::try_from(limit).unwrap_or(50),
        )
        .await?;
    let total = s.audit.len(tenant).await?;
    // Bounded per call: the records appended since the last verification,
    // and the whole chain at most every HISN_AUDIT_FULL_VERIFY_SECS
    // (crate::audit::verified); the answer says what the verdict covers.
    let status = s.audit.chain_status(tenant).await?;
    let verdict = status.verdict;
    Ok(Json(json!({
        "items": records,
        "total": total,
        "verdict": format!("{verdict:?}"),
        "verification": status.to_json(s.audit.verified().full_every()),
    })))
}

/// Path of a subject report.
#[derive(Debug, Deserialize)]
pub(super) struct SubjectPath {
    #[allow(dead_code)] // checked by the TenantContext extractor
    tenant: String,
    id: String,
}

/// `GET /t/{tenant}/subjects/{id}/report` (admin): every audit record about
/// the data subject, each with its proof status; itself audited as an export.
pub(super) async fn subject_report(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<SubjectPath>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    if p.id.is_empty() || p.id.len() > 256 || p.id.chars().any(char::is_control) {
        return Err(ApiError::NotFound);
    }
    let report = s.audit.subject_report(ctx.tenant(), &p.id).await?;
    // Recorded before it is answered (no record, no report); appended after
    // the report was built, so the report does not contain its own request.
    let at = crate::audit::audit_tenant(ctx.tenant())?;
    let event = hisn_audit_log::Event::data_export(
        &at,
        ctx.subject(),
        "subject_report",
        &p.id,
        [p.id.as_str()],
    )
    .source_ip(meta.ip)
    .request_id(&meta.request_id);
    s.audit.append(event).await?;
    Ok(Json(report))
}

/// `GET /t/{tenant}/export` (admin): the tenant's assets and work orders; audited.
pub(super) async fn export(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    let mut tx = s.db.begin(&ctx).await?;
    let assets: Vec<String> = tx
        .query_scalar("SELECT id FROM assets ORDER BY id")?
        .fetch_all()
        .await?;
    let orders: Vec<String> = tx
        .query_scalar("SELECT id FROM work_orders ORDER BY id")?
        .fetch_all()
        .await?;
    let at = crate::audit::audit_tenant(ctx.tenant())?;
    let event = hisn_audit_log::Event::data_export(
        &at,
        ctx.subject(),
        "tenant_export",
        &ctx.tenant().to_string(),
        [],
    )
    .diff(&json!({ "assets": assets.len(), "work_orders": orders.len() }))
    .source_ip(meta.ip)
    .request_id(&meta.request_id);
    s.audit.append(event).await?;
    tx.commit().await?;
    Ok(Json(json!({ "assets": assets, "work_orders": orders })))
}

/// Erase confirmation: the tenant id, typed again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Erase {
    confirm: String,
}

impl Validate for Erase {
    fn validate(&self) -> Result<(), ApiError> {
        super::extract::text(&self.confirm, 64)
    }
}

/// `POST /t/{tenant}/erase` (owner): crypto-shred the tenant's keys (every
/// encrypted field and attachment becomes unreadable, backups included),
/// delete its rows, and close the tenant. The audit chain stays (it records the erasure).
pub(super) async fn erase(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<Erase>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_TENANT)?;
    require_step_up(&s, &ctx)?;
    if b.confirm != ctx.tenant().to_string() {
        return Err(ApiError::Unprocessable("confirmation_mismatch"));
    }
    let tenant = ctx.tenant();
    s.audit
        .append(
            meta.actor(&ctx)
                .event(tenant, "tenant.erase")?
                .entity("tenant", &tenant.to_string())
                .transition("active", "erased"),
        )
        .await?;
    s.vault
        .shred_tenant(&tenant.to_string())
        .await
        .map_err(|e| ApiError::internal("shred", &e))?;
    let mut tx = s.db.begin(&ctx).await?;
    let mut deleted = 0;
    for table in ["attachments", "work_orders", "integrations", "assets"] {
        deleted += tx.query(&format!("DELETE FROM {table}"))?.execute().await?;
    }
    tx.commit().await?;
    platform::mark_erased(&s.platform, tenant).await?;
    let dir = s.config.data_dir.join("files").join(tenant.to_string());
    let _ = tokio::fs::remove_dir_all(dir).await;
    Ok(Json(json!({ "erased": true, "rows_deleted": deleted })))
}
