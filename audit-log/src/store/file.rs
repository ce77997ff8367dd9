//! The file store: one directory, one sub-directory per tenant, segment files,
//! one writer thread with group commit.
//!
//! # Durability
//! - [`Durability::Fsync`] (default): a caller gets its sequence number only after
//!   the batch holding its record was written and `fdatasync`ed. Records that
//!   arrive while a sync runs go into the next batch (group commit).
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

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{
    Checkpoint, CheckpointPolicy, CheckpointSink, SignedCheckpoint, SigningKey,
    append_checkpoint_log, read_checkpoint_log,
};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::encoding::{decode_record, encode_record, peek_header};
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::store::segment::{
    FRAME_OVERHEAD, SegmentEnd, SegmentHeader, encode_frame, parse_segment, require_usable,
};
use crate::store::{AuditRead, Bounds, Export, ExportReceipt, export_prefix, prune_event};
use crate::verify::StoredRecord;

/// When an append is acknowledged. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// After `fdatasync` (default).
    #[default]
    Fsync,
    /// After `write(2)`; synced on segment roll and close.
    OsBuffered,
    /// After `write(2)`; never synced.
    None,
}

/// Test hook for injecting I/O failures into the writer.
pub(crate) trait IoHook: Send + Sync + std::fmt::Debug {
    fn before_write(&self) -> std::io::Result<()>;
    fn before_sync(&self) -> std::io::Result<()>;
}

/// Automatic checkpoints made by the writer.
#[derive(Debug)]
pub struct AutoCheckpoint {
    key: SigningKey,
    policy: CheckpointPolicy,
    sinks: Vec<Arc<dyn CheckpointSink>>,
}

impl AutoCheckpoint {
    /// Sign with `key` under `policy`; publish to every sink added with [`sink`](Self::sink).
    pub fn new(key: SigningKey, policy: CheckpointPolicy) -> Self {
        Self {
            key,
            policy,
            sinks: Vec::new(),
        }
    }

    /// Also publish to `sink`.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn CheckpointSink>) -> Self {
        self.sinks.push(sink);
        self
    }
}

/// Options for [`FileStore::open`].
#[derive(Debug)]
pub struct FileStoreOptions {
    durability: Durability,
    max_segment_bytes: u64,
    max_batch: usize,
    clock: Arc<dyn Clock>,
    auto_checkpoint: Option<AutoCheckpoint>,
    hook: Option<Arc<dyn IoHook>>,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            max_segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            max_batch: 4096,
            clock: Arc::new(SystemClock),
            auto_checkpoint: None,
            hook: None,
        }
    }
}

impl FileStoreOptions {
    /// Default segment size: 64 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// Smallest segment size accepted (smaller values are raised to it).
    pub const MIN_SEGMENT_BYTES: u64 = 4096;

    /// Set the durability mode.
    #[must_use]
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Roll to a new segment after about this many bytes.
    #[must_use]
    pub fn max_segment_bytes(mut self, n: u64) -> Self {
        self.max_segment_bytes = n.max(Self::MIN_SEGMENT_BYTES);
        self
    }

    /// The clock for checkpoint times and intervals.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Make checkpoints automatically.
    #[must_use]
    pub fn auto_checkpoint(mut self, a: AutoCheckpoint) -> Self {
        self.auto_checkpoint = Some(a);
        self
    }

    #[cfg(test)]
    pub(crate) fn hook(mut self, h: Arc<dyn IoHook>) -> Self {
        self.hook = Some(h);
        self
    }
}

#[derive(Debug, Clone)]
struct SegInfo {
    path: PathBuf,
    file: Arc<File>,
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
}

