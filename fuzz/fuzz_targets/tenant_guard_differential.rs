//! Query guard, differential (no database): for every statement the guard
//! accepts, its output read with the database's lexical rules (the guard's
//! PostgreSQL/SQLite lexer, exposed for fuzzing) holds no comment, no
//! placeholder beyond the tenant's, and exactly the input's string constants
//! (as the database decodes them, byte for byte, as a multiset: the printer
//! may reorder clauses such as `OFFSET .. LIMIT`), and `sqlparser`'s
//! tokenizer splits it into the same number of significant tokens.
#![no_main]

use std::sync::LazyLock;

use hisn_tenant_guard::guard::sqlparser::dialect::{
    Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use hisn_tenant_guard::guard::sqlparser::tokenizer::{Token, Tokenizer};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry, fuzzing};
use libfuzzer_sys::fuzz_target;

static GUARDS: LazyLock<[QueryGuard; 2]> = LazyLock::new(|| {
    let Ok(registry) = TableRegistry::parse_spec(
        "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)",
    ) else {
        unreachable!("the fuzz registry is valid")
    };
    [
        QueryGuard::new(registry.clone(), Dialect::Postgres).with_cache_capacity(0),
        QueryGuard::new(registry, Dialect::Sqlite).with_cache_capacity(0),
    ]
});

fn strings(tokens: &[(&'static str, String)]) -> Vec<String> {
    let mut out: Vec<String> = tokens
        .iter()
        .filter(|(k, _)| *k == "string")
        .map(|(_, v)| v.clone())
        .collect();
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for guard in GUARDS.iter() {
        let Ok(scoped) = guard.scope(sql) else {
            continue;
        };
        let dialect = guard.dialect();
        let input = fuzzing::tokens(sql, dialect)
            .unwrap_or_else(|e| panic!("accepted input does not lex: {sql:?}: {e}"));
        let output = fuzzing::tokens(scoped.sql(), dialect)
            .unwrap_or_else(|e| panic!("output does not lex: {:?}: {e}", scoped.sql()));
        assert!(
            output.iter().all(|(k, _)| *k != "comment"),
            "comment in output: {:?}",
            scoped.sql()
        );
        assert_eq!(
            strings(&input),
            strings(&output),
            "string constants changed: {sql:?} => {:?}",
            scoped.sql()
        );
        for (_, p) in output.iter().filter(|(k, _)| *k == "placeholder") {
            let index: usize = p[1..].parse().unwrap_or(usize::MAX);
            assert!(index <= scoped.tenant_param(), "{p} in {:?}", scoped.sql());
        }
        let parser_dialect: &dyn SqlDialect = match dialect {
            Dialect::Postgres => &PostgreSqlDialect {},
            Dialect::Sqlite => &SQLiteDialect {},
        };
        let theirs = Tokenizer::new(parser_dialect, scoped.sql())
            .tokenize()
            .unwrap_or_else(|e| panic!("sqlparser cannot tokenize {:?}: {e}", scoped.sql()));
        let significant = theirs
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
            .count();
        assert_eq!(significant, output.len(), "token count: {:?}", scoped.sql());
    }
});
