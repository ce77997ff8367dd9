//! RFC 6962 Merkle roots and proofs against vectors from an independent
//! implementation (`tests/data/gen_rfc6962.py`, Python hashlib).

use hisn_audit_log::Link;
use hisn_audit_log::merkle::{
    Frontier, Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};

fn hash(v: &serde_json::Value) -> Hash {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hashes(v: &serde_json::Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hash).collect()
}

fn vectors() -> (serde_json::Value, Vec<Hash>) {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../data/rfc6962_pass.json")).unwrap();
    let leaves = hashes(&v["leaves"])
        .into_iter()
        .map(|d| leaf_hash(&Link(d)))
        .collect();
    (v, leaves)
}

#[test]
fn roots_match_the_independent_implementation() {
    let (v, leaves) = vectors();
    for case in v["roots"].as_array().unwrap() {
        let n = case["size"].as_u64().unwrap() as usize;
        assert_eq!(root(&leaves[..n]), hash(&case["root"]), "size {n}");
        let mut f = Frontier::new();
        leaves[..n].iter().for_each(|l| f.push(*l));
        assert_eq!(f.root(), hash(&case["root"]), "frontier size {n}");
    }
}

#[test]
fn inclusion_proofs_match_and_verify() {
    let (v, leaves) = vectors();
    for case in v["inclusion"].as_array().unwrap() {
        let (m, n) = (
            case["index"].as_u64().unwrap() as usize,
            case["size"].as_u64().unwrap() as usize,
        );
        let want = hashes(&case["path"]);
        assert_eq!(
            inclusion_proof(&leaves[..n], m).unwrap(),
            want,
            "{m} in {n}"
        );
        let r = root(&leaves[..n]);
        assert!(verify_inclusion(&leaves[m], m as u64, n as u64, &want, &r));
        if n > 1 {
            let other = ((m + 1) % n) as u64;
            assert!(!verify_inclusion(&leaves[m], other, n as u64, &want, &r));
        }
        let wrong_leaf = leaves[(m + 1) % leaves.len()];
        assert!(!verify_inclusion(
            &wrong_leaf,
            m as u64,
            n as u64,
            &want,
            &r
        ));
    }
}

#[test]
fn consistency_proofs_match_and_verify() {
    let (v, leaves) = vectors();
    for case in v["consistency"].as_array().unwrap() {
        let (m, n) = (
            case["old"].as_u64().unwrap() as usize,
            case["new"].as_u64().unwrap() as usize,
        );
        let want = hashes(&case["path"]);
        assert_eq!(
            consistency_proof(&leaves[..n], m).unwrap(),
            want,
            "{m} -> {n}"
        );
        let (old, new) = (root(&leaves[..m]), root(&leaves[..n]));
        assert!(
            verify_consistency(m as u64, n as u64, &old, &new, &want),
            "{m} -> {n}"
        );
        // A different old tree (another first leaf) is not consistent.
        let mut forked = leaves[..m].to_vec();
        forked[0] = leaves[69];
        assert!(!verify_consistency(
            m as u64,
            n as u64,
            &root(&forked),
            &new,
            &want
        ));
    }
}

use hisn_audit_log::{AuditRead, MemoryStore, Timestamp, Verdict};

use crate::common::*;

/// Checkpoints carry the RFC 6962 root; a record is proven in `O(log n)`
/// hashes and two checkpoints are proven consistent, and a checkpoint whose
/// root disagrees with its records fails verification.
#[test]
fn merkle_checkpoints_inclusion_and_consistency_on_a_store() {
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..37 {
        s.append(&event(&t, i)).unwrap();
    }
    let old = s
        .merkle_checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    for i in 37..100 {
        s.append(&event(&t, i)).unwrap();
    }
    let new = s
        .merkle_checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .unwrap();
    let note = new.to_note();
    assert!(note.contains("\nhead "), "{note}");
    assert_eq!(hisn_audit_log::SignedCheckpoint::parse(&note).unwrap(), new);
    let r = s
        .verify(&t, Some(&keys), &[old.clone(), new.clone()])
        .unwrap();
    assert_eq!(r.verdict, Verdict::Intact);
    for seq in [0, 36, 64, 99] {
        let p = s.merkle_inclusion(&t, seq, 100).unwrap();
        assert!(p.path.len() <= 7, "O(log n): {}", p.path.len());
        assert!(p.verify(&t, &new, &keys), "seq {seq}");
        assert!(!p.verify(&t, &old, &keys), "wrong checkpoint size");
        let mut bad = p.clone();
        bad.record[40] ^= 1;
        assert!(!bad.verify(&t, &new, &keys));
    }
    let c = s.merkle_consistency(&t, 37, 100).unwrap();
    assert!(c.verify(&t, &old, &new, &keys));
    assert!(!c.verify(&t, &new, &old, &keys));
    // A signed checkpoint whose root is not the records' root.
    let mut wrong = new.checkpoint.clone();
    wrong.root = Some([7; 32]);
    let wrong = k.sign(wrong);
    let r = s
        .verify(&t, Some(&keys), std::slice::from_ref(&wrong))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert!(!c.verify(&t, &old, &wrong, &keys));
    // Same size, same head, other root: the signer contradicted itself.
    let r = s.verify(&t, Some(&keys), &[new, wrong]).unwrap();
    assert_eq!(r.verdict, Verdict::Fork);
}

