//! Retention: export a sealed prefix and prune its segments.
use super::*;

impl FileStore {
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
}
