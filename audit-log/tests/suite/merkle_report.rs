//! DSAR entries proven by RFC 6962 inclusion proofs computed from the file
//! store's persisted Merkle tiles, checked against a signed root.

use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use hisn_audit_log::merkle::tiles::{MemoryTiles, SLOT_BYTES, Tree};
use hisn_audit_log::merkle::{Hash, inclusion_proof, leaf_hash, verify_inclusion};
use hisn_audit_log::store::reasons;
use hisn_audit_log::{
    AuditRead, Bounds, CheckpointSink, Durability, EntryProof, FileSink, FileStore,
    FileStoreOptions, InclusionCheck, MemoryStore, SignedCheckpoint, SigningKey, StoredRecord,
    SubjectReport, TenantId, TenantReader, TrustedKeys, Verdict, parse_checkpoint_text,
    record_digest,
};
use proptest::prelude::*;

use crate::common::*;

const N: u64 = 1000;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::OsBuffered)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES * 8)
}

/// Sign a rooted checkpoint of the store as `hisn audit checkpoint` does
/// and keep it in the store's checkpoint log.
fn sign(dir: &Path, t: &TenantId, k: &SigningKey) -> SignedCheckpoint {
    let s = FileStore::open_read_only(dir).unwrap();
    let cp = s.merkle_checkpoint(t, k, now()).unwrap();
    FileSink::new(tdir(dir, t).join("checkpoints.jsonl"))
        .publish(&cp)
        .unwrap();
    cp
}

/// `n` records for `acme` (appended after what is there), closed.
fn append(dir: &Path, t: &TenantId, from: u64, to: u64) {
    let s = FileStore::open(dir, opts()).unwrap();
    for i in from..to {
        s.append(event(t, i)).unwrap();
    }
    s.close().unwrap();
}

fn store(dir: &Path) -> (TenantId, SigningKey, TrustedKeys, SignedCheckpoint) {
    let t = tenant("acme");
    let k = key("audit", 7);
    append(dir, &t, 0, N);
    let cp = sign(dir, &t, &k);
    let keys = trusted(&[&k]);
    (t, k, keys, cp)
}

fn proofs(r: &SubjectReport) -> Vec<(u64, EntryProof)> {
    r.entries.iter().map(|e| (e.seq, e.proof)).collect()
}

fn leaves(dir: &Path, t: &TenantId, n: u64) -> Vec<Hash> {
    FileStore::open_read_only(dir)
        .unwrap()
        .merkle_leaves(t, n)
        .unwrap()
}

/// Class: `anchored`/`links_verify` proved nothing (an edited record was
/// shown as both). Each entry now carries an RFC 6962 inclusion proof
/// against the newest verified signed checkpoint, verified by the report,
/// equal to the proof over the leaves, and checkable from the JSON alone:
/// the record, leaf hash, index, tree size, path and checkpoint note.
#[test]
fn entries_carry_inclusion_proofs_checkable_from_the_json() {
    let d = tempfile::tempdir().unwrap();
    let (t, _, keys, cp) = store(d.path());
    assert!(tdir(d.path(), &t).join("tiles/0").is_file());
    let all = leaves(d.path(), &t, N);
    let cold = TenantReader::open(d.path(), &t).unwrap();
    assert!(!cold.is_full_read());
    let r = cold.subject_report(&t, "emp-3", Some(&keys)).unwrap();
    assert!(r.is_fully_proven(), "{:?}", r.broken);
    assert_eq!(r.entries.len() as u64, N / 5);
    for e in &r.entries {
        assert_eq!(e.proof, EntryProof::Merkle { size: N });
        let p = e.inclusion.as_ref().unwrap();
        assert_eq!((p.leaf_index, p.tree_size), (e.seq, N));
        assert_eq!(
            Some(p.path.clone()),
            inclusion_proof(&all, e.seq as usize),
            "{}",
            e.seq
        );
        assert_eq!(
            p.verify(&t, &e.record, &cp, &keys),
            InclusionCheck::Verified
        );
    }
    // The same report from the full open.
    let full = FileStore::open_read_only(d.path()).unwrap();
    let f = full.subject_report(&t, "emp-3", Some(&keys)).unwrap();
    assert_eq!(proofs(&f), proofs(&r));
    // From the JSON alone (streamed as the CLI does).
    let mut out = Vec::new();
    r.write_json(&mut out).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json, r.to_json());
    let note = json["checkpoints"][0].as_str().unwrap();
    let signed = parse_checkpoint_text(note).unwrap().pop().unwrap();
    signed.verify(&keys).unwrap();
    let root = signed.checkpoint.root.unwrap();
    let hex32 = |v: &serde_json::Value| -> Hash {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    for e in json["entries"].as_array().unwrap() {
        let p = &e["proof"];
        assert_eq!(p["method"], "rfc6962");
        let record = hex::decode(e["record"].as_str().unwrap()).unwrap();
        let leaf = leaf_hash(&record_digest(&record));
        assert_eq!(leaf, hex32(&p["leaf_hash"]));
        let path: Vec<Hash> = p["path"].as_array().unwrap().iter().map(hex32).collect();
        assert!(verify_inclusion(
            &leaf,
            p["leaf_index"].as_u64().unwrap(),
            p["tree_size"].as_u64().unwrap(),
            &path,
            &root
        ));
        assert_eq!(p["tree_size"].as_u64(), Some(signed.checkpoint.size));
    }
}

