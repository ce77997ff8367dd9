//! Request middleware: one layer, [`edge`], doing in this order (outermost
//! first; one layer rather than two nested ones, so a request pays for one
//! boxed middleware future):
//!
//! 1. the envelope: a request id, security headers on every response, JSON
//!    bodies for bare error statuses, one redacted access-log line naming
//!    the route template, never the path the client sent; a handler that
//!    panics is caught here and answered with the generic `500` body (the
//!    connection and the next requests are served as usual).
//! 2. [`identify_and_limit`]: the client IP (`X-Forwarded-For` believed only from
//!    trusted proxies), the bearer token (a session token or a support grant)
//!    verified once for the rate limiter's session and tenant keys, then the API tiers (IP, session, tenant) with
//!    `RateLimit` headers on every response and `429` + `Retry-After`.
//!
//! Authorisation itself is not decided here: tenant routes take their
//! [`TenantContext`](hisn_tenant_guard::TenantContext) from the `Session`
//! extractor, which compares the path tenant. A session token is verified
//! once per request, here (through [`SessionCache`]: once per token while it
//! is unexpired), and handed to the extractor as a [`VerifiedSession`]
//! extension; a support grant is verified again by the extractor when it
//! opens it (revocation, audit).

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use hisn_rate_limit::Limiter;
use hisn_rate_limit::Outcome;
use hisn_rate_limit::http::{RateLimitIdentity, write_ratelimit_headers, write_retry_after};
use hisn_tenant_guard::TenantId;
use sha2::{Digest, Sha256};

use crate::auth::SessionCache;
use crate::error::ApiError;
use crate::metrics;
use crate::state::{AppState, now_unix};

/// The request id (also in the `x-request-id` response header and audit records).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The client IP as the rate limiter and the audit log see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The verified caller (set when a valid bearer token came with the request).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's tenant.
    pub tenant: TenantId,
    /// The token's subject.
    pub subject: Arc<str>,
    /// Session key: SHA-256 of the token, hex (never the token itself).
    pub session: Arc<str>,
}

/// The session token of this request, verified by [`identify_and_limit`]
/// with the server's [`TokenVerifier`](hisn_tenant_guard::TokenVerifier)
/// (signature, pinned algorithm, `iss`, `aud`, `exp`, tenant claim). Only
/// this middleware inserts it (a client cannot: extensions are not headers);
/// the `Session` extractor takes it instead of verifying the token a second
/// time, and still compares the path tenant. Absent (a grant, no token, an
/// invalid one): the extractor does the whole check itself.
#[derive(Debug, Clone)]
pub struct VerifiedSession(pub hisn_tenant_guard::TenantContext);

/// The state of [`identify_and_limit`]: the application's, and the cache
/// of verified session tokens ([`SessionCache`]).
#[derive(Debug, Clone)]
pub struct Edge {
    /// The application state.
    pub app: AppState,
    /// Verified session tokens.
    pub sessions: Arc<SessionCache>,
}

/// Security headers set on every response.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// [`SECURITY_HEADERS`] as header names and values, built once.
static SECURITY_HEADER_VALUES: std::sync::LazyLock<Vec<(HeaderName, HeaderValue)>> =
    std::sync::LazyLock::new(|| {
        SECURITY_HEADERS
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    });

/// The one middleware layer: the envelope (request id, security headers,
/// JSON error bodies, access log) around [`identify_and_limit`].
pub async fn edge(State(edge): State<Edge>, mut req: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id: &str = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    req.extensions_mut().insert(RequestId(id.to_owned()));
    let method = req.method().clone();
    // The route's template, never the client's path: the redactor reads
    // text, and a percent-encoded e-mail (`a%40b.example`) in a path is no
    // e-mail to it. Unrouted paths are logged as `-`.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| Arc::<str>::from(m.as_str()));
    // A panicking handler must not drop the connection with no answer: it
    // is caught here, per request, and answered like any internal error
    // (the generic 500 body). The payload is dropped unread: its text may
    // hold request data; the process panic hook ([`crate::logging`]) has
    // already logged the location, redacted. Unwind safety: the request's
    // own state dies with it; shared state behind the handler (the limiter,
    // the stores) is guarded by poison-tolerant locks or async mutexes.
    let mut resp = match AssertUnwindSafe(identify_and_limit(&edge, req, next))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(payload) => {
            drop(payload);
            metrics::global().panic();
            tracing::error!(
                target: "hisn::example_server::panic",
                request_id = %id, %method, route = route.as_deref().unwrap_or("-"),
                "request handler panicked: answered 500"
            );
            ApiError::Internal.into_response()
        }
    };
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        metrics::global().deny("auth");
    }
    if (status.is_client_error() || status.is_server_error())
        && !resp.headers().contains_key(header::CONTENT_TYPE)
    {
        let (mut parts, _) = resp.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = serde_json::json!({ "error": ApiError::code_for_status(status) }).to_string();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp = Response::from_parts(parts, Body::from(body));
    }
    let h = resp.headers_mut();
    h.reserve(SECURITY_HEADERS.len() + 1);
    for (name, value) in SECURITY_HEADER_VALUES.iter() {
        h.insert(name.clone(), value.clone());
    }
    h.remove(header::SERVER);
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    tracing::info!(
        target: "hisn::example_server::access",
        request_id = %id, %method, route = route.as_deref().unwrap_or("-"), status = status.as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}

