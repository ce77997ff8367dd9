//! Expressions: the whitelist of expression kinds, functions (deny list),
//! windows, placeholders.

use super::*;

impl<'r> Rewriter<'r> {
    pub(super) fn order_by_exprs(
        &mut self,
        exprs: &mut [OrderByExpr],
        ctes: &[String],
    ) -> Result<(), GuardError> {
        for OrderByExpr {
            expr,
            options,
            with_fill,
        } in exprs
        {
            require(with_fill.is_none(), "ORDER BY WITH FILL")?;
            // PostgreSQL's `ORDER BY x USING <op>`: the operator is emitted
            // as written, so it passes the operator allow-list too (`<` and
            // `>`, the only built-in ordering operators a plain sort needs);
            // `USING OPERATOR(schema.op)` and custom operators are refused
            // like anywhere else.
            if let Some(sqlparser::ast::OrderBySort::Using(op)) = &options.sort {
                let plain = matches!(
                    op.0.as_slice(),
                    [ObjectNamePart::Identifier(i)] if i.quote_style.is_none() && matches!(i.value.as_str(), "<" | ">")
                );
                if !plain {
                    return Err(GuardError::Unsupported(format!("operator `{op}`")));
                }
            }
            self.expr(expr, ctes)?;
        }
        Ok(())
    }

    pub(super) fn window_spec(
        &mut self,
        spec: &mut WindowSpec,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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

    pub(super) fn function(
        &mut self,
        function: &mut Function,
        ctes: &[String],
    ) -> Result<(), GuardError> {
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
        for part in &name.0 {
            if let ObjectNamePart::Identifier(ident) = part {
                Self::plain_name(ident)?;
            }
        }
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

    pub(super) fn function_arguments(
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

    pub(super) fn function_arg_expr(
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

    pub(super) fn placeholder(&self, p: &str) -> Result<(), GuardError> {
        let prefix = match self.dialect {
            Dialect::Postgres => '$',
            Dialect::Sqlite => '?',
        };
        match p.strip_prefix(prefix).and_then(params::parse_index) {
            Some(n) if n <= self.user_params => Ok(()),
            _ => Err(GuardError::UnsupportedPlaceholder(p.to_string())),
        }
    }

    /// A typed string constant (`DATE '2024-01-31'`) as the cast PostgreSQL
    /// reads it as (its grammar turns `type 'string'` into the same type cast
    /// node as `CAST('string' AS type)`). `sqlparser` also reads a type name
    /// followed by any other value as a typed string (`DATE 5`, `DATE $1`,
    /// `name[1]:a` as the type `name[1]` and the value `:a`), which the
    /// printer would emit as text the database reads otherwise, or not at
    /// all: only a string constant is accepted, and only on PostgreSQL
    /// (SQLite has no typed constants: it reads `date '2024-01-31'` as a
    /// column and an alias). Emitted as `CAST(.. AS type)`, whose printed
    /// form the guard already relies on.
    pub(super) fn typed_string(&self, typed: &TypedString) -> Result<Expr, GuardError> {
        let TypedString {
            data_type,
            value,
            uses_odbc_syntax,
        } = typed;
        require(
            self.dialect == Dialect::Postgres,
            "typed string constant on SQLite",
        )?;
        require(!uses_odbc_syntax, "ODBC typed constant")?;
        match &value.value {
            Value::SingleQuotedString(_) => Ok(Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::Value(value.clone())),
                data_type: data_type.clone(),
                format: None,
            }),
            _ => Err(unsupported("typed constant whose value is not a string")),
        }
    }

    /// `INTERVAL <value> [<unit> [TO <unit>]]`, accepted only where the
    /// database reads it as the interval constant `sqlparser` built:
    /// PostgreSQL, with a string value and PostgreSQL's own units
    /// (`INTERVAL '1' DAY`). `sqlparser` also reads a name, a placeholder or
    /// a parenthesised expression as the value, and knows units PostgreSQL
    /// does not have (other dialects'), none of which PostgreSQL reads as
    /// written: `INTERVAL name` is the column `interval` with the alias
    /// `name`. SQLite has no
    /// intervals: it reads `INTERVAL '1 day'` as the column `interval` and
    /// its alias.
    fn interval(&self, interval: &sqlparser::ast::Interval) -> Result<(), GuardError> {
        use sqlparser::ast::DateTimeField as F;
        require(self.dialect == Dialect::Postgres, "INTERVAL on SQLite")?;
        let string = matches!(
            &*interval.value,
            Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))
        );
        require(string, "INTERVAL whose value is not a string constant")?;
        let pg_unit = |f: &Option<F>| {
            matches!(
                f,
                None | Some(F::Year | F::Month | F::Day | F::Hour | F::Minute | F::Second)
            )
        };
        require(
            pg_unit(&interval.leading_field) && pg_unit(&interval.last_field),
            "INTERVAL unit PostgreSQL does not read",
        )
    }

