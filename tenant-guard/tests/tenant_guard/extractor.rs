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

mod grants {
    //! The `GrantSession` extractor and `AccessDenied` responses (issue #15).

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use hisn_tenant_guard::axum::AccessDenied;
    use hisn_tenant_guard::{
        Error, GrantSession, GrantVerifier, ManualClock, Permission, RolePolicy,
    };
    use tower::ServiceExt as _;

    use crate::common::*;
    use crate::grant::{fx, read_only};

    #[derive(Clone)]
    struct AppState {
        grants: Arc<GrantVerifier>,
        policy: Arc<RolePolicy>,
    }

    impl axum::extract::FromRef<AppState> for Arc<GrantVerifier> {
        fn from_ref(s: &AppState) -> Self {
            s.grants.clone()
        }
    }

    async fn list(
        State(s): State<AppState>,
        session: GrantSession,
    ) -> Result<String, AccessDenied> {
        s.policy.require(session.context(), &Permission::READ)?;
        Ok(format!(
            "{} {}",
            session.context().tenant(),
            session.grant().ticket()
        ))
    }

    async fn change(
        State(s): State<AppState>,
        session: GrantSession,
    ) -> Result<String, AccessDenied> {
        s.policy.require(session.context(), &Permission::WRITE)?;
        Ok("changed".into())
    }

    fn router(verifier: GrantVerifier, clock: Arc<ManualClock>) -> Router {
        let state = AppState {
            grants: Arc::new(verifier),
            policy: Arc::new(RolePolicy::default().clock(clock)),
        };
        Router::new()
            .route("/t/{tenant}/assets", get(list).put(change))
            .route("/support/assets", get(list))
            .with_state(state)
    }

    async fn send(
        app: &Router,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn grant_session_reads_its_tenant_and_is_refused_writes() {
        let f = fx();
        let clock = f.clock.clone();
        let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
        let audit = f.audit.clone();
        let app = router(f.verifier, clock.clone());
        let (status, body) =
            send(&app, "GET", &format!("/t/{TENANT_A}/assets"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("{TENANT_A} SUP-1234"));
        // A write under a read-only grant: 403, no detail.
        let (status, body) =
            send(&app, "PUT", &format!("/t/{TENANT_A}/assets"), Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.is_empty());
        // Another tenant, or no tenant in the route: 404; no grant: 401.
        let (status, _) = send(&app, "GET", &format!("/t/{TENANT_B}/assets"), Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(&app, "GET", "/support/assets", Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(&app, "GET", &format!("/t/{TENANT_A}/assets"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The customer's own access token is not a grant.
        let (status, _) = send(
            &app,
            "GET",
            &format!("/t/{TENANT_A}/assets"),
            Some(&rs256(&claims(TENANT_A))),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Expired: 401.
        clock.advance(3600);
        let (status, _) = send(&app, "GET", &format!("/t/{TENANT_A}/assets"), Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Only the uses on tenant A with a valid grant were audited.
        assert_eq!(audit.0.calls().len(), 2);
    }

    #[tokio::test]
    async fn every_extraction_is_an_audited_use_and_a_down_hook_is_503() {
        let f = fx();
        let audit = f.audit.clone();
        let notify = f.notify.clone();
        let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
        let app = router(f.verifier, f.clock.clone());
        let path = format!("/t/{TENANT_A}/assets");
        assert_eq!(
            send(&app, "GET", &path, Some(&token)).await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, "PUT", &path, Some(&token)).await.0,
            StatusCode::FORBIDDEN
        );
        let actions: Vec<String> = audit.0.calls().into_iter().map(|c| c.action).collect();
        assert_eq!(actions, [format!("GET {path}"), format!("PUT {path}")]);
        assert_eq!(notify.0.calls().len(), 2);
        audit.0.fail.store(true, Ordering::SeqCst);
        let (status, body) = send(&app, "GET", &path, Some(&token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn access_denied_maps_step_up_to_an_rfc_9470_challenge() {
        use axum::response::IntoResponse as _;
        let r = AccessDenied(Error::StepUpRequired { max_age: Some(300) }).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let www = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            www.starts_with("Bearer error=\"insufficient_user_authentication\""),
            "{www}"
        );
        assert!(www.ends_with("max_age=300"), "{www}");
        let r = AccessDenied(Error::StepUpRequired { max_age: None }).into_response();
        let www = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(!www.contains("max_age"));
        for (e, status) in [
            (Error::MfaEnrolmentRequired, StatusCode::FORBIDDEN),
            (Error::PasswordChangeRequired, StatusCode::FORBIDDEN),
            (Error::OutsideGrant, StatusCode::FORBIDDEN),
            (Error::Forbidden, StatusCode::FORBIDDEN),
            (Error::NotFound, StatusCode::NOT_FOUND),
            (Error::Unauthenticated, StatusCode::UNAUTHORIZED),
        ] {
            assert_eq!(AccessDenied(e).into_response().status(), status);
        }
    }

    /// No refusal carries its error's text to the remote caller: not a
    /// configuration message, a database error or a guard refusal.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[tokio::test]
    async fn access_denied_never_leaks_error_detail() {
        use axum::response::IntoResponse as _;
        use http_body_util::BodyExt as _;
        let db = hisn_tenant_guard::sqlx::Error::Protocol(
            "relation \"secret_table\" password=hunter2".into(),
        );
        for (e, status) in [
            (
                Error::Config("grant key path /etc/secret"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (Error::Database(db), StatusCode::INTERNAL_SERVER_ERROR),
            (
                Error::RlsMisconfigured(3),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (Error::GrantHook, StatusCode::SERVICE_UNAVAILABLE),
            (Error::OutsideGrant, StatusCode::FORBIDDEN),
            (Error::Forbidden, StatusCode::FORBIDDEN),
            (Error::NotFound, StatusCode::NOT_FOUND),
        ] {
            let shown = e.to_string();
            let r = AccessDenied(e).into_response();
            assert_eq!(r.status(), status, "{shown}");
            assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert!(body.is_empty(), "{shown}: {body:?}");
        }
    }
}
