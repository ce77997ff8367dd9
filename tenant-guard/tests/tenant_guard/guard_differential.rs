//! Differential property test of the query guard against the databases
//! themselves (issue 10: "the emitted SQL is exactly what was checked").
//!
//! Generated statements carry adversarial string constants (quotes,
//! backslashes, comment starters, `$`, `?`, newlines, non-ASCII) written in
//! every form the database reads (standard `'..'`, PostgreSQL `E'..'` and
//! dollar quotes), comments between tokens (nested on PostgreSQL) and
//! operators including ones that run into a comment (`#--`, `#/*`). Each
//! statement goes through the real tenant pool as tenant A. Oracle:
//!
//! - a statement written with plain forms is accepted, and what the database
//!   returns for the constant is the generated value byte for byte (so the
//!   emitted text read by the database has the tree's literal; a string that
//!   ended early would change the value or the statement);
//! - an INSERT stores the value byte for byte (read back in the same
//!   transaction, then rolled back);
//! - only tenant A's rows come back, exactly those the WHERE clause selects;
//! - statements with an operator that runs into a comment are refused.
//!
//! The cases come from a deterministic proptest runner (fixed seed), so a
//! failure is reproducible; the failing statement is in the message.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::common::{TENANT_A, context};

const SPEC: &str = "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)";
const CASES: usize = 96;
const NEW_ID: &str = "c0000000-0000-4000-8000-00000000000c";
/// Tenant A's asset names in the fixture (`common::data`).
const A_NAMES: [&str; 2] = ["pump A1", "valve A2"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Standard,
    Escape,
    Dollar,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comment {
    None,
    Line,
    Block,
    Nested,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tail {
    None,
    Concat,
    HashLineComment,
    HashBlockComment,
}

#[derive(Debug, Clone)]
struct Case {
    value: String,
    other: String,
    form: Form,
    comment: Comment,
    tail: Tail,
}

fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'B', '\'', '\\', '"', '-', '/', '*', '$', '?', '\n', 'e', 'E', 'é', ' ', '%', ';',
            '1', '#', '`', '[',
        ]),
        0..14,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn case(postgres: bool) -> impl Strategy<Value = Case> {
    let forms = if postgres {
        vec![Form::Standard, Form::Escape, Form::Dollar]
    } else {
        vec![Form::Standard]
    };
    let comments = if postgres {
        vec![
            Comment::None,
            Comment::Line,
            Comment::Block,
            Comment::Nested,
        ]
    } else {
        vec![Comment::None, Comment::Line, Comment::Block]
    };
    let tails = if postgres {
        vec![
            Tail::None,
            Tail::Concat,
            Tail::HashLineComment,
            Tail::HashBlockComment,
        ]
    } else {
        vec![Tail::None, Tail::Concat]
    };
    (
        value(),
        prop::sample::select(vec!["pump A1", "x", "valve A2", "pump B1"]),
        prop::sample::select(forms),
        prop::sample::select(comments),
        prop::sample::select(tails),
    )
        .prop_map(|(value, other, form, comment, tail)| Case {
            value,
            other: other.to_owned(),
            form,
            comment,
            tail,
        })
}

/// The value written as a string constant in `form`.
fn literal(value: &str, form: Form) -> String {
    match form {
        Form::Standard => format!("'{}'", value.replace('\'', "''")),
        Form::Escape => format!(
            "E'{}'",
            value
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('\n', "\\n")
        ),
        Form::Dollar => {
            let mut tag = String::from("q");
            while value.contains(&format!("${tag}$")) {
                tag.push('q');
            }
            format!("${tag}${value}${tag}$")
        }
    }
}

fn comment(c: Comment) -> &'static str {
    match c {
        Comment::None => " ",
        Comment::Line => " -- it's a 'comment' /*\n",
        Comment::Block => " /* it's -- a 'comment' */ ",
        Comment::Nested => " /* outer /* inner */ WHERE false -- */ ",
    }
}

