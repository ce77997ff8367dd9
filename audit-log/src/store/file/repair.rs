//! Operator repair of a damaged chain (`hisn audit repair`).
//!
//! Opening a store cuts only crash leftovers (damage past the synced mark).
//! Anything else stops appends to that tenant and is reported by `verify`;
//! when the damaged bytes cannot be restored from a replica, an operator cuts
//! the chain back to the last intact record before the damage with
//! [`FileStore::repair`]. Nothing is deleted: the damaged tail and every later
//! segment are moved to `quarantine/` in the tenant's directory for
//! forensics. The cut is visible afterwards: a checkpoint that covered the
//! removed records makes `verify` report the chain as truncated.

use super::recovery::{repair_checkpoint_log, segment_files, tenant_dirs};
use super::*;
use crate::store::segment::intact_frames_after;

/// Whether [`FileStore::repair`] only reports or also cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairMode {
    /// Report what would be cut; change nothing.
    DryRun,
    /// Move the damage to quarantine and cut the chain back.
    Apply,
}

/// Where a chain is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairDamage {
    /// What is wrong.
    pub what: &'static str,
    /// The segment file, relative to the store directory.
    pub file: String,
    /// Byte offset of the damage (0: the whole segment is unusable).
    pub offset: u64,
}

/// What [`FileStore::repair`] found (and did) for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The first damage, or `None` when the chain needs no repair.
    pub damage: Option<RepairDamage>,
    /// Records the chain keeps.
    pub kept: u64,
    /// Intact records after the damage that the cut removes.
    pub dropped: u64,
    /// Files written to quarantine (absolute paths).
    pub quarantined: Vec<PathBuf>,
    /// Whether the cut was made.
    pub applied: bool,
}

impl RepairReport {
    /// The report as JSON (for the CLI).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "damage": self.damage.as_ref().map(|d| serde_json::json!({
                "what": d.what, "file": d.file, "offset": d.offset,
            })),
            "kept": self.kept,
            "dropped": self.dropped,
            "quarantined": self.quarantined.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "applied": self.applied,
        })
    }
}

/// The first damage in a tenant's segments under the writer's strict rules,
/// with the number of records before it and the intact ones after it.
struct Found {
    damage: RepairDamage,
    /// Index of the damaged segment in `segs`.
    seg: usize,
    kept: u64,
    dropped: u64,
}

/// What a segment that is not a regular file is (see [`is_regular`]).
const NOT_REGULAR: &str = "segment is not a regular file (a link, a directory, a FIFO or a device)";

/// What a tenant directory that is a link is: repair never writes through it.
const LINKED_TENANT: &str = "tenant directory is a link: repair never writes through it; move the link out of the store by hand";

