//! Extractors whose rejections are [`ApiError`]s (generic JSON, no parser
//! messages), and strict bodies.

use std::net::IpAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use hisn_tenant_guard::TenantContext;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::audit::Actor;
use crate::error::ApiError;
use crate::middleware::{ClientIp, RequestId, VerifiedSession};

/// Validation after deserialisation (lengths, formats). Bodies are also
/// `deny_unknown_fields`, so a mass-assigned `tenant_id` is a `400`.
pub trait Validate {
    /// Check the value.
    fn validate(&self) -> Result<(), ApiError>;
}

/// A JSON body of `T`, validated.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Validate> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => {
                v.validate()?;
                Ok(Self(v))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(_) => Err(ApiError::BadRequest("invalid_body")),
        }
    }
}

/// Check that `s` is 1..=`max` characters with no control characters.
pub(super) fn text(s: &str, max: usize) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("invalid_field"));
    }
    Ok(())
}

/// Parse a path id: the hyphenated form only (36 characters, any case, as
/// tenant ids), never the simple, braced or `urn:uuid:` forms
/// `Uuid::try_parse` also takes. Anything else is "not found" (the same
/// answer as a missing or foreign row). Callers name the id by the parsed
/// value (`Uuid`'s lowercase form) from here on, never by the path text, so
/// an audit record cannot carry a spelling of the client's choosing.
pub fn parse_id(s: &str) -> Result<Uuid, ApiError> {
    if s.len() != uuid::fmt::Hyphenated::LENGTH {
        return Err(ApiError::NotFound);
    }
    Uuid::try_parse(s).map_err(|_| ApiError::NotFound)
}

/// The path parameters of `/t/{tenant}/.../{id}` (the tenant is checked by
/// the [`TenantContext`] extractor).
#[derive(Debug, Deserialize)]
pub(super) struct TenantPath {
    /// `{tenant}`.
    #[allow(dead_code)] // checked by the TenantContext extractor
    pub(super) tenant: String,
    /// `{id}`.
    pub(super) id: String,
}

/// Paging of list endpoints: `?limit=&offset=` (unknown parameters refused).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// 1..=100, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

impl Page {
    /// `(limit, offset)` clamped.
    pub fn bounds(self) -> (i64, i64) {
        (
            self.limit.unwrap_or(50).clamp(1, 100),
            self.offset.unwrap_or(0).clamp(0, 1_000_000),
        )
    }
}

impl Page {
    /// This page of `table`'s rows (columns `cols`, oldest first) and the
    /// table's row count, both read in `tx`, so through the query guard: the
    /// listing every tenant collection route answers with.
    pub(crate) async fn fetch(
        self,
        tx: &mut crate::db::Tx,
        table: &str,
        cols: &str,
    ) -> Result<(Vec<crate::db::Row>, i64), ApiError> {
        let (limit, offset) = self.bounds();
        let rows = tx
            .query(&format!(
                "SELECT {cols} FROM {table} ORDER BY created_at, id LIMIT ? OFFSET ?"
            ))?
            .bind(limit)
            .bind(offset)
            .fetch_all()
            .await?;
        let total: i64 = tx
            .query_scalar(&format!("SELECT COUNT(*) FROM {table}"))?
            .fetch_one()
            .await?;
        Ok((rows, total))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Page>::from_request_parts(parts, state)
            .await
            .map(|Query(p)| p)
            .map_err(|_| ApiError::BadRequest("invalid_query"))
    }
}

/// Client IP and request id, for audit records.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Client IP.
    pub ip: IpAddr,
    /// Request id.
    pub request_id: String,
}

impl Meta {
    /// The audit actor: `ctx`'s subject from this request.
    pub fn actor(&self, ctx: &TenantContext) -> Actor {
        self.actor_named(ctx.subject())
    }

    /// The audit actor named `who` from this request.
    pub fn actor_named(&self, who: &str) -> Actor {
        Actor {
            actor: who.to_owned(),
            ip: self.ip,
            request_id: self.request_id.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ClientIp>()
            .ok_or(ApiError::Internal)?
            .0;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .ok_or(ApiError::Internal)?
            .0
            .clone();
        Ok(Self { ip, request_id })
    }
}

/// Path parameters, with rejections as "not found".
#[derive(Debug)]
pub(super) struct Ids<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|_| ApiError::NotFound)
    }
}

/// The session [`identify_and_limit`](crate::middleware::identify_and_limit)
/// verified for this request, once the route's `{tenant}` is its tenant
/// (`404` otherwise, or without a `{tenant}`: the answers of tenant-guard's
/// extractor). `None` when the middleware verified no session token: the
/// caller verifies the request itself.
pub(super) async fn verified_session<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Option<Result<TenantContext, axum::response::Response>> {
    use axum::response::IntoResponse as _;
    use hisn_tenant_guard::axum::{TENANT_PATH_PARAM, TenantRejection};
    let VerifiedSession(ctx) = parts.extensions.remove::<VerifiedSession>()?;
    let same_tenant = match RawPathParams::from_request_parts(parts, state).await {
        Ok(params) => params
            .iter()
            .find(|(k, _)| *k == TENANT_PATH_PARAM)
            .is_some_and(|(_, v)| ctx.check_path_tenant(v).is_ok()),
        Err(_) => false,
    };
    Some(if same_tenant {
        Ok(ctx)
    } else {
        Err(TenantRejection::NotFound.into_response())
    })
}

/// Require `permission` (and a writable session for writes).
pub(super) fn require(
    s: &crate::state::AppState,
    ctx: &TenantContext,
    permission: &hisn_tenant_guard::Permission,
) -> Result<(), ApiError> {
    if *permission != hisn_tenant_guard::Permission::READ && ctx.is_read_only() {
        crate::metrics::global().deny("read_only");
        return Err(ApiError::Forbidden);
    }
    s.policy.require(ctx, permission).map_err(ApiError::from)
}

/// Require the sensitive-admin permission: an admin or owner whose session
/// presented a second factor recently (step-up, see [`crate::mfa::policy`]).
pub(super) fn require_step_up(
    s: &crate::state::AppState,
    ctx: &TenantContext,
) -> Result<(), ApiError> {
    require(s, ctx, crate::mfa::step_up_permission())
}
