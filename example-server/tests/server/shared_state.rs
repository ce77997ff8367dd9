//! Two instances on one PostgreSQL database and one Redis keep no state of
//! their own that the other needs: the audit trail is one chain per tenant
//! (audit-log's verifier agrees), an attachment uploaded through one
//! downloads through the other, and a crypto-shred on one is refused by the
//! other's cached keys. Plus the embedded mode's reading of attachments
//! stored as files before migration 3.

use std::sync::Arc;

use axum::http::StatusCode;
use hisn_audit_log::store::postgres::PgStore;
use hisn_audit_log::{TenantId as AuditTenant, TrustedKeys, Verdict};
use serde_json::{Value, json};

use crate::common::{Server, Tenant, server};
use crate::multi_instance::{cleanup_redis, instance, instance_with};
use crate::services::{TestDb, redis_prefix, redis_url};

/// Two instances of one deployment (shared keys, the test limits), the
/// first migrating.
async fn pair(db: &Arc<TestDb>, redis: &str, prefix: &str) -> (Server, Server) {
    let a = instance_with(db, redis, prefix, None, true, |_| {}).await;
    let b = instance_with(db, redis, prefix, Some(a.dir.path()), false, |_| {}).await;
    (a, b)
}

/// The audit signing key's public half, from the shared key file.
fn trusted(srv: &Server) -> TrustedKeys {
    TrustedKeys::new().with(srv.app.state.audit_key.verifying_key())
}

