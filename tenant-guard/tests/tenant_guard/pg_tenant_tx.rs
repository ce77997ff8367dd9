//! Tenant transactions on real PostgreSQL: the guard scopes, RLS backs it up,
//! and no tenant survives the transaction on a pooled connection.

use hisn_tenant_guard::Error;
use hisn_tenant_guard::db::PgTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::{self, PgPool, Row};

use crate::common::pg::{fixture, key, tenant_b_snapshot};
use crate::common::{TABLES, TENANT_A, TENANT_B, context};

fn guard() -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(TABLES)
            .unwrap()
            .shared_table("countries"),
        Dialect::Postgres,
    )
}

/// What a raw borrower of the same pool sees: the setting and the rows.
async fn leftover(pool: &PgPool) -> (Option<String>, i64) {
    let mut conn = pool.acquire().await.unwrap();
    let setting: Option<String> =
        sqlx::query_scalar("select current_setting('hisn.tenant_context', true)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let rows: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (setting.filter(|s| !s.is_empty()), rows)
}

#[tokio::test]
async fn tenant_tx_sees_only_its_rows_and_writes_its_tenant() {
    let Some(fx) = fixture("tg_pg_tx_scope", 2).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let a = context(TENANT_A);

    let mut tx = pool.begin(&a).await.unwrap();
    let rows = tx
        .query("select name from assets order by name")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
    assert_eq!(names, ["pump A1", "valve A2"]);
    // Another tenant's id in a predicate finds nothing.
    let r = tx
        .query("select name from assets where id = $1")
        .unwrap()
        .bind(uuid::Uuid::parse_str("b0000000-0000-4000-8000-000000000002").unwrap())
        .fetch_optional()
        .await
        .unwrap();
    assert!(r.is_none());
    // Insert: the guard supplies the tenant column.
    let n = tx
        .query("insert into assets (name) values ($1)")
        .unwrap()
        .bind("new A3")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Cross-tenant update/delete reach nothing.
    let n = tx
        .query("update assets set name = 'pwned' where name = $1")
        .unwrap()
        .bind("pump B1")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = tx
        .query("delete from work_orders where title = $1")
        .unwrap()
        .bind("fix B1")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Shared tables are readable.
    let c = tx
        .query("select count(*) as n from countries")
        .unwrap()
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(c.get::<i64, _>("n"), 2);
    tx.commit().await.unwrap();

    let inserted: Option<uuid::Uuid> =
        sqlx::query_scalar("select tenant_id from assets where name = 'new A3'")
            .fetch_optional(&fx.admin)
            .await
            .unwrap();
    assert_eq!(inserted.unwrap().to_string(), TENANT_A);
    let b_names: i64 = sqlx::query_scalar("select count(*) from assets where name = 'pwned'")
        .fetch_one(&fx.admin)
        .await
        .unwrap();
    assert_eq!(b_names, 0);
    drop(pool);
    fx.teardown().await;
}

/// `PgTenantPool::once`: one statement in its own tenant transaction, with
/// the signed context RLS reads (the guard and RLS both hold: A reads its
/// rows only, a write aimed at B changes nothing, an insert is A's), and the
/// connection is back in the pool with no tenant afterwards.
#[tokio::test]
async fn once_runs_in_a_tenant_transaction_and_leaves_no_context() {
    let Some(fx) = fixture("tg_pg_once", 1).await else {
        return;
    };
    let before_b = tenant_b_snapshot(&fx.admin).await;
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let a = context(TENANT_A);
    let rows = pool
        .once(&a, "select name from assets order by name")
        .fetch_all()
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
    assert_eq!(names, ["pump A1", "valve A2"]);
    let b_row = pool
        .once(&a, "select name from assets where id = $1")
        .bind(uuid::Uuid::parse_str("b0000000-0000-4000-8000-000000000002").unwrap())
        .fetch_optional()
        .await
        .unwrap();
    assert!(b_row.is_none());
    let n = pool
        .once(&a, "update assets set name = 'pwned' where name = $1")
        .bind("pump B1")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = pool
        .once(&a, "insert into assets (name) values ($1)")
        .bind("once A9")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1, "committed by once");
    let owner: uuid::Uuid =
        sqlx::query_scalar("select tenant_id from assets where name = 'once A9'")
            .fetch_one(&fx.admin)
            .await
            .unwrap();
    assert_eq!(owner.to_string(), TENANT_A);
    assert!(matches!(
        pool.once(&a, "select set_config('hisn.tenant_context', $1, false)")
            .bind("x")
            .fetch_one()
            .await,
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        pool.once(&a, "select name from assets where id = $1")
            .fetch_one()
            .await,
        Err(Error::ParamCount {
            expected: 1,
            bound: 0
        })
    ));
    // The single pooled connection carries no tenant context afterwards.
    let (setting, visible) = leftover(&fx.app).await;
    assert!(setting.unwrap_or_default().is_empty());
    assert_eq!(visible, 0);
    assert_eq!(tenant_b_snapshot(&fx.admin).await, before_b);
    drop(pool);
    fx.teardown().await;
}

