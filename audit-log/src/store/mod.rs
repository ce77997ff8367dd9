//! Stores and what every store offers: reading, verification, DSAR reports.

pub mod file;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod pg_group;
mod plan;
#[cfg(feature = "postgres")]
pub mod postgres;
mod report;
pub mod segment;

pub(crate) use plan::ReportPlan;
pub use report::{EntryInclusion, EntryProof, InclusionCheck, ReportEntry, SubjectReport, reasons};

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{SignedCheckpoint, TrustedKeys};
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::verify::{Start, StoredRecord, Verdict, Verifier, VerifyReport};

/// The first and last positions of one tenant's chain in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// First sequence number held (0 unless a prefix was pruned).
    pub first_seq: u64,
    /// Link of record `first_seq - 1` ([`Link::GENESIS`] when `first_seq` is 0).
    pub start_prev: Link,
    /// Number of records ever appended (the next sequence number).
    pub size: u64,
    /// Link of the newest record.
    pub head: Link,
}

impl Bounds {
    /// An empty chain (no records, genesis head).
    pub const EMPTY: Self = Self {
        first_seq: 0,
        start_prev: Link::GENESIS,
        size: 0,
        head: Link::GENESIS,
    };
}

/// Read access to a store, and the verification and reporting built on it.
pub trait AuditRead {
    /// Tenants with a chain in this store.
    ///
    /// # Errors
    /// Store I/O errors.
    fn tenants(&self) -> Result<Vec<TenantId>>;

    /// The bounds of `tenant`'s chain ([`Error::NotFound`] if it has none).
    ///
    /// # Errors
    /// [`Error::NotFound`], store I/O errors.
    fn bounds(&self, tenant: &TenantId) -> Result<Bounds>;

    /// Records `from..to` in order. Damaged records come back as
    /// [`Error::Corrupt`]; the verifier turns that into a verdict.
    ///
    /// # Errors
    /// Store I/O errors.
    fn read_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Result<StoredRecord>>>;

    /// Sequence numbers of the records naming `subject`, ascending.
    ///
    /// # Errors
    /// Store I/O errors.
    fn subject_seqs(&self, tenant: &TenantId, subject: &str) -> Result<Vec<u64>>;

    /// The checkpoints the store keeps for `tenant` (a local copy; the ones that
    /// protect are those held elsewhere, passed as `extra` to the verify methods).
    ///
    /// # Errors
    /// Store I/O errors, malformed checkpoint files.
    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>>;

    /// Tenants the store holds checkpoints for, whether or not their chain is
    /// still there (so a chain deleted while its checkpoint remains is found).
    /// The default is none; stores that keep checkpoints per tenant override it.
    ///
    /// # Errors
    /// Store I/O errors.
    fn checkpoint_tenants(&self) -> Result<Vec<TenantId>> {
        Ok(Vec::new())
    }

    /// Stored tile `index` of tile level `level` of `tenant`'s Merkle tree
    /// (all 511 nodes, see [`merkle::tiles`](crate::merkle::tiles)), for
    /// stores that persist the tree; `None` when it is not stored (the
    /// default: the tree is then computed from the records). Tiles are never
    /// trusted: a proof built from them is checked against a signed root.
    ///
    /// # Errors
    /// Store I/O errors.
    fn merkle_tile(
        &self,
        tenant: &TenantId,
        level: u32,
        index: u64,
    ) -> Result<Option<Vec<crate::merkle::Hash>>> {
        let _ = (tenant, level, index);
        Ok(None)
    }

