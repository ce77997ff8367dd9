//! The file store's persisted subject index (`<segment>.sidx`).

use std::fs;
use std::path::{Path, PathBuf};

use hisn_audit_log::store::file::index_decodes_on_this_thread;
use hisn_audit_log::{AuditRead, Durability, FileStore, FileStoreOptions, TenantId, TenantReader};
use sha2::{Digest as _, Sha256};

use crate::common::*;

const N: u64 = 400;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::OsBuffered)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES * 4)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(ext))
        .collect();
    v.sort();
    v
}

/// A store of `N` records for `acme` in several segments, closed.
fn store(dir: &Path) -> TenantId {
    let t = tenant("acme");
    let s = FileStore::open(dir, opts()).unwrap();
    for i in 0..N {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    t
}

/// Sequence numbers of the records naming `emp-0` (see `common::event`).
fn expected_emp0() -> Vec<u64> {
    (0..N).filter(|i| i % 5 == 0).collect()
}

/// Records decoded while opening `dir` read-only, and the subject lookups.
fn reopen(dir: &Path, t: &TenantId) -> (u64, Vec<u64>, Vec<u64>) {
    let before = index_decodes_on_this_thread();
    let s = FileStore::open_read_only(dir).unwrap();
    let decoded = index_decodes_on_this_thread() - before;
    let emp0 = s.subject_seqs(t, "emp-0").unwrap();
    let actor = s.subject_seqs(t, "u-3").unwrap();
    (decoded, emp0, actor)
}

/// First sequence number of the newest (open) segment, from its file name.
fn open_segment_first(dir: &Path) -> u64 {
    let segs = files(dir, ".seg");
    let name = segs.last().unwrap().file_stem().unwrap().to_str().unwrap();
    name.parse().unwrap()
}

#[test]
fn persisted_subject_index_is_used_on_reopen() {
    let d = tempfile::tempdir().unwrap();
    let t = store(d.path());
    let td = tdir(d.path(), &t);
    let segs = files(&td, ".seg");
    assert!(segs.len() >= 3, "the test needs sealed segments");
    // Every sealed segment was indexed when it was sealed (close joins the
    // indexer); the open one is not.
    assert_eq!(files(&td, ".sidx").len(), segs.len() - 1);
    let (decoded, emp0, actor) = reopen(d.path(), &t);
    // Only the open segment's records were decoded.
    assert_eq!(decoded, N - open_segment_first(&td));
    assert!(decoded < N / 2, "{decoded} of {N} decoded");
    assert_eq!(emp0, expected_emp0());
    assert_eq!(actor, (0..N).filter(|i| i % 7 == 3).collect::<Vec<_>>());
}

/// Rewrite the body of an index file and fix its own checksum, so only the
/// binding to the segment can catch the change.
fn reseal(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&Sha256::digest(body));
    out
}

/// The index of the first segment of a store holding the same records in
/// smaller segments: a valid index, written for fewer records of the same
/// chain (a stale index of a shorter segment).
fn index_of_fewer_records(t: &TenantId) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let s = FileStore::open(
        d.path(),
        FileStoreOptions::default()
            .durability(Durability::OsBuffered)
            .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES * 2),
    )
    .unwrap();
    for i in 0..N {
        s.append(event(t, i)).unwrap();
    }
    s.close().unwrap();
    fs::read(&files(&tdir(d.path(), t), ".sidx")[0]).unwrap()
}

/// Recompute an index's header checksum (bytes 88..120) and its trailer.
fn reseal_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&bytes[..88]);
    bytes[88..120].copy_from_slice(&sum);
    let n = bytes.len() - 32;
    let trailer = Sha256::digest(&bytes[..n]);
    bytes[n..].copy_from_slice(&trailer);
    bytes
}

