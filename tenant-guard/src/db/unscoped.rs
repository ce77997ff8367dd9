//! The escape hatch: audited, unscoped database access for platform
//! administration.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

use crate::{Error, TenantId};

/// Longest reason (and actor) accepted by [`unscoped`], in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// One unscoped access, as given to the [`UnscopedAuditHook`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct UnscopedAccess<'a> {
    /// Why the access is needed (from the caller of [`unscoped`]).
    pub reason: &'a str,
    /// The label the [`PlatformAdmin`] was created with (which tool holds it).
    pub admin: &'a str,
    /// Who is acting (the operator's user id or name, from the caller).
    pub actor: &'a str,
    /// The tenant whose data the access is for; `None` for work across
    /// tenants (a migration, a report over every tenant).
    pub target_tenant: Option<TenantId>,
}

/// The future an [`UnscopedAuditHook`] returns.
pub type AuditFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>>;

/// Records every unscoped access (the example server writes it to the audit
/// log). Async, because recording usually means a write to a store. An error
/// refuses the access: no record, no access.
pub trait UnscopedAuditHook: Send + Sync + fmt::Debug {
    /// Record `access`; resolve to an error to refuse it.
    fn record<'a>(&'a self, access: UnscopedAccess<'a>) -> AuditFuture<'a>;
}

/// The capability to bypass tenant scoping, holding a *separate* pool.
///
/// Create it once at start-up from a pool that connects as a different
/// database role than the tenant pool (that role may read across tenants;
/// the tenant role may not). Tenant code never receives a pool, so it cannot
/// create one; there is no setting or SQL flag that turns scoping off.
pub struct PlatformAdmin<DB: Database> {
    pool: Pool<DB>,
    hook: Arc<dyn UnscopedAuditHook>,
    label: String,
}

impl<DB: Database> fmt::Debug for PlatformAdmin<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformAdmin")
            .field("label", &self.label)
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> PlatformAdmin<DB> {
    /// Build the capability from the platform-administration pool (its own
    /// role) and the audit hook every use will call. `label` names the holder
    /// in audit records (for example `"support-console"`).
    pub fn from_admin_pool(
        admin_pool: Pool<DB>,
        hook: Arc<dyn UnscopedAuditHook>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            pool: admin_pool,
            hook,
            label: label.into(),
        }
    }
}

/// An unscoped connection from the admin pool. Dereferences to the sqlx
/// connection; returned to the admin pool on drop.
pub struct Unscoped<DB: Database> {
    conn: PoolConnection<DB>,
}

impl<DB: Database> fmt::Debug for Unscoped<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unscoped").finish_non_exhaustive()
    }
}

impl<DB: Database> Deref for Unscoped<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for Unscoped<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// Take an unscoped connection for `reason`, acting as `actor`, for the data
/// of `target_tenant` (`None`: across tenants).
///
/// Every call emits a `tracing` warning and awaits the admin's audit hook
/// *before* the connection is handed out; an empty reason or actor
/// ([`Error::MissingReason`]) or a failing hook ([`Error::AuditHook`]) refuses
/// the access.
pub async fn unscoped<DB: Database>(
    admin: &PlatformAdmin<DB>,
    target_tenant: Option<TenantId>,
    actor: &str,
    reason: &str,
) -> Result<Unscoped<DB>, Error> {
    let reason = reason.trim();
    let actor = actor.trim();
    if reason.is_empty()
        || reason.len() > MAX_REASON_LEN
        || actor.is_empty()
        || actor.len() > MAX_REASON_LEN
    {
        return Err(Error::MissingReason);
    }
    let target = target_tenant.map_or_else(|| "all".to_owned(), |t| t.to_string());
    tracing::warn!(target: "hisn::tenant_guard", admin = %admin.label, actor, tenant = %target, reason, "unscoped database access");
    let access = UnscopedAccess {
        reason,
        admin: &admin.label,
        actor,
        target_tenant,
    };
    admin.hook.record(access).await.map_err(|_e| {
        tracing::error!(target: "hisn::tenant_guard", admin = %admin.label, "audit hook failed; unscoped access refused");
        Error::AuditHook
    })?;
    let conn = admin.pool.acquire().await?;
    Ok(Unscoped { conn })
}
