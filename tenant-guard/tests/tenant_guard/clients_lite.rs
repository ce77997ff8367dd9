//! Two-level tenancy and role gates on SQLite (issue 17): the guard alone
//! scopes (SQLite has no RLS). The granted clients travel as one JSON-array
//! parameter read with `json_each`.

use hisn_tenant_guard::db::SqliteTenantPool;
use hisn_tenant_guard::guard::{Dialect, GuardError};
use hisn_tenant_guard::sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Row};
use hisn_tenant_guard::{ClientId, Error, TenantContext};

use crate::clients_common::*;

pub async fn raw_pool() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let sql = format!(
        "attach database ':memory:' as hr;
         create table ledger (id text not null default (lower(hex(randomblob(16)))), tenant_id text not null,
            client_id text not null, memo text not null, amount integer not null default 0,
            primary key (tenant_id, id));
         create table hr.salaries (id text not null, tenant_id text not null, employee text not null,
            amount integer, primary key (tenant_id, id));
         {}",
        data()
    );
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool
}

pub async fn pool() -> SqliteTenantPool {
    SqliteTenantPool::new(raw_pool().await, guard(Dialect::Sqlite)).unwrap()
}

fn text(row: &SqliteRow) -> String {
    row.try_get::<String, _>(0)
        .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
        .unwrap_or_default()
}

/// Runs `sql` for `ctx` and commits; the first column of each row as text.
pub async fn run(
    pool: &SqliteTenantPool,
    ctx: &TenantContext,
    sql: &str,
) -> Result<Vec<String>, Error> {
    let mut tx = pool.begin(ctx).await?;
    let rows = tx.query(sql)?.fetch_all().await?;
    tx.commit().await?;
    Ok(rows.iter().map(text).collect())
}

#[tokio::test]
async fn client_grant_x_reads_writes_and_counts_nothing_of_client_y() {
    let pool = pool().await;
    let x = ctx(&["member"], &[CLIENT_X]);
    let mut memos = run(&pool, &x, "SELECT memo FROM ledger").await.unwrap();
    memos.sort();
    assert_eq!(memos, ["x-one", "x-two"]);
    assert_eq!(
        run(&pool, &x, "SELECT count(*) FROM ledger").await.unwrap(),
        ["2"]
    );
    assert_eq!(
        run(
            &pool,
            &x,
            "SELECT count(*) FROM ledger WHERE memo LIKE 'y%'"
        )
        .await
        .unwrap(),
        ["0"]
    );
    // Writes touch only X's rows.
    run(&pool, &x, "UPDATE ledger SET amount = amount + 1")
        .await
        .unwrap();
    run(
        &pool,
        &x,
        "DELETE FROM ledger WHERE memo = 'y-other' OR memo = 'x-two'",
    )
    .await
    .unwrap();
    // The insert lands in X, the single granted client.
    run(
        &pool,
        &x,
        "INSERT INTO ledger (id, memo) VALUES ('n1', 'x-new')",
    )
    .await
    .unwrap();
    let org = ctx(&[ORG_WIDE], &[]);
    let mut all = run(&pool, &org, "SELECT memo || ':' || amount FROM ledger")
        .await
        .unwrap();
    all.sort();
    assert_eq!(all, ["x-new:0", "x-one:11", "y-other:40", "y-secret:30"]);
    // X sees its new row; Y does not.
    assert!(
        run(&pool, &x, "SELECT memo FROM ledger")
            .await
            .unwrap()
            .contains(&"x-new".to_owned())
    );
    let y = ctx(&["member"], &[CLIENT_Y]);
    assert!(
        !run(&pool, &y, "SELECT memo FROM ledger")
            .await
            .unwrap()
            .contains(&"x-new".to_owned())
    );
}

