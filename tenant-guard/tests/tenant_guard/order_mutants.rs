//! The evaluation-order guard (`src/guard/rewrite/order.rs`, issue 10) on
//! real SQLite, for the mutants the in-diff mutation run left alive (issue
//! 19): each test here fails when one piece of the guard is wrong.
//!
//! Same schema and oracle as `eval_order.rs`: an index on the secret (SQLite
//! evaluates the terms an index covers before it reads the row's tenant) and
//! a condition that raises "malformed JSON" exactly when it runs on a row
//! whose secret is the guess. Tenant A's outcome must not depend on whether
//! the guess is tenant B's secret; the positive control (A's own secret)
//! shows the condition does run.

use hisn_tenant_guard::db::SqliteTenantPool;

use crate::eval_order::{
    A_SECRET, B_SECRET, NO_MATCH, assert_searches_an_index, guard, outcome, raw_pool,
};

/// `json(CASE WHEN <secret> = '<guess>' THEN 'x' ELSE '1' END)`: `'1'`, or
/// an error exactly when it runs on a row whose secret is the guess.
fn probe(secret: &str, guess: &str) -> String {
    format!("json(CASE WHEN {secret} = '{guess}' THEN 'x' ELSE '1' END)")
}

/// Asserts that the form `make(guess)` is no oracle over B's secret: A's
/// outcome is the same for B's secret and for no secret, and an error for
/// A's own (the condition runs). Returns A's outcome.
async fn assert_no_oracle(
    pool: &SqliteTenantPool,
    form: &str,
    make: impl Fn(&str) -> String,
) -> Vec<String> {
    let without = outcome(pool, &make(NO_MATCH)).await;
    let with_b = outcome(pool, &make(B_SECRET)).await;
    assert!(without.is_ok(), "{form}: {without:?}");
    assert_eq!(with_b, without, "{form}: B's secret changes A's outcome");
    let own = outcome(pool, &make(A_SECRET)).await;
    assert!(own.is_err(), "{form}: the condition never ran: {own:?}");
    without.unwrap_or_default()
}

/// A named form: the statement for a guess.
type Form = (&'static str, fn(&str) -> String);

/// Impure operands under operators that are pure only when all their
/// operands are (`IN (list)`, `BETWEEN`, `IS [NOT] DISTINCT FROM`).
///
/// Root cause class: `is_pure` must require every operand to be pure; with
/// one `&&` turned into `||` an impure operand beside a pure one (a column,
/// a literal) made the whole condition "pure", so it stayed unguarded and
/// SQLite ran it on B's row through the secret's index.
#[tokio::test]
async fn an_impure_operand_makes_in_between_and_distinct_from_impure_on_sqlite() {
    let raw = raw_pool().await;
    let pool = SqliteTenantPool::new(raw, guard()).unwrap();
    let forms: [Form; 7] = [
        ("IN, impure operand", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE {} IN ('1', '2')",
                probe("d.secret", g)
            )
        }),
        ("IN, impure list item", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE d.title IN ('z', {})",
                probe("d.secret", g)
            )
        }),
        ("BETWEEN, impure operand", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE {} BETWEEN '0' AND '2'",
                probe("d.secret", g)
            )
        }),
        ("BETWEEN, impure low bound", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE '1' BETWEEN {} AND '2'",
                probe("d.secret", g)
            )
        }),
        ("BETWEEN, impure high bound", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE '1' BETWEEN '0' AND {}",
                probe("d.secret", g)
            )
        }),
        ("IS NOT DISTINCT FROM, impure left", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE {} IS NOT DISTINCT FROM '1'",
                probe("d.secret", g)
            )
        }),
        ("IS DISTINCT FROM, impure right", |g| {
            format!(
                "SELECT d.id FROM docs d WHERE 'z' IS DISTINCT FROM {}",
                probe("d.secret", g)
            )
        }),
    ];
    for (form, make) in forms {
        let rows = assert_no_oracle(&pool, form, make).await;
        // The title IN form matches no title; every other form is true on A's doc.
        let want: &[&str] = if form == "IN, impure list item" {
            &[]
        } else {
            &["1"]
        };
        assert_eq!(rows, want, "{form}");
    }
}

/// A parenthesised disjunction beside an impure conjunct keeps its
/// parentheses: `(a OR b) AND <impure>` must not become `a OR b AND CASE ..`.
///
/// Root cause class: `split_and` looks through parentheses only around an
/// `AND` (or more parentheses); stripping them from any other conjunct and
/// joining the parts with `AND` again changes the precedence, so the
/// statement would return rows its condition rejects (the guard's check
/// that the printed text parses back to the checked tree now refuses it
/// instead: either way A's statement no longer gives A's answer).
#[tokio::test]
async fn a_parenthesised_or_beside_an_impure_conjunct_keeps_its_meaning_on_sqlite() {
    let raw = raw_pool().await;
    let pool = SqliteTenantPool::new(raw, guard()).unwrap();
    // A's doc 1 has the title 'a doc', which is not JSON.
    for sql in [
        "SELECT d.id FROM docs d WHERE (d.id = 1 OR d.id = 3) AND json_valid(d.title) = 1",
        "SELECT d.id FROM docs d WHERE (d.id = 1 OR d.id = 3) AND (json_valid(d.title) = 1)",
        "SELECT d.id FROM docs d WHERE json_valid(d.title) = 1 AND (d.id = 3 OR d.id = 1)",
    ] {
        assert_eq!(outcome(&pool, sql).await, Ok(Vec::new()), "{sql}");
    }
    // Control: the row is A's and the pure part alone finds it.
    assert_eq!(
        outcome(
            &pool,
            "SELECT d.id FROM docs d WHERE (d.id = 1 OR d.id = 3) AND json_valid(d.title) = 0"
        )
        .await,
        Ok(vec!["1".to_owned()])
    );
}

/// Pure conditions keep their index wherever they sit: inside parentheses
/// beside an impure conjunct, and under `IS NOT DISTINCT FROM`, `IN (list)`
/// and `BETWEEN`.
///
/// Root cause class: a pure conjunct the guard wraps in `CASE WHEN` is no
/// longer a term the planner can answer from an index; a conjunct list in
/// parentheses left unsplit, or a pure operator not recognised as pure,
/// turned a key lookup into a full scan.
#[tokio::test]
async fn pure_key_lookups_keep_their_index_on_sqlite() {
    let raw = raw_pool().await;
    let guard = guard();
    for sql in [
        "SELECT title FROM docs d WHERE (d.id = ? AND json_valid(d.title) = 0)",
        "SELECT title FROM docs d WHERE ((d.id = ?) AND (json_valid(d.title) = 0))",
        "SELECT title FROM docs d WHERE d.id IS NOT DISTINCT FROM ?",
        "SELECT title FROM docs d WHERE d.id IS NOT DISTINCT FROM ? AND json_valid(d.title) = 0",
        "SELECT title FROM docs d WHERE d.id IN (?, 7) AND json_valid(d.title) = 0",
        "SELECT title FROM docs d WHERE d.id BETWEEN ? AND 7 AND json_valid(d.title) = 0",
    ] {
        assert_searches_an_index(&raw, &guard, sql).await;
    }
}
