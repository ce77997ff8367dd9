//! The database: embedded SQLite by default, PostgreSQL with row-level
//! security when `DATABASE_URL` is set ([`pg`]).
//!
//! Handlers are written once against three types:
//! - [`TenantDb`] / [`Tx`]: tenant data, only through tenant-guard's tenant
//!   transactions (every statement through the query guard; on PostgreSQL
//!   also under RLS);
//! - [`Platform`]: the platform tables (tenants, accounts, API keys), whose
//!   every query lives in [`platform`] and names the tenant; on PostgreSQL
//!   a pool of its own role, since tenant transactions may not reach them
//!   (see [`pg`]);
//! - [`Admin`]: the audited escape hatch of the operator console.
//!
//! SQL is written with `?` placeholders in the subset both dialects read the
//! same way; [`sql`] binds values and decodes rows for either.

pub mod mfa;
pub mod pg;
pub mod platform;
pub mod sql;
pub mod tenant;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hisn_tenant_guard::TenantId;
use hisn_tenant_guard::db::{PlatformAdmin, SqliteTenantPool, unscoped};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Executor, Postgres, Sqlite};

pub use sql::{Arg, Row, Stmt, Value};
pub use tenant::{Once, Query, Scalar, TenantDb, Tx};

/// Tables scoped by the query guard and, on PostgreSQL, by row-level
/// security (tenant column `tenant_id`).
pub const TENANT_TABLES: &str =
    "assets:tenant_id,work_orders:tenant_id,integrations:tenant_id,attachments:tenant_id";

/// One versioned migration, in both dialects.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version (applied in order, once).
    pub version: i64,
    /// Name.
    pub name: &'static str,
    /// SQLite text.
    pub sqlite: &'static str,
    /// PostgreSQL text.
    pub postgres: &'static str,
}

/// The migrations, in order (embedded, so the binary needs no files).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../migrations/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "mfa",
        sqlite: include_str!("../../migrations/0002_mfa.sql"),
        postgres: include_str!("../../migrations/postgres/0002_mfa.sql"),
    },
    Migration {
        version: 3,
        name: "attachment_content",
        sqlite: include_str!("../../migrations/0003_attachment_content.sql"),
        postgres: include_str!("../../migrations/postgres/0003_attachment_content.sql"),
    },
    Migration {
        version: 4,
        name: "webhook_events",
        sqlite: include_str!("../../migrations/0004_webhook_events.sql"),
        postgres: include_str!("../../migrations/postgres/0004_webhook_events.sql"),
    },
];

/// The latest migration version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The migrations table (the same text is valid on both databases).
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS hisn_example_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Open (creating) the SQLite file `path`: WAL, foreign keys on, busy timeout.
pub async fn open_sqlite(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let opts = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
}

/// Apply the SQLite migrations not yet applied (recorded in `hisn_example_migrations`).
pub async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    pool.execute(MIGRATIONS_TABLE).await?;
    for m in MIGRATIONS {
        let mut tx = pool.begin().await?;
        let done = sqlx::query("SELECT version FROM hisn_example_migrations WHERE version = ?")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(m.sqlite))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO hisn_example_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::state::now_unix_i64())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The guarded SQLite tenant pool over `pool` (started: columns loaded from the catalog).
pub async fn sqlite_tenant_pool(pool: SqlitePool) -> Result<TenantDb, hisn_tenant_guard::Error> {
    let registry = TableRegistry::parse_spec(TENANT_TABLES)?;
    let guarded = SqliteTenantPool::new(pool, QueryGuard::new(registry, Dialect::Sqlite))?;
    guarded.start().await?;
    Ok(TenantDb::Sqlite(guarded))
}

/// The platform tables' pool.
#[derive(Debug, Clone)]
pub enum Platform {
    /// SQLite (the same file as the tenant tables).
    Sqlite(SqlitePool),
    /// PostgreSQL, connected as the platform role
    /// (`HISN_PLATFORM_DATABASE_URL`), never as the application role.
    Pg(PgPool),
}

/// A platform transaction.
#[derive(Debug)]
pub enum PlatformTx {
    /// SQLite.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Pg(sqlx::Transaction<'static, Postgres>),
}

/// The four ways to run a [`Stmt`], on a pool or a transaction.
macro_rules! runner {
    ([$($vis:tt)*] $sqlite:pat => $se:expr, $pg:pat => $pe:expr) => {
        /// Run `s`; the number of rows affected.
        $($vis)* async fn execute(&mut self, s: Stmt) -> Result<u64, sqlx::Error> {
            Ok(match self {
                $sqlite => s.sqlite().execute($se).await?.rows_affected(),
                $pg => s.pg().execute($pe).await?.rows_affected(),
            })
        }

        /// Run `s`; its first row, if any.
        $($vis)* async fn fetch_optional(&mut self, s: Stmt) -> Result<Option<Row>, sqlx::Error> {
            Ok(match self {
                $sqlite => s.sqlite().fetch_optional($se).await?.map(Row::Sqlite),
                $pg => s.pg().fetch_optional($pe).await?.map(Row::Pg),
            })
        }

        /// Run `s`; exactly one row.
        $($vis)* async fn fetch_one(&mut self, s: Stmt) -> Result<Row, sqlx::Error> {
            Ok(match self {
                $sqlite => Row::Sqlite(s.sqlite().fetch_one($se).await?),
                $pg => Row::Pg(s.pg().fetch_one($pe).await?),
            })
        }

        /// Run `s`; every row.
        $($vis)* async fn fetch_all(&mut self, s: Stmt) -> Result<Vec<Row>, sqlx::Error> {
            Ok(match self {
                $sqlite => s
                    .sqlite()
                    .fetch_all($se)
                    .await?
                    .into_iter()
                    .map(Row::Sqlite)
                    .collect(),
                $pg => s
                    .pg()
                    .fetch_all($pe)
                    .await?
                    .into_iter()
                    .map(Row::Pg)
                    .collect(),
            })
        }
    };
}

