//! DSAR reports, retention prunes and pseudonyms, on both embedded stores.

use hisn_audit_log::{
    AuditRead, Bounds, Durability, EntryProof, Error, Event, FileStore, FileStoreOptions, Link,
    MemoryStore, Pseudonymizer, SignedCheckpoint, StoredRecord, TenantId, Timestamp, Verdict,
    encode_record,
};

use crate::common::*;

#[test]
fn subject_report_proves_entries_against_the_checkpoint() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    for i in 0..50 {
        s.append(&event(&t, i)).unwrap();
    }
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    s.append(&event(&t, 50)).unwrap();
    let r = s
        .subject_report(&t, "emp-0", Some(&trusted(&[&k])))
        .unwrap();
    assert_eq!(
        r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..=50).step_by(5).collect::<Vec<_>>()
    );
    assert!(
        r.entries
            .iter()
            .all(|e| e.event.subjects().contains(&"emp-0".to_owned()))
    );
    let unproven: Vec<_> = r.entries.iter().filter(|e| !e.is_proven()).collect();
    assert_eq!(unproven.len(), 1, "record 50 is after the checkpoint");
    assert_eq!(
        unproven[0].proof,
        EntryProof::Unproven {
            reason: "after the newest verified checkpoint"
        }
    );
    let json = r.to_json();
    assert_eq!(
        (json["count"].as_u64(), json["proven"].as_u64()),
        (Some(11), Some(10))
    );
    assert_eq!(json["entries"][0]["proof"]["checkpoint_size"], 50);
    assert!(
        json["checkpoints"][0]
            .as_str()
            .unwrap()
            .starts_with("hisn-audit-log/acme\n50\n")
    );
    // Without keys nothing is claimed.
    let r = s.subject_report(&t, "emp-0", None).unwrap();
    assert!(r.entries.iter().all(|e| !e.is_proven()) && r.checkpoints.is_empty());
    assert!(
        s.subject_report(&t, "nobody", None)
            .unwrap()
            .entries
            .is_empty()
    );
}

/// A store whose subject index an attacker has written to: every lookup
/// returns every record (as rows inserted by the PostgreSQL app role would).
struct PoisonedIndex<'a>(&'a MemoryStore);

impl AuditRead for PoisonedIndex<'_> {
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
    fn subject_seqs(&self, t: &TenantId, _: &str) -> hisn_audit_log::Result<Vec<u64>> {
        Ok((0..self.0.bounds(t)?.size).collect())
    }
    fn checkpoints(&self, t: &TenantId) -> hisn_audit_log::Result<Vec<SignedCheckpoint>> {
        self.0.checkpoints(t)
    }
}

/// Root cause: the report returned whatever the subject index pointed at,
/// and the index is writable by whoever writes the store (the PostgreSQL app
/// role inserted rows and a report for `emp-1` returned other people's
/// records). Only records whose decoded content names the subject are kept.
#[test]
fn forged_index_rows_never_return_other_peoples_records() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    for i in 0..20 {
        s.append(&event(&t, i)).unwrap();
    }
    let r = PoisonedIndex(&s).subject_report(&t, "emp-1", None).unwrap();
    assert_eq!(
        r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 6, 11, 16]
    );
    assert_eq!(r.dropped_index_rows, 16);
    assert!(!r.is_fully_proven());
}

