//! Checking many inclusion proofs in one tree without rehashing what they
//! share.
//!
//! A DSAR report checks one audit path per entry against the same signed
//! root, and the paths of neighbouring leaves share every node above their
//! lowest common ancestor: for 5,000 entries in a tree of two million, half
//! of the 105,000 node hashes a proof-by-proof check computes are the same
//! nodes again. [`InclusionVerifier`] remembers the last proof that verified
//! (the node each step computed) and stops hashing a proof as soon as it
//! reaches a node of that proof, with the same hash, from where the rest of
//! both proofs is the same: what is left is then exactly the computation that
//! already led to the root.

use super::{Hash, node_hash};

/// Checks inclusion proofs in the tree of `size` leaves with root `root`,
/// each with the verdict [`verify_inclusion`](super::verify_inclusion) gives
/// it, sharing work between consecutive proofs (see the module docs). Fed the
/// leaves in ascending order, each proof hashes only up to where its path
/// meets the previous one's.
#[derive(Debug, Clone)]
pub(crate) struct InclusionVerifier {
    size: u64,
    root: Hash,
    /// The last proof that verified: its path, and per step the node that
    /// step computed, `(shift, index)` (with `size` fixed, the whole state of
    /// RFC 9162's loop at that point) and its hash.
    path: Vec<Hash>,
    ids: Vec<(u32, u64)>,
    nodes: Vec<Hash>,
}

impl InclusionVerifier {
    /// A verifier for the tree of `size` leaves with root `root`.
    pub(crate) fn new(size: u64, root: Hash) -> Self {
        Self {
            size,
            root,
            path: Vec::new(),
            ids: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Whether `proof` shows leaf hash `leaf` at `index` in the tree: the
    /// same answer as `verify_inclusion(leaf, index, size, proof, root)`.
    pub(crate) fn verify(&mut self, leaf: &Hash, index: u64, proof: &[Hash]) -> bool {
        if index >= self.size {
            return false;
        }
        // RFC 9162 §2.1.3.2, as `verify_inclusion`, noting each node computed.
        let (mut fnode, mut snode) = (index, self.size - 1);
        let mut shift = 0u32;
        let mut r = *leaf;
        let mut ids = Vec::with_capacity(proof.len());
        let mut nodes = Vec::with_capacity(proof.len());
        // Where the last proof's steps reach the current shift.
        let mut at = 0usize;
        for (k, p) in proof.iter().enumerate() {
            if snode == 0 {
                return false;
            }
            if fnode & 1 == 1 || fnode == snode {
                r = node_hash(p, &r);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                        shift += 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            fnode >>= 1;
            snode >>= 1;
            shift += 1;
            ids.push((shift, fnode));
            nodes.push(r);
            while self.ids.get(at).is_some_and(|&(s, _)| s < shift) {
                at += 1;
            }
            // The last verified proof computed this very node (same place in
            // the same tree: the loop's state from here on is the same), to
            // the same hash, and the rest of both paths is the same: the rest
            // of this check is the one that already reached the root.
            if self.ids.get(at) == Some(&(shift, fnode))
                && self.nodes.get(at) == Some(&r)
                && self.path.get(at + 1..) == proof.get(k + 1..)
            {
                ids.extend_from_slice(&self.ids[at + 1..]);
                nodes.extend_from_slice(&self.nodes[at + 1..]);
                self.remember(proof, ids, nodes);
                return true;
            }
        }
        if snode == 0 && r == self.root {
            self.remember(proof, ids, nodes);
            true
        } else {
            false
        }
    }

    fn remember(&mut self, proof: &[Hash], ids: Vec<(u32, u64)>, nodes: Vec<Hash>) {
        self.path.clear();
        self.path.extend_from_slice(proof);
        self.ids = ids;
        self.nodes = nodes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::tests::leaves;
    use crate::merkle::{inclusion_proof, root, verify_inclusion};

    /// Every proof of every tree up to 70 leaves, in order, with changed
    /// leaves, indices and path nodes between them: the verifier answers
    /// as `verify_inclusion` does, proof by proof.
    #[test]
    fn same_verdicts_as_one_by_one() {
        let l = leaves(70);
        for n in 1..=l.len() {
            let r = root(&l[..n]);
            let mut v = InclusionVerifier::new(n as u64, r);
            let mut checked = 0;
            for m in 0..n {
                let p = inclusion_proof(&l[..n], m).unwrap();
                let (n64, m64) = (n as u64, m as u64);
                let mut cases = vec![(l[m], m64, p.clone())];
                if n > 1 {
                    cases.push((l[m], (m64 + 1) % n64, p.clone()));
                    cases.push((l[(m + 1) % n], m64, p.clone()));
                }
                for i in 0..p.len() {
                    let mut bad = p.clone();
                    bad[i][i % 32] ^= 1;
                    cases.push((l[m], m64, bad));
                }
                cases.push((l[m], n64, p.clone()));
                if let Some((_, short)) = p.split_last() {
                    cases.push((l[m], m64, short.to_vec()));
                }
                let mut long = p.clone();
                long.push(r);
                cases.push((l[m], m64, long));
                // The good proof last too, so the next leaf follows it.
                cases.push((l[m], m64, p.clone()));
                for (leaf, index, path) in cases {
                    let want = verify_inclusion(&leaf, index, n64, &path, &r);
                    assert_eq!(
                        v.verify(&leaf, index, &path),
                        want,
                        "size {n} leaf {m} as {index}"
                    );
                    checked += usize::from(want);
                }
            }
            assert_eq!(checked, 2 * n, "size {n}");
        }
    }

    /// A path that matches the last proof's upper nodes but not its hash at
    /// the meeting point (a changed leaf below a shared node) fails.
    #[test]
    fn a_shared_upper_path_does_not_carry_a_changed_leaf() {
        let l = leaves(1000);
        let r = root(&l);
        let mut v = InclusionVerifier::new(1000, r);
        let p0 = inclusion_proof(&l, 400).unwrap();
        assert!(v.verify(&l[400], 400, &p0));
        let p1 = inclusion_proof(&l, 401).unwrap();
        assert_eq!(p0[1..], p1[1..]);
        assert!(!v.verify(&l[400], 401, &p1));
        let mut other = l[401];
        other[0] ^= 1;
        assert!(!v.verify(&other, 401, &p1));
        assert!(v.verify(&l[401], 401, &p1));
        // Out of order: still the one-by-one verdicts.
        for m in [999, 0, 500, 3, 998] {
            let p = inclusion_proof(&l, m).unwrap();
            assert!(v.verify(&l[m], m as u64, &p), "{m}");
            assert!(!v.verify(&l[m ^ 1], m as u64, &p), "{m}");
        }
    }
}