/// A proof checked against anything but its own checkpoint and record fails,
/// each with its own verdict.
#[test]
fn a_proof_fails_against_another_checkpoint_key_record_or_path() {
    let d = tempfile::tempdir().unwrap();
    let (t, k, keys, cp) = store(d.path());
    let r = TenantReader::open(d.path(), &t)
        .unwrap()
        .subject_report(&t, "emp-1", Some(&keys))
        .unwrap();
    let e = &r.entries[7];
    let p = e.inclusion.clone().unwrap();
    append(d.path(), &t, N, N + 300);
    let newer = sign(d.path(), &t, &k);
    assert_eq!(
        p.verify(&t, &e.record, &newer, &keys),
        InclusionCheck::OtherCheckpoint
    );
    assert_eq!(
        p.verify(&tenant("other"), &e.record, &cp, &keys),
        InclusionCheck::OtherCheckpoint
    );
    assert_eq!(
        p.verify(&t, &e.record, &cp, &trusted(&[&key("audit", 8)])),
        InclusionCheck::BadSignature
    );
    let other = &r.entries[8];
    assert_eq!(
        p.verify(&t, &other.record, &cp, &keys),
        InclusionCheck::OtherRecord
    );
    let mut bad = p.clone();
    bad.path[3][0] ^= 1;
    assert_eq!(
        bad.verify(&t, &e.record, &cp, &keys),
        InclusionCheck::RootMismatch
    );
    // The newer report proves every entry against the newer checkpoint.
    let r = TenantReader::open(d.path(), &t)
        .unwrap()
        .subject_report(&t, "emp-1", Some(&keys))
        .unwrap();
    assert!(r.is_fully_proven());
    assert!(
        r.entries
            .iter()
            .all(|e| e.proof == EntryProof::Merkle { size: N + 300 })
    );
}

/// Rewrite record `seq` of the store in place, still a valid record (frame
/// CRC fixed, so only the chain or the tree can tell).
fn edit_record(dir: &Path, t: &TenantId, seq: u64) {
    let mut segs: Vec<_> = fs::read_dir(tdir(dir, t))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    for seg in segs {
        let bytes = fs::read(&seg).unwrap();
        let parsed = hisn_audit_log::store::segment::parse_segment(&bytes).unwrap();
        let first = parsed.header.first_seq;
        if seq < first || seq >= first + parsed.frames.len() as u64 {
            continue;
        }
        let f = parsed.frames[(seq - first) as usize];
        let mut rec = bytes[f.record_range()].to_vec();
        // Still a valid record: entity `wo-300` becomes `wo-301` (and back).
        let id = format!("wo-{}", seq / 10);
        let at = rec
            .windows(id.len())
            .position(|w| w == id.as_bytes())
            .unwrap();
        rec[at + id.len()] ^= 0x01;
        let frame = hisn_audit_log::store::segment::encode_frame(&rec, &f.link, f.synced);
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(&frame, f.offset)
            .unwrap();
        return;
    }
    panic!("record {seq} not found");
}

fn reason(r: &SubjectReport, seq: u64) -> Option<&'static str> {
    match r.entries.iter().find(|e| e.seq == seq)?.proof {
        EntryProof::Unproven { reason } => Some(reason),
        _ => None,
    }
}

