//! The file store's persisted Merkle tree: `tiles/<level>` in each tenant's
//! directory, one file per tile level, holding that level's complete tiles
//! back to back ([`SLOT_BYTES`] each: all 511 nodes of the tile, see
//! [`crate::merkle::tiles`]). Tile `n` of level `L` sits at `n * SLOT_BYTES`.
//!
//! **Derived data, never trusted.** The writer appends a tile when the
//! records under it are staged (no fsync: a crash may lose or tear tiles, or
//! keep tiles of records cut as a torn tail). Every writable open rebuilds
//! the tree from the records it reads anyway and compares: a tile that is
//! missing, torn, stale or different is rewritten, tiles past the records
//! are cut. Readers use only tiles wholly inside the tree they prove in, and
//! a proof built from a tile is checked against a signed root: a changed
//! tile makes a proof fail (`reasons::TILES_DISAGREE`), never pass.
//!
//! Only chains that start at record 0 keep tiles (the tree starts there); a
//! pruned chain's entries are proven by walking the chain.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::merkle::Hash;
use crate::merkle::tiles::{SLOT_BYTES, TileBuilder, decode_slot, encode_slot};

/// The tiles directory of a tenant directory.
pub(super) const TILES_DIR: &str = "tiles";

fn level_path(tdir: &Path, level: u32) -> PathBuf {
    tdir.join(TILES_DIR).join(level.to_string())
}

fn slot_at(index: u64) -> u64 {
    index.saturating_mul(SLOT_BYTES as u64)
}

/// Appends a tenant's tiles as records are appended; at open, checks the
/// stored tiles against the records and repairs them.
#[derive(Debug)]
pub(super) struct TileWriter {
    tdir: PathBuf,
    builder: TileBuilder,
    files: Vec<File>,
    /// Per level: still comparing with what is stored (at open).
    checking: Vec<bool>,
    /// Tiles rewritten while checking (for the log).
    repaired: u64,
}

impl TileWriter {
    /// Start the tree of the chain in `tdir` from record 0, checking the
    /// stored tiles as leaves are pushed.
    pub(super) fn start(tdir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(tdir.join(TILES_DIR))?;
        Ok(Self {
            tdir: tdir.to_path_buf(),
            builder: TileBuilder::new(),
            files: Vec::new(),
            checking: Vec::new(),
            repaired: 0,
        })
    }

    fn file(&mut self, level: u32) -> io::Result<&File> {
        let l = level as usize;
        while self.files.len() <= l {
            let lv = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(level_path(&self.tdir, lv))?;
            self.files.push(f);
            self.checking.push(true);
        }
        Ok(&self.files[l])
    }

    /// Append the leaf hash of the next record.
    pub(super) fn push(&mut self, leaf: Hash) -> io::Result<()> {
        for (level, index, nodes) in self.builder.push(leaf) {
            let bytes = encode_slot(&nodes);
            let at = slot_at(index);
            self.file(level)?;
            let l = level as usize;
            let f = &self.files[l];
            if self.checking[l] {
                let mut cur = vec![0u8; SLOT_BYTES];
                if f.read_exact_at(&mut cur, at).is_ok() && cur == bytes {
                    continue;
                }
                // Missing, torn or different: everything from here on is
                // written anew.
                self.checking[l] = false;
                if f.metadata()?.len() > at {
                    self.repaired += 1;
                }
                f.set_len(at)?;
            }
            f.write_all_at(&bytes, at)?;
        }
        Ok(())
    }

    /// After the records read at open: cut stored tiles past them, and stop
    /// checking (later pushes append).
    pub(super) fn finish_open(&mut self) -> io::Result<()> {
        let complete = self.builder.complete().to_vec();
        let mut level = 0u32;
        loop {
            let path = level_path(&self.tdir, level);
            if !path.exists() {
                break;
            }
            let want = slot_at(complete.get(level as usize).copied().unwrap_or(0));
            let f = OpenOptions::new().write(true).open(&path)?;
            if f.metadata()?.len() > want {
                self.repaired += 1;
                f.set_len(want)?;
            }
            level += 1;
        }
        for c in &mut self.checking {
            *c = false;
        }
        if self.repaired > 0 {
            tracing::warn!(dir = %self.tdir.display(), tiles = self.repaired, "audit store: Merkle tiles that did not match the records were rebuilt");
        }
        Ok(())
    }
}

/// Reads a tenant's stored tiles (file handles opened once).
#[derive(Debug)]
pub(super) struct TileReader {
    tdir: PathBuf,
    files: Mutex<HashMap<u32, Option<File>>>,
}

impl TileReader {
    pub(super) fn new(tdir: &Path) -> Self {
        Self {
            tdir: tdir.to_path_buf(),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Stored tile `index` of `level`, if the file holds it whole.
    pub(super) fn tile(&self, level: u32, index: u64) -> io::Result<Option<Vec<Hash>>> {
        let mut files = self.files.lock();
        let f = files
            .entry(level)
            .or_insert_with(|| File::open(level_path(&self.tdir, level)).ok());
        let Some(f) = f else {
            return Ok(None);
        };
        let mut buf = vec![0u8; SLOT_BYTES];
        match f.read_exact_at(&mut buf, slot_at(index)) {
            Ok(()) => Ok(decode_slot(&buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}
