//! Attack classes tried against the guard after the emitted-SQL rework
//! (issue 10, hardening): identifier truncation, Unicode escapes, case
//! folding, schema qualification, composite and array access, Unicode
//! whitespace, nested comments, dollar-quote tags and escape strings. Each
//! test states what the database reads and asserts the guard either reads
//! the same and scopes it, or refuses. The same inputs run on real
//! PostgreSQL and SQLite in `tests/tenant_guard/guard_differential.rs` and,
//! with RLS alone, in `tests/tenant_guard/cross_layer.rs`.

use super::tests::{lite, pg};
use super::*;

fn is_lexical<T>(r: &Result<T, GuardError>) -> bool {
    matches!(r, Err(GuardError::Lexical(_)))
}

/// Root cause: PostgreSQL truncates every identifier to its first 63 bytes
/// (`NAMEDATALEN - 1`, with a NOTICE), the guard compared whole names. With
/// a registered tenant column of 63 bytes, `UPDATE t SET <column>x = $1`
/// was "another column" to the guard and the tenant column to PostgreSQL:
/// a row moved to another tenant through the guard alone. A table name
/// truncated onto a registered one, or a CTE name truncated onto a tenant
/// table's, confuse resolution the same way. Identifiers longer than 63
/// bytes are now refused on PostgreSQL (lexer), so the two never disagree.
#[test]
fn postgres_identifier_truncation_is_refused() {
    let table = format!("t{}", "a".repeat(62));
    let column = format!("c{}", "b".repeat(62));
    assert_eq!((table.len(), column.len()), (63, 63));
    let registry = TableRegistry::new()
        .tenant_table(&table, &column)
        .with_columns(&table, ["id", column.as_str()])
        .unwrap();
    let pg = |sql: &str| rewrite(sql, &registry, Dialect::Postgres, false).map(|r| r.sql);
    let lite = |sql: &str| rewrite(sql, &registry, Dialect::Sqlite, false).map(|r| r.sql);
    // Exactly 63 bytes: read whole by PostgreSQL, accepted.
    assert!(pg(&format!("SELECT id FROM {table}")).is_ok());
    assert_eq!(
        pg(&format!("UPDATE {table} SET {column} = $1")),
        Err(GuardError::TenantColumnUpdate)
    );
    for sql in [
        // The tenant column, truncated.
        format!("UPDATE {table} SET {column}x = $1"),
        format!("UPDATE {table} SET \"{column}x\" = $1"),
        format!("INSERT INTO {table} (id, {column}_other) VALUES ($1, $2)"),
        // The tenant table, truncated (a CTE named like it shadows it).
        format!("WITH {table}x AS (SELECT 1 AS id) SELECT id FROM {table}"),
        format!("SELECT id FROM {table}x"),
        // Any long name, alias included.
        format!("SELECT id FROM {table} AS {}", "z".repeat(64)),
        format!("SELECT id AS \"{}\" FROM {table}", "é".repeat(32)),
    ] {
        assert!(is_lexical(&pg(&sql)), "{sql}: {:?}", pg(&sql));
    }
    // SQLite does not truncate: a longer name is another column.
    assert!(lite(&format!("UPDATE {table} SET {column}x = ?1")).is_ok());
}

