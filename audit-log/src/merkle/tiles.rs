//! Persisted Merkle tree hashes ("tiles") and inclusion paths computed from
//! them instead of from the leaves.
//!
//! The layout follows C2SP `tlog-tiles`: the tree is cut into tiles of
//! height [`TILE_HEIGHT`] (8), so a tile at tile level `L` covers 256 nodes
//! of tree height `8L` and the 255 nodes above them. Where `tlog-tiles`
//! stores only a tile's 256 bottom hashes, a stored tile here ([`slot`])
//! holds all 511 nodes (bottom row first, then each row above, the tile's
//! root last), so one read of a tile gives every node of an audit path
//! inside it without rehashing: a proof reads one tile per tile level. The
//! cost is twice the space of bare tiles (64 bytes per record).
//!
//! Only complete tiles are stored. The right edge of a tree (the last,
//! partial tile of each level, and any tile a store has not written yet) is
//! computed from the tiles below it and, at the bottom, from the records'
//! leaf hashes ([`NodeSource::leaves`]).
//!
//! **Tiles are never trusted.** A path is only as good as the signed root it
//! leads to: whoever checks a proof recomputes the root from the record's own
//! leaf hash and the path, and compares it with a verified checkpoint's root.
//! A changed tile therefore makes a proof fail, never pass.

use std::collections::HashMap;

use super::{Hash, node_hash};
use crate::error::Result;

/// Tree levels per tile.
pub const TILE_HEIGHT: u32 = 8;
/// Bottom hashes per tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// Hashes in a stored tile (all nodes of a 256-leaf perfect tree).
pub const SLOT_HASHES: usize = 2 * (1 << TILE_HEIGHT) - 1;
/// Bytes of a stored tile.
pub const SLOT_BYTES: usize = SLOT_HASHES * 32;

/// Index in a stored tile of row `r` (height within the tile), node `i`.
fn slot_index(r: u32, i: u64) -> usize {
    // Rows hold 256, 128, ..., 1 hashes: row r starts at 512 - 2^(9-r).
    let start = (2usize << TILE_HEIGHT) - (2usize << (TILE_HEIGHT - r));
    start + usize::try_from(i).unwrap_or(usize::MAX)
}

/// All 511 nodes of a tile over its 256 bottom hashes, bottom row first, the
/// tile's root last. `None` unless there are exactly 256 bottom hashes.
pub fn slot(bottom: &[Hash]) -> Option<Vec<Hash>> {
    if bottom.len() as u64 != TILE_WIDTH {
        return None;
    }
    let mut out = Vec::with_capacity(SLOT_HASHES);
    out.extend_from_slice(bottom);
    let mut start = 0;
    let mut width = bottom.len();
    while width > 1 {
        for k in 0..width / 2 {
            let h = node_hash(&out[start + 2 * k], &out[start + 2 * k + 1]);
            out.push(h);
        }
        start += width;
        width /= 2;
    }
    Some(out)
}

/// Encode a stored tile.
pub fn encode_slot(nodes: &[Hash]) -> Vec<u8> {
    nodes.iter().flat_map(|h| h.iter().copied()).collect()
}

/// Decode a stored tile (`None` unless exactly [`SLOT_BYTES`]).
pub fn decode_slot(bytes: &[u8]) -> Option<Vec<Hash>> {
    if bytes.len() != SLOT_BYTES {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect(),
    )
}

/// Builds tiles as leaves are appended: each call to [`push`](Self::push)
/// returns the tiles it completed, `(tile level, tile index, nodes)`.
#[derive(Debug, Clone, Default)]
pub struct TileBuilder {
    /// Bottom hashes of the incomplete tile of each level.
    pending: Vec<Vec<Hash>>,
    /// Complete tiles per level.
    complete: Vec<u64>,
}

impl TileBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append one leaf hash.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u32, u64, Vec<Hash>)> {
        let mut out = Vec::new();
        let mut cur = leaf;
        let mut level = 0usize;
        loop {
            if self.pending.len() <= level {
                self.pending.push(Vec::with_capacity(256));
                self.complete.push(0);
            }
            self.pending[level].push(cur);
            if (self.pending[level].len() as u64) < TILE_WIDTH {
                return out;
            }
            let Some(nodes) = slot(&self.pending[level]) else {
                return out;
            };
            self.pending[level].clear();
            cur = nodes[SLOT_HASHES - 1];
            let index = self.complete[level];
            self.complete[level] += 1;
            out.push((u32::try_from(level).unwrap_or(u32::MAX), index, nodes));
            level += 1;
        }
    }

    /// Complete tiles of each tile level.
    pub fn complete(&self) -> &[u64] {
        &self.complete
    }
}

/// Where a [`Tree`] finds hashes.
pub trait NodeSource {
    /// Stored tile `index` of tile `level` (all 511 nodes), if the source
    /// keeps it. Its content is not trusted (see the module docs).
    ///
    /// # Errors
    /// I/O errors.
    fn tile(&self, level: u32, index: u64) -> Result<Option<Vec<Hash>>>;

