//! Tamper tests against the memory store (the verifier is shared by every store).

use hisn_audit_log::{
    AuditRead, Checkpoint, Link, MemoryStore, SignedCheckpoint, StoredRecord, TenantId, Timestamp,
    Verdict, encode_record,
};

use crate::common::*;

const N: u64 = 12;

/// A store with `N` records for `acme` (checkpoints at 6 and N) and 5 for `other`.
fn setup() -> (MemoryStore, TenantId, hisn_audit_log::SigningKey) {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    for i in 0..N {
        s.append(&event(&t, i)).unwrap();
        if i == 5 {
            s.checkpoint(&t, &k, Timestamp::from_unix_micros(1))
                .unwrap();
        }
    }
    s.checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .unwrap();
    let o = tenant("other");
    for i in 0..5 {
        s.append(&event(&o, i)).unwrap();
    }
    (s, t, k)
}

fn verdict_after(
    s: &MemoryStore,
    t: &TenantId,
    k: &hisn_audit_log::SigningKey,
    edit: impl FnOnce(&mut Vec<StoredRecord>),
) -> (Verdict, Option<u64>) {
    let pristine = s.records(t);
    let mut recs = pristine.clone();
    edit(&mut recs);
    s.replace_records(t, 0, Link::GENESIS, recs);
    let r = s.verify(t, Some(&trusted(&[k])), &[]).unwrap();
    s.replace_records(t, 0, Link::GENESIS, pristine);
    (r.verdict, r.seq)
}

fn relink(t: &TenantId, recs: &mut [StoredRecord]) {
    crate::anchors::relink(t, recs, Link::GENESIS);
}

#[test]
fn untouched_log_is_intact() {
    let (s, t, k) = setup();
    let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!(
        (r.verdict, r.seq, r.size, r.anchored_size),
        (Verdict::Intact, None, N, N)
    );
    let r = s.verify(&t, None, &[]).unwrap();
    assert_eq!(
        (r.verdict, r.seq),
        (Verdict::UnanchoredTail, Some(0)),
        "without keys nothing is anchored"
    );
}

#[test]
fn every_bit_flip_names_its_record() {
    let (s, t, k) = setup();
    let pristine = s.records(&t);
    for i in [0usize, 5, 6, 11] {
        for byte in 0..pristine[i].bytes.len() {
            for bit in [0u8, 7] {
                let (v, seq) = verdict_after(&s, &t, &k, |r| r[i].bytes[byte] ^= 1 << bit);
                assert_eq!(
                    (v, seq),
                    (Verdict::Tampered, Some(i as u64)),
                    "record {i} byte {byte} bit {bit}"
                );
            }
        }
        for byte in 0..32 {
            let (v, seq) = verdict_after(&s, &t, &k, |r| r[i].link.0[byte] ^= 0x80);
            assert_eq!((v, seq), (Verdict::Tampered, Some(i as u64)), "link of {i}");
        }
    }
}

#[test]
fn deleted_duplicated_reordered_and_moved_records() {
    let (s, t, k) = setup();
    let other = s.records(&tenant("other"));
    let last = (N - 1) as usize;
    let cases: Vec<(&str, Box<dyn FnOnce(&mut Vec<StoredRecord>)>, Verdict, u64)> = vec![
        (
            "delete first",
            Box::new(|r| {
                r.remove(0);
            }),
            Verdict::Tampered,
            0,
        ),
        (
            "delete middle",
            Box::new(|r| {
                r.remove(4);
            }),
            Verdict::Tampered,
            4,
        ),
        (
            "delete last before checkpoint",
            Box::new(move |r| {
                r.remove(last);
            }),
            Verdict::Truncated,
            N - 1,
        ),
        (
            "duplicate",
            Box::new(|r| {
                let d = r[3].clone();
                r.insert(4, d);
            }),
            Verdict::Tampered,
            4,
        ),
        ("reorder", Box::new(|r| r.swap(7, 8)), Verdict::Tampered, 7),
        (
            "moved from another tenant",
            Box::new(move |r| {
                let mut o = other[2].clone();
                o.seq = 2;
                r[2] = o;
            }),
            Verdict::Tampered,
            2,
        ),
    ];
    for (name, edit, verdict, seq) in cases {
        assert_eq!(
            verdict_after(&s, &t, &k, edit),
            (verdict, Some(seq)),
            "{name}"
        );
    }
}

