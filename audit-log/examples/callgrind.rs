//! Fixed amounts of work for `valgrind --tool=callgrind`, whose instruction
//! counts repeat on a loaded machine where wall-clock benchmarks do not. Each
//! mode has its baseline, as the bench groups do (`audit_log/verify`,
//! `audit_log/append_file`):
//!
//! ```text
//! cargo build --release -p hisn-audit-log --example callgrind
//! valgrind --tool=callgrind target/release/examples/callgrind verify   # chain verification, 10,000 x 256 B
//! valgrind --tool=callgrind target/release/examples/callgrind sha      # raw SHA-256 over the same bytes
//! valgrind --tool=callgrind target/release/examples/callgrind append DIR  # 20,000 appends, 64 producers, fsync
//! valgrind --tool=callgrind target/release/examples/callgrind raw DIR     # the same bytes, write + fdatasync per batch of 64
//! ```
//! Set-up (building the records) is the same in every mode, so the
//! difference between two modes' totals is the difference in the work.
//!
//! valgrind runs SHA-256 in software (it hides SHA-NI), so for the verify
//! ratio on real hardware `ratio` times both alternately, 200 rounds each,
//! and prints the fastest of each (the least disturbed by other load) and
//! their ratio.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)] // a measuring tool: a bad argument or set-up may stop it

use std::io::Write as _;
use std::sync::Arc;

use hisn_audit_log::{
    Durability, Event, FakeClock, FileStore, FileStoreOptions, MemoryStore, Start, TenantId,
    Timestamp, Verifier, encode_record,
};
use sha2::{Digest as _, Sha256};

const N: usize = 10_000;
const APPENDS: usize = 20_000;
const PRODUCERS: usize = 64;

fn event(t: &TenantId, i: usize, pad: usize) -> Event {
    let pad = "x".repeat(pad);
    let line = format!(
        r#"{{"actor":"u-1","action":"work_order.transition","entity_type":"work_order","entity_id":"wo-{i:06}","subjects":["emp-4"],"diff":{{"p":"{pad}"}}}}"#
    );
    let clock = FakeClock::new(Timestamp::from_unix_micros(
        1_764_000_000_000_000 + i64::try_from(i).unwrap(),
    ));
    Event::from_json(t, &line, &clock).unwrap()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args
        .next()
        .expect("usage: callgrind verify|sha|append DIR|raw DIR");
    let t = TenantId::parse("acme").unwrap();
    match mode.as_str() {
        "verify" | "sha" | "ratio" => {
            let store = MemoryStore::new();
            let base = encode_record(0, &event(&t, 0, 0)).unwrap().len();
            for i in 0..N {
                store.append(&event(&t, i, 256 - base)).unwrap();
            }
            let records = store.records(&t);
            let verify = || {
                let r = Verifier::new(&t, &[], None)
                    .verify_log(Start::Genesis, records.iter().map(Ok))
                    .unwrap();
                assert_eq!(r.size, N as u64);
            };
            let sha = || {
                let mut acc = 0u8;
                for r in &records {
                    acc ^= Sha256::digest(&r.bytes)[0];
                }
                std::hint::black_box(acc);
            };
            if mode == "ratio" {
                let time = |f: &dyn Fn()| {
                    let s = std::time::Instant::now();
                    f();
                    s.elapsed()
                };
                let (mut v, mut h) = (std::time::Duration::MAX, std::time::Duration::MAX);
                for _ in 0..200 {
                    v = v.min(time(&verify));
                    h = h.min(time(&sha));
                }
                let bytes = (N * 256) as f64;
                println!(
                    "verify {:.0} MiB/s, raw SHA-256 {:.0} MiB/s: {:.1}% (fastest of 200 each)",
                    bytes / v.as_secs_f64() / 1048576.0,
                    bytes / h.as_secs_f64() / 1048576.0,
                    100.0 * h.as_secs_f64() / v.as_secs_f64()
                );
            } else if mode == "verify" {
                verify();
            } else {
                sha();
            }
        }
        "append" | "raw" => {
            let dir = std::path::PathBuf::from(args.next().expect("DIR"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let ev = event(&t, 0, 120);
            let per = APPENDS / PRODUCERS;
            if mode == "append" {
                let store = Arc::new(
                    FileStore::open(
                        &dir,
                        FileStoreOptions::default().durability(Durability::Fsync),
                    )
                    .unwrap(),
                );
                std::thread::scope(|s| {
                    for _ in 0..PRODUCERS {
                        let (store, ev) = (&store, &ev);
                        s.spawn(move || {
                            for _ in 0..per {
                                store.append(ev.clone()).unwrap();
                            }
                        });
                    }
                });
            } else {
                // What any durable log must do at least: the same bytes,
                // written and fdatasync'd once per 64 records (group commit
                // at its best), from one thread.
                let frame = vec![b'x'; encode_record(0, &ev).unwrap().len() + 40];
                let mut f = std::fs::File::create(dir.join("raw.log")).unwrap();
                let mut batch = Vec::new();
                for i in 0..per * PRODUCERS {
                    batch.extend_from_slice(&frame);
                    if (i + 1) % PRODUCERS == 0 {
                        f.write_all(&batch).unwrap();
                        f.sync_data().unwrap();
                        batch.clear();
                    }
                }
            }
        }
        _ => panic!("unknown mode {mode}"),
    }
}
