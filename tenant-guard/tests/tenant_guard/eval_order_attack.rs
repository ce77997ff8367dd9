//! Evaluation order, outside review (issue 10): forms of the class that got
//! past the guards of `src/guard/rewrite/order.rs`, each named after its
//! class with the root cause, on a real database. The pattern is
//! `eval_order.rs`'s: tenant A's outcome (rows or error) must be the same
//! whether or not the guess is tenant B's secret; the positive control (A's
//! own secret) shows the condition does run; the text the guard emitted
//! before the fix, run as written, is the oracle.
//!
//! Forms tried that held (no change needed) are listed in the report of the
//! review and in the README's evaluation-order entry.

use hisn_tenant_guard::guard::{Dialect, GuardError, QueryGuard, TableRegistry};

#[cfg(feature = "postgres")]
const A_SECRET: &str = "alpha";
const B_SECRET: &str = "hunter2";
const NO_MATCH: &str = "nothing";

/// `json(CASE WHEN <secret> = '<guess>' THEN 'x' ELSE '1' END)`: "malformed
/// JSON" exactly when it runs on a row whose secret is the guess.
#[cfg(feature = "sqlite")]
fn json_oracle(secret: &str, guess: &str) -> String {
    format!("json(CASE WHEN {secret} = '{guess}' THEN 'x' ELSE '1' END)")
}

#[cfg(feature = "sqlite")]
mod lite {
    use hisn_tenant_guard::db::SqliteTenantPool;
    use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};

    use super::{B_SECRET, NO_MATCH, json_oracle};
    use crate::common::TENANT_A;
    // `eval_order.rs`'s schema (rowid tables with no index led by the tenant
    // column, an index on the secret; A's note 1 points at B's doc 2), its
    // guard and tenant A's rolled-back outcome.
    use crate::eval_order::{assert_no_form_is_an_oracle, guard, outcome, raw_pool};

    /// The output-alias forms, for `guess`.
    fn alias_forms(guess: &str) -> Vec<(&'static str, String)> {
        let j = json_oracle("d.secret", guess);
        vec![
            (
                "WHERE",
                format!("SELECT d.id, {j} AS j FROM docs d WHERE j = '1'"),
            ),
            (
                "WHERE beside an index term",
                format!("SELECT d.id, {j} AS j FROM docs d WHERE d.secret >= '' AND j = '1'"),
            ),
            (
                "WHERE, IN list",
                format!("SELECT d.id, {j} AS j FROM docs d WHERE j IN ('1', '2')"),
            ),
            (
                "WHERE, IS NOT NULL",
                format!("SELECT d.id, {j} AS j FROM docs d WHERE j IS NOT NULL"),
            ),
            (
                "WHERE, quoted alias",
                format!("SELECT d.id, {j} AS \"j\" FROM docs d WHERE \"j\" = '1'"),
            ),
            (
                "WHERE, alias in another case",
                format!("SELECT d.id, {j} AS J FROM docs d WHERE j = '1'"),
            ),
            (
                "WHERE over a comma join",
                format!(
                    "SELECT n.id, {j} AS j FROM notes n, docs d WHERE d.secret >= '' AND j = '1'"
                ),
            ),
            (
                "left join ON",
                format!(
                    "SELECT n.id, {j} AS j FROM notes n LEFT JOIN docs d ON d.id = n.doc_id \
                     AND d.secret >= '' AND j = '1'"
                ),
            ),
            (
                // No aggregate in the term: SQLite moves it into WHERE.
                "HAVING over the grouped column",
                format!("SELECT d.secret, {j} AS j FROM docs d GROUP BY d.secret HAVING j = '1'"),
            ),
            (
                "a subquery's own alias",
                format!(
                    "SELECT n.id FROM notes n WHERE n.doc_id IN \
                     (SELECT {} AS j FROM docs e WHERE j = '1')",
                    json_oracle("e.secret", guess)
                ),
            ),
        ]
    }

    /// Class: an output alias in a condition is its expression (SQLite).
    ///
    /// Root cause: SQLite resolves a name in `WHERE`, `ON` or `HAVING` that
    /// is no column of the FROM items to the select list's alias of that
    /// name and evaluates the aliased expression there. The guard judged
    /// `j = '1'` a pure comparison of a column and left it unwrapped, so
    /// `json(..)` ran on every row the term reached, B's included (the
    /// emitted text put it before the tenant predicate). A bare name that
    /// matches an impure output alias of the same select now makes its
    /// conjunct impure (wrapped in the evaluation guard; pinned in HAVING).
    #[tokio::test]
    async fn output_alias_in_a_condition_runs_its_expression_on_sqlite() {
        let raw = raw_pool().await;
        let pool = SqliteTenantPool::new(raw.clone(), guard()).unwrap();
        assert_no_form_is_an_oracle(&pool, alias_forms).await;
        assert_eq!(
            outcome(&pool, &alias_forms(NO_MATCH)[0].1).await,
            Ok(vec!["1".to_owned()])
        );
        // Positive control: the text emitted before, as written.
        let old = |guess: &str| {
            format!(
                "SELECT d.id, {} AS j FROM docs d WHERE (j = '1') AND d.tenant_id = ?1",
                json_oracle("d.secret", guess)
            )
        };
        let run = |sql: String| {
            let raw = raw.clone();
            async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(TENANT_A)
                    .fetch_all(&raw)
                    .await
                    .map(|rows| rows.len())
            }
        };
        assert!(run(old(NO_MATCH)).await.is_ok());
        assert!(run(old(B_SECRET)).await.is_err(), "not an oracle");
        // An alias of a plain column stays a plain comparison (index kept).
        let scoped = guard()
            .scope("SELECT d.id, d.secret AS s FROM docs d WHERE s = ?")
            .unwrap();
        assert!(!scoped.sql().contains("CASE"), "{}", scoped.sql());
    }
}

