//! What [`verify`](super::verify) reports: one [`Finding`] per problem.

use std::fmt;

use crate::Error;

/// One problem `verify` found. Each variant names what leaks and its fix.
///
/// "The application role" is the role `verify` connected as; "a role it can
/// become" is any role it is a member of, directly or through other roles,
/// whatever the `INHERIT` setting (it can `SET ROLE` to each of them).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The tenant table does not exist (or is not visible). Fix: create it or
    /// correct the table list.
    MissingTable {
        /// The table.
        table: String,
    },
    /// Row-level security is not enabled on the table: every row of every
    /// tenant is visible. Fix: apply the generated SQL (`ENABLE ROW LEVEL SECURITY`).
    RlsDisabled {
        /// The table.
        table: String,
    },
    /// Row-level security is not FORCEd: the owner bypasses it. Fix:
    /// `ALTER TABLE .. FORCE ROW LEVEL SECURITY` (in the generated SQL).
    RlsNotForced {
        /// The table.
        table: String,
    },
    /// No restrictive policy for all commands whose `USING` (and `WITH CHECK`,
    /// if present) is the tenant predicate. Fix: apply the generated SQL.
    MissingRestrictivePolicy {
        /// The table.
        table: String,
    },
    /// The tenant policy exists but does not apply to `role`, a role that can
    /// reach the table (the application role or one it can become): the policy
    /// is granted to another role, or to a role `role` is a `NOINHERIT` member
    /// of (policies follow inherited privileges only). Fix: make the
    /// restrictive policy `TO PUBLIC`, as the generated SQL does.
    PolicyNotApplied {
        /// The role the policy misses.
        role: String,
        /// The table.
        table: String,
    },
    /// The tenant policy has no `WITH CHECK`. PostgreSQL then checks new rows
    /// with `USING`, but a later edit of `USING` silently changes what may be
    /// written. Fix: state `WITH CHECK` (the generated SQL does).
    MissingWithCheck {
        /// The table.
        table: String,
        /// The policy.
        policy: String,
    },
    /// A permissive policy other than the generated one, or one whose
    /// expressions are not the tenant predicate: the restrictive policy still
    /// bounds it, but it widens what the app role may see as soon as the
    /// restrictive policy is dropped or changed. Fix: drop it.
    ExtraPermissivePolicy {
        /// The table.
        table: String,
        /// The policy.
        policy: String,
    },
    /// A partition or inheritance child of a tenant table without row-level
    /// security enabled and forced and the tenant policy: queried directly, it
    /// shows every tenant's rows. Fix: apply the generated SQL to the child too
    /// (list it as a tenant table).
    ChildWithoutRls {
        /// The tenant table.
        table: String,
        /// The child.
        child: String,
    },
    /// The application role (or a role it can become) holds a privilege on a
    /// partition or inheritance child directly, so it can bypass the parent and
    /// its policies. Fix: revoke it; grant on the parent only.
    ChildDirectlyGranted {
        /// The tenant table.
        table: String,
        /// The child.
        child: String,
        /// The role holding the privilege.
        role: String,
    },
    /// The tenant table is owned by a superuser or a BYPASSRLS role: RLS does
    /// not bind the owner's `SECURITY DEFINER` functions and views, nor FORCE
    /// the superuser. Fix: give the tables to an ordinary owner role
    /// (`ALTER TABLE .. OWNER TO app_owner`).
    TableOwnerBypassesRls {
        /// The table.
        table: String,
        /// The owner.
        owner: String,
    },
    /// The connected role is a superuser (bypasses every policy). Fix:
    /// connect as an ordinary role.
    RoleIsSuperuser {
        /// The role.
        role: String,
    },
    /// The connected role has BYPASSRLS. Fix: `ALTER ROLE .. NOBYPASSRLS`.
    RoleBypassesRls {
        /// The role.
        role: String,
    },
    /// The connected role can `SET ROLE` to `reachable` (membership, possibly
    /// through other roles), which is a superuser or has BYPASSRLS. Fix:
    /// revoke the membership.
    ReachableRoleBypassesRls {
        /// The connected role.
        role: String,
        /// The role it can become.
        reachable: String,
    },
    /// The connected role owns a tenant table: it can disable RLS or drop the
    /// policies. Fix: `ALTER TABLE .. OWNER TO` another role.
    RoleOwnsTable {
        /// The role.
        role: String,
        /// The table.
        table: String,
    },
    /// The connected role can `SET ROLE` to `reachable`, which owns a tenant
    /// table (and can therefore disable RLS). Fix: revoke the membership.
    ReachableRoleOwnsTable {
        /// The connected role.
        role: String,
        /// The owner it can become.
        reachable: String,
        /// The table.
        table: String,
    },
    /// `role` (the connected role or one it can become) holds `TRUNCATE` on a
    /// tenant table; `TRUNCATE` is not subject to row-level security and
    /// empties every tenant's rows. Fix: revoke it.
    RoleCanTruncate {
        /// The role.
        role: String,
        /// The table.
        table: String,
    },
    /// `public.hisn_tenant_guard_current_tenant()` is missing, or is not
    /// what the generated SQL creates (the reason names the difference):
    /// not `SECURITY DEFINER`, not `STABLE`, `search_path` not pinned,
    /// executable by `PUBLIC`, not executable by the app role, or owned by a
    /// role the application role can become (which could replace its body).
    /// Fix: apply the generated SQL as the schema owner.
    ContextFunctionUnsafe {
        /// What is wrong.
        reason: &'static str,
    },
    /// A client-scoped table has no restrictive policy for all commands and
    /// `PUBLIC` whose `USING` and `WITH CHECK` are the client predicate
    /// ([`client_predicate`](super::client_predicate), with the declared
    /// organisation-wide roles): a user granted one client of an
    /// organisation reads every client's rows. Fix: apply the generated SQL.
    MissingClientPolicy {
        /// The table.
        table: String,
        /// Its client column.
        column: String,
    },
    /// A role-gated table lacks one of the restrictive `PUBLIC` policies the
    /// generated SQL creates for its gate (`SELECT` on the read roles;
    /// `INSERT`, `UPDATE`, `DELETE` on the write roles), or one of them
    /// names other roles: a role the gate excludes can read or write it with
    /// the guard off. Fix: apply the generated SQL.
    MissingRoleGatePolicy {
        /// The table.
        table: String,
    },
    /// One of the session scope functions
    /// (`public.hisn_tenant_guard_current_scope()`, `.._current_clients()`,
    /// `.._current_roles()`) is missing or not what the generated SQL
    /// creates (the same checks as [`Finding::ContextFunctionUnsafe`]).
    /// Fix: apply the generated SQL as the schema owner.
    ScopeFunctionUnsafe {
        /// The function.
        function: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The context key table is missing, or `role` (the connected role or one it
    /// can become) can read it or owns it: whoever reads the key can sign a
    /// context for any tenant. Fix: apply the generated SQL as the schema
    /// owner; revoke the privilege or membership; rotate the key.
    ContextKeyExposed {
        /// The role that can read it (empty when the table is missing).
        role: String,
    },
    /// `role` (the connected role or one it can become) can create objects in
    /// `schema`, a schema on the connected role's `search_path` (it owns it or
    /// holds `CREATE`, also through `PUBLIC`), or can create `schema`, which
    /// the path names but which does not exist (`CREATE` on the database;
    /// usually `"$user"`). A table there shadows a tenant table and a
    /// function or operator there shadows the one a statement means, for
    /// every later statement of every tenant: SQL of one tenant then runs in
    /// the next tenant's transaction, with its context. `ALTER ROLE
    /// CURRENT_USER SET search_path` needs no privilege, so the path may be
    /// the application role's own doing; the pool refuses such a session too.
    /// Fix: revoke `CREATE` (and ownership) on every schema on the path, and
    /// `CREATE` on the database; `ALTER ROLE .. RESET search_path`.
    SearchPathWritable {
        /// The role that can create there.
        role: String,
        /// The schema.
        schema: String,
    },
    /// `role` (the connected role or one it can become, not the owner) holds
    /// `privilege` on a tenant table: `TRIGGER` lets it add a trigger that
    /// runs in every tenant's transaction with that tenant's context;
    /// `REFERENCES` (on any column) lets it point a foreign key, from a
    /// temporary table too, at the table, and referential checks bypass RLS:
    /// an existence oracle over every tenant's keys. Fix: revoke it (the
    /// generated SQL grants neither).
    UnfilteredPrivilege {
        /// The role.
        role: String,
        /// The table.
        table: String,
        /// `TRIGGER` or `REFERENCES`.
        privilege: &'static str,
    },
    /// A view over a tenant table (directly or through other views) that a
    /// reachable role can use, owned by a superuser or BYPASSRLS role and
    /// not `security_invoker`: it reads as its owner, every tenant's rows.
    /// Fix: `ALTER VIEW .. OWNER TO` an ordinary role, or `SET
    /// (security_invoker = true)`.
    ViewBypassesRls {
        /// The view.
        view: String,
        /// The tenant table it reads.
        table: String,
        /// Its owner.
        owner: String,
    },
    /// A materialized view over a tenant table that a reachable role can
    /// read: it holds the rows its last refresh saw, with no row-level
    /// security for its readers. Fix: revoke it, or drop it.
    MaterializedView {
        /// The materialized view.
        view: String,
        /// The tenant table it copies.
        table: String,
    },
    /// A table that is not a tenant table, has no row-level security, can
    /// be read or written by a reachable role, and has a column of the name
    /// and type of a tenant column: a copy of tenant rows (what a trigger or
    /// a rule copying rows writes) that every tenant reads. Reported even
    /// when declared global: a global table holds no tenant column (copies
    /// under other names are [`Finding::UndeclaredTable`]). Fix: list it as
    /// a tenant table (the generated SQL puts it under the policies), or
    /// revoke it.
    UnprotectedTenantColumn {
        /// The table.
        table: String,
        /// The column named like a tenant column.
        column: String,
    },
    /// A table or materialized view that is not a tenant table, has no
    /// row-level security, is not declared global
    /// ([`VerifyOptions::global_tables`](super::VerifyOptions::global_tables)),
    /// and that a reachable role can read or write, directly or through a
    /// view it can use. Whatever lands there every tenant reads: a trigger's
    /// or a rule's copy of tenant rows under any column name or inside a
    /// JSON document, a row the application writes for one tenant. Fix: make
    /// it a tenant table, revoke it, or declare it global if every tenant
    /// may read all of its rows.
    UndeclaredTable {
        /// The table.
        table: String,
    },
    /// A trigger on a tenant table (or a partition or child of one) whose
    /// function is not declared reviewed
    /// ([`VerifyOptions::trigger_functions`](super::VerifyOptions::trigger_functions)),
    /// or is owned by a role the application role can become. It runs in
    /// every tenant's transaction, sees that tenant's rows, and can write
    /// them anywhere (itself or through the functions it calls). Reported
    /// whatever its `ENABLE` state. Fix: drop it, or review the function and
    /// everything it calls and declare it.
    UndeclaredTrigger {
        /// The table the trigger is on.
        table: String,
        /// The trigger.
        trigger: String,
        /// Its function (`name()`).
        function: String,
    },
    /// An index on a tenant table (or a partition or child of one) whose
    /// first key column is not the tenant column, or is an expression. The
    /// planner may scan it by a leakproof condition on another column
    /// (`name = 'x'`) and apply the policy afterwards; `EXPLAIN ANALYZE`,
    /// which needs no privilege, prints the rows the policy removed: how
    /// many of other tenants' rows hold that value, a value oracle with RLS
    /// alone. Fix: lead the index with the tenant column (`(tenant_id,
    /// name)`), which also serves the policy.
    IndexNotLedByTenantColumn {
        /// The table.
        table: String,
        /// The index.
        index: String,
    },
    /// A foreign table a reachable role can read or write: row-level
    /// security of the data it reaches is the remote side's (a user mapping
    /// to an owner or a superuser reads every tenant), and `verify` cannot
    /// see it. Fix: revoke it.
    ForeignTable {
        /// The foreign table.
        table: String,
    },
    /// A rule on a tenant table: its actions run with the table owner's
    /// privileges (a `DO ALSO INSERT INTO` copies rows where the policies do
    /// not follow them). Fix: drop it.
    RuleOnTenantTable {
        /// The table.
        table: String,
        /// The rule.
        rule: String,
    },
    /// A rule on another relation a reachable role can use (a declared
    /// global table, a child of a tenant table): it fires when any tenant
    /// writes there and its actions run with the owner's privileges in that
    /// tenant's transaction. Under the generated policies the owner reads no
    /// tenant row, but an owner that bypasses RLS, or a table without RLS
    /// among what the rule reads, is read whole and can be copied where
    /// every tenant reads it. Fix: drop it (a trigger, declared reviewed, if
    /// it must stay).
    RuleOnReachableRelation {
        /// The relation.
        table: String,
        /// The rule.
        rule: String,
    },
    /// A `SECURITY DEFINER` function a reachable role may call, owned by a
    /// superuser or BYPASSRLS role (it reads every tenant's rows), by a
    /// tenant table's owner (who can switch RLS off or drop the policies) or
    /// by the context key's owner (who can read the key). The generated
    /// context and scope functions are checked on their own. Fix: revoke
    /// `EXECUTE`, or give the function to a role that owns nothing of this.
    DefinerFunction {
        /// The function (`name(argument types)`).
        function: String,
        /// Its owner.
        owner: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingTable { table } => write!(f, "{table}: table not found"),
            Self::RlsDisabled { table } => write!(f, "{table}: row level security is not enabled"),
            Self::RlsNotForced { table } => write!(
                f,
                "{table}: row level security is not forced (owner bypasses it)"
            ),
            Self::MissingRestrictivePolicy { table } => write!(
                f,
                "{table}: no restrictive tenant policy for all commands with the tenant predicate"
            ),
            Self::PolicyNotApplied { role, table } => write!(
                f,
                "{table}: the restrictive tenant policy does not apply to role {role} (make it TO PUBLIC)"
            ),
            Self::MissingWithCheck { table, policy } => {
                write!(f, "{table}: policy {policy} has no WITH CHECK")
            }
            Self::ExtraPermissivePolicy { table, policy } => write!(
                f,
                "{table}: permissive policy {policy} besides the tenant policy"
            ),
            Self::ChildWithoutRls { table, child } => write!(
                f,
                "{table}: partition or child table {child} lacks forced row level security with the tenant policy"
            ),
            Self::ChildDirectlyGranted { table, child, role } => write!(
                f,
                "{table}: role {role} holds privileges on partition or child table {child} directly"
            ),
            Self::TableOwnerBypassesRls { table, owner } => write!(
                f,
                "{table}: owned by {owner}, a superuser or BYPASSRLS role"
            ),
            Self::RoleIsSuperuser { role } => write!(f, "role {role} is a superuser"),
            Self::RoleBypassesRls { role } => write!(f, "role {role} has BYPASSRLS"),
            Self::ReachableRoleBypassesRls { role, reachable } => write!(
                f,
                "role {role} can SET ROLE to {reachable}, a superuser or BYPASSRLS role"
            ),
            Self::RoleOwnsTable { role, table } => {
                write!(f, "role {role} owns tenant table {table}")
            }
            Self::ReachableRoleOwnsTable {
                role,
                reachable,
                table,
            } => write!(
                f,
                "role {role} can SET ROLE to {reachable}, the owner of tenant table {table}"
            ),
            Self::RoleCanTruncate { role, table } => write!(
                f,
                "role {role} may TRUNCATE tenant table {table} (not filtered by RLS)"
            ),
            Self::ContextFunctionUnsafe { reason } => {
                write!(f, "tenant context function: {reason}")
            }
            Self::MissingClientPolicy { table, column } => write!(
                f,
                "{table}: no restrictive policy filtering client column {column} on the session's client grants"
            ),
            Self::MissingRoleGatePolicy { table } => write!(
                f,
                "{table}: role gate without its restrictive per-command policies"
            ),
            Self::ScopeFunctionUnsafe { function, reason } => {
                write!(f, "session scope function {function}: {reason}")
            }
            Self::ContextKeyExposed { role } if role.is_empty() => {
                write!(f, "tenant context key table not found")
            }
            Self::ContextKeyExposed { role } => {
                write!(f, "tenant context key readable or owned by role {role}")
            }
            Self::SearchPathWritable { role, schema } => write!(
                f,
                "role {role} can create objects in (or create) schema {schema} on the search path"
            ),
            Self::UnfilteredPrivilege {
                role,
                table,
                privilege,
            } => write!(
                f,
                "role {role} holds {privilege} on tenant table {table} (not filtered by RLS)"
            ),
            Self::ViewBypassesRls { view, table, owner } => write!(
                f,
                "view {view} reads tenant table {table} as {owner}, a superuser or BYPASSRLS role"
            ),
            Self::MaterializedView { view, table } => write!(
                f,
                "materialized view {view} copies tenant table {table} without row level security"
            ),
            Self::UnprotectedTenantColumn { table, column } => write!(
                f,
                "table {table} holds tenant column {column} without row level security"
            ),
            Self::UndeclaredTable { table } => write!(
                f,
                "table {table} is reachable without row level security and not declared global"
            ),
            Self::UndeclaredTrigger {
                table,
                trigger,
                function,
            } => write!(
                f,
                "{table}: trigger {trigger} calls {function}, not declared as a reviewed trigger function"
            ),
            Self::IndexNotLedByTenantColumn { table, index } => write!(
                f,
                "{table}: index {index} does not lead with the tenant column (EXPLAIN ANALYZE counts other tenants' rows by value)"
            ),
            Self::ForeignTable { table } => write!(
                f,
                "foreign table {table} is reachable (row level security cannot be verified)"
            ),
            Self::RuleOnTenantTable { table, rule } => {
                write!(f, "{table}: rule {rule} runs as the table's owner")
            }
            Self::RuleOnReachableRelation { table, rule } => write!(
                f,
                "{table}: rule {rule} runs as the owner whenever a tenant writes there"
            ),
            Self::DefinerFunction { function, owner } => write!(
                f,
                "SECURITY DEFINER function {function} owned by {owner} is executable by the application role"
            ),
        }
    }
}

