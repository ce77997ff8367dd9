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

    /// Prune the exported prefix. Crash-safe in four steps, each durable
    /// before the next:
    ///
    /// 1. write the intent (`prune.intent`: range and boundary link) to the
    ///    tenant's directory;
    /// 2. append and sync the prune record;
    /// 3. delete the prefix's segments, oldest first, and sync the directory;
    /// 4. remove the intent.
    ///
    /// Opening the store (for reading or writing) after a crash at any point
    /// finishes the prune when its record is in the chain (a writer deletes
    /// the remaining segments; a reader ignores them) and drops the intent
    /// otherwise, so the chain always verifies as either not pruned or pruned.
    /// Returns the prune record's sequence number. Sign a checkpoint after it:
    /// verification with keys accepts a prune only under a signature.
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the receipt does not match the stored chain.
    pub fn prune(&self, receipt: &ExportReceipt, actor: &str, clock: &dyn Clock) -> Result<u64> {
        let (dir, size) = {
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
            (ti.dir.clone(), ti.size())
        };
        let link_ok = matches!(self.read_range(&receipt.tenant, receipt.through, receipt.through + 1)?.pop(), Some(Ok(r)) if r.link == receipt.boundary);
        if !link_ok {
            return Err(Error::PruneRefused {
                reason: "receipt does not match the stored prefix",
            });
        }
        let intent = PruneIntent {
            through: receipt.through,
            boundary: receipt.boundary,
            size,
        };
        super::recovery::replace_file(&dir.join(PRUNE_INTENT), &intent.encode())?;
        self.step("prune.intent")?;
        let seq = self.append(prune_event(receipt, actor, clock)?)?;
        self.step("prune.record")?;
        {
            let mut index = self.shared.index.write();
            let ti = index.get_mut(&receipt.tenant).ok_or(Error::NotFound)?;
            drop_prefix(ti, &intent, true, &|| self.step("prune.delete"))?;
        }
        self.step("prune.deleted")?;
        fs::remove_file(dir.join(PRUNE_INTENT))?;
        sync_dir(&dir)?;
        Ok(seq)
    }

    /// The failure-injection hook of the crash tests.
    fn step(&self, name: &'static str) -> Result<()> {
        match &self.crash_hook.0 {
            Some(h) => h(name).map_err(Error::Io),
            None => Ok(()),
        }
    }
}

/// File name of a prune in progress (in the tenant's directory).
pub(super) const PRUNE_INTENT: &str = "prune.intent";

/// A prune in progress: what it removes and how large the chain was when it
/// started (its record is at or after that sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PruneIntent {
    pub(super) through: u64,
    pub(super) boundary: Link,
    pub(super) size: u64,
}

impl PruneIntent {
    fn encode(&self) -> Vec<u8> {
        serde_json::json!({
            "through": self.through,
            "boundary_link": self.boundary.to_hex(),
            "size": self.size,
        })
        .to_string()
        .into_bytes()
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let hex_link = hex::decode(v.get("boundary_link")?.as_str()?).ok()?;
        Some(Self {
            through: v.get("through")?.as_u64()?,
            boundary: Link(<[u8; 32]>::try_from(hex_link.as_slice()).ok()?),
            size: v.get("size")?.as_u64()?,
        })
    }

    /// Whether `event` is this prune's record.
    pub(super) fn is_record(&self, event: &Event) -> bool {
        if event.action() != crate::verify::PRUNE_ACTION {
            return false;
        }
        let Some(diff) = event
            .diff()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        else {
            return false;
        };
        diff.get("through").and_then(serde_json::Value::as_u64) == Some(self.through)
            && diff
                .get("boundary_link")
                .and_then(serde_json::Value::as_str)
                == Some(self.boundary.to_hex().as_str())
    }
}

/// Drop the records up to `intent.through` from `ti` (they must end a
/// segment) and, when `delete`, their segment files (oldest first, calling
/// `after_each` after each deletion), then sync the directory. Segments
/// already deleted by an interrupted prune are simply not there any more.
pub(super) fn drop_prefix(
    ti: &mut TenantIndex,
    intent: &PruneIntent,
    delete: bool,
    after_each: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let Some(n) = intent
        .through
        .checked_add(1)
        .and_then(|end| end.checked_sub(ti.first_seq))
        .and_then(|n| usize::try_from(n).ok())
    else {
        return Ok(()); // Already pruned past it.
    };
    if n == 0 || n >= ti.locs.len() {
        return Ok(());
    }
    if ti.locs[n].seg == ti.locs[n - 1].seg {
        return Err(Error::PruneRefused {
            reason: "prune boundary is not a segment boundary",
        });
    }
    // Segment numbers are absolute; `seg_base` is the number of the first held.
    let cut = (ti.locs[n].seg - ti.seg_base) as usize;
    if delete {
        for seg in &ti.segments[..cut] {
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            match fs::remove_file(super::subject_index::index_path(&seg.path)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            after_each()?;
        }
        sync_dir(&ti.dir)?;
    }
    ti.segments.drain(..cut);
    ti.seg_base = ti.locs[n].seg;
    ti.locs.drain(..n);
    ti.first_seq = intent.through + 1;
    // The writer's Merkle edge (over records 0..size) stays: pruning drops
    // records, not leaves. After a restart the edge is read back from a
    // checkpoint that kept it (`Shared::frontier_from_edges`).
    ti.start_prev = intent.boundary;
    for v in ti.subjects.values_mut() {
        v.retain(|s| *s > intent.through);
    }
    ti.subjects.retain(|_, v| !v.is_empty());
    Ok(())
}
