//! What a new user reaches for (issue 10, adoption gaps): sqlx's typed API,
//! an audit record in the same transaction, and a pool that reads the
//! catalog at start (columns for the guard; SQLite `ON CONFLICT REPLACE`
//! refused).

use futures::TryStreamExt as _;
use hisn_tenant_guard::Error;
use hisn_tenant_guard::TenantId;
use hisn_tenant_guard::db::{SqliteTenantPool, TxAuditSink};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool};

use crate::common::{TABLES, TENANT_A, TENANT_B, context, lite};

fn lite_guard() -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(TABLES)
            .unwrap()
            .shared_table("countries"),
        Dialect::Sqlite,
    )
}

/// sqlx's typed API. Root cause: the tenant transaction only offered raw rows,
/// so users reached for `sqlx::query_as` on a pool of their own, outside the
/// guard. Now `query_as`, `query_scalar` and streaming `fetch` go through the
/// guard like `query`.
#[tokio::test]
async fn query_as_query_scalar_and_streaming_fetch_pass_the_guard() {
    let pool = SqliteTenantPool::new(lite::pool().await, lite_guard()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let rows: Vec<(String, String)> = tx
        .query_as("SELECT id, name FROM assets ORDER BY name")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["pump A1", "valve A2"]
    );
    let n: i64 = tx
        .query_scalar("SELECT count(*) FROM assets")
        .unwrap()
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 2);
    let one: Option<String> = tx
        .query_scalar("SELECT name FROM assets WHERE serial_no = ?")
        .unwrap()
        .bind("S-1")
        .fetch_optional()
        .await
        .unwrap();
    assert_eq!(one.as_deref(), Some("pump A1"));
    let streamed: Vec<String> = tx
        .query_scalar("SELECT title FROM work_orders")
        .unwrap()
        .fetch()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, ["fix A1"]);
    let raw: Vec<_> = tx
        .query("SELECT name FROM assets")
        .unwrap()
        .fetch()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(raw.len(), 2);
    // Still the guard: refused statements and wrong parameter counts.
    assert!(matches!(
        tx.query_as::<(String,)>("SELECT name FROM sqlite_master"),
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        tx.query_scalar::<String>("SELECT name FROM assets WHERE id = ?")
            .unwrap()
            .fetch_all()
            .await,
        Err(Error::ParamCount { .. })
    ));
    tx.rollback().await.unwrap();
}

/// An audit sink writing to its own table on the transaction's connection.
#[derive(Debug)]
struct AuditTable {
    fail: bool,
}

impl TxAuditSink<Sqlite, str> for AuditTable {
    async fn append(
        &self,
        conn: &mut SqliteConnection,
        tenant: TenantId,
        event: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.fail {
            return Err("audit store refused".into());
        }
        sqlx::query("INSERT INTO audit_events (tenant_id, event) VALUES (?1, ?2)")
            .bind(tenant.to_string())
            .bind(event)
            .execute(conn)
            .await?;
        Ok(())
    }
}

async fn audit_rows(pool: &SqlitePool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT tenant_id, event FROM audit_events ORDER BY rowid")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Audit in the same transaction. Root cause: with no sanctioned way to reach
/// the transaction, an audit record was written on another connection, so a
/// rolled-back change still had its record and a committed change could lose
/// it. `append_audit` writes on the transaction's connection.
#[tokio::test]
async fn audit_record_commits_and_rolls_back_with_the_change() {
    let raw = lite::pool().await;
    sqlx::raw_sql(AssertSqlSafe(
        "CREATE TABLE audit_events (tenant_id TEXT NOT NULL, event TEXT NOT NULL)".to_owned(),
    ))
    .execute(&raw)
    .await
    .unwrap();
    let pool = SqliteTenantPool::new(raw.clone(), lite_guard()).unwrap();
    let sink = AuditTable { fail: false };

    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    tx.query("UPDATE assets SET name = ? WHERE serial_no = ?")
        .unwrap()
        .bind("renamed")
        .bind("S-2")
        .execute()
        .await
        .unwrap();
    tx.append_audit(&sink, "asset S-2 renamed").await.unwrap();
    tx.rollback().await.unwrap();
    assert!(audit_rows(&raw).await.is_empty());

    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    tx.query("DELETE FROM work_orders WHERE title = ?")
        .unwrap()
        .bind("fix B2")
        .execute()
        .await
        .unwrap();
    tx.append_audit(&sink, "work order deleted").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        audit_rows(&raw).await,
        [(TENANT_B.to_owned(), "work order deleted".to_owned())]
    );

    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    assert!(matches!(
        tx.append_audit(&AuditTable { fail: true }, "x").await,
        Err(Error::AuditHook)
    ));
}

