//! Outside review, third round: no SQL inside a tenant transaction moves the
//! tenant context RLS reads (class: "RLS read a tenant the same SQL could change").
//!
//! Every attack runs as the application role with the query guard switched
//! off (`db::danger::unguarded`) inside tenant A's transaction, and must leave
//! tenant B's rows unread and unchanged, and nothing on the connection (or in
//! the catalog) that changes a later transaction's tenant.
//!
//! **Break found: role defaults the application role writes itself.** The pool
//! took its idea of a clean session from the role's reset values
//! (`pg_settings.reset_val` of `search_path` and `role`), read once per pool,
//! and refused a connection only when the session differed from them. But any
//! role may `ALTER ROLE CURRENT_USER SET search_path = ..` without any
//! privilege, and the value becomes the reset value of every later
//! connection. Tenant A's unguarded SQL put a schema it can create in before
//! `pg_catalog` and created an `=` operator for `uuid` there; after the next
//! restart the pool learnt that path as "clean", every guarded statement of
//! tenant B (`assets.tenant_id = $1`) called A's operator inside B's
//! transaction, and the operator copied B's signed context token and rows into
//! A's table: the tenant RLS reads was changed by SQL the same role ran. The
//! same holds without `ALTER ROLE` when the deployment leaves a schema on the
//! role's search path writable by it (a table there shadows the tenant table).
//! Now the pool refuses to begin when any schema on the session's search path
//! can be created in (or is owned) by a role the application role can become,
//! or a schema the path names could be created by it (fail closed, checked
//! with the reset values, once per pool: no round trip per transaction), and
//! `rls::verify` reports it (`Finding::SearchPathWritable`).

use hisn_tenant_guard::db::{PgTenantPool, danger};
use hisn_tenant_guard::rls::{self, Finding};
use hisn_tenant_guard::sqlx::postgres::PgPoolOptions;
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, PgConnection};

use crate::common::pg::{Fixture, exec, exec_as, fixture, key, tenant_b_snapshot};
use crate::common::{TABLES, TENANT_A, TENANT_B, context};
use crate::pg_context::guard;

/// A forged token for B (the MAC is zeros).
const FORGED_B: &str = "v1.bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb.99999999999.0000000000000000000000000000000000000000000000000000000000000000";

/// A schema the application role may create in: `r3ctx_<unique>`.
async fn writable_schema(fx: &Fixture) -> String {
    let s = hisn_test_support::unique_name("r3ctx_");
    exec(
        &fx.admin,
        &format!(
            "create schema \"{s}\"; grant usage, create on schema \"{s}\" to \"{}\"",
            fx.role
        ),
    )
    .await;
    s
}

/// The tenant policy as the fixture creates it (restores it after a test
/// replaced it).
const RESTORE_POLICY: &str = "drop policy hisn_tenant_isolation on assets; \
     create policy hisn_tenant_isolation on assets as restrictive for all to public \
     using (tenant_id = (select public.hisn_tenant_guard_current_tenant())) \
     with check (tenant_id = (select public.hisn_tenant_guard_current_tenant()))";

/// DDL of a table in `s` shadowing the tenant table `assets`.
fn shadow_table(s: &str) -> String {
    format!(
        "create table \"{s}\".assets (id uuid default gen_random_uuid(), tenant_id uuid, \
         name text, serial_no text)"
    )
}

/// Run `sql` as the tables' owner.
async fn as_owner(fx: &Fixture, sql: &str) {
    exec_as(&fx.admin, &fx.owner, sql).await;
}

/// Run `sql` as the tables' owner; then `verify` reports exactly `expected`.
async fn owner_then(fx: &Fixture, sql: &str, expected: &[Finding]) {
    as_owner(fx, sql).await;
    assert_eq!(findings(fx).await, expected);
}

/// Run `sql` as the administrator; then `verify` reports exactly `expected`.
async fn admin_then(fx: &Fixture, sql: &str, expected: &[Finding]) {
    exec(&fx.admin, sql).await;
    assert_eq!(findings(fx).await, expected);
}

/// A guarded pool on the fixture's application pool.
fn app_pool(fx: &Fixture) -> PgTenantPool {
    PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap()
}

/// `pool` refuses to begin a transaction for `tenant` (fail closed).
async fn assert_refused(pool: &PgTenantPool, tenant: &str) {
    assert!(matches!(
        pool.begin(&context(tenant)).await,
        Err(hisn_tenant_guard::Error::Config(_))
    ));
}

