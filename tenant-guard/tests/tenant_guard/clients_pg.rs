//! Two-level tenancy and role gates on PostgreSQL (issue 17), with the guard
//! on and with the guard off (RLS alone, `db::danger::unguarded`): a user
//! granted client X of a firm reads, writes and counts nothing of client Y;
//! an organisation-wide role sees every client of its organisation; a
//! non-HR role reads nothing from the role-gated table; the client grants
//! and roles RLS trusts come from a signed, transaction-local token that the
//! same SQL cannot change.

use hisn_tenant_guard::db::{PgTenantPool, danger};
use hisn_tenant_guard::guard::{Dialect, GuardError};
use hisn_tenant_guard::rls::{self, Finding};
use hisn_tenant_guard::sqlx::postgres::{PgPoolOptions, PgRow};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Row};
use hisn_tenant_guard::{ClientId, Error, TenantContext};

use crate::clients_common::*;
use crate::common::pg::{Fixture, exec, exec_as, key};

/// Create the schema, the generated RLS and the data; pools as the superuser
/// and as a fresh application role.
pub async fn fixture(test: &str) -> Option<Fixture> {
    let db = hisn_test_support::postgres(test).await?;
    let admin = db.pool().await;
    let role = hisn_test_support::unique_name("hisn_tg_app_");
    let owner = hisn_test_support::unique_name("hisn_tg_own_");
    exec(
        &admin,
        &format!(
            "create role \"{role}\" login; create role \"{owner}\"; \
             grant create on schema public to \"{owner}\"; grant create on database \"{}\" to \"{owner}\"",
            db.name()
        ),
    )
    .await;
    exec_as(
        &admin,
        &owner,
        "create table ledger (id uuid not null default gen_random_uuid(), tenant_id uuid not null, \
            client_id uuid not null, memo text not null, amount int not null default 0, primary key (tenant_id, id)); \
         create schema hr; \
         create table hr.salaries (id uuid not null default gen_random_uuid(), tenant_id uuid not null, \
            employee text not null, amount int, primary key (tenant_id, id))",
    )
    .await;
    let tables = rls::tables_from_registry(&registry()).unwrap();
    let sql = rls::generate_sql(&tables, &role, &key()).unwrap();
    exec_as(
        &admin,
        &owner,
        &format!("{sql}\ngrant usage on schema hr to \"{role}\""),
    )
    .await;
    exec(&admin, &data()).await;
    let app = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(db.connect_options().username(&role))
        .await
        .unwrap();
    Some(Fixture {
        db,
        admin,
        app,
        role,
        owner,
        extra: std::sync::Mutex::new(Vec::new()),
    })
}

pub fn pool(f: &Fixture) -> PgTenantPool {
    PgTenantPool::new(f.app.clone(), guard(Dialect::Postgres), key()).unwrap()
}

fn text(row: &PgRow) -> String {
    row.try_get::<String, _>(0)
        .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
        .or_else(|_| row.try_get::<i32, _>(0).map(|n| n.to_string()))
        .unwrap_or_default()
}

/// Whether the guard runs (`Guarded`) or only RLS stands (`RlsAlone`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Guarded,
    RlsAlone,
}

/// Runs `sql` for `ctx` in a tenant transaction and commits; the first
/// column of each row as text. `RlsAlone` sends it as written (several
/// statements allowed) through the transaction's raw connection.
pub async fn run(
    pool: &PgTenantPool,
    mode: Mode,
    ctx: &TenantContext,
    sql: &str,
) -> Result<Vec<String>, Error> {
    let mut tx = pool.begin(ctx).await?;
    let rows = match mode {
        Mode::Guarded => tx.query(sql)?.fetch_all().await?,
        Mode::RlsAlone => sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .fetch_all(danger::unguarded(&mut tx))
            .await
            .map_err(Error::Database)?,
    };
    tx.commit().await?;
    Ok(rows.iter().map(text).collect())
}

