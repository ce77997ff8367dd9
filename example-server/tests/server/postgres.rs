//! PostgreSQL mode: the isolation suite with both database layers, with the
//! query guard off (RLS alone) and without RLS (the guard alone); RLS alone
//! against SQL the guard would have refused; start-up refused whenever
//! `rls::verify` has findings or the context key is not the database's.

use std::sync::Arc;

use hisn_example_server::danger::{Layers, build_with_layers};
use hisn_tenant_guard::db::danger::context_without_token;
use hisn_tenant_guard::{TenantId, UserId};

use axum::http::StatusCode;

use crate::common::{request, test_config};
use crate::isolation::suite;
use crate::services::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_suite_on_postgres_with_guard_and_rls() {
    let Some(db) = TestDb::create("isolation_suite_on_postgres_with_guard_and_rls").await else {
        return;
    };
    let srv = db.server(Layers::ALL).await;
    assert!(srv.app.state.db.guarded());
    suite(&srv).await;
    // The operator console reads across the RLS boundary only through the
    // escape hatch's own role (HISN_ADMIN_DATABASE_URL), audited first.
    let b: String = sqlx::query_scalar("SELECT id FROM tenants WHERE name = 'Beta'")
        .fetch_one(&db.root)
        .await
        .unwrap();
    let mut req = request(
        "GET",
        &format!("/operator/tenants/{b}/summary"),
        Some(&srv.operator_token()),
        None,
    );
    req.headers_mut()
        .insert("x-reason", "ticket 42: billing dispute".parse().unwrap());
    let r = srv.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["counts"]["assets"], 1, "{r:?}");
    assert_eq!(r.body["counts"]["attachments"], 1, "{r:?}");
    assert_eq!(srv.last_audit(&b).await["action"], "security.escape_hatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_suite_on_postgres_with_rls_alone() {
    let Some(db) = TestDb::create("isolation_suite_on_postgres_with_rls_alone").await else {
        return;
    };
    let srv = db.server(Layers::without_query_guard()).await;
    assert!(!srv.app.state.db.guarded());
    suite(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_suite_on_postgres_with_the_guard_alone() {
    let Some(db) = TestDb::create("isolation_suite_on_postgres_with_the_guard_alone").await else {
        return;
    };
    let srv = db.server(Layers::without_rls()).await;
    // No RLS here: the suite passing means the guard held alone.
    let rls: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relrowsecurity AND relname = 'assets'",
    )
    .fetch_one(&db.root)
    .await
    .unwrap();
    assert_eq!(rls, 0);
    suite(&srv).await;
}

/// The suite is sensitive: with the guard off and one tenant table left
/// without RLS, it fails (so its passing above means RLS held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_suite_fails_when_a_table_lacks_rls_and_the_guard_is_off() {
    use futures::FutureExt as _;
    let Some(db) =
        TestDb::create("isolation_suite_fails_when_a_table_lacks_rls_and_the_guard_is_off").await
    else {
        return;
    };
    let srv = db.server(Layers::without_query_guard()).await;
    sabotage(&db, "ALTER TABLE work_orders DISABLE ROW LEVEL SECURITY").await;
    let outcome = std::panic::AssertUnwindSafe(suite(&srv))
        .catch_unwind()
        .await;
    let Err(panic) = outcome else {
        panic!("the isolation suite passed with work_orders unprotected");
    };
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("revealed B's"), "{msg}");
}

fn ctx(tenant: &str) -> hisn_tenant_guard::TenantContext {
    let t: TenantId = tenant.parse().unwrap();
    context_without_token(t, UserId::from_uuid(uuid::Uuid::new_v4()).unwrap())
}

