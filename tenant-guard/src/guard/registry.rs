//! The registry of tables the guard knows: tenant tables (with their tenant
//! column and, for two-level tenancy, their client column), shared tables,
//! role gates and the organisation-wide roles.

use std::collections::{BTreeMap, BTreeSet};

use super::GuardError;

/// How the guard treats a registered table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableKind {
    /// Every reference gets `<ref>.<column> = <tenant>`; writes set the column.
    Tenant {
        /// The tenant column, normalised (ASCII lowercase).
        column: String,
        /// The client column (second tenancy level), normalised, if any.
        client: Option<String>,
    },
    /// Readable by every tenant without a predicate; never writable.
    Shared,
}

/// One registered table: its kind and, once known, its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) kind: TableKind,
    /// The table's columns as the database names them (exact spelling), or
    /// `None` while unknown. See [`TableRegistry::set_columns`] for what the
    /// guard allows without a column list.
    pub(crate) columns: Option<BTreeSet<String>>,
}

/// The roles a role-gated table or schema requires: a statement that reads it
/// needs one of [`read_roles`](Self::read_roles), one that writes it one of
/// [`write_roles`](Self::write_roles). A role that may write may also read
/// (the read set includes the write set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGate {
    read: BTreeSet<String>,
    write: BTreeSet<String>,
}

impl RoleGate {
    /// The roles that may read (sorted; every write role included).
    pub fn read_roles(&self) -> impl Iterator<Item = &str> + '_ {
        self.read.iter().map(String::as_str)
    }

    /// The roles that may write (sorted; may be empty: nobody writes).
    pub fn write_roles(&self) -> impl Iterator<Item = &str> + '_ {
        self.write.iter().map(String::as_str)
    }

    pub(crate) fn roles(&self, write: bool) -> &BTreeSet<String> {
        if write { &self.write } else { &self.read }
    }
}

/// The tables the guard knows, built once at start-up.
///
/// Names are SQL identifiers compared case-insensitively (ASCII), the way
/// PostgreSQL folds unquoted identifiers and SQLite compares all identifiers. A
/// name may carry a schema (`billing.invoices`); an unqualified name also matches
/// references qualified with the dialect's default schema (`public` on
/// PostgreSQL, `main` on SQLite), never another schema. Any table that is not
/// registered is refused ([`GuardError::UnknownTable`]).
///
/// **Columns.** On PostgreSQL `x.f` is a call `f(x)` when `f` is not a column
/// of `x`, so the guard only lets a qualified name through when it knows the
/// name is a column. Give every table its columns ([`Self::set_columns`],
/// [`Self::with_columns`], or `table:tenant_col(c1,c2)` in
/// [`Self::parse_spec`]); a pool can load them from the catalog at start-up
/// (iterate [`Self::tables`]).
///
/// ```
/// use hisn_tenant_guard::guard::TableRegistry;
///
/// let registry = TableRegistry::new()
///     .tenant_table("assets", "tenant_id")
///     .with_columns("assets", ["id", "tenant_id", "name"])?
///     .tenant_table("work_orders", "tenant_id")
///     .shared_table("countries");
/// assert_eq!(registry.len(), 3);
/// assert_eq!(registry.tables().collect::<Vec<_>>(), ["assets", "countries", "work_orders"]);
/// # Ok::<(), hisn_tenant_guard::guard::GuardError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableRegistry {
    tables: BTreeMap<String, Table>,
    /// Role gates on tables (normalised table name).
    table_gates: BTreeMap<String, RoleGate>,
    /// Role gates on schemas (normalised schema name).
    schema_gates: BTreeMap<String, RoleGate>,
    /// Roles that see every client of their organisation.
    org_wide: BTreeSet<String>,
}

