//! `verify`, beyond the tenant tables themselves: the ways around their
//! policies that the catalog shows, and the search path the application
//! role's SQL could redirect.
//!
//! RLS filters a tenant table for whoever queries it, in that query's tenant
//! context. It does not filter a copy of the rows (a materialized view, a
//! table a trigger copies into), a query that runs as another role (a view
//! or a `SECURITY DEFINER` function owned by a role that bypasses RLS or owns
//! the table; a rule), data it cannot see (a foreign table), referential
//! checks (`REFERENCES`), nor code the application role plants to run in
//! other tenants' transactions (`TRIGGER`; objects in a schema on its search
//! path, which resolve before the ones the statements mean). Each is its own
//! [`Finding`].

use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use super::{CONTEXT_FUNCTION, CONTEXT_KEY_TABLE, Finding, TenantTable};
use crate::Error;

type Conn = PoolConnection<Postgres>;

/// `(role, schema)` for every role the connected role can become (or is)
/// that can create objects in a schema on the session's search path (owns
/// it, or holds `CREATE` on it, also through `PUBLIC`), or that can create a
/// schema the path names but which does not exist yet (`CREATE` on the
/// database; `"$user"` is the usual one). Such a role can put a table,
/// function or operator where every later statement of every tenant finds it
/// first (`pg_catalog` too, when the path names it after that schema).
/// Operators are qualified: this runs before anything is known about the
/// path. The pool runs it before trusting a role's reset values
/// (`src/db/pg.rs`); `verify` reports each row.
pub(crate) const SEARCH_PATH_WRITERS: &str = "\
    SELECT r.rolname::pg_catalog.text, n.nspname::pg_catalog.text \
    FROM pg_catalog.pg_namespace n, pg_catalog.pg_roles r \
    WHERE n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false)) \
      AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER') \
      AND (r.oid OPERATOR(pg_catalog.=) n.nspowner \
           OR pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')) \
    UNION ALL \
    SELECT r.rolname::pg_catalog.text, e.name \
    FROM (SELECT CASE WHEN t OPERATOR(pg_catalog.=) '$user' THEN current_user::pg_catalog.text ELSE t END AS name \
          FROM (SELECT pg_catalog.btrim(x, ' \"') AS t \
                FROM pg_catalog.regexp_split_to_table(pg_catalog.current_setting('search_path'), ',') x) s) e, \
         pg_catalog.pg_roles r \
    WHERE e.name OPERATOR(pg_catalog.<>) '' \
      AND NOT e.name OPERATOR(pg_catalog.~~) 'pg\\_%' \
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) e.name) \
      AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER') \
      AND pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'CREATE')";

/// A reachable role can read or write relation `c.oid`, by a table or a
/// column privilege.
const READABLE: &str = "exists (select 1 from pg_roles r where pg_has_role(current_user, r.oid, 'MEMBER') \
       and has_any_column_privilege(r.oid, c.oid, 'SELECT,INSERT,UPDATE'))";

/// `(table, index)` for every index on a tenant table (or a partition or
/// child of one) whose first key column is not the tenant column, or is an
/// expression.
const INDEXES_NOT_LED_BY_TENANT: &str = "\
    with recursive rel(oid, col) as ( \
        select c.oid, q.col from unnest($1::text[], $2::text[]) q(t, col) \
        join pg_class c on c.oid = to_regclass(q.t) \
        union select i.inhrelid, rel.col from pg_inherits i join rel on i.inhparent = rel.oid) \
    select x.indrelid::regclass::text, x.indexrelid::regclass::text \
    from rel join pg_index x on x.indrelid = rel.oid \
    left join pg_attribute a on a.attrelid = rel.oid and a.attnum = x.indkey[0] \
    where x.indkey[0] = 0 or a.attname::text is distinct from rel.col \
    order by 1, 2";

