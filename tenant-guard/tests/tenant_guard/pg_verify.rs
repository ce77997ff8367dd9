//! `rls::verify` finds what leaks (issue 10): one test per finding kind, each
//! against real PostgreSQL, each breaking the generated setup in one way.
//!
//! Root cause: `verify` used to look only at the connected role itself and at
//! the tables named, so a database could leak while `verify` reported clean:
//! a role the app can `SET ROLE` to with BYPASSRLS or owning a table, a policy
//! that never applied to the app role (granted to another role, or reached
//! only through a `NOINHERIT` membership), a partition or inheritance child
//! without RLS, a table owned by a superuser, an extra permissive policy, no
//! `WITH CHECK`, and — once RLS depended on it — a context function or key
//! the app role could change or read.

use hisn_tenant_guard::rls::{self, Finding};
use hisn_tenant_guard::sqlx;

use crate::common::TABLES;
use crate::common::pg::{Fixture, exec, exec_as, fixture};

async fn findings(fx: &Fixture) -> Vec<Finding> {
    crate::common::pg::verify(&fx.app, &rls::parse_tables(TABLES).unwrap())
        .await
        .unwrap()
        .findings
}

async fn findings_for(fx: &Fixture, tables: &str) -> Vec<Finding> {
    crate::common::pg::verify(&fx.app, &rls::parse_tables(tables).unwrap())
        .await
        .unwrap()
        .findings
}

