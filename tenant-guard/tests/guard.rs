//! Integration tests of the query guard (layer 2): the statement corpus in
//! `tests/data/guard_corpus_*.sql`, an independent checker of scoped output,
//! and property tests over generated statements.
// Helpers outside #[test] fns unwrap and panic on purpose (a failing test is
// the point); clippy.toml only allows that inside the test fns themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use hisn_tenant_guard::guard::{Dialect, GuardError, QueryGuard, TableRegistry};
use proptest::prelude::*;
use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    InTarget, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, OnConflictAction, OnInsert,
    Query, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
    UpdateTableFromKind, Value,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

const SPEC: &str = "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)";
const ACCEPT: &str = include_str!("data/guard_corpus_accept.sql");
const REFUSE: &str = include_str!("data/guard_corpus_refuse.sql");
const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

fn guard(dialect: Dialect) -> QueryGuard {
    QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), dialect)
}

fn tenant_placeholder(dialect: Dialect, index: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${index}"),
        Dialect::Sqlite => format!("?{index}"),
    }
}

// ----- corpus ------------------------------------------------------------------

/// One corpus entry (format documented at the top of the data files).
#[derive(Debug)]
struct Entry {
    name: String,
    dialects: Vec<Dialect>,
    expect: Option<String>,
    reason: Option<String>,
    sql: String,
}

const KEYS: [&str; 5] = ["name", "dialect", "kind", "expect", "reason"];

fn header(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("-- ")?;
    let (key, value) = rest.split_once(": ")?;
    KEYS.contains(&key).then_some((key, value.trim()))
}

fn load(corpus: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for block in corpus.split("\n\n") {
        let mut lines = block.lines().peekable();
        let mut fields = std::collections::HashMap::new();
        while let Some((key, value)) = lines.peek().and_then(|l| header(l)) {
            fields.insert(key, value.to_string());
            lines.next();
        }
        let Some(name) = fields.remove("name") else {
            continue; // the file's leading comment
        };
        let dialects = match fields.get("dialect").map(String::as_str) {
            None | Some("both") => DIALECTS.to_vec(),
            Some("postgres") => vec![Dialect::Postgres],
            Some("sqlite") => vec![Dialect::Sqlite],
            Some(other) => panic!("{name}: unknown dialect {other}"),
        };
        entries.push(Entry {
            name,
            dialects,
            expect: fields.remove("expect"),
            reason: fields.remove("reason"),
            sql: lines.collect::<Vec<_>>().join("\n"),
        });
    }
    entries
}

fn variant(e: &GuardError) -> String {
    let debug = format!("{e:?}");
    debug.split('(').next().unwrap().to_string()
}

#[test]
fn corpus_files_are_well_formed() {
    let accept = load(ACCEPT);
    let refuse = load(REFUSE);
    assert!(accept.len() >= 40, "{}", accept.len());
    assert!(refuse.len() >= 60, "{}", refuse.len());
    let mut names = std::collections::HashSet::new();
    for e in accept.iter().chain(&refuse) {
        assert!(names.insert(e.name.clone()), "duplicate entry {}", e.name);
        assert!(
            !e.sql.trim().is_empty() || e.reason.as_deref() == Some("Empty"),
            "{}",
            e.name
        );
    }
    assert!(
        accept
            .iter()
            .all(|e| e.expect.is_some() && e.reason.is_none())
    );
    assert!(
        refuse
            .iter()
            .all(|e| e.reason.is_some() && e.expect.is_none())
    );
}