/// Everything this module checks; `tables` are the tenant tables.
pub(super) async fn side_doors(
    conn: &mut Conn,
    tables: &[TenantTable],
    value_oracles: bool,
    findings: &mut Vec<Finding>,
) -> Result<(), Error> {
    let quoted: Vec<String> = tables.iter().map(TenantTable::quoted).collect();
    let display: Vec<String> = tables.iter().map(ToString::to_string).collect();
    let columns: Vec<String> = tables.iter().map(|t| t.column().to_owned()).collect();

    let writers: Vec<(String, String)> = sqlx::query_as(SEARCH_PATH_WRITERS)
        .fetch_all(&mut **conn)
        .await?;
    findings.extend(
        writers
            .into_iter()
            .map(|(role, schema)| Finding::SearchPathWritable { role, schema }),
    );

    // Views and materialized views over a tenant table, through any chain of views.
    type ViewRow = (String, String, String, String, bool, bool);
    let views: Vec<ViewRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with recursive dep(oid, root) as ( \
             select c.oid, q.disp from unnest($1::text[], $2::text[]) q(t, disp) \
             join pg_class c on c.oid = to_regclass(q.t) \
             union \
             select w.ev_class, dep.root from dep \
             join pg_depend d on d.refclassid = 'pg_class'::regclass and d.refobjid = dep.oid \
                 and d.classid = 'pg_rewrite'::regclass \
             join pg_rewrite w on w.oid = d.objid where w.ev_class <> dep.oid) \
         select distinct on (c.oid) c.oid::regclass::text, c.relkind::text, dep.root, o.rolname::text, \
                o.rolsuper or o.rolbypassrls, \
                coalesce((select bool_or(lower(x) in ('security_invoker=true', 'security_invoker=on', \
                    'security_invoker=1', 'security_invoker=yes', 'security_invoker')) \
                    from unnest(c.reloptions) x), false) \
         from dep join pg_class c on c.oid = dep.oid join pg_roles o on o.oid = c.relowner \
         where c.relkind in ('v', 'm') and {READABLE} \
         order by c.oid, dep.root"
    )))
    .bind(&quoted)
    .bind(&display)
    .fetch_all(&mut **conn)
    .await?;
    let mut view_findings = Vec::new();
    for (view, kind, table, owner, owner_bypasses, invoker) in views {
        if kind == "m" {
            view_findings.push(Finding::MaterializedView { view, table });
        } else if owner_bypasses && !invoker {
            view_findings.push(Finding::ViewBypassesRls { view, table, owner });
        }
    }
    view_findings.sort_by_key(ToString::to_string);
    findings.extend(view_findings);

    // Tables holding a tenant column (same name and type) without RLS: a copy
    // of tenant rows (a trigger's or an application's) every tenant reads.
    let copies: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with tenant as ( \
             select c.oid, a.attname, a.atttypid from unnest($1::text[], $2::text[]) q(t, col) \
             join pg_class c on c.oid = to_regclass(q.t) \
             join pg_attribute a on a.attrelid = c.oid and a.attname = q.col) \
         select distinct c.oid::regclass::text, a.attname::text \
         from pg_class c \
         join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
         join tenant t on t.attname = a.attname and t.atttypid = a.atttypid \
         where c.relkind in ('r', 'p') and not c.relrowsecurity and c.relpersistence <> 't' \
           and c.oid not in (select oid from tenant) \
           and not exists (select 1 from pg_inherits i where i.inhrelid = c.oid) \
           and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) \
           and {READABLE} \
         order by 1, 2"
    )))
    .bind(&quoted)
    .bind(&columns)
    .fetch_all(&mut **conn)
    .await?;
    findings.extend(
        copies
            .into_iter()
            .map(|(table, column)| Finding::UnprotectedTenantColumn { table, column }),
    );

    // Indexes an `EXPLAIN ANALYZE` can turn into a value oracle: scanned by
    // another column's value, the policy filters afterwards and the plan
    // prints how many rows it removed.
    // Opt-in (`VerifyOptions::report_value_oracles`).
    let indexes: Vec<(String, String)> = if value_oracles {
        sqlx::query_as(INDEXES_NOT_LED_BY_TENANT)
            .bind(&quoted)
            .bind(&columns)
            .fetch_all(&mut **conn)
            .await?
    } else {
        Vec::new()
    };
    findings.extend(
        indexes
            .into_iter()
            .map(|(table, index)| Finding::IndexNotLedByTenantColumn { table, index }),
    );

    // Foreign tables: verify cannot see what they read.
    let foreign: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select c.oid::regclass::text from pg_class c where c.relkind = 'f' and {READABLE} order by 1"
    )))
    .fetch_all(&mut **conn)
    .await?;
    findings.extend(
        foreign
            .into_iter()
            .map(|table| Finding::ForeignTable { table }),
    );

    // Rules on tenant tables: their actions run as the table's owner.
    let rules: Vec<(String, String)> = sqlx::query_as(
        "select q.disp, w.rulename::text from unnest($1::text[], $2::text[]) q(t, disp) \
         join pg_rewrite w on w.ev_class = to_regclass(q.t) \
         where w.rulename <> '_RETURN' order by 1, 2",
    )
    .bind(&quoted)
    .bind(&display)
    .fetch_all(&mut **conn)
    .await?;
    findings.extend(
        rules
            .into_iter()
            .map(|(table, rule)| Finding::RuleOnTenantTable { table, rule }),
    );

    // SECURITY DEFINER functions a reachable role may call, owned by a role
    // that bypasses RLS, owns a tenant table or owns the context key (the
    // generated context and scope functions aside: checked on their own).
    let generated: Vec<String> = std::iter::once(CONTEXT_FUNCTION)
        .chain(
            super::scope::scope_functions()
                .iter()
                .map(|(name, _, _, _)| *name),
        )
        .map(|name| format!("public.{name}()"))
        .collect();
    let definers: Vec<(String, String)> = sqlx::query_as(
        "select p.oid::regprocedure::text, o.rolname::text \
         from pg_proc p join pg_roles o on o.oid = p.proowner \
         where p.prosecdef and p.pronamespace <> 'pg_catalog'::regnamespace \
           and p.oid not in (select to_regprocedure(x) from unnest($2::text[]) x \
                             where to_regprocedure(x) is not null) \
           and (o.rolsuper or o.rolbypassrls \
                or exists (select 1 from unnest($1::text[]) q(t) join pg_class c \
                           on c.oid = to_regclass(q.t) where c.relowner = p.proowner) \
                or exists (select 1 from pg_class k where k.oid = to_regclass($3) \
                           and k.relowner = p.proowner)) \
           and exists (select 1 from pg_roles r where pg_has_role(current_user, r.oid, 'MEMBER') \
                       and has_function_privilege(r.oid, p.oid, 'EXECUTE')) \
         order by 1",
    )
    .bind(&quoted)
    .bind(&generated)
    .bind(format!("public.{CONTEXT_KEY_TABLE}"))
    .fetch_all(&mut **conn)
    .await?;
    findings.extend(
        definers
            .into_iter()
            .map(|(function, owner)| Finding::DefinerFunction { function, owner }),
    );
    Ok(())
}
