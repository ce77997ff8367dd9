//! Cold DSAR reports through [`TenantReader`]: the same answers as a full
//! open, from the persisted indexes and the records asked for.

use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use hisn_audit_log::store::file::index_decodes_on_this_thread;
use hisn_audit_log::{
    AuditRead, Durability, FileStore, FileStoreOptions, SubjectReport, TenantId, TenantReader,
    TrustedKeys,
};

use crate::common::*;

const N: u64 = 600;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// `N` records for `acme` in several segments, a signed checkpoint every 50
/// records (kept in the store), closed. Returns the trusted keys.
fn store(dir: &Path) -> (TenantId, TrustedKeys) {
    let t = tenant("acme");
    let k = key("audit", 3);
    let s = FileStore::open(
        dir,
        FileStoreOptions::default()
            .durability(Durability::OsBuffered)
            .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES * 4),
    )
    .unwrap();
    for i in 0..N {
        s.append(event(&t, i)).unwrap();
        if i % 50 == 49 {
            s.checkpoint_now(Some(&t), &k, clock_now()).unwrap();
        }
    }
    s.close().unwrap();
    (t, trusted(&[&k]))
}

fn clock_now() -> hisn_audit_log::Timestamp {
    hisn_audit_log::Clock::now(&clock())
}

/// What a report says, comparable across readers.
fn summary(r: &SubjectReport) -> (Vec<(u64, bool)>, u64, u64, usize) {
    (
        r.entries.iter().map(|e| (e.seq, e.is_proven())).collect(),
        r.dropped_index_rows,
        r.undecodable,
        r.broken.len(),
    )
}

/// Class: a cold report reads the whole store. Root cause: opening a file
/// store (even read-only) reads, CRC-checks and hashes every segment to
/// build its location table and check the persisted indexes, so one DSAR
/// report from a new process cost seconds at two million records. The cold
/// reader must give the same report (entries, proofs, counts) with keys and
/// without, while decoding only the open segment's records that hold the key.
#[test]
fn cold_report_matches_the_full_open_and_decodes_little() {
    let d = tempfile::tempdir().unwrap();
    let (t, keys) = store(d.path());
    let segs = segments(&tdir(d.path(), &t));
    assert!(segs.len() >= 4, "{} segments", segs.len());
    let full = FileStore::open_read_only(d.path()).unwrap();
    for subject in ["emp-0", "u-3", "nobody"] {
        for k in [None, Some(&keys)] {
            let before = index_decodes_on_this_thread();
            let cold = TenantReader::open(d.path(), &t).unwrap();
            assert!(!cold.is_full_read());
            let r = cold.subject_report(&t, subject, k).unwrap();
            let decoded = index_decodes_on_this_thread() - before;
            let want = full.subject_report(&t, subject, k).unwrap();
            assert_eq!(
                summary(&r),
                summary(&want),
                "{subject} keys={}",
                k.is_some()
            );
            assert_eq!(r.is_fully_proven(), k.is_some() || r.entries.is_empty());
            // Only records of the open segment that hold the key's bytes are decoded.
            let open_first: u64 = segment_first_seq(segs.last().unwrap());
            assert!(
                decoded <= (N - open_first),
                "{subject}: {decoded} records decoded"
            );
        }
    }
    let r = TenantReader::open(d.path(), &t).unwrap();
    assert_eq!(r.bounds(&t).unwrap(), full.bounds(&t).unwrap());
    assert_eq!(
        r.read_range(&t, 0, N)
            .unwrap()
            .into_iter()
            .map(|x| x.unwrap())
            .collect::<Vec<_>>(),
        full.read_range(&t, 0, N)
            .unwrap()
            .into_iter()
            .map(|x| x.unwrap())
            .collect::<Vec<_>>()
    );
    // A tenant with no chain: an empty report, as on the full open.
    let other = tenant("nobody");
    let r = TenantReader::open(d.path(), &other).unwrap();
    assert!(
        r.subject_report(&other, "emp-0", Some(&keys))
            .unwrap()
            .entries
            .is_empty()
    );
}

