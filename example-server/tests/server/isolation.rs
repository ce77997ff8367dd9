//! The cross-tenant isolation suite. Tenant A attacks tenant B on every route
//! of the router's own route table: B's ids in the path, the query and the
//! body, A's token on B's path, lists and counts, forged and stolen-shape
//! tokens. Nothing of B may be read (no B id in any answer), written or
//! enumerated (B's id answers exactly like a random one), and B's data must
//! be byte-for-byte unchanged afterwards (snapshot hash). A new route without
//! a case here panics.

use axum::body::Body;
use axum::http::Request;
use hisn_example_server::routes::{Access, routes};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::common::{PASSWORD, Resp, Seed, Server, Tenant, request, server};
use crate::jwt_attacks::forged_tokens;

/// What an attempt must produce.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly this status.
    Status(u16),
    /// A success that names nothing of B.
    Clean,
}

pub(crate) struct World {
    pub(crate) a: Tenant,
    pub(crate) sa: Seed,
    pub(crate) b: Tenant,
    pub(crate) sb: Seed,
    /// A support grant for A (read and write): never opens B.
    pub(crate) grant_a: String,
}

impl World {
    fn b_ids(&self) -> Vec<&str> {
        let s = &self.sb;
        vec![
            &self.b.id,
            &self.b.owner,
            &s.asset,
            &s.work_order,
            &s.integration,
            &s.attachment,
            &s.member,
            &s.api_key_id,
        ]
    }

    /// The id of the kind `{id}` stands for in `path`, from `seed`.
    fn id_for<'s>(path: &str, seed: &'s Seed, owner: &'s str) -> &'s str {
        let before = path.split("/{id}").next().unwrap_or("");
        match before.rsplit('/').next().unwrap_or("") {
            "assets" => &seed.asset,
            "work-orders" => &seed.work_order,
            "integrations" => &seed.integration,
            "attachments" => &seed.attachment,
            "members" => &seed.member,
            "api-keys" => &seed.api_key_id,
            "subjects" => owner,
            other => panic!("isolation suite: no id kind for `{other}` in {path}; add one"),
        }
    }

    /// A body that would succeed for `method path` in A's own tenant.
    fn body(&self, method: &str, path: &str) -> Option<Value> {
        match (method, path) {
            (_, p) if method == "GET" || method == "DELETE" || p.ends_with("/sync") => None,
            ("POST", "/t/{tenant}/members") => {
                Some(json!({ "email": "x@alpha.example", "password": PASSWORD, "role": "viewer" }))
            }
            ("PATCH", "/t/{tenant}/members/{id}/role") => Some(json!({ "role": "viewer" })),
            ("POST", "/t/{tenant}/api-keys") => Some(json!({ "name": "k", "role": "viewer" })),
            ("POST", "/t/{tenant}/assets") => Some(
                json!({ "name": "n", "serial": format!("Z-{}", uuid::Uuid::new_v4()), "location": "l" }),
            ),
            ("PATCH", "/t/{tenant}/assets/{id}") => Some(json!({ "location": "moved" })),
            ("POST", "/t/{tenant}/assets/{id}/attachments") => {
                Some(json!({ "file_name": "f.txt", "content_base64": "AA==" }))
            }
            ("POST", "/t/{tenant}/work-orders") => {
                Some(json!({ "asset_id": self.sa.asset, "title": "t" }))
            }
            ("POST", "/t/{tenant}/work-orders/{id}/transition") => {
                Some(json!({ "to": "cancelled" }))
            }
            ("POST", "/t/{tenant}/integrations") => Some(
                json!({ "name": "n", "base_url": "https://x.example", "username": "u", "oauth_token": "tok-1", "password": "pw-1" }),
            ),
            ("POST", "/t/{tenant}/erase") => Some(json!({ "confirm": self.b.id })),
            ("POST", "/t/{tenant}/mfa/totp") => None,
            ("POST", "/t/{tenant}/mfa/totp/confirm") | ("POST", "/t/{tenant}/mfa/step-up") => {
                Some(json!({ "code": "123456" }))
            }
            ("POST", "/t/{tenant}/me/password") => Some(
                json!({ "current_password": PASSWORD, "new_password": "a different long password" }),
            ),
            _ => panic!("isolation suite: no body template for {method} {path}; add one"),
        }
    }
}

fn fill(path: &str, tenant: &str, id: &str) -> String {
    path.replace("{tenant}", tenant).replace("{id}", id)
}