/// `pool` refuses tenant B (fail closed) and `verify` names `schema` as
/// writable on the path.
async fn refused_and_named(fx: &Fixture, pool: &PgTenantPool, schema: &str) {
    assert_refused(pool, TENANT_B).await;
    assert_has(
        &fresh_findings(fx).await,
        &Finding::SearchPathWritable {
            role: fx.role.clone(),
            schema: schema.to_owned(),
        },
    );
}

/// `verify`'s findings over a fresh pool as the application role.
async fn fresh_findings(fx: &Fixture) -> Vec<Finding> {
    crate::common::pg::verify(&fresh_app(fx).await, &rls::parse_tables(TABLES).unwrap())
        .await
        .unwrap()
        .findings
}

/// A new pool of fresh connections as the application role: what the next
/// start of the service gets.
async fn restarted(fx: &Fixture) -> PgTenantPool {
    PgTenantPool::new(fresh_app(fx).await, guard(), key()).unwrap()
}

/// A fresh pool as the application role (new connections read the role's
/// defaults), for `verify`.
async fn fresh_app(fx: &Fixture) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(fx.db.connect_options().username(&fx.role))
        .await
        .unwrap()
}

/// Begin a tenant transaction, once more if the first connection was refused
/// (an earlier attack left state on it: refused and closed, fail closed).
async fn begin(pool: &PgTenantPool, tenant: &str) -> hisn_tenant_guard::db::PgTenantTx {
    match pool.begin(&context(tenant)).await {
        Ok(tx) => tx,
        Err(_) => pool.begin(&context(tenant)).await.unwrap(),
    }
}

/// Rows of tenant B that `conn` can read, write or count now: 0 is no leak,
/// an error (aborted transaction, refused write) is no leak either.
async fn b_reach(conn: &mut PgConnection) -> Vec<String> {
    let mut leaks = Vec::new();
    for sql in [
        "select count(*) from assets where tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
        "select count(*) from work_orders where tenant_id <> 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'",
        "select count(*) from assets where name in ('pump B1', 'secret B2')",
    ] {
        if let Ok(n) = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&mut *conn)
            .await
            && n > 0
        {
            leaks.push(format!("{sql}: {n}"));
        }
    }
    if let Ok(r) = sqlx::query(
        "update assets set name = 'pwned' where tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
    )
    .execute(&mut *conn)
    .await
        && r.rows_affected() > 0
    {
        leaks.push("update".to_owned());
    }
    leaks
}

/// Run `attack` in tenant A's unguarded transaction, then the probes, then
/// commit; the probes' leaks.
async fn attack(pool: &PgTenantPool, attack: &str) -> Vec<String> {
    let mut tx = begin(pool, TENANT_A).await;
    let conn = danger::unguarded(&mut tx);
    let _ = sqlx::raw_sql(AssertSqlSafe(attack.to_owned()))
        .execute(&mut *conn)
        .await;
    let leaks = b_reach(conn).await;
    let _ = tx.commit().await;
    leaks
}

/// The failing-first test of the class: a search path planted by the
/// application role itself (`ALTER ROLE CURRENT_USER SET search_path`), put
/// before `pg_catalog`, with an `=` operator for `uuid` in a schema the role
/// can create in. Before the fix the restarted pool trusted the planted path
/// and B's guarded statement ran A's operator in B's transaction.
#[tokio::test]
async fn rls_read_a_tenant_the_same_sql_could_change_through_a_planted_search_path() {
    let Some(fx) = fixture("r3ctx_search_path", 1).await else {
        return;
    };
    let s = writable_schema(&fx).await;
    let before = tenant_b_snapshot(&fx.admin).await;
    let pool = app_pool(&fx);
    let mut tx = begin(&pool, TENANT_A).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "create table \"{s}\".loot (token text, names text);
         create function \"{s}\".eq(uuid, uuid) returns boolean language plpgsql as $f$
         begin
           insert into \"{s}\".loot select pg_catalog.current_setting('hisn.tenant_context', true),
             (select pg_catalog.string_agg(a.name, ',') from public.assets a);
           return $1 operator(pg_catalog.=) $2;
         end $f$;
         create operator \"{s}\".= (leftarg = uuid, rightarg = uuid, function = \"{s}\".eq);
         alter role current_user set search_path = \"{s}\", pg_catalog, public"
    )))
    .execute(danger::unguarded(&mut tx))
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The service restarts; tenant B works through the guard.
    let next = restarted(&fx).await;
    if let Ok(mut tx) = next.begin(&context(TENANT_B)).await {
        let names = tx
            .query("SELECT name FROM assets")
            .unwrap()
            .fetch_all()
            .await;
        if names.is_ok() {
            let _ = tx.commit().await;
        }
    }
    let captured: Vec<(Option<String>, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
        "select token, names from \"{s}\".loot"
    )))
    .fetch_all(&fx.admin)
    .await
    .unwrap();
    let of_b: Vec<_> = captured
        .iter()
        .filter(|(t, n)| {
            t.as_deref().is_some_and(|t| t.contains(TENANT_B))
                || n.as_deref().is_some_and(|n| n.contains("B2"))
        })
        .collect();
    assert!(
        of_b.is_empty(),
        "tenant B's context or rows reached tenant A's table: {of_b:?}"
    );
    // Replaying whatever was captured reaches nothing of B either.
    let leaks = attack(
        &pool,
        &format!(
            "select set_config('hisn.tenant_context', (select token from \"{s}\".loot \
             where token like 'v1.{TENANT_B}%' limit 1), true)"
        ),
    )
    .await;
    assert!(leaks.is_empty(), "{leaks:?}");
    assert_eq!(tenant_b_snapshot(&fx.admin).await, before);
    // The pool refuses such a session outright (fail closed), and verify names it.
    refused_and_named(&fx, &next, &s).await;
    drop(next);
    exec(&fx.admin, &format!("drop schema \"{s}\" cascade")).await;
    fx.teardown().await;
}