impl TenantIndex {
    fn size(&self) -> u64 {
        self.first_seq + self.locs.len() as u64
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    index: RwLock<HashMap<TenantId, TenantIndex>>,
    poisoned: AtomicBool,
    checkpoint_file: Mutex<()>,
}

/// How a caller hears back: a callback ([`FileStore::append_with`]) or a slot
/// a blocked [`FileStore::append`] waits on.
enum Reply {
    Callback(Box<dyn FnOnce(Result<u64>) + Send>),
    Slot(SlotTx),
}

impl Reply {
    /// Deliver `r`. Slots are woken by [`Wake::notify`] after the whole batch
    /// was delivered, so the writer does not wake callers one by one.
    fn send(self, r: Result<u64>) {
        match self {
            Reply::Callback(f) => f(r),
            Reply::Slot(mut s) => s.fill(r),
        }
    }
}

/// Wake-up shards for blocked appends. The writer fills every slot of a batch,
/// then notifies each shard once; the woken callers hand the wake-up on to each
/// other (parking_lot requeues the waiters onto the mutex), so the cost of
/// waking many callers is spread over them instead of serialising the writer.
const WAKE_SHARDS: usize = 4;

#[derive(Debug, Default)]
struct Wake {
    shards: [(Mutex<()>, Condvar); WAKE_SHARDS],
    next: std::sync::atomic::AtomicUsize,
}

impl Wake {
    fn notify(&self) {
        for (m, cv) in &self.shards {
            // Taking the mutex orders this after any waiter's check of its slot.
            drop(m.lock());
            cv.notify_all();
        }
    }
}

#[derive(Debug)]
struct Slot {
    result: Mutex<Option<Result<u64>>>,
    shard: usize,
}

/// The writer's end of a slot: dropping it unfilled (a writer that went away)
/// answers [`Error::Closed`], so a blocked caller never waits forever.
struct SlotTx {
    slot: Arc<Slot>,
    wake: Arc<Wake>,
    filled: bool,
}

impl SlotTx {
    fn fill(&mut self, r: Result<u64>) {
        *self.slot.result.lock() = Some(r);
        self.filled = true;
    }
}

impl Drop for SlotTx {
    fn drop(&mut self) {
        if !self.filled {
            self.fill(Err(Error::Closed));
            self.wake.notify();
        }
    }
}

enum Msg {
    Append(Event, Reply),
}

/// The file store. See the [module docs](self).
#[derive(Debug)]
pub struct FileStore {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
    wake: Arc<Wake>,
    _lock: Option<File>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

fn tenant_dir_name(t: &TenantId) -> String {
    format!("t-{}", hex::encode(t.as_str()))
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
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
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked),
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let (index, writers) = load(&dir, true)?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            index: RwLock::new(index),
            poisoned: AtomicBool::new(false),
            checkpoint_file: Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let wake = Arc::new(Wake::default());
        let mut writer = Writer {
            wake: Arc::clone(&wake),
            shared: Arc::clone(&shared),
            durability: options.durability,
            max_segment_bytes: options.max_segment_bytes,
            max_batch: options.max_batch.max(1),
            hook: options.hook,
            clock: options.clock,
            tenants: writers,
            auto: options.auto_checkpoint.map(|a| (a, HashMap::new())),
        };
        let handle = std::thread::Builder::new()
            .name("hisn-audit-writer".into())
            .spawn(move || writer.run(&rx))?;
        Ok(Self {
            shared,
            tx: Some(tx),
            writer: Some(handle),
            wake,
            _lock: Some(lock),
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
        let (index, _) = load(&dir, false)?;
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
            wake: Arc::default(),
            _lock: None,
        })
    }