/// The pool as a statement runner.
#[derive(Debug)]
struct On(Platform);

impl On {
    runner!([] On(Platform::Sqlite(p)) => &*p, On(Platform::Pg(p)) => &*p);
}

impl PlatformTx {
    runner!([pub] PlatformTx::Sqlite(t) => &mut **t, PlatformTx::Pg(t) => &mut **t);

    /// Commit.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(t) => t.commit().await,
            Self::Pg(t) => t.commit().await,
        }
    }
}

impl Platform {
    /// Run `s`; the number of rows affected.
    pub async fn execute(&self, s: Stmt) -> Result<u64, sqlx::Error> {
        On(self.clone()).execute(s).await
    }

    /// Run `s`; its first row, if any.
    pub async fn fetch_optional(&self, s: Stmt) -> Result<Option<Row>, sqlx::Error> {
        On(self.clone()).fetch_optional(s).await
    }

    /// Run `s`; exactly one row.
    pub async fn fetch_one(&self, s: Stmt) -> Result<Row, sqlx::Error> {
        On(self.clone()).fetch_one(s).await
    }

    /// Run `s`; every row.
    pub async fn fetch_all(&self, s: Stmt) -> Result<Vec<Row>, sqlx::Error> {
        On(self.clone()).fetch_all(s).await
    }

    /// Begin a transaction.
    pub async fn begin(&self) -> Result<PlatformTx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(p) => PlatformTx::Sqlite(p.begin().await?),
            Self::Pg(p) => PlatformTx::Pg(p.begin().await?),
        })
    }

    /// The SQLite pool, in the embedded mode (tests and tools read the file with it).
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Pg(_) => None,
        }
    }

    /// The PostgreSQL pool (platform role), in the PostgreSQL mode.
    pub fn as_pg(&self) -> Option<&PgPool> {
        match self {
            Self::Pg(p) => Some(p),
            Self::Sqlite(_) => None,
        }
    }
}

/// The operator console's escape hatch.
#[derive(Debug)]
pub enum Admin {
    /// SQLite: the database file's own pool.
    Sqlite(PlatformAdmin<Sqlite>),
    /// PostgreSQL: the pool of `HISN_ADMIN_DATABASE_URL` (a role that may
    /// read across tenants: BYPASSRLS).
    Pg(PlatformAdmin<Postgres>),
    /// PostgreSQL without `HISN_ADMIN_DATABASE_URL`: the console answers `503`.
    Unavailable,
}

/// The tenant tables' names.
pub const TENANT_TABLE_NAMES: [&str; 4] = ["assets", "work_orders", "integrations", "attachments"];

impl Admin {
    /// Row counts of `tenant` in every tenant table, through the escape hatch
    /// (audited by its hook before the connection is handed out). `None`
    /// when no admin pool is configured.
    pub async fn tenant_counts(
        &self,
        tenant: TenantId,
        actor: &str,
        reason: &str,
    ) -> Result<Option<Vec<(&'static str, i64)>>, crate::error::ApiError> {
        let mut out = Vec::new();
        match self {
            Self::Unavailable => return Ok(None),
            Self::Sqlite(a) => {
                let mut conn = unscoped(a, Some(tenant), actor, reason).await?;
                for table in TENANT_TABLE_NAMES {
                    let row = count(table, tenant).sqlite().fetch_one(&mut *conn).await?;
                    out.push((table, Row::Sqlite(row).try_get_at(0)?));
                }
            }
            Self::Pg(a) => {
                let mut conn = unscoped(a, Some(tenant), actor, reason).await?;
                for table in TENANT_TABLE_NAMES {
                    let row = count(table, tenant).pg().fetch_one(&mut *conn).await?;
                    out.push((table, Row::Pg(row).try_get_at(0)?));
                }
            }
        }
        Ok(Some(out))
    }
}

fn count(table: &str, tenant: TenantId) -> Stmt {
    Stmt::new(format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = ?")).bind(tenant.as_uuid())
}

/// Highest applied migration version (for `/health`).
pub async fn schema_version(db: &Platform) -> Result<i64, sqlx::Error> {
    db.fetch_one(Stmt::new(
        "SELECT COALESCE(MAX(version), 0) AS v FROM hisn_example_migrations",
    ))
    .await?
    .try_get("v")
}
