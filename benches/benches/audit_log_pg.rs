//! `hisn-audit-log` PostgreSQL benchmarks, each group against its baseline in
//! the same run.
//!
//! - `audit_log/append_postgres_1conn`: `PgStore::append` (each append its own
//!   transaction: tenant lock, head, record, subject index, commit) on one
//!   connection and one tenant, vs raw autocommit INSERTs of the same record
//!   bytes into a plain table (no chain, no trigger, no lock, no index).
//! - `audit_log/append_postgres_8conn`: the same with 8 connections, each
//!   appending to its own tenant.
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
use hisn_audit_log::store::postgres::PgStore;
use hisn_audit_log::{Event, FakeClock, TenantId, Timestamp, encode_record};
use hisn_benches::{BASELINE, HISN, filler};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// Appends per connection per iteration.
const PER_CONN: u64 = 50;
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
        let work: Vec<(TenantId, Event, Vec<u8>)> = (0..conns)
            .map(|i| {
                let t = TenantId::parse(&format!("bench-{conns}-{i}")).unwrap();
                let e = event(&t);
                let bytes = encode_record(0, &e).unwrap();
                (t, e, bytes)
            })
            .collect();
        let mut g = c.benchmark_group(format!("audit_log/append_postgres_{conns}conn"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(u64::from(conns) * PER_CONN));
        g.bench_function(HISN, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, work) = (store.clone(), work.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = work
                            .iter()
                            .map(|(_, e, _)| {
                                let (store, e) = (store.clone(), e.clone());
                                tokio::spawn(async move {
                                    for _ in 0..PER_CONN {
                                        store.append(&e).await.unwrap();
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
                                    for _ in 0..PER_CONN {
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
