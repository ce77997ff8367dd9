//! Writes: INSERT (tenant column appended to every row), UPDATE and DELETE
//! (target and joined tables scoped), ON CONFLICT and RETURNING.

use super::*;

impl<'r> Rewriter<'r> {
    pub(super) fn statement(&mut self, statement: &mut Statement) -> Result<(), GuardError> {
        match statement {
            Statement::Query(query) => self.query(query, &[], true),
            Statement::Insert(insert) => self.insert(insert, &[]),
            Statement::Update(update) => self.update(update, &[]),
            Statement::Delete(delete) => self.delete(delete, &[]),
            other => Err(classify(other)),
        }
    }

    /// Resolves the target of a write: it must be a registered tenant table.
    pub(super) fn write_target(
        &self,
        name: &ObjectName,
        ctes: &[String],
    ) -> Result<&'r str, GuardError> {
        match self.resolve(name, ctes)? {
            Resolved::Tenant(column) => Ok(column),
            Resolved::Shared => Err(GuardError::SharedTableWrite(name.to_string())),
            Resolved::Cte => Err(unsupported("write to a common table expression")),
        }
    }

    pub(super) fn insert(
        &mut self,
        insert: &mut Insert,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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
        // ON CONFLICT and RETURNING see the target (by its alias, or by its
        // name) and `excluded`, with the target's columns.
        let mut scope = self.target_scope(name, table_alias.as_ref().map(|a| &a.alias), ctes);
        let columns_of_target = scope.first().map(|(_, c)| c.clone());
        scope.extend(columns_of_target.map(|c| ("excluded".to_owned(), c)));
        self.scopes.push(scope);
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
        self.returning(returning, ctes)?;
        self.scopes.pop();
        Ok(())
    }

    /// Appends the tenant value to every row a source query produces.
    pub(super) fn append_tenant(&mut self, body: &mut SetExpr) -> Result<(), GuardError> {
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

    pub(super) fn assignments(
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

    pub(super) fn returning(
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
    pub(super) fn target_predicate(
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

    pub(super) fn target_column(
        &self,
        target: &TableWithJoins,
        ctes: &[String],
    ) -> Result<&'r str, GuardError> {
        match &target.relation {
            TableFactor::Table { name, .. } => self.write_target(name, ctes),
            _ => Err(unsupported("target of a write that is not a table")),
        }
    }

    pub(super) fn update(
        &mut self,
        update: &mut Update,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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
        let mut scope = self.scope_of_from(std::slice::from_ref(table), ctes);
        if let Some(UpdateTableFromKind::AfterSet(items)) = from {
            scope.extend(self.scope_of_from(items, ctes));
        }
        self.scopes.push(scope);
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
        self.returning(returning, ctes)?;
        self.scopes.pop();
        Ok(())
    }

    pub(super) fn delete(
        &mut self,
        delete: &mut Delete,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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
        let mut scope = self.scope_of_from(std::slice::from_ref(target), ctes);
        if let Some(items) = using {
            scope.extend(self.scope_of_from(items, ctes));
        }
        self.scopes.push(scope);
        if let Some(items) = using {
            preds.extend(self.scope_from_list(items, ctes)?);
        }
        if let Some(selection) = selection.as_mut() {
            self.expr(selection, ctes)?;
        }
        *selection = conjoin(selection.take(), preds);
        self.returning(returning, ctes)?;
        self.scopes.pop();
        Ok(())
    }
}
