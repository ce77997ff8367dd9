//! Outside review, fourth round: data of a tenant table reachable, through
//! objects the catalog shows, in a place row-level security does not cover.
//!
//! **Gap found: a copying trigger whose target's tenant column has another
//! name.** `verify` reported tables without RLS that hold a column named (and
//! typed) like a tenant column: what a copying trigger writes. A trigger on a
//! tenant table copying rows into `org`, `owner_tenant`, or a JSON document
//! went unreported, and every tenant read the copies (proved below with the
//! other layers off: raw SQL as the application role, no guard). The catalog
//! cannot tell a copy from reference data by its columns, so `verify` now
//! stops guessing: every trigger on a tenant table is reported unless its
//! function is declared reviewed, and every relation a reachable role can use
//! (directly or through a view) that has no RLS is reported unless declared
//! global (`rls::VerifyOptions`). Nothing is declared by default.

use hisn_tenant_guard::db::{PgTenantPool, danger};
use hisn_tenant_guard::rls::{self, Finding, VerifyOptions};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};

use crate::common::pg::{Fixture, exec, exec_as, fixture, globals, key};
use crate::common::{TABLES, TENANT_A, TENANT_B, context};
use crate::pg_context::guard;

/// `verify_with(options)` as the application role.
async fn findings_with(fx: &Fixture, options: &VerifyOptions) -> Vec<Finding> {
    rls::verify_with(&fx.app, &rls::parse_tables(TABLES).unwrap(), options)
        .await
        .unwrap()
        .findings
}

/// `verify` with the fixture's global table (`countries`) declared.
async fn findings(fx: &Fixture) -> Vec<Finding> {
    findings_with(fx, &globals()).await
}

async fn as_owner(fx: &Fixture, sql: &str) {
    exec_as(&fx.admin, &fx.owner, sql).await;
}

fn trigger(table: &str, trigger: &str, function: &str) -> Finding {
    Finding::UndeclaredTrigger {
        table: table.into(),
        trigger: trigger.into(),
        function: function.into(),
    }
}

fn table(table: &str) -> Finding {
    Finding::UndeclaredTable {
        table: table.into(),
    }
}

