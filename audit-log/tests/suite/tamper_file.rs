//! Tamper tests against the file store's segment files.

use std::path::{Path, PathBuf};

use hisn_audit_log::store::segment::parse_segment;
use hisn_audit_log::{
    AuditRead, Durability, Error, FileStore, FileStoreOptions, TenantId, Timestamp, Verdict,
};

use crate::common::*;

const N: u64 = 6;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::OsBuffered)
}

/// A store with N records of `acme` and a checkpoint of all of them.
fn setup(dir: &Path) -> (TenantId, hisn_audit_log::SigningKey, PathBuf) {
    let t = tenant("acme");
    let k = key("audit", 1);
    let store = FileStore::open(dir, opts()).unwrap();
    for i in 0..N {
        store.append(event(&t, i)).unwrap();
    }
    store
        .checkpoint_now(None, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    store.close().unwrap();
    let seg = dir
        .join(format!("t-{}", hex::encode("acme")))
        .join(format!("{:020}.seg", 0));
    (t, k, seg)
}

#[test]
fn every_byte_flipped_in_a_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (t, k, seg) = setup(dir.path());
    let keys = trusted(&[&k]);
    let pristine = std::fs::read(&seg).unwrap();
    let parsed = parse_segment(&pristine).unwrap();
    let header_len = parsed.frames[0].offset as usize;
    for pos in 0..pristine.len() {
        let mut bytes = pristine.clone();
        bytes[pos] ^= 0x04;
        std::fs::write(&seg, &bytes).unwrap();
        // One tenant's damage never stops the store from opening.
        let store = FileStore::open_read_only(dir.path()).unwrap();
        let r = store.verify(&t, Some(&keys), &[]).unwrap();
        if pos < header_len {
            // A damaged header: the chain ends before its first record.
            assert!(
                matches!(r.verdict, Verdict::Tampered | Verdict::Truncated),
                "pos {pos}: {r:?}"
            );
            assert_eq!(r.seq, Some(0), "pos {pos}");
            assert!(matches!(
                FileStore::open(dir.path(), opts())
                    .unwrap()
                    .append(crate::common::event(&t, 99)),
                Err(Error::Corrupt { .. })
            ));
            continue;
        }
        let frame = parsed
            .frames
            .iter()
            .rposition(|f| f.offset as usize <= pos)
            .unwrap() as u64;
        if frame + 1 < N {
            assert_eq!(r.verdict, Verdict::Tampered, "pos {pos}: {r:?}");
        } else {
            // The newest frame: a whole damaged frame is tampering; a length
            // flip that makes it look incomplete reads as a cut the checkpoint catches.
            assert!(
                matches!(r.verdict, Verdict::Tampered | Verdict::Truncated),
                "pos {pos}: {r:?}"
            );
        }
        assert_eq!(r.seq, Some(frame), "pos {pos}");
        // A writer refuses to append after damage in front of intact frames
        // instead of cutting history (the store itself still opens).
        if frame + 1 < N {
            assert!(
                matches!(
                    FileStore::open(dir.path(), opts())
                        .unwrap()
                        .append(crate::common::event(&t, 99)),
                    Err(Error::Corrupt { .. })
                ),
                "pos {pos}"
            );
        }
    }
}

#[test]
fn deleted_and_reordered_frames_and_moved_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (t, k, seg) = setup(dir.path());
    let keys = trusted(&[&k]);
    let pristine = std::fs::read(&seg).unwrap();
    let p = parse_segment(&pristine).unwrap();
    let span = |i: usize| {
        p.frames[i].offset as usize..(p.frames[i].offset + p.frames[i].frame_len()) as usize
    };
    let check = |bytes: Vec<u8>, verdict: Verdict, seq: u64, what: &str| {
        std::fs::write(&seg, &bytes).unwrap();
        let r = FileStore::open_read_only(dir.path())
            .unwrap()
            .verify(&t, Some(&keys), &[])
            .unwrap();
        assert_eq!((r.verdict, r.seq), (verdict, Some(seq)), "{what}");
    };
    let without = |i: usize| {
        let mut b = pristine.clone();
        b.drain(span(i));
        b
    };
    check(without(0), Verdict::Tampered, 0, "first deleted");
    check(without(3), Verdict::Tampered, 3, "middle deleted");
    check(
        without(N as usize - 1),
        Verdict::Truncated,
        N - 1,
        "last deleted",
    );
    let mut dup = pristine.clone();
    dup.extend_from_slice(&pristine[span(2)]);
    check(dup, Verdict::Tampered, N, "duplicated at the end");
    let mut swapped = pristine[..span(1).start].to_vec();
    swapped.extend_from_slice(&pristine[span(2)]);
    swapped.extend_from_slice(&pristine[span(1)]);
    swapped.extend_from_slice(&pristine[span(3).start..]);
    check(swapped, Verdict::Tampered, 1, "reordered");
    // Cut back to 4 records (at a frame boundary), then a checkpointed log is short.
    check(
        pristine[..span(4).start].to_vec(),
        Verdict::Truncated,
        4,
        "truncated",
    );
}