/// Class: a whole-row comparison is field by field (PostgreSQL).
///
/// Root cause: PostgreSQL reads a bare FROM-item name (`d`) as the whole row,
/// and compares two rows field by field, stopping at the first field that
/// differs; a `json` (or `xml`, `point`) field has no equality or ordering
/// operator, and the comparison raises "could not identify an equality
/// operator for type json" only when it reaches that field, that is only
/// when every field before it matched. `d = CAST('(2,<B>,b doc,<guess>,{})'
/// AS docs)` looked like a pure comparison of a column with a constant,
/// stayed unwrapped, and PostgreSQL ran it (same cost as the tenant
/// predicate, written first) on B's row: an error exactly when B's secret
/// was the guess. A bare name that names a FROM item in scope now makes its
/// conjunct impure.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn whole_row_comparison_stops_at_the_first_differing_field_on_postgres_without_rls() {
    use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};

    use crate::common::{TENANT_A, TENANT_B};
    use crate::eval_order_pg::{assert_no_form_is_an_oracle, docs_and_notes};

    let Some((fx, pool)) = docs_and_notes("tg_eval_order_attack", true).await else {
        return;
    };
    // B's row as a constant, with the guess in place of its secret (and A's
    // own row, for the positive control).
    let row = |id: u8, tenant: &str, title: &str, guess: &str| {
        format!("CAST('({id},{tenant},\"{title}\",{guess},{{}})' AS docs)")
    };
    let forms = |id: u8, tenant: &str, title: &str, guess: &str| {
        let r = row(id, tenant, title, guess);
        vec![
            ("=", format!("SELECT d.id FROM docs d WHERE d = {r}")),
            (
                "IS DISTINCT FROM",
                format!("SELECT d.id FROM docs d WHERE d IS DISTINCT FROM {r}"),
            ),
            ("<", format!("SELECT d.id FROM docs d WHERE d < {r}")),
            ("IN", format!("SELECT d.id FROM docs d WHERE d IN ({r})")),
            (
                "the table's own name",
                format!("SELECT docs.id FROM docs WHERE docs = {r}"),
            ),
            (
                "UPDATE WHERE",
                format!("UPDATE docs SET title = title WHERE docs = {r} RETURNING id"),
            ),
        ]
    };
    assert_no_form_is_an_oracle(
        &pool,
        forms(2, TENANT_B, "b doc", B_SECRET),
        forms(2, TENANT_B, "b doc", NO_MATCH),
        forms(1, TENANT_A, "a doc", A_SECRET),
    )
    .await;
    // Positive control: the text emitted before, as written.
    let old = |guess: &str| {
        format!(
            "SELECT d.id FROM docs d WHERE (d = {}) AND d.tenant_id = $1",
            row(2, TENANT_B, "b doc", guess)
        )
    };
    let tenant_a = sqlx::types::Uuid::parse_str(TENANT_A).unwrap();
    let run = |sql: String| {
        let admin = fx.admin.clone();
        async move {
            sqlx::query(AssertSqlSafe(sql))
                .bind(tenant_a)
                .fetch_all(&admin)
                .await
                .map(|rows| rows.len())
        }
    };
    assert!(run(old(NO_MATCH)).await.is_ok());
    assert!(run(old(B_SECRET)).await.is_err(), "not an oracle");
    fx.teardown().await;
}