/// The same class as a deployment leaves it: a schema on the role's search
/// path that the role can create in, before `public`. A table there shadows
/// the tenant table for every later connection, so tenant B's guarded insert
/// lands in A's table, out of RLS's reach.
#[tokio::test]
async fn rls_read_a_tenant_the_same_sql_could_change_through_a_writable_schema_on_the_path() {
    let Some(fx) = fixture("r3ctx_path_schema", 1).await else {
        return;
    };
    let s = writable_schema(&fx).await;
    exec(
        &fx.admin,
        &format!(
            "alter role \"{}\" set search_path = \"{s}\", public",
            fx.role
        ),
    )
    .await;
    let pool = restarted(&fx).await;
    // Tenant A, guard off: a table shadowing `assets` on every later connection.
    if let Ok(mut tx) = pool.begin(&context(TENANT_A)).await {
        let _ = sqlx::raw_sql(AssertSqlSafe(shadow_table(&s)))
            .execute(danger::unguarded(&mut tx))
            .await;
        let _ = tx.commit().await;
    } else {
        exec_as(&fx.admin, &fx.role, &shadow_table(&s)).await;
    }
    let next = restarted(&fx).await;
    if let Ok(mut tx) = next.begin(&context(TENANT_B)).await
        && tx
            .query("INSERT INTO assets (name) VALUES ($1)")
            .unwrap()
            .bind("B-shadowed")
            .execute()
            .await
            .is_ok()
    {
        tx.commit().await.unwrap();
    }
    let caught: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "select count(*) from \"{s}\".assets where name = 'B-shadowed'"
    )))
    .fetch_one(&fx.admin)
    .await
    .unwrap();
    assert_eq!(caught, 0, "tenant B's write landed in A's shadow table");
    refused_and_named(&fx, &next, &s).await;
    drop((pool, next));
    exec(&fx.admin, &format!("drop schema \"{s}\" cascade")).await;
    fx.teardown().await;
}

/// `CREATE` on the database lets the application role create the schema
/// `"$user"` names on the default search path (`"$user", public`): a table
/// there would shadow every tenant table for every later connection. The
/// pool refuses to begin and `verify` names the schema.
#[tokio::test]
async fn a_schema_the_search_path_names_and_the_role_could_create_is_refused() {
    let Some(fx) = fixture("r3ctx_user_schema", 1).await else {
        return;
    };
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&fx.admin)
        .await
        .unwrap();
    exec(
        &fx.admin,
        &format!("grant create on database \"{db}\" to \"{}\"", fx.role),
    )
    .await;
    let pool = restarted(&fx).await;
    assert_refused(&pool, TENANT_A).await;
    assert_eq!(
        fresh_findings(&fx).await,
        [Finding::SearchPathWritable {
            role: fx.role.clone(),
            schema: fx.role.clone(),
        }]
    );
    exec(
        &fx.admin,
        &format!("revoke create on database \"{db}\" from \"{}\"", fx.role),
    )
    .await;
    let pool = restarted(&fx).await;
    pool.begin(&context(TENANT_A))
        .await
        .unwrap()
        .rollback()
        .await
        .unwrap();
    fx.teardown().await;
}

