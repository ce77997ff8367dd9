//! `tenant_guard/tx_overhead`: one indexed SELECT in a tenant transaction
//! (`BEGIN` + transaction-local signed tenant context, verified by the
//! `SECURITY DEFINER` context function once per statement, the statement through the
//! query guard, RLS on, as the non-owner app role) against the same SELECT,
//! scoped by hand, in a bare transaction on a copy of the table without RLS,
//! on loopback PostgreSQL. Target: `hisn` ≤ 1.3 × `baseline`. The printed
//! interleaved medians add a third, untimed variant: the bare transaction plus
//! one bound `set_config` round trip, the floor of sending the context bound.
//!
//! Both variants run on the same pooled connection, so the same server
//! process: two backends can sit on different CPUs of a small VM, and their
//! wake-up latency then differs by 2× for reasons unrelated to Hisn.
//!
//! Needs `HISN_TEST_DATABASE_URL` (a superuser URL); without it the group is
//! skipped with a message. It creates its own database and role and drops both.
// Setup failures abort the benchmark: there is nothing sensible to measure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use hisn_benches::{BASELINE, HISN};
use hisn_tenant_guard::db::PgTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey, Header};
use hisn_tenant_guard::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use hisn_tenant_guard::sqlx::types::JsonValue;
use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use hisn_tenant_guard::{Issuer, TenantContext, TokenVerifier, rls};

const TENANT: &str = "00000000-0000-4000-8000-000000000001";
const ROWS: u32 = 20_000;
/// The tenant context key (a benchmark's throwaway key).
const CONTEXT_KEY: [u8; 32] = [0x42; 32];

/// A job for the database thread: run `iters` iterations, reply with the time.
struct Job {
    hisn: bool,
    iters: u64,
    reply: mpsc::Sender<Duration>,
}

/// A verified context, minted the way a real request gets one.
fn context() -> TenantContext {
    let secret = b"bench-secret-bench-secret-bench-secret";
    let verifier = TokenVerifier::builder()
        .issuer(
            Issuer::new("bench", "bench", &[Algorithm::HS256])
                .key("k", DecodingKey::from_secret(secret)),
        )
        .build()
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k".into());
    let claims: JsonValue = format!(
        r#"{{"iss":"bench","aud":"bench","sub":"00000000-0000-4000-8000-0000000000aa","tenant_id":"{TENANT}","exp":{}}}"#,
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 86_400
    )
    .parse()
    .unwrap();
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
    verifier.verify(&token).unwrap()
}

