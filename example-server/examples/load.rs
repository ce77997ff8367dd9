//! Load benchmark: requests/s and p50/p99 latency of an authenticated,
//! tenant-scoped read and write with every control on (the real router:
//! headers, JWT verification, rate-limit tiers, tenant transaction through
//! the query guard, audit append with fsync for the write), against the same
//! SQL served by a bare handler with every control off.
//!
//! `cargo run --release -p hisn-example-server --example load -- [requests] [concurrency]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use hisn_example_server::config::Rate;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn send(stream: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> u16 {
    stream.write_all(req).await.unwrap();
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            return head[9..12].parse().unwrap();
        }
    }
}

/// `requests` requests over `concurrency` keep-alive connections; `make(i)` builds request i.
async fn run(
    addr: SocketAddr,
    requests: u64,
    concurrency: u64,
    make: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>,
) -> (f64, Duration, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, make) = (next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return lat;
                }
                let req = make(i);
                let t = Instant::now();
                let status = send(&mut s, &req, &mut buf).await;
                assert!(
                    status < 300,
                    "status {status}: {}",
                    String::from_utf8_lossy(&buf)
                );
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: usize| all[(all.len() - 1) * p / 100];
    // Request counts stay far below 2^52: the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let rps = requests as f64 / secs;
    (rps, pct(50), pct(99))
}

#[derive(Clone)]
struct Bare(sqlx::SqlitePool, String);

async fn bare_read(State(b): State<Bare>, Path(id): Path<String>) -> Json<Value> {
    let r =
        sqlx::query("SELECT id, name, serial, location FROM assets WHERE tenant_id = ? AND id = ?")
            .bind(&b.1)
            .bind(&id)
            .fetch_one(&b.0)
            .await
            .unwrap();
    Json(
        json!({ "id": r.get::<String, _>("id"), "name": r.get::<String, _>("name"), "serial": r.get::<String, _>("serial"), "location": r.get::<String, _>("location") }),
    )
}

async fn bare_write(State(b): State<Bare>, Json(v): Json<Value>) -> Json<Value> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO assets (tenant_id, id, name, serial, location, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'bench', 0, 0)")
        .bind(&b.1)
        .bind(&id)
        .bind(v["name"].as_str().unwrap())
        .bind(v["serial"].as_str().unwrap())
        .bind(v["location"].as_str().unwrap())
        .execute(&b.0)
        .await
        .unwrap();
    Json(json!({ "id": id }))
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(5000);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hisn_example_server::Config::for_data_dir(dir.path());
    let high = Rate::new(1_000_000, 1).unwrap();
    (cfg.session_rate, cfg.tenant_rate, cfg.ip_rate) = (high, high, high);
    let app = hisn_example_server::build(cfg).await.unwrap();
    hisn_example_server::demo::run(&app).await.unwrap();
    let tenant: String = sqlx::query_scalar("SELECT id FROM tenants ORDER BY created_at LIMIT 1")
        .fetch_one(app.state.platform.as_sqlite().unwrap())
        .await
        .unwrap();
    let asset: String = sqlx::query_scalar("SELECT id FROM assets WHERE tenant_id = ?")
        .bind(&tenant)
        .fetch_one(app.state.platform.as_sqlite().unwrap())
        .await
        .unwrap();
    let (_, v) = hisn_example_server::demo::call(&app, "POST", "/auth/login", None, Some(json!({ "tenant": tenant, "email": "owner@acme.example", "password": "correct horse battery staple" }))).await.unwrap();
    let token = v["token"].as_str().unwrap().to_owned();

    let bare = Bare(
        app.state.platform.as_sqlite().unwrap().clone(),
        tenant.clone(),
    );
    let bare_router = axum::Router::new()
        .route("/bare/assets/{id}", get(bare_read))
        .route("/bare/assets", post(bare_write))
        .with_state(bare);
    let hisn = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (hisn_addr, base_addr) = (hisn.local_addr().unwrap(), base.local_addr().unwrap());
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(
            hisn,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    tokio::spawn(async move { axum::serve(base, bare_router).await });

    let read = |path: String, auth: Option<String>| -> Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync> {
        let auth = auth
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nhost: bench\r\n{auth}\r\n").into_bytes();
        Arc::new(move |_| req.clone())
    };
    let write = |path: String, auth: Option<String>| -> Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync> {
        let auth = auth
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        Arc::new(move |i| {
            let body = json!({ "name": "Bench", "serial": format!("B-{i}-{}", uuid::Uuid::new_v4()), "location": "x" }).to_string();
            format!("POST {path} HTTP/1.1\r\nhost: bench\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
        })
    };
    let writes = (requests / 5).max(100);
    let cases = [
        (
            "read, controls on",
            hisn_addr,
            read(format!("/t/{tenant}/assets/{asset}"), Some(token.clone())),
            requests,
        ),
        (
            "read, controls off",
            base_addr,
            read(format!("/bare/assets/{asset}"), None),
            requests,
        ),
        (
            "write, controls on",
            hisn_addr,
            write(format!("/t/{tenant}/assets"), Some(token.clone())),
            writes,
        ),
        (
            "write, controls off",
            base_addr,
            write("/bare/assets".into(), None),
            writes,
        ),
    ];
    println!("{requests} reads / {writes} writes, {concurrency} connections");
    let mut rps = Vec::new();
    for (name, addr, make, n) in cases {
        run(addr, n.min(500), concurrency, make.clone()).await; // warm-up
        let (r, p50, p99) = run(addr, n, concurrency, make).await;
        println!(
            "{name:22} {r:>9.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        rps.push(r);
    }
    println!(
        "read cost of the controls: {:.2}x (target <= 1.5x)",
        rps[1] / rps[0]
    );
    println!("write cost of the controls: {:.2}x", rps[3] / rps[2]);
}