    /// The hashes at `slots` of stored tile `index` of tile level `level`
    /// (positions among the tile's 511, as
    /// [`merkle::tiles::slot`](crate::merkle::tiles::slot) lays them out),
    /// in the order asked: part of what [`merkle_tile`](Self::merkle_tile)
    /// gives, for stores that can read part of a tile (an inclusion path
    /// needs 9 of a bottom tile's 511 hashes). `None` when the tile is not
    /// stored whole. The default reads the whole tile.
    ///
    /// # Errors
    /// Store I/O errors.
    fn merkle_tile_nodes(
        &self,
        tenant: &TenantId,
        level: u32,
        index: u64,
        slots: &[usize],
    ) -> Result<Option<Vec<crate::merkle::Hash>>> {
        Ok(self
            .merkle_tile(tenant, level, index)?
            .and_then(|t| slots.iter().map(|&s| t.get(s).copied()).collect()))
    }

    /// Verify `tenant`'s whole chain against the store's checkpoints plus
    /// `extra`, checkpoints the caller holds elsewhere and vouches for (their
    /// faults are verdicts; a store note that does not verify is skipped).
    ///
    /// A tenant with no chain is an empty log: any checkpoint of it is
    /// [`Verdict::Truncated`]. Checkpoints are read before the records, so a
    /// concurrent append never makes a live store look truncated.
    ///
    /// # Errors
    /// Store I/O errors; damage is a verdict, not an error.
    fn verify(
        &self,
        tenant: &TenantId,
        keys: Option<&TrustedKeys>,
        extra: &[SignedCheckpoint],
    ) -> Result<VerifyReport> {
        // Root cause of false `truncated` on a live store: records were read
        // first and checkpoints after, so a checkpoint signed in between
        // claimed more records than had been read. Every checkpoint the store
        // holds was made of records it already holds, so reading them first
        // gives a consistent view.
        self.verify_witnessed(tenant, keys, None, extra)
    }

    /// [`verify`](Self::verify), accepting a checkpoint only when it also
    /// meets `witnesses` (N of M witness cosignatures): a store note that
    /// does not is skipped, a checkpoint in `extra` that does not is
    /// [`Verdict::BadCheckpoint`].
    ///
    /// # Errors
    /// Store I/O errors; damage is a verdict, not an error.
    fn verify_witnessed(
        &self,
        tenant: &TenantId,
        keys: Option<&TrustedKeys>,
        witnesses: Option<&crate::checkpoint::WitnessPolicy>,
        extra: &[SignedCheckpoint],
    ) -> Result<VerifyReport> {
        // Checkpoints first: see `verify`.
        let cps = self.checkpoints(tenant)?;
        let (start, records) = read_chain(self, tenant)?;
        let mut v = Verifier::new(tenant, &cps, keys).anchors(extra);
        if let Some(w) = witnesses {
            v = v.witnesses(w);
        }
        v.verify_log(start, records)
    }

    /// Verify only the records appended after `checkpoint` (cost proportional to
    /// the new records). The checkpoint must verify under `keys`.
    ///
    /// # Errors
    /// Store I/O errors.
    fn verify_from(
        &self,
        tenant: &TenantId,
        checkpoint: &SignedCheckpoint,
        keys: &TrustedKeys,
    ) -> Result<VerifyReport> {
        let b = match self.bounds(tenant) {
            Err(Error::NotFound) => Bounds::EMPTY,
            other => other?,
        };
        let cps = [checkpoint.clone()];
        let verifier = Verifier::new(tenant, &[], Some(keys)).anchors(&cps);
        let cp = &checkpoint.checkpoint;
        if cp.origin != crate::checkpoint::origin_for(tenant)
            || checkpoint.verify(keys).is_err()
            || cp.size > b.size
        {
            // Let the verifier name the problem (bad checkpoint, unknown key, truncation).
            return verifier.verify_log(
                Start::Trusted {
                    seq: b.size.min(cp.size),
                    prev: b.head,
                },
                Vec::<Result<StoredRecord>>::new(),
            );
        }
        let records = self.read_range(tenant, cp.size, b.size)?;
        verifier.verify_log(
            Start::Trusted {
                seq: cp.size,
                prev: cp.head,
            },
            records,
        )
    }

