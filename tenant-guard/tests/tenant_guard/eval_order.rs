//! Evaluation order on real SQLite (issue 10): the database may evaluate the
//! statement's own conditions on other tenants' rows before, or instead of
//! first, the tenant predicate. A condition that raises an error only for
//! some rows (`json('x')` on a guess about a secret) was then an oracle over
//! rows the statement can never read. The guard now wraps every impure
//! conjunct in `CASE WHEN <tenant predicates> THEN .. END` and fences derived
//! tables and CTEs (`src/guard/rewrite/order.rs`).
//!
//! Each form: tenant A's outcome is the same whether or not the guess matches
//! tenant B's secret, and (positive control) the same statement fails when
//! the guess matches A's own secret. The text the guard used to emit, run as
//! written, is the oracle (second positive control). The schema is the one
//! that showed it: rowid tables with no index led by the tenant column, and
//! an index on the secret (SQLite evaluates the terms an index covers before
//! it reads the row and its tenant).

use hisn_tenant_guard::db::SqliteTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Row};

use crate::common::{TENANT_A, TENANT_B, context};

pub(crate) const A_SECRET: &str = "alpha";
pub(crate) const B_SECRET: &str = "hunter2";
pub(crate) const NO_MATCH: &str = "nothing";

pub(crate) async fn raw_pool() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    // A's note 1 points at B's doc 2: a join looks B's row up by rowid.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "create table docs (id integer primary key, tenant_id text not null, title text not null,
            secret text not null);
         create table notes (id integer primary key, tenant_id text not null, doc_id integer not null,
            body text not null);
         create index docs_secret on docs (secret);
         insert into docs values (1, '{TENANT_A}', 'a doc', '{A_SECRET}'),
            (2, '{TENANT_B}', 'b doc', '{B_SECRET}');
         insert into notes values (1, '{TENANT_A}', 2, 'a note'), (2, '{TENANT_A}', 1, 'a note 2'),
            (3, '{TENANT_B}', 2, 'b note');"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool
}

pub(crate) fn guard() -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(
            "docs:tenant_id(id,title,secret),notes:tenant_id(id,doc_id,body)",
        )
        .unwrap(),
        Dialect::Sqlite,
    )
}

/// `json(CASE WHEN <secret> = '<guess>' THEN 'x' ELSE '1' END) = '1'`: an
/// error ("malformed JSON") exactly when it runs on a row whose secret is
/// the guess.
fn oracle(secret: &str, guess: &str) -> String {
    format!("json(CASE WHEN {secret} = '{guess}' THEN 'x' ELSE '1' END) = '1'")
}

/// The PostgreSQL form: a text-to-integer cast that fails on `'x'` (not
/// constant, so not folded at plan time).
#[cfg(feature = "postgres")]
fn pg_oracle(secret: &str, guess: &str) -> String {
    format!("CAST(CASE WHEN {secret} = '{guess}' THEN 'x' ELSE '1' END AS INTEGER) = 1")
}

/// Every form of the attack, for `guess`, with SQLite's oracle.
fn forms(guess: &str) -> Vec<(&'static str, String)> {
    forms_with(guess, oracle)
}

