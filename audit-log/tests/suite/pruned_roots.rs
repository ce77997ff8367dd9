//! A pruned file chain keeps signing Merkle roots (issue #12).
//!
//! Root cause of the gap: the tree starts at record 0, and the file store
//! rebuilt its right edge from the records at every open; once a prefix was
//! pruned those records were gone, so every later checkpoint (after a
//! restart, or after the prune in the same process) carried the head only,
//! and DSAR entries lost their inclusion proofs. The store now keeps the
//! edge beside each rooted note it signs (`"frontier"` in the tenant's
//! `checkpoints.jsonl`), trusts it only when it hashes to a root its key
//! signed, and extends it with the records since, which must chain.

use std::fs;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use hisn_audit_log::merkle::{Hash, root};
use hisn_audit_log::{
    AuditRead, AutoCheckpoint, CheckpointPolicy, Durability, FileStore, FileStoreOptions,
    MemorySink, TenantId, Verdict,
};

use crate::common::*;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::OsBuffered)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES)
}

/// A store of `n` records for `t`, every leaf kept aside (the pruned ones
/// can no longer be read back), then pruned through its first sealed
/// segment. With `sign_first`, a rooted checkpoint is signed before the
/// prune (its size is past the prune point, so it covers it).
fn pruned_store(
    dir: &std::path::Path,
    t: &TenantId,
    n: u64,
    sign_first: bool,
) -> (FileStore, Vec<Hash>) {
    let k = key("audit", 7);
    let s = FileStore::open(dir, opts()).unwrap();
    for i in 0..n {
        s.append(event(t, i)).unwrap();
    }
    let all = leaves(&s, t, 0, n);
    if sign_first {
        let cp = s.checkpoint_now(Some(t), &k, now()).unwrap().remove(0);
        assert_eq!(cp.checkpoint.root, Some(root(&all)));
    }
    let end = s.segment_ends(t).unwrap()[0];
    let receipt = s.export(t, end).unwrap().receipt;
    s.prune(&receipt, "ops", &clock()).unwrap();
    assert_eq!(
        s.bounds(t).unwrap().first_seq,
        end + 1,
        "records were pruned"
    );
    (s, all)
}

#[test]
fn a_pruned_chain_is_signed_its_root_in_process_after_a_restart_and_read_only() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 7);
    let (s, mut all) = pruned_store(d.path(), &t, 400, true);

    // Same process: the writer's edge survives the prune.
    let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    assert_eq!(cp.checkpoint.size, 401, "the prune record is a record");
    all.extend(leaves(&s, &t, 400, 401));
    assert_eq!(cp.checkpoint.root, Some(root(&all)));
    for i in 0..37 {
        s.append(event(&t, 1000 + i)).unwrap();
    }
    s.close().unwrap();

    // After a restart the edge is read back from the kept checkpoint and
    // extended with the records since.
    let s = FileStore::open(d.path(), opts()).unwrap();
    all.extend(leaves(&s, &t, 401, 438));
    let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    assert_eq!(cp.checkpoint.size, 438);
    assert_eq!(cp.checkpoint.root, Some(root(&all)));
    for i in 0..5 {
        s.append(event(&t, 2000 + i)).unwrap();
    }
    all.extend(leaves(&s, &t, 438, 443));
    // The writer adopted the edge: the next checkpoint needs no reads.
    let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    assert_eq!(cp.checkpoint.root, Some(root(&all)));
    s.close().unwrap();

    // `hisn audit checkpoint`'s path: a read-only open, verified first.
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let run = ro.checkpoint_verified(Some(&t), &k, now()).unwrap();
    assert!(run.refused.is_empty(), "{run:?}");
    assert_eq!(run.signed[0].checkpoint.root, Some(root(&all)));
    let v = ro.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!(v.verdict, Verdict::Intact, "{v:?}");
}

#[test]
fn automatic_checkpoints_of_a_chain_pruned_before_the_open_carry_the_root() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let (s, mut all) = pruned_store(d.path(), &t, 300, true);
    s.checkpoint_now(Some(&t), &key("audit", 7), now()).unwrap();
    all.extend(leaves(&s, &t, 300, 301));
    s.close().unwrap();

    let sink = Arc::new(MemorySink::new());
    let policy = CheckpointPolicy {
        every_records: NonZeroU64::new(50).unwrap(),
        every: Duration::from_secs(3600),
    };
    let s = FileStore::open(
        d.path(),
        opts().auto_checkpoint(AutoCheckpoint::new(key("audit", 7), policy).sink(sink.clone())),
    )
    .unwrap();
    for i in 0..160 {
        s.append(event(&t, 5000 + i)).unwrap();
    }
    let size = s.bounds(&t).unwrap().size;
    all.extend(leaves(&s, &t, 301, size));
    let published = sink.published();
    assert!(published.len() >= 2, "{}", published.len());
    for cp in &published {
        let n = usize::try_from(cp.checkpoint.size).unwrap();
        assert_eq!(cp.checkpoint.root, Some(root(&all[..n])), "size {n}");
    }
}

