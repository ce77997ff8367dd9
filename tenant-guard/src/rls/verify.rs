//! `verify`: inspect the catalog as the application role and list every way
//! its SQL could reach another tenant's rows.
//!
//! "Reachable roles" are the connected role and every role it is a member of,
//! directly or through other roles, whatever `INHERIT` says
//! (`pg_has_role(.., 'MEMBER')`): the application can `SET ROLE` to each, so
//! each is checked like the connected role. Policies, on the other hand, apply
//! to a role only through *inherited* membership (`pg_has_role(.., 'USAGE')`),
//! which is how a `NOINHERIT` membership can make a policy miss.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::{
    CONTEXT_FUNCTION, CONTEXT_KEY_TABLE, Finding, PERMISSIVE_POLICY, RlsReport, TenantTable,
    VerifyOptions, context_function_body, is_tenant_predicate,
};
use crate::Error;

type Conn = PoolConnection<Postgres>;

/// Privileges that read or change rows.
const ROW_PRIVILEGES: &str = "SELECT,INSERT,UPDATE,DELETE";
/// Every table privilege.
const ANY_PRIVILEGE: &str = "SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER";
/// Every column privilege: `has_table_privilege` is false for a role that
/// holds privileges on some columns only, which read and write rows as well.
const COLUMN_PRIVILEGES: &str = "SELECT,INSERT,UPDATE,REFERENCES";

/// Inspect the catalog as the role `pool` connects with and list every
/// finding for `tables`, with nothing declared ([`VerifyOptions::new`]):
/// every relation without row-level security the role can reach and every
/// trigger on a tenant table is reported. Call it at start-up with the
/// application pool and refuse to serve unless [`RlsReport::is_clean`];
/// declare global tables and reviewed trigger functions with
/// [`verify_with`].
pub async fn verify(pool: &PgPool, tables: &[TenantTable]) -> Result<RlsReport, Error> {
    verify_with(pool, tables, &VerifyOptions::new()).await
}

/// [`verify`], accepting what `options` declares: global tables (no
/// [`Finding::UndeclaredTable`]) and reviewed trigger functions (no
/// [`Finding::UndeclaredTrigger`]).
pub async fn verify_with(
    pool: &PgPool,
    tables: &[TenantTable],
    options: &VerifyOptions,
) -> Result<RlsReport, Error> {
    let mut conn = pool.acquire().await?;
    let mut findings = Vec::new();
    let (role, superuser, bypass): (String, bool, bool) = sqlx::query_as(
        "select current_user::text, rolsuper, rolbypassrls from pg_roles where rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    context(&mut conn, &mut findings).await?;
    if tables
        .iter()
        .any(|t| t.client_column().is_some() || !t.role_gates().is_empty())
    {
        scope_functions(&mut conn, &mut findings).await?;
    }
    let mut owned = Vec::new();
    let mut truncatable = Vec::new();
    for t in tables {
        table(
            &mut conn,
            t,
            &role,
            &mut findings,
            &mut owned,
            &mut truncatable,
        )
        .await?;
    }
    if superuser {
        findings.push(Finding::RoleIsSuperuser { role: role.clone() });
    }
    if bypass {
        findings.push(Finding::RoleBypassesRls { role: role.clone() });
    }
    let reachable: Vec<String> = sqlx::query_scalar(
        "select r.rolname::text from pg_roles r \
         where r.rolname <> current_user and (r.rolsuper or r.rolbypassrls) \
           and pg_has_role(current_user, r.oid, 'MEMBER') order by 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in reachable {
        findings.push(Finding::ReachableRoleBypassesRls {
            role: role.clone(),
            reachable: r,
        });
    }
    findings.extend(owned);
    findings.extend(truncatable);
    super::side_doors::side_doors(&mut conn, tables, options.value_oracles(), &mut findings)
        .await?;
    super::declared::declared(&mut conn, tables, options, &mut findings).await?;
    Ok(RlsReport { findings })
}

/// What is wrong with the installed `public.<name>()`, if anything: it must
/// be `SECURITY DEFINER`, `STABLE`, with a pinned `search_path`, the body
/// `body`, an owner the application role cannot become, and be executable
/// by the application role but not by `PUBLIC`.
async fn function_problem(
    conn: &mut Conn,
    name: &str,
    body: &str,
) -> Result<Option<&'static str>, Error> {
    type FnRow = (bool, String, Option<Vec<String>>, String, bool, bool, bool);
    let row: Option<FnRow> = sqlx::query_as(
        "select p.prosecdef, p.provolatile::text, p.proconfig, p.prosrc, \
                pg_has_role(current_user, p.proowner, 'MEMBER'), \
                has_function_privilege(current_user, p.oid, 'EXECUTE'), \
                exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
                        where a.grantee = 0 and a.privilege_type = 'EXECUTE') \
         from pg_proc p where p.oid = to_regprocedure($1)",
    )
    .bind(format!("public.{name}()"))
    .fetch_optional(&mut **conn)
    .await?;
    Ok(match row {
        None => Some("missing"),
        Some((secdef, volatile, config, src, owned, exec, public)) => {
            if !secdef {
                Some("not SECURITY DEFINER")
            } else if volatile != "s" {
                Some("not STABLE")
            } else if config.as_deref() != Some(&["search_path=pg_catalog, pg_temp".to_owned()]) {
                Some("search_path is not pinned to pg_catalog, pg_temp")
            } else if src.trim() != body.trim() {
                Some("its body differs from the generated one")
            } else if owned {
                Some("owned by a role the application role can become")
            } else if public {
                Some("executable by PUBLIC")
            } else if !exec {
                Some("not executable by the application role")
            } else {
                None
            }
        }
    })
}