/// Every form of the attack, for `guess`, with `oracle`.
fn forms_with(guess: &str, oracle: fn(&str, &str) -> String) -> Vec<(&'static str, String)> {
    let d = oracle("d.secret", guess);
    vec![
        ("WHERE", format!("SELECT d.id FROM docs d WHERE {d}")),
        (
            "WHERE with a key",
            format!("SELECT d.id FROM docs d WHERE d.id IN (1, 2) AND {d}"),
        ),
        (
            "OR",
            format!("SELECT d.id FROM docs d WHERE d.id = 99 OR {d}"),
        ),
        (
            "NOT",
            format!("SELECT d.id FROM docs d WHERE NOT ({d} AND d.id = 99)"),
        ),
        (
            "inner join ON",
            format!("SELECT n.id FROM notes n JOIN docs d ON d.id = n.doc_id AND {d}"),
        ),
        (
            "left join ON",
            // `d.title` keeps the join (SQLite drops a LEFT JOIN nothing reads).
            format!(
                "SELECT n.id, d.title FROM notes n LEFT JOIN docs d ON d.id = n.doc_id AND {d}"
            ),
        ),
        (
            // `d.id = d.id` rejects null rows: SQLite turns the LEFT JOIN
            // into an inner one and its ON terms into WHERE terms.
            "WHERE over a left join's nullable side",
            format!(
                "SELECT n.id FROM notes n LEFT JOIN docs d ON d.id = n.doc_id WHERE d.id = d.id AND {d}"
            ),
        ),
        (
            "WHERE over a left join's nullable side and an index",
            format!(
                "SELECT n.id FROM notes n LEFT JOIN docs d ON d.id = n.doc_id WHERE d.secret >= '' AND {d}"
            ),
        ),
        (
            "correlated EXISTS",
            format!(
                "SELECT n.id FROM notes n WHERE EXISTS (SELECT 1 FROM docs d WHERE d.id = n.doc_id AND {d})"
            ),
        ),
        (
            "scalar subquery",
            format!(
                "SELECT n.id FROM notes n WHERE (SELECT count(*) FROM docs d WHERE d.id = n.doc_id AND {d}) = 0"
            ),
        ),
        (
            "derived table, outer WHERE",
            format!(
                "SELECT t.id FROM (SELECT id, secret FROM docs) t WHERE {}",
                oracle("t.secret", guess)
            ),
        ),
        (
            // The index on `secret` answers both terms before the row (and
            // its tenant) is read, once the derived table is flattened.
            "derived table, outer WHERE over an index",
            format!(
                "SELECT t.id FROM (SELECT id, secret FROM docs) t WHERE t.secret >= '' AND {}",
                oracle("t.secret", guess)
            ),
        ),
        (
            "derived table projection",
            format!(
                "SELECT t.id FROM (SELECT id, {} AS j FROM docs) t WHERE t.j",
                oracle("secret", guess)
            ),
        ),
        (
            "CTE projection",
            format!(
                "WITH c AS (SELECT id, {} AS j FROM docs) SELECT c.id FROM c WHERE c.j",
                oracle("secret", guess)
            ),
        ),
        (
            "CTE, outer WHERE",
            format!(
                "WITH c AS (SELECT id, secret FROM docs) SELECT c.id FROM c WHERE {}",
                oracle("c.secret", guess)
            ),
        ),
        (
            "CTE, outer WHERE over an index",
            format!(
                "WITH c AS (SELECT id, secret FROM docs) SELECT c.id FROM c WHERE c.secret >= '' AND {}",
                oracle("c.secret", guess)
            ),
        ),
        (
            // Moved into WHERE by the planner when nothing pins it.
            "HAVING over an index",
            format!(
                "SELECT d.secret FROM docs d GROUP BY d.secret HAVING d.secret >= '' AND {}",
                oracle("d.secret", guess)
            ),
        ),
        (
            "HAVING",
            format!(
                "SELECT d.secret FROM docs d GROUP BY d.secret HAVING {}",
                oracle("d.secret", guess)
            ),
        ),
        (
            "UPDATE WHERE",
            format!(
                "UPDATE docs SET title = 'x' WHERE {}",
                oracle("secret", guess)
            ),
        ),
        (
            "DELETE WHERE",
            format!("DELETE FROM docs WHERE {}", oracle("secret", guess)),
        ),
    ]
}

pub(crate) fn first(row: &SqliteRow) -> String {
    row.try_get::<i64, _>(0)
        .map(|n| n.to_string())
        .or_else(|_| row.try_get::<String, _>(0))
        .unwrap_or_default()
}

/// Tenant A's outcome for `sql` through the guard: the rows (first column)
/// or "error"; the transaction is rolled back.
pub(crate) async fn outcome(pool: &SqliteTenantPool, sql: &str) -> Result<Vec<String>, String> {
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let rows = tx.query(sql).unwrap().fetch_all().await;
    let out = match rows {
        Ok(rows) => Ok(rows.iter().map(first).collect()),
        Err(e) => Err(format!("error: {e}")),
    };
    tx.rollback().await.unwrap();
    out
}

