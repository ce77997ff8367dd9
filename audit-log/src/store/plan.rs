//! Planning and finishing a DSAR report (see [`super::report`]): which
//! records to read, which proofs to compute, and the verdict of each entry.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::report::{
    EntryInclusion, EntryProof, ReportEntry, SubjectReport, names_subject, reasons,
};
use crate::chain::record_digest;
use crate::checkpoint::{SignedCheckpoint, TrustedKeys, origin_for};
use crate::encoding::{decode_record, peek_header};
use crate::error::Result;
use crate::event::TenantId;
use crate::merkle::tiles::{NodeSource, Tree};
use crate::merkle::{Hash, InclusionVerifier, leaf_hash, verify_inclusion};
use crate::store::{AuditRead, Bounds};
use crate::verify::{BrokenRange, Start, StoredRecord, Verdict, Verifier};

/// One stretch of chain to verify: `from..to`, from `start`, ending at the
/// verified checkpoint `anchor` (index into the plan's checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start: Start,
    from: u64,
    to: u64,
    anchor: usize,
}

/// How a candidate is to be proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// By walking interval `i`.
    Interval(usize),
    /// By an inclusion proof in the Merkle tree of the plan's Merkle anchor.
    Merkle,
}

/// The Merkle side of a report: for each sequence number to prove, its
/// audit path in the anchor's tree (`None`: the tree could not be read) and
/// the leaf hash the store keeps for it (from a stored tile, if any); and
/// the records naming the subject found while reading records for the tree
/// that the index did not list.
#[derive(Debug, Default)]
pub(crate) struct MerkleInput {
    answers: BTreeMap<u64, (Option<Vec<Hash>>, Option<Hash>)>,
    unlisted: Vec<StoredRecord>,
}

impl MerkleInput {
    /// `other`'s answers and unlisted records added to these (those of a
    /// record both found are kept once, as first found).
    fn join(&mut self, other: MerkleInput) {
        for (seq, a) in other.answers {
            self.answers.entry(seq).or_insert(a);
        }
        let have: BTreeSet<u64> = self.unlisted.iter().map(|r| r.seq).collect();
        self.unlisted.extend(
            other
                .unlisted
                .into_iter()
                .filter(|r| !have.contains(&r.seq)),
        );
    }
}

/// The Merkle side of a report while its entries are checked.
#[derive(Debug)]
struct MerkleCheck {
    input: MerkleInput,
    verifier: InclusionVerifier,
    /// Whether each sequence number's answer is asked for at most once (the
    /// candidates strictly ascending; the unlisted records are others), so
    /// a verified path can move into its entry.
    once: bool,
}

/// The reads a report needs, planned before reading, so a store with async
/// reads (PostgreSQL) can read them in one snapshot and then
/// [`finish`](ReportPlan::finish).
#[derive(Debug)]
pub(crate) struct ReportPlan<'a> {
    tenant: &'a TenantId,
    keys: Option<&'a TrustedKeys>,
    anchors: Vec<SignedCheckpoint>,
    intervals: Vec<Interval>,
    /// The anchor (index) whose Merkle root the Merkle-placed entries are
    /// proven against: the newest verified checkpoint with a root that the
    /// store holds whole.
    merkle: Option<usize>,
    /// How each candidate sequence number is proven (Err: unproven, with why).
    placed: BTreeMap<u64, std::result::Result<Place, &'static str>>,
    /// Found while planning: the log is shorter than a verified checkpoint.
    broken: Vec<BrokenRange>,
}

