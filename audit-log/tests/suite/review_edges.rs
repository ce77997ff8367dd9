//! Outside review of the kept Merkle edge (`"frontier"` beside each rooted
//! note) and of the subject-index check: attacks kept as regression tests.

use std::fs;
use std::path::Path;

use hisn_audit_log::merkle::root;
use hisn_audit_log::{
    AuditRead, Durability, FileStore, FileStoreOptions, SignedCheckpoint, TenantId,
};

use crate::common::*;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::OsBuffered)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES * 8)
}

/// Remove the kept edge (`"frontier"`) of the note of size `size` in `t`'s
/// checkpoint log, keeping the signed note itself (as a store written before
/// edges were kept would hold it, or as anyone who can write the file can).
fn strip_edge(dir: &Path, t: &TenantId, size: u64) {
    let log = tdir(dir, t).join("checkpoints.jsonl");
    let text = fs::read_to_string(&log).unwrap();
    let mut stripped = 0;
    let out: String = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let cp = SignedCheckpoint::parse(v["note"].as_str().unwrap()).unwrap();
            if cp.checkpoint.size == size && v.get("frontier").is_some() {
                v.as_object_mut().unwrap().remove("frontier");
                stripped += 1;
            }
            format!("{v}\n")
        })
        .collect();
    assert_eq!(stripped, 1, "one note of size {size} had an edge");
    fs::write(&log, out).unwrap();
}

/// Class: an older kept edge extended past a newer signed note that
/// disagrees with the records.
///
/// Root cause: `Shared::frontier_from_edges` takes the newest signed, rooted
/// note whose edge is usable and extends it with the records since, checking
/// only that they chain from that note's head to the current head. A newer
/// note of the same key whose edge is missing (a store written before edges
/// were kept, or an edge anyone who can write `checkpoints.jsonl` removed or
/// truncated) was skipped, and nothing compared the extended records with its
/// signed head and root. Records edited and relinked between the two notes
/// then chained from the older note's head, and `checkpoint_now` (writable
/// after a restart, or read-only) signed a root over the edited records even
/// though the key had already signed a contradicting root. The extension now
/// also passes through every newer note of the key in range: the records
/// must reach each one's head, with its root.
#[test]
fn an_older_edge_is_never_extended_past_a_newer_note_it_contradicts() {
    for pruned in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let t = tenant("acme");
        let k = key("audit", 7);
        let s = FileStore::open(d.path(), opts()).unwrap();
        for i in 0..300 {
            s.append(event(&t, i)).unwrap();
        }
        let mut all = leaves(&s, &t, 0, 300);
        if pruned {
            let end = s.segment_ends(&t).unwrap()[0];
            let receipt = s.export(&t, end).unwrap().receipt;
            s.prune(&receipt, "ops", &clock()).unwrap();
            assert!(s.bounds(&t).unwrap().first_seq > 0);
            all.extend(leaves(&s, &t, 300, 301));
        }
        let a = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
        let base = a.checkpoint.size;
        assert_eq!(a.checkpoint.root, Some(root(&all)));
        for i in 0..40 {
            s.append(event(&t, 1000 + i)).unwrap();
        }
        let b = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
        for i in 40..45 {
            s.append(event(&t, 1000 + i)).unwrap();
        }
        let size = s.bounds(&t).unwrap().size;
        all.extend(leaves(&s, &t, base, size));
        let unedited = root(&all);
        s.close().unwrap();

        // Edit a record between the two notes, relink, drop the newer edge.
        edit_record(d.path(), &t, base + 20, true);
        strip_edge(d.path(), &t, b.checkpoint.size);

        let honest = |c: &SignedCheckpoint| {
            c.checkpoint.root.is_none() || c.checkpoint.root == Some(unedited)
        };
        let s = FileStore::open(d.path(), opts()).unwrap();
        let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
        assert_eq!(cp.checkpoint.size, size);
        assert!(honest(&cp), "writable, pruned {pruned}: {cp:?}");
        let run = s.checkpoint_verified(Some(&t), &k, now()).unwrap();
        assert!(run.signed.iter().all(honest), "verified, pruned {pruned}");
        s.close().unwrap();
        let ro = FileStore::open_read_only(d.path()).unwrap();
        let cp = ro.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
        assert!(honest(&cp), "read-only, pruned {pruned}: {cp:?}");
        let run = ro.checkpoint_verified(Some(&t), &k, now()).unwrap();
        assert!(
            run.signed.iter().all(honest),
            "ro verified, pruned {pruned}"
        );
    }
}

