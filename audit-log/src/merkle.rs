//! RFC 6962 Merkle trees over a tenant's records: roots for checkpoints,
//! inclusion proofs and consistency proofs of `O(log n)` hashes.
//!
//! The leaves are the records' digests ([`crate::record_digest`]);
//! `leaf hash = SHA-256(0x00 || digest)`, `node = SHA-256(0x01 || left || right)`,
//! the empty tree's root is `SHA-256("")` (RFC 6962 §2.1, RFC 9162 §2.1). A
//! checkpoint carrying the root ([`Checkpoint::root`](crate::Checkpoint::root))
//! is the C2SP `tlog-checkpoint` form that transparency-log witnesses cosign.
//!
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2; the test vectors in
//! `tests/data/rfc6962_pass.json` come from an independent Python
//! implementation of the RFC's recursive definitions (`gen_rfc6962.py`).

mod batch;
pub mod tiles;

pub(crate) use batch::InclusionVerifier;

use sha2::{Digest as _, Sha256};

use crate::chain::{Link, record_digest};
use crate::checkpoint::{SignedCheckpoint, TrustedKeys, origin_for};
use crate::encoding::peek_header;
use crate::event::TenantId;

/// A Merkle tree hash (leaf, node or root).
pub type Hash = [u8; 32];

/// The leaf hash of one record digest.
pub fn leaf_hash(record_digest: &Link) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(record_digest.0);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two smaller than `n` (`n >= 2`): half the next power of
/// two at or above `n`, which is below `n` whether or not `n` is one.
fn split(n: usize) -> usize {
    n.next_power_of_two() / 2
}

