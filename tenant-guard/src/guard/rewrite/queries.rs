//! Queries: CTEs, set operations, SELECT, FROM lists and join trees (where
//! each tenant predicate goes).

use super::*;

impl<'r> Rewriter<'r> {
    /// Scopes a query. `top` allows a data-modifying body (`WITH .. UPDATE`)
    /// only for the statement itself, never inside a CTE or subquery.
    pub(super) fn query(
        &mut self,
        query: &mut Query,
        outer: &[String],
        top: bool,
    ) -> Result<(), GuardError> {
        self.enter()?;
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
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
        let ctes_before = self.cte_columns.len();
        let shared_before = self.shared_refs;
        if let Some(with) = with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| self.norm(&cte.alias.name))
                .collect();
            for (cte, name) in with.cte_tables.iter().zip(&names) {
                Self::plain_name(&cte.alias.name)?;
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
                // Declared column names are known before the body (a
                // recursive CTE refers to itself by them).
                if cte.alias.columns.is_empty() {
                    self.query(&mut cte.query, &scope, false)?;
                    self.fence_cte(cte);
                    let columns = self.output_columns(&cte.query, &scope);
                    self.cte_columns.push((names[i].clone(), columns));
                } else {
                    let columns = scope::Columns::Names(
                        cte.alias
                            .columns
                            .iter()
                            .map(|c| self.norm(&c.name))
                            .collect(),
                    );
                    self.cte_columns.push((names[i].clone(), columns));
                    self.query(&mut cte.query, &scope, false)?;
                    self.fence_cte(cte);
                }
            }
            visible.extend(names);
        }
        // ORDER BY, LIMIT and FETCH see the FROM items of a plain SELECT body.
        let body_scope = match &**body {
            SetExpr::Select(select) => self.scope_of_from(&select.from, &visible),
            _ => Vec::new(),
        };
        self.set_expr(body, &visible, top)?;
        self.scopes.push(body_scope);
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
        self.scopes.pop();
        self.cte_columns.truncate(ctes_before);
        // `FOR UPDATE`/`FOR SHARE` lock the rows of every table the query
        // reads (subqueries in FROM included): on a shared table those rows
        // are every tenant's, so one tenant's open transaction could block
        // the others' writes (an insert's foreign-key check takes `FOR KEY
        // SHARE` on the shared row) and `NOWAIT` would tell it when another
        // tenant holds such a lock. Locking is a write intent, and shared
        // tables are read-only through the guard: a locking query may read
        // no shared table at all (counted over the whole query, subqueries
        // in WHERE too: fail closed).
        require(
            locks.is_empty() || self.shared_refs == shared_before,
            "FOR UPDATE/SHARE over a shared table",
        )?;
        self.leave();
        Ok(())
    }

    pub(super) fn set_expr(
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

    pub(super) fn select(
        &mut self,
        select: &mut Select,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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
        let scope = self.scope_of_from(from, ctes);
        self.scopes.push(scope);
        // `DISTINCT ON (d.x)` names the FROM items: walked in their scope.
        if let Some(sqlparser::ast::Distinct::On(exprs)) = distinct {
            for e in exprs {
                self.expr(e, ctes)?;
            }
        }
        for item in projection.iter_mut() {
            self.select_item(item, ctes)?;
        }
        // Set for this select's WHERE, ON and HAVING guards; a subquery's
        // select sets its own and puts this one back.
        let aliases = self.impure_aliases_of(projection);
        let outer_aliases = std::mem::replace(&mut self.impure_aliases, aliases);
        self.open_nullable();
        let preds = self.scope_from_list(from, ctes);
        let nullable = self.close_nullable();
        let preds = preds?;
        let row_guard = [preds.as_slice(), nullable.as_slice()].concat();
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
            let existing = std::mem::replace(having, Expr::value(Value::Boolean(true)));
            *having = self.guard_having(existing, &preds)?;
        }
        for window in named_window.iter_mut() {
            if let NamedWindowExpr::WindowSpec(spec) = &mut window.1 {
                self.window_spec(spec, ctes)?;
            }
        }
        let guarded = match selection.take() {
            Some(s) => Some(self.guard_rows(s, &row_guard)?),
            None => None,
        };
        *selection = conjoin(guarded, preds);
        self.impure_aliases = outer_aliases;
        self.scopes.pop();
        Ok(())
    }

    pub(super) fn select_item(
        &mut self,
        item: &mut SelectItem,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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

    pub(super) fn wildcard_options(options: &WildcardAdditionalOptions) -> Result<(), GuardError> {
        require(options.opt_replace.is_none(), "wildcard REPLACE")
    }

    /// Scopes a FROM list; returns the predicates that belong in WHERE.
    pub(super) fn scope_from_list(
        &mut self,
        items: &mut [TableWithJoins],
        ctes: &[String],
    ) -> Result<Vec<Expr>, GuardError> {
        // A nested FROM list (a subquery's) starts a scope of its own: the
        // outer list's names are not visible in a derived table.
        let outer = std::mem::take(&mut self.comma_scope);
        let mut preds = Vec::new();
        for item in items {
            let item_preds = self.table_with_joins(item, ctes)?;
            self.comma_scope.extend(item_preds.iter().cloned());
            preds.extend(item_preds);
        }
        self.comma_scope = outer;
        Ok(preds)
    }

    /// Scopes a join tree. Predicates of tables on the nullable side of an
    /// outer join go into that join's ON clause; the rest (the preserved side)
    /// are returned for the enclosing WHERE (or ON, when the whole tree is
    /// itself the nullable side of an outer join).
    pub(super) fn table_with_joins(
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
                    self.guard_on(c, &pending, &right)?;
                    pending.extend(right);
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    self.constraint(c, ctes)?;
                    self.guard_on(c, &pending, &right)?;
                    self.push_nullable(&right);
                    add_to_on(c, right)?;
                }
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                    self.constraint(c, ctes)?;
                    self.guard_on(c, &pending, &right)?;
                    self.push_nullable(&pending);
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

    pub(super) fn constraint(
        &mut self,
        c: &mut JoinConstraint,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        match c {
            JoinConstraint::On(e) => self.expr(e, ctes),
            JoinConstraint::Using(_) | JoinConstraint::Natural | JoinConstraint::None => Ok(()),
            JoinConstraint::UsingAlias(..) => Err(unsupported("USING .. AS")),
        }
    }

    /// Scopes one FROM item; returns the predicates for the tenant tables it
    /// exposes.
    pub(super) fn table_factor(
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
                    Resolved::Tenant(table) => {
                        let qualifier: Vec<Ident> = match alias {
                            Some(alias) => {
                                // `assets AS a(x, tenant_id)` renames columns by
                                // position: `a.tenant_id` could be another column.
                                require(
                                    alias.columns.is_empty(),
                                    "column alias list on a tenant table",
                                )?;
                                Self::plain_name(&alias.name)?;
                                vec![alias.name.clone()]
                            }
                            None => Self::idents(name)?.into_iter().cloned().collect(),
                        };
                        self.scope_predicates(table, &qualifier, false)?
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
                self.fence_query(subquery);
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
}
