//! The SQLite tenant pool (no RLS: the query guard alone scopes).

use sqlx::Sqlite;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::guard::Dialect;
use crate::{Error, TenantId};

/// SQLite has no session settings and no RLS: a plain transaction; the query
/// guard scopes every statement.
async fn begin_tenant(
    pool: &SqlitePool,
    _tenant: TenantId,
) -> Result<sqlx::Transaction<'static, Sqlite>, Error> {
    Ok(pool.begin().await?)
}

/// Tenant ids are stored as their hyphenated lower-case text in SQLite.
fn tenant_value(tenant: TenantId) -> String {
    tenant.to_string()
}

super::tenant_pool! {
    db = Sqlite,
    sqlx_pool = SqlitePool,
    row = SqliteRow,
    dialect = Dialect::Sqlite,
    pool = SqliteTenantPool,
    tx = SqliteTenantTx,
    query = SqliteTenantQuery,
    name = "SQLite",
}