/// Cold lookups of `emp-0` and `u-3` through a [`TenantReader`].
fn cold(dir: &Path, t: &TenantId) -> (Vec<u64>, Vec<u64>) {
    let r = TenantReader::open(dir, t).unwrap();
    (
        r.subject_seqs(t, "emp-0").unwrap(),
        r.subject_seqs(t, "u-3").unwrap(),
    )
}

/// Regression for the class "a persisted index is trusted blindly".
///
/// Root cause being guarded: the subject index decides which records a DSAR
/// report even looks at. The report re-checks each record it is given, so a
/// wrong index cannot add someone else's record, but an index that omits one
/// silently drops it from the report. Before this change the file store had
/// no persisted index; with one, every way the file can go wrong (a flipped
/// byte, a torn write, an index of another segment or tenant, a stale index
/// of a shorter segment, one that drops a record) must be refused against
/// the segment it claims to index, and the segment decoded instead.
#[test]
fn untrustworthy_subject_index_is_detected_and_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let t = store(d.path());
    let td = tdir(d.path(), &t);
    let idx = files(&td, ".sidx");
    let (first, second) = (idx[0].clone(), idx[1].clone());
    let good = fs::read(&first).unwrap();
    // Another tenant's store with the same layout: same file names.
    let other_dir = tempfile::tempdir().unwrap();
    let other = tenant("globex");
    {
        let s = FileStore::open(other_dir.path(), opts()).unwrap();
        for i in 0..N {
            s.append(event(&other, i)).unwrap();
        }
        s.close().unwrap();
    }
    let foreign = fs::read(&files(&tdir(other_dir.path(), &other), ".sidx")[0]).unwrap();
    let body_len = good.len() - 32;
    let mut flipped = good.clone();
    flipped[body_len / 2] ^= 0x01;
    // The segment length in the header is wrong but self-consistent.
    let mut stale = good.clone();
    stale[8] ^= 0x01;
    // The record count lowered (header checksums recomputed).
    let mut fewer = good.clone();
    fewer[56] = fewer[56].wrapping_sub(1);
    // One bucket's byte flipped (only that bucket's checksum can tell).
    let mut bucket = good.clone();
    bucket[body_len - 40] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("another segment's", fs::read(&second).unwrap()),
        ("another tenant's", foreign),
        ("stale (other segment length)", reseal_header(stale)),
        ("claims fewer records", reseal_header(fewer)),
        ("written for fewer records", index_of_fewer_records(&t)),
        ("damaged bucket", reseal(&bucket[..body_len])),
    ];
    for (what, bytes) in cases {
        fs::write(&first, &bytes).unwrap();
        let (decoded, emp0, _) = reopen(d.path(), &t);
        assert!(
            decoded > N - open_segment_first(&td),
            "{what}: the index was trusted"
        );
        assert_eq!(emp0, expected_emp0(), "{what}: the report lost records");
        // A cold reader (no segment hashing) falls back too.
        let expected_actor: Vec<u64> = (0..N).filter(|i| i % 7 == 3).collect();
        assert_eq!(
            cold(d.path(), &t),
            (expected_emp0(), expected_actor.clone()),
            "{what}: a cold lookup lost records"
        );
        // A writer rebuilds it; the next open uses it again.
        FileStore::open(d.path(), opts()).unwrap().close().unwrap();
        assert_eq!(fs::read(&first).unwrap(), good, "{what}: not rebuilt");
        let (decoded, emp0, _) = reopen(d.path(), &t);
        assert_eq!(decoded, N - open_segment_first(&td), "{what}");
        assert_eq!(emp0, expected_emp0(), "{what}");
    }
}

