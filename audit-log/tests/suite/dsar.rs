//! DSAR reports, retention prunes and pseudonyms, on both embedded stores.

use hisn_audit_log::{
    AuditRead, Durability, Error, Event, FileStore, FileStoreOptions, Link, MemoryStore,
    Pseudonymizer, Timestamp, Verdict,
};

use crate::common::*;

#[test]
fn subject_report_with_links_and_checkpoint() {
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
            .all(|e| e.links_verify(&t) && e.event.subjects().contains(&"emp-0".to_owned()))
    );
    assert_eq!(
        r.entries.iter().filter(|e| !e.anchored).count(),
        1,
        "record 50 is after the checkpoint"
    );
    let json = r.to_json();
    assert_eq!(json["count"], 11);
    assert!(
        json["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with("hisn-audit-log/acme\n50\n")
    );
    assert!(
        s.subject_report(&t, "nobody", None)
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
