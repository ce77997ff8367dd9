//! The registry of tables the guard knows: tenant tables (with their tenant
//! column) and shared tables.

use std::collections::BTreeMap;

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

/// The tables the guard knows, built once at start-up.
///
/// Names are SQL identifiers compared case-insensitively (ASCII), the way
/// PostgreSQL folds unquoted identifiers and SQLite compares all identifiers. A
/// name may carry a schema (`billing.invoices`); an unqualified name also matches
/// references qualified with the dialect's default schema (`public` on
/// PostgreSQL, `main` on SQLite), never another schema. Any table that is not
/// registered is refused ([`GuardError::UnknownTable`]).
///
/// ```
/// use hisn_tenant_guard::guard::TableRegistry;
///
/// let registry = TableRegistry::new()
///     .tenant_table("assets", "tenant_id")
///     .tenant_table("work_orders", "tenant_id")
///     .shared_table("countries");
/// assert_eq!(registry.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableRegistry {
    tables: BTreeMap<String, TableKind>,
}

impl TableRegistry {
    /// An empty registry (every table is unknown, so every statement that
    /// touches a table is refused until tables are registered).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `table` as tenant-scoped by `tenant_column`. A later
    /// registration of the same name replaces the earlier one.
    #[must_use]
    pub fn tenant_table(mut self, table: &str, tenant_column: &str) -> Self {
        self.tables.insert(
            normalise(table),
            TableKind::Tenant {
                column: normalise(tenant_column),
            },
        );
        self
    }

    /// Registers `table` as shared: readable by every tenant without a tenant
    /// predicate (reference data such as countries), never writable through the
    /// guard. A later registration of the same name replaces the earlier one.
    #[must_use]
    pub fn shared_table(mut self, table: &str) -> Self {
        self.tables.insert(normalise(table), TableKind::Shared);
        self
    }

    /// Parses the CLI form `table:tenant_column,table:tenant_column,shared_table`:
    /// comma-separated entries, `name:column` for a tenant table and a bare
    /// `name` for a shared table. Names are identifiers (`[A-Za-z_][A-Za-z0-9_]*`,
    /// table names optionally `schema.table`); whitespace around entries is
    /// ignored; an empty specification, an empty entry or a duplicate table is
    /// an error.
    ///
    /// ```
    /// use hisn_tenant_guard::guard::TableRegistry;
    ///
    /// let registry = TableRegistry::parse_spec("assets:tenant_id, work_orders:tenant_id, countries")?;
    /// assert_eq!(registry.len(), 3);
    /// assert!(TableRegistry::parse_spec("assets:").is_err());
    /// # Ok::<(), hisn_tenant_guard::guard::GuardError>(())
    /// ```
    pub fn parse_spec(spec: &str) -> Result<Self, GuardError> {
        let mut registry = Self::new();
        if spec.trim().is_empty() {
            return Err(GuardError::InvalidRegistry("empty specification".into()));
        }
        for entry in spec.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(GuardError::InvalidRegistry("empty entry".into()));
            }
            let (table, column) = match entry.split_once(':') {
                Some((table, column)) => (table.trim(), Some(column.trim())),
                None => (entry, None),
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

    /// The tenant column of `table` if it is registered as a tenant table
    /// (`table` is compared case-insensitively).
    pub fn tenant_column(&self, table: &str) -> Option<&str> {
        match self.tables.get(&normalise(table)) {
            Some(TableKind::Tenant { column }) => Some(column),
            _ => None,
        }
    }

    /// Whether `table` is registered as a shared table.
    pub fn is_shared(&self, table: &str) -> bool {
        matches!(self.tables.get(&normalise(table)), Some(TableKind::Shared))
    }

    /// Registered tenant tables and their tenant columns, sorted by name (the
    /// RLS layer generates policies from this list).
    pub fn tenant_tables(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.tables.iter().filter_map(|(name, kind)| match kind {
            TableKind::Tenant { column } => Some((name.as_str(), column.as_str())),
            TableKind::Shared => None,
        })
    }

    /// Registered shared tables, sorted by name.
    pub fn shared_tables(&self) -> impl Iterator<Item = &str> + '_ {
        self.tables.iter().filter_map(|(name, kind)| match kind {
            TableKind::Shared => Some(name.as_str()),
            TableKind::Tenant { .. } => None,
        })
    }

    /// Looks up an already-normalised name.
    pub(crate) fn get(&self, normalised: &str) -> Option<&TableKind> {
        self.tables.get(normalised)
    }
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
}
