//! `SqliteTenantPool::once` against the transaction path (review, issue of
//! 2026-11-28): every client-smuggling statement, the role gate and the
//! whole table afterwards must be the same whichever path runs them.

use hisn_tenant_guard::db::SqliteTenantPool;
use hisn_tenant_guard::sqlx::Row;
use hisn_tenant_guard::sqlx::sqlite::SqliteRow;
use hisn_tenant_guard::{Error, TenantContext};

use crate::clients_common::*;
use crate::clients_lite::{pool, run};

fn text(row: &SqliteRow) -> String {
    row.try_get::<String, _>(0)
        .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
        .unwrap_or_default()
}

async fn once(
    pool: &SqliteTenantPool,
    ctx: &TenantContext,
    sql: &str,
) -> Result<Vec<String>, Error> {
    let rows = pool.once(ctx, sql).fetch_all().await?;
    Ok(rows.iter().map(text).collect())
}

/// The outcome as comparable text: the rows, or the error's variant.
fn outcome(r: Result<Vec<String>, Error>) -> String {
    match r {
        Ok(mut rows) => {
            rows.sort();
            format!("ok {rows:?}")
        }
        Err(Error::Database(_)) => "database error".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

const EVERYTHING: &str =
    "SELECT memo || ':' || amount || ':' || id || ':' || client_id || ':' || tenant_id FROM ledger";

#[tokio::test]
async fn once_matches_the_transaction_path_on_every_smuggling_statement() {
    let (tx_pool, once_pool) = (pool().await, pool().await);
    let x = ctx(&["member"], &[CLIENT_X]);
    let member_no_grant = ctx(&["member"], &[]);
    let org = ctx(&[ORG_WIDE], &[]);
    let viewer = ctx(&["hr_viewer"], &[CLIENT_X]);
    let mut extra: Vec<(&str, String)> = vec![
        (
            "salaries_member",
            "SELECT employee || ' ' || amount FROM hr.salaries".into(),
        ),
        ("ledger_read", "SELECT memo FROM ledger".into()),
        (
            "two_statements",
            "SELECT memo FROM ledger; DELETE FROM ledger".into(),
        ),
        (
            "trailing_comment",
            "SELECT memo FROM ledger -- ; DELETE FROM ledger".into(),
        ),
        ("begin", "BEGIN".into()),
        ("savepoint", "SAVEPOINT s".into()),
        ("pragma", "PRAGMA query_only = 1".into()),
        ("attach", "ATTACH DATABASE ':memory:' AS evil".into()),
    ];
    extra.extend(
        SMUGGLING
            .iter()
            .map(|(n, s)| (*n, s.replace("$CLIENT_Y", CLIENT_Y))),
    );
    for who in [&x, &member_no_grant, &org, &viewer] {
        for (name, sql) in &extra {
            let a = outcome(run(&tx_pool, who, sql).await);
            let b = outcome(once(&once_pool, who, sql).await);
            assert_eq!(a, b, "{name} as {:?}", who.roles());
            let ta = outcome(run(&tx_pool, &org, EVERYTHING).await);
            let tb = outcome(run(&once_pool, &org, EVERYTHING).await);
            assert_eq!(ta, tb, "{name}: table after");
            // The connection is left usable and in autocommit.
            let after = outcome(once(&once_pool, &x, "SELECT memo FROM ledger").await);
            assert!(after.starts_with("ok"), "{name}: {after}");
        }
    }
}
