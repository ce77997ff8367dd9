//! An independent checker of the guard's output (no guard code): re-parses a
//! scoped statement and proves every tenant-table reference carries the
//! tenant predicate where it must.

use hisn_tenant_guard::guard::Dialect;
use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    InTarget, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, OnConflictAction, OnInsert,
    Query, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
    UpdateTableFromKind, Value,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use super::guard_corpus::tenant_placeholder;

// ----- independent checker -----------------------------------------------------
//
// Re-parses the guard's output and walks it WITHOUT the guard's code: every
// reference to a tenant table must carry `<alias or name>.tenant_id = <tenant>`
// as a top-level conjunct of its SELECT's WHERE (preserved side) or of the ON
// clause of an outer join whose nullable side holds it; no FULL JOIN may hold a
// tenant table; every INSERT must set the tenant column to the tenant
// placeholder on every row. Completeness: the checker counts the table
// references it visited and compares with the number of `TableFactor::Table`
// nodes in the tree's `Debug` text, which lists every node, so a subquery the
// checker did not reach fails the check instead of passing silently.

const TENANT_TABLES: [&str; 2] = ["assets", "work_orders"];

pub(crate) fn parser_dialect(dialect: Dialect) -> Box<dyn SqlDialect> {
    match dialect {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    }
}

struct Checker {
    tenant: String,
    visited: usize,
}

pub(crate) fn check_scoped(sql: &str, dialect: Dialect, tenant_param: usize) -> Result<(), String> {
    let d = parser_dialect(dialect);
    let mut statements =
        Parser::parse_sql(d.as_ref(), sql).map_err(|e| format!("re-parse: {e}"))?;
    if statements.len() != 1 {
        return Err(format!("{} statements", statements.len()));
    }
    let statement = statements.pop().unwrap();
    let mut c = Checker {
        tenant: tenant_placeholder(dialect, tenant_param),
        visited: 0,
    };
    c.statement(&statement)?;
    let total = format!("{statement:?}").matches("Table { name: ").count();
    if c.visited != total {
        return Err(format!(
            "checker visited {} of {total} table references in {sql}",
            c.visited
        ));
    }
    Ok(())
}

fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        other => out.push(other.clone()),
    }
}

fn last_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => i.value.to_ascii_lowercase(),
        _ => String::new(),
    }
}

impl Checker {
    fn is_tenant_pred(&self, e: &Expr, qualifier: &[Ident]) -> bool {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = e
        else {
            return false;
        };
        let Expr::CompoundIdentifier(path) = left.as_ref() else {
            return false;
        };
        let Expr::Value(v) = right.as_ref() else {
            return false;
        };
        let Value::Placeholder(p) = &v.value else {
            return false;
        };
        let (col, q) = path.split_last().unwrap();
        p == &self.tenant
            && col.value == "tenant_id"
            && q.len() == qualifier.len()
            && q.iter().zip(qualifier).all(|(a, b)| a.value == b.value)
    }

    fn has_pred(&self, clause: Option<&Expr>, qualifier: &[Ident]) -> bool {
        let mut parts = Vec::new();
        if let Some(e) = clause {
            conjuncts(e, &mut parts);
        }
        parts.iter().any(|p| self.is_tenant_pred(p, qualifier))
    }