/// What `verify` found; empty means the configuration is sound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RlsReport {
    /// Every finding: the context function and key, then the tables in the
    /// order given, then the roles.
    pub findings: Vec<Finding>,
}

impl RlsReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// `Ok` when clean, else [`Error::RlsMisconfigured`] with the count (the
    /// findings stay in the report: log them before calling this).
    pub fn ensure_clean(&self) -> Result<(), Error> {
        if self.is_clean() {
            Ok(())
        } else {
            Err(Error::RlsMisconfigured(self.findings.len()))
        }
    }
}

impl fmt::Display for RlsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    /// Operators act on these lines (`hisn guard verify-rls` prints them): each
    /// names the table, role or function at fault and what is wrong.
    #[test]
    fn each_finding_prints_what_leaks_and_where() {
        let cases = [
            (
                Finding::MissingTable { table: s("assets") },
                "assets: table not found",
            ),
            (
                Finding::RlsDisabled { table: s("assets") },
                "assets: row level security is not enabled",
            ),
            (
                Finding::RlsNotForced { table: s("assets") },
                "assets: row level security is not forced (owner bypasses it)",
            ),
            (
                Finding::PolicyNotApplied {
                    role: s("app"),
                    table: s("assets"),
                },
                "assets: the restrictive tenant policy does not apply to role app (make it TO PUBLIC)",
            ),
            (
                Finding::ChildDirectlyGranted {
                    table: s("assets"),
                    child: s("assets_2026"),
                    role: s("app"),
                },
                "assets: role app holds privileges on partition or child table assets_2026 directly",
            ),
            (
                Finding::ReachableRoleOwnsTable {
                    role: s("app"),
                    reachable: s("owner"),
                    table: s("assets"),
                },
                "role app can SET ROLE to owner, the owner of tenant table assets",
            ),
            (
                Finding::ScopeFunctionUnsafe {
                    function: "public.hisn_tenant_guard_current_scope()",
                    reason: "not SECURITY DEFINER",
                },
                "session scope function public.hisn_tenant_guard_current_scope(): not SECURITY DEFINER",
            ),
            (
                Finding::ContextKeyExposed { role: s("app") },
                "tenant context key readable or owned by role app",
            ),
            (
                Finding::SearchPathWritable {
                    role: s("app"),
                    schema: s("app"),
                },
                "role app can create objects in (or create) schema app on the search path",
            ),
            (
                Finding::UnfilteredPrivilege {
                    role: s("app"),
                    table: s("assets"),
                    privilege: "REFERENCES",
                },
                "role app holds REFERENCES on tenant table assets (not filtered by RLS)",
            ),
            (
                Finding::ViewBypassesRls {
                    view: s("v"),
                    table: s("assets"),
                    owner: s("postgres"),
                },
                "view v reads tenant table assets as postgres, a superuser or BYPASSRLS role",
            ),
            (
                Finding::UnprotectedTenantColumn {
                    table: s("copy"),
                    column: s("tenant_id"),
                },
                "table copy holds tenant column tenant_id without row level security",
            ),
            (
                Finding::UndeclaredTable { table: s("audit") },
                "table audit is reachable without row level security and not declared global",
            ),
            (
                Finding::UndeclaredTrigger {
                    table: s("assets"),
                    trigger: s("copy"),
                    function: s("copy_fn()"),
                },
                "assets: trigger copy calls copy_fn(), not declared as a reviewed trigger function",
            ),
            (
                Finding::IndexNotLedByTenantColumn {
                    table: s("assets"),
                    index: s("assets_name"),
                },
                "assets: index assets_name does not lead with the tenant column (EXPLAIN ANALYZE counts other tenants' rows by value)",
            ),
            (
                Finding::RuleOnReachableRelation {
                    table: s("countries"),
                    rule: s("mirror"),
                },
                "countries: rule mirror runs as the owner whenever a tenant writes there",
            ),
            (
                Finding::DefinerFunction {
                    function: s("f()"),
                    owner: s("owner"),
                },
                "SECURITY DEFINER function f() owned by owner is executable by the application role",
            ),
        ];
        for (finding, line) in cases {
            assert_eq!(finding.to_string(), line);
        }
    }

    /// A missing key table is reported with an empty role: the line must say
    /// the table is missing, not name an empty role.
    #[test]
    fn context_key_finding_without_a_role_says_the_table_is_missing() {
        assert_eq!(
            Finding::ContextKeyExposed {
                role: String::new()
            }
            .to_string(),
            "tenant context key table not found"
        );
    }

    /// A report prints one line per finding, in order, and is clean only when
    /// empty; `ensure_clean` carries the exact count.
    #[test]
    fn report_prints_one_line_per_finding_and_counts_them() {
        let clean = RlsReport::default();
        assert!(clean.is_clean());
        assert!(clean.ensure_clean().is_ok());
        assert_eq!(clean.to_string(), "");
        let report = RlsReport {
            findings: vec![
                Finding::RlsDisabled { table: s("a") },
                Finding::RoleBypassesRls { role: s("app") },
            ],
        };
        assert!(!report.is_clean());
        assert!(matches!(
            report.ensure_clean(),
            Err(Error::RlsMisconfigured(2))
        ));
        assert_eq!(
            report.to_string(),
            "a: row level security is not enabled\nrole app has BYPASSRLS\n"
        );
    }
}