/// PostgreSQL's `U&'..'` / `U&".."` (with or without `UESCAPE`) decode
/// escapes the guard would have to model; refused. SQLite has no such
/// syntax: it reads `U & '..'` (a column `U`, bitwise AND, a string), and so
/// does the guard.
#[test]
fn unicode_escape_constants() {
    for sql in [
        r"SELECT id FROM assets WHERE name = U&'d\0061t\+000061'",
        "SELECT id FROM assets WHERE name = U&'d!0061t' UESCAPE '!'",
        "SELECT id FROM assets WHERE name = u&'x' OR true",
        r#"SELECT U&"d\0061" FROM assets"#,
        r#"SELECT id FROM U&"\0061ssets""#,
        r#"SELECT id FROM U&"!0061ssets" UESCAPE '!'"#,
    ] {
        assert!(is_lexical(&pg(sql)), "{sql}: {:?}", pg(sql));
    }
    assert_eq!(
        lite(r"SELECT id FROM assets WHERE name = U&'d\0061'").as_deref(),
        Ok(
            r"SELECT id FROM assets WHERE (CASE WHEN (SELECT assets.tenant_id = ?1) THEN (name = U & 'd\0061') END) AND assets.tenant_id = ?1"
        )
    );
    assert!(lite(r#"SELECT id FROM U&"\0061ssets""#).is_err());
}

/// PostgreSQL folds unquoted names to lower case (ASCII only) and keeps
/// quoted ones; SQLite compares all identifiers ASCII-case-insensitively.
/// `"Assets"` is another table on PostgreSQL (refused as unknown), the same
/// table on SQLite (scoped). Non-ASCII look-alikes never fold: the Kelvin
/// sign `K` (U+212A) lower-cases to `k` in Unicode, not in either database.
/// Assigning the tenant column is refused in any case and quoting.
#[test]
fn case_folding_follows_each_database() {
    assert!(matches!(
        pg(r#"SELECT id FROM "Assets""#),
        Err(GuardError::UnknownTable(_))
    ));
    assert!(matches!(
        pg(r#"SELECT id FROM "ASSETS""#),
        Err(GuardError::UnknownTable(_))
    ));
    assert_eq!(
        pg("SELECT id FROM ASSETS").as_deref(),
        Ok("SELECT id FROM ASSETS WHERE ASSETS.tenant_id = $1")
    );
    assert_eq!(
        pg(r#"SELECT id FROM "assets""#).as_deref(),
        Ok(r#"SELECT id FROM "assets" WHERE "assets".tenant_id = $1"#)
    );
    assert_eq!(
        lite(r#"SELECT id FROM "Assets""#).as_deref(),
        Ok(r#"SELECT id FROM "Assets" WHERE "Assets".tenant_id = ?1"#)
    );
    for sql in [
        "SELECT id FROM wor\u{212A}_orders",
        "SELECT id FROM \u{130}ASSETS",
    ] {
        assert!(matches!(pg(sql), Err(GuardError::UnknownTable(_))), "{sql}");
        assert!(
            matches!(lite(sql), Err(GuardError::UnknownTable(_))),
            "{sql}"
        );
    }
    for sql in [
        r#"UPDATE assets SET "TENANT_ID" = 'x'"#,
        "UPDATE assets SET TENANT_ID = 'x'",
        r#"UPDATE assets SET "Tenant_Id" = 'x'"#,
    ] {
        assert_eq!(pg(sql), Err(GuardError::TenantColumnUpdate), "{sql}");
        assert_eq!(lite(sql), Err(GuardError::TenantColumnUpdate), "{sql}");
    }
}

/// A registered unqualified name matches the default schema (`public`,
/// `main`) and nothing else: `pg_temp.assets` (a temporary table),
/// `pg_catalog.assets`, SQLite's `temp.assets`, a three-part name, and a
/// quoted schema that does not fold (`"PUBLIC"`) are unknown tables. A
/// temporary table shadowing a registered one needs DDL or `SELECT INTO`
/// (refused), or a `search_path` change (refused; with the guard off the
/// pool's session-state check closes the connection).
#[test]
fn schema_qualified_names_and_search_path() {
    assert_eq!(
        pg("SELECT id FROM PUBLIC.ASSETS").as_deref(),
        Ok("SELECT id FROM PUBLIC.ASSETS WHERE PUBLIC.ASSETS.tenant_id = $1")
    );
    assert!(pg(r#"SELECT id FROM "public"."assets""#).is_ok());
    assert!(lite("SELECT id FROM main.assets").is_ok());
    for sql in [
        "SELECT id FROM pg_temp.assets",
        "SELECT id FROM \"pg_temp\".assets",
        "SELECT id FROM pg_catalog.assets",
        "SELECT id FROM temp.assets",
        "SELECT id FROM \"temp\".assets",
        "SELECT id FROM test.public.assets",
        "SELECT id FROM \"PUBLIC\".assets",
        "SELECT id FROM assets JOIN pg_temp.assets t ON t.id = assets.id",
    ] {
        assert!(matches!(pg(sql), Err(GuardError::UnknownTable(_))), "{sql}");
        assert!(
            matches!(lite(sql), Err(GuardError::UnknownTable(_))),
            "{sql}"
        );
    }
    assert!(matches!(
        lite("SELECT id FROM public.assets"),
        Err(GuardError::UnknownTable(_))
    ));
    assert!(matches!(
        pg("SELECT id FROM main.assets"),
        Err(GuardError::UnknownTable(_))
    ));
    for sql in [
        "SELECT * INTO TEMP assets FROM assets",
        "CREATE TEMP TABLE assets AS SELECT * FROM assets",
    ] {
        assert_eq!(pg(sql), Err(GuardError::Ddl), "{sql}");
    }
    assert_eq!(
        pg("SET search_path = pg_temp, public"),
        Err(GuardError::SetOrSessionControl)
    );
    assert_eq!(
        pg("SELECT set_config('search_path', 'pg_temp,public', false)"),
        Err(GuardError::ForbiddenFunction("set_config".into()))
    );
}

/// `row(x).f`, `(x).f`, `(x).*` and `x.f[1]` are field selections, and on
/// PostgreSQL a field selection that names no column is a function call
/// `f(x)`: refused unless `f` is a known column of a table in scope. A
/// subscript on a plain column (`name[1]`) or an array constructor stays a
/// subscript; on SQLite `name[1]` is the column `name` with the alias `[1]`,
/// and the guard reads it the same way. Whole-row references read only rows
/// the predicate keeps.
#[test]
fn composite_field_access_and_subscripts() {
    for sql in [
        "SELECT row(id).f FROM assets",
        "SELECT (row(id, name)).f1 FROM assets",
        "SELECT (a).id FROM assets a",
        "SELECT (assets).tenant_id FROM assets",
        "SELECT (a).pg_terminate_backend FROM assets a",
        "SELECT (name).pg_sleep FROM assets",
        "SELECT (id::text).current_setting FROM assets",
        "SELECT a.name[1] FROM assets a",
    ] {
        assert!(
            matches!(pg(sql), Err(GuardError::UnknownColumn(_))),
            "{sql}: {:?}",
            pg(sql)
        );
    }
    for sql in [
        "SELECT (a).* FROM assets a",
        "SELECT (a.name).* FROM assets a",
    ] {
        assert!(pg(sql).is_err(), "{sql}");
        assert!(lite(sql).is_err(), "{sql}");
    }
    assert_eq!(
        pg("SELECT name[1], (ARRAY[id])[1] FROM assets").as_deref(),
        Ok("SELECT name[1], (ARRAY[id])[1] FROM assets WHERE assets.tenant_id = $1")
    );
    assert_eq!(
        lite("SELECT name[1] FROM assets").as_deref(),
        Ok("SELECT name AS [1] FROM assets WHERE assets.tenant_id = ?1")
    );
    assert_eq!(
        pg("SELECT row_to_json(a) FROM assets a").as_deref(),
        Ok("SELECT row_to_json(a) FROM assets a WHERE a.tenant_id = $1")
    );
}

/// Both databases (and the guard) read every non-ASCII character as part of
/// an identifier, so a no-break space, an em space, a zero-width space or a
/// BOM between tokens is *not* whitespace: `id<NBSP>FROM assets` is one
/// column name with the alias `assets` and no table at all, which the
/// database reads the same way (and fails on). What must never happen is a
/// reading in which the guard sees no table and the database sees one; the
/// re-lex check refuses any such disagreement.
#[test]
fn unicode_whitespace_is_not_whitespace() {
    for space in ['\u{a0}', '\u{2003}', '\u{200b}', '\u{feff}', '\u{3000}'] {
        let sql = format!("SELECT id{space}FROM assets");
        let out = pg(&sql);
        assert_eq!(
            out.as_deref(),
            Ok(format!("SELECT id{space}FROM AS assets").as_str()),
            "{sql:?}"
        );
        assert_eq!(lite(&sql), out.map(|s| s.replace('$', "?")));
        for sql in [
            format!("SELECT id FROM assets{space}"),
            format!("SELECT id FROM{space}assets"),
            format!("SELECT id FROM assets WHERE id = 1{space}OR 1=1"),
            format!("SELECT id FROM assets{space}WHERE id = 1"),
        ] {
            // Refused, or the table is read under the predicate, or there
            // is no table left at all.
            for s in [pg(&sql), lite(&sql)].into_iter().flatten() {
                assert!(
                    s.contains("tenant_id = ") || !s.contains(" FROM assets"),
                    "{sql:?} => {s}"
                );
            }
        }
    }
}

/// PostgreSQL nests block comments, SQLite does not (and lets one run
/// unterminated to the end). `SELECT 1 /* /* */ , (SELECT name FROM assets)
/// -- */` is `SELECT 1` on PostgreSQL and a subquery over `assets` on
/// SQLite: each reading is the database's, and SQLite's is scoped.
#[test]
fn nested_comments_follow_each_database() {
    let sql = "SELECT 1 /* /* */ , (SELECT name FROM assets) -- */";
    assert_eq!(pg(sql).as_deref(), Ok("SELECT 1"));
    assert_eq!(
        lite(sql).as_deref(),
        Ok("SELECT 1, (SELECT name FROM assets WHERE assets.tenant_id = ?1)")
    );
    assert_eq!(
        pg("SELECT id FROM assets /* /* */ */ WHERE id = 1").as_deref(),
        Ok("SELECT id FROM assets WHERE (id = 1) AND assets.tenant_id = $1")
    );
    assert!(lite("SELECT id FROM assets /* /* */ */ WHERE id = 1").is_err());
    assert!(pg("SELECT id FROM assets /* /* */").is_err());
}

/// Dollar-quote tags are case-sensitive identifiers without `$`; anything
/// else is refused rather than guessed (a tag the guard misreads could end
/// the string early). SQLite has no dollar quotes (`$x` is a parameter).
#[test]
fn dollar_quote_tags() {
    assert_eq!(
        pg("SELECT id FROM assets WHERE name = $a$x$A$ OR 1=1 --$a$").as_deref(),
        Ok("SELECT id FROM assets WHERE (name = 'x$A$ OR 1=1 --') AND assets.tenant_id = $1")
    );
    assert_eq!(
        pg("SELECT id FROM assets WHERE name = $x$a$y$b$x$").as_deref(),
        Ok("SELECT id FROM assets WHERE (name = 'a$y$b') AND assets.tenant_id = $1")
    );
    assert!(pg("SELECT id FROM assets WHERE name = $é$x$é$").is_ok());
    for sql in [
        "SELECT id FROM assets WHERE name = $a-b$x$a-b$",
        "SELECT id FROM assets WHERE name = $\u{200b}$x$\u{200b}$",
        "SELECT id FROM assets WHERE name = $1a$x$1a$",
        "SELECT id FROM assets WHERE name = $a$x",
    ] {
        assert!(pg(sql).is_err(), "{sql}");
        assert!(lite(sql).is_err(), "{sql}");
    }
}

/// `E'\''` is one quote on PostgreSQL; SQLite has no escape strings. The
/// guard's output never depends on `standard_conforming_strings`: a value
/// with a backslash is written `E'..'` with `\\`, any other value has no
/// backslash, so `on` and `off` read the same text the same way (checked on
/// a real server in `guard_differential`).
#[test]
fn escape_strings_and_standard_conforming_strings() {
    assert_eq!(
        pg(r"SELECT id FROM assets WHERE name = E'\''").as_deref(),
        Ok("SELECT id FROM assets WHERE (name = '''') AND assets.tenant_id = $1")
    );
    assert_eq!(
        pg(r"SELECT id FROM assets WHERE name = e'\'' OR 1=1 --'").as_deref(),
        Ok("SELECT id FROM assets WHERE (name = '''' OR 1 = 1) AND assets.tenant_id = $1")
    );
    assert!(lite(r"SELECT id FROM assets WHERE name = E'\''").is_err());
    for sql in [
        r"SELECT id FROM assets WHERE name = 'a\'",
        r"SELECT id FROM assets WHERE name = E'a\\'",
        r"SELECT id FROM assets WHERE name = 'x\'') OR $1 IS NOT NULL --'",
    ] {
        let out = pg(sql).unwrap();
        let rest = out.replace(r"E'", "");
        assert!(out.contains(r"E'"), "{out}");
        // Every backslash sits in an E-string, doubled.
        assert!(!out.replace(r"\\", "").contains('\\'), "{out}");
        assert!(rest.contains(r"\\"), "{out}");
    }
}

/// `FOR UPDATE`/`FOR SHARE` lock every row the query reads; on a shared
/// table those rows are every tenant's: one tenant's open transaction
/// blocked the others' inserts (their foreign-key checks take `FOR KEY
/// SHARE` on the shared row) and `NOWAIT` told it when another tenant held
/// such a lock. A locking query may read no shared table, wherever it
/// appears (subqueries in FROM and WHERE, CTEs, `OF` or not); locking tenant
/// rows alone is unchanged.
#[test]
fn locking_clauses_never_cover_a_shared_table() {
    for sql in [
        "SELECT * FROM countries FOR UPDATE",
        "SELECT * FROM countries WHERE code = 'SA' FOR SHARE NOWAIT",
        "SELECT a.name FROM assets a JOIN countries c ON c.code = a.name FOR UPDATE OF a",
        "SELECT * FROM (SELECT * FROM countries) c FOR UPDATE",
        "WITH c AS (SELECT * FROM countries) SELECT * FROM c FOR UPDATE",
        "SELECT * FROM assets WHERE name IN (SELECT name FROM countries) FOR UPDATE",
        "SELECT * FROM assets WHERE id IN (SELECT code FROM countries FOR UPDATE)",
    ] {
        assert_eq!(
            pg(sql),
            Err(GuardError::Unsupported(
                "FOR UPDATE/SHARE over a shared table".into()
            )),
            "{sql}"
        );
    }
    assert_eq!(
        pg("SELECT * FROM assets WHERE name IN (SELECT name FROM countries)").map(|_| ()),
        Ok(())
    );
    assert_eq!(
        pg("SELECT name FROM assets WHERE id = $1 FOR UPDATE NOWAIT").unwrap(),
        "SELECT name FROM assets WHERE (id = $1) AND assets.tenant_id = $2 FOR UPDATE NOWAIT"
    );
    assert!(pg("SELECT * FROM countries c WHERE EXISTS (SELECT 1 FROM assets FOR UPDATE)").is_ok());
}

/// PostgreSQL system columns describe row versions: `xmax` of a shared row
/// is the last transaction that locked it, and another tenant's insert locks
/// the shared row its foreign key references. Refused in every position,
/// qualified or not, in any case; quoted `"XMAX"` is another (user) name.
/// SQLite has no such columns.
#[test]
fn postgres_system_columns_are_refused() {
    for (sql, column) in [
        ("SELECT code FROM countries WHERE xmax <> '0'", "xmax"),
        ("SELECT c.XMIN FROM countries c", "xmin"),
        ("SELECT code FROM countries ORDER BY \"ctid\"", "ctid"),
        ("SELECT w.cmax FROM work_orders w", "cmax"),
        ("SELECT count(*) FROM assets GROUP BY tableoid", "tableoid"),
        (
            "SELECT name FROM assets a WHERE EXISTS (SELECT 1 FROM countries WHERE cmin = 0)",
            "cmin",
        ),
    ] {
        assert_eq!(
            pg(sql),
            Err(GuardError::Unsupported(format!(
                "PostgreSQL system column `{column}`"
            ))),
            "{sql}"
        );
    }
    assert!(pg("SELECT \"XMAX\" FROM countries").is_ok());
    assert!(pg("SELECT code AS xmax FROM countries").is_ok());
    assert!(lite("SELECT code FROM countries WHERE xmax <> '0'").is_ok());
}

/// `txid_current_snapshot()` lists every session's transaction in progress
/// (other tenants' included) and `txid_status(xid)` says whether one later
/// committed or aborted; denied like their `pg_*` forms. `txid_current()`
/// (the statement's own transaction) stays allowed.
#[test]
fn other_sessions_transaction_state_functions_are_denied() {
    for (sql, name) in [
        ("SELECT txid_current_snapshot()", "txid_current_snapshot"),
        ("SELECT pg_catalog.TXID_STATUS(1)", "txid_status"),
        (
            "SELECT name FROM assets WHERE txid_status(2) IS NULL",
            "txid_status",
        ),
    ] {
        assert_eq!(
            pg(sql),
            Err(GuardError::ForbiddenFunction(name.into())),
            "{sql}"
        );
    }
    assert!(pg("SELECT txid_current()").is_ok());
}

/// A whole-row reference `a.*` in an expression (PostgreSQL: `ROW(a.*)`,
/// `count(a.*)`, `a.* IS NOT NULL`) reads only the row of its FROM item, which
/// the guard has scoped: accepted, and the tenant predicate is still added.
/// (Refusing it would also be safe; this pins that the guard's answer does
/// not change silently.)
#[test]
fn whole_row_references_are_accepted_and_stay_scoped() {
    for sql in [
        "SELECT name FROM assets a WHERE a.* IS NOT NULL",
        "SELECT name FROM assets a WHERE (a.*) = (a.*)",
        "SELECT (a.*) FROM assets a",
    ] {
        let out = pg(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert!(out.contains("a.*"), "{sql} -> {out}");
        assert!(out.ends_with("a.tenant_id = $1"), "{sql} -> {out}");
    }
}
