//! Audit coverage, proved from the route table: every state-changing route
//! (and every audited read: export, DSAR, escape hatch) appends a record with
//! actor, tenant, action, entity and source IP. A new state-changing route
//! without a case here fails the test.

use axum::body::Body;
use axum::http::Request;
use hisn_example_server::routes::routes;
use serde_json::{Value, json};

use crate::common::{PASSWORD, Seed, Server, Tenant, request, server};

/// The request that exercises `method path` successfully, and the tenant whose
/// chain must grow (`None`: the tenant the response names).
async fn case(
    srv: &Server,
    a: &Tenant,
    seed: &Seed,
    method: &str,
    path: &str,
) -> (Request<Body>, Option<String>) {
    let tok = Some(a.token.as_str());
    let t = Some(a.id.clone());
    match (method, path) {
        ("POST", "/tenants") => (
            request("POST", path, None, Some(&json!({ "name": "Gamma", "owner_email": "o@gamma.example", "owner_password": PASSWORD }))),
            None,
        ),
        ("POST", "/auth/login") => (
            request("POST", path, None, Some(&json!({ "tenant": a.id, "email": a.email, "password": PASSWORD }))),
            t,
        ),
        ("POST", "/auth/token") => (request("POST", path, None, Some(&json!({ "api_key": seed.api_key }))), t),
        ("POST", "/webhooks/payments") => (
            srv.webhook(
                "msg_coverage1",
                &json!({ "type": "subscription.updated", "data": { "tenant_id": a.id, "plan": "pro", "status": "active" } }),
            ),
            t,
        ),
        ("POST", "/t/{tenant}/members") => (
            request("POST", &a.path("/members"), tok, Some(&json!({ "email": "new@a.example", "password": PASSWORD, "role": "viewer" }))),
            t,
        ),
        ("PATCH", "/t/{tenant}/members/{id}/role") => (
            request("PATCH", &a.path(&format!("/members/{}/role", seed.member)), tok, Some(&json!({ "role": "viewer" }))),
            t,
        ),
        ("POST", "/t/{tenant}/api-keys") => (
            request("POST", &a.path("/api-keys"), tok, Some(&json!({ "name": "deploy", "role": "member" }))),
            t,
        ),
        ("DELETE", "/t/{tenant}/api-keys/{id}") => (request("DELETE", &a.path(&format!("/api-keys/{}", seed.api_key_id)), tok, None), t),
        ("POST", "/t/{tenant}/assets") => (
            request("POST", &a.path("/assets"), tok, Some(&json!({ "name": "Valve", "serial": "V-1", "location": "Jeddah" }))),
            t,
        ),
        ("PATCH", "/t/{tenant}/assets/{id}") => (
            request("PATCH", &a.path(&format!("/assets/{}", seed.asset)), tok, Some(&json!({ "location": "Dammam" }))),
            t,
        ),
        ("DELETE", "/t/{tenant}/assets/{id}") => {
            let r = srv.call("POST", &a.path("/assets"), tok, Some(json!({ "name": "Old", "serial": "OLD-1", "location": "x" }))).await;
            let id = r.body["id"].as_str().unwrap().to_owned();
            (request("DELETE", &a.path(&format!("/assets/{id}")), tok, None), t)
        }
        ("POST", "/t/{tenant}/assets/{id}/attachments") => (
            request(
                "POST",
                &a.path(&format!("/assets/{}/attachments", seed.asset)),
                tok,
                Some(&json!({ "file_name": "photo.txt", "content_base64": "AAEC" })),
            ),
            t,
        ),
        ("POST", "/t/{tenant}/work-orders") => (
            request("POST", &a.path("/work-orders"), tok, Some(&json!({ "asset_id": seed.asset, "title": "Inspect" }))),
            t,
        ),
        ("POST", "/t/{tenant}/work-orders/{id}/transition") => (
            request("POST", &a.path(&format!("/work-orders/{}/transition", seed.work_order)), tok, Some(&json!({ "to": "in_progress" }))),
            t,
        ),
        ("POST", "/t/{tenant}/integrations") => (
            request(
                "POST",
                &a.path("/integrations"),
                tok,
                Some(&json!({ "name": "CRM", "base_url": "https://crm.example", "username": "u", "oauth_token": "tok-123456", "password": "pw-123456" })),
            ),
            t,
        ),
        ("POST", "/t/{tenant}/integrations/{id}/sync") => (request("POST", &a.path(&format!("/integrations/{}/sync", seed.integration)), tok, None), t),
        ("POST", "/t/{tenant}/erase") => {
            let c = srv.tenant("Erasable").await;
            let body = json!({ "confirm": c.id });
            (request("POST", &c.path("/erase"), Some(&c.token), Some(&body)), Some(c.id))
        }
        ("POST", "/t/{tenant}/mfa/totp") => (request("POST", &a.path("/mfa/totp"), tok, None), t),
        ("POST", "/t/{tenant}/mfa/totp/confirm") => {
            let c = srv.tenant("Confirm").await;
            let r = srv.call("POST", &c.path("/mfa/totp"), Some(&c.token), None).await;
            let code = crate::common::totp_code(r.body["otpauth_uri"].as_str().unwrap(), 0);
            (request("POST", &c.path("/mfa/totp/confirm"), Some(&c.token), Some(&json!({ "code": code }))), Some(c.id))
        }
        ("POST", "/t/{tenant}/mfa/step-up") => (
            request("POST", &a.path("/mfa/step-up"), tok, Some(&json!({ "recovery_code": a.recovery[0] }))),
            t,
        ),
        ("POST", "/t/{tenant}/me/password") => {
            let c = srv.tenant("Password").await;
            let body = json!({ "current_password": PASSWORD, "new_password": "a brand new long password" });
            (request("POST", &c.path("/me/password"), Some(&c.token), Some(&body)), Some(c.id))
        }
        ("POST", "/operator/tenants/{tenant}/grants") => {
            let body = json!({ "support_user": "support:alice", "reason": "customer cannot see work orders", "ticket": "SUP-1234", "ttl_secs": 3600 });
            (request("POST", &format!("/operator/tenants/{}/grants", a.id), Some(&srv.operator_token()), Some(&body)), t)
        }
        ("DELETE", "/operator/tenants/{tenant}/grants/{id}") => {
            let body = json!({ "support_user": "support:bob", "reason": "customer asked for a check", "ticket": "SUP-99", "ttl_secs": 600 });
            let r = srv.call("POST", &format!("/operator/tenants/{}/grants", a.id), Some(&srv.operator_token()), Some(body)).await;
            let id = r.body["grant_id"].as_str().unwrap().to_owned();
            let mut r = request("DELETE", &format!("/operator/tenants/{}/grants/{id}", a.id), Some(&srv.operator_token()), None);
            r.headers_mut().insert("x-reason", "ticket SUP-99 closed".parse().unwrap());
            (r, t)
        }
        // Audited reads.
        ("GET", "/t/{tenant}/export") => (request("GET", &a.path("/export"), tok, None), t),
        ("GET", "/t/{tenant}/subjects/{id}/report") => (request("GET", &a.path(&format!("/subjects/{}/report", a.owner)), tok, None), t),
        ("GET", "/operator/tenants/{tenant}/summary") => {
            let mut r = request("GET", &format!("/operator/tenants/{}/summary", a.id), Some(&srv.operator_token()), None);
            r.headers_mut().insert("x-reason", "ticket 4711: customer asked for counts".parse().unwrap());
            (r, t)
        }
        _ => panic!("no audit-coverage case for {method} {path}: add one (and audit the route)"),
    }
}

