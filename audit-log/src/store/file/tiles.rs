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
use crate::merkle::tiles::{SLOT_BYTES, SLOT_HASHES, TileBuilder, decode_slot, encode_slot};

/// The tiles directory of a tenant directory.
pub(super) const TILES_DIR: &str = "tiles";

fn level_path(tdir: &Path, level: u32) -> PathBuf {
    tdir.join(TILES_DIR).join(level.to_string())
}

/// Open a stored tile for reading and writing, never through a link: the
/// store's directory is writable by whoever can write the store, and a
/// symbolic link planted at a tile's name would have the writer truncate
/// and fill another file (the verifier's state, say). Tiles are derived
/// data: anything but a regular file at the name (in a real `tiles`
/// directory) is removed and the tile rebuilt; the opened file must be the
/// one at the path, so a link swapped in meanwhile is refused.
fn open_tile(path: &Path, create: bool) -> io::Result<File> {
    use std::os::unix::fs::MetadataExt as _;
    let refused = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a regular file: not writing through it",
                path.display()
            ),
        )
    };
    if let Some(dir) = path.parent()
        && !std::fs::symlink_metadata(dir)?.file_type().is_dir()
    {
        return Err(refused());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => std::fs::remove_file(path)?,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = OpenOptions::new()
        .create(create)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let (opened, now) = (f.metadata()?, std::fs::symlink_metadata(path)?);
    if !now.file_type().is_file() || opened.dev() != now.dev() || opened.ino() != now.ino() {
        return Err(refused());
    }
    Ok(f)
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
        let dir = tdir.join(TILES_DIR);
        // A link planted for the directory is replaced, as for a tile.
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
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
            let f = open_tile(&level_path(&self.tdir, lv), true)?;
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
            if std::fs::symlink_metadata(&path).is_err() {
                break;
            }
            let want = slot_at(complete.get(level as usize).copied().unwrap_or(0));
            let f = open_tile(&path, true)?;
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
    /// Per level: the file and its length when opened (`None`: no file).
    files: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Files {
    levels: HashMap<u32, Option<(File, u64)>>,
    /// Read buffer of [`TileReader::tile_nodes`] (one tile), kept.
    buf: Vec<u8>,
}

/// Slots of a tile closer than this (a page of hashes) are read together:
/// another read costs more than copying the hashes between them (measured
/// on the cold DSAR report: a read per slot, or per slot within 8 hashes,
/// was slower than one read per 4 KiB).
const READ_GAP: usize = 128;

impl TileReader {
    pub(super) fn new(tdir: &Path) -> Self {
        Self {
            tdir: tdir.to_path_buf(),
            files: Mutex::new(Files::default()),
        }
    }

    /// Run `f` with the file of `level` and its length, if there is one.
    fn with_file<T>(
        &self,
        level: u32,
        f: impl FnOnce(&File, u64, &mut Vec<u8>) -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        let mut files = self.files.lock();
        let Files { levels, buf } = &mut *files;
        let entry = levels.entry(level).or_insert_with(|| {
            // Never blocks on a FIFO planted at the name: no tile then.
            let file = crate::fsread::open(&level_path(&self.tdir, level)).ok()?;
            let len = file.metadata().ok()?.len();
            Some((file, len))
        });
        match entry {
            Some((file, len)) => f(file, *len, buf),
            None => Ok(None),
        }
    }

    /// Stored tile `index` of `level`, if the file holds it whole.
    pub(super) fn tile(&self, level: u32, index: u64) -> io::Result<Option<Vec<Hash>>> {
        self.with_file(level, |f, _, _| {
            let mut buf = vec![0u8; SLOT_BYTES];
            match f.read_exact_at(&mut buf, slot_at(index)) {
                Ok(()) => Ok(decode_slot(&buf)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// The hashes at `slots` of stored tile `index` of `level`, in the order
    /// asked, if the file held the tile whole when it was opened (see
    /// [`AuditRead::merkle_tile_nodes`](crate::AuditRead::merkle_tile_nodes)):
    /// neighbouring slots are read together, the rest apart.
    pub(super) fn tile_nodes(
        &self,
        level: u32,
        index: u64,
        slots: &[usize],
    ) -> io::Result<Option<Vec<Hash>>> {
        let mut order: Vec<(usize, usize)> = slots.iter().copied().zip(0..).collect();
        order.sort_unstable();
        if order.last().is_some_and(|(s, _)| *s >= SLOT_HASHES) {
            return Ok(None);
        }
        let base = slot_at(index);
        self.with_file(level, |f, len, buf| {
            if base
                .checked_add(SLOT_BYTES as u64)
                .is_none_or(|end| end > len)
            {
                return Ok(None);
            }
            let mut out = vec![[0u8; 32]; slots.len()];
            // Zeroed once, reused: a read never spans more than a tile.
            buf.resize(SLOT_BYTES, 0);
            let mut i = 0;
            while let Some(&(first, _)) = order.get(i) {
                // One read from `first` to the last slot within reach.
                let mut j = i + 1;
                while order
                    .get(j)
                    .is_some_and(|(s, _)| *s <= order[j - 1].0 + READ_GAP)
                {
                    j += 1;
                }
                let last = order[j - 1].0;
                let buf = &mut buf[..(last - first + 1) * 32];
                match f.read_exact_at(buf, base + first as u64 * 32) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(e),
                }
                for &(s, k) in &order[i..j] {
                    let at = (s - first) * 32;
                    out[k].copy_from_slice(&buf[at..at + 32]);
                }
                i = j;
            }
            Ok(Some(out))
        })
    }
}
