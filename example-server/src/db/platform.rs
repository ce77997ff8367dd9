//! Platform tables: tenants (billing state), accounts (credentials and roles)
//! and API keys. They belong to the identity provider, which must find an
//! account *before* any tenant context exists, so they are not behind the
//! query guard; instead every function here takes the tenant explicitly and
//! no handler writes SQL against these tables.

use hisn_tenant_guard::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::{Platform, PlatformTx, Row, Stmt};
use crate::state::now_unix_i64;

/// An account (a tenant's user) as the login needs it.
#[derive(Clone)]
pub struct Account {
    /// User id.
    pub id: Uuid,
    /// E-mail (login name), lower-cased.
    pub email: String,
    /// PHC password hash.
    pub password_hash: String,
    /// Role name.
    pub role: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// An account as listed to tenant admins (no hash).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// User id.
    pub id: Uuid,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: String,
    /// Created (Unix seconds).
    pub created_at: i64,
}

fn uuid(row: &Row, col: &str) -> Result<Uuid, sqlx::Error> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Create a tenant.
pub async fn create_tenant(
    tx: &mut PlatformTx,
    id: TenantId,
    name: &str,
) -> Result<(), sqlx::Error> {
    tx.execute(
        Stmt::new("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(now_unix_i64()),
    )
    .await?;
    Ok(())
}

/// Whether `tenant` exists and is not erased.
pub async fn tenant_active(db: &Platform, tenant: TenantId) -> Result<bool, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new("SELECT erased_at FROM tenants WHERE id = ?").bind(tenant.to_string()),
        )
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>>("erased_at")?.is_none(),
        None => false,
    })
}

/// Mark `tenant` erased (its keys are shredded).
pub async fn mark_erased(db: &Platform, tenant: TenantId) -> Result<(), sqlx::Error> {
    db.execute(
        Stmt::new("UPDATE tenants SET erased_at = ? WHERE id = ?")
            .bind(now_unix_i64())
            .bind(tenant.to_string()),
    )
    .await?;
    Ok(())
}

fn plan_status(r: &Row) -> Result<(String, String), sqlx::Error> {
    Ok((r.try_get("plan")?, r.try_get("subscription_status")?))
}

/// The subscription of `tenant`: `(plan, status)`.
pub async fn subscription(
    db: &Platform,
    tenant: TenantId,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new("SELECT plan, subscription_status FROM tenants WHERE id = ?")
                .bind(tenant.to_string()),
        )
        .await?;
    row.as_ref().map(plan_status).transpose()
}

/// What [`set_subscription_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The change was made; the `(plan, status)` before it.
    Now((String, String)),
    /// A delivery with this key was applied before: nothing changed.
    Before,
    /// No such tenant: nothing changed, nothing recorded.
    NoTenant,
}

/// Set the subscription of `tenant` for the webhook delivery `event_key`,
/// at most once per key: the key is recorded in the same transaction as the
/// change, so a delivery processed again (its replay marker lost) changes
/// nothing.
pub async fn set_subscription_once(
    db: &Platform,
    tenant: TenantId,
    plan: &str,
    status: &str,
    event_key: &str,
) -> Result<Applied, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row = tx
        .fetch_optional(
            Stmt::new("SELECT plan, subscription_status FROM tenants WHERE id = ?")
                .bind(tenant.to_string()),
        )
        .await?;
    let Some(row) = row else {
        return Ok(Applied::NoTenant);
    };
    let before = plan_status(&row)?;
    let recorded = tx
        .execute(
            Stmt::new(
                "INSERT INTO webhook_events (event_key, tenant_id) VALUES (?, ?) \
                 ON CONFLICT (event_key) DO NOTHING",
            )
            .bind(event_key)
            .bind(tenant.to_string()),
        )
        .await?;
    if recorded == 0 {
        return Ok(Applied::Before);
    }
    tx.execute(
        Stmt::new("UPDATE tenants SET plan = ?, subscription_status = ? WHERE id = ?")
            .bind(plan)
            .bind(status)
            .bind(tenant.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(Applied::Now(before))
}

/// Insert an account.
pub async fn insert_account(
    tx: &mut PlatformTx,
    tenant: TenantId,
    id: Uuid,
    email: &str,
    password_hash: &str,
    role: &str,
) -> Result<(), sqlx::Error> {
    tx.execute(
        Stmt::new(
            "INSERT INTO accounts (tenant_id, id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .bind(email)
        .bind(password_hash)
        .bind(role)
        .bind(now_unix_i64()),
    )
    .await?;
    Ok(())
}

/// The account of `email` in an active `tenant`.
pub async fn find_account(
    db: &Platform,
    tenant: TenantId,
    email: &str,
) -> Result<Option<Account>, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new(
                "SELECT a.id, a.email, a.password_hash, a.role FROM accounts a JOIN tenants t ON t.id = a.tenant_id \
                 WHERE a.tenant_id = ? AND a.email = ? AND t.erased_at IS NULL",
            )
            .bind(tenant.to_string())
            .bind(email),
        )
        .await?;
    row.map(|r| {
        Ok(Account {
            id: uuid(&r, "id")?,
            email: r.try_get("email")?,
            password_hash: r.try_get("password_hash")?,
            role: r.try_get("role")?,
        })
    })
    .transpose()
}

