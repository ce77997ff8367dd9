//! Concurrency: many producers on one tenant give one linear chain with dense
//! sequence numbers. (The 64 x 10,000 shape is kept at 64 producers; the
//! count per producer is scaled so the debug-build test runs in seconds. The
//! criterion bench `audit_log/append_file` runs the full load.)

use std::sync::Arc;

use hisn_audit_log::{AuditRead, Durability, FileStore, FileStoreOptions, MemoryStore, Verdict};

use crate::common::*;

const PRODUCERS: u64 = 64;
const PER_PRODUCER: u64 = 100;

#[test]
fn file_store_64_producers_one_linear_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        FileStore::open(
            dir.path(),
            FileStoreOptions::default().durability(Durability::Fsync),
        )
        .unwrap(),
    );
    let t = tenant("acme");
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let store = Arc::clone(&store);
            let t = t.clone();
            std::thread::spawn(move || {
                (0..PER_PRODUCER)
                    .map(|i| store.append(event(&t, p * 1000 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..PRODUCERS * PER_PRODUCER).collect::<Vec<_>>(),
        "dense, no duplicates"
    );
    let r = store.verify(&t, None, &[]).unwrap();
    assert_eq!(
        (r.verdict, r.size),
        (Verdict::UnanchoredTail, PRODUCERS * PER_PRODUCER)
    );
}

#[test]
fn memory_store_64_producers_one_linear_chain() {
    let store = Arc::new(MemoryStore::new());
    let t = tenant("acme");
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (store, t) = (&store, &t);
            s.spawn(move || {
                for i in 0..PER_PRODUCER {
                    store.append(&event(t, p * 1000 + i)).unwrap();
                }
            });
        }
    });
    let r = store.verify(&t, None, &[]).unwrap();
    assert_eq!(
        (r.verdict, r.size),
        (Verdict::UnanchoredTail, PRODUCERS * PER_PRODUCER)
    );
}

/// The full shape: 64 producers x 10,000 appends with fsync (about 40 s
/// in a debug build on a 2-core machine).
#[test]
fn file_store_64_by_10000_full_shape() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        FileStore::open(
            dir.path(),
            FileStoreOptions::default().durability(Durability::Fsync),
        )
        .unwrap(),
    );
    let t = tenant("acme");
    let ev = event(&t, 1);
    std::thread::scope(|s| {
        for _ in 0..PRODUCERS {
            let (store, ev) = (&store, &ev);
            s.spawn(move || {
                for _ in 0..10_000 {
                    store.append(ev.clone()).unwrap();
                }
            });
        }
    });
    let r = store.verify(&t, None, &[]).unwrap();
    assert_eq!(
        (r.verdict, r.size),
        (Verdict::UnanchoredTail, PRODUCERS * 10_000)
    );
}
