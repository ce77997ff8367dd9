//! Tenant transactions on SQLite: no RLS, the guard alone scopes.

use hisn_tenant_guard::Error;
use hisn_tenant_guard::db::SqliteTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::{self, Row};

use crate::common::{TABLES, TENANT_A, TENANT_B, context, lite};

fn guard() -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(TABLES)
            .unwrap()
            .shared_table("countries"),
        Dialect::Sqlite,
    )
}

#[tokio::test]
async fn sqlite_tenant_tx_is_scoped_by_the_guard() {
    let raw = lite::pool().await;
    let pool = SqliteTenantPool::new(raw.clone(), guard()).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let rows = tx
        .query("select name from assets order by name")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
    assert_eq!(names, ["pump B1", "secret B2"]);
    let n = tx
        .query("insert into assets (id, name) values (?, ?)")
        .unwrap()
        .bind("b3")
        .bind("new B3")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = tx
        .query("update assets set name = 'pwned' where serial_no = ?")
        .unwrap()
        .bind("S-2")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 0, "tenant A's S-2 must be out of reach");
    let n = tx
        .query("delete from work_orders where title = ?")
        .unwrap()
        .bind("fix A1")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(matches!(
        tx.query("select * from sqlite_master"),
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        tx.query("pragma table_info(assets)"),
        Err(Error::Refused(_))
    ));
    assert!(matches!(tx.query("insert or replace into assets (id, name) values ('a0000000-0000-4000-8000-000000000001', 'x')"), Err(Error::Refused(_))));
    tx.commit().await.unwrap();
    let owner: String = sqlx::query_scalar("select tenant_id from assets where id = 'b3'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(owner, TENANT_B);
    let untouched: i64 = sqlx::query_scalar("select count(*) from assets where name = 'pwned'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(untouched, 0);
    let a_rows: i64 = sqlx::query_scalar("select count(*) from work_orders")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(a_rows, 3);
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
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
}

/// `SqliteTenantPool::once` runs one statement without `BEGIN`/`COMMIT`;
/// it must scope exactly like a statement in a tenant transaction: another
/// tenant's id finds nothing, writes reach only the own tenant, an insert
/// gets the own tenant column, and what the guard refuses (or a wrong
/// parameter count) never reaches the database.
#[tokio::test]
async fn sqlite_once_is_scoped_like_a_tenant_transaction() {
    let raw = lite::pool().await;
    let pool = SqliteTenantPool::new(raw.clone(), guard()).unwrap();
    let b = context(TENANT_B);
    let rows = pool
        .once(&b, "select name from assets order by name")
        .fetch_all()
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
    assert_eq!(names, ["pump B1", "secret B2"]);
    // Tenant A's row by its id, and by a predicate that is true for every row.
    let a_row = pool
        .once(&b, "select name from assets where id = ? or 1 = 1")
        .bind("a0000000-0000-4000-8000-000000000001")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(a_row.len(), 2, "only B's two rows: {a_row:?}");
    let a_one = pool
        .once(&b, "select name from assets where id = ?")
        .bind("a0000000-0000-4000-8000-000000000001")
        .fetch_optional()
        .await
        .unwrap();
    assert!(a_one.is_none());
    let n = pool
        .once(&b, "update assets set name = 'pwned' where serial_no = ?")
        .bind("S-2")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 0, "tenant A's S-2 must be out of reach");
    let n = pool
        .once(&b, "insert into assets (id, name) values (?, ?)")
        .bind("b9")
        .bind("once B9")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    let owner: String = sqlx::query_scalar("select tenant_id from assets where id = 'b9'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(owner, TENANT_B);
    let one = pool
        .once(&b, "select name from assets where id = ?")
        .bind("b9")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(one.get::<String, _>("name"), "once B9");
    // Refused and miscounted statements: typed errors, nothing changed.
    assert!(matches!(
        pool.once(&b, "delete from sqlite_master").execute().await,
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        pool.once(&b, "update assets set name = ? where id = ?")
            .bind("pwned")
            .execute()
            .await,
        Err(Error::ParamCount {
            expected: 2,
            bound: 1
        })
    ));
    let pwned: i64 = sqlx::query_scalar("select count(*) from assets where name = 'pwned'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(pwned, 0);
    let a_rows: Vec<String> =
        sqlx::query_scalar("select name from assets where tenant_id = ? order by name")
            .bind(TENANT_A)
            .fetch_all(&raw)
            .await
            .unwrap();
    assert_eq!(a_rows, ["pump A1", "valve A2"]);
}
