//! Signing checkpoints of a file store: never over damage, and possible while
//! the application holds the store open.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hisn_audit_log::store::segment::parse_segment;
use hisn_audit_log::{AuditRead, Clock, Durability, Error, FileStore, FileStoreOptions, Verdict};

use crate::common::*;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::Fsync)
}

fn seg(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("t-{}", hex::encode("acme")))
        .join(format!("{:020}.seg", 0))
}

/// Class: an acknowledged record damaged anywhere (the newest one included,
/// which a writer's recovery cannot tell from a torn write) is never signed
/// over: the checkpoint is refused and nothing is cut.
///
/// Root cause: `hisn audit checkpoint` opened the store for writing, whose
/// crash recovery cut the damaged last record as a torn tail, and then
/// signed the shorter log.
#[test]
fn checkpoint_is_refused_over_a_damaged_acknowledged_record() {
    let t = tenant("acme");
    let k = key("k", 8);
    for damaged in [4usize, 1] {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = FileStore::open(dir.path(), opts()).unwrap();
            for i in 0..5 {
                s.append(event(&t, i)).unwrap();
            }
            s.append(event(&tenant("beta"), 0)).unwrap();
        }
        let mut bytes = std::fs::read(seg(dir.path())).unwrap();
        let p = parse_segment(&bytes).unwrap();
        bytes[p.frames[damaged].record_range().start + 3] ^= 0x01;
        std::fs::write(seg(dir.path()), &bytes).unwrap();
        let ro = FileStore::open_read_only(dir.path()).unwrap();
        let run = ro
            .checkpoint_verified(None, &k, Clock::now(&clock()))
            .unwrap();
        assert_eq!(run.refused.len(), 1, "damaged at {damaged}: {run:?}");
        assert_eq!(run.refused[0].0, t);
        assert_eq!(run.refused[0].2, Some(damaged as u64));
        // The undamaged tenant is signed; acme is not, and nothing was cut.
        assert_eq!(run.signed.len(), 1);
        assert_eq!(run.signed[0].checkpoint.origin, "hisn-audit-log/beta");
        assert!(ro.checkpoints(&t).unwrap().is_empty());
        assert_eq!(std::fs::read(seg(dir.path())).unwrap(), bytes);
        if damaged < 4 {
            // A writer refuses too (damage below the synced mark).
            let w = FileStore::open(dir.path(), opts()).unwrap();
            assert!(matches!(
                w.checkpoint_now(Some(&t), &k, Clock::now(&clock())),
                Err(Error::Corrupt { .. })
            ));
        }
    }
}

/// Class: checkpointing needs only a consistent read of the heads, so it
/// works while the application holds the store open and keeps appending;
/// every checkpoint signed that way verifies against the writer's chain.
///
/// Root cause: the CLI needed the store's write lock to sign.
#[test]
fn checkpoint_of_a_store_the_application_holds_open() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("k", 9);
    let keys = trusted(&[&k]);
    let w = Arc::new(FileStore::open(dir.path(), opts()).unwrap());
    w.append(event(&t, 0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (w, stop, t) = (Arc::clone(&w), Arc::clone(&stop), t.clone());
        std::thread::spawn(move || {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                w.append(event(&t, i)).unwrap();
                i += 1;
            }
        })
    };
    let ro = FileStore::open_read_only(dir.path()).unwrap();
    let mut sizes = Vec::new();
    for _ in 0..20 {
        let run = ro
            .checkpoint_verified(Some(&t), &k, Clock::now(&clock()))
            .unwrap();
        assert!(run.refused.is_empty(), "{run:?}");
        sizes.push(run.signed[0].checkpoint.size);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    let r = w.verify(&t, Some(&keys), &[]).unwrap();
    assert!(r.verdict.is_ok(), "{r:?}");
    assert_eq!(w.checkpoints(&t).unwrap().len(), 20);
}

/// Class: a pruned chain (prune record not yet under a signature) can be
/// checkpointed: the new checkpoint is what covers the prune.
#[test]
fn checkpoint_after_a_prune_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("k", 10);
    let s = FileStore::open(dir.path(), opts().max_segment_bytes(4096)).unwrap();
    for i in 0..60 {
        s.append(event(&t, i)).unwrap();
    }
    s.checkpoint_now(Some(&t), &k, Clock::now(&clock()))
        .unwrap();
    let end = s.segment_ends(&t).unwrap()[0];
    let r = s.export(&t, end).unwrap().receipt;
    s.prune(&r, "ops", &clock()).unwrap();
    let run = s
        .checkpoint_verified(Some(&t), &k, Clock::now(&clock()))
        .unwrap();
    assert!(run.refused.is_empty(), "{run:?}");
    let v = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!(v.verdict, Verdict::Intact, "{v:?}");
}