impl TableRegistry {
    /// An empty registry (every table is unknown, so every statement that
    /// touches a table is refused until tables are registered).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `table` as tenant-scoped by `tenant_column`. A later
    /// registration of the same name replaces the earlier one (and forgets its
    /// columns).
    #[must_use]
    pub fn tenant_table(mut self, table: &str, tenant_column: &str) -> Self {
        self.tables.insert(
            normalise(table),
            Table {
                kind: TableKind::Tenant {
                    column: normalise(tenant_column),
                    client: None,
                },
                columns: None,
            },
        );
        self
    }

    /// Registers `table` as scoped by `tenant_column` (the organisation) and
    /// `client_column` (the client inside it): two-level tenancy. Besides the
    /// tenant predicate, every reference gets
    /// `<ref>.<client column> = ANY(<the session's granted clients>)`
    /// (PostgreSQL; SQLite: `IN (SELECT value FROM json_each(..))`), bound as
    /// a parameter, unless the session holds an organisation-wide role
    /// ([`Self::org_wide_roles`]); `INSERT` gets the session's active client;
    /// `UPDATE` of the client column is refused. A session without client
    /// grants reads no row of the table. A later registration of the same
    /// name replaces the earlier one (and forgets its columns).
    #[must_use]
    pub fn client_table(mut self, table: &str, tenant_column: &str, client_column: &str) -> Self {
        self.tables.insert(
            normalise(table),
            Table {
                kind: TableKind::Tenant {
                    column: normalise(tenant_column),
                    client: Some(normalise(client_column)),
                },
                columns: None,
            },
        );
        self
    }

