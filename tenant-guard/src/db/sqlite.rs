//! The SQLite tenant pool (no RLS: the query guard alone scopes).

use sqlx::Sqlite;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::guard::{Dialect, QueryGuard};
use crate::{Error, TenantId};

/// SQLite has no session settings and no RLS: a plain transaction; the query
/// guard scopes every statement (client grants included: nothing to carry
/// into the transaction).
async fn begin_tenant(
    pool: &SqlitePool,
    _context: &(),
    _ctx: &crate::TenantContext,
    _scope: bool,
) -> Result<sqlx::Transaction<'static, Sqlite>, Error> {
    Ok(pool.begin().await?)
}

/// A single statement needs no transaction on SQLite: autocommit makes it
/// atomic, and the guard scopes it the same way.
async fn begin_once(
    pool: &SqlitePool,
    _context: &(),
    _ctx: &crate::TenantContext,
    _scope: bool,
) -> Result<super::OnceConn<Sqlite>, Error> {
    Ok(super::OnceConn::Conn(pool.acquire().await?))
}

/// Tenant ids are stored as their hyphenated lower-case text in SQLite.
fn tenant_value(tenant: TenantId) -> String {
    tenant.to_string()
}

/// Client ids too: the active client of an `INSERT`.
fn client_value(client: crate::ClientId) -> String {
    client.to_string()
}

/// The granted clients: a JSON array of hyphenated ids, which the guard's
/// predicate reads with `json_each` (SQLite has no arrays).
fn clients_value(session: &crate::guard::SessionScope) -> String {
    session.clients_json()
}

super::tenant_pool! {
    db = Sqlite,
    sqlx_pool = SqlitePool,
    row = SqliteRow,
    dialect = Dialect::Sqlite,
    context = (),
    pool = SqliteTenantPool,
    tx = SqliteTenantTx,
    query = SqliteTenantQuery,
    query_as = SqliteTenantQueryAs,
    query_scalar = SqliteTenantQueryScalar,
    once = SqliteTenantOnce,
    prepare = super::catalog::prepare_sqlite,
    name = "SQLite",
}

impl SqliteTenantPool {
    /// Wrap `pool`; every statement will pass `guard`, which must use
    /// [`Dialect::Sqlite`]. SQLite has no row-level security: the guard alone
    /// scopes.
    ///
    /// The wrapper takes the pool by value and never returns it. Keep no other
    /// handle to it in code that serves tenants.
    pub fn new(pool: SqlitePool, guard: QueryGuard) -> Result<Self, Error> {
        if guard.dialect() != Dialect::Sqlite {
            return Err(Error::Config(
                "the query guard's dialect does not match the database",
            ));
        }
        Ok(Self {
            pool,
            guard: std::sync::Arc::new(guard),
            context: std::sync::Arc::new(()),
            ready: std::sync::Arc::default(),
        })
    }
}