/// With the guard off, statements reach the database as written: what the
/// guard would refuse or rewrite is left to RLS, and RLS holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_alone_holds_against_unscoped_sql_and_forged_contexts() {
    let Some(db) = TestDb::create("rls_alone_holds_against_unscoped_sql_and_forged_contexts").await
    else {
        return;
    };
    let srv = db.server(Layers::without_query_guard()).await;
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    srv.seed(&a).await;
    srv.seed(&b).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM assets")
        .fetch_one(&db.root)
        .await
        .unwrap();
    assert_eq!(total, 2);
    let state = &srv.app.state;
    // No tenant predicate: RLS filters to A's row.
    let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
    let n: i64 = tx
        .query_scalar("SELECT COUNT(*) FROM assets")
        .unwrap()
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = tx
        .query("UPDATE assets SET location = 'moved'")
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1, "only A's row is visible to UPDATE");
    drop(tx);
    // Writing B's tenant id: WITH CHECK refuses it.
    let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
    let r = tx
        .query("INSERT INTO assets (tenant_id, id, name, serial, location, created_by, created_at, updated_at) VALUES (CAST(? AS uuid), 'x', 'n', 's', 'l', 'c', 0, 0)")
        .unwrap()
        .bind(b.id.clone())
        .execute()
        .await;
    assert!(r.is_err(), "RLS let A insert a row for B");
    drop(tx);
    // A forged context (no MAC from the key) sees nothing.
    let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
    let forged = format!("v1.{}.99999999999.{}", b.id, "0".repeat(64));
    tx.query("SELECT set_config('hisn.tenant_context', ?, true)")
        .unwrap()
        .bind(forged)
        .fetch_one()
        .await
        .unwrap();
    let n: i64 = tx
        .query_scalar("SELECT COUNT(*) FROM assets")
        .unwrap()
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 0);
    drop(tx);
    // B's row is untouched.
    let loc: String = sqlx::query_scalar("SELECT location FROM assets WHERE tenant_id = $1::uuid")
        .bind(&b.id)
        .fetch_one(&db.root)
        .await
        .unwrap();
    assert_eq!(loc, "Riyadh");
}

async fn start(db: &Arc<TestDb>, dir: &std::path::Path, migrate: bool) -> Result<(), String> {
    let mut c = test_config(dir);
    db.configure(&mut c, migrate);
    build_with_layers(c, Layers::ALL)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn sabotage(db: &TestDb, sql: &str) {
    let sql = sql
        .replace("{app}", &db.app_role())
        .replace("{owner}", &format!("{}_owner", db.name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&db.root)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_is_refused_when_rls_verify_has_findings() {
    let Some(db) = TestDb::create("start_up_is_refused_when_rls_verify_has_findings").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    start(&db, dir.path(), true).await.unwrap();
    // Without the owner URL the schema is taken as it is: it starts.
    start(&db, dir.path(), false).await.unwrap();
    // 1. A policy dropped.
    sabotage(&db, "DROP POLICY hisn_tenant_isolation ON work_orders").await;
    let err = start(&db, dir.path(), false).await.unwrap_err();
    assert!(err.contains("row-level security check failed"), "{err}");
    assert!(err.contains("work_orders"), "{err}");
    // The owner's migration reinstalls it.
    start(&db, dir.path(), true).await.unwrap();
    // 2. RLS no longer forced (the owner would bypass it).
    sabotage(&db, "ALTER TABLE assets NO FORCE ROW LEVEL SECURITY").await;
    let err = start(&db, dir.path(), false).await.unwrap_err();
    assert!(err.contains("row-level security check failed"), "{err}");
    start(&db, dir.path(), true).await.unwrap();
    // 3. The application role owns a tenant table.
    sabotage(&db, "ALTER TABLE attachments OWNER TO {app}").await;
    let err = start(&db, dir.path(), false).await.unwrap_err();
    assert!(err.contains("row-level security check failed"), "{err}");
    assert!(err.contains("attachments"), "{err}");
    sabotage(&db, "ALTER TABLE attachments OWNER TO {owner}").await;
    // 4. The application role with BYPASSRLS.
    sabotage(&db, "ALTER ROLE {app} BYPASSRLS").await;
    let err = start(&db, dir.path(), false).await.unwrap_err();
    assert!(err.contains("row-level security check failed"), "{err}");
    sabotage(&db, "ALTER ROLE {app} NOBYPASSRLS").await;
    start(&db, dir.path(), false).await.unwrap();
    // 5. A table without RLS the application role can read, not one of the
    // declared global tables (a copy of tenant rows under any name).
    sabotage(
        &db,
        "CREATE TABLE asset_copies (owner text, body jsonb); GRANT SELECT, INSERT ON asset_copies TO {app}",
    )
    .await;
    let err = start(&db, dir.path(), false).await.unwrap_err();
    assert!(err.contains("row-level security check failed"), "{err}");
    assert!(err.contains("asset_copies"), "{err}");
    sabotage(&db, "DROP TABLE asset_copies").await;
    start(&db, dir.path(), false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_context_key_is_refused() {
    let Some(db) = TestDb::create("an_instance_with_another_context_key_is_refused").await else {
        return;
    };
    let first = tempfile::tempdir().unwrap();
    start(&db, first.path(), true).await.unwrap();
    // Its own generated keys, not the deployment's: every tenant would see nothing.
    let other = tempfile::tempdir().unwrap();
    let err = start(&db, other.path(), false).await.unwrap_err();
    assert!(err.contains("context key"), "{err}");
}
