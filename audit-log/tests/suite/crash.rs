//! Crash tests: torn tails at every byte offset, zero-filled tails, a second
//! crash after recovery. Every acknowledged record survives and the next append
//! chains on.

use std::path::{Path, PathBuf};

use hisn_audit_log::store::segment::{SegmentHeader, encode_frame, encode_frame_v1, parse_segment};
use hisn_audit_log::{
    AuditRead, Clock, Durability, Error, FileStore, FileStoreOptions, Link, Verdict, chain_link,
    encode_record, record_digest,
};

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

/// Remove the synced mark a clean close leaves, as a crash would not have
/// written it.
fn crashed(dir: &Path) {
    match std::fs::remove_file(seg_path(dir).with_file_name("synced.mark")) {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    }
}

/// Open after a "crash" that left `bytes`, check `expect` records survive,
/// append one and check the chain.
fn recover(dir: &Path, bytes: &[u8], expect: u64) -> Vec<u8> {
    let t = tenant("acme");
    // A crash means no clean close: no synced mark newer than the damage.
    crashed(dir);
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

/// Class: damage below the synced mark (bytes that were `fdatasync`ed before
/// later frames were written) is tampering, never a crash leftover.
///
/// Root cause of the old behaviour it guards: the store could not tell a
/// power-loss hole from an edit, so it refused to open at all; now it opens,
/// refuses appends to the damaged tenant only and reports the damage.
#[test]
fn damage_below_the_synced_mark_blocks_only_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = build(dir.path());
    let p = parse_segment(&full).unwrap();
    // Every append was its own synced batch: frame 2's mark covers frame 1.
    assert!(p.frames[2].synced > p.frames[1].offset);
    full[p.frames[1].offset as usize + 20] ^= 0xff;
    std::fs::write(seg_path(dir.path()), &full).unwrap();
    let (t, other) = (tenant("acme"), tenant("beta"));
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert!(matches!(s.append(event(&t, 9)), Err(Error::Corrupt { .. })));
    // Another tenant is not held hostage by acme's damage.
    assert_eq!(s.append(event(&other, 0)).unwrap(), 0);
    assert_eq!(s.append(event(&other, 1)).unwrap(), 1);
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(1)));
    assert_eq!(
        s.verify(&other, None, &[]).unwrap().verdict,
        Verdict::UnanchoredTail
    );
    assert_eq!(s.subject_seqs(&other, "emp-1").unwrap(), vec![1]);
    s.close().unwrap();
    // Nothing was cut: the damaged bytes are still there for an operator.
    assert_eq!(std::fs::read(seg_path(dir.path())).unwrap(), full);
}

/// Frames for records `from..from + n` of tenant acme chained after `prev`,
/// written as one batch whose synced mark is `synced`.
fn batch(from: u64, n: u64, prev: Link, synced: u64) -> (Vec<u8>, Vec<u64>) {
    let t = tenant("acme");
    let (mut out, mut offsets, mut link) = (Vec::new(), Vec::new(), prev);
    for seq in from..from + n {
        let record = encode_record(seq, &event(&t, seq)).unwrap();
        link = chain_link(b"acme", seq, &link, &record_digest(&record));
        offsets.push(out.len() as u64);
        out.extend(encode_frame(&record, &link, synced));
    }
    (out, offsets)
}