/// Root cause: `anchored` only compared the sequence number with the newest
/// checkpoint's size and `links_verify` checked the stored links against
/// themselves, so a record edited with its links recomputed showed both.
/// Each entry is now proven by walking the chain to a verified checkpoint's
/// signed head, in the report, or is marked unproven.
#[test]
fn edited_record_in_a_report_is_unproven() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..20 {
        s.append(&event(&t, i)).unwrap();
        if i == 9 {
            s.checkpoint(&t, &k, Timestamp::from_unix_micros(1))
                .unwrap();
        }
    }
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .unwrap();
    // Without Merkle roots (the checkpoint form before roots), so the entries
    // are proven by walking the chain; the rooted case is in `merkle_roots`.
    let rootless = s.checkpoints(&t).unwrap().into_iter().map(|c| {
        let mut u = c.checkpoint;
        u.root = None;
        k.sign(u)
    });
    s.replace_checkpoints(&t, rootless.collect());
    // Edit record 12 (about emp-2) and recompute every link after it.
    let mut recs = s.records(&t);
    let forged = Event::state_transition(&t, "u-5", "work_order", "wo-x", "open", "paid")
        .subject("emp-2")
        .build(&clock())
        .unwrap();
    recs[12].bytes = encode_record(12, &forged).unwrap();
    let prev = recs[11].link;
    crate::anchors::relink(&t, &mut recs[12..], prev);
    s.replace_records(&t, 0, Link::GENESIS, recs);
    let r = s.subject_report(&t, "emp-2", Some(&keys)).unwrap();
    let proofs: Vec<_> = r.entries.iter().map(|e| (e.seq, e.is_proven())).collect();
    assert_eq!(proofs, vec![(2, true), (7, true), (12, false), (17, false)]);
    assert!(!r.broken.is_empty() && !r.is_fully_proven());
}

/// Root cause: only `subjects` were indexed and matched, so the README's own
/// example (`u-1` acts on a work order) found no record for `u-1`. The actor
/// is a data subject too.
#[test]
fn actors_are_subjects_too() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    for i in 0..14 {
        s.append(&event(&t, i)).unwrap();
    }
    let r = s.subject_report(&t, "u-3", None).unwrap();
    assert_eq!(
        r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 10]
    );
    assert!(r.entries.iter().all(|e| e.event.actor() == "u-3"));
    // Keys are matched exactly as recorded: no case folding.
    assert!(
        s.subject_report(&t, "U-3", None)
            .unwrap()
            .entries
            .is_empty()
    );
}

#[test]
fn pseudonymous_subjects_are_searchable() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let p = Pseudonymizer::new(&[42; 32]).unwrap();
    let alice = p.pseudonym(&t, "alice@example.com");
    s.append(&Event::login(&t, &alice, true).build(&clock()).unwrap())
        .unwrap();
    s.append(&event(&t, 1)).unwrap();
    let r = s
        .subject_report(&t, &p.pseudonym(&t, "alice@example.com"), None)
        .unwrap();
    assert_eq!(r.entries.len(), 1);
    assert!(!r.to_json().to_string().contains("alice@example.com"));
}

#[test]
fn memory_prune_only_exported_prefix_and_recorded() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    for i in 0..30 {
        s.append(&event(&t, i)).unwrap();
    }
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    let export = s.export(&t, 9).unwrap();
    assert_eq!(export.records.len(), 10);
    let prune_seq = s.prune(&export.receipt, "ops", &clock()).unwrap();
    assert_eq!(prune_seq, 30);
    // Until a checkpoint covers the prune record, the boundary is unexplained
    // to a verifier with keys (anyone could have appended that record).
    let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(10)));
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .unwrap();
    let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::Intact, 10, 31)
    );
    // The receipt is spent: the prefix it names is gone.
    assert!(matches!(
        s.prune(&export.receipt, "ops", &clock()),
        Err(Error::PruneRefused { .. })
    ));
    // Out-of-range export refused.
    assert!(matches!(s.export(&t, 5), Err(Error::PruneRefused { .. })));
    // Records deleted without a prune record: the boundary is unexplained.
    let recs = s.records(&t);
    let boundary = recs[9].link;
    s.replace_records(&t, 20, boundary, recs[10..].to_vec());
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(20)));
    s.replace_records(&t, 20, Link([1; 32]), recs[10..].to_vec());
    assert_eq!(s.verify(&t, None, &[]).unwrap().verdict, Verdict::Tampered);
}

