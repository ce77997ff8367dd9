//! Load benchmark: requests/s and p50/p99 latency of an authenticated,
//! tenant-scoped read and write with every control on (the real router:
//! headers, JWT verification, rate-limit tiers, tenant transaction through
//! the query guard, audit append with fsync for the write), against the same
//! SQL served by a bare handler with every control off.
//!
//! `cargo run --release -p hisn-example-server --example load -- [requests] [concurrency] [rounds] [pg]`
//!
//! Each round runs the four cases one after the other (controls on and off
//! alternate, so a noisy neighbour hits both); the summary is the median of
//! the rounds. With `pg` the server runs on PostgreSQL (row-level security
//! and the query guard) in a fresh database created through
//! `HISN_TEST_DATABASE_URL` (a superuser, as for the tests) and dropped at
//! the end; the bare handler reads the same table as that superuser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
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
enum Bare {
    Sqlite(sqlx::SqlitePool, String),
    Pg(sqlx::PgPool, uuid::Uuid),
}

async fn bare_read(State(b): State<Bare>, Path(id): Path<String>) -> Json<Value> {
    const SQL: &str =
        "SELECT id, name, serial, location FROM assets WHERE tenant_id = ? AND id = ?";
    let (id, name, serial, location): (String, String, String, String) = match &b {
        Bare::Sqlite(pool, tenant) => {
            let r = sqlx::query(SQL)
                .bind(tenant)
                .bind(&id)
                .fetch_one(pool)
                .await
                .unwrap();
            (
                r.get("id"),
                r.get("name"),
                r.get("serial"),
                r.get("location"),
            )
        }
        Bare::Pg(pool, tenant) => {
            let sql =
                "SELECT id, name, serial, location FROM assets WHERE tenant_id = $1 AND id = $2";
            let r = sqlx::query(sql)
                .bind(tenant)
                .bind(&id)
                .fetch_one(pool)
                .await
                .unwrap();
            (
                r.get("id"),
                r.get("name"),
                r.get("serial"),
                r.get("location"),
            )
        }
    };
    Json(json!({ "id": id, "name": name, "serial": serial, "location": location }))
}

async fn bare_write(State(b): State<Bare>, Json(v): Json<Value>) -> Json<Value> {
    let id = uuid::Uuid::new_v4().to_string();
    let (name, serial, location) = (
        v["name"].as_str().unwrap(),
        v["serial"].as_str().unwrap(),
        v["location"].as_str().unwrap(),
    );
    match &b {
        Bare::Sqlite(pool, tenant) => {
            sqlx::query("INSERT INTO assets (tenant_id, id, name, serial, location, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'bench', 0, 0)")
                .bind(tenant).bind(&id).bind(name).bind(serial).bind(location)
                .execute(pool).await.unwrap();
        }
        Bare::Pg(pool, tenant) => {
            sqlx::query("INSERT INTO assets (tenant_id, id, name, serial, location, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'bench', 0, 0)")
                .bind(tenant).bind(&id).bind(name).bind(serial).bind(location)
                .execute(pool).await.unwrap();
        }
    }
    Json(json!({ "id": id }))
}

