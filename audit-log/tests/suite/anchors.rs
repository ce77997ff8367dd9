//! Anchors the attacker cannot remove: external checkpoints, the verifier's
//! state, missing tenants, signed prunes, a consistent snapshot of a live
//! store, untrusted notes and every broken range named.

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hisn_audit_log::{
    Anchors, AuditRead, AutoCheckpoint, BrokenRange, CheckpointPolicy, Durability, Event,
    FileStore, FileStoreOptions, Link, MemoryStore, PRUNE_ACTION, SignedCheckpoint, StoredRecord,
    TenantId, Timestamp, Verdict, VerifierState, chain_link, encode_record, record_digest,
    require_anchor, verify_store,
};

use crate::common::*;

fn opts() -> FileStoreOptions {
    FileStoreOptions::default().durability(Durability::OsBuffered)
}

/// Recompute the stored links of `recs` from `prev`, as someone rewriting the
/// store without the key can.
pub(crate) fn relink(t: &TenantId, recs: &mut [StoredRecord], mut prev: Link) {
    for r in recs {
        r.link = chain_link(
            t.as_str().as_bytes(),
            r.seq,
            &prev,
            &record_digest(&r.bytes),
        );
        prev = r.link;
    }
}

/// `n` records of `t` with a checkpoint of all of them, the checkpoint returned
/// (as the operator would keep it elsewhere).
fn memory_with(
    n: u64,
) -> (
    MemoryStore,
    TenantId,
    hisn_audit_log::SigningKey,
    SignedCheckpoint,
) {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    for i in 0..n {
        s.append(&event(&t, i)).unwrap();
    }
    let cp = s
        .checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    (s, t, k, cp)
}

/// Root cause: verification used only the store's own checkpoints, so after a
/// rewrite without the key, deleting them left a self-consistent chain that
/// passed as "unanchored_tail", which callers and the CLI printed as intact.
/// A checkpoint held elsewhere catches the rewrite; with keys and no anchor at
/// all, `require_anchor` fails the chain instead of passing it.
#[test]
fn rewrite_without_key_and_deleted_checkpoints_is_not_intact() {
    let (s, t, k, held) = memory_with(10);
    let keys = trusted(&[&k]);
    let mut recs = s.records(&t);
    recs[4].bytes = encode_record(4, &event(&t, 400)).unwrap();
    relink(&t, &mut recs, Link::GENESIS);
    s.replace_records(&t, 0, Link::GENESIS, recs);
    s.replace_checkpoints(&t, Vec::new());
    let mut r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!(
        r.verdict,
        Verdict::UnanchoredTail,
        "the chain alone is consistent"
    );
    require_anchor(&mut r);
    assert_eq!((r.verdict, r.seq), (Verdict::Unanchored, Some(0)));
    assert!(!r.is_ok());
    let mut anchors = Anchors::new();
    anchors.add_text(&held.to_note()).unwrap();
    let r = s.verify(&t, Some(&keys), anchors.for_tenant(&t)).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(0)));
    assert_eq!(
        r.breaks,
        vec![BrokenRange {
            first: 0,
            last: 9,
            verdict: Verdict::Tampered
        }]
    );
}

/// Root cause: nothing remembered what a verifier had already seen, so rolling
/// the whole store back (records and checkpoints together) read as intact.
/// `VerifierState` keeps the newest verified checkpoint per tenant.
#[test]
fn rollback_below_the_verifier_state_is_truncated_or_tampered() {
    let (s, t, k, _) = memory_with(6);
    let keys = trusted(&[&k]);
    let old_records = s.records(&t);
    let old_cps = s.checkpoints(&t).unwrap();
    for i in 6..12 {
        s.append(&event(&t, i)).unwrap();
    }
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .unwrap();
    let mut state = VerifierState::new();
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert!(state.update(&r));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    state.save(&path).unwrap();
    let state = VerifierState::load(&path).unwrap();
    assert_eq!(state.checkpoint(&t).unwrap().checkpoint.size, 12);
    let mut anchors = Anchors::new();
    anchors.add_state(&state);
    // Rolled back to 6 records with the checkpoints of that time.
    s.replace_records(&t, 0, Link::GENESIS, old_records.clone());
    s.replace_checkpoints(&t, old_cps.clone());
    assert_eq!(
        s.verify(&t, Some(&keys), &[]).unwrap().verdict,
        Verdict::Intact
    );
    let r = s.verify(&t, Some(&keys), anchors.for_tenant(&t)).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Truncated, Some(6)));
    // Rolled back and re-grown to the same length: the heads disagree.
    let mut regrown = old_records;
    for i in 6..12 {
        regrown.push(StoredRecord {
            seq: i,
            bytes: encode_record(i, &event(&t, 600 + i)).unwrap(),
            link: Link::GENESIS,
        });
    }
    relink(&t, &mut regrown, Link::GENESIS);
    s.replace_records(&t, 0, Link::GENESIS, regrown);
    let r = s.verify(&t, Some(&keys), anchors.for_tenant(&t)).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(6)));
    // A failing report never moves the state.
    let mut st = state.clone();
    assert!(!st.update(&r));
    assert_eq!(st, state);
    // A damaged state file is an error, never an empty state.
    std::fs::write(
        &path,
        "{\"version\":1,\"tenants\":{\"acme\":{\"note\":\"x\"}}}",
    )
    .unwrap();
    assert!(VerifierState::load(&path).is_err());
}

