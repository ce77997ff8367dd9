//! Third outside review of the file store: what a reader trusts in a store
//! that an attacker with write access to its directory controls.
//!
//! Class 1, **special and unbounded files planted in the store**. Every
//! reader opened store files by name and read them whole (`fs::read`):
//! segments, `checkpoints.jsonl`, `synced.mark`, `prune.intent`, `.sidx`
//! indexes, tiles. A FIFO planted at any of those names made the open block
//! until someone wrote to it, so `hisn audit verify`, `hisn audit report`
//! and the application's own `FileStore::open` hung for ever; a link to a
//! device (`/dev/zero`) or a sparse file of terabytes was read whole, so
//! memory ran out before anything was checked. Root cause: the store's
//! files were trusted to be the regular, bounded files its writer makes.
//! Now every store file a reader opens is opened without blocking, must be
//! a regular file once open, and is read only up to a bound the writer
//! never exceeds (`FileStoreOptions::MAX_SEGMENT_BYTES` for segments);
//! anything else is a typed `Error::Corrupt` for that tenant (derived files:
//! ignored and rebuilt), never a hang.
//!
//! Class 2, **tampering made to look like a torn tail**. Whether damage at
//! the end of the newest segment is a crash leftover (cut silently on open)
//! or tampering (the tenant is blocked until `hisn audit repair`, which
//! keeps the cut bytes in `quarantine/`) was decided only by marks the
//! attacker writes: the clean-close `synced.mark` (delete it) and the
//! frames' own synced marks (under an unkeyed CRC). So an edit of the last
//! records, with `synced.mark` removed, was cut by the application's next
//! open and the evidence destroyed, even though the tenant's checkpoint log
//! said those records had been signed. Now a torn tail is cut only when no
//! checkpoint in the tenant's log covers the records it would remove; a cut
//! below one is damage (appends refused, `repair` quarantines it).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use hisn_audit_log::store::segment::parse_segment;
use hisn_audit_log::{
    AuditRead, Durability, Error, FileStore, FileStoreOptions, TenantReader, Verdict,
};

use crate::common::{event, key, now, segment_files, tdir, tenant, trusted};

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::Fsync)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES)
}

/// A store with two tenants, several sealed segments (with indexes) for
/// `acme`, its tiles and a checkpoint.
fn build(store: &Path) {
    let (a, b) = (tenant("acme"), tenant("beta"));
    let s = FileStore::open(store, opts()).unwrap();
    for i in 0..60 {
        s.append(event(&a, i)).unwrap();
    }
    for i in 0..3 {
        s.append(event(&b, i)).unwrap();
    }
    s.checkpoint_now(None, &key("k", 3), now()).unwrap();
    s.close().unwrap();
    assert!(segment_files(store, &a).len() > 2);
}

fn fsync() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::Fsync)
}

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    let _ = std::fs::remove_dir_all(p);
    let ok = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Run `f` on a thread; if it has not returned within the time limit, the
/// reader is blocked on one of `fifos`: open each for writing (which
/// succeeds only while a reader waits) so the reader sees end of file and
/// the thread ends, then fail naming `what`.
fn no_hang<T: Send + 'static>(
    what: &str,
    fifos: &[PathBuf],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use std::os::unix::fs::OpenOptionsExt as _;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(v) => v,
        Err(_) => {
            for _ in 0..50 {
                for p in fifos {
                    // O_NONBLOCK: fails at once when no reader waits.
                    drop(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .custom_flags(0o4000)
                            .open(p),
                    );
                }
                if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                    break;
                }
            }
            panic!("{what}: a reader blocked on a FIFO planted in the store");
        }
    }
}

/// What a verifier with the key reports for `acme` after `plant`, through
/// the full read-only open; `Err` when the open or verification refused.
fn verify_after(store: &Path) -> Result<Verdict, Error> {
    let s = FileStore::open_read_only(store)?;
    let r = s.verify(&tenant("acme"), Some(&trusted(&[&key("k", 3)])), &[])?;
    Ok(r.verdict)
}

