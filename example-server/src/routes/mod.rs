//! The route table. The router is built from [`routes`] and nothing else, so
//! the tests that walk it (audit coverage, cross-tenant isolation) see every
//! route the server serves: a route added here without a test case fails them.

mod assets;
mod attachments;
mod audit;
mod extract;
mod grants;
mod integrations;
mod members;
mod mfa;
mod openapi;
mod operator;
mod public;
mod webhook;
mod work_orders;

use std::collections::BTreeMap;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use hisn_webhook_verify::idempotency::IdempotencyLayer;

pub use extract::{Body, Meta, Page, parse_id};
pub use grants::Session;
pub(crate) use grants::parse_action as parse_grant_action;
pub use openapi::document as openapi_document;
pub use operator::EscapeHatchAudit;

use crate::middleware::Principal;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// No credential (health, login, sign-up, the OpenAPI document).
    Public,
    /// A session token for the `{tenant}` in the path.
    Tenant,
    /// A signed URL.
    SignedUrl,
    /// A signed webhook delivery.
    Webhook,
    /// The operator console token (escape hatch, grants, metrics).
    Operator,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path pattern (axum syntax).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

impl Route {
    /// Whether the route changes state (and so must append an audit record).
    pub fn is_state_changing(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// Whether the route answers a secret meant to be shown once (a TOTP
    /// seed, recovery codes, a session token, an API key).
    pub fn answers_a_secret(&self) -> bool {
        self.method == Method::POST && ANSWERS_A_SECRET.contains(&self.path)
    }

    /// Whether the route accepts `Idempotency-Key` (a tenant write route
    /// that answers no secret): its response is stored for 24 h (in Redis in
    /// multi-instance mode) and answered again to a retry, so a secret there
    /// would be kept in plaintext outside the encrypted or hashed stores and
    /// shown twice.
    pub fn takes_idempotency_key(&self) -> bool {
        self.access == Access::Tenant && self.is_state_changing() && !self.answers_a_secret()
    }
}

/// `POST` routes whose answer holds a secret shown once (see
/// [`Route::answers_a_secret`];
/// `tests/server/review3.rs::secrets_are_neither_stored_nor_replayed_by_idempotency_keys`).
const ANSWERS_A_SECRET: &[&str] = &[
    "/t/{tenant}/mfa/totp",
    "/t/{tenant}/mfa/totp/confirm",
    "/t/{tenant}/mfa/step-up",
    "/t/{tenant}/me/password",
    "/t/{tenant}/api-keys",
];

macro_rules! r {
    ($m:ident, $path:literal, $access:ident, $h:expr) => {
        Route {
            method: method_of(stringify!($m)),
            path: $path,
            access: Access::$access,
            handler: $m($h),
        }
    };
}

fn method_of(m: &str) -> Method {
    match m {
        "post" => Method::POST,
        "patch" => Method::PATCH,
        "delete" => Method::DELETE,
        _ => Method::GET,
    }
}

/// Every route the server serves.
pub fn routes() -> Vec<Route> {
    vec![
        r!(get, "/health", Public, public::health),
        r!(get, "/metrics", Operator, public::metrics),
        r!(get, "/openapi.json", Public, openapi::serve),
        r!(post, "/tenants", Public, public::sign_up),
        r!(post, "/auth/login", Public, public::login),
        r!(post, "/auth/token", Public, public::api_key_token),
        r!(
            get,
            "/files/{tenant}/{id}",
            SignedUrl,
            attachments::download
        ),
        r!(post, "/webhooks/payments", Webhook, webhook::payments),
        r!(
            get,
            "/operator/tenants/{tenant}/summary",
            Operator,
            operator::summary
        ),
        r!(
            post,
            "/operator/tenants/{tenant}/grants",
            Operator,
            grants::issue
        ),
        r!(
            delete,
            "/operator/tenants/{tenant}/grants/{id}",
            Operator,
            grants::revoke
        ),
        r!(post, "/t/{tenant}/mfa/totp", Tenant, mfa::enrol_start),
        r!(
            post,
            "/t/{tenant}/mfa/totp/confirm",
            Tenant,
            mfa::enrol_confirm
        ),
        r!(post, "/t/{tenant}/mfa/step-up", Tenant, mfa::step_up),
        r!(
            post,
            "/t/{tenant}/me/password",
            Tenant,
            mfa::change_password
        ),
        r!(
            get,
            "/t/{tenant}/notifications",
            Tenant,
            grants::notifications
        ),
        r!(get, "/t/{tenant}/members", Tenant, members::list),
        r!(post, "/t/{tenant}/members", Tenant, members::create),
        r!(
            patch,
            "/t/{tenant}/members/{id}/role",
            Tenant,
            members::set_role
        ),
        r!(get, "/t/{tenant}/api-keys", Tenant, members::list_keys),
        r!(post, "/t/{tenant}/api-keys", Tenant, members::create_key),
        r!(
            delete,
            "/t/{tenant}/api-keys/{id}",
            Tenant,
            members::revoke_key
        ),
        r!(get, "/t/{tenant}/assets", Tenant, assets::list),
        r!(post, "/t/{tenant}/assets", Tenant, assets::create),
        r!(get, "/t/{tenant}/assets/{id}", Tenant, assets::get_one),
        r!(patch, "/t/{tenant}/assets/{id}", Tenant, assets::update),
        r!(delete, "/t/{tenant}/assets/{id}", Tenant, assets::remove),
        r!(
            post,
            "/t/{tenant}/assets/{id}/attachments",
            Tenant,
            attachments::upload
        ),
        r!(
            get,
            "/t/{tenant}/attachments/{id}",
            Tenant,
            attachments::get_one
        ),
        r!(get, "/t/{tenant}/work-orders", Tenant, work_orders::list),
        r!(post, "/t/{tenant}/work-orders", Tenant, work_orders::create),
        r!(
            get,
            "/t/{tenant}/work-orders/{id}",
            Tenant,
            work_orders::get_one
        ),
        r!(
            post,
            "/t/{tenant}/work-orders/{id}/transition",
            Tenant,
            work_orders::transition
        ),
        r!(get, "/t/{tenant}/integrations", Tenant, integrations::list),
        r!(
            post,
            "/t/{tenant}/integrations",
            Tenant,
            integrations::create
        ),
        r!(
            get,
            "/t/{tenant}/integrations/{id}",
            Tenant,
            integrations::get_one
        ),
        r!(
            post,
            "/t/{tenant}/integrations/{id}/sync",
            Tenant,
            integrations::sync
        ),
        r!(
            get,
            "/t/{tenant}/subscription",
            Tenant,
            webhook::subscription
        ),
        r!(get, "/t/{tenant}/audit", Tenant, audit::list),
        r!(
            get,
            "/t/{tenant}/subjects/{id}/report",
            Tenant,
            audit::subject_report
        ),
        r!(get, "/t/{tenant}/export", Tenant, audit::export),
        r!(post, "/t/{tenant}/erase", Tenant, audit::erase),
    ]
}

/// The router over [`routes`]; tenant write routes accept `Idempotency-Key`
/// (scoped to the tenant and the caller).
pub fn router(state: &AppState) -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes() {
        let idempotent = route.takes_idempotency_key();
        let mut handler = route.handler;
        if idempotent {
            let layer =
                IdempotencyLayer::new(state.idempotency.clone(), |parts: &http::request::Parts| {
                    parts
                        .extensions
                        .get::<Principal>()
                        .map(|p| format!("{}:{}", p.tenant, p.subject))
                })
                .required(false);
            // A keyed body is buffered up to the server's body limit, not
            // the layer's 1 MiB (a zero limit is refused: keep the default).
            let layer = match layer.clone().max_body(state.config.max_body_bytes) {
                Ok(bounded) => bounded,
                Err(_) => layer,
            };
            handler = handler.layer(layer);
        }
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(route.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}
