//! `hisn-webhook-verify` benchmarks, each group against its baseline in the same run.
//!
//! - `webhook_verify/verify_1KiB`, `webhook_verify/verify_64KiB`: a full
//!   Standard Webhooks verification (header lookup, strict parsing, id and
//!   timestamp checks, base64 decode, HMAC-SHA256, constant-time compare) vs a
//!   bare HMAC-SHA256 (key set-up, MAC, compare) over the same signed bytes
//!   `id.timestamp.body`. Targets: ≤ 1.25× at 1 KiB, ≤ 1.05× at 64 KiB. Each
//!   group also prints an interleaved median ratio (alternating short chunks of
//!   both functions), which is steadier than criterion's sequential runs on a
//!   shared machine.
//! - `webhook_verify/replay_claim`: one in-memory claim of a fresh id on one
//!   thread vs inserting the same owned key into a `Mutex<HashSet<String>>`.
//!   Target: ≥ 1M claims/s.
#![allow(missing_docs)]
// Benchmark set-up on constant inputs: a failure is a broken bench, not input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hisn_benches::{BASELINE, HISN, filler, interleaved_ratio};
use hisn_webhook_verify::replay::{Claim, MemoryReplayStore, ReplayKey, ReplayPolicy};
use hisn_webhook_verify::{ManualClock, Scheme, SignInput, Webhook};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const NOW: u64 = 1_700_000_000;
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
// The raw key behind whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn raw_key() -> Vec<u8> {
    // Decode "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" (base64) without a base64 dependency.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
        let v = u32::try_from(ALPHABET.iter().position(|a| a == c).unwrap()).unwrap();
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xff).unwrap());
        }
    }
    out
}

fn verify(c: &mut Criterion, len: usize, group: &str) {
    let body = filler(len);
    let wh = Webhook::builder(Scheme::StandardWebhooks)
        .secret(SECRET)
        .unwrap()
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    let headers = wh
        .sign(&SignInput::new(&body).id(ID).timestamp(NOW))
        .unwrap();
    assert!(wh.verify(&headers, &body).is_ok());

    let key = raw_key();
    let signed: Vec<u8> = [format!("{ID}.{NOW}.").as_bytes(), &body].concat();
    let expected: [u8; 32] = {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        m.update(&signed);
        m.finalize().into_bytes().into()
    };

    // On a shared machine criterion's sequential runs of `hisn` then `baseline`
    // see different load; alternate short chunks of both and print the median
    // per-chunk ratio as well (the same work, measured side by side).
    let hisn = || wh.verify(black_box(&headers), black_box(&body)).is_ok();
    let baseline = || {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&key)).unwrap();
        m.update(black_box(&signed));
        m.verify_slice(black_box(&expected)).is_ok()
    };
    let ratio = interleaved_ratio(20, &hisn, &baseline);
    println!("{group}: interleaved median ratio hisn/baseline = {ratio:.3}");

    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function(HISN, |b| b.iter(&hisn));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();
}

fn verify_1kib(c: &mut Criterion) {
    verify(c, 1024, "webhook_verify/verify_1KiB");
}

fn verify_64kib(c: &mut Criterion) {
    verify(c, 64 * 1024, "webhook_verify/verify_64KiB");
}

const BATCH: usize = 200_000;

fn replay_claim(c: &mut Criterion) {
    let ids: Vec<String> = (0..BATCH).map(|i| format!("evt_{i:08}")).collect();
    let policy = ReplayPolicy::DEFAULT;
    let mut g = c.benchmark_group("webhook_verify/replay_claim");
    g.throughput(Throughput::Elements(1));
    g.bench_function(HISN, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(BATCH).min(BATCH);
                let store =
                    MemoryReplayStore::with_clock(BATCH * 2, Arc::new(ManualClock::new(NOW)))
                        .unwrap();
                let start = Instant::now();
                for id in &ids[..n] {
                    let k = ReplayKey::new("tenant", "stripe", id).unwrap();
                    let claim = store.claim_now(&k, &policy).unwrap();
                    black_box(matches!(claim, Claim::New(_)));
                }
                total += start.elapsed();
                left -= n as u64;
            }
            total
        });
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(BATCH).min(BATCH);
                let set: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
                let start = Instant::now();
                for id in &ids[..n] {
                    let key = format!("6:tenant6:stripe{id}");
                    black_box(set.lock().unwrap().insert(key));
                }
                total += start.elapsed();
                left -= n as u64;
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, verify_1kib, verify_64kib, replay_claim);
criterion_main!(benches);
