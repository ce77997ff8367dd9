//! Second-factor state, password state, support grants and admin
//! notifications: platform tables (see [`super::platform`]), every query
//! naming the tenant. The replay and single-use guarantees live in the SQL:
//! the last accepted TOTP step and the recovery-code set only change through
//! compare-and-set `UPDATE`s, so two requests (or two instances) racing with
//! one code cannot both succeed.

use hisn_tenant_guard::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::{Platform, PlatformTx, Stmt};

use crate::state::now_unix_i64;

/// What a session token states about an account's authentication.
#[derive(Debug, Clone, Copy)]
pub struct AccountFacts {
    /// The first successful sign-in (Unix seconds).
    pub first_sign_in: i64,
    /// TOTP enrolled (confirmed).
    pub enrolled: bool,
    /// The password must be changed before anything else.
    pub must_change_password: bool,
}

/// Record a sign-in of account `id` (the first one sets `first_sign_in_at`)
/// and return its facts.
pub async fn sign_in(
    db: &Platform,
    tenant: TenantId,
    id: Uuid,
) -> Result<AccountFacts, sqlx::Error> {
    db.execute(Stmt::new("UPDATE accounts SET first_sign_in_at = ? WHERE tenant_id = ? AND id = ? AND first_sign_in_at IS NULL").bind(now_unix_i64()).bind(tenant.to_string()).bind(id.to_string()))
    .await?;
    facts(db, tenant, id).await
}

/// The facts of account `id` (see [`AccountFacts`]).
pub async fn facts(db: &Platform, tenant: TenantId, id: Uuid) -> Result<AccountFacts, sqlx::Error> {
    let row = db.fetch_one(Stmt::new("SELECT a.first_sign_in_at, a.must_change_password, \
         CAST(CASE WHEN t.secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS enrolled \
         FROM accounts a LEFT JOIN account_totp t ON t.tenant_id = a.tenant_id AND t.account_id = a.id \
         WHERE a.tenant_id = ? AND a.id = ?").bind(tenant.to_string()).bind(id.to_string()))
    .await?;
    Ok(AccountFacts {
        first_sign_in: row
            .try_get::<Option<i64>>("first_sign_in_at")?
            .unwrap_or_else(now_unix_i64),
        enrolled: row.try_get::<i64>("enrolled")? != 0,
        must_change_password: row.try_get::<i64>("must_change_password")? != 0,
    })
}

/// Account `id` must change its password at its next sign-in (an admin set it).
pub async fn require_password_change(
    tx: &mut PlatformTx,
    tenant: TenantId,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    tx.execute(
        Stmt::new("UPDATE accounts SET must_change_password = 1 WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string()),
    )
    .await?;
    Ok(())
}

/// The email, role and password hash of account `id` (for the password change).
pub async fn account(
    db: &Platform,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new(
                "SELECT email, role, password_hash FROM accounts WHERE tenant_id = ? AND id = ?",
            )
            .bind(tenant.to_string())
            .bind(id.to_string()),
        )
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("email")?,
            r.try_get("role")?,
            r.try_get("password_hash")?,
        ))
    })
    .transpose()
}

