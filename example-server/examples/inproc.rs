//! In-process cost of a tenant read: the real router (every control on) and a
//! bare handler running the same SQL, both called directly (no sockets, one
//! thread), so what differs is what the controls add.
//!
//! `cargo run --release -p hisn-example-server --example inproc -- [requests] [on|off|both]`
//!
//! Prints the median and p99 microseconds per read of each side. For a
//! machine-independent figure, run it under `valgrind --tool=callgrind` with
//! two request counts and divide the difference of the instruction totals by
//! the difference of the counts (example-server README, "Load benchmark").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::Request;
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt as _;

#[derive(Clone)]
struct Bare(sqlx::SqlitePool, String);

async fn bare_read(State(Bare(pool, tenant)): State<Bare>, Path(id): Path<String>) -> Json<Value> {
    let r =
        sqlx::query("SELECT id, name, serial, location FROM assets WHERE tenant_id = ? AND id = ?")
            .bind(tenant)
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let (id, name, serial, location): (String, String, String, String) = (
        r.get("id"),
        r.get("name"),
        r.get("serial"),
        r.get("location"),
    );
    Json(json!({ "id": id, "name": name, "serial": serial, "location": location }))
}

async fn measure(
    router: &axum::Router,
    path: &str,
    token: Option<&str>,
    n: usize,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = Request::builder().method("GET").uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let t = Instant::now();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        lat.push(t.elapsed());
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    lat.sort();
    lat
}

fn report(name: &str, lat: &[Duration]) {
    if lat.is_empty() {
        return;
    }
    let pct = |p: usize| lat[(lat.len() - 1) * p / 100];
    println!(
        "{name}: {} reads, p50 {:.1} us, p99 {:.1} us",
        lat.len(),
        pct(50).as_secs_f64() * 1e6,
        pct(99).as_secs_f64() * 1e6
    );
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mode = args.get(1).map_or("both", String::as_str);
    let dir = tempfile::tempdir().unwrap();
    let app = hisn_example_server::build(support::unlimited_config(dir.path()))
        .await
        .unwrap();
    hisn_example_server::demo::run(&app).await.unwrap();
    let (pool, tenant, asset) = support::sqlite_tenant_asset(&app).await;
    let token = support::owner_token(&app, &tenant).await;
    let bare = axum::Router::new()
        .route("/bare/assets/{id}", get(bare_read))
        .with_state(Bare(pool, tenant.clone()));
    let on_path = format!("/t/{tenant}/assets/{asset}");
    let off_path = format!("/bare/assets/{asset}");
    // Warm both (statement caches, session cache, limiter keys).
    measure(&app.router, &on_path, Some(&token), 50).await;
    measure(&bare, &off_path, None, 50).await;
    if mode != "off" {
        report(
            "controls on ",
            &measure(&app.router, &on_path, Some(&token), n).await,
        );
    }
    if mode != "on" {
        report("controls off", &measure(&bare, &off_path, None, n).await);
    }
}