    /// Leaf hashes of records `from..to`; `None` when the source does not
    /// hold all of them.
    ///
    /// # Errors
    /// I/O errors.
    fn leaves(&self, from: u64, to: u64) -> Result<Option<Vec<Hash>>>;
}

/// The Merkle tree of the first `size` leaves, read through a
/// [`NodeSource`], with what it read cached (a report asks for many paths in
/// one tree).
#[derive(Debug)]
pub struct Tree<'a, S: ?Sized> {
    src: &'a S,
    size: u64,
    tiles: HashMap<(u32, u64), Option<Vec<Hash>>>,
    /// Leaf hashes of bottom tiles that are not stored, by tile index.
    leaves: HashMap<u64, Option<Vec<Hash>>>,
    memo: HashMap<(u32, u64), Hash>,
}

impl<'a, S: NodeSource + ?Sized> Tree<'a, S> {
    /// The tree of the first `size` leaves of `src`.
    pub fn new(src: &'a S, size: u64) -> Self {
        Self {
            src,
            size,
            tiles: HashMap::new(),
            leaves: HashMap::new(),
            memo: HashMap::new(),
        }
    }

    /// Tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn stored(&mut self, level: u32, index: u64) -> Result<Option<&Vec<Hash>>> {
        // Bottom tiles are many and each is used by the entries under it,
        // which come in order: keep only the last one (caching thousands of
        // 16 KiB tiles cost more in allocation than the reads).
        if level == 0 && !self.tiles.contains_key(&(0, index)) {
            self.tiles.retain(|k, _| k.0 != 0);
        }
        if !self.tiles.contains_key(&(level, index)) {
            // Only tiles wholly inside the tree: the nodes of a larger tree
            // are not this tree's (and a store may still be writing them).
            let span = 1u64
                .checked_shl(TILE_HEIGHT * (level + 1))
                .unwrap_or(u64::MAX);
            let inside = index
                .checked_add(1)
                .and_then(|n| n.checked_mul(span))
                .is_some_and(|end| end <= self.size);
            let t = if inside {
                self.src
                    .tile(level, index)?
                    .filter(|t| t.len() == SLOT_HASHES)
            } else {
                None
            };
            self.tiles.insert((level, index), t);
        }
        Ok(self.tiles.get(&(level, index)).and_then(Option::as_ref))
    }

    /// The stored hash of leaf `index`, when its bottom tile is stored (to
    /// tell a changed record from changed tiles).
    ///
    /// # Errors
    /// I/O errors.
    pub fn stored_leaf(&mut self, index: u64) -> Result<Option<Hash>> {
        Ok(self
            .stored(0, index / TILE_WIDTH)?
            .map(|t| t[slot_index(0, index % TILE_WIDTH)]))
    }

    /// The hash of the perfect subtree of height `h` with index `j` (leaves
    /// `j * 2^h .. (j + 1) * 2^h`, which must lie inside the tree); `None`
    /// when a leaf it needs is not held.
    ///
    /// # Errors
    /// I/O errors.
    pub fn node(&mut self, h: u32, j: u64) -> Result<Option<Hash>> {
        if let Some(x) = self.memo.get(&(h, j)) {
            return Ok(Some(*x));
        }
        let (level, r) = (h / TILE_HEIGHT, h % TILE_HEIGHT);
        let tile = j >> (TILE_HEIGHT - r);
        let within = j & ((1 << (TILE_HEIGHT - r)) - 1);
        if let Some(t) = self.stored(level, tile)? {
            return Ok(Some(t[slot_index(r, within)]));
        }
        let out = if r == 0 && level == 0 {
            let t = j / TILE_WIDTH;
            if !self.leaves.contains_key(&t) {
                let from = t * TILE_WIDTH;
                let to = (from + TILE_WIDTH).min(self.size);
                let l = self.src.leaves(from, to)?;
                self.leaves.insert(t, l);
            }
            self.leaves
                .get(&t)
                .and_then(Option::as_ref)
                .and_then(|l| l.get(usize::try_from(j % TILE_WIDTH).ok()?).copied())
        } else if r == 0 {
            // The bottom of tile level L is the roots of tile level L-1.
            match self.stored(level - 1, j)? {
                Some(t) => Some(t[SLOT_HASHES - 1]),
                None => self.children(h, j)?,
            }
        } else {
            self.children(h, j)?
        };
        if let Some(x) = out {
            self.memo.insert((h, j), x);
        }
        Ok(out)
    }

    fn children(&mut self, h: u32, j: u64) -> Result<Option<Hash>> {
        let Some(l) = self.node(h - 1, 2 * j)? else {
            return Ok(None);
        };
        let Some(r) = self.node(h - 1, 2 * j + 1)? else {
            return Ok(None);
        };
        Ok(Some(node_hash(&l, &r)))
    }

    /// The root of leaves `start .. start + n` (`start` a multiple of the
    /// largest power of two below `n`, as RFC 6962's recursion gives).
    fn range_root(&mut self, start: u64, n: u64) -> Result<Option<Hash>> {
        if n.is_power_of_two() {
            let h = n.trailing_zeros();
            return self.node(h, start >> h);
        }
        let k = split(n);
        let Some(l) = self.range_root(start, k)? else {
            return Ok(None);
        };
        let Some(r) = self.range_root(start + k, n - k)? else {
            return Ok(None);
        };
        Ok(Some(node_hash(&l, &r)))
    }

    /// The root of the tree.
    ///
    /// # Errors
    /// I/O errors.
    pub fn root(&mut self) -> Result<Option<Hash>> {
        if self.size == 0 {
            return Ok(Some(super::empty_root()));
        }
        self.range_root(0, self.size)
    }

    /// The RFC 6962 inclusion proof of leaf `index` (the same hashes as
    /// [`inclusion_proof`](super::inclusion_proof) over the leaves); `None`
    /// when `index` is outside the tree or a leaf it needs is not held.
    ///
    /// # Errors
    /// I/O errors.
    pub fn inclusion_path(&mut self, index: u64) -> Result<Option<Vec<Hash>>> {
        if index >= self.size {
            return Ok(None);
        }
        // RFC 6962 §2.1.1: descend from the root, collecting the sibling
        // subtree at each split, then reverse (the path runs leaf to root).
        let mut out = Vec::new();
        let (mut start, mut n, mut m) = (0u64, self.size, index);
        while n > 1 {
            let k = split(n);
            let sibling = if m < k {
                let s = self.range_root(start + k, n - k)?;
                n = k;
                s
            } else {
                let s = self.range_root(start, k)?;
                start += k;
                m -= k;
                n -= k;
                s
            };
            let Some(s) = sibling else {
                return Ok(None);
            };
            out.push(s);
        }
        out.reverse();
        Ok(Some(out))
    }
}

