//! A wrong password for an existing account and an unknown e-mail do the
//! same observable work before the same `401`: each appends one
//! `auth.login_failed` record to the tenant's chain (an fsynced append in one
//! path only was a timing oracle for e-mail enumeration). The attempted
//! e-mail is never recorded, and an unknown tenant gets no chain.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{Resp, Server, server};

async fn login(srv: &Server, tenant: &str, email: &str, password: &str) -> Resp {
    srv.call(
        "POST",
        "/auth/login",
        None,
        Some(json!({ "tenant": tenant, "email": email, "password": password })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_email_do_the_same_work() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let n0 = srv.audit_len(&a.id).await;
    let wrong = login(&srv, &a.id, &a.email, "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    let n1 = srv.audit_len(&a.id).await;
    assert_eq!(n1, n0 + 1, "a wrong password appends one record");
    let known = srv.last_audit(&a.id).await;
    assert_eq!(known["action"], "auth.login_failed");
    assert_eq!(known["entity_id"], json!(a.owner), "{known}");

    let email = "nobody.here@unknown-domain.example";
    let unknown = login(&srv, &a.id, email, "not the password at all").await;
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (wrong.status, wrong.body.clone()),
        "the same answer"
    );
    assert_eq!(
        srv.audit_len(&a.id).await,
        n1 + 1,
        "an unknown e-mail appends one record too"
    );
    let rec = srv.last_audit(&a.id).await;
    assert_eq!(rec["action"], "auth.login_failed");
    assert_eq!(rec["entity_id"], "unknown", "{rec}");
    assert!(
        !rec.to_string().contains("nobody"),
        "e-mail recorded: {rec}"
    );
    // The chain still verifies.
    let r = srv
        .call("GET", &a.path("/audit?limit=1000"), Some(&a.token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    // An unknown tenant: the same answer, and no chain is created for it.
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = login(&srv, &ghost, email, "not the password at all").await;
    assert_eq!((r.status, r.body), (wrong.status, wrong.body));
    assert_eq!(srv.audit_len(&ghost).await, 0);
}