#[test]
fn file_prune_whole_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let opts = || {
        FileStoreOptions::default()
            .durability(Durability::OsBuffered)
            .max_segment_bytes(4096)
    };
    let s = FileStore::open(dir.path(), opts()).unwrap();
    for i in 0..100 {
        s.append(event(&t, i)).unwrap();
    }
    let ends = s.segment_ends(&t).unwrap();
    assert!(ends.len() >= 2);
    assert!(
        matches!(s.export(&t, ends[0] + 1), Err(Error::PruneRefused { .. })),
        "not a segment end"
    );
    let export = s.export(&t, ends[1]).unwrap();
    let seq = s.prune(&export.receipt, "ops", &clock()).unwrap();
    assert_eq!(seq, 100);
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::UnanchoredTail, ends[1] + 1, 101)
    );
    assert!(
        s.subject_report(&t, "emp-0", None)
            .unwrap()
            .entries
            .iter()
            .all(|e| e.seq > ends[1])
    );
    s.close().unwrap();
    let s = FileStore::open(dir.path(), opts()).unwrap();
    assert_eq!(s.append(event(&t, 1)).unwrap(), 101);
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!(
        (r.verdict, r.verified_from),
        (Verdict::UnanchoredTail, ends[1] + 1)
    );
}

#[test]
fn inclusion_proofs_reach_the_checkpoint() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..20 {
        s.append(&event(&t, i)).unwrap();
    }
    let cp = s
        .checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    for seq in [0, 7, 19] {
        let p = s.inclusion_proof(&t, seq, &cp).unwrap();
        assert_eq!(p.path.len() as u64, 19 - seq);
        assert!(p.verify(&t, &cp, &keys), "seq {seq}");
        let mut bad = p.clone();
        bad.record[12] ^= 1;
        assert!(!bad.verify(&t, &cp, &keys));
        let mut bad = p.clone();
        bad.seq += 1;
        assert!(!bad.verify(&t, &cp, &keys));
        assert!(!p.verify(&tenant("other"), &cp, &keys));
        assert!(!p.verify(&t, &cp, &trusted(&[&key("audit", 2)])));
    }
    assert!(matches!(
        s.inclusion_proof(&t, 20, &cp),
        Err(Error::NotFound)
    ));
}

/// `hisn audit report` streams the report with `write_json` instead of
/// building `to_json`: the two must be the same document, for awkward text
/// (quotes, backslashes, non-ASCII, line separators), every diff shape, both
/// IP families, proven and unproven entries, broken ranges and an empty report.
#[test]
fn streamed_report_json_is_the_same_document_as_to_json() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let awkward = "emp \"q\" \\ \u{2028} é 😀 </script>";
    for i in 0..12u64 {
        let mut b = Event::builder(&t, if i == 3 { awkward } else { "u-1" }, "x.y")
            .subject(awkward)
            .entity("thing", &format!("id-{i}"))
            .at(Timestamp::from_unix_micros(
                1_764_000_000_000_000 + i as i64,
            ));
        b = match i % 4 {
            0 => b.diff(
                &serde_json::json!({ "a": [1, 2.5, -3e-7, null, true], "z\"\\": { "n": "\u{1}" } }),
            ),
            1 => b.diff(&serde_json::json!("just a string")),
            2 => b
                .source_ip("2001:db8::1".parse().unwrap())
                .request_id("r-\"1\""),
            _ => b.source_ip("203.0.113.7".parse().unwrap()),
        };
        if i == 5 {
            b = b.transition("open", "clo\"sed");
        }
        s.append(&b.build(&clock()).unwrap()).unwrap();
        if i == 7 {
            s.checkpoint(&t, &k, Timestamp::from_unix_micros(1))
                .unwrap();
        }
    }
    let same = |r: &hisn_audit_log::SubjectReport| {
        let mut out = Vec::new();
        r.write_json(&mut out).unwrap();
        let streamed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(streamed, r.to_json());
    };
    let r = s
        .subject_report(&t, awkward, Some(&trusted(&[&k])))
        .unwrap();
    assert_eq!(
        (
            r.entries.len(),
            r.entries.iter().filter(|e| e.is_proven()).count()
        ),
        (12, 8)
    );
    same(&r);
    same(&s.subject_report(&t, awkward, None).unwrap());
    same(&s.subject_report(&t, "nobody", None).unwrap());
    // Broken ranges and checkpoints: a checkpoint longer than the log.
    let s2 = MemoryStore::new();
    for i in 0..3 {
        s2.append(&event(&t, i)).unwrap();
    }
    let cp = s.checkpoints(&t).unwrap();
    let r = ReportOver(&s2, cp)
        .subject_report(&t, "emp-0", Some(&trusted(&[&k])))
        .unwrap();
    assert!(!r.broken.is_empty());
    same(&r);
}

