//! Regression tests, one per class of "the emitted SQL is not the SQL that
//! was checked" (issue 10, root cause 1) and of function-call-by-attribute
//! (root cause 2). Each fails on the code before the fix: the guard printed
//! its tree with `sqlparser`'s printer, whose quoting and operator rendering
//! are not PostgreSQL's or SQLite's, and let any dotted name through.

use super::tests::{lite, pg};
use super::*;

fn is_lexical(r: &Result<String, GuardError>) -> bool {
    matches!(r, Err(GuardError::Lexical(_)))
}

/// Root cause: `sqlparser`'s printer does not double a quote that follows a
/// backslash (it assumes MySQL-style `\'`), so the valid literal
/// `'x\'') OR ?1 IS NOT NULL --'` came out as `'x\') OR ?1 IS NOT NULL --'`:
/// the database ended the string early, ran `OR ?1 IS NOT NULL` as code and
/// took the tenant predicate for a comment. Strings are now rendered by the
/// guard (`''` doubling; `E'..'` with `\\` on PostgreSQL) and re-lexed.
#[test]
fn backslash_quote_literals_stay_one_string() {
    assert_eq!(
        lite(r"SELECT name FROM assets WHERE name = 'x\'') OR ?1 IS NOT NULL --'").as_deref(),
        Ok(
            r"SELECT name FROM assets WHERE (name = 'x\'') OR ?1 IS NOT NULL --') AND assets.tenant_id = ?1"
        )
    );
    assert_eq!(
        pg(r"SELECT name FROM assets WHERE name = 'x\'') OR $1 IS NOT NULL --'").as_deref(),
        Ok(
            r"SELECT name FROM assets WHERE (name = E'x\\'') OR $1 IS NOT NULL --') AND assets.tenant_id = $1"
        )
    );
    // The same value written as an E-string is rendered the same way.
    assert_eq!(
        pg(r"SELECT name FROM assets WHERE name = E'x\\\') OR $1 IS NOT NULL --'"),
        pg(r"SELECT name FROM assets WHERE name = 'x\'') OR $1 IS NOT NULL --'")
    );
}

/// Root cause: the printer treats `''` inside a value as already escaped, so
/// the value `O''Brien` (written `'O''''Brien'`) was emitted as
/// `'O''Brien'` and stored as `O'Brien`: the guard changed data.
#[test]
fn doubled_quotes_round_trip_byte_for_byte() {
    assert_eq!(
        pg("INSERT INTO assets (name) VALUES ('O''''Brien')").as_deref(),
        Ok("INSERT INTO assets (name, tenant_id) VALUES ('O''''Brien', $1)")
    );
    assert_eq!(
        lite("INSERT INTO assets (name) VALUES ('O''''Brien')").as_deref(),
        Ok("INSERT INTO assets (name, tenant_id) VALUES ('O''''Brien', ?1)")
    );
}