    fn statement(&mut self, s: &Statement) -> Result<(), String> {
        match s {
            Statement::Query(q) => self.query(q),
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return Err("insert target".into());
                };
                let tenant_cols = insert
                    .columns
                    .iter()
                    .filter(|c| last_name(c) == "tenant_id")
                    .count();
                if TENANT_TABLES.contains(&last_name(name).as_str()) {
                    if tenant_cols != 1 || last_name(insert.columns.last().unwrap()) != "tenant_id"
                    {
                        return Err("insert does not set the tenant column last".into());
                    }
                    let source = insert.source.as_ref().ok_or("no source")?;
                    self.rows_end_with_tenant(&source.body)?;
                    self.query(source)?;
                    if let Some(OnInsert::OnConflict(oc)) = &insert.on
                        && let OnConflictAction::DoUpdate(du) = &oc.action
                    {
                        let q: Vec<Ident> = match &insert.table_alias {
                            Some(a) => vec![a.alias.clone()],
                            None => name
                                .0
                                .iter()
                                .filter_map(|p| p.as_ident().cloned())
                                .collect(),
                        };
                        if !self.has_pred(du.selection.as_ref(), &q) {
                            return Err("ON CONFLICT DO UPDATE without the tenant predicate".into());
                        }
                        for a in &du.assignments {
                            self.expr(&a.value)?;
                        }
                    }
                } else {
                    return Err("insert into a non-tenant table".into());
                }
                self.items(insert.returning.iter().flatten())
            }
            Statement::Update(u) => {
                self.visited += 1;
                let mut froms = Vec::new();
                if let Some(UpdateTableFromKind::AfterSet(f)) = &u.from {
                    froms.extend(f.iter());
                }
                self.write_target(&u.table, u.selection.as_ref(), &froms)?;
                for a in &u.assignments {
                    self.expr(&a.value)?;
                }
                self.items(u.returning.iter().flatten())
            }
            Statement::Delete(d) => {
                self.visited += 1;
                let (FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t)) = &d.from;
                let froms: Vec<&TableWithJoins> = d.using.iter().flatten().collect();
                self.write_target(&t[0], d.selection.as_ref(), &froms)?;
                self.items(d.returning.iter().flatten())
            }
            other => Err(format!("statement kind {other}")),
        }
    }

    fn write_target(
        &mut self,
        target: &TableWithJoins,
        selection: Option<&Expr>,
        froms: &[&TableWithJoins],
    ) -> Result<(), String> {
        let TableFactor::Table { name, alias, .. } = &target.relation else {
            return Err("write target".into());
        };
        let q: Vec<Ident> = match alias {
            Some(a) => vec![a.name.clone()],
            None => name
                .0
                .iter()
                .filter_map(|p| p.as_ident().cloned())
                .collect(),
        };
        if !TENANT_TABLES.contains(&last_name(name).as_str()) || !self.has_pred(selection, &q) {
            return Err(format!("write target {name} unscoped"));
        }
        for f in froms {
            self.join_tree(f, selection, &[])?;
        }
        if let Some(s) = selection {
            self.expr(s)?;
        }
        Ok(())
    }

    fn rows_end_with_tenant(&self, body: &SetExpr) -> Result<(), String> {
        let is_tenant = |e: &Expr| matches!(e, Expr::Value(v) if v.value == Value::Placeholder(self.tenant.clone()));
        match body {
            SetExpr::Values(v) => {
                if v.rows
                    .iter()
                    .all(|r| r.content.last().is_some_and(is_tenant))
                {
                    Ok(())
                } else {
                    Err("a VALUES row lacks the tenant".into())
                }
            }
            SetExpr::Select(s) => match s.projection.last() {
                Some(SelectItem::UnnamedExpr(e)) if is_tenant(e) => Ok(()),
                _ => Err("INSERT .. SELECT lacks the tenant".into()),
            },
            SetExpr::SetOperation { left, right, .. } => {
                self.rows_end_with_tenant(left)?;
                self.rows_end_with_tenant(right)
            }
            SetExpr::Query(q) => self.rows_end_with_tenant(&q.body),
            _ => Err("INSERT source kind".into()),
        }
    }

    fn query(&mut self, q: &Query) -> Result<(), String> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                if TENANT_TABLES.contains(&cte.alias.name.value.to_ascii_lowercase().as_str()) {
                    return Err("CTE shadows a tenant table".into());
                }
                self.query(&cte.query)?;
            }
        }
        self.set_expr(&q.body)?;
        if let Some(sqlparser::ast::LimitClause::LimitOffset {
            limit: Some(limit), ..
        }) = &q.limit_clause
        {
            self.expr(limit)?;
        }
        if let Some(ob) = &q.order_by
            && let sqlparser::ast::OrderByKind::Expressions(es) = &ob.kind
        {
            for e in es {
                self.expr(&e.expr)?;
            }
        }
        Ok(())
    }

    fn set_expr(&mut self, s: &SetExpr) -> Result<(), String> {
        match s {
            SetExpr::Select(sel) => {
                for item in &sel.projection {
                    self.item(item)?;
                }
                for twj in &sel.from {
                    self.join_tree(twj, sel.selection.as_ref(), &[])?;
                }
                if let Some(w) = &sel.selection {
                    self.expr(w)?;
                }
                if let Some(h) = &sel.having {
                    self.expr(h)?;
                }
                Ok(())
            }
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left)?;
                self.set_expr(right)
            }
            SetExpr::Values(v) => {
                for row in &v.rows {
                    for e in &row.content {
                        self.expr(e)?;
                    }
                }
                Ok(())
            }
            SetExpr::Delete(st) | SetExpr::Update(st) | SetExpr::Insert(st) => self.statement(st),
            other => Err(format!("set expression {other}")),
        }
    }

    /// `nullable_on`: the ON clauses of the outer joins whose nullable side
    /// holds this tree (innermost last); empty when on the preserved side.
    fn join_tree(
        &mut self,
        twj: &TableWithJoins,
        selection: Option<&Expr>,
        nullable_on: &[Option<&Expr>],
    ) -> Result<(), String> {
        // Which factors are nullable (and by which ON), computed left to right.
        let n = twj.joins.len();
        let mut nullable: Vec<Vec<Option<&Expr>>> = vec![nullable_on.to_vec(); n + 1];
        for (i, j) in twj.joins.iter().enumerate() {
            let on = match constraint(&j.join_operator) {
                Some(JoinConstraint::On(e)) => Some(e),
                _ => None,
            };
            match &j.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => nullable[i + 1].push(on),
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => {
                    for slot in nullable.iter_mut().take(i + 1) {
                        slot.push(on);
                    }
                }
                JoinOperator::FullOuter(_) => {
                    for slot in nullable.iter_mut().take(i + 2) {
                        slot.push(None); // nothing makes a FULL JOIN safe
                    }
                }
                _ => {}
            }
            if let Some(e) = on {
                self.expr(e)?;
            }
        }
        let factors = std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation));
        for (factor, slots) in factors.zip(&nullable) {
            self.factor(factor, selection, slots)?;
        }
        Ok(())
    }

    fn factor(
        &mut self,
        f: &TableFactor,
        selection: Option<&Expr>,
        nullable_on: &[Option<&Expr>],
    ) -> Result<(), String> {
        match f {
            TableFactor::Table { name, alias, .. } => {
                self.visited += 1;
                if !TENANT_TABLES.contains(&last_name(name).as_str()) {
                    return Ok(());
                }
                let q: Vec<Ident> = match alias {
                    Some(a) => vec![a.name.clone()],
                    None => name
                        .0
                        .iter()
                        .filter_map(|p| p.as_ident().cloned())
                        .collect(),
                };
                let ok = if nullable_on.is_empty() {
                    self.has_pred(selection, &q)
                } else {
                    nullable_on
                        .iter()
                        .any(|on| on.is_some() && self.has_pred(*on, &q))
                        && !nullable_on.iter().any(Option::is_none)
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!("tenant table {name} unscoped"))
                }
            }
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.join_tree(table_with_joins, selection, nullable_on),
            other => Err(format!("table factor {other}")),
        }
    }

    fn items<'a>(&mut self, items: impl Iterator<Item = &'a SelectItem>) -> Result<(), String> {
        for item in items {
            self.item(item)?;
        }
        Ok(())
    }

    fn item(&mut self, item: &SelectItem) -> Result<(), String> {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => self.expr(e),
            _ => Ok(()),
        }
    }

    /// Finds the subqueries inside an expression (enough kinds for the corpus
    /// and the generators; the completeness count catches any it misses).
    fn expr(&mut self, e: &Expr) -> Result<(), String> {
        match e {
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.query(q),
            Expr::In { expr, target, .. } => {
                self.expr(expr)?;
                match target {
                    InTarget::Subquery(q) => self.query(q),
                    InTarget::List(l) => l.iter().try_for_each(|x| self.expr(x)),
                    _ => Ok(()),
                }
            }
            Expr::BinaryOp { left, right, .. }
            | Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. } => {
                self.expr(left)?;
                self.expr(right)
            }
            Expr::Tuple(list) => list.iter().try_for_each(|x| self.expr(x)),
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr) => self.expr(expr),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                for x in operand.iter().chain(else_result.iter()) {
                    self.expr(x)?;
                }
                for w in conditions {
                    self.expr(&w.condition)?;
                    self.expr(&w.result)?;
                }
                Ok(())
            }
            Expr::Function(f) => {
                if let FunctionArguments::List(l) = &f.args {
                    for a in &l.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            self.expr(x)?;
                        }
                    }
                }
                if let FunctionArguments::Subquery(q) = &f.args {
                    self.query(q)?;
                }
                if let Some(filter) = &f.filter {
                    self.expr(filter)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}

