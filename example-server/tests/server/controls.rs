//! Integration tests of each composed control.

use axum::http::StatusCode;
use hisn_example_server::config::Rate;
use serde_json::json;

use crate::common::{Buf, PASSWORD, request, server, server_with, test_config};

#[tokio::test]
async fn security_headers_and_json_errors_on_every_response() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let cases = [
        srv.call("GET", "/health", None, None).await,
        srv.call("GET", "/nope", None, None).await,
        srv.call("GET", &a.path("/assets"), None, None).await,
        srv.call("GET", &a.path("/assets"), Some(&a.token), None)
            .await,
        srv.call(
            "POST",
            &a.path("/assets"),
            Some(&a.token),
            Some(json!({ "bogus": 1 })),
        )
        .await,
        srv.call("DELETE", "/health", None, None).await,
    ];
    let expected = [200, 404, 401, 200, 400, 405];
    for (r, code) in cases.iter().zip(expected) {
        assert_eq!(r.status.as_u16(), code, "{r:?}");
        let h = &r.headers;
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(h.get("server").is_none());
        assert_eq!(h["x-request-id"].len(), 36);
        assert!(
            h.contains_key("ratelimit"),
            "RateLimit header missing on {code}"
        );
        if code >= 400 {
            // A fixed code, nothing else (no parser message, no internals).
            let obj = r.body.as_object().unwrap();
            assert_eq!(obj.len(), 1, "{obj:?}");
            assert!(
                obj["error"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }
}

#[tokio::test]
async fn strict_bodies_refuse_mass_assignment_and_oversized_input_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.max_body_bytes = 4096;
    let srv = server_with(cfg, dir).await;
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let tok = Some(a.token.as_str());
    let cases = [
        (
            json!({ "name": "x", "serial": "1", "location": "y", "tenant_id": b.id }),
            400,
        ),
        (
            json!({ "name": "x", "serial": "1", "location": "y", "id": "00000000-0000-4000-8000-000000000001" }),
            400,
        ),
        (
            json!({ "name": "x".repeat(201), "serial": "1", "location": "y" }),
            400,
        ),
        (
            json!({ "name": "x\u{0}", "serial": "1", "location": "y" }),
            400,
        ),
        (
            json!({ "name": "x".repeat(5000), "serial": "1", "location": "y" }),
            413,
        ),
        (json!({ "name": "x" }), 400),
    ];
    for (body, code) in cases {
        let r = srv.call("POST", &a.path("/assets"), tok, Some(body)).await;
        assert_eq!(r.status.as_u16(), code, "{r:?}");
    }
    let mut req = request("POST", &a.path("/assets"), tok, None);
    *req.body_mut() = axum::body::Body::from("name=x");
    let r = srv.send(req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = srv
        .call("GET", &a.path("/assets?tenant_id=x"), tok, None)
        .await;
    assert_eq!(r.status, 400);
    let r = srv.call("GET", &a.path("/assets"), tok, None).await;
    assert_eq!(r.body["total"], 0, "a refused body created something");
}

#[tokio::test]
async fn login_is_uniform_rehashes_and_is_limited_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.login_account_rate = Rate::new(3, 300).unwrap();
    let srv = server_with(cfg, dir).await;
    let a = srv.tenant("Alpha").await;
    let bad = |t: &str, e: &str, p: &str| json!({ "tenant": t, "email": e, "password": p });
    let unknown = [
        bad(&a.id, &a.email, "wrong password!"),
        bad(&a.id, "nobody@alpha.example", PASSWORD),
        bad("00000000-0000-4000-8000-000000000009", &a.email, PASSWORD),
        bad("not-a-tenant", &a.email, PASSWORD),
    ];
    for body in unknown {
        let r = srv.call("POST", "/auth/login", None, Some(body)).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body, json!({ "error": "unauthorized" }));
    }
    // A hash below the current parameters is upgraded on the next login.
    let weak = hisn_crypto_vault::PasswordHasher::new(
        hisn_crypto_vault::PasswordParams::new(8192, 1, 1).unwrap(),
    )
    .hash(PASSWORD)
    .unwrap();
    sqlx::query("UPDATE accounts SET password_hash = ? WHERE tenant_id = ?")
        .bind(&weak)
        .bind(&a.id)
        .execute(srv.app.state.platform.as_sqlite().unwrap())
        .await
        .unwrap();
    srv.login(&a.id, &a.email, PASSWORD).await;
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE tenant_id = ?")
            .bind(&a.id)
            .fetch_one(srv.app.state.platform.as_sqlite().unwrap())
            .await
            .unwrap();
    assert_ne!(stored, weak);
    assert!(
        stored.starts_with("$argon2id$") && stored.contains("m=19456"),
        "{stored}"
    );
    // Per-account budget: 3 attempts, then 429 with Retry-After even for the right password.
    for _ in 0..3 {
        srv.call(
            "POST",
            "/auth/login",
            None,
            Some(bad(&a.id, &a.email, "nope nope nope")),
        )
        .await;
    }
    let r = srv
        .call(
            "POST",
            "/auth/login",
            None,
            Some(bad(&a.id, &a.email, PASSWORD)),
        )
        .await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let audit = srv
        .app
        .state
        .audit
        .records(a.id.parse().unwrap(), 0, 100)
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e["action"] == "auth.login_failed"));
}

