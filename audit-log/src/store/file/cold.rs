//! Cold reads of one tenant's chain: open fast, read only what is asked for.
//!
//! [`FileStore::open_read_only`] loads the whole store: it reads, checks and
//! hashes every segment of every tenant, so a process that only wants one
//! DSAR report (`hisn audit report`) paid for the whole log (4.9 s at two
//! million records). A [`TenantReader`] opens one tenant's chain from the
//! segment headers, the persisted per-segment indexes (`.sidx`: subject keys
//! and record locations, see `subject_index`) and the open segment, and then
//! reads only the records a call asks for.
//!
//! It answers the same [`AuditRead`] calls as the store, with the same
//! verdicts: a DSAR report through it keeps only records whose decoded
//! content names the subject and proves each one against a verified
//! checkpoint exactly as [`AuditRead::subject_report`] does on a [`FileStore`].
//! Whatever it cannot read cheaply and safely falls back to the full path:
//! a segment whose index is missing, stale or damaged is read and decoded
//! whole; a store with anything unusual (a prune interrupted by a crash,
//! segments that do not continue one another, damage in a segment) is opened
//! with [`FileStore::open_read_only`] for that tenant.

use std::sync::OnceLock;

use super::subject_index::{self, Header};
use super::*;

/// A sealed segment read through its persisted index.
#[derive(Debug)]
struct ColdSegment {
    path: PathBuf,
    file: File,
    version: u8,
    first_seq: u64,
    count: u64,
    len: u64,
    index: Option<(File, Header)>,
    /// The segment decoded whole, once its index was found wanting.
    full: OnceLock<Option<Decoded>>,
}

/// A segment read whole: frame locations and subject keys.
#[derive(Debug)]
struct Decoded {
    locs: Vec<(u64, u32)>,
    subjects: subject_index::SegSubjects,
    /// Whether the segment ends cleanly after its frames.
    clean: bool,
}

/// The open (newest) segment: read whole when the reader opens.
#[derive(Debug)]
struct OpenSegment {
    bytes: Vec<u8>,
    first_seq: u64,
    frames: Vec<crate::store::segment::FrameRef>,
}

#[derive(Debug)]
struct Lazy {
    tenant: TenantId,
    dir: PathBuf,
    sealed: Vec<ColdSegment>,
    open: OpenSegment,
    bounds: Bounds,
    tiles: super::tiles::TileReader,
}

#[derive(Debug)]
enum Inner {
    /// No chain for this tenant.
    Empty,
    Lazy(Box<Lazy>),
    /// Something unusual: the full read-only open, for this tenant's verdicts.
    Full(FileStore),
}

/// A read-only view of one tenant's chain in a file store that reads on
/// demand, for one-off reads from a new process (`hisn audit report`).
/// Opening reads the segment headers, the headers of the persisted indexes
/// and the open segment; subject lookups read one bucket of each index;
/// record reads read those records.
///
/// It answers the same [`AuditRead`] calls as a [`FileStore`], with the same
/// verdicts: a DSAR report through it keeps only records whose decoded
/// content names the subject and proves each one against a verified
/// checkpoint. Whatever it cannot read cheaply and safely falls back: a
/// segment whose index is missing, stale or damaged is decoded whole, and a
/// chain with damage or an interrupted prune is read with
/// [`FileStore::open_read_only`].
#[derive(Debug)]
pub struct TenantReader {
    tenant: TenantId,
    tdir: PathBuf,
    inner: Inner,
}

/// Bytes read for a segment header (the longest header is 134 bytes).
const HEADER_READ: usize = 256;