    /// Declares roles that see (and may write) every client of their
    /// organisation in client-scoped tables (a firm's administrator, say):
    /// a session holding one gets no client predicate, only the tenant one.
    /// Adds to the roles declared before. Role names follow
    /// [`Role::new`](crate::Role::new) ([`GuardError::InvalidRegistry`]
    /// otherwise).
    pub fn org_wide_roles(
        mut self,
        roles: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, GuardError> {
        for role in roles {
            self.org_wide.insert(role_name(role.as_ref())?);
        }
        Ok(self)
    }

    /// Requires one of `read` (or one of `write`) to read the registered
    /// tenant table `table`, and one of `write` to write it (`INSERT`,
    /// `UPDATE`, `DELETE`). The guard refuses other sessions'
    /// statements ([`GuardError::RoleRequired`]) and the generated RLS
    /// enforces the same rule. Replaces an earlier gate of the table.
    ///
    /// Errors ([`GuardError::InvalidRegistry`]): `table` is not a registered
    /// tenant table (shared tables have no RLS to back the gate), no role is
    /// given, or a role name is invalid.
    pub fn role_gate(
        mut self,
        table: &str,
        read: impl IntoIterator<Item = impl AsRef<str>>,
        write: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, GuardError> {
        let key = normalise(table);
        if !matches!(
            self.tables.get(&key).map(|t| &t.kind),
            Some(TableKind::Tenant { .. })
        ) {
            return Err(GuardError::InvalidRegistry(format!(
                "role gate on `{table}`, which is not a registered tenant table"
            )));
        }
        let gate = gate(read, write)?;
        self.table_gates.insert(key, gate);
        Ok(self)
    }

    /// [`Self::role_gate`] for every table of `schema` (`hr`): a table
    /// `hr.x` needs a role of this gate *and* of its own gate, if any.
    /// Unqualified tables are in the default schema (`public`, `main`).
    /// Register every table of the schema first: the guard refuses the
    /// others, and RLS is generated only for registered tables.
    ///
    /// Errors ([`GuardError::InvalidRegistry`]): an invalid schema name, no
    /// role, an invalid role name, or a schema with no registered table —
    /// a gate on a misspelt schema (`hrr.*` for `hr.*`) would gate nothing
    /// in either layer, so it is refused rather than accepted silently.
    pub fn schema_role_gate(
        mut self,
        schema: &str,
        read: impl IntoIterator<Item = impl AsRef<str>>,
        write: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, GuardError> {
        if !valid_identifier(schema.trim()) {
            return Err(GuardError::InvalidRegistry(format!(
                "invalid schema name `{schema}`"
            )));
        }
        let key = normalise(schema);
        let default_schema = key == "public" || key == "main";
        let has_table = self.tables.keys().any(|t| match t.split_once('.') {
            Some((s, _)) => s == key,
            None => default_schema,
        });
        if !has_table {
            return Err(GuardError::InvalidRegistry(format!(
                "role gate on schema `{schema}`, which has no registered table (register its tables first)"
            )));
        }
        let gate = gate(read, write)?;
        self.schema_gates.insert(key, gate);
        Ok(self)
    }

    /// Parses role gates in the CLI form: `;`-separated entries
    /// `name=read1|read2/write1|write2`, where `name` is a registered tenant
    /// table, or `schema.*` for a whole schema; the part after `/` (the
    /// write roles) may be empty or absent (nobody writes).
    ///
    /// ```
    /// use hisn_tenant_guard::guard::TableRegistry;
    ///
    /// let r = TableRegistry::parse_spec("hr.salaries:tenant_id")?
    ///     .parse_role_gates("hr.salaries=hr_viewer/hr_admin")?;
    /// let gate = r.role_gates("hr.salaries").next().unwrap();
    /// assert_eq!(gate.read_roles().collect::<Vec<_>>(), ["hr_admin", "hr_viewer"]);
    /// assert_eq!(gate.write_roles().collect::<Vec<_>>(), ["hr_admin"]);
    /// # Ok::<(), hisn_tenant_guard::guard::GuardError>(())
    /// ```
    pub fn parse_role_gates(mut self, spec: &str) -> Result<Self, GuardError> {
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, roles) = entry.split_once('=').ok_or_else(|| {
                GuardError::InvalidRegistry(format!("role gate `{entry}` has no `=`"))
            })?;
            let (read, write) = roles.split_once('/').unwrap_or((roles, ""));
            let list = |s: &str| -> Vec<String> {
                s.split('|')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let name = name.trim();
            self = match name.strip_suffix(".*") {
                Some(schema) => self.schema_role_gate(schema, list(read), list(write))?,
                None => self.role_gate(name, list(read), list(write))?,
            };
        }
        Ok(self)
    }

    /// The role gates that apply to `table`: its own, then its schema's.
    pub fn role_gates(&self, table: &str) -> impl Iterator<Item = &RoleGate> + '_ {
        let key = normalise(table);
        let schema = key.split_once('.').map(|(s, _)| s.to_owned());
        let own = self.table_gates.get(&key);
        let by_schema = match schema {
            Some(s) => self.schema_gates.get(&s),
            // Unqualified: the default schema of either dialect.
            None => self
                .schema_gates
                .get("public")
                .or_else(|| self.schema_gates.get("main")),
        };
        own.into_iter().chain(by_schema)
    }

    /// Whether any table or schema is role-gated.
    pub(crate) fn has_role_gates(&self) -> bool {
        !self.table_gates.is_empty() || !self.schema_gates.is_empty()
    }

    /// The declared organisation-wide roles, sorted.
    pub fn org_wide(&self) -> impl Iterator<Item = &str> + '_ {
        self.org_wide.iter().map(String::as_str)
    }