/// A record damaged in a sealed segment (CRC fixed, so only the chain can
/// tell): the cold report still returns the subject's records, and every
/// entry whose proof crosses the damage is unproven with the break listed,
/// exactly as on a full open; nothing damaged is shown as proven.
#[test]
fn cold_report_proves_nothing_across_damage() {
    let d = tempfile::tempdir().unwrap();
    let (t, keys) = store(d.path());
    // Without Merkle roots (the checkpoint form before roots), so entries are
    // proven by walking the chain across the damage. (With roots each entry
    // has its own path: see `merkle_roots`.)
    let log = tdir(d.path(), &t).join("checkpoints.jsonl");
    let cps = hisn_audit_log::read_checkpoint_log(&log).unwrap();
    fs::remove_file(&log).unwrap();
    let sink = hisn_audit_log::FileSink::new(&log);
    for c in cps {
        let mut u = c.checkpoint;
        u.root = None;
        hisn_audit_log::CheckpointSink::publish(&sink, &key("audit", 3).sign(u)).unwrap();
    }
    let segs = segments(&tdir(d.path(), &t));
    // Flip a byte inside the second segment, in a frame's record, and fix
    // the frame's CRC so the frame itself still checks.
    let seg = &segs[1];
    let bytes = fs::read(seg).unwrap();
    let parsed = hisn_audit_log::store::segment::parse_segment(&bytes).unwrap();
    let f = parsed.frames[3];
    let mut rec = bytes[f.record_range()].to_vec();
    let last = rec.len() - 1;
    rec[last] ^= 0x01;
    let synced = f.synced;
    let frame = hisn_audit_log::store::segment::encode_frame(&rec, &f.link, synced);
    fs::OpenOptions::new()
        .write(true)
        .open(seg)
        .unwrap()
        .write_all_at(&frame, f.offset)
        .unwrap();
    let full = FileStore::open_read_only(d.path()).unwrap();
    let cold = TenantReader::open(d.path(), &t).unwrap();
    for subject in ["emp-0", "emp-1", "u-3"] {
        let r = cold.subject_report(&t, subject, Some(&keys)).unwrap();
        let want = full.subject_report(&t, subject, Some(&keys)).unwrap();
        assert_eq!(summary(&r), summary(&want), "{subject}");
        assert!(!r.broken.is_empty(), "{subject}: damage not reported");
        let damaged = parsed.header.first_seq + 3;
        assert!(
            r.entries
                .iter()
                .filter(|e| e.is_proven())
                .all(|e| e.seq / 50 != damaged / 50),
            "{subject}: an entry next to the damage is proven"
        );
    }
}

/// Class: a DSAR report of a log cut below a verified checkpoint looked
/// complete. Root cause: the report only planned proofs for the entries the
/// store still held, so records a signed checkpoint commits to and the store
/// lost (the newest segment deleted, or damaged so the reader stops before
/// it) left no trace: an empty or short report with nothing broken. Now the
/// cut is listed as a `Truncated` range, on the full open and the cold one.
#[test]
fn report_of_a_log_cut_below_a_verified_checkpoint_lists_the_cut() {
    let d = tempfile::tempdir().unwrap();
    let (t, keys) = store(d.path());
    let segs = segments(&tdir(d.path(), &t));
    let last = segs.last().unwrap();
    let first_of_last: u64 = segment_first_seq(last);
    fs::remove_file(last).unwrap();
    let full = FileStore::open_read_only(d.path()).unwrap();
    let cold = TenantReader::open(d.path(), &t).unwrap();
    for (what, r) in [
        (
            "full",
            full.subject_report(&t, "emp-0", Some(&keys)).unwrap(),
        ),
        (
            "cold",
            cold.subject_report(&t, "emp-0", Some(&keys)).unwrap(),
        ),
    ] {
        let cut: Vec<_> = r
            .broken
            .iter()
            .filter(|b| b.verdict == hisn_audit_log::Verdict::Truncated)
            .map(|b| (b.first, b.last))
            .collect();
        assert_eq!(cut, vec![(first_of_last, N - 1)], "{what}");
        assert!(!r.is_fully_proven(), "{what}");
    }
}
