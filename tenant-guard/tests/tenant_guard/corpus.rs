//! The query guard's statement corpus (`tests/data/guard_corpus_*.sql`, written
//! with the guard) run through real tenant transactions with two tenants'
//! data loaded.
//!
//! Oracle: for each accepted statement, what tenant A gets back (and, for a
//! write, what tenant A's data looks like afterwards) must be identical whether
//! or not tenant B's rows exist, and tenant B's rows must be untouched. Both
//! tenants take a turn as the current tenant. PostgreSQL runs as the non-owner
//! app role with RLS on; SQLite has the guard alone.

use hisn_tenant_guard::Error;
use hisn_tenant_guard::sqlx::{Column, Row};

use crate::common::{TENANT_A, TENANT_B};

const ACCEPT: &str = include_str!("../data/guard_corpus_accept.sql");
const REFUSE: &str = include_str!("../data/guard_corpus_refuse.sql");
const SPEC: &str = "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)";

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub dialect: String,
    pub write: bool,
    pub sql: String,
}

/// Parse the corpus format: blank-line separated entries of `-- key: value`
/// headers followed by the statement.
pub fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut dialect = "both".to_owned();
        let mut write = false;
        let mut sql = Vec::new();
        for line in block.lines() {
            if let Some(h) = line
                .strip_prefix("-- ")
                .and_then(|l| l.split_once(": "))
                .filter(|_| sql.is_empty())
            {
                match h.0 {
                    "name" => name = Some(h.1.trim().to_owned()),
                    "dialect" => dialect = h.1.trim().to_owned(),
                    "kind" => write = h.1.trim() == "write",
                    _ => {}
                }
            } else if !line.starts_with("--") || !sql.is_empty() {
                sql.push(line);
            }
        }
        if let Some(name) = name {
            // May be empty: "the empty statement" is a refusal case.
            let sql = sql.join("\n").trim().to_owned();
            out.push(Entry {
                name,
                dialect,
                write,
                sql,
            });
        }
    }
    out
}

fn for_dialect(text: &str, dialect: &str) -> Vec<Entry> {
    let all = entries(text);
    assert!(all.len() > 10, "corpus too small: {}", all.len());
    all.into_iter()
        .filter(|e| e.dialect == "both" || e.dialect == dialect)
        .collect()
}

/// One row as text, column by column, whatever the column types.
fn row_text<R: Row>(row: &R, cell: impl Fn(&R, usize) -> String) -> String {
    (0..row.columns().len())
        .map(|i| format!("{}={}", row.columns()[i].name(), cell(row, i)))
        .collect::<Vec<_>>()
        .join("|")
}

/// Rows, and for writes the tenant's view afterwards; or the database error.
type Outcome = Result<(Vec<String>, Vec<String>), String>;

