//! Evaluation order: the statement's own conditions never run on another
//! tenant's row.
//!
//! Neither database promises to evaluate the tenant predicate before the
//! statement's other conjuncts: SQLite evaluates the terms an index answers
//! first and the rest in the order it likes; PostgreSQL orders quals by cost
//! and pulls subqueries up. A conjunct that can raise an error or take time
//! only for some rows (`CASE WHEN name LIKE 's%' THEN json('x') END`) would
//! then be an oracle over rows the statement can never read. So:
//!
//! - every impure conjunct of `WHERE` and `ON` (of `SELECT`, `UPDATE` and
//!   `DELETE`) becomes `CASE WHEN (SELECT <tenant predicates of the tables
//!   in scope>) THEN (<conjunct>) END`: both databases evaluate a `CASE`
//!   branch only when its condition holds, so the conjunct runs on the
//!   tenant's rows only (the condition is a subquery because SQLite's
//!   constant propagation would read a bare `t.tenant_id` in it as the
//!   constant the top-level predicate equates it with). Pure conjuncts
//!   (comparisons, `IS NULL`, `IN (list)`, `BETWEEN` of columns, literals and
//!   parameters) stay as written, so key lookups keep their index;
//! - `HAVING` may be moved into `WHERE` by either planner when it uses no
//!   aggregate: its guard is an aggregate over the predicates, which pins it
//!   after grouping (every row of a group has passed `WHERE`, so the guard
//!   holds for every group);
//! - derived tables and CTEs are fenced so that no planner flattens them into
//!   the enclosing query or pushes the enclosing query's conditions into them
//!   (the enclosing conditions are guarded by the enclosing query's
//!   predicates, which do not cover the derived table's rows): SQLite gets
//!   `LIMIT -1` (flattening restrictions 19, 8, 9 and push-down restriction
//!   3), PostgreSQL `OFFSET 0` on derived tables (no pull-up, no qual
//!   push-down) and `MATERIALIZED` on CTEs.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{CaseWhen, Cte, CteAsMaterialized, Offset, OffsetRows};

use super::*;

/// Whether `e` can neither raise an error nor take time that depends on the
/// row: comparisons, `IS [NOT] NULL`/`TRUE`/`FALSE`, `IS [NOT] DISTINCT
/// FROM`, `IN (list)` and `BETWEEN` of columns, literals and parameters,
/// joined by `AND`/`OR`/`NOT`. Everything else (functions, subqueries,
/// `LIKE`, arithmetic, casts of anything but a literal, `COLLATE`, `CASE`, row values) is impure.
///
/// `suspect` names the bare identifiers that are not plain columns: a bare
/// name is impure when it holds ([`Rewriter::suspect_name`]: an output
/// alias SQLite would read as its expression, a whole-row reference whose
/// comparison PostgreSQL runs field by field).
pub(super) fn is_pure(e: &Expr, suspect: &dyn Fn(&Ident) -> bool) -> bool {
    let is_pure = |e: &Expr| is_pure(e, suspect);
    match e {
        Expr::Identifier(ident) => !suspect(ident),
        Expr::CompoundIdentifier(_) | Expr::Value(_) => true,
        Expr::Nested(e)
        | Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsTrue(e)
        | Expr::IsNotTrue(e)
        | Expr::IsFalse(e)
        | Expr::IsNotFalse(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotUnknown(e)
        | Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: e,
        } => is_pure(e),
        // `-9223372036854775808` negated overflows on PostgreSQL: only a
        // signed literal is pure.
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => matches!(**expr, Expr::Value(_)),
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::And
                    | BinaryOperator::Or
            ) && is_pure(left)
                && is_pure(right)
        }
        // A constant's cast fails, if at all, on every row alike.
        Expr::Cast { expr, .. } => matches!(**expr, Expr::Value(_)),
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => is_pure(a) && is_pure(b),
        Expr::In {
            expr,
            target: InTarget::List(list),
            ..
        } => is_pure(expr) && list.iter().all(is_pure),
        Expr::Between {
            expr, low, high, ..
        } => is_pure(expr) && is_pure(low) && is_pure(high),
        _ => false,
    }
}

/// The top-level conjuncts of `e` (through parentheses).
fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                } | Expr::Nested(_)
            ) =>
        {
            split_and(*inner, out);
        }
        other => out.push(other),
    }
}

