//! The axum extractor: 401 for a bad token, 404 for another tenant, no detail.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use hisn_tenant_guard::{TenantContext, TokenVerifier};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::common::*;

async fn whoami(ctx: TenantContext) -> String {
    format!("{} {}", ctx.tenant(), ctx.subject())
}

fn app() -> Router {
    let (v, _) = verifier();
    Router::new()
        .route("/t/{tenant}/whoami", get(whoami))
        .route("/untenanted", get(whoami))
        .with_state(Arc::<TokenVerifier>::new(v))
}

async fn call(path: &str, auth: Option<String>) -> (StatusCode, Option<String>, String) {
    let mut req = Request::builder().uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let www = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    (status, www, body)
}

#[tokio::test]
async fn valid_token_on_its_tenant_path_extracts_context() {
    let t = rs256(&claims(TENANT_A));
    let (status, _, body) = call(
        &format!("/t/{TENANT_A}/whoami"),
        Some(format!("Bearer {t}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("{TENANT_A} {USER}"));
    let (status, _, _) = call(
        &format!("/t/{TENANT_A}/whoami"),
        Some(format!("bearer {t}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn other_tenant_in_path_is_404_without_detail() {
    let t = rs256(&claims(TENANT_A));
    for path in [
        format!("/t/{TENANT_B}/whoami"),
        "/t/not-a-tenant/whoami".to_owned(),
        "/untenanted".to_owned(),
    ] {
        let (status, www, body) = call(&path, Some(format!("Bearer {t}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(www.is_none());
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn missing_or_bad_token_is_401_without_detail() {
    let expired = {
        let mut c = claims(TENANT_A);
        c["exp"] = serde_json::json!(NOW - 10);
        rs256(&c)
    };
    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Bearer x.y.z".to_owned()),
        Some(format!("Bearer {expired}")),
    ] {
        let (status, www, body) = call(&format!("/t/{TENANT_B}/whoami"), auth.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(www.as_deref(), Some("Bearer"));
        assert!(body.is_empty());
    }
}
