//! Layer 3: PostgreSQL row-level security for the tenant tables.
//!
//! [`generate_sql`] writes the migration: for every tenant table `ENABLE` and
//! `FORCE ROW LEVEL SECURITY` (FORCE so that the table owner is filtered too),
//! an `AS RESTRICTIVE` policy for all commands whose `USING` and `WITH CHECK`
//! are the tenant predicate, a permissive policy for the application role (a
//! restrictive policy alone grants nothing) and the grants the role needs,
//! without `TRUNCATE` (which RLS does not filter).
//!
//! The tenant predicate is [`tenant_predicate`]:
//! `tenant_id = NULLIF(current_setting('hisn.tenant_id', true), '')::uuid`.
//! `current_setting(.., true)` returns NULL when the setting was never set and
//! `''` after a transaction-local value was reset, so `NULLIF` maps both to
//! NULL and the comparison is never true: no tenant set means no rows and
//! every write refused. A malformed value makes the cast fail, which aborts
//! the statement (fail closed).
//!
//! `verify` (feature `postgres`) inspects the catalog at start-up and lists
//! every [`Finding`]: a table without RLS, without FORCE, without the
//! restrictive policy, and a connected role that is superuser, has
//! BYPASSRLS, owns a tenant table or holds `TRUNCATE` on one.
//!
//! Traps the generated SQL does not cover: unique constraints and foreign keys
//! are checked across tenants (a duplicate-key error reveals that another
//! tenant holds the key); make them composite, `UNIQUE (tenant_id, id)` and
//! `FOREIGN KEY (tenant_id, asset_id) REFERENCES assets (tenant_id, id)`.

use std::fmt;
use std::fmt::Write as _;

use crate::Error;

/// The PostgreSQL setting that carries the tenant of the current transaction.
pub const TENANT_SETTING: &str = "hisn.tenant_id";
/// Name of the generated restrictive policy.
pub const RESTRICTIVE_POLICY: &str = "hisn_tenant_isolation";
/// Name of the generated permissive policy for the application role.
pub const PERMISSIVE_POLICY: &str = "hisn_tenant_access";
/// Longest identifier accepted (PostgreSQL's limit).
pub const MAX_IDENT_LEN: usize = 63;

/// Identifiers are restricted to lower-case `[a-z_][a-z0-9_]*`, so that a
/// quoted and an unquoted spelling name the same object and nothing needs
/// escaping.
fn check_ident(s: &str) -> Result<(), Error> {
    let mut bytes = s.bytes();
    let ok = s.len() <= MAX_IDENT_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(
            "identifiers must match [a-z_][a-z0-9_]* (at most 63 bytes)",
        ))
    }
}

/// A tenant table (optionally `schema.table`) and its tenant column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantTable {
    schema: Option<String>,
    name: String,
    column: String,
}

impl TenantTable {
    /// `table` (`name` or `schema.name`) scoped by `column`; identifiers must
    /// match `[a-z_][a-z0-9_]*`.
    pub fn new(table: &str, column: &str) -> Result<Self, Error> {
        let (schema, name) = match table.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, table),
        };
        if let Some(s) = schema {
            check_ident(s)?;
        }
        check_ident(name)?;
        check_ident(column)?;
        Ok(Self {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
            column: column.to_owned(),
        })
    }

    /// The table's name (without schema).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The quoted, possibly schema-qualified name.
    fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }
}

impl fmt::Display for TenantTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{s}.")?;
        }
        f.write_str(&self.name)
    }
}

