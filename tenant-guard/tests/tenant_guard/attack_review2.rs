//! Attack classes of the session-6 outside review (issue 10), run on the
//! real database with a positive control each. Unit tests:
//! `src/guard/rewrite/tests_attacks.rs`.

/// `FOR UPDATE`/`FOR SHARE` over a shared table lock rows every tenant uses:
/// with the application role allowed to update the shared table (locking
/// needs `UPDATE`), tenant A's open transaction held a lock that made every
/// other tenant's `FOR KEY SHARE` (the foreign-key check of an insert
/// referencing the row) wait or, with `NOWAIT`, fail: a cross-tenant block
/// and activity oracle. The guard now refuses a locking query that reads a
/// shared table; the control shows the text it used to emit doing it.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn locking_a_shared_row_is_refused_on_postgres() {
    use crate::common::pg::{exec_as, fixture};

    let Some(fx) = fixture("tg_attack_shared_lock", 1).await else {
        return;
    };
    exec_as(
        &fx.admin,
        &fx.owner,
        &format!("grant update on countries to \"{}\"", fx.role),
    )
    .await;
    let other_tenant_key_share = || async {
        let mut tx = fx.admin.begin().await.unwrap();
        let r = sqlx::query("select code from countries where code = 'SA' for key share nowait")
            .fetch_all(&mut *tx)
            .await
            .map(|_| ());
        tx.rollback().await.unwrap();
        r
    };
    // Positive control: the text the guard emitted for it (unchanged), run as
    // the application role, blocks another session's key-share lock.
    let mut held = fx.app.begin().await.unwrap();
    sqlx::query("SELECT code FROM countries WHERE code = 'SA' FOR UPDATE")
        .fetch_all(&mut *held)
        .await
        .unwrap();
    let blocked = other_tenant_key_share().await.unwrap_err();
    assert_eq!(
        blocked
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("55P03"),
        "{blocked}"
    );
    held.rollback().await.unwrap();

    refused_for_tenant_a(
        &fx,
        &[
            "SELECT code FROM countries WHERE code = 'SA' FOR UPDATE",
            "SELECT code FROM countries WHERE code = 'SA' FOR SHARE NOWAIT",
            "SELECT * FROM (SELECT code FROM countries) c FOR UPDATE",
        ],
    )
    .await;
    // The guarded read of the shared table left no lock behind.
    other_tenant_key_share().await.unwrap();
    fx.teardown().await;
}

/// `xmax` of a shared row is the last transaction that locked it, and an
/// insert's foreign-key check locks the shared row it references: reading
/// `xmax` of the shared table told tenant A which country tenant B's latest
/// write referenced (and the transaction id, for `txid_status`). The guard
/// now refuses PostgreSQL's system columns; the control shows the text it
/// used to emit (unchanged) answering, as the application role.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn system_columns_never_show_another_tenants_locks_on_postgres() {
    use crate::common::TENANT_B;
    use crate::common::pg::{exec, exec_as, fixture};

    let Some(fx) = fixture("tg_attack_xmax", 1).await else {
        return;
    };
    exec_as(
        &fx.admin,
        &fx.owner,
        "create table offices (id int primary key, tenant_id uuid not null, \
         country text not null references countries (code))",
    )
    .await;
    // Tenant B's write: its foreign-key check locks countries 'AE'.
    exec(
        &fx.admin,
        &format!("insert into offices values (1, '{TENANT_B}', 'AE')"),
    )
    .await;
    let probe = "SELECT code FROM countries WHERE xmax::text <> '0' ORDER BY code";
    // Positive control: as the application role, the text reveals it.
    let seen: Vec<String> = sqlx::query_scalar(probe).fetch_all(&fx.app).await.unwrap();
    assert_eq!(seen, ["AE"]);

    refused_for_tenant_a(
        &fx,
        &[
            probe,
            "SELECT c.xmax FROM countries c",
            "SELECT code, \"xmin\" FROM countries",
            "SELECT ctid FROM assets",
        ],
    )
    .await;
    fx.teardown().await;
}

/// `txid_current_snapshot()` showed tenant A the transaction another tenant
/// had open, and `txid_status` whether it was still running, committed or
/// aborted: another tenant's transaction state. Both are denied (their
/// `pg_*` forms already were); the control runs the text as the
/// application role.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn other_tenants_transactions_stay_invisible_on_postgres() {
    use crate::common::pg::fixture;

    let Some(fx) = fixture("tg_attack_txid", 1).await else {
        return;
    };
    // Another tenant's transaction, open.
    let mut other = fx.admin.begin().await.unwrap();
    let xid: i64 = sqlx::query_scalar("select txid_current()")
        .fetch_one(&mut *other)
        .await
        .unwrap();
    // Positive control: as the application role, the snapshot does not
    // count it as finished (xmin..xmax, in-progress list) and its status
    // reads as running.
    let (xmin, xmax, xip): (i64, i64, String) = sqlx::query_as(
        "SELECT txid_snapshot_xmin(s)::int8, txid_snapshot_xmax(s)::int8, \
         coalesce((SELECT string_agg(x::text, ',') FROM txid_snapshot_xip(s) x), '') \
         FROM txid_current_snapshot() s",
    )
    .fetch_one(&fx.app)
    .await
    .unwrap();
    assert!(
        xmin <= xid && (xid >= xmax || xip.split(',').any(|x| x == xid.to_string())),
        "{xmin}:{xmax}:{xip} does not show {xid} running"
    );
    let status: String = sqlx::query_scalar("SELECT txid_status($1)")
        .bind(xid)
        .fetch_one(&fx.app)
        .await
        .unwrap();
    assert_eq!(status, "in progress");

    refused_for_tenant_a(
        &fx,
        &[
            "SELECT txid_current_snapshot()::text",
            "SELECT txid_status($1)",
            "SELECT pg_catalog.txid_status(1)",
        ],
    )
    .await;
    other.rollback().await.unwrap();
    fx.teardown().await;
}

/// In tenant A's guarded transaction: each of `refused` is refused, and the
/// shared table `countries` stays readable (both its rows).
#[cfg(feature = "postgres")]
async fn refused_for_tenant_a(fx: &crate::common::pg::Fixture, refused: &[&str]) {
    use hisn_tenant_guard::Error;
    use hisn_tenant_guard::db::PgTenantPool;

    use crate::common::pg::key;
    use crate::common::{TENANT_A, context};

    let pool = PgTenantPool::new(fx.app.clone(), crate::pg_context::guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    for sql in refused {
        assert!(matches!(tx.query(sql), Err(Error::Refused(_))), "{sql}");
    }
    let n = tx
        .query("SELECT code FROM countries")
        .unwrap()
        .fetch_all()
        .await
        .unwrap()
        .len();
    assert_eq!(n, 2);
    tx.commit().await.unwrap();
}
