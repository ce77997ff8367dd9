//! Identity less rigid (issue 10, adoption gaps): opaque `sub`, no `kid` for a
//! single-key issuer, custom claims, and routes that take the tenant from the
//! token (an extractor without `{tenant}`, a tower layer).
//!
//! Root cause: the session layer only accepted what its first user's issuer
//! produced (UUID `sub`, always a `kid`, tenant in the path), so users of
//! Auth0, Cognito or a single-key internal issuer worked around it outside the
//! crate, losing its checks.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Router};
use hisn_tenant_guard::axum::{TenantLayer, TokenTenant};
use hisn_tenant_guard::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use hisn_tenant_guard::{Error, Issuer, ManualClock, TenantContext, TokenVerifier};
use serde_json::json;
use tower::ServiceExt as _;

use crate::common::*;

fn hmac_claims(tenant: &str) -> serde_json::Value {
    let mut c = claims(tenant);
    c["iss"] = json!(HMAC_ISS);
    c
}

fn hs256(kid: Option<&str>, c: &serde_json::Value) -> String {
    sign(
        Algorithm::HS256,
        kid,
        c,
        &EncodingKey::from_secret(HMAC_SECRET),
    )
}

fn single_key_verifier(extra_key: bool) -> TokenVerifier {
    let mut issuer = Issuer::new(HMAC_ISS, AUD, &[Algorithm::HS256])
        .key(HMAC_KID, DecodingKey::from_secret(HMAC_SECRET));
    if extra_key {
        issuer = issuer.key(
            "other",
            DecodingKey::from_secret(b"another secret of enough length!"),
        );
    }
    TokenVerifier::builder()
        .issuer(issuer)
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap()
}

#[test]
fn opaque_subjects_are_accepted_and_checked() {
    let (v, _) = verifier();
    let mut c = hmac_claims(TENANT_A);
    c["sub"] = json!("auth0|5f7c8ec7c33c6c004bbafe82");
    let ctx = v.verify(&hs256(Some(HMAC_KID), &c)).unwrap();
    assert_eq!(ctx.subject(), "auth0|5f7c8ec7c33c6c004bbafe82");
    assert_eq!(ctx.user(), None);
    for bad in [json!(""), json!("a\nb"), json!("x".repeat(257)), json!(42)] {
        c["sub"] = bad.clone();
        assert!(
            matches!(
                v.verify(&hs256(Some(HMAC_KID), &c)),
                Err(Error::Unauthenticated)
            ),
            "{bad}"
        );
    }
}

#[test]
fn kid_is_optional_only_for_a_single_key() {
    let c = hmac_claims(TENANT_B);
    let t = hs256(None, &c);
    let ctx = single_key_verifier(false).verify(&t).unwrap();
    assert_eq!(ctx.tenant().to_string(), TENANT_B);
    // Two keys, or two issuers: which key is meant is ambiguous, refused.
    assert!(matches!(
        single_key_verifier(true).verify(&t),
        Err(Error::Unauthenticated)
    ));
    let (two_issuers, _) = verifier();
    assert!(matches!(
        two_issuers.verify(&t),
        Err(Error::Unauthenticated)
    ));
    // A wrong signature without a kid is still wrong.
    let forged = sign(
        Algorithm::HS256,
        None,
        &c,
        &EncodingKey::from_secret(b"not the secret at all, no"),
    );
    assert!(matches!(
        single_key_verifier(false).verify(&forged),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn custom_claims_are_readable_but_not_printed() {
    let (v, _) = verifier();
    let mut c = hmac_claims(TENANT_A);
    c["email"] = json!("amal@example.test");
    c["https://example.test/plan"] = json!({"tier": "gold"});
    let ctx = v.verify(&hs256(Some(HMAC_KID), &c)).unwrap();
    assert_eq!(ctx.claim("email"), Some(&json!("amal@example.test")));
    assert_eq!(
        ctx.claim("https://example.test/plan").unwrap()["tier"],
        "gold"
    );
    // Interpreted claims are reached through the typed accessors only.
    for name in ["tenant_id", "iss", "aud", "sub", "exp", "roles", "clients"] {
        assert_eq!(ctx.claim(name), None, "{name}");
    }
    let debug = format!("{ctx:?}");
    assert!(
        debug.contains("email") && !debug.contains("amal@example.test"),
        "{debug}"
    );
}

async fn status_and_body(app: Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
    use http_body_util::BodyExt as _;
    let mut req = Request::builder().uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn token_tenant_extractor_serves_routes_without_a_tenant_segment() {
    async fn mine(TokenTenant(ctx): TokenTenant) -> String {
        ctx.tenant().to_string()
    }
    let (v, _) = verifier();
    let app = Router::new()
        .route("/me/assets", get(mine))
        .route("/t/{tenant}/assets", get(mine))
        .with_state(Arc::new(v));
    let t = rs256(&claims(TENANT_A));
    assert_eq!(
        status_and_body(app.clone(), "/me/assets", Some(&t)).await,
        (StatusCode::OK, TENANT_A.to_owned())
    );
    // A tenant segment is still compared.
    assert_eq!(
        status_and_body(app.clone(), &format!("/t/{TENANT_B}/assets"), Some(&t))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_and_body(app.clone(), &format!("/t/{TENANT_A}/assets"), Some(&t))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        status_and_body(app, "/me/assets", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tenant_layer_puts_the_context_in_request_extensions() {
    async fn mine(Extension(ctx): Extension<TenantContext>) -> String {
        ctx.tenant().to_string()
    }
    let (v, _) = verifier();
    let app = Router::new()
        .route("/me", get(mine))
        .layer(TenantLayer::new(Arc::new(v)));
    let t = rs256(&claims(TENANT_B));
    assert_eq!(
        status_and_body(app.clone(), "/me", Some(&t)).await,
        (StatusCode::OK, TENANT_B.to_owned())
    );
    let (status, body) = status_and_body(app.clone(), "/me", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, ""));
    let (status, _) = status_and_body(app, "/me", Some("not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