impl Case {
    fn select(&self) -> String {
        let tail = match self.tail {
            Tail::None => String::new(),
            Tail::Concat => " AND name || 'x' <> 'x'".to_owned(),
            Tail::HashLineComment => " OR 1 #-- 1\n= 1".to_owned(),
            Tail::HashBlockComment => " OR 1 #/* x */ 1 = 1".to_owned(),
        };
        format!(
            "SELECT {} AS v, name FROM assets{}WHERE name <> {}{tail}",
            literal(&self.value, self.form),
            comment(self.comment),
            literal(&self.other, Form::Standard),
        )
    }

    fn insert(&self) -> String {
        format!(
            "INSERT INTO assets (id, name){}VALUES ('{NEW_ID}', {})",
            comment(self.comment),
            literal(&self.value, self.form),
        )
    }

    fn must_refuse(&self) -> bool {
        matches!(self.tail, Tail::HashLineComment | Tail::HashBlockComment)
    }

    /// Tenant A's names the SELECT must return, sorted.
    fn expected_names(&self) -> Vec<String> {
        A_NAMES
            .iter()
            .filter(|n| **n != self.other)
            .map(|n| (*n).to_owned())
            .collect()
    }
}

fn cases(postgres: bool) -> Vec<Case> {
    let mut runner = TestRunner::new(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    });
    let strategy = case(postgres);
    let mut out: Vec<Case> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    // Always include the issue's examples.
    out.push(Case {
        value: r"x\') OR 1 = 1 --".to_owned(),
        other: "x".to_owned(),
        form: Form::Standard,
        comment: Comment::None,
        tail: Tail::None,
    });
    out.push(Case {
        value: "O''Brien".to_owned(),
        other: "x".to_owned(),
        form: Form::Standard,
        comment: Comment::None,
        tail: Tail::None,
    });
    out
}

#[test]
fn differential_generator_is_not_vacuous() {
    let pg = cases(true);
    assert!(
        pg.iter()
            .any(|c| c.value.contains('\\') && c.value.contains('\''))
    );
    assert!(pg.iter().any(|c| c.form == Form::Dollar));
    assert!(pg.iter().any(|c| c.form == Form::Escape));
    assert!(pg.iter().any(Case::must_refuse));
    assert!(pg.iter().any(|c| !c.must_refuse()));
}

#[cfg(feature = "postgres")]
mod pg {
    use hisn_tenant_guard::Error;
    use hisn_tenant_guard::db::PgTenantPool;
    use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
    use hisn_tenant_guard::sqlx::Row;

    use super::*;
    use crate::common::pg::{fixture, key};

