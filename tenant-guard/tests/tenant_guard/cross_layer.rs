//! Cross-layer evidence (issue 10): one attack corpus, run as tenant A with
//! each layer alone and together; tenant B's rows are never read and never
//! changed.
//!
//! Root cause this guards against: the layers were not independent. A guard
//! bypass (a backslash literal the printer re-quoted, `(expr).f` calling a
//! function) reached `set_config`, and RLS trusted that setting, so one
//! statement defeated both layers. Each mode below takes one layer away:
//!
//! - PostgreSQL, guard and RLS (the application's configuration);
//! - PostgreSQL, guard **off** (`db::danger::unguarded`): RLS alone, raw
//!   statements in a tenant transaction as the application role;
//! - PostgreSQL as a superuser (RLS bypassed): the guard alone;
//! - SQLite: the guard alone.
//!
//! A statement may be refused or may fail; what it may never do is return one
//! of B's values or leave B's rows changed. Markers are B's data (names,
//! titles, serial numbers, row ids), not B's tenant id, which attacks quote.

use hisn_tenant_guard::Error;
use hisn_tenant_guard::db::{PgTenantPool, SqliteTenantPool, danger};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Column as _, Row, SqlitePool};

use crate::common::pg::{fixture, key, tenant_b_snapshot};
use crate::common::{TABLES, TENANT_A, context, lite};
use crate::pg_context::{attack_unguarded, context_attacks};

/// Values only tenant B holds.
const B_MARKERS: &[&str] = &[
    "pump B1",
    "secret B2",
    "fix B1",
    "fix B2",
    "S-3",
    "b0000000-",
    "b1000000-",
];

/// Which databases an attack applies to.
#[derive(Clone, Copy, PartialEq)]
enum On {
    Both,
    Pg,
    Lite,
}