    /// Verify records `from..to`, trusting the stored link of `from - 1`, and
    /// against any checkpoint inside the range.
    ///
    /// # Errors
    /// Store I/O errors.
    fn verify_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
        keys: Option<&TrustedKeys>,
    ) -> Result<VerifyReport> {
        let cps = self.checkpoints(tenant)?;
        let b = self.bounds(tenant)?;
        let from = from.max(b.first_seq);
        let to = to.min(b.size);
        let prev = if from == b.first_seq {
            b.start_prev
        } else {
            match self.read_range(tenant, from - 1, from)?.into_iter().next() {
                Some(Ok(r)) => r.link,
                _ => return Err(Error::NotFound),
            }
        };
        let cps: Vec<_> = cps
            .into_iter()
            .filter(|c| c.checkpoint.size > from && c.checkpoint.size <= to)
            .collect();
        let records = self.read_range(tenant, from, to)?;
        Verifier::new(tenant, &cps, keys).verify_range(Start::Trusted { seq: from, prev }, records)
    }

    /// Verify one record and its path to the first verified checkpoint after it:
    /// the verdict is [`Verdict::Intact`] only if that checkpoint's head is
    /// reached.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `seq` is not held, store I/O errors.
    fn verify_record(
        &self,
        tenant: &TenantId,
        seq: u64,
        keys: &TrustedKeys,
    ) -> Result<VerifyReport> {
        let cps = self.checkpoints(tenant)?;
        let b = self.bounds(tenant)?;
        if seq < b.first_seq || seq >= b.size {
            return Err(Error::NotFound);
        }
        let next = cps
            .into_iter()
            .filter(|c| c.checkpoint.size > seq && c.verify(keys).is_ok())
            .map(|c| c.checkpoint.size)
            .min()
            .unwrap_or(b.size);
        self.verify_range(tenant, seq, next, Some(keys))
    }

    /// A proof that record `seq` is in the chain `checkpoint` commits to: the
    /// record, its predecessor's link and the digests of the records after it
    /// up to the checkpoint's size (so its length is bounded by the checkpoint
    /// interval). Check it with [`InclusionProof::verify`].
    ///
    /// # Errors
    /// [`Error::NotFound`] when the record is not held or not covered by the
    /// checkpoint; [`Error::Corrupt`] when the stored records are damaged.
    fn inclusion_proof(
        &self,
        tenant: &TenantId,
        seq: u64,
        checkpoint: &SignedCheckpoint,
    ) -> Result<InclusionProof> {
        let b = self.bounds(tenant)?;
        let size = checkpoint.checkpoint.size;
        if seq < b.first_seq || seq >= size || size > b.size {
            return Err(Error::NotFound);
        }
        let from = if seq > b.first_seq { seq - 1 } else { seq };
        let mut prev_link = if seq > b.first_seq {
            Link::GENESIS
        } else {
            b.start_prev
        };
        let mut record = None;
        let mut path = Vec::new();
        for r in self.read_range(tenant, from, size)? {
            let r = r.map_err(|_| Error::Corrupt {
                what: "record",
                file: String::new(),
                offset: seq,
            })?;
            if r.seq < seq {
                prev_link = r.link;
            } else if r.seq == seq {
                record = Some(r.bytes);
            } else {
                path.push(record_digest(&r.bytes));
            }
        }
        let record = record.ok_or(Error::NotFound)?;
        Ok(InclusionProof {
            seq,
            record,
            prev_link,
            path,
        })
    }

    /// The Merkle leaf hashes of records `0..size` ([`merkle`](crate::merkle)).
    /// Reads and hashes every record, after checking that they chain
    /// (`O(size)`); a store may keep the tree instead.
    ///
    /// # Errors
    /// [`Error::NotFound`] when records before `size` are not held (pruned,
    /// or beyond the chain); [`Error::Corrupt`] when they do not chain.
    fn merkle_leaves(&self, tenant: &TenantId, size: u64) -> Result<Vec<crate::merkle::Hash>> {
        let b = self.bounds(tenant)?;
        if b.first_seq > 0 || size > b.size {
            return Err(Error::NotFound);
        }
        let records = self.read_range(tenant, 0, size)?;
        let report = Verifier::new(tenant, &[], None).verify_range(
            Start::Genesis,
            records
                .iter()
                .map(|r| r.as_ref().map_err(|_| crate::error::malformed("record"))),
        )?;
        if !report.breaks.is_empty() || report.size != size {
            return Err(Error::Corrupt {
                what: "records do not chain",
                file: String::new(),
                offset: report.seq.unwrap_or(0),
            });
        }
        Ok(records
            .iter()
            .flatten()
            .map(|r| crate::merkle::leaf_hash(&record_digest(&r.bytes)))
            .collect())
    }

    /// Sign a checkpoint of `tenant`'s current chain carrying its Merkle root
    /// (the C2SP `tlog-checkpoint` form witnesses cosign). It is returned, not
    /// kept: publish it, and keep it in the store if the store offers that.
    /// Refuses to sign over records that do not chain.
    ///
    /// # Errors
    /// As [`merkle_leaves`](Self::merkle_leaves).
    fn merkle_checkpoint(
        &self,
        tenant: &TenantId,
        key: &crate::checkpoint::SigningKey,
        now: crate::clock::Timestamp,
    ) -> Result<SignedCheckpoint> {
        let b = self.bounds(tenant)?;
        let leaves = self.merkle_leaves(tenant, b.size)?;
        let cp = crate::checkpoint::Checkpoint::new(tenant, b.size, b.head, now)
            .with_root(crate::merkle::root(&leaves));
        Ok(key.sign(cp))
    }

    /// A Merkle inclusion proof of record `seq` in the tree of the first
    /// `size` records (`O(log size)` hashes). Built from the store's tiles
    /// ([`merkle_tile`](Self::merkle_tile)) where it keeps them: one tile read
    /// per tile level plus the tree's right edge (at most 255 records);
    /// otherwise from every record's leaf hash. Tiles are not trusted: check
    /// the proof against a signed root ([`RecordInclusion::verify`](crate::merkle::RecordInclusion::verify)),
    /// which a changed tile or record fails.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `seq >= size`, or records before `size` are
    /// not held (pruned, or beyond the chain).
    fn merkle_inclusion(
        &self,
        tenant: &TenantId,
        seq: u64,
        size: u64,
    ) -> Result<crate::merkle::RecordInclusion> {
        let b = self.bounds(tenant)?;
        if b.first_seq > 0 || size > b.size || seq >= size {
            return Err(Error::NotFound);
        }
        let src = plan::StoreNodes::new(self, tenant, "");
        let path = crate::merkle::tiles::Tree::new(&src, size)
            .inclusion_path(seq)?
            .ok_or(Error::NotFound)?;
        let record = match self.read_range(tenant, seq, seq + 1)?.pop() {
            Some(Ok(r)) => r.bytes,
            _ => return Err(Error::NotFound),
        };
        Ok(crate::merkle::RecordInclusion {
            seq,
            size,
            record,
            path,
        })
    }

    /// A Merkle consistency proof between the trees of the first `old_size`
    /// and `new_size` records.
    ///
    /// # Errors
    /// As [`merkle_leaves`](Self::merkle_leaves); [`Error::NotFound`] unless
    /// `0 < old_size <= new_size`.
    fn merkle_consistency(
        &self,
        tenant: &TenantId,
        old_size: u64,
        new_size: u64,
    ) -> Result<crate::merkle::Consistency> {
        let leaves = self.merkle_leaves(tenant, new_size)?;
        let old = usize::try_from(old_size).map_err(|_| Error::NotFound)?;
        let path = crate::merkle::consistency_proof(&leaves, old).ok_or(Error::NotFound)?;
        Ok(crate::merkle::Consistency {
            old_size,
            new_size,
            path,
        })
    }

    /// The DSAR report: every record whose decoded content names `subject`
    /// (as a data subject or as the actor), each proven against a verified
    /// checkpoint or marked unproven with the reason (see [`SubjectReport`]
    /// and the matching rule for subject keys in its module docs).
    ///
    /// # Errors
    /// Store I/O errors. Damaged or mis-indexed records are counted in the
    /// report, not errors.
    fn subject_report(
        &self,
        tenant: &TenantId,
        subject: &str,
        keys: Option<&TrustedKeys>,
    ) -> Result<SubjectReport> {
        let cps = match keys {
            Some(_) => self.checkpoints(tenant)?,
            None => Vec::new(),
        };
        let b = match self.bounds(tenant) {
            Ok(b) => b,
            Err(Error::NotFound) => Bounds::EMPTY,
            Err(e) => return Err(e),
        };
        // The index is untrusted: it only says where to look.
        let seqs = self.subject_seqs(tenant, subject)?;
        let plan = ReportPlan::new(tenant, keys, &cps, &b, &seqs);
        let mut candidates = Vec::with_capacity(seqs.len());
        for run in runs(&seqs) {
            let (lo, hi) = (run[0], run[run.len() - 1]);
            candidates.extend(self.read_range(tenant, lo, hi.saturating_add(1))?);
        }
        let ranges = plan
            .ranges()
            .into_iter()
            .map(|(from, to)| self.read_range(tenant, from, to))
            .collect::<Result<Vec<_>>>()?;
        let merkle = match plan.merkle_size() {
            Some(size) => {
                let src = plan::StoreNodes::new(self, tenant, subject);
                let mut tree = crate::merkle::tiles::Tree::new(&src, size);
                plan.prove_merkle(&mut tree, subject, || src.found.take())?
            }
            None => plan::MerkleInput::default(),
        };
        plan.finish(subject, candidates, ranges, merkle)
    }
}

