//! Attachments: uploaded through a tenant route, encrypted with the tenant's
//! key (AAD: tenant, `attachments`, `content`, id) and stored in the
//! attachment's row (column `content`), downloaded through a signed URL
//! (crypto-vault `UrlSigner`: HMAC over method, path and expiry, 10 minutes).
//!
//! The bytes live in the database, not in a directory, so in PostgreSQL mode
//! an attachment uploaded through one instance downloads through any other,
//! under row-level security like every tenant row, and a tenant's erasure
//! deletes them with its rows. (A shared directory would need its own
//! sharing, backups and deletion; attachments are at most
//! [`MAX_ATTACHMENT`] bytes.) Attachments uploaded before migration 3 have no
//! `content` and are still read from `<data-dir>/files/<tenant>/<id>`.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hisn_crypto_vault::{Ciphertext, FieldContext};
use hisn_tenant_guard::{Permission, TenantId};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::extract::{Body, Ids, Meta, TenantPath, Validate, parse_id, require, text};
use super::grants::Session;
use crate::error::ApiError;
use crate::state::{AppState, now_unix, now_unix_i64};

/// Largest attachment, in bytes (decoded).
pub(super) const MAX_ATTACHMENT: usize = 32 * 1024;

/// Where an attachment uploaded before migration 3 was stored.
fn legacy_file_path(s: &AppState, tenant: TenantId, id: Uuid) -> PathBuf {
    s.config
        .data_dir
        .join("files")
        .join(tenant.to_string())
        .join(id.to_string())
}

fn signed_url(s: &AppState, tenant: TenantId, id: &str) -> Result<String, ApiError> {
    s.url_signer
        .sign("GET", &format!("/files/{tenant}/{id}"), now_unix())
        .map_err(|e| ApiError::internal("sign url", &e))
}

/// Upload body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Upload {
    file_name: String,
    content_base64: String,
}

impl Validate for Upload {
    fn validate(&self) -> Result<(), ApiError> {
        text(&self.file_name, 200)?;
        if self.file_name.contains(['/', '\\'])
            || self.content_base64.len() > MAX_ATTACHMENT.div_ceil(3) * 4
        {
            return Err(ApiError::BadRequest("invalid_field"));
        }
        Ok(())
    }
}

/// `POST /t/{tenant}/assets/{id}/attachments`: returns the id and a signed download URL.
pub(super) async fn upload(
    State(s): State<AppState>,
    ctx: Session,
    meta: Meta,
    Ids(p): Ids<TenantPath>,
    Body(b): Body<Upload>,
) -> Result<Response, ApiError> {
    require(&s, &ctx, &Permission::WRITE)?;
    let asset = parse_id(&p.id)?;
    let content = STANDARD
        .decode(&b.content_base64)
        .map_err(|_| ApiError::BadRequest("invalid_base64"))?;
    if content.is_empty() || content.len() > MAX_ATTACHMENT {
        return Err(ApiError::BadRequest("invalid_size"));
    }
    let mut tx = s.db.begin(&ctx).await?;
    super::assets::load(&mut tx, asset)
        .await?
        .ok_or(ApiError::NotFound)?;
    let id = Uuid::new_v4();
    let tenant = ctx.tenant();
    let tenant_s = tenant.to_string();
    let id_s = id.to_string();
    let fc = FieldContext::new(&tenant_s, "attachments", "content", &id_s)
        .map_err(|e| ApiError::internal("field context", &e))?;
    let ct = s
        .vault
        .encrypt(&fc, &content)
        .await
        .map_err(|e| ApiError::vault("%s", &e))?;
    let digest = hex::encode(Sha256::digest(&content));
    let size = i64::try_from(content.len()).unwrap_or(i64::MAX);
    tx.query("INSERT INTO attachments (id, asset_id, file_name, size, sha256, created_at, content) VALUES (?, ?, ?, ?, ?, ?, ?)")?
        .bind(id.to_string())
        .bind(asset.to_string())
        .bind(b.file_name.clone())
        .bind(size)
        .bind(digest.clone())
        .bind(now_unix_i64())
        .bind(ct.to_text())
        .execute()
        .await?;
    let diff =
        json!({ "asset_id": asset, "file_name": b.file_name, "size": size, "sha256": digest });
    s.audit
        .append(
            meta.actor(&ctx)
                .event(tenant, "attachment.create")?
                .entity("attachment", &id.to_string())
                .diff(&diff),
        )
        .await?;
    tx.commit().await?;
    let url = signed_url(&s, tenant, &id.to_string())?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "url": url }))).into_response())
}