/// The guard-bypass classes of the issue and the classic cross-tenant
/// attempts. No user parameters: every statement runs as written.
const GUARD_ATTACKS: &[(&str, On, &str)] = &[
    // Backslash literals: valid SQL whose re-rendering once turned the rest
    // of the string into code.
    (
        "backslash_quote_literal",
        On::Both,
        r"SELECT name FROM assets WHERE name = 'x\'' OR 1 = 1 --'",
    ),
    (
        "backslash_quote_literal_union",
        On::Both,
        r"SELECT name FROM assets WHERE name = 'x\'' UNION SELECT title FROM work_orders --'",
    ),
    (
        "backslash_quoted_identifier",
        On::Both,
        r#"SELECT name AS "x\"" FROM assets WHERE name = 'a' OR "x\"" = 'b' --'"#,
    ),
    (
        "doubled_quotes",
        On::Both,
        "SELECT name FROM assets WHERE name = 'O''''Brien'' OR 1 = 1 --'",
    ),
    (
        "comment_operator",
        On::Pg,
        "SELECT name FROM assets WHERE 1 #-- 1 OR true\n= 1",
    ),
    (
        "block_comment_operator",
        On::Pg,
        "SELECT name FROM assets WHERE 1 #/* 1 */ OR true",
    ),
    (
        "dollar_quote",
        On::Pg,
        "SELECT name FROM assets WHERE name = $$x$$ OR name = $a$' OR 1=1 --$a$",
    ),
    // Attribute notation calls a function: `(expr).f` is `f(expr)`.
    (
        "attribute_call_current_setting",
        On::Pg,
        "SELECT ('hisn.tenant_context'::text).current_setting FROM assets",
    ),
    (
        "attribute_call_ts_stat",
        On::Pg,
        "SELECT name FROM assets WHERE name <> ('select to_tsvector(name) from assets'::text).ts_stat::text",
    ),
    (
        "qualified_attribute_call",
        On::Pg,
        "SELECT a.name FROM assets a WHERE a.pg_sleep IS NULL OR a.name IS NOT NULL",
    ),
    (
        "row_attribute_call",
        On::Pg,
        "SELECT (a).name, (a).current_setting FROM assets a",
    ),
    // Plain cross-tenant attempts.
    (
        "other_tenant_predicate",
        On::Both,
        "SELECT name FROM assets WHERE tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
    ),
    (
        "or_true",
        On::Both,
        "SELECT name FROM assets WHERE name = 'x' OR 1 = 1",
    ),
    (
        "union_other_table",
        On::Both,
        "SELECT name FROM assets UNION ALL SELECT title FROM work_orders",
    ),
    (
        "subquery_in_select_list",
        On::Both,
        "SELECT (SELECT max(name) FROM assets x WHERE x.name LIKE '%B%') FROM assets",
    ),
    (
        "update_other_tenant",
        On::Both,
        "UPDATE assets SET name = 'pwned' WHERE tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
    ),
    ("delete_everything", On::Both, "DELETE FROM work_orders"),
    (
        "insert_for_other_tenant",
        On::Both,
        "INSERT INTO assets (id, tenant_id, name) VALUES ('c0000000-0000-4000-8000-000000000001', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'planted')",
    ),
    (
        "replace_other_tenant_row",
        On::Lite,
        "INSERT OR REPLACE INTO assets (id, tenant_id, name, serial_no) VALUES ('b0000000-0000-4000-8000-000000000001', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'replaced', 'S-1')",
    ),
    (
        "upsert_into_other_tenant_row",
        On::Lite,
        "INSERT INTO assets (id, name, serial_no) VALUES ('b0000000-0000-4000-8000-000000000001', 'x', 'S-9') ON CONFLICT DO UPDATE SET name = 'pwned'",
    ),
    // Hardening classes (guard/rewrite/tests_attacks.rs): Unicode escapes,
    // truncated and case-folded names, schemas, composites, Unicode spaces,
    // nested comments, dollar tags, escape strings.
    (
        "unicode_escape_string",
        On::Both,
        r"SELECT name FROM assets WHERE name = U&'\0027' OR true",
    ),
    (
        "unicode_escape_uescape",
        On::Pg,
        "SELECT name FROM assets WHERE name = U&'!0027' UESCAPE '!' OR true",
    ),
    (
        "unicode_escape_identifier",
        On::Pg,
        r#"SELECT name FROM U&"\0061ssets" WHERE true"#,
    ),
    (
        "truncated_identifier",
        On::Both,
        "SELECT name FROM assets AS assets_with_a_name_longer_than_sixty_three_bytes_is_truncated_xx WHERE true",
    ),
    (
        "case_folded_table",
        On::Both,
        "SELECT name FROM ASSETS WHERE true",
    ),
    (
        "quoted_case_table",
        On::Both,
        r#"SELECT name FROM "Assets" WHERE true"#,
    ),
    (
        "schema_qualified",
        On::Pg,
        "SELECT name FROM public.assets WHERE true UNION ALL SELECT title FROM public.work_orders",
    ),
    ("temp_schema", On::Both, "SELECT name FROM pg_temp.assets"),
    (
        "sqlite_temp_schema",
        On::Lite,
        "SELECT name FROM temp.assets",
    ),
    (
        "search_path_in_statement",
        On::Pg,
        "SELECT set_config('search_path', 'pg_temp, public', true), name FROM assets",
    ),
    (
        "row_field_access",
        On::Pg,
        "SELECT (row(a.name)).f1 FROM assets a",
    ),
    ("whole_row_star", On::Pg, "SELECT (a).* FROM assets a"),
    ("array_subscript", On::Both, "SELECT name[1] FROM assets"),
    (
        "nbsp_between_tokens",
        On::Both,
        "SELECT name\u{a0}FROM assets",
    ),
    (
        "zero_width_space",
        On::Both,
        "SELECT name FROM assets\u{200b} WHERE true",
    ),
    (
        "nested_comment",
        On::Both,
        "SELECT 1 /* /* */ , (SELECT max(name) FROM assets) -- */",
    ),
    (
        "dollar_tag_case",
        On::Pg,
        "SELECT name FROM assets WHERE name = $a$x$A$ OR 1=1 --$a$",
    ),
    (
        "escape_string_quote",
        On::Pg,
        r"SELECT name FROM assets WHERE name = E'\'' OR 1 = 1 --'",
    ),
    ("set_tenant", On::Both, "SET hisn.tenant_context = 'x'"),
    ("pragma", On::Lite, "PRAGMA writable_schema = 1"),
    ("attach", On::Lite, "ATTACH DATABASE ':memory:' AS other"),
];

/// The first B marker in any text column of `rows`, if any.
fn leaked<R: LeakScan>(rows: &[R]) -> Option<String> {
    rows.iter()
        .flat_map(LeakScan::texts)
        .find_map(|(column, text)| {
            B_MARKERS
                .iter()
                .find(|m| text.contains(*m))
                .map(|m| format!("{m} in column {column}"))
        })
}

/// Every text column of a row, as (column name, value).
trait LeakScan {
    fn texts(&self) -> Vec<(String, String)>;
}

macro_rules! leak_scan {
    ($row:ty) => {
        impl LeakScan for $row {
            fn texts(&self) -> Vec<(String, String)> {
                (0..self.len())
                    .filter_map(|i| {
                        let text = self.try_get::<Option<String>, _>(i).ok().flatten()?;
                        Some((self.columns()[i].name().to_owned(), text))
                    })
                    .collect()
            }
        }
    };
}
leak_scan!(sqlx::postgres::PgRow);
leak_scan!(sqlx::sqlite::SqliteRow);

fn pg_guard() -> QueryGuard {
    crate::pg_context::guard()
}

/// Guard on (refusing or scoping), then reads through the guard: no B value.
async fn pg_guarded(pool: &PgTenantPool, sql: &str) -> Option<String> {
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let leak = match tx.query(sql) {
        Err(Error::Refused(_)) => None,
        Err(e) => panic!("unexpected error for {sql}: {e}"),
        Ok(q) => match q.fetch_all().await {
            Ok(rows) => leaked(&rows),
            Err(_) => None,
        },
    };
    if leak.is_some() {
        return leak;
    }
    for probe in ["SELECT name FROM assets", "SELECT title FROM work_orders"] {
        if let Ok(rows) = tx.query(probe).unwrap().fetch_all().await
            && let Some(l) = leaked(&rows)
        {
            return Some(format!("{l} (after the attack)"));
        }
    }
    let _ = tx.commit().await;
    None
}