/// Bounds and records of `tenant`'s whole chain, read consistently: a
/// missing chain is an empty log, and a prune between reading the bounds and
/// the records (the first record is then not the first the bounds name) is
/// read again rather than reported as a gap.
fn read_chain<S: AuditRead + ?Sized>(
    store: &S,
    tenant: &TenantId,
) -> Result<(Start, Vec<Result<StoredRecord>>)> {
    let mut attempts = 0;
    loop {
        let b = match store.bounds(tenant) {
            Ok(b) => b,
            Err(Error::NotFound) => return Ok((Start::Genesis, Vec::new())),
            Err(e) => return Err(e),
        };
        let records = store.read_range(tenant, b.first_seq, b.size)?;
        let moved = matches!(records.first(), Some(Ok(r)) if r.seq != b.first_seq)
            && store
                .bounds(tenant)
                .is_ok_and(|now| now.first_seq != b.first_seq);
        attempts += 1;
        if !moved || attempts >= 3 {
            return Ok((verify_start(&b), records));
        }
    }
}

/// `frontier` (the Merkle tree of records `0..frontier.size()`, the last of
/// which has link `prev`) extended with `records`, which must be the next
/// records in order, each chaining from the one before; otherwise (or when
/// the last one's link is not `head`) the sequence number where they stop
/// doing so. So a root is only ever computed from records that were checked
/// against the chain it is signed with.
pub(crate) fn extend_chained<'r>(
    tenant: &TenantId,
    mut frontier: crate::merkle::Frontier,
    mut prev: Link,
    records: impl IntoIterator<Item = &'r StoredRecord>,
    head: &Link,
) -> std::result::Result<crate::merkle::Frontier, u64> {
    let t = tenant.as_str().as_bytes();
    for r in records {
        let digest = record_digest(&r.bytes);
        let header_ok = crate::encoding::peek_header(&r.bytes)
            .is_ok_and(|h| h.tenant == t && h.seq == frontier.size());
        if r.seq != frontier.size() || !header_ok || chain_link(t, r.seq, &prev, &digest) != r.link
        {
            return Err(frontier.size());
        }
        frontier.push(crate::merkle::leaf_hash(&digest));
        prev = r.link;
    }
    if prev == *head {
        Ok(frontier)
    } else {
        Err(frontier.size().saturating_sub(1))
    }
}

