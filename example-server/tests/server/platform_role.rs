//! PostgreSQL mode: the platform tables are out of reach of
//! tenant-transaction SQL. The platform pool connects as its own role
//! (`HISN_PLATFORM_DATABASE_URL`); the application role, under which every
//! tenant transaction runs, holds no privilege on the platform tables (which
//! have no row-level security: `accounts` holds every tenant's password
//! hashes), so SQL in tenant A's transaction with the query guard off can
//! neither read B's accounts, keys, factors or grants nor write any.
//! Start-up refuses an application role that has regained a privilege.

use axum::http::StatusCode;
use hisn_example_server::danger::{Layers, build_with_layers};
use hisn_tenant_guard::db::danger::context_without_token;
use hisn_tenant_guard::{TenantId, UserId};
use serde_json::json;

use crate::common::{PASSWORD, test_config, totp_code};
use crate::services::TestDb;

fn ctx(tenant: &str) -> hisn_tenant_guard::TenantContext {
    let t: TenantId = tenant.parse().unwrap();
    context_without_token(t, UserId::from_uuid(uuid::Uuid::new_v4()).unwrap())
}

/// Every platform table (none has row-level security).
const PLATFORM_TABLES: [&str; 9] = [
    "tenants",
    "accounts",
    "api_keys",
    "account_totp",
    "support_grants",
    "admin_notifications",
    "hisn_vault_keys",
    "hisn_vault_shredded",
    "hisn_example_migrations",
];