/// Guard off: the statement runs raw in tenant A's transaction.
async fn pg_unguarded(pool: &PgTenantPool, sql: &str) -> Option<String> {
    let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
    let rows = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .fetch_all(danger::unguarded(&mut tx))
        .await;
    let _ = tx.commit().await;
    rows.ok().and_then(|r| leaked(&r))
}

#[tokio::test]
async fn attack_corpus_reaches_no_other_tenant_with_any_layer_alone_on_postgres() {
    let Some(fx) = fixture("tg_cross_layer", 1).await else {
        return;
    };
    let before = tenant_b_snapshot(&fx.admin).await;
    let both = PgTenantPool::new(fx.app.clone(), pg_guard(), key()).unwrap();
    // The superuser bypasses RLS: the guard alone.
    let guard_alone = PgTenantPool::new(fx.admin.clone(), pg_guard(), key()).unwrap();
    let mut corpus: Vec<(&str, String)> = GUARD_ATTACKS
        .iter()
        .filter(|(_, on, _)| *on != On::Lite)
        .map(|(name, _, sql)| (*name, (*sql).to_owned()))
        .collect();
    corpus.extend(context_attacks(&fx.app).await);
    let mut failures = Vec::new();
    for (name, sql) in &corpus {
        if let Some(l) = pg_guarded(&both, sql).await {
            failures.push(format!("guard+RLS {name}: {l}"));
        }
        if let Some(l) = pg_unguarded(&both, sql).await {
            failures.push(format!("RLS alone {name}: {l}"));
        }
        let probes = attack_unguarded(&both, sql).await;
        if !probes.is_empty() {
            failures.push(format!("RLS alone {name}, then probes: {probes:?}"));
        }
        if let Some(l) = pg_guarded(&guard_alone, sql).await {
            failures.push(format!("guard alone {name}: {l}"));
        }
        let after = tenant_b_snapshot(&fx.admin).await;
        if after != before {
            failures.push(format!("{name} changed tenant B's rows"));
            break;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Positive control: the scan finds B's values where no layer stands.
    let rows = sqlx::query("SELECT name FROM assets")
        .fetch_all(&fx.admin)
        .await
        .unwrap();
    assert!(leaked(&rows).is_some());
    drop((both, guard_alone));
    fx.teardown().await;
}

async fn lite_b_snapshot(pool: &SqlitePool) -> String {
    sqlx::query_scalar(
        "SELECT coalesce((SELECT group_concat(id || name || coalesce(serial_no, ''), '|') FROM \
           (SELECT * FROM assets WHERE tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb' ORDER BY id)), '') \
         || '#' || coalesce((SELECT group_concat(id || title, '|') FROM \
           (SELECT * FROM work_orders WHERE tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb' ORDER BY id)), '')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn attack_corpus_reaches_no_other_tenant_through_the_guard_alone_on_sqlite() {
    let raw = lite::pool().await;
    let before = lite_b_snapshot(&raw).await;
    let guard = QueryGuard::new(
        TableRegistry::parse_spec(TABLES)
            .unwrap()
            .shared_table("countries"),
        Dialect::Sqlite,
    );
    let pool = SqliteTenantPool::new(raw.clone(), guard).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, _, sql) in GUARD_ATTACKS.iter().filter(|(_, on, _)| *on != On::Pg) {
        let mut tx = pool.begin(&context(TENANT_A)).await.unwrap();
        match tx.query(sql) {
            Err(Error::Refused(_)) => {}
            Err(e) => panic!("unexpected error for {sql}: {e}"),
            Ok(q) => {
                ran += 1;
                if let Ok(rows) = q.fetch_all().await
                    && let Some(l) = leaked(&rows)
                {
                    failures.push(format!("{name}: {l}"));
                }
            }
        }
        for probe in ["SELECT name FROM assets", "SELECT title FROM work_orders"] {
            if let Ok(rows) = tx.query(probe).unwrap().fetch_all().await
                && let Some(l) = leaked(&rows)
            {
                failures.push(format!("{name}, then {probe}: {l}"));
            }
        }
        let _ = tx.commit().await;
        if lite_b_snapshot(&raw).await != before {
            failures.push(format!("{name} changed tenant B's rows"));
            break;
        }
    }
    // Positive control: the markers are B's, and a raw read finds them.
    let rows = sqlx::query("SELECT name FROM assets")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert!(leaked(&rows).is_some());
    assert!(failures.is_empty(), "{failures:#?}");
    // The guard scoped (not only refused) part of the corpus.
    assert!(ran >= 4, "only {ran} statements ran");
}