async fn chain(srv: &Server, t: &Tenant) -> Vec<Value> {
    srv.app
        .state
        .audit
        .records(t.id.parse().unwrap(), 0, 100_000)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_appends_from_two_instances_form_one_verifying_chain_per_tenant() {
    let test = "audit_appends_from_two_instances_form_one_verifying_chain_per_tenant";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let (a, b) = pair(&db, &redis, &prefix).await;
    assert!(a.app.state.audit.is_shared() && b.app.state.audit.is_shared());
    let alpha = a.tenant("Alpha").await;
    let beta = b.tenant("Beta").await;
    let seed = b.seed(&alpha).await;
    let before = a.audit_len(&alpha.id).await;
    // Writes of both tenants through both instances at once, so appends of
    // one tenant from the two instances interleave.
    const ROUNDS: usize = 6;
    let (pa, pb) = (alpha.path("/assets"), beta.path("/assets"));
    for i in 0..ROUNDS {
        let body = |via: &str| json!({ "name": format!("Pump {i}"), "serial": format!("S-{i}-{via}"), "location": "Riyadh" });
        let (ra, rb, rc, rd) = tokio::join!(
            a.call("POST", &pa, Some(&alpha.token), Some(body("a"))),
            b.call("POST", &pa, Some(&alpha.token), Some(body("b"))),
            a.call("POST", &pb, Some(&beta.token), Some(body("a"))),
            b.call("POST", &pb, Some(&beta.token), Some(body("b"))),
        );
        for r in [ra, rb, rc, rd] {
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        }
    }
    // Both instances read the same chain: every append, numbered 0..n.
    let (from_a, from_b) = (chain(&a, &alpha).await, chain(&b, &alpha).await);
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.len() as u64, before + 2 * ROUNDS as u64);
    for (i, rec) in from_a.iter().enumerate() {
        assert_eq!(rec["seq"], json!(i), "{rec}");
        assert_eq!(rec["tenant"], json!(alpha.id), "{rec}");
    }
    let created = from_a
        .iter()
        .filter(|r| r["action"] == "asset.create")
        .count();
    assert_eq!(created, 2 * ROUNDS + 1, "the seed's asset and the rounds'");
    // One chain per tenant: Beta's holds only Beta's records.
    let beta_chain = chain(&a, &beta).await;
    assert!(beta_chain.len() > 2 * ROUNDS);
    assert!(beta_chain.iter().all(|r| r["tenant"] == json!(beta.id)));

    // Checkpoints signed by one instance prove entries read through the other.
    let state = &a.app.state;
    let signed = state
        .audit
        .checkpoint_now(Arc::clone(&state.audit_key))
        .await
        .unwrap();
    assert!(signed >= 2, "{signed} checkpoints");
    for (srv, t) in [(&a, &alpha), (&b, &alpha), (&a, &beta), (&b, &beta)] {
        let (verdict, size) = srv
            .app
            .state
            .audit
            .verify(t.id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(verdict, Verdict::Intact, "{}", t.id);
        assert_eq!(size, chain(srv, t).await.len() as u64);
    }
    // audit-log's own verifier, over the tables as the superuser sees them,
    // with only the public key, agrees.
    let store = PgStore::new(db.root.clone());
    for t in [&alpha, &beta] {
        let report = store
            .verify(&AuditTenant::parse(&t.id).unwrap(), Some(&trusted(&a)), &[])
            .await
            .unwrap();
        assert_eq!(report.verdict, Verdict::Intact, "{report:?}");
        assert_eq!(report.size, chain(&a, t).await.len() as u64);
    }

    // The admin route and the DSAR report through the other instance.
    let r = b
        .call(
            "GET",
            &alpha.path("/audit?limit=500"),
            Some(&alpha.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["verdict"], "Intact", "{r:?}");
    assert_eq!(r.body["total"], json!(from_a.len()));
    let r = a
        .call(
            "GET",
            &alpha.path(&format!("/subjects/{}/report", seed.member)),
            Some(&alpha.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let entries = r.body["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{r:?}");
    assert!(entries.iter().all(|e| e["proven"] == json!(true)), "{r:?}");
    assert_eq!(r.body["intact"], true);

    // The audit role may add records, never change them (the application
    // role may not even read them, see `audit_role.rs`).
    let app = sqlx::PgPool::connect(&db.url(Some(&db.audit_role())))
        .await
        .unwrap();
    for sql in [
        "UPDATE hisn_audit_log SET actor = 'someone else'",
        "DELETE FROM hisn_audit_log",
        "DELETE FROM hisn_audit_checkpoint",
    ] {
        let e = sqlx::query(sql).execute(&app).await.unwrap_err();
        assert_eq!(
            e.as_database_error().and_then(|d| d.code()).as_deref(),
            Some("42501"),
            "{sql}: {e}"
        );
    }
    app.close().await;
    cleanup_redis(&redis, &prefix).await;
}

/// The owner's migration grants the audit role exactly what audit-log
/// documents; a role that could change the trail is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_refused_when_the_audit_role_could_change_the_audit_trail() {
    let test = "start_is_refused_when_the_audit_role_could_change_the_audit_trail";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let a = instance(&db, &redis, &prefix, None, true).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT UPDATE ON hisn_audit_log TO {}",
        db.audit_role()
    )))
    .execute(&db.root)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["local-keys.json", hisn_example_server::mfa::KEY_FILE] {
        std::fs::copy(a.dir.path().join(file), dir.path().join(file)).unwrap();
    }
    let mut c = crate::common::test_config(dir.path());
    db.configure(&mut c, false);
    let e = hisn_example_server::build(c).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("the audit role may UPDATE, DELETE or TRUNCATE hisn_audit_log"),
        "{e}"
    );
    cleanup_redis(&redis, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_uploaded_through_one_instance_downloads_through_the_other() {
    let test = "an_attachment_uploaded_through_one_instance_downloads_through_the_other";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let (a, b) = pair(&db, &redis, &prefix).await;
    let t = a.tenant("Alpha").await;
    let seed = a.seed(&t).await;
    // Uploaded through A; its signed URL answers through B.
    let r = b.call("GET", &seed.attachment_url, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.raw, b"hello world");
    // A fresh URL from B answers through A.
    let r = b
        .call(
            "GET",
            &t.path(&format!("/attachments/{}", seed.attachment)),
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let url = r.body["url"].as_str().unwrap().to_owned();
    let r = a.call("GET", &url, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.raw, b"hello world");
    // Stored encrypted in the tenant's row, nothing in either data directory.
    let content: String = sqlx::query_scalar(
        "SELECT content FROM attachments WHERE tenant_id = $1::uuid AND id = $2",
    )
    .bind(&t.id)
    .bind(&seed.attachment)
    .fetch_one(&db.root)
    .await
    .unwrap();
    assert!(content.starts_with("hv1:"), "{content}");
    assert!(!content.contains("hello") && !content.contains("aGVsbG8"));
    for srv in [&a, &b] {
        assert!(!srv.dir.path().join("files").exists());
    }
    // A URL signed for this attachment does not open another tenant's id.
    let u = b.tenant("Beta").await;
    let other = b.seed(&u).await;
    let forged = seed
        .attachment_url
        .replace(&seed.attachment, &other.attachment);
    assert_eq!(
        b.call("GET", &forged, None, None).await.status,
        StatusCode::NOT_FOUND
    );
    cleanup_redis(&redis, &prefix).await;
}

/// Decrypt `ct` of an integration's OAuth token through `srv`'s vault.
async fn decrypt_on(
    srv: &Server,
    tenant: &str,
    id: &str,
    ct: &str,
) -> Result<Vec<u8>, hisn_crypto_vault::Error> {
    let fc =
        hisn_crypto_vault::FieldContext::new(tenant, "integrations", "oauth_token", id).unwrap();
    let ct = hisn_crypto_vault::Ciphertext::from_text(ct).unwrap();
    srv.app
        .state
        .vault
        .decrypt(&fc, &ct)
        .await
        .map(|p| p.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crypto_shred_on_one_instance_is_refused_by_the_others_cached_keys() {
    let test = "a_crypto_shred_on_one_instance_is_refused_by_the_others_cached_keys";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let (a, b) = pair(&db, &redis, &prefix).await;
    let t = a.tenant("Alpha").await;
    let other = a.tenant("Beta").await;
    let seed = a.seed(&t).await;
    let other_seed = a.seed(&other).await;
    let ct_of = |tenant: &str, id: &str| {
        let (tenant, id, root) = (tenant.to_owned(), id.to_owned(), db.root.clone());
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT oauth_token FROM integrations WHERE tenant_id = $1::uuid AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_one(&root)
            .await
            .unwrap()
        }
    };
    let ct = ct_of(&t.id, &seed.integration).await;
    let other_ct = ct_of(&other.id, &other_seed.integration).await;
    // B decrypts, and now holds the tenant's keyring in its cache.
    assert_eq!(
        decrypt_on(&b, &t.id, &seed.integration, &ct).await.unwrap(),
        b"gho_secrettoken1234"
    );
    assert!(b.app.state.vault.cached_tenants() >= 1);
    let r = a
        .call(
            "POST",
            &t.path("/erase"),
            Some(&t.token),
            Some(json!({ "confirm": t.id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // B's next use of the tenant's keys is refused, decryption and encryption.
    let e = decrypt_on(&b, &t.id, &seed.integration, &ct)
        .await
        .unwrap_err();
    assert!(
        matches!(e, hisn_crypto_vault::Error::TenantShredded),
        "{e:?}"
    );
    let fc =
        hisn_crypto_vault::FieldContext::new(&t.id, "integrations", "oauth_token", "x").unwrap();
    let e = b.app.state.vault.encrypt(&fc, b"new").await.unwrap_err();
    assert!(
        matches!(e, hisn_crypto_vault::Error::TenantShredded),
        "{e:?}"
    );
    // And stays refused (the vault now remembers the tenant as shredded).
    assert!(decrypt_on(&b, &t.id, &seed.integration, &ct).await.is_err());
    // Through the routes, the erased tenant's still-valid session finds
    // nothing on either instance: a step-up (the TOTP secret is sealed under
    // the shredded keys) and a new encrypted integration are 404, never 500.
    for srv in [&a, &b] {
        let r = srv
            .call(
                "POST",
                &t.path("/mfa/step-up"),
                Some(&t.token),
                Some(json!({ "code": crate::common::totp_code(&t.totp, 0) })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = srv
            .call(
                "POST",
                &t.path("/integrations"),
                Some(&t.token),
                Some(json!({ "name": "ERP", "base_url": "https://erp.example/api", "username": "svc", "oauth_token": "gho_after_erase", "password": "p@ss-w0rd-long" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    }
    // Other tenants are untouched on both instances.
    for srv in [&a, &b] {
        assert_eq!(
            decrypt_on(srv, &other.id, &other_seed.integration, &other_ct)
                .await
                .unwrap(),
            b"gho_secrettoken1234"
        );
    }
    // The erasure is one record in the shared chain, visible from B.
    assert_eq!(b.last_audit(&t.id).await["action"], "tenant.erase");
    cleanup_redis(&redis, &prefix).await;
}

/// Embedded mode: an attachment stored as a file before migration 3 (no
/// `content` in its row) still downloads; a new one leaves no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_stored_as_files_before_migration_3_still_download() {
    let srv = server().await;
    let t = srv.tenant("Alpha").await;
    let seed = srv.seed(&t).await;
    let pool = srv.app.state.platform.as_sqlite().unwrap();
    assert!(!srv.dir.path().join("files").exists());
    // Move the stored ciphertext to where the earlier release wrote it.
    let content: String =
        sqlx::query_scalar("SELECT content FROM attachments WHERE tenant_id = ? AND id = ?")
            .bind(&t.id)
            .bind(&seed.attachment)
            .fetch_one(pool)
            .await
            .unwrap();
    let dir = srv.dir.path().join("files").join(&t.id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&seed.attachment), &content).unwrap();
    sqlx::query("UPDATE attachments SET content = NULL WHERE tenant_id = ? AND id = ?")
        .bind(&t.id)
        .bind(&seed.attachment)
        .execute(pool)
        .await
        .unwrap();
    let r = srv.call("GET", &seed.attachment_url, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.raw, b"hello world");
    // Without the file (and without content) it is missing, not an error.
    std::fs::remove_file(dir.join(&seed.attachment)).unwrap();
    let r = srv.call("GET", &seed.attachment_url, None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
}
