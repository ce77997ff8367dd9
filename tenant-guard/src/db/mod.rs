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

mod catalog;
mod unscoped;

pub mod danger;

#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use pg::{
    DEFAULT_CONTEXT_TTL, MAX_CONTEXT_TTL, PgTenantOnce, PgTenantPool, PgTenantQuery,
    PgTenantQueryAs, PgTenantQueryScalar, PgTenantTx,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{
    SqliteTenantOnce, SqliteTenantPool, SqliteTenantQuery, SqliteTenantQueryAs,
    SqliteTenantQueryScalar, SqliteTenantTx,
};
pub use unscoped::{
    AuditFuture, MAX_REASON_LEN, PlatformAdmin, Unscoped, UnscopedAccess, UnscopedAuditHook,
    unscoped,
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
        query_as = $query_as:ident,
        query_scalar = $query_scalar:ident,
        once = $once:ident,
        prepare = $prepare:path,
        name = $name:literal,
    ) => {
        #[doc = concat!("A ", $name, " pool that only hands out tenant transactions ([`", stringify!($tx), "`]).")]
        #[derive(Clone)]
        pub struct $pool {
            pool: $sqlx_pool,
            guard: std::sync::Arc<$crate::guard::QueryGuard>,
            context: std::sync::Arc<$context>,
            /// The guard with the catalog's column lists, once loaded.
            ready: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<$crate::guard::QueryGuard>>>,
        }

        impl std::fmt::Debug for $pool {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($pool)).field("guard", &self.guard).finish_non_exhaustive()
            }
        }

        impl $pool {
            /// Read the catalog once: the columns of every registered table go
            /// to the guard (see [`TableRegistry::set_columns`]($crate::guard::TableRegistry::set_columns)),
            /// and the schema is checked (SQLite: no tenant table may declare
            /// `ON CONFLICT REPLACE`). [`begin`](Self::begin) does this before its
            /// first transaction and refuses every transaction while it fails;
            /// call it at start-up to fail there instead.
            pub async fn start(&self) -> Result<(), $crate::Error> {
                self.ready_guard().await.map(|_| ())
            }

            async fn ready_guard(&self) -> Result<std::sync::Arc<$crate::guard::QueryGuard>, $crate::Error> {
                if let Some(g) = self.ready.get() {
                    return Ok(std::sync::Arc::clone(g));
                }
                let g = std::sync::Arc::new($prepare(&self.pool, &self.guard).await?);
                Ok(std::sync::Arc::clone(self.ready.get_or_init(|| g)))
            }

            /// Start a transaction for the context's tenant.
            pub async fn begin(&self, ctx: &$crate::TenantContext) -> Result<$tx, $crate::Error> {
                let guard = self.ready_guard().await?;
                // An expired break-glass grant begins nothing (src/grant/tx.rs);
                // a read-only one begins `READ ONLY` on PostgreSQL (src/db/pg.rs).
                $crate::grant::admit(ctx)?;
                // Client grants and roles for RLS go with the tenant context
                // (PostgreSQL, only when the registry has client-scoped or
                // role-gated tables), in the same round trip.
                let scope = guard.registry().needs_session_scope();
                let tx = begin_tenant(&self.pool, &self.context, ctx, scope).await?;
                let session = $crate::guard::SessionScope::from_context(ctx);
                Ok($tx { tx, tenant: ctx.tenant(), session, guard })
            }

            /// One statement for the context's tenant, in its own transaction:
            /// the same guard, grant check and (on PostgreSQL) signed tenant
            /// context as [`begin`](Self::begin) + one statement +
            /// `commit`, in fewer round trips where the database allows it.
            /// On SQLite a single statement is atomic on its own, so it runs
            /// without `BEGIN`/`COMMIT` (one round trip to sqlx's worker
            /// thread instead of three). On PostgreSQL row-level security
            /// needs the transaction-local tenant context, so it is a tenant
            /// transaction. Bind exactly as many values as the statement has
            /// placeholders. One difference from `begin`: on SQLite a statement
            /// cancelled (its future dropped) after it reached sqlx's worker
            /// still runs to completion and commits, where a dropped `begin`
            /// transaction would roll back. A refused statement is
            #[doc = concat!("[`Error::Refused`]($crate::Error::Refused) when it runs, and never reaches the database. Use it for reads and for writes that need no other statement with them (see [`", stringify!($once), "`]).")]
            pub fn once<'a>(&'a self, ctx: &'a $crate::TenantContext, sql: &'a str) -> $once<'a> {
                $once { pool: self, ctx, sql, args: Ok(Default::default()), bound: 0 }
            }

            /// The guard statements pass through (with the catalog's columns
            /// once [`start`](Self::start) or a transaction has loaded them):
            /// `guard().scope(sql)` shows exactly what the pool sends.
            pub fn guard(&self) -> &$crate::guard::QueryGuard {
                self.ready.get().map_or(&self.guard, |g| g)
            }
        }

        #[doc = concat!("A ", $name, " transaction bound to one tenant; every statement is scoped by the query guard.")]
        ///
        /// Dropping it without [`commit`](Self::commit) rolls it back.
        pub struct $tx {
            tx: sqlx::Transaction<'static, $db>,
            tenant: $crate::TenantId,
            /// Roles and client grants the guard scopes by.
            session: $crate::guard::SessionScope,
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
                let scoped = self.guard.scope_for(sql, &self.session)?;
                let query = sqlx::query(sqlx::AssertSqlSafe(scoped.sql().to_owned()));
                Ok($query { tx: self, query, expected: scoped.user_params(), bound: 0, scoped })
            }

            /// [`query`](Self::query) whose rows decode into `T` through
            /// [`sqlx::FromRow`], like `sqlx::query_as`.
            pub fn query_as<T>(&mut self, sql: &str) -> Result<$query_as<'_, T>, $crate::Error>
            where
                T: for<'r> sqlx::FromRow<'r, $row>,
            {
                Ok($query_as { inner: self.query(sql)?, out: std::marker::PhantomData })
            }

            /// [`query`](Self::query) whose rows are their first column decoded
            /// as `T`, like `sqlx::query_scalar`.
            pub fn query_scalar<T>(&mut self, sql: &str) -> Result<$query_scalar<'_, T>, $crate::Error>
            where
                (T,): for<'r> sqlx::FromRow<'r, $row>,
            {
                Ok($query_scalar { inner: self.query(sql)?, out: std::marker::PhantomData })
            }

            /// Write an audit record about this transaction's change *in* this
            /// transaction: it commits or rolls back with the change. `sink` is
            /// trusted code (an audit store), so it gets the connection without
            /// the guard; it receives this transaction's tenant. A failing sink
            /// is [`Error::AuditHook`]($crate::Error::AuditHook); roll back then.
            pub async fn append_audit<E, S>(&mut self, sink: &S, event: &E) -> Result<(), $crate::Error>
            where
                E: ?Sized + Sync,
                S: $crate::db::TxAuditSink<$db, E> + ?Sized,
            {
                let tenant = self.tenant;
                sink.append(&mut self.tx, tenant, event).await.map_err(|_e| {
                    tracing::error!(target: "hisn::tenant_guard", %tenant, "audit sink failed in a tenant transaction");
                    $crate::Error::AuditHook
                })
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
            /// The guard's parameters to bind after the user's.
            scoped: $crate::guard::ScopedStatement,
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
                let tx = self.tx;
                let mut query = self.query;
                for param in self.scoped.guard_params() {
                    query = match param {
                        $crate::guard::GuardParam::Tenant => query.bind(tenant_value(tx.tenant)),
                        $crate::guard::GuardParam::Clients => query.bind(clients_value(&tx.session)),
                        $crate::guard::GuardParam::ActiveClient => {
                            let client = tx.guard.active_client(&tx.session)?;
                            query.bind(client_value(client))
                        }
                    };
                }
                Ok((tx, query))
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

            /// Run the statement and stream its rows (errors are sqlx's).
            pub fn fetch(
                self,
            ) -> Result<futures::stream::BoxStream<'t, Result<$row, sqlx::Error>>, $crate::Error> {
                let (tx, q) = self.finish()?;
                Ok(q.fetch(&mut *tx.tx))
            }
        }

        #[doc = concat!("One statement for a tenant, outside any transaction the caller holds ([`", stringify!($pool), "::once`]).")]
        pub struct $once<'a> {
            pool: &'a $pool,
            ctx: &'a $crate::TenantContext,
            sql: &'a str,
            args: Result<<$db as sqlx::Database>::Arguments, sqlx::error::BoxDynError>,
            bound: usize,
        }

        impl std::fmt::Debug for $once<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($once))
                    .field("tenant", &self.ctx.tenant())
                    .field("bound", &self.bound)
                    .finish_non_exhaustive()
            }
        }

        impl<'a> $once<'a> {
            /// Bind the next user parameter.
            #[must_use]
            pub fn bind<'v, T: sqlx::Encode<'v, $db> + sqlx::Type<$db>>(mut self, value: T) -> Self {
                if let Ok(args) = &mut self.args {
                    if let Err(e) = sqlx::Arguments::add(args, value) {
                        self.args = Err(e);
                    }
                }
                self.bound = self.bound.saturating_add(1);
                self
            }

            /// Scope the statement, check the parameter count and the grant,
            /// bind the guard's values last, then open the connection (SQLite)
            /// or the tenant transaction (PostgreSQL): nothing reaches the
            /// database before every check passed.
            async fn start(
                self,
            ) -> Result<(
                $crate::db::OnceConn<$db>,
                sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments>,
            ), $crate::Error> {
                let guard = self.pool.ready_guard().await?;
                $crate::grant::admit(self.ctx)?;
                let session = $crate::guard::SessionScope::from_context(self.ctx);
                let scoped = guard.scope_for(self.sql, &session)?;
                if self.bound != scoped.user_params() {
                    return Err($crate::Error::ParamCount { expected: scoped.user_params(), bound: self.bound });
                }
                let mut args = self.args;
                for param in scoped.guard_params() {
                    let added = match (&mut args, param) {
                        (Err(_), _) => Ok(()),
                        (Ok(a), $crate::guard::GuardParam::Tenant) => {
                            sqlx::Arguments::add(a, tenant_value(self.ctx.tenant()))
                        }
                        (Ok(a), $crate::guard::GuardParam::Clients) => {
                            sqlx::Arguments::add(a, clients_value(&session))
                        }
                        (Ok(a), $crate::guard::GuardParam::ActiveClient) => {
                            let client = guard.active_client(&session)?;
                            sqlx::Arguments::add(a, client_value(client))
                        }
                    };
                    if let Err(e) = added {
                        args = Err(e);
                    }
                }
                // A value that could not be encoded fails here, before a
                // connection is taken.
                let args = args.map_err(sqlx::Error::Encode)?;
                let query = sqlx::query_with(sqlx::AssertSqlSafe(scoped.sql().to_owned()), args);
                let scope = guard.registry().needs_session_scope();
                let conn = begin_once(&self.pool.pool, &self.pool.context, self.ctx, scope).await?;
                Ok((conn, query))
            }

            /// Run the statement; returns the number of rows affected.
            pub async fn execute(self) -> Result<u64, $crate::Error> {
                let (conn, q) = self.start().await?;
                $crate::db::once_run!(conn, |c| q.execute(c)).map(|r| r.rows_affected())
            }

            /// Run the statement and return every row.
            pub async fn fetch_all(self) -> Result<Vec<$row>, $crate::Error> {
                let (conn, q) = self.start().await?;
                $crate::db::once_run!(conn, |c| q.fetch_all(c))
            }

            /// Run the statement and return the first row, if any.
            pub async fn fetch_optional(self) -> Result<Option<$row>, $crate::Error> {
                let (conn, q) = self.start().await?;
                $crate::db::once_run!(conn, |c| q.fetch_optional(c))
            }

            /// Run the statement and return exactly one row
            /// ([`Error::Database`]($crate::Error::Database) with `RowNotFound` if none).
            pub async fn fetch_one(self) -> Result<$row, $crate::Error> {
                let (conn, q) = self.start().await?;
                $crate::db::once_run!(conn, |c| q.fetch_one(c))
            }
        }

        $crate::db::typed_query! {
            db = $db, row = $row, tx = $tx, plain = $query, query = $query_as,
            out = T, what = "rows decoded into `T` ([`sqlx::FromRow`])",
            bound = (T: for<'r> sqlx::FromRow<'r, $row>),
            decode = |row: &$row| <T as sqlx::FromRow<'_, $row>>::from_row(row),
        }
        $crate::db::typed_query! {
            db = $db, row = $row, tx = $tx, plain = $query, query = $query_scalar,
            out = T, what = "the first column of each row, decoded as `T`",
            bound = ((T,): for<'r> sqlx::FromRow<'r, $row>),
            decode = |row: &$row| <(T,) as sqlx::FromRow<'_, $row>>::from_row(row).map(|(t,)| t),
        }
    };
}