/// The scope functions (client grants and roles), when a table needs them.
async fn scope_functions(conn: &mut Conn, findings: &mut Vec<Finding>) -> Result<(), Error> {
    for (name, _, _, body) in super::scope::scope_functions() {
        if let Some(reason) = function_problem(conn, name, &body).await? {
            findings.push(Finding::ScopeFunctionUnsafe {
                function: name,
                reason,
            });
        }
    }
    Ok(())
}

/// The context function and the key table.
async fn context(conn: &mut Conn, findings: &mut Vec<Finding>) -> Result<(), Error> {
    if let Some(reason) = function_problem(conn, CONTEXT_FUNCTION, &context_function_body()).await?
    {
        findings.push(Finding::ContextFunctionUnsafe { reason });
    }
    let key: Option<i64> = sqlx::query_scalar("select to_regclass($1)::oid::int8")
        .bind(format!("public.{CONTEXT_KEY_TABLE}"))
        .fetch_one(&mut **conn)
        .await?;
    let Some(key) = key else {
        findings.push(Finding::ContextKeyExposed {
            role: String::new(),
        });
        return Ok(());
    };
    let readers: Vec<String> = sqlx::query_scalar(
        "select r.rolname::text from pg_roles r, pg_class c \
         where c.oid = $1::int8::oid and pg_has_role(current_user, r.oid, 'MEMBER') \
           and (r.oid = c.relowner or has_table_privilege(r.oid, c.oid, $2) \
                or has_any_column_privilege(r.oid, c.oid, $3)) order by 1",
    )
    .bind(key)
    .bind(ANY_PRIVILEGE)
    .bind(COLUMN_PRIVILEGES)
    .fetch_all(&mut **conn)
    .await?;
    findings.extend(
        readers
            .into_iter()
            .map(|role| Finding::ContextKeyExposed { role }),
    );
    Ok(())
}

/// One policy as the catalog holds it.
struct Policy {
    oid: i64,
    name: String,
    permissive: bool,
    cmd: String,
    using: Option<String>,
    check: Option<String>,
}

/// The table's policies; pushes `MissingWithCheck` and `ExtraPermissivePolicy`
/// and returns the oids of the sound restrictive tenant policies.
async fn policies(
    conn: &mut Conn,
    oid: i64,
    display: &str,
    column: &str,
    findings: &mut Vec<Finding>,
) -> Result<Vec<i64>, Error> {
    type PolicyRow = (i64, String, bool, String, Option<String>, Option<String>);
    let rows: Vec<PolicyRow> = sqlx::query_as(
        "select p.oid::int8, p.polname::text, p.polpermissive, p.polcmd::text, \
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
         from pg_policy p where p.polrelid = $1::int8::oid order by p.polname",
    )
    .bind(oid)
    .fetch_all(&mut **conn)
    .await?;
    let mut sound = Vec::new();
    for (oid, name, permissive, cmd, using, check) in rows {
        let p = Policy {
            oid,
            name,
            permissive,
            cmd,
            using,
            check,
        };
        let using_ok = p
            .using
            .as_deref()
            .is_some_and(|u| is_tenant_predicate(u, column));
        let check_ok = p
            .check
            .as_deref()
            .is_none_or(|c| is_tenant_predicate(c, column));
        if p.check.is_none() && (p.cmd == "*" || p.cmd == "w") {
            findings.push(Finding::MissingWithCheck {
                table: display.to_owned(),
                policy: p.name.clone(),
            });
        }
        if p.permissive {
            if p.name != PERMISSIVE_POLICY || !using_ok || !check_ok || p.cmd != "*" {
                findings.push(Finding::ExtraPermissivePolicy {
                    table: display.to_owned(),
                    policy: p.name,
                });
            }
        } else if p.cmd == "*" && using_ok && check_ok {
            sound.push(p.oid);
        }
    }
    Ok(sound)
}

