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
    AccessExpr, Assignment, AssignmentTarget, BinaryOperator, CastKind, ConflictTarget, Delete,
    DoUpdate, Expr, FromTable, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, InTarget, Insert, JoinConstraint,
    JoinOperator, JsonPathElem, LimitClause, NamedWindowExpr, ObjectName, ObjectNamePart,
    OnConflict, OnConflictAction, OnInsert, OrderBy, OrderByExpr, OrderByKind, Query, Select,
    SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SqliteOnConflict,
    Statement, Subscript, TableAlias, TableFactor, TableObject, TableWithJoins, TypedString,
    UnaryOperator, Update, UpdateTableFromKind, Value, Values, WildcardAdditionalOptions,
    WindowFrameBound, WindowSpec, WindowType,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::ALL_KEYWORDS;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Tokenizer;

use super::registry::TableKind;
use super::{Dialect, GuardError, GuardParam, MAX_DEPTH, TableRegistry, params, render};

mod clients;
mod exprs;
mod names;
mod order;
mod policy;
mod queries;
mod scope;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_attacks;
#[cfg(test)]
mod tests_classes;
#[cfg(test)]
mod tests_clients;
#[cfg(test)]
mod tests_order;
#[cfg(test)]
mod tests_review;
mod writes;

pub(crate) use policy::is_denied_function;
use policy::{allowed_binary, allowed_unary, classify};

/// What a rewrite produced: the text, the statement's own parameter count,
/// where the guard's other parameters went and the role gates it touched.
#[derive(Debug)]
pub(crate) struct Rewritten {
    pub(crate) sql: String,
    pub(crate) user_params: usize,
    /// The guard's parameters after the tenant's, in index order.
    pub(crate) extra: Vec<GuardParam>,
    /// `(table, roles)`: the statement needs one of `roles` for `table`.
    pub(crate) gates: Vec<(String, Vec<String>)>,
}

/// Parses, scopes and renders `sql`. `org_wide`: the session holds an
/// organisation-wide role, so client-scoped tables get no client predicate.
pub(crate) fn rewrite(
    sql: &str,
    registry: &TableRegistry,
    dialect: Dialect,
    org_wide: bool,
) -> Result<Rewritten, GuardError> {
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
        scopes: Vec::new(),
        cte_columns: Vec::new(),
        org_wide,
        extra: Vec::new(),
        clients: None,
        active_client: None,
        gates: Vec::new(),
        shared_refs: 0,
        nullable: Vec::new(),
        nullable_marks: Vec::new(),
        comma_scope: Vec::new(),
        guard_copies: 0,
        impure_aliases: Vec::new(),
        tenant_predicates: 0,
    };
    rewriter.statement(&mut statement)?;
    let extra: Vec<GuardParam> = rewriter.extra.clone();
    let gates = rewriter.gates_owned();
    let max_param = prepared.user_params + 1 + extra.len();
    let printed = statement.to_string();
    let printed_tokens = Tokenizer::new(parser_dialect, &printed)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| GuardError::Lexical(e.to_string()))?;
    // Render and re-lex first (it borrows the printed tokens), then parse the
    // printed text again (which consumes them): both must hold, and the order
    // saves a copy of the token stream on every cold rewrite.
    let out = render::emit(
        &printed,
        &printed_tokens,
        &prepared.literals,
        dialect,
        max_param,
    )?;
    // The printer must be faithful to the tree: parse its output again.
    let reparsed = Parser::new(parser_dialect)
        .with_tokens_with_locations(printed_tokens)
        .parse_statements()
        .map_err(|e| GuardError::Lexical(e.to_string()))?;
    if reparsed.as_slice() != std::slice::from_ref(&statement) {
        return Err(GuardError::Lexical(
            "the printed statement does not parse back to the checked tree".into(),
        ));
    }
    Ok(Rewritten {
        sql: out,
        user_params: prepared.user_params,
        extra,
        gates,
    })
}

fn unsupported(what: &str) -> GuardError {
    GuardError::Unsupported(what.to_string())
}

/// `Ok(())` when `cond` holds, else the refusal for `what`.
fn require(cond: bool, what: &str) -> Result<(), GuardError> {
    if cond { Ok(()) } else { Err(unsupported(what)) }
}

/// A registered tenant table as a reference resolves it.
#[derive(Clone, Copy)]
struct TenantRef<'r> {
    /// The registry key.
    key: &'r str,
    /// The tenant column.
    column: &'r str,
    /// The client column, for a client-scoped table.
    client: Option<&'r str>,
}

/// How a table reference resolves.
enum Resolved<'r> {
    /// A registered tenant table.
    Tenant(TenantRef<'r>),
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
    /// FROM-item qualifiers in scope, innermost last.
    scopes: Vec<scope::Scope<'r>>,
    /// Output columns of the CTEs in scope, innermost last.
    cte_columns: Vec<(String, scope::Columns<'r>)>,
    /// The session holds an organisation-wide role: no client predicate.
    org_wide: bool,
    /// The guard's parameters after the tenant's, in index order.
    extra: Vec<GuardParam>,
    /// The granted-clients placeholder once used (with its predicate template).
    clients: Option<Expr>,
    /// The active-client placeholder once used.
    active_client: Option<Expr>,
    /// Role gates the statement touched: table and the roles it needs.
    gates: Vec<(&'r str, &'r std::collections::BTreeSet<String>)>,
    /// References to shared tables resolved so far (a query with a locking
    /// clause must add none).
    shared_refs: usize,
    /// Predicates of the tenant tables on the nullable side of an outer join
    /// in the FROM lists being walked, as `(..) IS NOT FALSE` (true on a
    /// null-extended row), for the evaluation guards (`order.rs`).
    nullable: Vec<Expr>,
    /// Where each FROM list being walked starts in `nullable`.
    nullable_marks: Vec<usize>,
    /// The tenant predicates of the earlier comma-separated items of the
    /// FROM list being scoped: a later item's `ON` may read their columns,
    /// so its guard covers them too.
    comma_scope: Vec<Expr>,
    /// Tenant predicate copies the evaluation guards added so far.
    guard_copies: usize,
    /// Output aliases of the select whose conditions are being guarded that
    /// stand for an impure expression (`order.rs`, SQLite reads them in
    /// `WHERE`, `ON` and `HAVING`).
    impure_aliases: Vec<String>,
    /// Tenant predicates added so far (`order.rs`, bounded).
    tenant_predicates: usize,
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

/// `p1 AND p2 .. AND (<existing>)`: the guard's predicates first, for a
/// clause evaluated in order, with no planner, on a row no predicate has
/// filtered yet: `ON CONFLICT .. DO UPDATE .. WHERE` runs on the existing
/// row the new one conflicts with, which may be another tenant's (a unique
/// key without the tenant column). Both databases stop at the first false
/// conjunct, so the statement's own condition never runs on that row: with
/// it first, `WHERE 1 / (CASE WHEN t.secret = 'x' THEN 0 ELSE 1 END) = 1`
/// was an error oracle over another tenant's row.
fn conjoin_first(preds: Vec<Expr>, existing: Option<Expr>) -> Option<Expr> {
    let existing = existing.map(|e| match e {
        nested @ Expr::Nested(_) => nested,
        other => Expr::Nested(Box::new(other)),
    });
    let mut acc = conjoin(None, preds);
    if let Some(existing) = existing {
        acc = Some(match acc {
            None => existing,
            Some(left) => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::And,
                right: Box::new(existing),
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