#[tokio::test]
async fn no_grant_reads_nothing_and_cannot_insert() {
    let pool = pool().await;
    let none = ctx(&["member"], &[]);
    assert_eq!(
        run(&pool, &none, "SELECT count(*) FROM ledger")
            .await
            .unwrap(),
        ["0"]
    );
    assert!(matches!(
        run(&pool, &none, "INSERT INTO ledger (memo) VALUES ('planted')").await,
        Err(Error::Refused(GuardError::NoActiveClient))
    ));
    // Two grants and no choice: which client the row belongs to is not guessed.
    let both = ctx(&["member"], &[CLIENT_X, CLIENT_Y]);
    assert!(matches!(
        run(&pool, &both, "INSERT INTO ledger (memo) VALUES ('planted')").await,
        Err(Error::Refused(GuardError::NoActiveClient))
    ));
    // A chosen client must be granted.
    let z: ClientId = CLIENT_Z.parse().unwrap();
    assert!(matches!(
        run(
            &pool,
            &both.clone().with_active_client(z),
            "INSERT INTO ledger (memo) VALUES ('planted')"
        )
        .await,
        Err(Error::Refused(GuardError::NoActiveClient))
    ));
    let y: ClientId = CLIENT_Y.parse().unwrap();
    run(
        &pool,
        &both.with_active_client(y),
        "INSERT INTO ledger (memo) VALUES ('y-new')",
    )
    .await
    .unwrap();
    let y_only = ctx(&["member"], &[CLIENT_Y]);
    assert!(
        run(&pool, &y_only, "SELECT memo FROM ledger")
            .await
            .unwrap()
            .contains(&"y-new".to_owned())
    );
}

#[tokio::test]
async fn org_wide_role_sees_every_client_of_its_organisation_only() {
    let pool = pool().await;
    let org = ctx(&[ORG_WIDE], &[]);
    let mut memos = run(&pool, &org, "SELECT memo FROM ledger").await.unwrap();
    memos.sort();
    assert_eq!(memos, ["x-one", "x-two", "y-other", "y-secret"]);
    assert!(!leaks(&memos, B_MARKERS));
}

#[tokio::test]
async fn role_gated_table_is_refused_for_other_roles() {
    let pool = pool().await;
    for roles in [&["member"][..], &[ORG_WIDE], &[]] {
        let c = ctx(roles, &[CLIENT_X]);
        for sql in [
            "SELECT employee FROM hr.salaries",
            "SELECT memo FROM ledger WHERE amount IN (SELECT amount FROM hr.salaries)",
            "WITH s AS (SELECT employee FROM hr.salaries) SELECT employee FROM s",
        ] {
            assert!(
                matches!(
                    run(&pool, &c, sql).await,
                    Err(Error::Refused(GuardError::RoleRequired(_)))
                ),
                "{roles:?} {sql}"
            );
        }
    }
    let viewer = ctx(&["hr_viewer"], &[]);
    assert_eq!(
        run(&pool, &viewer, "SELECT employee FROM hr.salaries")
            .await
            .unwrap(),
        [SALARY]
    );
    assert!(matches!(
        run(&pool, &viewer, "UPDATE hr.salaries SET amount = 1").await,
        Err(Error::Refused(GuardError::RoleRequired(_)))
    ));
    let admin = ctx(&["hr_admin"], &[]);
    run(&pool, &admin, "UPDATE hr.salaries SET amount = 9001")
        .await
        .unwrap();
    assert_eq!(
        run(&pool, &admin, "SELECT amount FROM hr.salaries")
            .await
            .unwrap(),
        ["9001"]
    );
}

#[tokio::test]
async fn client_smuggling_is_refused_or_contained() {
    let pool = pool().await;
    let x = ctx(&["member"], &[CLIENT_X]);
    let org = ctx(&[ORG_WIDE], &[]);
    let before = run(&pool, &org, Y_FINGERPRINT).await.unwrap();
    for (name, sql) in SMUGGLING {
        if let Ok(rows) = run(&pool, &x, &sql.replace("$CLIENT_Y", CLIENT_Y)).await {
            assert!(!leaks(&rows, Y_MARKERS), "{name}: {rows:?}");
        }
        assert_eq!(
            run(&pool, &org, Y_FINGERPRINT).await.unwrap(),
            before,
            "{name}"
        );
        let seen = run(&pool, &x, "SELECT memo FROM ledger").await.unwrap();
        assert!(!leaks(&seen, Y_MARKERS), "{name}: {seen:?}");
    }
}
