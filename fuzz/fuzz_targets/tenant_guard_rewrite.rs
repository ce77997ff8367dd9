//! Query guard on untrusted SQL text, in both dialects: must never panic, and
//! every statement it accepts must re-parse as exactly one statement that the
//! guard scopes again (or refuses only because the tenant or client column is
//! now named or a limit is reached), never a parse error, and that uses no
//! placeholder beyond the guard's own (the tenant's, then the client grants'
//! and the active client's). Statements run as a session with one client
//! grant and the role a gated table needs.
#![no_main]

use std::sync::LazyLock;

use hisn_tenant_guard::ClientId;
use hisn_tenant_guard::guard::sqlparser::dialect::{
    Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use hisn_tenant_guard::guard::sqlparser::parser::Parser;
use hisn_tenant_guard::guard::{Dialect, GuardError, QueryGuard, SessionScope, TableRegistry};
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
    // No cache: every input goes through the rewriter.
    [
        QueryGuard::new(registry.clone(), Dialect::Postgres).with_cache_capacity(0),
        QueryGuard::new(registry, Dialect::Sqlite).with_cache_capacity(0),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for guard in GUARDS.iter() {
        let Ok(scoped) = guard.scope_for(sql, &SESSION) else {
            continue;
        };
        let parser_dialect: &dyn SqlDialect = match guard.dialect() {
            Dialect::Postgres => &PostgreSqlDialect {},
            Dialect::Sqlite => &SQLiteDialect {},
        };
        let reparsed = Parser::parse_sql(parser_dialect, scoped.sql());
        assert!(
            matches!(&reparsed, Ok(v) if v.len() == 1),
            "output does not re-parse: {sql:?} => {:?}: {reparsed:?}",
            scoped.sql()
        );
        match guard.scope_for(scoped.sql(), &SESSION) {
            // The output uses no placeholder beyond the guard's own (and none
            // at all when it touches no tenant table).
            Ok(again) => assert!(again.user_params() <= last_param(&scoped)),
            // The tenant or client column is now named (INSERT), a limit is
            // reached, or the output names the tenant placeholder the input
            // did not have.
            Err(
                GuardError::LiteralTenantValue
                | GuardError::TooComplex
                | GuardError::UnsupportedPlaceholder(_)
                | GuardError::ClientColumnInsert,
            ) => {}
            // SQLite: the client predicate reads the grants with `json_each`,
            // a table-valued function the guard refuses in its input.
            Err(GuardError::UnknownTable(t))
                if guard.dialect() == Dialect::Sqlite && t.starts_with("json_each") => {}
            Err(e) => panic!("scoped output refused: {sql:?} => {:?}: {e}", scoped.sql()),
        }
    }
});
