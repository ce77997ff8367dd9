//! Column scopes: on PostgreSQL `x.f` is the column `f` of `x` when `x` has
//! one, and otherwise a call `f(x)` (so are `(expr).f` and `x.f.g`). The
//! guard lets a qualified name through only when it knows `f` is a column of
//! the FROM item `x` names: a registered table with its column list, a
//! derived table or CTE whose output names it can read off the select list.
//! `x.<tenant column>` is the only qualified name allowed for a registered
//! table without a column list; a qualifier that is not a FROM item in scope
//! is refused; field access on an expression is refused (in `exprs`).

use std::collections::BTreeSet;

use super::*;
use crate::guard::registry::Table;

/// What the guard knows about the columns behind a qualifier.
#[derive(Debug, Clone)]
pub(super) enum Columns<'r> {
    /// A registered table's column list (exact spelling).
    Known(&'r BTreeSet<String>),
    /// A registered tenant table without a column list: only its tenant
    /// column (and client column, if any) is known.
    TenantOnly(&'r str, Option<&'r str>),
    /// Output names of a derived table or CTE, normalised like
    /// [`Rewriter::norm`].
    Names(Vec<String>),
    /// Nothing is known: every qualified name is refused.
    Unknown,
}

/// The qualifiers one query level exposes, with their columns.
pub(super) type Scope<'r> = Vec<(String, Columns<'r>)>;

impl<'r> Rewriter<'r> {
    fn table_columns(table: &'r Table) -> Columns<'r> {
        match (&table.columns, &table.kind) {
            (Some(columns), _) => Columns::Known(columns),
            (None, TableKind::Tenant { column, client }) => {
                Columns::TenantOnly(column, client.as_deref())
            }
            (None, TableKind::Shared) => Columns::Unknown,
        }
    }

    /// A registry column name as [`Self::norm`] would compare it.
    fn norm_column(&self, column: &str) -> String {
        match self.dialect {
            Dialect::Postgres => column.to_owned(),
            Dialect::Sqlite => column.to_ascii_lowercase(),
        }
    }

    /// The columns behind a table name in FROM (a CTE or a registered table).
    fn name_columns(&self, name: &ObjectName, ctes: &[String]) -> Columns<'r> {
        let Ok(idents) = Self::idents(name) else {
            return Columns::Unknown;
        };
        let normed: Vec<String> = idents.iter().map(|i| self.norm(i)).collect();
        if let [single] = normed.as_slice()
            && ctes.contains(single)
        {
            return self
                .cte_columns
                .iter()
                .rev()
                .find(|(n, _)| n == single)
                .map_or(Columns::Unknown, |(_, c)| c.clone());
        }
        self.find_table(&normed)
            .map_or(Columns::Unknown, Self::table_columns)
    }

