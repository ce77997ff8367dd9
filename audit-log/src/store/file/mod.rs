//! The file store: one directory, one sub-directory per tenant, segment files,
//! one writer thread with group commit.
//!
//! # Durability
//! - [`Durability::Fsync`] (default): a caller gets its sequence number only after
//!   the batch holding its record was written and `fdatasync`ed. Records that
//!   arrive while a sync runs go into the next batch (group commit). The
//!   writer keeps zeros written ahead of the records of its open segment
//!   (as many as it holds, at most 1 MiB), so that a batch's sync overwrites allocated blocks
//!   instead of growing the file; they are cut when the segment is sealed
//!   and when the store closes, and read as the segment's end by every reader.
//! - [`Durability::OsBuffered`]: acknowledged after `write(2)`; survives a
//!   process crash, not a power loss or kernel crash. Segments are synced when
//!   they roll and when the store closes.
//! - [`Durability::None`]: acknowledged after `write(2)`, never synced. For tests.
//!
//! # Crash recovery
//! Opening for writing cuts a torn tail (an incomplete, zero-filled or damaged
//! last frame of the newest segment) back to the last whole record. Damage
//! followed by intact frames, or in a sealed segment, is corruption: the store
//! refuses to open ([`Error::Corrupt`]) instead of cutting history.
//!
//! # Errors while writing
//! An I/O error (EIO, ENOSPC, ...) poisons the writer: the batch's callers get
//! the error, every later append gets [`Error::Poisoned`], and nothing is
//! acknowledged that is not durable. Reopen the store to recover.

mod cold;
mod nofollow;
mod options;
mod read;
pub use read::IndexMismatch;
mod recovery;
mod repair;
mod retention;
mod signing;
mod subject_index;
#[cfg(test)]
mod tests;
mod tiles;
mod writer;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{
    Checkpoint, CheckpointSink, SignedCheckpoint, SigningKey, read_checkpoint_log,
};
use crate::clock::{Clock, Timestamp};
use crate::encoding::{decode_record, encode_record, peek_header};
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::store::segment::{
    FRAME_OVERHEAD_V2, SEGMENT_VERSION, SegmentEnd, SegmentHeader, encode_frame_into,
    frame_overhead, parse_segment_synced, require_usable,
};
use crate::store::{AuditRead, Bounds, Export, ExportReceipt, export_prefix, prune_event};
use crate::verify::StoredRecord;

pub use cold::TenantReader;
#[doc(hidden)]
pub use options::CrashHook;
pub(crate) use options::IoHook;
pub use options::{AutoCheckpoint, Durability, FileStoreOptions};
use recovery::load;
pub use repair::{RepairDamage, RepairMode, RepairReport};
pub use signing::CheckpointRun;
#[doc(hidden)]
pub use subject_index::{
    forge_index_omitting, fuzz_index as fuzz_subject_index, index_decodes_on_this_thread,
    index_file_of,
};
use writer::{Msg, Reply, Slot, SlotTx, Writer};

#[derive(Debug, Clone)]
struct SegInfo {
    path: PathBuf,
    file: Arc<File>,
    /// Segment format version (frame layout).
    version: u8,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    seg: u32,
    offset: u64,
    len: u32,
}

#[derive(Debug, Default)]
struct TenantIndex {
    dir: PathBuf,
    first_seq: u64,
    start_prev: Link,
    head: Link,
    segments: Vec<SegInfo>,
    seg_base: u32,
    locs: Vec<Loc>,
    subjects: HashMap<String, Vec<u64>>,
    /// Read-only opens: the position of damage that is not a crash leftover.
    damage_at: Option<u64>,
    /// The Merkle tree's right edge over records `0..size`, computed from
    /// the records as a writable open read them and as the writer appended
    /// them (never from the tiles): the root every checkpoint is signed
    /// with. Kept through a prune. `None` for read-only opens, and for a
    /// chain pruned before this open until it is read back from a rooted
    /// checkpoint that kept it (`Shared::frontier_from_edges`).
    frontier: Option<crate::merkle::Frontier>,
}

impl TenantIndex {
    fn size(&self) -> u64 {
        self.first_seq + self.locs.len() as u64
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            first_seq: self.first_seq,
            start_prev: self.start_prev,
            size: self.size(),
            head: self.head,
        }
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    index: RwLock<HashMap<TenantId, TenantIndex>>,
    poisoned: AtomicBool,
    checkpoint_file: Mutex<()>,
}

