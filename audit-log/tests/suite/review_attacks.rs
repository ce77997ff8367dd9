//! Outside-review attacks on the verification side (issue 12): new inputs of
//! each class, kept as regression tests.

use hisn_audit_log::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
};
use hisn_audit_log::{
    AuditRead, CosigningKey, Link, MemoryStore, SignedCheckpoint, Start, Timestamp, Verdict,
    Verifier, WitnessPolicy,
};

use crate::common::*;

/// Witness policy: one witness key listed twice under two names (or one key
/// whose holder cosigns under two names) counts once.
///
/// Root cause: `WitnessPolicy::new` removed duplicates by whole `WitnessKey`
/// (name, key id, public key) and `count` counted policy entries with a
/// matching cosignature. The key id is derived from the name, so the same
/// Ed25519 key under two names was two "distinct" witnesses: a single
/// witness (or whoever stole one witness key) met a 2-of-2 policy alone by
/// cosigning twice under two names. Witnesses are now distinct by public key.
#[test]
fn witness_policy_same_key_twice_counts_once() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..5 {
        s.append(&event(&t, i)).unwrap();
    }
    let mut cp = s
        .merkle_checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    let seed = [77u8; 32];
    let a = CosigningKey::from_bytes("witness-a", &seed).unwrap();
    let b = CosigningKey::from_bytes("witness-b", &seed).unwrap();
    let honest = CosigningKey::from_bytes("witness-c", &[78u8; 32]).unwrap();
    a.cosign(&mut cp, 1_764_000_000);
    b.cosign(&mut cp, 1_764_000_000);
    let cp = SignedCheckpoint::parse(&cp.to_note()).unwrap();
    assert_eq!(cp.cosignatures.len(), 2, "two lines, one key");
    // Listing the same key twice is a policy of one witness: 2-of-it is refused.
    assert!(WitnessPolicy::new(vec![a.witness_key(), b.witness_key()], 2).is_err());
    // With a real second witness, the duplicate key still counts once.
    let policy = WitnessPolicy::new(
        vec![a.witness_key(), b.witness_key(), honest.witness_key()],
        2,
    )
    .unwrap();
    assert_eq!(policy.count(&cp), 1);
    assert!(!policy.accepts(&cp));
    let records = s.records(&t);
    let verdict = Verifier::new(&t, &[], Some(&keys))
        .anchors(std::slice::from_ref(&cp))
        .witnesses(&policy)
        .verify_log(Start::Genesis, records.iter().map(Ok))
        .unwrap()
        .verdict;
    assert_eq!(verdict, Verdict::BadCheckpoint);
    // The same line repeated verbatim in the note also counts once.
    let note = cp.to_note();
    let line = note.lines().last().unwrap().to_owned();
    let doubled = SignedCheckpoint::parse(&format!("{note}{line}\n"));
    if let Ok(d) = doubled {
        assert!(policy.count(&d) <= 1);
    }
    // And the honest second witness makes it pass.
    let mut cp2 = cp.clone();
    honest.cosign(&mut cp2, 1_764_000_001);
    assert_eq!(policy.count(&cp2), 2);
    assert!(policy.accepts(&cp2));
}

/// Merkle edge sizes: no proof verifies for an index at or past the size, a
/// wrong leaf, size 0, old > new, or old == new with a
/// different root; the honest ones do at every small size and power of two.
#[test]
fn merkle_proofs_refuse_wrong_leaves_and_sizes() {
    let leaves: Vec<_> = (0u8..=33).map(|i| leaf_hash(&Link([i; 32]))).collect();
    for n in 1..=leaves.len() {
        let tree = &leaves[..n];
        let r = root(tree);
        let n64 = n as u64;
        for i in 0..n {
            let p = inclusion_proof(tree, i).unwrap();
            assert!(verify_inclusion(&tree[i], i as u64, n64, &p, &r));
            let other = &tree[(i + 1) % n];
            if n > 1 {
                assert!(
                    !verify_inclusion(other, i as u64, n64, &p, &r),
                    "wrong leaf n={n} i={i}"
                );
            }
            assert!(
                !verify_inclusion(&tree[i], n64, n64, &p, &r),
                "index == size"
            );
            // (A proof may also verify at another size with the same root: an
            // RFC 6962 root does not commit to its size. The signed checkpoint
            // binds the two, which `RecordInclusion::verify` checks.)
            assert!(!verify_inclusion(&tree[i], i as u64, 0, &p, &r), "size 0");
        }
        assert!(inclusion_proof(tree, n).is_none());
        for m in 1..=n {
            let p = consistency_proof(tree, m).unwrap();
            let old = root(&tree[..m]);
            assert!(
                verify_consistency(m as u64, n64, &old, &r, &p),
                "n={n} m={m}"
            );
            assert!(!verify_consistency(n64, m as u64, &r, &old, &p) || m == n);
            assert!(!verify_consistency(0, n64, &old, &r, &p));
            if m < n {
                let wrong_old = root(&leaves[1..=m]);
                assert!(
                    !verify_consistency(m as u64, n64, &wrong_old, &r, &p),
                    "n={n} m={m}"
                );
            }
        }
        if n > 1 {
            let other = root(&tree[..n - 1]);
            assert!(
                !verify_consistency(n64, n64, &r, &other, &[]),
                "old == new, roots differ"
            );
        }
    }
    assert!(!verify_inclusion(&leaves[0], 0, 0, &[], &root(&[])));
    assert!(consistency_proof(&leaves[..4], 0).is_none());
    assert!(consistency_proof(&leaves[..4], 5).is_none());
}