/// `GET /t/{tenant}/attachments/{id}`: metadata and a fresh signed URL.
pub(super) async fn get_one(
    State(s): State<AppState>,
    ctx: Session,
    Ids(p): Ids<TenantPath>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let id = parse_id(&p.id)?;
    let mut tx = s.db.begin(&ctx).await?;
    let row = tx
        .query("SELECT id, asset_id, file_name, size, sha256, created_at FROM attachments WHERE id = ?")?
        .bind(id.to_string())
        .fetch_optional()
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    let url = signed_url(&s, ctx.tenant(), &id.to_string())?;
    Ok(Json(json!({
        "id": row.try_get::<String>("id").map_err(ApiError::from)?,
        "asset_id": row.try_get::<String>("asset_id").map_err(ApiError::from)?,
        "file_name": row.try_get::<String>("file_name").map_err(ApiError::from)?,
        "size": row.try_get::<i64>("size").map_err(ApiError::from)?,
        "sha256": row.try_get::<String>("sha256").map_err(ApiError::from)?,
        "url": url,
    })))
}

/// Path of a download.
#[derive(Debug, Deserialize)]
pub(super) struct FilePath {
    tenant: String,
    id: String,
}

/// `GET /files/{tenant}/{id}?expires=&sig=`: no session; the signature over
/// the exact path and expiry is the credential. Every failure is `404`.
///
/// The row is read in a tenant transaction like any other (query guard, and
/// RLS on PostgreSQL), as a read-only session of the URL's tenant that the
/// server issues to itself for this one read: the verified signature is what
/// vouches for the tenant.
pub(super) async fn download(
    State(s): State<AppState>,
    uri: Uri,
    Ids(p): Ids<FilePath>,
) -> Result<Response, ApiError> {
    let url = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("");
    if s.url_signer.verify("GET", url, now_unix()).is_err() {
        crate::metrics::global().deny("signed_url");
        return Err(ApiError::NotFound);
    }
    let tenant: TenantId = p.tenant.parse().map_err(|_| ApiError::NotFound)?;
    let id = parse_id(&p.id)?;
    let ctx = url_session(&s, tenant)?;
    let mut tx = s.db.begin(&ctx).await?;
    let row = tx
        .query("SELECT content FROM attachments WHERE id = ?")?
        .bind(id.to_string())
        .fetch_optional()
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    let text = match row.try_get::<Option<String>>("content")? {
        Some(t) => t,
        None => tokio::fs::read_to_string(legacy_file_path(&s, tenant, id))
            .await
            .map_err(|_| ApiError::NotFound)?,
    };
    let ct = Ciphertext::from_text(text.trim()).map_err(|_| ApiError::NotFound)?;
    let tenant_s = tenant.to_string();
    let id_s = id.to_string();
    let fc = FieldContext::new(&tenant_s, "attachments", "content", &id_s)
        .map_err(|_| ApiError::NotFound)?;
    // After crypto-shredding the key is gone: the bytes are noise, answered as missing.
    let plain = s
        .vault
        .decrypt(&fc, &ct)
        .await
        .map_err(|_| ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_DISPOSITION, "attachment"),
        ],
        plain.as_bytes().to_vec(),
    )
        .into_response())
}

/// Subject of the sessions a signed URL's download runs as.
const URL_SUBJECT: &str = "signed-url";

/// A one-minute read-only (`viewer`) session of `tenant`, issued and verified
/// like any other, for reading one row.
fn url_session(
    s: &AppState,
    tenant: TenantId,
) -> Result<hisn_tenant_guard::TenantContext, ApiError> {
    let auth = crate::auth::SessionAuth {
        amr: &["signed_url"],
        ..crate::auth::SessionAuth::default()
    };
    let issued = crate::auth::issue_with(
        &s.jwt_key,
        std::time::Duration::from_secs(60),
        tenant,
        URL_SUBJECT,
        "viewer",
        &auth,
    )?;
    s.verifier
        .verify(&issued.token)
        .map_err(|e| ApiError::internal("signed url session", &e))
}
