//! Integration tests of the encrypted, signed and escape-hatch flows.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{request, server, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_serve_attachments_and_refuse_tampering() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let r = srv.call("GET", &seed.attachment_url, None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.raw, b"hello world");
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    // Another expiry, a flipped signature, a stripped signature: 404.
    let (path, q) = seed.attachment_url.split_once('?').unwrap();
    let later = q.replacen("expires=", "expires=9", 1);
    let mut sig = seed.attachment_url.clone();
    let last = sig.pop().unwrap();
    sig.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [format!("{path}?{later}"), sig, path.to_owned()] {
        assert_eq!(srv.call("GET", &bad, None, None).await.status, 404, "{bad}");
    }
    // At rest the attachment is ciphertext, in its row.
    let stored: String =
        sqlx::query_scalar("SELECT content FROM attachments WHERE tenant_id = ? AND id = ?")
            .bind(&a.id)
            .bind(&seed.attachment)
            .fetch_one(srv.app.state.platform.as_sqlite().unwrap())
            .await
            .unwrap();
    assert!(stored.starts_with("hv1:") && !stored.contains("hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_and_erase_crypto_shreds_the_tenant() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let (token, password): (String, String) =
        sqlx::query_as("SELECT oauth_token, password FROM integrations WHERE tenant_id = ?")
            .bind(&a.id)
            .fetch_one(srv.app.state.platform.as_sqlite().unwrap())
            .await
            .unwrap();
    assert!(token.starts_with("hv1:") && !token.contains("gho_"));
    assert!(password.starts_with("hv1:") && !password.contains("p@ss"));
    // A ciphertext copied to another row does not decrypt there.
    let r = srv
        .call(
            "POST",
            &a.path("/integrations"),
            Some(&a.token),
            Some(json!({ "name": "Copy", "base_url": "https://c.example", "username": "u", "oauth_token": "other-token", "password": "pw" })),
        )
        .await;
    let copy = r.body["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE integrations SET oauth_token = ? WHERE tenant_id = ? AND id = ?")
        .bind(&token)
        .bind(&a.id)
        .bind(&copy)
        .execute(srv.app.state.platform.as_sqlite().unwrap())
        .await
        .unwrap();
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/integrations/{copy}")),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.body["oauth_token_hint"], "unreadable");
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/integrations/{}", seed.integration)),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.body["oauth_token_hint"], "last4:1234");
    // A wrong confirmation erases nothing.
    let r = srv
        .call(
            "POST",
            &a.path("/erase"),
            Some(&a.token),
            Some(json!({ "confirm": "no" })),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = srv
        .call(
            "POST",
            &a.path("/erase"),
            Some(&a.token),
            Some(json!({ "confirm": a.id })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["erased"], true);
    // The keys are gone: the stored ciphertext can never be decrypted again.
    let tenant = a.id.clone();
    let fc = hisn_crypto_vault::FieldContext::new(
        &tenant,
        "integrations",
        "oauth_token",
        &seed.integration,
    )
    .unwrap();
    let ct = hisn_crypto_vault::Ciphertext::from_text(&token).unwrap();
    assert!(srv.app.state.vault.decrypt(&fc, &ct).await.is_err());
    assert_eq!(
        srv.call("GET", &seed.attachment_url, None, None)
            .await
            .status,
        404
    );
    let r = srv
        .call("GET", &a.path("/assets"), Some(&a.token), None)
        .await;
    assert_eq!(r.body["total"], 0);
    // The tenant is closed: its owner cannot log in again; the chain records the erasure.
    let r = srv
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({ "tenant": a.id, "email": a.email, "password": crate::common::PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(srv.last_audit(&a.id).await["action"], "tenant.erase");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_authenticate_machines_with_their_role_until_revoked() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let r = srv
        .call(
            "POST",
            "/auth/token",
            None,
            Some(json!({ "api_key": seed.api_key })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let machine = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        srv.call("GET", &a.path("/assets"), Some(&machine), None)
            .await
            .status,
        200
    );
    // A viewer key cannot write.
    let r = srv
        .call(
            "POST",
            &a.path("/assets"),
            Some(&machine),
            Some(json!({ "name": "n", "serial": "s", "location": "l" })),
        )
        .await;
    assert_eq!(r.status, 403);
    // The listing never shows the secret or its hash.
    let r = srv
        .call("GET", &a.path("/api-keys"), Some(&a.token), None)
        .await;
    assert!(
        !r.raw
            .windows(seed.api_key.len())
            .any(|w| w == seed.api_key.as_bytes())
    );
    assert!(r.body["items"][0].get("hash").is_none());
    let r = srv
        .call(
            "DELETE",
            &a.path(&format!("/api-keys/{}", seed.api_key_id)),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = srv
        .call(
            "POST",
            "/auth/token",
            None,
            Some(json!({ "api_key": seed.api_key })),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_calls_go_through_the_circuit_breaker() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let r = srv
        .call(
            "POST",
            &a.path("/integrations"),
            Some(&a.token),
            Some(json!({ "name": "Down", "base_url": "https://down.partner.example", "username": "u", "oauth_token": "tok-1", "password": "pw" })),
        )
        .await;
    let down = r.body["id"].as_str().unwrap().to_owned();
    let seed = srv.seed(&a).await;
    let sync = |id: &str| {
        request(
            "POST",
            &a.path(&format!("/integrations/{id}/sync")),
            Some(&a.token),
            None,
        )
    };
    assert_eq!(srv.send(sync(&seed.integration)).await.status, 200);
    for _ in 0..5 {
        assert_eq!(
            srv.send(sync(&down)).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Open: the healthy partner is not called either, and the outcome is audited.
    assert_eq!(
        srv.send(sync(&seed.integration)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let rec = srv.last_audit(&a.id).await;
    assert_eq!(
        (rec["action"].clone(), rec["diff"]["outcome"].clone()),
        (json!("integration.sync"), json!("circuit_open"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_escape_hatch_needs_token_and_reason_and_is_audited_first() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    srv.seed(&a).await;
    let path = format!("/operator/tenants/{}/summary", a.id);
    assert_eq!(
        srv.call("GET", &path, Some(&a.token), None).await.status,
        401
    );
    let op = srv.operator_token();
    assert_eq!(
        srv.call("GET", &path, Some(&op), None).await.status,
        400,
        "no reason"
    );
    let before = srv.audit_len(&a.id).await;
    let uses = hisn_example_server::metrics::global().render();
    let mut req = request("GET", &path, Some(&op), None);
    req.headers_mut()
        .insert("x-reason", "ticket 99: verify row counts".parse().unwrap());
    let r = srv.send(req).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["counts"]["assets"], 1);
    assert_eq!(srv.audit_len(&a.id).await, before + 1);
    let rec = srv.last_audit(&a.id).await;
    assert_eq!(rec["action"], "security.escape_hatch");
    assert_eq!(rec["diff"]["reason"], "ticket 99: verify row counts");
    assert_eq!(rec["source_ip"], "203.0.113.7");
    assert_ne!(hisn_example_server::metrics::global().render(), uses);
    let metrics = srv.call("GET", "/metrics", Some(&op), None).await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    let text = String::from_utf8(metrics.raw).unwrap();
    assert!(text.contains("hisn_escape_hatch_uses_total "));
    assert!(text.contains("hisn_audit_append_seconds_count "));
    assert!(!text.contains(&a.id), "metrics carry no tenant ids");
}

#[tokio::test]
async fn unreachable_database_or_redis_refuses_to_start_rather_than_falling_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.database_url = Some("postgres://app@127.0.0.1:1/app".parse().unwrap());
    let err = hisn_example_server::build(cfg).await.unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    let mut cfg = test_config(dir.path());
    cfg.redis_url = Some("redis://127.0.0.1:1".parse().unwrap());
    let err = hisn_example_server::build(cfg).await.unwrap_err();
    assert!(err.to_string().contains("redis"), "{err}");
    // Isolation layers are switched off only on PostgreSQL, never on SQLite.
    let cfg = test_config(dir.path());
    let layers = hisn_example_server::danger::Layers::without_query_guard();
    let err = hisn_example_server::danger::build_with_layers(cfg, layers)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only on PostgreSQL"), "{err}");
    let mut cfg = test_config(dir.path());
    cfg.token_ttl_secs = 100_000;
    assert!(hisn_example_server::build(cfg).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seeds_two_tenants_through_the_router() {
    let srv = server().await;
    hisn_example_server::demo::run(&srv.app).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(srv.app.state.platform.as_sqlite().unwrap())
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let srv = server().await;
    let r = srv.call("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().unwrap();
    let mut n = 0;
    for route in hisn_example_server::routes::routes() {
        let op = &paths[route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            route.method,
            route.path
        );
        if route.access == hisn_example_server::routes::Access::Tenant {
            assert_eq!(op["security"], json!([{ "session": [] }]));
            assert!(op["responses"]["404"].is_object());
        }
        n += 1;
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented, n,
        "the document lists a route the router does not serve"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_prove_dsar_entries_and_the_chain_verifies() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let state = &srv.app.state;
    assert!(
        state
            .audit
            .checkpoint_now(std::sync::Arc::clone(&state.audit_key))
            .await
            .unwrap()
            >= 1
    );
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/subjects/{}/report", seed.member)),
            Some(&a.token),
            None,
        )
        .await;
    let entries = r.body["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["proven"] == json!(true)),
        "{entries:?}"
    );
    let (verdict, _) = state.audit.verify(a.id.parse().unwrap()).await.unwrap();
    assert!(
        matches!(
            verdict,
            hisn_audit_log::Verdict::Intact | hisn_audit_log::Verdict::UnanchoredTail
        ),
        "{verdict:?}"
    );
}
