//! Session state left on a pooled connection (review of issue 10).
//!
//! Root cause: the tenant context is transaction-local, but a PostgreSQL
//! connection carries *session* state across transactions: temporary tables,
//! views and functions (`pg_temp` is searched before every other schema for
//! relations), session-level settings (`set_config(.., false)`, `SET SESSION`:
//! `search_path`), SQL-level prepared statements, `WITH HOLD` cursors and
//! `LISTEN`. With the guard off, tenant A's statements could plant a temporary
//! `assets` table on the connection; the pool handed the same connection to
//! tenant B, whose guarded `insert into assets` then wrote into A's temporary
//! table (no RLS there), and A read B's row in its next transaction. RLS cannot
//! see this: no tenant table is touched. The pool now refuses to begin a tenant
//! transaction on a connection that carries such state (fail closed), except
//! `WITH HOLD` cursors, which it closes instead (`BEGIN; CLOSE ALL`, in the
//! message that opens every tenant transaction).

use hisn_tenant_guard::db::{PgTenantPool, danger};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};

use crate::common::pg::{fixture, key};
use crate::common::{TENANT_A, TENANT_B, context};
use crate::pg_context::guard;

/// Statements tenant A runs with the guard off that leave session state behind.
const PLANTS: &[(&str, &str)] = &[
    (
        "temp_table_shadows_tenant_table",
        "create temp table assets (id uuid default gen_random_uuid(), tenant_id uuid, name text, serial_no text)",
    ),
    (
        "session_search_path",
        "create temp table assets (id uuid default gen_random_uuid(), tenant_id uuid, name text, serial_no text); \
         select set_config('search_path', 'pg_temp, public', false)",
    ),
    ("sql_prepared_statement", "prepare hisn_plant as select 1"),
    (
        "temp_function",
        "create function pg_temp.hisn_plant() returns int language sql as 'select 1'",
    ),
    ("temp_view", "create temp view hisn_plant as select 1 as x"),
    (
        "temp_object_dropped_again",
        "create temp table hisn_plant (x int); drop table hisn_plant",
    ),
    ("listen_channel", "listen hisn_plant"),
    (
        "search_path_only",
        "select set_config('search_path', 'public', false)",
    ),
    (
        "session_role",
        "select set_config('role', current_user, false)",
    ),
];

/// Every plant makes the next `begin` on that connection fail, and the
/// connection is closed, not reused: the `begin` after it runs on another
/// backend. Fails on the code before the session check (the plants reached
/// the next tenant) and would fail if a dirty connection went back to the
/// pool (same backend pid). Since the check runs inside the `set_config`
/// statement, the backend ends itself (`pg_terminate_backend`) and the
/// pool's release ping drops it.
#[tokio::test]
async fn a_dirty_connection_is_refused_then_closed() {
    let Some(fx) = fixture("tg_session_closed", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    for (name, plant) in PLANTS {
        let mut tx = pool
            .begin(&context(TENANT_A))
            .await
            .unwrap_or_else(|e| panic!("{name}: a clean connection was refused: {e}"));
        let conn = danger::unguarded(&mut tx);
        let planted_on: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe((*plant).to_owned()))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        tx.commit().await.unwrap();
        let refused = pool.begin(&context(TENANT_B)).await;
        assert!(
            matches!(refused, Err(hisn_tenant_guard::Error::Config(_))),
            "{name}: {:?}",
            refused.map(|_| ())
        );
        let mut tx = pool
            .begin(&context(TENANT_B))
            .await
            .unwrap_or_else(|e| panic!("{name}: no clean connection after the refusal: {e}"));
        let now_on: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(&mut *danger::unguarded(&mut tx))
            .await
            .unwrap();
        assert_ne!(
            planted_on, now_on,
            "{name}: the dirty connection was reused"
        );
        tx.rollback().await.unwrap();
    }
    fx.teardown().await;
}

