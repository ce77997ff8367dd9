//! axum extractor for [`TenantContext`] (feature `axum`).
//!
//! The extractor reads `Authorization: Bearer <token>`, verifies it with the
//! [`TokenVerifier`] taken from the router state (`Arc<TokenVerifier>:
//! FromRef<S>`) and checks that the route's `{tenant}` path parameter names the
//! token's tenant. Rejections carry no detail:
//!
//! - missing, malformed or invalid token: `401` with `WWW-Authenticate: Bearer`;
//! - another tenant in the path, a malformed path tenant, or a route without a
//!   `{tenant}` parameter: `404`, exactly like a resource that does not exist.
//!
//! Routes that take the tenant from the token alone (`/me/assets`) use
//! [`TokenTenant`] instead: the same checks, and the `{tenant}` segment is
//! compared only when the route has one. [`TenantLayer`] is the tower
//! middleware form: it verifies the bearer token of every request, answers
//! `401` itself, and puts the [`TenantContext`] in the request extensions
//! (`Extension<TenantContext>` in handlers); it sees no path parameters, so
//! pair it with [`TokenTenant`] or [`TenantContext::check_path_tenant`] on
//! routes that carry a tenant in the path.
//!
//! Break-glass support routes extract a [`GrantSession`] instead (state:
//! `Arc<GrantVerifier>: FromRef<S>`): the bearer token must be a grant for
//! the `{tenant}` of the path; every extraction is one use of the grant (its
//! revocation check, audit hook and notifier run, with `"METHOD /path"` as
//! the action). A failing hook is `503`. There is no extractor that turns a
//! grant into the customer's own session.
//!
//! [`AccessDenied`] turns the errors of
//! [`RolePolicy::require`](crate::RolePolicy::require) into responses the
//! client can act on: a step-up is `401` with
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication"`
//! (RFC 9470, with `max_age` when the rule has one).
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use hisn_tenant_guard::{TenantContext, TokenVerifier};
//!
//! async fn list_assets(ctx: TenantContext) -> String {
//!     ctx.tenant().to_string()
//! }
//!
//! fn app(verifier: Arc<TokenVerifier>) -> Router {
//!     Router::new().route("/t/{tenant}/assets", get(list_assets)).with_state(verifier)
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::grant::{GrantSession, GrantVerifier};
use crate::{Error, TenantContext, TokenVerifier};

/// The path parameter that names the tenant: routes look like `/t/{tenant}/...`.
pub const TENANT_PATH_PARAM: &str = "tenant";

/// Why the extractor refused a request. The response has an empty body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantRejection {
    /// `401 Unauthorized` with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// `404 Not Found`.
    NotFound,
    /// `503 Service Unavailable`: a grant's revocation check, audit hook or
    /// notifier failed, so the grant was not used.
    Unavailable,
}

impl IntoResponse for TenantRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            )
                .into_response(),
            Self::NotFound => StatusCode::NOT_FOUND.into_response(),
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The `{tenant}` path parameter, if the route has one.
async fn path_tenant<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Option<String>, TenantRejection> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| TenantRejection::NotFound)?;
    Ok(params
        .iter()
        .find(|(k, _)| *k == TENANT_PATH_PARAM)
        .map(|(_, v)| v.to_owned()))
}

fn verify_bearer(
    verifier: &TokenVerifier,
    parts: &Parts,
) -> Result<TenantContext, TenantRejection> {
    let token = bearer(parts).ok_or(TenantRejection::Unauthorized)?;
    verifier
        .verify(token)
        .map_err(|_| TenantRejection::Unauthorized)
}

fn check_path(ctx: TenantContext, path_tenant: &str) -> Result<TenantContext, TenantRejection> {
    match ctx.check_path_tenant(path_tenant) {
        Ok(()) => Ok(ctx),
        Err(Error::NotFound) => Err(TenantRejection::NotFound),
        Err(_) => Err(TenantRejection::NotFound),
    }
}

impl<S> FromRequestParts<S> for TenantContext
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
{
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let ctx = verify_bearer(&verifier, parts)?;
        let path = path_tenant(parts, state)
            .await?
            .ok_or(TenantRejection::NotFound)?;
        check_path(ctx, &path)
    }
}

/// The [`TenantContext`] of the bearer token, for routes whose tenant comes
/// from the token alone (no `{tenant}` path segment). When the route does
/// have a `{tenant}` segment it must name the token's tenant (`404`
/// otherwise), as with the [`TenantContext`] extractor.
#[derive(Debug, Clone)]
pub struct TokenTenant(pub TenantContext);

