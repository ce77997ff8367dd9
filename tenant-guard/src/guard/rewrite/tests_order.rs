//! Evaluation order (issue 10, `order.rs`): where the guard wraps the
//! statement's own conditions, per position. On real SQLite:
//! `tests/tenant_guard/eval_order.rs`.

use super::*;
use crate::guard::TableRegistry;

fn registry() -> TableRegistry {
    TableRegistry::parse_spec(
        "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title),countries(code,name)",
    )
    .unwrap()
    .shared_table("countries")
}

fn lite(sql: &str) -> String {
    rewrite(sql, &registry(), Dialect::Sqlite, false)
        .unwrap()
        .sql
}

fn pg(sql: &str) -> String {
    rewrite(sql, &registry(), Dialect::Postgres, false)
        .unwrap()
        .sql
}

#[test]
fn pure_conditions_stay_as_written() {
    for (sql, want) in [
        (
            "SELECT name FROM assets WHERE id = ? AND serial_no IN ('a', 'b') AND name IS NOT NULL",
            "SELECT name FROM assets WHERE (id = ?1 AND serial_no IN ('a', 'b') AND name IS NOT NULL) AND assets.tenant_id = ?2",
        ),
        (
            "SELECT name FROM assets WHERE NOT (id BETWEEN 1 AND 5) OR name <> 'x' OR id = -1",
            "SELECT name FROM assets WHERE (NOT (id BETWEEN 1 AND 5) OR name <> 'x' OR id = -1) AND assets.tenant_id = ?1",
        ),
    ] {
        assert_eq!(lite(sql), want);
    }
}

#[test]
fn impure_where_conjuncts_run_only_on_the_tenants_rows() {
    // Only the impure conjunct is wrapped; the key lookup stays plain.
    assert_eq!(
        lite("SELECT name FROM assets WHERE id = ? AND json(name) = '1'"),
        "SELECT name FROM assets WHERE (id = ?1 AND CASE WHEN (SELECT assets.tenant_id = ?2) \
         THEN (json(name) = '1') END) AND assets.tenant_id = ?2"
    );
    // An OR with an impure side is one impure conjunct.
    assert_eq!(
        pg("SELECT name FROM assets a WHERE a.id = $1 OR a.name LIKE 's%'"),
        "SELECT name FROM assets a WHERE (CASE WHEN (SELECT a.tenant_id = $2) \
         THEN (a.id = $1 OR a.name LIKE 's%') END) AND a.tenant_id = $2"
    );
    // Arithmetic, a column cast and COLLATE are impure; a literal's cast is not.
    for sql in [
        "SELECT 1 FROM assets WHERE id + 1 = 2",
        "SELECT 1 FROM assets WHERE CAST(name AS INTEGER) = 2",
        "SELECT 1 FROM assets WHERE name COLLATE NOCASE = 'x'",
        "SELECT 1 FROM assets WHERE -id = 2",
    ] {
        assert!(lite(sql).contains("CASE WHEN (SELECT"), "{sql}");
    }
    assert!(!lite("SELECT 1 FROM assets WHERE name = CAST('x' AS TEXT)").contains("CASE"));
}

#[test]
fn join_conditions_are_guarded_by_every_table_in_scope() {
    assert_eq!(
        lite(
            "SELECT 1 FROM assets a JOIN work_orders w ON w.asset_id = a.id AND length(w.title) > 1"
        ),
        "SELECT 1 FROM assets a JOIN work_orders w ON w.asset_id = a.id AND CASE WHEN \
         (SELECT a.tenant_id = ?1 AND w.tenant_id = ?1) THEN (length(w.title) > 1) END \
         WHERE a.tenant_id = ?1 AND w.tenant_id = ?1"
    );
    // LEFT JOIN: the candidate row's predicates are plain; a nullable side
    // seen later counts when null-extended (IS NOT FALSE).
    assert_eq!(
        lite(
            "SELECT 1 FROM assets a LEFT JOIN work_orders w ON w.asset_id = a.id \
             WHERE json(w.title) IS NULL"
        ),
        "SELECT 1 FROM assets a LEFT JOIN work_orders w ON (w.asset_id = a.id) AND w.tenant_id = ?1 \
         WHERE (CASE WHEN (SELECT a.tenant_id = ?1 AND (w.tenant_id = ?1) IS NOT FALSE) \
         THEN (json(w.title) IS NULL) END) AND a.tenant_id = ?1"
    );
    assert_eq!(
        pg(
            "SELECT 1 FROM work_orders w RIGHT JOIN assets a ON a.id = w.asset_id AND upper(w.title) = 'X'"
        ),
        "SELECT 1 FROM work_orders w RIGHT JOIN assets a ON (a.id = w.asset_id AND CASE WHEN \
         (SELECT w.tenant_id = $1 AND a.tenant_id = $1) THEN (upper(w.title) = 'X') END) \
         AND w.tenant_id = $1 WHERE a.tenant_id = $1"
    );
}