    /// Append `event` to its tenant's chain; blocks until the record is durable
    /// (per the [`Durability`] mode) and returns its sequence number.
    ///
    /// # Errors
    /// [`Error::Io`] for the batch that hit an I/O error, [`Error::Poisoned`]
    /// afterwards, [`Error::Closed`] for a read-only store.
    pub fn append(&self, event: Event) -> Result<u64> {
        let wake = &self.wake;
        let shard = wake.next.fetch_add(1, Ordering::Relaxed) % WAKE_SHARDS;
        let slot = Arc::new(Slot {
            result: Mutex::new(None),
            shard,
        });
        self.submit(
            event,
            Reply::Slot(SlotTx {
                slot: Arc::clone(&slot),
                wake: Arc::clone(wake),
                filled: false,
            }),
        )?;
        let (m, cv) = &wake.shards[slot.shard];
        let mut guard = m.lock();
        loop {
            if let Some(r) = slot.result.lock().take() {
                return r;
            }
            cv.wait(&mut guard);
        }
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

    /// Sign the current head of every tenant's chain (or only `tenant`), keep
    /// the checkpoints in the store and return them for publishing.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::NotFound`] for an unknown tenant.
    pub fn checkpoint_now(
        &self,
        tenant: Option<&TenantId>,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<Vec<SignedCheckpoint>> {
        let heads: Vec<(TenantId, u64, Link)> = {
            let index = self.shared.index.read();
            match tenant {
                Some(t) => {
                    let ti = index.get(t).ok_or(Error::NotFound)?;
                    vec![(t.clone(), ti.size(), ti.head)]
                }
                None => index
                    .iter()
                    .map(|(t, ti)| (t.clone(), ti.size(), ti.head))
                    .collect(),
            }
        };
        let mut out = Vec::new();
        for (t, size, head) in heads {
            let cp = key.sign(Checkpoint::new(&t, size, head, now));
            self.shared.store_checkpoint(&t, &cp)?;
            out.push(cp);
        }
        Ok(out)
    }

    /// Read and verify the prefix up to `through` for export (step one of
    /// retention). The file store prunes whole segments only, so `through`
    /// must be the last record of a sealed segment.
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the range is not such a prefix or does not verify.
    pub fn export(&self, tenant: &TenantId, through: u64) -> Result<Export> {
        if !self.segment_ends(tenant)?.contains(&through) {
            return Err(Error::PruneRefused {
                reason: "not the end of a sealed segment",
            });
        }
        export_prefix(self, tenant, through)
    }

    /// Last sequence numbers of the sealed segments of `tenant` (the points at
    /// which a prune may end).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn segment_ends(&self, tenant: &TenantId) -> Result<Vec<u64>> {
        let index = self.shared.index.read();
        let ti = index.get(tenant).ok_or(Error::NotFound)?;
        let mut ends = Vec::new();
        let mut last: Option<u32> = None;
        for (i, l) in ti.locs.iter().enumerate() {
            if last.is_some_and(|s| s != l.seg) {
                ends.push(ti.first_seq + i as u64 - 1);
            }
            last = Some(l.seg);
        }
        Ok(ends)
    }

    /// Prune the exported prefix: append and sync the prune record, then delete
    /// the segments holding the prefix (directory synced). Returns the prune
    /// record's sequence number.
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the receipt does not match the stored chain.
    pub fn prune(&self, receipt: &ExportReceipt, actor: &str, clock: &dyn Clock) -> Result<u64> {
        {
            let index = self.shared.index.read();
            let ti = index.get(&receipt.tenant).ok_or(Error::NotFound)?;
            let pos = receipt
                .through
                .checked_sub(ti.first_seq)
                .and_then(|p| usize::try_from(p).ok());
            let ok = receipt.first == ti.first_seq
                && pos
                    .is_some_and(|p| p + 1 < ti.locs.len() && ti.locs[p].seg != ti.locs[p + 1].seg);
            if !ok {
                return Err(Error::PruneRefused {
                    reason: "receipt does not match the stored prefix",
                });
            }
        }
        let link_ok = matches!(self.read_range(&receipt.tenant, receipt.through, receipt.through + 1)?.pop(), Some(Ok(r)) if r.link == receipt.boundary);
        if !link_ok {
            return Err(Error::PruneRefused {
                reason: "receipt does not match the stored prefix",
            });
        }
        let seq = self.append(prune_event(receipt, actor, clock)?)?;
        let mut index = self.shared.index.write();
        let ti = index.get_mut(&receipt.tenant).ok_or(Error::NotFound)?;
        let n = usize::try_from(receipt.through - ti.first_seq + 1)
            .map_err(|_| Error::SequenceExhausted)?;
        // Segment numbers are absolute; `seg_base` is the number of the first held.
        let cut = (ti.locs[n].seg - ti.seg_base) as usize;
        for seg in &ti.segments[..cut] {
            fs::remove_file(&seg.path)?;
        }
        sync_dir(&ti.dir)?;
        ti.segments.drain(..cut);
        ti.seg_base = ti.locs[n].seg;
        ti.locs.drain(..n);
        ti.first_seq = receipt.through + 1;
        ti.start_prev = receipt.boundary;
        for v in ti.subjects.values_mut() {
            v.retain(|s| *s > receipt.through);
        }
        ti.subjects.retain(|_, v| !v.is_empty());
        Ok(seq)
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
        Ok(())
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Shared {
    fn store_checkpoint(&self, tenant: &TenantId, cp: &SignedCheckpoint) -> Result<()> {
        let _g = self.checkpoint_file.lock();
        let dir = self.dir.join(tenant_dir_name(tenant));
        append_checkpoint_log(&dir.join("checkpoints.jsonl"), cp)?;
        Ok(())
    }
}

impl AuditRead for FileStore {
    fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut t: Vec<_> = self.shared.index.read().keys().cloned().collect();
        t.sort();
        Ok(t)
    }

    fn bounds(&self, tenant: &TenantId) -> Result<Bounds> {
        let index = self.shared.index.read();
        let ti = index.get(tenant).ok_or(Error::NotFound)?;
        Ok(Bounds {
            first_seq: ti.first_seq,
            start_prev: ti.start_prev,
            size: ti.size(),
            head: ti.head,
        })
    }

    fn read_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Result<StoredRecord>>> {
        let (first, locs, segs, damage) = {
            let index = self.shared.index.read();
            let Some(ti) = index.get(tenant) else {
                return Ok(Vec::new());
            };
            let lo = usize::try_from(from.saturating_sub(ti.first_seq))
                .unwrap_or(usize::MAX)
                .min(ti.locs.len());
            let hi = usize::try_from(to.saturating_sub(ti.first_seq))
                .unwrap_or(usize::MAX)
                .min(ti.locs.len())
                .max(lo);
            (
                ti.first_seq + lo as u64,
                ti.locs[lo..hi].to_vec(),
                (ti.seg_base, ti.segments.clone()),
                ti.damage_at.filter(|d| *d >= from && *d <= to),
            )
        };
        let mut out = Vec::with_capacity(locs.len() + 1);
        let mut i = 0;
        while i < locs.len() {
            // Read a run of frames in one segment with one read.
            let seg = locs[i].seg;
            let mut j = i;
            while j + 1 < locs.len()
                && locs[j + 1].seg == seg
                && locs[j + 1].offset
                    == locs[j].offset + u64::from(locs[j].len) + FRAME_OVERHEAD as u64
            {
                j += 1;
            }
            let start = locs[i].offset;
            let end = locs[j].offset + u64::from(locs[j].len) + FRAME_OVERHEAD as u64;
            let info = segs
                .1
                .get(seg.wrapping_sub(segs.0) as usize)
                .ok_or(Error::NotFound)?;
            let mut buf = vec![0u8; usize::try_from(end - start).map_err(|_| Error::NotFound)?];
            if let Err(e) = info.file.read_exact_at(&mut buf, start) {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    return Err(e.into());
                }
                out.push(Err(Error::Corrupt {
                    what: "segment shorter than indexed",
                    file: rel(&self.shared.dir, &info.path),
                    offset: start,
                }));
                return Ok(out);
            }
            for (k, loc) in locs[i..=j].iter().enumerate() {
                let seq = first + (i + k) as u64;
                let off = usize::try_from(loc.offset - start).map_err(|_| Error::NotFound)?;
                let frame = &buf[off..off + loc.len as usize + FRAME_OVERHEAD];
                match crate::store::segment::parse_frame(frame) {
                    Some((bytes, link)) => out.push(Ok(StoredRecord {
                        seq,
                        bytes: bytes.to_vec(),
                        link,
                    })),
                    None => {
                        out.push(Err(Error::Corrupt {
                            what: "frame checksum",
                            file: rel(&self.shared.dir, &info.path),
                            offset: loc.offset,
                        }));
                        return Ok(out);
                    }
                }
            }
            i = j + 1;
        }
        if damage.is_some() {
            out.push(Err(Error::Corrupt {
                what: "damaged frame",
                file: String::new(),
                offset: 0,
            }));
        }
        Ok(out)
    }

    fn subject_seqs(&self, tenant: &TenantId, subject: &str) -> Result<Vec<u64>> {
        Ok(self
            .shared
            .index
            .read()
            .get(tenant)
            .and_then(|t| t.subjects.get(subject).cloned())
            .unwrap_or_default())
    }

    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        let dir = self.shared.dir.join(tenant_dir_name(tenant));
        read_checkpoint_log(&dir.join("checkpoints.jsonl"))
    }
}