/// For every form `forms(guess)` names: tenant A's outcome is the same
/// (and no error) whether the guess is B's secret or matches nothing, and an
/// error for A's own secret (the positive control: the condition does run
/// on A's rows).
pub(crate) async fn assert_no_form_is_an_oracle(
    pool: &SqliteTenantPool,
    forms: impl Fn(&str) -> Vec<(&'static str, String)>,
) {
    for ((form, b), ((_, none), (_, own))) in forms(B_SECRET)
        .into_iter()
        .zip(forms(NO_MATCH).into_iter().zip(forms(A_SECRET)))
    {
        let with_b = outcome(pool, &b).await;
        let without = outcome(pool, &none).await;
        assert!(without.is_ok(), "{form}: {without:?}");
        assert_eq!(with_b, without, "{form}: B's secret changes A's outcome");
        let own_row = outcome(pool, &own).await;
        assert!(own_row.is_err(), "{form}: {own_row:?}");
    }
}

#[tokio::test]
async fn no_condition_of_tenant_a_runs_on_tenant_bs_rows_on_sqlite() {
    let raw = raw_pool().await;
    let pool = SqliteTenantPool::new(raw.clone(), guard()).unwrap();
    assert_no_form_is_an_oracle(&pool, forms).await;
    // The rows are A's and only A's.
    assert_eq!(
        outcome(&pool, &forms(NO_MATCH)[0].1).await,
        Ok(vec!["1".to_owned()])
    );
    assert_eq!(
        outcome(&pool, &forms(NO_MATCH)[5].1).await,
        Ok(vec!["1".to_owned(), "2".to_owned()])
    );
    let left = "SELECT n.id, d.title FROM notes n LEFT JOIN docs d ON d.id = n.doc_id \
                AND json_valid(d.title) = 0 ORDER BY n.id";
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let rows = tx.query(left).unwrap().fetch_all().await.unwrap();
    let got: Vec<(i64, Option<String>)> = rows
        .iter()
        .map(|r| (r.get::<i64, _>(0), r.get::<Option<String>, _>(1)))
        .collect();
    assert_eq!(got, [(1, None), (2, Some("a doc".to_owned()))]);
    tx.rollback().await.unwrap();
    // Nothing was written.
    let titles: Vec<String> = sqlx::query_scalar("select title from docs order by id")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(titles, ["a doc", "b doc"]);
}

/// Positive control for the test itself: the text the guard emitted before
/// (tenant predicate appended, no `CASE`, no fence) is an oracle on this
/// schema, for the plain WHERE; so is a
/// `CASE` guard that names the tenant column directly.
#[tokio::test]
async fn the_unguarded_text_is_an_oracle_on_this_schema() {
    let raw = raw_pool().await;
    let old = |guess: &str| {
        let d = oracle("d.secret", guess);
        [
            format!("SELECT d.id FROM docs d WHERE ({d}) AND d.tenant_id = ?1"),
            // The plain guard this change first tried: SQLite's constant
            // propagation turns `d.tenant_id` into `?1` inside the CASE.
            format!(
                "SELECT d.id FROM docs d WHERE (CASE WHEN d.tenant_id = ?1 THEN ({d}) END) \
                 AND d.tenant_id = ?1"
            ),
        ]
    };
    for (b, none) in old(B_SECRET).into_iter().zip(old(NO_MATCH)) {
        let run = |sql: String| {
            let raw = raw.clone();
            async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(TENANT_A)
                    .fetch_all(&raw)
                    .await
                    .map(|rows| rows.len())
            }
        };
        assert!(run(none.clone()).await.is_ok(), "{none}");
        assert!(run(b.clone()).await.is_err(), "not an oracle: {b}");
    }
}

/// Pure conditions stay unwrapped: a key lookup keeps its index, with or
/// without an impure conjunct beside it.
#[tokio::test]
async fn key_lookups_still_search_the_index_on_sqlite() {
    let raw = raw_pool().await;
    let guard = guard();
    for sql in [
        "SELECT title FROM docs WHERE id = ?",
        "SELECT title FROM docs d WHERE d.id = ? AND json_valid(d.title) = 0",
        "SELECT n.body FROM notes n JOIN docs d ON d.id = n.doc_id AND length(d.title) > 1 WHERE n.id = ?",
    ] {
        assert_searches_an_index(&raw, &guard, sql).await;
    }
}

/// `sql`, scoped by `guard` for tenant A with `1` for its key, searches an
/// index and scans no table: the guard's `(SELECT ..)` shows as a correlated
/// subquery over a constant row.
pub(crate) async fn assert_searches_an_index(raw: &SqlitePool, guard: &QueryGuard, sql: &str) {
    let scoped = guard.scope(sql).unwrap();
    let plan: Vec<String> = sqlx::query(AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {}",
        scoped.sql()
    )))
    .bind(1_i64)
    .bind(TENANT_A)
    .fetch_all(raw)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(3))
    .collect();
    assert!(
        plan.iter().any(|p| p.starts_with("SEARCH"))
            && plan
                .iter()
                .all(|p| !p.starts_with("SCAN") || p == "SCAN CONSTANT ROW"),
        "{sql}: {plan:?} ({})",
        scoped.sql()
    );
}

/// Tenant B's rows are untouched by A's writes whatever the guess.
#[tokio::test]
async fn tenant_b_keeps_its_rows_on_sqlite() {
    let raw = raw_pool().await;
    let pool = SqliteTenantPool::new(raw.clone(), guard()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let n = tx
        .query("DELETE FROM docs WHERE json_valid(title) = 0")
        .unwrap()
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
    let left: Vec<String> = sqlx::query_scalar("select tenant_id from docs")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(left, [TENANT_B]);
}

/// The same forms on real PostgreSQL with RLS absent (the superuser's pool:
/// the guard alone must hold). Skipped when PostgreSQL is not configured.
/// On these tables PostgreSQL's cost order already runs the one-operator
/// tenant predicate first (the forms do not leak without the `CASE` guard
/// either), so this pins that the guarded, fenced texts run and keep their
/// meaning there; the positive controls show each condition does run.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn no_condition_of_tenant_a_runs_on_tenant_bs_rows_on_postgres_without_rls() {
    use crate::eval_order_pg::{assert_no_form_is_an_oracle, docs_and_notes, outcome};

    let Some((fx, pool)) = docs_and_notes("tg_eval_order", false).await else {
        return;
    };
    assert_no_form_is_an_oracle(
        &pool,
        forms_with(B_SECRET, pg_oracle),
        forms_with(NO_MATCH, pg_oracle),
        forms_with(A_SECRET, pg_oracle),
    )
    .await;
    assert_eq!(
        outcome(&pool, &forms_with(NO_MATCH, pg_oracle)[0].1).await,
        Ok(vec!["1".to_owned()])
    );
    fx.teardown().await;
}
