//! Persisted Merkle tree hashes ("tiles") and inclusion paths computed from
//! them instead of from the leaves.
//!
//! The layout follows C2SP `tlog-tiles`: the tree is cut into tiles of
//! height [`TILE_HEIGHT`] (8), so a tile at tile level `L` covers 256 nodes
//! of tree height `8L` and the 255 nodes above them. Where `tlog-tiles`
//! stores only a tile's 256 bottom hashes, a stored tile here ([`slot`])
//! holds all 511 nodes (bottom row first, then each row above, the tile's
//! root last), so the nodes of an audit path inside a tile are read, never
//! rehashed: a proof reads the 9 hashes it needs of its bottom tile
//! ([`NodeSource::tile_nodes`]) and one tile per tile level above (shared by
//! the paths of many leaves, read once per [`Tree`]). The cost is twice the
//! space of bare tiles (64 bytes per record).
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
use std::sync::Arc;

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

    /// The hashes at `slots` (positions among the 511, in the order
    /// [`slot`] lays them out) of stored tile `index` of tile `level`, in
    /// the order asked; `None` unless the source keeps the tile whole. The
    /// default reads the whole tile; a source that can read part of one
    /// overrides it (an inclusion path needs 9 of a bottom tile's 511
    /// hashes). Not trusted either.
    ///
    /// # Errors
    /// I/O errors.
    fn tile_nodes(&self, level: u32, index: u64, slots: &[usize]) -> Result<Option<Vec<Hash>>> {
        Ok(self
            .tile(level, index)?
            .and_then(|t| slots.iter().map(|&s| t.get(s).copied()).collect()))
    }

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
    /// Stored tiles above the bottom level, read whole: each is shared by
    /// the paths of many leaves.
    tiles: HashMap<(u32, u64), Option<Shared>>,
    /// Per level above the bottom, the tile used last (the paths of leaves
    /// asked for in order use one tile per level for many leaves in a row).
    front: Vec<Option<(u64, Option<Shared>)>>,
    /// What was read of the bottom tile last asked for.
    bottom: Bottom,
    /// Leaf hashes of bottom tiles that are not stored, by tile index.
    leaves: HashMap<u64, Option<Vec<Hash>>>,
    memo: HashMap<(u32, u64), Hash>,
    /// Roots of the ranges `(start, n)` that are not perfect subtrees (the
    /// tree's right edge, on the path of every leaf left of it).
    edge: Vec<(u64, u64, Hash)>,
}

/// A stored tile above the bottom level (all 511 nodes).
type Shared = Arc<Vec<Hash>>;

/// Hashes read from one bottom tile. Bottom tiles are many and a path needs
/// 9 of a tile's 511 hashes (the leaf and one sibling per row), so they are
/// read by the hash: reading 5,000 of them whole for a report read 80 MB.
#[derive(Debug, Default)]
struct Bottom {
    index: u64,
    /// `None`: nothing asked yet; `Some(None)`: not stored (computed from
    /// the leaves); otherwise the slots read so far.
    read: Option<Option<Vec<(usize, Hash)>>>,
}

impl Bottom {
    fn get(&self, index: u64, at: usize) -> Option<Hash> {
        match &self.read {
            Some(Some(v)) if self.index == index => {
                v.iter().find(|(k, _)| *k == at).map(|(_, h)| *h)
            }
            _ => None,
        }
    }
}

impl<'a, S: NodeSource + ?Sized> Tree<'a, S> {
    /// The tree of the first `size` leaves of `src`.
    pub fn new(src: &'a S, size: u64) -> Self {
        Self {
            src,
            size,
            tiles: HashMap::new(),
            front: Vec::new(),
            bottom: Bottom::default(),
            leaves: HashMap::new(),
            memo: HashMap::new(),
            edge: Vec::new(),
        }
    }

    /// Tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether tile `index` of `level` lies wholly inside the tree: only
    /// those are used, as the nodes of a larger tree are not this tree's (and
    /// a store may still be writing them).
    fn inside(&self, level: u32, index: u64) -> bool {
        let span = 1u64
            .checked_shl(TILE_HEIGHT * (level + 1))
            .unwrap_or(u64::MAX);
        index
            .checked_add(1)
            .and_then(|n| n.checked_mul(span))
            .is_some_and(|end| end <= self.size)
    }