/// Class: a power loss during an unacknowledged batch leaves a hole (zeros
/// where pages were lost) followed by intact frames of the same batch. Every
/// frame after the hole carries a synced mark at or below the hole, so it is a
/// torn tail: cut back, the store opens and the chain continues.
///
/// Root cause: recovery called any damage followed by intact bytes corruption
/// and refused to open the store (reported as `tampered`), because frames did
/// not record how much of the file was known to be on disk.
#[test]
fn power_loss_hole_in_an_unacknowledged_batch_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let full = build(dir.path());
    let p = parse_segment(&full).unwrap();
    let synced = full.len() as u64;
    let head = p.frames.last().unwrap().link;
    let (tail, offsets) = batch(N, 6, head, synced);
    // Holes of every shape: inside the first frame, the second, spanning two,
    // a page-sized run of zeros; intact frames always follow.
    for (start, len) in [
        (3usize, 20usize),
        (offsets[1] as usize + 5, 40),
        (offsets[1] as usize + 30, 200),
        (0, offsets[3] as usize),
    ] {
        let mut bytes = full.clone();
        let mut t = tail.clone();
        t[start..start + len].fill(0);
        bytes.extend(&t);
        // Frames that end before the hole survive; the rest of the batch is cut.
        let kept = (0..offsets.len())
            .filter(|&i| offsets.get(i + 1).map_or(t.len(), |e| *e as usize) <= start)
            .count() as u64;
        recover(dir.path(), &bytes, N + kept);
        std::fs::write(seg_path(dir.path()), &full).unwrap();
    }
    // The same hole where the batch after it says it had been synced: tampering.
    let (second, _) = batch(N + 6, 2, Link::GENESIS, synced + tail.len() as u64);
    let mut bytes = full.clone();
    let mut t = tail.clone();
    t[offsets[1] as usize + 5..offsets[1] as usize + 45].fill(0);
    bytes.extend(&t);
    bytes.extend(&second);
    std::fs::write(seg_path(dir.path()), &bytes).unwrap();
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert!(matches!(
        s.append(event(&tenant("acme"), 99)),
        Err(Error::Corrupt { .. })
    ));
}

/// Class: a segment written by the previous format (no synced marks) is
/// still read, verified and continued; the first append starts a new segment.
#[test]
fn old_format_segments_are_read_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let tdir = seg_path(dir.path()).parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&tdir).unwrap();
    let mut bytes = SegmentHeader {
        version: 1,
        tenant: t.clone(),
        first_seq: 0,
        prev_link: Link::GENESIS,
        segment_id: [5; 16],
    }
    .encode();
    let mut link = Link::GENESIS;
    for seq in 0..4 {
        let record = encode_record(seq, &event(&t, seq)).unwrap();
        link = chain_link(b"acme", seq, &link, &record_digest(&record));
        bytes.extend(encode_frame_v1(&record, &link));
    }
    std::fs::write(seg_path(dir.path()), &bytes).unwrap();
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert_eq!(s.append(event(&t, 4)).unwrap(), 4);
    assert_eq!(s.segment_ends(&t).unwrap(), vec![3]);
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 5));
    s.close().unwrap();
    // The old segment is untouched.
    assert_eq!(std::fs::read(seg_path(dir.path())).unwrap(), bytes);
}

/// Class: a power loss while a checkpoint was appended leaves a torn last
/// line in `checkpoints.jsonl`; the next checkpoint must not be glued to it.
///
/// Root cause: the log was appended to as found, so the next note landed on
/// the torn line and was skipped as malformed by every later read.
#[test]
fn torn_last_line_of_the_checkpoint_log_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let t = tenant("acme");
    let k = key("k", 3);
    let log = seg_path(dir.path()).with_file_name("checkpoints.jsonl");
    for torn in [
        &b"{\"note\":\"hisn-audit-log/acme\\n5\\n"[..],
        &[0u8; 37][..],
    ] {
        let s = FileStore::open(dir.path(), opts()).unwrap();
        s.checkpoint_now(Some(&t), &k, Clock::now(&clock()))
            .unwrap();
        s.close().unwrap();
        let before = std::fs::read(&log).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, torn).unwrap();
        let s = FileStore::open(dir.path(), opts()).unwrap();
        assert_eq!(
            std::fs::read(&log).unwrap(),
            before,
            "torn line cut on open"
        );
        s.checkpoint_now(Some(&t), &k, Clock::now(&clock()))
            .unwrap();
        let n = s.checkpoints(&t).unwrap().len();
        let lines = std::fs::read(&log)
            .unwrap()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(n, lines);
        s.close().unwrap();
    }
    // A torn line while the store is open (another process appended) is
    // repaired before the next append too.
    let s = FileStore::open(dir.path(), opts()).unwrap();
    let n = s.checkpoints(&t).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"{\"no").unwrap();
    s.checkpoint_now(Some(&t), &k, Clock::now(&clock()))
        .unwrap();
    assert_eq!(s.checkpoints(&t).unwrap().len(), n + 1);
}