    #[tokio::test]
    async fn emitted_sql_reads_back_as_the_checked_tree_on_postgres() {
        let Some(fx) = fixture("tg_guard_differential_pg", 1).await else {
            return;
        };
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Postgres);
        let pool = PgTenantPool::new(fx.app.clone(), guard, key()).unwrap();
        let (mut accepted, mut refused) = (0, 0);
        for case in cases(true) {
            let sql = case.select();
            let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
            match tx.query(&sql) {
                Err(Error::Refused(_)) if case.must_refuse() => {
                    refused += 1;
                    continue;
                }
                Err(e) => panic!("{sql:?} refused: {e}"),
                Ok(_) if case.must_refuse() => panic!("{sql:?} accepted"),
                Ok(query) => {
                    let rows = query
                        .fetch_all()
                        .await
                        .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
                    let mut names: Vec<String> = Vec::new();
                    for row in &rows {
                        let v: String = row.try_get("v").unwrap();
                        assert_eq!(v, case.value, "{sql:?}: constant changed");
                        names.push(row.try_get("name").unwrap());
                    }
                    names.sort();
                    assert_eq!(names, case.expected_names(), "{sql:?}: rows");
                }
            }
            let insert = case.insert();
            tx.query(&insert)
                .unwrap_or_else(|e| panic!("{insert:?} refused: {e}"))
                .fetch_all()
                .await
                .unwrap_or_else(|e| panic!("{insert:?}: {e}"));
            let stored = tx
                .query("SELECT name FROM assets WHERE id = $1")
                .unwrap()
                .bind(uuid::Uuid::parse_str(NEW_ID).unwrap())
                .fetch_all()
                .await
                .unwrap();
            let stored: Vec<String> = stored.iter().map(|r| r.get("name")).collect();
            assert_eq!(
                stored,
                std::slice::from_ref(&case.value),
                "{insert:?}: stored value"
            );
            tx.rollback().await.unwrap();
            accepted += 1;
        }
        assert!(accepted > CASES / 4 && refused > 0, "{accepted} {refused}");
        drop(pool);
        fx.teardown().await;
    }

    /// `standard_conforming_strings` decides what a backslash in `'..'`
    /// means. The guard's output must not depend on it: every generated
    /// value, in every input form, scoped once and run under `on` and `off`
    /// on the same connection, reads back byte for byte. Positive control:
    /// the same input text run as written reads differently under the two.
    #[tokio::test]
    async fn emitted_sql_means_the_same_under_either_standard_conforming_strings() {
        use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};
        let Some(fx) = fixture("tg_guard_differential_scs", 1).await else {
            return;
        };
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Postgres);
        let mut conn = fx.admin.acquire().await.unwrap();
        let mut values: Vec<String> = cases(true).into_iter().map(|c| c.value).collect();
        values.extend([
            r"a\b".to_owned(),
            r"\'".to_owned(),
            r"x\') OR 1 = 1 --".to_owned(),
        ]);
        let mut checked = 0;
        for value in &values {
            for form in [Form::Standard, Form::Escape, Form::Dollar] {
                let sql = format!("SELECT {} AS v", literal(value, form));
                let scoped = guard.scope(&sql).unwrap_or_else(|e| panic!("{sql:?}: {e}"));
                for scs in ["on", "off"] {
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "SET standard_conforming_strings = {scs}"
                    )))
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                    // Simple protocol: parsed now, under this setting (a
                    // cached prepared statement keeps the first reading).
                    let v: String = sqlx::raw_sql(AssertSqlSafe(scoped.sql().to_owned()))
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap_or_else(|e| panic!("{} (scs {scs}): {e}", scoped.sql()))
                        .get(0);
                    assert_eq!(&v, value, "{} (scs {scs})", scoped.sql());
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "{checked}");
        // Positive control: as written, `'a\b'` is not the same string.
        let mut seen = Vec::new();
        for scs in ["on", "off"] {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET standard_conforming_strings = {scs}"
            )))
            .execute(&mut *conn)
            .await
            .unwrap();
            let v: String = sqlx::raw_sql(r"SELECT 'a\b'")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .get(0);
            seen.push(v);
        }
        assert_ne!(seen[0], seen[1]);
        conn.close().await.unwrap();
        fx.teardown().await;
    }

    /// Typed string constants: the guard emits `type 'v'` as
    /// `CAST('v' AS type)`, and PostgreSQL reads the emitted text as the same
    /// value it reads the input as (typmods, time zones, JSON normalisation
    /// included). What `sqlparser` alone reads as a typed constant, a type
    /// followed by another value (`name[1]:a`, `DATE 5`), is refused; it is
    /// no constant to PostgreSQL either (a syntax error).
    #[tokio::test]
    async fn typed_constants_mean_on_postgres_what_the_input_meant() {
        use hisn_tenant_guard::guard::GuardError;
        use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};
        let Some(fx) = fixture("tg_guard_typed_pg", 1).await else {
            return;
        };
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Postgres);
        let mut conn = fx.admin.acquire().await.unwrap();
        for typed in [
            "DATE '2024-01-31'",
            "TIMESTAMP WITH TIME ZONE '2024-01-31 10:00:00+03'",
            "numeric(5,2) '1.005'",
            "varchar(3) 'abcdef'",
            "uuid 'C0000000-0000-4000-8000-00000000000C'",
            "int4 '42'",
            r#"jsonb '{"b": 1, "a": [2]}'"#,
            r#"jsonb E'["a\\b"]'"#,
        ] {
            let sql = format!("SELECT ({typed})::text AS v");
            let scoped = guard.scope(&sql).unwrap_or_else(|e| panic!("{sql:?}: {e}"));
            assert!(scoped.sql().contains("CAST("), "{}", scoped.sql());
            let mut read = Vec::new();
            for text in [sql.as_str(), scoped.sql()] {
                let v: String = sqlx::raw_sql(AssertSqlSafe(text.to_owned()))
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{text:?}: {e}"))
                    .get(0);
                read.push(v);
            }
            assert_eq!(read[1], read[0], "{sql:?} emitted as {:?}", scoped.sql());
        }
        for sql in [
            "SELECT name[1]:a FROM assets",
            "SELECT DATE 5",
            "SELECT TIMESTAMP NULL",
        ] {
            assert!(
                matches!(guard.scope(sql), Err(GuardError::Unsupported(_))),
                "{sql:?}"
            );
            assert!(
                sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut *conn)
                    .await
                    .is_err(),
                "{sql:?} runs on PostgreSQL"
            );
        }
        conn.close().await.unwrap();
        fx.teardown().await;
    }

    /// The attack classes of `guard/rewrite/tests_attacks.rs`, run through
    /// the real pool on PostgreSQL (guard and RLS): each is refused, or runs
    /// and returns only tenant A's rows, or fails in the database (a name
    /// the database reads as a missing column). Never a row of tenant B.
    #[tokio::test]
    async fn attack_classes_on_postgres() {
        let Some(fx) = fixture("tg_guard_classes_pg", 1).await else {
            return;
        };
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Postgres);
        // The superuser pool bypasses RLS: the guard alone.
        let pool = PgTenantPool::new(fx.admin.clone(), guard, key()).unwrap();
        let (mut ran, mut refused) = (0, 0);
        for sql in attack_class_statements() {
            let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
            match tx.query(&sql) {
                Err(Error::Refused(_)) => refused += 1,
                Err(e) => panic!("{sql:?}: {e}"),
                Ok(q) => {
                    if let Ok(rows) = q.fetch_all().await {
                        ran += 1;
                        for row in &rows {
                            for i in 0..row.len() {
                                let text: Option<String> = row.try_get(i).ok().flatten();
                                let text = text.unwrap_or_default();
                                assert!(!text.contains(" B"), "{sql:?} leaked {text:?}");
                            }
                        }
                    }
                }
            }
            tx.rollback().await.unwrap();
        }
        assert!(ran > 0 && refused > 10, "ran {ran}, refused {refused}");
        drop(pool);
        fx.teardown().await;
    }
}