fn denied(what: &str, e: &impl std::fmt::Display) {
    assert!(e.to_string().contains("permission denied"), "{what}: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_transactions_cannot_read_or_write_the_platform_tables_with_the_guard_off() {
    let Some(db) = TestDb::create(
        "tenant_transactions_cannot_read_or_write_the_platform_tables_with_the_guard_off",
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
    let seed_a = srv.seed(&a).await;
    // A support grant on B, used once: a grant row and a notification.
    let grant = srv.grant(&b, None).await;
    let r = srv
        .call("GET", &b.path("/assets"), Some(&grant), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // B's rows exist in every platform table (read as the superuser) but
    // the shred markers (none before the erasure below).
    for table in PLATFORM_TABLES
        .into_iter()
        .filter(|t| *t != "hisn_vault_shredded")
    {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&db.root)
                .await
                .unwrap();
        assert!(n > 0, "{table} is empty");
    }
    let b_hash: String = sqlx::query_scalar("SELECT password_hash FROM accounts WHERE email = $1")
        .bind(&b.email)
        .fetch_one(&db.root)
        .await
        .unwrap();
    assert!(b_hash.starts_with("$argon2"));
    let state = &srv.app.state;
    // Inside A's tenant transaction, no guard: every platform table is refused.
    for table in PLATFORM_TABLES {
        for sql in [
            format!("SELECT count(*) FROM {table}"),
            format!("SELECT count(*) FROM public.{table}"),
        ] {
            let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
            let r: Result<i64, _> = tx.query_scalar(&sql).unwrap().fetch_one().await;
            denied(
                &sql,
                &r.expect_err(&format!("A's transaction read {table}")),
            );
        }
    }
    // Filtered reads naming B: refused too, not merely empty.
    let filtered = [
        format!(
            "SELECT password_hash FROM accounts WHERE email = '{}'",
            b.email
        ),
        format!(
            "SELECT CAST(hash AS text) FROM api_keys WHERE id = '{}'",
            seed_b.api_key_id
        ),
        format!(
            "SELECT secret FROM account_totp WHERE tenant_id = '{}'",
            b.id
        ),
        format!(
            "SELECT CAST(wrapped AS text) FROM hisn_vault_keys WHERE tenant = '{}'",
            b.id
        ),
    ];
    for sql in &filtered {
        let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
        let r = tx.query(sql).unwrap().fetch_all().await;
        let e = r
            .err()
            .unwrap_or_else(|| panic!("A's transaction ran {sql}"));
        denied(sql, &e);
    }
    // Writes: no forged account, no reopened grant, no shredded neighbour.
    let mut writes: Vec<String> = PLATFORM_TABLES
        .iter()
        .flat_map(|t| {
            [
                format!("INSERT INTO {t} DEFAULT VALUES"),
                format!("DELETE FROM {t}"),
                format!("TRUNCATE {t}"),
            ]
        })
        .collect();
    writes.extend([
        format!(
            "UPDATE accounts SET password_hash = '{}' WHERE email = '{}'",
            b_hash, b.email
        ),
        format!(
            "INSERT INTO accounts (tenant_id, id, email, password_hash, role, created_at) VALUES ('{}', 'x', 'evil@x.example', 'h', 'owner', 0)",
            b.id
        ),
        "UPDATE tenants SET erased_at = NULL, plan = 'enterprise'".to_owned(),
        "UPDATE api_keys SET revoked = 0, role = 'owner'".to_owned(),
        "UPDATE account_totp SET failures = 0".to_owned(),
        "UPDATE support_grants SET revoked_at = NULL, expires_at = 99999999999".to_owned(),
        format!(
            "INSERT INTO hisn_vault_shredded (tenant) VALUES ('{}')",
            b.id
        ),
    ]);
    for sql in &writes {
        let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
        let e = tx.query(sql).unwrap().execute().await.unwrap_err();
        denied(sql, &e);
    }
    // Nor can it become the platform role.
    let mut tx = state.db.begin(&ctx(&a.id)).await.unwrap();
    let sql = format!("SET ROLE {}", db.platform_role());
    denied(&sql, &tx.query(&sql).unwrap().execute().await.unwrap_err());
    drop(tx);
    // The same as a plain connection of the application role.
    let app = sqlx::PgPool::connect(&db.url(Some(&db.app_role())))
        .await
        .unwrap();
    for table in PLATFORM_TABLES {
        let e = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table}"
        )))
        .fetch_one(&app)
        .await
        .unwrap_err();
        denied(table, &e);
    }
    for sql in filtered.iter().chain(&writes) {
        let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&app)
            .await
            .unwrap_err();
        denied(sql, &e);
    }
    app.close().await;
    // Nothing was changed: B's hash and keys are as they were.
    let (hash, shredded): (String, i64) = sqlx::query_as(
        "SELECT password_hash, (SELECT count(*) FROM hisn_vault_shredded) FROM accounts WHERE email = $1",
    )
    .bind(&b.email)
    .fetch_one(&db.root)
    .await
    .unwrap();
    assert_eq!((hash, shredded), (b_hash, 0));

    // Positive control: every platform feature still works, through the
    // platform role. Login (sign-up ran above), of an owner and a member.
    srv.login(&b.id, &b.email, PASSWORD).await;
    let member = format!("tech@{}.example", &b.id[..8]);
    srv.login(&b.id, &member, PASSWORD).await;
    // API keys: exchanged for a session, listed.
    let r = srv
        .call(
            "POST",
            "/auth/token",
            None,
            Some(json!({ "api_key": seed_b.api_key })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = srv
        .call("GET", &b.path("/api-keys"), Some(&b.token), None)
        .await;
    assert_eq!(r.body["items"][0]["id"], json!(seed_b.api_key_id), "{r:?}");
    // TOTP: a step-up with the next code.
    let r = srv
        .call(
            "POST",
            &a.path("/mfa/step-up"),
            Some(&a.token),
            Some(json!({ "code": totp_code(&a.totp, 30) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // Support grants: B's admins were told of the use.
    let r = srv
        .call("GET", &b.path("/notifications"), Some(&b.token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["items"][0]["kind"], "support_grant.used", "{r:?}");
    // The vault: B's integration secret decrypts.
    let r = srv
        .call(
            "GET",
            &b.path(&format!("/integrations/{}", seed_b.integration)),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.body["oauth_token_hint"], "last4:1234", "{r:?}");
    // Erasure: A's keys shredded, A closed; B untouched.
    let r = srv
        .call(
            "POST",
            &a.path("/erase"),
            Some(&a.token),
            Some(json!({ "confirm": a.id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let shredded: Vec<String> = sqlx::query_scalar("SELECT tenant FROM hisn_vault_shredded")
        .fetch_all(&db.root)
        .await
        .unwrap();
    assert_eq!(shredded, vec![a.id.clone()]);
    let r = srv
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({ "tenant": a.id, "email": a.email, "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/integrations/{}", seed_a.integration)),
            Some(&b.token),
            None,
        )
        .await;
    assert!(r.status.is_client_error(), "{r:?}");
    let r = srv
        .call(
            "GET",
            &b.path(&format!("/integrations/{}", seed_b.integration)),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.body["oauth_token_hint"], "last4:1234", "{r:?}");
}

/// Start-up refuses an application role that could reach a platform table
/// (any privilege on one, directly, through `PUBLIC` or on a column, or
/// membership in the platform role), no platform role, a platform role
/// shared with the application or audit role, owning the tables or lacking
/// a privilege it needs; the owner's migration revokes what was granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_refused_when_the_application_role_could_reach_the_platform_tables() {
    let Some(db) = TestDb::create(
        "start_is_refused_when_the_application_role_could_reach_the_platform_tables",
    )
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    db.start(dir.path(), true).await.unwrap();
    db.start(dir.path(), false).await.unwrap();
    let mut grants: Vec<(String, Option<&str>)> = PLATFORM_TABLES
        .iter()
        .map(|t| (format!("GRANT SELECT ON {t} TO {{app}}"), None))
        .collect();
    grants.extend([
        (
            "GRANT SELECT (password_hash) ON accounts TO {app}".to_owned(),
            None,
        ),
        (
            "GRANT INSERT ON hisn_vault_shredded TO {app}".to_owned(),
            None,
        ),
        ("GRANT UPDATE ON support_grants TO {app}".to_owned(), None),
        ("GRANT SELECT ON api_keys TO PUBLIC".to_owned(), None),
        (
            "GRANT {platform} TO {app}".to_owned(),
            Some("REVOKE {platform} FROM {app}"),
        ),
    ]);
    for (grant, revoke) in grants {
        db.as_root(&grant).await;
        let err = db.start(dir.path(), false).await.unwrap_err();
        assert!(err.contains("platform tables"), "{grant}: {err}");
        assert!(
            err.contains("application role holds a privilege")
                || err.contains("can act as the platform role"),
            "{grant}: {err}"
        );
        match revoke {
            Some(r) => db.as_root(r).await,
            // The owner's migration revokes it.
            None => db.start(dir.path(), true).await.unwrap(),
        }
        db.start(dir.path(), false).await.unwrap();
    }
    // The platform role without a privilege it needs: refused, then restored
    // by the owner's migration.
    db.as_root("REVOKE UPDATE ON accounts FROM {platform}")
        .await;
    let err = db.start(dir.path(), false).await.unwrap_err();
    assert!(
        err.contains("the platform role may not UPDATE accounts"),
        "{err}"
    );
    db.start(dir.path(), true).await.unwrap();
    db.start(dir.path(), false).await.unwrap();
    // No platform role; the application, audit or owner role as the platform role.
    let mut c = test_config(dir.path());
    db.configure(&mut c, false);
    c.platform_database_url = None;
    let err = build_with_layers(c, Layers::ALL)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HISN_PLATFORM_DATABASE_URL is unset"), "{err}");
    for (url, says) in [
        (
            db.url(Some(&db.app_role())),
            "connects as the application role",
        ),
        (db.url(Some(&db.audit_role())), "connects as the audit role"),
        (
            db.url(Some(&format!("{}_owner", db.name))),
            "the platform role owns",
        ),
    ] {
        let mut c = test_config(dir.path());
        db.configure(&mut c, false);
        c.platform_database_url = Some(url.parse().unwrap());
        let err = build_with_layers(c, Layers::ALL)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{says}: {err}");
    }
}