/// Records read per query while a root is computed from the records.
const ROOT_CHUNK: u64 = 4096;

/// The Merkle tree's right edge over `tenant`'s records `0..b.size`
/// (records `from..to` come from `read`, as [`AuditRead::read_range`] gives
/// them), computed from the records themselves and only when they chain from `prev`
/// (the link of record `frontier.size() - 1`) to `b.head`: `frontier`
/// extended with records `frontier.size()..b.size`, read in chunks (memory
/// stays bounded). `None` when the records are not all held or do not chain.
///
/// # Errors
/// Store I/O errors.
pub(crate) fn frontier_from_records(
    read: &dyn Fn(u64, u64) -> Result<Vec<Result<StoredRecord>>>,
    tenant: &TenantId,
    mut frontier: crate::merkle::Frontier,
    mut prev: Link,
    b: &Bounds,
) -> Result<Option<crate::merkle::Frontier>> {
    if b.first_seq > frontier.size() {
        return Ok(None);
    }
    while frontier.size() < b.size {
        let end = frontier.size().saturating_add(ROOT_CHUNK).min(b.size);
        let Ok(records) = read(frontier.size(), end)?
            .into_iter()
            .collect::<Result<Vec<_>>>()
        else {
            return Ok(None);
        };
        let Some(last) = records.last().map(|r| r.link) else {
            return Ok(None);
        };
        match extend_chained(tenant, frontier, prev, &records, &last) {
            Ok(f) if f.size() == end => frontier = f,
            _ => return Ok(None),
        }
        prev = last;
    }
    Ok((prev == b.head).then_some(frontier))
}