/// Parse `table:column,table:column` (the CLI's `--tables`, the same format as
/// [`TableRegistry::parse_spec`](crate::guard::TableRegistry::parse_spec)).
/// Entries without `:column` name shared tables, which have no RLS, and are
/// skipped; at least one tenant table is required.
pub fn parse_tables(spec: &str) -> Result<Vec<TenantTable>, Error> {
    let tables = spec
        .split(',')
        .map(str::trim)
        .filter_map(|item| item.split_once(':'))
        .map(|(t, c)| TenantTable::new(t.trim(), c.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if tables.is_empty() {
        return Err(Error::Config("no tenant table given"));
    }
    Ok(tables)
}

/// The tenant predicate for `column`:
/// `"column" = NULLIF(current_setting('hisn.tenant_id', true), '')::uuid`.
pub fn tenant_predicate(column: &str) -> Result<String, Error> {
    check_ident(column)?;
    Ok(format!(
        "\"{column}\" = NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"
    ))
}

/// The migration that puts `tables` under row-level security for `app_role`
/// (a role that must not own the tables and must not have BYPASSRLS).
///
/// ```
/// let tables = hisn_tenant_guard::rls::parse_tables("assets:tenant_id").unwrap();
/// let sql = hisn_tenant_guard::rls::generate_sql(&tables, "hisn_app").unwrap();
/// assert!(sql.contains("FORCE ROW LEVEL SECURITY"));
/// assert!(sql.contains("AS RESTRICTIVE FOR ALL"));
/// assert!(!sql.contains("TRUNCATE"));
/// ```
pub fn generate_sql(tables: &[TenantTable], app_role: &str) -> Result<String, Error> {
    check_ident(app_role)?;
    if tables.is_empty() {
        return Err(Error::Config("no tenant table given"));
    }
    let mut out = String::new();
    for t in tables {
        let q = t.quoted();
        let pred = tenant_predicate(&t.column)?;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "-- {t}: tenant column {col}\n\
             ALTER TABLE {q} ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE {q} FORCE ROW LEVEL SECURITY;\n\
             DROP POLICY IF EXISTS \"{RESTRICTIVE_POLICY}\" ON {q};\n\
             CREATE POLICY \"{RESTRICTIVE_POLICY}\" ON {q} AS RESTRICTIVE FOR ALL TO PUBLIC\n    \
             USING ({pred})\n    WITH CHECK ({pred});\n\
             DROP POLICY IF EXISTS \"{PERMISSIVE_POLICY}\" ON {q};\n\
             CREATE POLICY \"{PERMISSIVE_POLICY}\" ON {q} AS PERMISSIVE FOR ALL TO \"{app_role}\"\n    \
             USING ({pred})\n    WITH CHECK ({pred});\n\
             REVOKE ALL ON {q} FROM \"{app_role}\";\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON {q} TO \"{app_role}\";\n\n",
            col = t.column,
        );
    }
    Ok(out)
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The tenant table does not exist (or is not visible).
    MissingTable {
        /// The table.
        table: String,
    },
    /// Row-level security is not enabled on the table.
    RlsDisabled {
        /// The table.
        table: String,
    },
    /// Row-level security is not FORCEd: the owner bypasses it.
    RlsNotForced {
        /// The table.
        table: String,
    },
    /// No restrictive policy for all commands, applying to the connected role,
    /// with the tenant predicate in both USING and WITH CHECK.
    MissingRestrictivePolicy {
        /// The table.
        table: String,
    },
    /// The connected role is a superuser (bypasses every policy).
    RoleIsSuperuser {
        /// The role.
        role: String,
    },
    /// The connected role has BYPASSRLS.
    RoleBypassesRls {
        /// The role.
        role: String,
    },
    /// The connected role owns (or is a member of the owner of) a tenant
    /// table: it can disable RLS or drop the policies.
    RoleOwnsTable {
        /// The role.
        role: String,
        /// The table.
        table: String,
    },
    /// The connected role holds `TRUNCATE` on a tenant table; `TRUNCATE` is
    /// not subject to row-level security and empties every tenant's rows.
    RoleCanTruncate {
        /// The role.
        role: String,
        /// The table.
        table: String,
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
            Self::MissingRestrictivePolicy { table } => {
                write!(
                    f,
                    "{table}: no restrictive tenant policy for all commands with USING and WITH CHECK"
                )
            }
            Self::RoleIsSuperuser { role } => write!(f, "role {role} is a superuser"),
            Self::RoleBypassesRls { role } => write!(f, "role {role} has BYPASSRLS"),
            Self::RoleOwnsTable { role, table } => {
                write!(f, "role {role} owns tenant table {table}")
            }
            Self::RoleCanTruncate { role, table } => {
                write!(
                    f,
                    "role {role} may TRUNCATE tenant table {table} (not filtered by RLS)"
                )
            }
        }
    }
}

/// What `verify` found; empty means the configuration is sound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RlsReport {
    /// Every finding, tables in the order given, then the role.
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

/// Normalise a policy expression as `pg_get_expr` prints it, so that the
/// predicate can be compared exactly: lower-case, no whitespace, no
/// parentheses, no `::text` casts, no quotes around identifiers.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn normalise_expr(expr: &str) -> String {
    let s: String = expr
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')' && *c != '"')
        .collect::<String>()
        .to_lowercase();
    s.replace("::text", "")
}

/// Whether `expr` is exactly the tenant predicate for `column`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn is_tenant_predicate(expr: &str, column: &str) -> bool {
    normalise_expr(expr)
        == format!("{column}=nullifcurrent_setting'{TENANT_SETTING}',true,''::uuid")
}

#[cfg(feature = "postgres")]
pub use self::pg::verify;

#[cfg(feature = "postgres")]
mod pg {
    use sqlx::PgPool;

    use super::{Finding, RlsReport, TenantTable, is_tenant_predicate};
    use crate::Error;