/// A changed record and a changed tile each make the proof fail, with
/// different reasons; a writable open rebuilds the tile from the records.
#[test]
fn changed_record_and_changed_tile_fail_distinctly() {
    let d = tempfile::tempdir().unwrap();
    let (t, _, keys, _) = store(d.path());
    let report = || {
        TenantReader::open(d.path(), &t)
            .unwrap()
            .subject_report(&t, "emp-0", Some(&keys))
            .unwrap()
    };
    // Record 300 is in bottom tile 1 (stored whole).
    edit_record(d.path(), &t, 300);
    let r = report();
    assert_eq!(reason(&r, 300), Some(reasons::RECORD_CHANGED));
    assert_eq!(r.entries.iter().filter(|e| !e.is_proven()).count(), 1);
    // Listed as damage, so the report is not complete (the CLI exits 1).
    assert_eq!(
        r.broken
            .iter()
            .map(|b| (b.first, b.last, b.verdict))
            .collect::<Vec<_>>(),
        vec![(300, 300, Verdict::Tampered)]
    );
    assert!(!r.is_fully_proven());
    edit_record(d.path(), &t, 300); // flip back
    assert!(report().is_fully_proven());
    // Change one interior node of bottom tile 2: the root of records
    // 512..640 (row 7, node 0: hash 508 of the tile). The entries whose
    // audit path holds it (records 640..768) lose their proofs, the others
    // keep theirs.
    let tile0 = tdir(d.path(), &t).join("tiles/0");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tile0)
        .unwrap();
    let at = (2 * SLOT_BYTES + 508 * 32) as u64;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x80], at).unwrap();
    let r = report();
    for e in &r.entries {
        let want = if (640..768).contains(&e.seq) {
            Some(reasons::TILES_DISAGREE)
        } else {
            None
        };
        assert_eq!(reason(&r, e.seq), want, "{}", e.seq);
    }
    // A tile is derived data: the next writable open rebuilds it.
    FileStore::open(d.path(), opts()).unwrap().close().unwrap();
    assert!(report().is_fully_proven());
}

/// A store rolled back to an older state (records and tiles), against a
/// newer checkpoint held elsewhere: no entry is proven against the newer
/// checkpoint and the lost records are listed as truncated.
#[test]
fn rolled_back_store_is_truncated_not_proven() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 7);
    let keys = trusted(&[&k]);
    append(d.path(), &t, 0, 600);
    let old = tempfile::tempdir().unwrap();
    copy_dir(&tdir(d.path(), &t), &tdir(old.path(), &t));
    append(d.path(), &t, 600, N);
    let newer = sign(d.path(), &t, &k);
    // Roll back: the old records and tiles, the newer checkpoint.
    fs::remove_dir_all(tdir(d.path(), &t)).unwrap();
    copy_dir(&tdir(old.path(), &t), &tdir(d.path(), &t));
    FileSink::new(tdir(d.path(), &t).join("checkpoints.jsonl"))
        .publish(&newer)
        .unwrap();
    let r = TenantReader::open(d.path(), &t)
        .unwrap()
        .subject_report(&t, "emp-0", Some(&keys))
        .unwrap();
    assert_eq!(r.entries.len(), 120);
    assert!(r.entries.iter().all(|e| e.proof
        == EntryProof::Unproven {
            reason: reasons::LOG_SHORTER
        }));
    assert_eq!(
        r.broken
            .iter()
            .map(|b| (b.first, b.last, b.verdict))
            .collect::<Vec<_>>(),
        vec![(600, N - 1, Verdict::Truncated)]
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            fs::copy(&p, &dst).unwrap();
        }
    }
}