#[tokio::test]
async fn session_tier_answers_429_with_headers_and_spares_other_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.session_rate = Rate::new(10, 5).unwrap();
    cfg.tenant_rate = Rate::new(15, 60).unwrap();
    let srv = server_with(cfg, dir).await;
    let a = srv.tenant("Alpha").await;
    for i in 0..10 {
        let r = srv
            .call("GET", &a.path("/assets"), Some(&a.token), None)
            .await;
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            r.headers["ratelimit"]
                .to_str()
                .unwrap()
                .contains("\"session\"")
        );
    }
    let r = srv
        .call("GET", &a.path("/assets"), Some(&a.token), None)
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body, json!({ "error": "rate_limited" }));
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.headers.contains_key("ratelimit-policy"));
    // Another session of the same tenant still has its own budget, until the
    // tenant tier (15 per minute, shared) runs out.
    let other = srv.login(&a.id, &a.email, PASSWORD).await;
    let mut ok = 0;
    for _ in 0..10 {
        if srv
            .call("GET", &a.path("/assets"), Some(&other), None)
            .await
            .status
            == 200
        {
            ok += 1;
        }
    }
    // The owner's TOTP enrolment (start, confirm) used 2 of the 15.
    assert_eq!(ok, 3, "tenant tier: 15 per minute across sessions");
}

#[tokio::test]
async fn payment_webhook_is_processed_once_and_forgeries_are_refused() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let event = json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "pro", "status": "active" } });
    let r = srv.send(srv.webhook("msg_1", &event)).await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (StatusCode::OK, json!("processed"))
    );
    let n = srv.audit_len(&a.id).await;
    // A later event moves the state on; replaying the first one must not move it back.
    let later = json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "pro", "status": "past_due" } });
    assert_eq!(srv.send(srv.webhook("msg_2", &later)).await.status, 200);
    let replays = hisn_example_server::metrics::global().webhook_replays();
    let r = srv.send(srv.webhook("msg_1", &event)).await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (StatusCode::OK, json!("duplicate"))
    );
    assert!(hisn_example_server::metrics::global().webhook_replays() > replays);
    let r = srv
        .call("GET", &a.path("/subscription"), Some(&a.token), None)
        .await;
    assert_eq!(r.body, json!({ "plan": "pro", "status": "past_due" }));
    assert_eq!(
        srv.audit_len(&a.id).await,
        n + 1,
        "the replay appended a record"
    );
    // Tampered body, unsigned request: 401, nothing changes.
    let mut forged = srv.webhook("msg_3", &event);
    *forged.body_mut() =
        axum::body::Body::from(event.to_string().replace("\"pro\"", "\"enterprise\""));
    assert_eq!(srv.send(forged).await.status, 401);
    assert_eq!(
        srv.call("POST", "/webhooks/payments", None, Some(event))
            .await
            .status,
        401
    );
    let r = srv
        .call("GET", &a.path("/subscription"), Some(&a.token), None)
        .await;
    assert_eq!(r.body["status"], "past_due");
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let body = json!({ "name": "Pump", "serial": "P-9", "location": "Riyadh" });
    let send = |b: serde_json::Value| {
        let mut r = request("POST", &a.path("/assets"), Some(&a.token), Some(&b));
        r.headers_mut()
            .insert("idempotency-key", "\"k-1\"".parse().unwrap());
        r
    };
    let first = srv.send(send(body.clone())).await;
    assert_eq!(first.status, 201);
    let again = srv.send(send(body.clone())).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the retry got a different result");
    let list = srv
        .call("GET", &a.path("/assets"), Some(&a.token), None)
        .await;
    assert_eq!(list.body["total"], 1, "the retry ran twice");
    let other = srv
        .send(send(
            json!({ "name": "Other", "serial": "P-10", "location": "x" }),
        ))
        .await;
    assert_eq!(other.status, 422);
}

