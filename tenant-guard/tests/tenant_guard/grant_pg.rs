//! Grant sessions on real PostgreSQL: a read-only grant's transaction is
//! `READ ONLY` (even with the guard switched off) and RLS still scopes it to
//! the grant's tenant.

use hisn_tenant_guard::db::{PgTenantPool, danger};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::{self, Row};
use hisn_tenant_guard::{Error, Permission};

use crate::common::pg::{fixture, key, tenant_b_snapshot};
use crate::common::{TABLES, TENANT_A};
use crate::grant::{fx, read_only};

fn guard() -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(TABLES)
            .unwrap()
            .shared_table("countries"),
        Dialect::Postgres,
    )
}

fn read_only_refusal(e: &Error) -> bool {
    matches!(e, Error::Database(sqlx::Error::Database(d)) if d.code().as_deref() == Some("25006"))
}

#[tokio::test]
async fn read_only_grant_transactions_cannot_write_and_rls_applies() {
    let Some(fx_db) = fixture("tg_grant_read_only", 2).await else {
        return;
    };
    let pool = PgTenantPool::new(fx_db.app.clone(), guard(), key()).unwrap();
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    let session = f
        .verifier
        .open(&token, TENANT_A, "GET /assets")
        .await
        .unwrap();
    let before_b = tenant_b_snapshot(&fx_db.admin).await;

    let mut tx = pool.begin(session.context()).await.unwrap();
    let names: Vec<String> = tx
        .query("select name from assets order by name")
        .unwrap()
        .fetch_all()
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("name"))
        .collect();
    assert_eq!(names, ["pump A1", "valve A2"]);
    // A write the guard accepts is refused by the database.
    let e = tx
        .query("update assets set name = 'changed' where serial_no = $1")
        .unwrap()
        .bind("S-1")
        .execute()
        .await
        .unwrap_err();
    assert!(read_only_refusal(&e), "{e:?}");
    drop(tx);

    // With the guard switched off: RLS still shows one tenant, and neither a
    // write nor switching the transaction back to READ WRITE gets through.
    let mut tx = pool.begin(session.context()).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let n: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let ro: String = sqlx::query_scalar("show transaction_read_only")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(ro, "on");
    assert!(
        sqlx::query("set transaction read write")
            .execute(&mut *conn)
            .await
            .is_err()
    );
    drop(tx);
    let mut tx = pool.begin(session.context()).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let r = sqlx::query("delete from work_orders")
        .execute(&mut *conn)
        .await;
    assert!(r.is_err());
    drop(tx);
    let mut tx = pool.begin(session.context()).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let r = sqlx::query("set local transaction_read_only = off")
        .execute(&mut *conn)
        .await;
    assert!(r.is_err());
    drop(tx);
    assert_eq!(tenant_b_snapshot(&fx_db.admin).await, before_b);

    // A grant that lists `write` runs read-write, still inside its tenant.
    let (_, token) = f
        .signer
        .sign(&read_only(TENANT_A, 1).permissions([Permission::READ, Permission::WRITE]))
        .unwrap();
    let rw = f
        .verifier
        .open(&token, TENANT_A, "PUT /assets")
        .await
        .unwrap();
    let mut tx = pool.begin(rw.context()).await.unwrap();
    let changed = tx
        .query("update assets set name = 'pump A1 (fixed)' where serial_no = $1")
        .unwrap()
        .bind("S-1")
        .execute()
        .await
        .unwrap();
    assert_eq!(changed, 1, "only tenant A's S-1, not tenant B's");
    tx.rollback().await.unwrap();
    assert_eq!(tenant_b_snapshot(&fx_db.admin).await, before_b);
    fx_db.teardown().await;
}

/// A grant session's context is `Clone`: one kept past the grant's expiry
/// (a background task, a cache) begins no transaction, even when the
/// application never calls `RolePolicy::require`.
#[tokio::test]
async fn an_expired_grant_context_begins_no_transaction() {
    let Some(fx_db) = fixture("tg_grant_expired_ctx", 2).await else {
        return;
    };
    let pool = PgTenantPool::new(fx_db.app.clone(), guard(), key()).unwrap();
    let f = fx();
    let (g, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    let kept = f
        .verifier
        .open(&token, TENANT_A, "GET /assets")
        .await
        .unwrap()
        .into_context();
    f.clock.set(g.expires_at() - 1);
    pool.begin(&kept).await.unwrap().rollback().await.unwrap();
    f.clock.set(g.expires_at());
    assert!(matches!(pool.begin(&kept).await, Err(Error::OutsideGrant)));
    fx_db.teardown().await;
}
