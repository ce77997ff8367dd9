//! Tenant data: tenant-guard's tenant pool on either database, behind one
//! type, so each handler is written once.
//!
//! [`TenantDb::begin`] is the only way to the tenant tables. On SQLite and on
//! PostgreSQL every statement passes the query guard (tenant predicate added,
//! tenant column forced, anything unprovable refused); on PostgreSQL the
//! transaction also carries the signed tenant context row-level security
//! filters on. The guard can be switched off only on PostgreSQL and only
//! through [`crate::danger`] (the isolation suite's "RLS alone" run).

use hisn_tenant_guard::TenantContext;
use hisn_tenant_guard::db::{PgTenantPool, PgTenantTx, SqliteTenantPool, SqliteTenantTx};
use sqlx::postgres::PgArguments;
use sqlx::query::Query as SqlxQuery;

use super::sql::{Arg, Row, Value, bind_pg, pg_placeholders};

/// The tenant pool of the configured database.
#[derive(Debug, Clone)]
pub enum TenantDb {
    /// Embedded SQLite: the guard alone scopes.
    Sqlite(SqliteTenantPool),
    /// PostgreSQL: the guard and row-level security.
    Pg(PgTenantPool),
    /// PostgreSQL with the query guard switched off: row-level security
    /// alone scopes. Built only by [`crate::danger::Layers`].
    PgUnguarded(PgTenantPool),
}

impl TenantDb {
    /// Start a transaction for `ctx`'s tenant.
    pub async fn begin(&self, ctx: &TenantContext) -> Result<Tx, hisn_tenant_guard::Error> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin(ctx).await?),
            Self::Pg(p) => Tx::Pg(p.begin(ctx).await?),
            Self::PgUnguarded(p) => Tx::PgUnguarded(p.begin(ctx).await?),
        })
    }

    /// One statement for `ctx`'s tenant, in its own transaction: on SQLite
    /// without `BEGIN`/`COMMIT` (tenant-guard's `SqliteTenantPool::once`: one
    /// round trip to sqlx's worker instead of three, the same guard), on
    /// PostgreSQL a tenant transaction (RLS needs its context). For reads
    /// that are one statement; anything that must see or change two
    /// statements together uses [`TenantDb::begin`].
    pub fn once<'a>(&'a self, ctx: &'a TenantContext, sql: &'a str) -> Once<'a> {
        Once {
            db: self,
            ctx,
            sql,
            args: Vec::new(),
        }
    }

    /// Whether statements pass the query guard.
    pub fn guarded(&self) -> bool {
        !matches!(self, Self::PgUnguarded(_))
    }
}

/// Bind an [`Arg`] to a SQLite tenant statement (a transaction's or a
/// `once`): a UUID goes as its hyphenated text, how the SQLite schema
/// stores ids.
macro_rules! sqlite_bind {
    ($q:expr, $arg:expr) => {
        match $arg {
            Arg::Text(v) => $q.bind(v),
            Arg::Int(v) => $q.bind(v),
            Arg::OptInt(v) => $q.bind(v),
            Arg::Bytes(v) => $q.bind(v),
            Arg::Uuid(v) => $q.bind(v.hyphenated().to_string()),
        }
    };
}

/// A tenant transaction (dropping it without [`Tx::commit`] rolls it back).
#[derive(Debug)]
pub enum Tx {
    /// SQLite, guarded.
    Sqlite(SqliteTenantTx),
    /// PostgreSQL, guarded, under RLS.
    Pg(PgTenantTx),
    /// PostgreSQL under RLS, guard off.
    PgUnguarded(PgTenantTx),
}

impl Tx {
    /// A statement (`?` placeholders) in this transaction. The guard scopes
    /// it here: a refused statement is an error before anything is bound.
    pub fn query(&mut self, sql: &str) -> Result<Query<'_>, hisn_tenant_guard::Error> {
        Ok(Query(match self {
            Self::Sqlite(tx) => Inner::Sqlite(tx.query(sql)?),
            Self::Pg(tx) => Inner::Pg(tx.query(&pg_placeholders(sql))?),
            Self::PgUnguarded(tx) => {
                let q = sqlx::query(sqlx::AssertSqlSafe(pg_placeholders(sql).into_owned()));
                Inner::Raw(hisn_tenant_guard::db::danger::unguarded(tx), q)
            }
        }))
    }

    /// A statement whose rows are their first column decoded as `T`.
    pub fn query_scalar<T: Value>(
        &mut self,
        sql: &str,
    ) -> Result<Scalar<'_, T>, hisn_tenant_guard::Error> {
        Ok(Scalar(self.query(sql)?, std::marker::PhantomData))
    }

    /// Commit.
    pub async fn commit(self) -> Result<(), hisn_tenant_guard::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Pg(tx) | Self::PgUnguarded(tx) => tx.commit().await,
        }
    }
}

