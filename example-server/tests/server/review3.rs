//! The third outside review of the reference server: each test is a break
//! found by attacking the running router, named after its class, with the
//! root cause above it. They failed before their fix.

use axum::http::StatusCode;
use hisn_example_server::config::Rate;
use serde_json::{Value, json};

use crate::common::{PASSWORD, Server, request, server, server_with, test_config, totp_code};

/// The same request with an `Idempotency-Key`.
async fn keyed(
    srv: &Server,
    method: &str,
    path: &str,
    token: &str,
    key: &str,
    body: Option<Value>,
) -> crate::common::Resp {
    let mut req = request(method, path, Some(token), body.as_ref());
    req.headers_mut()
        .insert("idempotency-key", key.parse().unwrap());
    srv.send(req).await
}

/// A keyed `POST` sent twice with the same key, as a client's retry would.
async fn posted_twice(
    srv: &Server,
    path: &str,
    token: &str,
    key: &str,
    body: Option<Value>,
) -> (crate::common::Resp, crate::common::Resp) {
    let first = keyed(srv, "POST", path, token, key, body.clone()).await;
    let again = keyed(srv, "POST", path, token, key, body).await;
    (first, again)
}

/// **Held: the login budget is per account, however the tenant is spelt.**
/// `TenantId` parses any case, and the login handler keyed the per-account
/// budget on the `tenant` string as sent, so each case spelling of a tenant
/// id looked like an account of its own. It held because rate-limit's
/// `KeyValue::account` case-folds the name; the handler now keys on the
/// canonical tenant id itself (the same key), so the property no longer
/// rests on the limiter's folding. A regression test, not a break.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_budget_is_per_account_whatever_the_tenant_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.login_account_rate = Rate::new(3, 300).unwrap();
    let srv = server_with(cfg, dir).await;
    let a = srv.tenant_without_totp("Alpha").await;
    let login = |tenant: String, password: &str| json!({ "tenant": tenant, "email": a.email, "password": password });
    for _ in 0..3 {
        let r = srv
            .call(
                "POST",
                "/auth/login",
                None,
                Some(login(a.id.clone(), "wrong password!")),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    }
    let r = srv
        .call(
            "POST",
            "/auth/login",
            None,
            Some(login(a.id.clone(), PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // Another spelling of the same tenant is the same account: no fresh
    // budget, the password is not even checked.
    for spelling in [
        a.id.to_uppercase(),
        format!("{}{}", &a.id[..1].to_uppercase(), &a.id[1..]),
    ] {
        if spelling == a.id {
            continue;
        }
        let r = srv
            .call(
                "POST",
                "/auth/login",
                None,
                Some(login(spelling.clone(), PASSWORD)),
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{spelling}: {r:?}");
        assert!(r.body.get("token").is_none());
    }
}

/// **Secrets replayed from the Idempotency-Key store.** Every tenant write
/// route sat behind the Idempotency-Key layer, which stores the whole
/// response body for 24 h (in Redis in multi-instance mode) and answers it
/// again to a retry. The routes that answer a secret once — the TOTP seed
/// (`POST /mfa/totp`), recovery codes and a session (`/mfa/totp/confirm`),
/// a stepped-up session (`/mfa/step-up`), a new session
/// (`/me/password`), a new API key (`POST /api-keys`) — thereby kept it in
/// plaintext outside the encrypted or hashed stores the README promises
/// ("answered once and stored only encrypted", "only its peppered hash is
/// stored"), and a retry with the same key got the same secret, and the same
/// stepped-up session for a TOTP code already spent. Fix: those routes are
/// not behind the layer; a retry runs again (a new enrolment, a new key, or
/// the code refused as a replay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_neither_stored_nor_replayed_by_idempotency_keys() {
    let srv = server().await;
    let a = srv.tenant_without_totp("Alpha").await;
    let (first, again) = posted_twice(&srv, &a.path("/mfa/totp"), &a.token, "enrol-1", None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    assert_ne!(
        first.body["secret"], again.body["secret"],
        "the TOTP seed was answered twice"
    );
    let uri = again.body["otpauth_uri"].as_str().unwrap().to_owned();
    let code = json!({ "code": totp_code(&uri, 0) });
    let (confirmed, replayed) = posted_twice(
        &srv,
        &a.path("/mfa/totp/confirm"),
        &a.token,
        "confirm-1",
        Some(code),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{confirmed:?}");
    assert_ne!(
        replayed.status,
        StatusCode::CREATED,
        "recovery codes answered twice: {replayed:?}"
    );
    assert!(replayed.body.get("recovery_codes").is_none());
    let fresh = confirmed.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A step-up code is accepted once, with or without a key.
    let step = json!({ "code": totp_code(&uri, 30) });
    let (r, again) = posted_twice(
        &srv,
        &a.path("/mfa/step-up"),
        &a.token,
        "step-1",
        Some(step),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        again.status,
        StatusCode::FORBIDDEN,
        "a spent code answered a session: {again:?}"
    );
    assert!(again.body.get("token").is_none());

    // An API key is shown once.
    let body = json!({ "name": "ci", "role": "viewer" });
    let (k1, k2) = posted_twice(&srv, &a.path("/api-keys"), &fresh, "key-1", Some(body)).await;
    assert_eq!(k1.status, StatusCode::CREATED, "{k1:?}");
    assert_ne!(
        k1.body["api_key"], k2.body["api_key"],
        "an API key was answered twice"
    );

    // Ordinary writes still replay their first answer.
    let asset = json!({ "name": "Pump", "serial": "S-1", "location": "Riyadh" });
    let (w1, w2) = posted_twice(&srv, &a.path("/assets"), &fresh, "asset-1", Some(asset)).await;
    assert_eq!(w1.status, StatusCode::CREATED);
    assert_eq!(w1.body, w2.body);
}

/// **Audit records under an attacker-spelled id.** Path ids were parsed with
/// `Uuid::try_parse`, which also takes the simple, braced and `urn:uuid:`
/// forms and any case, but the audit records of role changes, asset updates
/// and deletes and work-order transitions named the id as the client spelt
/// it. A role change sent to `/members/{<id>}/role` was recorded with the
/// subject `{<id>}`, so the member's DSAR report (and any search by the
/// canonical id) missed it. Fix: ids are accepted only in the hyphenated form
/// (any case, like tenant ids; other forms are `404`) and every record names
/// the canonical lowercase id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_name_the_canonical_id_whatever_the_path_spelling() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let tok = Some(a.token.as_str());
    let braced = format!("{{{}}}", seed.member);
    let urn = format!("urn:uuid:{}", seed.asset);
    let simple = seed.asset.replace('-', "");
    for path in [
        a.path(&format!("/members/{braced}/role")),
        a.path(&format!("/assets/{urn}")),
        a.path(&format!("/assets/{simple}")),
    ] {
        let before = srv.audit_len(&a.id).await;
        let method = if path.contains("/role") {
            "PATCH"
        } else {
            "DELETE"
        };
        let body = path.contains("/role").then(|| json!({ "role": "viewer" }));
        let r = srv.call(method, &path, tok, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {r:?}");
        assert_eq!(
            srv.audit_len(&a.id).await,
            before,
            "{path} appended a record"
        );
    }
    // Upper case is the same id, recorded canonically.
    let upper = seed.member.to_uppercase();
    let r = srv
        .call(
            "PATCH",
            &a.path(&format!("/members/{upper}/role")),
            tok,
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let rec = srv.last_audit(&a.id).await;
    assert!(!rec.to_string().contains(&upper), "{rec}");
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/subjects/{}/report", seed.member)),
            tok,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let entries = r.body["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e.to_string().contains("viewer")),
        "the role change is missing from the member's report: {entries:?}"
    );
    let upper = seed.asset.to_uppercase();
    let r = srv
        .call(
            "PATCH",
            &a.path(&format!("/assets/{upper}")),
            tok,
            Some(json!({ "name": "Valve" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(srv.last_audit(&a.id).await["entity_id"], json!(seed.asset));
    let upper = seed.work_order.to_uppercase();
    let r = srv
        .call(
            "POST",
            &a.path(&format!("/work-orders/{upper}/transition")),
            tok,
            Some(json!({ "to": "in_progress" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        srv.last_audit(&a.id).await["entity_id"],
        json!(seed.work_order)
    );
}

/// **Writes into an erased tenant.** `POST /t/{tenant}/erase` shreds the
/// keys, deletes the rows and closes the tenant to logins, but session
/// tokens are stateless: one issued before the erase (a member's, a
/// stolen one, for up to `HISN_TOKEN_TTL_SECS`) went on creating assets and
/// work orders in the erased tenant, rows that nothing would erase again.
/// Fix: a state-changing tenant request first checks that its tenant is
/// still active (one indexed read; reads find nothing anyway) and answers
/// an erased tenant like a missing one (`404`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_before_the_erase_writes_nothing_into_the_erased_tenant() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let member = srv
        .login(&a.id, &format!("tech@{}.example", &a.id[..8]), PASSWORD)
        .await;
    // The member changes the admin-chosen password first.
    let r = srv
        .call(
            "POST",
            &a.path("/me/password"),
            Some(&member),
            Some(
                json!({ "current_password": PASSWORD, "new_password": "another long passphrase" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let member = r.body["token"].as_str().unwrap().to_owned();
    let r = srv
        .call(
            "POST",
            &a.path("/erase"),
            Some(&a.token),
            Some(json!({ "confirm": a.id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    for tok in [&member, &a.token] {
        let r = srv
            .call(
                "POST",
                &a.path("/assets"),
                Some(tok),
                Some(json!({ "name": "Pump", "serial": "S-9", "location": "Jeddah" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = srv
            .call(
                "POST",
                &a.path("/work-orders"),
                Some(tok),
                Some(json!({ "asset_id": seed.asset, "title": "x" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    }
    let r = srv
        .call("GET", &a.path("/assets"), Some(&a.token), None)
        .await;
    assert_eq!(r.body["total"], 0, "{r:?}");
}

/// **One tenant opens every tenant's circuit.** The partner API's circuit
/// breaker was one for the whole server, and what makes a call fail — the
/// integration's `base_url` and credentials — is chosen by the tenant. Any
/// sign-up could create an integration pointing at a dead host, sync it
/// five times, and hold the breaker open: every other tenant's syncs then
/// answered `503 circuit_open` without a call, for as long as the attacker
/// repeated it every 30 s. Fix: a breaker per tenant (a bulkhead; bounded
/// map), so a tenant's failures open only its own circuit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_s_failing_partner_calls_open_no_other_tenant_s_circuit() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let seed_b = srv.seed(&b).await;
    let r = srv
        .call(
            "POST",
            &a.path("/integrations"),
            Some(&a.token),
            Some(json!({ "name": "Down", "base_url": "https://down.attacker.example", "username": "u", "oauth_token": "tok-1", "password": "pw" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let down = r.body["id"].as_str().unwrap().to_owned();
    for _ in 0..6 {
        let r = srv
            .call(
                "POST",
                &a.path(&format!("/integrations/{down}/sync")),
                Some(&a.token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let r = srv
        .call(
            "POST",
            &b.path(&format!("/integrations/{}/sync", seed_b.integration)),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "tenant A opened tenant B's circuit: {r:?}"
    );
}

/// **Anonymous sign-ups exhaust the password hasher.** `POST /tenants` runs
/// argon2id (19 MiB, tens of milliseconds) and provisions a tenant key and an
/// audit chain for any anonymous caller, limited only by the general per-IP
/// tier (600 a minute), while login, the other anonymous route that hashes,
/// is held to the login budget per IP before any hashing. Fix: a sign-up
/// first passes the login budget per IP (and a per-IP sign-up account key),
/// `429` + `Retry-After` before anything is hashed or created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sign_ups_pass_the_login_budget_before_any_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.login_ip_rate = Rate::new(3, 300).unwrap();
    let srv = server_with(cfg, dir).await;
    let mut created = 0;
    let mut refused = 0;
    for i in 0..5 {
        let r = srv
            .call(
                "POST",
                "/tenants",
                None,
                Some(json!({ "name": format!("T{i}"), "owner_email": format!("o{i}@t.example"), "owner_password": PASSWORD })),
            )
            .await;
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers.contains_key("retry-after"), "{r:?}");
                refused += 1;
            }
            other => panic!("{other}: {r:?}"),
        }
    }
    assert_eq!((created, refused), (3, 2));
    // Another address is not held by this one's sign-ups.
    let r = srv
        .send_from(
            request(
                "POST",
                "/tenants",
                None,
                Some(&json!({ "name": "Other", "owner_email": "o@other.example", "owner_password": PASSWORD })),
            ),
            [198, 51, 100, 9],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[derive(Clone, Default)]
struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// **Percent-encoded PII in the access log.** The access log line carried
/// the request path as sent. The redactor sees text, not URLs: an e-mail
/// spelt `fatima.alharbi%40example.sa` (how clients encode a DSAR subject
/// or any id in a path) is no e-mail to it and was written as is. Fix: the
/// access log names the route's template (`/t/{tenant}/subjects/{id}/report`),
/// never the client's path; an unrouted path is logged as `-`.
#[tokio::test]
async fn the_access_log_carries_route_templates_not_client_paths() {
    let buf = Buf::default();
    let sink = buf.clone();
    let sub = hisn_example_server::logging::subscriber("info", move || sink.clone());
    let _guard = hisn_test_support::set_default(sub);
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    for path in [
        a.path("/subjects/fatima.alharbi%40example.sa/report"),
        a.path("/assets/fatima%2Ealharbi%40example%2Esa"),
        "/no/such/route/fatima.alharbi%40example.sa".to_owned(),
    ] {
        let r = srv.call("GET", &path, Some(&a.token), None).await;
        assert!(
            r.status.is_success() || r.status == StatusCode::NOT_FOUND,
            "{path}: {r:?}"
        );
    }
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for needle in ["fatima", "alharbi"] {
        assert!(!text.contains(needle), "log leaked {needle}: {text}");
    }
    assert!(text.contains("/t/{tenant}/subjects/{id}/report"), "{text}");
}

/// **A webhook delivery lost to a concurrent duplicate.** When a delivery
/// arrived while the same event was still being processed (another
/// instance's claim, or the provider's own quick retry), the server answered
/// `200 duplicate`. The provider then stops retrying; if the first attempt
/// fails and releases its claim, the event is never applied (a payment
/// status lost). webhook-verify's replay store documents the answer for
/// `Claim::InProgress`: 409/429/5xx, so the sender retries. Fix: `409` with
/// `Retry-After`; only `Claim::Done` is the `200` no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_meets_an_in_flight_claim_is_retried_not_acknowledged() {
    use hisn_webhook_verify::replay::{Claim, ReplayKey, ReplayPolicy, ReplayStore};
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let event = json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "enterprise", "status": "active" } });
    // Another worker holds the event's claim.
    let state = &srv.app.state;
    let key = ReplayKey::new("payments", state.webhook.scheme().name(), "msg_inflight").unwrap();
    let Claim::New(token) = state
        .replay
        .claim(&key, &ReplayPolicy::DEFAULT)
        .await
        .unwrap()
    else {
        panic!("the first claim is new");
    };
    let r = srv.send(srv.webhook("msg_inflight", &event)).await;
    assert!(
        !r.status.is_success(),
        "an in-flight event was acknowledged: {r:?}"
    );
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert!(r.headers.contains_key("retry-after"), "{r:?}");
    // The other worker fails and gives the claim up: the provider's retry applies it.
    state.replay.release(&key, &token).await.unwrap();
    let r = srv.send(srv.webhook("msg_inflight", &event)).await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (StatusCode::OK, json!("processed")),
        "{r:?}"
    );
    let r = srv
        .call("GET", &a.path("/subscription"), Some(&a.token), None)
        .await;
    assert_eq!(r.body, json!({ "plan": "enterprise", "status": "active" }));
}
