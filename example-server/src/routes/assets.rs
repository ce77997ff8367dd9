//! `/t/{tenant}/assets`: CRUD through tenant transactions (every statement
//! passes the query guard, which adds `tenant_id = <session tenant>`).

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

/// An asset.
#[derive(Debug, Serialize)]
pub(super) struct Asset {
    id: String,
    name: String,
    serial: String,
    location: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

const COLS: &str = "id, name, serial, location, created_by, created_at, updated_at";

fn asset(r: &Row) -> Result<Asset, sqlx::Error> {
    Ok(Asset {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        serial: r.try_get("serial")?,
        location: r.try_get("location")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// `GET /t/{tenant}/assets`: a page and the total count.
pub(super) async fn list(
    State(s): State<AppState>,
    ctx: Session,
    page: Page,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let mut tx = s.db.begin(&ctx).await?;
    let (rows, total) = page.fetch(&mut tx, "assets", COLS).await?;
    tx.commit().await?;
    let items = rows.iter().map(asset).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "items": items, "total": total })))
}

/// Load asset `id` in `tx` (`None`: missing or another tenant's, the same).
pub(super) async fn load(tx: &mut crate::db::Tx, id: Uuid) -> Result<Option<Asset>, ApiError> {
    let row = tx
        .query(&format!("SELECT {COLS} FROM assets WHERE id = ?"))?
        .bind(id.to_string())
        .fetch_optional()
        .await?;
    Ok(row.as_ref().map(asset).transpose()?)
}

/// `GET /t/{tenant}/assets/{id}`.
pub(super) async fn get_one(
    State(s): State<AppState>,
    ctx: Session,
    Ids(p): Ids<TenantPath>,
) -> Result<Json<Asset>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = parse_id(&p.id)?;
    // One statement: no transaction of its own to hold (see `TenantDb::once`).
    let row =
        s.db.once(&ctx, &format!("SELECT {COLS} FROM assets WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional()
            .await?;
    let a = row
        .as_ref()
        .map(asset)
        .transpose()?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(a))
}

/// New asset. `deny_unknown_fields`: a `tenant_id` or `id` in the body is a `400`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAsset {
    name: String,
    serial: String,
    location: String,
}

impl Validate for NewAsset {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.name, 200)?;
        text(&self.serial, 64)?;
        text(&self.location, 200)
    }
}

/// `POST /t/{tenant}/assets`.
pub(super) async fn create(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<NewAsset>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let id = Uuid::new_v4().to_string();
    let now = now_unix_i64();
    let mut tx = s.db.begin(&ctx).await?;
    tx.query("INSERT INTO assets (id, name, serial, location, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)")?
        .bind(id.clone())
        .bind(b.name.clone())
        .bind(b.serial.clone())
        .bind(b.location.clone())
        .bind(ctx.subject().to_owned())
        .bind(now)
        .bind(now)
        .execute()
        .await?;
    let event = meta
        .actor(&ctx)
        .event(ctx.tenant(), "asset.create")?
        .entity("asset", &id)
        .diff(&json!(b));
    s.audit.append(event).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id })).into_response(),
    )
        .into_response())
}

/// Asset update: only these fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssetPatch {
    name: Option<String>,
    location: Option<String>,
}

impl Validate for AssetPatch {
    fn validate(&self) -> Result<(), ApiError> {
        if self.name.is_none() && self.location.is_none() {
            return Err(ApiError::BadRequest("empty_patch"));
        }
        self.name.as_deref().map_or(Ok(()), |n| text(n, 200))?;
        self.location.as_deref().map_or(Ok(()), |l| text(l, 200))
    }
}

/// `PATCH /t/{tenant}/assets/{id}`: the diff is audited.
pub(super) async fn update(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<TenantPath>,
    Body(b): Body<AssetPatch>,
) -> Result<Json<Asset>, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let id = parse_id(&p.id)?;
    let mut tx = s.db.begin(&ctx).await?;
    let before = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    let name = b.name.unwrap_or_else(|| before.name.clone());
    let location = b.location.unwrap_or_else(|| before.location.clone());
    tx.query("UPDATE assets SET name = ?, location = ?, updated_at = ? WHERE id = ?")?
        .bind(name.clone())
        .bind(location.clone())
        .bind(now_unix_i64())
        .bind(id.to_string())
        .execute()
        .await?;
    let diff = json!({ "name": [before.name, name], "location": [before.location, location] });
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "asset.update")?
                .entity("asset", &id.to_string())
                .diff(&diff),
        )
        .await?;
    let after = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(after))
}

/// `DELETE /t/{tenant}/assets/{id}` (`409` while work orders or attachments refer to it).
pub(super) async fn remove(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<TenantPath>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let id = parse_id(&p.id)?;
    let mut tx = s.db.begin(&ctx).await?;
    let before = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    let n = tx
        .query("DELETE FROM assets WHERE id = ?")?
        .bind(id.to_string())
        .execute()
        .await?;
    if n != 1 {
        return Err(ApiError::NotFound);
    }
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "asset.delete")?
                .entity("asset", &id.to_string())
                .diff(&json!({ "name": before.name, "serial": before.serial })),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
