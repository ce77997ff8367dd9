//! Break-glass support grants through the router: issued by the operator
//! console, read-only by default, one tenant, expiry and revocation
//! enforced, every use audited and notified to the tenant's admins, and no
//! road from a grant to the customer's own session.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hisn_tenant_guard::ManualClock;
use hisn_tenant_guard::grant::GrantRequest;
use serde_json::{Value, json};

use crate::common::{PASSWORD, Server, request, server};

async fn records(srv: &Server, tenant: &str) -> Vec<Value> {
    srv.app
        .state
        .audit
        .records(tenant.parse().unwrap(), 0, 10_000)
        .await
        .unwrap()
}

fn grant_body(extra: Value) -> Value {
    let mut b = json!({ "support_user": "support:alice", "reason": "customer cannot see work orders", "ticket": "SUP-1234", "ttl_secs": 3600 });
    b.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_grant_reads_one_tenant_and_every_use_is_audited_and_notified() {
    a_read_only_grant_reads_one_tenant_and_every_use_is_audited_and_notified_on(Arc::new(
        server().await,
    ))
    .await;
}

pub(crate) async fn a_read_only_grant_reads_one_tenant_and_every_use_is_audited_and_notified_on(
    srv: Arc<Server>,
) {
    let a = srv.tenant("Alpha").await;
    let sa = srv.seed(&a).await;
    let grant = srv.grant(&a, None).await;
    let issued = records(&srv, &a.id).await;
    let issue = issued.last().unwrap();
    assert_eq!(issue["action"], "grant.issue");
    assert_eq!(issue["actor"], "operator");
    assert!(issue.to_string().contains("SUP-1234"));
    for path in [
        "/assets".to_owned(),
        format!("/assets/{}", sa.asset),
        "/work-orders".to_owned(),
        format!("/integrations/{}", sa.integration),
    ] {
        let before = srv.audit_len(&a.id).await;
        let r = srv.call("GET", &a.path(&path), Some(&grant), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        // Rate-limited like a session (its own session key, the tenant's tier).
        let policy = r.headers["ratelimit-policy"].to_str().unwrap();
        assert!(policy.contains("\"session\""), "{policy}");
        // Recorded before the data was read: one grant.use per request.
        let rec = srv.last_audit(&a.id).await;
        assert_eq!(srv.audit_len(&a.id).await, before + 1);
        assert_eq!(rec["action"], "grant.use");
        assert_eq!(rec["actor"], "support:alice");
        assert_eq!(rec["source_ip"], "203.0.113.7");
        assert!(
            rec.to_string().contains(&format!("GET /t/{}{path}", a.id)),
            "{rec}"
        );
    }
    let r = srv
        .call("GET", &a.path("/assets"), Some(&grant), None)
        .await;
    assert_eq!(r.body["items"][0]["id"], json!(sa.asset));
    // The tenant's admins were told, once per use.
    let r = srv
        .call("GET", &a.path("/notifications"), Some(&a.token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["kind"], "support_grant.used");
    assert_eq!(items[0]["body"]["support_user"], "support:alice");
    assert_eq!(items[0]["body"]["ticket"], "SUP-1234");
    assert!(
        hisn_example_server::metrics::global()
            .render()
            .contains("hisn_grant_uses_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_unless_the_grant_lists_the_permission() {
    writes_are_refused_unless_the_grant_lists_the_permission_on(Arc::new(server().await)).await;
}

pub(crate) async fn writes_are_refused_unless_the_grant_lists_the_permission_on(srv: Arc<Server>) {
    let a = srv.tenant("Alpha").await;
    let sa = srv.seed(&a).await;
    let read_only = srv.grant(&a, None).await;
    let asset = json!({ "name": "n", "serial": "G-1", "location": "l" });
    let r = srv
        .call(
            "POST",
            &a.path("/assets"),
            Some(&read_only),
            Some(asset.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    for (method, path, body) in [
        (
            "PATCH",
            format!("/assets/{}", sa.asset),
            Some(json!({ "location": "x" })),
        ),
        ("DELETE", format!("/assets/{}", sa.asset), None),
        (
            "POST",
            format!("/work-orders/{}/transition", sa.work_order),
            Some(json!({ "to": "cancelled" })),
        ),
        ("GET", "/members".to_owned(), None),
        ("GET", "/audit".to_owned(), None),
        (
            "POST",
            "/erase".to_owned(),
            Some(json!({ "confirm": a.id })),
        ),
    ] {
        let r = srv
            .call(method, &a.path(&path), Some(&read_only), body)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {r:?}");
    }
    let r = srv
        .call("GET", &a.path("/assets"), Some(&a.token), None)
        .await;
    assert_eq!(r.body["total"], 1, "nothing was written");
    // A grant that lists `write` may write, as the support user.
    let writer = srv.grant(&a, Some(&["read", "write"])).await;
    let r = srv
        .call("POST", &a.path("/assets"), Some(&writer), Some(asset))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let rec = srv.last_audit(&a.id).await;
    assert_eq!(
        (rec["action"].clone(), rec["actor"].clone()),
        (json!("asset.create"), json!("support:alice"))
    );
    // Still no admin permission: it is not listed.
    let r = srv
        .call("GET", &a.path("/members"), Some(&writer), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_opens_no_other_tenant() {
    a_grant_opens_no_other_tenant_on(Arc::new(server().await)).await;
}

pub(crate) async fn a_grant_opens_no_other_tenant_on(srv: Arc<Server>) {
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let sb = srv.seed(&b).await;
    let grant = srv.grant(&a, None).await;
    let b_len = srv.audit_len(&b.id).await;
    for path in ["/assets".to_owned(), format!("/assets/{}", sb.asset)] {
        let r = srv.call("GET", &b.path(&path), Some(&grant), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {r:?}");
        assert!(
            !r.raw
                .windows(sb.asset.len())
                .any(|w| w == sb.asset.as_bytes())
        );
    }
    // B's id under A's path: like any missing row.
    let r = srv
        .call(
            "GET",
            &a.path(&format!("/assets/{}", sb.asset)),
            Some(&grant),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        srv.audit_len(&b.id).await,
        b_len,
        "nothing recorded in B's chain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_grants_are_refused() {
    expired_and_revoked_grants_are_refused_on(Arc::new(server().await)).await;
}

pub(crate) async fn expired_and_revoked_grants_are_refused_on(srv: Arc<Server>) {
    let a = srv.tenant("Alpha").await;
    // Longer than 24 hours is refused at issue.
    let r = srv
        .call(
            "POST",
            &format!("/operator/tenants/{}/grants", a.id),
            Some(&srv.operator_token()),
            Some(grant_body(json!({ "ttl_secs": 86_401 }))),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Expired: signed with the console's key two hours ago for one hour, and
    // recorded (so only its expiry refuses it).
    let now = hisn_example_server::state::now_unix();
    let signer = hisn_example_server::mfa::grant_signer(srv.dir.path())
        .unwrap()
        .clock(Arc::new(ManualClock::new(now - 7200)));
    let (g, old) = signer
        .sign(&GrantRequest::read_only(
            "support:alice",
            a.id.parse().unwrap(),
            "customer cannot see work orders",
            "SUP-1",
            Duration::from_secs(3600),
        ))
        .unwrap();
    let row = hisn_example_server::db::mfa::GrantRow {
        id: g.id().to_string(),
        support_user: "support:alice".into(),
        access: "read_only".into(),
        reason: "r".into(),
        ticket: "SUP-1".into(),
        issued_at: i64::try_from(g.issued_at()).unwrap(),
        expires_at: i64::try_from(g.expires_at()).unwrap(),
        revoked_at: None,
    };
    hisn_example_server::db::mfa::insert_grant(
        &srv.app.state.platform,
        a.id.parse().unwrap(),
        &row,
    )
    .await
    .unwrap();
    let r = srv.call("GET", &a.path("/assets"), Some(&old), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A grant signed by a key the service does not hold: refused.
    let stranger = hisn_tenant_guard::grant::GrantSigner::new(
        hisn_example_server::mfa::GRANT_ISSUER,
        hisn_example_server::mfa::GRANT_AUDIENCE,
        hisn_tenant_guard::jsonwebtoken::Algorithm::HS256,
        hisn_example_server::mfa::GRANT_KID,
        hisn_tenant_guard::jsonwebtoken::EncodingKey::from_secret(
            b"some other secret of enough length",
        ),
    )
    .unwrap();
    let (_, forged) = stranger
        .sign(&GrantRequest::read_only(
            "support:eve",
            a.id.parse().unwrap(),
            "no authorization at all",
            "NONE",
            Duration::from_secs(600),
        ))
        .unwrap();
    let r = srv
        .call("GET", &a.path("/assets"), Some(&forged), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Revoked: works, then refused after the console revokes it.
    let r = srv
        .call(
            "POST",
            &format!("/operator/tenants/{}/grants", a.id),
            Some(&srv.operator_token()),
            Some(grant_body(json!({}))),
        )
        .await;
    let (id, token) = (
        r.body["grant_id"].as_str().unwrap().to_owned(),
        r.body["token"].as_str().unwrap().to_owned(),
    );
    let r = srv
        .call("GET", &a.path("/assets"), Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let path = format!("/operator/tenants/{}/grants/{id}", a.id);
    let r = srv.call("DELETE", &path, Some(&a.token), None).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "only the operator revokes"
    );
    let revoke = |token: String| {
        let mut req = request("DELETE", &path, Some(&token), None);
        req.headers_mut()
            .insert("x-reason", "ticket SUP-1234 closed".parse().unwrap());
        req
    };
    let r = srv
        .call("DELETE", &path, Some(&srv.operator_token()), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a revocation needs a reason"
    );
    let r = srv.send(revoke(srv.operator_token())).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = srv
        .call("GET", &a.path("/assets"), Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = srv.send(revoke(srv.operator_token())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "already revoked");
    let actions: Vec<Value> = records(&srv, &a.id)
        .await
        .iter()
        .map(|r| r["action"].clone())
        .collect();
    for action in ["grant.issue", "grant.use", "grant.revoke"] {
        assert!(actions.contains(&json!(action)), "{action}: {actions:?}");
    }
    assert_eq!(
        actions.iter().filter(|x| **x == json!("grant.use")).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_grant_becomes_the_customer_s_session() {
    no_grant_becomes_the_customer_s_session_on(Arc::new(server().await)).await;
}

pub(crate) async fn no_grant_becomes_the_customer_s_session_on(srv: Arc<Server>) {
    let a = srv.tenant("Alpha").await;
    let op = srv.operator_token();
    // A grant never lists the password change; issuing needs the operator token.
    let r = srv
        .call(
            "POST",
            &format!("/operator/tenants/{}/grants", a.id),
            Some(&op),
            Some(grant_body(
                json!({ "permissions": ["read", "change_password"] }),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = srv
        .call(
            "POST",
            &format!("/operator/tenants/{}/grants", a.id),
            Some(&a.token),
            Some(grant_body(json!({}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let grant = srv
        .grant(
            &a,
            Some(&["read", "write", "manage_members", "admin_step_up"]),
        )
        .await;
    // The password, the second factor and sensitive admin actions stay the customer's.
    let change = json!({ "current_password": PASSWORD, "new_password": "taken over by support" });
    for (path, body) in [
        ("/me/password", Some(change)),
        ("/mfa/totp", None),
        ("/mfa/step-up", Some(json!({ "code": "123456" }))),
        (
            "/members",
            Some(json!({ "email": "x@alpha.example", "password": PASSWORD, "role": "owner" })),
        ),
    ] {
        let r = srv.call("POST", &a.path(path), Some(&grant), body).await;
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::UNAUTHORIZED,
            "{path}: {r:?}"
        );
    }
    srv.login(&a.id, &a.email, PASSWORD).await;
    // A grant is not a login token for anything else either.
    let r = srv
        .call(
            "GET",
            &format!("/operator/tenants/{}/summary", a.id),
            Some(&grant),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The admins are promised a notification: when it cannot be recorded the
/// use is refused (503) and nothing is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_use_that_cannot_be_notified_is_refused() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let sa = srv.seed(&a).await;
    let grant = srv.grant(&a, None).await;
    srv.app
        .state
        .platform
        .execute(hisn_example_server::db::Stmt::new(
            "ALTER TABLE admin_notifications RENAME TO admin_notifications_gone",
        ))
        .await
        .unwrap();
    let r = srv
        .call("GET", &a.path("/assets"), Some(&grant), None)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert!(!String::from_utf8_lossy(&r.raw).contains(&sa.asset));
}