/// New inputs of the class inside one transaction (each on top of the
/// earlier reviews' corpus in `pg_context.rs`): savepoints, session-level
/// values committed mid-transaction, `COMMIT`/`BEGIN` and `DISCARD ALL` sent
/// as SQL, `PREPARE`/`EXECUTE`, `SET` inside `DO` through `EXECUTE`, a
/// temporary function carrying a `SET` clause, advisory locks, `LISTEN`,
/// role resets, `row_security`, and role defaults for the context settings.
#[tokio::test]
async fn new_single_transaction_inputs_reach_no_other_tenant() {
    let Some(fx) = fixture("r3ctx_inputs", 1).await else {
        return;
    };
    let before = tenant_b_snapshot(&fx.admin).await;
    let inputs = [
        format!(
            "savepoint s; select set_config('hisn.tenant_context', '{FORGED_B}', true); release savepoint s"
        ),
        format!(
            "savepoint s; select set_config('hisn.tenant_context', '{FORGED_B}', true); rollback to savepoint s"
        ),
        format!("select set_config('hisn.tenant_context', '{FORGED_B}', false); commit; begin"),
        "select set_config('hisn.tenant_context', current_setting('hisn.tenant_context'), false); \
         commit; begin"
            .to_owned(),
        "commit".to_owned(),
        "commit; discard all; begin".to_owned(),
        "commit; reset all; begin".to_owned(),
        format!(
            "prepare r3(text) as select set_config('hisn.tenant_context', $1, true); execute r3('{FORGED_B}'); deallocate r3"
        ),
        format!(
            "do $$ begin execute 'set local hisn.tenant_context = ' || quote_literal('{FORGED_B}'); end $$"
        ),
        format!(
            "create function pg_temp.r3() returns bigint language sql set hisn.tenant_context = '{FORGED_B}' \
             as 'select count(*) from public.assets'; create temp table r3_seen as select pg_temp.r3() n"
        ),
        "select pg_advisory_lock(4242)".to_owned(),
        "listen r3; notify r3".to_owned(),
        "reset role; set session authorization default".to_owned(),
        "set local row_security = off".to_owned(),
        format!("alter role current_user set hisn.tenant_context = '{FORGED_B}'"),
        format!("alter role current_user set hisn.tenant_scope = '{FORGED_B}'"),
        "create schema r3ctx_mine".to_owned(),
        "set local search_path = pg_temp, public; create temp table assets (tenant_id uuid, name text)"
            .to_owned(),
    ];
    for input in &inputs {
        // A pool of one connection per input: the next transaction runs on
        // the connection the input ran on (unless it was refused and closed).
        let pool = restarted(&fx).await;
        let leaks = attack(&pool, input).await;
        assert!(leaks.is_empty(), "{input}: {leaks:?}");
        for tenant in [TENANT_B, TENANT_A] {
            if let Ok(mut tx) = pool.begin(&context(tenant)).await {
                let conn = danger::unguarded(&mut tx);
                let seen: Option<String> =
                    sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()::text")
                        .fetch_one(&mut *conn)
                        .await
                        .ok()
                        .flatten();
                assert_eq!(
                    seen.as_deref(),
                    Some(tenant),
                    "{input}: next transaction's tenant"
                );
                if tenant == TENANT_A {
                    let leaks = b_reach(conn).await;
                    assert!(leaks.is_empty(), "{input} (next transaction): {leaks:?}");
                }
                let _ = tx.rollback().await;
            }
        }
        // And on a fresh connection (role defaults written by the input).
        let next = restarted(&fx).await;
        if let Ok(mut tx) = next.begin(&context(TENANT_A)).await {
            let leaks = b_reach(danger::unguarded(&mut tx)).await;
            assert!(leaks.is_empty(), "{input} (next connection): {leaks:?}");
            let _ = tx.rollback().await;
        }
    }
    // The temporary function with the forged setting counted nothing.
    assert_eq!(tenant_b_snapshot(&fx.admin).await, before);
    fx.teardown().await;
}

