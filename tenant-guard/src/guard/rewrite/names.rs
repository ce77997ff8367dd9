//! Names and scopes: how table names resolve against the registry and the
//! CTEs in scope, and the tenant predicate.

use super::*;
use crate::guard::registry::Table;

impl<'r> Rewriter<'r> {
    /// How the dialect compares an identifier: PostgreSQL keeps quoted
    /// identifiers as written and folds unquoted ones; SQLite folds both.
    pub(super) fn norm(&self, ident: &Ident) -> String {
        match (self.dialect, ident.quote_style) {
            (Dialect::Postgres, Some(_)) => ident.value.clone(),
            _ => ident.value.to_ascii_lowercase(),
        }
    }

    pub(super) fn default_schema(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "public",
            Dialect::Sqlite => "main",
        }
    }

    pub(super) fn idents(name: &ObjectName) -> Result<Vec<&Ident>, GuardError> {
        name.0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => Self::plain_name(ident).map(|()| ident),
                ObjectNamePart::Function(_) => Err(unsupported("function in an object name")),
            })
            .collect()
    }

    /// Refuses a name written as a string constant (`'tenant_id'`).
    /// `sqlparser` takes a string where it expects a name (a column of
    /// `INSERT (..)` or `UPDATE .. SET`, a table, a CTE, an alias, a
    /// qualifier), and so does SQLite, which reads the string's value as the
    /// name: `UPDATE assets SET 'tenant_id' = ..` assigns the tenant column.
    /// By the time the tree is built every string constant is a sentinel
    /// (`render`), so the guard would compare the sentinel, never the name
    /// the database reads. PostgreSQL rejects the form (a syntax error).
    /// Output column aliases (`SELECT count(*) AS 'n'`) stay allowed: the
    /// guard decides nothing on them.
    pub(super) fn plain_name(ident: &Ident) -> Result<(), GuardError> {
        if ident.quote_style == Some('\'') {
            return Err(GuardError::Lexical(
                "string constant used as a name (SQLite reads it as one)".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn resolve(
        &mut self,
        name: &ObjectName,
        ctes: &[String],
    ) -> Result<Resolved<'r>, GuardError> {
        let idents = Self::idents(name)?;
        let normed: Vec<String> = idents.iter().map(|i| self.norm(i)).collect();
        if let [table] = normed.as_slice()
            && ctes.contains(table)
        {
            return Ok(Resolved::Cte);
        }
        match self.find_entry(&normed) {
            Some((key, t)) => match &t.kind {
                TableKind::Tenant { column, client } => Ok(Resolved::Tenant(TenantRef {
                    key,
                    column,
                    client: client.as_deref(),
                })),
                TableKind::Shared => {
                    // A shared table in a role-gated schema is gated too.
                    self.touch(key, false);
                    self.shared_refs += 1;
                    Ok(Resolved::Shared)
                }
            },
            None => Err(GuardError::UnknownTable(name.to_string())),
        }
    }

    /// The registered table a normalised `[table]` or `[schema, table]` name
    /// refers to.
    pub(super) fn find_table(&self, normed: &[String]) -> Option<&'r Table> {
        self.find_entry(normed).map(|(_, t)| t)
    }

    /// [`Self::find_table`] with the registry key.
    fn find_entry(&self, normed: &[String]) -> Option<(&'r str, &'r Table)> {
        let registry: &'r TableRegistry = self.registry;
        match normed {
            [table] => registry.get_key_value(table),
            [schema, table] => registry
                .get_key_value(&format!("{schema}.{table}"))
                .or_else(|| {
                    (schema == self.default_schema())
                        .then(|| registry.get_key_value(table))
                        .flatten()
                }),
            _ => None,
        }
    }

    /// The tenant column as an identifier, quoted when it is not a plain
    /// lowercase name or collides with a keyword.
    pub(super) fn column_ident(column: &str) -> Ident {
        let plain = column
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && column
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && ALL_KEYWORDS
                .binary_search(&column.to_ascii_uppercase().as_str())
                .is_err();
        if plain {
            Ident::new(column)
        } else {
            Ident::with_quote('"', column)
        }
    }

    /// `<qualifier>.<column> = <tenant>`.
    pub(super) fn predicate(&self, qualifier: &[Ident], column: &str) -> Expr {
        let mut path = qualifier.to_vec();
        path.push(Self::column_ident(column));
        Expr::BinaryOp {
            left: Box::new(Expr::CompoundIdentifier(path)),
            op: BinaryOperator::Eq,
            right: Box::new(self.tenant.clone()),
        }
    }

    /// Whether an assignment or insert column names the tenant column (or
    /// another scope column): any part of the name, compared
    /// case-insensitively whatever the quoting (fail closed; PostgreSQL reads
    /// the first part as the column, `SET tenant_id.f = ..` assigns a field
    /// of it). A name written as a string constant is refused
    /// ([`Self::plain_name`]).
    pub(super) fn names_column(name: &ObjectName, column: &str) -> Result<bool, GuardError> {
        let mut hit = false;
        for part in &name.0 {
            match part {
                ObjectNamePart::Identifier(ident) => {
                    Self::plain_name(ident)?;
                    hit |= ident.value.eq_ignore_ascii_case(column);
                }
                // Not an identifier: cannot tell, so treat it as the tenant column.
                ObjectNamePart::Function(_) => hit = true,
            }
        }
        Ok(hit || name.0.is_empty())
    }

    /// Whether any of `names` names `column` ([`Self::names_column`]; every
    /// name is checked, so a string-quoted one is refused wherever it is).
    pub(super) fn any_names_column(names: &[ObjectName], column: &str) -> Result<bool, GuardError> {
        let mut hit = false;
        for name in names {
            hit |= Self::names_column(name, column)?;
        }
        Ok(hit)
    }
}
