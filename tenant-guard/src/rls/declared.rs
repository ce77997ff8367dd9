//! What only the operator can say: which tables every tenant may read
//! ([`VerifyOptions::global_tables`]) and which trigger functions on tenant
//! tables are reviewed ([`VerifyOptions::trigger_functions`]); and the two
//! checks `verify` bases on them.
//!
//! Row-level security filters a tenant table. It does not follow a row once
//! code copies it elsewhere: a trigger (or a function it calls) can write a
//! tenant's row into any table, under any column name or inside a JSON
//! document, and whoever reads that table reads every tenant's copies. The
//! catalog cannot tell a copy from reference data by column names, so
//! `verify` does not guess: every relation a reachable role can use that has
//! no row-level security is a [`Finding::UndeclaredTable`] unless declared
//! global, and every trigger on a tenant table is a
//! [`Finding::UndeclaredTrigger`] unless its function is declared. Nothing is
//! declared by default ([`verify`](super::verify) uses
//! [`VerifyOptions::new`]): an existing install sees its global tables
//! reported once, and declares them.
//!
//! Traps: a declared trigger function vouches for every function it calls;
//! `verify` cannot read function bodies. A declaration is by name: a
//! function owned by a role the application role can become is never
//! accepted (it could replace the body), but the owner's later edits are.

use super::check_ident;
use crate::Error;

/// What `verify` accepts because the operator declared it, beyond the tenant
/// tables. The default ([`VerifyOptions::new`]) declares nothing: fail
/// closed.
///
/// ```
/// use hisn_tenant_guard::rls::VerifyOptions;
///
/// let options = VerifyOptions::new()
///     .global_tables(["countries", "billing.plans"])?
///     .trigger_functions(["audit.row_changed"])?;
/// assert!(VerifyOptions::new().global_tables(["Countries"]).is_err());
/// # let _ = options;
/// # Ok::<(), hisn_tenant_guard::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Quoted, possibly schema-qualified relation names.
    globals: Vec<String>,
    /// Quoted, possibly schema-qualified function names with `()`.
    trigger_functions: Vec<String>,
    /// Report [`super::Finding::IndexNotLedByTenantColumn`].
    value_oracles: bool,
}

/// `name` or `schema.name`, each `[a-z_][a-z0-9_]*`, quoted.
fn quoted(name: &str) -> Result<String, Error> {
    match name.split_once('.') {
        Some((schema, rel)) => {
            check_ident(schema)?;
            check_ident(rel)?;
            Ok(format!("\"{schema}\".\"{rel}\""))
        }
        None => {
            check_ident(name)?;
            Ok(format!("\"{name}\""))
        }
    }
}