/// Root cause: quoted identifiers were printed with the same broken escaping
/// (`"x\""` and backticks), so an alias could end early and the rest of it
/// became code. Identifiers holding a quote, bracket, backslash or control
/// character are now refused.
#[test]
fn quoted_identifiers_with_embedded_quotes_are_refused() {
    for sql in [
        r#"SELECT * FROM assets AS "x"" = 1 OR ""y""#,
        r#"SELECT "a\" FROM assets"#,
    ] {
        assert!(is_lexical(&pg(sql)), "{sql}: {:?}", pg(sql));
        assert!(is_lexical(&lite(sql)), "{sql}: {:?}", lite(sql));
    }
    for sql in [
        r"SELECT `a\` FROM assets",
        "SELECT `a``b` FROM assets",
        "SELECT [a`] FROM assets",
    ] {
        assert!(is_lexical(&lite(sql)), "{sql}: {:?}", lite(sql));
    }
    // Unterminated as the database reads it: refused before the lexer.
    assert!(pg(r#"SELECT "x\"" FROM assets"#).is_err());
    // Plain quoted identifiers still work.
    assert_eq!(
        pg(r#"SELECT "name" FROM assets"#).as_deref(),
        Ok(r#"SELECT "name" FROM assets WHERE assets.tenant_id = $1"#)
    );
}

/// Root cause: PostgreSQL ends an operator before `--` or `/*`, so
/// `#--` is the operator `#` followed by a comment; `sqlparser` read (and
/// printed) it as one custom operator, and the database then commented out
/// the rest of the line, the tenant predicate included. Custom operators are
/// refused (allow-list) and the input is compared with the database's
/// reading.
#[test]
fn custom_operators_with_comment_starters_are_refused() {
    for sql in [
        "SELECT name FROM assets WHERE id #-- 1\n= id",
        "SELECT name FROM assets WHERE id #/* x */ 1 = 1",
        "SELECT name FROM assets WHERE id @-- x\n= 1",
    ] {
        assert!(is_lexical(&pg(sql)), "{sql}: {:?}", pg(sql));
    }
    for sql in [
        "SELECT name FROM assets WHERE id OPERATOR(pg_catalog.=) 1",
        "SELECT name FROM assets WHERE id <-> 1 > 0",
    ] {
        assert!(
            matches!(pg(sql), Err(GuardError::Unsupported(_))),
            "{sql}: {:?}",
            pg(sql)
        );
    }
    // Built-in operators stay allowed.
    assert!(pg("SELECT name FROM assets WHERE name ~* 'a' AND id # 1 = 0").is_ok());
}

/// Constants other than strings pass through as written: a SQLite blob
/// literal (read as a blob by both readers), and two different strings in one
/// statement each stay where they were.
#[test]
fn blob_literals_and_several_strings_pass_through_in_place() {
    assert_eq!(
        lite("SELECT name FROM assets WHERE name = X'0aFF'").as_deref(),
        Ok("SELECT name FROM assets WHERE (name = X'0aFF') AND assets.tenant_id = ?1")
    );
    assert_eq!(
        pg("SELECT name FROM assets WHERE name = 'a' OR name = 'b'").as_deref(),
        Ok("SELECT name FROM assets WHERE (name = 'a' OR name = 'b') AND assets.tenant_id = $1")
    );
}

/// Prefix operators follow the same allow-list: sign, `NOT`, `~`, `@`,
/// `|/`, `||/` pass; the others the parser knows (`!!` factorial, the
/// geometric `@-@`, `?-`) are refused by name.
#[test]
fn prefix_operators_off_the_allow_list_are_refused() {
    for sql in [
        "SELECT name FROM assets WHERE !!id > 0",
        "SELECT name FROM assets WHERE @-@ id > 0",
        "SELECT name FROM assets WHERE ?- id",
    ] {
        assert!(
            matches!(pg(sql), Err(GuardError::Unsupported(ref m)) if m.starts_with("operator")),
            "{sql}: {:?}",
            pg(sql)
        );
    }
    assert!(
        pg("SELECT name FROM assets WHERE -id < +id AND NOT ~id = @ id AND |/ id < ||/ id").is_ok()
    );
}

/// Root cause: PostgreSQL nests block comments, SQLite does not. The guard
/// must read comments like the database: text hidden in a nested comment on
/// PostgreSQL is code on SQLite.
#[test]
fn nested_comments_follow_the_database() {
    let sql = "SELECT name FROM assets /* a /* b */ WHERE false */";
    assert_eq!(
        pg(sql).as_deref(),
        Ok("SELECT name FROM assets WHERE assets.tenant_id = $1")
    );
    assert!(lite(sql).is_err());
    // Unterminated nested comment on PostgreSQL.
    assert!(pg("SELECT name FROM assets /* /* */").is_err());
}

/// Root cause: dollar-quoted strings were printed verbatim, and `E'..'`
/// strings with the printer's own escaping. Both are now decoded and
/// rendered as one canonical string.
#[test]
fn dollar_quotes_and_e_strings_are_rendered_canonically() {
    assert_eq!(
        pg("SELECT name FROM assets WHERE name = $a$ it's -- $$ /* $a$").as_deref(),
        Ok("SELECT name FROM assets WHERE (name = ' it''s -- $$ /* ') AND assets.tenant_id = $1")
    );
    assert_eq!(
        pg(r"SELECT name FROM assets WHERE name = E'\x41\n\''").as_deref(),
        Ok("SELECT name FROM assets WHERE (name = 'A\n''') AND assets.tenant_id = $1")
    );
    for sql in [
        "SELECT B'1'",
        "SELECT X'1f'",
        "SELECT U&'\\0041'",
        "SELECT 'a'\n'b'",
        "SELECT name FROM assets WHERE name = 'a\0'",
    ] {
        assert!(is_lexical(&pg(sql)), "{sql:?}: {:?}", pg(sql));
    }
    assert!(is_lexical(&lite(
        "SELECT name FROM assets WHERE name = 'a\0'"
    )));
}

fn is_attribute_refusal(r: &Result<String, GuardError>) -> bool {
    matches!(
        r,
        Err(GuardError::UnknownColumn(_) | GuardError::ForbiddenFunction(_))
    )
}

/// Root cause (issue 10, root cause 2): on PostgreSQL `x.f` and `(expr).f`
/// call the function `f(x)` when `f` is not a column, so
/// `((..)::text).ts_stat` ran SQL text, `(pid).pg_terminate_backend` killed
/// sessions, and `current_setting`, `pg_sleep`, `pg_advisory_lock` ran, none
/// of them seen by the deny list (which only looked at call syntax). The
/// guard now knows each table's columns, accepts `x.f` only for a known
/// column of the FROM item `x`, refuses field access on an expression, and
/// applies the deny list to attribute names in any case.
#[test]
fn attribute_call_functions_are_refused() {
    for sql in [
        "SELECT ((SELECT 'select 1')::text).ts_stat FROM assets",
        "SELECT (id).pg_terminate_backend FROM assets",
        "SELECT (a.name).current_setting FROM assets AS a",
        "SELECT a.current_setting FROM assets AS a",
        "SELECT a.PG_SLEEP FROM assets AS a",
        "SELECT assets.pg_advisory_lock FROM assets",
        "SELECT s.\"pg_sleep\" FROM (SELECT id FROM assets) AS s",
        "SELECT a.upper FROM assets AS a",
        "SELECT s.row_to_json FROM (SELECT id FROM assets) AS s",
        "SELECT c.length FROM countries AS c",
        "SELECT x.id FROM assets",
        "SELECT id FROM assets AS a ORDER BY a.lower",
        "UPDATE assets SET name = 'x' RETURNING assets.to_json",
        "INSERT INTO assets (name) VALUES ('x') ON CONFLICT (id) DO UPDATE SET name = excluded.upper",
    ] {
        assert!(is_attribute_refusal(&pg(sql)), "{sql}: {:?}", pg(sql));
    }
    assert!(is_attribute_refusal(&lite(
        "SELECT a.name FROM assets AS a WHERE a.load_extension IS NULL"
    )));
    // Known columns, derived-table output names, `excluded` still work.
    for sql in [
        "SELECT a.name, public.assets.id FROM assets AS a, public.assets",
        "SELECT s.id, s.n FROM (SELECT id, name AS n FROM assets) AS s",
        "SELECT s.code FROM (SELECT * FROM countries) AS s",
        "WITH x AS (SELECT id FROM assets) SELECT x.id FROM x",
        "INSERT INTO assets (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        "SELECT a.id FROM assets AS a ORDER BY a.name",
    ] {
        assert!(pg(sql).is_ok(), "{sql}: {:?}", pg(sql));
    }
}

/// A qualified name passes only when the FROM item it names has that column,
/// read off each kind of item: a schema-qualified table (under its full and
/// bare name), a column alias list (which renames the columns), and derived
/// tables whose body is a select (plain and qualified columns, aliases; an
/// unnamed expression adds no name), a parenthesised query, a set operation
/// (the left side names the columns) or `VALUES` (`column1`, ..).
#[test]
fn qualified_names_resolve_against_each_kind_of_from_item() {
    let ok = |sql: &str| assert!(pg(sql).is_ok(), "{sql}: {:?}", pg(sql));
    let unknown = |sql: &str, name: &str| {
        assert_eq!(
            pg(sql),
            Err(GuardError::UnknownColumn(name.into())),
            "{sql}"
        );
    };
    ok("SELECT assets.id, public.assets.name FROM public.assets");
    ok("SELECT c.k FROM countries AS c(k, n)");
    unknown("SELECT c.code FROM countries AS c(k, n)", "c.code");
    ok(
        "SELECT d.id, d.n FROM (SELECT a.id, count(*), a.name AS n FROM assets a GROUP BY a.id, a.name) d",
    );
    unknown(
        "SELECT d.name FROM (SELECT a.id, a.name AS n FROM assets a) d",
        "d.name",
    );
    ok("SELECT d.id FROM ((SELECT id FROM assets)) d");
    ok("SELECT d.id FROM (SELECT id FROM assets UNION SELECT asset_id FROM work_orders) d");
    unknown(
        "SELECT d.asset_id FROM (SELECT id FROM assets UNION SELECT asset_id FROM work_orders) d",
        "d.asset_id",
    );
    ok("SELECT v.column2 FROM (VALUES (1, 2)) v");
    unknown("SELECT v.column3 FROM (VALUES (1, 2)) v", "v.column3");
}

/// A table registered without a column list: only its tenant column may be
/// qualified (fail closed), unqualified names stay allowed.
#[test]
fn tables_without_column_lists_allow_only_the_tenant_column_qualified() {
    let registry = TableRegistry::new().tenant_table("t", "tenant_id");
    let scope = |sql: &str| rewrite(sql, &registry, Dialect::Postgres, false).map(|r| r.sql);
    assert!(matches!(
        scope("SELECT a.name FROM t AS a"),
        Err(GuardError::UnknownColumn(_))
    ));
    assert!(scope("SELECT a.tenant_id, name FROM t AS a").is_ok());
    let registry = registry.with_columns("t", ["tenant_id", "name"]).unwrap();
    assert!(
        rewrite(
            "SELECT a.name FROM t AS a",
            &registry,
            Dialect::Postgres,
            false
        )
        .is_ok()
    );
}

/// Root cause: a typed string constant was passed through unchecked and
/// printed by `sqlparser`, which reads a type name followed by *any* value as
/// one: `name[1]:a` (the array type `name[1]` and the placeholder `:a`) came
/// out as `name[1] :a`, `DATE $1` and `DATE 5` as themselves, none of which
/// PostgreSQL reads as the constant that was checked. A typed constant is now
/// accepted only with a string value and only on PostgreSQL, and emitted as
/// the cast PostgreSQL's grammar makes of it; SQLite has no typed constants
/// (it reads `date '2024-01-31'` as a column and its alias).
#[test]
fn typed_string_constants_are_emitted_as_casts_and_other_typed_values_refused() {
    assert_eq!(
        pg("SELECT name FROM assets WHERE name = DATE '2024-01-31'").as_deref(),
        Ok(
            "SELECT name FROM assets WHERE (name = CAST('2024-01-31' AS DATE)) AND assets.tenant_id = $1"
        )
    );
    assert_eq!(
        pg("SELECT numeric(5,2) '1.005', TIMESTAMP WITH TIME ZONE $$2024-01-31 10:00$$").as_deref(),
        Ok(
            "SELECT CAST('1.005' AS NUMERIC(5,2)), CAST('2024-01-31 10:00' AS TIMESTAMP WITH TIME ZONE)"
        )
    );
    // The value keeps the guard's own rendering (`E'..'` for a backslash).
    assert_eq!(
        pg(r#"SELECT jsonb E'["a\\b"]'"#).as_deref(),
        Ok(r#"SELECT CAST(E'["a\\b"]' AS JSONB)"#)
    );
    let not_a_string = || {
        Err::<String, _>(GuardError::Unsupported(
            "typed constant whose value is not a string".into(),
        ))
    };
    for sql in [
        "SELECT name[1]:a FROM assets",
        "SELECT name[1]:2 FROM assets",
        "SELECT DATE 5",
        "SELECT DATE $1",
        "SELECT TIMESTAMP NULL",
        "SELECT name FROM assets WHERE name = DATE TRUE",
    ] {
        assert_eq!(pg(sql), not_a_string(), "{sql}");
    }
    let on_sqlite = || {
        Err::<String, _>(GuardError::Unsupported(
            "typed string constant on SQLite".into(),
        ))
    };
    for sql in [
        "SELECT name FROM assets WHERE name = DATE '2024-01-31'",
        "SELECT uuid 'c0000000-0000-4000-8000-00000000000c'",
        "SELECT DATE 5",
    ] {
        assert_eq!(lite(sql), on_sqlite(), "{sql}");
    }
}