#[test]
fn checker_rejects_unscoped_statements() {
    // The checker must be able to fail, or passing it proves nothing.
    for (sql, dialect) in [
        ("SELECT * FROM assets", Dialect::Postgres),
        (
            "SELECT * FROM assets a WHERE assets.tenant_id = $1",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM assets a WHERE a.tenant_id = $2",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM assets a WHERE a.tenant_id = $1 OR true",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM assets a LEFT JOIN work_orders w ON w.asset_id = a.id WHERE a.tenant_id = $1 AND w.tenant_id = $1",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM assets a LEFT JOIN work_orders w ON w.tenant_id = $1 AND a.tenant_id = $1",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM assets a FULL JOIN work_orders w ON w.tenant_id = $1 AND a.tenant_id = $1 WHERE a.tenant_id = $1 AND w.tenant_id = $1",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM countries WHERE EXISTS (SELECT 1 FROM assets)",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM countries WHERE code = ANY(SELECT name FROM assets)",
            Dialect::Postgres,
        ),
        ("UPDATE assets SET name = 'x'", Dialect::Postgres),
        (
            "DELETE FROM assets WHERE assets.tenant_id = ?2",
            Dialect::Sqlite,
        ),
        (
            "INSERT INTO assets (id, name) VALUES (1, 'x')",
            Dialect::Postgres,
        ),
        (
            "INSERT INTO assets (id, tenant_id) VALUES (1, 'x')",
            Dialect::Postgres,
        ),
    ] {
        assert!(
            check_scoped(sql, dialect, 1).is_err(),
            "checker accepted {sql}"
        );
    }
}
