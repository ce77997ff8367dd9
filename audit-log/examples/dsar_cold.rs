//! One cold DSAR report, as `hisn audit report` makes it (measure it with a
//! new process each time; see `dsar_store.rs` for building a store).
//!
//! ```text
//! cargo run --release -p hisn-audit-log --example dsar_cold -- DIR SUBJECT [cold|full|reopen] [PUBKEY_FILE]
//! ```
//!
//! `cold` (default) reads through a `TenantReader` (the CLI's path), `json`
//! does the same and writes the report to stdout as the CLI does, `full`
//! through `FileStore::open_read_only` (the path before it), `reopen` opens
//! the store for writing once and closes it (rewrites missing or outdated
//! segment indexes). Prints the number of entries and how many are proven.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hisn_audit_log::{
    AuditRead, FileStore, FileStoreOptions, TenantId, TenantReader, TrustedKeys, VerifyingKey,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: dsar_cold DIR SUBJECT [cold|full|reopen] [PUBKEY]");
    let subject = args.next().unwrap_or_else(|| "emp-hot".into());
    let mode = args.next().unwrap_or_else(|| "cold".into());
    let keys = args.next().map(|p| {
        TrustedKeys::new()
            .with(VerifyingKey::from_text(&std::fs::read_to_string(p).unwrap()).unwrap())
    });
    let t = TenantId::parse("acme").unwrap();
    let r = match mode.as_str() {
        "reopen" => {
            FileStore::open(&dir, FileStoreOptions::default())
                .unwrap()
                .close()
                .unwrap();
            return;
        }
        "full" => FileStore::open_read_only(&dir)
            .unwrap()
            .subject_report(&t, &subject, keys.as_ref())
            .unwrap(),
        _ => TenantReader::open(&dir, &t)
            .unwrap()
            .subject_report(&t, &subject, keys.as_ref())
            .unwrap(),
    };
    if mode == "json" {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        r.write_json(&mut out).unwrap();
        writeln!(out).unwrap();
        out.flush().unwrap();
        std::mem::forget(r);
        return;
    }
    let proven = r.entries.iter().filter(|e| e.is_proven()).count();
    println!("{} entries, {proven} proven", r.entries.len());
}