/// Cut `t`'s chain to its first `keep` records (whole frames off the end of
/// the segment holding record `keep`, later segments removed, the synced
/// mark dropped), as someone who can write the store would roll it back.
fn truncate(dir: &Path, t: &TenantId, keep: u64) {
    use hisn_audit_log::store::segment::parse_segment;
    let _ = fs::remove_file(tdir(dir, t).join("synced.mark"));
    for seg in segment_files(dir, t) {
        let bytes = fs::read(&seg).unwrap();
        let parsed = parse_segment(&bytes).unwrap();
        let first = parsed.header.first_seq;
        if first >= keep && first > 0 {
            fs::remove_file(&seg).unwrap();
            let _ = fs::remove_file(seg.with_extension("sidx"));
            continue;
        }
        let cut = usize::try_from(keep - first).unwrap();
        if let Some(f) = parsed.frames.get(cut) {
            fs::OpenOptions::new()
                .write(true)
                .open(&seg)
                .unwrap()
                .set_len(f.offset)
                .unwrap();
        }
    }
}

/// Class: a chain rolled back below a kept checkpoint and edited.
///
/// Root cause: the checks that stop roots being signed over edited records
/// compare the records with the notes kept in the store only at the sizes
/// the chain reaches (`RootCheck` on a writable open; the notes in range in
/// `frontier_from_edges`). A chain cut below the newest note (and edited
/// and relinked above an older one) never reaches that note's size, so
/// nothing compared it: the writer's root over the edited, shorter chain was
/// signed, a root that contradicts the one the key had signed at the larger
/// size. A note of the key beyond the chain's head first stopped roots (the
/// head alone was signed); since the third outside review it stops the
/// signing altogether (`review3::a_chain_cut_below_a_signed_checkpoint_is_never_signed_again`),
/// and verification names the rollback.
#[test]
fn a_chain_cut_below_a_kept_note_and_edited_is_never_signed_a_root_over() {
    for pruned in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let t = tenant("acme");
        let k = key("audit", 7);
        let s = FileStore::open(d.path(), opts()).unwrap();
        for i in 0..300 {
            s.append(event(&t, i)).unwrap();
        }
        if pruned {
            let end = s.segment_ends(&t).unwrap()[0];
            let receipt = s.export(&t, end).unwrap().receipt;
            s.prune(&receipt, "ops", &clock()).unwrap();
            assert!(s.bounds(&t).unwrap().first_seq > 0);
        }
        let a = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
        let base = a.checkpoint.size;
        for i in 0..40 {
            s.append(event(&t, 1000 + i)).unwrap();
        }
        s.checkpoint_now(Some(&t), &k, now()).unwrap();
        let first = s.bounds(&t).unwrap().first_seq;
        s.close().unwrap();

        edit_record(d.path(), &t, base + 10, true);
        truncate(d.path(), &t, base + 30);

        let s = FileStore::open(d.path(), opts()).unwrap();
        let b = s.bounds(&t).unwrap();
        assert_eq!((b.first_seq, b.size), (first, base + 30), "pruned {pruned}");
        assert!(
            matches!(
                s.checkpoint_now(Some(&t), &k, now()),
                Err(hisn_audit_log::Error::Corrupt { .. })
            ),
            "writable, pruned {pruned}"
        );
        let run = s.checkpoint_verified(Some(&t), &k, now()).unwrap();
        assert!(run.signed.is_empty(), "verified, pruned {pruned}");
        s.close().unwrap();
        let ro = FileStore::open_read_only(d.path()).unwrap();
        assert!(
            matches!(
                ro.checkpoint_now(Some(&t), &k, now()),
                Err(hisn_audit_log::Error::Corrupt { .. })
            ),
            "read-only, pruned {pruned}"
        );
    }
}