/// Per-tenant writer state.
#[derive(Debug)]
struct TenantWriter {
    dir: PathBuf,
    file: File,
    seg: u32,
    seg_len: u64,
    next_seq: u64,
    head: Link,
    buf: Vec<u8>,
    /// Committed on success: new segments and new records.
    new_segments: Vec<SegInfo>,
    new_locs: Vec<(Loc, Vec<String>)>,
    dirty: bool,
}

/// Per tenant: size and time of the last automatic checkpoint.
type LastCheckpoints = HashMap<TenantId, (u64, Timestamp)>;

struct Writer {
    shared: Arc<Shared>,
    durability: Durability,
    max_segment_bytes: u64,
    max_batch: usize,
    hook: Option<Arc<dyn IoHook>>,
    clock: Arc<dyn Clock>,
    tenants: HashMap<TenantId, TenantWriter>,
    auto: Option<(AutoCheckpoint, LastCheckpoints)>,
    wake: Arc<Wake>,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>) {
        let tick = self
            .auto
            .as_ref()
            .map_or(Duration::from_secs(3600), |(a, _)| {
                a.policy
                    .every
                    .clamp(Duration::from_millis(10), Duration::from_secs(1))
            });
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.auto_checkpoints();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            self.drain(rx, &mut batch);
            self.process(batch);
            self.wake.notify();
        }
        if self.durability != Durability::None && !self.shared.poisoned.load(Ordering::Acquire) {
            for tw in self.tenants.values() {
                if let Err(e) = tw.file.sync_data() {
                    tracing::error!(error = %e, "audit store: sync at close failed");
                }
            }
        }
    }

    /// Move whatever is queued into `batch` (up to the batch limit), without waiting.
    fn drain(&self, rx: &mpsc::Receiver<Msg>, batch: &mut Vec<Msg>) {
        while batch.len() < self.max_batch {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
    }

    fn io<T>(&self, f: impl FnOnce() -> std::io::Result<T>, sync: bool) -> std::io::Result<T> {
        if let Some(h) = &self.hook {
            if sync {
                h.before_sync()?
            } else {
                h.before_write()?
            }
        }
        f()
    }

    fn process(&mut self, batch: Vec<Msg>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for Msg::Append(_, reply) in batch {
                reply.send(Err(Error::Poisoned));
            }
            return;
        }
        let mut acks: Vec<(Reply, u64)> = Vec::with_capacity(batch.len());
        let mut failure: Option<std::io::Error> = None;
        for Msg::Append(event, reply) in batch {
            if failure.is_some() {
                acks.push((reply, u64::MAX));
                continue;
            }
            match self.stage(&event) {
                Ok(seq) => acks.push((reply, seq)),
                // The caller's own event was refused: nothing was written.
                Err(
                    e @ (Error::InvalidField { .. }
                    | Error::InvalidDiff
                    | Error::InvalidTenant
                    | Error::SequenceExhausted),
                ) => reply.send(Err(e)),
                // Anything else (I/O, RNG) may have left partial state: stop.
                Err(Error::Io(e)) => {
                    failure = Some(e);
                    acks.push((reply, u64::MAX));
                }
                Err(e) => {
                    failure = Some(std::io::Error::other(e.to_string()));
                    acks.push((reply, u64::MAX));
                }
            }
        }
        if failure.is_none()
            && let Err(e) = self.flush_all()
        {
            failure = Some(e);
        }
        if let Some(e) = failure {
            tracing::error!(error = %e, "audit store: I/O error, writer poisoned");
            self.shared.poisoned.store(true, Ordering::Release);
            let mut first = Some(e);
            for (reply, _) in acks {
                reply.send(Err(first.take().map_or(Error::Poisoned, Error::Io)));
            }
            return;
        }
        self.commit();
        // Checkpoint before acknowledging, so a count-based checkpoint covers
        // the batch that made it due by the time its callers return.
        self.auto_checkpoints();
        for (reply, seq) in acks {
            reply.send(Ok(seq));
        }
    }

    /// Create the tenant's directory and first segment.
    fn new_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        let dir = self.shared.dir.join(tenant_dir_name(tenant));
        self.io(|| fs::create_dir_all(&dir), false)?;
        self.io(|| sync_dir(&self.shared.dir), true)?;
        let (file, info, len) = self.create_segment(&dir, tenant, 0, Link::GENESIS)?;
        self.shared.index.write().insert(
            tenant.clone(),
            TenantIndex {
                dir: dir.clone(),
                segments: vec![info],
                ..TenantIndex::default()
            },
        );
        self.tenants.insert(
            tenant.clone(),
            TenantWriter {
                dir,
                file,
                seg: 0,
                seg_len: len,
                next_seq: 0,
                head: Link::GENESIS,
                buf: Vec::new(),
                new_segments: Vec::new(),
                new_locs: Vec::new(),
                dirty: false,
            },
        );
        Ok(())
    }

    /// Write a new segment under a temporary name, sync it, rename it into
    /// place and sync the directory.
    fn create_segment(
        &self,
        dir: &Path,
        tenant: &TenantId,
        first_seq: u64,
        prev_link: Link,
    ) -> Result<(File, SegInfo, u64)> {
        let mut segment_id = [0u8; 16];
        getrandom::fill(&mut segment_id).map_err(|_| Error::Rng)?;
        let header = SegmentHeader {
            tenant: tenant.clone(),
            first_seq,
            prev_link,
            segment_id,
        }
        .encode();
        let final_path = dir.join(segment_name(first_seq));
        let tmp = dir.join(format!("{}.tmp", segment_name(first_seq)));
        let mut f = self.io(
            || {
                OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&tmp)
            },
            false,
        )?;
        self.io(|| f.write_all(&header), false)?;
        if self.durability != Durability::None {
            self.io(|| f.sync_all(), true)?;
        }
        self.io(|| fs::rename(&tmp, &final_path), false)?;
        if self.durability != Durability::None {
            self.io(|| sync_dir(dir), true)?;
        }
        let file = OpenOptions::new().append(true).open(&final_path)?;
        let read = File::open(&final_path)?;
        Ok((
            file,
            SegInfo {
                path: final_path,
                file: Arc::new(read),
            },
            header.len() as u64,
        ))
    }

    fn stage(&mut self, event: &Event) -> Result<u64> {
        let tenant = event.tenant();
        if !self.tenants.contains_key(tenant) {
            self.new_tenant(tenant)?;
        }
        let (seq, head) = {
            let tw = self.tenants.get(tenant).ok_or(Error::Closed)?;
            (tw.next_seq, tw.head)
        };
        seq.checked_add(1).ok_or(Error::SequenceExhausted)?;
        let record = encode_record(seq, event)?;
        let link = chain_link(
            tenant.as_str().as_bytes(),
            seq,
            &head,
            &record_digest(&record),
        );
        let frame = encode_frame(&record, &link);
        let roll = {
            let tw = self.tenants.get(tenant).ok_or(Error::Closed)?;
            tw.seg_len + tw.buf.len() as u64 + frame.len() as u64 > self.max_segment_bytes
                && (tw.seq_in_segment() || !tw.buf.is_empty())
        };
        if roll {
            self.roll(tenant)?;
        }
        let tw = self.tenants.get_mut(tenant).ok_or(Error::Closed)?;
        let offset = tw.seg_len + tw.buf.len() as u64;
        tw.buf.extend_from_slice(&frame);
        let len =
            u32::try_from(record.len()).map_err(|_| Error::InvalidField { field: "record" })?;
        tw.new_locs.push((
            Loc {
                seg: tw.seg,
                offset,
                len,
            },
            event.subjects().to_vec(),
        ));
        tw.next_seq = seq + 1;
        tw.head = link;
        tw.dirty = true;
        Ok(seq)
    }

    fn flush(&self, tw: &mut TenantWriter) -> std::io::Result<()> {
        if !tw.buf.is_empty() {
            self.io(|| tw.file.write_all(&tw.buf), false)?;
            tw.seg_len += tw.buf.len() as u64;
            tw.buf.clear();
        }
        Ok(())
    }

    fn roll(&mut self, tenant: &TenantId) -> Result<()> {
        let mut tw = self.tenants.remove(tenant).ok_or(Error::Closed)?;
        let res = (|| -> Result<()> {
            self.flush(&mut tw)?;
            if self.durability != Durability::None {
                self.io(|| tw.file.sync_data(), true)?;
            }
            let (file, info, len) = self.create_segment(&tw.dir, tenant, tw.next_seq, tw.head)?;
            tw.file = file;
            tw.seg += 1;
            tw.seg_len = len;
            tw.new_segments.push(info);
            Ok(())
        })();
        self.tenants.insert(tenant.clone(), tw);
        res
    }

    fn flush_all(&mut self) -> std::io::Result<()> {
        let mut tenants = std::mem::take(&mut self.tenants);
        let res = (|| {
            for tw in tenants.values_mut().filter(|t| t.dirty) {
                self.flush(tw)?;
            }
            if self.durability == Durability::Fsync {
                for tw in tenants.values().filter(|t| t.dirty) {
                    self.io(|| tw.file.sync_data(), true)?;
                }
            }
            Ok(())
        })();
        self.tenants = tenants;
        res
    }

    fn commit(&mut self) {
        let mut index = self.shared.index.write();
        for (t, tw) in self.tenants.iter_mut().filter(|(_, t)| t.dirty) {
            let Some(ti) = index.get_mut(t) else { continue };
            ti.segments.append(&mut tw.new_segments);
            for (loc, subjects) in tw.new_locs.drain(..) {
                let seq = ti.size();
                for s in subjects {
                    ti.subjects.entry(s).or_default().push(seq);
                }
                ti.locs.push(loc);
            }
            ti.head = tw.head;
            tw.dirty = false;
        }
    }

    fn auto_checkpoints(&mut self) {
        let Some((auto, last)) = self.auto.as_mut() else {
            return;
        };
        let now = self.clock.now();
        let heads: Vec<(TenantId, u64, Link)> = self
            .shared
            .index
            .read()
            .iter()
            .map(|(t, ti)| (t.clone(), ti.size(), ti.head))
            .collect();
        for (t, size, head) in heads {
            let (last_size, last_time) = *last.entry(t.clone()).or_insert((0, now));
            if !auto.policy.due(size, last_size, last_time, now) {
                continue;
            }
            let cp = auto.key.sign(Checkpoint::new(&t, size, head, now));
            if let Err(e) = self.shared.store_checkpoint(&t, &cp) {
                tracing::error!(error = %e, tenant = %t, "audit store: could not keep checkpoint");
            }
            for sink in &auto.sinks {
                if let Err(e) = sink.publish(&cp) {
                    tracing::error!(error = %e, tenant = %t, "audit store: checkpoint sink failed");
                }
            }
            last.insert(t, (size, now));
        }
    }
}