/// A token is readable only inside its own transaction: after B's
/// transaction on a pooled connection, A's SQL on the same connection (even
/// after ending its own transaction with `COMMIT`) finds no token of B, and
/// the catalogs a role can read (`pg_stat_activity` of B's open transaction,
/// `pg_settings`, `pg_proc` sources, `pg_stats` of the key) show neither the
/// token nor the key.
#[tokio::test]
async fn no_token_of_another_tenant_is_left_or_readable_anywhere() {
    let Some(fx) = fixture("r3ctx_token_left", 2).await else {
        return;
    };
    exec(&fx.admin, "analyze public.hisn_tenant_guard_context_key").await;
    let pool = restarted(&fx).await;
    let mut tx = begin(&pool, TENANT_B).await;
    let token_b: String = sqlx::query_scalar("select current_setting('hisn.tenant_context')")
        .fetch_one(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mac = token_b.rsplit('.').next().unwrap().to_owned();
    let mut tx = begin(&pool, TENANT_A).await;
    let conn = danger::unguarded(&mut tx);
    sqlx::raw_sql("commit").execute(&mut *conn).await.unwrap();
    let left: Option<String> =
        sqlx::query_scalar("select current_setting('hisn.tenant_context', true)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert!(
        !left.as_deref().unwrap_or("").contains(TENANT_B),
        "{left:?}"
    );
    sqlx::raw_sql("begin").execute(&mut *conn).await.unwrap();
    let _ = tx.commit().await;

    // B's transaction open on another connection while A looks around.
    let other = app_pool(&fx);
    let mut b = begin(&other, TENANT_B).await;
    let _ = b
        .query("SELECT name FROM assets")
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let mut a = begin(&other, TENANT_A).await;
    let conn = danger::unguarded(&mut a);
    // The fixture's key is 32 bytes of 0x42; the key table holds K xor 0x36.
    let ikey = "74".repeat(32);
    for sql in [
        format!(
            "select count(*) from pg_stat_activity where pid <> pg_backend_pid() and \
             (query like '%{TENANT_B}%' or query like '%{mac}%' or query like '%' || chr(118) || '1.%')"
        ),
        format!("select count(*) from pg_settings where setting like '%{TENANT_B}%'"),
        format!(
            "select count(*) from pg_proc where prosrc like '%{ikey}%' or prosrc like '%{mac}%'"
        ),
        "select count(*) from pg_stats where tablename = 'hisn_tenant_guard_context_key'"
            .to_owned(),
        "select count(*) from pg_prepared_statements where statement like '%' || chr(118) || '1.%'"
            .to_owned(),
    ] {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(n, 0, "{sql}");
    }
    drop(a);
    b.rollback().await.unwrap();
    drop((pool, other));
    fx.teardown().await;
}

/// `COPY .. TO STDOUT` of a tenant table is filtered by RLS like a query.
#[tokio::test]
async fn copy_out_reads_only_the_own_tenant() {
    let Some(fx) = fixture("r3ctx_copy", 1).await else {
        return;
    };
    let pool = app_pool(&fx);
    let mut tx = begin(&pool, TENANT_A).await;
    let conn = danger::unguarded(&mut tx);
    for sql in [
        "copy assets to stdout",
        "copy (select * from work_orders) to stdout",
    ] {
        use futures::TryStreamExt as _;
        let out: Vec<u8> = conn
            .copy_out_raw(sql)
            .await
            .unwrap()
            .try_fold(Vec::new(), |mut acc, b| async move {
                acc.extend_from_slice(&b);
                Ok(acc)
            })
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains(TENANT_B), "{sql}: {text}");
        assert!(text.contains(TENANT_A), "{sql}: positive control");
    }
    tx.rollback().await.unwrap();
    fx.teardown().await;
}

/// `rls::verify` and configurations that leak while looking fine: each must be
/// its own finding. Helpers: the findings for the fixture's tables, and a role
/// named `r3ctx_..` dropped with the fixture.
async fn findings(fx: &Fixture) -> Vec<Finding> {
    crate::common::pg::verify(&fx.app, &rls::parse_tables(TABLES).unwrap())
        .await
        .unwrap()
        .findings
}

async fn r3_role(fx: &Fixture, attributes: &str) -> String {
    let name = hisn_test_support::unique_name("r3ctx_");
    exec(&fx.admin, &format!("create role \"{name}\" {attributes}")).await;
    fx.extra.lock().unwrap().push(name.clone());
    name
}

fn assert_has(found: &[Finding], expected: &Finding) {
    assert!(found.contains(expected), "missing {expected} in {found:?}");
}

/// SQL creating `public.<name>()`, a `SECURITY DEFINER` function counting
/// every row of `assets`, executable by `to` only (by its owner only if none).
fn definer_fn(name: &str, to: Option<&str>) -> String {
    let grant = to.map_or(String::new(), |r| {
        format!("grant execute on function public.{name}() to \"{r}\"; ")
    });
    format!(
        "create function public.{name}() returns bigint language sql security definer \
         as 'select count(*) from public.assets'; \
         revoke all on function public.{name}() from public; {grant}"
    )
}