/// The file store. See the [module docs](self).
#[derive(Debug)]
pub struct FileStore {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
    /// Writes the subject index of each segment the writer seals.
    indexer: Option<JoinHandle<()>>,
    _lock: Option<File>,
    crash_hook: options::StepHook,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

/// The store's own copy of a tenant's checkpoints, in the tenant directory.
const CHECKPOINT_LOG: &str = "checkpoints.jsonl";

fn tenant_dir_name(t: &TenantId) -> String {
    format!("t-{}", hex::encode(t.as_str()))
}

/// Longest segment file a reader reads: the largest segment a writer rolls
/// at, plus one record it may overshoot by (and the header).
const MAX_SEGMENT_FILE: u64 = FileStoreOptions::MAX_SEGMENT_BYTES + (2 << 20);

/// Read a whole segment file (see [`crate::fsread`]: never a FIFO, device
/// or file longer than [`MAX_SEGMENT_FILE`]).
fn read_segment(path: &Path) -> Result<Vec<u8>> {
    crate::fsread::read(path, MAX_SEGMENT_FILE)
}

/// Rereads of [`read_live_segment`] before damage is reported anyway.
const LIVE_REREADS: usize = 8;

/// Bytes from the start of damage a second read must agree on.
const LIVE_WINDOW: usize = 64 << 10;

/// Read the newest segment of a chain a writer may be appending to (a
/// read-only open, the cold reader). One `read` racing the writer can copy
/// a page of the preallocated zeros before a batch lands there and later
/// pages after the next batch landed: zeros followed by frames whose synced
/// marks vouch for them, which parses as damage. The writer only ever turns
/// zeros into frames, so damage counts only when a second read holds the
/// same bytes where it starts; after [`LIVE_REREADS`] reads that never
/// agree, the last one is returned and its damage reported (fail closed).
fn read_live_segment(path: &Path, mark: u64) -> Result<Vec<u8>> {
    settled_read(|| read_segment(path), mark)
}

/// [`read_live_segment`] over any `read`.
fn settled_read(mut read: impl FnMut() -> Result<Vec<u8>>, mark: u64) -> Result<Vec<u8>> {
    let mut bytes = read()?;
    for _ in 0..LIVE_REREADS {
        let off = match parse_segment_synced(&bytes, mark).map(|p| p.end) {
            Ok(
                SegmentEnd::Corrupt { offset }
                | SegmentEnd::TornTail {
                    valid_len: offset,
                    whole_frame: true,
                },
            ) => usize::try_from(offset).unwrap_or(usize::MAX),
            _ => return Ok(bytes),
        };
        let again = read()?;
        if live_window(&again, off) == live_window(&bytes, off) {
            return Ok(again);
        }
        bytes = again;
    }
    Ok(bytes)
}

/// The bytes of `b` from `off` on that two reads must agree on.
fn live_window(b: &[u8], off: usize) -> Option<&[u8]> {
    b.get(off..).map(|r| &r[..r.len().min(LIVE_WINDOW)])
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

/// Take the store's write lock (held while the returned file is open).
fn lock_store(dir: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // Never blocks on a FIFO planted at the name, never locks a device.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(crate::fsread::O_NONBLOCK)
        .open(dir.join("LOCK"))?;
    if !lock.metadata()?.file_type().is_file() {
        return Err(Error::Corrupt {
            what: "store lock file is not a regular file",
            file: "LOCK".to_owned(),
            offset: 0,
        });
    }
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked),
        Err(fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    nofollow::sync_dir(p)
}

impl FileStore {
    /// Open (or create) a store in `dir` for writing: takes the directory's
    /// write lock, recovers torn tails, starts the writer thread.
    ///
    /// # Errors
    /// [`Error::Locked`] if another writer holds the store, [`Error::Corrupt`]
    /// for damage that is not a crash leftover, [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>, options: FileStoreOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let lock = lock_store(&dir)?;
        let loaded = load(&dir, true)?;
        let (index, writers) = (loaded.index, loaded.writers);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            index: RwLock::new(index),
            poisoned: AtomicBool::new(false),
            checkpoint_file: Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let (index_tx, index_rx) = mpsc::channel::<PathBuf>();
        let indexer = std::thread::Builder::new()
            .name("hisn-audit-indexer".into())
            .spawn(move || {
                for path in index_rx {
                    if let Err(e) = subject_index::index_sealed(&path) {
                        tracing::warn!(file = %path.display(), error = %e, "audit store: could not write a subject index");
                    }
                }
            })?;
        let mut writer = Writer {
            shared: Arc::clone(&shared),
            durability: options.durability,
            max_segment_bytes: options.max_segment_bytes,
            max_batch: options.max_batch.max(1),
            hook: options.hook,
            clock: options.clock,
            tenants: writers,
            blocked: loaded.blocked,
            auto: options.auto_checkpoint.map(|a| (a, HashMap::new())),
            indexer: index_tx,
        };
        let handle = std::thread::Builder::new()
            .name("hisn-audit-writer".into())
            .spawn(move || writer.run(&rx))?;
        Ok(Self {
            shared,
            tx: Some(tx),
            writer: Some(handle),
            indexer: Some(indexer),
            _lock: Some(lock),
            crash_hook: options.crash_hook,
        })
    }

    /// Open a store for reading and verification only: no lock, no recovery, no
    /// writer. Damage (including a whole last frame with a bad checksum) is kept
    /// for the verifier to report; an incomplete or zero-filled last frame (a
    /// crash leftover) is ignored.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Malformed`] for an unreadable segment header.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound);
        }
        let index = load(&dir, false)?.index;
        let shared = Arc::new(Shared {
            dir,
            index: RwLock::new(index),
            poisoned: AtomicBool::new(false),
            checkpoint_file: Mutex::new(()),
        });
        Ok(Self {
            shared,
            tx: None,
            writer: None,
            indexer: None,
            _lock: None,
            crash_hook: options::StepHook::default(),
        })
    }

    /// Append `event` to its tenant's chain; blocks until the record is durable
    /// (per the [`Durability`] mode) and returns its sequence number.
    ///
    /// # Errors
    /// [`Error::Io`] for the batch that hit an I/O error, [`Error::Poisoned`]
    /// afterwards, [`Error::Closed`] for a read-only store.
    pub fn append(&self, event: Event) -> Result<u64> {
        let slot = Slot::for_this_thread();
        self.submit(
            event,
            Reply::Slot(SlotTx {
                slot: Arc::clone(&slot),
                filled: false,
            }),
        )?;
        slot.wait()
    }

    /// Append without blocking: `done` is called from the writer thread with the
    /// sequence number once the record is durable (or with the error). Use it to
    /// bridge to an async runtime (for example with a oneshot channel).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`] when the writer cannot take it
    /// (then `done` is not called).
    pub fn append_with(
        &self,
        event: Event,
        done: impl FnOnce(Result<u64>) + Send + 'static,
    ) -> Result<()> {
        self.submit(event, Reply::Callback(Box::new(done)))
    }

    fn submit(&self, event: Event, reply: Reply) -> Result<()> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        tx.send(Msg::Append(event, reply))
            .map_err(|_| Error::Closed)
    }

    /// Whether an I/O error has stopped the writer.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    /// Stop the writer after it has finished the queued appends, syncing every
    /// open segment (except with [`Durability::None`]).
    ///
    /// # Errors
    /// [`Error::Closed`] if the writer thread panicked.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.tx.take();
        if let Some(h) = self.writer.take() {
            h.join().map_err(|_| Error::Closed)?;
        }
        // The writer (the indexer's only sender) is gone: the indexer ends
        // after the segments it was given.
        if let Some(h) = self.indexer.take() {
            h.join().map_err(|_| Error::Closed)?;
        }
        Ok(())
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Shared {
    /// Keep `cp` in `tenant`'s checkpoint log, with the Merkle edge at its
    /// size when the signer had it (see `read_checkpoint_edges`).
    fn store_checkpoint(
        &self,
        tenant: &TenantId,
        cp: &SignedCheckpoint,
        edge: Option<&crate::merkle::Frontier>,
    ) -> Result<()> {
        let _g = self.checkpoint_file.lock();
        let dir = self.dir.join(tenant_dir_name(tenant));
        let path = dir.join(CHECKPOINT_LOG);
        // Another process (the CLI, or an earlier run that lost power) may have
        // left a torn last line; never glue this checkpoint to it. Nothing
        // is read or written through a link planted in the store.
        crate::checkpoint::refuse_links(&path)?;
        if let Ok(f) = crate::fsread::open(&path) {
            let len = f.metadata()?.len();
            let mut last = [0u8; 1];
            if len > 0 && f.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n' {
                recovery::repair_checkpoint_log(&path)?;
            }
        }
        crate::checkpoint::append_store_checkpoint_log(&path, cp, edge)?;
        Ok(())
    }
}