/// Reads that must be audited (exports, DSAR, escape hatch).
const AUDITED_READS: &[(&str, &str)] = &[
    ("GET", "/t/{tenant}/export"),
    ("GET", "/t/{tenant}/subjects/{id}/report"),
    ("GET", "/operator/tenants/{tenant}/summary"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_route_appends_an_audit_record() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let mut covered = 0;
    for route in routes() {
        let method = route.method.as_str();
        let audited = route.is_state_changing() || AUDITED_READS.contains(&(method, route.path));
        if !audited {
            continue;
        }
        let (req, tenant) = case(&srv, &a, &seed, method, route.path).await;
        let before = match tenant.as_deref() {
            Some(t) => srv.audit_len(t).await,
            None => 0,
        };
        let resp = srv.send(req).await;
        assert!(
            resp.status.is_success(),
            "{method} {}: {:?}",
            route.path,
            resp
        );
        let tenant = tenant.unwrap_or_else(|| resp.body["tenant_id"].as_str().unwrap().to_owned());
        let after = srv.audit_len(&tenant).await;
        assert!(
            after > before,
            "{method} {} appended no audit record",
            route.path
        );
        let rec: Value = srv.last_audit(&tenant).await;
        assert_eq!(rec["tenant"], json!(tenant), "{method} {}", route.path);
        for field in ["actor", "action", "entity_type", "entity_id", "request_id"] {
            assert!(
                rec[field].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {}: {field} missing in {rec}",
                route.path
            );
        }
        assert_eq!(
            rec["source_ip"],
            json!("203.0.113.7"),
            "{method} {}",
            route.path
        );
        covered += 1;
    }
    assert!(covered >= 20, "only {covered} audited routes walked");
    // The chain verifies after everything the suite did.
    let (verdict, size) = srv
        .app
        .state
        .audit
        .verify(a.id.parse().unwrap())
        .await
        .unwrap();
    assert!(size > 0);
    assert!(
        matches!(
            verdict,
            hisn_audit_log::Verdict::Intact | hisn_audit_log::Verdict::UnanchoredTail
        ),
        "{verdict:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_transition_records_from_and_to_and_role_change_is_audited() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let r = srv
        .call(
            "POST",
            &a.path(&format!("/work-orders/{}/transition", seed.work_order)),
            Some(&a.token),
            Some(json!({ "to": "in_progress" })),
        )
        .await;
    assert_eq!(r.status, 200);
    let rec = srv.last_audit(&a.id).await;
    assert_eq!(rec["action"], "work_order.transition");
    assert_eq!(
        (rec["from_state"].clone(), rec["to_state"].clone()),
        (json!("open"), json!("in_progress"))
    );
    assert_eq!(rec["actor"], json!(a.owner));
    let r = srv
        .call(
            "PATCH",
            &a.path(&format!("/members/{}/role", seed.member)),
            Some(&a.token),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(r.status, 200);
    let rec = srv.last_audit(&a.id).await;
    assert_eq!(rec["action"], "rbac.role_change");
    assert_eq!(
        (rec["from_state"].clone(), rec["to_state"].clone()),
        (json!("member"), json!("admin"))
    );
    // A refused transition changes nothing and appends nothing.
    let n = srv.audit_len(&a.id).await;
    let r = srv
        .call(
            "POST",
            &a.path(&format!("/work-orders/{}/transition", seed.work_order)),
            Some(&a.token),
            Some(json!({ "to": "open" })),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(srv.audit_len(&a.id).await, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_dsar_report_are_for_admins_and_name_the_subject() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let seed = srv.seed(&a).await;
    let r = srv
        .call("GET", &a.path("/audit?limit=100"), Some(&a.token), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["total"].as_u64().unwrap() >= 7);
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "asset.create")
    );
    // The member's DSAR report: their creation and role records, nothing about others.
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/subjects/{}/report", seed.member)),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let entries = r.body["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e.to_string().contains(&seed.member)));
    assert_eq!(r.body["intact"], json!(true));
    // A viewer may not read the audit trail.
    srv.call(
        "PATCH",
        &a.path(&format!("/members/{}/role", seed.member)),
        Some(&a.token),
        Some(json!({ "role": "viewer" })),
    )
    .await;
    let viewer = srv
        .login(&a.id, &format!("tech@{}.example", &a.id[..8]), PASSWORD)
        .await;
    let r = srv
        .call("GET", &a.path("/audit"), Some(&viewer), None)
        .await;
    assert_eq!(r.status, 403);
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/subjects/{}/report", a.owner)),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(r.status, 403);
}