#[tokio::test]
async fn logs_are_json_and_carry_no_pii_from_a_pii_request() {
    let buf = Buf::default();
    let sink = buf.clone();
    let sub = hisn_example_server::logging::subscriber("info", move || sink.clone());
    // Not tracing's own set_default: a callsite first reached by a parallel
    // test without a subscriber would keep a stale "never" interest.
    let _guard = hisn_test_support::set_default(sub);
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let email = "fatima.alharbi@example.sa";
    let r = srv
        .call(
            "POST",
            &a.path("/members"),
            Some(&a.token),
            Some(json!({ "email": email, "password": PASSWORD, "role": "member" })),
        )
        .await;
    assert_eq!(r.status, 201);
    // PII in the URL too.
    srv.call(
        "GET",
        &format!(
            "/t/{}/assets?email=fatima.alharbi@example.sa&phone=+966501234567",
            a.id
        ),
        Some(&a.token),
        None,
    )
    .await;
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("member created"), "{text}");
    assert!(text.contains("[EMAIL]"));
    for needle in [email, "501234567", &a.token, PASSWORD] {
        assert!(!text.contains(needle), "log leaked {needle}");
    }
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every log line is JSON");
    }
}

/// Class: a delivery processed twice because the replay store no longer
/// holds its done marker (a completion that never landed after the change
/// was made, a lease taken over, a store flushed or restarted). Here the
/// embedded instance restarts with a fresh in-memory replay store and the
/// first delivery comes again, signed, inside its tolerance: it changes
/// nothing (before, it rolled the subscription back to its first state)
/// and appends no record. The delivery's key is recorded in the same
/// transaction as the change.
#[tokio::test]
async fn a_delivery_the_replay_store_forgot_is_not_applied_twice() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let first = json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "pro", "status": "active" } });
    let later = json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "pro", "status": "past_due" } });
    let r = srv.send(srv.webhook("msg_1", &first)).await;
    assert_eq!(r.body["status"], "processed", "{r:?}");
    let r = srv.send(srv.webhook("msg_2", &later)).await;
    assert_eq!(r.body["status"], "processed", "{r:?}");
    let n = srv.audit_len(&a.id).await;
    // Restart: the replay store (memory) forgets every marker.
    let crate::common::Server { app, dir, .. } = srv;
    drop(app);
    let srv = server_with(test_config(dir.path()), dir).await;
    let r = srv.send(srv.webhook("msg_1", &first)).await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (StatusCode::OK, json!("duplicate")),
        "{r:?}"
    );
    let r = srv
        .call("GET", &a.path("/subscription"), Some(&a.token), None)
        .await;
    assert_eq!(r.body, json!({ "plan": "pro", "status": "past_due" }));
    assert_eq!(
        srv.audit_len(&a.id).await,
        n,
        "a record for a change not made"
    );
    // A new delivery is still applied.
    let again = json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "enterprise", "status": "active" } });
    let r = srv.send(srv.webhook("msg_3", &again)).await;
    assert_eq!(r.body["status"], "processed", "{r:?}");
}