/// `SELECT 1 FROM notes n LEFT JOIN (docs d0 JOIN docs d1 ON TRUE ..) ON TRUE
/// WHERE f0(d0.id) AND ..`: `tables` tenant tables on the nullable side,
/// `conditions` impure conjuncts.
fn nullable_nest(tables: usize, conditions: usize) -> String {
    let joins: String = (1..tables)
        .map(|i| format!(" JOIN docs d{i} ON TRUE"))
        .collect();
    let conds: Vec<String> = (0..conditions).map(|i| format!("f{i}(d0.id)")).collect();
    format!(
        "SELECT 1 FROM notes n LEFT JOIN (docs d0{joins}) ON TRUE WHERE {}",
        conds.join(" AND ")
    )
}

/// Class: the guard budget undercounted a nullable side.
///
/// Root cause: every evaluation guard repeats the predicates of all tables in
/// scope, and the budget (4096 copies per statement, else `TooComplex`)
/// counted them as `conditions x entries`; a nested join on the nullable
/// side of an outer join is one entry, `(p1 AND .. AND pN) IS NOT FALSE`, of
/// N predicates. 6.8 KB of input (199 tables on the nullable side, 150
/// conditions) became 0.7 MB of output (30,000 predicates, each in a
/// subquery run per row) after seconds of rewriting (12 KB became 1.8 MB
/// before the table bound below): the budget that bounds the blowup did not
/// hold. Each predicate inside such an entry now counts.
#[test]
fn guard_budget_counts_every_predicate_of_a_nullable_side() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let guard = QueryGuard::new(
            TableRegistry::parse_spec("docs:tenant_id(id),notes:tenant_id(id)").unwrap(),
            dialect,
        );
        // 63 nullable tables and `n`: 64 predicates per guard, 64 guards.
        let at_cap = guard.scope(&nullable_nest(63, 64)).unwrap();
        let copies = at_cap.sql().matches("tenant_id = ").count();
        // 4096 in the guards, 63 in the outer join's ON, 1 in WHERE.
        assert_eq!(copies, 4096 + 63 + 1, "{dialect:?}");
        for (tables, conditions) in [(63, 65), (199, 150)] {
            assert_eq!(
                guard
                    .scope(&nullable_nest(tables, conditions))
                    .map(|s| s.sql().len()),
                Err(GuardError::TooComplex),
                "{dialect:?} {tables} {conditions}"
            );
        }
    }
}

