//! Class: something planted in a file store that no writer made (a FIFO, a
//! directory, a link to a file or to a valid segment elsewhere, a linked
//! tenant directory, a link where the quarantine goes). `repair` reports it
//! and, with `--apply`, moves it out of the chain without reading or
//! writing through it; appends then resume. A linked tenant directory is
//! reported and left for the operator: nothing is written where it points.
//!
//! Root cause: `repair --apply` listed segments as a writer does, which
//! refuses anything but a regular file, so the repair stopped with an error
//! (exit 2) on exactly the damage it exists for; the dry run read through
//! links.

use std::os::unix::fs::{FileExt as _, FileTypeExt as _, symlink};
use std::path::{Path, PathBuf};

use hisn_audit_log::store::file::RepairMode;
use hisn_audit_log::{AuditRead, Durability, FileStore, FileStoreOptions};

use crate::common::*;

const N: u64 = 3;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::Fsync)
}

fn build(dir: &Path) -> PathBuf {
    let t = tenant("acme");
    let s = FileStore::open(dir, opts()).unwrap();
    for i in 0..N {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    tdir(dir, &t)
}

/// The name of the segment after the last one.
fn next_segment(tdir: &Path) -> PathBuf {
    tdir.join(format!("{:020}.seg", N))
}

/// Repair (dry run, then apply), then open, append and verify.
fn repair_moves_it_out(dir: &Path, planted: &Path, kept: u64) {
    let t = tenant("acme");
    let dry = FileStore::repair(dir, Some(&t), RepairMode::DryRun).unwrap();
    let d = dry[0].damage.clone().expect("reported");
    assert!(d.what.contains("not a regular file"), "{d:?}");
    assert!(planted.ends_with(&d.file), "{d:?}");
    assert_eq!((dry[0].kept, dry[0].applied), (kept, false));
    assert!(
        std::fs::symlink_metadata(planted).is_ok(),
        "dry run moves nothing"
    );
    let done = FileStore::repair(dir, Some(&t), RepairMode::Apply).unwrap();
    assert!(done[0].applied, "{:?}", done[0]);
    assert!(std::fs::symlink_metadata(planted).is_err(), "moved out");
    let q = &done[0].quarantined[0];
    assert!(q.starts_with(tdir(dir, &t)), "{q:?}");
    let again = FileStore::repair(dir, Some(&t), RepairMode::DryRun).unwrap();
    assert!(again[0].damage.is_none(), "{again:?}");
    let s = FileStore::open(dir, opts()).unwrap();
    assert_eq!(s.append(event(&t, kept)).unwrap(), kept);
    let r = s.verify(&t, None, &[]).unwrap();
    assert!(r.verdict.is_ok(), "{r:?}");
    assert_eq!(r.size, kept + 1);
    s.close().unwrap();
}

#[test]
fn a_planted_fifo_is_moved_out() {
    let dir = tempfile::tempdir().unwrap();
    let td = build(dir.path());
    let p = next_segment(&td);
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap()
            .success()
    );
    repair_moves_it_out(dir.path(), &p, N);
    let q = td
        .join("quarantine")
        .join(p.file_name().unwrap())
        .with_extension("seg.damaged");
    assert!(std::fs::symlink_metadata(q).unwrap().file_type().is_fifo());
}

#[test]
fn a_planted_directory_is_moved_out() {
    let dir = tempfile::tempdir().unwrap();
    let td = build(dir.path());
    let p = next_segment(&td);
    std::fs::create_dir(&p).unwrap();
    repair_moves_it_out(dir.path(), &p, N);
}

#[test]
fn a_link_to_a_file_elsewhere_is_moved_out_and_its_target_untouched() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let td = build(dir.path());
    let target = elsewhere.path().join("victim");
    std::fs::write(&target, b"not yours").unwrap();
    let p = next_segment(&td);
    symlink(&target, &p).unwrap();
    repair_moves_it_out(dir.path(), &p, N);
    assert_eq!(std::fs::read(&target).unwrap(), b"not yours");
}

/// A link to a valid segment (the chain's own first one, moved elsewhere)
/// is damage too: the writer never appends through a link, so repair must
/// not call the chain intact.
#[test]
fn a_link_to_a_valid_segment_elsewhere_is_damage_and_its_target_untouched() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let td = build(dir.path());
    let seg = td.join(format!("{:020}.seg", 0));
    let target = elsewhere.path().join("seg");
    std::fs::rename(&seg, &target).unwrap();
    let before = std::fs::read(&target).unwrap();
    symlink(&target, &seg).unwrap();
    repair_moves_it_out(dir.path(), &seg, 0);
    assert_eq!(std::fs::read(&target).unwrap(), before);
}

