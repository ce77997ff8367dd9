//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the route
//! table itself, so it covers every route the router serves (a test checks
//! both directions). Every JSON request body has a schema under
//! `components/schemas` with the limits the handlers enforce (lengths,
//! enums, `additionalProperties: false` for bodies that refuse unknown
//! fields), and every route its success response. The schemas are written
//! here by hand beside the route table; `tests/server/openapi.rs` walks the
//! router and proves them against the handlers (a body missing a required
//! field, past a `maxLength`, or with an unknown field is a `400`; one at
//! the limits is not).

use axum::Json;
use axum::http::Method;
use hisn_tenant_guard::grant::MAX_GRANT_LIFETIME_SECS;
use serde_json::{Map, Value, json};

use super::attachments::MAX_ATTACHMENT;
use super::public::{MAX_PASSWORD, MIN_PASSWORD};
use super::work_orders::STATES;
use super::{Access, routes};

fn params(path: &str, access: Access) -> Vec<Value> {
    let mut out: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let uuid =
                name == "tenant" || !path.contains("/api-keys/") && !path.contains("/subjects/");
            let schema = if uuid {
                json!({ "type": "string", "format": "uuid" })
            } else {
                json!({ "type": "string", "maxLength": 256 })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    match access {
        Access::SignedUrl => {
            out.push(json!({ "name": "expires", "in": "query", "required": true, "schema": { "type": "integer" } }));
            out.push(json!({ "name": "sig", "in": "query", "required": true, "schema": { "type": "string" } }));
        }
        Access::Webhook => {
            for h in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                out.push(json!({ "name": h, "in": "header", "required": true, "schema": { "type": "string" } }));
            }
        }
        // Issuing a grant carries its reason in the body; metrics need none.
        Access::Operator if path.starts_with("/operator/") && !path.ends_with("/grants") => {
            out.push(json!({ "name": "x-reason", "in": "header", "required": true, "schema": { "type": "string", "minLength": 8 } }));
        }
        _ => {}
    }
    out
}

fn responses(access: Access, writes: bool, ok: Success) -> Value {
    let mut r = Map::new();
    let err = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let (status, body) = ok;
    let success = match body {
        Reply::Json(schema) => json!({
            "description": "Success",
            "content": { "application/json": { "schema": schema } }
        }),
        Reply::Text(media) => json!({
            "description": "Success",
            "content": { media: { "schema": { "type": "string" } } }
        }),
        Reply::Empty => json!({ "description": "Success, no body" }),
    };
    r.insert(status.to_owned(), success);
    if writes {
        r.insert("400".into(), err("Malformed or unknown field"));
        r.insert("413".into(), err("Body too large"));
    }
    match access {
        Access::Tenant => {
            r.insert("401".into(), err("Missing or invalid session token"));
            r.insert("403".into(), err("Role does not permit this"));
            r.insert(
                "404".into(),
                err("Missing, or another tenant's (the same answer)"),
            );
        }
        Access::SignedUrl => {
            r.insert(
                "404".into(),
                err("Bad, expired or missing signature, or no such file"),
            );
        }
        Access::Webhook => {
            r.insert("401".into(), err("Signature or token refused"));
            r.insert(
                "409".into(),
                err("The same event is being processed: retry after Retry-After"),
            );
        }
        Access::Operator => {
            r.insert("401".into(), err("Signature or token refused"));
        }
        _ => {}
    }
    r.insert(
        "429".into(),
        err("Rate-limited (Retry-After, RateLimit headers)"),
    );
    Value::Object(r)
}

