//! Every signed checkpoint carries the RFC 6962 Merkle root of the records
//! it covers (issue #12), whichever path made it: `checkpoint_now`,
//! `checkpoint_verified`, automatic checkpoints, the memory store and
//! `PgStore::checkpoint`. DSAR reports then prove entries by inclusion
//! proofs; records that do not chain are never signed a root over.

use std::fs;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::Duration;

use hisn_audit_log::merkle::{Hash, leaf_hash, root};
use hisn_audit_log::{
    AuditRead, AutoCheckpoint, CheckpointPolicy, Durability, EntryProof, FileStore,
    FileStoreOptions, MemorySink, MemoryStore, SignedCheckpoint, TenantId, Verdict, record_digest,
};

use crate::common::*;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::OsBuffered)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES * 8)
}

/// `merkle::root` over the record hashes of `t`'s first `size` records.
fn root_of<S: AuditRead + ?Sized>(s: &S, t: &TenantId, size: u64) -> Hash {
    root(&leaves(s, t, 0, size))
}

#[track_caller]
fn assert_rooted<S: AuditRead + ?Sized>(s: &S, t: &TenantId, cp: &SignedCheckpoint) {
    let size = cp.checkpoint.size;
    assert_eq!(cp.checkpoint.root, Some(root_of(s, t, size)), "size {size}");
}

/// Class: only `hisn audit checkpoint` signed a Merkle root; the file
/// store's own checkpoints carried the head only, so DSAR entries and
/// `prove` fell back to a chain walk. Now `checkpoint_now` signs the root the
/// writer computed from the records (across tile edges, after a reopen, for
/// every tenant at once) and `checkpoint_verified` does too, on a writable
/// and on a read-only open.
#[test]
fn checkpoint_now_and_verified_carry_the_root_of_their_records() {
    let d = tempfile::tempdir().unwrap();
    let (t, u) = (tenant("acme"), tenant("umbrella"));
    let k = key("audit", 4);
    let keys = trusted(&[&k]);
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..300 {
        s.append(event(&t, i)).unwrap();
    }
    let cps = s.checkpoint_now(Some(&t), &k, now()).unwrap();
    assert_rooted(&s, &t, &cps[0]);
    for i in 300..600 {
        s.append(event(&t, i)).unwrap();
        s.append(event(&u, i)).unwrap();
    }
    let cps = s.checkpoint_now(None, &k, now()).unwrap();
    assert_eq!(cps.len(), 2);
    for cp in &cps {
        assert_rooted(&s, &cp.checkpoint.tenant().unwrap(), cp);
    }
    s.close().unwrap();

    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 600..610 {
        s.append(event(&t, i)).unwrap();
    }
    let cp = &s.checkpoint_now(Some(&t), &k, now()).unwrap()[0];
    assert_eq!(cp.checkpoint.size, 610);
    assert_rooted(&s, &t, cp);
    s.append(event(&t, 610)).unwrap();
    let run = s.checkpoint_verified(Some(&t), &k, now()).unwrap();
    assert!(run.refused.is_empty(), "{:?}", run.refused);
    assert_rooted(&s, &t, &run.signed[0]);
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::Intact, 611));
    s.close().unwrap();

    // A read-only open has no writer: the root comes from the tiles, checked
    // against the newest rooted checkpoint, and the records since it.
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let cp = &ro.checkpoint_now(Some(&t), &k, now()).unwrap()[0];
    assert_rooted(&ro, &t, cp);
    let run = ro.checkpoint_verified(None, &k, now()).unwrap();
    assert_eq!(run.signed.len(), 2);
    for cp in &run.signed {
        assert_rooted(&ro, &cp.checkpoint.tenant().unwrap(), cp);
    }
}

/// Tiles are derived data: a changed tile under the newest rooted
/// checkpoint does not give its signed root, so a read-only signer computes
/// the root from the records instead; the root it signs is still the
/// records' own.
#[test]
fn a_changed_tile_never_changes_the_signed_root() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 4);
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..600 {
        s.append(event(&t, i)).unwrap();
    }
    s.checkpoint_now(Some(&t), &k, now()).unwrap();
    for i in 600..620 {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    let tile = tdir(d.path(), &t).join("tiles").join("0");
    let f = fs::OpenOptions::new().write(true).open(&tile).unwrap();
    // The root of the first bottom tile (its last node).
    f.write_all_at(&[0xAA; 32], 32 * 510).unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let run = ro.checkpoint_verified(Some(&t), &k, now()).unwrap();
    assert_eq!(run.signed[0].checkpoint.size, 620);
    assert_rooted(&ro, &t, &run.signed[0]);
}