/// Tiles lost, torn, or longer than the records after a crash: the next
/// writable open makes them match the records again (the same bytes as a
/// store that never crashed), and a report before that still proves every
/// entry from what is left (missing tiles are computed from the records).
#[test]
fn tiles_are_rebuilt_after_loss_tearing_or_a_cut_tail() {
    let d = tempfile::tempdir().unwrap();
    let (t, _, keys, _) = store(d.path());
    let tiles = tdir(d.path(), &t).join("tiles");
    let good = fs::read(tiles.join("0")).unwrap();
    assert_eq!(good.len(), 3 * SLOT_BYTES);
    let fully = || {
        TenantReader::open(d.path(), &t)
            .unwrap()
            .subject_report(&t, "emp-2", Some(&keys))
            .unwrap()
            .is_fully_proven()
    };
    for damage in 0..3 {
        match damage {
            0 => fs::remove_dir_all(&tiles).unwrap(),
            1 => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(tiles.join("0"))
                    .unwrap();
                f.set_len((SLOT_BYTES + 100) as u64).unwrap();
            }
            _ => {
                // Tiles of records that a crash then cut: garbage past the end.
                let mut longer = good.clone();
                longer.extend(vec![7u8; 2 * SLOT_BYTES]);
                fs::write(tiles.join("0"), longer).unwrap();
            }
        }
        assert!(fully(), "before reopening, damage {damage}");
        FileStore::open(d.path(), opts()).unwrap().close().unwrap();
        assert_eq!(fs::read(tiles.join("0")).unwrap(), good, "damage {damage}");
        assert!(fully());
    }
}

/// An index that leaves out the given sequence numbers.
struct Omitting<'a, S>(&'a S, Vec<u64>);

impl<S: AuditRead> AuditRead for Omitting<'_, S> {
    fn tenants(&self) -> hisn_audit_log::Result<Vec<TenantId>> {
        self.0.tenants()
    }
    fn bounds(&self, t: &TenantId) -> hisn_audit_log::Result<Bounds> {
        self.0.bounds(t)
    }
    fn read_range(
        &self,
        t: &TenantId,
        from: u64,
        to: u64,
    ) -> hisn_audit_log::Result<Vec<hisn_audit_log::Result<StoredRecord>>> {
        self.0.read_range(t, from, to)
    }
    fn subject_seqs(&self, t: &TenantId, subject: &str) -> hisn_audit_log::Result<Vec<u64>> {
        let mut v = self.0.subject_seqs(t, subject)?;
        v.retain(|s| !self.1.contains(s));
        Ok(v)
    }
    fn checkpoints(&self, t: &TenantId) -> hisn_audit_log::Result<Vec<SignedCheckpoint>> {
        self.0.checkpoints(t)
    }
    fn merkle_tile(
        &self,
        t: &TenantId,
        level: u32,
        index: u64,
    ) -> hisn_audit_log::Result<Option<Vec<Hash>>> {
        self.0.merkle_tile(t, level, index)
    }
}

/// Item: an index that drops a whole checkpoint interval of a subject's
/// rows. Neither the chain nor the Merkle tree commits to who a record is
/// about, so a report that reads only the subject's records and its proof
/// tiles has no evidence of the rows it was not shown: with tiles, the
/// omission is invisible to the report (`unindexed` stays 0; documented in
/// the report's module docs), while a report that reads the records anyway
/// (a store without tiles computes the tree from every record) finds and
/// proves them. `hisn audit verify` and a writable open (which rebuild the
/// index from the records) are the controls for the tiled store.
#[test]
fn an_index_that_drops_a_whole_interval_is_only_seen_where_records_are_read() {
    let d = tempfile::tempdir().unwrap();
    let (t, k, keys, _) = store(d.path());
    // Records 256..512: bottom tile 1, stored whole (the records of the
    // tree's right edge, past the last whole tile, are read and searched).
    let dropped: Vec<u64> = (256..512).filter(|s| s % 5 == 4).collect();
    let cold = TenantReader::open(d.path(), &t).unwrap();
    let r = Omitting(&cold, dropped.clone())
        .subject_report(&t, "emp-4", Some(&keys))
        .unwrap();
    assert_eq!(r.entries.len(), 200 - dropped.len());
    assert_eq!(r.unindexed, 0);
    assert!(r.is_fully_proven(), "the limit this test documents");
    // The same log in a store without tiles: the omission is found.
    let m = MemoryStore::new();
    for i in 0..N {
        m.append(&event(&t, i)).unwrap();
    }
    let cp = m.merkle_checkpoint(&t, &k, now()).unwrap();
    m.replace_checkpoints(&t, vec![cp]);
    let r = Omitting(&m, dropped.clone())
        .subject_report(&t, "emp-4", Some(&keys))
        .unwrap();
    assert_eq!(r.entries.len(), 200);
    assert_eq!(r.unindexed, dropped.len() as u64);
    assert!(r.entries.iter().all(|e| e.is_proven()) && !r.is_fully_proven());
}