/// Root cause: the store-wide verify iterated only the tenants that still had
/// segments, so deleting every segment of one tenant (its checkpoint kept, or
/// held elsewhere) passed. A tenant known from any checkpoint is verified as
/// an empty log: truncated.
#[test]
fn vanished_tenant_with_a_checkpoint_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (t, o) = (tenant("acme"), tenant("other"));
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    let store = FileStore::open(dir.path(), opts()).unwrap();
    for i in 0..5 {
        store.append(event(&t, i)).unwrap();
        store.append(event(&o, i)).unwrap();
    }
    let held = store
        .checkpoint_now(None, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    store.close().unwrap();
    let tdir = dir.path().join(format!("t-{}", hex::encode("acme")));
    for e in std::fs::read_dir(&tdir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let mut anchors = Anchors::new();
    for cp in held {
        anchors.add(cp).unwrap();
    }
    let reports = verify_store(&store, Some(&keys), &anchors, None).unwrap();
    let verdicts: Vec<_> = reports
        .iter()
        .map(|r| (r.tenant.as_str().to_owned(), r.verdict, r.seq))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("acme".to_owned(), Verdict::Truncated, Some(0)),
            ("other".to_owned(), Verdict::Intact, None)
        ]
    );
    // Asked for by name, the store's own checkpoint alone is enough.
    let r = store.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.seq, r.size), (Verdict::Truncated, Some(0), 0));
}

/// Deletes the oldest segment of `acme` and appends a self-made prune record
/// naming the boundary, as someone with write access but no key could.
fn forge_prune(dir: &Path, t: &TenantId) -> u64 {
    let store = FileStore::open(dir, opts().max_segment_bytes(2048)).unwrap();
    let ends = store.segment_ends(t).unwrap();
    let through = ends[0];
    let boundary = match store.read_range(t, through, through + 1).unwrap().pop() {
        Some(Ok(r)) => r.link,
        other => panic!("{other:?}"),
    };
    store.close().unwrap();
    let tdir = dir.join(format!("t-{}", hex::encode(t.as_str())));
    std::fs::remove_file(tdir.join(format!("{:020}.seg", 0))).unwrap();
    let store = FileStore::open(dir, opts().max_segment_bytes(2048)).unwrap();
    let forged = Event::builder(t, "ops", PRUNE_ACTION)
        .entity("audit_log", t.as_str())
        .diff(&serde_json::json!({
            "from": 0,
            "through": through,
            "count": through + 1,
            "boundary_link": boundary.to_hex(),
        }))
        .danger_build_reserved(&clock())
        .unwrap();
    store.append(forged).unwrap();
    store.close().unwrap();
    through
}

/// Root cause: a prune boundary was accepted whenever a later record named it,
/// and anyone can append such a record. A verifier with keys now accepts a
/// prune only when a verified checkpoint was signed after the prune record.
#[test]
fn self_made_prune_record_fails_even_with_external_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    let store = FileStore::open(dir.path(), opts().max_segment_bytes(2048)).unwrap();
    for i in 0..60 {
        store.append(event(&t, i)).unwrap();
    }
    let held = store
        .checkpoint_now(Some(&t), &k, Timestamp::from_unix_micros(1))
        .unwrap();
    store.close().unwrap();
    let through = forge_prune(dir.path(), &t);
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let r = store.verify(&t, Some(&keys), &held).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(through + 1)));
    // A legitimate prune is accepted once a checkpoint covers its record.
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), opts().max_segment_bytes(2048)).unwrap();
    for i in 0..60 {
        store.append(event(&t, i)).unwrap();
    }
    let ends = store.segment_ends(&t).unwrap();
    let export = store.export(&t, ends[0]).unwrap();
    store.prune(&export.receipt, "ops", &clock()).unwrap();
    let r = store.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Tampered,
        "not yet covered by a signature"
    );
    store
        .checkpoint_now(Some(&t), &k, Timestamp::from_unix_micros(2))
        .unwrap();
    let r = store.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.verified_from), (Verdict::Intact, ends[0] + 1));
}