fn bearer(authorization: &HeaderValue) -> Option<&str> {
    let v = authorization.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `{tenant}` segment of `/t/{tenant}/...`.
fn path_tenant(path: &str) -> Option<&str> {
    path.strip_prefix("/t/")?.split('/').next()
}

/// Client IP, verified identity, API rate limits (inside [`edge`]).
pub async fn identify_and_limit(edge: &Edge, mut req: Request<Body>, next: Next) -> Response {
    let s = &edge.app;
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        // Fail closed: without the peer address the IP tier cannot be applied.
        tracing::error!(target: "hisn::example_server", "request without a peer address");
        return ApiError::Internal.into_response();
    };
    let ip = s.extractor.client_ip_from(peer.ip(), &req);
    req.extensions_mut().insert(ClientIp(ip));
    let mut identity = RateLimitIdentity::new();
    // A cheap clone (shared bytes): the request is borrowed mutably below.
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    if let Some(token) = authorization.as_ref().and_then(bearer) {
        if let Ok(v) = edge.sessions.verify(token, now_unix()) {
            let ctx = &v.ctx;
            let tenant = ctx.tenant();
            if path_tenant(req.uri().path()).is_some_and(|p| ctx.check_path_tenant(p).is_err()) {
                metrics::global().deny("tenant_path");
            }
            let trusted = s
                .policy
                .permits(ctx, &hisn_tenant_guard::Permission::MANAGE_MEMBERS);
            // The keys derived once per token (no hashing per request);
            // the text forms only if a derivation failed.
            identity = match v.session_key {
                Some(k) => identity.session_key(k),
                None => identity.session(v.session.to_string()),
            };
            identity = match v.tenant_key {
                Some(k) => identity.tenant_key(k),
                None => identity.tenant(tenant.to_string()),
            };
            identity = identity.trusted(trusted);
            req.extensions_mut().insert(Principal {
                tenant,
                subject: Arc::clone(&v.subject),
                session: Arc::clone(&v.session),
            });
            // Verified once, here: the tenant routes' `Session` extractor
            // takes it from the extensions (and still compares the path
            // tenant) instead of verifying the same token again.
            req.extensions_mut().insert(VerifiedSession(v.ctx.clone()));
        } else if let Ok(grant) = s.mfa.verifier.verify(token) {
            // A support grant (signature and expiry checked; the extractor checks
            // the path tenant and revocation and records the use): its own
            // session key and the grant's tenant, like any session.
            let session: Arc<str> = hex::encode(Sha256::digest(token.as_bytes())).into();
            identity = identity
                .session(session.to_string())
                .tenant(grant.tenant().to_string());
            req.extensions_mut().insert(Principal {
                tenant: grant.tenant(),
                subject: grant.support_user().into(),
                session,
            });
        }
    }
    // The keys from the client IP and the identity directly (no request
    // extensions for the limiter to read back).
    let (keys, trusted) = s.extractor.keys_for(Some(ip), Some(&identity));
    let decision = match s.limiter.check_keys(&keys, std::num::NonZeroU32::MIN).await {
        Ok(d) => d,
        Err(e) => return ApiError::internal("rate limiter", &e).into_response(),
    };
    match decision.outcome() {
        Outcome::Allowed => {
            let mut resp = next.run(req).await;
            write_ratelimit_headers(resp.headers_mut(), &decision, s.limiter.tier_set(), trusted);
            resp
        }
        Outcome::Denied { tier, retry_after } => {
            metrics::global().rate_limited(tier);
            let mut resp = ApiError::TooManyRequests.into_response();
            write_retry_after(resp.headers_mut(), retry_after);
            write_ratelimit_headers(resp.headers_mut(), &decision, s.limiter.tier_set(), trusted);
            resp
        }
        _ => {
            let mut resp = ApiError::Unavailable.into_response();
            write_retry_after(resp.headers_mut(), decision.retry_after());
            resp
        }
    }
}