/// A client-scoped table needs a restrictive policy for all commands, for
/// `PUBLIC`, whose `USING` and `WITH CHECK` are the client predicate.
async fn client_policy(
    conn: &mut Conn,
    oid: i64,
    display: &str,
    column: &str,
    org_wide: &[String],
    findings: &mut Vec<Finding>,
) -> Result<(), Error> {
    let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "select pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
         from pg_policy p where p.polrelid = $1::int8::oid and not p.polpermissive \
           and p.polcmd = '*' and 0::oid = any(p.polroles)",
    )
    .bind(oid)
    .fetch_all(&mut **conn)
    .await?;
    let sound = rows.iter().any(|(using, check)| {
        let ok = |e: &Option<String>| {
            e.as_deref()
                .is_some_and(|e| super::scope::is_client_predicate(e, column, org_wide))
        };
        ok(using) && ok(check)
    });
    if !sound {
        findings.push(Finding::MissingClientPolicy {
            table: display.to_owned(),
            column: column.to_owned(),
        });
    }
    Ok(())
}

/// Each role gate needs restrictive `PUBLIC` policies: `SELECT` using the
/// read roles, `INSERT` checking, `UPDATE` using and checking, `DELETE`
/// using the write roles ([`role_predicate`](super::role_predicate)).
async fn role_gate_policies(
    conn: &mut Conn,
    oid: i64,
    display: &str,
    gates: &[(Vec<String>, Vec<String>)],
    findings: &mut Vec<Finding>,
) -> Result<(), Error> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "select p.polcmd::text, pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
         from pg_policy p where p.polrelid = $1::int8::oid and not p.polpermissive \
           and 0::oid = any(p.polroles)",
    )
    .bind(oid)
    .fetch_all(&mut **conn)
    .await?;
    let is = |e: &Option<String>, roles: &[String]| {
        e.as_deref()
            .is_some_and(|e| super::scope::is_role_predicate(e, roles))
    };
    for (read, write) in gates {
        let has = |cmd: &str, using: Option<&[String]>, check: Option<&[String]>| {
            rows.iter().any(|(c, u, k)| {
                c == cmd && using.is_none_or(|r| is(u, r)) && check.is_none_or(|r| is(k, r))
            })
        };
        let sound = has("r", Some(read), None)
            && has("a", None, Some(write))
            && has("w", Some(write), Some(write))
            && has("d", Some(write), None);
        if !sound {
            findings.push(Finding::MissingRoleGatePolicy {
                table: display.to_owned(),
            });
        }
    }
    Ok(())
}

/// Reachable roles (not superuser or BYPASSRLS: reported on their own) with
/// `privileges` on `oid`.
async fn roles_with(conn: &mut Conn, oid: i64, privileges: &str) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
        "select r.rolname::text from pg_roles r \
         where pg_has_role(current_user, r.oid, 'MEMBER') and not r.rolsuper and not r.rolbypassrls \
           and (has_table_privilege(r.oid, $1::int8::oid, $2) \
                or has_any_column_privilege(r.oid, $1::int8::oid, $3)) order by 1",
    )
    .bind(oid)
    .bind(privileges)
    .bind(COLUMN_PRIVILEGES)
    .fetch_all(&mut **conn)
    .await?)
}

