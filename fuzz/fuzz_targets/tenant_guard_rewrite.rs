//! Query guard on untrusted SQL text, in both dialects: must never panic, and
//! every statement it accepts must re-parse as exactly one statement that the
//! guard scopes again (or refuses only because the tenant column is now named
//! or a limit is reached), never a parse error, and that uses no placeholder
//! beyond the tenant's.
#![no_main]

use std::sync::LazyLock;

use hisn_tenant_guard::guard::sqlparser::dialect::{
    Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use hisn_tenant_guard::guard::sqlparser::parser::Parser;
use hisn_tenant_guard::guard::{Dialect, GuardError, QueryGuard, TableRegistry};
use libfuzzer_sys::fuzz_target;

static GUARDS: LazyLock<[QueryGuard; 2]> = LazyLock::new(|| {
    let Ok(registry) = TableRegistry::parse_spec(
        "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)",
    ) else {
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
        let Ok(scoped) = guard.scope(sql) else {
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
        match guard.scope(scoped.sql()) {
            // The output uses no placeholder beyond the tenant's index (and no
            // tenant placeholder at all when it touches no tenant table).
            Ok(again) => assert!(again.user_params() <= scoped.tenant_param()),
            // The tenant column is now named (INSERT), a limit is reached, or
            // the output names the tenant placeholder the input did not have.
            Err(
                GuardError::LiteralTenantValue
                | GuardError::TooComplex
                | GuardError::UnsupportedPlaceholder(_),
            ) => {}
            Err(e) => panic!("scoped output refused: {sql:?} => {:?}: {e}", scoped.sql()),
        }
    }
});
