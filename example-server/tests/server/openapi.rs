//! `/openapi.json` body schemas, proven against the handlers: the route
//! list comes from the router, every route has a documented success
//! response, every route that reads a JSON body has a request schema (and no
//! other route has one), the documented required fields, lengths, ranges,
//! enums and `additionalProperties: false` are exactly what the handlers
//! refuse with `400`, a body at the documented limits is not refused, and
//! the answers of the routes match their response schemas.

use axum::http::StatusCode;
use hisn_example_server::routes::{Access, routes};
use serde_json::{Value, json};

use crate::common::{Seed, Server, Tenant, request, server};

/// A server with a seeded tenant whose owner has a fresh second factor.
async fn world() -> (Server, Tenant, Seed, Value) {
    let srv = server().await;
    let t = srv.tenant("Docs").await;
    let seed = srv.seed(&t).await;
    let doc = srv.call("GET", "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    (srv, t, seed, doc.body)
}

/// `path` with its parameters replaced by ids of `t`'s seeded rows.
fn concrete(path: &str, t: &Tenant, seed: &Seed, grant: &str) -> String {
    let id = if path.contains("/assets/") {
        &seed.asset
    } else if path.contains("/work-orders/") {
        &seed.work_order
    } else if path.contains("/integrations/") {
        &seed.integration
    } else if path.contains("/attachments/") {
        &seed.attachment
    } else if path.contains("/members/") || path.contains("/subjects/") {
        &seed.member
    } else if path.contains("/api-keys/") {
        &seed.api_key_id
    } else if path.contains("/grants/") {
        grant
    } else {
        ""
    };
    path.replace("{tenant}", &t.id).replace("{id}", id)
}

/// Send `body` to `method path` with the credential its access needs.
async fn send(
    srv: &Server,
    access: Access,
    method: &str,
    path: &str,
    t: &Tenant,
    body: &Value,
) -> crate::common::Resp {
    static DELIVERY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    match access {
        Access::Webhook => {
            let n = DELIVERY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            srv.send(srv.webhook(&format!("msg_docs_{n}"), body)).await
        }
        Access::Operator => {
            let mut req = request(method, path, Some(&srv.operator_token()), Some(body));
            req.headers_mut()
                .insert("x-reason", "schema test of the console".parse().unwrap());
            srv.send(req).await
        }
        Access::Tenant => {
            srv.call(method, path, Some(&t.token), Some(body.clone()))
                .await
        }
        _ => srv.call(method, path, None, Some(body.clone())).await,
    }
}

/// Resolve a `$ref` to its component.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            let found = &doc["components"]["schemas"][name];
            assert!(found.is_object(), "dangling $ref {r}");
            found
        }
        None => schema,
    }
}

/// The request body schema of an operation, resolved.
fn request_schema<'a>(doc: &'a Value, op: &'a Value) -> Option<&'a Value> {
    let s = op.get("requestBody")?;
    Some(resolve(doc, &s["content"]["application/json"]["schema"]))
}

/// The one success response of an operation: status and body schema.
fn success<'a>(doc: &'a Value, op: &'a Value) -> (u16, Option<&'a Value>, Option<&'a str>) {
    let ok: Vec<(&String, &Value)> = op["responses"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .collect();
    assert_eq!(ok.len(), 1, "{op}");
    let (status, r) = ok[0];
    let content = r.get("content").and_then(Value::as_object);
    let (media, schema) = content
        .and_then(|c| c.iter().next())
        .map(|(m, v)| (m.as_str(), resolve(doc, &v["schema"])))
        .unzip();
    (status.parse().unwrap(), schema, media)
}