/// Count of tenant B's rows `sql` returns inside tenant A's transaction, as
/// the application role with the guard off: the positive control that a
/// reported configuration really leaks.
async fn b_rows_via(fx: &Fixture, setup: &str, sql: &str) -> i64 {
    let pool = app_pool(fx);
    let mut tx = begin(&pool, TENANT_A).await;
    let conn = danger::unguarded(&mut tx);
    if !setup.is_empty() {
        sqlx::raw_sql(AssertSqlSafe(setup.to_owned()))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.rollback().await.unwrap();
    n
}

/// Rows of tenant B in `relation` (counted inside A's transaction, as
/// [`b_rows_via`]).
async fn b_rows_in(fx: &Fixture, relation: &str) -> i64 {
    b_rows_via(
        fx,
        "",
        &format!("select count(*) from {relation} where tenant_id <> '{TENANT_A}'"),
    )
    .await
}

/// Policies on another setting, RLS not forced on a table the application
/// role's group owns, and privileges granted on columns only (which
/// `has_table_privilege` does not see): the context key, a policy that misses
/// a role, `REFERENCES` (a foreign key from a temporary table is an
/// existence oracle over every tenant's keys: referential checks bypass RLS)
/// and `TRIGGER` (a trigger the application role adds runs in every other
/// tenant's transaction).
#[tokio::test]
async fn verify_reports_settings_ownership_and_column_grants() {
    let Some(fx) = fixture("r3ctx_verify_grants", 1).await else {
        return;
    };
    assert_eq!(findings(&fx).await, []);
    let app = fx.role.clone();
    // A restrictive policy keyed on a setting anyone can set.
    as_owner(
        &fx,
        "drop policy hisn_tenant_isolation on assets; \
         create policy hisn_tenant_isolation on assets as restrictive for all to public \
         using (tenant_id = current_setting('app.tenant', true)::uuid) \
         with check (tenant_id = current_setting('app.tenant', true)::uuid)",
    )
    .await;
    assert_has(
        &findings(&fx).await,
        &Finding::MissingRestrictivePolicy {
            table: "assets".into(),
        },
    );
    owner_then(&fx, RESTORE_POLICY, &[]).await;

    // Not forced, owned by a group the app role belongs to.
    let group = r3_role(&fx, "nologin").await;
    exec(
        &fx.admin,
        &format!(
            "alter table work_orders no force row level security; \
             alter table work_orders owner to \"{group}\"; grant \"{group}\" to \"{app}\""
        ),
    )
    .await;
    let found = findings(&fx).await;
    assert_has(
        &found,
        &Finding::RlsNotForced {
            table: "work_orders".into(),
        },
    );
    assert_has(
        &found,
        &Finding::ReachableRoleOwnsTable {
            role: app.clone(),
            reachable: group.clone(),
            table: "work_orders".into(),
        },
    );
    admin_then(
        &fx,
        &format!(
            "alter table work_orders force row level security; \
             alter table work_orders owner to \"{}\"; revoke \"{group}\" from \"{app}\"",
            fx.owner
        ),
        &[],
    )
    .await;

    // Column grants on the key table.
    admin_then(
        &fx,
        &format!("grant select (ikey) on public.hisn_tenant_guard_context_key to \"{app}\""),
        &[Finding::ContextKeyExposed { role: app.clone() }],
    )
    .await;
    exec(
        &fx.admin,
        &format!("revoke select (ikey) on public.hisn_tenant_guard_context_key from \"{app}\""),
    )
    .await;

    // A policy that misses a role holding column privileges only.
    let reader = r3_role(&fx, "nologin").await;
    as_owner(
        &fx,
        &format!(
            "drop policy hisn_tenant_isolation on assets; \
             create policy hisn_tenant_isolation on assets as restrictive for all to \"{app}\" \
             using (tenant_id = (select public.hisn_tenant_guard_current_tenant())) \
             with check (tenant_id = (select public.hisn_tenant_guard_current_tenant())); \
             grant select (name) on assets to \"{reader}\""
        ),
    )
    .await;
    exec(&fx.admin, &format!("grant \"{reader}\" to \"{app}\"")).await;
    assert_has(
        &findings(&fx).await,
        &Finding::PolicyNotApplied {
            role: reader.clone(),
            table: "assets".into(),
        },
    );
    exec(&fx.admin, &format!("revoke \"{reader}\" from \"{app}\"")).await;
    owner_then(
        &fx,
        &format!("revoke select (name) on assets from \"{reader}\"; {RESTORE_POLICY}"),
        &[],
    )
    .await;

    // REFERENCES on the key columns: a real existence oracle (from a table in
    // a schema the role can create in, off its search path: no finding).
    let s = writable_schema(&fx).await;
    as_owner(
        &fx,
        &format!("grant references (tenant_id, id) on assets to \"{app}\""),
    )
    .await;
    let oracle = b_rows_via(
        &fx,
        &format!(
            "create table \"{s}\".probe (t uuid, i uuid, \
             foreign key (t, i) references public.assets (tenant_id, id)); \
             insert into \"{s}\".probe values ('{TENANT_B}', 'b0000000-0000-4000-8000-000000000002')"
        ),
        &format!("select count(*) from \"{s}\".probe"),
    )
    .await;
    assert_eq!(
        oracle, 1,
        "positive control: B's key exists, the insert passed"
    );
    let found = findings(&fx).await;
    assert_eq!(
        found,
        [Finding::UnfilteredPrivilege {
            role: app.clone(),
            table: "assets".into(),
            privilege: "REFERENCES",
        }]
    );
    owner_then(
        &fx,
        &format!(
            "revoke references (tenant_id, id) on assets from \"{app}\"; \
             grant trigger on work_orders to \"{app}\""
        ),
        &[Finding::UnfilteredPrivilege {
            role: app.clone(),
            table: "work_orders".into(),
            privilege: "TRIGGER",
        }],
    )
    .await;
    owner_then(
        &fx,
        &format!("revoke trigger on work_orders from \"{app}\""),
        &[],
    )
    .await;
    fx.teardown().await;
}

/// Relations and functions that read tenant rows without the reader's
/// tenant: a view owned by a superuser, a materialized view (never filtered
/// per reader), a foreign table (verify cannot see what it reads), and
/// `SECURITY DEFINER` functions owned by the table owner or a superuser.
#[tokio::test]
async fn verify_reports_views_materialized_views_foreign_tables_and_definer_functions() {
    let Some(fx) = fixture("r3ctx_verify_side_doors", 1).await else {
        return;
    };
    let app = fx.role.clone();
    assert_eq!(findings(&fx).await, []);
    // Views owned by the tables' owner (bound by FORCE) or declared
    // security_invoker are no finding.
    as_owner(
        &fx,
        &format!(
            "create view r3ctx_owned as select * from assets; grant select on r3ctx_owned to \"{app}\""
        ),
    )
    .await;
    admin_then(
        &fx,
        &format!(
            "create view r3ctx_invoker with (security_invoker = true) as select * from assets; \
             grant select on r3ctx_invoker to \"{app}\""
        ),
        &[],
    )
    .await;
    assert_eq!(b_rows_in(&fx, "r3ctx_owned").await, 0);

    exec(
        &fx.admin,
        &format!(
            "create view r3ctx_v as select * from assets; grant select on r3ctx_v to \"{app}\"; \
             create view r3ctx_vv as select name from r3ctx_v; grant select on r3ctx_vv to \"{app}\""
        ),
    )
    .await;
    let found = findings(&fx).await;
    for view in ["r3ctx_v", "r3ctx_vv"] {
        assert_has(
            &found,
            &Finding::ViewBypassesRls {
                view: view.into(),
                table: "assets".into(),
                owner: "postgres".into(),
            },
        );
    }
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(b_rows_in(&fx, "r3ctx_v").await, 2, "positive control");
    exec(&fx.admin, "drop view r3ctx_vv; drop view r3ctx_v").await;

    admin_then(
        &fx,
        &format!(
            "create materialized view r3ctx_mv as select * from work_orders; grant select on r3ctx_mv to \"{app}\""
        ),
        &[Finding::MaterializedView {
            view: "r3ctx_mv".into(),
            table: "work_orders".into(),
        }],
    )
    .await;
    assert_eq!(b_rows_in(&fx, "r3ctx_mv").await, 2, "positive control");
    exec(&fx.admin, "drop materialized view r3ctx_mv").await;

    admin_then(
        &fx,
        &format!(
            "create foreign data wrapper r3ctx_fdw; create server r3ctx_srv foreign data wrapper r3ctx_fdw; \
             create foreign table r3ctx_ft (tenant_id uuid, name text) server r3ctx_srv; \
             grant select (name) on r3ctx_ft to \"{app}\""
        ),
        &[Finding::ForeignTable {
            table: "r3ctx_ft".into(),
        }],
    )
    .await;
    exec(
        &fx.admin,
        "drop foreign table r3ctx_ft; drop server r3ctx_srv; drop foreign data wrapper r3ctx_fdw",
    )
    .await;

    as_owner(&fx, &definer_fn("r3ctx_owner_fn", Some(&app))).await;
    let super_fns =
        definer_fn("r3ctx_super_fn", Some(&app)) + &definer_fn("r3ctx_private_fn", None);
    exec(&fx.admin, &super_fns).await;
    let mut found = findings(&fx).await;
    found.sort_by_key(ToString::to_string);
    let mut expected = vec![
        Finding::DefinerFunction {
            function: "r3ctx_owner_fn()".into(),
            owner: fx.owner.clone(),
        },
        Finding::DefinerFunction {
            function: "r3ctx_super_fn()".into(),
            owner: "postgres".into(),
        },
    ];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(found, expected);
    assert_eq!(
        b_rows_via(&fx, "", "select public.r3ctx_super_fn() - 2").await,
        2,
        "positive control: the superuser's function counts every tenant"
    );
    admin_then(
        &fx,
        "drop function public.r3ctx_owner_fn(); drop function public.r3ctx_super_fn(); drop function public.r3ctx_private_fn()",
        &[],
    )
    .await;
    fx.teardown().await;
}

/// A trigger that copies tenant rows into a table the application role can
/// read without RLS (the copy keeps the tenant column: reported as that
/// table), and a rule on a tenant table (its actions run as the table's
/// owner).
#[tokio::test]
async fn verify_reports_copies_of_tenant_rows_and_rules() {
    let Some(fx) = fixture("r3ctx_verify_copies", 1).await else {
        return;
    };
    let app = fx.role.clone();
    owner_then(
        &fx,
        &format!(
            "create table r3ctx_copy (tenant_id uuid, name text); \
             grant select, insert on r3ctx_copy to \"{app}\"; \
             create function r3ctx_copy_fn() returns trigger language plpgsql as $$ \
             begin insert into public.r3ctx_copy values (new.tenant_id, new.name); return new; end $$; \
             create trigger r3ctx_copy after insert on assets for each row execute function r3ctx_copy_fn()"
        ),
        &[
            Finding::UnprotectedTenantColumn {
                table: "r3ctx_copy".into(),
                column: "tenant_id".into(),
            },
            Finding::UndeclaredTrigger {
                table: "assets".into(),
                trigger: "r3ctx_copy".into(),
                function: "r3ctx_copy_fn()".into(),
            },
        ],
    )
    .await;
    // Positive control: B's guarded insert is copied where A reads it.
    let pool = app_pool(&fx);
    let mut tx = begin(&pool, TENANT_B).await;
    tx.query("INSERT INTO assets (name) VALUES ($1)")
        .unwrap()
        .bind("B copied")
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        b_rows_via(
            &fx,
            "",
            "select count(*) from r3ctx_copy where name = 'B copied'"
        )
        .await,
        1,
        "positive control"
    );
    owner_then(
        &fx,
        "drop trigger r3ctx_copy on assets; drop table r3ctx_copy; drop function r3ctx_copy_fn()",
        &[],
    )
    .await;

    owner_then(
        &fx,
        "create table r3ctx_rule_copy (tenant_id uuid, name text); \
         create rule r3ctx_rule as on insert to assets do also \
         insert into r3ctx_rule_copy values (new.tenant_id, new.name)",
        &[Finding::RuleOnTenantTable {
            table: "assets".into(),
            rule: "r3ctx_rule".into(),
        }],
    )
    .await;
    owner_then(
        &fx,
        "drop rule r3ctx_rule on assets; drop table r3ctx_rule_copy",
        &[],
    )
    .await;
    fx.teardown().await;
}

/// A session-level scope token (client grants and roles) left on a pooled
/// connection by an earlier transaction never applies to the next one: a
/// pool whose registry needs no scope sets it transaction-local to `''`
/// instead of leaving it as it was (RLS generated from a registry with client
/// tables would otherwise read the earlier user's roles and clients).
#[tokio::test]
async fn a_scope_left_on_the_connection_never_reaches_the_next_transaction() {
    let Some(fx) = fixture("r3ctx_scope_left", 1).await else {
        return;
    };
    let pool = restarted(&fx).await;
    let mut tx = begin(&pool, TENANT_A).await;
    sqlx::query("select set_config('hisn.tenant_scope', 's1.planted', false)")
        .execute(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = begin(&pool, TENANT_A).await;
    let conn = danger::unguarded(&mut tx);
    let scope: Option<String> =
        sqlx::query_scalar("select current_setting('hisn.tenant_scope', true)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(scope.as_deref(), Some(""), "the planted scope survived");
    tx.rollback().await.unwrap();
    drop(pool);
    fx.teardown().await;
}