/// Tenant B inserts an asset named `name` with raw SQL (no guard), in its
/// own tenant transaction; committed.
async fn b_inserts(pool: &PgTenantPool, name: &str) {
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    sqlx::query("insert into assets (tenant_id, name) values ($1::uuid, $2)")
        .bind(TENANT_B)
        .bind(name)
        .execute(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `sql` (a count) in tenant A's transaction, raw SQL, no guard.
async fn a_counts(pool: &PgTenantPool, sql: &str) -> i64 {
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let n = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(danger::unguarded(&mut tx))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.rollback().await.unwrap();
    n
}

/// The leak is real: a trigger on `assets` copies each new row into a table
/// whose tenant column is named `org`, and the whole row as JSON; tenant A's
/// raw SQL reads tenant B's copy. The old name-based check saw nothing
/// (no `UnprotectedTenantColumn`); now the trigger and the table are each
/// reported.
#[tokio::test]
async fn a_copy_under_another_column_name_leaks_and_is_reported() {
    let Some(fx) = fixture("r4_copy_leak", 1).await else {
        return;
    };
    let app = fx.role.clone();
    as_owner(
        &fx,
        &format!(
            "create table r4_org_copy (org uuid, doc jsonb); \
             grant select, insert on r4_org_copy to \"{app}\"; \
             create function r4_copy_fn() returns trigger language plpgsql as $$ \
             begin insert into public.r4_org_copy values (new.tenant_id, to_jsonb(new)); return new; end $$; \
             create trigger r4_copy after insert on assets for each row execute function r4_copy_fn()"
        ),
    )
    .await;
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    b_inserts(&pool, "B secret copy").await;
    assert_eq!(
        a_counts(
            &pool,
            &format!(
                "select count(*) from r4_org_copy where org = '{TENANT_B}' \
                 and doc->>'name' = 'B secret copy'"
            )
        )
        .await,
        1,
        "positive control: tenant A reads tenant B's copied row"
    );
    assert_eq!(
        a_counts(
            &pool,
            "select count(*) from assets where name = 'B secret copy'"
        )
        .await,
        0,
        "RLS itself holds on the tenant table"
    );
    let found = findings(&fx).await;
    assert!(
        !found
            .iter()
            .any(|f| matches!(f, Finding::UnprotectedTenantColumn { .. })),
        "the name-based check cannot see it: {found:?}"
    );
    assert_eq!(
        found,
        [
            trigger("assets", "r4_copy", "r4_copy_fn()"),
            table("r4_org_copy")
        ]
    );
    drop(pool);
    fx.teardown().await;
}

/// Each way of copying is reported on its own: a renamed tenant column, a
/// JSON blob without any tenant column, a trigger whose function calls a
/// helper that does the copy, a target the application role reaches only
/// through a view, a trigger whatever its `ENABLE` state (disabled,
/// `ENABLE REPLICA`, `ENABLE ALWAYS`), and one on a child table. Declaring
/// the target global silences the table finding only: the trigger stays
/// reported until its function is declared.
#[tokio::test]
async fn verify_reports_every_copy_trigger_and_its_target() {
    let Some(fx) = fixture("r4_copy_kinds", 1).await else {
        return;
    };
    let app = fx.role.clone();
    assert_eq!(findings(&fx).await, []);
    let copy_trigger = |table: &str, body: &str| {
        format!(
            "create function r4_fn() returns trigger language plpgsql as $$ \
             begin {body}; return new; end $$; \
             create trigger r4_t after insert or update on {table} for each row execute function r4_fn()"
        )
    };
    let cleanup = |table: &str, target: &str| {
        format!("drop trigger r4_t on {table}; drop function r4_fn(); drop table {target} cascade")
    };

    // Renamed tenant column, on work_orders.
    as_owner(
        &fx,
        &format!(
            "create table r4_owner_copy (owner_tenant uuid, title text); \
             grant select, insert on r4_owner_copy to \"{app}\"; {}",
            copy_trigger(
                "work_orders",
                "insert into public.r4_owner_copy values (new.tenant_id, new.title)"
            )
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [
            trigger("work_orders", "r4_t", "r4_fn()"),
            table("r4_owner_copy")
        ]
    );
    as_owner(&fx, &cleanup("work_orders", "r4_owner_copy")).await;

    // A JSON blob, no tenant column at all.
    as_owner(
        &fx,
        &format!(
            "create table r4_blob (doc jsonb); grant select, insert on r4_blob to \"{app}\"; {}",
            copy_trigger(
                "assets",
                "insert into public.r4_blob values (to_jsonb(new))"
            )
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [trigger("assets", "r4_t", "r4_fn()"), table("r4_blob")]
    );
    // Declared global: the trigger is still reported.
    assert_eq!(
        findings_with(&fx, &globals().global_tables(["r4_blob"]).unwrap()).await,
        [trigger("assets", "r4_t", "r4_fn()")]
    );
    as_owner(&fx, &cleanup("assets", "r4_blob")).await;

    // The trigger calls a helper that does the copy.
    as_owner(
        &fx,
        &format!(
            "create table r4_helper_copy (o uuid, n text); \
             grant select, insert on r4_helper_copy to \"{app}\"; \
             create function r4_helper(t uuid, n text) returns void language sql \
             as 'insert into public.r4_helper_copy values (t, n)'; {}",
            copy_trigger(
                "assets",
                "perform public.r4_helper(new.tenant_id, new.name)"
            )
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [
            trigger("assets", "r4_t", "r4_fn()"),
            table("r4_helper_copy")
        ]
    );
    as_owner(
        &fx,
        &format!(
            "{}; drop function r4_helper(uuid, text)",
            cleanup("assets", "r4_helper_copy")
        ),
    )
    .await;

    // The target is not granted, but a view over it is.
    as_owner(
        &fx,
        &format!(
            "create table r4_hidden (o uuid, n text); \
             create view r4_hidden_v as select n from r4_hidden; \
             grant select on r4_hidden_v to \"{app}\"; \
             create function r4_fn() returns trigger language plpgsql security definer as $$ \
             begin insert into public.r4_hidden values (new.tenant_id, new.name); return new; end $$; \
             create trigger r4_t after insert on assets for each row execute function r4_fn(); \
             revoke all on function r4_fn() from public"
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [trigger("assets", "r4_t", "r4_fn()"), table("r4_hidden")]
    );
    as_owner(&fx, &cleanup("assets", "r4_hidden")).await;

    // Whatever the trigger's state, it is one ALTER TABLE from firing.
    as_owner(
        &fx,
        &format!(
            "create table r4_always (o uuid, n text); \
             grant select, insert on r4_always to \"{app}\"; {}; \
             alter table assets disable trigger r4_t",
            copy_trigger(
                "assets",
                "insert into public.r4_always values (new.tenant_id, new.name)"
            )
        ),
    )
    .await;
    let with_target = globals().global_tables(["r4_always"]).unwrap();
    for state in ["disable", "enable replica", "enable always"] {
        as_owner(&fx, &format!("alter table assets {state} trigger r4_t")).await;
        assert_eq!(
            findings_with(&fx, &with_target).await,
            [trigger("assets", "r4_t", "r4_fn()")],
            "{state}"
        );
    }
    // ENABLE ALWAYS fires: B's row lands where A reads it.
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    b_inserts(&pool, "B always").await;
    assert_eq!(
        a_counts(&pool, "select count(*) from r4_always where n = 'B always'").await,
        1,
        "positive control: the ENABLE ALWAYS trigger copied B's row"
    );
    drop(pool);
    as_owner(&fx, &cleanup("assets", "r4_always")).await;

    // A trigger on a child of a tenant table fires for the child's rows.
    as_owner(
        &fx,
        &format!(
            "create table r4_kid () inherits (assets); {}",
            copy_trigger("r4_kid", "null")
        ),
    )
    .await;
    let found = findings(&fx).await;
    assert!(
        found.contains(&trigger("r4_kid", "r4_t", "r4_fn()")),
        "{found:?}"
    );
    as_owner(&fx, "drop table r4_kid; drop function r4_fn()").await;
    assert_eq!(findings(&fx).await, []);
    fx.teardown().await;
}

/// The default declares nothing (fail closed): the fixture's reference
/// table `countries` is reported until declared global. A reviewed trigger
/// function is accepted once declared, unless the application role owns it
/// (it could replace the body); foreign keys' internal triggers are never
/// reported (the fixture's `work_orders` references `assets`). A global
/// declaration does not cover a table holding a tenant column, nor a
/// materialized view of a global table.
#[tokio::test]
async fn declared_globals_and_reviewed_triggers_verify_clean() {
    let Some(fx) = fixture("r4_declared", 1).await else {
        return;
    };
    let app = fx.role.clone();
    assert_eq!(
        rls::verify(&fx.app, &rls::parse_tables(TABLES).unwrap())
            .await
            .unwrap()
            .findings,
        [table("countries")]
    );
    assert_eq!(
        findings_with(&fx, &VerifyOptions::new()).await,
        [table("countries")]
    );
    assert_eq!(findings(&fx).await, []);

    // A reviewed trigger: it stamps the row, copies nothing.
    as_owner(
        &fx,
        "create function r4_stamp() returns trigger language plpgsql as $$ \
         begin new.serial_no := coalesce(new.serial_no, 'none'); return new; end $$; \
         create trigger r4_stamp before insert on assets for each row execute function r4_stamp()",
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [trigger("assets", "r4_stamp", "r4_stamp()")]
    );
    let reviewed = globals().trigger_functions(["public.r4_stamp"]).unwrap();
    assert_eq!(findings_with(&fx, &reviewed).await, []);
    // Owned by the application role: it could make the function copy rows.
    exec(
        &fx.admin,
        &format!("alter function public.r4_stamp() owner to \"{app}\""),
    )
    .await;
    assert_eq!(
        findings_with(&fx, &reviewed).await,
        [trigger("assets", "r4_stamp", "r4_stamp()")]
    );
    exec(
        &fx.admin,
        "drop trigger r4_stamp on assets; drop function r4_stamp()",
    )
    .await;
    assert_eq!(findings_with(&fx, &reviewed).await, []);
    // A table holding a tenant column stays reported when declared global.
    as_owner(
        &fx,
        &format!("create table r4_tc (tenant_id uuid); grant select on r4_tc to \"{app}\""),
    )
    .await;
    assert_eq!(
        findings_with(&fx, &globals().global_tables(["r4_tc"]).unwrap()).await,
        [Finding::UnprotectedTenantColumn {
            table: "r4_tc".into(),
            column: "tenant_id".into(),
        }]
    );
    as_owner(&fx, "drop table r4_tc").await;
    // A materialized view of a global table is a table of its own.
    as_owner(
        &fx,
        &format!(
            "create materialized view r4_mv as select code from countries; \
             grant select on r4_mv to \"{app}\""
        ),
    )
    .await;
    assert_eq!(findings(&fx).await, [table("r4_mv")]);
    as_owner(&fx, "drop materialized view r4_mv").await;
    assert_eq!(findings(&fx).await, []);
    fx.teardown().await;
}

/// Class: a copying trigger on a relation that is not a tenant table. A
/// trigger on a declared global table fires when any tenant writes it; its
/// function (`EXECUTE` revoked: firing checks none) copies the writing
/// tenant's rows into that global table, which every tenant reads.
/// Reported, as are an `INSTEAD OF` trigger on a view the application role
/// can use and a rule on a global table or on a child of a tenant table
/// (`RuleOnReachableRelation`).
///
/// Root cause: only triggers and rules on tenant tables were looked at.
#[tokio::test]
async fn a_copying_trigger_on_a_global_table_or_a_view_is_reported() {
    let Some(fx) = fixture("r4_global_trigger", 1).await else {
        return;
    };
    let app = fx.role.clone();
    as_owner(
        &fx,
        &format!(
            "create table r4_feed (doc text); grant select, insert on r4_feed to \"{app}\"; \
             create function r4_mirror() returns trigger language plpgsql \
               set search_path = public, pg_temp as $$ \
               begin if pg_trigger_depth() > 1 then return null; end if; \
                 insert into r4_feed select row_to_json(a)::text from assets a; \
                 return null; end $$; \
             revoke execute on function r4_mirror() from public; \
             create trigger r4_m after insert on r4_feed for each statement \
               execute function r4_mirror()"
        ),
    )
    .await;
    let declared = globals().global_tables(["r4_feed"]).unwrap();
    assert_eq!(
        findings_with(&fx, &declared).await,
        [trigger("r4_feed", "r4_m", "r4_mirror()")]
    );
    // The leak the finding is about: B writes the feed, its rows are
    // mirrored there, A reads them.
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    b_inserts(&pool, "B mirrored").await;
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    sqlx::query("insert into r4_feed values ('from B')")
        .execute(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        a_counts(
            &pool,
            "select count(*) from r4_feed where doc like '%B mirrored%'"
        )
        .await,
        1,
        "positive control: the trigger copied B's row where A reads it"
    );
    drop(pool);
    // Declared reviewed, it is accepted (the operator vouches for it).
    let reviewed = declared.clone().trigger_functions(["r4_mirror"]).unwrap();
    assert_eq!(findings_with(&fx, &reviewed).await, []);
    as_owner(&fx, "drop table r4_feed; drop function r4_mirror()").await;

    // An INSTEAD OF trigger on a view the application role can write.
    as_owner(
        &fx,
        &format!(
            "create view r4_v as select code from countries; \
             grant select, insert on r4_v to \"{app}\"; \
             create function r4_vfn() returns trigger language plpgsql as $$ \
               begin return new; end $$; \
             create trigger r4_vt instead of insert on r4_v for each row execute function r4_vfn()"
        ),
    )
    .await;
    assert_eq!(findings(&fx).await, [trigger("r4_v", "r4_vt", "r4_vfn()")]);
    as_owner(&fx, "drop view r4_v; drop function r4_vfn()").await;
    assert_eq!(findings(&fx).await, []);

    // A rule on the declared global table: its actions run with the owner's
    // privileges whenever a tenant writes there. Under the generated policies
    // (FORCE, permissive policy for the application role) the owner reads no
    // tenant row, so this copy stays empty; an owner that bypasses RLS, or a
    // table without RLS among what the rule reads, would be read whole.
    // Reported either way, for a reviewer to see.
    as_owner(
        &fx,
        &format!(
            "create table r4_feed (doc text); grant select, insert on r4_feed to \"{app}\"; \
             create table r4_copy (doc text); grant select on r4_copy to \"{app}\"; \
             create rule r4_r as on insert to r4_feed \
               do also insert into r4_copy select row_to_json(a)::text from assets a"
        ),
    )
    .await;
    let declared = declared.global_tables(["r4_copy"]).unwrap();
    assert_eq!(
        findings_with(&fx, &declared).await,
        [Finding::RuleOnReachableRelation {
            table: "r4_feed".into(),
            rule: "r4_r".into(),
        }]
    );
    let pool = PgTenantPool::new(fx.app.clone(), guard(), key()).unwrap();
    let mut tx = pool.begin(&context(TENANT_B)).await.unwrap();
    sqlx::query("insert into r4_feed values ('go')")
        .execute(danger::unguarded(&mut tx))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        a_counts(&pool, "select count(*) from r4_copy").await,
        0,
        "the owner reads no tenant row under FORCE"
    );
    drop(pool);
    as_owner(&fx, "drop table r4_feed; drop table r4_copy").await;
    // On a child of a tenant table too (the tenant table's own rules are
    // `RuleOnTenantTable`).
    as_owner(
        &fx,
        "create table r4_kid () inherits (assets); \
         create rule r4_kr as on update to r4_kid do also notify r4",
    )
    .await;
    let found = findings(&fx).await;
    assert!(
        found.contains(&Finding::RuleOnReachableRelation {
            table: "r4_kid".into(),
            rule: "r4_kr".into(),
        }),
        "{found:?}"
    );
    as_owner(&fx, "drop table r4_kid").await;
    assert_eq!(findings(&fx).await, []);
    fx.teardown().await;
}
