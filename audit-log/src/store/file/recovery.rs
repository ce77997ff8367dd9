//! Opening a store: scan the segments, build the index, cut torn tails.
//!
//! Damage is judged per tenant. A crash leftover (damage past the synced mark
//! of the newest segment, see [`crate::store::segment`]) is cut back; anything
//! else is corruption of that tenant's chain only: a writable store still opens,
//! refuses appends to the damaged tenant with [`Error::Corrupt`] and keeps its
//! records up to the damage readable, so verification reports it, while every
//! other tenant is read, verified and appended to as usual.
//! [`FileStore::repair`] is the operator's way to cut a damaged chain back.

use std::io::Read as _;
use std::os::unix::fs::FileExt as _;

use super::retention::{PRUNE_INTENT, PruneIntent, drop_prefix};
use super::subject_index;
use super::writer::TenantWriter;
use super::*;

/// Damage that stops appends to one tenant (what, file, offset).
#[derive(Debug, Clone)]
pub(super) struct Damage {
    what: &'static str,
    file: String,
    offset: u64,
}

impl Damage {
    /// Damage found while the store is open (`what`, in `tenant`'s directory, at record `seq`).
    pub(super) fn found(what: &'static str, tenant: &TenantId, seq: u64) -> Self {
        Self {
            what,
            file: tenant_dir_name(tenant),
            offset: seq,
        }
    }

    pub(super) fn error(&self) -> Error {
        Error::Corrupt {
            what: self.what,
            file: self.file.clone(),
            offset: self.offset,
        }
    }
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub(super) index: HashMap<TenantId, TenantIndex>,
    pub(super) writers: HashMap<TenantId, TenantWriter>,
    /// Tenants whose chains are damaged (writable opens only).
    pub(super) blocked: HashMap<TenantId, Damage>,
}

/// The tenant a `t-<hex>` directory name stands for.
pub(super) fn tenant_of_dir(name: &str) -> Option<TenantId> {
    let hex_part = name.strip_prefix("t-")?;
    hex::decode(hex_part)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| TenantId::parse(&s).ok())
}