    /// Whether a session holding `roles` is organisation-wide.
    pub fn is_org_wide<'a>(&self, mut roles: impl Iterator<Item = &'a str>) -> bool {
        roles.any(|r| self.org_wide.contains(r))
    }

    /// Whether any table is client-scoped or role-gated: then a PostgreSQL
    /// pool also signs the session's clients and roles into the transaction
    /// (see [`rls`](crate::rls)).
    pub fn needs_session_scope(&self) -> bool {
        !self.table_gates.is_empty()
            || !self.schema_gates.is_empty()
            || self.tables.values().any(|t| {
                matches!(
                    t.kind,
                    TableKind::Tenant {
                        client: Some(_),
                        ..
                    }
                )
            })
    }

    /// Registers `table` as shared: readable by every tenant without a tenant
    /// predicate (reference data such as countries), never writable through the
    /// guard. A later registration of the same name replaces the earlier one
    /// (and forgets its columns).
    #[must_use]
    pub fn shared_table(mut self, table: &str) -> Self {
        self.tables.insert(
            normalise(table),
            Table {
                kind: TableKind::Shared,
                columns: None,
            },
        );
        self
    }

    /// Sets the columns of the registered `table` (replacing any earlier list),
    /// spelled as the database stores them (PostgreSQL: case-sensitive, as
    /// `pg_attribute.attname` holds them; SQLite compares them
    /// case-insensitively). A tenant table's tenant column must be among them.
    ///
    /// With a column list, a qualified name `x.f` whose `x` is this table is
    /// accepted only when `f` is one of its columns. **Without** one, the guard
    /// fails closed: `x.<tenant column>` is the only qualified name it accepts
    /// for the table (unqualified names are never function calls and stay
    /// allowed).
    ///
    /// Errors ([`GuardError::InvalidRegistry`]): `table` is not registered, a
    /// column name is empty or holds a NUL, or the tenant column is missing.
    pub fn set_columns(
        &mut self,
        table: &str,
        columns: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<(), GuardError> {
        let entry = self.tables.get_mut(&normalise(table)).ok_or_else(|| {
            GuardError::InvalidRegistry(format!("columns for unregistered table `{table}`"))
        })?;
        let mut set = BTreeSet::new();
        for column in columns {
            let column = column.as_ref();
            if column.is_empty() || column.contains('\0') {
                return Err(GuardError::InvalidRegistry(format!(
                    "invalid column name for table `{table}`"
                )));
            }
            set.insert(column.to_owned());
        }
        if let TableKind::Tenant { column, client } = &entry.kind {
            for c in std::iter::once(column).chain(client) {
                if !set.contains(c.as_str()) {
                    return Err(GuardError::InvalidRegistry(format!(
                        "table `{table}` has no scope column `{c}`"
                    )));
                }
            }
        }
        entry.columns = Some(set);
        Ok(())
    }

    /// [`Self::set_columns`] in builder form.
    pub fn with_columns(
        mut self,
        table: &str,
        columns: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, GuardError> {
        self.set_columns(table, columns)?;
        Ok(self)
    }

    /// Parses the CLI form: comma-separated entries, `name:column` for a tenant
    /// table, `name:column:client_column` for a client-scoped one
    /// ([`Self::client_table`]) and a bare `name` for a shared table, each
    /// optionally followed by its column list in parentheses:
    /// `assets:tenant_id(id,name)`, `invoices:org_id:client_id`,
    /// `countries(code,name)`. A tenant table's scope columns are added to its
    /// list. Names are identifiers (`[A-Za-z_][A-Za-z0-9_]*`, table names
    /// optionally `schema.table`; column names are folded to lowercase, the way
    /// PostgreSQL folds unquoted names); whitespace around names is ignored; an
    /// empty specification, an empty entry, an empty column list or a duplicate
    /// table is an error.
    ///
    /// ```
    /// use hisn_tenant_guard::guard::TableRegistry;
    ///
    /// let registry = TableRegistry::parse_spec(
    ///     "assets:tenant_id(id,name), work_orders:tenant_id, countries(code, name)",
    /// )?;
    /// assert_eq!(registry.len(), 3);
    /// assert!(TableRegistry::parse_spec("assets:").is_err());
    /// assert!(TableRegistry::parse_spec("assets:tenant_id()").is_err());
    /// # Ok::<(), hisn_tenant_guard::guard::GuardError>(())
    /// ```
    pub fn parse_spec(spec: &str) -> Result<Self, GuardError> {
        let mut registry = Self::new();
        if spec.trim().is_empty() {
            return Err(GuardError::InvalidRegistry("empty specification".into()));
        }
        for entry in split_entries(spec)? {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(GuardError::InvalidRegistry("empty entry".into()));
            }
            let (head, columns) = match entry.split_once('(') {
                Some((head, rest)) => {
                    let list = rest.strip_suffix(')').ok_or_else(|| {
                        GuardError::InvalidRegistry(format!("malformed column list in `{entry}`"))
                    })?;
                    let columns: Vec<String> =
                        list.split(',').map(|c| c.trim().to_owned()).collect();
                    if columns.iter().any(|c| !valid_identifier(c)) {
                        return Err(GuardError::InvalidRegistry(format!(
                            "invalid column list in `{entry}`"
                        )));
                    }
                    (head.trim(), Some(columns))
                }
                None => (entry, None),
            };
            let (table, column, client) = match head.split_once(':') {
                Some((table, rest)) => match rest.split_once(':') {
                    Some((column, client)) => {
                        (table.trim(), Some(column.trim()), Some(client.trim()))
                    }
                    None => (table.trim(), Some(rest.trim()), None),
                },
                None => (head, None, None),
            };
            if let Some(client) = client
                && (!valid_identifier(client) || Some(client) == column)
            {
                return Err(GuardError::InvalidRegistry(format!(
                    "invalid client column `{client}` for table `{table}`"
                )));
            }
            if !valid_table_name(table) {
                return Err(GuardError::InvalidRegistry(format!(
                    "invalid table name `{table}`"
                )));
            }
            if registry.tables.contains_key(&normalise(table)) {
                return Err(GuardError::InvalidRegistry(format!(
                    "table `{table}` listed twice"
                )));
            }
            registry = match column {
                Some(column) if valid_identifier(column) => match client {
                    Some(client) => registry.client_table(table, column, client),
                    None => registry.tenant_table(table, column),
                },
                Some(column) => {
                    return Err(GuardError::InvalidRegistry(format!(
                        "invalid tenant column `{column}` for table `{table}`"
                    )));
                }
                None => registry.shared_table(table),
            };
            if let Some(mut columns) = columns {
                columns.extend(column.map(str::to_owned));
                columns.extend(client.map(str::to_owned));
                registry.set_columns(table, columns.iter().map(|c| normalise(c)))?;
            }
        }
        Ok(registry)
    }

    /// Number of registered tables (tenant and shared).
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no table is registered.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Every registered table (tenant and shared), sorted by name, as
    /// registered (ASCII lowercase, `schema.table` when given with a schema):
    /// what a pool iterates to load column lists at start-up.
    pub fn tables(&self) -> impl Iterator<Item = &str> + '_ {
        self.tables.keys().map(String::as_str)
    }

    /// The known columns of `table`, sorted, or `None` when the table is not
    /// registered or has no column list.
    pub fn columns(&self, table: &str) -> Option<impl Iterator<Item = &str> + '_> {
        self.tables
            .get(&normalise(table))
            .and_then(|t| t.columns.as_ref())
            .map(|c| c.iter().map(String::as_str))
    }

    /// The tenant column of `table` if it is registered as a tenant table
    /// (`table` is compared case-insensitively).
    pub fn tenant_column(&self, table: &str) -> Option<&str> {
        match self.tables.get(&normalise(table)).map(|t| &t.kind) {
            Some(TableKind::Tenant { column, .. }) => Some(column),
            _ => None,
        }
    }

    /// The client column of `table` if it is registered as a client-scoped
    /// tenant table ([`Self::client_table`]).
    pub fn client_column(&self, table: &str) -> Option<&str> {
        match self.tables.get(&normalise(table)).map(|t| &t.kind) {
            Some(TableKind::Tenant {
                client: Some(client),
                ..
            }) => Some(client),
            _ => None,
        }
    }

    /// Whether `table` is registered as a shared table.
    pub fn is_shared(&self, table: &str) -> bool {
        matches!(
            self.tables.get(&normalise(table)).map(|t| &t.kind),
            Some(TableKind::Shared)
        )
    }

    /// Registered tenant tables and their tenant columns, sorted by name (the
    /// RLS layer generates policies from this list).
    pub fn tenant_tables(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.tables.iter().filter_map(|(name, t)| match &t.kind {
            TableKind::Tenant { column, .. } => Some((name.as_str(), column.as_str())),
            TableKind::Shared => None,
        })
    }

    /// Registered shared tables, sorted by name.
    pub fn shared_tables(&self) -> impl Iterator<Item = &str> + '_ {
        self.tables.iter().filter_map(|(name, t)| match t.kind {
            TableKind::Shared => Some(name.as_str()),
            TableKind::Tenant { .. } => None,
        })
    }

    /// Looks up an already-normalised name.
    pub(crate) fn get(&self, normalised: &str) -> Option<&Table> {
        self.tables.get(normalised)
    }

    /// Looks up an already-normalised name, with the registered key.
    pub(crate) fn get_key_value(&self, normalised: &str) -> Option<(&str, &Table)> {
        self.tables
            .get_key_value(normalised)
            .map(|(k, t)| (k.as_str(), t))
    }
}