#[test]
fn accepted_corpus_rewrites_exactly_and_passes_the_checker() {
    let mut failures = Vec::new();
    for entry in load(ACCEPT) {
        for dialect in &entry.dialects {
            let scoped = match guard(*dialect).scope(&entry.sql) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{} ({dialect:?}) refused: {e}", entry.name));
                    continue;
                }
            };
            let expected = entry
                .expect
                .as_deref()
                .unwrap()
                .replace("{t}", &tenant_placeholder(*dialect, 1));
            if scoped.sql() != expected {
                failures.push(format!(
                    "{} ({dialect:?}):\n  got:  {}\n  want: {expected}",
                    entry.name,
                    scoped.sql()
                ));
            }
            if (scoped.user_params(), scoped.tenant_param()) != (0, 1) {
                failures.push(format!("{}: parameter count", entry.name));
            }
            if let Err(e) = check_scoped(scoped.sql(), *dialect, scoped.tenant_param()) {
                failures.push(format!("{} ({dialect:?}) checker: {e}", entry.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn refused_corpus_names_the_reason() {
    let mut failures = Vec::new();
    for entry in load(REFUSE) {
        for dialect in &entry.dialects {
            match guard(*dialect).scope(&entry.sql) {
                Ok(s) => failures.push(format!(
                    "{} ({dialect:?}) accepted: {}",
                    entry.name,
                    s.sql()
                )),
                Err(e) if variant(&e) != entry.reason.as_deref().unwrap() => {
                    failures.push(format!("{} ({dialect:?}): got {e:?}", entry.name));
                }
                Err(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rewrites_are_stable_and_idempotent_in_scope() {
    // Scoping the scoped output again adds a second, redundant predicate (the
    // guard never trusts a predicate it did not write) and still passes.
    for entry in load(ACCEPT) {
        for dialect in &entry.dialects {
            let g = guard(*dialect);
            let once = g.scope(&entry.sql).unwrap();
            if once.sql().starts_with("INSERT") {
                continue; // the tenant column is now named: refused by design
            }
            let twice = g.scope(once.sql()).unwrap();
            check_scoped(twice.sql(), *dialect, twice.tenant_param()).unwrap();
        }
    }
}

#[test]
fn the_same_rewrite_serves_every_tenant() {
    // The tenant is never in the text: one cached rewrite for all tenants.
    let g = guard(Dialect::Postgres);
    let a = g.scope("SELECT name FROM assets").unwrap();
    let b = g.scope("SELECT name FROM assets").unwrap();
    assert_eq!(a.sql(), b.sql());
    assert_eq!(g.cached(), 1);
    assert!(!a.sql().contains('\''), "no literal in the scoped text");
}

#[test]
fn user_params_are_bound_before_the_tenant() {
    let pg = guard(Dialect::Postgres)
        .scope("UPDATE assets SET name = $1 WHERE id = $2")
        .unwrap();
    assert_eq!(
        pg.sql(),
        "UPDATE assets SET name = $1 WHERE (id = $2) AND assets.tenant_id = $3"
    );
    assert_eq!((pg.user_params(), pg.tenant_param()), (2, 3));
    let lite = guard(Dialect::Sqlite)
        .scope("SELECT name FROM assets WHERE id = ? OR name = ?")
        .unwrap();
    assert_eq!(
        lite.sql(),
        "SELECT name FROM assets WHERE (id = ?1 OR name = ?2) AND assets.tenant_id = ?3"
    );
    assert_eq!((lite.user_params(), lite.tenant_param()), (2, 3));
}

#[test]
fn guard_is_shareable_across_threads() {
    let g = std::sync::Arc::new(guard(Dialect::Postgres));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let g = g.clone();
            std::thread::spawn(move || {
                for j in 0..50 {
                    let sql = format!(
                        "SELECT name FROM assets WHERE name = 'n{}'",
                        (i * 50 + j) % 20
                    );
                    let s = g.scope(&sql).unwrap();
                    assert!(s.sql().ends_with("assets.tenant_id = $1"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(g.cached(), 20);
}

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

fn parser_dialect(dialect: Dialect) -> Box<dyn SqlDialect> {
    match dialect {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    }
}

struct Checker {
    tenant: String,
    visited: usize,
}

fn check_scoped(sql: &str, dialect: Dialect, tenant_param: usize) -> Result<(), String> {
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

// ----- property tests ----------------------------------------------------------

/// A generated statement and whether the guard must refuse it.
type Gen = (String, bool);

fn table_ref() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        6 => Just(("assets".to_string(), false)),
        6 => Just(("work_orders".to_string(), false)),
        4 => Just(("countries".to_string(), false)),
        2 => Just(("ASSETS".to_string(), false)),
        2 => Just(("public.assets".to_string(), false)),
        1 => Just(("secrets".to_string(), true)),
        1 => Just(("pg_class".to_string(), true)),
    ]
}

fn alias() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), (0u8..6).prop_map(|i| Some(format!("t{i}")))]
}

fn condition(sub: BoxedStrategy<Gen>) -> impl Strategy<Value = Gen> {
    prop_oneof![
        3 => Just(("1 = 1".to_string(), false)),
        3 => Just(("name = 'x' OR true".to_string(), false)),
        3 => Just(("tenant_id = 'other'".to_string(), false)),
        1 => Just(("set_config('hisn.tenant_id', 'x', true) = 'x'".to_string(), true)),
        2 => sub.clone().prop_map(|(s, r)| (format!("EXISTS ({s})"), r)),
        2 => sub.prop_map(|(s, r)| (format!("id IN (SELECT * FROM ({s}) AS sq)"), r)),
    ]
}

fn select(depth: u32) -> BoxedStrategy<Gen> {
    let leaf = (table_ref(), alias()).prop_map(|((t, r), a)| {
        let a = a.map(|a| format!(" AS {a}")).unwrap_or_default();
        (format!("SELECT * FROM {t}{a}"), r)
    });
    if depth == 0 {
        return leaf.boxed();
    }
    let sub = select(depth - 1);
    let factor = prop_oneof![
        (table_ref(), alias()).prop_map(|((t, r), a)| {
            let a = a.map(|a| format!(" AS {a}")).unwrap_or_default();
            (format!("{t}{a}"), r)
        }),
        (sub.clone(), 0u8..6).prop_map(|((s, r), i)| (format!("({s}) AS d{i}"), r)),
    ];
    let join_kind = prop_oneof![
        Just(("JOIN", false)),
        Just(("LEFT JOIN", false)),
        Just(("RIGHT JOIN", false)),
        Just(("INNER JOIN", false)),
        Just(("LEFT OUTER JOIN", false)),
    ];
    let joins = prop::collection::vec((join_kind, factor.clone(), condition(sub.clone())), 0..3);
    let shape = (
        factor,
        joins,
        prop::option::of(condition(sub.clone())),
        prop::option::of(sub.clone()),
        0u8..4,
    );
    prop_oneof![
        leaf,
        shape.prop_map(|((f, mut refuse), joins, cond, scalar, set_op)| {
            let mut sql = String::from("SELECT ");
            if let Some((s, r)) = scalar {
                refuse |= r;
                sql.push_str(&format!("({s}) AS x, "));
            }
            sql.push_str("* FROM ");
            sql.push_str(&f);
            for ((kind, _), (jf, jr), (c, cr)) in joins {
                refuse |= jr | cr;
                sql.push_str(&format!(" {kind} {jf} ON {c}"));
            }
            if let Some((c, r)) = cond {
                refuse |= r;
                sql.push_str(&format!(" WHERE {c}"));
            }
            match set_op {
                1 => sql.push_str(" UNION ALL SELECT * FROM assets"),
                2 => sql = format!("WITH c AS ({sql}) SELECT * FROM c JOIN work_orders ON true"),
                _ => {}
            }
            (sql, refuse)
        }),
    ]
    .boxed()
}

fn statement() -> impl Strategy<Value = Gen> {
    let sub = select(2);
    prop_oneof![
        4 => sub.clone(),
        1 => sub.clone().prop_map(|(s, r)| (format!("INSERT INTO assets (id, name) SELECT id, name FROM ({s}) AS src"), r)),
        1 => Just(("INSERT INTO work_orders (id, title) VALUES ('a', 'b'), ('c', 'd')".to_string(), false)),
        1 => (condition(sub.clone())).prop_map(|(c, r)| (format!("UPDATE assets SET name = 'n' WHERE {c}"), r)),
        1 => (condition(sub.clone())).prop_map(|(c, r)| (format!("DELETE FROM work_orders WHERE {c}"), r)),
        1 => sub.clone().prop_map(|(s, r)| (format!("UPDATE work_orders AS w SET title = 'x' FROM ({s}) AS f WHERE true"), r)),
        1 => Just(("UPDATE assets SET tenant_id = 'x'".to_string(), true)),
        1 => Just(("INSERT INTO assets (id, tenant_id) VALUES ('a', 'b')".to_string(), true)),
        1 => sub.clone().prop_map(|(s, _)| (format!("{s}; SELECT 1"), true)),
        1 => sub.prop_map(|(s, _)| (format!("SELECT * FROM assets a FULL JOIN ({s}) AS f ON true"), true)),
    ]
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "SELECT",
        "*",
        "FROM",
        "assets",
        "work_orders",
        "countries",
        "a",
        "w",
        "AS",
        "JOIN",
        "LEFT",
        "RIGHT",
        "FULL",
        "ON",
        "USING",
        "(",
        ")",
        ",",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "EXISTS",
        "IN",
        "=",
        "1",
        "'x'",
        "$1",
        "?",
        "?2",
        "UNION",
        "ALL",
        "WITH",
        "c",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "SET",
        "DELETE",
        "RETURNING",
        "tenant_id",
        "id",
        "name",
        ";",
        "LATERAL",
        "set_config",
        "public.",
        ".",
        "--",
        "/*",
        "*/",
        "\"",
        "ON CONFLICT",
        "DO",
        "NOTHING",
        "GROUP BY",
        "ORDER BY",
        "LIMIT",
        "CASE",
        "WHEN",
        "THEN",
        "END",
        "::",
        "ROLE",
    ])
}

fn check_outcome(sql: &str, dialect: Dialect) -> Result<bool, TestCaseError> {
    match guard(dialect).scope(sql) {
        Ok(scoped) => {
            check_scoped(scoped.sql(), dialect, scoped.tenant_param())
                .map_err(|e| TestCaseError::fail(format!("{sql}\n=> {}\n{e}", scoped.sql())))?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_statements_are_scoped_or_refused((sql, must_refuse) in statement()) {
        for dialect in DIALECTS {
            let accepted = check_outcome(&sql, dialect)?;
            prop_assert!(!(must_refuse && accepted), "accepted {sql} on {dialect:?}");
        }
    }

    #[test]
    fn token_soup_never_panics_and_accepted_output_is_scoped(tokens in prop::collection::vec(token(), 0..40)) {
        let sql = tokens.join(" ");
        for dialect in DIALECTS {
            check_outcome(&sql, dialect)?;
        }
    }

    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,200}") {
        for dialect in DIALECTS {
            check_outcome(&sql, dialect)?;
        }
    }
}

#[test]
fn generator_is_not_vacuous() {
    // The property above only means something if most generated statements
    // are accepted (and so go through the checker).
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = statement();
    let g = guard(Dialect::Postgres);
    let accepted = (0..400)
        .filter(|_| {
            let (sql, _) = strategy.new_tree(&mut runner).unwrap().current();
            g.scope(&sql).is_ok()
        })
        .count();
    assert!(
        accepted >= 160,
        "only {accepted}/400 generated statements accepted"
    );
}
