//! Outside review 4: a panicking handler, the password-hashing bound, and
//! the operator-only metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use hisn_example_server::config::Rate;
use serde_json::json;
use tower::ServiceExt;

use crate::common::{Buf, PASSWORD, Resp, Server, server, server_with, test_config};

async fn send(router: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder().uri(path).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 9], 41000))));
    let resp = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// A handler that panics with request data in its message.
async fn boom() -> &'static str {
    let email = String::from("fatima.alharbi@example.sa");
    panic!("no account for {email} (password hunter2-horse)")
}

/// A route that panics with request data in its message, behind the
/// server's own layers (`app::layered`, which `build` uses too).
#[tokio::test]
async fn a_panicking_handler_answers_the_generic_500_and_the_server_keeps_serving() {
    let buf = Buf::default();
    let sink = buf.clone();
    let sub = hisn_example_server::logging::subscriber("info", move || sink.clone());
    let _guard = hisn_test_support::set_default(sub);
    let srv = server().await;
    let routes = axum::Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let router = hisn_example_server::app::layered(&srv.app.state, routes);
    let panics = hisn_example_server::metrics::global().panics();

    let (status, headers, body) = send(&router, "/boom").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({ "error": "internal" }),
        "the usual error body, no detail"
    );
    for needle in ["fatima", "hunter2", "panic", "boom"] {
        assert!(!body.contains(needle), "body leaks {needle}: {body}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(hisn_example_server::metrics::global().panics() > panics);

    // The same router (and the real one) go on serving.
    let (status, _, body) = send(&router, "/fine").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "fine"));
    let health = srv.call("GET", "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "{health:?}");

    // One error line through the redacting writer, with the request id and
    // the route template, never the panic message.
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["target"] == "hisn::example_server::panic")
        .unwrap_or_else(|| panic!("no panic line in {text}"));
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["request_id"], json!(request_id));
    assert_eq!(line["route"], "/boom");
    for needle in ["fatima", "hunter2", "example.sa"] {
        assert!(!text.contains(needle), "log leaks {needle}: {text}");
    }
}

async fn login(srv: &Server, tenant: &str, email: &str, password: &str) -> Resp {
    srv.call(
        "POST",
        "/auth/login",
        None,
        Some(json!({ "tenant": tenant, "email": email, "password": password })),
    )
    .await
}

/// With the one hashing slot held, logins are refused with `503` and
/// `Retry-After` before any account lookup: the same answer for a known
/// account, an unknown e-mail and the right password; nothing is audited
/// (no `auth.login_failed` for one and not the other), and each refused
/// attempt still counts against the account's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_gate_answers_503_alike_and_budgets_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path());
    c.password_hash_concurrency = 1;
    c.password_hash_wait_ms = 50;
    c.login_account_rate = Rate::new(3, 300).unwrap();
    let srv = server_with(c, dir).await;
    let a = srv.tenant_without_totp("Alpha").await;
    let gate = &srv.app.state.hash_gate;
    assert_eq!(gate.limit(), 1);
    let held = gate.hold().await.unwrap();
    let busy = hisn_example_server::metrics::global().hash_busy_count();
    let before = srv.audit_len(&a.id).await;

    let wrong = login(&srv, &a.id, &a.email, "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::SERVICE_UNAVAILABLE, "{wrong:?}");
    assert_eq!(wrong.headers["retry-after"], "1");
    assert_eq!(wrong.body, json!({ "error": "unavailable" }));
    let unknown = login(&srv, &a.id, "nobody@unknown.example", "not the password").await;
    let ghost = login(
        &srv,
        &uuid::Uuid::new_v4().to_string(),
        &a.email,
        "not the password",
    )
    .await;
    for other in [&unknown, &ghost] {
        assert_eq!(
            (other.status, &other.body, &other.headers["retry-after"]),
            (wrong.status, &wrong.body, &wrong.headers["retry-after"]),
            "a different answer: an oracle"
        );
    }
    assert_eq!(srv.audit_len(&a.id).await, before, "one path audited");
    assert!(hisn_example_server::metrics::global().hash_busy_count() >= busy + 3);

    // The refused attempts counted: the account's budget (3 per 300 s) runs
    // out while the gate is still full, and the answer becomes 429.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(login(&srv, &a.id, &a.email, PASSWORD).await.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let first_429 = statuses.iter().position(|s| *s == 429).unwrap();
    assert!(
        statuses[..first_429].iter().all(|s| *s == 503),
        "{statuses:?}"
    );

    // Sign-up (anonymous, hashes) is refused the same way.
    let r = srv
        .call(
            "POST",
            "/tenants",
            None,
            Some(json!({ "name": "Beta", "owner_email": "o@beta.example", "owner_password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert_eq!(r.headers["retry-after"], "1");

    drop(held);
    let ok = srv
        .call(
            "POST",
            "/tenants",
            None,
            Some(json!({ "name": "Beta", "owner_email": "o@beta.example", "owner_password": PASSWORD })),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{ok:?}");
}

/// A burst of concurrent logins never runs more argon2id hashes at once
/// than the cap (the gate's own counter, incremented inside the blocking
/// task while the hash runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_never_runs_more_hashes_than_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path());
    c.password_hash_concurrency = 1;
    c.password_hash_wait_ms = 60_000;
    let srv = Arc::new(server_with(c, dir).await);
    let a = srv.tenant_without_totp("Alpha").await;
    let burst: Vec<_> = (0..6)
        .map(|i| {
            let (srv, tenant) = (Arc::clone(&srv), a.id.clone());
            tokio::spawn(async move {
                login(
                    &srv,
                    &tenant,
                    &format!("user{i}@alpha.example"),
                    "wrong password",
                )
                .await
                .status
            })
        })
        .collect();
    for j in burst {
        assert_eq!(j.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        srv.app.state.hash_gate.peak(),
        1,
        "more than one hash at once"
    );
}

/// `GET /metrics` is the operator's: anonymous and tenant credentials get
/// the bare 401; `/health` stays public; the OpenAPI document says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_operator_token() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let grant = srv.grant(&a, None).await;
    for (who, token) in [
        ("anonymous", None),
        ("tenant owner", Some(a.token.as_str())),
        ("support grant", Some(grant.as_str())),
        ("garbage", Some("hisn_live_not_a_token")),
    ] {
        let r = srv.call("GET", "/metrics", token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{who}: {r:?}");
        assert_eq!(r.body, json!({ "error": "unauthorized" }), "{who}");
        let raw = String::from_utf8(r.raw).unwrap();
        assert!(!raw.contains("hisn_"), "{who} read metrics: {raw}");
    }
    let r = srv
        .call("GET", "/metrics", Some(&srv.operator_token()), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.raw).unwrap();
    assert!(text.contains("hisn_denials_total"), "{text}");
    assert!(text.contains("hisn_password_hash_busy_total"), "{text}");
    assert!(text.contains("hisn_handler_panics_total"), "{text}");
    assert_eq!(srv.call("GET", "/health", None, None).await.status, 200);

    let doc = srv.call("GET", "/openapi.json", None, None).await.body;
    let op = &doc["paths"]["/metrics"]["get"];
    assert_eq!(op["security"], json!([{ "operator": [] }]), "{op}");
    assert!(op["responses"]["401"].is_object(), "{op}");
    assert_eq!(
        op["parameters"],
        json!([]),
        "no x-reason for a scrape: {op}"
    );
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
}
