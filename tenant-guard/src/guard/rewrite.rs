//! The rewriter: walks the statement tree, adds the tenant predicate to every
//! tenant-table reference and refuses whatever it does not understand.
//!
//! Every AST node kind the rewriter accepts is destructured exhaustively (no
//! `..` in the patterns of the statement, query, select and table nodes), so a
//! field added by a future `sqlparser` release breaks the build instead of
//! being silently ignored. Expression kinds are whitelisted: an unknown kind is
//! refused, never skipped, because a skipped expression could hide a subquery
//! over a tenant table.

use sqlparser::ast::{
    AccessExpr, Assignment, AssignmentTarget, BinaryOperator, Delete, DoUpdate, Expr, FromTable,
    Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArgumentList,
    FunctionArguments, GroupByExpr, Ident, InTarget, Insert, JoinConstraint, JoinOperator,
    JsonPathElem, LimitClause, NamedWindowExpr, ObjectName, ObjectNamePart, OnConflict,
    OnConflictAction, OnInsert, OrderBy, OrderByExpr, OrderByKind, Query, Select, SelectFlavor,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SqliteOnConflict, Statement, Subscript,
    TableFactor, TableObject, TableWithJoins, Update, UpdateTableFromKind, Value, Values,
    WildcardAdditionalOptions, WindowFrameBound, WindowSpec, WindowType,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::ALL_KEYWORDS;
use sqlparser::parser::{Parser, ParserError};

use super::registry::TableKind;
use super::{Dialect, GuardError, MAX_DEPTH, TableRegistry, params};

/// Function names (lowercase, any schema) the guard refuses outright.
const DENIED_FUNCTIONS: &[&str] = &[
    // Session settings: the tenant GUC lives here.
    "set_config",
    "current_setting",
    // Run SQL text the guard never sees.
    "ts_stat",
    "ts_rewrite",
    // Sequences: setval changes shared state.
    "setval",
    // Large-object descriptors (opened by the denied `lo_*` family).
    "loread",
    "lowrite",
    // SQLite: extensions and files.
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Function name prefixes (lowercase) the guard refuses outright.
const DENIED_PREFIXES: &[&str] = &[
    // Server files, other sessions, signals, advisory locks, sleeps, NOTIFY.
    "pg_",
    // Connections to other databases.
    "dblink",
    // Large objects are not tenant-scoped.
    "lo_",
    // They run the SQL text (or read a whole table/schema) given as argument.
    "query_to_xml",
    "table_to_xml",
    "cursor_to_xml",
    "schema_to_xml",
    "database_to_xml",
];

/// Whether a function name (any case, any schema) is on the deny list.
pub(crate) fn is_denied_function(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&name.as_str()) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Parses, scopes and renders `sql`; returns the new text and the statement's
/// own parameter count.
pub(crate) fn rewrite(
    sql: &str,
    registry: &TableRegistry,
    dialect: Dialect,
) -> Result<(String, usize), GuardError> {
    let parser_dialect: &dyn SqlDialect = match dialect {
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Sqlite => &SQLiteDialect {},
    };
    let prepared = params::prepare(sql, parser_dialect, dialect)?;
    let mut statements = Parser::new(parser_dialect)
        .with_tokens_with_locations(prepared.tokens)
        .parse_statements()
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => GuardError::TooComplex,
            other => GuardError::Parse(other.to_string()),
        })?;
    if statements.len() > 1 {
        return Err(GuardError::MultipleStatements);
    }
    let mut statement = statements.pop().ok_or(GuardError::Empty)?;
    let placeholder = match dialect {
        Dialect::Postgres => format!("${}", prepared.user_params + 1),
        Dialect::Sqlite => format!("?{}", prepared.user_params + 1),
    };
    let mut rewriter = Rewriter {
        registry,
        dialect,
        tenant: Expr::value(Value::Placeholder(placeholder)),
        user_params: prepared.user_params,
        depth: 0,
    };
    rewriter.statement(&mut statement)?;
    Ok((statement.to_string(), prepared.user_params))
}

/// The refusal for a statement kind the guard does not scope.
fn classify(statement: &Statement) -> GuardError {
    let debug = format!("{statement:?}");
    let kind = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    match kind {
        "Set" | "Reset" | "ShowVariable" | "ShowVariables" | "ShowStatus" | "Use" | "Discard"
        | "AlterSession" | "Pragma" => GuardError::SetOrSessionControl,
        "StartTransaction" | "Commit" | "Rollback" | "Savepoint" | "ReleaseSavepoint" => {
            GuardError::TransactionControl
        }
        "Copy" | "CopyIntoSnowflake" | "Unload" | "LoadData" | "ExportData" => GuardError::Copy,
        k if [
            "Create", "Alter", "Drop", "Truncate", "Comment", "Rename", "Grant", "Revoke", "Deny",
            "Attach", "Detach",
        ]
        .iter()
        .any(|p| k.starts_with(p)) =>
        {
            GuardError::Ddl
        }
        k => GuardError::Unsupported(format!("{k} statement")),
    }
}

fn unsupported(what: &str) -> GuardError {
    GuardError::Unsupported(what.to_string())
}

/// `Ok(())` when `cond` holds, else the refusal for `what`.
fn require(cond: bool, what: &str) -> Result<(), GuardError> {
    if cond { Ok(()) } else { Err(unsupported(what)) }
}

/// How a table reference resolves.
enum Resolved<'r> {
    /// A registered tenant table with its tenant column.
    Tenant(&'r str),
    /// A registered shared table.
    Shared,
    /// A common table expression in scope.
    Cte,
}

struct Rewriter<'r> {
    registry: &'r TableRegistry,
    dialect: Dialect,
    /// The tenant placeholder expression.
    tenant: Expr,
    /// Highest placeholder index of the original statement.
    user_params: usize,
    depth: usize,
}

impl<'r> Rewriter<'r> {
    fn enter(&mut self) -> Result<(), GuardError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(GuardError::TooComplex)
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ----- names -------------------------------------------------------------

    /// How the dialect compares an identifier: PostgreSQL keeps quoted
    /// identifiers as written and folds unquoted ones; SQLite folds both.
    fn norm(&self, ident: &Ident) -> String {
        match (self.dialect, ident.quote_style) {
            (Dialect::Postgres, Some(_)) => ident.value.clone(),
            _ => ident.value.to_ascii_lowercase(),
        }
    }