/// Class: `hisn audit checkpoint` (`checkpoint_from_records`) signing a root
/// over records edited below a checkpoint the store kept.
///
/// Root cause: `checkpoint_from_records` verified the chain from record 0
/// with no checkpoints at all (`Verifier::new(tenant, &[], None)`), so a
/// record edited and relinked while the store was closed verified, and the
/// CLI signed (and kept, with its edge) a root over the edited records,
/// contradicting the root the key had signed before; and that kept edge then
/// seeded every later root. The records are now compared, as they are read,
/// with every note of the key in the store (head and root at its size), and
/// a note beyond the head (a rollback) refuses too.
#[test]
fn a_checkpoint_from_every_record_refuses_records_edited_below_a_kept_note() {
    for cut in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let t = tenant("acme");
        let k = key("audit", 7);
        let s = FileStore::open(d.path(), opts()).unwrap();
        for i in 0..40 {
            s.append(event(&t, i)).unwrap();
        }
        s.checkpoint_now(Some(&t), &k, now()).unwrap();
        for i in 40..45 {
            s.append(event(&t, i)).unwrap();
        }
        s.close().unwrap();
        edit_record(d.path(), &t, 7, true);
        if cut {
            truncate(d.path(), &t, 30);
        }
        let ro = FileStore::open_read_only(d.path()).unwrap();
        let before = ro.checkpoints(&t).unwrap().len();
        let r = ro.checkpoint_from_records(&t, &k, now());
        assert!(
            matches!(r, Err(hisn_audit_log::Error::Corrupt { .. })),
            "cut {cut}: {r:?}"
        );
        assert_eq!(ro.checkpoints(&t).unwrap().len(), before, "nothing kept");
    }
}

/// Class: a chain whose kept notes carry no root (signed before roots
/// existed, or head-only) read from record 0 past them.
///
/// Root cause: with no rooted note of the key, `frontier_from_edges`
/// answered "no candidate" and the signer read the chain from record 0,
/// checking only that the records chain: a head the key had signed (without
/// a root) was never compared, so records edited and relinked below it were
/// signed a root by `checkpoint_now` (writable, after `RootCheck` had already
/// withdrawn the writer's root, and read-only). The read from record 0 now
/// passes through every note of the key too.
#[test]
fn a_chain_read_from_genesis_must_reach_every_head_only_note() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 7);
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..45 {
        s.append(event(&t, i)).unwrap();
    }
    let head = s.read_range(&t, 39, 40).unwrap().remove(0).unwrap().link;
    let unedited = root(&leaves(&s, &t, 0, 45));
    s.close().unwrap();
    // A note of the key at 40 with the head only, as an older version kept.
    let note = k.sign(hisn_audit_log::Checkpoint::new(&t, 40, head, now()));
    let line = serde_json::json!({ "note": note.to_note() });
    fs::write(
        tdir(d.path(), &t).join("checkpoints.jsonl"),
        format!("{line}\n"),
    )
    .unwrap();
    edit_record(d.path(), &t, 20, true);
    let honest =
        |c: &SignedCheckpoint| c.checkpoint.root.is_none() || c.checkpoint.root == Some(unedited);
    let s = FileStore::open(d.path(), opts()).unwrap();
    let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    assert!(honest(&cp), "writable: {cp:?}");
    s.close().unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let cp = ro.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    assert!(honest(&cp), "read-only: {cp:?}");
    let run = ro.checkpoint_verified(Some(&t), &k, now()).unwrap();
    assert!(run.signed.iter().all(honest), "verified");
}

