//! Operator repair of a damaged chain (`hisn audit repair`).
//!
//! Opening a store cuts only crash leftovers (damage past the synced mark).
//! Anything else stops appends to that tenant and is reported by `verify`;
//! when the damaged bytes cannot be restored from a replica, an operator cuts
//! the chain back to the last intact record before the damage with
//! [`FileStore::repair`]. Nothing is deleted or written over: the intact
//! prefix of the damaged segment is written to a new file that is swapped in
//! under its name, and the whole damaged segment, every later one and the
//! synced mark are moved to `quarantine/` in the tenant's directory for
//! forensics. Every change goes through descriptors (see `nofollow`): a link,
//! FIFO or directory put at any name before or during the repair is moved,
//! never read, followed or written through. The cut is visible afterwards: a checkpoint that covered the
//! removed records makes `verify` report the chain as truncated.

use std::io::Read as _;
use std::os::fd::OwnedFd;

use super::nofollow;
use super::recovery::{repair_checkpoint_log_at, segment_files, tenant_dirs};
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
        // Damage from here on, never read (moved to quarantine whole).
        let unusable = |what| Found {
            damage: RepairDamage {
                what,
                file: rel(dir, path),
                offset: 0,
            },
            seg: si,
            kept,
            dropped: 0,
        };
        // A link (to a segment elsewhere, valid or not), a directory: never
        // read through, never written through.
        if !is_regular(path) {
            found.get_or_insert_with(|| unusable(NOT_REGULAR));
            continue;
        }
        let bytes = match read_segment(path) {
            Ok(b) => b,
            // A FIFO or device swapped in since, a file longer than any segment.
            Err(Error::Corrupt { .. }) => {
                found.get_or_insert_with(|| {
                    unusable("segment is not a file the store wrote (FIFO, device, too long)")
                });
                continue;
            }
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

/// The tenant's quarantine directory, opened: `quarantine`, or the first of
/// `quarantine.1`, `quarantine.2`, .. that is a real directory or not there
/// (a link planted under that name would have the damage moved through it).
fn quarantine_dir(dfd: &OwnedFd) -> Result<(String, OwnedFd)> {
    let mut name = "quarantine".to_owned();
    for n in 1u32.. {
        nofollow::ensure_dir_at(dfd, &name)?;
        match nofollow::open_dir_at(dfd, &name) {
            Ok(fd) => return Ok((name, fd)),
            Err(e) if is_link_refusal(&e) => name = format!("quarantine.{n}"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Corrupt {
        what: "no usable quarantine directory name",
        file: name,
        offset: 0,
    })
}

/// A name in the quarantine directory not yet taken (by anything, a
/// dangling link included), for `base`.
fn quarantine_name(qfd: &OwnedFd, base: &str) -> String {
    let mut p = base.to_owned();
    let mut n = 1u32;
    while nofollow::exists_at(qfd, &p) {
        p = format!("{base}.{n}");
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
    // Opened once, never through a link: every change below names entries
    // relative to it, so swapping the tenant directory (or anything in it)
    // for a link after a check moves nothing outside the store.
    let dfd = match nofollow::open_dir(tdir) {
        Ok(fd) => fd,
        Err(e) if is_link_refusal(&e) => {
            // The writer refuses appends to such a tenant; what it points to
            // is outside the store, so nothing is read, moved or cut there.
            report.damage = Some(RepairDamage {
                what: LINKED_TENANT,
                file: rel(dir, tdir),
                offset: 0,
            });
            return Ok(report);
        }
        Err(e) => return Err(e.into()),
    };
    // Listed as a reader lists them: a segment that is not a regular file is
    // damage to move out, not an error that stops the repair.
    let segs = segment_files(tdir, false)?;
    let (found, kept) = first_damage(dir, &segs, tenant)?;
    report.kept = kept;
    if mode == RepairMode::Apply {
        repair_checkpoint_log_at(&dfd)?;
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
    let (qname, qfd) = quarantine_dir(&dfd)?;
    nofollow::sync(&dfd)?;
    let qdir = tdir.join(&qname);
    let offset = usize::try_from(found.damage.offset).unwrap_or(usize::MAX);
    for (i, path) in segs.iter().enumerate().skip(found.seg) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
            .to_owned();
        let q = quarantine_name(&qfd, &format!("{name}.damaged"));
        if i == found.seg
            && offset > 0
            && let Some(old) = keep_prefix(&dfd, &name, offset, || {})?
        {
            // The prefix is in place under the segment's name; the file it
            // was copied from (the whole damaged segment) goes to quarantine.
            nofollow::move_at(&dfd, &old, &qfd, &q)?;
        } else {
            // Moved whole, whatever it is now: never read, never followed.
            nofollow::move_at(&dfd, &name, &qfd, &q)?;
        }
        report.quarantined.push(qdir.join(q));
    }
    // The mark described the segments before the cut: kept with the damage.
    let mark = super::recovery::SYNCED_MARK;
    if nofollow::exists_at(&dfd, mark) {
        let q = quarantine_name(&qfd, mark);
        nofollow::move_at(&dfd, mark, &qfd, &q)?;
    }
    nofollow::sync(&qfd)?;
    nofollow::sync(&dfd)?;
    report.applied = true;
    tracing::warn!(tenant = %tenant, kept = report.kept, dropped = report.dropped,
        "audit store: chain cut back by an operator repair; damage moved to quarantine");
    Ok(report)
}

/// Whether an open failed because the name is a link (or not a directory).
fn is_link_refusal(e: &std::io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
    )
}

/// Write the first `offset` bytes of segment `name` to a new file and swap
/// it in under that name; returns the name the old file (the whole damaged
/// segment) is left under, or `None` when `name` is no longer a regular file
/// holding a segment header and `offset` bytes (then it is moved whole).
/// The old file is never written: a hard link to it elsewhere keeps it whole.
///
/// `after_read` runs between the read and the swap (tests pin a race there).
fn keep_prefix(
    dfd: &OwnedFd,
    name: &str,
    offset: usize,
    after_read: impl FnOnce(),
) -> Result<Option<String>> {
    let Ok(f) = nofollow::open_file_at(dfd, name, false) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    (&f).take(MAX_SEGMENT_FILE).read_to_end(&mut bytes)?;
    let header_len = SegmentHeader::decode(&bytes).map_or(usize::MAX, |(_, l)| l);
    if offset < header_len || offset > bytes.len() {
        return Ok(None);
    }
    let tmp = format!("{name}.repair");
    if nofollow::exists_at(dfd, &tmp) {
        // A leftover of a repair that crashed (or something planted): kept
        // as evidence, for the operator.
        return Err(Error::Corrupt {
            what: "a previous repair's file is still in the tenant directory; move it out by hand",
            file: tmp,
            offset: 0,
        });
    }
    after_read();
    let mut out = nofollow::create_new_at(dfd, &tmp)?;
    out.write_all(&bytes[..offset])?;
    out.sync_all()?;
    nofollow::exchange_at(dfd, &tmp, name)?;
    if !nofollow::is_same_file(&f, dfd, &tmp)? {
        // Swapped for something else between the read and the exchange: the
        // prefix is in place; what was swapped in stays for the operator.
        return Err(Error::Corrupt {
            what: "segment replaced while it was being repaired",
            file: name.to_owned(),
            offset: 0,
        });
    }
    Ok(Some(tmp))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment swapped for a link to a file outside the store between the
    /// read and the swap: the outside file is neither cut nor moved, the
    /// prefix read is what takes the segment's name, the repair fails.
    #[test]
    fn a_segment_swapped_for_a_link_after_the_read_is_never_written_through() {
        let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let header = SegmentHeader {
            version: crate::store::segment::SEGMENT_VERSION,
            tenant: TenantId::parse("acme").unwrap(),
            first_seq: 0,
            prev_link: Link::GENESIS,
            segment_id: [1; 16],
        }
        .encode();
        let mut seg = header.clone();
        seg.extend([7u8; 100]);
        let name = "00000000000000000000.seg";
        std::fs::write(dir.path().join(name), &seg).unwrap();
        let victim = elsewhere.path().join("victim");
        let outside = vec![9u8; 4096];
        std::fs::write(&victim, &outside).unwrap();
        let dfd = nofollow::open_dir(dir.path()).unwrap();
        let cut = header.len() + 10;
        let swap = || {
            std::fs::rename(dir.path().join(name), dir.path().join("moved")).unwrap();
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        };
        let r = keep_prefix(&dfd, name, cut, swap);
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
        assert_eq!(std::fs::read(&victim).unwrap(), outside);
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), seg[..cut]);
        // The link was swapped out, not followed; the original is untouched.
        let left = std::fs::symlink_metadata(dir.path().join(format!("{name}.repair"))).unwrap();
        assert!(left.file_type().is_symlink());
        assert_eq!(std::fs::read(dir.path().join("moved")).unwrap(), seg);
    }

    /// A link or FIFO at the segment's name when the repair reads it is moved
    /// whole, never opened.
    #[test]
    fn a_link_or_fifo_at_the_name_is_not_read() {
        let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, vec![9u8; 4096]).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("a.seg")).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(dir.path().join("b.seg"))
                .status()
                .unwrap()
                .success()
        );
        let dfd = nofollow::open_dir(dir.path()).unwrap();
        for name in ["a.seg", "b.seg"] {
            assert!(keep_prefix(&dfd, name, 100, || {}).unwrap().is_none());
        }
        assert_eq!(std::fs::read(&victim).unwrap(), vec![9u8; 4096]);
    }
}
