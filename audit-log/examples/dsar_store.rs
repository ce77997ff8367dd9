//! Build a file store for measuring a cold DSAR report through the CLI.
//!
//! ```text
//! cargo run --release -p hisn-audit-log --example dsar_store -- DIR [TOTAL] [HOT] [SEGMENT_MIB]
//! time target/release/hisn audit report --store DIR --tenant acme --subject emp-hot
//! ```
//!
//! Writes `TOTAL` records (default 200,000) for tenant `acme`; `HOT` of them
//! (default 5,000, spread evenly) name the subject `emp-hot`, the others each
//! name a subject of their own. Segments are `SEGMENT_MIB` MiB (default 8;
//! the store's default is 64): sealed segments are read through their
//! persisted subject index, the open one is decoded on every open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hisn_audit_log::{Durability, Event, FileStore, FileStoreOptions, SystemClock, TenantId};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: dsar_store DIR [TOTAL] [HOT] [SEGMENT_MIB]");
    let total: u64 = args.next().map_or(200_000, |a| a.parse().unwrap());
    let hot: u64 = args.next().map_or(5_000, |a| a.parse().unwrap());
    let seg_mib: u64 = args.next().map_or(8, |a| a.parse().unwrap());
    let every = (total / hot.max(1)).max(1);
    let t = TenantId::parse("acme").unwrap();
    let store = FileStore::open(
        &dir,
        FileStoreOptions::default()
            .durability(Durability::OsBuffered)
            .max_segment_bytes(seg_mib << 20),
    )
    .unwrap();
    for i in 0..total {
        let subject = if i % every == 0 && i / every < hot {
            "emp-hot".to_owned()
        } else {
            format!("emp-{i}")
        };
        let e = Event::state_transition(
            &t,
            &format!("u-{}", i % 50),
            "work_order",
            &format!("wo-{i}"),
            "open",
            "closed",
        )
        .subject(&subject)
        .diff(&serde_json::json!({ "status": ["open", "closed"], "n": i }))
        .request_id(&format!("r-{i}"))
        .build(&SystemClock)
        .unwrap();
        store
            .append_with(e, |r| {
                r.unwrap();
            })
            .unwrap();
    }
    store.close().unwrap();
}
