//! sqlx integration: pools that hand out only tenant transactions, and the
//! audited escape hatch for platform administration.
//!
//! A tenant pool ([`PgTenantPool`], [`SqliteTenantPool`]) wraps a sqlx pool
//! and never gives it back: the only thing tenant code can get from it is a
//! tenant transaction, started with [`PgTenantPool::begin`] from a verified
//! [`TenantContext`](crate::TenantContext). In that transaction:
//!
//! - PostgreSQL: the transaction runs `BEGIN`, then
//!   `SELECT set_config('hisn.tenant_context', $1, true)` with a tenant token
//!   signed by the context key bound as `$1` (never text in SQL; see
//!   [`rls`](crate::rls) for the token and the function that verifies it).
//!   The `true` makes the setting transaction-local: it ends with the transaction, whether it was
//!   committed, rolled back, or dropped mid-way by a cancelled request (sqlx
//!   rolls a dropped transaction back before the connection is reused), so the
//!   next borrower of the connection never inherits a tenant. Row-level
//!   security (layer 3) filters on that setting.
//! - Every statement goes through [`QueryGuard::scope`](crate::guard::QueryGuard::scope)
//!   (layer 2) and the tenant is bound as its last parameter. A statement the
//!   guard refuses never reaches the database. SQLite has no RLS, so there the
//!   guard alone scopes (the tenant is bound as its hyphenated text form).
//!
//! The raw pool is reachable only through [`PlatformAdmin`] and [`unscoped`],
//! which should hold a *different* pool, connected as a different role.
//! Construct both at start-up and give handlers only the tenant pool.

mod unscoped;

#[cfg(feature = "postgres")]
pub mod danger;

#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use pg::{DEFAULT_CONTEXT_TTL, MAX_CONTEXT_TTL, PgTenantPool, PgTenantQuery, PgTenantTx};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteTenantPool, SqliteTenantQuery, SqliteTenantTx};
pub use unscoped::{
    MAX_REASON_LEN, PlatformAdmin, Unscoped, UnscopedAccess, UnscopedAuditHook, unscoped,
};

/// Generates the tenant pool, transaction and query types for one database.
macro_rules! tenant_pool {
    (
        db = $db:ty,
        sqlx_pool = $sqlx_pool:ty,
        row = $row:ty,
        dialect = $dialect:path,
        context = $context:ty,
        pool = $pool:ident,
        tx = $tx:ident,
        query = $query:ident,
        name = $name:literal,
    ) => {
        #[doc = concat!("A ", $name, " pool that only hands out tenant transactions ([`", stringify!($tx), "`]).")]
        #[derive(Clone)]
        pub struct $pool {
            pool: $sqlx_pool,
            guard: std::sync::Arc<$crate::guard::QueryGuard>,
            context: std::sync::Arc<$context>,
        }

        impl std::fmt::Debug for $pool {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($pool)).field("guard", &self.guard).finish_non_exhaustive()
            }
        }

        impl $pool {
            /// Start a transaction for the context's tenant.
            pub async fn begin(&self, ctx: &$crate::TenantContext) -> Result<$tx, $crate::Error> {
                let tx = begin_tenant(&self.pool, &self.context, ctx.tenant()).await?;
                Ok($tx { tx, tenant: ctx.tenant(), guard: std::sync::Arc::clone(&self.guard) })
            }
        }

        #[doc = concat!("A ", $name, " transaction bound to one tenant; every statement is scoped by the query guard.")]
        ///
        /// Dropping it without [`commit`](Self::commit) rolls it back.
        pub struct $tx {
            tx: sqlx::Transaction<'static, $db>,
            tenant: $crate::TenantId,
            guard: std::sync::Arc<$crate::guard::QueryGuard>,
        }

        impl std::fmt::Debug for $tx {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($tx)).field("tenant", &self.tenant).finish_non_exhaustive()
            }
        }

        impl $tx {
            /// The tenant this transaction is bound to.
            pub fn tenant(&self) -> $crate::TenantId {
                self.tenant
            }

            /// Scope `sql` with the query guard and prepare it for binding.
            ///
            /// Refused statements are [`Error::Refused`]($crate::Error::Refused)
            /// and never reach the database. Bind exactly as many values as the
            /// statement has placeholders; the tenant is bound last by the guard.
            pub fn query(&mut self, sql: &str) -> Result<$query<'_>, $crate::Error> {
                let scoped = self.guard.scope(sql)?;
                let query = sqlx::query(sqlx::AssertSqlSafe(scoped.sql().to_owned()));
                Ok($query { tx: self, query, expected: scoped.user_params(), bound: 0 })
            }

            /// Commit the transaction.
            pub async fn commit(self) -> Result<(), $crate::Error> {
                self.tx.commit().await?;
                Ok(())
            }

            /// Roll the transaction back.
            pub async fn rollback(self) -> Result<(), $crate::Error> {
                self.tx.rollback().await?;
                Ok(())
            }
        }

        #[doc = concat!("A scoped statement in a [`", stringify!($tx), "`], waiting for its parameters.")]
        pub struct $query<'t> {
            tx: &'t mut $tx,
            query: sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments>,
            expected: usize,
            bound: usize,
        }

        impl std::fmt::Debug for $query<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($query))
                    .field("expected", &self.expected)
                    .field("bound", &self.bound)
                    .finish_non_exhaustive()
            }
        }

        impl<'t> $query<'t> {
            /// Bind the next user parameter.
            #[must_use]
            pub fn bind<'v, T: sqlx::Encode<'v, $db> + sqlx::Type<$db>>(mut self, value: T) -> Self {
                self.query = self.query.bind(value);
                self.bound = self.bound.saturating_add(1);
                self
            }

            /// Check the parameter count and bind the tenant last.
            fn finish(
                self,
            ) -> Result<(&'t mut $tx, sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments>), $crate::Error> {
                if self.bound != self.expected {
                    return Err($crate::Error::ParamCount { expected: self.expected, bound: self.bound });
                }
                let tenant = self.tx.tenant;
                Ok((self.tx, self.query.bind(tenant_value(tenant))))
            }

            /// Run the statement; returns the number of rows affected.
            pub async fn execute(self) -> Result<u64, $crate::Error> {
                let (tx, q) = self.finish()?;
                Ok(q.execute(&mut *tx.tx).await?.rows_affected())
            }

            /// Run the statement and return every row.
            pub async fn fetch_all(self) -> Result<Vec<$row>, $crate::Error> {
                let (tx, q) = self.finish()?;
                Ok(q.fetch_all(&mut *tx.tx).await?)
            }

            /// Run the statement and return the first row, if any.
            pub async fn fetch_optional(self) -> Result<Option<$row>, $crate::Error> {
                let (tx, q) = self.finish()?;
                Ok(q.fetch_optional(&mut *tx.tx).await?)
            }

            /// Run the statement and return exactly one row
            /// ([`Error::Database`]($crate::Error::Database) with `RowNotFound` if none).
            pub async fn fetch_one(self) -> Result<$row, $crate::Error> {
                let (tx, q) = self.finish()?;
                Ok(q.fetch_one(&mut *tx.tx).await?)
            }
        }
    };
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use tenant_pool;