/// Columns from the catalog. Root cause: the guard could not tell a column
/// from a function called by attribute notation (`x.f` is `f(x)` on
/// PostgreSQL) without knowing the table's columns; the pool now loads them
/// before its first transaction.
#[tokio::test]
async fn pool_start_loads_columns_for_the_guard() {
    let pool = SqliteTenantPool::new(lite::pool().await, lite_guard()).unwrap();
    assert!(pool.guard().registry().columns("assets").is_none());
    pool.start().await.unwrap();
    let cols: Vec<&str> = pool.guard().registry().columns("assets").unwrap().collect();
    for c in ["id", "tenant_id", "name", "serial_no"] {
        assert!(cols.contains(&c), "{cols:?}");
    }
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let names: Vec<String> = tx
        .query_scalar("SELECT a.name FROM assets a ORDER BY a.name")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(names, ["pump A1", "valve A2"]);
    assert!(matches!(
        tx.query("SELECT a.nonexistent FROM assets a"),
        Err(Error::Refused(_))
    ));
    drop(tx);

    // A registered table that does not exist: the pool refuses to start.
    let guard = QueryGuard::new(
        TableRegistry::parse_spec("assets:tenant_id,missing:tenant_id").unwrap(),
        Dialect::Sqlite,
    );
    let pool = SqliteTenantPool::new(lite::pool().await, guard).unwrap();
    assert!(matches!(pool.start().await, Err(Error::Config(_))));
    assert!(matches!(
        pool.begin(&context(TENANT_A)).await,
        Err(Error::Config(_))
    ));
}

/// `ON CONFLICT REPLACE` in a SQLite schema. Root cause: a `REPLACE`
/// conflict resolution declared on a column or table constraint applies to a
/// plain `INSERT`: the guard scopes the insert to tenant A, but SQLite then
/// deletes whichever row conflicts on the unique key — tenant B's included —
/// and the guard never sees a `REPLACE` keyword to refuse. The pool refuses to
/// start on such a schema (fail closed).
#[tokio::test]
async fn sqlite_schema_with_on_conflict_replace_refuses_to_start() {
    for ddl in [
        "CREATE TABLE items (id TEXT PRIMARY KEY ON CONFLICT REPLACE, tenant_id TEXT NOT NULL, name TEXT)",
        "CREATE TABLE items (id TEXT, tenant_id TEXT NOT NULL, name TEXT, UNIQUE (id) ON CONFLICT REPLACE)",
        "CREATE TABLE items (id TEXT UNIQUE on /* c */ conflict\n replace, tenant_id TEXT NOT NULL, name TEXT)",
    ] {
        let raw = lite::pool().await;
        sqlx::raw_sql(AssertSqlSafe(ddl.to_owned()))
            .execute(&raw)
            .await
            .unwrap();
        let guard = QueryGuard::new(
            TableRegistry::parse_spec("items:tenant_id").unwrap(),
            Dialect::Sqlite,
        );
        let pool = SqliteTenantPool::new(raw, guard).unwrap();
        assert!(matches!(pool.start().await, Err(Error::Config(_))), "{ddl}");
        assert!(
            matches!(pool.begin(&context(TENANT_A)).await, Err(Error::Config(_))),
            "{ddl}"
        );
    }
    // The same table without REPLACE starts.
    let raw = lite::pool().await;
    sqlx::raw_sql(AssertSqlSafe(
        "CREATE TABLE items (id TEXT PRIMARY KEY ON CONFLICT ABORT, tenant_id TEXT NOT NULL, name TEXT)"
            .to_owned(),
    ))
    .execute(&raw)
    .await
    .unwrap();
    let guard = QueryGuard::new(
        TableRegistry::parse_spec("items:tenant_id").unwrap(),
        Dialect::Sqlite,
    );
    assert!(
        SqliteTenantPool::new(raw, guard)
            .unwrap()
            .start()
            .await
            .is_ok()
    );
}

/// PostgreSQL: columns come from `pg_attribute` as the app role sees them.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_pool_start_loads_columns() {
    use hisn_tenant_guard::db::PgTenantPool;
    let Some(fx) = crate::common::pg::fixture("tg_adopt_pg_columns", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(
        fx.app.clone(),
        crate::pg_context::guard(),
        crate::common::pg::key(),
    )
    .unwrap();
    pool.start().await.unwrap();
    let cols: Vec<&str> = pool
        .guard()
        .registry()
        .columns("work_orders")
        .unwrap()
        .collect();
    assert!(
        cols.contains(&"asset_id") && cols.contains(&"status"),
        "{cols:?}"
    );
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let titles: Vec<String> = tx
        .query_scalar("SELECT w.title FROM work_orders w ORDER BY w.title")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(titles, ["fix B1", "fix B2"]);
    assert!(matches!(
        tx.query("SELECT w.pg_sleep FROM work_orders w"),
        Err(Error::Refused(_))
    ));
    drop(tx);
    drop(pool);
    // A role whose sessions read backslashes as escapes: refused at start.
    crate::common::pg::exec(
        &fx.admin,
        &format!(
            "alter role \"{}\" set standard_conforming_strings = off",
            fx.role
        ),
    )
    .await;
    let app = hisn_tenant_guard::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(fx.db.connect_options().username(&fx.role))
        .await
        .unwrap();
    let pool = PgTenantPool::new(
        app.clone(),
        crate::pg_context::guard(),
        crate::common::pg::key(),
    )
    .unwrap();
    assert!(matches!(pool.start().await, Err(Error::Config(_))));
    drop(pool);
    app.close().await;
    fx.teardown().await;
}