#[test]
fn segment_moved_to_another_tenant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t, k, seg) = setup(dir.path());
    let other = dir.path().join(format!("t-{}", hex::encode("other")));
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&seg, other.join(format!("{:020}.seg", 0))).unwrap();
    let o = crate::common::tenant("other");
    // The copied segment is refused for `other` only; `acme` is untouched.
    let r = FileStore::open_read_only(dir.path())
        .unwrap()
        .verify(&o, None, &[])
        .unwrap();
    assert!(
        !matches!(r.verdict, Verdict::Intact | Verdict::UnanchoredTail),
        "{r:?}"
    );
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert!(matches!(
        s.append(crate::common::event(&o, 0)),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(s.append(crate::common::event(&t, N)).unwrap(), N);
    assert_eq!(
        s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap().verdict,
        Verdict::UnanchoredTail
    );
}

/// Rewrite record `seq` of the (single) segment in `tdir`: the record's last
/// byte flipped and every later link recomputed, with valid frame CRCs, as
/// someone who can write the store but holds no key would do it.
fn rewrite_from(seg: &Path, t: &TenantId, seq: u64) {
    use hisn_audit_log::store::segment::encode_frame;
    use hisn_audit_log::{chain_link, record_digest};
    use std::os::unix::fs::FileExt as _;
    let bytes = std::fs::read(seg).unwrap();
    let p = parse_segment(&bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    let mut prev = p.frames[usize::try_from(seq).unwrap() - 1].link;
    for (i, fr) in p
        .frames
        .iter()
        .enumerate()
        .skip(usize::try_from(seq).unwrap())
    {
        let mut rec = bytes[fr.record_range()].to_vec();
        if i as u64 == seq {
            let n = rec.len() - 1;
            rec[n] ^= 0x01;
        }
        let link = chain_link(t.as_str().as_bytes(), i as u64, &prev, &record_digest(&rec));
        f.write_all_at(&encode_frame(&rec, &link, fr.synced), fr.offset)
            .unwrap();
        prev = link;
    }
}

/// Class: the writer's automatic checkpoints signed the head it remembered
/// without reading back the records since the last checkpoint, so a record
/// rewritten on disk meanwhile (links recomputed, no key needed) got a fresh
/// signature over it. Now the range since the last checkpoint is verified
/// before signing: the tampered chain is never signed, and appends to that
/// tenant are refused until an operator looks.
#[test]
fn auto_checkpoint_never_signs_over_a_tampered_segment() {
    use std::num::NonZeroU64;
    use std::sync::Arc;
    use std::time::Duration;

    use hisn_audit_log::{AutoCheckpoint, CheckpointPolicy, MemorySink};
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 1);
    let sink = Arc::new(MemorySink::new());
    let policy = CheckpointPolicy {
        every_records: NonZeroU64::new(10).unwrap(),
        every: Duration::from_secs(3600),
    };
    let store = FileStore::open(
        dir.path(),
        opts().auto_checkpoint(AutoCheckpoint::new(key("audit", 1), policy).sink(sink.clone())),
    )
    .unwrap();
    for i in 0..10 {
        store.append(event(&t, i)).unwrap();
    }
    assert_eq!(store.checkpoints(&t).unwrap().len(), 1, "first checkpoint");
    for i in 10..15 {
        store.append(event(&t, i)).unwrap();
    }
    let seg = std::fs::read_dir(dir.path().join(format!("t-{}", hex::encode("acme"))))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    rewrite_from(&seg, &t, 12);
    // Appends that make the next checkpoint due.
    let mut refused = 0;
    for i in 15..20 {
        if store.append(event(&t, i)).is_err() {
            refused += 1;
        }
    }
    let sizes: Vec<u64> = store
        .checkpoints(&t)
        .unwrap()
        .iter()
        .map(|c| c.checkpoint.size)
        .collect();
    assert_eq!(sizes, vec![10], "a checkpoint was signed over the rewrite");
    assert_eq!(sink.published().len(), 1, "published over the rewrite");
    // The tenant is blocked once the damage is found (the append that made
    // the checkpoint due was acknowledged before it, as designed).
    assert!(store.append(event(&t, 99)).is_err());
    assert!(refused <= 4, "{refused}");
    store.close().unwrap();
    let r = FileStore::open_read_only(dir.path())
        .unwrap()
        .verify(&t, Some(&trusted(&[&k])), &[])
        .unwrap();
    assert_eq!(r.verdict, Verdict::Tampered, "{r:?}");
}
