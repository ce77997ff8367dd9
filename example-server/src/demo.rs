//! `hisn-example-server demo`: seed two tenants through the real router (every
//! control on) and print curl commands, with the seeded ids, that show each
//! control refusing an attack once the server runs.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::app::App;

/// Send one JSON request through `app`'s router.
pub async fn call(
    app: &App,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value), String> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).map_err(|e| e.to_string())?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app
        .router
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, v))
}

fn field(v: &Value, k: &str) -> Result<String, String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("missing {k} in {v}"))
}

/// Seed tenants A and B and print the tour.
pub async fn run(app: &App) -> Result<(), String> {
    let mut seeded = Vec::new();
    for (name, email) in [
        ("Acme Pumps", "owner@acme.example"),
        ("Beta Valves", "owner@beta.example"),
    ] {
        let password = "correct horse battery staple";
        let (st, v) = call(
            app,
            "POST",
            "/tenants",
            None,
            Some(json!({ "name": name, "owner_email": email, "owner_password": password })),
        )
        .await?;
        if st != StatusCode::CREATED {
            return Err(format!("sign-up failed: {st} {v}"));
        }
        let tenant = field(&v, "tenant_id")?;
        let (_, v) = call(
            app,
            "POST",
            "/auth/login",
            None,
            Some(json!({ "tenant": tenant, "email": email, "password": password })),
        )
        .await?;
        let token = field(&v, "token")?;
        let (_, v) = call(
            app,
            "POST",
            &format!("/t/{tenant}/assets"),
            Some(&token),
            Some(json!({ "name": "Pump 1", "serial": "P-001", "location": "Riyadh" })),
        )
        .await?;
        let asset = field(&v, "id")?;
        seeded.push((tenant, email, asset));
    }
    let base = format!("http://{}", app.state.config.listen);
    let (a, a_email, a_asset) = &seeded[0];
    let (b, _, b_asset) = &seeded[1];
    println!("Seeded two tenants (password: correct horse battery staple).\n");
    println!("Start the server in another terminal:  cargo run -p hisn-example-server\n");
    println!("# Log in as tenant A's owner and keep the token:");
    println!(
        "TOKEN=$(curl -s {base}/auth/login -H 'content-type: application/json' \\\n  -d '{{\"tenant\":\"{a}\",\"email\":\"{a_email}\",\"password\":\"correct horse battery staple\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')\n"
    );
    println!("# Own data: 200");
    println!("curl -i {base}/t/{a}/assets/{a_asset} -H \"authorization: Bearer $TOKEN\"\n");
    println!(
        "# Tenant B's asset id under A's path: 404 (same as missing; the query guard scoped it)"
    );
    println!("curl -i {base}/t/{a}/assets/{b_asset} -H \"authorization: Bearer $TOKEN\"\n");
    println!("# A's token on B's path: 404 (tenant-guard compares the path tenant with the token)");
    println!("curl -i {base}/t/{b}/assets -H \"authorization: Bearer $TOKEN\"\n");
    println!("# Mass assignment of tenant_id: 400 (unknown fields refused)");
    println!(
        "curl -i {base}/t/{a}/assets -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n  -d '{{\"name\":\"x\",\"serial\":\"x\",\"location\":\"x\",\"tenant_id\":\"{b}\"}}'\n"
    );
    println!("# A forged token (alg none): 401");
    println!("curl -i {base}/t/{a}/assets -H 'authorization: Bearer eyJhbGciOiJub25lIn0.e30.'\n");
    println!("# Rate limit: the 11th request within 5 s of one session is 429 with Retry-After");
    println!(
        "for i in $(seq 12); do curl -s -o /dev/null -w '%{{http_code}} ' {base}/t/{a}/assets -H \"authorization: Bearer $TOKEN\"; done; echo\n"
    );
    println!("# The audit trail of tenant A (admins only), verified against signed checkpoints");
    println!("curl -s {base}/t/{a}/audit -H \"authorization: Bearer $TOKEN\"\n");
    println!(
        "# A sensitive admin action (a new member) with a password-only session: 401 with an RFC 9470 step-up challenge"
    );
    println!(
        "curl -i {base}/t/{a}/members -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n  -d '{{\"email\":\"new@alpha.example\",\"password\":\"a long enough password\",\"role\":\"viewer\"}}'\n"
    );
    println!(
        "# Enrol TOTP (the secret and otpauth:// URI are shown once), then POST /t/{a}/mfa/totp/confirm {{\"code\":\"...\"}}"
    );
    println!("curl -s -X POST {base}/t/{a}/mfa/totp -H \"authorization: Bearer $TOKEN\"\n");
    println!("# Security decisions, for the operator only: without the console token, 401");
    println!("curl -i {base}/metrics\n");
    println!(
        "# With the operator token (generated into {keys} for local use)",
        keys = app
            .state
            .config
            .data_dir
            .join(crate::keys::KEY_FILE)
            .display()
    );
    println!(
        "OPERATOR=$(sed -n 's/.*\"operator_token\": *\"\\([^\"]*\\)\".*/\\1/p' {keys})",
        keys = app
            .state
            .config
            .data_dir
            .join(crate::keys::KEY_FILE)
            .display()
    );
    println!("curl -s {base}/metrics -H \"authorization: Bearer $OPERATOR\"");
    Ok(())
}
