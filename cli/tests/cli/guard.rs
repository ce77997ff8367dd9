//! `hisn guard` tests.
// Helpers outside #[test] fns panic on a broken test setup by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Connection, PgConnection};

const TABLES: &str = "assets:tenant_id,work_orders:tenant_id";
const A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

fn hisn() -> Command {
    Command::cargo_bin("hisn").unwrap()
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = hisn()
        .env_remove("HISN_DATABASE_URL")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn rewrite_prints_the_scoped_statement() {
    // Qualified names need the table's columns (the pool reads them from the
    // catalog; `rewrite` takes them in the spec).
    let (code, out, err) = run(&[
        "guard",
        "rewrite",
        "--tables",
        "assets:tenant_id(id,name),work_orders:tenant_id",
        "SELECT a.name FROM assets a WHERE a.id = $1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let out = out.trim();
    assert!(out.starts_with("SELECT a.name FROM assets"), "{out}");
    assert!(
        out.contains("a.id = $1") && out.ends_with("a.tenant_id = $2"),
        "{out}"
    );
    assert!(err.is_empty());
}

#[test]
fn rewrite_sqlite_and_json() {
    let (code, out, _) = run(&[
        "--json",
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "--dialect",
        "sqlite",
        "SELECT name FROM assets WHERE id = ?",
    ]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["user_params"], 1);
    assert_eq!(v["tenant_param"], 2);
    assert!(v["sql"].as_str().unwrap().contains("tenant_id = ?2"), "{v}");
}

#[test]
fn rewrite_refusal_exits_1_with_the_reason() {
    for (sql, reason) in [
        ("UPDATE assets SET tenant_id = $1", "tenant column"),
        ("SELECT * FROM pg_user", "unknown table"),
        ("SELECT 1; DROP TABLE assets", "multiple statements"),
        ("SELECT set_config('hisn.tenant_id', 'x', true)", ""),
    ] {
        let (code, out, err) = run(&["guard", "rewrite", "--tables", TABLES, sql]);
        assert_eq!(code, Some(1), "{sql}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1);
        assert!(err.starts_with("hisn: refused: "), "{err}");
        assert!(err.to_lowercase().contains(reason), "{sql}: {err}");
    }
    let (code, out, _) = run(&[
        "--json",
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "DROP TABLE assets",
    ]);
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["refused"].as_str().unwrap().contains("DDL"));
}

#[test]
fn bad_tables_or_dialect_is_usage_error() {
    let (code, _, err) = run(&["guard", "rewrite", "--tables", "assets:", "SELECT 1"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = run(&[
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "--dialect",
        "oracle",
        "SELECT 1",
    ]);
    assert_eq!(code, Some(2));
    let (code, _, _) = run(&[
        "guard",
        "rls-sql",
        "--tables",
        TABLES,
        "--app-role",
        "bad role",
        "--context-key-file",
        "/dev/null",
    ]);
    assert_eq!(code, Some(2));
}

#[test]
fn rls_sql_prints_the_migration_with_the_context_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("context.key");
    std::fs::write(&key_file, format!("{}\n", "42".repeat(32))).unwrap();
    let key = key_file.to_str().unwrap();
    let args = |k: &str| {
        [
            "guard",
            "rls-sql",
            "--tables",
            TABLES,
            "--app-role",
            "hisn_app",
            "--context-key-file",
            k,
        ]
        .map(str::to_owned)
    };
    let (code, out, err) = run(&args(key).each_ref().map(String::as_str));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ALTER TABLE \"work_orders\" FORCE ROW LEVEL SECURITY;"));
    assert!(out.contains("AS RESTRICTIVE FOR ALL"));
    assert!(out.contains("SECURITY DEFINER"));
    // The padded key (0x42 ^ 0x36 = 0x74) is installed for the function.
    assert!(out.contains(&"74".repeat(32)), "{out}");
    // The key is required, and a bad key file is a usage error that does not echo it.
    let (code, _, _) = run(&args("").each_ref().map(String::as_str)[..6]);
    assert_eq!(code, Some(2));
    std::fs::write(&key_file, "not-a-key-s3cret").unwrap();
    let (code, _, err) = run(&args(key).each_ref().map(String::as_str));
    assert_eq!(code, Some(2));
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn verify_rls_connection_and_usage_errors_exit_2() {
    let (code, _, err) = run(&[
        "guard",
        "verify-rls",
        "--database-url",
        "not a url",
        "--tables",
        TABLES,
    ]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run(&[
        "guard",
        "verify-rls",
        "--database-url",
        "postgres://app:s3cret-pw@127.0.0.1:1/nope?connect_timeout=2",
        "--tables",
        TABLES,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("s3cret-pw"), "the password leaked: {err}");
    let (code, _, _) = run(&["guard", "verify-rls", "--tables", TABLES]);
    assert_eq!(code, Some(2));
}

/// Against real PostgreSQL: a clean setup passes, a broken one lists findings.
#[test]
fn verify_rls_against_postgres() {
    let Ok(url) = std::env::var("HISN_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("HISN_REQUIRE_SERVICES").map_or(true, |v| v != "1"),
            "HISN_TEST_DATABASE_URL required"
        );
        println!("skipping verify_rls_against_postgres: HISN_TEST_DATABASE_URL is not set");
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (db, role, owner) = (
        format!("hisn_t_cli_{suffix}"),
        format!("hisn_cli_app_{suffix}"),
        format!("hisn_cli_own_{suffix}"),
    );
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(b, _)| b)
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |u: String, sql: String| {
        rt.block_on(async move {
            let mut c = PgConnection::connect(&u).await.unwrap();
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        });
    };
    exec(url.clone(), format!("create database \"{db}\""));
    let db_url = format!("{base}/{db}");
    // The migration as `hisn guard rls-sql` prints it, run by an ordinary owner role.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("context.key");
    std::fs::write(&key_file, "42".repeat(32)).unwrap();
    let (code, rls, err) = run(&[
        "guard",
        "rls-sql",
        "--tables",
        TABLES,
        "--app-role",
        &role,
        "--context-key-file",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    exec(
        db_url.clone(),
        format!(
            "create role \"{role}\" login; create role \"{owner}\"; grant create on schema public to \"{owner}\";
             set role \"{owner}\";
             create table assets (id uuid primary key, tenant_id uuid not null);
             create table work_orders (id uuid primary key, tenant_id uuid not null);
             create table countries (code text primary key);
             grant select on countries to \"{role}\";
             {rls}"
        ),
    );
    let app_url = db_url.replacen("://postgres@", &format!("://{role}@"), 1);
    // A table without RLS the app role can read is reported until declared global.
    let undeclared = run(&[
        "guard",
        "verify-rls",
        "--database-url",
        &app_url,
        "--tables",
        TABLES,
    ]);
    let clean = run(&[
        "guard",
        "verify-rls",
        "--database-url",
        &app_url,
        "--tables",
        TABLES,
        "--global",
        "countries",
    ]);
    // `guard exec`: the same pool an application uses, as the app role.
    exec(
        db_url.clone(),
        format!(
            "insert into assets values ('a0000000-0000-4000-8000-000000000001', '{A}'), \
             ('b0000000-0000-4000-8000-000000000001', '{B}'), ('b0000000-0000-4000-8000-000000000002', '{B}')"
        ),
    );
    let key_arg = key_file.to_str().unwrap();
    let pg_exec = |extra: &[&str], sql: &str| {
        let mut args = vec![
            "guard",
            "exec",
            "--database-url",
            &app_url,
            "--tables",
            TABLES,
            "--tenant",
            B,
            "--context-key-file",
            key_arg,
        ];
        args.extend_from_slice(extra);
        args.push(sql);
        run(&args)
    };
    let guarded = pg_exec(&[], "SELECT count(*) AS n FROM assets");
    let unguarded_all = pg_exec(&["--unguarded"], "select count(*) as n from assets");
    let unguarded_other = pg_exec(
        &["--unguarded"],
        &format!("select count(*) as n from assets where tenant_id = '{A}'"),
    );
    let refused = pg_exec(&[], "select count(*) from pg_class");
    let no_key = run(&[
        "guard",
        "exec",
        "--database-url",
        &app_url,
        "--tables",
        TABLES,
        "--tenant",
        B,
        "select 1",
    ]);
    exec(
        db_url.clone(),
        "alter table assets no force row level security".to_owned(),
    );
    let broken = run(&[
        "--json",
        "guard",
        "verify-rls",
        "--database-url",
        &app_url,
        "--tables",
        TABLES,
        "--global",
        "countries",
    ]);
    let as_superuser = run(&[
        "guard",
        "verify-rls",
        "--database-url",
        &db_url,
        "--tables",
        TABLES,
    ]);
    exec(
        db_url,
        format!("drop owned by \"{role}\"; drop owned by \"{owner}\""),
    );
    exec(url.clone(), format!("drop database \"{db}\" with (force)"));
    exec(url, format!("drop role \"{role}\"; drop role \"{owner}\""));

    assert_eq!(guarded, (Some(0), "{\"n\":2}\n".to_owned(), String::new()));
    // RLS alone: the guard is off, the context still scopes.
    assert_eq!(unguarded_all.1, "{\"n\":2}\n", "{unguarded_all:?}");
    assert_eq!(unguarded_other.1, "{\"n\":0}\n", "{unguarded_other:?}");
    assert_eq!(refused.0, Some(1), "{refused:?}");
    assert_eq!(no_key.0, Some(2), "{no_key:?}");
    assert_eq!(undeclared.0, Some(1), "{undeclared:?}");
    assert!(undeclared.1.contains("countries"), "{undeclared:?}");
    assert_eq!(clean.0, Some(0), "{clean:?}");
    assert!(
        clean
            .1
            .starts_with("ok: row-level security verified for 2 table(s)")
    );
    assert_eq!(broken.0, Some(1), "{broken:?}");
    let v: serde_json::Value = serde_json::from_str(&broken.1).unwrap();
    assert_eq!(v["clean"], false);
    assert_eq!(
        v["findings"],
        serde_json::json!(["assets: row level security is not forced (owner bypasses it)"])
    );
    assert_eq!(as_superuser.0, Some(1));
    assert!(
        as_superuser.1.contains("is a superuser"),
        "{as_superuser:?}"
    );
}

/// `hisn guard exec` on SQLite: the guard alone scopes; refusals exit 1; the
/// write is committed with the tenant the operator named.
#[test]
fn exec_on_sqlite_scopes_commits_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let url = format!("sqlite://{}", path.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = |q: String| {
        let path = path.clone();
        rt.block_on(async move {
            use hisn_tenant_guard::sqlx::sqlite::SqliteConnectOptions;
            let mut c = hisn_tenant_guard::sqlx::SqliteConnection::connect_with(
                &SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(q))
                .fetch_all(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            rows
        })
    };
    sql(format!(
        "create table assets (id text primary key, tenant_id text not null, name text not null); \
         insert into assets values ('1', '{A}', 'pump A1'), ('2', '{B}', 'pump B1'); select 'x', 'y'"
    ));
    let exec = |extra: &[&str], q: &str| {
        let mut args = vec![
            "guard",
            "exec",
            "--database-url",
            &url,
            "--tables",
            "assets:tenant_id",
            "--tenant",
            A,
        ];
        args.extend_from_slice(extra);
        args.push(q);
        run(&args)
    };
    let (code, out, err) = exec(&[], "SELECT name FROM assets ORDER BY name");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "{\"name\":\"pump A1\"}\n");
    let (code, out, _) = exec(
        &[],
        "SELECT name FROM assets WHERE tenant_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'",
    );
    assert_eq!((code, out.as_str()), (Some(0), ""));
    let (code, _, err) = exec(&[], "SELECT * FROM sqlite_master");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refused"), "{err}");
    let (code, _, err) = exec(&[], "INSERT INTO assets (id, name) VALUES ('3', 'new')");
    assert_eq!(code, Some(0), "{err}");
    let rows = sql("select id, tenant_id from assets where id = '3'".to_owned());
    assert_eq!(rows, [("3".to_owned(), A.to_owned())]);
    let (code, _, _) = exec(&["--unguarded"], "SELECT 1");
    assert_eq!(code, Some(2));
    let (code, _, _) = run(&[
        "guard",
        "exec",
        "--database-url",
        &url,
        "--tables",
        "assets:tenant_id",
        "--tenant",
        "nope",
        "SELECT 1",
    ]);
    assert_eq!(code, Some(2));
}
