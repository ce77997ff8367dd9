//! `hisn guard` with two-level tenancy and role gates (issue 17):
//! `--tables t:tenant_id:client_id`, `--clients`, `--roles`, `--org-roles`,
//! `--role-gates` for `rewrite`, `exec` and `rls-sql`.

use assert_cmd::Command;
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Connection};

const A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const X: &str = "11111111-0000-4000-8000-00000000000a";
const Y: &str = "22222222-0000-4000-8000-00000000000b";
const TABLES: &str = "ledger:tenant_id:client_id,salaries:tenant_id";
const GATES: &str = "salaries=hr_viewer/hr_admin";

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::cargo_bin("hisn")
        .unwrap()
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
fn rewrite_adds_the_client_predicate_and_reports_its_parameters() {
    let (code, out, err) = run(&[
        "--json",
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "--clients",
        X,
        "SELECT memo FROM ledger WHERE id = $1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["sql"],
        "SELECT memo FROM ledger WHERE (id = $1) AND ledger.tenant_id = $2 AND ledger.client_id = ANY($3)"
    );
    assert_eq!(
        (v["tenant_param"].as_u64(), v["clients_param"].as_u64()),
        (Some(2), Some(3))
    );
    // An organisation-wide role: no client predicate.
    let (code, out, _) = run(&[
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "--org-roles",
        "firm_admin",
        "--roles",
        "firm_admin",
        "SELECT memo FROM ledger",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        "SELECT memo FROM ledger WHERE ledger.tenant_id = $1"
    );
    // SQLite: the JSON form.
    let (code, out, _) = run(&[
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "--dialect",
        "sqlite",
        "SELECT memo FROM ledger",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("ledger.client_id IN (SELECT value FROM json_each(?2))"),
        "{out}"
    );
}

#[test]
fn rewrite_refuses_client_smuggling_and_gated_tables() {
    let both = format!("{X},{Y}");
    for (args, reason) in [
        (vec!["--clients", X], "UPDATE ledger SET client_id = $1"),
        (
            vec!["--clients", X],
            "INSERT INTO ledger (memo, client_id) VALUES ($1, $2)",
        ),
        (
            vec!["--clients", both.as_str()],
            "INSERT INTO ledger (memo) VALUES ($1)",
        ),
        (
            vec!["--roles", "member", "--role-gates", GATES],
            "SELECT * FROM salaries",
        ),
        (
            vec!["--roles", "hr_viewer", "--role-gates", GATES],
            "DELETE FROM salaries",
        ),
    ] {
        let mut a = vec!["guard", "rewrite", "--tables", TABLES];
        a.extend(args.iter().copied());
        a.push(reason);
        let (code, out, err) = run(&a);
        assert_eq!(code, Some(1), "{reason}: {out} {err}");
        assert!(err.contains("refused"), "{err}");
    }
    let (code, _, err) = run(&[
        "guard",
        "rewrite",
        "--tables",
        TABLES,
        "--roles",
        "hr_viewer",
        "--role-gates",
        GATES,
        "SELECT * FROM salaries",
    ]);
    assert_eq!(code, Some(0), "{err}");
    for bad in [
        vec!["--clients", "nope"],
        vec!["--roles", "Bad Role"],
        vec!["--org-roles", "x y"],
        vec!["--role-gates", "nope=a"],
        vec!["--active-client", "nope"],
    ] {
        let mut a = vec!["guard", "rewrite", "--tables", TABLES];
        a.extend(bad.iter().copied());
        a.push("SELECT 1");
        assert_eq!(run(&a).0, Some(2), "{bad:?}");
    }
}

#[test]
fn rls_sql_generates_client_and_role_gate_policies() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ctx.key");
    std::fs::write(&key, "07".repeat(32)).unwrap();
    let (code, out, err) = run(&[
        "guard",
        "rls-sql",
        "--tables",
        TABLES,
        "--app-role",
        "app",
        "--org-roles",
        "firm_admin",
        "--role-gates",
        GATES,
        "--context-key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    for part in [
        "CREATE POLICY \"hisn_client_isolation\" ON \"ledger\" AS RESTRICTIVE FOR ALL TO PUBLIC",
        "ARRAY['firm_admin']::text[]) OR (\"client_id\" = ANY ((SELECT public.hisn_tenant_guard_current_clients())::uuid[]))",
        "CREATE POLICY \"hisn_role_gate_select_0\" ON \"salaries\" AS RESTRICTIVE FOR SELECT TO PUBLIC \
         USING ((SELECT public.hisn_tenant_guard_current_roles()) && ARRAY['hr_admin', 'hr_viewer']::text[]);",
        "FOR UPDATE TO PUBLIC USING ((SELECT public.hisn_tenant_guard_current_roles()) && ARRAY['hr_admin']::text[])",
        "current_setting('hisn.tenant_scope', true)",
    ] {
        assert!(out.contains(part), "missing {part}");
    }
}

#[test]
fn exec_on_sqlite_reads_only_the_granted_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let url = format!("sqlite://{}", path.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use hisn_tenant_guard::sqlx::sqlite::SqliteConnectOptions;
        let mut c = hisn_tenant_guard::sqlx::SqliteConnection::connect_with(
            &SqliteConnectOptions::new().filename(&path).create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "create table ledger (id integer primary key, tenant_id text not null, client_id text not null, memo text not null); \
             insert into ledger (tenant_id, client_id, memo) values ('{A}', '{X}', 'x-one'), ('{A}', '{Y}', 'y-secret');"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    });
    let exec = |extra: &[&str], q: &str| {
        let mut args = vec![
            "guard",
            "exec",
            "--database-url",
            &url,
            "--tables",
            "ledger:tenant_id:client_id",
            "--tenant",
            A,
        ];
        args.extend_from_slice(extra);
        args.push(q);
        run(&args)
    };
    let (code, out, err) = exec(&["--clients", X], "SELECT memo FROM ledger");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "{\"memo\":\"x-one\"}\n");
    let (code, out, _) = exec(&[], "SELECT memo FROM ledger");
    assert_eq!((code, out.as_str()), (Some(0), ""));
    let (code, out, _) = exec(
        &["--org-roles", "firm_admin", "--roles", "firm_admin"],
        "SELECT count(*) AS n FROM ledger",
    );
    assert_eq!((code, out.as_str()), (Some(0), "{\"n\":2}\n"));
    let (code, _, err) = exec(
        &["--clients", X],
        "INSERT INTO ledger (memo) VALUES ('x-new')",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = exec(&["--clients", Y], "SELECT memo FROM ledger ORDER BY memo");
    assert_eq!((code, out.as_str()), (Some(0), "{\"memo\":\"y-secret\"}\n"));
}
