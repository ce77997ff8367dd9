//! A tenant context SQL cannot forge (issue 10, root cause 3).
//!
//! Root cause: RLS used to read the tenant from `current_setting('hisn.tenant_id')`,
//! a setting any SQL the application role runs can change (`set_config`, `SET`,
//! `RESET`). Any statement that got past the guard could therefore move itself
//! into another tenant, so bypassing the guard also bypassed RLS: the layers
//! were not independent. Now the setting holds a token MAC'd with a key the
//! application role cannot read, and RLS asks a `SECURITY DEFINER` function
//! that verifies it. These tests switch the guard off entirely
//! (`db::danger::unguarded`) and run the attacks as the application role inside
//! tenant A's transaction; tenant B's rows must stay unread and unchanged.

use std::sync::Arc;
use std::time::Duration;

use hisn_tenant_guard::db::{PgTenantPool, danger};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::rls::ContextKey;
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, PgConnection, PgPool};
use hisn_tenant_guard::{Error, ManualClock};

use crate::common::pg::{fixture, key, tenant_b_snapshot};
use crate::common::{TABLES, TENANT_A, TENANT_B, context};

pub fn guard() -> QueryGuard {
    QueryGuard::new(
        TableRegistry::parse_spec(TABLES)
            .unwrap()
            .shared_table("countries"),
        Dialect::Postgres,
    )
}

/// Everything tenant B's rows could be reached with after an attack: reads,
/// enumeration and writes. `Ok(n)` counts rows of B seen or touched; an error
/// (the attack aborted the transaction, or RLS refused a write) is no leak.
async fn probe_b(conn: &mut PgConnection) -> Vec<(&'static str, Result<u64, sqlx::Error>)> {
    let mut out = Vec::new();
    for (name, sql) in [
        (
            "read",
            "select count(*)::int8 from assets where tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
        ),
        (
            "enumerate",
            "select (select count(*) from assets where tenant_id <> 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa') \
                  + (select count(*) from work_orders where tenant_id <> 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')",
        ),
        (
            "search",
            "select count(*)::int8 from assets where name in ('pump B1', 'secret B2')",
        ),
    ] {
        let r = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&mut *conn)
            .await
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        out.push((name, r));
    }
    for (name, sql) in [
        (
            "update",
            "update assets set name = 'pwned' where tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
        ),
        (
            "delete",
            "delete from work_orders where tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
        ),
        (
            "insert",
            "insert into assets (tenant_id, name) values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'planted')",
        ),
    ] {
        let r = sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected());
        out.push((name, r));
    }
    out
}

/// The context forgeries: each is raw SQL the application role runs inside
/// tenant A's transaction with the guard off. `{A}`/`{B}` are the tenants,
/// `{TOKEN_B_WRONG_KEY}` a token for B signed with another key, `{TOKEN_B_EXPIRED}`
/// a correctly signed but expired token for B.
pub const CONTEXT_ATTACKS: &[(&str, &str)] = &[
    (
        "set_config_unsigned",
        "select set_config('hisn.tenant_context', 'v1.{B}.99999999999.0000000000000000000000000000000000000000000000000000000000000000', true)",
    ),
    (
        "set_local",
        "set local hisn.tenant_context = 'v1.{B}.99999999999.0000000000000000000000000000000000000000000000000000000000000000'",
    ),
    (
        "set_session",
        "set hisn.tenant_context = 'v1.{B}.99999999999.0000000000000000000000000000000000000000000000000000000000000000'",
    ),
    (
        "own_token_tenant_swapped",
        "select set_config('hisn.tenant_context', replace(current_setting('hisn.tenant_context'), '{A}', '{B}'), true)",
    ),
    (
        "own_token_expiry_stretched",
        "select set_config('hisn.tenant_context', regexp_replace(current_setting('hisn.tenant_context'), '\\.[0-9]+\\.', '.99999999999.'), true)",
    ),
    (
        "token_signed_with_another_key",
        "select set_config('hisn.tenant_context', '{TOKEN_B_WRONG_KEY}', true)",
    ),
    (
        "expired_token_replayed",
        "select set_config('hisn.tenant_context', '{TOKEN_B_EXPIRED}', true)",
    ),
    ("reset", "reset hisn.tenant_context"),
    ("reset_all", "reset all"),
    (
        "legacy_setting",
        "select set_config('hisn.tenant_id', '{B}', true)",
    ),
    (
        "do_block",
        "do $$ begin perform set_config('hisn.tenant_context', 'v1.{B}.99999999999.00', true); end $$",
    ),
    ("set_role_superuser", "set role postgres"),
    (
        "set_session_authorization",
        "set session authorization postgres",
    ),
    ("row_security_off", "set row_security = off"),
    (
        "read_the_key",
        "select count(*) from public.hisn_tenant_guard_context_key",
    ),
    (
        "overwrite_the_key",
        "update public.hisn_tenant_guard_context_key set ikey = okey",
    ),
    (
        "replace_the_function",
        "create or replace function public.hisn_tenant_guard_current_tenant() returns uuid language sql as $$ select '{B}'::uuid $$",
    ),
    (
        "shadow_the_function_in_pg_temp",
        "create function pg_temp.hisn_tenant_guard_current_tenant() returns uuid language sql as $$ select '{B}'::uuid $$",
    ),
    (
        "shadow_the_key_table_in_pg_temp",
        "create temp table hisn_tenant_guard_context_key (id int, ikey bytea, okey bytea)",
    ),
    (
        "shadow_sha256_in_pg_temp",
        "create function pg_temp.sha256(bytea) returns bytea language sql as $$ select '\\x00'::bytea $$",
    ),
    (
        "disable_rls",
        "alter table assets disable row level security",
    ),
    ("drop_policy", "drop policy hisn_tenant_isolation on assets"),
    (
        "permissive_policy",
        "create policy open on assets for all using (true)",
    ),
    (
        "temp_view_over_tenant_table",
        "create temp view leak as select * from assets",
    ),
    ("truncate", "truncate work_orders"),
    (
        "set_config_in_a_subquery",
        "select name from assets where name <> (select set_config('hisn.tenant_context', 'v1.{B}.1.00', true))",
    ),
];

