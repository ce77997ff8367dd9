//! Layer 3 on real PostgreSQL, as a non-owner app role: no tenant means no
//! rows and no writes, and `verify` catches each misconfiguration.

use hisn_tenant_guard::rls::{self, Finding};
use hisn_tenant_guard::sqlx::{self, PgPool};

use hisn_tenant_guard::db::{PgTenantPool, danger};

use crate::common::pg::{exec, fixture, key};
use crate::common::{TABLES, TENANT_A, context};
use crate::pg_context::guard;

async fn visible(pool: &PgPool, setting: Option<&str>) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(s) = setting {
        sqlx::query("select set_config('hisn.tenant_context', $1, true)")
            .bind(s)
            .execute(&mut *tx)
            .await?;
    }
    let a: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(&mut *tx)
        .await?;
    let w: i64 = sqlx::query_scalar("select count(*) from work_orders")
        .fetch_one(&mut *tx)
        .await?;
    Ok(a + w)
}

async fn writes(pool: &PgPool, setting: Option<&str>) -> (Result<u64, sqlx::Error>, u64, u64) {
    let run = |sql: &'static str| async move {
        let mut tx = pool.begin().await?;
        if let Some(s) = setting {
            sqlx::query("select set_config('hisn.tenant_context', $1, true)")
                .bind(s)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query(sql).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok::<u64, sqlx::Error>(n)
    };
    let insert = run(
        "insert into assets (tenant_id, name) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'x')",
    )
    .await;
    let update = run("update assets set name = 'pwned'").await.unwrap_or(0);
    let delete = run("delete from work_orders").await.unwrap_or(0);
    (insert, update, delete)
}

#[tokio::test]
async fn no_empty_or_malformed_tenant_reads_nothing_and_writes_nothing() {
    let Some(fx) = fixture("tg_rls_no_tenant", 2).await else {
        return;
    };
    for setting in [
        None,
        Some(""),
        Some("not-a-uuid"),
        Some("' or true --"),
        Some("00000000-0000-0000-0000-00000000000"),
    ] {
        match visible(&fx.app, setting).await {
            Ok(n) => assert_eq!(n, 0, "rows visible with setting {setting:?}"),
            // A malformed value makes the ::uuid cast fail: refused, fail closed.
            Err(e) => assert!(
                setting.is_some_and(|s| !s.is_empty()),
                "unexpected error for {setting:?}: {e}"
            ),
        }
        let (insert, update, delete) = writes(&fx.app, setting).await;
        assert!(insert.is_err(), "insert allowed with setting {setting:?}");
        assert_eq!(
            (update, delete),
            (0, 0),
            "writes reached rows with setting {setting:?}"
        );
    }
    // Nothing was changed behind our back (checked as the superuser).
    let names: i64 = sqlx::query_scalar("select count(*) from assets where name = 'pwned'")
        .fetch_one(&fx.admin)
        .await
        .unwrap();
    let orders: i64 = sqlx::query_scalar("select count(*) from work_orders")
        .fetch_one(&fx.admin)
        .await
        .unwrap();
    assert_eq!((names, orders), (0, 3));
    // A bare tenant id is no context at all.
    assert_eq!(visible(&fx.app, Some(TENANT_A)).await.unwrap(), 0);
    // With a signed context, RLS alone shows exactly that tenant's rows.
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "select (select count(*) from assets) + (select count(*) from work_orders)",
    )
    .fetch_one(danger::unguarded(&mut tx))
    .await
    .unwrap();
    assert_eq!(n, 3);
    drop(tx);
    drop(pool);
    // TRUNCATE (not filtered by RLS) is not granted.
    assert!(
        sqlx::query("truncate work_orders")
            .execute(&fx.app)
            .await
            .is_err()
    );
    fx.teardown().await;
}

#[tokio::test]
async fn cross_tenant_insert_is_refused_by_with_check() {
    let Some(fx) = fixture("tg_rls_with_check", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let r = sqlx::query("insert into assets (tenant_id, name) values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'planted')")
        .execute(danger::unguarded(&mut tx))
        .await;
    assert!(r.is_err());
    drop(tx);
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let r = sqlx::query("update assets set tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'")
        .execute(danger::unguarded(&mut tx))
        .await;
    assert!(
        r.is_err(),
        "moving a row to another tenant must fail WITH CHECK"
    );
    drop(tx);
    drop(pool);
    fx.teardown().await;
}

#[tokio::test]
async fn verify_is_clean_for_the_generated_setup() {
    let Some(fx) = fixture("tg_rls_verify_clean", 1).await else {
        return;
    };
    let tables = rls::parse_tables(TABLES).unwrap();
    let report = crate::common::pg::verify(&fx.app, &tables).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(report.ensure_clean().is_ok());
    fx.teardown().await;
}

#[tokio::test]
async fn verify_catches_each_misconfiguration() {
    let Some(fx) = fixture("tg_rls_verify_findings", 1).await else {
        return;
    };
    let tables = rls::parse_tables(&format!("{TABLES},missing_table:tenant_id")).unwrap();
    let role = fx.role.clone();
    exec(&fx.admin, "alter table assets no force row level security").await;
    exec(
        &fx.admin,
        "drop policy hisn_tenant_isolation on work_orders",
    )
    .await;
    // A restrictive policy that looks right but is not the tenant predicate.
    exec(&fx.admin, "create policy hisn_tenant_isolation on work_orders as restrictive for all using (true) with check (true)").await;
    let report = crate::common::pg::verify(&fx.app, &tables).await.unwrap();
    assert_eq!(
        report.findings,
        vec![
            Finding::RlsNotForced {
                table: "assets".into()
            },
            Finding::MissingRestrictivePolicy {
                table: "work_orders".into()
            },
            Finding::MissingTable {
                table: "missing_table".into()
            },
        ],
        "{report}"
    );
    assert!(report.ensure_clean().is_err());

    exec(&fx.admin, "alter table assets disable row level security").await;
    exec(
        &fx.admin,
        &format!("grant truncate on assets to \"{role}\""),
    )
    .await;
    exec(&fx.admin, &format!("alter role \"{role}\" bypassrls")).await;
    exec(
        &fx.admin,
        &format!("alter table work_orders owner to \"{role}\""),
    )
    .await;
    // A fresh connection sees the role attributes as they are now.
    let tables = rls::parse_tables(TABLES).unwrap();
    let report = crate::common::pg::verify(&fx.app, &tables).await.unwrap();
    for f in [
        Finding::RlsDisabled {
            table: "assets".into(),
        },
        Finding::RlsNotForced {
            table: "assets".into(),
        },
        Finding::RoleBypassesRls { role: role.clone() },
        Finding::RoleCanTruncate {
            role: role.clone(),
            table: "assets".into(),
        },
        Finding::RoleOwnsTable {
            role: role.clone(),
            table: "work_orders".into(),
        },
    ] {
        assert!(report.findings.contains(&f), "missing {f} in {report}");
    }
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::RoleIsSuperuser { .. }))
    );

    // Connected as the superuser: superuser, and owner of every table.
    let report = crate::common::pg::verify(&fx.admin, &tables).await.unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::RoleIsSuperuser { .. })),
        "{report}"
    );
    assert!(
        report.findings.iter().any(
            |f| matches!(f, Finding::ReachableRoleOwnsTable { table, .. } if table == "assets")
        ),
        "{report}"
    );
    exec(
        &fx.admin,
        &format!(
            "alter table work_orders owner to \"{}\"; alter role \"{role}\" nobypassrls",
            fx.owner
        ),
    )
    .await;
    fx.teardown().await;
}