/// Class: automatic checkpoints carried no root. Each one the writer signs
/// (and publishes) now carries the root of exactly the records it covers.
#[test]
fn automatic_checkpoints_carry_the_root_of_their_records() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 5);
    let sink = Arc::new(MemorySink::new());
    let policy = CheckpointPolicy {
        every_records: NonZeroU64::new(100).unwrap(),
        every: Duration::from_secs(3600),
    };
    let s = FileStore::open(
        d.path(),
        opts().auto_checkpoint(AutoCheckpoint::new(key("audit", 5), policy).sink(sink.clone())),
    )
    .unwrap();
    for i in 0..350 {
        s.append(event(&t, i)).unwrap();
    }
    let published = sink.published();
    assert!(published.len() >= 3, "{}", published.len());
    for cp in &published {
        assert_rooted(&s, &t, cp);
    }
    let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!(r.verdict, Verdict::UnanchoredTail);
}

/// The memory store's checkpoints carry the root too (computed from its
/// records).
#[test]
fn memory_store_checkpoints_carry_the_root() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    for i in 0..77 {
        s.append(&event(&t, i)).unwrap();
    }
    let cp = s.checkpoint(&t, &key("audit", 1), now()).unwrap();
    assert_rooted(&s, &t, &cp);
}

/// Class: a DSAR report after `checkpoint_now` proved its entries by
/// walking the chain. Its checkpoint now carries a root, so every entry is
/// proven by an RFC 6962 inclusion proof, on a full and on a cold open.
#[test]
fn dsar_report_after_checkpoint_now_is_merkle_proven() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 6);
    let keys = trusted(&[&k]);
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..700 {
        s.append(event(&t, i)).unwrap();
    }
    s.checkpoint_now(Some(&t), &k, now()).unwrap();
    let r = s.subject_report(&t, "emp-3", Some(&keys)).unwrap();
    assert_eq!(r.entries.len(), 140);
    assert!(r.is_fully_proven(), "{:?}", r.broken);
    assert!(
        r.entries
            .iter()
            .all(|e| e.proof == EntryProof::Merkle { size: 700 } && e.inclusion.is_some())
    );
    s.close().unwrap();
    let cold = hisn_audit_log::TenantReader::open(d.path(), &t).unwrap();
    let c = cold.subject_report(&t, "emp-3", Some(&keys)).unwrap();
    assert!(
        c.entries
            .iter()
            .all(|e| e.proof == EntryProof::Merkle { size: 700 })
    );
}

/// Class: a root signed over records that do not match it. A record edited
/// while the store was closed (frame checksum fixed) no longer chains: the
/// writable open notices, and no root is ever signed over the edited
/// records. The only root signed is the unedited log's: the tree's edge kept
/// with the checkpoint before the edit (which hashes to its signed root),
/// extended with the records since, which chain from its head; a proof of
/// the edited record fails against it. Edited and relinked, the chain
/// disagrees with the checkpoint the store kept: `checkpoint_verified`
/// refuses to sign at all, `checkpoint_now` signs no root, and verification
/// names the edit.
#[test]
fn a_record_edited_while_closed_is_never_signed_a_root_over() {
    for relink in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let t = tenant("acme");
        let k = key("audit", 8);
        let keys = trusted(&[&k]);
        let s = FileStore::open(d.path(), opts()).unwrap();
        for i in 0..40 {
            s.append(event(&t, i)).unwrap();
        }
        s.checkpoint_now(Some(&t), &k, now()).unwrap();
        for i in 40..45 {
            s.append(event(&t, i)).unwrap();
        }
        let unedited = root_of(&s, &t, 45);
        s.close().unwrap();
        edit_record(d.path(), &t, 7, relink);
        let s = FileStore::open(d.path(), opts()).unwrap();
        let edited = root_of(&s, &t, 45);
        assert_ne!(edited, unedited);
        // A signed root, if any, is the unedited log's.
        let honest = |c: &SignedCheckpoint| {
            c.checkpoint.root.is_none() || c.checkpoint.root == Some(unedited)
        };
        // Verified signing starts at the kept checkpoint: the relinked chain
        // does not reach it and is refused; the edit alone lies below it, so
        // the head is signed.
        let run = s.checkpoint_verified(Some(&t), &k, now()).unwrap();
        assert!(run.signed.iter().all(honest), "relink {relink}");
        if relink {
            assert!(run.signed.is_empty());
            assert_eq!(run.refused[0].1, Verdict::Tampered);
        } else {
            assert_eq!(run.signed[0].checkpoint.root, Some(unedited));
        }
        let cp = &s.checkpoint_now(Some(&t), &k, now()).unwrap()[0];
        assert!(honest(cp), "relink {relink}");
        if relink {
            assert_eq!(cp.checkpoint.root, None);
        }
        let r = s.verify(&t, Some(&keys), &[]).unwrap();
        assert_eq!(r.verdict, Verdict::Tampered, "relink {relink}");
        // The edited record is not proven by any signed root.
        let rep = s.subject_report(&t, "emp-2", Some(&keys)).unwrap();
        assert!(
            rep.entries.iter().all(|e| e.seq != 7 || !e.is_proven()),
            "relink {relink}"
        );
        s.close().unwrap();
        let ro = FileStore::open_read_only(d.path()).unwrap();
        let cp = &ro.checkpoint_now(Some(&t), &k, now()).unwrap()[0];
        assert!(honest(cp), "read-only, relink {relink}");
    }
}

