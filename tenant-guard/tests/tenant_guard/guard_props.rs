//! Property tests of the query guard: generated statements are scoped (as
//! the independent checker sees it) or refused, and no input panics.

use hisn_tenant_guard::guard::Dialect;
use proptest::prelude::*;

use super::guard_checker::check_scoped;
use super::guard_corpus::{DIALECTS, guard};

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