#[test]
fn subqueries_are_guarded_where_they_sit_and_inside() {
    assert_eq!(
        lite(
            "SELECT 1 FROM assets a WHERE EXISTS (SELECT 1 FROM work_orders w \
             WHERE w.asset_id = a.id AND instr(w.title, 'x') > 0)"
        ),
        "SELECT 1 FROM assets a WHERE (CASE WHEN (SELECT a.tenant_id = ?1) THEN (EXISTS (SELECT 1 \
         FROM work_orders w WHERE (w.asset_id = a.id AND CASE WHEN (SELECT w.tenant_id = ?1) \
         THEN (instr(w.title, 'x') > 0) END) AND w.tenant_id = ?1)) END) AND a.tenant_id = ?1"
    );
}

#[test]
fn writes_are_guarded() {
    assert_eq!(
        lite("UPDATE assets SET name = 'x' WHERE json(name) = '1'"),
        "UPDATE assets SET name = 'x' WHERE (CASE WHEN (SELECT assets.tenant_id = ?1) \
         THEN (json(name) = '1') END) AND assets.tenant_id = ?1"
    );
    assert_eq!(
        pg("DELETE FROM assets WHERE name ILIKE 'x%'"),
        "DELETE FROM assets WHERE (CASE WHEN (SELECT assets.tenant_id = $1) \
         THEN (name ILIKE 'x%') END) AND assets.tenant_id = $1"
    );
    // An upsert's conflicting row can be another tenant's when the unique
    // key leaves out the tenant column: its DO UPDATE condition is guarded
    // too (a pure one stays as written).
    assert_eq!(
        pg(
            "INSERT INTO assets AS a (id) VALUES (1) ON CONFLICT (id) DO UPDATE \
            SET name = 'n' WHERE a.name::int > 0"
        ),
        "INSERT INTO assets AS a (id, tenant_id) VALUES (1, $1) ON CONFLICT(id) DO UPDATE \
         SET name = 'n' WHERE a.tenant_id = $1 AND (CASE WHEN (SELECT a.tenant_id = $1) \
         THEN (a.name::INT > 0) END)"
    );
    assert_eq!(
        lite(
            "INSERT INTO assets (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = 'n' WHERE name <> 'n'"
        ),
        "INSERT INTO assets (id, tenant_id) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE \
         SET name = 'n' WHERE assets.tenant_id = ?1 AND (name <> 'n')"
    );
}

#[test]
fn having_is_pinned_after_grouping() {
    assert_eq!(
        lite("SELECT name FROM assets GROUP BY name HAVING json(name) = '1'"),
        "SELECT name FROM assets WHERE assets.tenant_id = ?1 GROUP BY name HAVING CASE WHEN \
         count(CASE WHEN assets.tenant_id = ?1 THEN 1 END) = count(*) THEN (json(name) = '1') END"
    );
    // A HAVING over shared tables only has nothing to guard with.
    assert_eq!(
        lite("SELECT name FROM countries GROUP BY name HAVING json(name) = '1'"),
        "SELECT name FROM countries GROUP BY name HAVING json(name) = '1'"
    );
}

#[test]
fn derived_tables_and_ctes_are_fenced() {
    assert_eq!(
        lite("SELECT t.id FROM (SELECT id FROM assets) t WHERE t.id = 1"),
        "SELECT t.id FROM (SELECT id FROM assets WHERE assets.tenant_id = ?1 LIMIT -1) t WHERE t.id = 1"
    );
    assert_eq!(
        pg("SELECT t.id FROM (SELECT id FROM assets) t"),
        "SELECT t.id FROM (SELECT id FROM assets WHERE assets.tenant_id = $1 OFFSET 0) t"
    );
    assert_eq!(
        lite("WITH c AS (SELECT id FROM assets) SELECT id FROM c"),
        "WITH c AS (SELECT id FROM assets WHERE assets.tenant_id = ?1 LIMIT -1) SELECT id FROM c"
    );
    assert_eq!(
        pg("WITH c AS NOT MATERIALIZED (SELECT id FROM assets) SELECT id FROM c"),
        "WITH c AS MATERIALIZED (SELECT id FROM assets WHERE assets.tenant_id = $1) SELECT id FROM c"
    );
    // An existing LIMIT is a fence already; VALUES reads no table.
    assert_eq!(
        lite("SELECT t.id FROM (SELECT id FROM assets LIMIT 5) t"),
        "SELECT t.id FROM (SELECT id FROM assets WHERE assets.tenant_id = ?1 LIMIT 5) t"
    );
    assert_eq!(
        lite("SELECT v.x FROM (VALUES (1)) v(x)"),
        "SELECT v.x FROM (VALUES (1)) v (x)"
    );
}

#[test]
fn guard_growth_is_bounded() {
    let tables: Vec<String> = (0..70).map(|i| format!("assets a{i}")).collect();
    let conds: Vec<String> = (0..70).map(|i| format!("json(a{i}.name) = '1'")).collect();
    let sql = format!(
        "SELECT 1 FROM {} WHERE {}",
        tables.join(", "),
        conds.join(" AND ")
    );
    assert_eq!(
        rewrite(&sql, &registry(), Dialect::Sqlite, false).map(|r| r.sql),
        Err(GuardError::TooComplex)
    );
    // 20 tables and 20 conditions (400 copies) are fine.
    let sql = format!(
        "SELECT 1 FROM {} WHERE {}",
        tables[..20].join(", "),
        conds[..20].join(" AND ")
    );
    assert!(rewrite(&sql, &registry(), Dialect::Sqlite, false).is_ok());
}