impl TenantWriter {
    /// Whether the current segment already holds a record (never roll an empty one).
    fn seq_in_segment(&self) -> bool {
        self.seg_len > 0 && self.next_seq > 0
    }
}

type Loaded = (
    HashMap<TenantId, TenantIndex>,
    HashMap<TenantId, TenantWriter>,
);

/// Scan the store directory, build the index and (for writers) recover torn
/// tails and open the newest segment of each tenant for appending.
fn load(dir: &Path, write: bool) -> Result<Loaded> {
    let mut index = HashMap::new();
    let mut writers = HashMap::new();
    let mut tdirs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("t-"))
        })
        .collect();
    tdirs.sort();
    for tdir in tdirs {
        let name = tdir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let tenant = hex::decode(&name[2..])
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| TenantId::parse(&s).ok())
            .ok_or_else(|| Error::Corrupt {
                what: "tenant directory name",
                file: name.to_owned(),
                offset: 0,
            })?;
        let mut segs: Vec<PathBuf> = Vec::new();
        for e in fs::read_dir(&tdir)? {
            let p = e?.path();
            let n = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if n.ends_with(".seg.tmp") && write {
                // A roll that crashed before its rename: never referenced, remove.
                fs::remove_file(&p)?;
            } else if n.ends_with(".seg") {
                segs.push(p);
            }
        }
        segs.sort();
        if segs.is_empty() {
            continue;
        }
        let mut ti = TenantIndex {
            dir: tdir.clone(),
            ..TenantIndex::default()
        };
        let mut writer = None;
        let nsegs = segs.len();
        for (si, path) in segs.iter().enumerate() {
            let last = si + 1 == nsegs;
            let file_name = rel(dir, path);
            let bytes = fs::read(path)?;
            let parsed = parse_segment(&bytes).map_err(|_| Error::Corrupt {
                what: "segment header",
                file: file_name.clone(),
                offset: 0,
            })?;
            if parsed.header.tenant != tenant {
                return Err(Error::Corrupt {
                    what: "segment of another tenant",
                    file: file_name,
                    offset: 0,
                });
            }
            if si == 0 {
                ti.first_seq = parsed.header.first_seq;
                ti.start_prev = parsed.header.prev_link;
                ti.head = parsed.header.prev_link;
            } else if write
                && (parsed.header.first_seq != ti.size() || parsed.header.prev_link != ti.head)
            {
                return Err(Error::Corrupt {
                    what: "segment does not continue the previous one",
                    file: file_name,
                    offset: 0,
                });
            }
            if write {
                require_usable(&parsed, last, &file_name)?;
            }
            let seg = u32::try_from(si).map_err(|_| Error::SequenceExhausted)?;
            for f in &parsed.frames {
                let seq = ti.size();
                let record = &bytes[f.record_range()];
                if write
                    && !peek_header(record)
                        .is_ok_and(|h| h.seq == seq && h.tenant == tenant.as_str().as_bytes())
                {
                    return Err(Error::Corrupt {
                        what: "record out of sequence",
                        file: file_name,
                        offset: f.offset,
                    });
                }
                if let Ok((_, e)) = decode_record(record) {
                    for s in e.subjects() {
                        ti.subjects.entry(s.clone()).or_default().push(seq);
                    }
                }
                ti.locs.push(Loc {
                    seg,
                    offset: f.offset,
                    len: f.record_len,
                });
                ti.head = f.link;
            }
            let mut len = bytes.len() as u64;
            match parsed.end {
                SegmentEnd::Clean => {}
                SegmentEnd::TornTail {
                    valid_len,
                    whole_frame,
                } => {
                    if write {
                        tracing::warn!(file = %file_name, cut = len - valid_len, "audit store: cutting torn tail after a crash");
                        let f = OpenOptions::new().write(true).open(path)?;
                        f.set_len(valid_len)?;
                        f.sync_all()?;
                        len = valid_len;
                    } else if whole_frame || !last {
                        ti.damage_at.get_or_insert(ti.size());
                    }
                }
                SegmentEnd::Corrupt { .. } => {
                    ti.damage_at.get_or_insert(ti.size());
                }
            }
            ti.segments.push(SegInfo {
                path: path.clone(),
                file: Arc::new(File::open(path)?),
            });
            if last && write {
                writer = Some(TenantWriter {
                    dir: tdir.clone(),
                    file: OpenOptions::new().append(true).open(path)?,
                    seg,
                    seg_len: len,
                    next_seq: ti.size(),
                    head: ti.head,
                    buf: Vec::new(),
                    new_segments: Vec::new(),
                    new_locs: Vec::new(),
                    dirty: false,
                });
            }
            if !write && ti.damage_at.is_some() {
                break;
            }
        }
        if let Some(w) = writer {
            writers.insert(tenant.clone(), w);
        }
        index.insert(tenant, ti);
    }
    Ok((index, writers))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI32;

    use super::*;
    use crate::clock::FakeClock;
    use crate::verify::Verdict;

    /// Fails the n-th write or sync (counting from 1) with the given errno.
    #[derive(Debug)]
    struct FailAt {
        writes: AtomicI32,
        syncs: AtomicI32,
        errno: i32,
    }

    impl IoHook for FailAt {
        fn before_write(&self) -> std::io::Result<()> {
            if self.writes.fetch_sub(1, Ordering::SeqCst) == 1 {
                return Err(std::io::Error::from_raw_os_error(self.errno));
            }
            Ok(())
        }
        fn before_sync(&self) -> std::io::Result<()> {
            if self.syncs.fetch_sub(1, Ordering::SeqCst) == 1 {
                return Err(std::io::Error::from_raw_os_error(self.errno));
            }
            Ok(())
        }
    }

    fn event(i: u32) -> Event {
        let t = TenantId::parse("acme").unwrap();
        Event::builder(&t, "u", "x.y")
            .subject(&format!("s{}", i % 3))
            .build(&FakeClock::default())
            .unwrap()
    }

    fn injected(syncs: i32, writes: i32, errno: i32) {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(FailAt {
            writes: AtomicI32::new(writes),
            syncs: AtomicI32::new(syncs),
            errno,
        });
        let store = FileStore::open(dir.path(), FileStoreOptions::default().hook(hook)).unwrap();
        let mut acked = Vec::new();
        let mut failed = false;
        for i in 0..20 {
            match store.append(event(i)) {
                Ok(seq) => {
                    assert!(!failed, "nothing is acknowledged after the writer failed");
                    acked.push(seq);
                }
                Err(Error::Io(e)) => {
                    assert!(!failed);
                    assert_eq!(e.raw_os_error(), Some(errno));
                    failed = true;
                }
                Err(Error::Poisoned) => assert!(failed),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(failed && store.is_poisoned());
        drop(store);
        // Reopen: every acknowledged record is there and the chain continues.
        let store = FileStore::open(dir.path(), FileStoreOptions::default()).unwrap();
        let t = TenantId::parse("acme").unwrap();
        let size = store.bounds(&t).unwrap().size;
        assert!(size >= acked.len() as u64);
        let next = store.append(event(99)).unwrap();
        assert_eq!(next, size);
        let r = store.verify(&t, None, &[]).unwrap();
        assert_eq!(r.verdict, Verdict::UnanchoredTail);
        assert_eq!(r.size, size + 1);
    }

    /// A slot the writer drops without answering (a writer that went away)
    /// answers `Closed` and wakes its caller, so `append` never hangs.
    #[test]
    fn dropped_slot_answers_closed() {
        let wake = Arc::new(Wake::default());
        let slot = Arc::new(Slot {
            result: Mutex::new(None),
            shard: 1,
        });
        let tx = SlotTx {
            slot: Arc::clone(&slot),
            wake: Arc::clone(&wake),
            filled: false,
        };
        let waiter = {
            let (slot, wake) = (Arc::clone(&slot), Arc::clone(&wake));
            std::thread::spawn(move || {
                let (m, cv) = &wake.shards[slot.shard];
                let mut g = m.lock();
                loop {
                    if let Some(r) = slot.result.lock().take() {
                        return r;
                    }
                    cv.wait(&mut g);
                }
            })
        };
        drop(tx);
        assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
        // A filled slot keeps its answer.
        let mut tx = SlotTx {
            slot: Arc::clone(&slot),
            wake,
            filled: false,
        };
        tx.fill(Ok(7));
        drop(tx);
        assert!(matches!(slot.result.lock().take(), Some(Ok(7))));
    }

    #[test]
    fn eio_on_fdatasync_poisons_the_writer() {
        // Syncs: 1 = store dir, 2 = segment, 3 = tenant dir; fail a later data sync.
        injected(6, i32::MAX, 5 /* EIO */);
    }

    #[test]
    fn enospc_on_write_poisons_the_writer() {
        injected(i32::MAX, 8, 28 /* ENOSPC */);
    }

    #[test]
    fn segments_roll_and_reopen_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let t = TenantId::parse("acme").unwrap();
        let opts = || {
            FileStoreOptions::default()
                .durability(Durability::OsBuffered)
                .max_segment_bytes(4096)
        };
        let store = FileStore::open(dir.path(), opts()).unwrap();
        for i in 0..200 {
            assert_eq!(store.append(event(i)).unwrap(), u64::from(i));
        }
        assert!(store.segment_ends(&t).unwrap().len() > 3);
        assert!(matches!(
            FileStore::open(dir.path(), opts()),
            Err(Error::Locked)
        ));
        store.close().unwrap();
        let store = FileStore::open(dir.path(), opts()).unwrap();
        assert_eq!(store.append(event(0)).unwrap(), 200);
        assert_eq!(store.verify(&t, None, &[]).unwrap().size, 201);
        assert_eq!(store.subject_seqs(&t, "s1").unwrap().len(), 67);
    }

    #[test]
    fn auto_checkpoints_by_count_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let t = TenantId::parse("acme").unwrap();
        let clock = Arc::new(FakeClock::new(Timestamp::from_unix_micros(1_000_000)));
        let key = SigningKey::from_bytes("k", &[1; 32]).unwrap();
        let trusted = crate::TrustedKeys::new().with(key.verifying_key());
        let sink = Arc::new(crate::MemorySink::new());
        let policy = CheckpointPolicy {
            every_records: std::num::NonZeroU64::new(10).unwrap(),
            every: Duration::from_secs(5),
        };
        let opts = FileStoreOptions::default()
            .clock(clock.clone())
            .auto_checkpoint(AutoCheckpoint::new(key, policy).sink(sink.clone()));
        let store = FileStore::open(dir.path(), opts).unwrap();
        for i in 0..25 {
            store.append(event(i)).unwrap();
        }
        let sizes: Vec<u64> = sink.published().iter().map(|c| c.checkpoint.size).collect();
        assert!(
            sizes.len() >= 2 && sizes.iter().all(|s| *s >= 10),
            "{sizes:?}"
        );
        assert_eq!(store.checkpoints(&t).unwrap().len(), sizes.len());
        clock.advance_micros(6_000_000);
        store.append(event(0)).unwrap();
        // The writer's tick or the append's batch made a time-based checkpoint.
        let last = sink.published().last().cloned().unwrap();
        assert!(
            last.checkpoint.size >= 25 && last.checkpoint.time == clock.now(),
            "{last:?}"
        );
        assert_eq!(
            store.verify(&t, Some(&trusted), &[]).unwrap().verdict,
            Verdict::Intact
        );
    }
}