    fn default_schema(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "public",
            Dialect::Sqlite => "main",
        }
    }

    fn idents(name: &ObjectName) -> Result<Vec<&Ident>, GuardError> {
        name.0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => Ok(ident),
                ObjectNamePart::Function(_) => Err(unsupported("function in an object name")),
            })
            .collect()
    }

    fn resolve(&self, name: &ObjectName, ctes: &[String]) -> Result<Resolved<'r>, GuardError> {
        let idents = Self::idents(name)?;
        let normed: Vec<String> = idents.iter().map(|i| self.norm(i)).collect();
        let found = match normed.as_slice() {
            [table] if ctes.contains(table) => return Ok(Resolved::Cte),
            [table] => self.registry.get(table),
            [schema, table] => self.registry.get(&format!("{schema}.{table}")).or_else(|| {
                (schema == self.default_schema())
                    .then(|| self.registry.get(table))
                    .flatten()
            }),
            _ => None,
        };
        match found {
            Some(TableKind::Tenant { column }) => Ok(Resolved::Tenant(column)),
            Some(TableKind::Shared) => Ok(Resolved::Shared),
            None => Err(GuardError::UnknownTable(name.to_string())),
        }
    }

    /// The tenant column as an identifier, quoted when it is not a plain
    /// lowercase name or collides with a keyword.
    fn column_ident(column: &str) -> Ident {
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
    fn predicate(&self, qualifier: &[Ident], column: &str) -> Expr {
        let mut path = qualifier.to_vec();
        path.push(Self::column_ident(column));
        Expr::BinaryOp {
            left: Box::new(Expr::CompoundIdentifier(path)),
            op: BinaryOperator::Eq,
            right: Box::new(self.tenant.clone()),
        }
    }

    /// Whether an assignment or insert column names the tenant column. Compared
    /// case-insensitively whatever the quoting (fail closed).
    fn names_column(name: &ObjectName, column: &str) -> bool {
        match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => ident.value.eq_ignore_ascii_case(column),
            // Not an identifier: cannot tell, so treat it as the tenant column.
            _ => true,
        }
    }

    // ----- statements --------------------------------------------------------

    fn statement(&mut self, statement: &mut Statement) -> Result<(), GuardError> {
        match statement {
            Statement::Query(query) => self.query(query, &[], true),
            Statement::Insert(insert) => self.insert(insert, &[]),
            Statement::Update(update) => self.update(update, &[]),
            Statement::Delete(delete) => self.delete(delete, &[]),
            other => Err(classify(other)),
        }
    }

    /// Resolves the target of a write: it must be a registered tenant table.
    fn write_target(&self, name: &ObjectName, ctes: &[String]) -> Result<&'r str, GuardError> {
        match self.resolve(name, ctes)? {
            Resolved::Tenant(column) => Ok(column),
            Resolved::Shared => Err(GuardError::SharedTableWrite(name.to_string())),
            Resolved::Cte => Err(unsupported("write to a common table expression")),
        }
    }

    fn insert(&mut self, insert: &mut Insert, ctes: &[String]) -> Result<(), GuardError> {
        let Insert {
            insert_token: _,
            optimizer_hints,
            or,
            ignore,
            into: _,
            table,
            table_alias,
            columns,
            by_name,
            overwrite,
            source,
            assignments,
            partitioned,
            after_columns,
            overriding: _,
            has_table_keyword,
            on,
            returning,
            output,
            replace_into,
            priority,
            insert_alias,
            settings,
            format_clause,
            multi_table_insert_type,
            multi_table_into_clauses,
            multi_table_when_clauses,
            multi_table_else_clause,
        } = insert;
        if *replace_into || matches!(or, Some(SqliteOnConflict::Replace)) {
            return Err(GuardError::ReplaceConflict);
        }
        require(optimizer_hints.is_empty(), "optimizer hints")?;
        require(!*ignore, "INSERT IGNORE")?;
        require(
            !*by_name && !*overwrite && !*has_table_keyword,
            "INSERT variant",
        )?;
        require(
            assignments.is_empty() && partitioned.is_none() && after_columns.is_empty(),
            "INSERT .. SET / PARTITION",
        )?;
        require(
            output.is_none()
                && priority.is_none()
                && insert_alias.is_none()
                && settings.is_none()
                && format_clause.is_none()
                && multi_table_insert_type.is_none()
                && multi_table_into_clauses.is_empty()
                && multi_table_when_clauses.is_empty()
                && multi_table_else_clause.is_none(),
            "INSERT clause",
        )?;
        let TableObject::TableName(name) = table else {
            return Err(unsupported("INSERT into a table function or query"));
        };
        let column = self.write_target(name, ctes)?;
        if columns.is_empty() {
            return Err(GuardError::InsertWithoutColumns);
        }
        if columns.iter().any(|c| Self::names_column(c, column)) {
            return Err(GuardError::LiteralTenantValue);
        }
        let Some(source) = source else {
            return Err(GuardError::InsertWithoutColumns);
        };
        // Scope the source first (its own tenant tables), then append the
        // tenant value to every row it produces.
        self.query(source, ctes, false)?;
        self.append_tenant(&mut source.body)?;
        columns.push(ObjectName::from(vec![Self::column_ident(column)]));

        let qualifier: Vec<Ident> = match table_alias {
            Some(alias) => vec![alias.alias.clone()],
            None => Self::idents(name)?.into_iter().cloned().collect(),
        };
        match on {
            None => {}
            Some(OnInsert::OnConflict(OnConflict {
                conflict_target: _,
                action,
            })) => match action {
                OnConflictAction::DoNothing => {}
                OnConflictAction::DoUpdate(DoUpdate {
                    assignments,
                    selection,
                }) => {
                    self.assignments(assignments, column, ctes)?;
                    if let Some(selection) = selection.as_mut() {
                        self.expr(selection, ctes)?;
                    }
                    let pred = self.predicate(&qualifier, column);
                    *selection = conjoin(selection.take(), vec![pred]);
                }
            },
            Some(_) => return Err(unsupported("ON DUPLICATE KEY UPDATE")),
        }
        self.returning(returning, ctes)
    }

    /// Appends the tenant value to every row a source query produces.
    fn append_tenant(&mut self, body: &mut SetExpr) -> Result<(), GuardError> {
        self.enter()?;
        match body {
            SetExpr::Values(values) => {
                for row in &mut values.rows {
                    row.content.push(self.tenant.clone());
                }
            }
            SetExpr::Select(select) => select
                .projection
                .push(SelectItem::UnnamedExpr(self.tenant.clone())),
            SetExpr::SetOperation { left, right, .. } => {
                self.append_tenant(left)?;
                self.append_tenant(right)?;
            }
            SetExpr::Query(query) => self.append_tenant(&mut query.body)?,
            _ => return Err(unsupported("INSERT source")),
        }
        self.leave();
        Ok(())
    }

    fn assignments(
        &mut self,
        assignments: &mut [Assignment],
        column: &str,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        for Assignment { target, value } in assignments {
            let touches = match target {
                AssignmentTarget::ColumnName(name) => Self::names_column(name, column),
                AssignmentTarget::Tuple(names) => {
                    names.iter().any(|n| Self::names_column(n, column))
                }
            };
            if touches {
                return Err(GuardError::TenantColumnUpdate);
            }
            self.expr(value, ctes)?;
        }
        Ok(())
    }

    fn returning(
        &mut self,
        returning: &mut Option<Vec<SelectItem>>,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        for item in returning.iter_mut().flatten() {
            self.select_item(item, ctes)?;
        }
        Ok(())
    }

    /// The target of an UPDATE or DELETE: a plain reference to a tenant
    /// table. Returns the predicate for it.
    fn target_predicate(
        &mut self,
        target: &TableWithJoins,
        ctes: &[String],
    ) -> Result<Expr, GuardError> {
        require(target.joins.is_empty(), "joins in the target of a write")?;
        let TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_directives,
            inheritance: _,
        } = &target.relation
        else {
            return Err(unsupported("target of a write that is not a table"));
        };
        require(
            args.is_none()
                && with_hints.is_empty()
                && version.is_none()
                && !*with_ordinality
                && partitions.is_empty()
                && json_path.is_none()
                && sample.is_none()
                && index_directives.is_empty(),
            "table modifier on the target of a write",
        )?;
        let column = self.write_target(name, ctes)?;
        let qualifier: Vec<Ident> = match alias {
            Some(alias) => {
                require(
                    alias.columns.is_empty(),
                    "column alias list on a tenant table",
                )?;
                vec![alias.name.clone()]
            }
            None => Self::idents(name)?.into_iter().cloned().collect(),
        };
        Ok(self.predicate(&qualifier, column))
    }

    fn target_column(
        &self,
        target: &TableWithJoins,
        ctes: &[String],
    ) -> Result<&'r str, GuardError> {
        match &target.relation {
            TableFactor::Table { name, .. } => self.write_target(name, ctes),
            _ => Err(unsupported("target of a write that is not a table")),
        }
    }

    fn update(&mut self, update: &mut Update, ctes: &[String]) -> Result<(), GuardError> {
        let Update {
            update_token: _,
            optimizer_hints,
            table,
            on_cluster,
            assignments,
            from,
            selection,
            returning,
            output,
            or,
            order_by,
            limit,
            settings,
        } = update;
        if matches!(or, Some(SqliteOnConflict::Replace)) {
            return Err(GuardError::ReplaceConflict);
        }
        require(
            optimizer_hints.is_empty()
                && on_cluster.is_none()
                && output.is_none()
                && order_by.is_empty()
                && limit.is_none()
                && settings.is_none(),
            "UPDATE clause",
        )?;
        let target = self.target_predicate(table, ctes)?;
        let column = self.target_column(table, ctes)?;
        self.assignments(assignments, column, ctes)?;
        let mut preds = vec![target];
        match from {
            None => {}
            Some(UpdateTableFromKind::AfterSet(items)) => {
                preds.extend(self.scope_from_list(items, ctes)?);
            }
            Some(UpdateTableFromKind::BeforeSet(_)) => {
                return Err(unsupported("UPDATE FROM before SET"));
            }
        }
        if let Some(selection) = selection.as_mut() {
            self.expr(selection, ctes)?;
        }
        *selection = conjoin(selection.take(), preds);
        self.returning(returning, ctes)
    }

    fn delete(&mut self, delete: &mut Delete, ctes: &[String]) -> Result<(), GuardError> {
        let Delete {
            delete_token: _,
            optimizer_hints,
            tables,
            from,
            on_cluster,
            using,
            selection,
            returning,
            output,
            order_by,
            limit,
            settings,
        } = delete;
        require(
            optimizer_hints.is_empty()
                && tables.is_empty()
                && on_cluster.is_none()
                && output.is_none()
                && order_by.is_empty()
                && limit.is_none()
                && settings.is_none(),
            "DELETE clause",
        )?;
        let (FromTable::WithFromKeyword(targets) | FromTable::WithoutKeyword(targets)) = from;
        let [target] = targets.as_slice() else {
            return Err(unsupported("DELETE from several tables"));
        };
        let mut preds = vec![self.target_predicate(target, ctes)?];
        if let Some(items) = using {
            preds.extend(self.scope_from_list(items, ctes)?);
        }
        if let Some(selection) = selection.as_mut() {
            self.expr(selection, ctes)?;
        }
        *selection = conjoin(selection.take(), preds);
        self.returning(returning, ctes)
    }

    // ----- queries -----------------------------------------------------------

    /// Scopes a query. `top` allows a data-modifying body (`WITH .. UPDATE`)
    /// only for the statement itself, never inside a CTE or subquery.
    fn query(&mut self, query: &mut Query, outer: &[String], top: bool) -> Result<(), GuardError> {
        self.enter()?;
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks: _,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        require(
            for_clause.is_none()
                && settings.is_none()
                && format_clause.is_none()
                && pipe_operators.is_empty(),
            "query clause",
        )?;
        let mut visible = outer.to_vec();
        if let Some(with) = with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| self.norm(&cte.alias.name))
                .collect();
            for (cte, name) in with.cte_tables.iter().zip(&names) {
                if self.registry.get(name).is_some()
                    || (self.dialect == Dialect::Postgres
                        && cte.alias.name.quote_style.is_some()
                        && self.registry.get(&name.to_ascii_lowercase()).is_some())
                {
                    return Err(GuardError::ShadowedTable(cte.alias.name.value.clone()));
                }
            }
            for (i, cte) in with.cte_tables.iter_mut().enumerate() {
                require(cte.from.is_none(), "CTE FROM")?;
                // A CTE sees the CTEs before it, and itself when RECURSIVE; a
                // name that is not in scope is a real table (so it is scoped or
                // refused), never assumed to be a CTE.
                let upto = if with.recursive { i + 1 } else { i };
                let mut scope = visible.clone();
                scope.extend(names.iter().take(upto).cloned());
                self.query(&mut cte.query, &scope, false)?;
            }
            visible.extend(names);
        }
        self.set_expr(body, &visible, top)?;
        if let Some(OrderBy { kind, interpolate }) = order_by {
            require(interpolate.is_none(), "ORDER BY INTERPOLATE")?;
            if let OrderByKind::Expressions(exprs) = kind {
                self.order_by_exprs(exprs, &visible)?;
            }
        }
        match limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                require(limit_by.is_empty(), "LIMIT BY")?;
                if let Some(limit) = limit {
                    self.expr(limit, &visible)?;
                }
                if let Some(offset) = offset {
                    self.expr(&mut offset.value, &visible)?;
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.expr(offset, &visible)?;
                self.expr(limit, &visible)?;
            }
        }
        if let Some(quantity) = fetch.as_mut().and_then(|f| f.quantity.as_mut()) {
            self.expr(quantity, &visible)?;
        }
        self.leave();
        Ok(())
    }

    fn set_expr(
        &mut self,
        body: &mut SetExpr,
        ctes: &[String],
        top: bool,
    ) -> Result<(), GuardError> {
        self.enter()?;
        match body {
            SetExpr::Select(select) => self.select(select, ctes)?,
            SetExpr::Query(query) => self.query(query, ctes, false)?,
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, ctes, false)?;
                self.set_expr(right, ctes, false)?;
            }
            SetExpr::Values(Values { rows, .. }) => {
                for row in rows {
                    for e in &mut row.content {
                        self.expr(e, ctes)?;
                    }
                }
            }
            SetExpr::Insert(Statement::Insert(insert)) if top => self.insert(insert, ctes)?,
            SetExpr::Update(Statement::Update(update)) if top => self.update(update, ctes)?,
            SetExpr::Delete(Statement::Delete(delete)) if top => self.delete(delete, ctes)?,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                return Err(unsupported("data-modifying statement inside a query"));
            }
            SetExpr::Table(_) => return Err(unsupported("TABLE command")),
        }
        self.leave();
        Ok(())
    }

    fn select(&mut self, select: &mut Select, ctes: &[String]) -> Result<(), GuardError> {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct,
            select_modifiers,
            top,
            top_before_distinct: _,
            projection,
            exclude: _,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor,
        } = select;
        if into.is_some() {
            // SELECT .. INTO creates a table.
            return Err(GuardError::Ddl);
        }
        require(
            optimizer_hints.is_empty()
                && select_modifiers.is_none()
                && top.is_none()
                && lateral_views.is_empty()
                && prewhere.is_none()
                && connect_by.is_empty()
                && cluster_by.is_empty()
                && distribute_by.is_empty()
                && sort_by.is_empty()
                && qualify.is_none()
                && value_table_mode.is_none()
                && matches!(flavor, SelectFlavor::Standard),
            "SELECT clause",
        )?;
        if let Some(sqlparser::ast::Distinct::On(exprs)) = distinct {
            for e in exprs {
                self.expr(e, ctes)?;
            }
        }
        for item in projection.iter_mut() {
            self.select_item(item, ctes)?;
        }
        let preds = self.scope_from_list(from, ctes)?;
        if let Some(selection) = selection.as_mut() {
            self.expr(selection, ctes)?;
        }
        match group_by {
            GroupByExpr::All(_) => {}
            GroupByExpr::Expressions(exprs, _) => {
                for e in exprs {
                    self.expr(e, ctes)?;
                }
            }
        }
        if let Some(having) = having {
            self.expr(having, ctes)?;
        }
        for window in named_window.iter_mut() {
            if let NamedWindowExpr::WindowSpec(spec) = &mut window.1 {
                self.window_spec(spec, ctes)?;
            }
        }
        *selection = conjoin(selection.take(), preds);
        Ok(())
    }

    fn select_item(&mut self, item: &mut SelectItem, ctes: &[String]) -> Result<(), GuardError> {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                self.expr(e, ctes)
            }
            SelectItem::Wildcard(options) => Self::wildcard_options(options),
            SelectItem::QualifiedWildcard(kind, options) => {
                Self::wildcard_options(options)?;
                match kind {
                    SelectItemQualifiedWildcardKind::ObjectName(_) => Ok(()),
                    SelectItemQualifiedWildcardKind::Expr(e) => self.expr(e, ctes),
                }
            }
            _ => Err(unsupported("select item")),
        }
    }

    fn wildcard_options(options: &WildcardAdditionalOptions) -> Result<(), GuardError> {
        require(options.opt_replace.is_none(), "wildcard REPLACE")
    }

    /// Scopes a FROM list; returns the predicates that belong in WHERE.
    fn scope_from_list(
        &mut self,
        items: &mut [TableWithJoins],
        ctes: &[String],
    ) -> Result<Vec<Expr>, GuardError> {
        let mut preds = Vec::new();
        for item in items {
            preds.extend(self.table_with_joins(item, ctes)?);
        }
        Ok(preds)
    }

    /// Scopes a join tree. Predicates of tables on the nullable side of an
    /// outer join go into that join's ON clause; the rest (the preserved side)
    /// are returned for the enclosing WHERE (or ON, when the whole tree is
    /// itself the nullable side of an outer join).
    fn table_with_joins(
        &mut self,
        item: &mut TableWithJoins,
        ctes: &[String],
    ) -> Result<Vec<Expr>, GuardError> {
        self.enter()?;
        let mut pending = self.table_factor(&mut item.relation, ctes)?;
        for join in &mut item.joins {
            require(!join.global, "GLOBAL join")?;
            let right = self.table_factor(&mut join.relation, ctes)?;
            match &mut join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                    self.constraint(c, ctes)?;
                    pending.extend(right);
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    self.constraint(c, ctes)?;
                    add_to_on(c, right)?;
                }
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                    self.constraint(c, ctes)?;
                    add_to_on(c, std::mem::take(&mut pending))?;
                    pending = right;
                }
                JoinOperator::FullOuter(c) => {
                    self.constraint(c, ctes)?;
                    // Both sides are preserved and nullable: no placement of
                    // the predicate is both safe and faithful.
                    require(
                        pending.is_empty() && right.is_empty(),
                        "FULL OUTER JOIN over a tenant table",
                    )?;
                }
                _ => return Err(unsupported("join kind")),
            }
        }
        self.leave();
        Ok(pending)
    }

    fn constraint(&mut self, c: &mut JoinConstraint, ctes: &[String]) -> Result<(), GuardError> {
        match c {
            JoinConstraint::On(e) => self.expr(e, ctes),
            JoinConstraint::Using(_) | JoinConstraint::Natural | JoinConstraint::None => Ok(()),
            JoinConstraint::UsingAlias(..) => Err(unsupported("USING .. AS")),
        }
    }

    /// Scopes one FROM item; returns the predicates for the tenant tables it
    /// exposes.
    fn table_factor(
        &mut self,
        factor: &mut TableFactor,
        ctes: &[String],
    ) -> Result<Vec<Expr>, GuardError> {
        self.enter()?;
        let preds = match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance: _,
            } => {
                if args.is_some() {
                    return Err(GuardError::UnknownTable(format!("{name}(..)")));
                }
                require(
                    with_hints.is_empty()
                        && version.is_none()
                        && !*with_ordinality
                        && partitions.is_empty()
                        && json_path.is_none()
                        && sample.is_none()
                        && index_directives.is_empty(),
                    "table modifier",
                )?;
                match self.resolve(name, ctes)? {
                    Resolved::Cte | Resolved::Shared => Vec::new(),
                    Resolved::Tenant(column) => {
                        let qualifier: Vec<Ident> = match alias {
                            Some(alias) => {
                                // `assets AS a(x, tenant_id)` renames columns by
                                // position: `a.tenant_id` could be another column.
                                require(
                                    alias.columns.is_empty(),
                                    "column alias list on a tenant table",
                                )?;
                                vec![alias.name.clone()]
                            }
                            None => Self::idents(name)?.into_iter().cloned().collect(),
                        };
                        vec![self.predicate(&qualifier, column)]
                    }
                }
            }
            TableFactor::Derived {
                lateral: _,
                subquery,
                alias: _,
                sample,
            } => {
                require(sample.is_none(), "TABLESAMPLE")?;
                self.query(subquery, ctes, false)?;
                Vec::new()
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                // An alias would hide the inner names the predicates use.
                require(alias.is_none(), "alias on a parenthesised join")?;
                self.table_with_joins(table_with_joins, ctes)?
            }
            _ => return Err(unsupported("table-valued function or FROM item kind")),
        };
        self.leave();
        Ok(preds)
    }

    // ----- expressions -------------------------------------------------------

    fn order_by_exprs(
        &mut self,
        exprs: &mut [OrderByExpr],
        ctes: &[String],
    ) -> Result<(), GuardError> {
        for OrderByExpr {
            expr,
            options: _,
            with_fill,
        } in exprs
        {
            require(with_fill.is_none(), "ORDER BY WITH FILL")?;
            self.expr(expr, ctes)?;
        }
        Ok(())
    }

    fn window_spec(&mut self, spec: &mut WindowSpec, ctes: &[String]) -> Result<(), GuardError> {
        for e in &mut spec.partition_by {
            self.expr(e, ctes)?;
        }
        self.order_by_exprs(&mut spec.order_by, ctes)?;
        if let Some(frame) = &mut spec.window_frame {
            for bound in std::iter::once(&mut frame.start_bound).chain(frame.end_bound.as_mut()) {
                if let WindowFrameBound::Preceding(Some(e)) | WindowFrameBound::Following(Some(e)) =
                    bound
                {
                    self.expr(e, ctes)?;
                }
            }
        }
        Ok(())
    }

    fn function(&mut self, function: &mut Function, ctes: &[String]) -> Result<(), GuardError> {
        let Function {
            name,
            uses_odbc_syntax: _,
            parameters,
            args,
            within_group,
            filter,
            null_treatment: _,
            over,
        } = function;
        // Any schema: `pg_catalog.set_config` is `set_config`.
        match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) if !is_denied_function(&ident.value) => {}
            Some(ObjectNamePart::Identifier(ident)) => {
                return Err(GuardError::ForbiddenFunction(
                    ident.value.to_ascii_lowercase(),
                ));
            }
            _ => return Err(unsupported("function name")),
        }
        self.function_arguments(parameters, ctes)?;
        self.function_arguments(args, ctes)?;
        self.order_by_exprs(within_group, ctes)?;
        if let Some(filter) = filter {
            self.expr(filter, ctes)?;
        }
        if let Some(WindowType::WindowSpec(spec)) = over {
            self.window_spec(spec, ctes)?;
        }
        Ok(())
    }

    fn function_arguments(
        &mut self,
        arguments: &mut FunctionArguments,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        match arguments {
            FunctionArguments::None => Ok(()),
            FunctionArguments::Subquery(query) => self.query(query, ctes, false),
            FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: _,
                args,
                clauses,
            }) => {
                for arg in args {
                    match arg {
                        FunctionArg::Named { arg, .. } => self.function_arg_expr(arg, ctes)?,
                        FunctionArg::ExprNamed { name, arg, .. } => {
                            self.expr(name, ctes)?;
                            self.function_arg_expr(arg, ctes)?;
                        }
                        FunctionArg::Unnamed(arg) => self.function_arg_expr(arg, ctes)?,
                    }
                }
                for clause in clauses {
                    match clause {
                        FunctionArgumentClause::IgnoreOrRespectNulls(_) => {}
                        FunctionArgumentClause::OrderBy(exprs) => {
                            self.order_by_exprs(exprs, ctes)?
                        }
                        FunctionArgumentClause::Limit(e) => self.expr(e, ctes)?,
                        _ => return Err(unsupported("function argument clause")),
                    }
                }
                Ok(())
            }
        }
    }

    fn function_arg_expr(
        &mut self,
        arg: &mut FunctionArgExpr,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        match arg {
            FunctionArgExpr::Expr(e) => self.expr(e, ctes),
            FunctionArgExpr::QualifiedWildcard(_) | FunctionArgExpr::Wildcard => Ok(()),
            FunctionArgExpr::WildcardWithOptions(options) => Self::wildcard_options(options),
        }
    }

    fn placeholder(&self, p: &str) -> Result<(), GuardError> {
        let prefix = match self.dialect {
            Dialect::Postgres => '$',
            Dialect::Sqlite => '?',
        };
        match p.strip_prefix(prefix).and_then(params::parse_index) {
            Some(n) if n <= self.user_params => Ok(()),
            _ => Err(GuardError::UnsupportedPlaceholder(p.to_string())),
        }
    }

    fn exprs(&mut self, exprs: &mut [Expr], ctes: &[String]) -> Result<(), GuardError> {
        for e in exprs {
            self.expr(e, ctes)?;
        }
        Ok(())
    }

    fn opt(&mut self, e: &mut Option<Box<Expr>>, ctes: &[String]) -> Result<(), GuardError> {
        match e {
            Some(e) => self.expr(e, ctes),
            None => Ok(()),
        }
    }

    fn expr(&mut self, expr: &mut Expr, ctes: &[String]) -> Result<(), GuardError> {
        self.enter()?;
        match expr {
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::TypedString(_)
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => {}
            Expr::Value(v) => {
                if let Value::Placeholder(p) = &v.value {
                    self.placeholder(p)?;
                }
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.expr(root, ctes)?;
                for access in access_chain {
                    match access {
                        AccessExpr::Dot(e) => self.expr(e, ctes)?,
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            self.expr(index, ctes)?;
                        }
                        AccessExpr::Subscript(Subscript::Slice {
                            lower_bound,
                            upper_bound,
                            stride,
                        }) => {
                            for e in [lower_bound, upper_bound, stride].into_iter().flatten() {
                                self.expr(e, ctes)?;
                            }
                        }
                    }
                }
            }
            Expr::JsonAccess { value, path } => {
                self.expr(value, ctes)?;
                for elem in &mut path.path {
                    match elem {
                        JsonPathElem::Dot { .. } => {}
                        JsonPathElem::Bracket { key } | JsonPathElem::ColonBracket { key } => {
                            self.expr(key, ctes)?;
                        }
                    }
                }
            }
            Expr::IsFalse(e)
            | Expr::IsNotFalse(e)
            | Expr::IsTrue(e)
            | Expr::IsNotTrue(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsUnknown(e)
            | Expr::IsNotUnknown(e)
            | Expr::Nested(e)
            | Expr::UnaryOp { expr: e, .. }
            | Expr::Cast { expr: e, .. }
            | Expr::Extract { expr: e, .. }
            | Expr::Ceil { expr: e, .. }
            | Expr::Floor { expr: e, .. }
            | Expr::Collate { expr: e, .. }
            | Expr::Prefixed { value: e, .. }
            | Expr::Named { expr: e, .. }
            | Expr::IsJson { expr: e, .. }
            | Expr::IsNormalized { expr: e, .. } => self.expr(e, ctes)?,
            Expr::IsDistinctFrom(a, b)
            | Expr::IsNotDistinctFrom(a, b)
            | Expr::BinaryOp {
                left: a, right: b, ..
            }
            | Expr::AnyOp {
                left: a, right: b, ..
            }
            | Expr::AllOp {
                left: a, right: b, ..
            }
            | Expr::AtTimeZone {
                timestamp: a,
                time_zone: b,
            }
            | Expr::Position { expr: a, r#in: b }
            | Expr::RLike {
                expr: a,
                pattern: b,
                ..
            } => {
                self.expr(a, ctes)?;
                self.expr(b, ctes)?;
            }
            Expr::Like {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::SimilarTo {
                expr,
                pattern,
                escape_char,
                ..
            } => {
                self.expr(expr, ctes)?;
                self.expr(pattern, ctes)?;
                self.opt(escape_char, ctes)?;
            }
            Expr::In { expr, target, .. } => {
                self.expr(expr, ctes)?;
                match target {
                    InTarget::List(list) => self.exprs(list, ctes)?,
                    InTarget::Subquery(query) => self.query(query, ctes, false)?,
                    InTarget::Unnest(e) => self.expr(e, ctes)?,
                    _ => return Err(unsupported("IN target")),
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.expr(expr, ctes)?;
                self.expr(low, ctes)?;
                self.expr(high, ctes)?;
            }
            Expr::Convert { expr, styles, .. } => {
                self.expr(expr, ctes)?;
                self.exprs(styles, ctes)?;
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                self.expr(expr, ctes)?;
                self.opt(substring_from, ctes)?;
                self.opt(substring_for, ctes)?;
            }
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                self.expr(expr, ctes)?;
                self.opt(trim_what, ctes)?;
                if let Some(chars) = trim_characters {
                    self.exprs(chars, ctes)?;
                }
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                self.expr(expr, ctes)?;
                self.expr(overlay_what, ctes)?;
                self.expr(overlay_from, ctes)?;
                self.opt(overlay_for, ctes)?;
            }
            Expr::Function(function) => self.function(function, ctes)?,
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                self.opt(operand, ctes)?;
                for when in conditions {
                    self.expr(&mut when.condition, ctes)?;
                    self.expr(&mut when.result, ctes)?;
                }
                self.opt(else_result, ctes)?;
            }
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => {
                self.query(subquery, ctes, false)?;
            }
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                for set in sets {
                    self.exprs(set, ctes)?;
                }
            }
            Expr::Tuple(list) => self.exprs(list, ctes)?,
            Expr::Array(array) => self.exprs(&mut array.elem, ctes)?,
            Expr::Interval(interval) => self.expr(&mut interval.value, ctes)?,
            _ => return Err(unsupported("expression kind")),
        }
        self.leave();
        Ok(())
    }
}

