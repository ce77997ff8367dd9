//! Reading the file store: bounds, ranges, subjects, checkpoints.
use super::*;

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
        self.shared.read_range(tenant, from, to)
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

    fn checkpoint_tenants(&self) -> Result<Vec<TenantId>> {
        // A tenant whose segments were all deleted still has its directory
        // and checkpoint log: list it so a verifier can call the chain gone.
        Ok(super::recovery::tenant_dirs(&self.shared.dir)?
            .into_iter()
            .filter(|(_, d)| d.join(CHECKPOINT_LOG).is_file())
            .map(|(t, _)| t)
            .collect())
    }

    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        self.shared.checkpoints(tenant)
    }

    fn merkle_tile(
        &self,
        tenant: &TenantId,
        level: u32,
        index: u64,
    ) -> Result<Option<Vec<crate::merkle::Hash>>> {
        if !self.shared.index.read().contains_key(tenant) {
            return Ok(None);
        }
        let dir = self.shared.dir.join(tenant_dir_name(tenant));
        Ok(super::tiles::TileReader::new(&dir).tile(level, index)?)
    }

    fn merkle_tile_nodes(
        &self,
        tenant: &TenantId,
        level: u32,
        index: u64,
        slots: &[usize],
    ) -> Result<Option<Vec<crate::merkle::Hash>>> {
        if !self.shared.index.read().contains_key(tenant) {
            return Ok(None);
        }
        let dir = self.shared.dir.join(tenant_dir_name(tenant));
        Ok(super::tiles::TileReader::new(&dir).tile_nodes(level, index, slots)?)
    }
}

impl Shared {
    /// The store's checkpoint log of `tenant`.
    pub(super) fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        let dir = self.dir.join(tenant_dir_name(tenant));
        read_checkpoint_log(&dir.join(CHECKPOINT_LOG))
    }

    /// The store's checkpoint log of `tenant`, each note with the Merkle edge
    /// kept beside it when that edge hashes to the note's root (the
    /// signature is the caller's to check).
    pub(super) fn checkpoint_edges(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(SignedCheckpoint, Option<crate::merkle::Frontier>)>> {
        let dir = self.dir.join(tenant_dir_name(tenant));
        crate::checkpoint::read_checkpoint_edges(&dir.join(CHECKPOINT_LOG))
    }

    /// Records `from..to` of `tenant` as stored (see [`AuditRead::read_range`]).
    pub(super) fn read_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Result<StoredRecord>>> {
        let (first, locs, segs, damage) = {
            let index = self.index.read();
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
            let info = segs
                .1
                .get(seg.wrapping_sub(segs.0) as usize)
                .ok_or(Error::NotFound)?;
            let overhead = frame_overhead(info.version);
            let mut j = i;
            while j + 1 < locs.len()
                && locs[j + 1].seg == seg
                && locs[j + 1].offset == locs[j].offset + u64::from(locs[j].len) + overhead as u64
            {
                j += 1;
            }
            let start = locs[i].offset;
            let end = locs[j].offset + u64::from(locs[j].len) + overhead as u64;
            let mut buf = vec![0u8; usize::try_from(end - start).map_err(|_| Error::NotFound)?];
            if let Err(e) = info.file.read_exact_at(&mut buf, start) {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    return Err(e.into());
                }
                out.push(Err(Error::Corrupt {
                    what: "segment shorter than indexed",
                    file: rel(&self.dir, &info.path),
                    offset: start,
                }));
                return Ok(out);
            }
            for (k, loc) in locs[i..=j].iter().enumerate() {
                let seq = first + (i + k) as u64;
                let off = usize::try_from(loc.offset - start).map_err(|_| Error::NotFound)?;
                let frame = &buf[off..off + loc.len as usize + overhead];
                match crate::store::segment::parse_frame(frame, info.version) {
                    Some((bytes, link)) => out.push(Ok(StoredRecord {
                        seq,
                        bytes: bytes.to_vec(),
                        link,
                    })),
                    None => {
                        out.push(Err(Error::Corrupt {
                            what: "frame checksum",
                            file: rel(&self.dir, &info.path),
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
}

/// A persisted subject index that disagrees with its segment's records
/// ([`FileStore::check_subject_indexes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexMismatch {
    /// The segment's file name.
    pub segment: String,
    /// Sequence number of the segment's first record.
    pub first_seq: u64,
    /// Subject keys the index answers differently from the records.
    pub keys: u64,
}

impl FileStore {
    /// Compare every persisted subject index (`<segment>.sidx`) of `tenant`
    /// with its segment's records, as the store's readers would use it. A
    /// report (cold or not) trusts an index that passes its checksums to
    /// list every record naming the subject, and re-reads only what it
    /// lists; an index rewritten with consistent checksums (it has no MAC)
    /// can hide a whole interval of records from reports. Chain verification
    /// cannot see that: neither the chain nor the Merkle tree commits to who
    /// a record is about. This check reads and decodes every indexed
    /// segment (about what a full verification costs again; on up to four
    /// threads); `hisn audit verify` runs it. Remove a listed index file to have the next writable open rebuild
    /// it from the records.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant, [`Error::Io`].
    pub fn check_subject_indexes(&self, tenant: &TenantId) -> Result<Vec<IndexMismatch>> {
        let segments: Vec<PathBuf> = {
            let index = self.shared.index.read();
            let ti = index.get(tenant).ok_or(Error::NotFound)?;
            ti.segments.iter().map(|s| s.path.clone()).collect()
        };
        check_indexes(&segments)
    }
}

/// [`FileStore::check_subject_indexes`] over the given segment files.
pub(super) fn check_indexes(segments: &[PathBuf]) -> Result<Vec<IndexMismatch>> {
    // Segments are independent: checked on up to four threads, each
    // taking every n-th segment.
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
        .min(segments.len().max(1));
    let found: Vec<Result<Vec<(usize, u64, u64)>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let segments = &segments;
                sc.spawn(move || {
                    let mut out = Vec::new();
                    for (i, path) in segments.iter().enumerate().skip(w).step_by(workers) {
                        let (first_seq, keys) = super::subject_index::disagreements(path)?;
                        if keys > 0 {
                            out.push((i, first_seq, keys));
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut hits = Vec::new();
    for f in found {
        hits.extend(f?);
    }
    hits.sort_unstable();
    Ok(hits
        .into_iter()
        .map(|(i, first_seq, keys)| IndexMismatch {
            segment: segments[i]
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            first_seq,
            keys,
        })
        .collect())
}