/// Every attempt for one route.
fn attacks(
    srv: &Server,
    w: &World,
    method: &str,
    path: &'static str,
    access: Access,
) -> Vec<(String, Request<Body>, Expect)> {
    let (a, b) = (&w.a, &w.b);
    let mut out = Vec::new();
    let mut push = |what: String, req: Request<Body>, e: Expect| out.push((what, req, e));
    match access {
        Access::Tenant => {
            let has_id = path.contains("{id}");
            let b_id = if has_id {
                World::id_for(path, &w.sb, &b.owner)
            } else {
                ""
            };
            let a_id = if has_id {
                World::id_for(path, &w.sa, &a.owner)
            } else {
                ""
            };
            let body = w.body(method, path);
            // 1. A's token on B's path (with B's ids): 404, like a missing tenant.
            push(
                "A token, B path".into(),
                request(
                    method,
                    &fill(path, &b.id, b_id),
                    Some(&a.token),
                    body.as_ref(),
                ),
                Expect::Status(404),
            );
            // 2. B's id under A's own path: 404 (the subject report answers, but empty).
            if has_id {
                let e = if path.contains("/subjects/") {
                    Expect::Clean
                } else {
                    Expect::Status(404)
                };
                push(
                    "B id, A path".into(),
                    request(
                        method,
                        &fill(path, &a.id, b_id),
                        Some(&a.token),
                        body.as_ref(),
                    ),
                    e,
                );
            }
            // 3. B's tenant id in the body: refused as an unknown field.
            if let Some(Value::Object(mut m)) = body.clone() {
                m.insert("tenant_id".into(), json!(b.id));
                push(
                    "tenant_id in body".into(),
                    request(
                        method,
                        &fill(path, &a.id, a_id),
                        Some(&a.token),
                        Some(&Value::Object(m)),
                    ),
                    Expect::Status(400),
                );
            }
            // 4. B's ids in body fields that name other rows.
            if (method, path) == ("POST", "/t/{tenant}/work-orders") {
                let body = json!({ "asset_id": w.sb.asset, "title": "t" });
                push(
                    "B asset in body".into(),
                    request(method, &a.path("/work-orders"), Some(&a.token), Some(&body)),
                    Expect::Status(404),
                );
            }
            // 5. Lists and counts: only A's rows; B's tenant in the query is refused.
            if method == "GET" && !has_id {
                push(
                    "A list".into(),
                    request(method, &fill(path, &a.id, ""), Some(&a.token), None),
                    Expect::Clean,
                );
                let q = if path.ends_with("/assets")
                    || path.ends_with("/work-orders")
                    || path.ends_with("/integrations")
                    || path.ends_with("/audit")
                {
                    Expect::Status(400)
                } else {
                    Expect::Clean
                };
                push(
                    "B tenant in query".into(),
                    request(
                        method,
                        &format!("{}?tenant_id={}", fill(path, &a.id, ""), b.id),
                        Some(&a.token),
                        None,
                    ),
                    q,
                );
            }
            // 6. A support grant for A on B's path: 404, like a missing tenant.
            push(
                "A grant, B path".into(),
                request(
                    method,
                    &fill(path, &b.id, b_id),
                    Some(&w.grant_a),
                    body.as_ref(),
                ),
                Expect::Status(404),
            );
            // 7. JWT attacks against B's path: 401.
            push(
                "no token".into(),
                request(method, &fill(path, &b.id, b_id), None, body.as_ref()),
                Expect::Status(401),
            );
            for (name, t) in forged_tokens(srv, w) {
                push(
                    format!("forged token: {name}"),
                    request(method, &fill(path, &b.id, b_id), Some(&t), body.as_ref()),
                    Expect::Status(401),
                );
            }
        }
        _ => match (method, path) {
            ("GET", "/metrics") => {
                push(
                    "A session reads the operator's metrics".into(),
                    request(method, path, Some(&a.token), None),
                    Expect::Status(401),
                );
                push(
                    "A grant reads the operator's metrics".into(),
                    request(method, path, Some(&w.grant_a), None),
                    Expect::Status(401),
                );
            }
            ("GET", "/health") | ("GET", "/openapi.json") => push(
                "public".into(),
                request(method, path, None, None),
                Expect::Clean,
            ),
            ("POST", "/tenants") => {
                let body = json!({ "name": "x", "owner_email": "o@x.example", "owner_password": PASSWORD, "tenant_id": b.id });
                push(
                    "tenant_id in sign-up".into(),
                    request(method, path, None, Some(&body)),
                    Expect::Status(400),
                );
            }
            ("POST", "/auth/login") => {
                for (t, e) in [(&b.id, &a.email), (&b.id, &b.email)] {
                    let body =
                        json!({ "tenant": t, "email": e, "password": "A's password is not B's" });
                    push(
                        "login into B".into(),
                        request(method, path, None, Some(&body)),
                        Expect::Status(401),
                    );
                }
            }
            ("POST", "/auth/token") => {
                let mut k = w.sb.api_key.clone();
                let last = if k.ends_with('A') { 'B' } else { 'A' };
                k.pop();
                k.push(last);
                push(
                    "tampered B key".into(),
                    request(method, path, None, Some(&json!({ "api_key": k }))),
                    Expect::Status(401),
                );
                let a_key = request(
                    method,
                    path,
                    None,
                    Some(&json!({ "api_key": w.sa.api_key })),
                );
                push("A key".into(), a_key, Expect::Clean);
            }
            ("GET", "/files/{tenant}/{id}") => {
                let url =
                    w.sa.attachment_url
                        .replace(&a.id, &b.id)
                        .replace(&w.sa.attachment, &w.sb.attachment);
                push(
                    "A signature on B's file".into(),
                    request(method, &url, None, None),
                    Expect::Status(404),
                );
                push(
                    "B file unsigned".into(),
                    request(
                        method,
                        &format!("/files/{}/{}", b.id, w.sb.attachment),
                        None,
                        None,
                    ),
                    Expect::Status(404),
                );
            }
            ("POST", "/webhooks/payments") => {
                let body = json!({ "type": "subscription.updated", "data": { "tenant_id": b.id, "plan": "free", "status": "canceled" } });
                push(
                    "unsigned webhook for B".into(),
                    request(method, path, None, Some(&body)),
                    Expect::Status(401),
                );
            }
            ("GET", "/operator/tenants/{tenant}/summary") => {
                let mut r = request(method, &fill(path, &b.id, ""), Some(&a.token), None);
                r.headers_mut()
                    .insert("x-reason", "curiosity killed the cat".parse().unwrap());
                push("A session as operator".into(), r, Expect::Status(401));
            }
            ("POST", "/operator/tenants/{tenant}/grants") => {
                let body = json!({ "support_user": "support:eve", "reason": "tenant A wants B's data", "ticket": "SUP-1", "ttl_secs": 600 });
                push(
                    "A session issues a grant for B".into(),
                    request(method, &fill(path, &b.id, ""), Some(&a.token), Some(&body)),
                    Expect::Status(401),
                );
                push(
                    "A grant issues a grant for B".into(),
                    request(
                        method,
                        &fill(path, &b.id, ""),
                        Some(&w.grant_a),
                        Some(&body),
                    ),
                    Expect::Status(401),
                );
            }
            ("DELETE", "/operator/tenants/{tenant}/grants/{id}") => push(
                "A session revokes a grant of B".into(),
                request(
                    method,
                    &fill(path, &b.id, &uuid::Uuid::new_v4().to_string()),
                    Some(&a.token),
                    None,
                ),
                Expect::Status(401),
            ),
            _ => panic!("isolation suite: no case for {method} {path}; add one"),
        },
    }
    out
}