/// Whether `path` itself (not what a link points to) is a regular file.
fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn first_damage(dir: &Path, segs: &[PathBuf], tenant: &TenantId) -> Result<(Option<Found>, u64)> {
    let mut size: Option<u64> = None;
    let mut head = Link::GENESIS;
    let mut kept = 0u64;
    let mut found: Option<Found> = None;
    for (si, path) in segs.iter().enumerate() {
        // A link (to a segment elsewhere, valid or not), a directory: never
        // read through, never written through; damage from here on.
        if !is_regular(path) {
            if found.is_none() {
                found = Some(Found {
                    damage: RepairDamage {
                        what: NOT_REGULAR,
                        file: rel(dir, path),
                        offset: 0,
                    },
                    seg: si,
                    kept,
                    dropped: 0,
                });
            }
            continue;
        }
        let bytes = match read_segment(path) {
            Ok(b) => b,
            // A FIFO, a device, a file longer than any segment: damage
            // from here on (moved to quarantine, never read).
            Err(Error::Corrupt { .. }) if found.is_none() => {
                found = Some(Found {
                    damage: RepairDamage {
                        what: "segment is not a file the store wrote (FIFO, device, too long)",
                        file: rel(dir, path),
                        offset: 0,
                    },
                    seg: si,
                    kept,
                    dropped: 0,
                });
                continue;
            }
            Err(Error::Corrupt { .. }) => continue,
            Err(e) => return Err(e),
        };
        let mark = match path.parent() {
            Some(tdir) if si + 1 == segs.len() => super::recovery::synced_mark(tdir, path),
            _ => 0,
        };
        let parsed = parse_segment_synced(&bytes, mark).ok();
        if let Some(f) = found.as_mut() {
            f.dropped += parsed.map_or(0, |p| p.frames.len() as u64);
            continue;
        }
        let at = |what: &'static str, offset: u64, kept: u64, dropped: u64| {
            Some(Found {
                damage: RepairDamage {
                    what,
                    file: rel(dir, path),
                    offset,
                },
                seg: si,
                kept,
                dropped,
            })
        };
        let Some(p) = parsed else {
            found = at("segment header", 0, kept, 0);
            continue;
        };
        if p.header.tenant != *tenant {
            found = at("segment of another tenant", 0, kept, p.frames.len() as u64);
            continue;
        }
        let next = *size.get_or_insert(p.header.first_seq);
        if si > 0 && (p.header.first_seq != next || p.header.prev_link != head) {
            found = at(
                "segment does not continue the previous one",
                0,
                kept,
                p.frames.len() as u64,
            );
            continue;
        }
        let mut seq = next;
        let mut bad = None;
        for (i, f) in p.frames.iter().enumerate() {
            let ok = peek_header(&bytes[f.record_range()])
                .is_ok_and(|h| h.seq == seq && h.tenant == tenant.as_str().as_bytes());
            if !ok {
                bad = Some((f.offset, (p.frames.len() - i) as u64));
                break;
            }
            seq += 1;
            head = f.link;
        }
        kept += seq - next;
        size = Some(seq);
        if let Some((offset, dropped)) = bad {
            found = at("record out of sequence", offset, kept, dropped);
            continue;
        }
        let last = si + 1 == segs.len();
        match p.end {
            SegmentEnd::Clean => {}
            // Below a checkpoint in the tenant's log: not a crash leftover
            // (the next open refuses to cut it; see `load_tenant`).
            SegmentEnd::TornTail { valid_len, .. } if last && signed_size(path) > seq => {
                let after = intact_frames_after(&bytes, valid_len, p.header.version);
                found = at(
                    "torn tail below a checkpoint in the tenant's log",
                    valid_len,
                    kept,
                    after,
                );
            }
            // Cut by the next open as a crash leftover.
            SegmentEnd::TornTail { .. } if last => {}
            SegmentEnd::TornTail { valid_len, .. } => {
                found = at("torn frame in a sealed segment", valid_len, kept, 0);
            }
            SegmentEnd::Corrupt { offset } => {
                let after = intact_frames_after(&bytes, offset, p.header.version);
                found = at("damaged frame", offset, kept, after);
            }
        }
    }
    Ok((found, kept))
}

/// The largest size a checkpoint in the log beside `segment` claims (0
/// with none, or an unreadable log).
fn signed_size(segment: &Path) -> u64 {
    segment
        .parent()
        .and_then(|d| read_checkpoint_log(&d.join(CHECKPOINT_LOG)).ok())
        .and_then(|cps| cps.iter().map(|c| c.checkpoint.size).max())
        .unwrap_or(0)
}

/// The tenant's quarantine directory: `quarantine`, or the first of
/// `quarantine.1`, `quarantine.2`, .. that is a real directory or not there
/// (a link planted under that name would have the damage moved through it).
fn quarantine_dir(tdir: &Path) -> PathBuf {
    let usable = |p: &Path| match fs::symlink_metadata(p) {
        Ok(m) => m.file_type().is_dir(),
        Err(_) => true,
    };
    let mut p = tdir.join("quarantine");
    let mut n = 1u32;
    while !usable(&p) {
        p = tdir.join(format!("quarantine.{n}"));
        n += 1;
    }
    p
}

/// A name in `qdir` not yet taken, for `base`.
fn quarantine_name(qdir: &Path, base: &str) -> PathBuf {
    let mut p = qdir.join(base);
    let mut n = 1u32;
    // Taken also by a link, dangling or not.
    while fs::symlink_metadata(&p).is_ok() {
        p = qdir.join(format!("{base}.{n}"));
        n += 1;
    }
    p
}