/// Witness cosignatures (C2SP `tlog-cosignature`) survive the note text, and
/// a verifier with an N-of-M policy accepts a checkpoint only with enough
/// valid cosignatures from distinct witnesses.
#[test]
fn witness_cosignatures_and_an_n_of_m_policy() {
    use hisn_audit_log::{CosigningKey, SignedCheckpoint, Verifier, WitnessKey, WitnessPolicy};
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    for i in 0..9 {
        s.append(&event(&t, i)).unwrap();
    }
    let mut cp = s
        .merkle_checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    let w: Vec<CosigningKey> = (0..3)
        .map(|i| CosigningKey::from_bytes(&format!("witness-{i}"), &[40 + i; 32]).unwrap())
        .collect();
    let policy = |n| {
        WitnessPolicy::new(
            w.iter()
                .map(|k| WitnessKey::from_text(&k.witness_key().to_text()).unwrap())
                .collect(),
            n,
        )
        .unwrap()
    };
    w[0].cosign(&mut cp, 1_764_000_000);
    w[2].cosign(&mut cp, 1_764_000_001);
    w[2].cosign(&mut cp, 1_764_000_002);
    let cp = SignedCheckpoint::parse(&cp.to_note()).unwrap();
    assert_eq!(cp.cosignatures.len(), 2, "one line per witness");
    assert!(
        cp.verify(&keys).is_ok(),
        "cosignatures leave the log signature alone"
    );
    assert_eq!(policy(2).count(&cp), 2);
    assert!(policy(2).accepts(&cp) && !policy(3).accepts(&cp));
    let records = s.records(&t);
    let verify = |p: &WitnessPolicy, cp: &SignedCheckpoint| {
        Verifier::new(&t, &[], Some(&keys))
            .anchors(std::slice::from_ref(cp))
            .witnesses(p)
            .verify_log(hisn_audit_log::Start::Genesis, records.iter().map(Ok))
            .unwrap()
            .verdict
    };
    assert_eq!(verify(&policy(2), &cp), Verdict::Intact);
    assert_eq!(verify(&policy(3), &cp), Verdict::BadCheckpoint);
    // A cosignature over another body does not count.
    let mut moved = cp.clone();
    moved.checkpoint.time = Timestamp::from_unix_micros(2);
    let moved = SignedCheckpoint {
        cosignatures: moved.cosignatures.clone(),
        ..k.sign(moved.checkpoint)
    };
    assert_eq!(policy(1).count(&moved), 0);
    assert!(WitnessPolicy::new(Vec::new(), 1).is_err());
}

/// Writes fuzz seeds for `audit_log_checkpoint` (a Merkle note with a witness
/// cosignature, and a verifier state) when `HISN_WRITE_FUZZ_SEEDS` names a
/// directory; always checks that both parse back.
#[test]
fn fuzz_seeds_for_cosigned_notes_and_state_parse() {
    use hisn_audit_log::{CosigningKey, SignedCheckpoint, VerifierState};
    let s = MemoryStore::new();
    let t = tenant("acme");
    let k = key("audit", 1);
    s.append(&event(&t, 0)).unwrap();
    let mut cp = s
        .merkle_checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .unwrap();
    CosigningKey::from_bytes("witness", &[9; 32])
        .unwrap()
        .cosign(&mut cp, 1_764_000_000);
    let note = cp.to_note();
    assert_eq!(SignedCheckpoint::parse(&note).unwrap(), cp);
    let mut state = VerifierState::new();
    let r = s.verify(&t, Some(&trusted(&[&k])), &[cp]).unwrap();
    assert!(state.update(&r));
    let json = state.to_json().to_string();
    assert_eq!(VerifierState::from_json(&json).unwrap(), state);
    if let Ok(dir) = std::env::var("HISN_WRITE_FUZZ_SEEDS") {
        std::fs::write(format!("{dir}/cosigned_note"), &note).unwrap();
        std::fs::write(format!("{dir}/verifier_state"), &json).unwrap();
    }
}