/// A typed scoped statement (`query_as` / `query_scalar` flavour): the plain
/// scoped statement, whose rows are decoded with `$decode`.
macro_rules! typed_query {
    (
        db = $db:ty, row = $row:ty, tx = $tx:ident, plain = $plain:ident, query = $query:ident,
        out = $t:ident, what = $what:literal, bound = ($($bound:tt)*), decode = $decode:expr,
    ) => {
        #[doc = concat!("A scoped statement in a [`", stringify!($tx), "`] returning ", $what, ".")]
        pub struct $query<'t, $t> {
            inner: $plain<'t>,
            out: std::marker::PhantomData<fn() -> $t>,
        }

        impl<$t> std::fmt::Debug for $query<'_, $t> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($query)).field("inner", &self.inner).finish()
            }
        }

        impl<'t, $t> $query<'t, $t>
        where
            $($bound)*
        {
            /// Bind the next user parameter.
            #[must_use]
            pub fn bind<'v, V: sqlx::Encode<'v, $db> + sqlx::Type<$db>>(self, value: V) -> Self {
                Self { inner: self.inner.bind(value), out: self.out }
            }

            /// Run the statement and return every result.
            pub async fn fetch_all(self) -> Result<Vec<$t>, $crate::Error> {
                let rows = self.inner.fetch_all().await?;
                Ok(rows.iter().map($decode).collect::<Result<Vec<_>, sqlx::Error>>()?)
            }

            /// Run the statement and return the first result, if any.
            pub async fn fetch_optional(self) -> Result<Option<$t>, $crate::Error> {
                let row = self.inner.fetch_optional().await?;
                Ok(row.as_ref().map($decode).transpose()?)
            }

            /// Run the statement and return exactly one result.
            pub async fn fetch_one(self) -> Result<$t, $crate::Error> {
                let row = self.inner.fetch_one().await?;
                Ok(($decode)(&row)?)
            }

            /// Run the statement and stream its results (errors are sqlx's).
            pub fn fetch(
                self,
            ) -> Result<futures::stream::BoxStream<'t, Result<$t, sqlx::Error>>, $crate::Error>
            where
                $t: Send + 't,
            {
                use futures::StreamExt as _;
                let stream = self.inner.fetch()?;
                Ok(stream.map(|r| r.and_then(|row| ($decode)(&row))).boxed())
            }
        }
    };
}