/// Client Y's rows as the superuser sees them.
async fn y_rows(f: &Fixture) -> Vec<String> {
    sqlx::query_scalar(
        "select memo || ':' || amount || ':' || id || ':' || client_id from ledger \
         where client_id = $1::uuid or memo like 'y%' order by 1",
    )
    .bind(CLIENT_Y)
    .fetch_all(&f.admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn client_grant_x_reads_writes_and_counts_nothing_of_client_y_pg() {
    let Some(f) = fixture("clients_pg_x_not_y").await else {
        return;
    };
    let pool = pool(&f);
    let x = ctx(&["member"], &[CLIENT_X]);
    let before = y_rows(&f).await;
    for mode in [Mode::Guarded, Mode::RlsAlone] {
        let mut memos = run(&pool, mode, &x, "SELECT memo FROM ledger")
            .await
            .unwrap();
        memos.sort();
        assert_eq!(memos, ["x-one", "x-two"], "{mode:?}");
        assert_eq!(
            run(&pool, mode, &x, "SELECT count(*) FROM ledger")
                .await
                .unwrap(),
            ["2"],
            "{mode:?}"
        );
        run(&pool, mode, &x, "UPDATE ledger SET amount = amount + 1")
            .await
            .unwrap();
        run(&pool, mode, &x, "DELETE FROM ledger WHERE memo LIKE 'y%'")
            .await
            .unwrap();
        assert_eq!(y_rows(&f).await, before, "{mode:?}");
    }
    // Guarded insert: the guard writes the single granted client.
    run(
        &pool,
        Mode::Guarded,
        &x,
        "INSERT INTO ledger (memo) VALUES ('x-new')",
    )
    .await
    .unwrap();
    let owner: String =
        sqlx::query_scalar("select client_id::text from ledger where memo = 'x-new'")
            .fetch_one(&f.admin)
            .await
            .unwrap();
    assert_eq!(owner, CLIENT_X);
    // RLS alone: writing a row into Y is refused by WITH CHECK.
    let planted = format!(
        "INSERT INTO ledger (tenant_id, client_id, memo) VALUES ('{}', '{CLIENT_Y}', 'planted')",
        crate::common::TENANT_A
    );
    assert!(run(&pool, Mode::RlsAlone, &x, &planted).await.is_err());
    let own = format!(
        "INSERT INTO ledger (tenant_id, client_id, memo) VALUES ('{}', '{CLIENT_X}', 'x-rls')",
        crate::common::TENANT_A
    );
    run(&pool, Mode::RlsAlone, &x, &own).await.unwrap();
    // No grant at all: nothing readable, in either mode.
    let none = ctx(&["member"], &[]);
    for mode in [Mode::Guarded, Mode::RlsAlone] {
        assert_eq!(
            run(&pool, mode, &none, "SELECT count(*) FROM ledger")
                .await
                .unwrap(),
            ["0"]
        );
    }
    f.teardown().await;
}

#[tokio::test]
async fn org_wide_role_sees_every_client_of_its_organisation_pg() {
    let Some(f) = fixture("clients_pg_org_wide").await else {
        return;
    };
    let pool = pool(&f);
    let org = ctx(&[ORG_WIDE], &[]);
    for mode in [Mode::Guarded, Mode::RlsAlone] {
        let mut memos = run(&pool, mode, &org, "SELECT memo FROM ledger")
            .await
            .unwrap();
        memos.sort();
        assert_eq!(memos, ["x-one", "x-two", "y-other", "y-secret"], "{mode:?}");
    }
    // An org-wide role may write for any client of the firm it chooses.
    let y: ClientId = CLIENT_Y.parse().unwrap();
    run(
        &pool,
        Mode::Guarded,
        &org.clone().with_active_client(y),
        "INSERT INTO ledger (memo) VALUES ('y-by-admin')",
    )
    .await
    .unwrap();
    // Another tenant's firm admin sees only its own client.
    let b_admin = ctx_for(crate::common::TENANT_B, &[ORG_WIDE], &[]);
    for mode in [Mode::Guarded, Mode::RlsAlone] {
        assert_eq!(
            run(&pool, mode, &b_admin, "SELECT memo FROM ledger")
                .await
                .unwrap(),
            ["z-secret"]
        );
    }
    f.teardown().await;
}

#[tokio::test]
async fn role_gated_table_reads_nothing_for_other_roles_pg() {
    let Some(f) = fixture("clients_pg_role_gate").await else {
        return;
    };
    let pool = pool(&f);
    for roles in [&["member"][..], &[ORG_WIDE], &["owner"]] {
        let c = ctx(roles, &[CLIENT_X]);
        assert!(matches!(
            run(&pool, Mode::Guarded, &c, "SELECT employee FROM hr.salaries").await,
            Err(Error::Refused(GuardError::RoleRequired(_)))
        ));
        // RLS alone: the statement runs and sees nothing, changes nothing.
        assert!(
            run(
                &pool,
                Mode::RlsAlone,
                &c,
                "SELECT employee FROM hr.salaries"
            )
            .await
            .unwrap()
            .is_empty()
        );
        run(
            &pool,
            Mode::RlsAlone,
            &c,
            "UPDATE hr.salaries SET amount = 0",
        )
        .await
        .unwrap();
        run(&pool, Mode::RlsAlone, &c, "DELETE FROM hr.salaries")
            .await
            .unwrap();
    }
    let viewer = ctx(&["hr_viewer"], &[]);
    for mode in [Mode::Guarded, Mode::RlsAlone] {
        assert_eq!(
            run(&pool, mode, &viewer, "SELECT employee FROM hr.salaries")
                .await
                .unwrap(),
            [SALARY]
        );
    }
    // A viewer cannot write, in either layer.
    assert!(matches!(
        run(
            &pool,
            Mode::Guarded,
            &viewer,
            "UPDATE hr.salaries SET amount = 1"
        )
        .await,
        Err(Error::Refused(GuardError::RoleRequired(_)))
    ));
    run(
        &pool,
        Mode::RlsAlone,
        &viewer,
        "UPDATE hr.salaries SET amount = 1",
    )
    .await
    .unwrap();
    let amount: i32 = sqlx::query_scalar("select amount from hr.salaries")
        .fetch_one(&f.admin)
        .await
        .unwrap();
    assert_eq!(amount, 9000);
    let admin = ctx(&["hr_admin"], &[]);
    run(
        &pool,
        Mode::RlsAlone,
        &admin,
        "UPDATE hr.salaries SET amount = 9001",
    )
    .await
    .unwrap();
    assert_eq!(
        run(
            &pool,
            Mode::Guarded,
            &admin,
            "SELECT amount FROM hr.salaries"
        )
        .await
        .unwrap(),
        ["9001"]
    );
    f.teardown().await;
}

/// Forged or altered scope tokens, and resets of the setting, inside X's
/// transaction with the guard off: RLS then sees no client and no role.
#[tokio::test]
async fn scope_context_cannot_be_changed_by_sql_pg() {
    let Some(f) = fixture("clients_pg_scope_forgery").await else {
        return;
    };
    let pool = pool(&f);
    let x = ctx(&["member"], &[CLIENT_X]);
    // The token the pool set, read back and altered: Y added, a role added.
    let mut tx = pool.begin(&x).await.unwrap();
    let token: String = sqlx::query_scalar("select current_setting('hisn.tenant_scope')")
        .fetch_one(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 6);
    assert_eq!(parts[3], CLIENT_X);
    let with_y = format!(
        "{}.{}.{}.{},{CLIENT_Y}.{}.{}",
        parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
    );
    let with_admin = format!(
        "{}.{}.{}.{}.firm_admin,hr_admin.{}",
        parts[0], parts[1], parts[2], parts[3], parts[5]
    );
    for attack in [
        format!(
            "SELECT set_config('hisn.tenant_scope', '{with_y}', true); SELECT memo FROM ledger"
        ),
        format!("SET LOCAL hisn.tenant_scope = '{with_admin}'; SELECT memo FROM ledger"),
        format!("SET hisn.tenant_scope = '{with_admin}'; SELECT employee FROM hr.salaries"),
        "RESET hisn.tenant_scope; SELECT memo FROM ledger".to_owned(),
        "SELECT set_config('hisn.tenant_scope', '', true); SELECT memo FROM ledger".to_owned(),
    ] {
        let rows = run(&pool, Mode::RlsAlone, &x, &attack)
            .await
            .unwrap_or_default();
        assert!(
            !leaks(&rows, Y_MARKERS) && !rows.iter().any(|r| r == SALARY),
            "{attack}: {rows:?}"
        );
    }
    // The token never shows in pg_stat_activity (it is a bound parameter).
    let mut tx = pool.begin(&x).await.unwrap();
    let shown: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where query like '%' || $1 || '%' and pid <> pg_backend_pid()",
    )
    .bind(parts[5])
    .fetch_one(danger::unguarded(&mut tx))
    .await
    .unwrap();
    assert_eq!(shown, 0);
    tx.rollback().await.unwrap();
    f.teardown().await;
}

#[tokio::test]
async fn client_smuggling_fails_with_the_guard_and_with_rls_alone_pg() {
    let Some(f) = fixture("clients_pg_smuggling").await else {
        return;
    };
    let pool = pool(&f);
    let x = ctx(&["member"], &[CLIENT_X]);
    let before = y_rows(&f).await;
    for mode in [Mode::Guarded, Mode::RlsAlone] {
        for (name, sql) in SMUGGLING {
            let sql = sql.replace("$CLIENT_Y", CLIENT_Y);
            // RLS alone: the statement is sent as written, with the tenant
            // column where an INSERT needs it.
            let sql = if mode == Mode::RlsAlone {
                sql.replace("INSERT INTO ledger (", "INSERT INTO ledger (tenant_id, ")
                    .replace(
                        "SELECT id, 'planted'",
                        &format!("SELECT '{}', id, 'planted'", crate::common::TENANT_A),
                    )
                    .replace(
                        "VALUES (",
                        &format!("VALUES ('{}', ", crate::common::TENANT_A),
                    )
            } else {
                sql
            };
            if let Ok(rows) = run(&pool, mode, &x, &sql).await {
                assert!(!leaks(&rows, Y_MARKERS), "{mode:?} {name}: {rows:?}");
            }
            assert_eq!(y_rows(&f).await, before, "{mode:?} {name}");
        }
    }
    f.teardown().await;
}

#[tokio::test]
async fn verify_reports_a_client_table_without_its_client_policy() {
    let Some(f) = fixture("clients_pg_verify").await else {
        return;
    };
    let tables = rls::tables_from_registry(&registry()).unwrap();
    let report = crate::common::pg::verify(&f.app, &tables).await.unwrap();
    assert!(report.is_clean(), "{report}");
    exec_as(
        &f.admin,
        &f.owner,
        "drop policy hisn_client_isolation on ledger",
    )
    .await;
    let report = crate::common::pg::verify(&f.app, &tables).await.unwrap();
    assert_eq!(
        report.findings,
        [Finding::MissingClientPolicy {
            table: "ledger".into(),
            column: "client_id".into()
        }]
    );
    // A policy on the client column that does not filter on the grants.
    exec_as(
        &f.admin,
        &f.owner,
        "create policy hisn_client_isolation on ledger as restrictive for all to public \
         using (client_id is not null) with check (client_id is not null)",
    )
    .await;
    let report = crate::common::pg::verify(&f.app, &tables).await.unwrap();
    assert!(report.findings.contains(&Finding::MissingClientPolicy {
        table: "ledger".into(),
        column: "client_id".into()
    }));
    // Declared without the org-wide roles the policy carries: also reported.
    let plain = rls::parse_tables("ledger:tenant_id:client_id").unwrap();
    exec_as(&f.admin, &f.owner, &format!(
        "drop policy hisn_client_isolation on ledger; create policy hisn_client_isolation on ledger as restrictive for all to public using ({0}) with check ({0})",
        rls::client_predicate("client_id", &[]).unwrap()
    )).await;
    assert!(
        crate::common::pg::verify(&f.app, &plain)
            .await
            .unwrap()
            .is_clean()
    );
    assert!(
        !crate::common::pg::verify(&f.app, &tables)
            .await
            .unwrap()
            .is_clean()
    );
    // The grant predicate in `USING` alone, or in `WITH CHECK` alone, is no
    // client policy: reads or writes would reach other clients.
    let pred = rls::client_predicate("client_id", &[]).unwrap();
    let client_policy = |using: &str, check: &str| {
        format!(
            "drop policy hisn_client_isolation on ledger; create policy hisn_client_isolation on ledger \
             as restrictive for all to public using ({using}) with check ({check})"
        )
    };
    for (using, check) in [(pred.as_str(), "true"), ("true", pred.as_str())] {
        exec_as(&f.admin, &f.owner, &client_policy(using, check)).await;
        let found = crate::common::pg::verify(&f.app, &plain)
            .await
            .unwrap()
            .findings;
        assert!(
            found.contains(&Finding::MissingClientPolicy {
                table: "ledger".into(),
                column: "client_id".into()
            }),
            "using {using}, check {check}: {found:?}"
        );
    }
    exec_as(&f.admin, &f.owner, &client_policy(&pred, &pred)).await;
    assert!(
        crate::common::pg::verify(&f.app, &plain)
            .await
            .unwrap()
            .is_clean()
    );
    // The role gate's policies: dropping or widening one is reported.
    let gated = rls::tables_from_registry(&registry()).unwrap();
    let salaries: Vec<_> = gated
        .iter()
        .filter(|t| t.name() == "salaries")
        .cloned()
        .collect();
    assert!(
        crate::common::pg::verify(&f.app, &salaries)
            .await
            .unwrap()
            .is_clean()
    );
    exec_as(
        &f.admin,
        &f.owner,
        "drop policy hisn_role_gate_select_0 on hr.salaries; \
         create policy hisn_role_gate_select_0 on hr.salaries as restrictive for select to public \
         using ((select public.hisn_tenant_guard_current_roles()) && array['hr_viewer', 'member']::text[])",
    )
    .await;
    assert_eq!(
        crate::common::pg::verify(&f.app, &salaries)
            .await
            .unwrap()
            .findings,
        [Finding::MissingRoleGatePolicy {
            table: "hr.salaries".into()
        }]
    );
    exec_as(
        &f.admin,
        &f.owner,
        "drop policy hisn_role_gate_delete_0 on hr.salaries",
    )
    .await;
    assert!(
        !crate::common::pg::verify(&f.app, &salaries)
            .await
            .unwrap()
            .is_clean()
    );
    // A broken scope function is reported.
    exec_as(&f.admin, &f.owner, "create or replace function public.hisn_tenant_guard_current_clients() returns uuid[] language sql stable security definer set search_path = pg_catalog, pg_temp as $$ select array[]::uuid[] $$").await;
    let report = crate::common::pg::verify(&f.app, &plain).await.unwrap();
    assert!(
        report.findings.iter().any(|x| matches!(x, Finding::ScopeFunctionUnsafe { function, .. } if *function == rls::CLIENTS_FUNCTION)),
        "{report}"
    );
    f.teardown().await;
}