/// A role name as [`Role::new`](crate::Role::new) accepts it.
fn role_name(role: &str) -> Result<String, GuardError> {
    crate::Role::new(role.trim())
        .map(|r| r.as_str().to_owned())
        .map_err(|_| GuardError::InvalidRegistry(format!("invalid role name `{role}`")))
}

/// A gate from its read and write roles (the read set includes the write set).
fn gate(
    read: impl IntoIterator<Item = impl AsRef<str>>,
    write: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<RoleGate, GuardError> {
    let write = write
        .into_iter()
        .map(|r| role_name(r.as_ref()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let mut read = read
        .into_iter()
        .map(|r| role_name(r.as_ref()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    read.extend(write.iter().cloned());
    if read.is_empty() {
        return Err(GuardError::InvalidRegistry(
            "a role gate needs at least one role".into(),
        ));
    }
    Ok(RoleGate { read, write })
}

/// Splits a specification at the commas that are not inside a column list.
fn split_entries(spec: &str) -> Result<Vec<&str>, GuardError> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in spec.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            ')' if depth == 1 => depth = 0,
            '(' | ')' => {
                return Err(GuardError::InvalidRegistry("unbalanced parentheses".into()));
            }
            ',' if depth == 0 => {
                out.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(GuardError::InvalidRegistry("unbalanced parentheses".into()));
    }
    out.push(&spec[start..]);
    Ok(out)
}

/// ASCII lowercase: how both dialects compare the identifiers we register.
fn normalise(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_table_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((schema, table)) => valid_identifier(schema) && valid_identifier(table),
        None => valid_identifier(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_tenant_and_shared_tables() {
        let r = TableRegistry::parse_spec(" Assets:Tenant_ID ,work_orders:tenant_id,countries")
            .unwrap();
        assert_eq!(r.tenant_column("assets"), Some("tenant_id"));
        assert_eq!(r.tenant_column("WORK_ORDERS"), Some("tenant_id"));
        assert!(r.is_shared("countries"));
        assert_eq!(r.tenant_column("countries"), None);
        assert_eq!(
            r.tenant_tables().collect::<Vec<_>>(),
            vec![("assets", "tenant_id"), ("work_orders", "tenant_id")]
        );
        assert_eq!(r.shared_tables().collect::<Vec<_>>(), vec!["countries"]);
        // A tenant table and an unknown name are not shared.
        assert!(!r.is_shared("assets"));
        assert!(!r.is_shared("nope"));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn spec_accepts_schema_qualified_tables() {
        let r = TableRegistry::parse_spec("billing.invoices:org_id").unwrap();
        assert_eq!(r.tenant_column("billing.invoices"), Some("org_id"));
        assert_eq!(r.tenant_column("invoices"), None);
    }

    #[test]
    fn malformed_specs_are_refused() {
        for bad in [
            "",
            "  ",
            "assets:",
            ":tenant_id",
            "assets:tenant_id,",
            "assets:tenant id",
            "as sets:tenant_id",
            "assets:tenant_id,assets:org_id",
            "a.b.c:tenant_id",
            "1assets:tenant_id",
            "assets:tenant_id:x:y",
            "assets:tenant_id:tenant_id",
            "assets:tenant_id:",
            "assets;drop:tenant_id",
            "assets:tenant_id()",
            "assets:tenant_id(id,)",
            "assets:tenant_id(id",
            "assets:tenant_id(id))",
            "assets:tenant_id((id))",
            "assets:tenant_id(i d)",
            "countries(code),",
        ] {
            assert!(
                matches!(
                    TableRegistry::parse_spec(bad),
                    Err(GuardError::InvalidRegistry(_))
                ),
                "{bad:?} accepted"
            );
        }
    }

    /// A parenthesis that does not open or close the one column list of an
    /// entry is reported as such, not as a malformed name or list further on.
    #[test]
    fn unbalanced_parentheses_are_named_in_the_error() {
        for bad in ["a:t(x))", "a:t((x)", "a:t(x", "a:t)x(", "a:t(x),b:u(y))"] {
            assert_eq!(
                TableRegistry::parse_spec(bad),
                Err(GuardError::InvalidRegistry("unbalanced parentheses".into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn builder_normalises_and_replaces() {
        let r = TableRegistry::new()
            .tenant_table("Assets", "Tenant_Id")
            .shared_table("assets");
        assert_eq!(r.len(), 1);
        assert!(r.is_shared("ASSETS"));
        assert!(!r.is_empty());
        assert!(TableRegistry::new().is_empty());
    }

    #[test]
    fn spec_column_lists_include_the_tenant_column() {
        let r =
            TableRegistry::parse_spec("assets:tenant_id(ID, name),countries(code),w:t").unwrap();
        assert_eq!(
            r.columns("assets").unwrap().collect::<Vec<_>>(),
            ["id", "name", "tenant_id"]
        );
        assert_eq!(
            r.columns("countries").unwrap().collect::<Vec<_>>(),
            ["code"]
        );
        assert!(r.columns("w").is_none());
        assert_eq!(r.tables().collect::<Vec<_>>(), ["assets", "countries", "w"]);
    }

    #[test]
    fn set_columns_checks_the_table_and_the_tenant_column() {
        let mut r = TableRegistry::new().tenant_table("assets", "tenant_id");
        assert!(matches!(
            r.set_columns("nope", ["id"]),
            Err(GuardError::InvalidRegistry(_))
        ));
        assert!(matches!(
            r.set_columns("assets", ["id", "name"]),
            Err(GuardError::InvalidRegistry(_))
        ));
        assert!(matches!(
            r.set_columns("assets", ["tenant_id", "a\0b"]),
            Err(GuardError::InvalidRegistry(_))
        ));
        assert!(r.columns("assets").is_none());
        r.set_columns("ASSETS", ["tenant_id", "Mixed Case"])
            .unwrap();
        assert_eq!(
            r.columns("assets").unwrap().collect::<Vec<_>>(),
            ["Mixed Case", "tenant_id"]
        );
        // Registering again forgets the columns.
        let r = r.tenant_table("assets", "tenant_id");
        assert!(r.columns("assets").is_none());
    }

    #[test]
    fn spec_parses_client_columns_gates_and_org_wide_roles() {
        let r = TableRegistry::parse_spec("ledger:org_id:client_id(id,memo),hr.pay:org_id,w:t")
            .unwrap()
            .parse_role_gates("hr.pay=hr_viewer/hr_admin; w=reader|auditor")
            .unwrap()
            .org_wide_roles(["firm_admin"])
            .unwrap();
        assert_eq!(r.tenant_column("ledger"), Some("org_id"));
        assert_eq!(r.client_column("LEDGER"), Some("client_id"));
        assert_eq!(r.client_column("w"), None);
        assert_eq!(
            r.columns("ledger").unwrap().collect::<Vec<_>>(),
            ["client_id", "id", "memo", "org_id"]
        );
        let pay: Vec<_> = r.role_gates("hr.pay").collect();
        assert_eq!(pay.len(), 1);
        assert_eq!(
            pay[0].read_roles().collect::<Vec<_>>(),
            ["hr_admin", "hr_viewer"]
        );
        assert_eq!(pay[0].write_roles().collect::<Vec<_>>(), ["hr_admin"]);
        let w: Vec<_> = r.role_gates("w").collect();
        assert_eq!(w[0].write_roles().count(), 0);
        assert_eq!(r.org_wide().collect::<Vec<_>>(), ["firm_admin"]);
        assert!(r.is_org_wide(["member", "firm_admin"].into_iter()));
        assert!(!r.is_org_wide(["member"].into_iter()));
        assert!(r.needs_session_scope());
        assert!(
            !TableRegistry::parse_spec("a:t")
                .unwrap()
                .needs_session_scope()
        );
        // A schema gate applies to every table of the schema, beside its own.
        let r = r.parse_role_gates("hr.*=hr_any").unwrap();
        assert_eq!(r.role_gates("hr.pay").count(), 2);
        assert_eq!(r.role_gates("ledger").count(), 0);
    }

    /// A PostgreSQL pool signs the session's roles and grants into the
    /// transaction when any one of these is registered: a table gate, a
    /// schema gate, a client-scoped table. Each alone is enough.
    #[test]
    fn session_scope_is_needed_by_any_one_gate_or_client_table() {
        let base = || TableRegistry::parse_spec("hr.pay:tenant_id,w:t").unwrap();
        assert!(!base().needs_session_scope());
        let table_gate = base().parse_role_gates("w=reader").unwrap();
        let schema_gate = base().parse_role_gates("hr.*=hr_viewer").unwrap();
        let client_table = base().client_table("ledger", "t", "client_id");
        for (what, r) in [
            ("table gate", table_gate),
            ("schema gate", schema_gate),
            ("client table", client_table),
        ] {
            assert!(r.needs_session_scope(), "{what}");
        }
    }

    #[test]
    fn bad_gates_and_roles_are_refused() {
        let r = TableRegistry::parse_spec("a:t,countries").unwrap();
        for bad in [
            "a",
            "a=",
            "a=/",
            "nope=x",
            "countries=x",
            "a=Bad Role",
            "a=x'--",
            "1bad.*=x",
            // A schema with no registered table: a misspelt schema gate
            // would gate nothing (outside review of issue 17).
            "b.*=x",
            "hrr.*=x",
        ] {
            assert!(
                matches!(
                    r.clone().parse_role_gates(bad),
                    Err(GuardError::InvalidRegistry(_))
                ),
                "{bad:?} accepted"
            );
        }
        // Unqualified tables are in the default schema of either dialect.
        assert!(r.clone().parse_role_gates("public.*=x").is_ok());
        assert!(r.clone().parse_role_gates("main.*=x").is_ok());
        assert!(
            TableRegistry::parse_spec("hr.salaries:t")
                .unwrap()
                .parse_role_gates("public.*=x")
                .is_err()
        );
        assert!(r.clone().org_wide_roles(["Admin"]).is_err());
        // The client column must be among the table's columns.
        let mut c = TableRegistry::new().client_table("l", "t", "c");
        assert!(c.set_columns("l", ["t", "id"]).is_err());
        assert!(c.set_columns("l", ["t", "c"]).is_ok());
    }
}