fn check(what: &str, method: &str, path: &str, r: &Resp, e: Expect, b_ids: &[&str]) {
    let text = String::from_utf8_lossy(&r.raw);
    match e {
        Expect::Status(s) => assert_eq!(r.status.as_u16(), s, "{method} {path} [{what}]: {text}"),
        Expect::Clean => assert!(
            r.status.is_success() || r.status == 400,
            "{method} {path} [{what}]: {}",
            r.status
        ),
    }
    for id in b_ids {
        if path.contains("/subjects/") && text.contains(&format!("\"subject\":\"{id}\"")) {
            // The report echoes the subject asked for; its entries must be empty.
            assert_eq!(
                r.body["entries"],
                json!([]),
                "{method} {path} [{what}]: {text}"
            );
            continue;
        }
        assert!(
            !text.contains(id),
            "{method} {path} [{what}] revealed B's {id}: {text}"
        );
    }
}

/// The tables a tenant's data lives in, with the column naming the tenant.
const TABLES: [(&str, &str); 7] = [
    ("tenants", "id"),
    ("accounts", "tenant_id"),
    ("api_keys", "tenant_id"),
    ("assets", "tenant_id"),
    ("work_orders", "tenant_id"),
    ("integrations", "tenant_id"),
    ("attachments", "tenant_id"),
];

