//! `hisn-rate-limit` benchmarks, each group against its baseline in the same run.
//!
//! - `rate_limit/in_process_keyed`: one SDK keyed check with the key built from
//!   an `IpAddr` (`KeyValue::ip` + `RequestKeys`) vs raw `governor`
//!   `check_key` on the same `IpAddr` keys (1024 distinct, cycled). Target ≤ 1.5×.
//! - `rate_limit/in_process_3_tier`: one 3-tier decision (IP, session, tenant;
//!   all-or-nothing) vs one raw `governor` `check_key`. Target ≤ 4×.
//! - `rate_limit/redis`: one Redis decision (EVALSHA) vs one `PING` on the
//!   limiter's own connection and runtime, sequential. Target ≤ 1.5×.
//! - `rate_limit/redis_64_in_flight`: 64 concurrent decisions on one limiter
//!   vs one explicit pipeline of 64 `EVALSHA` of the same script. Target:
//!   hisn/baseline ≤ 1.43 (throughput ≥ 70 % of the pipeline's).
//!
//! The Redis groups need `HISN_TEST_REDIS_URL` (they use a unique key prefix).
#![allow(missing_docs)]
// Benchmark set-up on constant inputs: a failure is a broken bench, not input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use hisn_benches::{BASELINE, HISN, interleaved_ratio};
use hisn_rate_limit::redis::{RedisConfig, RedisLimiter};
use hisn_rate_limit::{KeyKind, KeyValue, MemoryLimiter, Policy, RequestKeys, Tiers};

const KEYS: usize = 1024;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A quota no benchmark loop exhausts, so both sides always admit.
fn huge(name: &'static str, kind: KeyKind) -> Policy {
    Policy::new(name, nz(1_000_000), Duration::from_secs(1), kind)
        .unwrap()
        .with_burst(nz(1_000_000_000))
        .unwrap()
}

fn ips() -> Vec<IpAddr> {
    (0..KEYS)
        .map(|i| {
            IpAddr::from([
                10,
                0,
                u8::try_from(i / 256).unwrap(),
                u8::try_from(i % 256).unwrap(),
            ])
        })
        .collect()
}

fn in_process(c: &mut Criterion) {
    let ips = ips();
    let sdk = MemoryLimiter::new(Tiers::new(vec![huge("ip", KeyKind::Ip)]).unwrap());
    let quota = Quota::per_second(nz(1_000_000)).allow_burst(nz(1_000_000_000));
    let gov = RateLimiter::keyed(quota);
    let i = AtomicUsize::new(0);
    let j = AtomicUsize::new(0);
    let hisn = || {
        let ip = ips[i.fetch_add(1, Ordering::Relaxed) % KEYS];
        let keys = RequestKeys::new().with(KeyKind::Ip, KeyValue::ip(black_box(ip), 64));
        sdk.check(&keys).unwrap().is_allowed()
    };
    let baseline = || {
        let ip = ips[j.fetch_add(1, Ordering::Relaxed) % KEYS];
        gov.check_key(black_box(&ip)).is_ok()
    };
    assert!(hisn() && baseline());
    let ratio = interleaved_ratio(200, &hisn, &baseline);
    println!("rate_limit/in_process_keyed: interleaved median ratio hisn/baseline = {ratio:.3}");
    let mut g = c.benchmark_group("rate_limit/in_process_keyed");
    g.throughput(Throughput::Elements(1));
    g.bench_function(HISN, |b| b.iter(&hisn));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();

    let three = MemoryLimiter::new(
        Tiers::new(vec![
            huge("ip", KeyKind::Ip),
            huge("session", KeyKind::Session),
            huge("tenant", KeyKind::Tenant),
        ])
        .unwrap(),
    );
    let sessions: Vec<String> = (0..KEYS).map(|i| format!("sess-{i:08}")).collect();
    let k = AtomicUsize::new(0);
    let hisn3 = || {
        let n = k.fetch_add(1, Ordering::Relaxed) % KEYS;
        let keys = RequestKeys::new()
            .with(KeyKind::Ip, KeyValue::ip(black_box(ips[n]), 64))
            .with(
                KeyKind::Session,
                KeyValue::text(black_box(&sessions[n])).unwrap(),
            )
            .with(
                KeyKind::Tenant,
                KeyValue::text(black_box("tenant-42")).unwrap(),
            );
        three.check(&keys).unwrap().is_allowed()
    };
    assert!(hisn3());
    let ratio = interleaved_ratio(200, &hisn3, &baseline);
    println!("rate_limit/in_process_3_tier: interleaved median ratio hisn/baseline = {ratio:.3}");
    let mut g = c.benchmark_group("rate_limit/in_process_3_tier");
    g.throughput(Throughput::Elements(1));
    g.bench_function(HISN, |b| b.iter(&hisn3));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();
}