/// A success body: JSON of a schema, text of a media type, or none (`204`).
enum Reply {
    Json(Value),
    Text(&'static str),
    Empty,
}

/// The success status and its body.
type Success = (&'static str, Reply);

/// `{"$ref": "#/components/schemas/<name>"}`.
fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn ok(name: &str) -> Success {
    ("200", Reply::Json(r(name)))
}

fn created(name: &str) -> Success {
    ("201", Reply::Json(r(name)))
}

/// The JSON request body schema (by component name) and the success
/// response of a route; `None` for a route this table does not know, which
/// the tests turn into a failure (every route must be described here).
fn bodies(method: &Method, path: &str) -> Option<(Option<&'static str>, Success)> {
    let m = method.as_str();
    Some(match (m, path) {
        ("GET", "/health") => (None, ok("Health")),
        ("GET", "/metrics") => (None, ("200", Reply::Text("text/plain"))),
        ("GET", "/openapi.json") => (None, ("200", Reply::Json(json!({ "type": "object" })))),
        ("POST", "/tenants") => (Some("SignUp"), created("TenantCreated")),
        ("POST", "/auth/login") => (Some("Login"), ok("SessionToken")),
        ("POST", "/auth/token") => (Some("ApiKeyExchange"), ok("SessionToken")),
        ("GET", "/files/{tenant}/{id}") => (None, ("200", Reply::Text("application/octet-stream"))),
        ("POST", "/webhooks/payments") => (Some("PaymentEvent"), ok("WebhookAck")),
        ("GET", "/operator/tenants/{tenant}/summary") => (None, ok("TenantSummary")),
        ("POST", "/operator/tenants/{tenant}/grants") => (Some("NewGrant"), created("GrantIssued")),
        ("DELETE", "/operator/tenants/{tenant}/grants/{id}")
        | ("DELETE", "/t/{tenant}/api-keys/{id}")
        | ("DELETE", "/t/{tenant}/assets/{id}") => (None, ("204", Reply::Empty)),
        ("POST", "/t/{tenant}/mfa/totp") => (None, created("TotpEnrolment")),
        ("POST", "/t/{tenant}/mfa/totp/confirm") => (Some("Code"), created("TotpConfirmed")),
        ("POST", "/t/{tenant}/mfa/step-up") => (Some("StepUp"), ok("SessionToken")),
        ("POST", "/t/{tenant}/me/password") => (Some("PasswordChange"), ok("SessionToken")),
        ("GET", "/t/{tenant}/notifications") => (None, ok("NotificationList")),
        ("GET", "/t/{tenant}/members") => (None, ok("MemberList")),
        ("POST", "/t/{tenant}/members") => (Some("NewMember"), created("Created")),
        ("PATCH", "/t/{tenant}/members/{id}/role") => (Some("RoleChange"), ok("RoleChanged")),
        ("GET", "/t/{tenant}/api-keys") => (None, ok("ApiKeyList")),
        ("POST", "/t/{tenant}/api-keys") => (Some("NewApiKey"), created("ApiKeyCreated")),
        ("GET", "/t/{tenant}/assets") => (None, ok("AssetList")),
        ("POST", "/t/{tenant}/assets") => (Some("NewAsset"), created("Created")),
        ("GET", "/t/{tenant}/assets/{id}") => (None, ok("Asset")),
        ("PATCH", "/t/{tenant}/assets/{id}") => (Some("AssetPatch"), ok("Asset")),
        ("POST", "/t/{tenant}/assets/{id}/attachments") => {
            (Some("Upload"), created("AttachmentCreated"))
        }
        ("GET", "/t/{tenant}/attachments/{id}") => (None, ok("Attachment")),
        ("GET", "/t/{tenant}/work-orders") => (None, ok("WorkOrderList")),
        ("POST", "/t/{tenant}/work-orders") => (Some("NewWorkOrder"), created("WorkOrderCreated")),
        ("GET", "/t/{tenant}/work-orders/{id}") => (None, ok("WorkOrder")),
        ("POST", "/t/{tenant}/work-orders/{id}/transition") => {
            (Some("Transition"), ok("WorkOrder"))
        }
        ("GET", "/t/{tenant}/integrations") => (None, ok("IntegrationList")),
        ("POST", "/t/{tenant}/integrations") => (Some("NewIntegration"), created("Created")),
        ("GET", "/t/{tenant}/integrations/{id}") => (None, ok("Integration")),
        ("POST", "/t/{tenant}/integrations/{id}/sync") => (None, ok("SyncResult")),
        ("GET", "/t/{tenant}/subscription") => (None, ok("Subscription")),
        ("GET", "/t/{tenant}/audit") => (None, ok("AuditPage")),
        ("GET", "/t/{tenant}/subjects/{id}/report") => (None, ok("SubjectReport")),
        ("GET", "/t/{tenant}/export") => (None, ok("Export")),
        ("POST", "/t/{tenant}/erase") => (Some("Erase"), ok("Erased")),
        _ => return None,
    })
}

/// A string of 1..=`max` characters (the handlers' `text` check: no control
/// characters either).
fn text(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max })
}