/// A store that hands out the given checkpoints instead of its own.
struct ReportOver<'a>(&'a MemoryStore, Vec<SignedCheckpoint>);

impl AuditRead for ReportOver<'_> {
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
        self.0.subject_seqs(t, subject)
    }
    fn checkpoint_tenants(&self) -> hisn_audit_log::Result<Vec<TenantId>> {
        self.0.checkpoint_tenants()
    }
    fn checkpoints(&self, _: &TenantId) -> hisn_audit_log::Result<Vec<SignedCheckpoint>> {
        Ok(self.1.clone())
    }
}

/// An index that leaves out the given sequence numbers (as one rewritten by
/// someone with write access to the store, checksums recomputed).
struct OmittingIndex<'a>(&'a MemoryStore, Vec<u64>);

impl AuditRead for OmittingIndex<'_> {
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
        // The real rows, or for a key the store does not index, a forged row
        // for every record (as `PoisonedIndex`); then the omissions.
        let mut v = self.0.subject_seqs(t, subject)?;
        if v.is_empty() {
            v = (0..self.0.bounds(t)?.size).collect();
        }
        v.retain(|s| !self.1.contains(s));
        Ok(v)
    }
    fn checkpoints(&self, t: &TenantId) -> hisn_audit_log::Result<Vec<SignedCheckpoint>> {
        self.0.checkpoints(t)
    }
}

/// The index is not trusted to be complete either: proving an entry reads
/// the chain between the checkpoints around it, and a record there that
/// names the subject but was left out of the index is put back in the
/// report (proven) and counted in `unindexed` (the report is then not fully
/// proven: the index was changed). A byte match that does not name the
/// subject is not taken.
#[test]
fn records_left_out_of_the_index_are_found_while_proving() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..30 {
        s.append(&event(&t, i)).unwrap();
        if i == 14 {
            s.checkpoint(&t, &k, Timestamp::from_unix_micros(1))
                .unwrap();
        }
    }
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .unwrap();
    let full = s.subject_report(&t, "emp-0", Some(&keys)).unwrap();
    assert!(full.is_fully_proven() && full.unindexed == 0);
    let r = OmittingIndex(&s, vec![5, 20])
        .subject_report(&t, "emp-0", Some(&keys))
        .unwrap();
    assert_eq!(
        r.entries
            .iter()
            .map(|e| (e.seq, e.is_proven()))
            .collect::<Vec<_>>(),
        full.entries
            .iter()
            .map(|e| (e.seq, true))
            .collect::<Vec<_>>()
    );
    assert_eq!(r.unindexed, 2);
    assert!(!r.is_fully_proven());
    assert_eq!(r.to_json()["unindexed"], 2);
    // Without keys nothing is read beyond the index's rows: not found.
    let r = OmittingIndex(&s, vec![5, 20])
        .subject_report(&t, "emp-0", None)
        .unwrap();
    assert_eq!((r.entries.len(), r.unindexed), (4, 0));
    // "closed" is in every record's bytes (a state), never a subject: with
    // one (forged) index row, the interval read for it holds 14 more byte
    // matches and none of them is taken.
    let r = OmittingIndex(&s, (1..30).collect())
        .subject_report(&t, "closed", Some(&keys))
        .unwrap();
    assert!(r.entries.is_empty());
    assert_eq!((r.unindexed, r.dropped_index_rows), (0, 1));
}
