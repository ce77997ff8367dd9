//! The writer thread: batches appends, writes and syncs them (group commit), rolls segments.

use super::recovery::Damage;
use super::*;

/// How a caller hears back: a callback ([`FileStore::append_with`]) or a slot
/// a blocked [`FileStore::append`] waits on.
pub(super) enum Reply {
    Callback(Box<dyn FnOnce(Result<u64>) + Send>),
    Slot(SlotTx),
}

impl Reply {
    /// Deliver `r` (a blocked caller is woken at once).
    pub(super) fn send(self, r: Result<u64>) {
        match self {
            Reply::Callback(f) => f(r),
            Reply::Slot(mut s) => s.fill(r),
        }
    }
}

/// Where a blocked [`FileStore::append`] waits for its answer: the writer
/// fills it and unparks exactly that caller's thread, so a batch wakes its
/// own callers and no one else (callers waiting for a later batch sleep on).
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) result: Mutex<Option<Result<u64>>>,
    pub(super) thread: std::thread::Thread,
}

impl Slot {
    /// A slot for the calling thread to wait on.
    pub(super) fn for_this_thread() -> Arc<Self> {
        Arc::new(Self {
            result: Mutex::new(None),
            thread: std::thread::current(),
        })
    }

    /// Wait (on the thread that made the slot) until it is filled.
    pub(super) fn wait(&self) -> Result<u64> {
        loop {
            if let Some(r) = self.result.lock().take() {
                return r;
            }
            // Returns at once if the writer unparked since the check above.
            std::thread::park();
        }
    }
}

/// The writer's end of a slot: dropping it unfilled (a writer that went away)
/// answers [`Error::Closed`], so a blocked caller never waits forever.
pub(super) struct SlotTx {
    pub(super) slot: Arc<Slot>,
    pub(super) filled: bool,
}

impl SlotTx {
    pub(super) fn fill(&mut self, r: Result<u64>) {
        *self.slot.result.lock() = Some(r);
        self.filled = true;
        self.slot.thread.unpark();
    }
}

impl Drop for SlotTx {
    fn drop(&mut self) {
        if !self.filled {
            self.fill(Err(Error::Closed));
        }
    }
}

pub(super) enum Msg {
    Append(Event, Reply),
}

/// Per-tenant writer state.
#[derive(Debug)]
pub(super) struct TenantWriter {
    pub(super) dir: PathBuf,
    pub(super) file: File,
    pub(super) seg: u32,
    pub(super) seg_len: u64,
    /// Length of the segment file: past `seg_len` it holds zeros written
    /// ahead of the records (see [`PREALLOC_BYTES`]), so that syncing a batch
    /// overwrites allocated blocks instead of growing the file.
    pub(super) alloc: u64,
    /// Format version of the current segment (an old one is rolled before the
    /// first append).
    pub(super) version: u8,
    /// Length of the current segment known to be on disk: the synced mark
    /// every new frame carries (see [`crate::store::segment`]).
    pub(super) synced: u64,
    pub(super) next_seq: u64,
    pub(super) head: Link,
    pub(super) buf: Vec<u8>,
    /// Committed on success: new segments and new records.
    pub(super) new_segments: Vec<SegInfo>,
    pub(super) new_locs: Vec<(Loc, Vec<String>, crate::merkle::Hash)>,
    pub(super) dirty: bool,
    /// The chain's Merkle tiles (`None`: not kept, see `tiles`).
    pub(super) tiles: Option<super::tiles::TileWriter>,
}

/// Most bytes of zeros a [`Durability::Fsync`] writer keeps written ahead of
/// the records of its open segment; never more than the segment already
/// holds, so a store of many quiet tenants (one open segment each) at most
/// doubles the size of their open segments, while a busy one soon writes
/// into 1 MiB of zeros. `fdatasync` after a write that grows a file
/// must commit the file system's journal (the size changed); after
/// overwriting blocks already allocated and synced it flushes the data alone:
/// on the 2026-11-29 VM (ext4 on a virtual disk) a 10 KB `write` +
/// `fdatasync` took 99-103 µs median as an overwrite against 187-239 µs as an
/// append, and the writer's sync per batch fell by about 30%. The zeros are
/// the segment's end to every reader (a zero-filled tail, see
/// [`crate::store::segment`]); they are cut when the segment is sealed and
/// when the store closes, and by recovery after a crash.
pub(super) const PREALLOC_BYTES: u64 = 1 << 20;