async fn table(
    conn: &mut Conn,
    t: &TenantTable,
    role: &str,
    findings: &mut Vec<Finding>,
    owned: &mut Vec<Finding>,
    truncatable: &mut Vec<Finding>,
) -> Result<(), Error> {
    let display = t.to_string();
    let row: Option<(i64, bool, bool, String, bool, bool)> = sqlx::query_as(
        "select c.oid::int8, c.relrowsecurity, c.relforcerowsecurity, o.rolname::text, \
                o.rolsuper or o.rolbypassrls, pg_has_role(current_user, c.relowner, 'MEMBER') \
         from pg_class c join pg_roles o on o.oid = c.relowner where c.oid = to_regclass($1)",
    )
    .bind(t.quoted())
    .fetch_optional(&mut **conn)
    .await?;
    let Some((oid, enabled, forced, owner, owner_bypasses, owner_reachable)) = row else {
        findings.push(Finding::MissingTable { table: display });
        return Ok(());
    };
    if !enabled {
        findings.push(Finding::RlsDisabled {
            table: display.clone(),
        });
    }
    if !forced {
        findings.push(Finding::RlsNotForced {
            table: display.clone(),
        });
    }
    let sound = policies(conn, oid, &display, t.column(), findings).await?;
    if sound.is_empty() {
        findings.push(Finding::MissingRestrictivePolicy {
            table: display.clone(),
        });
    } else {
        // Every reachable role that can touch rows must be bound by a sound policy.
        let missed: Vec<String> = sqlx::query_scalar(
            "select r.rolname::text from pg_roles r \
             where pg_has_role(current_user, r.oid, 'MEMBER') and not r.rolsuper and not r.rolbypassrls \
               and (has_table_privilege(r.oid, $1::int8::oid, $3) \
                    or has_any_column_privilege(r.oid, $1::int8::oid, $4)) \
               and not exists (select 1 from pg_policy p where p.oid = any($2::int8[]::oid[]) \
                   and (0::oid = any(p.polroles) \
                        or exists (select 1 from unnest(p.polroles) pr where pg_has_role(r.oid, pr, 'USAGE')))) \
             order by 1",
        )
        .bind(oid)
        .bind(&sound)
        .bind(ROW_PRIVILEGES)
        .bind(COLUMN_PRIVILEGES)
        .fetch_all(&mut **conn)
        .await?;
        findings.extend(missed.into_iter().map(|role| Finding::PolicyNotApplied {
            role,
            table: display.clone(),
        }));
    }
    if let Some(client) = t.client_column() {
        client_policy(conn, oid, &display, client, t.org_wide_roles(), findings).await?;
    }
    if !t.role_gates().is_empty() {
        role_gate_policies(conn, oid, &display, t.role_gates(), findings).await?;
    }
    children(conn, oid, &display, t.column(), findings).await?;
    if owner_bypasses {
        findings.push(Finding::TableOwnerBypassesRls {
            table: display.clone(),
            owner: owner.clone(),
        });
    }
    if owner == role {
        owned.push(Finding::RoleOwnsTable {
            role: role.to_owned(),
            table: display.clone(),
        });
    } else if owner_reachable {
        owned.push(Finding::ReachableRoleOwnsTable {
            role: role.to_owned(),
            reachable: owner,
            table: display.clone(),
        });
    }
    let truncaters: Vec<String> = sqlx::query_scalar(
        "select r.rolname::text from pg_roles r \
         where pg_has_role(current_user, r.oid, 'MEMBER') \
           and has_table_privilege(r.oid, $1::int8::oid, 'TRUNCATE') order by 1",
    )
    .bind(oid)
    .fetch_all(&mut **conn)
    .await?;
    truncatable.extend(truncaters.into_iter().map(|role| Finding::RoleCanTruncate {
        role,
        table: display.clone(),
    }));
    // TRIGGER plants code in every tenant's transaction; REFERENCES (on any
    // column) makes a foreign key an existence oracle, referential checks
    // bypassing RLS. The owner holds both: reported as ownership.
    for (privilege, check) in [
        (
            "TRIGGER",
            "has_table_privilege(r.oid, $1::int8::oid, 'TRIGGER')",
        ),
        (
            "REFERENCES",
            "has_any_column_privilege(r.oid, $1::int8::oid, 'REFERENCES')",
        ),
    ] {
        let holders: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select r.rolname::text from pg_roles r \
             where pg_has_role(current_user, r.oid, 'MEMBER') and not r.rolsuper and not r.rolbypassrls \
               and r.oid <> (select c.relowner from pg_class c where c.oid = $1::int8::oid) \
               and {check} order by 1"
        )))
        .bind(oid)
        .fetch_all(&mut **conn)
        .await?;
        truncatable.extend(
            holders
                .into_iter()
                .map(|role| Finding::UnfilteredPrivilege {
                    role,
                    table: display.clone(),
                    privilege,
                }),
        );
    }
    Ok(())
}

/// Partitions and inheritance children, at any depth.
async fn children(
    conn: &mut Conn,
    parent: i64,
    display: &str,
    column: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), Error> {
    let kids: Vec<(i64, String, bool, bool)> = sqlx::query_as(
        "with recursive kids(oid) as ( \
             select inhrelid from pg_inherits where inhparent = $1::int8::oid \
             union select i.inhrelid from pg_inherits i join kids k on i.inhparent = k.oid) \
         select c.oid::int8, c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity \
         from kids join pg_class c on c.oid = kids.oid order by 2",
    )
    .bind(parent)
    .fetch_all(&mut **conn)
    .await?;
    for (oid, child, enabled, forced) in kids {
        // Policy findings of the child itself are not repeated: only whether it holds.
        let mut ignored = Vec::new();
        let sound = policies(conn, oid, &child, column, &mut ignored).await?;
        if !enabled || !forced || sound.is_empty() {
            findings.push(Finding::ChildWithoutRls {
                table: display.to_owned(),
                child: child.clone(),
            });
        }
        for role in roles_with(conn, oid, ANY_PRIVILEGE).await? {
            findings.push(Finding::ChildDirectlyGranted {
                table: display.to_owned(),
                child: child.clone(),
                role,
            });
        }
    }
    Ok(())
}