#[test]
fn missing_subject_index_is_rebuilt_and_a_leftover_temp_file_removed() {
    let d = tempfile::tempdir().unwrap();
    let t = store(d.path());
    let td = tdir(d.path(), &t);
    let idx = files(&td, ".sidx");
    // A crash between writing the temporary file and its rename.
    let tmp = PathBuf::from(format!("{}.tmp", idx[0].display()));
    fs::rename(&idx[0], &tmp).unwrap();
    let (decoded, emp0, _) = reopen(d.path(), &t);
    assert!(decoded > N - open_segment_first(&td));
    assert_eq!(emp0, expected_emp0());
    FileStore::open(d.path(), opts()).unwrap().close().unwrap();
    assert!(!tmp.exists() && idx[0].is_file());
    assert_eq!(reopen(d.path(), &t).1, expected_emp0());
}

/// The fuzzing entry point (`fuzz/fuzz_targets/audit_log_subject_index.rs`)
/// holds on real indexes, as they are and resealed (resealing a valid index
/// changes nothing), and a resealed index whose body was changed breaks no
/// invariant (the two readers still agree). Writes the target's seed corpus
/// when `HISN_WRITE_FUZZ_SEEDS` names a directory.
#[test]
fn subject_index_fuzz_entry_holds_on_real_and_resealed_indexes() {
    use hisn_audit_log::store::file::{fuzz_subject_index, index_file_of};
    let d = tempfile::tempdir().unwrap();
    let t = store(d.path());
    let segs = files(&tdir(d.path(), &t), ".seg");
    let seg = &segs[0];
    let (seg_bytes, idx) = (
        fs::read(seg).unwrap(),
        fs::read(index_file_of(seg)).unwrap(),
    );
    for key in ["emp-0", "u-3", "nobody", ""] {
        assert_eq!(fuzz_subject_index(&idx, &seg_bytes, key, false), Ok(()));
        assert_eq!(fuzz_subject_index(&idx, &seg_bytes, key, true), Ok(()));
        assert_eq!(fuzz_subject_index(&idx, b"", key, true), Ok(()));
    }
    for at in (0..idx.len()).step_by(7) {
        let mut bad = idx.clone();
        bad[at] ^= 0x41;
        assert_eq!(
            fuzz_subject_index(&bad, &seg_bytes, "emp-0", true),
            Ok(()),
            "byte {at}"
        );
        assert_eq!(
            fuzz_subject_index(&bad, &seg_bytes, "emp-0", false),
            Ok(()),
            "byte {at}"
        );
    }
    if let Some(out) = std::env::var_os("HISN_WRITE_FUZZ_SEEDS") {
        let out = Path::new(&out);
        fs::create_dir_all(out).unwrap();
        let seed = |flags: u8, key: &str, segment: &[u8], index: &[u8]| {
            let mut v = vec![flags, u8::try_from(key.len()).unwrap()];
            v.extend_from_slice(key.as_bytes());
            v.extend_from_slice(&u16::try_from(segment.len()).unwrap().to_le_bytes());
            v.extend_from_slice(segment);
            v.extend_from_slice(index);
            v
        };
        fs::write(out.join("real-emp0"), seed(0, "emp-0", &seg_bytes, &idx)).unwrap();
        fs::write(out.join("real-actor"), seed(0, "u-3", &seg_bytes, &idx)).unwrap();
        fs::write(out.join("resealed-emp0"), seed(1, "emp-0", b"", &idx)).unwrap();
        fs::write(out.join("resealed-absent"), seed(1, "nobody", b"", &idx)).unwrap();
        fs::write(out.join("header-only"), seed(1, "a", b"", &idx[..120])).unwrap();
        fs::write(out.join("empty"), seed(0, "", b"", b"")).unwrap();
    }
}

