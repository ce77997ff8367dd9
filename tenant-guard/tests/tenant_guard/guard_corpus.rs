//! The query guard (layer 2) without a database: the statement corpus in
//! `tests/data/guard_corpus_*.sql` (exact rewrites and refusal reasons), the
//! cache, parameters and threads. The independent checker of scoped output is
//! in `guard_checker`, the property tests in `guard_props`.

use hisn_tenant_guard::guard::{Dialect, GuardError, QueryGuard, TableRegistry};

use super::guard_checker::check_scoped;

pub(crate) const SPEC: &str = "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)";
const ACCEPT: &str = include_str!("../data/guard_corpus_accept.sql");
const REFUSE: &str = include_str!("../data/guard_corpus_refuse.sql");
pub(crate) const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

pub(crate) fn guard(dialect: Dialect) -> QueryGuard {
    QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), dialect)
}

pub(crate) fn tenant_placeholder(dialect: Dialect, index: usize) -> String {
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
