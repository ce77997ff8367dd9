//! Two-level tenancy and role gates in RLS: the session scope token, the
//! functions that verify it, and the policies that filter on it.
//!
//! **The scope token.** When the registry has client-scoped or role-gated
//! tables, the PostgreSQL pool sets a second transaction-local setting,
//! [`SCOPE_SETTING`], right after the tenant context: the token
//! `s1.<tenant>.<expiry>.<clients>.<roles>.<mac>`, `<clients>` the
//! comma-separated hyphenated client ids of the session's grants,
//! `<roles>` its comma-separated role names (`[a-z0-9_:-]`, so neither list
//! holds a `.`), `<mac>` the hex HMAC-SHA256 under the same
//! [`ContextKey`] of `hisn_tenant_guard.scope.v1.<tenant>.<expiry>.<clients>.<roles>`
//! (a domain distinct from the tenant token's, so neither verifies as the
//! other). It is bound as a parameter, never SQL text.
//!
//! **The functions** (`SECURITY DEFINER`, `STABLE`, `search_path` pinned,
//! executable by the application role only):
//! `public.hisn_tenant_guard_current_scope()` verifies the MAC with the key
//! the application role cannot read, the expiry against `now()`, and that the
//! token's tenant is the verified tenant of the transaction
//! (`hisn_tenant_guard_current_tenant()`), and returns the token's parts or
//! NULL; `..._current_clients()` returns the granted clients as `uuid[]`
//! and `..._current_roles()` the roles as `text[]` (NULL when the token does
//! not verify). SQL the application runs can overwrite the setting, but
//! without the key it can only produce a token that verifies to NULL (no
//! client, no role: nothing readable) or replay the one it was given.
//!
//! **The policies**, all `AS RESTRICTIVE .. TO PUBLIC` beside the tenant
//! policy: a client-scoped table gets [`CLIENT_POLICY`] with
//! `USING`/`WITH CHECK` [`client_predicate`]
//! (`client_id = ANY ((SELECT public.hisn_tenant_guard_current_clients())::uuid[])`,
//! preceded by `(SELECT ..current_roles()) && ARRAY[..] OR` when
//! organisation-wide roles are declared); a role-gated table gets one policy
//! per command (`SELECT`: the read roles; `INSERT`, `UPDATE`, `DELETE`: the
//! write roles) with [`role_predicate`]. Every sub-select is an init-plan:
//! verified once per statement, not per row.

use std::fmt::Write as _;

#[cfg(feature = "postgres")]
use zeroize::Zeroizing;

#[cfg(feature = "postgres")]
use super::ContextKey;
use super::{TenantTable, check_ident};
use crate::Error;
#[cfg(feature = "postgres")]
use crate::TenantContext;

/// The transaction-local setting carrying the signed session scope token.
pub const SCOPE_SETTING: &str = "hisn.tenant_scope";
/// The function that verifies the scope token (schema `public`).
pub const SCOPE_FUNCTION: &str = "hisn_tenant_guard_current_scope";
/// The function returning the verified client grants (`uuid[]`).
pub const CLIENTS_FUNCTION: &str = "hisn_tenant_guard_current_clients";
/// The function returning the verified roles (`text[]`).
pub const ROLES_FUNCTION: &str = "hisn_tenant_guard_current_roles";
/// Name of the generated restrictive client policy.
pub const CLIENT_POLICY: &str = "hisn_client_isolation";
/// Prefix of the generated role-gate policies (`<prefix>_<command>_<n>`).
pub const ROLE_POLICY_PREFIX: &str = "hisn_role_gate";
/// Most role gates one table can have (its own and its schema's).
const MAX_GATES: usize = 2;
/// Longest scope token the function reads (256 clients and 256 roles fit).
const MAX_SCOPE_TOKEN: usize = 65_536;
/// Domain separation of the scope token's MAC.
const DOMAIN: &str = "hisn_tenant_guard.scope.v1.";