/// Class: a generated chain as deep as the input is wide.
///
/// Root cause: the rewriter joins a clause's tenant predicates, and the
/// conjuncts of a guarded condition, into one left-deep `AND` chain, which
/// printing, the re-parse check, `Clone` and `Drop` walk recursively, one
/// stack frame per link; `MAX_DEPTH` bounds the input's nesting, not this
/// chain's length. `FROM docs d0, docs d1, ..` with 1,000 tables (3 tokens
/// each) and `WHERE ((c1 AND c2) AND (c3 AND c4)) ..` with 1,000 conjuncts
/// in 10 levels overflowed a 2 MiB stack (a process abort, not a panic:
/// one statement took down the server). At most 200 tenant predicates per
/// statement and 200 conjuncts per guarded condition, else `TooComplex`.
#[test]
fn generated_chains_are_bounded_not_a_stack_overflow() {
    fn balanced(lo: usize, hi: usize) -> String {
        if hi - lo == 1 {
            return if lo == 0 {
                "json_valid(d.id)".to_owned()
            } else {
                format!("d.id <> {lo}")
            };
        }
        let mid = (lo + hi) / 2;
        format!("({} AND {})", balanced(lo, mid), balanced(mid, hi))
    }
    let comma = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| format!("docs d{i}")).collect();
        format!("SELECT 1 FROM {}", items.join(", "))
    };
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let guard = QueryGuard::new(
            TableRegistry::parse_spec("docs:tenant_id(id),codes(code)").unwrap(),
            dialect,
        );
        // The work runs on a 2 MiB stack, a server's worker thread size.
        let scope = |sql: String| {
            std::thread::scope(|s| {
                std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn_scoped(s, || guard.scope(&sql).map(|s| s.sql().len()))
                    .unwrap()
                    .join()
                    .unwrap()
            })
        };
        assert!(scope(comma(200)).is_ok(), "{dialect:?}");
        for sql in [
            comma(201),
            comma(1000),
            format!("SELECT 1 FROM docs d WHERE {}", balanced(0, 1000)),
            format!("SELECT 1 FROM docs d WHERE {}", balanced(0, 201)),
        ] {
            assert_eq!(scope(sql), Err(GuardError::TooComplex), "{dialect:?}");
        }
        assert!(
            scope(format!("SELECT 1 FROM docs d WHERE {}", balanced(0, 200))).is_ok(),
            "{dialect:?}"
        );
        // Shared tables add no predicate: not counted.
        let shared: Vec<String> = (0..300).map(|i| format!("codes c{i}")).collect();
        assert!(
            scope(format!("SELECT 1 FROM {}", shared.join(", "))).is_ok(),
            "{dialect:?}"
        );
    }
}

/// `DISTINCT ON (d.x)` was walked before the select's FROM items were in
/// scope, so a qualified name in it was refused as an unknown column (fail
/// closed, but the form could not be used; found while trying `DISTINCT ON`
/// with an impure expression, which runs after `WHERE` and held). An
/// unknown qualifier is still refused.
#[test]
fn distinct_on_sees_the_from_items() {
    let guard = QueryGuard::new(
        TableRegistry::parse_spec("docs:tenant_id(id,title,secret)").unwrap(),
        Dialect::Postgres,
    );
    let scoped = guard
        .scope("SELECT DISTINCT ON (d.secret) d.id FROM docs d ORDER BY d.secret, d.id")
        .unwrap();
    assert_eq!(
        scoped.sql(),
        "SELECT DISTINCT ON (d.secret) d.id FROM docs d WHERE d.tenant_id = $1 \
         ORDER BY d.secret, d.id"
    );
    assert!(matches!(
        guard.scope("SELECT DISTINCT ON (x.secret) d.id FROM docs d"),
        Err(GuardError::UnknownColumn(_))
    ));
    assert!(matches!(
        guard.scope("SELECT DISTINCT ON (d.nope) d.id FROM docs d"),
        Err(GuardError::UnknownColumn(_))
    ));
}