    /// Hash `at` of stored tile `index` of `level` (above the bottom; each
    /// such tile is read whole once); `None` when the tile is not stored.
    fn upper(&mut self, level: u32, index: u64, at: usize) -> Result<Option<Hash>> {
        let l = usize::try_from(level).unwrap_or(usize::MAX);
        if let Some(Some((i, t))) = self.front.get(l)
            && *i == index
        {
            return Ok(t.as_ref().and_then(|t| t.get(at).copied()));
        }
        let t = match self.tiles.get(&(level, index)) {
            Some(t) => t.clone(),
            None => {
                let t = if self.inside(level, index) {
                    self.src
                        .tile(level, index)?
                        .filter(|t| t.len() == SLOT_HASHES)
                        .map(Arc::new)
                } else {
                    None
                };
                self.tiles.insert((level, index), t.clone());
                t
            }
        };
        let x = t.as_ref().and_then(|t| t.get(at).copied());
        if self.front.len() <= l {
            self.front.resize(l.saturating_add(1), None);
        }
        if let Some(f) = self.front.get_mut(l) {
            *f = Some((index, t));
        }
        Ok(x)
    }

    /// Read `slots` of bottom tile `index` (those not read yet), making it
    /// the current bottom tile.
    fn read_bottom(&mut self, index: u64, slots: &[usize]) -> Result<()> {
        if self.bottom.index != index || self.bottom.read.is_none() {
            let read = self.inside(0, index).then(Vec::new);
            self.bottom = Bottom {
                index,
                read: Some(read),
            };
        }
        let Some(Some(have)) = &self.bottom.read else {
            return Ok(());
        };
        let missing: Vec<usize> = slots
            .iter()
            .copied()
            .filter(|s| *s < SLOT_HASHES && !have.iter().any(|(k, _)| k == s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        match self.src.tile_nodes(0, index, &missing)? {
            Some(v) if v.len() == missing.len() => {
                if let Some(Some(have)) = &mut self.bottom.read {
                    have.extend(missing.into_iter().zip(v));
                }
            }
            _ => self.bottom.read = Some(None),
        }
        Ok(())
    }

    /// The stored hash of leaf `index`, when its bottom tile is stored (to
    /// tell a changed record from changed tiles).
    ///
    /// # Errors
    /// I/O errors.
    pub fn stored_leaf(&mut self, index: u64) -> Result<Option<Hash>> {
        let (tile, at) = (index / TILE_WIDTH, slot_index(0, index % TILE_WIDTH));
        self.read_bottom(tile, &[at])?;
        Ok(self.bottom.get(tile, at))
    }

    /// The hash of the perfect subtree of height `h` with index `j` (leaves
    /// `j * 2^h .. (j + 1) * 2^h`, which must lie inside the tree); `None`
    /// when a leaf it needs is not held.
    ///
    /// # Errors
    /// I/O errors.
    pub fn node(&mut self, h: u32, j: u64) -> Result<Option<Hash>> {
        let (level, r) = (h / TILE_HEIGHT, h % TILE_HEIGHT);
        let tile = j >> (TILE_HEIGHT - r);
        let within = j & ((1 << (TILE_HEIGHT - r)) - 1);
        let at = slot_index(r, within);
        if level == 0 {
            self.read_bottom(tile, &[at])?;
            if let Some(x) = self.bottom.get(tile, at) {
                return Ok(Some(x));
            }
        } else if let Some(x) = self.upper(level, tile, at)? {
            return Ok(Some(x));
        }
        if let Some(x) = self.memo.get(&(h, j)) {
            return Ok(Some(*x));
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
            // The bottom of tile level L is the roots of tile level L-1 (one
            // hash of a bottom tile: read alone, the current one is kept).
            let below = if level == 1 {
                if self.inside(0, j) {
                    self.src
                        .tile_nodes(0, j, &[SLOT_HASHES - 1])?
                        .and_then(|v| v.first().copied())
                } else {
                    None
                }
            } else {
                self.upper(level - 1, j, SLOT_HASHES - 1)?
            };
            match below {
                Some(x) => Some(x),
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
        if let Some(&(_, _, x)) = self.edge.iter().find(|e| (e.0, e.1) == (start, n)) {
            return Ok(Some(x));
        }
        let k = split(n);
        let Some(l) = self.range_root(start, k)? else {
            return Ok(None);
        };
        let Some(r) = self.range_root(start + k, n - k)? else {
            return Ok(None);
        };
        let x = node_hash(&l, &r);
        self.edge.push((start, n, x));
        Ok(Some(x))
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
        // The hashes of the leaf's bottom tile the path needs, in one go:
        // the leaf and its neighbour, and one sibling per row above.
        let w = index % TILE_WIDTH;
        let mut want = vec![slot_index(0, w & !1), slot_index(0, w | 1)];
        want.extend((1..TILE_HEIGHT).map(|r| slot_index(r, (w >> r) ^ 1)));
        self.read_bottom(index / TILE_WIDTH, &want)?;
        // RFC 6962 §2.1.1: descend from the root, collecting the sibling
        // subtree at each split, then reverse (the path runs leaf to root).
        // At most ceil(log2(size)) hashes.
        let len = u64::BITS - (self.size - 1).leading_zeros();
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
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