impl<'a> ReportPlan<'a> {
    /// Plan a report of the candidate sequence numbers `seqs` (index hits).
    /// `checkpoints` should be read before `bounds`.
    pub(crate) fn new(
        tenant: &'a TenantId,
        keys: Option<&'a TrustedKeys>,
        checkpoints: &[SignedCheckpoint],
        bounds: &Bounds,
        seqs: &[u64],
    ) -> Self {
        let mut plan = Self {
            tenant,
            keys,
            anchors: Vec::new(),
            intervals: Vec::new(),
            merkle: None,
            placed: BTreeMap::new(),
            broken: Vec::new(),
        };
        let held = |s: &&u64| **s >= bounds.first_seq && **s < bounds.size;
        let Some(keys) = keys else {
            for s in seqs.iter().filter(held) {
                plan.placed.insert(*s, Err("no trusted key given"));
            }
            return plan;
        };
        let origin = origin_for(tenant);
        let mut by_size: BTreeMap<u64, SignedCheckpoint> = BTreeMap::new();
        let mut forked = false;
        for cp in checkpoints {
            if cp.checkpoint.origin != origin || cp.verify(keys).is_err() {
                continue;
            }
            match by_size.get(&cp.checkpoint.size) {
                Some(o)
                    if o.checkpoint.head != cp.checkpoint.head
                        || (o.checkpoint.root.is_some()
                            && cp.checkpoint.root.is_some()
                            && o.checkpoint.root != cp.checkpoint.root) =>
                {
                    forked = true;
                }
                // Prefer the one that carries a Merkle root.
                Some(o) if o.checkpoint.root.is_none() && cp.checkpoint.root.is_some() => {
                    by_size.insert(cp.checkpoint.size, cp.clone());
                }
                Some(_) => {}
                None => {
                    by_size.insert(cp.checkpoint.size, cp.clone());
                }
            }
        }
        if forked {
            for s in seqs.iter().filter(held) {
                plan.placed.insert(
                    *s,
                    Err("two verified checkpoints of one size disagree (fork)"),
                );
            }
            return plan;
        }
        plan.anchors = by_size.into_values().collect();
        // Records a verified checkpoint commits to and the store no longer
        // holds (cut, or lost to damage): the report cannot be complete, and
        // says so even when no entry of the subject is among those it holds.
        if let Some(newest) = plan.anchors.last()
            && newest.checkpoint.size > bounds.size
        {
            plan.broken.push(BrokenRange {
                first: bounds.size,
                last: newest.checkpoint.size - 1,
                verdict: Verdict::Truncated,
            });
        }
        // The Merkle tree starts at record 0: a pruned chain is proven by
        // walking it.
        if bounds.first_seq == 0 {
            plan.merkle = plan
                .anchors
                .iter()
                .rposition(|c| c.checkpoint.root.is_some() && c.checkpoint.size <= bounds.size);
        }
        let merkle_size = plan.merkle.map_or(0, |i| plan.anchors[i].checkpoint.size);
        for &seq in seqs.iter().filter(held) {
            if seq < merkle_size {
                plan.placed.insert(seq, Ok(Place::Merkle));
                continue;
            }
            let after = plan.anchors.iter().position(|c| c.checkpoint.size > seq);
            let Some(ai) = after else {
                plan.placed
                    .insert(seq, Err("after the newest verified checkpoint"));
                continue;
            };
            let to = plan.anchors[ai].checkpoint.size;
            if to > bounds.size {
                plan.placed.insert(seq, Err(reasons::LOG_SHORTER));
                continue;
            }
            // Start at the verified checkpoint before the record, or at the
            // chain's start: the signed head at `to` commits to everything
            // from there, the start link included.
            let before = plan.anchors[..ai]
                .iter()
                .rev()
                .find(|c| c.checkpoint.size >= bounds.first_seq && c.checkpoint.size <= seq);
            let (start, from) = match before {
                Some(c) => (
                    Start::Trusted {
                        seq: c.checkpoint.size,
                        prev: c.checkpoint.head,
                    },
                    c.checkpoint.size,
                ),
                None if bounds.first_seq == 0 => (Start::Genesis, 0),
                None => (
                    Start::Trusted {
                        seq: bounds.first_seq,
                        prev: bounds.start_prev,
                    },
                    bounds.first_seq,
                ),
            };
            let iv = Interval {
                start,
                from,
                to,
                anchor: ai,
            };
            let idx = match plan.intervals.iter().position(|i| *i == iv) {
                Some(i) => i,
                None => {
                    plan.intervals.push(iv);
                    plan.intervals.len() - 1
                }
            };
            plan.placed.insert(seq, Ok(Place::Interval(idx)));
        }
        plan
    }