impl<S> FromRequestParts<S> for TokenTenant
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
{
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let ctx = verify_bearer(&verifier, parts)?;
        match path_tenant(parts, state).await {
            Ok(Some(path)) => check_path(ctx, &path).map(Self),
            // No `{tenant}` segment (or no path parameters at all).
            Ok(None) | Err(_) => Ok(Self(ctx)),
        }
    }
}

/// tower middleware that verifies the bearer token of every request and puts
/// the [`TenantContext`] in the request extensions; a request without a valid
/// token gets `401` (with `WWW-Authenticate: Bearer`, empty body) and never
/// reaches the inner service.
#[derive(Debug, Clone)]
pub struct TenantLayer {
    verifier: Arc<TokenVerifier>,
}

impl TenantLayer {
    /// Verify with `verifier`.
    pub fn new(verifier: Arc<TokenVerifier>) -> Self {
        Self { verifier }
    }
}

impl<S> tower_layer::Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

/// The service [`TenantLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct TenantService<S> {
    inner: S,
    verifier: Arc<TokenVerifier>,
}

impl<S, B> tower_service::Service<Request<B>> for TenantService<S>
where
    S: tower_service::Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        match verify_bearer(&self.verifier, &parts) {
            Ok(ctx) => {
                parts.extensions.insert(ctx);
                Box::pin(self.inner.call(Request::from_parts(parts, body)))
            }
            Err(rejection) => Box::pin(async move { Ok(rejection.into_response()) }),
        }
    }
}

impl<S> FromRequestParts<S> for GrantSession
where
    S: Send + Sync,
    Arc<GrantVerifier>: FromRef<S>,
{
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<GrantVerifier>::from_ref(state);
        let token = bearer(parts)
            .ok_or(TenantRejection::Unauthorized)?
            .to_owned();
        let path = path_tenant(parts, state)
            .await?
            .ok_or(TenantRejection::NotFound)?;
        let action = format!("{} {}", parts.method, parts.uri.path());
        verifier
            .open(&token, &path, &action)
            .await
            .map_err(|e| match e {
                Error::NotFound => TenantRejection::NotFound,
                Error::GrantHook => TenantRejection::Unavailable,
                _ => TenantRejection::Unauthorized,
            })
    }
}

/// A refusal from [`RolePolicy::require`](crate::RolePolicy::require) as a
/// response (`Err(AccessDenied::from(e))?` in a handler):
///
/// | error | status | detail |
/// |-------|--------|--------|
/// | [`Error::StepUpRequired`] | 401 | `WWW-Authenticate: Bearer error="insufficient_user_authentication"` and `max_age` (RFC 9470) |
/// | [`Error::MfaEnrolmentRequired`] | 403 | body `mfa_enrolment_required` |
/// | [`Error::PasswordChangeRequired`] | 403 | body `password_change_required` |
/// | [`Error::Unauthenticated`] | 401 | `WWW-Authenticate: Bearer` |
/// | [`Error::NotFound`] | 404 | |
/// | [`Error::GrantHook`] | 503 | empty body |
/// | a server-side failure ([`Error::Config`], a database error, a refused statement, ...) | 500 | empty body |
/// | anything else ([`Error::Forbidden`], [`Error::OutsideGrant`], ...) | 403 | empty body |
///
/// No response carries the error's text: a database or configuration error
/// is for the operator's logs, not for the remote caller.
#[derive(Debug)]
pub struct AccessDenied(pub Error);

impl From<Error> for AccessDenied {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for AccessDenied {
    fn into_response(self) -> Response {
        match self.0 {
            Error::StepUpRequired { max_age } => {
                let challenge = match max_age {
                    Some(age) => format!(
                        "Bearer error=\"insufficient_user_authentication\", error_description=\"a more recent second factor is required\", max_age={age}"
                    ),
                    None => "Bearer error=\"insufficient_user_authentication\", error_description=\"a second factor is required\"".to_owned(),
                };
                match HeaderValue::from_str(&challenge) {
                    Ok(v) => {
                        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, v)]).into_response()
                    }
                    Err(_) => StatusCode::UNAUTHORIZED.into_response(),
                }
            }
            Error::MfaEnrolmentRequired => {
                (StatusCode::FORBIDDEN, "mfa_enrolment_required").into_response()
            }
            Error::PasswordChangeRequired => {
                (StatusCode::FORBIDDEN, "password_change_required").into_response()
            }
            Error::Unauthenticated => TenantRejection::Unauthorized.into_response(),
            Error::NotFound => StatusCode::NOT_FOUND.into_response(),
            Error::GrantHook => TenantRejection::Unavailable.into_response(),
            Error::Forbidden | Error::OutsideGrant | Error::InvalidId | Error::InvalidName => {
                StatusCode::FORBIDDEN.into_response()
            }
            // Server-side failures (configuration, database, guard refusals of
            // the application's own SQL): the caller learns nothing but 500.
            _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
}
