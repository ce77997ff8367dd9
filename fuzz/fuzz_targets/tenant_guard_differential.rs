//! Query guard, differential (no database): for every statement the guard
//! accepts, its output read with the database's lexical rules (the guard's
//! PostgreSQL/SQLite lexer, exposed for fuzzing) holds no comment, no
//! placeholder beyond the guard's own (tenant, client grants, active client),
//! and exactly the input's string constants
//! (as the database decodes them, byte for byte, as a multiset: the printer
//! may reorder clauses such as `OFFSET .. LIMIT`), and `sqlparser`'s
//! tokenizer splits it into the same number of significant tokens.
#![no_main]

use std::sync::LazyLock;

use hisn_tenant_guard::ClientId;
use hisn_tenant_guard::guard::sqlparser::dialect::{
    Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use hisn_tenant_guard::guard::sqlparser::tokenizer::{Token, Tokenizer};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, SessionScope, TableRegistry, fuzzing};
use libfuzzer_sys::fuzz_target;

/// A session holding the gated role and exactly one client grant (so INSERTs
/// into `ledger` have an active client).
static SESSION: LazyLock<SessionScope> = LazyLock::new(|| {
    let Ok(client) = "11111111-0000-4000-8000-00000000000a".parse::<ClientId>() else {
        unreachable!("the fuzz client id is valid")
    };
    SessionScope::new(["hr_viewer"], [client])
});

/// The highest placeholder index the guard's output may use: the tenant's,
/// then the client parameters it added.
fn last_param(scoped: &hisn_tenant_guard::guard::ScopedStatement) -> usize {
    scoped.tenant_param() + scoped.guard_params().count() - 1
}

static GUARDS: LazyLock<[QueryGuard; 2]> = LazyLock::new(|| {
    // A client-scoped table (`ledger`, issue 17) and a role-gated one
    // (`hr.salaries`), so that the client predicate, the forced client on
    // INSERT and the role gates are fuzzed too.
    let Ok(registry) = TableRegistry::parse_spec(
        "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name),\
         ledger:tenant_id:client_id(id,memo,amount),hr.salaries:tenant_id(id,employee,amount)",
    )
    .and_then(|r| r.parse_role_gates("hr.salaries=hr_viewer/hr_admin"))
    .and_then(|r| r.org_wide_roles(["firm_admin"])) else {
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
        let Ok(scoped) = guard.scope_for(sql, &SESSION) else {
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
            assert!(index <= last_param(&scoped), "{p} in {:?}", scoped.sql());
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