/// Split ascending sequence numbers into runs of neighbours, so a report reads
/// each run with one range read.
fn runs(seqs: &[u64]) -> Vec<&[u64]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=seqs.len() {
        if i == seqs.len() || seqs[i] != seqs[i - 1] + 1 {
            if start < i {
                out.push(&seqs[start..i]);
            }
            start = i;
        }
    }
    out
}

/// Proof that one record is committed to by a signed checkpoint (see
/// [`AuditRead::inclusion_proof`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Sequence number of the record.
    pub seq: u64,
    /// The encoded record.
    pub record: Vec<u8>,
    /// Link of the record before it.
    pub prev_link: Link,
    /// Digests of records `seq + 1 .. checkpoint size`.
    pub path: Vec<Link>,
}

impl InclusionProof {
    /// Whether the record, chained forward through `path`, reaches the head of
    /// `checkpoint`, and the checkpoint is `tenant`'s and verifies under `keys`.
    pub fn verify(
        &self,
        tenant: &TenantId,
        checkpoint: &SignedCheckpoint,
        keys: &TrustedKeys,
    ) -> bool {
        if checkpoint.checkpoint.origin != crate::checkpoint::origin_for(tenant)
            || checkpoint.verify(keys).is_err()
        {
            return false;
        }
        let t = tenant.as_str().as_bytes();
        let mut link = chain_link(t, self.seq, &self.prev_link, &record_digest(&self.record));
        let mut seq = self.seq;
        for d in &self.path {
            seq += 1;
            link = chain_link(t, seq, &link, d);
        }
        seq.checked_add(1) == Some(checkpoint.checkpoint.size) && link == checkpoint.checkpoint.head
    }
}