    fn alias_columns(&self, alias: &TableAlias) -> Columns<'r> {
        Columns::Names(alias.columns.iter().map(|c| self.norm(&c.name)).collect())
    }

    /// The qualifiers the target of an INSERT exposes: its alias, or its name
    /// (and its bare table name when schema-qualified). The first entry
    /// carries the target's columns.
    pub(super) fn target_scope(
        &self,
        name: &ObjectName,
        alias: Option<&Ident>,
        ctes: &[String],
    ) -> Scope<'r> {
        let columns = self.name_columns(name, ctes);
        let mut scope = Vec::new();
        match alias {
            Some(alias) => scope.push((self.norm(alias), columns)),
            None => {
                if let Ok(idents) = Self::idents(name) {
                    let normed: Vec<String> = idents.iter().map(|i| self.norm(i)).collect();
                    scope.push((normed.join("."), columns.clone()));
                    if let Some(last) = normed.last().filter(|_| normed.len() > 1) {
                        scope.push((last.clone(), columns));
                    }
                }
            }
        }
        scope
    }

    /// The qualifiers a FROM list exposes.
    pub(super) fn scope_of_from(&self, items: &[TableWithJoins], ctes: &[String]) -> Scope<'r> {
        let mut scope = Vec::new();
        for item in items {
            self.factor_scope(&item.relation, ctes, &mut scope);
            for join in &item.joins {
                self.factor_scope(&join.relation, ctes, &mut scope);
            }
        }
        scope
    }

    fn factor_scope(&self, factor: &TableFactor, ctes: &[String], out: &mut Scope<'r>) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let columns = self.name_columns(name, ctes);
                match alias {
                    Some(alias) if !alias.columns.is_empty() => {
                        out.push((self.norm(&alias.name), self.alias_columns(alias)));
                    }
                    Some(alias) => out.push((self.norm(&alias.name), columns)),
                    None => {
                        let Ok(idents) = Self::idents(name) else {
                            return;
                        };
                        let normed: Vec<String> = idents.iter().map(|i| self.norm(i)).collect();
                        if let Some(last) = normed.last().filter(|_| normed.len() > 1) {
                            out.push((last.clone(), columns.clone()));
                        }
                        out.push((normed.join("."), columns));
                    }
                }
            }
            TableFactor::Derived {
                subquery,
                alias: Some(alias),
                ..
            } => {
                let columns = if alias.columns.is_empty() {
                    self.output_columns(subquery, ctes)
                } else {
                    self.alias_columns(alias)
                };
                out.push((self.norm(&alias.name), columns));
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.factor_scope(&table_with_joins.relation, ctes, out);
                for join in &table_with_joins.joins {
                    self.factor_scope(&join.relation, ctes, out);
                }
            }
            _ => {}
        }
    }

    /// The output names of a query, as far as the guard can read them.
    pub(super) fn output_columns(&self, query: &Query, ctes: &[String]) -> Columns<'r> {
        if query.with.is_some() {
            // Its own CTEs are not in `ctes`: do not guess.
            return Columns::Unknown;
        }
        self.set_expr_columns(&query.body, ctes)
    }

    fn set_expr_columns(&self, body: &SetExpr, ctes: &[String]) -> Columns<'r> {
        match body {
            SetExpr::Select(select) => {
                let mut names = Vec::new();
                for item in &select.projection {
                    match item {
                        SelectItem::ExprWithAlias { alias, .. } => names.push(self.norm(alias)),
                        SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                            names.push(self.norm(ident));
                        }
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                            names.extend(parts.last().map(|i| self.norm(i)));
                        }
                        // A column named by the database (`count`, `?column?`):
                        // not addressable through the guard; alias it.
                        SelectItem::UnnamedExpr(_) => {}
                        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                            // `c.*` brings only `c`'s columns: counting every
                            // FROM item's would pass `d.f` for a column `f` of
                            // another item, which PostgreSQL reads as `f(d)`.
                            let only = match item {
                                SelectItem::QualifiedWildcard(
                                    SelectItemQualifiedWildcardKind::ObjectName(name),
                                    _,
                                ) => match Self::idents(name) {
                                    Ok(idents) => Some(
                                        idents
                                            .iter()
                                            .map(|i| self.norm(i))
                                            .collect::<Vec<_>>()
                                            .join("."),
                                    ),
                                    Err(_) => return Columns::Unknown,
                                },
                                SelectItem::QualifiedWildcard(..) => return Columns::Unknown,
                                _ => None,
                            };
                            let scope = self.scope_of_from(&select.from, ctes);
                            let mut matched = false;
                            for (name, columns) in scope {
                                if only.as_ref().is_some_and(|o| *o != name) {
                                    continue;
                                }
                                matched = true;
                                match columns {
                                    Columns::Known(set) => {
                                        names.extend(set.iter().map(|c| self.norm_column(c)));
                                    }
                                    Columns::Names(more) => names.extend(more),
                                    Columns::TenantOnly(..) | Columns::Unknown => {
                                        return Columns::Unknown;
                                    }
                                }
                            }
                            if only.is_some() && !matched {
                                return Columns::Unknown;
                            }
                        }
                        _ => return Columns::Unknown,
                    }
                }
                Columns::Names(names)
            }
            SetExpr::Query(query) => self.output_columns(query, ctes),
            SetExpr::SetOperation { left, .. } => self.set_expr_columns(left, ctes),
            SetExpr::Values(values) => Columns::Names(
                (1..=values.rows.first().map_or(0, |r| r.content.len()))
                    .map(|i| format!("column{i}"))
                    .collect(),
            ),
            _ => Columns::Unknown,
        }
    }

    fn column_matches(&self, columns: &Columns<'r>, field: &Ident) -> bool {
        let f = self.norm(field);
        match columns {
            Columns::Known(set) => match self.dialect {
                Dialect::Postgres => set.contains(&f),
                Dialect::Sqlite => set.iter().any(|c| c.eq_ignore_ascii_case(&f)),
            },
            Columns::TenantOnly(column, client) => {
                f.eq_ignore_ascii_case(column) || client.is_some_and(|c| f.eq_ignore_ascii_case(c))
            }
            Columns::Names(names) => names.contains(&f),
            Columns::Unknown => false,
        }
    }

    /// Checks a qualified name `q.f` (or `s.t.f`): `f` must not be a denied
    /// function name (any case) and must be a known column of the FROM item
    /// `q` names in the innermost scope that has it.
    pub(super) fn check_qualified(&self, parts: &[Ident]) -> Result<(), GuardError> {
        let Some((field, qualifier)) = parts.split_last() else {
            return Ok(());
        };
        for part in parts {
            Self::plain_name(part)?;
        }
        if is_denied_function(&field.value) {
            return Err(GuardError::ForbiddenFunction(
                field.value.to_ascii_lowercase(),
            ));
        }
        if qualifier.is_empty() {
            return Ok(());
        }
        let q = qualifier
            .iter()
            .map(|i| self.norm(i))
            .collect::<Vec<_>>()
            .join(".");
        let found = self
            .scopes
            .iter()
            .rev()
            .find_map(|scope| scope.iter().find(|(name, _)| *name == q));
        match found {
            Some((_, columns)) if self.column_matches(columns, field) => Ok(()),
            _ => Err(GuardError::UnknownColumn(
                parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
            )),
        }
    }
}
