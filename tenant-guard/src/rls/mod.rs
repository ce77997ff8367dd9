//! Layer 3: PostgreSQL row-level security for the tenant tables, keyed on a
//! tenant context that SQL cannot forge.
//!
//! [`generate_sql`] writes the migration:
//!
//! - **The tenant context.** A key table `public.hisn_tenant_guard_context_key`
//!   (no privilege for anyone but its owner, RLS enabled without policies as a
//!   second lock) holding the [`ContextKey`], and the function
//!   `public.hisn_tenant_guard_current_tenant()`: `SECURITY DEFINER`, `STABLE`,
//!   `search_path` pinned to `pg_catalog, pg_temp`, executable by the
//!   application role only. It reads the transaction-local setting
//!   [`CONTEXT_SETTING`], verifies the token's HMAC with the key (see
//!   [`key`](self::ContextKey) for the format) and its expiry against `now()`,
//!   and returns the tenant, or NULL for anything else. The application role
//!   can set that setting to any text (`set_config`, `SET`, `RESET`), but
//!   cannot read the key, so it can only produce a token that verifies to
//!   NULL (no rows, every write refused) or replay a token it was handed: its
//!   own tenant's.
//! - **Per tenant table**: `ENABLE` and `FORCE ROW LEVEL SECURITY` (FORCE so
//!   that the table owner is filtered too), an `AS RESTRICTIVE` policy for all
//!   commands and every role whose `USING` and `WITH CHECK` are the
//!   [`tenant_predicate`] `tenant_id = (SELECT public.hisn_tenant_guard_current_tenant())`
//!   (the sub-select makes it an init-plan: verified once per statement, not
//!   per row), a permissive policy for the application role (a restrictive
//!   policy alone grants nothing) and the grants the role needs, without
//!   `TRUNCATE` (which RLS does not filter).
//!
//! - **Two-level tenancy and role gates** (tables from
//!   [`tables_from_registry`]): a restrictive client policy and per-command
//!   role-gate policies reading the session's client grants and roles from a
//!   second signed, transaction-local setting, [`SCOPE_SETTING`] (see the
//!   `scope` module docs in the source: token format and functions).
//!
//! `verify` (feature `postgres`) inspects the catalog at start-up and lists
//! every [`Finding`]; see its variants for what is checked and how to fix it.
//!
//! Traps the generated SQL does not cover: unique constraints and foreign keys
//! are checked across tenants (a duplicate-key error reveals that another
//! tenant holds the key); make them composite, `UNIQUE (tenant_id, id)` and
//! `FOREIGN KEY (tenant_id, asset_id) REFERENCES assets (tenant_id, id)`.
//! The output contains the context key: treat it as a secret.

use std::fmt;
use std::fmt::Write as _;

use crate::Error;

mod declared;
mod finding;
mod key;
mod scope;
#[cfg(feature = "postgres")]
mod side_doors;
#[cfg(feature = "postgres")]
mod verify;

pub use declared::VerifyOptions;
pub use finding::{Finding, RlsReport};
pub use key::{CONTEXT_KEY_LEN, ContextKey};
#[cfg(feature = "postgres")]
pub(crate) use scope::scope_token;
pub use scope::{
    CLIENT_POLICY, CLIENTS_FUNCTION, ROLE_POLICY_PREFIX, ROLES_FUNCTION, SCOPE_FUNCTION,
    SCOPE_SETTING, client_predicate, role_predicate,
};
#[cfg(feature = "postgres")]
pub(crate) use side_doors::SEARCH_PATH_WRITERS;
#[cfg(feature = "postgres")]
pub use verify::{verify, verify_with};

/// The transaction-local PostgreSQL setting that carries the signed tenant
/// context token of the current transaction.
pub const CONTEXT_SETTING: &str = "hisn.tenant_context";
/// The `SECURITY DEFINER` function the policies call (schema `public`).
pub const CONTEXT_FUNCTION: &str = "hisn_tenant_guard_current_tenant";
/// The table holding the context key (schema `public`, unreadable by the
/// application role).
pub const CONTEXT_KEY_TABLE: &str = "hisn_tenant_guard_context_key";
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