/// Largest power of two smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    let k = n.next_power_of_two() / 2;
    if k == n { n / 2 } else { k }
}

/// A [`NodeSource`] over leaf hashes held in memory, storing every complete
/// tile (for tests and for building tiles in one go).
#[derive(Debug, Clone, Default)]
pub struct MemoryTiles {
    leaves: Vec<Hash>,
    tiles: HashMap<(u32, u64), Vec<Hash>>,
}

impl MemoryTiles {
    /// Tiles over `leaves`.
    pub fn new(leaves: &[Hash]) -> Self {
        let mut b = TileBuilder::new();
        let mut tiles = HashMap::new();
        for l in leaves {
            for (level, index, nodes) in b.push(*l) {
                tiles.insert((level, index), nodes);
            }
        }
        Self {
            leaves: leaves.to_vec(),
            tiles,
        }
    }

    /// The stored tile, to change it in tests.
    pub fn tile_mut(&mut self, level: u32, index: u64) -> Option<&mut Vec<Hash>> {
        self.tiles.get_mut(&(level, index))
    }

    /// Forget a stored tile (it is then computed from below).
    pub fn remove_tile(&mut self, level: u32, index: u64) -> bool {
        self.tiles.remove(&(level, index)).is_some()
    }
}

impl NodeSource for MemoryTiles {
    fn tile(&self, level: u32, index: u64) -> Result<Option<Vec<Hash>>> {
        Ok(self.tiles.get(&(level, index)).cloned())
    }

    fn leaves(&self, from: u64, to: u64) -> Result<Option<Vec<Hash>>> {
        let (Ok(f), Ok(t)) = (usize::try_from(from), usize::try_from(to)) else {
            return Ok(None);
        };
        Ok(self.leaves.get(f..t).map(<[Hash]>::to_vec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Link;
    use crate::merkle::{inclusion_proof, leaf_hash, root};
    use sha2::{Digest as _, Sha256};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&Link(Sha256::digest(format!("t{i}")).into())))
            .collect()
    }

    #[test]
    fn tile_paths_equal_leaf_paths_across_tile_edges() {
        let l = leaves(70_000);
        let src = MemoryTiles::new(&l);
        for n in [
            1u64, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ] {
            let mut tree = Tree::new(&src, n);
            let nu = usize::try_from(n).unwrap();
            assert_eq!(tree.root().unwrap(), Some(root(&l[..nu])), "size {n}");
            for m in [0, n / 3, n / 2, n - 1] {
                assert_eq!(
                    tree.inclusion_path(m).unwrap(),
                    inclusion_proof(&l[..nu], usize::try_from(m).unwrap()),
                    "size {n} index {m}"
                );
            }
            assert_eq!(tree.inclusion_path(n).unwrap(), None);
        }
    }

    #[test]
    fn slot_rows_and_root() {
        let l = leaves(256);
        let s = slot(&l).unwrap();
        assert_eq!(s.len(), SLOT_HASHES);
        assert_eq!(s[SLOT_HASHES - 1], root(&l));
        assert_eq!(s[slot_index(1, 3)], node_hash(&l[6], &l[7]));
        assert_eq!(s[slot_index(8, 0)], root(&l));
        assert!(slot(&l[..255]).is_none());
        assert_eq!(decode_slot(&encode_slot(&s)).unwrap(), s);
    }
}