/// The scope token for `ctx`'s tenant, clients and roles, valid for
/// transactions that start before `expiry` (Unix seconds).
#[cfg(feature = "postgres")]
pub(crate) fn scope_token(key: &ContextKey, ctx: &TenantContext, expiry: u64) -> Zeroizing<String> {
    let tenant = ctx.tenant().to_string();
    let expiry = expiry.to_string();
    let clients = ctx
        .clients()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let roles = ctx
        .roles()
        .iter()
        .map(crate::Role::as_str)
        .collect::<Vec<_>>()
        .join(",");
    let mac = key.mac(&[
        DOMAIN.as_bytes(),
        tenant.as_bytes(),
        b".",
        expiry.as_bytes(),
        b".",
        clients.as_bytes(),
        b".",
        roles.as_bytes(),
    ]);
    Zeroizing::new(format!(
        "s1.{tenant}.{expiry}.{clients}.{roles}.{}",
        hex::encode(*mac)
    ))
}

/// The body of the scope-verifying function; `verify` compares the
/// installed source with it.
pub(crate) fn scope_function_body() -> String {
    format!(
        "DECLARE\n    \
         tok text := current_setting('{SCOPE_SETTING}', true);\n    \
         parts text[];\n    \
         k record;\n    \
         mac bytea;\n\
         BEGIN\n    \
         IF tok IS NULL OR length(tok) > {MAX_SCOPE_TOKEN} THEN RETURN NULL; END IF;\n    \
         parts := string_to_array(tok, '.');\n    \
         IF coalesce(array_length(parts, 1), 0) <> 6 OR parts[1] <> 's1'\n       \
         OR length(parts[6]) <> 64 OR translate(parts[6], '0123456789abcdef', '') <> '' THEN\n        \
         RETURN NULL;\n    \
         END IF;\n    \
         SELECT c.ikey, c.okey INTO k FROM public.{key_table} c WHERE c.id = 1;\n    \
         IF NOT FOUND THEN RETURN NULL; END IF;\n    \
         mac := sha256(k.okey || sha256(k.ikey || convert_to('{DOMAIN}' || parts[2] || '.' || parts[3]\n        \
         || '.' || parts[4] || '.' || parts[5], 'UTF8')));\n    \
         IF sha256(k.ikey || mac) <> sha256(k.ikey || decode(parts[6], 'hex')) THEN RETURN NULL; END IF;\n    \
         IF parts[3]::bigint <= extract(epoch FROM now()) THEN RETURN NULL; END IF;\n    \
         -- The scope belongs to this transaction's verified tenant, or to nobody.\n    \
         IF parts[2]::uuid IS DISTINCT FROM public.{tenant_fn}() THEN RETURN NULL; END IF;\n    \
         RETURN parts;\n\
         END\n",
        key_table = super::CONTEXT_KEY_TABLE,
        tenant_fn = super::CONTEXT_FUNCTION,
    )
}

/// The bodies of the two accessor functions.
pub(crate) fn clients_function_body() -> String {
    format!(
        "SELECT string_to_array(s[4], ',')::uuid[] FROM (SELECT public.{SCOPE_FUNCTION}() AS s) x"
    )
}

pub(crate) fn roles_function_body() -> String {
    format!("SELECT string_to_array(s[5], ',') FROM (SELECT public.{SCOPE_FUNCTION}() AS s) x")
}

/// `(name, return type, language, body)` of the three scope functions.
pub(crate) fn scope_functions() -> [(&'static str, &'static str, &'static str, String); 3] {
    [
        (SCOPE_FUNCTION, "text[]", "plpgsql", scope_function_body()),
        (CLIENTS_FUNCTION, "uuid[]", "sql", clients_function_body()),
        (ROLES_FUNCTION, "text[]", "sql", roles_function_body()),
    ]
}

/// The scope functions and their privileges.
pub(crate) fn scope_sql(out: &mut String, app_role: &str) {
    let _ = writeln!(
        out,
        "-- Session scope (client grants and roles): the policies trust only tokens signed with the context key."
    );
    for (name, returns, language, body) in scope_functions() {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "CREATE OR REPLACE FUNCTION public.{name}() RETURNS {returns}\n\
             LANGUAGE {language} STABLE SECURITY DEFINER\n\
             SET search_path = pg_catalog, pg_temp\n\
             AS $hisn_fn$\n{body}$hisn_fn$;\n\
             ALTER FUNCTION public.{name}() OWNER TO CURRENT_USER;\n\
             REVOKE ALL ON FUNCTION public.{name}() FROM PUBLIC;\n\
             GRANT EXECUTE ON FUNCTION public.{name}() TO \"{app_role}\";\n",
            body = if body.ends_with('\n') {
                body
            } else {
                format!("{body}\n")
            },
        );
    }
    out.push('\n');
}

