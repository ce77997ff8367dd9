//! Preallocated segment tails: a `Durability::Fsync` writer keeps zeros
//! written ahead of its records (so a batch's `fdatasync` overwrites blocks
//! instead of growing the file). Class: the zeros, and a write into them cut
//! short, are the end of the log to every reader (writable open, read-only
//! open, the cold reader the CLI uses, a reader racing the writer), never
//! damage; a damaged frame that is not such a cut-short write still is.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hisn_audit_log::store::segment::{SegmentEnd, parse_segment};
use hisn_audit_log::{AuditRead, Durability, FileStore, FileStoreOptions, TenantReader, Verdict};

use crate::common::*;

const N: u64 = 6;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::Fsync)
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let segs = segment_files(dir, &tenant("acme"));
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs[0].clone()
}

/// End of the last intact frame of a segment file.
fn frames_end(bytes: &[u8]) -> usize {
    let p = parse_segment(bytes).unwrap();
    let f = p.frames.last().unwrap();
    (f.offset + f.frame_len()) as usize
}

/// A copy of the store as a crash would leave it while `s` is open: the
/// segment with its preallocated tail, no clean-close mark.
fn crash_image(from: &Path, to: &Path) {
    let t = tenant("acme");
    let (src, dst) = (tdir(from, &t), tdir(to, &t));
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != "synced.mark" {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

fn open_with(dir: &Path, n: u64) -> FileStore {
    let t = tenant("acme");
    let s = FileStore::open(dir, opts()).unwrap();
    for i in 0..n {
        assert_eq!(s.append(event(&t, i)).unwrap(), i);
    }
    s
}

/// Verdict and size as a read-only open and the cold reader see `dir`.
fn read_only_views(dir: &Path) -> [(Verdict, u64); 2] {
    let t = tenant("acme");
    let ro = FileStore::open_read_only(dir).unwrap();
    let a = ro.verify(&t, None, &[]).unwrap();
    let cold = TenantReader::open(dir, &t).unwrap();
    let b = cold.verify(&t, None, &[]).unwrap();
    [(a.verdict, a.size), (b.verdict, b.size)]
}

#[test]
fn the_open_segment_keeps_zeros_ahead_and_a_clean_close_cuts_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(dir.path(), N);
    let bytes = std::fs::read(only_segment(dir.path())).unwrap();
    let end = frames_end(&bytes);
    assert!(
        bytes.len() > end,
        "no preallocated tail: file {} bytes, frames end at {end}",
        bytes.len()
    );
    assert!(bytes[end..].iter().all(|b| *b == 0));
    s.close().unwrap();
    let bytes = std::fs::read(only_segment(dir.path())).unwrap();
    assert_eq!(
        bytes.len(),
        frames_end(&bytes),
        "a closed segment ends at its last frame"
    );
    assert_eq!(parse_segment(&bytes).unwrap().end, SegmentEnd::Clean);
    // Other durabilities never preallocate.
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let s = FileStore::open(
        dir.path(),
        FileStoreOptions::default().durability(Durability::OsBuffered),
    )
    .unwrap();
    s.append(event(&t, 0)).unwrap();
    let bytes = std::fs::read(only_segment(dir.path())).unwrap();
    assert_eq!(bytes.len(), frames_end(&bytes));
    s.close().unwrap();
}

/// The zeros never outgrow what a segment holds (a store of many quiet
/// tenants, one open segment each, does not cost a MiB per tenant), and a
/// busy segment writes into a large run of them.
#[test]
fn zeros_ahead_scale_with_the_segment_up_to_a_mib() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(FileStore::open(dir.path(), opts()).unwrap());
    let tenants: Vec<_> = (0..30).map(|i| tenant(&format!("quiet-{i}"))).collect();
    for (i, t) in tenants.iter().enumerate() {
        s.append(event(t, i as u64)).unwrap();
    }
    let busy = tenant("busy");
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let (s, t) = (s.clone(), busy.clone());
            std::thread::spawn(move || {
                for i in 0..1000 {
                    s.append(event(&t, 1000 * w + i)).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    for t in &tenants {
        let segs = segment_files(dir.path(), t);
        let bytes = std::fs::read(&segs[0]).unwrap();
        let end = frames_end(&bytes);
        assert!(
            bytes.len() <= 2 * end,
            "{t}: {} bytes for {end}",
            bytes.len()
        );
    }
    let segs = segment_files(dir.path(), &busy);
    let bytes = std::fs::read(segs.last().unwrap()).unwrap();
    let (end, len) = (frames_end(&bytes), bytes.len());
    assert!(end > 1 << 20, "the busy segment holds {end} bytes");
    assert!(
        len - end >= 256 << 10 && len - end <= 1 << 20,
        "{} bytes of zeros ahead of {end}",
        len - end
    );
}

#[test]
fn a_crash_with_the_preallocated_tail_loses_nothing_and_reports_no_damage() {
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = open_with(live.path(), N);
    crash_image(live.path(), image.path());
    s.close().unwrap();
    for (verdict, size) in read_only_views(image.path()) {
        assert_eq!((verdict, size), (Verdict::UnanchoredTail, N));
    }
    let t = tenant("acme");
    let s = FileStore::open(image.path(), opts()).unwrap();
    assert_eq!(s.bounds(&t).unwrap().size, N);
    assert_eq!(
        s.append(event(&t, 50)).unwrap(),
        N,
        "the next append chains on"
    );
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, N + 1));
    s.close().unwrap();
    let bytes = std::fs::read(only_segment(image.path())).unwrap();
    assert_eq!(bytes.len(), frames_end(&bytes));
}

/// A write into the zeros stopped after `k` bytes, for every `k` inside a
/// frame: every reader sees the records before it, the writer cuts it.
#[test]
fn a_write_into_the_tail_cut_short_at_every_byte_is_the_end_of_the_log() {
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The next frame, as the writer wrote it: append once more, take its bytes.
    let s = open_with(live.path(), N + 1);
    let full = std::fs::read(only_segment(live.path())).unwrap();
    s.close().unwrap();
    let p = parse_segment(&full).unwrap();
    let last = p.frames.last().unwrap();
    let (start, stop) = (
        last.offset as usize,
        (last.offset + last.frame_len()) as usize,
    );
    // Up to the whole frame minus its last byte (which a complete write sets).
    let mut k = 1;
    while k < stop - start {
        let mut torn = full.clone();
        torn[start + k..stop].fill(0);
        torn.extend(std::iter::repeat_n(0u8, 64 << 10));
        let seg = only_segment(live.path());
        let name = seg.file_name().unwrap().to_owned();
        let img = tdir(image.path(), &tenant("acme"));
        let _ = std::fs::remove_dir_all(image.path());
        crash_image(live.path(), image.path());
        std::fs::write(img.join(&name), &torn).unwrap();
        for (verdict, size) in read_only_views(image.path()) {
            assert_eq!(
                (verdict, size),
                (Verdict::UnanchoredTail, N),
                "cut after {k} bytes"
            );
        }
        let t = tenant("acme");
        let w = FileStore::open(image.path(), opts()).unwrap();
        assert_eq!(w.bounds(&t).unwrap().size, N, "cut after {k} bytes");
        w.close().unwrap();
        // Every byte near the frame's ends, a stride through the middle.
        k += if k < 40 || k + 40 > stop - start {
            1
        } else {
            7
        };
    }
}

/// A frame damaged in place (its end intact) in front of the zeros is still
/// damage to a read-only verifier: the tail rule only covers writes cut short.
#[test]
fn a_damaged_last_frame_in_front_of_the_zeros_is_still_reported() {
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = open_with(live.path(), N);
    crash_image(live.path(), image.path());
    s.close().unwrap();
    let seg = only_segment(image.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = *parse_segment(&bytes).unwrap().frames.last().unwrap();
    bytes[last.record_range().start + 3] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    for (verdict, _) in read_only_views(image.path()) {
        assert_ne!(verdict, Verdict::UnanchoredTail);
        assert!(!verdict.is_ok(), "{verdict:?}");
    }
}

/// Readers racing the writer (the CLI verifies a store the application holds
/// open) never see damage in the tail the writer is filling.
#[test]
fn readers_racing_the_writer_never_report_damage() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let store = Arc::new(open_with(dir.path(), 1));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop, t) = (store.clone(), stop.clone(), t.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    store.append(event(&t, 1000 * w + i)).unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    let mut last = 0;
    for run in 0..30 {
        for (verdict, size) in read_only_views(dir.path()) {
            assert!(verdict.is_ok(), "run {run}: {verdict:?}");
            assert!(size >= 1, "run {run}");
            last = last.max(size);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(last > 1, "the writer made progress while being read");
}

const KILL_CHILD: &str = "HISN_TEST_PREALLOC_KILL_CHILD_DIR";

/// `kill -9` of a process appending from 8 threads, at several points (each
/// run continues the chain the previous one left): every acknowledged record
/// is there, read-only readers report no damage before recovery, and the
/// writer's recovery cuts the tail and chains on. (The test runs itself as
/// the child; it prints `acked SEQ` after each acknowledged append.)
#[test]
fn kill_9_while_appending_loses_no_acknowledged_record() {
    use std::io::{BufRead as _, Write as _};
    if let Some(dir) = std::env::var_os(KILL_CHILD) {
        let t = tenant("acme");
        let store = Arc::new(FileStore::open(Path::new(&dir), opts()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|w| {
                let (store, t) = (store.clone(), t.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        let seq = store.append(event(&t, 10_000 * w + i)).unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "acked {seq}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let mut before = 0;
    for stop_after in [1, 40, 300, 900, 2500] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "prealloc::kill_9_while_appending_loses_no_acknowledged_record",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL_CHILD, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        while acked.len() < stop_after {
            let line = lines.next().expect("the child stopped early").unwrap();
            if let Some(seq) = line.strip_prefix("acked ") {
                acked.push(seq.parse::<u64>().unwrap());
            }
        }
        child.kill().unwrap();
        // Acknowledgements printed before the kill landed count too.
        for line in lines {
            if let Some(seq) = line.unwrap().strip_prefix("acked ") {
                acked.push(seq.parse::<u64>().unwrap());
            }
        }
        child.wait().unwrap();
        let need = acked.iter().max().unwrap() + 1;
        assert!(acked.iter().all(|s| *s >= before), "{before} {acked:?}");
        for (verdict, size) in read_only_views(dir.path()) {
            assert_eq!(verdict, Verdict::UnanchoredTail, "after {stop_after} acks");
            assert!(size >= need, "read-only size {size} < {need} acknowledged");
        }
        let s = FileStore::open(dir.path(), opts()).unwrap();
        let r = s.verify(&t, None, &[]).unwrap();
        assert_eq!(r.verdict, Verdict::UnanchoredTail);
        assert!(r.size >= need, "recovered {} < {need} acknowledged", r.size);
        assert_eq!(s.append(event(&t, 99)).unwrap(), r.size, "chains on");
        before = r.size + 1;
        s.close().unwrap();
    }
}

/// Rolling seals a segment at its last frame (the zeros cut before the
/// seal), and the zeros never take the open segment past its size limit.
#[test]
fn sealed_segments_end_at_their_last_frame_and_zeros_stay_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let limit = 4096;
    let s = FileStore::open(dir.path(), opts().max_segment_bytes(limit)).unwrap();
    for i in 0..60 {
        s.append(event(&t, i)).unwrap();
    }
    let segs = segment_files(dir.path(), &t);
    assert!(segs.len() >= 3, "{segs:?}");
    for (i, seg) in segs.iter().enumerate() {
        let bytes = std::fs::read(seg).unwrap();
        if i + 1 < segs.len() {
            assert_eq!(bytes.len(), frames_end(&bytes), "sealed {seg:?}");
        } else {
            assert!(
                bytes.len() as u64 <= limit,
                "open segment {} bytes",
                bytes.len()
            );
        }
    }
    s.close().unwrap();
    let r = FileStore::open_read_only(dir.path())
        .unwrap()
        .verify(&t, None, &[])
        .unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 60));
}

/// Bytes someone else wrote into the zeros ahead of the records (the frames
/// are unkeyed, so they may even chain) are never overwritten by the next
/// batch nor cut at close: the writer stops instead and the bytes stay as
/// evidence. (In append mode they stayed in front of the next frames.)
#[test]
fn bytes_someone_else_wrote_into_the_tail_are_never_overwritten_or_cut() {
    use std::os::unix::fs::FileExt as _;
    let t = tenant("acme");
    let planted = b"not the writer's";
    let plant = |seg: &Path, at: usize| {
        let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
        f.write_all_at(planted, at as u64).unwrap();
    };
    // Where the next batch goes: the append fails and the store stops.
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(dir.path(), N);
    let seg = only_segment(dir.path());
    let end = frames_end(&std::fs::read(&seg).unwrap());
    plant(&seg, end);
    assert!(s.append(event(&t, 99)).is_err());
    assert!(s.is_poisoned());
    drop(s);
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!(&bytes[end..end + planted.len()], planted);
    // Further ahead: appends go on, and the close keeps them.
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(dir.path(), N);
    let seg = only_segment(dir.path());
    let far = std::fs::read(&seg).unwrap().len() - planted.len();
    plant(&seg, far);
    assert_eq!(s.append(event(&t, 99)).unwrap(), N);
    let _ = s.close();
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!(&bytes[far..far + planted.len()], planted);
}

/// A power loss can keep a batch's pages out of order: a later block of the
/// segment on disk, an earlier one still the zeros written ahead of it. A
/// frame overlapping such a block, with frames written in the same batch
/// after it (which do not vouch for it), is the end of the log to every
/// reader, never damage; writable recovery cuts there.
#[test]
fn a_power_loss_that_keeps_later_blocks_but_not_earlier_ones_is_the_end_of_the_log() {
    let t = tenant("acme");
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    open_with(live.path(), N).close().unwrap();
    let base = std::fs::read(only_segment(live.path())).unwrap().len();
    // One unsynced batch: every frame of this session carries the synced mark
    // the open set (no `fdatasync` until close), as one Fsync batch does.
    let s = FileStore::open(
        live.path(),
        FileStoreOptions::default().durability(Durability::OsBuffered),
    )
    .unwrap();
    let pad = "p".repeat(1500);
    for i in N..N + 12 {
        let e = hisn_audit_log::Event::state_transition(
            &t,
            "u-1",
            "work_order",
            &format!("wo-{i}"),
            "open",
            "closed",
        )
        .diff(&serde_json::json!({ "pad": pad }))
        .build(&clock())
        .unwrap();
        assert_eq!(s.append(e).unwrap(), i);
    }
    s.close().unwrap();
    let seg = only_segment(live.path());
    let name = seg.file_name().unwrap().to_owned();
    let full = std::fs::read(&seg).unwrap();
    let frames = parse_segment(&full).unwrap().frames;
    assert_eq!(frames.len() as u64, N + 12);
    // A page (4 KiB) or a single sector (512 bytes) lost.
    for block in [4096, 512] {
        let mut straddling = 0;
        for b in base.div_ceil(block)..full.len().div_ceil(block) {
            let lost = b * block..((b + 1) * block).min(full.len());
            let kept = frames
                .iter()
                .filter(|f| (f.offset + f.frame_len()) as usize <= lost.start)
                .count() as u64;
            if frames.iter().any(|f| {
                let (s, e) = (f.offset as usize, (f.offset + f.frame_len()) as usize);
                s < lost.start && e > lost.start && e < full.len()
            }) {
                straddling += 1;
            }
            let mut bytes = full.clone();
            bytes[lost.clone()].fill(0);
            let _ = std::fs::remove_dir_all(image.path());
            crash_image(live.path(), image.path());
            std::fs::write(tdir(image.path(), &t).join(&name), &bytes).unwrap();
            for (verdict, size) in read_only_views(image.path()) {
                assert_eq!(
                    (verdict, size),
                    (Verdict::UnanchoredTail, kept),
                    "{block}-byte block {b} lost"
                );
            }
            let w = FileStore::open(image.path(), opts()).unwrap();
            assert_eq!(
                w.bounds(&t).unwrap().size,
                kept,
                "{block}-byte block {b} lost"
            );
            w.close().unwrap();
        }
        // The case the rule is for: a frame that starts before the lost block
        // and ends in it, with intact frames after.
        assert!(straddling >= 2, "{block}: {straddling}");
    }
}