fn repair_tenant(
    dir: &Path,
    tdir: &Path,
    tenant: &TenantId,
    mode: RepairMode,
) -> Result<RepairReport> {
    let mut report = RepairReport {
        tenant: tenant.clone(),
        damage: None,
        kept: 0,
        dropped: 0,
        quarantined: Vec::new(),
        applied: false,
    };
    if fs::symlink_metadata(tdir)?.file_type().is_symlink() {
        // The writer refuses appends to such a tenant; what it points to is
        // outside the store, so nothing is read, moved or cut there.
        report.damage = Some(RepairDamage {
            what: LINKED_TENANT,
            file: rel(dir, tdir),
            offset: 0,
        });
        return Ok(report);
    }
    // Listed as a reader lists them: a segment that is not a regular file is
    // damage to move out, not an error that stops the repair.
    let segs = segment_files(tdir, false)?;
    let (found, kept) = first_damage(dir, &segs, tenant)?;
    report.kept = kept;
    if mode == RepairMode::Apply {
        repair_checkpoint_log(&tdir.join(CHECKPOINT_LOG))?;
    }
    let Some(found) = found else {
        return Ok(report);
    };
    report.kept = found.kept;
    report.dropped = found.dropped;
    report.damage = Some(found.damage.clone());
    if mode == RepairMode::DryRun {
        return Ok(report);
    }
    let qdir = quarantine_dir(tdir);
    fs::create_dir_all(&qdir)?;
    sync_dir(tdir)?;
    for (i, path) in segs.iter().enumerate().skip(found.seg) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
            .to_owned();
        let bytes = if i != found.seg || !is_regular(path) {
            // Moved whole: never read (nor, for a link, followed).
            Vec::new()
        } else {
            match read_segment(path) {
                Ok(b) => b,
                // Not a segment the store wrote: moved whole, never read.
                Err(Error::Corrupt { .. }) => Vec::new(),
                Err(e) => return Err(e),
            }
        };
        let header_len = SegmentHeader::decode(&bytes).map_or(usize::MAX, |(_, l)| l);
        let offset = usize::try_from(found.damage.offset).unwrap_or(usize::MAX);
        if i == found.seg && offset >= header_len && offset <= bytes.len() {
            // Keep the intact prefix; quarantine the damaged tail.
            let q = quarantine_name(&qdir, &format!("{name}.from-{offset}.damaged"));
            let mut f = OpenOptions::new().create_new(true).write(true).open(&q)?;
            f.write_all(&bytes[offset..])?;
            f.sync_all()?;
            sync_dir(&qdir)?;
            let seg = OpenOptions::new().write(true).open(path)?;
            seg.set_len(found.damage.offset)?;
            seg.sync_all()?;
            report.quarantined.push(q);
        } else {
            let q = quarantine_name(&qdir, &format!("{name}.damaged"));
            fs::rename(path, &q)?;
            report.quarantined.push(q);
        }
    }
    // The mark described the segment before the cut.
    match fs::remove_file(tdir.join(super::recovery::SYNCED_MARK)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    sync_dir(&qdir)?;
    sync_dir(tdir)?;
    report.applied = true;
    tracing::warn!(tenant = %tenant, kept = report.kept, dropped = report.dropped,
        "audit store: chain cut back by an operator repair; damage moved to quarantine");
    Ok(report)
}

impl FileStore {
    /// Find the first damage in each tenant's chain (or only `tenant`'s) that
    /// opening the store does not cut as a crash leftover, and with
    /// [`RepairMode::Apply`] cut the chain back to the last intact record
    /// before it, moving the damaged bytes and every later segment to the
    /// tenant's `quarantine/` directory. See the module docs of `store::file`.
    ///
    /// Takes the store's write lock: the store must not be open for writing.
    ///
    /// # Errors
    /// [`Error::Locked`] while a writer holds the store, [`Error::NotFound`]
    /// for a missing directory or tenant, [`Error::Io`].
    pub fn repair(
        dir: impl AsRef<Path>,
        tenant: Option<&TenantId>,
        mode: RepairMode,
    ) -> Result<Vec<RepairReport>> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::NotFound);
        }
        let _lock = lock_store(dir)?;
        let mut out = Vec::new();
        for (t, tdir) in tenant_dirs(dir)? {
            if tenant.is_some_and(|w| *w != t) {
                continue;
            }
            out.push(repair_tenant(dir, &tdir, &t, mode)?);
        }
        if tenant.is_some() && out.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(out)
    }
}
