//! `/t/{tenant}/work-orders`: work orders with state transitions, each
//! transition audited with its from and to state.

use crate::db::Row;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hisn_tenant_guard::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::extract::{Body, Ids, Meta, Page, TenantPath, Validate, parse_id, require, text};
use super::grants::Session;
use crate::error::ApiError;
use crate::state::{AppState, now_unix_i64};

/// Work-order states.
pub(super) const STATES: &[&str] = &["open", "in_progress", "on_hold", "done", "cancelled"];

/// Whether `from -> to` is an allowed transition.
pub(super) fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("open", "in_progress")
            | ("open", "cancelled")
            | ("in_progress", "on_hold")
            | ("in_progress", "done")
            | ("on_hold", "in_progress")
            | ("on_hold", "cancelled")
    )
}

#[derive(Debug, Serialize)]
pub(super) struct WorkOrder {
    id: String,
    asset_id: String,
    title: String,
    status: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

const COLS: &str = "id, asset_id, title, status, created_by, created_at, updated_at";

fn work_order(r: &Row) -> Result<WorkOrder, sqlx::Error> {
    Ok(WorkOrder {
        id: r.try_get("id")?,
        asset_id: r.try_get("asset_id")?,
        title: r.try_get("title")?,
        status: r.try_get("status")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn load(tx: &mut crate::db::Tx, id: Uuid) -> Result<Option<WorkOrder>, ApiError> {
    let row = tx
        .query(&format!("SELECT {COLS} FROM work_orders WHERE id = ?"))?
        .bind(id.to_string())
        .fetch_optional()
        .await?;
    Ok(row.as_ref().map(work_order).transpose()?)
}

/// `GET /t/{tenant}/work-orders`.
pub(super) async fn list(
    State(s): State<AppState>,
    ctx: Session,
    page: Page,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let mut tx = s.db.begin(&ctx).await?;
    let (rows, total) = page.fetch(&mut tx, "work_orders", COLS).await?;
    tx.commit().await?;
    let items = rows.iter().map(work_order).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "items": items, "total": total })))
}

/// `GET /t/{tenant}/work-orders/{id}`.
pub(super) async fn get_one(
    State(s): State<AppState>,
    ctx: Session,
    Ids(p): Ids<TenantPath>,
) -> Result<Json<WorkOrder>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = parse_id(&p.id)?;
    // One statement: no transaction of its own to hold (see `TenantDb::once`).
    let row =
        s.db.once(
            &ctx,
            &format!("SELECT {COLS} FROM work_orders WHERE id = ?"),
        )
        .bind(id.to_string())
        .fetch_optional()
        .await?;
    let w = row
        .as_ref()
        .map(work_order)
        .transpose()?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(w))
}

/// New work order for one of the tenant's assets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWorkOrder {
    asset_id: String,
    title: String,
}

impl Validate for NewWorkOrder {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.asset_id, 36)?;
        text(&self.title, 200)
    }
}

/// `POST /t/{tenant}/work-orders`: an `asset_id` that is not the tenant's is `404`.
pub(super) async fn create(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<NewWorkOrder>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let asset = parse_id(&b.asset_id)?;
    let id = Uuid::new_v4().to_string();
    let now = now_unix_i64();
    let mut tx = s.db.begin(&ctx).await?;
    super::assets::load(&mut tx, asset)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.query("INSERT INTO work_orders (id, asset_id, title, status, created_by, created_at, updated_at) VALUES (?, ?, ?, 'open', ?, ?, ?)")?
        .bind(id.clone())
        .bind(asset.to_string())
        .bind(b.title.clone())
        .bind(ctx.subject().to_owned())
        .bind(now)
        .bind(now)
        .execute()
        .await?;
    let event = meta
        .actor(&ctx)
        .event(ctx.tenant(), "work_order.create")?
        .entity("work_order", &id)
        .transition("none", "open")
        .diff(&json!({ "asset_id": asset, "title": b.title }));
    s.audit.append(event).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "status": "open" })),
    )
        .into_response())
}

/// A transition request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Transition {
    to: String,
}

impl Validate for Transition {
    fn validate(&self) -> Result<(), ApiError> {
        if STATES.contains(&self.to.as_str()) {
            Ok(())
        } else {
            Err(ApiError::BadRequest("invalid_state"))
        }
    }
}

/// `POST /t/{tenant}/work-orders/{id}/transition`: `422` for a transition the
/// state machine does not allow, `409` if the state changed concurrently.
pub(super) async fn transition(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<TenantPath>,
    Body(b): Body<Transition>,
) -> Result<Json<WorkOrder>, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let id = parse_id(&p.id)?;
    let mut tx = s.db.begin(&ctx).await?;
    let before = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    if !allowed(&before.status, &b.to) {
        return Err(ApiError::Unprocessable("transition_not_allowed"));
    }
    let n = tx
        .query("UPDATE work_orders SET status = ?, updated_at = ? WHERE id = ? AND status = ?")?
        .bind(b.to.clone())
        .bind(now_unix_i64())
        .bind(id.to_string())
        .bind(before.status.clone())
        .execute()
        .await?;
    if n != 1 {
        return Err(ApiError::Conflict("state_changed"));
    }
    let event = meta.actor(&ctx).transition(
        ctx.tenant(),
        "work_order",
        &id.to_string(),
        &before.status,
        &b.to,
    )?;
    s.audit.append(event).await?;
    let after = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine() {
        assert!(allowed("open", "in_progress"));
        assert!(allowed("in_progress", "done"));
        assert!(!allowed("done", "open"));
        assert!(!allowed("cancelled", "in_progress"));
        assert!(!allowed("open", "open"));
        for s in STATES {
            assert!(!allowed("done", s), "done is final");
        }
    }
}