#[test]
fn recomputed_chain_is_caught_by_checkpoints() {
    let (s, t, k) = setup();
    let (v, seq) = verdict_after(&s, &t, &k, |r| {
        let mut e = event(&t, 100);
        e = hisn_audit_log::decode_record(&encode_record(8, &e).unwrap())
            .unwrap()
            .1;
        r[8].bytes = encode_record(8, &e).unwrap();
        relink(&t, r);
    });
    // Checkpoint at 6 still matches; the one at 12 does not.
    assert_eq!((v, seq), (Verdict::Tampered, Some(6)));
    let (v, seq) = verdict_after(&s, &t, &k, |r| {
        r[2].bytes = encode_record(2, &event(&t, 200)).unwrap();
        relink(&t, r);
    });
    assert_eq!((v, seq), (Verdict::Tampered, Some(0)));
}

#[test]
fn truncation_before_and_after_the_newest_checkpoint() {
    let (s, t, k) = setup();
    // Before: cut to 9 records while a checkpoint says 12.
    assert_eq!(
        verdict_after(&s, &t, &k, |r| r.truncate(9)),
        (Verdict::Truncated, Some(9))
    );
    // Truncated then appended to: re-grown past the checkpoint, heads disagree.
    let (v, seq) = verdict_after(&s, &t, &k, |r| {
        r.truncate(9);
        for i in 9..14 {
            r.push(StoredRecord {
                seq: i,
                bytes: encode_record(i, &event(&t, 1000 + i)).unwrap(),
                link: Link::GENESIS,
            });
        }
        relink(&t, r);
    });
    assert_eq!((v, seq), (Verdict::Tampered, Some(6)));
    // After: records past the newest checkpoint are the documented window.
    let (s, t, k) = setup();
    for i in N..N + 4 {
        s.append(&event(&t, i)).unwrap();
    }
    let r = s.verify(&t, Some(&trusted(&[&k])), &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::UnanchoredTail, Some(N)));
    assert_eq!(
        verdict_after(&s, &t, &k, |r| r.truncate((N + 2) as usize)),
        (Verdict::UnanchoredTail, Some(N))
    );
}

/// Root cause (issue 12): the store's own checkpoint notes were treated as
/// trusted input, so a note anyone with write access could add (forged,
/// another tenant's, signed by an unknown key) made verification fail for good
/// or hid a tamper verdict. Store notes that do not verify are now skipped and
/// counted; the same notes passed by the caller as anchors are verdicts.
#[test]
fn forged_replayed_cross_tenant_unknown_key_and_forked_checkpoints() {
    let (s, t, k) = setup();
    let keys = trusted(&[&k]);
    let good = s.checkpoints(&t).unwrap();
    let verify_with = |cps: Vec<SignedCheckpoint>| {
        s.replace_checkpoints(&t, cps);
        let r = s.verify(&t, Some(&keys), &[]).unwrap();
        (r.verdict, r.seq, r.skipped_checkpoints)
    };
    let as_anchor = |cp: SignedCheckpoint| {
        s.replace_checkpoints(&t, vec![good[0].clone()]);
        let r = s.verify(&t, Some(&keys), &[cp]).unwrap();
        (r.verdict, r.seq)
    };
    // Forged: altered size under the original signature.
    let mut forged = good[1].clone();
    forged.checkpoint.size = N + 5;
    assert_eq!(
        verify_with(vec![good[0].clone(), forged.clone()]),
        (Verdict::UnanchoredTail, Some(6), 1),
        "a forged store note is skipped; the trusted one at 6 still anchors"
    );
    assert_eq!(as_anchor(forged), (Verdict::BadCheckpoint, Some(N + 4)));
    // Cross-tenant: a valid checkpoint of `other` replayed into `acme`.
    let o = tenant("other");
    let theirs = k.sign(Checkpoint::new(
        &o,
        5,
        s.bounds(&o).unwrap().head,
        Timestamp::from_unix_micros(3),
    ));
    assert_eq!(
        verify_with(vec![theirs.clone()]),
        (Verdict::UnanchoredTail, Some(0), 1)
    );
    assert_eq!(as_anchor(theirs), (Verdict::BadCheckpoint, Some(4)));
    // Replayed: an old valid checkpoint again is harmless.
    assert_eq!(
        verify_with(vec![good[0].clone(), good[1].clone(), good[0].clone()]).0,
        Verdict::Intact
    );
    // Unknown key.
    let stranger = key("audit", 9);
    let cp = stranger.sign(good[1].checkpoint.clone());
    assert_eq!(
        verify_with(vec![cp.clone(), good[0].clone()]),
        (Verdict::UnanchoredTail, Some(6), 1)
    );
    assert_eq!(as_anchor(cp), (Verdict::UnknownSigningKey, Some(N - 1)));
    // Fork: two valid checkpoints of one size with different heads.
    let fork = k.sign(Checkpoint::new(
        &t,
        N,
        Link([9; 32]),
        Timestamp::from_unix_micros(4),
    ));
    assert_eq!(
        verify_with(vec![good[1].clone(), fork]),
        (Verdict::Fork, Some(N - 1), 0)
    );
    // A log shorter than a checkpoint it is shown.
    s.replace_checkpoints(&t, good);
    let future = k.sign(Checkpoint::new(
        &t,
        N + 100,
        Link([1; 32]),
        Timestamp::from_unix_micros(5),
    ));
    let r = s.verify(&t, Some(&keys), &[future]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Truncated, Some(N)));
}