/// The root over `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof (audit path) of leaf `index` in the tree over
/// `leaves`; `None` when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(leaves, index, &mut out);
    Some(out)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(&leaves[..k], m, out);
        out.push(root(&leaves[k..]));
    } else {
        path(&leaves[k..], m - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// The consistency proof between the tree of the first `old_size` leaves and
/// the tree over all `leaves`; `None` unless `0 < old_size <= leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    subproof(leaves, old_size, true, &mut out);
    Some(out)
}

fn subproof(leaves: &[Hash], m: usize, whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(&leaves[..k], m, whole, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(&leaves[k..], m - k, false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Whether `proof` shows leaf hash `leaf` at `index` in the tree of `size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // Unless LSB(fn) is set, shift both until it is (RFC 9162: "or
            // fn is 0"; here fn is odd or equal to sn, which is not 0, so fn
            // is not 0 and the shift is below 64). One shift, not a loop: no
            // condition can make verification spin.
            let z = fnode.trailing_zeros();
            fnode >>= z;
            snode >>= z;
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Whether `proof` shows that the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    // When the old tree is a complete subtree, its root is the proof's
    // implicit first node.
    let (first, path) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((f, rest)) => (*f, rest),
            None => return false,
        }
    };
    // Shift both while LSB(fn) is set (RFC 9162 §2.1.4.2). fn = old_size - 1
    // is at most u64::MAX - 2 (old_size < new_size), so the shift is below 64.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    let z = fnode.trailing_ones();
    fnode >>= z;
    snode >>= z;
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // As in `verify_inclusion`: fn is odd or equal to sn (not 0).
            let z = fnode.trailing_zeros();
            fnode >>= z;
            snode >>= z;
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

/// The right edge of a growing tree (a compact range): the roots of its
/// perfect subtrees, largest first. Appending is `O(1)` amortised and the
/// root `O(log n)`, so a verifier walking the chain can check the Merkle root
/// of every checkpoint it passes without holding the leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (height, hash) of each perfect subtree, left to right.
    nodes: Vec<(u32, Hash)>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut cur = (0u32, leaf);
        while let Some(&(h, left)) = self.nodes.last() {
            if h != cur.0 {
                break;
            }
            self.nodes.pop();
            cur = (h + 1, node_hash(&left, &cur.1));
        }
        self.nodes.push(cur);
        self.size += 1;
    }

    /// The frontier of a tree of `size` leaves from the roots of its perfect
    /// subtrees, largest first (one per set bit of `size`, as
    /// [`roots`](Self::roots) gives them); `None` when the count is wrong.
    /// Nothing else can be checked here: compare [`root`](Self::root) with a
    /// signed root before extending a frontier read from storage.
    pub fn from_roots(size: u64, roots: &[Hash]) -> Option<Self> {
        if roots.len() != size.count_ones() as usize {
            return None;
        }
        let heights = (0..u64::BITS).rev().filter(|h| (size >> h) & 1 == 1);
        Some(Self {
            size,
            nodes: heights.zip(roots.iter().copied()).collect(),
        })
    }

    /// The right edge of `tree`: one node per set bit of its size, read from
    /// the tiles where they are stored. `None` when a leaf it needs is not
    /// held. Like every node read from a tile, it is untrusted until its
    /// root matches a signed one.
    ///
    /// # Errors
    /// I/O errors of the tree's source.
    pub fn from_tree<S: tiles::NodeSource + ?Sized>(
        tree: &mut tiles::Tree<'_, S>,
    ) -> crate::error::Result<Option<Self>> {
        let size = tree.size();
        let mut roots = Vec::new();
        let mut start = 0u64;
        for h in (0..u64::BITS).rev().filter(|h| (size >> h) & 1 == 1) {
            let Some(x) = tree.node(h, start >> h)? else {
                return Ok(None);
            };
            roots.push(x);
            start += 1 << h;
        }
        Ok(Self::from_roots(size, &roots))
    }

    /// The roots of the perfect subtrees, largest first.
    pub fn roots(&self) -> impl Iterator<Item = &Hash> + '_ {
        self.nodes.iter().map(|(_, h)| h)
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return empty_root();
        };
        for (_, left) in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Proof that one record is leaf `seq` of the Merkle tree a signed
/// checkpoint of `size` records commits to: `O(log size)` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordInclusion {
    /// Sequence number of the record (its leaf index).
    pub seq: u64,
    /// Tree size (the checkpoint's size).
    pub size: u64,
    /// The encoded record.
    pub record: Vec<u8>,
    /// The audit path.
    pub path: Vec<Hash>,
}

impl RecordInclusion {
    /// Whether the record is `tenant`'s record `seq` and the path leads to the
    /// Merkle root of `checkpoint`, which must be `tenant`'s, of `size`
    /// records, carry a root and verify under `keys`.
    pub fn verify(
        &self,
        tenant: &TenantId,
        checkpoint: &SignedCheckpoint,
        keys: &TrustedKeys,
    ) -> bool {
        let c = &checkpoint.checkpoint;
        let Some(root) = c.root else {
            return false;
        };
        c.origin == origin_for(tenant)
            && c.size == self.size
            && checkpoint.verify(keys).is_ok()
            && peek_header(&self.record)
                .is_ok_and(|h| h.tenant == tenant.as_str().as_bytes() && h.seq == self.seq)
            && verify_inclusion(
                &leaf_hash(&record_digest(&self.record)),
                self.seq,
                self.size,
                &self.path,
                &root,
            )
    }

    /// The proof as JSON (hex).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "size": self.size,
            "record": hex::encode(&self.record),
            "path": self.path.iter().map(hex::encode).collect::<Vec<_>>(),
        })
    }
}

/// Proof that the log a checkpoint of `old_size` records commits to is a
/// prefix of the log a checkpoint of `new_size` commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Consistency {
    /// The older tree size.
    pub old_size: u64,
    /// The newer tree size.
    pub new_size: u64,
    /// The consistency path.
    pub path: Vec<Hash>,
}

impl Consistency {
    /// Whether `old` and `new` are `tenant`'s checkpoints of the proof's sizes,
    /// carry roots, verify under `keys` and the path links their roots.
    pub fn verify(
        &self,
        tenant: &TenantId,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
        keys: &TrustedKeys,
    ) -> bool {
        let (o, n) = (&old.checkpoint, &new.checkpoint);
        let origin = origin_for(tenant);
        let (Some(old_root), Some(new_root)) = (o.root, n.root) else {
            return false;
        };
        o.origin == origin
            && n.origin == origin
            && o.size == self.old_size
            && n.size == self.new_size
            && old.verify(keys).is_ok()
            && new.verify(keys).is_ok()
            && verify_consistency(
                self.old_size,
                self.new_size,
                &old_root,
                &new_root,
                &self.path,
            )
    }

    /// The proof as JSON (hex).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "old_size": self.old_size,
            "new_size": self.new_size,
            "path": self.path.iter().map(hex::encode).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` distinct leaf hashes (shared with `merkle::batch`'s tests).
    pub(crate) fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&Link(Sha256::digest(format!("x{i}")).into())))
            .collect()
    }

    #[test]
    fn split_is_the_largest_power_of_two_below_n() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 20, 1 << 19),
        ] {
            assert_eq!(split(n), k, "n = {n}");
        }
    }

    #[test]
    fn frontier_matches_the_recursive_root() {
        let l = leaves(70);
        let mut f = Frontier::new();
        assert_eq!(f.root(), root(&[]));
        for (i, x) in l.iter().enumerate() {
            f.push(*x);
            assert_eq!(f.root(), root(&l[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn frontier_round_trips_through_its_roots() {
        let l = leaves(70);
        let mut f = Frontier::new();
        for x in &l {
            f.push(*x);
            let roots: Vec<Hash> = f.roots().copied().collect();
            let back = Frontier::from_roots(f.size(), &roots).unwrap();
            assert_eq!(back, f);
        }
        assert!(Frontier::from_roots(3, &[[0; 32]]).is_none());
        // From stored tiles (complete ones) and leaves (the right edge).
        let big = leaves(600);
        let src = tiles::MemoryTiles::new(&big);
        for n in [0usize, 1, 5, 255, 256, 300, 512, 600] {
            let mut tree = tiles::Tree::new(&src, n as u64);
            let f = Frontier::from_tree(&mut tree).unwrap().unwrap();
            assert_eq!((f.size(), f.root()), (n as u64, root(&big[..n])));
        }
        let mut grown = Frontier::from_roots(64, &[root(&l[..64])]).unwrap();
        for x in &l[64..] {
            grown.push(*x);
        }
        assert_eq!(grown.root(), root(&l));
    }

    #[test]
    fn proofs_round_trip_and_reject_changes() {
        let l = leaves(23);
        for n in 1..=l.len() {
            let r = root(&l[..n]);
            for m in 0..n {
                let p = inclusion_proof(&l[..n], m).unwrap();
                assert!(verify_inclusion(&l[m], m as u64, n as u64, &p, &r));
                if n > 1 {
                    let other = (m + 1) % n;
                    assert!(!verify_inclusion(&l[m], other as u64, n as u64, &p, &r));
                }
                let mut bad = p.clone();
                if let Some(x) = bad.first_mut() {
                    x[0] ^= 1;
                    assert!(!verify_inclusion(&l[m], m as u64, n as u64, &bad, &r));
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&l[..n], m).unwrap();
                let old = root(&l[..m]);
                assert!(
                    verify_consistency(m as u64, n as u64, &old, &r, &p),
                    "{m}->{n}"
                );
                if m < n {
                    assert!(
                        !verify_consistency(m as u64, n as u64, &r, &r, &p),
                        "{m}->{n}"
                    );
                }
            }
        }
    }
}