/// The budget is inclusive: a statement whose guards repeat exactly
/// `MAX_GUARD_PREDICATES` tenant predicates is scoped, one impure condition
/// more is refused.
///
/// Root cause class: an off-by-one in the budget check (`>=` for `>`)
/// refuses a statement at exactly the documented limit; a check for
/// equality alone lets a statement step over it in one guard.
#[test]
fn guard_budget_holds_exactly_max_guard_predicates() {
    use super::order::MAX_GUARD_PREDICATES;
    let n = 64;
    assert_eq!(n * n, MAX_GUARD_PREDICATES);
    let tables: Vec<String> = (0..n).map(|i| format!("assets a{i}")).collect();
    let conds: Vec<String> = (0..=n)
        .map(|i| format!("json(a{}.name) = '{i}'", i % n))
        .collect();
    let sql = |conds: &[String]| {
        format!(
            "SELECT 1 FROM {} WHERE {}",
            tables.join(", "),
            conds.join(" AND ")
        )
    };
    let at_limit = rewrite(&sql(&conds[..n]), &registry(), Dialect::Sqlite, false);
    let Ok(at_limit) = at_limit else {
        panic!("{at_limit:?}");
    };
    // Every condition is guarded by every table's predicate.
    assert_eq!(
        at_limit.sql.matches("CASE WHEN (SELECT").count(),
        n,
        "{}",
        at_limit.sql
    );
    assert_eq!(
        rewrite(&sql(&conds), &registry(), Dialect::Sqlite, false).map(|r| r.sql),
        Err(GuardError::TooComplex)
    );
}

/// The `ON` of a join after an outer join is guarded by the outer join's
/// nullable side too, as `(..) IS NOT FALSE` (true on a null-extended row):
/// the `ON` may read that side's columns, and a planner that turns the
/// outer join into an inner one (a null-rejecting term does, on both
/// databases) evaluates the nullable side's tenant predicate in any order.
///
/// Root cause class: each `ON` guard is built from the tables the FROM list
/// has seen so far; without the nullable sides recorded earlier in the same
/// list (`nullable_so_far`) the later `ON` ran on another tenant's row of
/// the nullable side.
#[test]
fn a_later_on_is_guarded_by_an_earlier_nullable_side() {
    for (sql, guard) in [
        (
            lite(
                "SELECT 1 FROM assets a LEFT JOIN work_orders w ON w.asset_id = a.id \
                 JOIN assets b ON b.id = w.asset_id AND length(w.title) > 1",
            ),
            "(SELECT a.tenant_id = ?1 AND b.tenant_id = ?1 AND (w.tenant_id = ?1) IS NOT FALSE) \
             THEN (length(w.title) > 1)",
        ),
        (
            pg(
                "SELECT 1 FROM work_orders w RIGHT JOIN assets a ON a.id = w.asset_id \
                LEFT JOIN assets b ON b.id = a.id AND upper(w.title) = 'X'",
            ),
            "(SELECT a.tenant_id = $1 AND b.tenant_id = $1 AND (w.tenant_id = $1) IS NOT FALSE) \
             THEN (upper(w.title) = 'X')",
        ),
    ] {
        assert!(sql.contains(guard), "{sql}");
    }
}

/// An `ON` in a later comma-separated FROM item may read an earlier item's
/// columns (SQLite accepts `FROM docs d, notes n JOIN notes m ON <d ..>`), so
/// its guard covers the earlier items' tenant predicates too; a subquery's
/// FROM list starts a scope of its own (a derived table cannot see them).
///
/// Root cause class: each `ON` guard was built from its own join tree only,
/// so `d`'s tenant predicate was missing from the guard and only SQLite's
/// code generator (which happened to test the plain tenant term first) kept
/// the condition off other tenants' rows of `d`.
#[test]
fn an_on_after_a_comma_is_guarded_by_the_earlier_items_too() {
    let sql = lite(
        "SELECT 1 FROM assets a, work_orders w JOIN assets b ON b.id = w.asset_id \
         AND length(a.name) > 1",
    );
    assert!(
        sql.contains(
            "(SELECT a.tenant_id = ?1 AND w.tenant_id = ?1 AND b.tenant_id = ?1) \
             THEN (length(a.name) > 1)"
        ),
        "{sql}"
    );
    // A derived table's own ON is guarded by its own tables only (the outer
    // `a` is not visible there).
    let sql = lite(
        "SELECT 1 FROM assets a, (SELECT w.id FROM work_orders w JOIN assets b \
         ON b.id = w.asset_id AND length(b.name) > 1) s",
    );
    assert!(
        sql.contains("(SELECT w.tenant_id = ?1 AND b.tenant_id = ?1) THEN (length(b.name) > 1)"),
        "{sql}"
    );
}
