//! The registry of tables the guard knows: tenant tables (with their tenant
//! column) and shared tables.

use std::collections::{BTreeMap, BTreeSet};

use super::GuardError;

/// How the guard treats a registered table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableKind {
    /// Every reference gets `<ref>.<column> = <tenant>`; writes set the column.
    Tenant {
        /// The tenant column, normalised (ASCII lowercase).
        column: String,
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
                },
                columns: None,
            },
        );
        self
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
        if let TableKind::Tenant { column } = &entry.kind
            && !set.contains(column.as_str())
        {
            return Err(GuardError::InvalidRegistry(format!(
                "table `{table}` has no tenant column `{column}`"
            )));
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
    /// table and a bare `name` for a shared table, each optionally followed by
    /// its column list in parentheses: `assets:tenant_id(id,name)`,
    /// `countries(code,name)`. A tenant table's tenant column is added to its
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
            let (table, column) = match head.split_once(':') {
                Some((table, column)) => (table.trim(), Some(column.trim())),
                None => (head, None),
            };
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
                Some(column) if valid_identifier(column) => registry.tenant_table(table, column),
                Some(column) => {
                    return Err(GuardError::InvalidRegistry(format!(
                        "invalid tenant column `{column}` for table `{table}`"
                    )));
                }
                None => registry.shared_table(table),
            };
            if let Some(mut columns) = columns {
                columns.extend(column.map(str::to_owned));
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
            Some(TableKind::Tenant { column }) => Some(column),
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
            TableKind::Tenant { column } => Some((name.as_str(), column.as_str())),
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
            "assets:tenant_id:x",
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
}