/// Class: `prove --inclusion` (`AuditRead::merkle_inclusion`) read and
/// hashed every record up to the tree size. It now reads the stored tiles
/// and the tree's right edge: a record edited far from the proven one (in a
/// region the tiles cover) is not even read, and the proof still verifies
/// against the signed root; a changed tile on the proof's path makes it
/// fail, never pass.
#[test]
fn inclusion_proofs_come_from_the_tiles() {
    let d = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 2);
    let keys = trusted(&[&k]);
    let s = FileStore::open(d.path(), opts()).unwrap();
    for i in 0..1000 {
        s.append(event(&t, i)).unwrap();
    }
    let cp = s.checkpoint_now(Some(&t), &k, now()).unwrap().remove(0);
    s.close().unwrap();
    edit_record(d.path(), &t, 10, false);
    let ro = FileStore::open_read_only(d.path()).unwrap();
    for seq in [0, 10, 300, 700, 999] {
        let p = ro.merkle_inclusion(&t, seq, 1000).unwrap();
        assert!(p.path.len() <= 10, "O(log n): {}", p.path.len());
        // Only the edited record's own leaf differs from the signed tree.
        assert_eq!(p.verify(&t, &cp, &keys), seq != 10, "seq {seq}");
    }
    drop(ro);
    // The root of bottom tile 1 (records 256..512) is on the path of 700.
    let tile = tdir(d.path(), &t).join("tiles").join("0");
    let f = fs::OpenOptions::new().write(true).open(&tile).unwrap();
    let slot = 511 * 32;
    f.write_all_at(&[0xAA; 32], slot + 32 * 510).unwrap();
    let ro = FileStore::open_read_only(d.path()).unwrap();
    let p = ro.merkle_inclusion(&t, 700, 1000).unwrap();
    assert!(!p.verify(&t, &cp, &keys));
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use hisn_audit_log::store::postgres::PgStore;
    use hisn_audit_log::{Checkpoint, Error};

    pub(super) async fn pg_root(store: &PgStore, t: &TenantId, size: u64) -> Hash {
        let leaves: Vec<Hash> = store
            .read_range(t, 0, size)
            .await
            .unwrap()
            .iter()
            .map(|r| leaf_hash(&record_digest(&r.bytes)))
            .collect();
        assert_eq!(leaves.len() as u64, size);
        root(&leaves)
    }

    /// Flip a byte of record `seq` as a superuser past the append-only trigger.
    async fn tamper(pool: &sqlx::PgPool, t: &TenantId, seq: i64) {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE hisn_audit_log SET record = set_byte(record, 40, get_byte(record, 40) # 1) \
             WHERE tenant = $1 AND seq = $2",
        )
        .bind(t.as_str())
        .bind(seq)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// Class: `PgStore::checkpoint` signed the head only, so DSAR reports
    /// over PostgreSQL walked the chain. Each checkpoint now carries the root
    /// of its records: the first computed from every record, the next ones
    /// from the edge kept beside the previous note plus the records since
    /// (an edge that does not hash to its signed root is skipped), and the
    /// report proves its entries by inclusion proofs.
    #[tokio::test]
    async fn pg_checkpoints_carry_the_root_and_reports_are_merkle_proven() {
        let Some((_db, pool, store)) = setup("audit_pg_merkle_roots").await else {
            return;
        };
        let t = tenant("acme");
        let k = key("audit", 9);
        let keys = trusted(&[&k]);
        for i in 0..300 {
            store.append(&event(&t, i)).await.unwrap();
        }
        let cp = store.checkpoint(&t, &k, now()).await.unwrap();
        assert_eq!(cp.checkpoint.root, Some(pg_root(&store, &t, 300).await));
        let edge: Vec<u8> = sqlx::query_scalar(
            "SELECT frontier FROM hisn_audit_checkpoint WHERE tenant = 'acme' AND size = 300",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(edge.len(), 32 * 300u64.count_ones() as usize);
        for i in 300..500 {
            store.append(&event(&t, i)).await.unwrap();
        }
        // A genuine note of this key at 450 kept with a junk edge (any role
        // that may INSERT can write one): it does not hash to the note's
        // root, so it is skipped and the edge at 300 is used.
        let head = store.read_range(&t, 449, 450).await.unwrap()[0].link;
        let good = Checkpoint::new(&t, 450, head, now()).with_root(pg_root(&store, &t, 450).await);
        sqlx::query(
            "INSERT INTO hisn_audit_checkpoint (tenant, size, note, frontier) VALUES ($1, 450, $2, $3)",
        )
        .bind(t.as_str())
        .bind(k.sign(good).to_note())
        .bind(vec![5u8; 32 * 450u64.count_ones() as usize])
        .execute(&pool)
        .await
        .unwrap();
        let cp = store.checkpoint(&t, &k, now()).await.unwrap();
        assert_eq!(cp.checkpoint.size, 500);
        assert_eq!(cp.checkpoint.root, Some(pg_root(&store, &t, 500).await));
        // Rows anyone may insert, sorting before every genuine edge: past
        // the bound on rows examined the root comes from the records, and is
        // still right.
        for i in 0..80 {
            sqlx::query(
                "INSERT INTO hisn_audit_checkpoint (tenant, size, note, frontier) VALUES ($1, 500, $2, $3)",
            )
            .bind(t.as_str())
            .bind(format!("junk note {i:03}"))
            .bind(vec![7u8; 32 * 500u64.count_ones() as usize])
            .execute(&pool)
            .await
            .unwrap();
        }
        let cp = store.checkpoint(&t, &k, now()).await.unwrap();
        assert_eq!(cp.checkpoint.root, Some(pg_root(&store, &t, 500).await));
        let r = store.verify(&t, Some(&keys), &[]).await.unwrap();
        assert_eq!((r.verdict, r.size), (Verdict::Intact, 500));
        let rep = store
            .subject_report(&t, "emp-4", Some(&keys))
            .await
            .unwrap();
        assert_eq!(rep.entries.len(), 100);
        assert!(rep.is_fully_proven(), "{:?}", rep.broken);
        assert!(
            rep.entries
                .iter()
                .all(|e| e.proof == EntryProof::Merkle { size: 500 }),
            "{:?}",
            rep.entries.iter().map(|e| e.proof).collect::<Vec<_>>()
        );
    }

    /// Class: a root signed over records that do not match. A record
    /// tampered by a superuser after the last checkpoint: the next
    /// checkpoint is refused. One tampered below it: the next checkpoint's
    /// root is the edge's (the records as signed), so it does not match the
    /// tampered records and verification names the record. With no earlier
    /// checkpoint the first one is refused.
    #[tokio::test]
    async fn pg_checkpoint_refuses_tampered_records() {
        let Some((_db, pool, store)) = setup("audit_pg_merkle_tamper").await else {
            return;
        };
        let (t, u) = (tenant("acme"), tenant("umbrella"));
        let k = key("audit", 9);
        let keys = trusted(&[&k]);
        for i in 0..30 {
            store.append(&event(&t, i)).await.unwrap();
            store.append(&event(&u, i)).await.unwrap();
        }
        tamper(&pool, &u, 3).await;
        assert!(matches!(
            store.checkpoint(&u, &k, now()).await,
            Err(Error::Corrupt { offset: 3, .. })
        ));
        let before = store.checkpoint(&t, &k, now()).await.unwrap();
        for i in 30..40 {
            store.append(&event(&t, i)).await.unwrap();
        }
        tamper(&pool, &t, 35).await;
        assert!(matches!(
            store.checkpoint(&t, &k, now()).await,
            Err(Error::Corrupt { offset: 35, .. })
        ));
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM hisn_audit_checkpoint")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "nothing signed over the tampered records");
        // Below the last checkpoint: signed from the edge, and flagged.
        let v = tenant("vandelay");
        for i in 0..20 {
            store.append(&event(&v, i)).await.unwrap();
        }
        store.checkpoint(&v, &k, now()).await.unwrap();
        store.append(&event(&v, 20)).await.unwrap();
        tamper(&pool, &v, 5).await;
        let cp = store.checkpoint(&v, &k, now()).await.unwrap();
        assert_ne!(cp.checkpoint.root, Some(pg_root(&store, &v, 21).await));
        let r = store.verify(&v, Some(&keys), &[]).await.unwrap();
        assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(5)));
        assert_eq!(before.checkpoint.root, Some(pg_root(&store, &t, 30).await));
    }
}