/// Fail unless most of the corpus really ran on the database.
fn report(dialect: &str, ran: usize, errored: &[String]) {
    println!(
        "{dialect}: {ran} statement runs succeeded; database errors (same in both runs): {errored:?}"
    );
    assert!(
        errored.len() * 10 <= ran,
        "{dialect}: too many corpus statements fail on the database: {errored:?}"
    );
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

#[cfg(feature = "postgres")]
mod pg {
    use hisn_tenant_guard::db::PgTenantPool;
    use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
    use hisn_tenant_guard::sqlx::postgres::{PgPool, PgRow};
    use hisn_tenant_guard::sqlx::{self, Row};

    use super::*;
    use crate::common::context;
    use crate::common::pg::{Fixture, exec, fixture, key};

    fn cell(row: &PgRow, i: usize) -> String {
        if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<uuid::Uuid>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            return format!("{v:?}");
        }
        "<undecoded>".to_owned()
    }

    /// Reload the data, keeping only the listed tenants' rows.
    async fn reload(fx: &Fixture, keep: &[&str]) {
        exec(&fx.admin, "delete from work_orders; delete from assets").await;
        exec(&fx.admin, &crate::common::data()).await;
        let keep = keep
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(",");
        exec(
            &fx.admin,
            &format!(
                "delete from work_orders where tenant_id not in ({keep}); delete from assets where tenant_id not in ({keep})"
            ),
        )
        .await;
    }

    async fn tenant_rows(admin: &PgPool, tenant: &str) -> Vec<String> {
        let mut out = Vec::new();
        for q in [
            "select id::text, name, serial_no from assets where tenant_id = $1::uuid order by id",
            "select id::text, asset_id::text, title, status from work_orders where tenant_id = $1::uuid order by id",
        ] {
            for r in sqlx::query(q).bind(tenant).fetch_all(admin).await.unwrap() {
                out.push(row_text(&r, cell));
            }
        }
        out
    }

    /// Run one statement as `tenant`; returns its rows and (writes) the tenant's view afterwards.
    async fn run(pool: &PgTenantPool, tenant: &str, e: &Entry) -> Outcome {
        let mut tx = pool.begin(&context(tenant)).await.unwrap();
        let rows = tx
            .query(&e.sql)
            .unwrap_or_else(|err| panic!("{}: guard refused an accepted statement: {err}", e.name))
            .fetch_all()
            .await;
        // A statement the database itself rejects (for example syntax SQLite
        // lacks) leaks nothing; the error must then be the same in both runs.
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => return Err(err.to_string()),
        };
        let rows = sorted(rows.iter().map(|r| row_text(r, cell)).collect());
        let mut view = Vec::new();
        if e.write {
            for q in [
                "select id::text, name, serial_no from assets",
                "select asset_id::text, title, status from work_orders",
            ] {
                for r in tx.query(q).unwrap().fetch_all().await.unwrap() {
                    view.push(row_text(&r, cell));
                }
            }
        }
        tx.commit()
            .await
            .unwrap_or_else(|err| panic!("{}: commit: {err}", e.name));
        Ok((rows, sorted(view)))
    }

    #[tokio::test]
    async fn accepted_corpus_returns_only_the_current_tenants_rows_on_postgres() {
        let Some(fx) = fixture("tg_corpus_pg", 1).await else {
            return;
        };
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Postgres);
        let pool = PgTenantPool::new(fx.app.clone(), guard, key()).unwrap();
        let b_before = tenant_rows(&fx.admin, TENANT_B).await;
        let a_before = tenant_rows(&fx.admin, TENANT_A).await;
        let corpus = for_dialect(ACCEPT, "postgres");
        let (mut ran, mut errored) = (0, Vec::new());
        for e in &corpus {
            for (me, other, other_before) in [
                (TENANT_A, TENANT_B, &b_before),
                (TENANT_B, TENANT_A, &a_before),
            ] {
                reload(&fx, &[TENANT_A, TENANT_B]).await;
                let full = run(&pool, me, e).await;
                assert_eq!(
                    &tenant_rows(&fx.admin, other).await,
                    other_before,
                    "{}: touched the other tenant",
                    e.name
                );
                reload(&fx, &[me]).await;
                let alone = run(&pool, me, e).await;
                assert_eq!(
                    full, alone,
                    "{}: result depends on the other tenant's rows",
                    e.name
                );
                match full {
                    Ok(_) => ran += 1,
                    Err(err) => errored.push(format!("{}: {err}", e.name)),
                }
            }
        }
        report("postgres", ran, &errored);
        reload(&fx, &[TENANT_A, TENANT_B]).await;
        drop(pool);
        fx.teardown().await;
    }

    #[tokio::test]
    async fn refused_corpus_never_reaches_postgres() {
        let Some(fx) = fixture("tg_corpus_pg_refuse", 1).await else {
            return;
        };
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Postgres);
        let pool = PgTenantPool::new(fx.app.clone(), guard, key()).unwrap();
        let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
        for e in for_dialect(REFUSE, "postgres") {
            assert!(
                matches!(tx.query(&e.sql), Err(Error::Refused(_))),
                "{}: accepted",
                e.name
            );
        }
        drop(tx);
        drop(pool);
        fx.teardown().await;
    }
}