/// Prunes: a prune record appended through the ordinary append path (no key
/// needed: the application, the PostgreSQL app role or a raw file append),
/// covered by the next routine checkpoint, then the records it names deleted.
///
/// Root cause: a pruned start was accepted when the prune record naming the
/// boundary was covered by any verified checkpoint, but a routine checkpoint
/// signs whatever heads the log has, so it "covered" a prune record the
/// attacker wrote while the records it names were still there. A store never
/// holds such a state (the file store hides pruned records from readers once
/// the prune record is in the chain; PostgreSQL deletes them in the same
/// transaction), so the verifier now flags a prune record that names records
/// the log still holds as `tampered` at that record, and verifiers and the
/// signers that verify first (`hisn audit checkpoint`) see it before the
/// deletion. (Residual, in the report: a checkpoint signed by a signer that
/// does not verify first, such as the writer's automatic checkpoints, still
/// covers it; see the notes.)
#[test]
fn forged_prune_record_naming_held_records_is_tampered() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..10 {
        s.append(&event(&t, i)).unwrap();
    }
    let records = s.records(&t);
    let boundary = records[4].link;
    let forged = hisn_audit_log::Event::builder(&t, "u-9", hisn_audit_log::PRUNE_ACTION)
        .entity("audit_log", "acme")
        .diff(&serde_json::json!({"from": 0, "through": 4, "count": 5, "boundary_link": boundary.to_hex()}))
        .danger_build_reserved(&clock())
        .unwrap();
    assert_eq!(s.append(&forged).unwrap(), 10);
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(10)), "{r:?}");
    assert_eq!(r.breaks.len(), 1);
    // Without keys too: the structure alone shows it.
    assert_eq!(s.verify(&t, None, &[]).unwrap().verdict, Verdict::Tampered);
    // Later records are still checked and the forged one is named.
    s.append(&event(&t, 11)).unwrap();
    let routine = s
        .checkpoint(&t, &k, Timestamp::from_unix_micros(5))
        .unwrap();
    let r = s.verify(&t, Some(&keys), &[]).unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(10)));
    // Once the records are dropped the pruned log reads as a prune under a
    // signature: the residual window (a signer that does not verify first).
    let records = s.records(&t);
    let r = Verifier::new(&t, std::slice::from_ref(&routine), Some(&keys))
        .verify_log(
            Start::Pruned {
                seq: 5,
                prev: boundary,
            },
            records[5..].iter().map(Ok),
        )
        .unwrap();
    assert_eq!(r.anchored_size, 12);
    // A prune record that names records beyond the cut (a second forged
    // prune after a real one) is flagged on the pruned log as well.
    let second = hisn_audit_log::Event::builder(&t, "u-9", hisn_audit_log::PRUNE_ACTION)
        .diff(&serde_json::json!({"through": 7, "boundary_link": records[7].link.to_hex()}))
        .danger_build_reserved(&clock())
        .unwrap();
    s.append(&second).unwrap();
    let records = s.records(&t);
    let r = Verifier::new(&t, std::slice::from_ref(&routine), Some(&keys))
        .verify_log(
            Start::Pruned {
                seq: 5,
                prev: boundary,
            },
            records[5..].iter().map(Ok),
        )
        .unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(12)), "{r:?}");
}