    pub(super) fn exprs(&mut self, exprs: &mut [Expr], ctes: &[String]) -> Result<(), GuardError> {
        for e in exprs {
            self.expr(e, ctes)?;
        }
        Ok(())
    }

    pub(super) fn opt(
        &mut self,
        e: &mut Option<Box<Expr>>,
        ctes: &[String],
    ) -> Result<(), GuardError> {
        match e {
            Some(e) => self.expr(e, ctes),
            None => Ok(()),
        }
    }

    /// Refuses PostgreSQL's system columns (no user column may take their
    /// names). They describe row versions, not row data: `xmax` of a shared
    /// row is the id of the last transaction that locked it, and an insert's
    /// foreign-key check locks the shared row it references, so
    /// `SELECT code FROM countries WHERE xmax <> '0'` told one tenant which
    /// shared rows another tenant's writes had just referenced (and when,
    /// with the transaction ids); `ctid`, `xmin`, `cmin`, `cmax` and
    /// `tableoid` expose row placement and transaction history the same way.
    fn not_system_column(&self, ident: &Ident) -> Result<(), GuardError> {
        const SYSTEM_COLUMNS: &[&str] = &["xmin", "xmax", "cmin", "cmax", "ctid", "tableoid"];
        let name = self.norm(ident);
        if self.dialect == Dialect::Postgres && SYSTEM_COLUMNS.contains(&name.as_str()) {
            return Err(GuardError::Unsupported(format!(
                "PostgreSQL system column `{name}`"
            )));
        }
        Ok(())
    }

    pub(super) fn expr(&mut self, expr: &mut Expr, ctes: &[String]) -> Result<(), GuardError> {
        self.enter()?;
        match expr {
            Expr::BinaryOp { op, .. }
            | Expr::AnyOp { compare_op: op, .. }
            | Expr::AllOp { compare_op: op, .. }
                if !allowed_binary(op) =>
            {
                return Err(GuardError::Unsupported(format!("operator `{op}`")));
            }
            Expr::UnaryOp { op, .. } if !allowed_unary(op) => {
                return Err(GuardError::Unsupported(format!("operator `{op}`")));
            }
            Expr::TypedString(typed) => *expr = self.typed_string(typed)?,
            Expr::Interval(interval) => self.interval(interval)?,
            // `_charset 'x'` (MySQL's string introducer): PostgreSQL reads a
            // typed constant of the type `_charset` (an array type) and SQLite
            // the column `_charset` with the alias `'x'`, never the string the
            // guard would have checked.
            Expr::Prefixed { .. } => return Err(unsupported("string introducer")),
            _ => {}
        }
        match expr {
            Expr::Identifier(ident) => self.not_system_column(ident)?,
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {}
            Expr::CompoundIdentifier(parts) => {
                if let Some(field) = parts.last() {
                    self.not_system_column(field)?;
                }
                self.check_qualified(parts)?;
            }
            Expr::Value(v) => {
                if let Value::Placeholder(p) = &v.value {
                    self.placeholder(p)?;
                }
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.expr(root, ctes)?;
                for access in access_chain {
                    match access {
                        // `(expr).f` calls `f(expr)` on PostgreSQL when `f` is
                        // not a field: never accepted.
                        AccessExpr::Dot(e) => {
                            return Err(GuardError::UnknownColumn(format!("(..).{e}")));
                        }
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
                        JsonPathElem::Dot { .. } => {
                            return Err(unsupported("JSON path field access"));
                        }
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