    /// Inspect the catalog as the role `pool` connects with and list every
    /// finding for `tables`. Call it at start-up with the application pool and
    /// refuse to serve unless [`RlsReport::is_clean`].
    pub async fn verify(pool: &PgPool, tables: &[TenantTable]) -> Result<RlsReport, Error> {
        let mut conn = pool.acquire().await?;
        let mut findings = Vec::new();
        let mut owned = Vec::new();
        let mut truncatable = Vec::new();
        let (role, superuser, bypass): (String, bool, bool) =
            sqlx::query_as("select current_user::text, rolsuper, rolbypassrls from pg_roles where rolname = current_user")
                .fetch_one(&mut *conn)
                .await?;
        for t in tables {
            let display = t.to_string();
            let row: Option<(i64, bool, bool, bool, bool)> = sqlx::query_as(
                "select c.oid::int8, c.relrowsecurity, c.relforcerowsecurity, \
                        pg_has_role(current_user, c.relowner, 'MEMBER'), \
                        has_table_privilege(current_user, c.oid, 'TRUNCATE') \
                 from pg_class c where c.oid = to_regclass($1)",
            )
            .bind(t.quoted())
            .fetch_optional(&mut *conn)
            .await?;
            let Some((oid, enabled, forced, owner, truncate)) = row else {
                findings.push(Finding::MissingTable { table: display });
                continue;
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
            let policies: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                "select pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
                 from pg_policy p \
                 where p.polrelid = $1::int8::oid and not p.polpermissive and p.polcmd = '*' \
                   and (0::oid = any(p.polroles) \
                        or exists (select 1 from unnest(p.polroles) r where pg_has_role(current_user, r, 'MEMBER')))",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await?;
            let sound = policies.iter().any(|(using, check)| {
                using
                    .as_deref()
                    .is_some_and(|u| is_tenant_predicate(u, t.column()))
                    && check
                        .as_deref()
                        .is_some_and(|c| is_tenant_predicate(c, t.column()))
            });
            if !sound {
                findings.push(Finding::MissingRestrictivePolicy {
                    table: display.clone(),
                });
            }
            if truncate {
                truncatable.push(display.clone());
            }
            if owner {
                owned.push(display);
            }
        }
        if superuser {
            findings.push(Finding::RoleIsSuperuser { role: role.clone() });
        }
        if bypass {
            findings.push(Finding::RoleBypassesRls { role: role.clone() });
        }
        for table in owned {
            findings.push(Finding::RoleOwnsTable {
                role: role.clone(),
                table,
            });
        }
        for table in truncatable {
            findings.push(Finding::RoleCanTruncate {
                role: role.clone(),
                table,
            });
        }
        Ok(RlsReport { findings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table_spec() {
        let t = parse_tables("assets:tenant_id, app.work_orders:org_id").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].to_string(), "app.work_orders");
        assert_eq!(t[1].column(), "org_id");
        assert_eq!(
            parse_tables("countries, assets:tenant_id").unwrap().len(),
            1
        );
        for bad in [
            "",
            "assets",
            "assets:",
            "Assets:tenant_id",
            "a;drop table x:tenant_id",
            "assets:tenant id",
            "a.b.c:t",
        ] {
            assert!(parse_tables(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_sql_has_every_part() {
        let sql = generate_sql(&parse_tables("assets:tenant_id").unwrap(), "app").unwrap();
        for part in [
            "ALTER TABLE \"assets\" ENABLE ROW LEVEL SECURITY;",
            "ALTER TABLE \"assets\" FORCE ROW LEVEL SECURITY;",
            "AS RESTRICTIVE FOR ALL TO PUBLIC",
            "AS PERMISSIVE FOR ALL TO \"app\"",
            "WITH CHECK (\"tenant_id\" = NULLIF(current_setting('hisn.tenant_id', true), '')::uuid)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON \"assets\" TO \"app\";",
        ] {
            assert!(sql.contains(part), "missing {part} in {sql}");
        }
        assert!(!sql.contains("TRUNCATE"));
        assert!(generate_sql(&[], "app").is_err());
        assert!(generate_sql(&parse_tables("assets:tenant_id").unwrap(), "App\"; --").is_err());
    }

    #[test]
    fn predicate_matching_is_exact() {
        let pg =
            "(tenant_id = (NULLIF(current_setting('hisn.tenant_id'::text, true), ''::text))::uuid)";
        assert!(is_tenant_predicate(pg, "tenant_id"));
        assert!(!is_tenant_predicate(pg, "org_id"));
        assert!(!is_tenant_predicate(&format!("{pg} OR true"), "tenant_id"));
        assert!(!is_tenant_predicate("true", "tenant_id"));
        assert!(RlsReport::default().ensure_clean().is_ok());
        let r = RlsReport {
            findings: vec![Finding::RlsDisabled { table: "a".into() }],
        };
        assert!(matches!(r.ensure_clean(), Err(Error::RlsMisconfigured(1))));
    }
}