impl VerifyOptions {
    /// Nothing declared: every reachable relation without row-level security
    /// and every trigger on a tenant table is a finding.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare relations (`name` or `schema.name`, resolved on the search
    /// path of the role `verify` connects as) global: every tenant may read
    /// and write all their rows, so no [`Finding::UndeclaredTable`] for them.
    /// A table that holds a column named like a tenant column is still
    /// reported ([`Finding::UnprotectedTenantColumn`]): make it a tenant
    /// table. The guard's shared tables are the usual list
    /// (`registry.shared_tables()`).
    ///
    /// [`Finding::UndeclaredTable`]: super::Finding::UndeclaredTable
    /// [`Finding::UnprotectedTenantColumn`]: super::Finding::UnprotectedTenantColumn
    pub fn global_tables(
        mut self,
        tables: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, Error> {
        for t in tables {
            self.globals.push(quoted(t.as_ref())?);
        }
        Ok(self)
    }

    /// Declare trigger functions (`name` or `schema.name`; trigger functions
    /// take no arguments) reviewed: a trigger on a tenant table calling one
    /// is no [`Finding::UndeclaredTrigger`], unless a role the application
    /// role can become owns the function. Declare a function only after
    /// reading it and everything it calls: it runs in every tenant's
    /// transaction and may write that tenant's rows anywhere.
    ///
    /// [`Finding::UndeclaredTrigger`]: super::Finding::UndeclaredTrigger
    pub fn trigger_functions(
        mut self,
        functions: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, Error> {
        for f in functions {
            self.trigger_functions.push(quoted(f.as_ref())? + "()");
        }
        Ok(self)
    }

    /// Also report every index of a tenant table not led by its tenant
    /// column ([`Finding::IndexNotLedByTenantColumn`]): with RLS as the only
    /// layer, `EXPLAIN ANALYZE` over such an index counts other tenants' rows
    /// holding a value (a primary key on `id` alone tells whether an id
    /// exists in another tenant). Off by default: nearly every schema has
    /// such indexes (primary keys), the guard refuses `EXPLAIN`, and with
    /// RLS alone `EXPLAIN ANALYZE` counts other tenants' rows in any case
    /// (README, "Not covered"). Turn it on where the application role runs
    /// SQL no guard checks.
    ///
    /// [`Finding::IndexNotLedByTenantColumn`]: super::Finding::IndexNotLedByTenantColumn
    #[must_use]
    pub fn report_value_oracles(mut self) -> Self {
        self.value_oracles = true;
        self
    }

    /// Whether [`VerifyOptions::report_value_oracles`] was asked for.
    pub(crate) fn value_oracles(&self) -> bool {
        self.value_oracles
    }
}

#[cfg(feature = "postgres")]
pub(super) use checks::declared;

#[cfg(feature = "postgres")]
mod checks {
    use sqlx::Postgres;
    use sqlx::pool::PoolConnection;

    use super::VerifyOptions;
    use crate::Error;
    use crate::rls::{Finding, TenantTable};

    type Conn = PoolConnection<Postgres>;

    /// The tenant tables with their partitions and children (`tenant`),
    /// and the relations a role the application role can become can use
    /// (`reach`, see [`UNDECLARED`]); `$1` names the tenant tables.
    macro_rules! reach_ctes {
        () => {
            "\
        with recursive tenant(oid) as ( \
            select to_regclass(x) from unnest($1::text[]) x where to_regclass(x) is not null \
            union select i.inhrelid from pg_inherits i join tenant t on i.inhparent = t.oid), \
        reach(oid) as ( \
            select c.oid from pg_class c \
            where c.relkind in ('r', 'p', 'v', 'm') \
              and exists (select 1 from pg_roles r where pg_has_role(current_user, r.oid, 'MEMBER') \
                  and (has_table_privilege(r.oid, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE') \
                       or has_any_column_privilege(r.oid, c.oid, 'SELECT,INSERT,UPDATE'))) \
            union \
            select d.refobjid from reach \
            join pg_class v on v.oid = reach.oid and v.relkind = 'v' \
            join pg_rewrite w on w.ev_class = v.oid \
            join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid \
                and d.refclassid = 'pg_class'::regclass and d.refobjid <> v.oid) "
        };
    }

    /// Relations a reachable role can use, by a table privilege or a column
    /// privilege, or through a view it can use (at any depth: a view reads
    /// with its owner's privileges, so what it reads is reachable too;
    /// materialized views are snapshots and reported themselves). Those of
    /// them that are tables or materialized views without row-level
    /// security, not a tenant table nor a partition or child of one (checked
    /// on their own), not declared global and not temporary.
    const UNDECLARED: &str = concat!(
        reach_ctes!(),
        "\
        select distinct c.oid::regclass::text from reach join pg_class c on c.oid = reach.oid \
        where c.relkind in ('r', 'p', 'm') and not c.relrowsecurity and c.relpersistence <> 't' \
          and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, \
                                     'pg_toast'::regnamespace) \
          and c.oid not in (select oid from tenant) \
          and c.oid not in (select to_regclass(x) from unnest($2::text[]) x \
                            where to_regclass(x) is not null) \
        order by 1"
    );

    /// Triggers (not the internal ones of foreign keys) on the tenant tables
    /// and on every relation a reachable role can use (a declared global
    /// table or a view included: a trigger there fires when any tenant
    /// writes it, and may copy the writer's tenant rows into it, whatever its
    /// function's `EXECUTE` grant, since firing checks none), and
    /// their partitions and children, whatever their `ENABLE` state (one
    /// `ALTER TABLE` away from firing; `ENABLE REPLICA` fires under
    /// `session_replication_role = replica`), except those whose function is
    /// declared and owned by no role the application role can become, and
    /// clones of a reported partitioned table's trigger.
    const UNDECLARED_TRIGGERS: &str = concat!(
        reach_ctes!(),
        ", \
        rel(oid) as ( \
            select oid from tenant union select oid from reach \
            union select i.inhrelid from pg_inherits i join rel on i.inhparent = rel.oid) \
        select g.tgrelid::regclass::text, g.tgname::text, g.tgfoid::regprocedure::text \
        from rel join pg_trigger g on g.tgrelid = rel.oid join pg_proc p on p.oid = g.tgfoid \
        where not g.tgisinternal \
          and not exists (select 1 from pg_trigger pt join rel r2 on r2.oid = pt.tgrelid \
                          where pt.oid = g.tgparentid) \
          and not (p.oid in (select to_regprocedure(x) from unnest($2::text[]) x \
                             where to_regprocedure(x) is not null) \
                   and not pg_has_role(current_user, p.proowner, 'MEMBER')) \
        order by 1, 2"
    );

    /// Rules (not a view's `_RETURN`) on every relation a reachable role can
    /// use and on the partitions and children of tenant tables, except the
    /// tenant tables themselves (`Finding::RuleOnTenantTable`, checked in
    /// `side_doors`).
    const REACHABLE_RULES: &str = concat!(
        reach_ctes!(),
        "\
        select distinct c.oid::regclass::text, w.rulename::text \
        from (select oid from reach union select oid from tenant) r \
        join pg_class c on c.oid = r.oid join pg_rewrite w on w.ev_class = c.oid \
        where w.rulename <> '_RETURN' \
          and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) \
          and c.oid not in (select to_regclass(x) from unnest($1::text[]) x \
                            where to_regclass(x) is not null) \
        order by 1, 2"
    );

    /// The checks; pushes the findings not already reported as `skip`.
    pub(in crate::rls) async fn declared(
        conn: &mut Conn,
        tables: &[TenantTable],
        options: &VerifyOptions,
        findings: &mut Vec<Finding>,
    ) -> Result<(), Error> {
        let quoted: Vec<String> = tables.iter().map(TenantTable::quoted).collect();
        let triggers: Vec<(String, String, String)> = sqlx::query_as(UNDECLARED_TRIGGERS)
            .bind(&quoted)
            .bind(&options.trigger_functions)
            .fetch_all(&mut **conn)
            .await?;
        findings.extend(triggers.into_iter().map(|(table, trigger, function)| {
            Finding::UndeclaredTrigger {
                table,
                trigger,
                function,
            }
        }));
        let rules: Vec<(String, String)> = sqlx::query_as(REACHABLE_RULES)
            .bind(&quoted)
            .fetch_all(&mut **conn)
            .await?;
        findings.extend(
            rules
                .into_iter()
                .map(|(table, rule)| Finding::RuleOnReachableRelation { table, rule }),
        );
        let relations: Vec<String> = sqlx::query_scalar(UNDECLARED)
            .bind(&quoted)
            .bind(&options.globals)
            .fetch_all(&mut **conn)
            .await?;
        // A relation already reported as a copy of tenant rows (a tenant
        // column, a materialized view over a tenant table) is not repeated.
        let reported = |name: &str| {
            findings.iter().any(|f| match f {
                Finding::UnprotectedTenantColumn { table, .. } => table == name,
                Finding::MaterializedView { view, .. } => view == name,
                _ => false,
            })
        };
        let undeclared: Vec<Finding> = relations
            .into_iter()
            .filter(|t| !reported(t))
            .map(|table| Finding::UndeclaredTable { table })
            .collect();
        findings.extend(undeclared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are checked like tenant table names (one spelling per object,
    /// nothing to escape) and quoted for `to_regclass`/`to_regprocedure`.
    #[test]
    fn declarations_are_checked_identifiers_quoted() {
        let o = VerifyOptions::new()
            .global_tables(["countries", "ref.plans"])
            .unwrap()
            .trigger_functions(["audit.row_changed"])
            .unwrap();
        assert_eq!(o.globals, ["\"countries\"", "\"ref\".\"plans\""]);
        assert_eq!(o.trigger_functions, ["\"audit\".\"row_changed\"()"]);
        for bad in ["Countries", "a.b.c", "x;drop", "", "a.", "\"x\""] {
            assert!(VerifyOptions::new().global_tables([bad]).is_err(), "{bad}");
            assert!(
                VerifyOptions::new().trigger_functions([bad]).is_err(),
                "{bad}"
            );
        }
        assert_eq!(VerifyOptions::new(), VerifyOptions::default());
    }
}
