//! `/t/{tenant}/integrations`: a partner connection whose OAuth token and
//! password are encrypted with the tenant's data key (crypto-vault), bound to
//! tenant, table, column and row: copied to another row or tenant they do
//! not decrypt; after `POST /t/{tenant}/erase` they never decrypt again.

use crate::db::Row;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hisn_crypto_vault::{Ciphertext, FieldContext};
use hisn_tenant_guard::{Permission, TenantContext};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::extract::{
    Body, Ids, Meta, Page, TenantPath, Validate, parse_id, require, require_step_up, text,
};
use super::grants::Session;
use crate::error::ApiError;
use crate::outbound::OutboundError;
use crate::state::{AppState, now_unix_i64};

/// An integration as answered (secrets never leave the server; a hint shows
/// whether the stored token still decrypts).
#[derive(Debug, Serialize)]
pub(super) struct Integration {
    id: String,
    name: String,
    base_url: String,
    username: String,
    created_at: i64,
    /// `last4:xxxx` while the token decrypts, `unreadable` after crypto-shredding.
    oauth_token_hint: String,
}

struct Stored {
    id: String,
    name: String,
    base_url: String,
    username: String,
    created_at: i64,
    oauth_token: String,
}

const COLS: &str = "id, name, base_url, username, oauth_token, created_at";

fn stored(r: &Row) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        base_url: r.try_get("base_url")?,
        username: r.try_get("username")?,
        created_at: r.try_get("created_at")?,
        oauth_token: r.try_get("oauth_token")?,
    })
}

/// Decrypt column `column` of integration `id` of `ctx`'s tenant.
async fn decrypt(
    s: &AppState,
    ctx: &TenantContext,
    id: &str,
    column: &str,
    text: &str,
) -> Option<Zeroizing<Vec<u8>>> {
    let tenant = ctx.tenant().to_string();
    let fc = FieldContext::new(&tenant, "integrations", column, id).ok()?;
    let ct = Ciphertext::from_text(text).ok()?;
    s.vault
        .decrypt(&fc, &ct)
        .await
        .ok()
        .map(hisn_crypto_vault::Plaintext::into_zeroizing)
}

async fn view(s: &AppState, ctx: &TenantContext, st: Stored) -> Integration {
    let hint = match decrypt(s, ctx, &st.id, "oauth_token", &st.oauth_token).await {
        Some(p) => {
            let tail: String = String::from_utf8_lossy(&p)
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("last4:{tail}")
        }
        None => "unreadable".to_owned(),
    };
    Integration {
        id: st.id,
        name: st.name,
        base_url: st.base_url,
        username: st.username,
        created_at: st.created_at,
        oauth_token_hint: hint,
    }
}

/// `GET /t/{tenant}/integrations`.
pub(super) async fn list(
    State(s): State<AppState>,
    ctx: Session,
    page: Page,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let mut tx = s.db.begin(&ctx).await?;
    let (rows, total) = page.fetch(&mut tx, "integrations", COLS).await?;
    tx.commit().await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(view(&s, &ctx, stored(r)?).await);
    }
    Ok(Json(json!({ "items": items, "total": total })))
}

async fn load(tx: &mut crate::db::Tx, id: Uuid) -> Result<Option<Stored>, ApiError> {
    let row = tx
        .query(&format!("SELECT {COLS} FROM integrations WHERE id = ?"))?
        .bind(id.to_string())
        .fetch_optional()
        .await?;
    Ok(row.as_ref().map(stored).transpose()?)
}

/// `GET /t/{tenant}/integrations/{id}`.
pub(super) async fn get_one(
    State(s): State<AppState>,
    ctx: Session,
    Ids(p): Ids<TenantPath>,
) -> Result<Json<Integration>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = parse_id(&p.id)?;
    let mut tx = s.db.begin(&ctx).await?;
    let st = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(view(&s, &ctx, st).await))
}

/// New integration; secrets are encrypted before they reach the database.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewIntegration {
    name: String,
    base_url: String,
    username: String,
    oauth_token: String,
    password: String,
}

impl Validate for NewIntegration {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.name, 100)?;
        text(&self.base_url, 500)?;
        if !self.base_url.starts_with("https://") {
            return Err(ApiError::BadRequest("invalid_base_url"));
        }
        text(&self.username, 200)?;
        text(&self.oauth_token, 4096)?;
        text(&self.password, 1024)
    }
}

/// `POST /t/{tenant}/integrations` (admin).
pub(super) async fn create(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Body(b): Body<NewIntegration>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::MANAGE_MEMBERS)?;
    require_step_up(&s, &ctx)?;
    let id = Uuid::new_v4().to_string();
    let tenant = ctx.tenant().to_string();
    let token = Zeroizing::new(b.oauth_token);
    let password = Zeroizing::new(b.password);
    let enc = |column: &'static str, value: &[u8]| {
        let (s, tenant, id) = (s.clone(), tenant.clone(), id.clone());
        let value = Zeroizing::new(value.to_vec());
        async move {
            let fc = FieldContext::new(&tenant, "integrations", column, &id)
                .map_err(|e| ApiError::internal("field context", &e))?;
            s.vault
                .encrypt(&fc, &value)
                .await
                .map(|c| c.to_text())
                .map_err(|e| ApiError::vault("%s", &e))
        }
    };
    let token_ct = enc("oauth_token", token.as_bytes()).await?;
    let password_ct = enc("password", password.as_bytes()).await?;
    let mut tx = s.db.begin(&ctx).await?;
    tx.query("INSERT INTO integrations (id, name, base_url, username, oauth_token, password, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")?
        .bind(id.clone())
        .bind(b.name.clone())
        .bind(b.base_url.clone())
        .bind(b.username.clone())
        .bind(token_ct)
        .bind(password_ct)
        .bind(now_unix_i64())
        .execute()
        .await?;
    let diff = json!({ "name": b.name, "base_url": b.base_url, "username": b.username, "secrets": "encrypted" });
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "integration.create")?
                .entity("integration", &id)
                .diff(&diff),
        )
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `POST /t/{tenant}/integrations/{id}/sync`: call the partner with the
/// decrypted token, behind the circuit breaker (`503` while it is open).
pub(super) async fn sync(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<TenantPath>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let id = parse_id(&p.id)?;
    let mut tx = s.db.begin(&ctx).await?;
    let st = load(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    let token = decrypt(&s, &ctx, &st.id, "oauth_token", &st.oauth_token)
        .await
        .ok_or(ApiError::Conflict("secret_unreadable"))?;
    let outcome = s
        .partner
        .sync(&ctx.tenant().to_string(), &st.base_url, &token)
        .await;
    let status = match &outcome {
        Ok(_) => "ok",
        Err(OutboundError::CircuitOpen) => "circuit_open",
        Err(_) => "failed",
    };
    s.audit
        .append(
            meta.actor(&ctx)
                .event(ctx.tenant(), "integration.sync")?
                .entity("integration", &st.id)
                .diff(&json!({ "outcome": status })),
        )
        .await?;
    match outcome {
        Ok(v) => Ok(Json(json!({ "status": "ok", "partner": v }))),
        Err(OutboundError::CircuitOpen) => Err(ApiError::Unavailable),
        Err(_) => Err(ApiError::Unavailable),
    }
}