#[tokio::test]
async fn verify_reports_bypassrls_or_superuser_reachable_through_set_role() {
    let Some(fx) = fixture("tg_verify_reach_bypass", 1).await else {
        return;
    };
    assert_eq!(findings(&fx).await, []);
    // app -> middle (NOINHERIT does not stop SET ROLE) -> bypass.
    let middle = fx.extra_role("nologin noinherit").await;
    let bypass = fx.extra_role("nologin bypassrls").await;
    let root = fx.extra_role("nologin superuser").await;
    exec(
        &fx.admin,
        &format!(
            "grant \"{bypass}\" to \"{middle}\"; grant \"{middle}\" to \"{}\"; grant \"{root}\" to \"{middle}\"",
            fx.role
        ),
    )
    .await;
    let found = findings(&fx).await;
    for reachable in [&bypass, &root] {
        let f = Finding::ReachableRoleBypassesRls {
            role: fx.role.clone(),
            reachable: reachable.clone(),
        };
        assert!(found.contains(&f), "missing {f} in {found:?}");
    }
    // The finding is real: the app role reads tenant B after SET ROLE.
    let mut tx = fx.app.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("set local role \"{bypass}\"")))
        .execute(&mut *tx)
        .await
        .unwrap();
    exec(
        &fx.admin,
        &format!("grant select on assets to \"{bypass}\""),
    )
    .await;
    let n: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 4);
    drop(tx);
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_table_ownership_reachable_through_set_role() {
    let Some(fx) = fixture("tg_verify_reach_owner", 1).await else {
        return;
    };
    let middle = fx.extra_role("nologin noinherit").await;
    exec(
        &fx.admin,
        &format!(
            "grant \"{}\" to \"{middle}\"; grant \"{middle}\" to \"{}\"",
            fx.owner, fx.role
        ),
    )
    .await;
    let found = findings(&fx).await;
    for table in ["assets", "work_orders"] {
        let f = Finding::ReachableRoleOwnsTable {
            role: fx.role.clone(),
            reachable: fx.owner.clone(),
            table: table.into(),
        };
        assert!(found.contains(&f), "missing {f} in {found:?}");
    }
    // Direct ownership is its own kind.
    exec(
        &fx.admin,
        &format!("revoke \"{middle}\" from \"{}\"", fx.role),
    )
    .await;
    exec(
        &fx.admin,
        &format!("alter table work_orders owner to \"{}\"", fx.role),
    )
    .await;
    let found = findings(&fx).await;
    assert!(found.contains(&Finding::RoleOwnsTable {
        role: fx.role.clone(),
        table: "work_orders".into()
    }));
    assert!(
        !found
            .iter()
            .any(|f| matches!(f, Finding::ReachableRoleOwnsTable { .. })),
        "{found:?}"
    );
    exec(
        &fx.admin,
        &format!("alter table work_orders owner to \"{}\"", fx.owner),
    )
    .await;
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_a_policy_that_misses_the_app_role() {
    let Some(fx) = fixture("tg_verify_policy_missed", 1).await else {
        return;
    };
    // The restrictive policy granted to a group the app role belongs to only
    // through NOINHERIT membership: it does not apply to the app role.
    let group = fx.extra_role("nologin").await;
    exec(
        &fx.admin,
        &format!(
            "alter role \"{app}\" noinherit; grant \"{group}\" to \"{app}\";
             drop policy hisn_tenant_isolation on assets;
             create policy hisn_tenant_isolation on assets as restrictive for all to \"{group}\"
               using (tenant_id = (select public.hisn_tenant_guard_current_tenant()))
               with check (tenant_id = (select public.hisn_tenant_guard_current_tenant()))",
            app = fx.role
        ),
    )
    .await;
    let f = Finding::PolicyNotApplied {
        role: fx.role.clone(),
        table: "assets".into(),
    };
    assert_eq!(findings(&fx).await, std::slice::from_ref(&f));
    // Granted to an unrelated role: the same finding.
    exec(
        &fx.admin,
        &format!(
            "revoke \"{group}\" from \"{}\"; alter role \"{}\" inherit",
            fx.role, fx.role
        ),
    )
    .await;
    assert_eq!(findings(&fx).await, [f]);
    // With inherited membership it applies again.
    exec(&fx.admin, &format!("grant \"{group}\" to \"{}\"", fx.role)).await;
    assert_eq!(findings(&fx).await, []);
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_children_and_partitions_without_rls_or_directly_granted() {
    let Some(fx) = fixture("tg_verify_children", 1).await else {
        return;
    };
    exec_as(
        &fx.admin,
        &fx.owner,
        "create table assets_archive () inherits (assets);
         create table events (tenant_id uuid not null, body text) partition by hash (tenant_id);
         create table events_p0 partition of events for values with (modulus 1, remainder 0)",
    )
    .await;
    let key = crate::common::pg::key();
    exec_as(
        &fx.admin,
        &fx.owner,
        &rls::generate_sql(
            &rls::parse_tables("events:tenant_id").unwrap(),
            &fx.role,
            &key,
        )
        .unwrap(),
    )
    .await;
    let tables = format!("{TABLES},events:tenant_id");
    assert_eq!(
        findings_for(&fx, &tables).await,
        [
            Finding::ChildWithoutRls {
                table: "assets".into(),
                child: "assets_archive".into()
            },
            Finding::ChildWithoutRls {
                table: "events".into(),
                child: "events_p0".into()
            },
        ]
    );
    // A direct grant on the child is the leak: it reads every tenant's rows.
    exec(
        &fx.admin,
        &format!(
            "grant select on assets_archive to \"{}\";
             insert into assets_archive (id, tenant_id, name) values (gen_random_uuid(), 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'archived B')",
            fx.role
        ),
    )
    .await;
    let found = findings_for(&fx, &tables).await;
    assert!(
        found.contains(&Finding::ChildDirectlyGranted {
            table: "assets".into(),
            child: "assets_archive".into(),
            role: fx.role.clone()
        }),
        "{found:?}"
    );
    let n: i64 = sqlx::query_scalar("select count(*) from assets_archive")
        .fetch_one(&fx.app)
        .await
        .unwrap();
    assert_eq!(n, 1, "the child leaks, as reported");
    // With RLS and the policy on the child, only the grant remains reported.
    exec_as(
        &fx.admin,
        &fx.owner,
        &rls::generate_sql(
            &rls::parse_tables("assets_archive:tenant_id").unwrap(),
            &fx.role,
            &key,
        )
        .unwrap(),
    )
    .await;
    let found = findings_for(&fx, &tables).await;
    assert!(
        !found.contains(&Finding::ChildWithoutRls {
            table: "assets".into(),
            child: "assets_archive".into()
        }),
        "{found:?}"
    );
    fx.teardown().await;
}

/// A child holds only with all three of RLS enabled, RLS forced and a sound
/// tenant policy: losing any one of them alone is reported.
#[tokio::test]
async fn verify_reports_a_child_missing_any_one_of_enable_force_and_policy() {
    let Some(fx) = fixture("tg_verify_child_parts", 1).await else {
        return;
    };
    exec_as(
        &fx.admin,
        &fx.owner,
        "create table assets_archive () inherits (assets)",
    )
    .await;
    exec_as(
        &fx.admin,
        &fx.owner,
        &rls::generate_sql(
            &rls::parse_tables("assets_archive:tenant_id").unwrap(),
            &fx.role,
            &crate::common::pg::key(),
        )
        .unwrap(),
    )
    .await;
    exec_as(
        &fx.admin,
        &fx.owner,
        &format!("revoke all on assets_archive from \"{}\"", fx.role),
    )
    .await;
    assert_eq!(findings(&fx).await, []);
    let child = [Finding::ChildWithoutRls {
        table: "assets".into(),
        child: "assets_archive".into(),
    }];
    for (break_it, repair) in [
        (
            "alter table assets_archive no force row level security",
            "alter table assets_archive force row level security",
        ),
        (
            "alter table assets_archive disable row level security",
            "alter table assets_archive enable row level security",
        ),
        ("drop policy hisn_tenant_isolation on assets_archive", ""),
    ] {
        exec_as(&fx.admin, &fx.owner, break_it).await;
        assert_eq!(findings(&fx).await, child, "{break_it}");
        if !repair.is_empty() {
            exec_as(&fx.admin, &fx.owner, repair).await;
            assert_eq!(findings(&fx).await, [], "{repair}");
        }
    }
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_tables_owned_by_a_superuser_or_bypassrls_role() {
    let Some(fx) = fixture("tg_verify_owner_bypass", 1).await else {
        return;
    };
    let bypass = fx.extra_role("nologin bypassrls").await;
    exec(
        &fx.admin,
        &format!(
            "alter table assets owner to postgres; alter table work_orders owner to \"{bypass}\""
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [
            Finding::TableOwnerBypassesRls {
                table: "assets".into(),
                owner: "postgres".into()
            },
            Finding::TableOwnerBypassesRls {
                table: "work_orders".into(),
                owner: bypass.clone()
            },
        ]
    );
    exec(
        &fx.admin,
        &format!(
            "alter table assets owner to \"{o}\"; alter table work_orders owner to \"{o}\"",
            o = fx.owner
        ),
    )
    .await;
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_permissive_policies_beside_the_tenant_policy() {
    let Some(fx) = fixture("tg_verify_permissive", 1).await else {
        return;
    };
    exec(
        &fx.admin,
        &format!(
            "create policy reporting on assets as permissive for select to \"{}\" using (true)",
            fx.role
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [Finding::ExtraPermissivePolicy {
            table: "assets".into(),
            policy: "reporting".into()
        }]
    );
    fx.teardown().await;
}

/// The generated permissive policy is the only one allowed, and only exactly
/// as generated: another permissive policy is reported even when both its
/// predicates are the tenant's, and so is the generated one when its `USING`
/// alone or its `WITH CHECK` alone is not the tenant predicate, or when it is
/// narrowed to one command. (Permissive policies are OR-ed: any of these
/// would widen or change what the application role reaches.)
#[tokio::test]
async fn verify_accepts_only_the_generated_permissive_policy_exactly() {
    let Some(fx) = fixture("tg_verify_permissive_exact", 1).await else {
        return;
    };
    let role = &fx.role;
    let pred = "tenant_id = (select public.hisn_tenant_guard_current_tenant())";
    let extra = |policy: &str| {
        vec![Finding::ExtraPermissivePolicy {
            table: "assets".into(),
            policy: policy.into(),
        }]
    };
    let generated = format!(
        "drop policy hisn_tenant_access on assets; create policy hisn_tenant_access on assets \
         as permissive for all to \"{role}\" using ({pred}) with check ({pred})"
    );
    for (break_it, found, repair) in [
        (
            format!(
                "create policy tenant_copy on assets as permissive for all to \"{role}\" \
                 using ({pred}) with check ({pred})"
            ),
            extra("tenant_copy"),
            "drop policy tenant_copy on assets".to_owned(),
        ),
        (
            "alter policy hisn_tenant_access on assets using (true)".to_owned(),
            extra("hisn_tenant_access"),
            generated.clone(),
        ),
        (
            "alter policy hisn_tenant_access on assets with check (true)".to_owned(),
            extra("hisn_tenant_access"),
            generated.clone(),
        ),
        (
            format!(
                "drop policy hisn_tenant_access on assets; create policy hisn_tenant_access \
                 on assets as permissive for select to \"{role}\" using ({pred})"
            ),
            extra("hisn_tenant_access"),
            generated.clone(),
        ),
    ] {
        exec(&fx.admin, &break_it).await;
        assert_eq!(findings(&fx).await, found, "{break_it}");
        exec(&fx.admin, &repair).await;
        assert_eq!(findings(&fx).await, [], "{repair}");
    }
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_a_tenant_policy_without_with_check() {
    let Some(fx) = fixture("tg_verify_with_check", 1).await else {
        return;
    };
    exec(
        &fx.admin,
        "drop policy hisn_tenant_isolation on work_orders;
         create policy hisn_tenant_isolation on work_orders as restrictive for all
           using (tenant_id = (select public.hisn_tenant_guard_current_tenant()))",
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [Finding::MissingWithCheck {
            table: "work_orders".into(),
            policy: "hisn_tenant_isolation".into()
        }]
    );
    // A WITH CHECK that is not the tenant predicate is no tenant policy at all.
    exec(
        &fx.admin,
        "drop policy hisn_tenant_isolation on work_orders;
         create policy hisn_tenant_isolation on work_orders as restrictive for all
           using (tenant_id = (select public.hisn_tenant_guard_current_tenant())) with check (true)",
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [Finding::MissingRestrictivePolicy {
            table: "work_orders".into()
        }]
    );
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_an_unsafe_context_function() {
    let Some(fx) = fixture("tg_verify_context_fn", 1).await else {
        return;
    };
    let f = "public.hisn_tenant_guard_current_tenant()";
    let body = "create or replace function public.hisn_tenant_guard_current_tenant() returns uuid \
                language plpgsql stable security definer set search_path = pg_catalog, pg_temp \
                as $$ begin return 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'::uuid; end $$";
    for (break_it, reason, repair) in [
        (
            format!("alter function {f} security invoker"),
            "not SECURITY DEFINER",
            format!("alter function {f} security definer"),
        ),
        (
            format!("alter function {f} volatile"),
            "not STABLE",
            format!("alter function {f} stable"),
        ),
        (
            format!("alter function {f} reset search_path"),
            "search_path is not pinned to pg_catalog, pg_temp",
            format!("alter function {f} set search_path = pg_catalog, pg_temp"),
        ),
        (
            format!("alter function {f} set search_path = public, pg_catalog"),
            "search_path is not pinned to pg_catalog, pg_temp",
            format!("alter function {f} set search_path = pg_catalog, pg_temp"),
        ),
        (
            format!("grant execute on function {f} to public"),
            "executable by PUBLIC",
            format!("revoke execute on function {f} from public"),
        ),
        (
            format!("revoke execute on function {f} from \"{}\"", fx.role),
            "not executable by the application role",
            format!("grant execute on function {f} to \"{}\"", fx.role),
        ),
        (
            format!("alter function {f} owner to \"{}\"", fx.role),
            "owned by a role the application role can become",
            // Ownership moved back; the app role's grant went with it.
            format!(
                "alter function {f} owner to \"{}\"; grant execute on function {f} to \"{}\"",
                fx.owner, fx.role
            ),
        ),
        (
            format!("alter function {f} rename to moved_away"),
            "missing",
            "alter function public.moved_away() rename to hisn_tenant_guard_current_tenant"
                .to_owned(),
        ),
    ] {
        exec(&fx.admin, &break_it).await;
        let found = findings(&fx).await;
        // A renamed function also changes how the policies print (they follow
        // the function's oid), so their findings come along; otherwise the
        // function's finding is the only one.
        assert_eq!(
            found.first(),
            Some(&Finding::ContextFunctionUnsafe { reason }),
            "{break_it}: {found:?}"
        );
        assert!(reason == "missing" || found.len() == 1, "{found:?}");
        if !repair.is_empty() {
            exec(&fx.admin, &repair).await;
            assert_eq!(findings(&fx).await, [], "{repair}");
        }
    }
    // A function with the right attributes but another body.
    exec_as(&fx.admin, &fx.owner, body).await;
    let found = findings(&fx).await;
    assert!(
        found.contains(&Finding::ContextFunctionUnsafe {
            reason: "its body differs from the generated one"
        }),
        "{found:?}"
    );
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_a_context_key_the_app_role_can_reach() {
    let Some(fx) = fixture("tg_verify_context_key", 1).await else {
        return;
    };
    let group = fx.extra_role("nologin").await;
    exec(
        &fx.admin,
        &format!(
            "grant select on public.hisn_tenant_guard_context_key to \"{group}\"; grant \"{group}\" to \"{}\"",
            fx.role
        ),
    )
    .await;
    // The group holds the privilege, and the app role inherits it.
    let mut expected = vec![
        Finding::ContextKeyExposed {
            role: group.clone(),
        },
        Finding::ContextKeyExposed {
            role: fx.role.clone(),
        },
    ];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(findings(&fx).await, expected);
    exec(
        &fx.admin,
        &format!(
            "revoke \"{group}\" from \"{app}\"; grant update on public.hisn_tenant_guard_context_key to \"{app}\"",
            app = fx.role
        ),
    )
    .await;
    assert_eq!(
        findings(&fx).await,
        [Finding::ContextKeyExposed {
            role: fx.role.clone()
        }]
    );
    exec(
        &fx.admin,
        "drop table public.hisn_tenant_guard_context_key cascade",
    )
    .await;
    let found = findings(&fx).await;
    assert!(
        found.contains(&Finding::ContextKeyExposed {
            role: String::new()
        }),
        "{found:?}"
    );
    fx.teardown().await;
}

#[tokio::test]
async fn verify_reports_truncate_reachable_through_set_role() {
    let Some(fx) = fixture("tg_verify_truncate", 1).await else {
        return;
    };
    let group = fx.extra_role("nologin").await;
    exec(
        &fx.admin,
        &format!(
            "grant truncate on work_orders to \"{group}\"; grant \"{group}\" to \"{}\"",
            fx.role
        ),
    )
    .await;
    // The group holds it, and the app role inherits it.
    let mut expected = vec![
        Finding::RoleCanTruncate {
            role: group,
            table: "work_orders".into(),
        },
        Finding::RoleCanTruncate {
            role: fx.role.clone(),
            table: "work_orders".into(),
        },
    ];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(findings(&fx).await, expected);
    fx.teardown().await;
}

#[tokio::test]
async fn generated_migration_refuses_a_key_table_created_by_another_role() {
    // The app role (or anyone) creating the key table first, with a trigger that
    // copies the key, must make the migration fail rather than hand it the key.
    let Some(fx) = fixture("tg_verify_key_hijack", 1).await else {
        return;
    };
    exec(
        &fx.admin,
        "drop table public.hisn_tenant_guard_context_key cascade",
    )
    .await;
    let squatter = fx.extra_role("nologin").await;
    exec(
        &fx.admin,
        &format!(
            "grant create on schema public to \"{squatter}\";
             set role \"{squatter}\";
             create table public.hisn_tenant_guard_context_key (id int primary key, ikey bytea, okey bytea);
             reset role"
        ),
    )
    .await;
    let sql = rls::generate_sql(
        &rls::parse_tables(TABLES).unwrap(),
        &fx.role,
        &crate::common::pg::key(),
    )
    .unwrap();
    let r = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "set role \"{}\"; {sql}",
        fx.owner
    )))
    .execute(&fx.admin)
    .await;
    assert!(r.is_err(), "the migration accepted a squatted key table");
    fx.teardown().await;
}