/// A read-only open never writes: a torn last line of the checkpoint log is
/// left for the next writable open (or checkpoint) to repair. Kills the
/// in-diff mutant that made the open-time repair run unless the tenant
/// directory is a link (`write && !linked` to `||`; issue 19).
#[test]
fn a_read_only_open_leaves_a_torn_checkpoint_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let t = tenant("acme");
    let log = seg_path(dir.path()).with_file_name("checkpoints.jsonl");
    let s = FileStore::open(dir.path(), opts()).unwrap();
    s.checkpoint_now(Some(&t), &key("k", 3), Clock::now(&clock()))
        .unwrap();
    s.close().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"{\"note\":\"hisn-audit-log/acme\\n5\\n").unwrap();
    let torn = std::fs::read(&log).unwrap();
    let ro = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.checkpoints(&t).unwrap().len(), 1);
    drop(ro);
    assert_eq!(
        std::fs::read(&log).unwrap(),
        torn,
        "written by a read-only open"
    );
    // The next writable open cuts it.
    FileStore::open(dir.path(), opts())
        .unwrap()
        .close()
        .unwrap();
    assert_ne!(std::fs::read(&log).unwrap(), torn);
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

/// Class: damage that opening cannot cut as a crash leftover needs an
/// operator: `repair` reports it (dry run), then cuts the chain back to the
/// last intact record, quarantines the rest, and the cut stays visible to a
/// checkpoint that covered the removed records.
///
/// Root cause: there was no way out short of editing segment files by hand;
/// the store refused to open until someone did.
#[test]
fn repair_cuts_damage_back_to_quarantine_and_the_cut_stays_visible() {
    use hisn_audit_log::store::file::RepairMode;
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("k", 4);
    let mut full = build(dir.path());
    {
        let s = FileStore::open(dir.path(), opts()).unwrap();
        s.checkpoint_now(Some(&t), &k, Clock::now(&clock()))
            .unwrap();
        // Repair needs the write lock.
        assert!(matches!(
            FileStore::repair(dir.path(), Some(&t), RepairMode::DryRun),
            Err(Error::Locked)
        ));
    }
    let p = parse_segment(&full).unwrap();
    let at = p.frames[2].offset as usize;
    full[at + 30] ^= 0x40;
    std::fs::write(seg_path(dir.path()), &full).unwrap();
    let dry = FileStore::repair(dir.path(), Some(&t), RepairMode::DryRun).unwrap();
    let d = dry[0].damage.clone().unwrap();
    assert_eq!(
        (d.offset, dry[0].kept, dry[0].dropped, dry[0].applied),
        (at as u64, 2, N - 3, false)
    );
    assert_eq!(
        std::fs::read(seg_path(dir.path())).unwrap(),
        full,
        "dry run changes nothing"
    );
    let done = FileStore::repair(dir.path(), None, RepairMode::Apply).unwrap();
    assert!(done[0].applied);
    // The whole damaged segment is kept; a new file with its intact prefix
    // takes its name.
    assert_eq!(std::fs::read(&done[0].quarantined[0]).unwrap(), full);
    assert_eq!(std::fs::read(seg_path(dir.path())).unwrap(), full[..at]);
    // A second repair finds nothing.
    let again = FileStore::repair(dir.path(), Some(&t), RepairMode::Apply).unwrap();
    assert!(again[0].damage.is_none() && !again[0].applied);
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert_eq!(s.append(event(&t, 2)).unwrap(), 2);
    let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!(r.verdict, Verdict::Truncated, "{r:?}");
    assert!(matches!(
        FileStore::repair(dir.path().join("nope"), None, RepairMode::DryRun),
        Err(Error::NotFound)
    ));
}

/// A store of 100 records over several small segments, checkpointed; returns
/// the export receipt of a prefix that spans at least two segments.
fn prune_fixture(
    dir: &Path,
    hook: Option<hisn_audit_log::store::file::CrashHook>,
) -> (FileStore, hisn_audit_log::ExportReceipt) {
    let t = tenant("acme");
    let mut o = opts().max_segment_bytes(4096);
    if let Some(h) = hook {
        o = o.crash_hook(h);
    }
    let s = FileStore::open(dir, o).unwrap();
    if s.bounds(&t).is_err() {
        for i in 0..100 {
            s.append(event(&t, i)).unwrap();
        }
    }
    let ends = s.segment_ends(&t).unwrap();
    assert!(ends.len() >= 3, "{ends:?}");
    let receipt = s.export(&t, ends[1]).unwrap().receipt;
    (s, receipt)
}