/// Statements of the hardening attack classes (identifier truncation,
/// Unicode escapes, case folding, schemas, composites, Unicode spaces,
/// nested comments, dollar tags, escape strings), for both databases.
fn attack_class_statements() -> Vec<String> {
    let long = "n".repeat(64);
    let mut out: Vec<String> = [
        r"SELECT name FROM assets WHERE name = U&'\0027' OR true",
        "SELECT name FROM assets WHERE name = U&'!0027' UESCAPE '!' OR true",
        r#"SELECT name FROM U&"\0061ssets""#,
        "SELECT name FROM ASSETS WHERE true",
        r#"SELECT name FROM "Assets" WHERE true"#,
        r#"SELECT name FROM "ASSETS" WHERE true"#,
        "SELECT name FROM wor\u{212A}_orders",
        "SELECT name FROM public.assets WHERE true",
        "SELECT name FROM main.assets WHERE true",
        "SELECT name FROM pg_temp.assets",
        "SELECT name FROM temp.assets",
        "SELECT name FROM test.public.assets",
        "SELECT set_config('search_path', 'pg_temp, public', true), name FROM assets",
        "SELECT (row(a.name)).f1 FROM assets a",
        "SELECT (a).name FROM assets a",
        "SELECT (a).* FROM assets a",
        "SELECT name[1] FROM assets",
        "SELECT a.name[1] FROM assets a",
        "SELECT name\u{a0}FROM assets",
        "SELECT name FROM assets\u{200b} WHERE true",
        "SELECT name FROM\u{2003}assets",
        "SELECT name\u{feff} FROM assets",
        "SELECT 1 /* /* */ , (SELECT max(name) FROM assets) -- */",
        "SELECT name FROM assets /* /* */ WHERE false */",
        "SELECT name FROM assets WHERE name = $a$x$A$ OR 1=1 --$a$",
        "SELECT name FROM assets WHERE name = $\u{200b}$x$\u{200b}$ OR true",
        "SELECT name FROM assets WHERE name = $a-b$x$a-b$ OR true",
        r"SELECT name FROM assets WHERE name = E'\'' OR 1 = 1 --'",
        r"SELECT name FROM assets WHERE name = 'x\' OR 1 = 1 --'",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    out.push(format!("SELECT name AS {long} FROM assets WHERE true"));
    out.push(format!(r#"SELECT name FROM assets AS "{long}""#));
    out
}

#[cfg(feature = "sqlite")]
mod lite {
    use hisn_tenant_guard::db::SqliteTenantPool;
    use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
    use hisn_tenant_guard::sqlx::Row;

    use super::*;

    #[tokio::test]
    async fn emitted_sql_reads_back_as_the_checked_tree_on_sqlite() {
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Sqlite);
        let pool = SqliteTenantPool::new(crate::common::lite::pool().await, guard).unwrap();
        for case in cases(false) {
            let sql = case.select();
            let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
            let rows = tx
                .query(&sql)
                .unwrap_or_else(|e| panic!("{sql:?} refused: {e}"))
                .fetch_all()
                .await
                .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
            let mut names: Vec<String> = Vec::new();
            for row in &rows {
                let v: String = row.try_get("v").unwrap();
                assert_eq!(v, case.value, "{sql:?}: constant changed");
                names.push(row.try_get("name").unwrap());
            }
            names.sort();
            assert_eq!(names, case.expected_names(), "{sql:?}: rows");
            let insert = case.insert();
            tx.query(&insert)
                .unwrap_or_else(|e| panic!("{insert:?} refused: {e}"))
                .fetch_all()
                .await
                .unwrap_or_else(|e| panic!("{insert:?}: {e}"));
            let stored = tx
                .query("SELECT name FROM assets WHERE id = ?")
                .unwrap()
                .bind(NEW_ID)
                .fetch_all()
                .await
                .unwrap();
            let stored: Vec<String> = stored.iter().map(|r| r.get("name")).collect();
            assert_eq!(
                stored,
                std::slice::from_ref(&case.value),
                "{insert:?}: stored value"
            );
            tx.rollback().await.unwrap();
        }
    }

    /// The attack classes on SQLite through the pool (the guard alone).
    #[tokio::test]
    async fn attack_classes_on_sqlite() {
        let guard = QueryGuard::new(TableRegistry::parse_spec(SPEC).unwrap(), Dialect::Sqlite);
        let pool = SqliteTenantPool::new(crate::common::lite::pool().await, guard).unwrap();
        let (mut ran, mut refused) = (0, 0);
        for sql in super::attack_class_statements() {
            let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
            match tx.query(&sql) {
                Err(hisn_tenant_guard::Error::Refused(_)) => refused += 1,
                Err(e) => panic!("{sql:?}: {e}"),
                Ok(q) => {
                    if let Ok(rows) = q.fetch_all().await {
                        ran += 1;
                        for row in &rows {
                            for i in 0..row.len() {
                                let text: Option<String> = row.try_get(i).ok().flatten();
                                let text = text.unwrap_or_default();
                                assert!(!text.contains(" B"), "{sql:?} leaked {text:?}");
                            }
                        }
                    }
                }
            }
            tx.rollback().await.unwrap();
        }
        assert!(ran > 0 && refused > 10, "ran {ran}, refused {refused}");
    }
}