#[cfg(feature = "sqlite")]
mod lite {
    use hisn_tenant_guard::db::SqliteTenantPool;
    use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
    use hisn_tenant_guard::sqlx::sqlite::{SqlitePool, SqliteRow};
    use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Row};

    use super::*;
    use crate::common::context;

    fn cell(row: &SqliteRow, i: usize) -> String {
        if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            return format!("{v:?}");
        }
        if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
            return format!("{v:?}");
        }
        "<undecoded>".to_owned()
    }

    async fn reload(raw: &SqlitePool, keep: &[&str]) {
        let keep = keep
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "delete from work_orders; delete from assets; {}
             delete from work_orders where tenant_id not in ({keep}); delete from assets where tenant_id not in ({keep});",
            crate::common::data()
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(raw)
            .await
            .unwrap();
    }

    async fn tenant_rows(raw: &SqlitePool, tenant: &str) -> Vec<String> {
        let mut out = Vec::new();
        for q in [
            "select id, name, serial_no from assets where tenant_id = ? order by id",
            "select id, asset_id, title, status from work_orders where tenant_id = ? order by id",
        ] {
            for r in sqlx::query(q).bind(tenant).fetch_all(raw).await.unwrap() {
                out.push(row_text(&r, cell));
            }
        }
        out
    }

    async fn run(pool: &SqliteTenantPool, tenant: &str, e: &Entry) -> Outcome {
        let mut tx = pool.begin(&context(tenant)).await.unwrap();
        let rows = tx
            .query(&e.sql)
            .unwrap_or_else(|err| panic!("{}: guard refused an accepted statement: {err}", e.name))
            .fetch_all()
            .await;
        // A statement the database itself rejects (for example syntax SQLite
        // lacks) leaks nothing; the error must then be the same in both runs.
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => return Err(err.to_string()),
        };
        let rows = sorted(rows.iter().map(|r| row_text(r, cell)).collect());
        let mut view = Vec::new();
        if e.write {
            for q in [
                "select id, name, serial_no from assets",
                "select asset_id, title, status from work_orders",
            ] {
                for r in tx.query(q).unwrap().fetch_all().await.unwrap() {
                    view.push(row_text(&r, cell));
                }
            }
        }
        tx.commit()
            .await
            .unwrap_or_else(|err| panic!("{}: commit: {err}", e.name));
        Ok((rows, sorted(view)))
    }

    #[tokio::test]
    async fn accepted_corpus_returns_only_the_current_tenants_rows_on_sqlite() {
        let raw = crate::common::lite::pool().await;
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Sqlite);
        let pool = SqliteTenantPool::new(raw.clone(), guard).unwrap();
        let b_before = tenant_rows(&raw, TENANT_B).await;
        let a_before = tenant_rows(&raw, TENANT_A).await;
        let (mut ran, mut errored) = (0, Vec::new());
        for e in &for_dialect(ACCEPT, "sqlite") {
            for (me, other, other_before) in [
                (TENANT_A, TENANT_B, &b_before),
                (TENANT_B, TENANT_A, &a_before),
            ] {
                reload(&raw, &[TENANT_A, TENANT_B]).await;
                let full = run(&pool, me, e).await;
                assert_eq!(
                    &tenant_rows(&raw, other).await,
                    other_before,
                    "{}: touched the other tenant",
                    e.name
                );
                reload(&raw, &[me]).await;
                let alone = run(&pool, me, e).await;
                assert_eq!(
                    full, alone,
                    "{}: result depends on the other tenant's rows",
                    e.name
                );
                match full {
                    Ok(_) => ran += 1,
                    Err(err) => errored.push(format!("{}: {err}", e.name)),
                }
            }
        }
        report("sqlite", ran, &errored);
    }

    #[tokio::test]
    async fn refused_corpus_never_reaches_sqlite() {
        let raw = crate::common::lite::pool().await;
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Sqlite);
        let pool = SqliteTenantPool::new(raw, guard).unwrap();
        let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
        for e in for_dialect(REFUSE, "sqlite") {
            assert!(
                matches!(tx.query(&e.sql), Err(Error::Refused(_))),
                "{}: accepted",
                e.name
            );
        }
    }
}
