//! What `RecordInclusion::verify` and `Consistency::verify` check besides the
//! hash path: each binding to the tenant, the size, a trusted signature and
//! the record's own header is refused on its own, with a path that verifies.

use hisn_audit_log::merkle::root;
use hisn_audit_log::{
    AuditRead, Checkpoint, Link, MemoryStore, SignedCheckpoint, SigningKey, Timestamp,
    encode_record,
};

use crate::common::*;

const N: u64 = 12;

fn store() -> (MemoryStore, hisn_audit_log::TenantId, SigningKey) {
    let s = MemoryStore::new();
    let t = tenant("acme");
    for i in 0..N {
        s.append(&event(&t, i)).unwrap();
    }
    (s, t, key("audit", 1))
}

/// A checkpoint of `origin_tenant`'s log of `size` records with `root`,
/// signed by `k`.
fn signed(k: &SigningKey, origin_tenant: &str, size: u64, r: [u8; 32]) -> SignedCheckpoint {
    k.sign(
        Checkpoint::new(
            &tenant(origin_tenant),
            size,
            Link([1; 32]),
            Timestamp::from_unix_micros(1),
        )
        .with_root(r),
    )
}

#[test]
fn an_inclusion_proof_holds_only_for_its_tenant_size_trusted_key_and_header() {
    let (s, t, k) = store();
    let keys = trusted(&[&k]);
    let r = root(&leaves(&s, &t, 0, N));
    let p = s.merkle_inclusion(&t, 5, N).unwrap();
    assert!(p.verify(&t, &signed(&k, "acme", N, r), &keys));
    // Another tenant's checkpoint with the same size and root.
    assert!(!p.verify(&t, &signed(&k, "other", N, r), &keys));
    // A checkpoint signed by a key the verifier does not trust.
    assert!(!p.verify(&t, &signed(&key("audit", 2), "acme", N, r), &keys));
    // A checkpoint without a root.
    let mut no_root = signed(&k, "acme", N, r).checkpoint;
    no_root.root = None;
    assert!(!p.verify(&t, &k.sign(no_root), &keys));
    // The proof's size is bound to the checkpoint's: a tree of N leaves
    // whose root a checkpoint of N + 1 records claims.
    assert!(!p.verify(&t, &signed(&k, "acme", N + 1, r), &keys));
}

#[test]
fn an_inclusion_proof_is_refused_when_the_leaf_is_not_the_tenants_record_at_its_seq() {
    // A tree with a record at position 5 whose header names seq 6, or
    // another tenant: a signed root over it proves the leaf, not that the
    // record is the tenant's record 5.
    let (s, t, k) = store();
    let keys = trusted(&[&k]);
    for bytes in [
        encode_record(6, &event(&t, 5)).unwrap(),
        encode_record(5, &event(&tenant("other"), 5)).unwrap(),
    ] {
        let pristine = s.records(&t);
        let mut recs = pristine.clone();
        recs[5].bytes = bytes;
        crate::anchors::relink(&t, &mut recs, Link::GENESIS);
        s.replace_records(&t, 0, Link::GENESIS, recs);
        let cp = signed(&k, "acme", N, root(&leaves(&s, &t, 0, N)));
        let p = s.merkle_inclusion(&t, 5, N).unwrap();
        assert!(!p.verify(&t, &cp, &keys));
        // Record 4 of the same tree is the tenant's and still proves.
        assert!(s.merkle_inclusion(&t, 4, N).unwrap().verify(&t, &cp, &keys));
        s.replace_records(&t, 0, Link::GENESIS, pristine);
    }
}

#[test]
fn a_consistency_proof_holds_only_for_the_tenants_trusted_checkpoints_of_its_sizes() {
    let (s, t, k) = store();
    let keys = trusted(&[&k]);
    let (old_r, new_r) = (root(&leaves(&s, &t, 0, 5)), root(&leaves(&s, &t, 0, N)));
    let c = s.merkle_consistency(&t, 5, N).unwrap();
    let old = signed(&k, "acme", 5, old_r);
    let new = signed(&k, "acme", N, new_r);
    assert!(c.verify(&t, &old, &new, &keys));
    let stranger = key("audit", 2);
    for (o, n, why) in [
        (
            signed(&k, "other", 5, old_r),
            new.clone(),
            "old of another tenant",
        ),
        (
            old.clone(),
            signed(&k, "other", N, new_r),
            "new of another tenant",
        ),
        (
            signed(&k, "acme", 6, old_r),
            new.clone(),
            "old of another size",
        ),
        (
            old.clone(),
            signed(&k, "acme", N + 1, new_r),
            "new of another size",
        ),
        (
            signed(&stranger, "acme", 5, old_r),
            new.clone(),
            "old untrusted",
        ),
        (
            old.clone(),
            signed(&stranger, "acme", N, new_r),
            "new untrusted",
        ),
    ] {
        assert!(!c.verify(&t, &o, &n, &keys), "{why}");
    }
    let mut no_root = old.checkpoint.clone();
    no_root.root = None;
    assert!(
        !c.verify(&t, &k.sign(no_root), &new, &keys),
        "old without a root"
    );
}

#[test]
fn proofs_as_json_carry_sizes_record_and_path_in_hex() {
    let (s, t, _) = store();
    let p = s.merkle_inclusion(&t, 5, N).unwrap();
    let hexes = |path: &[[u8; 32]]| path.iter().map(hex::encode).collect::<Vec<_>>();
    assert_eq!(
        p.to_json(),
        serde_json::json!({
            "seq": 5,
            "size": N,
            "record": hex::encode(&p.record),
            "path": hexes(&p.path),
        })
    );
    let c = s.merkle_consistency(&t, 5, N).unwrap();
    assert!(!c.path.is_empty());
    assert_eq!(
        c.to_json(),
        serde_json::json!({ "old_size": 5, "new_size": N, "path": hexes(&c.path) })
    );
}
