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