/// Class: a crash at any step of a prune (after the intent, after the prune
/// record, between segment deletions, before the intent is removed) leaves
/// a store that reopens as either not pruned or completely pruned, and
/// verifies (after the next checkpoint) as intact: never `tampered`.
///
/// Root cause: `prune` appended the prune record and then deleted segment
/// files with nothing on disk saying a prune was under way, so a crash in
/// between left a chain whose start did not match its prune record, a
/// permanent false `tampered`.
#[test]
fn prune_survives_a_crash_at_every_step() {
    use std::sync::{Arc, Mutex};
    let t = tenant("acme");
    let k = key("k", 6);
    let keys = trusted(&[&k]);
    // Count the steps of a prune that runs through.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let steps = {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::clone(&seen);
        let (s, r) = prune_fixture(
            dir.path(),
            Some(Arc::new(move |step| {
                log.lock().unwrap().push(step);
                Ok(())
            })),
        );
        s.prune(&r, "ops", &clock()).unwrap();
        seen.lock().unwrap().len()
    };
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| **s == "prune.delete")
            .count()
            >= 2
    );
    for crash_at in 0..steps {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Mutex::new(0usize));
        let c = Arc::clone(&calls);
        let (s, r) = prune_fixture(
            dir.path(),
            Some(Arc::new(move |_| {
                let mut n = c.lock().unwrap();
                *n += 1;
                if *n == crash_at + 1 {
                    Err(std::io::Error::other("crash"))
                } else {
                    Ok(())
                }
            })),
        );
        assert!(s.prune(&r, "ops", &clock()).is_err(), "step {crash_at}");
        drop(s);
        // A reader sees a consistent chain before any writer repaired it.
        let ro = FileStore::open_read_only(dir.path()).unwrap();
        let rv = ro.verify(&t, None, &[]).unwrap();
        assert!(rv.is_ok(), "step {crash_at}: read-only {rv:?}");
        drop(ro);
        let s = FileStore::open(dir.path(), opts().max_segment_bytes(4096)).unwrap();
        let b = s.bounds(&t).unwrap();
        let pruned = b.first_seq > 0;
        // Only the intent was written: the prune did not happen.
        assert_eq!(pruned, crash_at > 0, "step {crash_at}");
        if pruned {
            assert_eq!(b.first_seq, r.through() + 1);
        }
        assert!(
            !dir.path()
                .join(format!("t-{}", hex::encode("acme")))
                .join("prune.intent")
                .exists()
        );
        s.checkpoint_now(Some(&t), &k, Clock::now(&clock()))
            .unwrap();
        let v = s.verify(&t, Some(&keys), &[]).unwrap();
        assert_eq!(v.verdict, Verdict::Intact, "step {crash_at}: {v:?}");
        // The chain goes on, and an unfinished prune can simply be run again.
        s.append(event(&t, 77)).unwrap();
        if !pruned {
            let again = s.export(&t, r.through()).unwrap().receipt;
            s.prune(&again, "ops", &clock()).unwrap();
            assert_eq!(s.bounds(&t).unwrap().first_seq, r.through() + 1);
        }
    }
}

/// Class: after a clean close every byte is on disk, so damage to the newest
/// record (which no later frame vouches for) is tampering, not a torn write:
/// the writer refuses to cut it.
///
/// Root cause: recovery cut a damaged last frame as a torn tail whatever
/// happened before, silently dropping an acknowledged record.
#[test]
fn damaged_newest_record_after_a_clean_close_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = build(dir.path());
    let p = parse_segment(&full).unwrap();
    let last = p.frames.last().unwrap();
    full[last.record_range().start + 2] ^= 0x08;
    std::fs::write(seg_path(dir.path()), &full).unwrap();
    let t = tenant("acme");
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert!(matches!(s.append(event(&t, 9)), Err(Error::Corrupt { .. })));
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(N - 1)));
    s.close().unwrap();
    assert_eq!(std::fs::read(seg_path(dir.path())).unwrap(), full);
}