    /// The ranges to read, `(from, to)`, in the order [`finish`](Self::finish) expects them.
    pub(crate) fn ranges(&self) -> Vec<(u64, u64)> {
        self.intervals.iter().map(|i| (i.from, i.to)).collect()
    }

    /// Size of the Merkle tree the plan proves entries in, if any.
    pub(crate) fn merkle_size(&self) -> Option<u64> {
        self.merkle.map(|i| self.anchors[i].checkpoint.size)
    }

    /// The Merkle side of the report, from `tree` (over the anchor's size).
    /// `found` gives the records read for the tree that hold the subject's
    /// bytes (called after every candidate's path was computed).
    ///
    /// # Errors
    /// I/O errors of the tree's source.
    pub(crate) fn prove_merkle<S: NodeSource + ?Sized>(
        &self,
        tree: &mut Tree<'_, S>,
        subject: &str,
        found: impl FnOnce() -> Vec<StoredRecord>,
    ) -> Result<MerkleInput> {
        self.prove_merkle_part(tree, subject, 0..u64::MAX, found)
    }

    /// The Merkle-placed sequence numbers, ascending.
    fn merkle_seqs(&self) -> Vec<u64> {
        self.placed
            .iter()
            .filter(|(_, p)| **p == Ok(Place::Merkle))
            .map(|(s, _)| *s)
            .collect()
    }