#[tokio::test]
async fn refused_statements_and_wrong_param_counts_never_run() {
    let Some(fx) = fixture("tg_pg_tx_refuse", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    for sql in [
        "select set_config('hisn.tenant_context', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', true)",
        "set hisn.tenant_context = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
        "reset hisn.tenant_context",
        "select * from assets; select * from work_orders",
        "insert into assets (tenant_id, name) values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'x')",
        "update assets set tenant_id = $1",
        "truncate assets",
        "drop table assets",
        "select * from pg_class",
    ] {
        assert!(
            matches!(tx.query(sql), Err(Error::Refused(_))),
            "accepted: {sql}"
        );
    }
    let r = tx
        .query("select name from assets where id = $1")
        .unwrap()
        .fetch_all()
        .await;
    assert!(matches!(
        r,
        Err(Error::ParamCount {
            expected: 1,
            bound: 0
        })
    ));
    let r = tx
        .query("select name from assets")
        .unwrap()
        .bind(1_i32)
        .fetch_all()
        .await;
    assert!(matches!(
        r,
        Err(Error::ParamCount {
            expected: 0,
            bound: 1
        })
    ));
    // The transaction is still usable and still scoped.
    assert_eq!(
        tx.query("select id from assets")
            .unwrap()
            .fetch_all()
            .await
            .unwrap()
            .len(),
        2
    );
    tx.rollback().await.unwrap();
    // A guard for the wrong dialect is a configuration error.
    let sqlite_guard = QueryGuard::new(TableRegistry::parse_spec(TABLES).unwrap(), Dialect::Sqlite);
    assert!(matches!(
        PgTenantPool::new(fx.app.clone(), sqlite_guard, key()),
        Err(Error::Config(_))
    ));
    drop(pool);
    fx.teardown().await;
}

#[tokio::test]
async fn pooled_connection_carries_no_tenant_after_the_transaction() {
    // One connection, so every borrower gets the one the tenant transaction used.
    let Some(fx) = fixture("tg_pg_tx_pool_leak", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let a = context(TENANT_A);

    // Committed.
    let mut tx = pool.begin(&a).await.unwrap();
    assert_eq!(
        tx.query("select id from assets")
            .unwrap()
            .fetch_all()
            .await
            .unwrap()
            .len(),
        2
    );
    tx.commit().await.unwrap();
    assert_eq!(leftover(&fx.app).await, (None, 0));

    // Rolled back.
    let mut tx = pool.begin(&a).await.unwrap();
    assert_eq!(
        tx.query("select id from assets")
            .unwrap()
            .fetch_all()
            .await
            .unwrap()
            .len(),
        2
    );
    tx.rollback().await.unwrap();
    assert_eq!(leftover(&fx.app).await, (None, 0));

    // Dropped mid-way (a cancelled request): sqlx rolls it back on reuse.
    let mut tx = pool.begin(&a).await.unwrap();
    assert_eq!(
        tx.query("select id from assets")
            .unwrap()
            .fetch_all()
            .await
            .unwrap()
            .len(),
        2
    );
    drop(tx);
    assert_eq!(leftover(&fx.app).await, (None, 0));

    // Cancelled while a statement is in flight.
    // A self cross join of 24 scoped copies of assets: 2^24 rows to count.
    let from: Vec<String> = (0..24).map(|i| format!("assets a{i}")).collect();
    let slow = format!("select count(*) from {}", from.join(", "));
    let fut = async {
        let mut tx = pool.begin(&a).await.unwrap();
        tx.query(&slow).unwrap().fetch_all().await
    };
    let r = tokio::time::timeout(std::time::Duration::from_millis(50), fut).await;
    assert!(r.is_err(), "the long statement should have been cancelled");
    assert_eq!(leftover(&fx.app).await, (None, 0));

    // And the next tenant gets its own rows only.
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let rows = tx
        .query("select name from assets order by name")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
    assert_eq!(names, ["pump B1", "secret B2"]);
    drop(tx);
    drop(pool);
    fx.teardown().await;
}

#[tokio::test]
async fn guard_alone_scopes_when_rls_is_bypassed() {
    // Layer independence: on the superuser pool (RLS bypassed) the guard still scopes.
    let Some(fx) = fixture("tg_pg_tx_guard_alone", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.admin.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let rows = tx
        .query(
            "select w.title from work_orders w join assets a on a.id = w.asset_id order by w.title",
        )
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let titles: Vec<String> = rows.iter().map(|r| r.get("title")).collect();
    assert_eq!(titles, ["fix B1", "fix B2"]);
    drop(tx);
    drop(pool);
    fx.teardown().await;
}
