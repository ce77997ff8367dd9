//! The evaluation-order tests' PostgreSQL side (no RLS: the superuser's
//! pool, so the guard alone must hold): `eval_order.rs`'s two tables on a
//! fresh test database, a guarded pool over them, tenant A's rolled-back
//! outcome, and the no-oracle assertion.

use hisn_tenant_guard::db::PgTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::Row;
use hisn_tenant_guard::sqlx::postgres::PgRow;

use crate::common::pg::{Fixture, exec, fixture, key};
use crate::common::{TENANT_A, TENANT_B, context};

/// Tenant A's secret and B's (the same as on SQLite).
const A_SECRET: &str = "alpha";
const B_SECRET: &str = "hunter2";

/// `docs` (with a `meta json` column when `with_json`, its value `{}`) and
/// `notes`, A's note 1 pointing at B's doc 2, and a guarded pool over them;
/// `None` (with a printed line) when PostgreSQL is not configured.
pub(crate) async fn docs_and_notes(test: &str, with_json: bool) -> Option<(Fixture, PgTenantPool)> {
    let Some(fx) = fixture(test, 1).await else {
        println!("skipped: HISN_TEST_DATABASE_URL is not set");
        return None;
    };
    let (meta_col, meta_val) = if with_json {
        (", meta json", ", '{}'")
    } else {
        ("", "")
    };
    exec(
        &fx.admin,
        &format!(
            "create table docs (id bigint primary key, tenant_id uuid not null, title text not null,
                secret text not null{meta_col});
             create table notes (id bigint primary key, tenant_id uuid not null, doc_id bigint not null,
                body text not null);
             insert into docs values (1, '{TENANT_A}', 'a doc', '{A_SECRET}'{meta_val}),
                (2, '{TENANT_B}', 'b doc', '{B_SECRET}'{meta_val});
             insert into notes values (1, '{TENANT_A}', 2, 'a note'), (2, '{TENANT_A}', 1, 'a note 2'),
                (3, '{TENANT_B}', 2, 'b note');"
        ),
    )
    .await;
    let meta = if with_json { ",meta" } else { "" };
    let guard = QueryGuard::new(
        TableRegistry::parse_spec(&format!(
            "docs:tenant_id(id,title,secret{meta}),notes:tenant_id(id,doc_id,body)"
        ))
        .unwrap(),
        Dialect::Postgres,
    );
    let pool = PgTenantPool::new(fx.admin.clone(), guard, key()).unwrap();
    Some((fx, pool))
}

fn first(row: &PgRow) -> String {
    row.try_get::<i64, _>(0)
        .map(|n| n.to_string())
        .or_else(|_| row.try_get::<String, _>(0))
        .unwrap_or_default()
}

/// Tenant A's outcome for `sql` through the guard: the rows (first column)
/// or the error; the transaction is rolled back.
pub(crate) async fn outcome(pool: &PgTenantPool, sql: &str) -> Result<Vec<String>, String> {
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let out = match tx.query(sql).unwrap().fetch_all().await {
        Ok(rows) => Ok(rows.iter().map(first).collect()),
        Err(e) => Err(format!("error: {e}")),
    };
    tx.rollback().await.unwrap();
    out
}

/// For each form (the same names, in the same order, in all three lists):
/// A's outcome is the same (and no error) with B's secret as with no match,
/// and an error with A's own (the condition does run on A's rows).
pub(crate) async fn assert_no_form_is_an_oracle(
    pool: &PgTenantPool,
    with_b: Vec<(&'static str, String)>,
    with_none: Vec<(&'static str, String)>,
    with_own: Vec<(&'static str, String)>,
) {
    assert_eq!(with_b.len(), with_none.len());
    assert_eq!(with_b.len(), with_own.len());
    for ((form, b), ((_, none), (_, own))) in
        with_b.into_iter().zip(with_none.into_iter().zip(with_own))
    {
        let b = outcome(pool, &b).await;
        let without = outcome(pool, &none).await;
        assert!(without.is_ok(), "{form}: {without:?}");
        assert_eq!(b, without, "{form}: B's secret changes A's outcome");
        let own_row = outcome(pool, &own).await;
        assert!(own_row.is_err(), "{form}: {own_row:?}");
    }
}
