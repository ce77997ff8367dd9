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

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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

impl<S> FromRequestParts<S> for TenantContext
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
{
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let token = bearer(parts).ok_or(TenantRejection::Unauthorized)?;
        let ctx = verifier
            .verify(token)
            .map_err(|_| TenantRejection::Unauthorized)?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| TenantRejection::NotFound)?;
        let path_tenant = params
            .iter()
            .find(|(k, _)| *k == TENANT_PATH_PARAM)
            .map(|(_, v)| v)
            .ok_or(TenantRejection::NotFound)?;
        match ctx.check_path_tenant(path_tenant) {
            Ok(()) => Ok(ctx),
            Err(Error::NotFound) => Err(TenantRejection::NotFound),
            Err(_) => Err(TenantRejection::NotFound),
        }
    }
}