/// `ARRAY['a', 'b']::text[]` for role names (validated `[a-z0-9_:-]`, so
/// they need no escaping), `'{}'::text[]` for none.
fn role_array(roles: &[String]) -> String {
    if roles.is_empty() {
        return "'{}'::text[]".to_owned();
    }
    let list: Vec<String> = roles.iter().map(|r| format!("'{r}'")).collect();
    format!("ARRAY[{}]::text[]", list.join(", "))
}

/// `(SELECT public.hisn_tenant_guard_current_roles()) && ARRAY[..]::text[]`:
/// the session holds one of `roles`.
pub fn role_predicate(roles: &[String]) -> Result<String, Error> {
    for r in roles {
        crate::Role::new(r)?;
    }
    Ok(format!(
        "(SELECT public.{ROLES_FUNCTION}()) && {}",
        role_array(roles)
    ))
}

/// The client predicate for `column`:
/// `"column" = ANY ((SELECT public.hisn_tenant_guard_current_clients())::uuid[])`,
/// or, with organisation-wide roles, `(<role predicate>) OR (<that>)`.
pub fn client_predicate(column: &str, org_wide: &[String]) -> Result<String, Error> {
    check_ident(column)?;
    // The cast makes the sub-select a scalar (init-plan) expression: without
    // it `= ANY ((SELECT ..))` is the `ANY (subquery)` form, comparing a
    // uuid with each uuid[] row.
    let clients = format!("\"{column}\" = ANY ((SELECT public.{CLIENTS_FUNCTION}())::uuid[])");
    if org_wide.is_empty() {
        Ok(clients)
    } else {
        Ok(format!("({}) OR ({clients})", role_predicate(org_wide)?))
    }
}

/// The client and role-gate policies of one table (after its tenant
/// policies).
pub(crate) fn table_policies(out: &mut String, t: &TenantTable) -> Result<(), Error> {
    let q = t.quoted();
    let _ = writeln!(out, "DROP POLICY IF EXISTS \"{CLIENT_POLICY}\" ON {q};");
    for i in 0..MAX_GATES {
        for cmd in ["select", "insert", "update", "delete"] {
            let _ = writeln!(
                out,
                "DROP POLICY IF EXISTS \"{ROLE_POLICY_PREFIX}_{cmd}_{i}\" ON {q};"
            );
        }
    }
    if let Some(client) = t.client_column() {
        let pred = client_predicate(client, t.org_wide_roles())?;
        let _ = write!(
            out,
            "CREATE POLICY \"{CLIENT_POLICY}\" ON {q} AS RESTRICTIVE FOR ALL TO PUBLIC\n    \
             USING ({pred})\n    WITH CHECK ({pred});\n"
        );
    }
    if t.role_gates().len() > MAX_GATES {
        return Err(Error::Config("a table has at most two role gates"));
    }
    for (i, (read, write)) in t.role_gates().iter().enumerate() {
        let r = role_predicate(read)?;
        let w = role_predicate(write)?;
        let p = ROLE_POLICY_PREFIX;
        let _ = write!(
            out,
            "CREATE POLICY \"{p}_select_{i}\" ON {q} AS RESTRICTIVE FOR SELECT TO PUBLIC USING ({r});\n\
             CREATE POLICY \"{p}_insert_{i}\" ON {q} AS RESTRICTIVE FOR INSERT TO PUBLIC WITH CHECK ({w});\n\
             CREATE POLICY \"{p}_update_{i}\" ON {q} AS RESTRICTIVE FOR UPDATE TO PUBLIC USING ({w}) WITH CHECK ({w});\n\
             CREATE POLICY \"{p}_delete_{i}\" ON {q} AS RESTRICTIVE FOR DELETE TO PUBLIC USING ({w});\n"
        );
    }
    out.push('\n');
    Ok(())
}

/// Whether `expr` (as `pg_get_expr` prints it) is exactly the client
/// predicate of `t`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn is_client_predicate(expr: &str, column: &str, org_wide: &[String]) -> bool {
    let clients = format!("{column}=anyselect{CLIENTS_FUNCTION}as{CLIENTS_FUNCTION}::uuid[]");
    let expected = if org_wide.is_empty() {
        clients
    } else {
        let roles: Vec<String> = org_wide.iter().map(|r| format!("'{r}'::text")).collect();
        format!(
            "select{ROLES_FUNCTION}as{ROLES_FUNCTION}&&array[{}]or{clients}",
            roles.join(",")
        )
    };
    super::normalise_expr(expr) == expected
}

