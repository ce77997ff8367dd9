//! Shared helpers.

use hisn_audit_log::{Event, FakeClock, SigningKey, TenantId, Timestamp, TrustedKeys};

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

/// The file store's directory for tenant `t` under the store `dir`.
pub(crate) fn tdir(dir: &std::path::Path, t: &TenantId) -> std::path::PathBuf {
    dir.join(format!("t-{}", hex::encode(t.as_str())))
}

/// The test clock's current time.
pub(crate) fn now() -> Timestamp {
    hisn_audit_log::Clock::now(&clock())
}

pub(crate) fn clock() -> FakeClock {
    FakeClock::new(Timestamp::from_unix_micros(1_764_000_000_000_000))
}

/// A varied event: subject `emp-{i % 5}`, a diff, an IP for even `i`.
pub(crate) fn event(t: &TenantId, i: u64) -> Event {
    let mut b = Event::state_transition(
        t,
        &format!("u-{}", i % 7),
        "work_order",
        &format!("wo-{i}"),
        "open",
        "closed",
    )
    .subject(&format!("emp-{}", i % 5))
    .diff(&serde_json::json!({ "status": ["open", "closed"], "n": i }))
    .request_id(&format!("r-{i}"))
    .at(Timestamp::from_unix_micros(
        1_764_000_000_000_000 + i as i64,
    ));
    if i.is_multiple_of(2) {
        b = b.source_ip("203.0.113.7".parse().unwrap());
    }
    b.build(&clock()).unwrap()
}

/// Leaf hashes (`merkle::leaf_hash` of each record digest) of `t`'s records
/// `from..to`, as the store holds them.
pub(crate) fn leaves<S: hisn_audit_log::AuditRead + ?Sized>(
    s: &S,
    t: &TenantId,
    from: u64,
    to: u64,
) -> Vec<hisn_audit_log::merkle::Hash> {
    let out: Vec<_> = s
        .read_range(t, from, to)
        .unwrap()
        .into_iter()
        .map(|r| {
            hisn_audit_log::merkle::leaf_hash(&hisn_audit_log::record_digest(&r.unwrap().bytes))
        })
        .collect();
    assert_eq!(out.len() as u64, to - from);
    out
}

/// The segment files of `t` in the file store at `dir`, oldest first.
pub(crate) fn segment_files(dir: &std::path::Path, t: &TenantId) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(tdir(dir, t))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

/// The sequence number of the first record of a segment file (its name).
pub(crate) fn segment_first_seq(segment: &std::path::Path) -> u64 {
    segment
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a segment file: {}", segment.display()))
}

/// Flip a byte of record `seq` in the file store at `dir` (frame CRC fixed,
/// so only the chain can tell); with `relink`, recompute every later link as
/// someone who can write the store but holds no key would.
pub(crate) fn edit_record(dir: &std::path::Path, t: &TenantId, seq: u64, relink: bool) {
    use hisn_audit_log::store::segment::{encode_frame, parse_segment};
    use hisn_audit_log::{chain_link, record_digest};
    use std::os::unix::fs::FileExt as _;
    let mut prev = None;
    for seg in segment_files(dir, t) {
        let bytes = std::fs::read(&seg).unwrap();
        let parsed = parse_segment(&bytes).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        for (i, f) in parsed.frames.iter().enumerate() {
            let s = parsed.header.first_seq + i as u64;
            let mut rec = bytes[f.record_range()].to_vec();
            let link = match prev {
                _ if s < seq => {
                    prev = Some(f.link);
                    continue;
                }
                Some(p) if relink || s == seq => {
                    if s == seq {
                        let n = rec.len() - 1;
                        rec[n] ^= 0x01;
                    }
                    let l = chain_link(t.as_str().as_bytes(), s, &p, &record_digest(&rec));
                    if relink { l } else { f.link }
                }
                _ => break,
            };
            file.write_all_at(&encode_frame(&rec, &link, f.synced), f.offset)
                .unwrap();
            prev = Some(link);
            if !relink {
                return;
            }
        }
    }
}

pub(crate) fn key(name: &str, seed: u8) -> SigningKey {
    SigningKey::from_bytes(name, &[seed; 32]).unwrap()
}

pub(crate) fn trusted(keys: &[&SigningKey]) -> TrustedKeys {
    let mut t = TrustedKeys::new();
    for k in keys {
        t.add(k.verifying_key());
    }
    t
}

/// A fresh migrated database and a store over it, or `None` (skip) when
/// `HISN_TEST_DATABASE_URL` is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn setup(
    name: &str,
) -> Option<(
    hisn_test_support::TestDatabase,
    sqlx::PgPool,
    hisn_audit_log::store::postgres::PgStore,
)> {
    use hisn_audit_log::store::postgres::PgStore;
    let db = hisn_test_support::postgres(name).await?;
    let pool = db.pool().await;
    PgStore::migrate(&pool).await.unwrap();
    let store = PgStore::new(pool.clone());
    Some((db, pool, store))
}

/// Appends per task in the 64-task full-shape tests (`HISN_AUDIT_PG_PER_TASK`,
/// default 10,000).
#[cfg(feature = "postgres")]
pub(crate) fn pg_per_task() -> u64 {
    std::env::var("HISN_AUDIT_PG_PER_TASK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