/// A `.sidx` for `seg` (bytes) claiming `count` records, with the subject
/// keys of its first `count` records and consistent checksums, as anyone
/// who can write the store can write one (the file has no MAC).
fn forged_index(seg: &[u8], count: usize) -> Vec<u8> {
    use hisn_audit_log::store::segment::parse_segment;
    use sha2::{Digest as _, Sha256};
    let parsed = parse_segment(seg).unwrap();
    let frames = &parsed.frames[..count];
    let mut keys: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for (i, f) in frames.iter().enumerate() {
        let (_, e) = hisn_audit_log::decode_record(&seg[f.record_range()]).unwrap();
        for k in e.subject_keys() {
            keys.entry(k.to_owned()).or_default().push(i as u32);
        }
    }
    let mut h = b"HISNSIX2".to_vec();
    h.extend_from_slice(&(seg.len() as u64).to_le_bytes());
    h.extend_from_slice(&Sha256::digest(seg));
    h.extend_from_slice(&parsed.header.first_seq.to_le_bytes());
    h.extend_from_slice(&(count as u32).to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    h.extend_from_slice(&120u64.to_le_bytes());
    h.extend_from_slice(&(120 + 8 * count as u64).to_le_bytes());
    let header_sum = Sha256::digest(&h);
    h.extend_from_slice(&header_sum);
    let mut bucket = Vec::new();
    for (k, ps) in &keys {
        bucket.extend_from_slice(&(k.len() as u32).to_le_bytes());
        bucket.extend_from_slice(k.as_bytes());
        bucket.extend_from_slice(&(ps.len() as u32).to_le_bytes());
        for p in ps {
            bucket.extend_from_slice(&p.to_le_bytes());
        }
    }
    let mut out = h;
    for f in frames {
        out.extend_from_slice(&f.offset.to_le_bytes());
    }
    let start = out.len() as u64 + 16;
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&(start + bucket.len() as u64 + 32).to_le_bytes());
    let mut bs = Sha256::new();
    bs.update(b"hisn-audit-log:sidx-bucket-sum\0");
    bs.update(header_sum);
    bs.update(0u32.to_le_bytes());
    bs.update(&bucket);
    out.extend_from_slice(&bucket);
    out.extend_from_slice(&bs.finalize());
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Class: an index claiming fewer records than its segment holds, with an
/// empty segment after it that starts where the index says.
///
/// Root cause: the cold reader (`TenantReader`, `hisn audit report`) takes a
/// sealed segment's record count from its index header, bound only by the
/// next segment's first sequence number; the read-only open behind `hisn
/// audit verify` counts the frames and does not check where the next
/// segment's header says it starts. `disagreements` skipped an index whose
/// count differs from the segment's frames as one "nothing accepts", yet the
/// cold reader accepted it when an (empty, attacker-written) next segment
/// started at that count: the segment's last records vanished from cold
/// reports while the chain verified and the index check found nothing. An
/// index the cold reader's header checks accept but whose count is not the
/// segment's is now named.
#[test]
fn an_index_claiming_fewer_records_is_named_when_the_cold_reader_would_use_it() {
    use hisn_audit_log::store::segment::{SegmentHeader, parse_segment};
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..20 {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    let segs = segment_files(d.path(), &t);
    assert_eq!(segs.len(), 1);
    let bytes = fs::read(&segs[0]).unwrap();
    let parsed = parse_segment(&bytes).unwrap();
    let n = parsed.frames.len();
    let keep = n - 3;
    // The hidden record names a subject the kept ones name too.
    let hidden = format!("emp-{}", (n - 1) % 5);
    let empty = SegmentHeader {
        first_seq: keep as u64,
        prev_link: parsed.frames[keep - 1].link,
        segment_id: [9; 16],
        ..parsed.header.clone()
    };
    fs::write(
        tdir(d.path(), &t).join(format!("{keep:020}.seg")),
        empty.encode(),
    )
    .unwrap();
    let mut sidx = segs[0].as_os_str().to_owned();
    sidx.push(".sidx");
    fs::write(&sidx, forged_index(&bytes, keep)).unwrap();

    let cold = hisn_audit_log::TenantReader::open(d.path(), &t).unwrap();
    let seqs = cold.subject_seqs(&t, &hidden).unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let all = ro.subject_seqs(&t, &hidden).unwrap();
    assert!(all.contains(&(n as u64 - 1)), "{all:?}");
    if !cold.is_full_read() && !seqs.contains(&(n as u64 - 1)) {
        // The cold reader hides the record: the check must name the index.
        let v = ro.verify(&t, None, &[]).unwrap();
        assert!(v.is_ok(), "the chain verifies: {v:?}");
        let m = ro.check_subject_indexes(&t).unwrap();
        assert_eq!(m.len(), 1, "the forged index is named");
        assert!(m[0].keys > 0);
    }
}