    /// [`prove_merkle`](Self::prove_merkle) for the candidates in `part`
    /// (and the records `found` gives); parts are joined with
    /// [`MerkleInput::join`].
    fn prove_merkle_part<S: NodeSource + ?Sized>(
        &self,
        tree: &mut Tree<'_, S>,
        subject: &str,
        part: std::ops::Range<u64>,
        found: impl FnOnce() -> Vec<StoredRecord>,
    ) -> Result<MerkleInput> {
        let mut input = MerkleInput::default();
        let answer =
            |tree: &mut Tree<'_, S>, seq: u64| -> Result<(Option<Vec<Hash>>, Option<Hash>)> {
                Ok((tree.inclusion_path(seq)?, tree.stored_leaf(seq)?))
            };
        for (&seq, p) in self.placed.range(part) {
            if *p == Ok(Place::Merkle) {
                input.answers.insert(seq, answer(tree, seq)?);
            }
        }
        for r in found() {
            if r.seq >= tree.size()
                || self.placed.contains_key(&r.seq)
                || input.answers.contains_key(&r.seq)
                || !decode_record(&r.bytes).is_ok_and(|(_, e)| names_subject(&e, subject))
            {
                continue;
            }
            input.answers.insert(r.seq, answer(tree, r.seq)?);
            input.unlisted.push(r);
        }
        Ok(input)
    }

    /// The Merkle side of the report from the records `0..size` (a store
    /// that keeps no tree hashes and reads in one snapshot: PostgreSQL).
    #[cfg(feature = "postgres")]
    pub(crate) fn prove_merkle_from_records(
        &self,
        records: &[StoredRecord],
        subject: &str,
    ) -> Result<MerkleInput> {
        let Some(size) = self.merkle_size() else {
            return Ok(MerkleInput::default());
        };
        let src = RecordLeaves::new(records, subject);
        let mut tree = Tree::new(&src, size);
        self.prove_merkle(&mut tree, subject, || src.found.take())
    }

    /// The verdict of a Merkle-placed record `r`.
    /// [`Self::merkle_verdict`], noting in `used` that the Merkle checkpoint
    /// proved something and listing a failed proof in `broken`: a failed proof
    /// is damage, as a chain break is, so the report is not complete.
    fn merkle_checked(
        &self,
        r: &StoredRecord,
        merkle: &mut MerkleCheck,
        used: &mut bool,
        broken: &mut Vec<BrokenRange>,
    ) -> (EntryProof, Option<EntryInclusion>) {
        let (proof, inclusion) = self.merkle_verdict(r, merkle);
        *used |= inclusion.is_some();
        if inclusion.is_none() {
            broken.push(BrokenRange {
                first: r.seq,
                last: r.seq,
                verdict: Verdict::Tampered,
            });
        }
        (proof, inclusion)
    }

    fn merkle_verdict(
        &self,
        r: &StoredRecord,
        merkle: &mut MerkleCheck,
    ) -> (EntryProof, Option<EntryInclusion>) {
        let unproven = |reason| (EntryProof::Unproven { reason }, None);
        let Some(cp) = self.merkle.map(|i| &self.anchors[i].checkpoint) else {
            return unproven(reasons::TREE_UNREADABLE);
        };
        let Some(root) = cp.root else {
            return unproven(reasons::TREE_UNREADABLE);
        };
        if !peek_header(&r.bytes)
            .is_ok_and(|h| h.seq == r.seq && h.tenant == self.tenant.as_str().as_bytes())
        {
            return unproven(reasons::MISPLACED);
        }
        let Some((Some(path), stored)) = merkle.input.answers.get_mut(&r.seq) else {
            return unproven(reasons::TREE_UNREADABLE);
        };
        let leaf = leaf_hash(&record_digest(&r.bytes));
        // The same verdict as `verify_inclusion`, without rehashing the
        // upper nodes the previous entry's path already led to the root.
        if merkle.verifier.verify(&leaf, r.seq, path) {
            return (
                EntryProof::Merkle { size: cp.size },
                Some(EntryInclusion {
                    leaf_index: r.seq,
                    tree_size: cp.size,
                    leaf_hash: leaf,
                    // Asked for once (see `MerkleCheck::once`): moved, not copied.
                    path: if merkle.once {
                        std::mem::take(path)
                    } else {
                        path.clone()
                    },
                }),
            );
        }
        match *stored {
            Some(s) if s != leaf && verify_inclusion(&s, r.seq, cp.size, path, &root) => {
                unproven(reasons::RECORD_CHANGED)
            }
            Some(_) => unproven(reasons::TILES_DISAGREE),
            None => unproven(reasons::ROOT_MISMATCH),
        }
    }

    /// Build the report from the candidate records (index hits, read as they
    /// are), the records of each planned range and the Merkle side.
    ///
    /// # Errors
    /// I/O errors carried by the records.
    pub(crate) fn finish(
        self,
        subject: &str,
        candidates: Vec<Result<StoredRecord>>,
        ranges: Vec<Vec<Result<StoredRecord>>>,
        merkle: MerkleInput,
    ) -> Result<SubjectReport> {
        let (size, root) = self
            .merkle
            .and_then(|i| {
                Some((
                    self.anchors[i].checkpoint.size,
                    self.anchors[i].checkpoint.root?,
                ))
            })
            .unwrap_or((0, [0; 32]));
        let mut last = None;
        let once = candidates.iter().flatten().all(|r| {
            let up = last.is_none_or(|l| r.seq > l);
            last = Some(r.seq);
            up
        });
        let mut merkle = MerkleCheck {
            input: merkle,
            verifier: InclusionVerifier::new(size, root),
            once,
        };
        let mut proven: BTreeMap<u64, (StoredRecord, u64)> = BTreeMap::new();
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        let mut broken = self.broken.clone();
        let mut used = vec![false; self.anchors.len()];
        // Records of proven intervals that hold the subject's bytes but that
        // the index did not list (decoded below: a byte match is not a name).
        let finder = memchr::memmem::Finder::new(subject.as_bytes());
        let mut unlisted: BTreeMap<u64, (StoredRecord, EntryProof, Option<EntryInclusion>)> =
            BTreeMap::new();
        for (idx, (iv, records)) in self.intervals.iter().zip(ranges).enumerate() {
            let anchor = std::slice::from_ref(&self.anchors[iv.anchor]);
            let report = Verifier::new(self.tenant, &[], self.keys)
                .anchors(anchor)
                .verify_range(
                    iv.start,
                    records.iter().map(|r| match r {
                        Ok(r) => Ok(r),
                        Err(_) => Err(crate::error::malformed("record")),
                    }),
                )?;
            if report.verdict != Verdict::Intact || report.size != iv.to {
                broken.extend(report.breaks);
                failed.insert(idx);
                continue;
            }
            used[iv.anchor] = true;
            let size = self.anchors[iv.anchor].checkpoint.size;
            for r in records.into_iter().flatten() {
                match self.placed.get(&r.seq) {
                    Some(Ok(Place::Interval(i))) if *i == idx => {
                        proven.insert(r.seq, (r, size));
                    }
                    None if !subject.is_empty()
                        && !unlisted.contains_key(&r.seq)
                        && finder.find(&r.bytes).is_some() =>
                    {
                        unlisted.insert(r.seq, (r, EntryProof::Checkpoint { size }, None));
                    }
                    _ => {}
                }
            }
        }
        let mut entries = Vec::new();
        let (mut dropped, mut undecodable, mut unreadable) = (0u64, 0u64, 0u64);
        let mut merkle_used = false;
        let mut push = |r: StoredRecord, proof: EntryProof, inclusion: Option<EntryInclusion>| {
            match decode_record(&r.bytes) {
                Ok((_, event)) if names_subject(&event, subject) => entries.push(ReportEntry {
                    seq: r.seq,
                    event,
                    record: r.bytes,
                    link: r.link,
                    proof,
                    inclusion,
                }),
                Ok(_) => dropped += 1,
                Err(_) => undecodable += 1,
            }
        };
        for c in candidates {
            let r = match c {
                Ok(r) => r,
                Err(
                    crate::error::Error::Corrupt { .. } | crate::error::Error::Malformed { .. },
                ) => {
                    unreadable += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let proof = match self.placed.get(&r.seq) {
                None => continue,
                Some(Err(reason)) => EntryProof::Unproven { reason },
                Some(Ok(Place::Merkle)) => {
                    let (proof, inclusion) =
                        self.merkle_checked(&r, &mut merkle, &mut merkle_used, &mut broken);
                    push(r, proof, inclusion);
                    continue;
                }
                Some(Ok(Place::Interval(i))) if failed.contains(i) => EntryProof::Unproven {
                    reason: "the chain around this record does not verify",
                },
                Some(Ok(Place::Interval(_))) => match proven.remove(&r.seq) {
                    // The proven copy is the one shown: the bytes that were verified.
                    Some((verified, size)) => {
                        push(verified, EntryProof::Checkpoint { size }, None);
                        continue;
                    }
                    None => EntryProof::Unproven {
                        reason: reasons::MISPLACED,
                    },
                },
            };
            push(r, proof, None);
        }
        for r in std::mem::take(&mut merkle.input.unlisted) {
            let (proof, inclusion) =
                self.merkle_checked(&r, &mut merkle, &mut merkle_used, &mut broken);
            unlisted.entry(r.seq).or_insert((r, proof, inclusion));
        }
        let listed = entries.len();
        for (r, proof, inclusion) in unlisted.into_values() {
            if let Ok((_, event)) = decode_record(&r.bytes)
                && names_subject(&event, subject)
            {
                entries.push(ReportEntry {
                    seq: r.seq,
                    event,
                    record: r.bytes,
                    link: r.link,
                    proof,
                    inclusion,
                });
            }
        }
        let unindexed = (entries.len() - listed) as u64;
        if unindexed > 0 {
            tracing::warn!(tenant = %self.tenant, unindexed, "DSAR: records naming the subject missing from the index");
        }
        entries.sort_by_key(|e| e.seq);
        let undecodable = undecodable + unreadable;
        if dropped > 0 {
            tracing::warn!(tenant = %self.tenant, dropped, "DSAR: index rows whose record does not name the subject");
        }
        broken.sort_by_key(|b| (b.first, b.last));
        if merkle_used && let Some(i) = self.merkle {
            used[i] = true;
        }
        let checkpoints = self
            .anchors
            .into_iter()
            .zip(used)
            .filter_map(|(c, u)| u.then_some(c))
            .collect();
        Ok(SubjectReport {
            tenant: self.tenant.clone(),
            subject: subject.to_owned(),
            entries,
            checkpoints,
            dropped_index_rows: dropped,
            undecodable,
            unindexed,
            broken,
        })
    }
}

/// [`AuditRead::subject_report`] for a store that can be read from two
/// threads at once: the same reads and verdicts, with the Merkle side (a few
/// tile reads per entry) computed on a second thread while the candidates
/// are read, so a cold report waits for the longer of the two, not both.
/// Where a thread cannot be started, the work is done in turn.
///
/// # Errors
/// As [`AuditRead::subject_report`].
pub(crate) fn subject_report_parallel<S: AuditRead + Sync + ?Sized>(
    store: &S,
    tenant: &TenantId,
    subject: &str,
    keys: Option<&TrustedKeys>,
) -> Result<SubjectReport> {
    let cps = match keys {
        Some(_) => store.checkpoints(tenant)?,
        None => Vec::new(),
    };
    let b = match store.bounds(tenant) {
        Ok(b) => b,
        Err(crate::error::Error::NotFound) => Bounds::EMPTY,
        Err(e) => return Err(e),
    };
    // The index is untrusted: it only says where to look.
    let seqs = store.subject_seqs(tenant, subject)?;
    let plan = ReportPlan::new(tenant, keys, &cps, &b, &seqs);
    let merkle = |size, part| {
        let src = StoreNodes::new(store, tenant, subject);
        let mut tree = Tree::new(&src, size);
        plan.prove_merkle_part(&mut tree, subject, part, || src.found.take())
    };
    // The second thread proves the first two thirds of the entries; this one
    // reads the records, then proves the rest (reading the records is about
    // half the work of the tiles).
    let seqs_m = plan.merkle_seqs();
    let cut = seqs_m
        .get(seqs_m.len() * 2 / 3)
        .copied()
        .unwrap_or(u64::MAX);
    let read = || -> Result<_> {
        let mut candidates = Vec::with_capacity(seqs.len());
        for run in super::runs(&seqs) {
            let (lo, hi) = (run[0], run[run.len() - 1]);
            candidates.extend(store.read_range(tenant, lo, hi.saturating_add(1))?);
        }
        let ranges = plan
            .ranges()
            .into_iter()
            .map(|(from, to)| store.read_range(tenant, from, to))
            .collect::<Result<Vec<_>>>()?;
        Ok((candidates, ranges))
    };
    let (read, merkle) = std::thread::scope(|s| {
        let worker = plan.merkle_size().map(|size| {
            let h = std::thread::Builder::new()
                .name("hisn-dsar-merkle".into())
                .spawn_scoped(s, move || merkle(size, 0..cut))
                .map_err(|_| size);
            (size, h)
        });
        let read = read();
        let merkle = match worker {
            None => Ok(MerkleInput::default()),
            Some((size, h)) => {
                let rest = merkle(size, cut..u64::MAX);
                let first = match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(crate::error::Error::Io(std::io::Error::other(
                            "the DSAR Merkle worker stopped",
                        )))
                    }),
                    Err(size) => merkle(size, 0..cut),
                };
                first.and_then(|mut m| {
                    m.join(rest?);
                    Ok(m)
                })
            }
        };
        (read, merkle)
    });
    let (candidates, ranges) = read?;
    plan.finish(subject, candidates, ranges, merkle?)
}