/// Every row of `table` whose `col` is `tenant`, each as one text, sorted.
async fn rows_of(srv: &Server, table: &str, col: &str, tenant: &str) -> Vec<String> {
    if let Some(db) = &srv.pg {
        // The superuser reads past RLS: the snapshot must see everything.
        return sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t WHERE {col}::text = $1 ORDER BY 1"
        )))
        .bind(tenant)
        .fetch_all(&db.root)
        .await
        .unwrap();
    }
    let pool = srv.app.state.platform.as_sqlite().unwrap();
    let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    let expr = cols
        .iter()
        .map(|c| format!("quote({c})"))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {expr} FROM {table} WHERE {col} = ? ORDER BY 1"
    )))
    .bind(tenant)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Hash of everything stored about `tenant`: its rows in every table
/// (attachments with their encrypted bytes), and its subscription.
async fn snapshot(srv: &Server, tenant: &str) -> String {
    let mut h = Sha256::new();
    for (table, col) in TABLES {
        let rows = rows_of(srv, table, col, tenant).await;
        assert!(
            !rows.is_empty(),
            "snapshot of {table} is empty: nothing to protect"
        );
        h.update(format!("{table}:{rows:?}\n"));
    }
    hex::encode(h.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_lets_tenant_a_read_write_or_enumerate_tenant_b() {
    suite(&server().await).await;
}

/// The suite against `srv` (SQLite here; PostgreSQL with each layer alone in
/// `postgres.rs`).
pub(crate) async fn suite(srv: &Server) {
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let (sa, sb) = (srv.seed(&a).await, srv.seed(&b).await);
    let grant_a = srv.grant(&a, Some(&["read", "write"])).await;
    let w = World {
        a,
        sa,
        b,
        sb,
        grant_a,
    };
    let before = snapshot(srv, &w.b.id).await;
    let b_audit = srv.audit_len(&w.b.id).await;
    let b_ids = w.b_ids();
    let mut attempts = 0;
    for route in routes() {
        let method = route.method.as_str();
        let cases = attacks(srv, &w, method, route.path, route.access);
        assert!(!cases.is_empty(), "{method} {}", route.path);
        for (what, req, expect) in cases {
            let r = srv.send(req).await;
            check(&what, method, route.path, &r, expect, &b_ids);
            attempts += 1;
        }
        // Enumeration: B's id and a random id answer the same under A's path.
        if route.access == Access::Tenant
            && route.path.contains("{id}")
            && !route.path.contains("/subjects/")
        {
            let b_id = World::id_for(route.path, &w.sb, &w.b.owner);
            let random = uuid::Uuid::new_v4().to_string();
            let body = w.body(method, route.path);
            let r1 = srv
                .send(request(
                    method,
                    &fill(route.path, &w.a.id, b_id),
                    Some(&w.a.token),
                    body.as_ref(),
                ))
                .await;
            let r2 = srv
                .send(request(
                    method,
                    &fill(route.path, &w.a.id, &random),
                    Some(&w.a.token),
                    body.as_ref(),
                ))
                .await;
            assert_eq!(
                (r1.status, &r1.body),
                (r2.status, &r2.body),
                "{method} {}: B's id is distinguishable",
                route.path
            );
        }
    }
    assert!(attempts > 300, "only {attempts} attempts");
    assert_eq!(
        snapshot(srv, &w.b.id).await,
        before,
        "tenant B's data changed"
    );
    // B's chain gained only the failed logins against B's accounts (security
    // events B's admins must see), nothing A did inside B.
    let added = srv
        .app
        .state
        .audit
        .records(w.b.id.parse().unwrap(), b_audit, 1000)
        .await
        .unwrap();
    assert!(
        !added.is_empty(),
        "the failed login into B was not recorded"
    );
    for rec in added {
        assert_eq!(
            rec["action"], "auth.login_failed",
            "A's attack wrote {rec} into B's audit chain"
        );
    }
    // B still reads its own data, and its secrets still decrypt (not shredded by A's erase attempts).
    let r = srv
        .call(
            "GET",
            &w.b.path(&format!("/integrations/{}", w.sb.integration)),
            Some(&w.b.token),
            None,
        )
        .await;
    assert_eq!(r.body["oauth_token_hint"], "last4:1234");
    let r = srv
        .call("GET", &w.b.path("/assets"), Some(&w.b.token), None)
        .await;
    assert_eq!(r.body["total"], 1);
    // The denials were counted by layer.
    let m = hisn_example_server::metrics::global();
    assert!(m.denials("auth") > 0 && m.denials("tenant_path") > 0);
}