async fn exec(conn: &mut PgConnection, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn worker(url: String, jobs: mpsc::Receiver<Job>) {
    let admin: PgConnectOptions = url.parse().unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let suffix = format!("{nanos}_{}", std::process::id());
    let (db, role) = (
        format!("hisn_t_bench_{suffix}"),
        format!("hisn_bench_app_{suffix}"),
    );
    let mut root = PgConnection::connect_with(&admin).await.unwrap();
    exec(&mut root, format!("create database \"{db}\"")).await;
    let owner_opts = admin.clone().database(&db);
    let mut owner = PgConnection::connect_with(&owner_opts).await.unwrap();
    exec(
        &mut owner,
        format!(
            "create table assets (id uuid not null default gen_random_uuid(), tenant_id uuid not null, name text not null, \
               primary key (tenant_id, id), unique (id));
             insert into assets (tenant_id, name)
               select ('00000000-0000-4000-8000-' || lpad(to_hex(g % 10 + 1), 12, '0'))::uuid, 'asset ' || g
               from generate_series(1, {ROWS}) g;
             create role \"{role}\" login;
             create table assets_plain (like assets including all);
             insert into assets_plain select * from assets;
             grant select on assets_plain to \"{role}\";
             {}
",
            rls::generate_sql(
                &rls::parse_tables("assets:tenant_id").unwrap(),
                &role,
                &rls::ContextKey::from_bytes(CONTEXT_KEY)
            )
            .unwrap()
        ),
    )
    .await;
    // Settle the new database before measuring: without this, the first variant
    // measured can run beside the checkpoint and autovacuum the setup set off.
    exec(&mut owner, "vacuum analyze assets, assets_plain".into()).await;
    exec(&mut root, "checkpoint".into()).await;
    let id: uuid_like::Id = {
        let s: String = sqlx::query_scalar(
            "select id::text from assets where tenant_id = $1::uuid order by id limit 1",
        )
        .bind(TENANT)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        uuid_like::Id(s)
    };
    let app_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(owner_opts.clone().username(&role))
        .await
        .unwrap();
    let guard = QueryGuard::new(
        TableRegistry::parse_spec("assets:tenant_id").unwrap(),
        Dialect::Postgres,
    );
    let pool = PgTenantPool::new(
        app_pool.clone(),
        guard,
        rls::ContextKey::from_bytes(CONTEXT_KEY),
    )
    .unwrap();
    let ctx = context();

    // Each job runs the variants alternately and times only the one asked
    // for: on a shared, noisy machine they then see the same background load.
    // Every iteration of every variant is also kept, to print the median of
    // each over triples run back to back: the ratio of those is the fairest one
    // on a machine whose wake-up latency drifts between criterion's phases.
    // The third variant (untimed by criterion) is the floor of any design that
    // sends the context bound: the bare transaction plus one bound
    // `set_config` round trip, no check, no RLS, no context function.
    // A value of a real token's shape and length (the floor sets it, nothing
    // reads it).
    let token = format!("v1.{TENANT}.{}.{}", u64::MAX, "0".repeat(64));
    let mut triples: Vec<[Duration; 3]> = Vec::new();
    while let Ok(job) = jobs.recv() {
        let mut timed = Duration::ZERO;
        for _ in 0..job.iters {
            let mut triple = [Duration::ZERO; 3];
            for variant in [
                Variant::of(job.hisn),
                Variant::of(!job.hisn),
                Variant::Floor,
            ] {
                let start = Instant::now();
                if variant == Variant::Hisn {
                    let mut tx = pool.begin(&ctx).await.unwrap();
                    let row = tx
                        .query("select name from assets where id = $1::uuid")
                        .unwrap()
                        .bind(id.0.as_str())
                        .fetch_one()
                        .await
                        .unwrap();
                    black_box(row);
                    tx.commit().await.unwrap();
                } else {
                    // Baseline: a bare transaction; the floor adds one bound
                    // `set_config` round trip to it.
                    let mut tx = app_pool.begin().await.unwrap();
                    if variant == Variant::Floor {
                        sqlx::query(
                            "select pg_catalog.set_config('hisn.tenant_context', $1, true)",
                        )
                        .bind(token.as_str())
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    }
                    let row = sqlx::query(
                        "select name from assets_plain where id = $1::uuid and tenant_id = $2::uuid",
                    )
                    .bind(id.0.as_str())
                    .bind(TENANT)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                    black_box(row);
                    tx.commit().await.unwrap();
                }
                let took = start.elapsed();
                if variant == Variant::of(job.hisn) {
                    timed += took;
                }
                triple[variant as usize] = took;
            }
            if triples.len() < 1_000_000 {
                triples.push(triple);
            }
        }
        let _ = job.reply.send(timed);
    }

    if !triples.is_empty() {
        let median = |i: usize| {
            let mut v: Vec<Duration> = triples.iter().map(|t| t[i]).collect();
            v.sort_unstable();
            v[v.len() / 2].as_secs_f64()
        };
        let (h, b, f) = (median(0), median(1), median(2));
        println!(
            "tenant_guard/tx_overhead: interleaved medians over {} triples: hisn {:.1} µs, baseline {:.1} µs, ratio {:.3}; \
             floor (baseline + one bound set_config round trip) {:.1} µs, ratio {:.3}",
            triples.len(),
            h * 1e6,
            b * 1e6,
            h / b,
            f * 1e6,
            f / b
        );
    }
    drop(pool);
    app_pool.close().await;
    exec(&mut owner, format!("drop owned by \"{role}\"")).await;
    let _ = owner.close().await;
    exec(&mut root, format!("drop database \"{db}\" with (force)")).await;
    exec(&mut root, format!("drop role \"{role}\"")).await;
    let _ = root.close().await;
}

/// The variants run back to back in every iteration (index into a triple).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Hisn = 0,
    Baseline = 1,
    Floor = 2,
}

impl Variant {
    fn of(hisn: bool) -> Self {
        if hisn { Self::Hisn } else { Self::Baseline }
    }
}

/// A text UUID (the bench crate has no `uuid` dependency of its own).
mod uuid_like {
    pub(crate) struct Id(pub(crate) String);
}

fn tx_overhead(c: &mut Criterion) {
    let Ok(url) = std::env::var("HISN_TEST_DATABASE_URL") else {
        println!("skipping tenant_guard/tx_overhead: HISN_TEST_DATABASE_URL is not set");
        return;
    };
    let (jobs, rx) = mpsc::channel::<Job>();
    // One current-thread runtime on its own thread owns the connections;
    // criterion's timing loop asks it to run N iterations and gets the time back,
    // so the channel hop is outside the measured time.
    let db_thread = std::thread::spawn(move || sqlx::test_block_on(worker(url, rx)));
    let run = |hisn: bool, iters: u64| {
        let (reply, answer) = mpsc::channel();
        jobs.send(Job { hisn, iters, reply }).unwrap();
        answer.recv().unwrap()
    };
    let mut group = c.benchmark_group("tenant_guard/tx_overhead");
    group.bench_function(HISN, |b| b.iter_custom(|iters| run(true, iters)));
    group.bench_function(BASELINE, |b| b.iter_custom(|iters| run(false, iters)));
    group.finish();
    drop(jobs);
    db_thread.join().unwrap();
}

criterion_group!(benches, tx_overhead);
criterion_main!(benches);