/// A [`NodeSource`] over a store: its stored tiles
/// ([`AuditRead::merkle_tile`]) and its records for the leaves; records read
/// that hold `subject`'s bytes are kept (records left out of the index).
pub(crate) struct StoreNodes<'a, S: AuditRead + ?Sized> {
    store: &'a S,
    tenant: &'a TenantId,
    finder: memchr::memmem::Finder<'a>,
    pub(crate) found: RefCell<Vec<StoredRecord>>,
}

impl<'a, S: AuditRead + ?Sized> StoreNodes<'a, S> {
    pub(crate) fn new(store: &'a S, tenant: &'a TenantId, subject: &'a str) -> Self {
        Self {
            store,
            tenant,
            finder: memchr::memmem::Finder::new(subject.as_bytes()),
            found: RefCell::new(Vec::new()),
        }
    }
}

impl<S: AuditRead + ?Sized> NodeSource for StoreNodes<'_, S> {
    fn tile(&self, level: u32, index: u64) -> Result<Option<Vec<Hash>>> {
        self.store.merkle_tile(self.tenant, level, index)
    }

    fn tile_nodes(&self, level: u32, index: u64, slots: &[usize]) -> Result<Option<Vec<Hash>>> {
        self.store
            .merkle_tile_nodes(self.tenant, level, index, slots)
    }

    fn leaves(&self, from: u64, to: u64) -> Result<Option<Vec<Hash>>> {
        let records = self.store.read_range(self.tenant, from, to)?;
        leaves_of(
            records.iter().map(|r| r.as_ref().ok()),
            from,
            to,
            &self.finder,
            &self.found,
        )
    }
}