/// Whether `v` matches `schema` (the keywords this document uses). `Err`
/// names the first mismatch.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let fail = |what: &str| Err(format!("{at}: {what} (value {v})"));
    if let Some(c) = schema.get("const")
        && c != v
    {
        return fail("const");
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return fail("enum");
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !types.is_empty() && !types.contains(&kind) {
        return fail("type");
    }
    if let (Some(fmt), Some(s)) = (schema["format"].as_str(), v.as_str())
        && fmt == "uuid"
        && uuid::Uuid::try_parse(s).is_err()
    {
        return fail("format uuid");
    }
    if let Some(s) = v.as_str() {
        let n = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| n < m) {
            return fail("minLength");
        }
        if schema["maxLength"].as_u64().is_some_and(|m| n > m) {
            return fail("maxLength");
        }
        if schema["pattern"] == "^https://" && !s.starts_with("https://") {
            return fail("pattern");
        }
    }
    if let Some(n) = v.as_i64() {
        if schema["minimum"].as_i64().is_some_and(|m| n < m) {
            return fail("minimum");
        }
        if schema["maximum"].as_i64().is_some_and(|m| n > m) {
            return fail("maximum");
        }
    }
    if let Value::Array(a) = v {
        let n = a.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|m| n < m) {
            return fail("minItems");
        }
        if schema["maxItems"].as_u64().is_some_and(|m| n > m) {
            return fail("maxItems");
        }
    }
    if let Value::Object(o) = v {
        if schema["minProperties"]
            .as_u64()
            .is_some_and(|m| (o.len() as u64) < m)
        {
            return fail("minProperties");
        }
        if let Some(alts) = schema["oneOf"].as_array() {
            let matching = alts
                .iter()
                .filter(|a| {
                    a["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .all(|r| o.contains_key(r.as_str().unwrap_or_default()))
                })
                .count();
            if matching != 1 {
                return fail("oneOf");
            }
        }
        for r in schema["required"].as_array().into_iter().flatten() {
            if !o.contains_key(r.as_str().unwrap()) {
                return fail(&format!("required {r}"));
            }
        }
        for (k, x) in o {
            if let Some(p) = schema["properties"].get(k) {
                check(doc, p, x, &format!("{at}.{k}"))?;
            } else if let Some(extra) = schema.get("additionalProperties") {
                if *extra == json!(false) {
                    return fail(&format!("unknown field {k}"));
                }
                check(doc, extra, x, &format!("{at}.{k}"))?;
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, x) in items.iter().enumerate() {
            check(doc, s, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// A string like `example` of exactly `n` characters (padded where the
/// field's shape allows: before the `@` of an e-mail, as base64 `A`s).
fn sized(schema: &Value, example: &str, n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    if schema["contentEncoding"] == "base64" {
        // `A`s and one `=`: valid base64 of the largest size at this length.
        return format!("{}=", "A".repeat(n.saturating_sub(1)));
    }
    let len = example.chars().count();
    if n <= len {
        return example.chars().take(n).collect();
    }
    let pad = "a".repeat(n - len);
    if schema["format"] == "email" {
        format!("{pad}{example}")
    } else {
        format!("{example}{pad}")
    }
}

/// `base` with the value at `path` replaced (`None`: removed).
fn with(base: &Value, path: &[&str], v: Option<Value>) -> Value {
    let mut out = base.clone();
    let (last, parents) = path.split_last().unwrap();
    let mut cur = &mut out;
    for p in parents {
        cur = &mut cur[*p];
    }
    let obj = cur.as_object_mut().unwrap();
    match v {
        Some(v) => {
            obj.insert((*last).to_owned(), v);
        }
        None => {
            obj.remove(*last);
        }
    }
    out
}

/// Bodies derived from `example` that the schema refuses (each with what it
/// breaks) and bodies at the schema's limits that it accepts.
fn variants(
    schema: &Value,
    example: &Value,
    path: &[&str],
    refused: &mut Vec<(String, Value)>,
    accepted: &mut Vec<(String, Value)>,
    root: &Value,
) {
    let here = path.join(".");
    let at = |base: &Value| -> Value {
        if path.is_empty() {
            base.clone()
        } else {
            path.iter().fold(base, |v, p| &v[*p]).clone()
        }
    };
    let set = |v: Value| -> Value {
        if path.is_empty() {
            v
        } else {
            with(root, path, Some(v))
        }
    };
    let current = at(root);
    if schema["additionalProperties"] == json!(false) {
        let v = with(&current, &["hisn_unknown_field"], Some(json!("x")));
        refused.push((format!("{here}: unknown field"), set(v)));
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        refused.push((
            format!("{here}.{r}: missing"),
            set(with(&current, &[r], None)),
        ));
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        // Exactly one of the alternatives' fields: none, or all, is refused.
        let names: Vec<&str> = alts
            .iter()
            .flat_map(|a| a["required"].as_array().unwrap())
            .map(|n| n.as_str().unwrap())
            .collect();
        let mut none = current.clone();
        let mut all = current.clone();
        for n in &names {
            none.as_object_mut().unwrap().remove(*n);
            all[*n] = json!("123456");
        }
        refused.push((format!("{here}: none of {names:?}"), set(none)));
        refused.push((format!("{here}: all of {names:?}"), set(all)));
    }
    if schema["minProperties"] == json!(1) {
        refused.push((format!("{here}: empty"), set(json!({}))));
    }
    for (name, p) in schema["properties"].as_object().into_iter().flatten() {
        let mut sub: Vec<&str> = path.to_vec();
        sub.push(name);
        let label = sub.join(".");
        let Some(value) = example.get(name) else {
            // An optional field the example leaves out: its range only.
            if let (Some(min), Some(max)) = (p["minimum"].as_u64(), p["maximum"].as_u64()) {
                refused.push((
                    format!("{label} below minimum"),
                    with(root, &sub, Some(json!(min - 1))),
                ));
                refused.push((
                    format!("{label} above maximum"),
                    with(root, &sub, Some(json!(max + 1))),
                ));
                accepted.push((
                    format!("{label} at maximum"),
                    with(root, &sub, Some(json!(max))),
                ));
            }
            if let Some(max) = p["maxItems"].as_u64() {
                let item = json!("read");
                let over = vec![item.clone(); usize::try_from(max).unwrap() + 1];
                refused.push((
                    format!("{label} above maxItems"),
                    with(root, &sub, Some(json!(over))),
                ));
                refused.push((
                    format!("{label} below minItems"),
                    with(root, &sub, Some(json!([]))),
                ));
                let long = "a".repeat(
                    usize::try_from(p["items"]["maxLength"].as_u64().unwrap()).unwrap() + 1,
                );
                refused.push((
                    format!("{label} item above maxLength"),
                    with(root, &sub, Some(json!([long]))),
                ));
            }
            continue;
        };
        if p["type"] == "object" {
            variants(p, value, &sub, refused, accepted, root);
            continue;
        }
        if let Some(s) = value.as_str() {
            if let Some(max) = p["maxLength"].as_u64() {
                let max = usize::try_from(max).unwrap();
                refused.push((
                    format!("{label} above maxLength"),
                    with(root, &sub, Some(json!(sized(p, s, max + 1)))),
                ));
                accepted.push((
                    format!("{label} at maxLength"),
                    with(root, &sub, Some(json!(sized(p, s, max)))),
                ));
            }
            if let Some(min) = p["minLength"].as_u64() {
                let min = usize::try_from(min).unwrap();
                refused.push((
                    format!("{label} below minLength"),
                    with(root, &sub, Some(json!(sized(p, s, min - 1)))),
                ));
            }
            if p.get("enum").is_some() || p.get("const").is_some() {
                refused.push((
                    format!("{label} outside enum"),
                    with(root, &sub, Some(json!("hisn-not-a-value"))),
                ));
            }
        }
        if value.is_u64() {
            if let Some(min) = p["minimum"].as_u64() {
                refused.push((
                    format!("{label} below minimum"),
                    with(root, &sub, Some(json!(min - 1))),
                ));
            }
            if let Some(max) = p["maximum"].as_u64() {
                refused.push((
                    format!("{label} above maximum"),
                    with(root, &sub, Some(json!(max + 1))),
                ));
                accepted.push((
                    format!("{label} at maximum"),
                    with(root, &sub, Some(json!(max))),
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_has_a_response_schema_and_every_json_body_a_request_schema() {
    let (srv, t, seed, doc) = world().await;
    let grant = srv.grant(&t, None).await;
    let grant_id = grant_id(&grant);
    let mut with_body = 0;
    for route in routes() {
        let method = route.method.as_str();
        let op = &doc["paths"][route.path][method.to_ascii_lowercase()];
        let (status, schema, media) = success(&doc, op);
        match status {
            204 => assert!(schema.is_none(), "{method} {}: 204 with a body", route.path),
            _ => assert!(
                schema.is_some_and(|s| s.get("type").is_some() || s.get("$ref").is_some())
                    && media.is_some(),
                "{method} {}: no response schema",
                route.path
            ),
        }
        if !route.is_state_changing() {
            assert!(op.get("requestBody").is_none(), "{method} {}", route.path);
            continue;
        }
        // Does the handler read a strict JSON body? A body with only an
        // unknown field is a `400` exactly when it does.
        let path = concrete(route.path, &t, &seed, &grant_id);
        let probe = json!({ "hisn_unknown_field": 1 });
        let r = send(&srv, route.access, method, &path, &t, &probe).await;
        let reads_body = r.status == StatusCode::BAD_REQUEST;
        let documented = request_schema(&doc, op);
        assert_eq!(
            reads_body,
            documented.is_some(),
            "{method} {}: answered {} to an unknown field, documented body: {documented:?}",
            route.path,
            r.status
        );
        if let Some(s) = documented {
            assert_eq!(s["type"], "object", "{method} {}", route.path);
            assert_eq!(
                s["additionalProperties"],
                json!(false),
                "{method} {}",
                route.path
            );
            assert!(
                s["examples"][0].is_object(),
                "{method} {}: no example",
                route.path
            );
            with_body += 1;
        }
    }
    assert!(with_body >= 15, "only {with_body} routes with a JSON body");
}

fn grant_id(token: &str) -> String {
    use base64::Engine as _;
    let claims = token.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    v["jti"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_schemas_state_exactly_what_the_handlers_refuse() {
    let (srv, t, seed, doc) = world().await;
    let grant = srv.grant(&t, None).await;
    let grant_id = grant_id(&grant);
    let mut checked = 0;
    for route in routes() {
        let method = route.method.as_str();
        let op = &doc["paths"][route.path][method.to_ascii_lowercase()];
        let Some(schema) = request_schema(&doc, op) else {
            continue;
        };
        let path = concrete(route.path, &t, &seed, &grant_id);
        let example = &schema["examples"][0];
        check(&doc, schema, example, "example").unwrap();
        let (mut refused, mut accepted) = (Vec::new(), Vec::new());
        variants(schema, example, &[], &mut refused, &mut accepted, example);
        accepted.insert(0, ("the example".to_owned(), example.clone()));
        for (what, body) in &refused {
            assert!(
                check(&doc, schema, body, "body").is_err(),
                "{method} {}: the schema accepts {what}",
                route.path
            );
            let r = send(&srv, route.access, method, &path, &t, body).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {}: {what} is documented as refused: {:?}",
                route.path,
                r.body
            );
            checked += 1;
        }
        let (status, response, _) = success(&doc, op);
        for (what, body) in &accepted {
            check(&doc, schema, body, "body").unwrap();
            let r = send(&srv, route.access, method, &path, &t, body).await;
            assert_ne!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {}: {what} is within the documented limits: {:?}",
                route.path,
                r.body
            );
            assert!(
                r.status != StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {}: {what}",
                route.path
            );
            if r.status.is_success() {
                assert_eq!(r.status.as_u16(), status, "{method} {}: {what}", route.path);
                if let Some(s) = response {
                    check(&doc, s, &r.body, "response").unwrap_or_else(|e| {
                        panic!(
                            "{method} {}: answer to {what} does not match its schema: {e}",
                            route.path
                        )
                    });
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} refusals checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_answer_what_their_response_schemas_say() {
    let (srv, t, seed, doc) = world().await;
    let mut checked = 0;
    for route in routes().iter().filter(|r| !r.is_state_changing()) {
        let op = &doc["paths"][route.path]["get"];
        let (status, schema, media) = success(&doc, op);
        let r = match route.access {
            Access::SignedUrl => srv.call("GET", &seed.attachment_url, None, None).await,
            Access::Operator => {
                let path = concrete(route.path, &t, &seed, "");
                let mut req = request("GET", &path, Some(&srv.operator_token()), None);
                req.headers_mut()
                    .insert("x-reason", "schema test of the console".parse().unwrap());
                srv.send(req).await
            }
            _ => {
                let path = concrete(route.path, &t, &seed, "");
                srv.call("GET", &path, Some(&t.token), None).await
            }
        };
        assert_eq!(
            r.status.as_u16(),
            status,
            "GET {}: {:?}",
            route.path,
            r.body
        );
        let content_type = r.headers["content-type"].to_str().unwrap();
        let media = media.unwrap();
        assert!(
            content_type.starts_with(media),
            "GET {}: {content_type} is not {media}",
            route.path
        );
        if media == "application/json" {
            check(&doc, schema.unwrap(), &r.body, "response")
                .unwrap_or_else(|e| panic!("GET {}: {e}", route.path));
        }
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
    // The checker is not vacuous: a wrong answer fails it.
    let asset = &doc["components"]["schemas"]["Asset"];
    assert!(check(&doc, asset, &json!({ "id": seed.asset }), "asset").is_err());
}