/// `CASE WHEN <cond> THEN (<e>) END`.
fn case_when(cond: Expr, e: Expr) -> Expr {
    let result = match e {
        nested @ Expr::Nested(_) => nested,
        other => Expr::Nested(Box::new(other)),
    };
    case_when_plain(cond, result)
}

/// `CASE WHEN <cond> THEN <result> END`.
fn case_when_plain(cond: Expr, result: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen {
            condition: cond,
            result,
        }],
        else_result: None,
    }
}

/// Rewrites `e` so that each impure conjunct runs only when `cond` holds;
/// `e` unchanged when every conjunct is pure.
///
/// The conjuncts are joined again as one chain, one level per conjunct
/// (printing, the re-parse check and `Drop` recurse once per level), and a
/// balanced tree of parenthesised `AND`s holds far more conjuncts than it
/// is deep (1,000 in 10 levels): more than [`MAX_DEPTH`] conjuncts is
/// [`GuardError::TooComplex`] (a stack overflow aborted the process).
fn guard_with(
    e: Expr,
    cond: &Expr,
    suspect: &dyn Fn(&Ident) -> bool,
) -> Result<(Expr, usize), GuardError> {
    if is_pure(&e, suspect) {
        return Ok((e, 0));
    }
    let mut wraps = 0;
    let mut parts = Vec::new();
    split_and(e, &mut parts);
    if parts.len() > MAX_DEPTH {
        return Err(GuardError::TooComplex);
    }
    let mut acc: Option<Expr> = None;
    for part in parts {
        let part = if is_pure(&part, suspect) {
            part
        } else {
            wraps += 1;
            case_when(cond.clone(), part)
        };
        acc = Some(match acc {
            None => part,
            Some(left) => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::And,
                right: Box::new(part),
            },
        });
    }
    Ok((
        acc.unwrap_or_else(|| Expr::value(Value::Boolean(true))),
        wraps,
    ))
}

/// Most copies of a tenant predicate the evaluation guards may add to one
/// statement: each guard repeats the predicates of every table in scope, so
/// a statement of many tables and many impure conditions would otherwise
/// grow its output quadratically ([`GuardError::TooComplex`] past it).
pub(crate) const MAX_GUARD_PREDICATES: usize = 4096;

/// How many tenant predicates `preds` hold: a nullable side's
/// `(p1 AND p2 ..) IS NOT FALSE` counts each of its predicates (a nested
/// join of many tables on the nullable side of an outer join is one entry
/// of many predicates, which every guard repeats).
fn predicate_count(preds: &[Expr]) -> usize {
    fn count(e: &Expr) -> usize {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => count(left).saturating_add(count(right)),
            Expr::Nested(e) | Expr::IsNotFalse(e) => count(e),
            _ => 1,
        }
    }
    preds.iter().map(count).fold(0, usize::saturating_add)
}

/// Most tenant predicates one statement may carry (one per tenant-table
/// reference, two on a client-scoped table): the rewriter conjoins a clause's
/// predicates into one chain, which the printer, the re-parse check, `Clone`
/// and `Drop` all walk recursively, one stack frame per predicate. A FROM
/// list of 1,000 tenant tables (`FROM docs d0, docs d1, ..`, 3 tokens each,
/// well inside [`super::MAX_TOKENS`]) overflowed the stack (a process abort,
/// not a panic). Past it: [`GuardError::TooComplex`], like the nesting it
/// matches ([`MAX_DEPTH`]).
pub(crate) const MAX_TENANT_PREDICATES: usize = MAX_DEPTH;

