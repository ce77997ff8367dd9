//! Property tests over random grant sets (issue 17): whatever clients a
//! session of tenant A is granted (X, Y, tenant B's client Z, a client W
//! with no rows) and whether it holds the organisation-wide role, every
//! statement shape returns exactly the rows of tenant A whose client it was
//! granted (all of A's rows for the organisation-wide role), and counts
//! exactly as many. SQLite: the guard alone; PostgreSQL: the guard, and RLS
//! alone with the guard off.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::clients_common::*;

const CLIENT_W: &str = "44444444-0000-4000-8000-00000000000d";

/// Statement shapes that must all see the same rows.
const SHAPES: &[&str] = &[
    "SELECT memo FROM ledger",
    "SELECT l.memo FROM ledger l JOIN ledger m ON m.id = l.id",
    "SELECT memo FROM ledger WHERE id IN (SELECT id FROM ledger)",
    "WITH c AS (SELECT memo FROM ledger) SELECT memo FROM c",
    "SELECT memo FROM ledger UNION ALL SELECT memo FROM ledger WHERE 1 = 0",
    "SELECT memo FROM (SELECT memo FROM ledger) AS d",
];

/// A random grant set and role.
fn grants() -> impl Strategy<Value = (Vec<&'static str>, bool)> {
    (
        proptest::sample::subsequence(vec![CLIENT_X, CLIENT_Y, CLIENT_Z, CLIENT_W], 0..=4),
        any::<bool>(),
    )
}

/// The memos tenant A's session with `clients` (or organisation-wide) may see.
fn expected(clients: &[&str], org_wide: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if org_wide || clients.contains(&CLIENT_X) {
        out.extend(["x-one".to_owned(), "x-two".to_owned()]);
    }
    if org_wide || clients.contains(&CLIENT_Y) {
        out.extend(["y-other".to_owned(), "y-secret".to_owned()]);
    }
    out
}

fn roles(org_wide: bool) -> &'static [&'static str] {
    if org_wide { &[ORG_WIDE] } else { &["member"] }
}