/// Leaf hashes of `records`, which must be `from..to` in order (`None`
/// otherwise); those holding the finder's bytes go to `found`.
fn leaves_of<'r>(
    records: impl Iterator<Item = Option<&'r StoredRecord>>,
    from: u64,
    to: u64,
    finder: &memchr::memmem::Finder<'_>,
    found: &RefCell<Vec<StoredRecord>>,
) -> Result<Option<Vec<Hash>>> {
    let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0));
    for (i, r) in records.enumerate() {
        let Some(r) = r.filter(|r| r.seq == from + i as u64) else {
            return Ok(None);
        };
        if !finder.needle().is_empty() && finder.find(&r.bytes).is_some() {
            found.borrow_mut().push(r.clone());
        }
        out.push(leaf_hash(&record_digest(&r.bytes)));
    }
    Ok((out.len() as u64 == to.saturating_sub(from)).then_some(out))
}

/// A [`NodeSource`] over records held in memory (`0..n`, in order).
#[cfg(feature = "postgres")]
struct RecordLeaves<'a> {
    records: &'a [StoredRecord],
    finder: memchr::memmem::Finder<'a>,
    found: RefCell<Vec<StoredRecord>>,
}

#[cfg(feature = "postgres")]
impl<'a> RecordLeaves<'a> {
    fn new(records: &'a [StoredRecord], subject: &'a str) -> Self {
        Self {
            records,
            finder: memchr::memmem::Finder::new(subject.as_bytes()),
            found: RefCell::new(Vec::new()),
        }
    }
}

#[cfg(feature = "postgres")]
impl NodeSource for RecordLeaves<'_> {
    fn tile(&self, _: u32, _: u64) -> Result<Option<Vec<Hash>>> {
        Ok(None)
    }

    fn leaves(&self, from: u64, to: u64) -> Result<Option<Vec<Hash>>> {
        let (Ok(f), Ok(t)) = (usize::try_from(from), usize::try_from(to)) else {
            return Ok(None);
        };
        let Some(slice) = self.records.get(f..t) else {
            return Ok(None);
        };
        leaves_of(slice.iter().map(Some), from, to, &self.finder, &self.found)
    }
}