/// A raw token as the pool sets it, read back inside a transaction of `pool`.
async fn token_of(pool: &PgTenantPool, tenant: &str) -> String {
    let mut tx = pool.begin(&context(tenant)).await.unwrap();
    let token: String = sqlx::query_scalar("select current_setting('hisn.tenant_context')")
        .fetch_one(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    token
}

/// The attacks with the tenants and tokens filled in.
pub async fn context_attacks(app: &PgPool) -> Vec<(&'static str, String)> {
    let wrong = PgTenantPool::new(app.clone(), guard(), ContextKey::from_bytes([1; 32])).unwrap();
    let wrong_key = token_of(&wrong, TENANT_B).await;
    let expired = PgTenantPool::new(app.clone(), guard(), key())
        .unwrap()
        .with_context_ttl(
            Duration::from_secs(60),
            Arc::new(ManualClock::new(1_000_000_000)),
        )
        .unwrap();
    let expired = token_of(&expired, TENANT_B).await;
    CONTEXT_ATTACKS
        .iter()
        .map(|(name, sql)| {
            let sql = sql
                .replace("{A}", TENANT_A)
                .replace("{B}", TENANT_B)
                .replace("{TOKEN_B_WRONG_KEY}", &wrong_key)
                .replace("{TOKEN_B_EXPIRED}", &expired);
            (*name, sql)
        })
        .collect()
}

/// Run `attack` and then every probe in one tenant-A transaction with the
/// guard off; commit. Returns the probes that reached a row of tenant B.
pub async fn attack_unguarded(pool: &PgTenantPool, attack: &str) -> Vec<String> {
    // An earlier attack may have left session state: the pool then refuses
    // the connection (fail closed), which is no leak.
    let Ok(mut tx) = pool.begin(&context(TENANT_A)).await else {
        return Vec::new();
    };
    let conn = danger::unguarded(&mut tx);
    // The attack may fail (permission denied): then the transaction is aborted
    // and every probe fails too, which is no leak.
    let _ = sqlx::raw_sql(AssertSqlSafe(attack.to_owned()))
        .execute(&mut *conn)
        .await;
    let leaks = probe_b(conn)
        .await
        .into_iter()
        .filter_map(|(probe, r)| match r {
            Ok(n) if n > 0 => Some(format!("{probe}: {n}")),
            _ => None,
        })
        .collect();
    let _ = tx.commit().await;
    leaks
}

#[tokio::test]
async fn context_forgery_by_sql_reaches_no_other_tenant_with_the_guard_off() {
    let Some(fx) = fixture("tg_ctx_forgery", 1).await else {
        return;
    };
    let before = tenant_b_snapshot(&fx.admin).await;
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();

    // Positive control: the probes do find B's rows where RLS does not apply
    // (the superuser pool), so an empty result below means something.
    let control = PgTenantPool::new(fx.admin.clone(), guard(), key()).unwrap();
    let mut tx = control.begin(&context(TENANT_A)).await.unwrap();
    let seen = probe_b(danger::unguarded(&mut tx)).await;
    assert!(
        seen.iter().all(|(_, r)| matches!(r, Ok(n) if *n > 0)),
        "{seen:?}"
    );
    tx.rollback().await.unwrap();

    for (name, sql) in context_attacks(&fx.app).await {
        let leaks = attack_unguarded(&pool, &sql).await;
        assert!(leaks.is_empty(), "{name} reached tenant B: {leaks:?}");
    }
    assert_eq!(tenant_b_snapshot(&fx.admin).await, before);

    // The boundary, and proof that the attacks above really set what RLS
    // reads: a *valid* token for B (one that leaked, say from a server log of
    // bound parameters) does open B until it expires. Tokens are therefore
    // short-lived, never in SQL text, and readable only by SQL running in that
    // tenant's own transaction.
    let valid_b = token_of(&pool, TENANT_B).await;
    let leaks = attack_unguarded(
        &pool,
        &format!("select set_config('hisn.tenant_context', '{valid_b}', true)"),
    )
    .await;
    assert!(!leaks.is_empty());

    // A session-level SET survives on the pooled connection; a raw borrower
    // and the next tenant transaction still get nothing of B.
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(danger::unguarded(&mut tx))
        .await
        .unwrap();
    assert_eq!(n, 2, "tenant A still sees its own rows");
    tx.rollback().await.unwrap();
    let raw: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(&fx.app)
        .await
        .unwrap();
    assert_eq!(raw, 0);
    drop(pool);
    drop(control);
    fx.teardown().await;
}

#[tokio::test]
async fn context_function_returns_the_signed_tenant_only() {
    let Some(fx) = fixture("tg_ctx_function", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let t: Option<uuid::Uuid> =
        sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(t.unwrap().to_string(), TENANT_B);
    // Flip one hex digit of the MAC: NULL.
    sqlx::query(
        "select set_config('hisn.tenant_context', \
           left(current_setting('hisn.tenant_context'), -1) || \
           case right(current_setting('hisn.tenant_context'), 1) when '0' then '1' else '0' end, true)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let t: Option<uuid::Uuid> =
        sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert!(t.is_none());
    tx.rollback().await.unwrap();
    // Without a transaction context: NULL.
    let t: Option<uuid::Uuid> =
        sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()")
            .fetch_one(&fx.app)
            .await
            .unwrap();
    assert!(t.is_none());
    drop(pool);
    fx.teardown().await;
}

/// The context function compares the whole token with the one rebuilt from
/// its message (no separate shape parse), so every token it did not sign
/// exactly must read NULL, without an error: suffixes and prefixes, a changed
/// separator or case, a longer message under a valid MAC, tenant or expiry
/// that would not parse (parsed only after the MAC verified), non-ASCII text,
/// other versions, over-long and empty settings.
#[tokio::test]
async fn context_function_reads_null_for_any_token_it_did_not_sign_exactly() {
    let Some(fx) = fixture("tg_ctx_exact", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let conn = danger::unguarded(&mut tx);
    let valid: String = sqlx::query_scalar("select current_setting('hisn.tenant_context')")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let (message, mac) = valid.rsplit_once('.').unwrap();
    let variants = [
        format!("{valid}x"),
        format!("x{valid}"),
        format!("{valid}."),
        format!("{valid}é"),
        format!("{message}:{mac}"),
        format!("{message}.{}", mac.to_uppercase()),
        format!("{message}.{mac}{mac}"),
        format!("{message}..{mac}"),
        format!("{message}.0.{mac}"),
        format!("{message}.{}", &mac[1..]),
        // Neither part parses, and the MAC fails: NULL, not a cast error.
        format!("v1.{TENANT_B}.not-a-number.{mac}"),
        format!("v1.not-a-uuid.99999999999.{mac}"),
        valid.replacen("v1.", "v2.", 1),
        valid.replacen("v1.", "V1.", 1),
        format!("{}é", &valid[..valid.len() - 1]),
        mac.to_owned(),
        "v1.".to_owned(),
        "v1".to_owned(),
        String::new(),
        format!("{valid}{}", "0".repeat(200)),
    ];
    for v in &variants {
        sqlx::query("select set_config('hisn.tenant_context', $1, true)")
            .bind(v)
            .execute(&mut *conn)
            .await
            .unwrap();
        let t: Option<uuid::Uuid> =
            sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()")
                .fetch_one(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert!(t.is_none(), "{v:?} read as {t:?}");
    }
    // The valid token still verifies after all that (nothing was cached).
    sqlx::query("select set_config('hisn.tenant_context', $1, true)")
        .bind(&valid)
        .execute(&mut *conn)
        .await
        .unwrap();
    let t: Option<uuid::Uuid> =
        sqlx::query_scalar("select public.hisn_tenant_guard_current_tenant()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(t.unwrap().to_string(), TENANT_B);
    tx.rollback().await.unwrap();
    drop(pool);
    fx.teardown().await;
}

#[tokio::test]
async fn expired_or_wrongly_keyed_context_reads_and_writes_nothing() {
    let Some(fx) = fixture("tg_ctx_expired", 1).await else {
        return;
    };
    let expired = PgTenantPool::new(fx.app.clone(), guard(), key())
        .unwrap()
        .with_context_ttl(
            Duration::from_secs(60),
            Arc::new(ManualClock::new(1_000_000_000)),
        )
        .unwrap();
    let wrong =
        PgTenantPool::new(fx.app.clone(), guard(), ContextKey::from_bytes([9; 32])).unwrap();
    for pool in [&expired, &wrong] {
        let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
        let rows = tx
            .query("select id from assets")
            .unwrap()
            .fetch_all()
            .await
            .unwrap();
        assert!(rows.is_empty());
        let r = tx
            .query("insert into assets (name) values ($1)")
            .unwrap()
            .bind("x")
            .execute()
            .await;
        assert!(matches!(r, Err(Error::Database(_))), "{r:?}");
    }
    assert!(
        PgTenantPool::new(fx.app.clone(), guard(), key())
            .unwrap()
            .with_context_ttl(Duration::from_secs(7200), Arc::new(ManualClock::new(0)))
            .is_err()
    );
    drop((expired, wrong));
    fx.teardown().await;
}

#[tokio::test]
async fn tenant_context_is_not_in_pg_stat_activity() {
    // The token is a bound parameter: the statement text other sessions can see
    // names neither the tenant nor the token.
    let Some(fx) = fixture("tg_ctx_stat_activity", 1).await else {
        return;
    };
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let tx = pool.begin(&context(TENANT_B)).await.unwrap();
    let queries: Vec<String> = sqlx::query_scalar(
        "select query from pg_stat_activity where usename = $1 and state = 'idle in transaction'",
    )
    .bind(&fx.role)
    .fetch_all(&fx.admin)
    .await
    .unwrap();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert!(queries[0].contains("$1"), "{queries:?}");
    assert!(!queries[0].contains(TENANT_B) && !queries[0].contains("v1."));
    drop(tx);
    drop(pool);
    fx.teardown().await;
}

/// The fixture's own test: a test that fails inside an open tenant
/// transaction must report its failure, not hang. The transaction's
/// connection stays idle in transaction, holding locks that the clean-up's
/// `drop owned` waited on forever, so the failing test never finished; the
/// clean-up now ends the test database's other sessions first. The failing
/// body runs on its own thread and runtime, so a hang is reported after 60 s
/// instead of blocking this test too; the roles must be gone afterwards.
#[tokio::test]
async fn fixture_cleanup_survives_a_panic_inside_a_transaction() {
    use hisn_tenant_guard::sqlx::Connection as _;

    let (tell_roles, roles) = std::sync::mpsc::channel();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let body = async move {
            let Some(fx) = fixture("tg_fixture_panic", 1).await else {
                return;
            };
            let _ = tell_roles.send([fx.role.clone(), fx.owner.clone()]);
            let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
            let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
            let rows = tx
                .query("SELECT id FROM assets")
                .unwrap()
                .fetch_all()
                .await
                .unwrap();
            assert!(
                rows.is_empty(),
                "a deliberate failure inside the transaction"
            );
        };
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body)
        }))
        .is_err();
        let _ = done.send(failed);
    });
    let failed = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the failing test hung in the fixture's clean-up");
    let Ok(roles) = roles.try_recv() else {
        return; // PostgreSQL is not configured: skipped
    };
    assert!(failed, "the body's assertion did not fail");
    let url = std::env::var("HISN_TEST_DATABASE_URL").unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for role in roles {
        let left: i64 = sqlx::query_scalar("select count(*) from pg_roles where rolname = $1")
            .bind(&role)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0, "role {role} was not dropped");
    }
    conn.close().await.unwrap();
}