#[test]
fn key_rotation_never_reads_as_tampering() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let (old, new) = (key("audit", 1), key("audit", 2));
    for i in 0..10 {
        s.append(&event(&t, i)).unwrap();
    }
    s.checkpoint(&t, &old, Timestamp::from_unix_micros(1))
        .unwrap();
    for i in 10..20 {
        s.append(&event(&t, i)).unwrap();
    }
    s.checkpoint(&t, &new, Timestamp::from_unix_micros(2))
        .unwrap();
    assert_eq!(
        s.verify(&t, Some(&trusted(&[&old, &new])), &[])
            .unwrap()
            .verdict,
        Verdict::Intact
    );
    // The old key's note is skipped (counted); the new key's covers everything.
    let r = s.verify(&t, Some(&trusted(&[&new])), &[]).unwrap();
    assert_eq!(
        (r.verdict, r.seq, r.skipped_checkpoints),
        (Verdict::Intact, None, 1)
    );
    let r = s.verify(&t, Some(&trusted(&[&old])), &[]).unwrap();
    assert_eq!(
        (r.verdict, r.seq, r.skipped_checkpoints),
        (Verdict::UnanchoredTail, Some(10), 1)
    );
}

#[test]
fn verify_from_a_checkpoint_range_and_one_record() {
    let (s, t, k) = setup();
    let keys = trusted(&[&k]);
    let cps = s.checkpoints(&t).unwrap();
    for i in N..N + 3 {
        s.append(&event(&t, i)).unwrap();
    }
    let r = s.verify_from(&t, &cps[1], &keys).unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::UnanchoredTail, N, N + 3)
    );
    let r = s.verify_range(&t, 2, 9, Some(&keys)).unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size, r.anchored_size),
        (Verdict::UnanchoredTail, 2, 9, 6)
    );
    let r = s.verify_record(&t, 3, &keys).unwrap();
    assert_eq!(
        (r.verdict, r.size),
        (Verdict::Intact, 6),
        "path from record 3 to the checkpoint at 6"
    );
    // Tampering inside the path is found.
    let mut recs = s.records(&t);
    recs[4].bytes[20] ^= 1;
    s.replace_records(&t, 0, Link::GENESIS, recs);
    let r = s.verify_record(&t, 3, &keys).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(4)));
    // A log cut below the checkpoint it is verified from.
    let mut recs = s.records(&t);
    recs.truncate(8);
    s.replace_records(&t, 0, Link::GENESIS, recs);
    assert_eq!(
        s.verify_from(&t, &cps[1], &keys).unwrap().verdict,
        Verdict::Truncated
    );
}
