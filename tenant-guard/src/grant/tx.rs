//! Tenant transactions of a grant session: `READ ONLY` on PostgreSQL.

use std::future::Future;

use crate::{Error, TenantContext};

/// What a tenant pool does right after `BEGIN` for a context under a grant.
pub(crate) trait GrantTx: sqlx::Database {
    /// Restrict `tx` as `ctx`'s grant requires.
    fn restrict(
        tx: &mut sqlx::Transaction<'static, Self>,
        ctx: &TenantContext,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A grant session's context kept past the grant's expiry (it is `Clone`)
/// begins no transaction, whether or not the application asked
/// [`RolePolicy::require`](crate::RolePolicy::require) first.
fn refuse_expired(ctx: &TenantContext) -> Result<(), Error> {
    match ctx.grant() {
        Some(g) if g.is_expired() => Err(Error::OutsideGrant),
        _ => Ok(()),
    }
}

/// A read-only grant's transaction cannot write, whatever SQL runs in it:
/// PostgreSQL refuses `INSERT`/`UPDATE`/`DELETE`/DDL in a `READ ONLY`
/// transaction, and a transaction that has run a query (the tenant context's
/// `set_config` ran first) cannot be switched back to `READ WRITE`.
#[cfg(feature = "postgres")]
impl GrantTx for sqlx::Postgres {
    async fn restrict(
        tx: &mut sqlx::Transaction<'static, Self>,
        ctx: &TenantContext,
    ) -> Result<(), Error> {
        refuse_expired(ctx)?;
        if ctx.is_read_only() {
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// SQLite has no per-transaction read-only mode on a shared connection
/// (`PRAGMA query_only` outlives the transaction): the permission check
/// ([`Error::OutsideGrant`]) and the query guard are what hold there.
#[cfg(feature = "sqlite")]
impl GrantTx for sqlx::Sqlite {
    async fn restrict(
        _tx: &mut sqlx::Transaction<'static, Self>,
        ctx: &TenantContext,
    ) -> Result<(), Error> {
        refuse_expired(ctx)
    }
}