#[tokio::test]
async fn session_state_planted_by_one_tenant_never_reaches_the_next() {
    let Some(fx) = fixture("tg_session_state", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    for (name, plant) in PLANTS {
        // Tenant A, guard off, plants state and commits.
        // (Once a plant is refused, the connection stays refused: later plants
        // find no transaction to begin, which is the fail-closed outcome.)
        let Ok(mut tx) = pool.begin(&context(TENANT_A)).await else {
            continue;
        };
        let planted = sqlx::raw_sql(AssertSqlSafe((*plant).to_owned()))
            .execute(&mut *danger::unguarded(&mut tx))
            .await;
        let _ = tx.commit().await;
        if planted.is_err() {
            continue;
        }
        // Tenant B, guarded, on the only connection: writes a row.
        let marker = format!("B-session-{name}");
        if let Ok(mut tx) = pool.begin(&context(TENANT_B)).await {
            let wrote = tx
                .query("insert into assets (name) values ($1)")
                .unwrap()
                .bind(marker.as_str())
                .execute()
                .await;
            if wrote.is_ok() {
                tx.commit().await.unwrap();
            }
        }
        // Tenant A again, guard off: B's row must be out of reach.
        let Ok(mut tx) = pool.begin(&context(TENANT_A)).await else {
            continue;
        };
        let conn = danger::unguarded(&mut tx);
        let seen: Option<i64> = sqlx::query_scalar(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname like 'pg_temp%' and c.relname = 'assets'",
        )
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
        let leaked: i64 = if seen.unwrap_or(0) > 0 {
            sqlx::query_scalar("select count(*) from pg_temp.assets where name = $1")
                .bind(marker.as_str())
                .fetch_one(&mut *conn)
                .await
                .unwrap_or(0)
        } else {
            0
        };
        assert_eq!(
            leaked, 0,
            "{name}: tenant B's write landed in A's session state"
        );
        let _ = tx.rollback().await;
        // B's row, if written, is in B's real table (read as the superuser).
        let real: i64 = sqlx::query_scalar("select count(*) from public.assets where name = $1")
            .bind(marker.as_str())
            .fetch_one(&fx.admin)
            .await
            .unwrap();
        assert!(real <= 1, "{name}");
    }
    fx.teardown().await;
}

/// A `WITH HOLD` cursor survives the transaction that declared it. Tenant
/// A's unguarded SQL declares one (over `assets`, so it holds A's rows, and
/// one over a query that would report the next transaction's tenant); tenant
/// B's transaction, on the same connection, must find no cursor at all: not
/// in `pg_cursors`, not by name (`FETCH`), and its context must be its own.
///
/// Root cause this guards: the per-transaction session check used to refuse
/// such a connection by scanning `pg_cursors`; it now closes every cursor
/// with `CLOSE ALL` in the same message as `BEGIN` (cheaper than the scan),
/// so this test fails if that statement is dropped or stops closing
/// holdable cursors. A cursor B declares in its own transaction still works.
#[tokio::test]
async fn a_hold_cursor_is_closed_before_the_next_tenant_runs() {
    let Some(fx) = fixture("tg_session_cursor", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let planted_on: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(
        "declare hisn_plant cursor with hold for select name from assets; \
         declare hisn_plant_ctx cursor with hold for \
           select public.hisn_tenant_guard_current_tenant()::text",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let now_on: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(planted_on, now_on, "the test needs the same connection");
    // The unnamed portal is this query's own (extended protocol).
    let cursors: Vec<String> =
        sqlx::query_scalar("select name || ': ' || statement from pg_cursors where name <> ''")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert!(
        cursors.is_empty(),
        "a cursor of tenant A's transaction is still open: {cursors:?}"
    );
    // By name, inside a savepoint so that the expected error leaves B's
    // transaction usable.
    for name in ["hisn_plant", "hisn_plant_ctx"] {
        sqlx::raw_sql("savepoint s")
            .execute(&mut *conn)
            .await
            .unwrap();
        let fetched = sqlx::raw_sql(AssertSqlSafe(format!("fetch all from {name}")))
            .execute(&mut *conn)
            .await;
        let code = match &fetched {
            Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        };
        assert_eq!(code.as_deref(), Some("34000"), "{name}: {fetched:?}");
        sqlx::raw_sql("rollback to savepoint s")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let tenant: Option<String> =
        sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(tenant.as_deref(), Some(TENANT_B));
    // A cursor of B's own transaction is untouched (CLOSE ALL runs only at BEGIN).
    sqlx::raw_sql("declare own cursor for select 1")
        .execute(&mut *conn)
        .await
        .unwrap();
    let own: i32 = sqlx::query_scalar("fetch next from own")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(own, 1);
    tx.rollback().await.unwrap();
    fx.teardown().await;
}
