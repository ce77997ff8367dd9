//! Crash tests: torn tails at every byte offset, zero-filled tails, a second
//! crash after recovery. Every acknowledged record survives and the next append
//! chains on.

use std::path::{Path, PathBuf};

use hisn_audit_log::store::segment::parse_segment;
use hisn_audit_log::{AuditRead, Durability, Error, FileStore, FileStoreOptions, Verdict};

use crate::common::*;

const N: u64 = 5;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::Fsync)
}

fn seg_path(dir: &Path) -> PathBuf {
    dir.join(format!("t-{}", hex::encode("acme")))
        .join(format!("{:020}.seg", 0))
}

fn build(dir: &Path) -> Vec<u8> {
    let t = tenant("acme");
    let s = FileStore::open(dir, opts()).unwrap();
    for i in 0..N {
        assert_eq!(s.append(event(&t, i)).unwrap(), i);
    }
    s.close().unwrap();
    std::fs::read(seg_path(dir)).unwrap()
}

/// Open after a "crash" that left `bytes`, check `expect` records survive,
/// append one and check the chain.
fn recover(dir: &Path, bytes: &[u8], expect: u64) -> Vec<u8> {
    let t = tenant("acme");
    std::fs::write(seg_path(dir), bytes).unwrap();
    let s = FileStore::open(dir, opts()).unwrap();
    assert_eq!(s.bounds(&t).unwrap().size, expect);
    assert_eq!(
        s.append(event(&t, 50)).unwrap(),
        expect,
        "next append chains on"
    );
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, expect + 1));
    s.close().unwrap();
    std::fs::read(seg_path(dir)).unwrap()
}

#[test]
fn torn_last_frame_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let full = build(dir.path());
    let p = parse_segment(&full).unwrap();
    let last = p.frames[N as usize - 1].offset as usize;
    for cut in last..full.len() {
        let after = recover(dir.path(), &full[..cut], N - 1);
        // Crash again during the append after recovery: cut its frame short too.
        let p2 = parse_segment(&after).unwrap();
        let new_last = p2.frames.last().unwrap().offset as usize;
        recover(dir.path(), &after[..new_last + 1 + cut % 40], N - 1);
    }
    // A whole clean file keeps every record.
    recover(dir.path(), &full, N);
}

#[test]
fn zero_filled_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = build(dir.path());
    full.extend(std::iter::repeat_n(0u8, 8192));
    recover(dir.path(), &full, N);
}

#[test]
fn damage_before_intact_frames_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = build(dir.path());
    let p = parse_segment(&full).unwrap();
    full[p.frames[1].offset as usize + 12] ^= 0xff;
    std::fs::write(seg_path(dir.path()), &full).unwrap();
    assert!(matches!(
        FileStore::open(dir.path(), opts()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn leftover_temporary_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let full = build(dir.path());
    let tmp = seg_path(dir.path()).with_file_name(format!("{:020}.seg.tmp", N));
    std::fs::write(&tmp, b"HISNALG1 partial").unwrap();
    recover(dir.path(), &full, N);
    assert!(!tmp.exists());
}