/// A strict object: these properties, these required, nothing else.
fn strict(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

/// [`strict`] with a valid example (the tests post it, and variants of it
/// past each limit).
fn strict_ex(required: &[&str], properties: Value, example: Value) -> Value {
    let mut v = strict(required, properties);
    v["examples"] = json!([example]);
    v
}

/// An object answered by the server (clients should ignore unknown fields).
fn answer(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn list_of(item: Value) -> Value {
    answer(
        &["items", "total"],
        json!({ "items": { "type": "array", "items": item }, "total": { "type": "integer", "minimum": 0 } }),
    )
}

fn int() -> Value {
    json!({ "type": "integer" })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

/// Request body schemas: the limits are the ones the handlers' `Validate`
/// implementations enforce (a test posts past each one and expects `400`).
fn request_schemas() -> Map<String, Value> {
    let password =
        json!({ "type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD });
    let email = json!({ "type": "string", "minLength": 3, "maxLength": 254, "format": "email" });
    let member_role = json!({ "type": "string", "enum": ["owner", "admin", "member", "viewer"] });
    let mut m = Map::new();
    let mut add = |name: &str, v: Value| {
        m.insert(name.to_owned(), v);
    };
    add(
        "SignUp",
        strict_ex(
            &["name", "owner_email", "owner_password"],
            json!({ "name": text(100), "owner_email": email, "owner_password": password }),
            json!({ "name": "Acme", "owner_email": "owner@acme.example", "owner_password": "correct horse battery staple" }),
        ),
    );
    add(
        "Login",
        strict_ex(
            &["tenant", "email", "password"],
            json!({ "tenant": text(64), "email": text(254), "password": { "type": "string", "minLength": 1, "maxLength": 1024 } }),
            json!({ "tenant": "00000000-0000-4000-8000-000000000000", "email": "owner@acme.example", "password": "correct horse battery staple" }),
        ),
    );
    add(
        "ApiKeyExchange",
        strict_ex(
            &["api_key"],
            json!({ "api_key": text(200) }),
            json!({ "api_key": "hisn_live_0000_example" }),
        ),
    );
    add(
        "PaymentEvent",
        strict_ex(
            &["type", "data"],
            json!({
                "type": { "type": "string", "const": "subscription.updated" },
                "data": strict(&["tenant_id", "plan", "status"], json!({
                    "tenant_id": string(),
                    "plan": { "type": "string", "enum": ["free", "pro", "enterprise"] },
                    "status": { "type": "string", "enum": ["active", "past_due", "canceled"] }
                }))
            }),
            json!({ "type": "subscription.updated", "data": { "tenant_id": "00000000-0000-4000-8000-000000000000", "plan": "pro", "status": "active" } }),
        ),
    );
    add(
        "NewGrant",
        strict_ex(
            &["support_user", "reason", "ticket", "ttl_secs"],
            json!({
                "support_user": text(128),
                "reason": { "type": "string", "minLength": 8, "maxLength": 1024, "description": "at least 8 characters besides surrounding white space" },
                "ticket": text(128),
                "ttl_secs": { "type": "integer", "minimum": 1, "maximum": MAX_GRANT_LIFETIME_SECS },
                "permissions": { "type": "array", "minItems": 1, "maxItems": 16, "items": text(64), "description": "absent: read-only" }
            }),
            json!({ "support_user": "support:alice", "reason": "customer cannot see work orders", "ticket": "SUP-1234", "ttl_secs": 3600 }),
        ),
    );
    add(
        "Code",
        strict_ex(
            &["code"],
            json!({ "code": text(64) }),
            json!({ "code": "123456" }),
        ),
    );
    add(
        "StepUp",
        json!({
            "type": "object",
            "properties": { "code": text(64), "recovery_code": text(64) },
            "oneOf": [{ "required": ["code"] }, { "required": ["recovery_code"] }],
            "additionalProperties": false,
            "examples": [{ "code": "123456" }]
        }),
    );
    add(
        "PasswordChange",
        strict_ex(
            &["current_password", "new_password"],
            json!({ "current_password": { "type": "string", "minLength": 1, "maxLength": 1024 }, "new_password": password }),
            json!({ "current_password": "not the current password", "new_password": "a new long passphrase" }),
        ),
    );
    add(
        "NewMember",
        strict_ex(
            &["email", "password", "role"],
            json!({ "email": email, "password": password, "role": member_role }),
            json!({ "email": "tech@acme.example", "password": "correct horse battery staple", "role": "member" }),
        ),
    );
    add(
        "RoleChange",
        strict_ex(
            &["role"],
            json!({ "role": member_role }),
            json!({ "role": "viewer" }),
        ),
    );
    add(
        "NewApiKey",
        strict_ex(
            &["name", "role"],
            json!({
                "name": text(100),
                "role": { "type": "string", "enum": ["member", "viewer"] },
                "ttl_days": { "type": "integer", "minimum": 1, "maximum": 365, "default": 90 }
            }),
            json!({ "name": "ci", "role": "viewer", "ttl_days": 30 }),
        ),
    );
    add(
        "NewAsset",
        strict_ex(
            &["name", "serial", "location"],
            json!({ "name": text(200), "serial": text(64), "location": text(200) }),
            json!({ "name": "Pump", "serial": "P-1", "location": "Riyadh" }),
        ),
    );
    add(
        "AssetPatch",
        json!({
            "type": "object",
            "properties": { "name": text(200), "location": text(200) },
            "minProperties": 1,
            "additionalProperties": false,
            "examples": [{ "location": "Jeddah" }]
        }),
    );
    add(
        "Upload",
        strict_ex(
            &["file_name", "content_base64"],
            json!({
                "file_name": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/\\\\]+$" },
                "content_base64": { "type": "string", "contentEncoding": "base64", "minLength": 1, "maxLength": MAX_ATTACHMENT.div_ceil(3) * 4, "description": "standard base64 of 1 to 32768 bytes" }
            }),
            json!({ "file_name": "manual.txt", "content_base64": "aGVsbG8gd29ybGQ=" }),
        ),
    );
    add(
        "NewWorkOrder",
        strict_ex(
            &["asset_id", "title"],
            json!({ "asset_id": { "type": "string", "format": "uuid", "minLength": 1, "maxLength": 36 }, "title": text(200) }),
            json!({ "asset_id": "00000000-0000-4000-8000-000000000000", "title": "Fix the seal" }),
        ),
    );
    add(
        "Transition",
        strict_ex(
            &["to"],
            json!({ "to": { "type": "string", "enum": STATES } }),
            json!({ "to": "in_progress" }),
        ),
    );
    add(
        "NewIntegration",
        strict_ex(
            &["name", "base_url", "username", "oauth_token", "password"],
            json!({
                "name": text(100),
                "base_url": { "type": "string", "minLength": 8, "maxLength": 500, "pattern": "^https://" },
                "username": text(200),
                "oauth_token": text(4096),
                "password": text(1024)
            }),
            json!({ "name": "ERP", "base_url": "https://erp.example/api", "username": "svc", "oauth_token": "gho_example_token", "password": "p@ss-w0rd-long" }),
        ),
    );
    add(
        "Erase",
        strict_ex(
            &["confirm"],
            json!({ "confirm": { "type": "string", "minLength": 1, "maxLength": 64, "description": "the tenant id, typed again" } }),
            json!({ "confirm": "00000000-0000-4000-8000-000000000000" }),
        ),
    );
    m
}

/// Response body schemas.
fn response_schemas() -> Map<String, Value> {
    let mut m = Map::new();
    let mut add = |name: &str, v: Value| {
        m.insert(name.to_owned(), v);
    };
    add(
        "Error",
        json!({ "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } }, "additionalProperties": false }),
    );
    add(
        "Health",
        answer(
            &["status", "schema"],
            json!({ "status": { "const": "ok" }, "schema": int() }),
        ),
    );
    add(
        "TenantCreated",
        answer(
            &["tenant_id", "owner_id"],
            json!({ "tenant_id": uuid(), "owner_id": uuid() }),
        ),
    );
    add(
        "SessionToken",
        answer(
            &["token", "token_type", "expires_in"],
            json!({ "token": string(), "token_type": { "const": "Bearer" }, "expires_in": { "type": "integer", "minimum": 1 } }),
        ),
    );
    add(
        "WebhookAck",
        answer(
            &["status"],
            json!({ "status": { "type": "string", "enum": ["processed", "duplicate"] } }),
        ),
    );
    add(
        "TenantSummary",
        answer(
            &["tenant", "counts"],
            json!({ "tenant": uuid(), "counts": { "type": "object", "additionalProperties": int() } }),
        ),
    );
    add(
        "GrantIssued",
        answer(
            &["grant_id", "token", "tenant_id", "access", "expires_at"],
            json!({ "grant_id": string(), "token": string(), "tenant_id": uuid(), "access": string(), "expires_at": int() }),
        ),
    );
    add(
        "TotpEnrolment",
        answer(
            &["secret", "otpauth_uri", "digits", "period"],
            json!({ "secret": string(), "otpauth_uri": string(), "digits": int(), "period": int() }),
        ),
    );
    add(
        "TotpConfirmed",
        answer(
            &["recovery_codes", "session"],
            json!({ "recovery_codes": { "type": "array", "items": string() }, "session": r("SessionToken") }),
        ),
    );
    add(
        "NotificationList",
        answer(
            &["items"],
            json!({ "items": { "type": "array", "items": answer(&["id", "kind", "body", "created_at"], json!({ "id": string(), "kind": string(), "body": {}, "created_at": int() })) } }),
        ),
    );
    add(
        "MemberList",
        list_of(answer(
            &["id", "email", "role", "created_at"],
            json!({ "id": uuid(), "email": string(), "role": string(), "created_at": int() }),
        )),
    );
    add("Created", answer(&["id"], json!({ "id": string() })));
    add(
        "RoleChanged",
        answer(&["id", "role"], json!({ "id": uuid(), "role": string() })),
    );
    add(
        "ApiKeyList",
        list_of(answer(
            &["id", "name", "role", "expires_at", "revoked", "created_at"],
            json!({ "id": string(), "name": string(), "role": string(), "expires_at": { "type": ["integer", "null"] }, "revoked": { "type": "boolean" }, "created_at": int() }),
        )),
    );
    add(
        "ApiKeyCreated",
        answer(
            &["id", "api_key", "expires_at"],
            json!({ "id": string(), "api_key": { "type": "string", "description": "shown once" }, "expires_at": int() }),
        ),
    );
    let asset = answer(
        &[
            "id",
            "name",
            "serial",
            "location",
            "created_by",
            "created_at",
            "updated_at",
        ],
        json!({ "id": uuid(), "name": string(), "serial": string(), "location": string(), "created_by": string(), "created_at": int(), "updated_at": int() }),
    );
    add("AssetList", list_of(r("Asset")));
    add("Asset", asset);
    add(
        "AttachmentCreated",
        answer(
            &["id", "url"],
            json!({ "id": uuid(), "url": { "type": "string", "description": "signed download path" } }),
        ),
    );
    add(
        "Attachment",
        answer(
            &["id", "asset_id", "file_name", "size", "sha256", "url"],
            json!({ "id": uuid(), "asset_id": uuid(), "file_name": string(), "size": int(), "sha256": string(), "url": string() }),
        ),
    );
    add(
        "WorkOrder",
        answer(
            &[
                "id",
                "asset_id",
                "title",
                "status",
                "created_by",
                "created_at",
                "updated_at",
            ],
            json!({ "id": uuid(), "asset_id": uuid(), "title": string(), "status": { "type": "string", "enum": STATES }, "created_by": string(), "created_at": int(), "updated_at": int() }),
        ),
    );
    add("WorkOrderList", list_of(r("WorkOrder")));
    add(
        "WorkOrderCreated",
        answer(
            &["id", "status"],
            json!({ "id": uuid(), "status": { "const": "open" } }),
        ),
    );
    add(
        "Integration",
        answer(
            &[
                "id",
                "name",
                "base_url",
                "username",
                "created_at",
                "oauth_token_hint",
            ],
            json!({ "id": uuid(), "name": string(), "base_url": string(), "username": string(), "created_at": int(), "oauth_token_hint": { "type": "string", "description": "`last4:xxxx`, or `unreadable` after crypto-shredding" } }),
        ),
    );
    add("IntegrationList", list_of(r("Integration")));
    add(
        "SyncResult",
        answer(
            &["status", "partner"],
            json!({ "status": { "const": "ok" }, "partner": {} }),
        ),
    );
    add(
        "Subscription",
        answer(
            &["plan", "status"],
            json!({ "plan": string(), "status": string() }),
        ),
    );
    add(
        "AuditPage",
        answer(
            &["items", "total", "verdict", "verification"],
            json!({ "items": { "type": "array", "items": { "type": "object" } }, "total": int(), "verdict": string(),
                "verification": answer(
                    &["verdict", "verified_size", "full_verified_size", "full_verified_age_secs", "full_verify_every_secs"],
                    json!({ "verdict": string(), "verified_size": int(), "full_verified_size": int(), "full_verified_age_secs": int(), "full_verify_every_secs": int() }),
                ) }),
        ),
    );
    add(
        "SubjectReport",
        json!({ "type": "object", "description": "every audit record about the subject, each with its proof status" }),
    );
    add(
        "Export",
        answer(
            &["assets", "work_orders"],
            json!({ "assets": { "type": "array", "items": uuid() }, "work_orders": { "type": "array", "items": uuid() } }),
        ),
    );
    add(
        "Erased",
        answer(
            &["erased", "rows_deleted"],
            json!({ "erased": { "const": true }, "rows_deleted": { "type": "integer", "minimum": 0 } }),
        ),
    );
    m
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        let writes = route.is_state_changing();
        let op_id = format!(
            "{method}{}",
            route.path.replace(['/', '{', '}', '-', '.'], "_")
        );
        // A route missing from `bodies` is documented without bodies; the
        // tests refuse that (every route has a response schema).
        let (request, success) =
            bodies(&route.method, route.path).unwrap_or((None, ("200", Reply::Empty)));
        let mut op = json!({
            "operationId": op_id,
            "parameters": params(route.path, route.access),
            "responses": responses(route.access, writes, success),
        });
        let security = match route.access {
            Access::Tenant => json!([{ "session": [] }]),
            Access::Operator => json!([{ "operator": [] }]),
            _ => json!([]),
        };
        op["security"] = security;
        if route.takes_idempotency_key()
            && let Some(p) = op["parameters"].as_array_mut()
        {
            p.push(json!({ "name": "idempotency-key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 255 } }));
        }
        if let Some(name) = request {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": r(name) } }
            });
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[method] = op;
    }
    let mut schemas = request_schemas();
    schemas.extend(response_schemas());
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Hisn reference server", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "operator": { "type": "http", "scheme": "bearer" }
            },
            "schemas": schemas
        }
    })
}

/// `GET /openapi.json`.
pub(super) async fn serve() -> Json<Value> {
    Json(document())
}