/// Where a [`PgTenantPool::once`] / [`SqliteTenantPool::once`] statement
/// runs: a pooled connection in autocommit (SQLite: a single statement is
/// its own transaction), or a tenant transaction committed right after it
/// (PostgreSQL: row-level security needs the transaction-local context).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) enum OnceConn<DB: sqlx::Database> {
    /// Autocommit on a pooled connection.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Conn(sqlx::pool::PoolConnection<DB>),
    /// A tenant transaction, committed after the statement.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Tx(sqlx::Transaction<'static, DB>),
}

/// Run `$run` (a closure-like `|conn| future`) on a [`OnceConn`], committing
/// the transaction variant after a success (a failure rolls it back on drop).
macro_rules! once_run {
    ($conn:expr, |$c:ident| $run:expr) => {
        match $conn {
            $crate::db::OnceConn::Conn(mut conn) => {
                let $c = &mut *conn;
                Ok($run.await?)
            }
            $crate::db::OnceConn::Tx(mut tx) => {
                let $c = &mut *tx;
                let out = $run.await?;
                tx.commit().await?;
                Ok(out)
            }
        }
    };
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use once_run;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use tenant_pool;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use typed_query;

/// Writes an audit record inside a tenant transaction
/// ([`PgTenantTx::append_audit`] / [`SqliteTenantTx::append_audit`]), so the
/// record and the change it records commit or roll back together.
///
/// Implement it for your audit store (this crate does not depend on one). The
/// implementation is trusted code: it gets the transaction's connection
/// without the query guard, and must write only its own tables.
pub trait TxAuditSink<DB: sqlx::Database, E: ?Sized>: Send + Sync {
    /// Append `event` for `tenant` on `conn` (inside the tenant transaction).
    fn append(
        &self,
        conn: &mut DB::Connection,
        tenant: crate::TenantId,
        event: &E,
    ) -> impl std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send;
}
