//! Attack classes of the session-5 outside review (issue 10), run on real
//! SQLite through the tenant pool, where the guard is the only layer: names
//! written as string constants, and `ON CONFLICT .. DO UPDATE .. WHERE`
//! evaluated on another tenant's row. Each test has a positive control: the
//! text the guard used to emit, run as written, does what the guard must
//! prevent. Unit tests: `src/guard/rewrite/tests_review.rs`. With
//! PostgreSQL too: a sequence value a previous borrower leaves on the
//! connection (and SQLite's per-connection row counters).

use hisn_tenant_guard::Error;
use hisn_tenant_guard::db::SqliteTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};

use crate::common::{TABLES, TENANT_A, TENANT_B, context, lite};

fn guard(spec: &str) -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(spec)
            .unwrap()
            .shared_table("countries"),
        Dialect::Sqlite,
    )
}

async fn owners(raw: &sqlx::SqlitePool) -> Vec<(String, String)> {
    sqlx::query_as("select id, tenant_id from assets order by id")
        .fetch_all(raw)
        .await
        .unwrap()
}

/// SQLite reads a string constant where it expects a name as that name:
/// `UPDATE assets SET 'tenant_id' = ..` moves rows to another tenant and
/// `INSERT INTO assets ('tenant_id', ..)` writes into one (SQLite keeps the
/// first of two values for a column). The guard refuses every such name.
#[tokio::test]
async fn string_constants_as_names_never_move_or_plant_rows_on_sqlite() {
    let raw = lite::pool().await;
    let before = owners(&raw).await;
    // Positive control: the text the guard used to emit for
    // `UPDATE assets SET 'tenant_id' = '<B>' WHERE serial_no = 'S-2'` moves
    // tenant A's row.
    let mut control = raw.begin().await.unwrap();
    let moved = sqlx::query(AssertSqlSafe(format!(
        "UPDATE assets SET 'tenant_id' = '{TENANT_B}' WHERE (serial_no = 'S-2') AND assets.tenant_id = ?1"
    )))
    .bind(TENANT_A)
    .execute(&mut *control)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(moved, 1);
    control.rollback().await.unwrap();

    let pool = SqliteTenantPool::new(raw.clone(), guard(TABLES)).unwrap();
    let a = context(TENANT_A);
    for sql in [
        format!("UPDATE assets SET 'tenant_id' = '{TENANT_B}' WHERE serial_no = 'S-2'"),
        format!("UPDATE assets SET (name, 'tenant_id') = ('x', '{TENANT_B}')"),
        format!("INSERT INTO assets ('tenant_id', id, name) VALUES ('{TENANT_B}', 'planted', 'x')"),
        format!(
            "INSERT INTO assets (id, name) VALUES ('a0000000-0000-4000-8000-000000000001', 'x') \
             ON CONFLICT (tenant_id, id) DO UPDATE SET 'tenant_id' = '{TENANT_B}'"
        ),
    ] {
        let mut tx = pool.begin(&a).await.unwrap();
        assert!(matches!(tx.query(&sql), Err(Error::Refused(_))), "{sql}");
        tx.commit().await.unwrap();
    }
    assert_eq!(owners(&raw).await, before);
}

/// With a unique key that leaves out the tenant column, the row an upsert
/// conflicts with may be another tenant's, and `DO UPDATE .. WHERE` runs on
/// it. The guard's predicate now runs first, so the statement's condition
/// never sees that row: guessing tenant B's secret right or wrong gives the
/// same answer (nothing updated, no error).
#[tokio::test]
async fn on_conflict_where_is_no_oracle_over_another_tenants_row_on_sqlite() {
    let raw = lite::pool().await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "create table badges (code text primary key, tenant_id text not null, secret text not null);
         insert into badges values ('B-1', '{TENANT_B}', 'hunter2');"
    )))
    .execute(&raw)
    .await
    .unwrap();
    let upsert = |guess: &str| {
        format!(
            "INSERT INTO badges (code, secret) VALUES ('B-1', 'x') ON CONFLICT (code) DO UPDATE \
             SET secret = 'pwned' WHERE json(CASE WHEN badges.secret = '{guess}' THEN 'x' ELSE '1' END) = 1"
        )
    };
    // Positive control: the order the guard used to emit is an oracle.
    let old = |guess: &str| {
        format!(
            "INSERT INTO badges (code, secret, tenant_id) VALUES ('B-1', 'x', ?1) ON CONFLICT (code) \
             DO UPDATE SET secret = 'pwned' WHERE (json(CASE WHEN badges.secret = '{guess}' THEN 'x' ELSE '1' END) = 1) \
             AND badges.tenant_id = ?1"
        )
    };
    let run_old = |sql: String| {
        let raw = raw.clone();
        async move {
            sqlx::query(AssertSqlSafe(sql))
                .bind(TENANT_A)
                .execute(&raw)
                .await
                .map(|r| r.rows_affected())
        }
    };
    assert!(run_old(old("hunter2")).await.is_err());
    assert_eq!(run_old(old("wrong")).await.unwrap(), 0);

    let pool = SqliteTenantPool::new(raw.clone(), guard("badges:tenant_id(code,secret)")).unwrap();
    let a = context(TENANT_A);
    for guess in ["hunter2", "wrong"] {
        let mut tx = pool.begin(&a).await.unwrap();
        let n = tx.query(&upsert(guess)).unwrap().execute().await.unwrap();
        assert_eq!(n, 0, "{guess}");
        tx.commit().await.unwrap();
    }
    let secret: String = sqlx::query_scalar("select secret from badges where code = 'B-1'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(secret, "hunter2");
}

