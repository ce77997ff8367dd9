//! The embedded SQLite database: connection, versioned migrations, the tenant
//! pool (every statement through tenant-guard's query guard) and the platform
//! tables ([`platform`]).

pub mod platform;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hisn_tenant_guard::db::SqliteTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Executor, Row};

/// Tables scoped by the query guard (tenant column `tenant_id`).
pub const TENANT_TABLES: &str =
    "assets:tenant_id,work_orders:tenant_id,integrations:tenant_id,attachments:tenant_id";

/// The migrations, in order (embedded, so the binary needs no files).
pub const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "init", include_str!("../../migrations/0001_init.sql"))];

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

/// Apply the migrations not yet applied (recorded in `hisn_example_migrations`).
pub async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    pool.execute(
        "CREATE TABLE IF NOT EXISTS hisn_example_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .await?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        let done = sqlx::query("SELECT version FROM hisn_example_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO hisn_example_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        )
        .bind(version)
        .bind(name)
        .bind(crate::state::now_unix_i64())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The guarded tenant pool over `pool` (started: columns loaded from the catalog).
pub async fn tenant_pool(pool: SqlitePool) -> Result<SqliteTenantPool, hisn_tenant_guard::Error> {
    let registry = TableRegistry::parse_spec(TENANT_TABLES)?;
    let guarded = SqliteTenantPool::new(pool, QueryGuard::new(registry, Dialect::Sqlite))?;
    guarded.start().await?;
    Ok(guarded)
}

/// Highest applied migration version (for `/health`).
pub async fn schema_version(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM hisn_example_migrations")
        .fetch_one(pool)
        .await?;
    row.try_get("v")
}