impl TenantReader {
    /// Open `tenant`'s chain in the store at `dir` for reading. No lock is
    /// taken and nothing is written; a writer may hold the store meanwhile
    /// (records it appends after this call are not seen).
    ///
    /// # Errors
    /// [`Error::NotFound`] when `dir` is not a directory, [`Error::Io`], and
    /// what [`FileStore::open_read_only`] returns when it is fallen back to.
    pub fn open(dir: impl AsRef<Path>, tenant: &TenantId) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound);
        }
        let tdir = dir.join(tenant_dir_name(tenant));
        if tdir.exists() && !tdir.is_dir() {
            // Not something this store writes: someone replaced the chain.
            return Err(Error::Corrupt {
                what: "tenant directory is not a directory",
                file: tenant_dir_name(tenant),
                offset: 0,
            });
        }
        let inner = if tdir.is_dir() {
            match open_lazy(&dir, &tdir, tenant)? {
                Some(l) => Inner::Lazy(Box::new(l)),
                None => Inner::Full(FileStore::open_read_only(&dir)?),
            }
        } else {
            Inner::Empty
        };
        Ok(Self {
            tenant: tenant.clone(),
            tdir,
            inner,
        })
    }

    /// [`FileStore::check_subject_indexes`] for this reader's tenant, over
    /// the segments it reads: each persisted subject index compared with its
    /// segment's records. A report trusts an index that passes its own
    /// checksums (it has no MAC) to list every record naming the subject, so
    /// an index rewritten to omit someone hides their records from
    /// [`AuditRead::subject_report`] without any other sign; run this before
    /// handing a report out (`hisn audit report` does, and refuses on a
    /// mismatch). It decodes every sealed segment of the tenant once.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn check_subject_indexes(&self) -> Result<Vec<super::IndexMismatch>> {
        match &self.inner {
            Inner::Empty => Ok(Vec::new()),
            Inner::Lazy(l) => {
                let segments: Vec<PathBuf> = l.sealed.iter().map(|s| s.path.clone()).collect();
                super::read::check_indexes(&segments)
            }
            Inner::Full(f) => match f.check_subject_indexes(&self.tenant) {
                Err(Error::NotFound) => Ok(Vec::new()),
                r => r,
            },
        }
    }

    /// Whether the reader fell back to reading the whole store (for tests
    /// and diagnostics).
    #[doc(hidden)]
    #[must_use]
    pub fn is_full_read(&self) -> bool {
        matches!(self.inner, Inner::Full(_))
    }
}