#[cfg(feature = "postgres")]
mod postgres_notes {
    use super::postgres::pg_root;
    use super::*;
    use hisn_audit_log::{Checkpoint, Error, chain_link};

    /// Class (found by review of the file store, the same gap here):
    /// `PgStore::checkpoint` extended the newest kept edge and checked only
    /// that the records since chain from its note's head. A newer note of
    /// the key without an edge (a head-only note: signed before roots, or
    /// its edge stripped) was never compared, so records edited *and
    /// relinked* after the edge's note, by someone past the append-only
    /// trigger, were signed a root. The extension now passes through every
    /// newer note of the key (head, and root when it has one).
    #[tokio::test]
    async fn pg_edge_is_never_extended_past_a_newer_note_it_contradicts() {
        let Some((_db, pool, store)) = setup("audit_pg_notes_between").await else {
            return;
        };
        let t = tenant("acme");
        let k = key("audit", 9);
        for i in 0..300 {
            store.append(&event(&t, i)).await.unwrap();
        }
        store.checkpoint(&t, &k, now()).await.unwrap();
        for i in 300..400 {
            store.append(&event(&t, i)).await.unwrap();
        }
        // A head-only note of this key at 350 (no edge kept beside it).
        let head = store.read_range(&t, 349, 350).await.unwrap()[0].link;
        sqlx::query("INSERT INTO hisn_audit_checkpoint (tenant, size, note) VALUES ($1, 350, $2)")
            .bind(t.as_str())
            .bind(k.sign(Checkpoint::new(&t, 350, head, now())).to_note())
            .execute(&pool)
            .await
            .unwrap();
        // Untouched: the next checkpoint passes through the note and is rooted.
        let cp = store.checkpoint(&t, &k, now()).await.unwrap();
        assert_eq!(cp.checkpoint.root, Some(pg_root(&store, &t, 400).await));
        for i in 400..410 {
            store.append(&event(&t, i)).await.unwrap();
        }
        // Another head-only note, at 405, newer than every kept edge (400).
        let head = store.read_range(&t, 404, 405).await.unwrap()[0].link;
        sqlx::query("INSERT INTO hisn_audit_checkpoint (tenant, size, note) VALUES ($1, 405, $2)")
            .bind(t.as_str())
            .bind(k.sign(Checkpoint::new(&t, 405, head, now())).to_note())
            .execute(&pool)
            .await
            .unwrap();
        // Records 402.. edited and relinked as the table owner: they still
        // chain from the edge's head at 400, not to the note at 405.
        let rows = store.read_range(&t, 401, 410).await.unwrap();
        let mut prev = rows[0].link;
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change")
            .execute(&mut *tx)
            .await
            .unwrap();
        for r in &rows[1..] {
            let mut rec = r.bytes.clone();
            if r.seq == 402 {
                let n = rec.len() - 1;
                rec[n] ^= 1;
            }
            let link = chain_link(t.as_str().as_bytes(), r.seq, &prev, &record_digest(&rec));
            sqlx::query(
                "UPDATE hisn_audit_log SET record = $3, link = $4 WHERE tenant = $1 AND seq = $2",
            )
            .bind(t.as_str())
            .bind(i64::try_from(r.seq).unwrap())
            .bind(&rec)
            .bind(link.0.to_vec())
            .execute(&mut *tx)
            .await
            .unwrap();
            prev = link;
        }
        sqlx::query("ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let edited = pg_root(&store, &t, 410).await;
        match store.checkpoint(&t, &k, now()).await {
            Err(Error::Corrupt { .. }) => {}
            Ok(cp) => assert_ne!(
                cp.checkpoint.root,
                Some(edited),
                "a root over edited records"
            ),
            Err(e) => panic!("{e}"),
        }
    }
}
