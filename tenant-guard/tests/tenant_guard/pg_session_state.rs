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
//! transaction on a connection that carries such state (fail closed).

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
        "hold_cursor",
        "declare hisn_plant cursor with hold for select name from assets",
    ),
];

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