#[test]
fn special_files_planted_in_the_store_fail_typed_and_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    build(&pristine);
    let a = tenant("acme");
    let segs = segment_files(&pristine, &a);
    let seg0 = segs[0].file_name().unwrap().to_owned();
    let last = segs.last().unwrap().file_name().unwrap().to_owned();
    // Each case: a name in acme's directory to plant a FIFO at, and whether
    // the chain stays provably intact (a derived or bookkeeping file: it is
    // ignored and rebuilt) or acme must fail verification.
    let mut idx0 = seg0.clone();
    idx0.push(".sidx");
    let cases: Vec<(PathBuf, bool)> = vec![
        (PathBuf::from("99999999999999999999.seg"), false),
        (PathBuf::from(&last), false),
        (PathBuf::from("checkpoints.jsonl"), false),
        (PathBuf::from("synced.mark"), true),
        (PathBuf::from("prune.intent"), true),
        (PathBuf::from(&idx0), true),
        (PathBuf::from("tiles/0"), true),
    ];
    for (n, (name, intact)) in cases.into_iter().enumerate() {
        let store = dir.path().join(format!("s{n}"));
        copy_dir(&pristine, &store);
        let fifo = tdir(&store, &a).join(&name);
        mkfifo(&fifo);
        let what = name.display().to_string();
        let fifos = vec![fifo.clone()];
        let st = store.clone();
        let verdict = no_hang(&format!("read-only open, {what}"), &fifos, move || {
            verify_after(&st)
        });
        match (intact, &verdict) {
            (true, Ok(Verdict::Intact)) => {}
            (false, Ok(v)) if !v.is_ok() => {}
            (false, Err(Error::Corrupt { .. })) => {}
            _ => panic!("{what}: {verdict:?}"),
        }
        let st = store.clone();
        let report = no_hang(&format!("cold report, {what}"), &fifos, move || {
            TenantReader::open(&st, &tenant("acme")).and_then(|r| {
                r.check_subject_indexes()?;
                r.subject_report(&tenant("acme"), "emp-1", Some(&trusted(&[&key("k", 3)])))
            })
        });
        if let Ok(r) = &report {
            assert!(
                !intact || (r.broken.is_empty() && r.entries.iter().all(|e| e.is_proven())),
                "{what}: {r:?}"
            );
        }
        // The application's writable open: never hangs, other tenants
        // carry on; acme is refused or (derived files) rebuilt.
        let st = store.clone();
        let opened = no_hang(&format!("writable open, {what}"), &fifos, move || {
            let s = FileStore::open(&st, opts())?;
            let b = s.append(event(&tenant("beta"), 3));
            let a = s.append(event(&tenant("acme"), 60));
            s.close()?;
            Ok::<_, Error>((a, b))
        });
        let (a_res, b_res) = opened.unwrap_or_else(|e| panic!("{what}: open failed: {e:?}"));
        assert_eq!(b_res.unwrap(), 3, "{what}: another tenant stops");
        if intact {
            assert_eq!(a_res.unwrap(), 60, "{what}");
        } else {
            assert!(matches!(a_res, Err(Error::Corrupt { .. })), "{what}");
        }
    }
}

/// Every file a reader reads whole is bounded: a sparse segment of a
/// terabyte (or a link to a device that never ends) is refused with a
/// typed error for its tenant, never read into memory.
#[test]
fn unbounded_files_planted_in_the_store_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    build(&pristine);
    let a = tenant("acme");
    for (n, target) in ["sparse", "/dev/zero"].into_iter().enumerate() {
        let store = dir.path().join(format!("s{n}"));
        copy_dir(&pristine, &store);
        let planted = tdir(&store, &a).join("99999999999999999999.seg");
        let log = tdir(&store, &a).join("checkpoints.jsonl");
        if target == "sparse" {
            // A terabyte of holes, as segment and as checkpoint log.
            for p in [&planted, &log] {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap();
                f.set_len(1 << 40).unwrap();
            }
        } else {
            std::os::unix::fs::symlink(target, &planted).unwrap();
        }
        match verify_after(&store) {
            Ok(v) => assert!(!v.is_ok(), "{target}: {v:?}"),
            Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{target}: {e:?}"),
        }
        let s = FileStore::open(&store, opts()).unwrap();
        assert_eq!(s.append(event(&tenant("beta"), 3)).unwrap(), 3);
        assert!(matches!(
            s.append(event(&a, 60)),
            Err(Error::Corrupt { .. })
        ));
        s.close().unwrap();
    }
}

/// Class 2: a store whose last records were edited and whose clean-close
/// mark was deleted, so the edit reads as a torn tail. A checkpoint in the
/// tenant's log covers the edited records: the writable open must not cut
/// them (evidence gone, appends carrying on over the signed size) but block
/// the tenant; `repair` names the damage and quarantines it.
#[test]
fn a_torn_tail_below_a_logged_checkpoint_is_damage_not_a_crash_leftover() {
    use hisn_audit_log::store::file::RepairMode;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let t = tenant("acme");
    let s = FileStore::open(store, fsync()).unwrap();
    for i in 0..5 {
        s.append(event(&t, i)).unwrap();
    }
    s.checkpoint_now(Some(&t), &key("k", 3), now()).unwrap();
    s.close().unwrap();
    let seg = segment_files(store, &t).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let p = parse_segment(&bytes).unwrap();
    let at = p.frames[4].offset as usize;
    bytes[at + 40] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::remove_file(tdir(store, &t).join("synced.mark")).unwrap();

    let s = FileStore::open(store, fsync()).unwrap();
    assert!(
        matches!(s.append(event(&t, 5)), Err(Error::Corrupt { .. })),
        "records a logged checkpoint covers were cut as a torn tail"
    );
    s.close().unwrap();
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "evidence kept");
    let dry = FileStore::repair(store, Some(&t), RepairMode::DryRun).unwrap();
    let d = dry[0].damage.clone().expect("repair names the damage");
    assert_eq!((d.offset, dry[0].kept), (at as u64, 4));
    let done = FileStore::repair(store, Some(&t), RepairMode::Apply).unwrap();
    // The whole damaged segment is kept in quarantine; its intact prefix
    // takes its name.
    assert_eq!(std::fs::read(&done[0].quarantined[0]).unwrap(), bytes);
    assert_eq!(std::fs::read(&seg).unwrap(), bytes[..at]);
    // After the operator's repair the tenant takes appends again, and the
    // cut stays visible to the checkpoint that covered it.
    let s = FileStore::open(store, fsync()).unwrap();
    assert_eq!(s.append(event(&t, 40)).unwrap(), 4);
    let r = s.verify(&t, Some(&trusted(&[&key("k", 3)])), &[]).unwrap();
    assert!(!r.is_ok(), "{r:?}");
    s.close().unwrap();
}