/// The kept edge is untrusted data: changed, it is not used (the head is
/// signed alone), and a root is never signed that differs from the tree's.
#[test]
fn a_changed_kept_edge_is_never_signed_a_root_over() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 7);
    let (s, _) = pruned_store(d.path(), &t, 400, true);
    s.close().unwrap();
    let log = tdir(d.path(), &t).join("checkpoints.jsonl");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"frontier\":\""),
        "the rooted note keeps its edge"
    );
    // Change one hex digit of every kept edge (the JSON stays valid).
    let changed: String = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(f) = v.get("frontier").and_then(|f| f.as_str()) {
                let flipped = if f.starts_with('0') { "1" } else { "0" };
                v["frontier"] = serde_json::Value::String(format!("{flipped}{}", &f[1..]));
            }
            format!("{v}\n")
        })
        .collect();
    fs::write(&log, changed).unwrap();

    let s = FileStore::open(d.path(), opts()).unwrap();
    let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    assert_eq!(
        cp.checkpoint.root, None,
        "head only, never a root from a changed edge"
    );
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let run = ro.checkpoint_verified(Some(&t), &k, now()).unwrap();
    assert!(run.refused.is_empty(), "{run:?}");
    assert_eq!(run.signed[0].checkpoint.root, None);
}

/// An edge beside a note some other key signed (anyone who can write the
/// store can add one) is ignored, even when it is self-consistent.
#[test]
fn an_edge_under_another_keys_note_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let (s, _) = pruned_store(d.path(), &t, 400, false);
    // Another key signs (and so keeps an edge for) the pruned chain: the
    // writer still holds its own edge, so that note is rooted.
    let other = s
        .checkpoint_now(Some(&t), &key("mallory", 9), now())
        .unwrap()
        .remove(0);
    assert!(other.checkpoint.root.is_some());
    s.close().unwrap();

    let s = FileStore::open(d.path(), opts()).unwrap();
    let cp = s
        .checkpoint_now(Some(&t), &key("audit", 7), now())
        .unwrap()
        .remove(0);
    assert_eq!(
        cp.checkpoint.root, None,
        "no note of this key kept an edge since the prune"
    );
}

/// Without any rooted checkpoint since the prune point, a restarted store
/// signs the head only (the pruned leaves are gone), never a wrong root.
#[test]
fn a_chain_pruned_without_a_rooted_checkpoint_is_signed_the_head_only() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let (s, _) = pruned_store(d.path(), &t, 400, false);
    s.close().unwrap();
    let s = FileStore::open(d.path(), opts()).unwrap();
    let cp = s
        .checkpoint_now(Some(&t), &key("audit", 7), now())
        .unwrap()
        .remove(0);
    assert_eq!(cp.checkpoint.root, None);
    assert_eq!(cp.checkpoint.size, 401);
}

/// `hisn audit checkpoint`'s way (`checkpoint_from_records` on a read-only
/// open: every record verified from record 0) keeps the edge too, so the
/// operator's routine "checkpoint, prune, checkpoint" keeps roots; a record
/// that does not verify is refused, nothing kept.
#[test]
fn a_checkpoint_from_every_record_keeps_its_edge_for_after_a_prune() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 7);
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..300 {
        s.append(event(&t, i)).unwrap();
    }
    let mut all = leaves(&s, &t, 0, 300);
    s.close().unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let cp = ro.checkpoint_from_records(&t, &k, now()).unwrap();
    assert_eq!(cp.checkpoint.root, Some(root(&all)));
    assert_eq!(ro.checkpoints(&t).unwrap(), vec![cp]);
    drop(ro);

    let s = FileStore::open(d.path(), opts()).unwrap();
    let end = s.segment_ends(&t).unwrap()[0];
    let receipt = s.export(&t, end).unwrap().receipt;
    s.prune(&receipt, "ops", &clock()).unwrap();
    all.extend(leaves(&s, &t, 300, 301));
    s.close().unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    assert!(matches!(
        ro.checkpoint_from_records(&t, &k, now()),
        Err(hisn_audit_log::Error::NotFound)
    ));
    let run = ro.checkpoint_verified(Some(&t), &k, now()).unwrap();
    assert!(run.refused.is_empty(), "{run:?}");
    assert_eq!(run.signed[0].checkpoint.root, Some(root(&all)));
}

#[test]
fn a_checkpoint_from_every_record_refuses_a_record_that_does_not_verify() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..40 {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    // Change one byte of a record's body (its frame checksum no longer holds).
    let seg = segment_files(d.path(), &t).remove(0);
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.windows(4).position(|w| w == b"u-3\0").unwrap();
    bytes[at + 1] ^= 1;
    fs::write(&seg, bytes).unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    assert!(matches!(
        ro.checkpoint_from_records(&t, &key("audit", 7), now()),
        Err(hisn_audit_log::Error::Corrupt { .. })
    ));
    assert!(ro.checkpoints(&t).unwrap().is_empty(), "nothing kept");
}