/// Proof that a prefix was exported and verified; the only way to ask a store to
/// prune. Made by the store's `export`, consumed by its `prune`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReceipt {
    pub(crate) tenant: TenantId,
    pub(crate) first: u64,
    pub(crate) through: u64,
    pub(crate) boundary: Link,
}

impl ExportReceipt {
    /// The last exported sequence number.
    pub fn through(&self) -> u64 {
        self.through
    }
}

/// An exported prefix: its records and the receipt that allows pruning them.
#[derive(Debug, Clone)]
pub struct Export {
    /// The exported records, ascending.
    pub records: Vec<StoredRecord>,
    /// The receipt (only issued when the export verified).
    pub receipt: ExportReceipt,
}

/// Read and verify `first..=through` for export; refuses a range that does not
/// verify or is not a prefix of what the store holds.
pub(crate) fn export_prefix(
    store: &dyn AuditRead,
    tenant: &TenantId,
    through: u64,
) -> Result<Export> {
    let b = store.bounds(tenant)?;
    check_export_range(&b, through)?;
    let records: Vec<StoredRecord> = store
        .read_range(tenant, b.first_seq, through + 1)?
        .into_iter()
        .collect::<Result<_>>()?;
    let report =
        Verifier::new(tenant, &[], None).verify_range(export_start(&b), records.iter().map(Ok))?;
    finish_export(tenant, &b, through, records, &report)
}

/// Refuse an export of `..=through` that the store does not hold.
pub(crate) fn check_export_range(b: &Bounds, through: u64) -> Result<()> {
    if through < b.first_seq || through >= b.size {
        return Err(Error::PruneRefused {
            reason: "range is not held by the store",
        });
    }
    Ok(())
}

/// Where verification of a whole chain with these bounds starts: at genesis,
/// or after a prune, which then requires the prune record.
pub(crate) fn verify_start(b: &Bounds) -> Start {
    if b.first_seq == 0 {
        Start::Genesis
    } else {
        Start::Pruned {
            seq: b.first_seq,
            prev: b.start_prev,
        }
    }
}

/// Where an export's verification starts. The prune record lies outside the
/// exported range, so a pruned start is trusted here; `prune` checks the
/// receipt against the store.
pub(crate) fn export_start(b: &Bounds) -> Start {
    if b.first_seq == 0 {
        Start::Genesis
    } else {
        Start::Trusted {
            seq: b.first_seq,
            prev: b.start_prev,
        }
    }
}

/// The export of `records` (`b.first_seq..=through`) once `report` says they
/// verify; refused otherwise.
pub(crate) fn finish_export(
    tenant: &TenantId,
    b: &Bounds,
    through: u64,
    records: Vec<StoredRecord>,
    report: &VerifyReport,
) -> Result<Export> {
    if !matches!(report.verdict, Verdict::Intact | Verdict::UnanchoredTail)
        || report.size != through + 1
    {
        return Err(Error::PruneRefused {
            reason: "exported range does not verify",
        });
    }
    Ok(Export {
        receipt: ExportReceipt {
            tenant: tenant.clone(),
            first: b.first_seq,
            through,
            boundary: report.head,
        },
        records,
    })
}

/// The prune record's event.
pub(crate) fn prune_event(
    receipt: &ExportReceipt,
    actor: &str,
    clock: &dyn crate::Clock,
) -> Result<Event> {
    Event::builder(&receipt.tenant, actor, crate::verify::PRUNE_ACTION)
        .entity("audit_log", receipt.tenant.as_str())
        .diff(&serde_json::json!({
            "from": receipt.first,
            "through": receipt.through,
            "count": receipt.through - receipt.first + 1,
            "boundary_link": receipt.boundary.to_hex(),
        }))
        .danger_build_reserved(clock)
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_split_neighbours() {
        assert_eq!(
            super::runs(&[1, 2, 3, 7, 9, 10]),
            vec![&[1, 2, 3][..], &[7], &[9, 10]]
        );
        assert!(super::runs(&[]).is_empty());
    }
}