/// Zeros written at a time when preallocating.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Per tenant: size, time and head of the last automatic checkpoint (no
/// head: none signed by this writer yet).
pub(super) type LastCheckpoints = HashMap<TenantId, (u64, Timestamp, Option<Link>)>;

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) durability: Durability,
    pub(super) max_segment_bytes: u64,
    pub(super) max_batch: usize,
    pub(super) hook: Option<Arc<dyn IoHook>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) tenants: HashMap<TenantId, TenantWriter>,
    /// Tenants whose chains are damaged: their appends are refused.
    pub(super) blocked: HashMap<TenantId, Damage>,
    pub(super) auto: Option<(AutoCheckpoint, LastCheckpoints)>,
    /// Sealed segments to index (see `subject_index`).
    pub(super) indexer: mpsc::Sender<PathBuf>,
}

impl Writer {
    pub(super) fn run(&mut self, rx: &mpsc::Receiver<Msg>) {
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
        }
        if self.durability != Durability::None && !self.shared.poisoned.load(Ordering::Acquire) {
            // The writer is done with them (and `current_segment_path`
            // borrows the writer while each is cut).
            let mut tenants = std::mem::take(&mut self.tenants);
            for tw in tenants.values_mut() {
                // The zeros ahead of the records go: a closed segment ends
                // at its last frame (and a reopen has no tail to cut).
                if let Err(e) = tw.cut_tail() {
                    tracing::error!(error = %e, "audit store: could not cut the preallocated tail at close");
                    continue;
                }
                if let Err(e) = tw.file.sync_data() {
                    tracing::error!(error = %e, "audit store: sync at close failed");
                    continue;
                }
                // The whole segment is on disk now: say so, so that damage
                // to the last records is not taken for a torn write later.
                let seg = tw
                    .new_segments
                    .last()
                    .map(|s| s.path.clone())
                    .or_else(|| self.current_segment_path(tw));
                if let Some(seg) = seg
                    && let Err(e) = super::recovery::write_synced_mark(&tw.dir, &seg, tw.seg_len)
                {
                    tracing::error!(error = %e, "audit store: could not record the synced mark at close");
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

    pub(super) fn process(&mut self, batch: Vec<Msg>) {
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
                    | Error::Corrupt { .. }
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
        let synced = self.synced_header(len);
        let tiles = start_tiles(&dir);
        self.shared.index.write().insert(
            tenant.clone(),
            TenantIndex {
                dir: dir.clone(),
                segments: vec![info],
                frontier: Some(crate::merkle::Frontier::new()),
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
                alloc: len,
                version: SEGMENT_VERSION,
                synced,
                next_seq: 0,
                head: Link::GENESIS,
                buf: Vec::new(),
                new_segments: Vec::new(),
                new_locs: Vec::new(),
                dirty: false,
                tiles,
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
            version: SEGMENT_VERSION,
            tenant: tenant.clone(),
            first_seq,
            prev_link,
            segment_id,
        }
        .encode();
        let final_path = dir.join(segment_name(first_seq));
        let tmp = dir.join(format!("{}.tmp", segment_name(first_seq)));
        // Never through a link planted at the temporary name.
        let mut f = self.io(|| super::recovery::create_exclusive(&tmp), false)?;
        self.io(|| f.write_all(&header), false)?;
        if self.durability != Durability::None {
            self.io(|| f.sync_all(), true)?;
        }
        self.io(|| fs::rename(&tmp, &final_path), false)?;
        if self.durability != Durability::None {
            self.io(|| sync_dir(dir), true)?;
        }
        // Positioned writes (`write_all_at`), not append mode: the file may
        // hold preallocated zeros past the records (read back before they
        // are overwritten or cut).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&final_path)?;
        let read = File::open(&final_path)?;
        Ok((
            file,
            SegInfo {
                path: final_path,
                file: Arc::new(read),
                version: SEGMENT_VERSION,
            },
            header.len() as u64,
        ))
    }

    fn stage(&mut self, event: &Event) -> Result<u64> {
        let tenant = event.tenant();
        // (Each map lookup hashes the tenant: one per record where possible.)
        if !self.blocked.is_empty()
            && let Some(d) = self.blocked.get(tenant)
        {
            return Err(d.error());
        }
        let tw = match self.tenants.get(tenant) {
            Some(tw) => tw,
            None => {
                self.new_tenant(tenant)?;
                self.tenants.get(tenant).ok_or(Error::Closed)?
            }
        };
        let (seq, head) = (tw.next_seq, tw.head);
        seq.checked_add(1).ok_or(Error::SequenceExhausted)?;
        let record = encode_record(seq, event)?;
        let digest = record_digest(&record);
        let link = chain_link(tenant.as_str().as_bytes(), seq, &head, &digest);
        let frame_len = (record.len() + FRAME_OVERHEAD_V2) as u64;
        // A segment of an older format is never appended to: the first
        // append after an upgrade starts a new one.
        let roll = tw.version < SEGMENT_VERSION
            || (tw.seg_len + tw.buf.len() as u64 + frame_len > self.max_segment_bytes
                && (tw.seq_in_segment() || !tw.buf.is_empty()));
        if roll {
            self.roll(tenant)?;
        }
        let tw = self.tenants.get_mut(tenant).ok_or(Error::Closed)?;
        let offset = tw.seg_len + tw.buf.len() as u64;
        encode_frame_into(&mut tw.buf, SEGMENT_VERSION, &record, &link, tw.synced);
        let len =
            u32::try_from(record.len()).map_err(|_| Error::InvalidField { field: "record" })?;
        let leaf = crate::merkle::leaf_hash(&digest);
        tw.new_locs.push((
            Loc {
                seg: tw.seg,
                offset,
                len,
            },
            event
                .subject_keys()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            leaf,
        ));
        tw.next_seq = seq + 1;
        tw.head = link;
        tw.dirty = true;
        if let Some(t) = &mut tw.tiles
            && let Err(e) = t.push(leaf)
        {
            // Derived data: appends go on; proofs fall back to computing the
            // missing tiles from the records, and the next open rebuilds them.
            tracing::warn!(dir = %tw.dir.display(), error = %e, "audit store: could not write a Merkle tile; tiles stop until the store is reopened");
            tw.tiles = None;
        }
        Ok(seq)
    }

    /// The path of the segment `tw` appends to.
    fn current_segment_path(&self, tw: &TenantWriter) -> Option<PathBuf> {
        let index = self.shared.index.read();
        index.values().find(|ti| ti.dir == tw.dir).and_then(|ti| {
            ti.segments
                .get(tw.seg.wrapping_sub(ti.seg_base) as usize)
                .map(|s| s.path.clone())
        })
    }

    /// The synced mark of a segment just created with a `len`-byte header.
    fn synced_header(&self, len: u64) -> u64 {
        if self.durability == Durability::None {
            0
        } else {
            len
        }
    }

    fn flush(&self, tw: &mut TenantWriter) -> std::io::Result<()> {
        if !tw.buf.is_empty() {
            let ahead = tw.alloc.saturating_sub(tw.seg_len);
            tw.check_zeros(tw.seg_len, ahead.min(tw.buf.len() as u64))?;
            self.io(|| tw.file.write_all_at(&tw.buf, tw.seg_len), false)?;
            tw.seg_len += tw.buf.len() as u64;
            tw.alloc = tw.alloc.max(tw.seg_len);
            tw.buf.clear();
            if self.durability == Durability::Fsync
                && tw.seg_len + tw.seg_len.min(PREALLOC_BYTES) / 4 >= tw.alloc
            {
                self.preallocate(tw);
            }
        }
        Ok(())
    }

    /// Write zeros ahead of the records of `tw`'s segment: as many as it
    /// holds, at most [`PREALLOC_BYTES`], never past its size limit. The
    /// batch's own `fdatasync` makes them durable. Best effort: the zeros
    /// only make syncs faster, so a failure (a full disk) is logged and the
    /// appends go on; the records' own write and sync decide those.
    fn preallocate(&self, tw: &mut TenantWriter) {
        let ahead = tw.seg_len.min(PREALLOC_BYTES);
        let target = (tw.seg_len + ahead).min(self.max_segment_bytes);
        while tw.alloc < target {
            let n = usize::try_from(target - tw.alloc)
                .unwrap_or(usize::MAX)
                .min(ZEROS.len());
            let written = match &self.hook {
                Some(h) => h.before_preallocate(),
                None => Ok(()),
            }
            .and_then(|()| tw.file.write_all_at(&ZEROS[..n], tw.alloc));
            if let Err(e) = written {
                tracing::warn!(dir = %tw.dir.display(), error = %e, "audit store: could not preallocate a segment tail; appends go on");
                // Part of the chunk may have been written: what the file holds.
                tw.alloc = tw
                    .file
                    .metadata()
                    .map_or(tw.alloc, |m| m.len())
                    .max(tw.seg_len);
                return;
            }
            tw.alloc += n as u64;
        }
    }

    /// Cut the zeros ahead of the records (before sealing the segment).
    fn cut_preallocated(&self, tw: &mut TenantWriter) -> std::io::Result<()> {
        if tw.alloc > tw.seg_len {
            self.io(|| tw.cut_tail(), false)?;
        }
        Ok(())
    }

    fn roll(&mut self, tenant: &TenantId) -> Result<()> {
        let mut tw = self.tenants.remove(tenant).ok_or(Error::Closed)?;
        let res = (|| -> Result<()> {
            self.flush(&mut tw)?;
            self.cut_preallocated(&mut tw)?;
            if self.durability != Durability::None {
                self.io(|| tw.file.sync_data(), true)?;
            }
            let sealed = match tw.new_segments.last() {
                Some(s) => Some(s.path.clone()),
                None => self.current_segment_path(&tw),
            };
            let (file, info, len) = self.create_segment(&tw.dir, tenant, tw.next_seq, tw.head)?;
            if let Some(p) = sealed {
                // Best effort: without an index the segment is decoded on open.
                let _ = self.indexer.send(p);
            }
            tw.file = file;
            tw.seg += 1;
            tw.seg_len = len;
            tw.alloc = len;
            tw.version = SEGMENT_VERSION;
            tw.synced = self.synced_header(len);
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
                for tw in tenants.values_mut().filter(|t| t.dirty) {
                    self.io(|| tw.file.sync_data(), true)?;
                    tw.synced = tw.seg_len;
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
            for (loc, subjects, leaf) in tw.new_locs.drain(..) {
                let seq = ti.size();
                if let Some(f) = &mut ti.frontier {
                    f.push(leaf);
                }
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
        let now = self.clock.now();
        if let Some((_, last)) = self.auto.as_mut() {
            // A tenant's interval starts when the writer first sees it.
            for t in self.shared.index.read().keys() {
                if !last.contains_key(t) {
                    last.insert(t.clone(), (0, now, None));
                }
            }
        }
        let Some((auto, last)) = self.auto.as_ref() else {
            return;
        };
        let heads: Vec<(TenantId, Bounds, Option<crate::merkle::Frontier>)> = self
            .shared
            .index
            .read()
            .iter()
            // Never sign a damaged chain (its appends are refused too).
            .filter(|(t, ti)| ti.damage_at.is_none() && !self.blocked.contains_key(*t))
            .map(|(t, ti)| (t.clone(), ti.bounds(), ti.frontier.clone()))
            .collect();
        let mut signed = Vec::new();
        let mut refused = Vec::new();
        for (t, b, frontier) in heads {
            let (last_size, last_time, last_head) = last.get(&t).copied().unwrap_or((0, now, None));
            if !auto.policy.due(b.size, last_size, last_time, now) {
                continue;
            }
            // The root is the writer's own, from the records it read at open
            // and appended since; a chain pruned before this open starts from
            // the edge kept with a rooted checkpoint since the prune.
            let frontier = frontier.or_else(|| self.pruned_edge(&t, &b, &auto.key));
            let mut unsigned = Checkpoint::new(&t, b.size, b.head, now);
            if let Some(f) = &frontier {
                unsigned = unsigned.with_root(f.root());
            }
            let cp = auto.key.sign(unsigned);
            // Root cause of signing over tampering: the head was signed as the
            // writer remembered it, without reading back what the segments
            // hold, so records changed on disk since the last checkpoint got
            // a fresh signature. Verify that range first.
            let since = last_head.map(|h| (last_size, h));
            match verify_before_signing(&self.shared, &t, &b, &auto.key, &cp, since) {
                Ok(None) => {}
                Ok(Some((verdict, seq))) => {
                    tracing::error!(tenant = %t, verdict = ?verdict, seq = ?seq,
                        "audit store: chain does not verify; refusing to sign an automatic checkpoint and refusing appends to this tenant");
                    refused.push((t, seq.unwrap_or(b.size)));
                    continue;
                }
                Err(e) => {
                    tracing::error!(tenant = %t, error = %e,
                        "audit store: could not verify the chain before an automatic checkpoint; not signing");
                    continue;
                }
            }
            if let Err(e) = self.shared.store_checkpoint(&t, &cp, frontier.as_ref()) {
                tracing::error!(error = %e, tenant = %t, "audit store: could not keep checkpoint");
            }
            for sink in &auto.sinks {
                if let Err(e) = sink.publish(&cp) {
                    tracing::error!(error = %e, tenant = %t, "audit store: checkpoint sink failed");
                }
            }
            signed.push((t, (b.size, now, Some(b.head))));
        }
        if let Some((_, last)) = self.auto.as_mut() {
            last.extend(signed);
        }
        for (t, seq) in refused {
            self.blocked.insert(
                t.clone(),
                Damage::found(
                    "chain does not verify (found before an automatic checkpoint)",
                    &t,
                    seq,
                ),
            );
        }
    }
}

impl Writer {
    /// The Merkle edge over `b` of a chain pruned before this open (the
    /// writer has none): from the newest rooted checkpoint `key` signed since
    /// the prune whose edge was kept, extended with the records since, and
    /// adopted as the writer's. `None` (signed with the head only) without
    /// one, or when it cannot be read.
    fn pruned_edge(
        &self,
        t: &TenantId,
        b: &Bounds,
        key: &SigningKey,
    ) -> Option<crate::merkle::Frontier> {
        if b.first_seq == 0 {
            return None;
        }
        let keys = crate::checkpoint::TrustedKeys::new().with(key.verifying_key());
        let none = |_: &Checkpoint| Ok(None);
        match self.shared.frontier_from_edges(t, b, &keys, &none) {
            Ok(Some(Some(f))) => {
                self.shared.adopt_frontier(t, b, &f);
                Some(f)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(tenant = %t, error = %e, "audit store: could not read the Merkle edge of a pruned chain; signing the head only");
                None
            }
        }
    }
}

/// Whether the writer may sign `candidate` (the head in `b`): `None` when
/// the records verify up to it, else the verdict and first failing record.
/// Verification starts at the writer's own last checkpoint (`since`), else
/// at the newest checkpoint in the store that this key signed and that
/// still matches, else at the chain's start; its cost is the records since.
fn verify_before_signing(
    shared: &Shared,
    tenant: &TenantId,
    b: &Bounds,
    key: &SigningKey,
    candidate: &SignedCheckpoint,
    since: Option<(u64, Link)>,
) -> Result<Option<(crate::verify::Verdict, Option<u64>)>> {
    use crate::verify::{Start, Verifier};
    let keys = crate::checkpoint::TrustedKeys::new().with(key.verifying_key());
    let matches =
        |r: &crate::verify::VerifyReport| r.verdict.is_ok() && r.size == b.size && r.head == b.head;
    let stored = shared.checkpoints(tenant)?;
    // A checkpoint this key signed beyond the head: the chain was cut back
    // below a size already signed, so the candidate would sign a fork of it
    // (the ranges checked below all end at the head and never see it).
    if super::signing::signed_beyond(&stored, tenant, b.size, &keys).is_some() {
        return Ok(Some((crate::verify::Verdict::Truncated, Some(b.size))));
    }
    let from = since.filter(|(s, _)| *s >= b.first_seq.max(1)).or_else(|| {
        stored
            .iter()
            .filter(|c| c.checkpoint.origin == crate::checkpoint::origin_for(tenant))
            .filter(|c| c.checkpoint.size >= b.first_seq.max(1) && c.checkpoint.size <= b.size)
            .filter(|c| c.verify(&keys).is_ok())
            .max_by_key(|c| c.checkpoint.size)
            .map(|c| (c.checkpoint.size, c.checkpoint.head))
    });
    if let Some((seq, prev)) = from {
        let records = shared.read_range(tenant, seq, b.size)?;
        let r =
            Verifier::new(tenant, &[], None).verify_range(Start::Trusted { seq, prev }, records)?;
        if matches(&r) {
            return Ok(None);
        }
        if since.is_some() {
            return Ok(Some((r.verdict, r.seq)));
        }
    }
    // The whole chain, with the candidate as an anchor (which also covers a
    // prune since the last checkpoint).
    let records = shared.read_range(tenant, b.first_seq, b.size)?;
    let r = Verifier::new(tenant, &stored, Some(&keys))
        .anchors(std::slice::from_ref(candidate))
        .verify_log(crate::store::verify_start(b), records)?;
    if r.verdict == crate::verify::Verdict::Intact && r.size == b.size && r.head == b.head {
        Ok(None)
    } else {
        Ok(Some((r.verdict, r.seq)))
    }
}

impl TenantWriter {
    /// Cut the zeros ahead of the records, once [`Self::check_zeros`] found
    /// them still zeros (at close, and before a segment is sealed).
    fn cut_tail(&mut self) -> std::io::Result<()> {
        if self.alloc > self.seg_len {
            self.check_zeros(self.seg_len, self.alloc - self.seg_len)?;
            self.file.set_len(self.seg_len)?;
            self.alloc = self.seg_len;
        }
        Ok(())
    }

    /// Check that `len` bytes at `at` in the preallocated tail still hold
    /// the zeros the writer put there. Anything else was written by someone
    /// else (the frames are unkeyed, so they may even chain): overwriting or
    /// cutting it would destroy the evidence, so the writer stops instead
    /// (the store is poisoned, the bytes stay for `verify` and `repair`).
    fn check_zeros(&self, at: u64, len: u64) -> std::io::Result<()> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.file.read_exact_at(&mut buf, at)?;
        if let Some(i) = buf.iter().position(|b| *b != 0) {
            tracing::error!(dir = %self.dir.display(), segment = self.seg, offset = at + i as u64,
                "audit store: bytes the writer did not write in the preallocated tail of a segment; refusing to overwrite or cut them");
            return Err(std::io::Error::other(
                "bytes the writer did not write in the preallocated tail of a segment",
            ));
        }
        Ok(())
    }

    /// Whether the current segment already holds a record (never roll an empty one).
    pub(super) fn seq_in_segment(&self) -> bool {
        self.seg_len > 0 && self.next_seq > 0
    }
}

/// The tile writer of a new chain in `tdir` (none if its directory cannot be
/// made: tiles are an optimisation, never a reason to refuse an append).
fn start_tiles(tdir: &Path) -> Option<super::tiles::TileWriter> {
    super::tiles::TileWriter::start(tdir)
        .inspect_err(|e| tracing::warn!(dir = %tdir.display(), error = %e, "audit store: no Merkle tiles for this chain"))
        .ok()
}