#[test]
fn a_link_where_the_quarantine_goes_is_never_written_through() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let td = build(dir.path());
    symlink(elsewhere.path(), td.join("quarantine")).unwrap();
    let p = next_segment(&td);
    std::fs::create_dir(&p).unwrap();
    let t = tenant("acme");
    let done = FileStore::repair(dir.path(), Some(&t), RepairMode::Apply).unwrap();
    assert!(done[0].applied);
    assert!(
        done[0].quarantined[0].starts_with(td.join("quarantine.1")),
        "{done:?}"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn a_linked_tenant_directory_is_reported_and_nothing_is_written_where_it_points() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let td = build(dir.path());
    let real = elsewhere.path().join("acme");
    std::fs::rename(&td, &real).unwrap();
    symlink(&real, &td).unwrap();
    // Damage in the linked chain, which an apply must not cut there.
    let seg = real.join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    let listing = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(&real);
    let t = tenant("acme");
    for mode in [RepairMode::DryRun, RepairMode::Apply] {
        let r = FileStore::repair(dir.path(), Some(&t), mode).unwrap();
        let d = r[0].damage.clone().expect("reported");
        assert!(d.what.contains("tenant directory is a link"), "{d:?}");
        assert!(!r[0].applied && r[0].quarantined.is_empty());
    }
    assert_eq!(listing(&real), before);
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

/// Damage a byte of record 1 in the first segment (below the synced mark).
fn damage_record_1(td: &Path) -> PathBuf {
    let seg = td.join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let p = hisn_audit_log::store::segment::parse_segment(&bytes).unwrap();
    let at = p.frames[1].record_range().start + 20;
    bytes[at] ^= 0x20;
    // In place: a hard link to the segment sees the same bytes.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&bytes[at..=at], at as u64)
        .unwrap();
    seg
}

/// The cut never writes the damaged file: a hard link to it (a same-disk
/// backup made with `cp -al`, the replica an operator restores from) keeps
/// every byte.
#[test]
fn a_hard_link_to_a_damaged_segment_keeps_every_byte() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let td = build(dir.path());
    let seg = damage_record_1(&td);
    let backup = elsewhere.path().join("backup.seg");
    std::fs::hard_link(&seg, &backup).unwrap();
    let damaged = std::fs::read(&seg).unwrap();
    let t = tenant("acme");
    let done = FileStore::repair(dir.path(), Some(&t), RepairMode::Apply).unwrap();
    assert!(done[0].applied && done[0].kept == 1, "{done:?}");
    assert_eq!(std::fs::read(&backup).unwrap(), damaged);
    assert_eq!(std::fs::read(&done[0].quarantined[0]).unwrap(), damaged);
    assert!(std::fs::read(&seg).unwrap().len() < damaged.len());
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert_eq!(s.append(event(&t, 1)).unwrap(), 1);
    s.close().unwrap();
}

/// `checkpoints.jsonl` as a link to a file outside the store (with a torn
/// last line that an open would cut), or as a FIFO: an applied repair
/// neither cuts nor extends what it points to, and never hangs.
#[test]
fn a_linked_or_fifo_checkpoint_log_is_never_repaired_through() {
    for kind in ["link", "fifo"] {
        let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let td = build(dir.path());
        damage_record_1(&td);
        let log = td.join("checkpoints.jsonl");
        let outside = elsewhere.path().join("notes.txt");
        std::fs::write(&outside, b"line one\nno newline at the end").unwrap();
        let _ = std::fs::remove_file(&log);
        if kind == "link" {
            symlink(&outside, &log).unwrap();
        } else {
            assert!(
                std::process::Command::new("mkfifo")
                    .arg(&log)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let t = tenant("acme");
        let done = FileStore::repair(dir.path(), Some(&t), RepairMode::Apply).unwrap();
        assert!(done[0].applied, "{kind}: {done:?}");
        assert_eq!(
            std::fs::read(&outside).unwrap(),
            b"line one\nno newline at the end",
            "{kind}"
        );
    }
}

/// A directory planted at `synced.mark`: the repair moves it to quarantine
/// with the damage instead of failing after the cut.
#[test]
fn a_directory_at_the_synced_mark_is_moved_out_with_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let td = build(dir.path());
    damage_record_1(&td);
    let mark = td.join("synced.mark");
    let _ = std::fs::remove_file(&mark);
    std::fs::create_dir(&mark).unwrap();
    let t = tenant("acme");
    let done = FileStore::repair(dir.path(), Some(&t), RepairMode::Apply).unwrap();
    assert!(done[0].applied, "{done:?}");
    assert!(std::fs::symlink_metadata(&mark).is_err());
    assert!(td.join("quarantine").join("synced.mark").is_dir());
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert_eq!(s.append(event(&t, 1)).unwrap(), 1);
    s.close().unwrap();
}
