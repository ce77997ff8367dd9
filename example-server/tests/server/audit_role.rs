//! PostgreSQL mode: the audit trail is out of reach of tenant-transaction
//! SQL. The audit store connects as its own role (`HISN_AUDIT_DATABASE_URL`);
//! the application role, under which every tenant transaction runs, holds no
//! privilege on audit-log's tables (which have no row-level security), so SQL
//! in tenant A's transaction with the query guard off can neither read B's
//! audit records nor write any. Start-up refuses an application role that
//! has regained one.

use hisn_example_server::danger::{Layers, build_with_layers};
use hisn_tenant_guard::db::danger::context_without_token;
use hisn_tenant_guard::{TenantId, UserId};

use crate::common::test_config;
use crate::services::TestDb;

fn ctx(tenant: &str) -> hisn_tenant_guard::TenantContext {
    let t: TenantId = tenant.parse().unwrap();
    context_without_token(t, UserId::from_uuid(uuid::Uuid::new_v4()).unwrap())
}

/// The audit tables audit-log creates (none has row-level security).
const AUDIT_TABLES: [&str; 4] = [
    "hisn_audit_log",
    "hisn_audit_subject",
    "hisn_audit_checkpoint",
    "hisn_audit_prune_point",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_transactions_cannot_read_or_write_the_audit_trail_with_the_guard_off() {
    let Some(db) = TestDb::create(
        "tenant_transactions_cannot_read_or_write_the_audit_trail_with_the_guard_off",
    )
    .await
    else {
        return;
    };
    let srv = db.server(Layers::without_query_guard()).await;
    assert!(!srv.app.state.db.guarded());
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let seed_b = srv.seed(&b).await;
    srv.seed(&a).await;
    // B's records exist (read as the superuser, outside the server).
    let b_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM hisn_audit_log WHERE tenant = $1")
        .bind(&b.id)
        .fetch_one(&db.root)
        .await
        .unwrap();
    assert!(b_rows > 0);
    let state = &srv.app.state;
    // Inside A's tenant transaction, no guard: every audit table is refused.
    for table in AUDIT_TABLES {
        for sql in [
            format!("SELECT count(*) FROM {table}"),
            format!("SELECT count(*) FROM public.{table}"),
        ] {
            let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
            let r: Result<i64, _> = tx.query_scalar(&sql).unwrap().fetch_one().await;
            let e = r.expect_err(&format!("A's transaction read {table}"));
            assert!(e.to_string().contains("permission denied"), "{table}: {e}");
        }
    }
    // The subject index names B's member: not even a filtered read works.
    let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
    let r: Result<i64, _> = tx
        .query_scalar(&format!(
            "SELECT count(*) FROM hisn_audit_subject WHERE subject = '{}'",
            seed_b.member
        ))
        .unwrap()
        .fetch_one()
        .await;
    assert!(r.is_err(), "A's transaction read B's subject index");
    // Writes are refused too (no forged records in B's chain).
    for sql in [
        "INSERT INTO hisn_audit_log DEFAULT VALUES",
        "INSERT INTO hisn_audit_checkpoint DEFAULT VALUES",
        "INSERT INTO hisn_audit_subject DEFAULT VALUES",
    ] {
        let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
        let e = tx.query(sql).unwrap().execute().await.unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
    }
    // The same as a plain connection of the application role.
    let app = sqlx::PgPool::connect(&db.url(Some(&db.app_role())))
        .await
        .unwrap();
    for table in AUDIT_TABLES {
        let e = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table}"
        )))
        .fetch_one(&app)
        .await
        .unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{table}: {e}");
    }
    app.close().await;
    // Positive control: the server's own audit features still work, through
    // the audit role: appends, GET /audit, the DSAR report.
    let before = srv.audit_len(&a.id).await;
    let r = srv
        .call(
            "POST",
            &a.path("/assets"),
            Some(&a.token),
            Some(serde_json::json!({ "name": "Pump", "serial": "P-9", "location": "Bay 2" })),
        )
        .await;
    assert!(r.status.is_success(), "{r:?}");
    assert_eq!(srv.audit_len(&a.id).await, before + 1);
    assert_eq!(srv.last_audit(&a.id).await["action"], "asset.create");
    let r = srv
        .call("GET", &a.path("/audit?limit=100"), Some(&a.token), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["total"].as_u64().unwrap() > before, "{r:?}");
    let r = srv
        .call(
            "GET",
            &b.path(&format!("/subjects/{}/report", seed_b.member)),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.body["entries"].as_array().unwrap().is_empty(), "{r:?}");
    assert_eq!(r.body["intact"], serde_json::json!(true));
}

/// Start-up refuses an application role that could reach the audit trail
/// (any privilege on an audit table, directly or through `PUBLIC`, or
/// membership in the audit role), no audit role, or the application role
/// as the audit role; the owner's migration revokes what was granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_refused_when_the_application_role_could_reach_the_audit_trail() {
    let Some(db) =
        TestDb::create("start_is_refused_when_the_application_role_could_reach_the_audit_trail")
            .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    db.start(dir.path(), true).await.unwrap();
    db.start(dir.path(), false).await.unwrap();
    for (grant, revoke) in [
        ("GRANT SELECT ON hisn_audit_log TO {app}", None),
        ("GRANT SELECT (tenant) ON hisn_audit_subject TO {app}", None),
        ("GRANT INSERT ON hisn_audit_checkpoint TO {app}", None),
        ("GRANT SELECT ON hisn_audit_prune_point TO PUBLIC", None),
        ("GRANT {audit} TO {app}", Some("REVOKE {audit} FROM {app}")),
    ] {
        db.as_root(grant).await;
        let err = db.start(dir.path(), false).await.unwrap_err();
        assert!(err.contains("audit"), "{grant}: {err}");
        assert!(
            err.contains("application role holds a privilege")
                || err.contains("can act as the audit role"),
            "{grant}: {err}"
        );
        match revoke {
            Some(r) => db.as_root(r).await,
            // The owner's migration revokes it.
            None => db.start(dir.path(), true).await.unwrap(),
        }
        db.start(dir.path(), false).await.unwrap();
    }
    // No audit role, or the application role named as the audit role.
    let mut c = test_config(dir.path());
    db.configure(&mut c, false);
    c.audit_database_url = None;
    let err = build_with_layers(c, Layers::ALL)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HISN_AUDIT_DATABASE_URL is unset"), "{err}");
    let mut c = test_config(dir.path());
    db.configure(&mut c, false);
    c.audit_database_url = c.database_url.clone();
    let err = build_with_layers(c, Layers::ALL)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("connects as the application role"), "{err}");
}