enum Inner<'t> {
    Sqlite(hisn_tenant_guard::db::SqliteTenantQuery<'t>),
    Pg(hisn_tenant_guard::db::PgTenantQuery<'t>),
    Raw(
        &'t mut sqlx::PgConnection,
        SqlxQuery<'static, sqlx::Postgres, PgArguments>,
    ),
}

/// A statement waiting for its values.
pub struct Query<'t>(Inner<'t>);

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Query(..)")
    }
}

type GuardResult<T> = Result<T, hisn_tenant_guard::Error>;

impl<'t> Query<'t> {
    /// Bind the next value.
    #[must_use]
    pub fn bind(self, v: impl Into<Arg>) -> Self {
        let v = v.into();
        Self(match self.0 {
            Inner::Sqlite(q) => Inner::Sqlite(sqlite_bind!(q, v)),
            Inner::Pg(q) => Inner::Pg(match v {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::OptInt(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Uuid(v) => q.bind(v),
            }),
            Inner::Raw(c, q) => Inner::Raw(c, bind_pg(q, v)),
        })
    }

    /// Run it; the number of rows affected.
    pub async fn execute(self) -> GuardResult<u64> {
        match self.0 {
            Inner::Sqlite(q) => q.execute().await,
            Inner::Pg(q) => q.execute().await,
            Inner::Raw(c, q) => Ok(q.execute(c).await?.rows_affected()),
        }
    }

    /// Every row.
    pub async fn fetch_all(self) -> GuardResult<Vec<Row>> {
        Ok(match self.0 {
            Inner::Sqlite(q) => q.fetch_all().await?.into_iter().map(Row::Sqlite).collect(),
            Inner::Pg(q) => q.fetch_all().await?.into_iter().map(Row::Pg).collect(),
            Inner::Raw(c, q) => q.fetch_all(c).await?.into_iter().map(Row::Pg).collect(),
        })
    }

    /// The first row, if any.
    pub async fn fetch_optional(self) -> GuardResult<Option<Row>> {
        Ok(match self.0 {
            Inner::Sqlite(q) => q.fetch_optional().await?.map(Row::Sqlite),
            Inner::Pg(q) => q.fetch_optional().await?.map(Row::Pg),
            Inner::Raw(c, q) => q.fetch_optional(c).await?.map(Row::Pg),
        })
    }

    /// Exactly one row.
    pub async fn fetch_one(self) -> GuardResult<Row> {
        Ok(match self.0 {
            Inner::Sqlite(q) => Row::Sqlite(q.fetch_one().await?),
            Inner::Pg(q) => Row::Pg(q.fetch_one().await?),
            Inner::Raw(c, q) => Row::Pg(q.fetch_one(c).await?),
        })
    }
}

/// One statement outside a caller's transaction ([`TenantDb::once`]).
pub struct Once<'a> {
    db: &'a TenantDb,
    ctx: &'a TenantContext,
    sql: &'a str,
    args: Vec<Arg>,
}

impl std::fmt::Debug for Once<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Once(..)")
    }
}

impl Once<'_> {
    /// Bind the next value.
    #[must_use]
    pub fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    /// The first row, if any.
    pub async fn fetch_optional(self) -> GuardResult<Option<Row>> {
        match self.db {
            TenantDb::Sqlite(p) => {
                let mut q = p.once(self.ctx, self.sql);
                for a in self.args {
                    q = sqlite_bind!(q, a);
                }
                Ok(q.fetch_optional().await?.map(Row::Sqlite))
            }
            TenantDb::Pg(_) | TenantDb::PgUnguarded(_) => {
                let mut tx = self.db.begin(self.ctx).await?;
                let mut q = tx.query(self.sql)?;
                for a in self.args {
                    q = q.bind(a);
                }
                let row = q.fetch_optional().await?;
                tx.commit().await?;
                Ok(row)
            }
        }
    }
}

/// A statement whose rows are their first column as `T`.
pub struct Scalar<'t, T>(Query<'t>, std::marker::PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for Scalar<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scalar(..)")
    }
}

impl<T: Value> Scalar<'_, T> {
    /// Bind the next value.
    #[must_use]
    pub fn bind(self, v: impl Into<Arg>) -> Self {
        Self(self.0.bind(v), self.1)
    }

    /// Exactly one value.
    pub async fn fetch_one(self) -> GuardResult<T> {
        Ok(self.0.fetch_one().await?.try_get_at(0)?)
    }

    /// Every value.
    pub async fn fetch_all(self) -> GuardResult<Vec<T>> {
        let rows = self.0.fetch_all().await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get_at(0))
            .collect::<Result<_, _>>()?)
    }
}