/// `(<existing>) AND p1 AND p2 ..`, or just the predicates.
fn conjoin(existing: Option<Expr>, preds: Vec<Expr>) -> Option<Expr> {
    if preds.is_empty() {
        return existing;
    }
    let mut acc = existing.map(|e| match e {
        nested @ Expr::Nested(_) => nested,
        other => Expr::Nested(Box::new(other)),
    });
    for pred in preds {
        acc = Some(match acc {
            None => pred,
            Some(left) => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::And,
                right: Box::new(pred),
            },
        });
    }
    acc
}

/// ANDs predicates into an outer join's ON clause.
fn add_to_on(c: &mut JoinConstraint, preds: Vec<Expr>) -> Result<(), GuardError> {
    if preds.is_empty() {
        return Ok(());
    }
    match c {
        JoinConstraint::On(e) => {
            let existing = std::mem::replace(e, Expr::value(Value::Boolean(true)));
            if let Some(joined) = conjoin(Some(existing), preds) {
                *e = joined;
            }
            Ok(())
        }
        _ => Err(unsupported("outer join over a tenant table without ON")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> TableRegistry {
        TableRegistry::new()
            .tenant_table("assets", "tenant_id")
            .tenant_table("work_orders", "tenant_id")
            .shared_table("countries")
    }

    fn pg(sql: &str) -> Result<String, GuardError> {
        rewrite(sql, &registry(), Dialect::Postgres).map(|(s, _)| s)
    }

    fn lite(sql: &str) -> Result<String, GuardError> {
        rewrite(sql, &registry(), Dialect::Sqlite).map(|(s, _)| s)
    }

    #[track_caller]
    fn accepts(sql: &str, expected: &str) {
        assert_eq!(pg(sql).as_deref(), Ok(expected), "{sql}");
    }

    #[track_caller]
    fn refuses(sql: &str, expected: GuardError) {
        assert_eq!(pg(sql), Err(expected), "{sql}");
    }

    fn unsupported_refusal(sql: &str) -> bool {
        matches!(pg(sql), Err(GuardError::Unsupported(_)))
    }

    #[test]
    fn select_gets_the_predicate_in_where() {
        accepts(
            "SELECT id FROM assets",
            "SELECT id FROM assets WHERE assets.tenant_id = $1",
        );
        accepts(
            "SELECT a.id FROM assets AS a WHERE a.name = $1 OR a.id = $2",
            "SELECT a.id FROM assets AS a WHERE (a.name = $1 OR a.id = $2) AND a.tenant_id = $3",
        );
        accepts(
            "SELECT * FROM public.assets",
            "SELECT * FROM public.assets WHERE public.assets.tenant_id = $1",
        );
        accepts("SELECT * FROM countries", "SELECT * FROM countries");
        accepts("SELECT 1", "SELECT 1");
    }

    #[test]
    fn outer_joins_keep_their_meaning() {
        accepts(
            "SELECT * FROM assets a LEFT JOIN work_orders w ON w.asset_id = a.id",
            "SELECT * FROM assets a LEFT JOIN work_orders w ON (w.asset_id = a.id) AND w.tenant_id = $1 WHERE a.tenant_id = $1",
        );
        accepts(
            "SELECT * FROM assets a RIGHT JOIN work_orders w ON w.asset_id = a.id",
            "SELECT * FROM assets a RIGHT JOIN work_orders w ON (w.asset_id = a.id) AND a.tenant_id = $1 WHERE w.tenant_id = $1",
        );
        accepts(
            "SELECT * FROM countries c LEFT JOIN assets a ON a.name = c.name",
            "SELECT * FROM countries c LEFT JOIN assets a ON (a.name = c.name) AND a.tenant_id = $1",
        );
        accepts(
            "SELECT * FROM countries c FULL JOIN countries d ON c.code = d.code",
            "SELECT * FROM countries c FULL JOIN countries d ON c.code = d.code",
        );
        assert!(unsupported_refusal(
            "SELECT * FROM assets a FULL JOIN work_orders w ON w.asset_id = a.id"
        ));
        assert!(unsupported_refusal(
            "SELECT * FROM assets a LEFT JOIN work_orders w USING (id)"
        ));
        assert!(unsupported_refusal(
            "SELECT * FROM assets a NATURAL LEFT JOIN work_orders w"
        ));
    }

    #[test]
    fn nested_joins_place_predicates_by_side() {
        accepts(
            "SELECT * FROM assets a LEFT JOIN (work_orders w JOIN assets b ON b.id = w.asset_id) ON w.asset_id = a.id",
            "SELECT * FROM assets a LEFT JOIN (work_orders w JOIN assets b ON b.id = w.asset_id) ON (w.asset_id = a.id) AND w.tenant_id = $1 AND b.tenant_id = $1 WHERE a.tenant_id = $1",
        );
        assert!(unsupported_refusal(
            "SELECT * FROM (assets a JOIN work_orders w ON a.id = w.asset_id) AS j"
        ));
    }

    #[test]
    fn subqueries_ctes_and_set_operations_are_scoped() {
        accepts(
            "SELECT (SELECT count(*) FROM work_orders w WHERE w.asset_id = a.id) FROM assets a WHERE EXISTS (SELECT 1 FROM work_orders) UNION ALL SELECT 1 FROM countries",
            "SELECT (SELECT count(*) FROM work_orders w WHERE (w.asset_id = a.id) AND w.tenant_id = $1) FROM assets a WHERE (EXISTS (SELECT 1 FROM work_orders WHERE work_orders.tenant_id = $1)) AND a.tenant_id = $1 UNION ALL SELECT 1 FROM countries",
        );
        accepts(
            "WITH x AS (SELECT * FROM assets) SELECT * FROM x",
            "WITH x AS (SELECT * FROM assets WHERE assets.tenant_id = $1) SELECT * FROM x",
        );
        accepts(
            "SELECT * FROM (SELECT * FROM assets) s WHERE s.id IN (SELECT asset_id FROM work_orders)",
            "SELECT * FROM (SELECT * FROM assets WHERE assets.tenant_id = $1) s WHERE s.id IN (SELECT asset_id FROM work_orders WHERE work_orders.tenant_id = $1)",
        );
        accepts(
            "SELECT max(id) FILTER (WHERE id IN (SELECT asset_id FROM work_orders)) FROM countries",
            "SELECT max(id) FILTER (WHERE id IN (SELECT asset_id FROM work_orders WHERE work_orders.tenant_id = $1)) FROM countries",
        );
    }

    #[test]
    fn cte_scope_follows_sql_visibility() {
        // `y` is declared after `x`: inside `x` the name is a real table.
        assert_eq!(
            pg("WITH x AS (SELECT * FROM y), y AS (SELECT 1) SELECT * FROM x"),
            Err(GuardError::UnknownTable("y".into()))
        );
        accepts(
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
            "WITH RECURSIVE t (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
        );
        refuses(
            "WITH assets AS (SELECT 1) SELECT * FROM assets",
            GuardError::ShadowedTable("assets".into()),
        );
        refuses(
            "WITH \"countries\" AS (SELECT 1) SELECT * FROM countries",
            GuardError::ShadowedTable("countries".into()),
        );
        assert!(unsupported_refusal(
            "WITH d AS (DELETE FROM assets RETURNING *) SELECT * FROM d"
        ));
    }

    #[test]
    fn insert_gets_the_tenant_column() {
        accepts(
            "INSERT INTO assets (id, name) VALUES ($1, $2), ($3, 'x') RETURNING id",
            "INSERT INTO assets (id, name, tenant_id) VALUES ($1, $2, $4), ($3, 'x', $4) RETURNING id",
        );
        accepts(
            "INSERT INTO work_orders (id, asset_id) SELECT id, id FROM assets WHERE id = $1",
            "INSERT INTO work_orders (id, asset_id, tenant_id) SELECT id, id, $2 FROM assets WHERE (id = $1) AND assets.tenant_id = $2",
        );
        accepts(
            "INSERT INTO assets (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            "INSERT INTO assets (id, name, tenant_id) VALUES ($1, $2, $3) ON CONFLICT(id) DO UPDATE SET name = excluded.name WHERE assets.tenant_id = $3",
        );
        accepts(
            "INSERT INTO assets AS a (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = 'n' WHERE a.name <> 'n'",
            "INSERT INTO assets AS a (id, tenant_id) VALUES (1, $1) ON CONFLICT(id) DO UPDATE SET name = 'n' WHERE (a.name <> 'n') AND a.tenant_id = $1",
        );
        accepts(
            "INSERT INTO assets (id) VALUES (1) ON CONFLICT DO NOTHING",
            "INSERT INTO assets (id, tenant_id) VALUES (1, $1) ON CONFLICT DO NOTHING",
        );
    }

    #[test]
    fn insert_refusals() {
        refuses(
            "INSERT INTO assets (id, tenant_id) VALUES (1, 'other')",
            GuardError::LiteralTenantValue,
        );
        refuses(
            "INSERT INTO assets (id, \"TENANT_ID\") VALUES (1, $1)",
            GuardError::LiteralTenantValue,
        );
        refuses(
            "INSERT INTO assets VALUES (1, 'x')",
            GuardError::InsertWithoutColumns,
        );
        refuses(
            "INSERT INTO assets DEFAULT VALUES",
            GuardError::InsertWithoutColumns,
        );
        refuses(
            "INSERT INTO countries (code) VALUES ('SA')",
            GuardError::SharedTableWrite("countries".into()),
        );
        refuses(
            "INSERT INTO audit (x) VALUES (1)",
            GuardError::UnknownTable("audit".into()),
        );
        refuses(
            "INSERT INTO assets (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id",
            GuardError::TenantColumnUpdate,
        );
        assert_eq!(
            lite("INSERT OR REPLACE INTO assets (id) VALUES (?)"),
            Err(GuardError::ReplaceConflict)
        );
        assert_eq!(
            lite("REPLACE INTO assets (id) VALUES (?)"),
            Err(GuardError::ReplaceConflict)
        );
    }

    #[test]
    fn update_and_delete_are_scoped() {
        accepts(
            "UPDATE assets a SET name = $1 FROM work_orders w WHERE w.asset_id = a.id",
            "UPDATE assets a SET name = $1 FROM work_orders w WHERE (w.asset_id = a.id) AND a.tenant_id = $2 AND w.tenant_id = $2",
        );
        accepts(
            "UPDATE assets SET name = 'x'",
            "UPDATE assets SET name = 'x' WHERE assets.tenant_id = $1",
        );
        accepts(
            "DELETE FROM assets USING work_orders w WHERE w.asset_id = assets.id",
            "DELETE FROM assets USING work_orders w WHERE (w.asset_id = assets.id) AND assets.tenant_id = $1 AND w.tenant_id = $1",
        );
        accepts(
            "WITH d AS (SELECT id FROM work_orders) DELETE FROM assets WHERE id IN (SELECT id FROM d)",
            "WITH d AS (SELECT id FROM work_orders WHERE work_orders.tenant_id = $1) DELETE FROM assets WHERE (id IN (SELECT id FROM d)) AND assets.tenant_id = $1",
        );
        refuses(
            "UPDATE assets SET tenant_id = $1",
            GuardError::TenantColumnUpdate,
        );
        refuses(
            "UPDATE assets SET (name, Tenant_Id) = ('x', 'y')",
            GuardError::TenantColumnUpdate,
        );
        refuses(
            "UPDATE countries SET name = 'x'",
            GuardError::SharedTableWrite("countries".into()),
        );
        refuses(
            "DELETE FROM countries",
            GuardError::SharedTableWrite("countries".into()),
        );
        assert_eq!(
            lite("UPDATE OR REPLACE assets SET id = 1"),
            Err(GuardError::ReplaceConflict)
        );
    }

    #[test]
    fn statement_kinds_are_refused_with_their_reason() {
        refuses("CREATE TABLE x (id int)", GuardError::Ddl);
        refuses("DROP TABLE assets", GuardError::Ddl);
        refuses("TRUNCATE assets", GuardError::Ddl);
        refuses(
            "ALTER TABLE assets DISABLE ROW LEVEL SECURITY",
            GuardError::Ddl,
        );
        refuses("GRANT ALL ON assets TO public", GuardError::Ddl);
        refuses("SELECT * INTO copy FROM assets", GuardError::Ddl);
        refuses("SET hisn.tenant_id = 'x'", GuardError::SetOrSessionControl);
        refuses("SET ROLE postgres", GuardError::SetOrSessionControl);
        refuses("RESET ALL", GuardError::SetOrSessionControl);
        refuses("SHOW hisn.tenant_id", GuardError::SetOrSessionControl);
        refuses("BEGIN", GuardError::TransactionControl);
        refuses("COMMIT", GuardError::TransactionControl);
        refuses("SAVEPOINT s", GuardError::TransactionControl);
        refuses("COPY assets TO STDOUT", GuardError::Copy);
        refuses("SELECT 1; SELECT 2", GuardError::MultipleStatements);
        assert!(unsupported_refusal("EXPLAIN SELECT * FROM assets"));
        assert!(unsupported_refusal("CALL p()"));
    }

    #[test]
    fn denied_functions_are_refused_anywhere() {
        for sql in [
            "SELECT set_config('hisn.tenant_id', 'x', false)",
            "SELECT * FROM assets WHERE name = current_setting('hisn.tenant_id')",
            "SELECT PG_CATALOG.SET_CONFIG('a', 'b', true)",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_sleep(10)",
            "SELECT dblink('x', 'select 1')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT query_to_xml('select * from assets', true, false, '')",
            "SELECT id FROM assets ORDER BY current_setting('x')",
            "SELECT (SELECT set_config('a', 'b', false))",
        ] {
            assert!(
                matches!(pg(sql), Err(GuardError::ForbiddenFunction(_))),
                "{sql}: {:?}",
                pg(sql)
            );
        }
        assert!(matches!(
            lite("SELECT load_extension('x')"),
            Err(GuardError::ForbiddenFunction(_))
        ));
        assert!(is_denied_function("Pg_Terminate_Backend"));
        assert!(!is_denied_function("count"));
    }

    #[test]
    fn unknown_tables_views_and_functions_are_refused() {
        for sql in [
            "SELECT * FROM pg_user",
            "SELECT * FROM assets_view",
            "SELECT * FROM other.assets",
            "SELECT * FROM \"Assets\"",
            "SELECT * FROM db.public.assets",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM assets WHERE id IN (SELECT id FROM pg_class)",
        ] {
            assert!(
                matches!(pg(sql), Err(GuardError::UnknownTable(_))),
                "{sql}: {:?}",
                pg(sql)
            );
        }
        // SQLite compares quoted names case-insensitively and knows `main`.
        assert_eq!(
            lite("SELECT * FROM main.\"ASSETS\"").as_deref(),
            Ok("SELECT * FROM main.\"ASSETS\" WHERE main.\"ASSETS\".tenant_id = ?1")
        );
        assert!(matches!(
            lite("SELECT * FROM temp.assets"),
            Err(GuardError::UnknownTable(_))
        ));
    }

    #[test]
    fn column_alias_lists_on_tenant_tables_are_refused() {
        assert!(unsupported_refusal(
            "SELECT * FROM assets AS a(id, name, tenant_id)"
        ));
        accepts(
            "SELECT * FROM (SELECT id FROM assets) AS s(x)",
            "SELECT * FROM (SELECT id FROM assets WHERE assets.tenant_id = $1) AS s (x)",
        );
    }

    #[test]
    fn sqlite_placeholders_are_numbered() {
        assert_eq!(
            lite("SELECT * FROM assets WHERE id = ? AND name = ?").as_deref(),
            Ok("SELECT * FROM assets WHERE (id = ?1 AND name = ?2) AND assets.tenant_id = ?3")
        );
        assert_eq!(
            lite("INSERT INTO assets (id, name) VALUES (?, ?)").as_deref(),
            Ok("INSERT INTO assets (id, name, tenant_id) VALUES (?1, ?2, ?3)")
        );
        assert!(matches!(
            lite("SELECT * FROM assets WHERE id = :id"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
        assert!(matches!(
            pg("SELECT * FROM assets WHERE id = :id"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(pg(&deep), Err(GuardError::TooComplex));
        let long_chain = format!("SELECT 1{}", " + 1".repeat(2000));
        assert_eq!(pg(&long_chain), Err(GuardError::TooComplex));
        let ok_chain = format!("SELECT 1{}", " OR 1 = 1".repeat(100));
        assert!(pg(&ok_chain).is_ok());
    }

    #[test]
    fn quoted_keyword_columns_are_quoted() {
        let r = TableRegistry::new().tenant_table("t", "user");
        assert_eq!(
            rewrite("SELECT * FROM t", &r, Dialect::Postgres).map(|(s, _)| s),
            Ok("SELECT * FROM t WHERE t.\"user\" = $1".to_string())
        );
    }
}