/// A tenant table (optionally `schema.table`), its tenant column and, for
/// two-level tenancy and role gates, its client column, the
/// organisation-wide roles and its role gates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantTable {
    schema: Option<String>,
    name: String,
    column: String,
    client: Option<String>,
    org_wide: Vec<String>,
    /// `(read roles, write roles)` per gate.
    gates: Vec<(Vec<String>, Vec<String>)>,
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
            client: None,
            org_wide: Vec::new(),
            gates: Vec::new(),
        })
    }

    /// Scope the table by `client` too (two-level tenancy): the generated
    /// SQL adds a restrictive policy filtering on the session's client
    /// grants ([`client_predicate`]), and `verify` requires it.
    pub fn with_client_column(mut self, client: &str) -> Result<Self, Error> {
        check_ident(client)?;
        if client == self.column {
            return Err(Error::Config(
                "the client column must differ from the tenant column",
            ));
        }
        self.client = Some(client.to_owned());
        Ok(self)
    }

    /// Roles that see every client of their organisation in this table.
    pub fn with_org_wide_roles(
        mut self,
        roles: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, Error> {
        for r in roles {
            self.org_wide
                .push(crate::Role::new(r.as_ref())?.as_str().to_owned());
        }
        self.org_wide.sort();
        self.org_wide.dedup();
        Ok(self)
    }

    /// A role gate: reading needs one of `read` (or of `write`), writing one
    /// of `write`. At most two gates per table (its own and its schema's).
    pub fn with_role_gate(
        mut self,
        read: impl IntoIterator<Item = impl AsRef<str>>,
        write: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, Error> {
        let parse = |it: &mut dyn Iterator<Item = String>| -> Result<Vec<String>, Error> {
            let mut v = it
                .map(|r| crate::Role::new(&r).map(|r| r.as_str().to_owned()))
                .collect::<Result<Vec<_>, _>>()?;
            v.sort();
            v.dedup();
            Ok(v)
        };
        let write = parse(&mut write.into_iter().map(|r| r.as_ref().to_owned()))?;
        let mut read = parse(&mut read.into_iter().map(|r| r.as_ref().to_owned()))?;
        read.extend(write.iter().cloned());
        read.sort();
        read.dedup();
        if read.is_empty() {
            return Err(Error::Config("a role gate needs at least one role"));
        }
        self.gates.push((read, write));
        Ok(self)
    }

    /// The client column, for a client-scoped table.
    pub fn client_column(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The organisation-wide roles (sorted).
    pub fn org_wide_roles(&self) -> &[String] {
        &self.org_wide
    }

    /// The role gates: `(read roles, write roles)`, each sorted.
    pub fn role_gates(&self) -> &[(Vec<String>, Vec<String>)] {
        &self.gates
    }

    /// The table's name (without schema).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Whether the table needs the session scope functions.
    fn needs_scope(&self) -> bool {
        self.client.is_some() || !self.gates.is_empty()
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

/// Split at commas outside parentheses (the guard's spec allows column lists:
/// `assets:tenant_id(id,name)`).
fn split_entries(spec: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0_usize, 0_usize);
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth = depth.saturating_add(1),
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(spec.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(spec.get(start..).unwrap_or_default().trim());
    out
}

/// Parse `table:column,table:column:client_column` (the CLI's `--tables`,
/// the same format as [`TableRegistry::parse_spec`](crate::guard::TableRegistry::parse_spec)).
/// Entries without `:column` name shared tables, which have no RLS, and are
/// skipped; a column list in parentheses (`assets:tenant_id(id,name)`) is
/// ignored here; at least one tenant table is required. Organisation-wide
/// roles and role gates are not part of this format: build the tables with
/// [`tables_from_registry`] to carry them.
pub fn parse_tables(spec: &str) -> Result<Vec<TenantTable>, Error> {
    let tables = split_entries(spec)
        .into_iter()
        .map(|item| item.split_once('(').map_or(item, |(head, _)| head).trim())
        .filter_map(|item| item.split_once(':'))
        .map(|(t, c)| match c.split_once(':') {
            Some((c, client)) => {
                TenantTable::new(t.trim(), c.trim())?.with_client_column(client.trim())
            }
            None => TenantTable::new(t.trim(), c.trim()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if tables.is_empty() {
        return Err(Error::Config("no tenant table given"));
    }
    Ok(tables)
}

/// The tenant tables of `registry` with everything the guard enforces on
/// them: client columns, the organisation-wide roles (on client-scoped
/// tables) and role gates, so that the generated RLS and the guard state the
/// same rule. [`Error::Config`] when no tenant table is registered or a name
/// does not fit the RLS identifier rules.
pub fn tables_from_registry(
    registry: &crate::guard::TableRegistry,
) -> Result<Vec<TenantTable>, Error> {
    let mut out = Vec::new();
    for (name, column) in registry.tenant_tables() {
        let mut t = TenantTable::new(name, column)?;
        if let Some(client) = registry.client_column(name) {
            t = t
                .with_client_column(client)?
                .with_org_wide_roles(registry.org_wide())?;
        }
        for gate in registry.role_gates(name) {
            t = t.with_role_gate(gate.read_roles(), gate.write_roles())?;
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err(Error::Config("no tenant table given"));
    }
    Ok(out)
}

/// The tenant predicate for `column`:
/// `"column" = (SELECT public.hisn_tenant_guard_current_tenant())`.
pub fn tenant_predicate(column: &str) -> Result<String, Error> {
    check_ident(column)?;
    Ok(format!(
        "\"{column}\" = (SELECT public.{CONTEXT_FUNCTION}())"
    ))
}

/// The key table, the verifying function and their privileges.
fn context_sql(out: &mut String, app_role: &str, key: &ContextKey) {
    let (ikey, okey) = key.padded_hex();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "-- Tenant context: the policies trust only tokens signed with this key.\n\
         -- This script contains the context key: keep it secret.\n\
         CREATE TABLE IF NOT EXISTS public.{CONTEXT_KEY_TABLE} (\n    \
         id int PRIMARY KEY CHECK (id = 1),\n    \
         ikey bytea NOT NULL CHECK (length(ikey) = 64),\n    \
         okey bytea NOT NULL CHECK (length(okey) = 64)\n);\n\
         -- Refuse a key table another role created first (it could carry a trigger that copies the key).\n\
         DO $hisn_check$ BEGIN\n    \
         IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = 'public.{CONTEXT_KEY_TABLE}'::regclass\n        \
         AND (c.relowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)\n             \
         OR c.relhastriggers OR c.relhasrules)) THEN\n        \
         RAISE EXCEPTION 'public.{CONTEXT_KEY_TABLE} belongs to another role or has triggers or rules: drop it, then run this again';\n    \
         END IF;\n\
         END $hisn_check$;\n\
         REVOKE ALL ON public.{CONTEXT_KEY_TABLE} FROM PUBLIC;\n\
         REVOKE ALL ON public.{CONTEXT_KEY_TABLE} FROM \"{app_role}\";\n\
         -- RLS without a policy: even a role granted SELECT by mistake reads nothing.\n\
         ALTER TABLE public.{CONTEXT_KEY_TABLE} ENABLE ROW LEVEL SECURITY;\n\
         INSERT INTO public.{CONTEXT_KEY_TABLE} (id, ikey, okey)\n    \
         VALUES (1, '\\x{ikey}'::bytea, '\\x{okey}'::bytea)\n    \
         ON CONFLICT (id) DO UPDATE SET ikey = EXCLUDED.ikey, okey = EXCLUDED.okey;\n\
         CREATE OR REPLACE FUNCTION public.{CONTEXT_FUNCTION}() RETURNS uuid\n\
         LANGUAGE plpgsql STABLE SECURITY DEFINER\n\
         SET search_path = pg_catalog, pg_temp\n\
         AS $hisn_fn$\n{body}$hisn_fn$;\n\
         ALTER FUNCTION public.{CONTEXT_FUNCTION}() OWNER TO CURRENT_USER;\n\
         REVOKE ALL ON FUNCTION public.{CONTEXT_FUNCTION}() FROM PUBLIC;\n\
         GRANT EXECUTE ON FUNCTION public.{CONTEXT_FUNCTION}() TO \"{app_role}\";\n\n",
        ikey = ikey.as_str(),
        okey = okey.as_str(),
        body = context_function_body(),
    );
}

/// The body of the context function (between the dollar quotes); `verify`
/// compares the installed function's source with it.
///
/// It runs once per statement, and its first run in each transaction pays
/// for setting up every expression again (plpgsql prepares its expressions
/// per transaction), so it is written as few expressions as possible: no
/// per-character scan, no array split, the key read by a sequential scan of
/// its one-row table. A valid token is exactly `<message>.<hex MAC>` with the
/// MAC over `hisn_tenant_guard.<message>` (the same bytes as
/// `hisn_tenant_guard.v1.<tenant>.<expiry>`), so the whole token is compared
/// with the one rebuilt from its message (as keyed hashes, so that the time a
/// mismatch takes says nothing about the expected MAC); anything else reads
/// NULL. Tenant and expiry are parsed only from a token whose MAC verified.
fn context_function_body() -> String {
    format!(
        "DECLARE\n    \
         tok text := current_setting('{CONTEXT_SETTING}', true);\n    \
         ik bytea;\n    \
         ok bytea;\n\
         BEGIN\n    \
         IF tok IS NULL OR octet_length(tok) > 200 OR left(tok, 3) <> 'v1.' THEN RETURN NULL; END IF;\n    \
         -- One row at most (primary key, CHECK (id = 1)); no row leaves the keys NULL: NULL below.\n    \
         SELECT c.ikey, c.okey INTO ik, ok FROM public.{CONTEXT_KEY_TABLE} c;\n    \
         -- Nested CASE: tenant and expiry are parsed only once the MAC has verified.\n    \
         -- now() is the transaction's start: a token must be unexpired when it begins.\n    \
         RETURN CASE WHEN sha256(ik || convert_to(tok, 'UTF8'))\n        \
         = sha256(ik || convert_to(left(tok, -65) || '.' || encode(sha256(ok || sha256(ik\n            \
         || convert_to('hisn_tenant_guard.' || left(tok, -65), 'UTF8'))), 'hex'), 'UTF8'))\n        \
         THEN CASE WHEN split_part(tok, '.', 3)::bigint > extract(epoch FROM now())\n            \
         THEN split_part(tok, '.', 2)::uuid END END;\n\
         END\n"
    )
}

/// The migration that puts `tables` under row-level security for `app_role`
/// (a role that must not own the tables and must not have BYPASSRLS), with
/// tenant context tokens signed by `key`. Run it as the tables' owner (not as
/// a superuser, see [`Finding::TableOwnerBypassesRls`]); it is idempotent, and
/// running it again with another key rotates the key (transactions that began
/// before see no rows).
///
/// ```
/// use hisn_tenant_guard::rls::{self, ContextKey};
/// let tables = rls::parse_tables("assets:tenant_id").unwrap();
/// let sql = rls::generate_sql(&tables, "hisn_app", &ContextKey::from_bytes([7; 32])).unwrap();
/// assert!(sql.contains("FORCE ROW LEVEL SECURITY"));
/// assert!(sql.contains("AS RESTRICTIVE FOR ALL"));
/// assert!(sql.contains("SECURITY DEFINER"));
/// assert!(!sql.contains("TRUNCATE"));
/// ```
pub fn generate_sql(
    tables: &[TenantTable],
    app_role: &str,
    key: &ContextKey,
) -> Result<String, Error> {
    check_ident(app_role)?;
    if tables.is_empty() {
        return Err(Error::Config("no tenant table given"));
    }
    let mut out = String::new();
    context_sql(&mut out, app_role, key);
    if tables.iter().any(TenantTable::needs_scope) {
        scope::scope_sql(&mut out, app_role);
    }
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
             GRANT SELECT, INSERT, UPDATE, DELETE ON {q} TO \"{app_role}\";\n",
            col = t.column,
        );
        scope::table_policies(&mut out, t)?;
    }
    Ok(out)
}

/// Normalise a policy expression as `pg_get_expr` prints it, so that the
/// predicate can be compared exactly: lower-case, no whitespace, no
/// parentheses, no quotes around identifiers, no `public.` qualification.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn normalise_expr(expr: &str) -> String {
    let s: String = expr
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')' && *c != '"')
        .collect::<String>()
        .to_lowercase();
    s.replace("public.", "")
}

/// Whether `expr` is exactly the tenant predicate for `column`, as
/// `pg_get_expr` prints it (`(tenant_id = ( SELECT f() AS f))`).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn is_tenant_predicate(expr: &str, column: &str) -> bool {
    normalise_expr(expr) == format!("{column}=select{CONTEXT_FUNCTION}as{CONTEXT_FUNCTION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ContextKey {
        ContextKey::from_bytes([7; 32])
    }

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
        let t = parse_tables("countries(code,name), assets:tenant_id(id, name),w:t").unwrap();
        assert_eq!(
            t.iter().map(|t| (t.name(), t.column())).collect::<Vec<_>>(),
            [("assets", "tenant_id"), ("w", "t")]
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
        let sql = generate_sql(&parse_tables("assets:tenant_id").unwrap(), "app", &key()).unwrap();
        for part in [
            "ALTER TABLE \"assets\" ENABLE ROW LEVEL SECURITY;",
            "ALTER TABLE \"assets\" FORCE ROW LEVEL SECURITY;",
            "AS RESTRICTIVE FOR ALL TO PUBLIC",
            "AS PERMISSIVE FOR ALL TO \"app\"",
            "WITH CHECK (\"tenant_id\" = (SELECT public.hisn_tenant_guard_current_tenant()))",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON \"assets\" TO \"app\";",
            "LANGUAGE plpgsql STABLE SECURITY DEFINER",
            "SET search_path = pg_catalog, pg_temp",
            "REVOKE ALL ON public.hisn_tenant_guard_context_key FROM PUBLIC;",
            "REVOKE ALL ON FUNCTION public.hisn_tenant_guard_current_tenant() FROM PUBLIC;",
            "current_setting('hisn.tenant_context', true)",
        ] {
            assert!(sql.contains(part), "missing {part} in {sql}");
        }
        let (ikey, okey) = key().padded_hex();
        assert!(sql.contains(ikey.as_str()) && sql.contains(okey.as_str()));
        assert!(!sql.contains("TRUNCATE"));
        assert!(generate_sql(&[], "app", &key()).is_err());
        assert!(
            generate_sql(
                &parse_tables("assets:tenant_id").unwrap(),
                "App\"; --",
                &key()
            )
            .is_err()
        );
    }

    #[test]
    fn predicate_matching_is_exact() {
        let pg = "(tenant_id = ( SELECT hisn_tenant_guard_current_tenant() AS hisn_tenant_guard_current_tenant))";
        assert!(is_tenant_predicate(pg, "tenant_id"));
        assert!(is_tenant_predicate(
            &pg.replace("SELECT h", "SELECT public.h"),
            "tenant_id"
        ));
        assert!(!is_tenant_predicate(pg, "org_id"));
        assert!(!is_tenant_predicate(&format!("{pg} OR true"), "tenant_id"));
        assert!(!is_tenant_predicate("true", "tenant_id"));
        assert!(RlsReport::default().ensure_clean().is_ok());
        let r = RlsReport {
            findings: vec![Finding::RlsDisabled { table: "a".into() }],
        };
        assert!(matches!(r.ensure_clean(), Err(Error::RlsMisconfigured(1))));
    }

    #[test]
    fn registry_declarations_reach_the_generated_policies() {
        use crate::guard::TableRegistry;
        let registry =
            TableRegistry::parse_spec("ledger:org_id:client_id,hr.pay:org_id,plain:org_id")
                .unwrap()
                .parse_role_gates("hr.*=hr_viewer/hr_admin")
                .unwrap()
                .org_wide_roles(["firm_admin"])
                .unwrap();
        let tables = tables_from_registry(&registry).unwrap();
        assert_eq!(tables.len(), 3);
        let sql = generate_sql(&tables, "app", &key()).unwrap();
        for part in [
            "CREATE OR REPLACE FUNCTION public.hisn_tenant_guard_current_scope() RETURNS text[]",
            "GRANT EXECUTE ON FUNCTION public.hisn_tenant_guard_current_clients() TO \"app\";",
            "CREATE POLICY \"hisn_client_isolation\" ON \"ledger\" AS RESTRICTIVE FOR ALL TO PUBLIC",
            "CREATE POLICY \"hisn_role_gate_select_0\" ON \"hr\".\"pay\" AS RESTRICTIVE FOR SELECT TO PUBLIC",
            "CREATE POLICY \"hisn_role_gate_delete_0\" ON \"hr\".\"pay\" AS RESTRICTIVE FOR DELETE TO PUBLIC \
             USING ((SELECT public.hisn_tenant_guard_current_roles()) && ARRAY['hr_admin']::text[]);",
        ] {
            assert!(sql.contains(part), "missing {part}");
        }
        // Only the client-scoped table gets the client policy; no gate elsewhere.
        assert_eq!(
            sql.matches("CREATE POLICY \"hisn_client_isolation\"")
                .count(),
            1
        );
        assert_eq!(
            sql.matches("CREATE POLICY \"hisn_role_gate_select_")
                .count(),
            1
        );
        // Without client tables or gates, no scope functions at all.
        let plain = generate_sql(&parse_tables("plain:org_id").unwrap(), "app", &key()).unwrap();
        assert!(!plain.contains("hisn_tenant_guard_current_scope"));
        assert!(!plain.contains("CREATE POLICY \"hisn_client_isolation\""));
        // The CLI spec form carries the client column.
        let t = parse_tables("ledger:org_id:client_id").unwrap();
        assert_eq!(t[0].client_column(), Some("client_id"));
        assert!(parse_tables("ledger:org_id:org_id").is_err());
        assert!(parse_tables("ledger:org_id:Client").is_err());
    }

    /// `split_entries` splits only at commas outside parentheses, so a column
    /// list stays with its table; `parse_tables` then ignores the list whole,
    /// even text in it that would read as `table:column`.
    #[test]
    fn column_lists_stay_with_their_table_and_are_ignored() {
        assert_eq!(
            split_entries("a(b,c), d:t ,e(f,(g,h)),i"),
            ["a(b,c)", "d:t", "e(f,(g,h))", "i"]
        );
        assert_eq!(split_entries("a"), ["a"]);
        let t = parse_tables("assets:tenant_id(id, owner:org_id), w:t").unwrap();
        assert_eq!(
            t.iter()
                .map(|t| (t.to_string(), t.column(), t.client_column()))
                .collect::<Vec<_>>(),
            [
                ("assets".to_owned(), "tenant_id", None),
                ("w".to_owned(), "t", None)
            ]
        );
    }

    /// The registry's organisation-wide roles reach the client policy of a
    /// client-scoped table, exactly those roles (sorted); without them the
    /// client policy grants no role every client.
    #[test]
    fn org_wide_roles_reach_the_client_policy() {
        use crate::guard::TableRegistry;
        let registry = TableRegistry::parse_spec("ledger:org_id:client_id")
            .unwrap()
            .org_wide_roles(["firm_admin", "auditor"])
            .unwrap();
        let tables = tables_from_registry(&registry).unwrap();
        assert_eq!(tables[0].org_wide_roles(), ["auditor", "firm_admin"]);
        let clients =
            "\"client_id\" = ANY ((SELECT public.hisn_tenant_guard_current_clients())::uuid[])";
        let org = format!(
            "((SELECT public.hisn_tenant_guard_current_roles()) && \
             ARRAY['auditor', 'firm_admin']::text[]) OR ({clients})"
        );
        let sql = generate_sql(&tables, "app", &key()).unwrap();
        assert!(
            sql.contains(&format!(
                "CREATE POLICY \"hisn_client_isolation\" ON \"ledger\" AS RESTRICTIVE FOR ALL TO PUBLIC\n    \
                 USING ({org})\n    WITH CHECK ({org});"
            )),
            "{sql}"
        );
        let plain = parse_tables("ledger:org_id:client_id").unwrap();
        assert!(plain[0].org_wide_roles().is_empty());
        let sql = generate_sql(&plain, "app", &key()).unwrap();
        assert!(
            sql.contains(&format!("USING ({clients})\n    WITH CHECK ({clients});")),
            "{sql}"
        );
        assert!(!sql.contains("&& ARRAY["), "{sql}");
    }
}
