//! Query guard (layer 2) benchmarks.
//!
//! - `tenant_guard/rewrite_cached`: `QueryGuard::scope` on a cache hit (the
//!   steady state: an application sends the same statement texts over and
//!   over). Target ≤ 1 µs. Baseline: a plain `HashMap<String, Arc<str>>` lookup of
//!   the same text with an `Arc` clone, the least any text-keyed cache must do
//!   (hash the text, compare it, share the result); the difference is the
//!   guard's mutex and LRU bookkeeping.
//! - `tenant_guard/rewrite_cold`: `scope` with the cache disabled on a 3-table
//!   join (tokenize twice — `sqlparser` and the database's rules — number
//!   placeholders, parse, walk, print, parse the print again, render the
//!   literals, re-lex). Baseline:
//!   `sqlparser` parse + `to_string` of the same statement, the floor for any
//!   parse-and-render rewriter; the difference is the guard's own walk.
//!
//! On a loaded machine compare instruction counts instead of wall time:
//! `valgrind --tool=callgrind --callgrind-out-file=cg.out
//! target/release/deps/tenant_guard-<hash> --bench --profile-time 5
//! tenant_guard/rewrite_cold`, then in `callgrind_annotate --inclusive=yes
//! --tree=caller cg.out` divide the Ir that `Bencher::iter` spends in
//! `QueryGuard::scope` (hisn) and in `Parser::parse_sql` plus the `String`
//! collect (baseline) by their call counts.
// A bench has no caller to return an error to: a broken fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hisn_benches::{BASELINE, HISN};
use hisn_tenant_guard::guard::sqlparser::dialect::PostgreSqlDialect;
use hisn_tenant_guard::guard::sqlparser::parser::Parser;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};

const JOIN3: &str = "SELECT a.name, w.title, c.name FROM assets AS a \
    JOIN work_orders AS w ON w.asset_id = a.id \
    LEFT JOIN countries AS c ON c.code = $1 \
    WHERE a.name LIKE $2 AND w.status = 'open' ORDER BY a.name LIMIT 50";

fn registry() -> TableRegistry {
    TableRegistry::parse_spec(
        "assets:tenant_id(id,name),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)",
    )
    .expect("bench registry")
}

fn rewrite_cached(c: &mut Criterion) {
    let guard = QueryGuard::new(registry(), Dialect::Postgres);
    // Warm the cache with a realistic working set, not just one statement.
    let texts: Vec<String> = (0..64)
        .map(|i| format!("SELECT a.name FROM assets AS a WHERE a.id = $1 AND a.name <> 'n{i}'"))
        .chain(std::iter::once(JOIN3.to_string()))
        .collect();
    let mut map: HashMap<String, Arc<str>> = HashMap::new();
    for t in &texts {
        if let Ok(scoped) = guard.scope(t) {
            map.insert(t.clone(), Arc::from(scoped.sql()));
        }
    }
    assert_eq!(map.len(), texts.len(), "a bench statement was refused");
    assert_eq!(guard.cached(), texts.len());
    let mut group = c.benchmark_group("tenant_guard/rewrite_cached");
    group.bench_function(HISN, |b| {
        b.iter(|| guard.scope(black_box(JOIN3)).map(|s| s.tenant_param()))
    });
    group.bench_function(BASELINE, |b| {
        b.iter(|| map.get(black_box(JOIN3)).map(Arc::clone))
    });
    group.finish();
}

fn rewrite_cold(c: &mut Criterion) {
    let guard = QueryGuard::new(registry(), Dialect::Postgres).with_cache_capacity(0);
    let dialect = PostgreSqlDialect {};
    let mut group = c.benchmark_group("tenant_guard/rewrite_cold");
    group.bench_function(HISN, |b| {
        b.iter(|| guard.scope(black_box(JOIN3)).map(|s| s.sql().len()))
    });
    group.bench_function(BASELINE, |b| {
        b.iter(|| {
            Parser::parse_sql(&dialect, black_box(JOIN3)).map(|statements| {
                statements
                    .iter()
                    .map(ToString::to_string)
                    .collect::<String>()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, rewrite_cached, rewrite_cold);
criterion_main!(benches);