#[cfg(feature = "sqlite")]
#[test]
fn random_grant_sets_see_exactly_their_clients_sqlite() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(crate::clients_lite::pool());
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&grants(), |(clients, org_wide)| {
            let ctx = ctx(roles(org_wide), &clients);
            let want = expected(&clients, org_wide);
            for shape in SHAPES {
                let got: BTreeSet<String> = rt
                    .block_on(crate::clients_lite::run(&pool, &ctx, shape))
                    .unwrap()
                    .into_iter()
                    .collect();
                prop_assert_eq!(&got, &want, "{} {:?} {}", shape, clients, org_wide);
            }
            let count = rt
                .block_on(crate::clients_lite::run(
                    &pool,
                    &ctx,
                    "SELECT count(*) FROM ledger",
                ))
                .unwrap();
            prop_assert_eq!(count, [want.len().to_string()]);
            Ok(())
        })
        .unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn random_grant_sets_see_exactly_their_clients_pg() {
    use crate::clients_pg::{Mode, fixture, pool, run};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(f) = rt.block_on(fixture("clients_pg_props")) else {
        return;
    };
    let pool = pool(&f);
    let mut runner = TestRunner::new(Config::with_cases(24));
    runner
        .run(&grants(), |(clients, org_wide)| {
            let ctx = ctx(roles(org_wide), &clients);
            let want = expected(&clients, org_wide);
            for mode in [Mode::Guarded, Mode::RlsAlone] {
                for shape in SHAPES {
                    let got: BTreeSet<String> = rt
                        .block_on(run(&pool, mode, &ctx, shape))
                        .unwrap()
                        .into_iter()
                        .collect();
                    prop_assert_eq!(
                        &got,
                        &want,
                        "{:?} {} {:?} {}",
                        mode,
                        shape,
                        clients,
                        org_wide
                    );
                }
                let count = rt
                    .block_on(run(&pool, mode, &ctx, "SELECT count(*) FROM ledger"))
                    .unwrap();
                prop_assert_eq!(count, [want.len().to_string()]);
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(f.teardown());
}

/// A generated single-column `SELECT` over the client-scoped table: joins of
/// every kind, subqueries in `WHERE`, derived tables, CTEs, set operations,
/// conditions that name client Y or try to widen the filter.
fn statement(depth: u32) -> BoxedStrategy<String> {
    let cond = prop_oneof![
        Just("1 = 1".to_owned()),
        Just("x.memo LIKE 'y%' OR 1 = 1".to_owned()),
        Just(format!("x.client_id = '{CLIENT_Y}'")),
        Just(format!(
            "x.client_id <> '{CLIENT_X}' OR x.client_id IS NULL"
        )),
        Just("x.id IN (SELECT id FROM ledger)".to_owned()),
        Just("EXISTS (SELECT 1 FROM ledger z WHERE z.memo LIKE 'y%')".to_owned()),
    ];
    let join = prop_oneof![
        Just(("JOIN", "y.memo")),
        Just(("LEFT JOIN", "y.memo")),
        Just(("RIGHT JOIN", "y.memo")),
        Just(("CROSS JOIN", "y.memo")),
        Just(("LEFT JOIN", "x.memo")),
    ];
    let leaf = (cond.clone(), proptest::option::of(join)).prop_map(|(c, j)| match j {
        None => format!("SELECT x.memo FROM ledger x WHERE {c}"),
        Some(("CROSS JOIN", col)) => {
            format!("SELECT {col} FROM ledger x CROSS JOIN ledger y WHERE {c}")
        }
        Some((kind, col)) => {
            format!("SELECT {col} FROM ledger x {kind} ledger y ON y.amount >= x.amount WHERE {c}")
        }
    });
    if depth == 0 {
        return leaf.boxed();
    }
    let sub = statement(depth - 1);
    prop_oneof![
        2 => leaf,
        1 => (sub.clone(), sub.clone()).prop_map(|(a, b)| format!("{a} UNION ALL {b}")),
        1 => sub.clone().prop_map(|s| format!("WITH c AS ({s}) SELECT memo FROM c")),
        1 => sub.clone().prop_map(|s| format!("SELECT d.memo FROM ({s}) AS d")),
        1 => sub.prop_map(|s| format!("SELECT memo FROM ledger WHERE memo IN ({s})")),
    ]
    .boxed()
}

#[cfg(feature = "sqlite")]
#[test]
fn generated_statements_leak_no_other_client_sqlite() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(crate::clients_lite::pool());
    let x = ctx(&["member"], &[CLIENT_X]);
    let ran = std::cell::Cell::new((0_u32, 0_u32));
    let mut runner = TestRunner::new(Config::with_cases(128));
    runner
        .run(&statement(2), |sql| {
            let (ok, all) = ran.get();
            match rt.block_on(crate::clients_lite::run(&pool, &x, &sql)) {
                Ok(rows) => {
                    ran.set((ok + 1, all + 1));
                    prop_assert!(
                        !leaks(&rows, Y_MARKERS) && !leaks(&rows, B_MARKERS),
                        "{} -> {:?}",
                        sql,
                        rows
                    );
                }
                // Refused by the guard, or a construct SQLite lacks: no leak.
                Err(_) => ran.set((ok, all + 1)),
            }
            Ok(())
        })
        .unwrap();
    // The generator is not vacuous: most statements run.
    let (ok, all) = ran.get();
    assert!(ok * 2 > all, "{ok} of {all} statements ran");
}

#[cfg(feature = "postgres")]
#[test]
fn generated_statements_leak_no_other_client_pg() {
    use crate::clients_pg::{Mode, fixture, pool, run};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(f) = rt.block_on(fixture("clients_pg_generated")) else {
        return;
    };
    let pool = pool(&f);
    let x = ctx(&["member"], &[CLIENT_X]);
    let mut runner = TestRunner::new(Config::with_cases(48));
    runner
        .run(&statement(2), |sql| {
            for mode in [Mode::Guarded, Mode::RlsAlone] {
                let rows = rt.block_on(run(&pool, mode, &x, &sql));
                if mode == Mode::Guarded {
                    // Valid SQL: scoped and run, or refused by the guard
                    // (fail closed, e.g. a qualifier over a CTE-bearing
                    // subquery), never a database error.
                    prop_assert!(
                        matches!(rows, Ok(_) | Err(hisn_tenant_guard::Error::Refused(_))),
                        "{} {:?}",
                        sql,
                        rows
                    );
                }
                if let Ok(rows) = rows {
                    prop_assert!(
                        !leaks(&rows, Y_MARKERS) && !leaks(&rows, B_MARKERS),
                        "{:?} {} -> {:?}",
                        mode,
                        sql,
                        rows
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(f.teardown());
}