/// A fresh PostgreSQL database with an owner and an application role (as
/// the tests make them), on the superuser URL `base`: the server's config
/// and a superuser pool on it. [`drop_pg`] removes them.
async fn create_pg(base: &str, cfg: &mut hisn_example_server::Config) -> (String, sqlx::PgPool) {
    use std::str::FromStr;
    let name = format!(
        "hisn_load_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = sqlx::PgPool::connect(base).await.unwrap();
    for sql in [
        format!("CREATE ROLE {name}_owner LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE ROLE {name}_app LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE ROLE {name}_audit LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE ROLE {name}_platform LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE DATABASE {name} OWNER {name}_owner"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    admin.close().await;
    let (scheme, rest) = base.split_once("://").unwrap();
    let (user, host) = rest
        .split_once('@')
        .map_or(("postgres", rest), |(u, h)| (u, h));
    let host = host.split('/').next().unwrap();
    let url = |role: &str| format!("{scheme}://{role}@{host}/{name}");
    cfg.database_url = Some(url(&format!("{name}_app")).parse().unwrap());
    cfg.audit_database_url = Some(url(&format!("{name}_audit")).parse().unwrap());
    cfg.platform_database_url = Some(url(&format!("{name}_platform")).parse().unwrap());
    cfg.migrate_database_url = Some(url(&format!("{name}_owner")).parse().unwrap());
    cfg.admin_database_url = Some(url(user).parse().unwrap());
    let opts = sqlx::postgres::PgConnectOptions::from_str(base)
        .unwrap()
        .database(&name);
    let root = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .unwrap();
    (name, root)
}

async fn drop_pg(base: &str, name: &str) {
    let admin = sqlx::PgPool::connect(base).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {name}_app"),
        format!("DROP ROLE IF EXISTS {name}_audit"),
        format!("DROP ROLE IF EXISTS {name}_platform"),
        format!("DROP ROLE IF EXISTS {name}_owner"),
    ] {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await;
    }
    admin.close().await;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let pg = std::env::args().any(|a| a == "pg");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(5000);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let rounds = args.get(2).copied().unwrap_or(3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::unlimited_config(dir.path());
    let base = pg.then(|| {
        std::env::var("HISN_TEST_DATABASE_URL")
            .expect("pg: set HISN_TEST_DATABASE_URL to a superuser URL")
    });
    let pg_db = match &base {
        Some(b) => Some(create_pg(b, &mut cfg).await),
        None => None,
    };
    let app = hisn_example_server::build(cfg).await.unwrap();
    hisn_example_server::demo::run(&app).await.unwrap();
    let (bare, tenant, asset) = match &pg_db {
        None => {
            let (pool, tenant, asset) = support::sqlite_tenant_asset(&app).await;
            (Bare::Sqlite(pool, tenant.clone()), tenant, asset)
        }
        Some((_, root)) => {
            let tenant: String =
                sqlx::query_scalar("SELECT id::text FROM tenants ORDER BY created_at LIMIT 1")
                    .fetch_one(root)
                    .await
                    .unwrap();
            let tenant: uuid::Uuid = tenant.parse().unwrap();
            let asset: String = sqlx::query_scalar("SELECT id FROM assets WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(root)
                .await
                .unwrap();
            (Bare::Pg(root.clone(), tenant), tenant.to_string(), asset)
        }
    };
    let token = support::owner_token(&app, &tenant).await;

    let bare_router = axum::Router::new()
        .route("/bare/assets/{id}", get(bare_read))
        .route("/bare/assets", post(bare_write))
        .with_state(bare);
    let hisn = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (hisn_addr, base_addr) = (hisn.local_addr().unwrap(), base_l.local_addr().unwrap());
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(
            hisn,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    tokio::spawn(async move { axum::serve(base_l, bare_router).await });

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
    println!(
        "{} | {requests} reads / {writes} writes, {concurrency} connections, {rounds} rounds",
        if pg {
            "PostgreSQL (RLS + query guard)"
        } else {
            "SQLite (query guard)"
        }
    );
    for (_, addr, make, n) in &cases {
        run(*addr, (*n).min(500), concurrency, make.clone()).await; // warm-up
    }
    // [case] -> per round (req/s, p50 ms, p99 ms)
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); cases.len()];
    for round in 1..=rounds {
        for (i, (name, addr, make, n)) in cases.iter().enumerate() {
            let (r, p50, p99) = run(*addr, *n, concurrency, make.clone()).await;
            let (p50, p99) = (p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
            println!(
                "round {round}  {name:22} {r:>9.0} req/s   p50 {p50:>8.2} ms   p99 {p99:>8.2} ms"
            );
            results[i].push((r, p50, p99));
        }
        let (on, off) = (
            results[0][results[0].len() - 1].0,
            results[1][results[1].len() - 1].0,
        );
        println!("round {round}  read cost of the controls: {:.2}x", off / on);
    }
    println!("median of {rounds} rounds:");
    let mut rps = Vec::new();
    for ((name, ..), rs) in cases.iter().zip(&results) {
        let r = median(rs.iter().map(|x| x.0).collect());
        let p50 = median(rs.iter().map(|x| x.1).collect());
        let p99 = median(rs.iter().map(|x| x.2).collect());
        println!("  {name:22} {r:>9.0} req/s   p50 {p50:>8.2} ms   p99 {p99:>8.2} ms");
        rps.push(r);
    }
    let ratio = |on: usize, off: usize| {
        median(
            results[on]
                .iter()
                .zip(&results[off])
                .map(|(a, b)| b.0 / a.0)
                .collect(),
        )
    };
    println!(
        "read cost of the controls: {:.2}x (median of the rounds' ratios; target <= 1.5x)",
        ratio(0, 1)
    );
    println!("write cost of the controls: {:.2}x", ratio(2, 3));
    drop(app);
    if let (Some(b), Some((name, root))) = (&base, pg_db) {
        root.close().await;
        drop_pg(b, &name).await;
    }
}