/// A genuine torn tail (nothing signed over it) is still cut on open.
#[test]
fn a_torn_tail_no_checkpoint_covers_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let t = tenant("acme");
    let s = FileStore::open(store, fsync()).unwrap();
    for i in 0..5 {
        s.append(event(&t, i)).unwrap();
    }
    s.checkpoint_now(Some(&t), &key("k", 3), now()).unwrap();
    for i in 5..7 {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    let seg = segment_files(store, &t).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let p = parse_segment(&bytes).unwrap();
    std::fs::write(&seg, &bytes[..p.frames[6].offset as usize + 7]).unwrap();
    std::fs::remove_file(tdir(store, &t).join("synced.mark")).unwrap();
    let s = FileStore::open(store, fsync()).unwrap();
    assert_eq!(s.append(event(&t, 6)).unwrap(), 6);
    s.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if e.file_name() != "LOCK" {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Class 2, the clean cut: root cause, the writer signed whatever head its
/// chain had. An attacker who cut a tenant's segments back at a record
/// boundary (and removed `synced.mark`, which would name the cut) left a
/// chain that opens clean; the open only stopped signing Merkle roots, and
/// `checkpoint_now` and the automatic checkpoints then signed heads of the
/// shorter chain, and of the records appended after the cut: a fresh
/// signature over a fork of a checkpoint the same key had signed (the checks
/// before signing read ranges that end at the head, so a checkpoint beyond
/// it was never compared). Now a checkpoint that key signed beyond the head
/// stops the signing: `checkpoint_now` for the tenant is `Corrupt`, a run
/// over every tenant skips it, and an automatic checkpoint refuses and
/// blocks the tenant's appends, as for any chain that does not verify.
#[test]
fn a_chain_cut_below_a_signed_checkpoint_is_never_signed_again() {
    use hisn_audit_log::{AutoCheckpoint, CheckpointPolicy};
    use std::num::NonZeroU64;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let (t, other) = (tenant("acme"), tenant("beta"));
    let k = key("k", 3);
    let s = FileStore::open(store, fsync()).unwrap();
    for i in 0..2 {
        s.append(event(&t, i)).unwrap();
    }
    s.checkpoint_now(Some(&t), &k, now()).unwrap();
    for i in 2..6 {
        s.append(event(&t, i)).unwrap();
    }
    s.append(event(&other, 0)).unwrap();
    s.checkpoint_now(None, &k, now()).unwrap();
    s.close().unwrap();
    // Cut acme back to 3 records at a frame boundary; drop the close mark.
    let seg = segment_files(store, &t).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let p = parse_segment(&bytes).unwrap();
    std::fs::write(&seg, &bytes[..p.frames[3].offset as usize]).unwrap();
    std::fs::remove_file(tdir(store, &t).join("synced.mark")).unwrap();

    let s = FileStore::open(store, fsync()).unwrap();
    assert_eq!(s.append(event(&t, 40)).unwrap(), 3, "appends go on");
    assert!(
        matches!(
            s.checkpoint_now(Some(&t), &k, now()),
            Err(Error::Corrupt { .. })
        ),
        "a fork of a signed checkpoint was signed"
    );
    let all = s.checkpoint_now(None, &k, now()).unwrap();
    assert_eq!(
        all.iter()
            .map(|c| c.checkpoint.origin.clone())
            .collect::<Vec<_>>(),
        [hisn_audit_log::origin_for(&other)],
        "only the intact tenant is signed"
    );
    // Another key's note beyond the head does not stop that key: anyone can
    // write a note (the log's own notes are not trusted).
    assert!(s.checkpoint_now(Some(&t), &key("k2", 4), now()).is_ok());
    s.close().unwrap();

    // The automatic checkpoint refuses too (its check from the key's last
    // checkpoint below the head, at 2, passes: the cut is above it), and
    // blocks the tenant.
    let policy = CheckpointPolicy {
        every_records: NonZeroU64::new(1).unwrap(),
        every: Duration::from_secs(3600),
    };
    let s = FileStore::open(
        store,
        fsync().auto_checkpoint(AutoCheckpoint::new(k, policy)),
    )
    .unwrap();
    let _ = s.append(event(&t, 41));
    assert!(
        matches!(s.append(event(&t, 42)), Err(Error::Corrupt { .. })),
        "the automatic checkpoint signed a fork, or appends went on after it refused"
    );
    assert!(s.append(event(&other, 1)).is_ok(), "other tenants carry on");
    s.close().unwrap();
}