/// Whether `expr` (as `pg_get_expr` prints it) is exactly the role
/// predicate for `roles` (sorted, as the generated SQL lists them).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn is_role_predicate(expr: &str, roles: &[String]) -> bool {
    let list = if roles.is_empty() {
        "'{}'::text[]".to_owned()
    } else {
        let r: Vec<String> = roles.iter().map(|r| format!("'{r}'::text")).collect();
        format!("array[{}]", r.join(","))
    };
    super::normalise_expr(expr) == format!("select{ROLES_FUNCTION}as{ROLES_FUNCTION}&&{list}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_quote_nothing_they_were_not_given() {
        assert_eq!(
            client_predicate("client_id", &[]).unwrap(),
            "\"client_id\" = ANY ((SELECT public.hisn_tenant_guard_current_clients())::uuid[])"
        );
        assert_eq!(
            client_predicate("client_id", &["firm_admin".into()]).unwrap(),
            "((SELECT public.hisn_tenant_guard_current_roles()) && ARRAY['firm_admin']::text[]) \
             OR (\"client_id\" = ANY ((SELECT public.hisn_tenant_guard_current_clients())::uuid[]))"
        );
        assert!(client_predicate("Client", &[]).is_err());
        assert!(role_predicate(&["x'; drop table t; --".into()]).is_err());
        assert_eq!(
            role_predicate(&[]).unwrap(),
            "(SELECT public.hisn_tenant_guard_current_roles()) && '{}'::text[]"
        );
    }

    #[test]
    fn client_predicate_matching_is_exact() {
        let pg = "(client_id = ANY ((( SELECT hisn_tenant_guard_current_clients() AS hisn_tenant_guard_current_clients))::uuid[]))";
        assert!(is_client_predicate(pg, "client_id", &[]));
        assert!(!is_client_predicate(pg, "tenant_id", &[]));
        assert!(!is_client_predicate(
            &format!("{pg} OR true"),
            "client_id",
            &[]
        ));
        let org = "((( SELECT hisn_tenant_guard_current_roles() AS hisn_tenant_guard_current_roles) && ARRAY['firm_admin'::text]) OR (client_id = ANY ((( SELECT hisn_tenant_guard_current_clients() AS hisn_tenant_guard_current_clients))::uuid[]))))";
        assert!(is_client_predicate(
            org,
            "client_id",
            &["firm_admin".into()]
        ));
        assert!(!is_client_predicate(org, "client_id", &[]));
        assert!(!is_client_predicate(org, "client_id", &["owner".into()]));
    }

    /// The role predicate of a role-gated table, as PostgreSQL 15's
    /// `pg_get_expr` prints the generated policy (read off a real policy):
    /// the roles in order, and `'{}'::text[]` for none. Anything else,
    /// another role list, an added disjunct or a reordered list, is not the
    /// generated predicate, and `verify` must report it.
    #[test]
    fn role_predicate_matching_is_exact() {
        let two = "(( SELECT hisn_tenant_guard_current_roles() AS hisn_tenant_guard_current_roles) && ARRAY['firm_admin'::text, 'owner'::text])";
        let roles = ["firm_admin".to_owned(), "owner".to_owned()];
        assert!(is_role_predicate(two, &roles));
        assert!(!is_role_predicate(two, &roles[..1]));
        assert!(!is_role_predicate(
            two,
            &[roles[1].clone(), roles[0].clone()]
        ));
        assert!(!is_role_predicate(two, &[]));
        assert!(!is_role_predicate(&format!("({two} OR true)"), &roles));
        let none = "(( SELECT hisn_tenant_guard_current_roles() AS hisn_tenant_guard_current_roles) && '{}'::text[])";
        assert!(is_role_predicate(none, &[]));
        assert!(!is_role_predicate(none, &roles[..1]));
        // Another function than the roles function is not the predicate.
        let other = two.replace("current_roles", "current_clients");
        assert!(!is_role_predicate(&other, &roles));
    }

    /// A table takes two role gates (its own and its schema's), numbered 0
    /// and 1, each with its own roles; a third is refused, not dropped.
    #[test]
    fn a_table_takes_two_role_gates_and_refuses_a_third() {
        let one = TenantTable::new("hr.pay", "org_id")
            .unwrap()
            .with_role_gate(["hr_viewer"], ["hr_admin"])
            .unwrap();
        let two = one.clone().with_role_gate(["clerk"], ["payroll"]).unwrap();
        for (t, gates) in [(&one, 1), (&two, 2)] {
            let mut out = String::new();
            table_policies(&mut out, t).unwrap();
            for i in 0..MAX_GATES {
                for cmd in ["select", "insert", "update", "delete"] {
                    let create =
                        format!("CREATE POLICY \"hisn_role_gate_{cmd}_{i}\" ON \"hr\".\"pay\"");
                    assert_eq!(out.contains(&create), i < gates, "{create} in {out}");
                }
            }
        }
        let mut out = String::new();
        table_policies(&mut out, &two).unwrap();
        assert!(out.contains(
            "CREATE POLICY \"hisn_role_gate_select_1\" ON \"hr\".\"pay\" AS RESTRICTIVE FOR SELECT TO PUBLIC \
             USING ((SELECT public.hisn_tenant_guard_current_roles()) && ARRAY['clerk', 'payroll']::text[]);"
        ));
        let three = two.with_role_gate(["auditor"], ["auditor"]).unwrap();
        let mut out = String::new();
        assert!(matches!(
            table_policies(&mut out, &three),
            Err(Error::Config(_))
        ));
        let key = crate::rls::ContextKey::from_bytes([7; 32]);
        assert!(crate::rls::generate_sql(&[three], "app", &key).is_err());
    }

    /// The scope token is `s1.<tenant>.<expiry>.<clients>.<roles>.<mac>` with
    /// the MAC the scope function recomputes from the key table's padded
    /// keys with plain SHA-256 (`sha256(okey || sha256(ikey || domain ||
    /// parts 2-5))`), and another key, scope or expiry gives another token.
    #[test]
    #[cfg(feature = "postgres")]
    fn scope_token_carries_the_scope_under_the_mac_the_database_recomputes() {
        use sha2::{Digest, Sha256};
        const TENANT: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
        const C1: &str = "c1000000-0000-4000-8000-000000000001";
        const C2: &str = "c2000000-0000-4000-8000-000000000002";
        let ctx = |clients: &[&str]| {
            TenantContext::new(
                TENANT.parse().unwrap(),
                "dddddddd-dddd-4ddd-8ddd-dddddddddddd".parse().unwrap(),
                vec![
                    crate::Role::new("firm_admin").unwrap(),
                    crate::Role::new("hr:viewer").unwrap(),
                ],
                clients.iter().map(|c| c.parse().unwrap()).collect(),
            )
        };
        let key = ContextKey::from_bytes([7; 32]);
        let token = scope_token(&key, &ctx(&[C1, C2]), 1_800_000_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 6, "{}", token.as_str());
        let roles = ctx(&[])
            .roles()
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            parts[..5],
            [
                "s1",
                TENANT,
                "1800000000",
                &format!("{C1},{C2}"),
                roles.as_str()
            ]
        );
        let (ikey, okey) = key.padded_hex();
        let msg = format!("hisn_tenant_guard.scope.v1.{}", parts[1..5].join("."));
        let inner = Sha256::new()
            .chain_update(hex::decode(ikey.as_str()).unwrap())
            .chain_update(msg.as_bytes())
            .finalize();
        let outer = Sha256::new()
            .chain_update(hex::decode(okey.as_str()).unwrap())
            .chain_update(inner)
            .finalize();
        assert_eq!(parts[5], hex::encode(outer));
        for other in [
            scope_token(
                &ContextKey::from_bytes([8; 32]),
                &ctx(&[C1, C2]),
                1_800_000_000,
            ),
            scope_token(&key, &ctx(&[C1]), 1_800_000_000),
            scope_token(&key, &ctx(&[C1, C2]), 1_800_000_001),
        ] {
            assert_ne!(other.rsplit('.').next(), Some(parts[5]));
        }
        // No client: an empty list, still six parts.
        let none = scope_token(&key, &ctx(&[]), 1_800_000_000);
        assert_eq!(none.split('.').nth(3), Some(""));
        assert_eq!(none.split('.').count(), 6);
    }
}
