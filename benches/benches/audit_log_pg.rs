//! `hisn-audit-log` PostgreSQL benchmarks, each group against its baseline in
//! the same run.
//!
//! - `audit_log/append_postgres_1conn`: 64 concurrent producers appending
//!   through a `PgGroupWriter` (group commit: everything queued goes into the
//!   next transaction, each caller answered after its commit) on a pool of one
//!   connection and one tenant, vs the same 64 producers doing raw autocommit
//!   INSERTs of the same record bytes into a plain table (no chain, no trigger,
//!   no lock, no index) over one connection.
//! - `audit_log/append_postgres_8conn`: the same with 8 connections (8 group
//!   writers) and 8 tenants, 8 producers each.
//! - `audit_log/append_postgres_single`: one producer, `PgStore::append`
//!   (one transaction per record) vs one raw autocommit INSERT: the commit
//!   flush latency that group commit amortises.
//! - `audit_log/append_postgres_batch`: `PgStore::append_batch` of
//!   `BATCH` events (one transaction) on one connection vs one autocommit
//!   multi-row INSERT of the same record bytes into the plain table.
//!
//! The database comes from `HISN_TEST_DATABASE_URL` (a fresh database per run,
//! dropped afterwards); without it the groups print a skip line and register
//! nothing.
#![allow(missing_docs)]
// Benchmark set-up code: panicking on a broken set-up is intended.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_wrap)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

use hisn_audit_log::store::pg_group::{GroupOptions, PgGroupWriter};
use hisn_audit_log::store::postgres::PgStore;
use hisn_audit_log::{Event, FakeClock, TenantId, Timestamp, encode_record};
use hisn_benches::{BASELINE, HISN, filler};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// Concurrent producers in the 1conn and 8conn groups.
const PRODUCERS: u32 = 64;
/// Appends per producer per iteration.
const PER_PRODUCER: u64 = 20;
/// Events per batch, and batches per iteration, in the batch group.
const BATCH: usize = 100;
const BATCHES: usize = 4;

fn event(t: &TenantId) -> Event {
    let pad = String::from_utf8(filler(120)).unwrap();
    let line = format!(
        r#"{{"actor":"u-1","action":"work_order.transition","entity_type":"work_order","entity_id":"wo-000001","subjects":["emp-4"],"diff":{{"p":"{pad}"}}}}"#
    );
    let clock = FakeClock::new(Timestamp::from_unix_micros(1_764_000_000_000_000));
    Event::from_json(t, &line, &clock).unwrap()
}

async fn pool(db: &hisn_test_support::TestDatabase, conns: u32) -> PgPool {
    PgPoolOptions::new()
        .min_connections(conns)
        .max_connections(conns)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(db.connect_options())
        .await
        .unwrap()
}

fn append_postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(hisn_test_support::postgres(
        "bench_audit_log_append_postgres",
    )) else {
        println!("skipping audit_log/append_postgres: HISN_TEST_DATABASE_URL is not set");
        return;
    };
    rt.block_on(async {
        let p = pool(&db, 1).await;
        PgStore::migrate(&p).await.unwrap();
        sqlx::raw_sql("CREATE TABLE bench_raw (tenant text NOT NULL, record bytea NOT NULL)")
            .execute(&p)
            .await
            .unwrap();
        p.close().await;
    });
    for conns in [1u32, 8] {
        let p = rt.block_on(pool(&db, conns));
        let store = PgStore::new(p.clone());
        let writer = {
            let _guard = rt.enter();
            Arc::new(PgGroupWriter::new(
                store.clone(),
                GroupOptions::default().writers(conns as usize),
            ))
        };
        // Producer i appends to tenant i % conns.
        let work: Vec<(TenantId, Event, Vec<u8>)> = (0..PRODUCERS)
            .map(|i| {
                let t = TenantId::parse(&format!("bench-{conns}-{}", i % conns)).unwrap();
                let e = event(&t);
                let bytes = encode_record(0, &e).unwrap();
                (t, e, bytes)
            })
            .collect();
        let mut g = c.benchmark_group(format!("audit_log/append_postgres_{conns}conn"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(u64::from(PRODUCERS) * PER_PRODUCER));
        g.bench_function(HISN, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (writer, work) = (Arc::clone(&writer), work.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = work
                            .iter()
                            .map(|(_, e, _)| {
                                let (writer, e) = (Arc::clone(&writer), e.clone());
                                tokio::spawn(async move {
                                    for _ in 0..PER_PRODUCER {
                                        writer.append(e.clone()).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    start.elapsed()
                }
            });
        });
        g.bench_function(BASELINE, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (p, work) = (p.clone(), work.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = work
                            .iter()
                            .map(|(t, _, bytes)| {
                                let (p, t, bytes) = (p.clone(), t.clone(), bytes.clone());
                                tokio::spawn(async move {
                                    for _ in 0..PER_PRODUCER {
                                        sqlx::query(
                                            "INSERT INTO bench_raw (tenant, record) VALUES ($1, $2)",
                                        )
                                        .bind(t.as_str())
                                        .bind(&bytes)
                                        .execute(&p)
                                        .await
                                        .unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    start.elapsed()
                }
            });
        });
        g.finish();
        rt.block_on(Arc::into_inner(writer).unwrap().close());
        rt.block_on(p.close());
    }
    {
        let p = rt.block_on(pool(&db, 1));
        let store = PgStore::new(p.clone());
        let t = TenantId::parse("bench-single").unwrap();
        let e = event(&t);
        let bytes = encode_record(0, &e).unwrap();
        let mut g = c.benchmark_group("audit_log/append_postgres_single");
        g.sample_size(10);
        g.throughput(Throughput::Elements(1));
        g.bench_function(HISN, |b| {
            b.to_async(&rt)
                .iter(|| async { store.append(&e).await.unwrap() });
        });
        g.bench_function(BASELINE, |b| {
            b.to_async(&rt).iter(|| async {
                sqlx::query("INSERT INTO bench_raw (tenant, record) VALUES ($1, $2)")
                    .bind(t.as_str())
                    .bind(&bytes)
                    .execute(&p)
                    .await
                    .unwrap()
            });
        });
        g.finish();
        rt.block_on(p.close());
    }
    let p = rt.block_on(pool(&db, 1));
    let store = PgStore::new(p.clone());
    let t = TenantId::parse("bench-batch").unwrap();
    let events: Vec<Event> = (0..BATCH).map(|_| event(&t)).collect();
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|e| encode_record(0, e).unwrap())
        .collect();
    let tenants: Vec<&str> = vec![t.as_str(); BATCH];
    let mut g = c.benchmark_group("audit_log/append_postgres_batch");
    g.sample_size(10);
    g.throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    g.bench_function(HISN, |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..BATCHES {
                store.append_batch(&events).await.unwrap();
            }
        });
    });
    g.bench_function(BASELINE, |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..BATCHES {
                sqlx::query(
                    "INSERT INTO bench_raw (tenant, record) SELECT * FROM unnest($1::text[], $2::bytea[])",
                )
                .bind(&tenants)
                .bind(&records)
                .execute(&p)
                .await
                .unwrap();
            }
        });
    });
    g.finish();
    rt.block_on(p.close());
    drop(db);
}

criterion_group!(benches, append_postgres);
criterion_main!(benches);