/// A store without tiles (memory) gives the same proofs, from the records.
#[test]
fn memory_store_gives_the_same_proofs() {
    let d = tempfile::tempdir().unwrap();
    let (t, k, keys, _) = store(d.path());
    let m = MemoryStore::new();
    for i in 0..N {
        m.append(&event(&t, i)).unwrap();
    }
    let cp = m.merkle_checkpoint(&t, &k, now()).unwrap();
    m.replace_checkpoints(&t, vec![cp]);
    let a = m.subject_report(&t, "u-3", Some(&keys)).unwrap();
    let b = TenantReader::open(d.path(), &t)
        .unwrap()
        .subject_report(&t, "u-3", Some(&keys))
        .unwrap();
    assert!(a.is_fully_proven() && b.is_fully_proven());
    assert_eq!(
        a.entries
            .iter()
            .map(|e| e.inclusion.clone())
            .collect::<Vec<_>>(),
        b.entries
            .iter()
            .map(|e| e.inclusion.clone())
            .collect::<Vec<_>>()
    );
}

fn test_leaves(n: usize, salt: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            let mut d = [salt; 32];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            leaf_hash(&hisn_audit_log::Link(d))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The tile-based proof equals `merkle::inclusion_proof` over the leaves,
    /// for random sizes and indices, with tiles stored or missing (computed
    /// from the leaves).
    #[test]
    fn tile_proofs_equal_leaf_proofs(
        total in 1usize..20_000,
        size_at in any::<proptest::sample::Index>(),
        index_at in any::<proptest::sample::Index>(),
        drop in proptest::collection::vec((0u32..2, 0u64..300), 0..4),
        salt in any::<u8>(),
    ) {
        let l = test_leaves(total, salt);
        let size = size_at.index(total) + 1;
        let index = index_at.index(size);
        let mut src = MemoryTiles::new(&l);
        for (level, i) in drop {
            // A missing tile is computed from the tiles or leaves below it.
            src.remove_tile(level, i);
        }
        let mut tree = Tree::new(&src, size as u64);
        let got = tree.inclusion_path(index as u64);
        prop_assert_eq!(got.ok().flatten(), inclusion_proof(&l[..size], index));
    }
}

/// PostgreSQL gives the same proofs: it keeps no tiles, so the paths come
/// from the records' leaf hashes read in the report's snapshot (`O(size)`),
/// checked against the same rooted checkpoint. A rooted checkpoint of the
/// same log signed elsewhere (a memory store holding the same records) is
/// kept in the database as `hisn audit checkpoint` would publish it.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_gives_the_same_proofs_from_its_records() {
    let Some((_db, pool, store)) = setup("audit_pg_merkle_report").await else {
        return;
    };
    let t = tenant("acme");
    let k = key("audit", 7);
    let keys = trusted(&[&k]);
    let m = MemoryStore::new();
    for i in 0..300 {
        store.append(&event(&t, i)).await.unwrap();
        m.append(&event(&t, i)).unwrap();
    }
    let cp = m.merkle_checkpoint(&t, &k, now()).unwrap();
    m.replace_checkpoints(&t, vec![cp.clone()]);
    sqlx::query("INSERT INTO hisn_audit_checkpoint (tenant, size, note) VALUES ($1, $2, $3)")
        .bind(t.as_str())
        .bind(300i64)
        .bind(cp.to_note())
        .execute(&pool)
        .await
        .unwrap();
    let pg = store
        .subject_report(&t, "emp-2", Some(&keys))
        .await
        .unwrap();
    let mem = m.subject_report(&t, "emp-2", Some(&keys)).unwrap();
    assert!(pg.is_fully_proven(), "{:?}", pg.broken);
    assert_eq!(pg.entries.len(), 60);
    assert!(
        pg.entries
            .iter()
            .all(|e| e.proof == EntryProof::Merkle { size: 300 })
    );
    assert_eq!(
        pg.entries
            .iter()
            .map(|e| e.inclusion.clone())
            .collect::<Vec<_>>(),
        mem.entries
            .iter()
            .map(|e| e.inclusion.clone())
            .collect::<Vec<_>>()
    );
}