fn redis_groups(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(test_redis) = rt.block_on(hisn_test_support::redis("rate_limit_bench")) else {
        return;
    };
    let tiers = Tiers::new(vec![huge("tenant", KeyKind::Tenant)]).unwrap();
    let cfg = RedisConfig::new(test_redis.prefix())
        .unwrap()
        .deadline(Duration::from_secs(2))
        .unwrap();
    let limiter = rt.block_on(RedisLimiter::new(test_redis.client(), tiers, cfg));
    let keys = RequestKeys::new().with(KeyKind::Tenant, KeyValue::text("bench").unwrap());
    assert!(rt.block_on(limiter.check(&keys)).unwrap().is_allowed());

    let hisn = || rt.block_on(limiter.check(&keys)).unwrap().is_allowed();
    let baseline = || rt.block_on(limiter.ping()).is_ok();
    let ratio = interleaved_ratio(20, &hisn, &baseline);
    println!("rate_limit/redis: interleaved median ratio hisn/baseline = {ratio:.3}");
    let mut g = c.benchmark_group("rate_limit/redis");
    g.throughput(Throughput::Elements(1));
    g.bench_function(HISN, |b| b.iter(&hisn));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();

    // 64 in flight vs an explicit pipeline of the same 64 EVALSHA calls.
    let script = redis::Script::new(include_str!("../../rate-limit/src/redis/gcra.lua"));
    let mut conn = rt.block_on(test_redis.connection());
    let key = test_redis.key("{pipe}:tenant:bench");
    let p = huge("tenant", KeyKind::Tenant);
    let iv = u64::try_from(p.emission_interval().as_micros()).unwrap();
    let burst = p.burst().get();
    let tol = iv * u64::from(burst - 1);
    rt.block_on(
        script
            .prepare_invoke()
            .key(&key)
            .arg("")
            .arg(1)
            .arg(iv)
            .arg(tol)
            .arg(burst)
            .invoke_async::<Vec<i64>>(&mut conn),
    )
    .unwrap();
    let hash = script.get_hash().to_owned();
    let hisn64 = || {
        rt.block_on(async {
            let calls = (0..64).map(|_| limiter.check(&keys));
            futures::future::join_all(calls)
                .await
                .into_iter()
                .all(|d| d.unwrap().is_allowed())
        })
    };
    let baseline64 = || {
        rt.block_on(async {
            let mut pipe = redis::pipe();
            for _ in 0..64 {
                pipe.cmd("EVALSHA")
                    .arg(&hash)
                    .arg(1)
                    .arg(&key)
                    .arg("")
                    .arg(1)
                    .arg(iv)
                    .arg(tol)
                    .arg(burst);
            }
            let mut c = conn.clone();
            pipe.query_async::<Vec<Vec<i64>>>(&mut c)
                .await
                .unwrap()
                .len()
                == 64
        })
    };
    assert!(hisn64() && baseline64());
    let ratio = interleaved_ratio(3, &hisn64, &baseline64);
    println!("rate_limit/redis_64_in_flight: interleaved median ratio hisn/baseline = {ratio:.3}");
    let mut g = c.benchmark_group("rate_limit/redis_64_in_flight");
    g.throughput(Throughput::Elements(64));
    g.bench_function(HISN, |b| b.iter(&hisn64));
    g.bench_function(BASELINE, |b| b.iter(&baseline64));
    g.finish();
}

criterion_group!(benches, in_process, redis_groups);
criterion_main!(benches);