/// Class: an index rewritten with consistent checksums hides records from
/// DSAR reports, and nothing noticed. The index has no MAC, and neither the
/// chain nor the Merkle tree commits to who a record is about, so chain
/// verification passed while cold and full reports both trusted the forged
/// file. `FileStore::check_subject_indexes` (run by `hisn audit verify`)
/// compares every persisted index with its segment's records, as both
/// readers use it, and names the segment; removing the file makes the next
/// writable open rebuild it.
#[test]
fn an_index_forged_to_omit_a_subject_is_named_by_the_index_check() {
    use hisn_audit_log::store::file::{forge_index_omitting, index_file_of};
    let d = tempfile::tempdir().unwrap();
    let t = store(d.path());
    let tdir = tdir(d.path(), &t);
    let s = FileStore::open_read_only(d.path()).unwrap();
    assert_eq!(s.check_subject_indexes(&t).unwrap(), vec![]);
    drop(s);

    let segs = files(&tdir, ".seg");
    let victim = &segs[1];
    let first: u64 = segment_first_seq(victim);
    forge_index_omitting(victim, "emp-0").unwrap();
    // The forgery works: both readers now miss the segment's emp-0 records.
    let hidden: Vec<u64> = expected_emp0()
        .into_iter()
        .filter(|s| !cold(d.path(), &t).0.contains(s))
        .collect();
    assert!(!hidden.is_empty() && hidden.iter().all(|s| *s >= first));
    let (_, full, _) = reopen(d.path(), &t);
    assert!(hidden.iter().all(|s| !full.contains(s)));

    let s = FileStore::open_read_only(d.path()).unwrap();
    let found = s.check_subject_indexes(&t).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].segment,
        victim.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!((found[0].first_seq, found[0].keys), (first, 1));
    drop(s);

    // Remove the forged file: the next writable open rebuilds it.
    fs::remove_file(index_file_of(victim)).unwrap();
    FileStore::open(d.path(), opts()).unwrap().close().unwrap();
    let s = FileStore::open_read_only(d.path()).unwrap();
    assert_eq!(s.check_subject_indexes(&t).unwrap(), vec![]);
    assert_eq!(cold(d.path(), &t).0, expected_emp0());
}

#[test]
fn an_index_check_of_an_unknown_tenant_is_not_found() {
    let d = tempfile::tempdir().unwrap();
    let _ = store(d.path());
    let s = FileStore::open_read_only(d.path()).unwrap();
    assert!(matches!(
        s.check_subject_indexes(&tenant("nobody")),
        Err(hisn_audit_log::Error::NotFound)
    ));
}

/// `TenantReader::check_subject_indexes` (what `hisn audit report` runs
/// before printing, and refuses on) must name a forged index whichever way
/// the reader opened: lazily (the usual case, over the segments it found)
/// and through its full fallback (here forced by an interrupted prune's
/// intent file). A check that reported nothing would let the report hand
/// out a forged omission with no sign (kills the `-> Ok(vec![])` mutant of
/// the in-diff mutation run, issue 19).
#[test]
fn the_cold_readers_index_check_names_a_forged_index() {
    use hisn_audit_log::store::file::forge_index_omitting;
    let d = tempfile::tempdir().unwrap();
    let t = store(d.path());
    let tdir = tdir(d.path(), &t);
    let check = || {
        let r = TenantReader::open(d.path(), &t).unwrap();
        (r.is_full_read(), r.check_subject_indexes().unwrap())
    };
    assert_eq!(check(), (false, vec![]));

    let victim = &files(&tdir, ".seg")[1];
    let first: u64 = segment_first_seq(victim);
    forge_index_omitting(victim, "emp-0").unwrap();
    let named = |(full, found): (bool, Vec<hisn_audit_log::IndexMismatch>)| {
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].segment,
            victim.file_name().unwrap().to_str().unwrap()
        );
        assert_eq!((found[0].first_seq, found[0].keys), (first, 1));
        full
    };
    assert!(!named(check()), "read lazily");
    // An undecodable prune intent sends the cold reader to the full open
    // (which ignores it read-only).
    fs::write(tdir.join("prune.intent"), b"not an intent").unwrap();
    assert!(named(check()), "read through the full open");

    // A tenant with no chain: nothing to check.
    let r = TenantReader::open(d.path(), &tenant("nobody")).unwrap();
    assert_eq!(r.check_subject_indexes().unwrap(), vec![]);
}