/// Replace the password hash of an account (rehash on login).
pub async fn set_password_hash(
    db: &Platform,
    tenant: TenantId,
    id: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    db.execute(
        Stmt::new("UPDATE accounts SET password_hash = ? WHERE tenant_id = ? AND id = ?")
            .bind(hash)
            .bind(tenant.to_string())
            .bind(id.to_string()),
    )
    .await?;
    Ok(())
}

/// The members of `tenant`.
pub async fn members(db: &Platform, tenant: TenantId) -> Result<Vec<Member>, sqlx::Error> {
    let rows = db
        .fetch_all(
            Stmt::new("SELECT id, email, role, created_at FROM accounts WHERE tenant_id = ? ORDER BY created_at, id")
                .bind(tenant.to_string()),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                id: uuid(r, "id")?,
                email: r.try_get("email")?,
                role: r.try_get("role")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The role of member `id` of `tenant`.
pub async fn member_role(
    db: &Platform,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new("SELECT role FROM accounts WHERE tenant_id = ? AND id = ?")
                .bind(tenant.to_string())
                .bind(id.to_string()),
        )
        .await?;
    row.map(|r| r.try_get("role")).transpose()
}

/// Set the role of member `id` of `tenant`.
pub async fn set_member_role(
    db: &Platform,
    tenant: TenantId,
    id: Uuid,
    role: &str,
) -> Result<u64, sqlx::Error> {
    db.execute(
        Stmt::new("UPDATE accounts SET role = ? WHERE tenant_id = ? AND id = ?")
            .bind(role)
            .bind(tenant.to_string())
            .bind(id.to_string()),
    )
    .await
}

/// A stored API key.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRow {
    /// Public id (also in the token).
    pub id: String,
    /// Label.
    pub name: String,
    /// Role the key acts with.
    pub role: String,
    /// Expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Revoked.
    pub revoked: bool,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Owning tenant.
    #[serde(skip)]
    pub tenant: String,
    /// Keyed hash of the token.
    #[serde(skip)]
    pub hash: Vec<u8>,
}

fn api_key_row(r: &Row) -> Result<ApiKeyRow, sqlx::Error> {
    Ok(ApiKeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        expires_at: r.try_get("expires_at")?,
        revoked: r.try_get::<i64>("revoked")? != 0,
        created_at: r.try_get("created_at")?,
        tenant: r.try_get("tenant_id")?,
        hash: r.try_get("hash")?,
    })
}

const API_KEY_COLS: &str = "tenant_id, id, name, hash, role, expires_at, revoked, created_at";

/// Store a new API key of `tenant`.
#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
pub async fn insert_api_key(
    db: &Platform,
    tenant: TenantId,
    id: &str,
    name: &str,
    hash: &[u8],
    role: &str,
    created_by: &str,
    expires_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    db.execute(
        Stmt::new(
            "INSERT INTO api_keys (tenant_id, id, name, hash, role, created_by, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.to_string())
        .bind(id)
        .bind(name)
        .bind(hash)
        .bind(role)
        .bind(created_by)
        .bind(expires_at)
        .bind(now_unix_i64()),
    )
    .await?;
    Ok(())
}

/// The API keys of `tenant`.
pub async fn api_keys(db: &Platform, tenant: TenantId) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    let rows = db
        .fetch_all(
            Stmt::new(format!(
                "SELECT {API_KEY_COLS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id"
            ))
            .bind(tenant.to_string()),
        )
        .await?;
    rows.iter().map(api_key_row).collect()
}

/// The API key with public id `id`, whatever its tenant (the token names no
/// tenant; the row does).
pub async fn api_key_by_id(db: &Platform, id: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new(format!("SELECT {API_KEY_COLS} FROM api_keys WHERE id = ?")).bind(id),
        )
        .await?;
    row.as_ref().map(api_key_row).transpose()
}

/// Revoke API key `id` of `tenant`; whether one was revoked.
pub async fn revoke_api_key(
    db: &Platform,
    tenant: TenantId,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let n = db
        .execute(
            Stmt::new(
                "UPDATE api_keys SET revoked = 1 WHERE tenant_id = ? AND id = ? AND revoked = 0",
            )
            .bind(tenant.to_string())
            .bind(id),
        )
        .await?;
    Ok(n == 1)
}