/// The tenant directories of a store, sorted.
pub(super) fn tenant_dirs(dir: &Path) -> Result<Vec<(TenantId, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with("t-") || !p.is_dir() {
            continue;
        }
        match tenant_of_dir(name) {
            Some(t) => out.push((t, p)),
            // Not a directory this store wrote: never let it stop the others.
            None => {
                tracing::warn!(dir = %name, "audit store: skipping a directory that names no tenant")
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The segment files of a tenant directory, sorted; a writer removes
/// temporary files of a roll that crashed before its rename.
pub(super) fn segment_files(tdir: &Path, write: bool) -> Result<Vec<PathBuf>> {
    let mut segs = Vec::new();
    for e in fs::read_dir(tdir)? {
        let p = e?.path();
        let n = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if (n.ends_with(".seg.tmp") || n.ends_with(".sidx.tmp")) && write {
            // A roll or index write that crashed before its rename: never
            // referenced, remove.
            fs::remove_file(&p)?;
        } else if n.ends_with(".seg") {
            // A writer appends to, and cuts, its segments: one that is a
            // link someone able to write the store planted would have it
            // write into the link's target. Refused as damage (this tenant
            // only); readers read it as the untrusted input it is.
            if write && !fs::symlink_metadata(&p)?.file_type().is_file() {
                return Err(Error::Corrupt {
                    what: "segment is not a regular file (a link?)",
                    file: n,
                    offset: 0,
                });
            }
            segs.push(p);
        }
    }
    segs.sort();
    Ok(segs)
}

/// Scan the store directory, build the index and (for writers) recover torn
/// tails and open the newest segment of each tenant for appending.
pub(super) fn load(dir: &Path, write: bool) -> Result<Loaded> {
    let mut out = Loaded::default();
    for (tenant, tdir) in tenant_dirs(dir)? {
        // A tenant directory that is a link (to a directory elsewhere) is
        // never written to: read only, and appends to it refused.
        let linked = write && fs::symlink_metadata(&tdir)?.file_type().is_symlink();
        if write && !linked {
            repair_checkpoint_log(&tdir.join(CHECKPOINT_LOG))?;
        }
        let loaded = if linked {
            Err(Error::Corrupt {
                what: "tenant directory is a link",
                file: tdir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                offset: 0,
            })
        } else {
            load_tenant(dir, &tdir, &tenant, write)
        };
        match loaded {
            Ok(Some((ti, w))) => {
                if let Some(w) = w {
                    out.writers.insert(tenant.clone(), w);
                }
                out.index.insert(tenant, ti);
            }
            Ok(None) => {}
            Err(Error::Corrupt { what, file, offset }) if write => {
                tracing::error!(tenant = %tenant, what, file = %file, offset,
                    "audit store: chain damaged below its synced mark; appends to this tenant are refused until `hisn audit repair`");
                if let Some((ti, _)) = load_tenant(dir, &tdir, &tenant, false)? {
                    out.index.insert(tenant.clone(), ti);
                }
                out.blocked.insert(tenant, Damage { what, file, offset });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

type TenantLoad = Option<(TenantIndex, Option<TenantWriter>)>;

/// Load one tenant. A writer gets [`Error::Corrupt`] for damage that is not a
/// crash leftover; a reader records it in `damage_at` and stops there.
fn load_tenant(dir: &Path, tdir: &Path, tenant: &TenantId, write: bool) -> Result<TenantLoad> {
    let segs = segment_files(tdir, write)?;
    if segs.is_empty() {
        return Ok(None);
    }
    let mut ti = TenantIndex {
        dir: tdir.to_path_buf(),
        ..TenantIndex::default()
    };
    let mut writer = None;
    // The Merkle tiles, rebuilt from the records as they are read (writers
    // only, and only for a chain that starts at record 0).
    let mut tiles: Option<super::tiles::TileWriter> = None;
    // What the records must agree with before the writer signs Merkle roots
    // over them (see `RootCheck`).
    let mut check = if write {
        RootCheck::new(&tdir.join(CHECKPOINT_LOG))?
    } else {
        RootCheck::default()
    };
    let nsegs = segs.len();
    for (si, path) in segs.iter().enumerate() {
        let last = si + 1 == nsegs;
        let file_name = rel(dir, path);
        let mark = if last { synced_mark(tdir, path) } else { 0 };
        // A writer may be appending to the newest segment of a read-only open.
        let read = if last && !write {
            read_live_segment(path, mark)
        } else {
            read_segment(path)
        };
        let bytes = match read {
            Ok(b) => b,
            // Not a segment any writer made (a FIFO, a device, a file
            // longer than any segment): damage of this tenant only. A
            // writer's open blocks the tenant; a reader stops there.
            Err(e @ Error::Corrupt { .. }) if write => return Err(e),
            Err(Error::Corrupt { .. }) => {
                ti.damage_at.get_or_insert(ti.size());
                break;
            }
            Err(e) => return Err(e),
        };
        let corrupt = |what: &'static str, offset: u64| Error::Corrupt {
            what,
            file: file_name.clone(),
            offset,
        };
        let parsed = match parse_segment_synced(&bytes, mark) {
            Ok(p) if p.header.tenant == *tenant => p,
            bad => {
                if write {
                    return Err(corrupt(
                        if bad.is_ok() {
                            "segment of another tenant"
                        } else {
                            "segment header"
                        },
                        0,
                    ));
                }
                ti.damage_at.get_or_insert(ti.size());
                break;
            }
        };
        if si == 0 {
            ti.first_seq = parsed.header.first_seq;
            ti.start_prev = parsed.header.prev_link;
            ti.head = parsed.header.prev_link;
            if write && ti.first_seq == 0 {
                ti.frontier = Some(crate::merkle::Frontier::new());
                tiles = super::tiles::TileWriter::start(tdir)
                    .inspect_err(|e| tracing::warn!(dir = %tdir.display(), error = %e, "audit store: no Merkle tiles for this chain"))
                    .ok();
            }
        } else if write
            && (parsed.header.first_seq != ti.size() || parsed.header.prev_link != ti.head)
        {
            return Err(corrupt("segment does not continue the previous one", 0));
        }
        if write {
            require_usable(&parsed, last, &file_name)?;
        }
        let seg = u32::try_from(si).map_err(|_| Error::SequenceExhausted)?;
        let base = ti.size();
        // A sealed segment's subjects come from its persisted index when that
        // checks against the segment; otherwise (and for the open segment)
        // its records are decoded.
        let sealed = !last && matches!(parsed.end, SegmentEnd::Clean);
        let persisted = if sealed {
            crate::fsread::read(
                &subject_index::index_path(path),
                subject_index::max_len(bytes.len() as u64),
            )
            .ok()
            .and_then(|i| {
                subject_index::decode(
                    &i,
                    &bytes,
                    parsed.header.first_seq,
                    &subject_index::frame_offsets(&parsed.frames),
                )
            })
        } else {
            None
        };
        let subjects = match persisted {
            Some(s) => s,
            None => {
                let s = subject_index::build(&bytes, &parsed.frames);
                if sealed
                    && write
                    && let Err(e) = subject_index::write(
                        path,
                        &bytes,
                        parsed.header.first_seq,
                        &subject_index::frame_offsets(&parsed.frames),
                        &s,
                    )
                {
                    tracing::warn!(file = %file_name, error = %e, "audit store: could not write a subject index");
                }
                s
            }
        };
        for (key, positions) in subjects {
            let v = ti.subjects.entry(key).or_default();
            v.extend(positions.into_iter().map(|p| base + u64::from(p)));
        }
        for f in &parsed.frames {
            let seq = ti.size();
            let record = &bytes[f.record_range()];
            if write
                && !peek_header(record)
                    .is_ok_and(|h| h.seq == seq && h.tenant == tenant.as_str().as_bytes())
            {
                return Err(corrupt("record out of sequence", f.offset));
            }
            ti.locs.push(Loc {
                seg,
                offset: f.offset,
                len: f.record_len,
            });
            ti.head = f.link;
            if tiles.is_some() || ti.frontier.is_some() {
                let digest = record_digest(record);
                let leaf = crate::merkle::leaf_hash(&digest);
                if let Some(fr) = &mut ti.frontier {
                    fr.push(leaf);
                    check.record(tenant, seq, &digest, &f.link, fr);
                }
                if let Some(t) = &mut tiles
                    && let Err(e) = t.push(leaf)
                {
                    tracing::warn!(dir = %tdir.display(), error = %e, "audit store: could not rebuild the Merkle tiles");
                    tiles = None;
                }
            }
        }
        let mut len = bytes.len() as u64;
        match parsed.end {
            SegmentEnd::Clean => {}
            SegmentEnd::TornTail {
                valid_len,
                whole_frame,
            } => {
                if write && check.signed_size() > ti.size() {
                    // A crash can only tear what was never synced, and a
                    // checkpoint is signed over synced records: a tail a
                    // checkpoint in the tenant's log covers was not torn
                    // by a crash but made to look so (the clean-close mark
                    // deleted, the frames' own marks rewritten). Cutting
                    // it would destroy the evidence and let appends carry
                    // on over a signed size: damage, for `repair`.
                    return Err(corrupt(
                        "torn tail below a checkpoint in the tenant's log",
                        valid_len,
                    ));
                }
                if write {
                    tracing::warn!(file = %file_name, cut = len - valid_len, "audit store: cutting torn tail after a crash");
                    // Never through a link or a FIFO swapped in since the read.
                    let f = super::nofollow::open_file(path, true)?;
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
        let mut version = parsed.header.version;
        if last && write && version < SEGMENT_VERSION && parsed.frames.is_empty() {
            // An empty segment of the old format: rewrite its header in the
            // current one (same length), so appends can go into it.
            let header = SegmentHeader {
                version: SEGMENT_VERSION,
                ..parsed.header.clone()
            }
            .encode();
            replace_file(path, &header)?;
            version = SEGMENT_VERSION;
            len = header.len() as u64;
        }
        ti.segments.push(SegInfo {
            path: path.clone(),
            file: Arc::new(crate::fsread::open(path)?),
            version,
        });
        if last && write {
            let file = super::nofollow::open_file(path, true)?;
            // Whatever the previous process wrote is on disk from here on, so
            // new frames may carry this length as their synced mark.
            file.sync_data()?;
            writer = Some(TenantWriter {
                dir: tdir.to_path_buf(),
                file,
                seg,
                seg_len: len,
                alloc: len,
                version,
                synced: len,
                next_seq: ti.size(),
                head: ti.head,
                buf: Vec::new(),
                new_segments: Vec::new(),
                new_locs: Vec::new(),
                dirty: false,
                tiles: None,
            });
        }
        if !write && ti.damage_at.is_some() {
            break;
        }
    }
    finish_prune(&mut ti, tdir, write)?;
    check.reached(ti.size());
    if ti.first_seq != 0 {
        // The tree starts at record 0, whose leaves are gone.
        ti.frontier = None;
    }
    if let (Some(seq), Some(_)) = (check.failed, &ti.frontier) {
        tracing::error!(tenant = %tenant, seq,
            "audit store: records do not chain, or disagree with a kept checkpoint; no Merkle root is signed for this tenant until the store is verified and repaired");
        ti.frontier = None;
    }
    if let Some(mut t) = tiles.filter(|_| ti.first_seq == 0) {
        match t.finish_open() {
            Ok(()) => {
                if let Some(w) = &mut writer {
                    w.tiles = Some(t);
                }
            }
            Err(e) => {
                tracing::warn!(dir = %tdir.display(), error = %e, "audit store: could not rebuild the Merkle tiles");
            }
        }
    }
    Ok(Some((ti, writer)))
}

/// Checks, while a writable open reads a chain from record 0, that the
/// records it computes the Merkle tree from are ones a signer may vouch for:
/// each record chains from the one before (the open reads only frames and
/// their checksums otherwise), and at the size of every checkpoint in the
/// tenant's checkpoint log the chain's link and tree root are that
/// checkpoint's head and root. A chain edited and relinked while the store
/// was closed would otherwise get a fresh root signed over it by
/// [`FileStore::checkpoint_now`], which does not re-read the records. Any
/// disagreement (a note there that is not genuine included: notes are not
/// checked here, there is no key) only stops roots being signed for the
/// tenant, which is the safe side.
#[derive(Debug, Default)]
struct RootCheck {
    /// Head and root (if any) of each checkpoint in the log, by size.
    marks: HashMap<u64, Vec<(Link, Option<crate::merkle::Hash>)>>,
    prev: Link,
    /// The first sequence number where a check failed.
    failed: Option<u64>,
}

impl RootCheck {
    fn new(log: &Path) -> Result<Self> {
        let mut marks: HashMap<u64, Vec<_>> = HashMap::new();
        for c in read_checkpoint_log(log)? {
            let c = c.checkpoint;
            if c.size > 0 {
                marks.entry(c.size).or_default().push((c.head, c.root));
            }
        }
        Ok(Self {
            marks,
            ..Self::default()
        })
    }

    /// Record `seq` (digest, stored link), just pushed onto `tree`.
    fn record(
        &mut self,
        tenant: &TenantId,
        seq: u64,
        digest: &Link,
        link: &Link,
        tree: &crate::merkle::Frontier,
    ) {
        if self.failed.is_some() {
            return;
        }
        let ok = chain_link(tenant.as_str().as_bytes(), seq, &self.prev, digest) == *link
            && self.marks.get(&tree.size()).is_none_or(|ms| {
                let root = tree.root();
                ms.iter()
                    .all(|(h, r)| h == link && r.is_none_or(|r| r == root))
            });
        if !ok {
            self.failed = Some(seq);
        }
        self.prev = *link;
    }

    /// The largest size a checkpoint in the tenant's log claims (0 with
    /// none). The notes are not verified here: a forged one can only make
    /// a torn tail read as damage (fail closed).
    fn signed_size(&self) -> u64 {
        self.marks.keys().copied().max().unwrap_or(0)
    }

    /// The chain ends at `size`: a checkpoint beyond it means the chain was
    /// cut back below a size already signed (a rollback; the records since
    /// may differ from the ones it covered), which no check above compared.
    fn reached(&mut self, size: u64) {
        if self.failed.is_none() && self.marks.keys().any(|s| *s > size) {
            self.failed = Some(size);
        }
    }
}

/// A prune interrupted by a crash (see [`FileStore::prune`]): finish it when
/// its record is in the chain, drop the intent otherwise (nothing was deleted
/// before the record was durable). A reader only adjusts its view.
fn finish_prune(ti: &mut TenantIndex, tdir: &Path, write: bool) -> Result<()> {
    let path = tdir.join(PRUNE_INTENT);
    let bytes = match crate::fsread::read_if_exists(&path, crate::fsread::MAX_SMALL_FILE) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(()),
        // Not a file a prune wrote (a FIFO, a device, too long): an intent
        // that does not decode, dropped like one.
        Err(Error::Corrupt { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let intent = PruneIntent::decode(&bytes);
    let recorded = match &intent {
        Some(i) => {
            let mut found = false;
            for seq in i.size.max(ti.first_seq)..ti.size() {
                if record_at(ti, seq)?
                    .and_then(|r| decode_record(&r).ok())
                    .is_some_and(|(_, e)| i.is_record(&e))
                {
                    found = true;
                    break;
                }
            }
            found
        }
        None => false,
    };
    if let (Some(i), true) = (intent, recorded) {
        if write {
            tracing::warn!(
                through = i.through,
                "audit store: finishing a prune interrupted by a crash"
            );
        }
        drop_prefix(ti, &i, write, &|| Ok(()))?;
    } else if write {
        tracing::warn!(
            "audit store: dropping the intent of a prune that never recorded its record"
        );
    }
    if write {
        fs::remove_file(&path)?;
        sync_dir(tdir)?;
    }
    Ok(())
}

/// The record at `seq` as stored (`None` if its frame does not check).
fn record_at(ti: &TenantIndex, seq: u64) -> Result<Option<Vec<u8>>> {
    let Some(loc) = seq
        .checked_sub(ti.first_seq)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| ti.locs.get(i))
    else {
        return Ok(None);
    };
    let Some(info) = ti.segments.get(loc.seg.wrapping_sub(ti.seg_base) as usize) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; loc.len as usize + frame_overhead(info.version)];
    info.file.read_exact_at(&mut buf, loc.offset)?;
    Ok(crate::store::segment::parse_frame(&buf, info.version).map(|(r, _)| r.to_vec()))
}

/// File in a tenant directory holding the length of its newest segment that
/// was synced when the store was last closed: `<segment file name> <length>`.
pub(super) const SYNCED_MARK: &str = "synced.mark";

/// Record that `segment` is on disk up to `len` bytes.
pub(super) fn write_synced_mark(tdir: &Path, segment: &Path, len: u64) -> Result<()> {
    let name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    replace_file(
        &tdir.join(SYNCED_MARK),
        format!("{name} {len}\n").as_bytes(),
    )
}

/// The synced mark recorded for `segment` (0 when none or another segment's).
pub(super) fn synced_mark(tdir: &Path, segment: &Path) -> u64 {
    // Anything but the small regular file a close writes reads as no mark.
    let Some(text) = crate::fsread::read(&tdir.join(SYNCED_MARK), crate::fsread::MAX_SMALL_FILE)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return 0;
    };
    let name = segment.file_name().and_then(|n| n.to_str());
    let mut parts = text.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|l| l.parse::<u64>().ok()),
    ) {
        (Some(n), Some(len)) if Some(n) == name => len,
        _ => 0,
    }
}

/// Create `path` afresh for writing, never through a link: whatever is at
/// the path (a temporary file a crash left, or a symbolic link someone able
/// to write the store planted to have the writer truncate and fill another
/// file) is removed first (the entry, not what a link points to), and
/// `create_new` (`O_CREAT | O_EXCL`) refuses a link recreated meanwhile.
pub(super) fn create_exclusive(path: &Path) -> std::io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new().create_new(true).write(true).open(path)
}

/// Replace `path` with `bytes` atomically: write a temporary file, sync it,
/// rename it over `path`, sync the directory.
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = create_exclusive(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// A power loss while a checkpoint was appended can leave a torn last line
/// (part of a note, or zeros) without its newline; the next append would then
/// be glued to it and lost. Finish a last line that is a whole checkpoint,
/// cut one that is not.
pub(super) fn repair_checkpoint_log(path: &Path) -> Result<()> {
    repair_checkpoint_log_with(
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        || super::nofollow::open_file(path, true),
    )
}

/// [`repair_checkpoint_log`] of the log in the tenant directory `dfd`.
pub(super) fn repair_checkpoint_log_at(dfd: &std::os::fd::OwnedFd) -> Result<()> {
    repair_checkpoint_log_with(CHECKPOINT_LOG.to_owned(), || {
        super::nofollow::open_file_at(dfd, CHECKPOINT_LOG, true)
    })
}

/// Read, and cut or end, the log through one descriptor opened without
/// following a link or blocking: a link or FIFO put at its name, before or
/// after any check, is never read, cut or extended.
fn repair_checkpoint_log_with(
    name: String,
    open: impl FnOnce() -> std::io::Result<File>,
) -> Result<()> {
    let f = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Not a regular file (a link, a FIFO, a directory): left for the next
        // checkpoint append to refuse (for this tenant only), rather than
        // failing the whole store's open.
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "checkpoint log is not a regular file; not repaired");
            return Ok(());
        }
    };
    let max = crate::limits::MAX_CHECKPOINT_LOG_LEN as u64;
    let mut bytes = Vec::new();
    (&f).take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        // Too long to be a log the store wrote: left alone here; reading it
        // fails for this tenant only.
        tracing::warn!(file = %name, "checkpoint log is too long; not repaired");
        return Ok(());
    }
    if bytes.last().is_none_or(|b| *b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let tail = String::from_utf8_lossy(&bytes[keep..]);
    let (cps, skipped) = crate::checkpoint::parse_checkpoint_log(&tail);
    if cps.len() == 1 && skipped == 0 {
        f.write_all_at(b"\n", bytes.len() as u64)?;
    } else {
        tracing::warn!(
            cut = bytes.len() - keep,
            "audit store: cutting a torn last line of the checkpoint log"
        );
        f.set_len(keep as u64)?;
    }
    f.sync_all()?;
    Ok(())
}