/// Open lazily, or `None` when the store needs the full read.
fn open_lazy(dir: &Path, tdir: &Path, tenant: &TenantId) -> Result<Option<Lazy>> {
    if tdir.join(super::retention::PRUNE_INTENT).exists() {
        return Ok(None);
    }
    let paths = super::recovery::segment_files(tdir, false)?;
    let Some((last, sealed_paths)) = paths.split_last() else {
        return Ok(None);
    };
    let mut sealed = Vec::with_capacity(sealed_paths.len());
    let mut start: Option<(u64, Link)> = None;
    let mut next_seq = None;
    for path in sealed_paths {
        // A FIFO, a device or a file longer than any segment: the full
        // read names the damage.
        let file = match crate::fsread::open(path) {
            Ok(f) => f,
            Err(Error::Corrupt { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len > super::MAX_SEGMENT_FILE {
            return Ok(None);
        }
        let mut head = vec![0u8; HEADER_READ.min(usize::try_from(len).unwrap_or(0))];
        file.read_exact_at(&mut head, 0)?;
        let Ok((header, _)) = SegmentHeader::decode(&head) else {
            return Ok(None);
        };
        if header.tenant != *tenant || next_seq.is_some_and(|n| n != header.first_seq) {
            return Ok(None);
        }
        start.get_or_insert((header.first_seq, header.prev_link));
        let index = crate::fsread::open(&subject_index::index_path(path))
            .ok()
            .and_then(|f| subject_index::read_header(&f).map(|h| (f, h)))
            .filter(|(_, h)| {
                h.segment_len == len
                    && h.first_seq == header.first_seq
                    && h.file_len <= subject_index::max_len(len)
            });
        let mut seg = ColdSegment {
            path: path.clone(),
            file,
            version: header.version,
            first_seq: header.first_seq,
            count: index.as_ref().map_or(0, |(_, h)| u64::from(h.count)),
            len,
            index,
            full: OnceLock::new(),
        };
        if seg.index.is_none() {
            // No usable index: read this segment whole, now.
            match seg.decoded() {
                Ok(Some(d)) if d.clean => seg.count = d.locs.len() as u64,
                Ok(_) | Err(Error::Corrupt { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        next_seq = Some(header.first_seq + seg.count);
        sealed.push(seg);
    }
    let mark = super::recovery::synced_mark(tdir, last);
    let bytes = match super::read_live_segment(last, mark) {
        Ok(b) => b,
        Err(Error::Corrupt { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let parsed = match parse_segment_synced(&bytes, mark) {
        Ok(p) if p.header.tenant == *tenant => p,
        _ => return Ok(None),
    };
    if next_seq.is_some_and(|n| n != parsed.header.first_seq) {
        return Ok(None);
    }
    match parsed.end {
        SegmentEnd::Clean
        | SegmentEnd::TornTail {
            whole_frame: false, ..
        } => {}
        // Damage: the full read names it.
        _ => return Ok(None),
    }
    let (first_seq, start_prev) =
        start.unwrap_or((parsed.header.first_seq, parsed.header.prev_link));
    let size = parsed.header.first_seq + parsed.frames.len() as u64;
    let head = parsed
        .frames
        .last()
        .map_or(parsed.header.prev_link, |f| f.link);
    Ok(Some(Lazy {
        tenant: tenant.clone(),
        dir: dir.to_path_buf(),
        sealed,
        open: OpenSegment {
            first_seq: parsed.header.first_seq,
            frames: parsed.frames,
            bytes,
        },
        bounds: Bounds {
            first_seq,
            start_prev,
            size,
            head,
        },
        tiles: super::tiles::TileReader::new(tdir),
    }))
}

impl ColdSegment {
    /// The segment read and decoded whole (once); `None` when its header
    /// does not parse.
    fn decoded(&self) -> Result<Option<&Decoded>> {
        if let Some(d) = self.full.get() {
            return Ok(d.as_ref());
        }
        let bytes = super::read_segment(&self.path)?;
        let d = parse_segment_synced(&bytes, 0).ok().map(|p| Decoded {
            locs: p.frames.iter().map(|f| (f.offset, f.record_len)).collect(),
            subjects: subject_index::build(&bytes, &p.frames),
            clean: matches!(p.end, SegmentEnd::Clean),
        });
        Ok(self.full.get_or_init(|| d).as_ref())
    }

    /// Positions of `key` in this segment.
    fn positions(&self, key: &str) -> Result<Vec<u32>> {
        if self.full.get().is_none()
            && let Some((f, h)) = &self.index
            && let Some(p) = subject_index::lookup(f, h, key)
        {
            return Ok(p);
        }
        Ok(self
            .decoded()?
            .and_then(|d| {
                d.subjects
                    .binary_search_by(|(k, _)| k.as_str().cmp(key))
                    .ok()
                    .map(|i| d.subjects[i].1.clone())
            })
            .unwrap_or_default())
    }

    /// Records at positions `lo..hi` through the index's offsets; `None`
    /// when the index does not lead to them (then [`read_decoded`] is used).
    fn read_indexed(&self, tenant: &TenantId, lo: u64, hi: u64) -> Option<Vec<StoredRecord>> {
        let (f, h) = self.index.as_ref()?;
        if self.full.get().is_some() {
            return None;
        }
        let n = u32::try_from(hi - lo).ok()?;
        let lo32 = u32::try_from(lo).ok()?;
        // One more offset (the frame after the last) unless it is the segment's end.
        let with_next = u64::from(lo32) + u64::from(n) < u64::from(h.count);
        let mut offs = subject_index::offsets(f, h, lo32, n + u32::from(with_next))?;
        if !with_next {
            offs.push(self.len);
        }
        let (start, end) = (*offs.first()?, *offs.last()?);
        if end < start || end > self.len || end - start > 1 << 30 {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(end - start).ok()?];
        self.file.read_exact_at(&mut buf, start).ok()?;
        let mut out = Vec::with_capacity(n as usize);
        for (k, w) in offs.windows(2).enumerate() {
            let (a, b) = (
                usize::try_from(w[0].checked_sub(start)?).ok()?,
                usize::try_from(w[1].checked_sub(start)?).ok()?,
            );
            let (record, link) = crate::store::segment::parse_frame(buf.get(a..b)?, self.version)?;
            let seq = self.first_seq + lo + k as u64;
            // A location that leads elsewhere is a bad index, not damage.
            if !peek_header(record)
                .is_ok_and(|hd| hd.seq == seq && hd.tenant == tenant.as_str().as_bytes())
            {
                return None;
            }
            out.push(StoredRecord {
                seq,
                bytes: record.to_vec(),
                link,
            });
        }
        Some(out)
    }

    /// Records at positions `lo..hi` from the whole-segment read; damage
    /// ends the read with [`Error::Corrupt`] (as on a [`FileStore`]).
    fn read_decoded(
        &self,
        dir: &Path,
        lo: u64,
        hi: u64,
        out: &mut Vec<Result<StoredRecord>>,
    ) -> Result<bool> {
        let corrupt = |what, offset| Error::Corrupt {
            what,
            file: rel(dir, &self.path),
            offset,
        };
        let Some(d) = self.decoded()? else {
            out.push(Err(corrupt("segment header", 0)));
            return Ok(false);
        };
        let overhead = frame_overhead(self.version);
        for pos in lo..hi {
            let Some(&(offset, len)) = usize::try_from(pos).ok().and_then(|p| d.locs.get(p)) else {
                out.push(Err(corrupt("damaged frame", self.len)));
                return Ok(false);
            };
            let mut buf = vec![0u8; len as usize + overhead];
            self.file.read_exact_at(&mut buf, offset)?;
            match crate::store::segment::parse_frame(&buf, self.version) {
                Some((record, link)) => out.push(Ok(StoredRecord {
                    seq: self.first_seq + pos,
                    bytes: record.to_vec(),
                    link,
                })),
                None => {
                    out.push(Err(corrupt("frame checksum", offset)));
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

impl Lazy {
    fn read_range(&self, from: u64, to: u64) -> Result<Vec<Result<StoredRecord>>> {
        let from = from.max(self.bounds.first_seq);
        let to = to.min(self.bounds.size);
        let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0));
        if from >= to {
            return Ok(out);
        }
        // Sealed segments overlapping the range.
        let first = self
            .sealed
            .partition_point(|s| s.first_seq + s.count <= from);
        for seg in &self.sealed[first..] {
            if seg.first_seq >= to {
                break;
            }
            let lo = from.max(seg.first_seq) - seg.first_seq;
            let hi = to.min(seg.first_seq + seg.count) - seg.first_seq;
            if let Some(records) = seg.read_indexed(&self.tenant, lo, hi) {
                out.extend(records.into_iter().map(Ok));
            } else if !seg.read_decoded(&self.dir, lo, hi, &mut out)? {
                return Ok(out);
            }
        }
        let open = &self.open;
        let lo = from.max(open.first_seq) - open.first_seq;
        let hi = to.saturating_sub(open.first_seq);
        for pos in lo..hi {
            let Some(f) = usize::try_from(pos).ok().and_then(|p| open.frames.get(p)) else {
                break;
            };
            out.push(Ok(StoredRecord {
                seq: open.first_seq + pos,
                bytes: open.bytes[f.record_range()].to_vec(),
                link: f.link,
            }));
        }
        Ok(out)
    }

    fn subject_seqs(&self, subject: &str) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for seg in &self.sealed {
            out.extend(
                seg.positions(subject)?
                    .into_iter()
                    .map(|p| seg.first_seq + u64::from(p)),
            );
        }
        // The open segment has no index: look for the key's bytes first and
        // decode only the records that hold them.
        let finder = memchr::memmem::Finder::new(subject.as_bytes());
        for (pos, f) in self.open.frames.iter().enumerate() {
            let record = &self.open.bytes[f.record_range()];
            if finder.find(record).is_none() {
                continue;
            }
            subject_index::count_decode();
            if let Ok((_, e)) = decode_record(record)
                && e.subject_keys().contains(&subject)
            {
                out.push(self.open.first_seq + pos as u64);
            }
        }
        Ok(out)
    }
}

impl AuditRead for TenantReader {
    fn tenants(&self) -> Result<Vec<TenantId>> {
        match &self.inner {
            Inner::Empty => Ok(Vec::new()),
            Inner::Lazy(_) => Ok(vec![self.tenant.clone()]),
            Inner::Full(s) => Ok(s
                .tenants()?
                .into_iter()
                .filter(|t| *t == self.tenant)
                .collect()),
        }
    }

    fn bounds(&self, tenant: &TenantId) -> Result<Bounds> {
        match &self.inner {
            _ if *tenant != self.tenant => Err(Error::NotFound),
            Inner::Empty => Err(Error::NotFound),
            Inner::Lazy(l) => Ok(l.bounds),
            Inner::Full(s) => s.bounds(tenant),
        }
    }

    fn read_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Result<StoredRecord>>> {
        match &self.inner {
            _ if *tenant != self.tenant => Ok(Vec::new()),
            Inner::Empty => Ok(Vec::new()),
            Inner::Lazy(l) => l.read_range(from, to),
            Inner::Full(s) => s.read_range(tenant, from, to),
        }
    }

    fn subject_seqs(&self, tenant: &TenantId, subject: &str) -> Result<Vec<u64>> {
        match &self.inner {
            _ if *tenant != self.tenant => Ok(Vec::new()),
            Inner::Empty => Ok(Vec::new()),
            Inner::Lazy(l) => l.subject_seqs(subject),
            Inner::Full(s) => s.subject_seqs(tenant, subject),
        }
    }

    fn merkle_tile(
        &self,
        tenant: &TenantId,
        level: u32,
        index: u64,
    ) -> Result<Option<Vec<crate::merkle::Hash>>> {
        match &self.inner {
            _ if *tenant != self.tenant => Ok(None),
            Inner::Empty => Ok(None),
            Inner::Lazy(l) => Ok(l.tiles.tile(level, index)?),
            Inner::Full(s) => s.merkle_tile(tenant, level, index),
        }
    }

    fn merkle_tile_nodes(
        &self,
        tenant: &TenantId,
        level: u32,
        index: u64,
        slots: &[usize],
    ) -> Result<Option<Vec<crate::merkle::Hash>>> {
        match &self.inner {
            _ if *tenant != self.tenant => Ok(None),
            Inner::Empty => Ok(None),
            Inner::Lazy(l) => Ok(l.tiles.tile_nodes(level, index, slots)?),
            Inner::Full(s) => s.merkle_tile_nodes(tenant, level, index, slots),
        }
    }

    fn checkpoint_tenants(&self) -> Result<Vec<TenantId>> {
        Ok(if self.tdir.join(CHECKPOINT_LOG).is_file() {
            vec![self.tenant.clone()]
        } else {
            Vec::new()
        })
    }

    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        if *tenant != self.tenant {
            return Ok(Vec::new());
        }
        read_checkpoint_log(&self.tdir.join(CHECKPOINT_LOG))
    }

    /// As [`AuditRead::subject_report`], with the Merkle paths read on a
    /// second thread while the records are read (same reads, same verdicts).
    fn subject_report(
        &self,
        tenant: &TenantId,
        subject: &str,
        keys: Option<&crate::checkpoint::TrustedKeys>,
    ) -> Result<crate::store::report::SubjectReport> {
        crate::store::plan::subject_report_parallel(self, tenant, subject, keys)
    }
}
