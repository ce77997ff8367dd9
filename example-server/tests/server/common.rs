//! A server per test (its own temporary data directory), request helpers and
//! a seeded world of two tenants.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use hisn_example_server::config::Rate;
use hisn_example_server::{App, Config};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Server {
    pub app: App,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database the server runs on (PostgreSQL tests).
    pub pg: Option<std::sync::Arc<crate::services::TestDb>>,
}

/// Limits high enough that suites never hit them (rate-limit tests set their own).
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::for_data_dir(dir);
    c.session_rate = Rate::new(100_000, 1).unwrap();
    c.tenant_rate = Rate::new(100_000, 1).unwrap();
    c.ip_rate = Rate::new(100_000, 1).unwrap();
    c.login_account_rate = Rate::new(10_000, 1).unwrap();
    c.login_ip_rate = Rate::new(10_000, 1).unwrap();
    c.webhook_rate = Rate::new(10_000, 1).unwrap();
    c
}

pub async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    server_with(test_config(dir.path()), dir).await
}

pub async fn server_with(config: Config, dir: tempfile::TempDir) -> Server {
    let app = hisn_example_server::build(config).await.unwrap();
    Server { app, dir, pg: None }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

impl Server {
    pub async fn send_from(&self, mut req: Request<Body>, ip: [u8; 4]) -> Resp {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 41000))));
        let resp = self.app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        self.send_from(req, [203, 0, 113, 7]).await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.send(request(method, path, token, body.as_ref())).await
    }

    /// Sign up a tenant, log its owner in and enrol the owner's TOTP (the
    /// token has a fresh second factor).
    pub async fn tenant(&self, name: &str) -> Tenant {
        let mut t = self.tenant_without_totp(name).await;
        // The owner enrols TOTP: sensitive admin actions need a recent second factor.
        let (uri, recovery, token) = self.enrol_totp(&t).await;
        (t.totp, t.recovery, t.token) = (uri, recovery, token);
        t
    }

    /// Sign up a tenant and log its owner in with the password only.
    pub async fn tenant_without_totp(&self, name: &str) -> Tenant {
        let email = format!("owner@{}.example", name.to_lowercase());
        let r = self
            .call(
                "POST",
                "/tenants",
                None,
                Some(json!({ "name": name, "owner_email": email, "owner_password": PASSWORD })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["tenant_id"].as_str().unwrap().to_owned();
        let owner = r.body["owner_id"].as_str().unwrap().to_owned();
        let token = self.login(&id, &email, PASSWORD).await;
        Tenant {
            id,
            owner,
            email,
            token,
            totp: String::new(),
            recovery: Vec::new(),
        }
    }

    /// Enrol TOTP for the account of `t.token`: the `otpauth://` URI, the
    /// recovery codes and the stepped-up session token.
    pub async fn enrol_totp(&self, t: &Tenant) -> (String, Vec<String>, String) {
        let r = self
            .call("POST", &t.path("/mfa/totp"), Some(&t.token), None)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let uri = r.body["otpauth_uri"].as_str().unwrap().to_owned();
        let code = totp_code(&uri, 0);
        let r = self
            .call(
                "POST",
                &t.path("/mfa/totp/confirm"),
                Some(&t.token),
                Some(json!({ "code": code })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let recovery = r.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let token = r.body["session"]["token"].as_str().unwrap().to_owned();
        (uri, recovery, token)
    }

    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> String {
        let r = self
            .call(
                "POST",
                "/auth/login",
                None,
                Some(json!({ "tenant": tenant, "email": email, "password": password })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// One of everything in `t`.
    pub async fn seed(&self, t: &Tenant) -> Seed {
        let tok = Some(t.token.as_str());
        let serial = format!("S-{}", &t.id[..8]);
        let r = self
            .call(
                "POST",
                &t.path("/assets"),
                tok,
                Some(json!({ "name": "Pump", "serial": serial, "location": "Riyadh" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let asset = r.body["id"].as_str().unwrap().to_owned();
        let r = self
            .call(
                "POST",
                &t.path("/work-orders"),
                tok,
                Some(json!({ "asset_id": asset, "title": "Fix the seal" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let work_order = r.body["id"].as_str().unwrap().to_owned();
        let r = self
            .call(
                "POST",
                &t.path("/integrations"),
                tok,
                Some(json!({ "name": "ERP", "base_url": "https://erp.example/api", "username": "svc", "oauth_token": "gho_secrettoken1234", "password": "p@ss-w0rd-long" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let integration = r.body["id"].as_str().unwrap().to_owned();
        let r = self
            .call(
                "POST",
                &t.path(&format!("/assets/{asset}/attachments")),
                tok,
                Some(json!({ "file_name": "manual.txt", "content_base64": "aGVsbG8gd29ybGQ=" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let attachment = r.body["id"].as_str().unwrap().to_owned();
        let attachment_url = r.body["url"].as_str().unwrap().to_owned();
        let r = self
            .call("POST", &t.path("/members"), tok, Some(json!({ "email": format!("tech@{}.example", &t.id[..8]), "password": PASSWORD, "role": "member" })))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let member = r.body["id"].as_str().unwrap().to_owned();
        let r = self
            .call(
                "POST",
                &t.path("/api-keys"),
                tok,
                Some(json!({ "name": "ci", "role": "viewer" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let api_key_id = r.body["id"].as_str().unwrap().to_owned();
        let api_key = r.body["api_key"].as_str().unwrap().to_owned();
        Seed {
            asset,
            work_order,
            integration,
            attachment,
            attachment_url,
            member,
            api_key_id,
            api_key,
        }
    }

    /// A signed payment webhook delivery.
    pub fn webhook(&self, id: &str, body: &Value) -> Request<Body> {
        let raw = body.to_string();
        let headers = self
            .app
            .state
            .webhook
            .sign(&hisn_webhook_verify::SignInput::new(raw.as_bytes()).id(id))
            .unwrap();
        let mut b = Request::builder()
            .method("POST")
            .uri("/webhooks/payments")
            .header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(Body::from(raw)).unwrap()
    }

    /// A support grant for `t` issued by the operator console (read-only
    /// unless `permissions`): its token.
    pub async fn grant(&self, t: &Tenant, permissions: Option<&[&str]>) -> String {
        let mut body = json!({ "support_user": "support:alice", "reason": "customer cannot see work orders", "ticket": "SUP-1234", "ttl_secs": 3600 });
        if let Some(p) = permissions {
            body["permissions"] = json!(p);
        }
        let r = self
            .call(
                "POST",
                &format!("/operator/tenants/{}/grants", t.id),
                Some(&self.operator_token()),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }

    pub fn operator_token(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("local-keys.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["operator_token"].as_str().unwrap().to_owned()
    }

    pub async fn audit_len(&self, tenant: &str) -> u64 {
        self.app
            .state
            .audit
            .len(tenant.parse().unwrap())
            .await
            .unwrap()
    }

    pub async fn last_audit(&self, tenant: &str) -> Value {
        let t = tenant.parse().unwrap();
        let n = self.app.state.audit.len(t).await.unwrap();
        assert!(n > 0, "no audit record for {tenant}");
        self.app
            .state
            .audit
            .records(t, n - 1, 1)
            .await
            .unwrap()
            .pop()
            .unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub owner: String,
    pub email: String,
    pub token: String,
    /// The owner's `otpauth://` URI (the authenticator app's copy of the secret).
    pub totp: String,
    /// The owner's unused recovery codes.
    pub recovery: Vec<String>,
}

/// The TOTP code of `uri` at now + `offset_secs`.
pub fn totp_code(uri: &str, offset_secs: i64) -> String {
    let totp = hisn_crypto_vault::totp::OtpAuthUri::parse(uri)
        .unwrap()
        .into_totp();
    let now = std::time::SystemTime::now();
    let at = if offset_secs >= 0 {
        now + std::time::Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - std::time::Duration::from_secs(offset_secs.unsigned_abs())
    };
    totp.code_at(at).unwrap().to_string()
}

impl Tenant {
    pub fn path(&self, rest: &str) -> String {
        format!("/t/{}{rest}", self.id)
    }
}

#[derive(Debug, Clone)]
pub struct Seed {
    pub asset: String,
    pub work_order: String,
    pub integration: String,
    pub attachment: String,
    pub attachment_url: String,
    pub member: String,
    pub api_key_id: String,
    pub api_key: String,
}

/// A log writer the tests read back: what the server's log pipeline wrote.
#[derive(Clone, Default)]
pub struct Buf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
