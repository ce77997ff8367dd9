//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the route
//! table itself, so it covers every route the router serves (a test checks
//! both directions). Request bodies are described as strict JSON objects
//! (`additionalProperties: false`); their field lists live in the handlers.

use axum::Json;
use serde_json::{Map, Value, json};

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
        // Issuing a grant carries its reason in the body.
        Access::Operator if !path.ends_with("/grants") => {
            out.push(json!({ "name": "x-reason", "in": "header", "required": true, "schema": { "type": "string", "minLength": 8 } }));
        }
        _ => {}
    }
    out
}

fn responses(access: Access, writes: bool) -> Value {
    let mut r = Map::new();
    let err = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    r.insert("200".into(), json!({ "description": "OK" }));
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
        Access::Webhook | Access::Operator => {
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
        let mut op = json!({
            "operationId": op_id,
            "parameters": params(route.path, route.access),
            "responses": responses(route.access, writes),
        });
        let security = match route.access {
            Access::Tenant => json!([{ "session": [] }]),
            Access::Operator => json!([{ "operator": [] }]),
            _ => json!([]),
        };
        op["security"] = security;
        if writes
            && route.access == Access::Tenant
            && let Some(p) = op["parameters"].as_array_mut()
        {
            p.push(json!({ "name": "idempotency-key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 255 } }));
        }
        if writes && !route.path.ends_with("/sync") && route.method != axum::http::Method::DELETE {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false } } }
            });
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Hisn reference server", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "operator": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } }, "additionalProperties": false }
            }
        }
    })
}

/// `GET /openapi.json`.
pub(super) async fn serve() -> Json<Value> {
    Json(document())
}