/// SQLite keeps `last_insert_rowid()`, `changes()` and `total_changes()`
/// per connection, not per transaction: on a pooled connection they report
/// what the previous borrower (another tenant) wrote. The guard refuses
/// them, so tenant A learns nothing of tenant B's insert.
#[tokio::test]
async fn connection_row_counters_never_reach_the_next_tenant_on_sqlite() {
    let raw = lite::pool().await;
    let pool = SqliteTenantPool::new(raw.clone(), guard(TABLES)).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let n = tx
        .query("INSERT INTO assets (id, name) VALUES ('b-new', 'secret')")
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    // Positive control: on the pool's only connection, B's write is still
    // visible to whoever reads the counters next.
    let (rowid, changes): (i64, i64) = sqlx::query_as("select last_insert_rowid(), changes()")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(rowid > 0);
    assert_eq!(changes, 1);

    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    for sql in [
        "SELECT last_insert_rowid()",
        "SELECT changes() FROM assets",
        "SELECT name FROM assets WHERE total_changes() > 0",
    ] {
        assert!(matches!(tx.query(sql), Err(Error::Refused(_))), "{sql}");
    }
    tx.commit().await.unwrap();
}

/// Sequence values are session state: `lastval()` (which the guard lets
/// through) returned the value the connection's previous borrower, usually
/// another tenant, drew last. The pool's `BEGIN` message now ends with
/// `DISCARD SEQUENCES`; within a transaction `lastval` works as before.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn lastval_never_reads_the_previous_borrowers_value_on_postgres() {
    use hisn_tenant_guard::db::PgTenantPool;
    use hisn_tenant_guard::sqlx::Row;

    use crate::common::pg::{exec_as, fixture, key};

    let Some(fx) = fixture("tg_attack_lastval", 1).await else {
        return;
    };
    exec_as(
        &fx.admin,
        &fx.owner,
        &format!(
            "create sequence hisn_attack_seq; grant usage on sequence hisn_attack_seq to \"{}\"",
            fx.role
        ),
    )
    .await;
    // Positive control: without the discard, a later transaction on the same
    // connection reads the value.
    let mut conn = fx.app.acquire().await.unwrap();
    let drawn: i64 = sqlx::query_scalar("select nextval('hisn_attack_seq')")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let mut later = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let seen: i64 = sqlx::query_scalar("select lastval()")
        .fetch_one(&mut *later)
        .await
        .unwrap();
    assert_eq!(seen, drawn);
    later.rollback().await.unwrap();
    drop(conn);

    let pool = PgTenantPool::new(fx.app.clone(), crate::pg_context::guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let b_drew: i64 = tx
        .query("SELECT nextval('hisn_attack_seq')")
        .unwrap()
        .fetch_one()
        .await
        .unwrap()
        .get(0);
    let b_sees: i64 = tx
        .query("SELECT lastval()")
        .unwrap()
        .fetch_one()
        .await
        .unwrap()
        .get(0);
    assert_eq!(b_sees, b_drew);
    tx.commit().await.unwrap();
    // Tenant A, next on the only connection: nothing to read.
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    assert!(
        tx.query("SELECT lastval()")
            .unwrap()
            .fetch_one()
            .await
            .is_err()
    );
    drop(tx);
    drop(pool);
    fx.teardown().await;
}

/// `currtid2(relation, tid)` follows a row's update chain by relation name
/// and tuple id with no row level security: from tenant A's transaction it
/// reported that tenant B's row at a given tid had been updated, and where
/// its new version lies. The guard refuses it (and `currtid`) in any case
/// and schema; RLS alone lets it through, which the positive control shows.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn currtid_never_follows_another_tenants_rows_on_postgres() {
    use hisn_tenant_guard::db::{PgTenantPool, danger};

    use crate::common::pg::{fixture, key};

    let Some(fx) = fixture("tg_attack_currtid", 1).await else {
        return;
    };
    const B2: &str = "b0000000-0000-4000-8000-000000000002";
    let old: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "select ctid::text from assets where id = '{B2}'"
    )))
    .fetch_one(&fx.admin)
    .await
    .unwrap();
    let pool = PgTenantPool::new(fx.app.clone(), crate::pg_context::guard(), key()).unwrap();
    // Tenant B updates its own row through the guard (the legitimate form).
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let n = tx
        .query(&format!(
            "UPDATE assets SET name = 'secret B2 v2' WHERE id = '{B2}'"
        ))
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();

    // Positive control, RLS alone: tenant A sees none of B's rows, yet
    // currtid2 moves B's old tid to its new version.
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let visible: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "select count(*) from assets where id = '{B2}'"
    )))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(visible, 0);
    let latest: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "select currtid2('assets', '{old}'::tid)::text"
    )))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_ne!(latest, old, "currtid2 followed B's update chain");
    // The guard refuses it, in any case and schema.
    for sql in [
        format!("SELECT currtid2('assets', '{old}'::tid)"),
        format!(
            "SELECT name FROM assets WHERE pg_catalog.CURRTID2('assets', '{old}'::tid) IS NOT NULL"
        ),
        format!("SELECT currtid('assets'::regclass, '{old}'::tid)"),
    ] {
        assert!(matches!(tx.query(&sql), Err(Error::Refused(_))), "{sql}");
    }
    // Tenant A's own reads still work.
    let own = tx
        .query("SELECT name FROM assets")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(own.len(), 2);
    tx.rollback().await.unwrap();
    drop(pool);
    fx.teardown().await;
}