/// Replace the password of account `id` if its hash is still `old_hash`
/// (compare-and-set) and lift the must-change-password state.
pub async fn change_password(
    db: &Platform,
    tenant: TenantId,
    id: Uuid,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool, sqlx::Error> {
    let r = db
        .execute(
            Stmt::new(
                "UPDATE accounts SET password_hash = ?, must_change_password = 0 \
         WHERE tenant_id = ? AND id = ? AND password_hash = ?",
            )
            .bind(new_hash)
            .bind(tenant.to_string())
            .bind(id.to_string())
            .bind(old_hash),
        )
        .await?;
    Ok(r == 1)
}

/// The TOTP row of an account.
#[derive(Clone, Default)]
pub struct TotpRow {
    /// Sealed pending secret (enrolment started, not confirmed).
    pub pending: Option<String>,
    /// Sealed active secret.
    pub secret: Option<String>,
    /// Last accepted time step.
    pub last_step: Option<i64>,
    /// Consecutive failures.
    pub failures: i64,
    /// Hashes of the unused recovery codes (text form).
    pub recovery: Option<String>,
}

impl std::fmt::Debug for TotpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRow")
            .field("enrolled", &self.secret.is_some())
            .field("last_step", &self.last_step)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// The TOTP row of account `id`, if any.
pub async fn totp(
    db: &Platform,
    tenant: TenantId,
    id: &str,
) -> Result<Option<TotpRow>, sqlx::Error> {
    let row = db.fetch_optional(Stmt::new("SELECT pending, secret, last_step, failures, recovery FROM account_totp WHERE tenant_id = ? AND account_id = ?").bind(tenant.to_string()).bind(id))
    .await?;
    row.map(|r| {
        Ok(TotpRow {
            pending: r.try_get("pending")?,
            secret: r.try_get("secret")?,
            last_step: r.try_get("last_step")?,
            failures: r.try_get("failures")?,
            recovery: r.try_get("recovery")?,
        })
    })
    .transpose()
}

/// Store a pending (unconfirmed) secret for account `id`, replacing any
/// earlier pending one; an active secret stays active until confirmation.
pub async fn set_pending(
    db: &Platform,
    tenant: TenantId,
    id: &str,
    pending: &str,
) -> Result<(), sqlx::Error> {
    db.execute(Stmt::new("INSERT INTO account_totp (tenant_id, account_id, pending, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET pending = excluded.pending, updated_at = excluded.updated_at").bind(tenant.to_string()).bind(id).bind(pending).bind(now_unix_i64()))
    .await?;
    Ok(())
}

/// Activate the pending secret `pending` of account `id` as `secret` with
/// the step its confirming code was accepted at and fresh recovery codes;
/// `false` if the pending secret changed meanwhile (compare-and-set).
pub async fn activate(
    db: &Platform,
    tenant: TenantId,
    id: &str,
    pending: &str,
    secret: &str,
    step: i64,
    recovery: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_unix_i64();
    let r = db.execute(Stmt::new("UPDATE account_totp SET secret = ?, pending = NULL, last_step = ?, failures = 0, recovery = ?, enrolled_at = ?, updated_at = ? \
         WHERE tenant_id = ? AND account_id = ? AND pending = ?").bind(secret).bind(step).bind(recovery).bind(now).bind(now).bind(tenant.to_string()).bind(id).bind(pending))
    .await?;
    Ok(r == 1)
}

/// Accept time step `step` for account `id` only if it is later than the
/// stored last step (compare-and-set); resets the failure count. `false`:
/// another request accepted this or a later step first (a replay).
pub async fn advance_step(
    db: &Platform,
    tenant: TenantId,
    id: &str,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let r = db.execute(Stmt::new("UPDATE account_totp SET last_step = ?, failures = 0, updated_at = ? \
         WHERE tenant_id = ? AND account_id = ? AND secret IS NOT NULL AND (last_step IS NULL OR last_step < ?)").bind(step).bind(now_unix_i64()).bind(tenant.to_string()).bind(id).bind(step))
    .await?;
    Ok(r == 1)
}

/// Count one failed code for account `id` (no-op without a TOTP row).
pub async fn record_failure(db: &Platform, tenant: TenantId, id: &str) -> Result<(), sqlx::Error> {
    db.execute(Stmt::new("UPDATE account_totp SET failures = failures + 1, updated_at = ? WHERE tenant_id = ? AND account_id = ?").bind(now_unix_i64()).bind(tenant.to_string()).bind(id))
    .await?;
    Ok(())
}

/// Spend a recovery code: replace the stored set `old` by `new` (the code
/// removed) only if it is still `old` (compare-and-set, so a code is used
/// once), and unlock the factor (failures reset).
pub async fn spend_recovery(
    db: &Platform,
    tenant: TenantId,
    id: &str,
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let r = db
        .execute(
            Stmt::new(
                "UPDATE account_totp SET recovery = ?, failures = 0, updated_at = ? \
         WHERE tenant_id = ? AND account_id = ? AND recovery = ?",
            )
            .bind(new)
            .bind(now_unix_i64())
            .bind(tenant.to_string())
            .bind(id)
            .bind(old),
        )
        .await?;
    Ok(r == 1)
}

/// A support grant as recorded by the console.
#[derive(Debug, Clone, Serialize)]
pub struct GrantRow {
    /// Grant id (`jti`).
    pub id: String,
    /// Support user.
    pub support_user: String,
    /// `read_only` or the permission list.
    pub access: String,
    /// Reason.
    pub reason: String,
    /// Ticket reference.
    pub ticket: String,
    /// Issued (Unix seconds).
    pub issued_at: i64,
    /// Expires (Unix seconds).
    pub expires_at: i64,
    /// Revoked (Unix seconds).
    pub revoked_at: Option<i64>,
}

/// Record an issued grant of `tenant`.
pub async fn insert_grant(
    db: &Platform,
    tenant: TenantId,
    g: &GrantRow,
) -> Result<(), sqlx::Error> {
    db.execute(Stmt::new("INSERT INTO support_grants (id, tenant_id, support_user, access, reason, ticket, issued_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)").bind(&g.id).bind(tenant.to_string()).bind(&g.support_user).bind(&g.access).bind(&g.reason).bind(&g.ticket).bind(g.issued_at).bind(g.expires_at))
    .await?;
    Ok(())
}

/// Revoke grant `id` of `tenant`; whether a live grant was revoked.
pub async fn revoke_grant(db: &Platform, tenant: TenantId, id: &str) -> Result<bool, sqlx::Error> {
    let r = db.execute(Stmt::new("UPDATE support_grants SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL").bind(now_unix_i64()).bind(tenant.to_string()).bind(id))
    .await?;
    Ok(r == 1)
}

/// Whether grant `id` of `tenant` was issued here and not revoked (a grant
/// with no record counts as revoked: fail closed).
pub async fn grant_live(db: &Platform, tenant: TenantId, id: &str) -> Result<bool, sqlx::Error> {
    let row = db
        .fetch_optional(
            Stmt::new("SELECT revoked_at FROM support_grants WHERE tenant_id = ? AND id = ?")
                .bind(tenant.to_string())
                .bind(id),
        )
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>>("revoked_at")?.is_none(),
        None => false,
    })
}

/// Record a notification for the admins of `tenant`.
pub async fn notify_admins(
    db: &Platform,
    tenant: TenantId,
    kind: &str,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    db.execute(Stmt::new("INSERT INTO admin_notifications (tenant_id, id, kind, body, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(tenant.to_string())
    .bind(Uuid::new_v4().to_string()).bind(kind).bind(body.to_string()).bind(now_unix_i64()))
    .await?;
    Ok(())
}

/// The notifications of `tenant`'s admins, oldest first (at most `limit`).
pub async fn notifications(
    db: &Platform,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let rows = db.fetch_all(Stmt::new("SELECT id, kind, body, created_at FROM admin_notifications WHERE tenant_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?").bind(tenant.to_string()).bind(limit).bind(offset))
    .await?;
    rows.iter()
        .map(|r| {
            let body: String = r.try_get("body")?;
            Ok(serde_json::json!({
                "id": r.try_get::<String>("id")?,
                "kind": r.try_get::<String>("kind")?,
                "body": serde_json::from_str::<serde_json::Value>(&body).unwrap_or(serde_json::Value::Null),
                "created_at": r.try_get::<i64>("created_at")?,
            }))
        })
        .collect()
}