impl Rewriter<'_> {
    /// Counts the tenant predicates of one more table reference; refuses
    /// past [`MAX_TENANT_PREDICATES`].
    pub(super) fn count_predicates(&mut self, preds: Vec<Expr>) -> Result<Vec<Expr>, GuardError> {
        self.tenant_predicates = self.tenant_predicates.saturating_add(preds.len());
        if self.tenant_predicates > MAX_TENANT_PREDICATES {
            Err(GuardError::TooComplex)
        } else {
            Ok(preds)
        }
    }

    /// Whether a bare name in a condition may stand for more than a column
    /// value (so a comparison over it is impure):
    ///
    /// - an output alias of the select being scoped whose expression is not
    ///   pure: SQLite resolves a name that is no column of the FROM items to
    ///   the select list's alias, and evaluates the aliased expression in
    ///   `WHERE`, `ON` and `HAVING` (`SELECT json(..) AS j FROM docs d WHERE
    ///   j = '1'` runs `json(..)` wherever `j = '1'` runs);
    /// - the name of a FROM item: PostgreSQL reads it as the whole row, and a
    ///   row comparison (`d = CAST('(..)' AS docs)`, `IN`, `<`, `IS DISTINCT
    ///   FROM`) compares field by field and stops at the first field that
    ///   differs, raising "could not identify an equality operator" only
    ///   when it reaches a `json`/`xml`/`point` field, that is only when
    ///   every field before it matched.
    ///
    /// Both compared without regard to case or quoting (fail closed: a
    /// column of the same name only loses its unwrapped form).
    pub(super) fn suspect_name(&self, ident: &Ident) -> bool {
        let name = ident.value.as_str();
        self.impure_aliases
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
            || self
                .scopes
                .iter()
                .flatten()
                .any(|(q, _)| q.eq_ignore_ascii_case(name))
    }

    /// The output aliases of `projection` whose expression is impure (see
    /// [`Self::suspect_name`]); to be set while the select's conditions are
    /// guarded. An alias of an alias is followed until nothing changes.
    pub(super) fn impure_aliases_of(&self, projection: &[SelectItem]) -> Vec<String> {
        let mut impure: Vec<String> = Vec::new();
        loop {
            let before = impure.len();
            for item in projection {
                if let SelectItem::ExprWithAlias { expr, alias } = item
                    && !impure.iter().any(|a| a.eq_ignore_ascii_case(&alias.value))
                    && !is_pure(expr, &|i: &Ident| {
                        impure.iter().any(|a| a.eq_ignore_ascii_case(&i.value))
                            || self.suspect_name(i)
                    })
                {
                    impure.push(alias.value.clone());
                }
            }
            if impure.len() == before {
                return impure;
            }
        }
    }

    /// Starts a FROM list's nullable-side predicates.
    pub(super) fn open_nullable(&mut self) {
        self.nullable_marks.push(self.nullable.len());
    }

    /// Ends the FROM list opened last; returns its nullable-side predicates.
    pub(super) fn close_nullable(&mut self) -> Vec<Expr> {
        let mark = self.nullable_marks.pop().unwrap_or(self.nullable.len());
        self.nullable.split_off(mark.min(self.nullable.len()))
    }

    /// Records the predicates of a nullable side as `(..) IS NOT FALSE`.
    pub(super) fn push_nullable(&mut self, preds: &[Expr]) {
        if let Some(cond) = conjoin(None, preds.to_vec()) {
            self.nullable
                .push(Expr::IsNotFalse(Box::new(Expr::Nested(Box::new(cond)))));
        }
    }

    /// The nullable-side predicates of the FROM list being walked.
    pub(super) fn nullable_so_far(&self) -> &[Expr] {
        let mark = self.nullable_marks.last().copied().unwrap_or(0);
        self.nullable.get(mark..).unwrap_or(&[])
    }

    /// `guard_with` for the row-level predicates `preds` (nothing to guard
    /// with when the clause sees no tenant table). The guard is
    /// `(SELECT p1 AND p2 ..)`: SQLite's constant propagation replaces every
    /// other reference to a column that a top-level `WHERE` term equates
    /// with a constant (`t.tenant_id = ?1`, the guard's own predicate) by
    /// that constant, which turned a plain `CASE WHEN t.tenant_id = ?1` into
    /// `CASE WHEN ?1 = ?1` and ran the conjunct on every row; the rewrite
    /// does not enter subqueries.
    /// Counts `n` more guard predicate copies; refuses past the budget.
    fn spend(&mut self, n: usize) -> Result<(), GuardError> {
        self.guard_copies = self.guard_copies.saturating_add(n);
        if self.guard_copies > MAX_GUARD_PREDICATES {
            Err(GuardError::TooComplex)
        } else {
            Ok(())
        }
    }

    pub(super) fn guard_rows(&mut self, e: Expr, preds: &[Expr]) -> Result<Expr, GuardError> {
        if is_pure(&e, &|i: &Ident| self.suspect_name(i)) {
            return Ok(e);
        }
        let Some(cond) = conjoin(None, preds.to_vec()) else {
            return Ok(e);
        };
        let parser_dialect: &dyn SqlDialect = match self.dialect {
            Dialect::Postgres => &PostgreSqlDialect {},
            Dialect::Sqlite => &SQLiteDialect {},
        };
        let mut guard = Parser::new(parser_dialect)
            .try_with_sql("(SELECT TRUE)")
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| GuardError::Parse(e.to_string()))?;
        let Expr::Subquery(query) = &mut guard else {
            return Err(unsupported("evaluation guard"));
        };
        let SetExpr::Select(select) = &mut *query.body else {
            return Err(unsupported("evaluation guard"));
        };
        let [SelectItem::UnnamedExpr(item)] = select.projection.as_mut_slice() else {
            return Err(unsupported("evaluation guard"));
        };
        *item = cond;
        let (guarded, wraps) = guard_with(e, &guard, &|i: &Ident| self.suspect_name(i))?;
        self.spend(wraps.saturating_mul(predicate_count(preds)))?;
        Ok(guarded)
    }

    /// Guards the user's `ON` condition of a join between `pending` and
    /// `right` with the predicates of both sides, of the nullable sides seen
    /// so far and of the earlier comma items of the FROM list (the `ON` may
    /// read any of their columns).
    pub(super) fn guard_on(
        &mut self,
        c: &mut JoinConstraint,
        pending: &[Expr],
        right: &[Expr],
    ) -> Result<(), GuardError> {
        if let JoinConstraint::On(e) = c {
            let preds = [
                self.comma_scope.as_slice(),
                pending,
                right,
                self.nullable_so_far(),
            ]
            .concat();
            let existing = std::mem::replace(e, Expr::value(Value::Boolean(true)));
            *e = self.guard_rows(existing, &preds)?;
        }
        Ok(())
    }

    /// Guards a `HAVING` condition with an aggregate over the predicates,
    /// `count(CASE WHEN <preds> THEN 1 END) = count(*)` (true for every group
    /// of rows that passed `WHERE`, the empty one included), which no planner
    /// can move into `WHERE`: both move a `HAVING` term without aggregates
    /// there, where it would run before the tenant predicate.
    pub(super) fn guard_having(&mut self, e: Expr, preds: &[Expr]) -> Result<Expr, GuardError> {
        let Some(cond) = conjoin(None, preds.to_vec()) else {
            return Ok(e);
        };
        let count = |arg: FunctionArgExpr| {
            Expr::Function(Function {
                name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new("count"))]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![FunctionArg::Unnamed(arg)],
                    clauses: Vec::new(),
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: Vec::new(),
            })
        };
        let one = Expr::value(Value::Number("1".into(), false));
        let guard = Expr::BinaryOp {
            left: Box::new(count(FunctionArgExpr::Expr(case_when_plain(cond, one)))),
            op: BinaryOperator::Eq,
            right: Box::new(count(FunctionArgExpr::Wildcard)),
        };
        let (guarded, wraps) = guard_with(e, &guard, &|i: &Ident| self.suspect_name(i))?;
        self.spend(wraps.saturating_mul(predicate_count(preds)))?;
        Ok(guarded)
    }

    /// Fences a derived table's query: `LIMIT -1` on SQLite, `OFFSET 0` on
    /// PostgreSQL, unless it already has a limit or offset.
    pub(super) fn fence_query(&self, query: &mut Query) {
        if query.limit_clause.is_some()
            || query.fetch.is_some()
            || matches!(*query.body, SetExpr::Values(_))
        {
            return;
        }
        query.limit_clause = Some(match self.dialect {
            Dialect::Sqlite => LimitClause::LimitOffset {
                limit: Some(Expr::UnaryOp {
                    op: UnaryOperator::Minus,
                    expr: Box::new(Expr::value(Value::Number("1".into(), false))),
                }),
                offset: None,
                limit_by: Vec::new(),
            },
            Dialect::Postgres => LimitClause::LimitOffset {
                limit: None,
                offset: Some(Offset {
                    value: Expr::value(Value::Number("0".into(), false)),
                    rows: OffsetRows::None,
                }),
                limit_by: Vec::new(),
            },
        });
    }

    /// Fences a CTE: `MATERIALIZED` on PostgreSQL (a recursive body may not
    /// carry `OFFSET`), `LIMIT -1` on SQLite.
    pub(super) fn fence_cte(&self, cte: &mut Cte) {
        match self.dialect {
            Dialect::Postgres => cte.materialized = Some(CteAsMaterialized::Materialized),
            Dialect::Sqlite => self.fence_query(&mut cte.query),
        }
    }
}
