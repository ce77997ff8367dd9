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
    /// Records its role gates for writing.
    pub(super) fn write_target(
        &mut self,
        name: &ObjectName,
        ctes: &[String],
    ) -> Result<TenantRef<'r>, GuardError> {
        match self.resolve(name, ctes)? {
            Resolved::Tenant(table) => {
                self.touch(table.key, true);
                Ok(table)
            }
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
        let target = self.write_target(name, ctes)?;
        let column = target.column;
        if columns.is_empty() {
            return Err(GuardError::InsertWithoutColumns);
        }
        if Self::any_names_column(columns, column)? {
            return Err(GuardError::LiteralTenantValue);
        }
        if let Some(client) = target.client
            && Self::any_names_column(columns, client)?
        {
            return Err(GuardError::ClientColumnInsert);
        }
        let Some(source) = source else {
            return Err(GuardError::InsertWithoutColumns);
        };
        // Scope the source first (its own tenant tables), then append the
        // tenant value to every row it produces.
        self.query(source, ctes, false)?;
        let mut appended = vec![self.tenant.clone()];
        columns.push(ObjectName::from(vec![Self::column_ident(column)]));
        if let Some(client) = target.client {
            // The session's active client (one of its grants), bound by the
            // pool: a statement never chooses the client of a new row.
            appended.push(self.active_client());
            columns.push(ObjectName::from(vec![Self::column_ident(client)]));
        }
        self.append_values(&mut source.body, &appended)?;

        let qualifier: Vec<Ident> = match table_alias {
            Some(alias) => {
                Self::plain_name(&alias.alias)?;
                vec![alias.alias.clone()]
            }
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
                conflict_target,
                action,
            })) => {
                // `ON CONFLICT (..) WHERE <index predicate>`: neither database
                // evaluates it today (it only picks the arbiter index), but it
                // is emitted, so it is checked like any condition: deny list,
                // qualified names, subqueries scoped. Left unwalked, it carried
                // `load_extension(..)`, `pg_sleep(..)` and an unscoped
                // subquery over a tenant table into the output.
                if let Some(ConflictTarget::Columns {
                    columns: _,
                    predicate: Some(predicate),
                }) = conflict_target
                {
                    self.expr(predicate, ctes)?;
                }
                match action {
                    OnConflictAction::DoNothing => {}
                    OnConflictAction::DoUpdate(DoUpdate {
                        assignments,
                        selection,
                    }) => {
                        self.assignments(assignments, target, ctes)?;
                        if let Some(selection) = selection.as_mut() {
                            self.expr(selection, ctes)?;
                        }
                        let preds = self.scope_predicates(target, &qualifier, true)?;
                        // The conflicting row may be another tenant's (a unique
                        // key without the tenant column): the user's condition
                        // runs only once the row is the tenant's (`order.rs`).
                        let guarded = match selection.take() {
                            Some(s) => Some(self.guard_rows(s, &preds)?),
                            None => None,
                        };
                        *selection = conjoin_first(preds, guarded);
                    }
                }
            }
            Some(_) => return Err(unsupported("ON DUPLICATE KEY UPDATE")),
        }
        self.returning(returning, ctes)?;
        self.scopes.pop();
        Ok(())
    }

    /// Appends the guard's values (the tenant, the active client) to every
    /// row a source query produces.
    pub(super) fn append_values(
        &mut self,
        body: &mut SetExpr,
        values: &[Expr],
    ) -> Result<(), GuardError> {
        self.enter()?;
        match body {
            SetExpr::Values(rows) => {
                for row in &mut rows.rows {
                    row.content.extend(values.iter().cloned());
                }
            }
            SetExpr::Select(select) => select
                .projection
                .extend(values.iter().cloned().map(SelectItem::UnnamedExpr)),
            SetExpr::SetOperation { left, right, .. } => {
                self.append_values(left, values)?;
                self.append_values(right, values)?;
            }
            SetExpr::Query(query) => self.append_values(&mut query.body, values)?,
            _ => return Err(unsupported("INSERT source")),
        }
        self.leave();
        Ok(())
    }

    pub(super) fn assignments(
        &mut self,
        assignments: &mut [Assignment],
        table: TenantRef<'r>,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        for Assignment { target, value } in assignments {
            let names = match &*target {
                AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
                AssignmentTarget::Tuple(names) => names.as_slice(),
            };
            if Self::any_names_column(names, table.column)? {
                return Err(GuardError::TenantColumnUpdate);
            }
            if let Some(client) = table.client
                && Self::any_names_column(names, client)?
            {
                return Err(GuardError::ClientColumnUpdate);
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
    /// table. Returns the predicates for it.
    pub(super) fn target_predicate(
        &mut self,
        target: &TableWithJoins,
        ctes: &[String],
    ) -> Result<Vec<Expr>, GuardError> {
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
        let table = self.write_target(name, ctes)?;
        let qualifier: Vec<Ident> = match alias {
            Some(alias) => {
                require(
                    alias.columns.is_empty(),
                    "column alias list on a tenant table",
                )?;
                Self::plain_name(&alias.name)?;
                vec![alias.name.clone()]
            }
            None => Self::idents(name)?.into_iter().cloned().collect(),
        };
        self.scope_predicates(table, &qualifier, true)
    }

    pub(super) fn target_table(
        &mut self,
        target: &TableWithJoins,
        ctes: &[String],
    ) -> Result<TenantRef<'r>, GuardError> {
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
        let column = self.target_table(table, ctes)?;
        let mut scope = self.scope_of_from(std::slice::from_ref(table), ctes);
        if let Some(UpdateTableFromKind::AfterSet(items)) = from {
            scope.extend(self.scope_of_from(items, ctes));
        }
        self.scopes.push(scope);
        self.assignments(assignments, column, ctes)?;
        let mut preds = target;
        let mut nullable = Vec::new();
        match from {
            None => {}
            Some(UpdateTableFromKind::AfterSet(items)) => {
                self.open_nullable();
                let from_preds = self.scope_from_list(items, ctes);
                nullable = self.close_nullable();
                preds.extend(from_preds?);
            }
            Some(UpdateTableFromKind::BeforeSet(_)) => {
                return Err(unsupported("UPDATE FROM before SET"));
            }
        }
        if let Some(selection) = selection.as_mut() {
            self.expr(selection, ctes)?;
        }
        let row_guard = [preds.as_slice(), nullable.as_slice()].concat();
        let guarded = match selection.take() {
            Some(s) => Some(self.guard_rows(s, &row_guard)?),
            None => None,
        };
        *selection = conjoin(guarded, preds);
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
        let mut preds = self.target_predicate(target, ctes)?;
        let mut scope = self.scope_of_from(std::slice::from_ref(target), ctes);
        if let Some(items) = using {
            scope.extend(self.scope_of_from(items, ctes));
        }
        self.scopes.push(scope);
        let mut nullable = Vec::new();
        if let Some(items) = using {
            self.open_nullable();
            let using_preds = self.scope_from_list(items, ctes);
            nullable = self.close_nullable();
            preds.extend(using_preds?);
        }
        if let Some(selection) = selection.as_mut() {
            self.expr(selection, ctes)?;
        }
        let row_guard = [preds.as_slice(), nullable.as_slice()].concat();
        let guarded = match selection.take() {
            Some(s) => Some(self.guard_rows(s, &row_guard)?),
            None => None,
        };
        *selection = conjoin(guarded, preds);
        self.returning(returning, ctes)?;
        self.scopes.pop();
        Ok(())
    }
}