/// Root cause: `verify` read the records first and the checkpoints after, so a
/// checkpoint signed in between claimed more records than had been read: a
/// false `truncated` (18 of 40 runs in the review). Checkpoints are now read
/// first.
#[test]
fn live_store_verify_never_reports_a_false_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    let policy = CheckpointPolicy {
        every_records: NonZeroU64::new(3).unwrap(),
        every: Duration::from_secs(3600),
    };
    let store = Arc::new(
        FileStore::open(
            dir.path(),
            opts().auto_checkpoint(AutoCheckpoint::new(key("audit", 1), policy)),
        )
        .unwrap(),
    );
    store.append(event(&t, 0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, t) = (store.clone(), stop.clone(), t.clone());
        std::thread::spawn(move || {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                store.append(event(&t, i)).unwrap();
                i += 1;
            }
        })
    };
    for run in 0..40 {
        let r = store.verify(&t, Some(&keys), &[]).unwrap();
        assert!(r.is_ok(), "run {run}: {r:?}");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

/// Root cause: store notes were trusted input, so one note signed by an
/// unknown key (insertable by the PostgreSQL app role) turned an edited record
/// into `unknown_signing_key`, hiding the tamper verdict, and a torn or
/// malformed line failed every verification. Both are now skipped.
#[test]
fn untrusted_notes_are_skipped_and_never_hide_tampering() {
    let (s, t, k, good) = memory_with(8);
    let keys = trusted(&[&k]);
    let stranger = key("audit", 9).sign(good.checkpoint.clone());
    let mut forged = good.clone();
    forged.checkpoint.size = 3;
    s.replace_checkpoints(&t, vec![stranger, good.clone(), forged]);
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.skipped_checkpoints), (Verdict::Intact, 2));
    let mut recs = s.records(&t);
    recs[5].bytes[30] ^= 1;
    s.replace_records(&t, 0, Link::GENESIS, recs);
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(5)));
    // File store: a malformed line in checkpoints.jsonl is skipped.
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), opts()).unwrap();
    for i in 0..4 {
        store.append(event(&t, i)).unwrap();
    }
    store
        .checkpoint_now(None, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    store.close().unwrap();
    let log = dir
        .path()
        .join(format!("t-{}", hex::encode("acme")))
        .join("checkpoints.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"note\":\"hisn-audit-log/acme\\n99\\n\"}\n");
    std::fs::write(&log, text).unwrap();
    let r = FileStore::open_read_only(dir.path())
        .unwrap()
        .verify(&t, Some(&keys), &[])
        .unwrap();
    assert_eq!(r.verdict, Verdict::Intact);
}

/// Root cause: the verifier returned at the first break, so a later edit was
/// hidden behind an earlier one, and a stored link changed alone named the
/// whole span before the next checkpoint. It now resynchronises and lists
/// every broken range, each as narrow as the evidence allows.
#[test]
fn every_broken_range_is_named() {
    let (s, t, k, _) = memory_with(20);
    let keys = trusted(&[&k]);
    let pristine = s.records(&t);
    let range = |first, last| BrokenRange {
        first,
        last,
        verdict: Verdict::Tampered,
    };
    let mut recs = pristine.clone();
    recs[2].bytes[30] ^= 1;
    recs[9].link.0[0] ^= 1;
    recs[19].link.0[3] ^= 1;
    s.replace_records(&t, 0, Link::GENESIS, recs);
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(2)));
    assert_eq!(r.breaks, vec![range(2, 2), range(9, 9), range(19, 19)]);
    // A missing record in the middle and an edit after it.
    let mut recs = pristine.clone();
    recs[14].bytes[31] ^= 1;
    recs.remove(6);
    s.replace_records(&t, 0, Link::GENESIS, recs);
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!(r.breaks, vec![range(6, 7), range(14, 14)]);
}

mod ranges {
    use hisn_audit_log::{AuditRead, BrokenRange, Link, MemoryStore, Timestamp, Verdict};
    use proptest::prelude::*;

    use crate::common::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The class behind "name the record that was changed": for any set of
        /// records whose bytes or stored link were changed (not recomputed),
        /// with or without checkpoints between them, the broken ranges are
        /// exactly the changed records (neighbours merged), so no edit hides
        /// another and none widens to the checkpoint interval.
        #[test]
        fn broken_ranges_are_exactly_the_changed_records(
            edits in proptest::collection::btree_map(0usize..30, (any::<bool>(), 0usize..64, 0u8..8), 1..5),
            every in 0u64..8,
        ) {
            let s = MemoryStore::new();
            let t = tenant("acme");
            let k = key("audit", 1);
            for i in 0..30u64 {
                s.append(&event(&t, i)).unwrap();
                if every > 0 && (i + 1) % every == 0 {
                    s.checkpoint(&t, &k, Timestamp::from_unix_micros(1)).unwrap();
                }
            }
            let mut recs = s.records(&t);
            for (&i, &(link, pos, bit)) in &edits {
                if link {
                    recs[i].link.0[pos % 32] ^= 1 << bit;
                } else {
                    let n = recs[i].bytes.len();
                    recs[i].bytes[pos % n] ^= 1 << bit;
                }
            }
            s.replace_records(&t, 0, Link::GENESIS, recs);
            let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
            let mut want: Vec<BrokenRange> = Vec::new();
            for &i in edits.keys() {
                let i = i as u64;
                match want.last_mut() {
                    Some(b) if b.last + 1 == i => b.last = i,
                    _ => want.push(BrokenRange { first: i, last: i, verdict: Verdict::Tampered }),
                }
            }
            prop_assert_eq!(r.verdict, Verdict::Tampered);
            prop_assert_eq!(r.breaks, want);
        }
    }
}
