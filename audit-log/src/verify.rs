//! Chain verification: whole chain, from a checkpoint, a range, one record.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{
    CheckpointFault, SignedCheckpoint, TrustedKeys, WitnessPolicy, origin_for,
};
use crate::encoding::{decode_record, peek_header};
use crate::error::{Error, Result};
use crate::event::TenantId;
use crate::merkle::{Frontier, leaf_hash};

/// Candidate links kept after a break (see `Verifier::run`).
const MAX_ALTS: usize = 4;

/// The action of the record a retention prune appends.
pub const PRUNE_ACTION: &str = "audit.prune";

/// One stored record: its encoded bytes and the link the store holds for it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Sequence number (position in the tenant's chain).
    pub seq: u64,
    /// The encoded record ([`encode_record`](crate::encode_record)).
    pub bytes: Vec<u8>,
    /// The stored link of this record.
    pub link: Link,
}

impl fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRecord")
            .field("seq", &self.seq)
            .field("len", &self.bytes.len())
            .field("link", &self.link)
            .finish()
    }
}

/// The outcome of a verification. Each failure names a different cause, so
/// operators can tell an attack from a rotated key or the unprotected window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Every record verifies and the newest record is covered by a verified checkpoint.
    Intact,
    /// Every record verifies, but records from `seq` on are newer than the newest
    /// verified checkpoint: the documented unprotected window (not a failure).
    UnanchoredTail,
    /// A record was altered, removed, inserted, duplicated, reordered or moved
    /// between tenants, or the chain disagrees with a signed checkpoint.
    Tampered,
    /// The log ends before the size of a verified signed checkpoint: records
    /// from `seq` on were cut.
    Truncated,
    /// Two verified checkpoints of the same size have different heads.
    Fork,
    /// A checkpoint is signed only by keys the verifier does not trust (for
    /// example a rotated key that was not added to the trust set).
    UnknownSigningKey,
    /// A checkpoint is forged (a trusted key's signature fails) or belongs to
    /// another tenant's log.
    BadCheckpoint,
    /// Every record verifies but no verified checkpoint covers any of them,
    /// where one is required ([`require_anchor`](crate::require_anchor),
    /// `hisn audit verify --pubkey`): all checkpoints deleted, or none made.
    Unanchored,
}

impl Verdict {
    /// Whether the log passed: [`Intact`](Self::Intact) or [`UnanchoredTail`](Self::UnanchoredTail).
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Intact | Self::UnanchoredTail)
    }

    /// A stable snake-case name (`tampered`, `truncated`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intact => "intact",
            Self::UnanchoredTail => "unanchored_tail",
            Self::Tampered => "tampered",
            Self::Truncated => "truncated",
            Self::Fork => "fork",
            Self::UnknownSigningKey => "unknown_signing_key",
            Self::BadCheckpoint => "bad_checkpoint",
            Self::Unanchored => "unanchored",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run of records a verification found broken: `first..=last` and why.
///
/// The verifier keeps going after a break (it resynchronises on the stored
/// link, or on a verified checkpoint's head), so a later edit is never hidden
/// behind an earlier one: every broken range is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BrokenRange {
    /// First sequence number of the range.
    pub first: u64,
    /// Last sequence number of the range (inclusive).
    pub last: u64,
    /// What is wrong there ([`Verdict::Tampered`] or [`Verdict::Truncated`]).
    pub verdict: Verdict,
}

impl BrokenRange {
    /// The range as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "first": self.first, "last": self.last, "verdict": self.verdict.as_str() })
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The tenant whose chain was checked.
    pub tenant: TenantId,
    /// The outcome.
    pub verdict: Verdict,
    /// The record the verdict is about: the first failing record, the first
    /// missing record ([`Verdict::Truncated`]), the first unanchored record
    /// ([`Verdict::UnanchoredTail`]), or the newest record a bad checkpoint claims.
    pub seq: Option<u64>,
    /// The first sequence number checked (greater than 0 after a retention prune
    /// or when verifying from a checkpoint).
    pub verified_from: u64,
    /// One past the last record checked.
    pub size: u64,
    /// Records up to this size are covered by a verified checkpoint.
    pub anchored_size: u64,
    /// The recomputed head (link of record `size - 1`).
    pub head: Link,
    /// Every broken range, ascending (empty when the chain verifies). For an
    /// edited record whose stored link was left alone this is exactly that
    /// record; for a recomputed chain it is the span between the last
    /// checkpoint that matched and the first that did not.
    pub breaks: Vec<BrokenRange>,
    /// The newest verified checkpoint the chain matched (size `anchored_size`).
    pub checkpoint: Option<SignedCheckpoint>,
    /// Notes from the store that were skipped: not this tenant's, signed by no
    /// trusted key, or with a trusted key's signature failing. Untrusted input
    /// (anyone who can write the store can add them), so they never decide
    /// the verdict; a non-zero count is worth a look.
    pub skipped_checkpoints: u64,
}

impl VerifyReport {
    /// Whether the log passed.
    pub fn is_ok(&self) -> bool {
        self.verdict.is_ok()
    }

    /// Whether a verified checkpoint covers at least one of the records
    /// checked (or there is nothing to cover). A passing report that is not
    /// anchored proves only that the records are self-consistent: someone who
    /// can rewrite the store (and delete its checkpoints) could have made it.
    pub fn is_anchored(&self) -> bool {
        self.anchored_size > self.verified_from || self.size == self.verified_from
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "verdict": self.verdict.as_str(),
            "ok": self.is_ok(),
            "seq": self.seq,
            "verified_from": self.verified_from,
            "size": self.size,
            "anchored_size": self.anchored_size,
            "head": self.head.to_hex(),
            "breaks": self.breaks.iter().map(BrokenRange::to_json).collect::<Vec<_>>(),
            "checkpoint": self.checkpoint.as_ref().map(SignedCheckpoint::to_note),
            "skipped_checkpoints": self.skipped_checkpoints,
        })
    }
}

/// Where verification starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At sequence 0 after the genesis link.
    Genesis,
    /// At `seq`, trusting `prev` as the link of `seq - 1` (a verified checkpoint's
    /// head, or a range's stored predecessor).
    Trusted {
        /// First sequence number to check.
        seq: u64,
        /// Link of the record before it.
        prev: Link,
    },
    /// At `seq` after a retention prune: `prev` is only accepted if a later
    /// record is the prune record naming exactly this boundary and, when keys
    /// are given, a verified checkpoint covers that prune record.
    Pruned {
        /// First remaining sequence number.
        seq: u64,
        /// Boundary link (link of the last pruned record).
        prev: Link,
    },
}

impl Start {
    fn seq_prev(self) -> (u64, Link) {
        match self {
            Start::Genesis => (0, Link::GENESIS),
            Start::Trusted { seq, prev } | Start::Pruned { seq, prev } => (seq, prev),
        }
    }
}

/// Verifies records of one tenant against checkpoints.
///
/// Two kinds of checkpoints: the store's own copies ([`new`](Self::new)),
/// which whoever writes the store can add to, so a note that does not verify
/// is skipped; and anchors the caller vouches for ([`anchors`](Self::anchors):
/// checkpoints held elsewhere, the verifier's state), whose faults are verdicts.
#[derive(Debug, Clone)]
pub struct Verifier<'a> {
    tenant: &'a TenantId,
    checkpoints: &'a [SignedCheckpoint],
    anchors: &'a [SignedCheckpoint],
    keys: Option<&'a TrustedKeys>,
    witnesses: Option<&'a WitnessPolicy>,
}

/// The broken ranges found so far, merged when they touch.
#[derive(Debug, Default)]
struct Breaks(Vec<BrokenRange>);

impl Breaks {
    fn add(&mut self, first: u64, last: u64, verdict: Verdict) {
        self.0.push(BrokenRange {
            first,
            last: last.max(first),
            verdict,
        });
    }

    fn finish(mut self) -> Vec<BrokenRange> {
        self.0.sort_by_key(|b| (b.first, b.last));
        let mut out: Vec<BrokenRange> = Vec::with_capacity(self.0.len());
        for b in self.0 {
            match out.last_mut() {
                Some(p) if p.verdict == b.verdict && b.first <= p.last.saturating_add(1) => {
                    p.last = p.last.max(b.last);
                }
                _ => out.push(b),
            }
        }
        out
    }
}

impl<'a> Verifier<'a> {
    /// A verifier for `tenant`'s chain with the store's own `checkpoints`.
    /// Without `keys` the checkpoints are ignored and the whole log is
    /// reported as unanchored (the chain alone proves nothing against someone
    /// who can rewrite the store).
    pub fn new(
        tenant: &'a TenantId,
        checkpoints: &'a [SignedCheckpoint],
        keys: Option<&'a TrustedKeys>,
    ) -> Self {
        Self {
            tenant,
            checkpoints,
            anchors: &[],
            keys,
            witnesses: None,
        }
    }

    /// Accept a checkpoint only when it also meets `policy` (N of M witness
    /// cosignatures): one that does not is skipped (store notes) or reported
    /// as [`Verdict::BadCheckpoint`] (anchors).
    #[must_use]
    pub fn witnesses(mut self, policy: &'a WitnessPolicy) -> Self {
        self.witnesses = Some(policy);
        self
    }

    /// Checkpoints the caller vouches for (held outside the store): one that is
    /// another tenant's, forged, or signed by no trusted key is reported as
    /// [`Verdict::BadCheckpoint`] / [`Verdict::UnknownSigningKey`] when the
    /// chain itself shows no break.
    #[must_use]
    pub fn anchors(mut self, anchors: &'a [SignedCheckpoint]) -> Self {
        self.anchors = anchors;
        self
    }

    /// Verify a log that runs from `start` to its end.
    ///
    /// # Errors
    /// I/O errors from `records`; damage is reported as a verdict, not an error.
    pub fn verify_log<I, R>(&self, start: Start, records: I) -> Result<VerifyReport>
    where
        I: IntoIterator<Item = Result<R>>,
        R: Borrow<StoredRecord>,
    {
        self.run(start, records, true)
    }

    /// Verify a range that may stop before the end of the log (no truncation check).
    ///
    /// # Errors
    /// I/O errors from `records`.
    pub fn verify_range<I, R>(&self, start: Start, records: I) -> Result<VerifyReport>
    where
        I: IntoIterator<Item = Result<R>>,
        R: Borrow<StoredRecord>,
    {
        self.run(start, records, false)
    }

    /// Check every checkpoint: the verified ones by size, the first fault of a
    /// caller's anchor, the first fork, and how many store notes were skipped.
    fn check_checkpoints(&self) -> Checked<'a> {
        let mut out = Checked::default();
        let Some(keys) = self.keys else {
            return out;
        };
        let origin = origin_for(self.tenant);
        let store = self.checkpoints.iter().map(|c| (c, false));
        for (cp, vouched) in store.chain(self.anchors.iter().map(|c| (c, true))) {
            let c = &cp.checkpoint;
            let claims = c.size.checked_sub(1);
            let fault = if c.origin != origin {
                Some(Verdict::BadCheckpoint)
            } else {
                match cp.verify(keys) {
                    Ok(()) if self.witnesses.is_some_and(|w| !w.accepts(cp)) => {
                        Some(Verdict::BadCheckpoint)
                    }
                    Ok(()) => None,
                    Err(CheckpointFault::UnknownKey) => Some(Verdict::UnknownSigningKey),
                    Err(_) => Some(Verdict::BadCheckpoint),
                }
            };
            if let Some(v) = fault {
                if vouched {
                    out.fault.get_or_insert((v, claims));
                } else {
                    tracing::warn!(tenant = %self.tenant, reason = v.as_str(), size = c.size, "audit checkpoint note skipped");
                    out.skipped += 1;
                }
                continue;
            }
            match out.anchors.get(&c.size) {
                Some((h, o))
                    if *h != c.head
                        || o.checkpoint.root.zip(c.root).is_some_and(|(a, b)| a != b) =>
                {
                    out.fork.get_or_insert(claims);
                }
                Some(_) => {}
                None => {
                    out.anchors.insert(c.size, (c.head, cp));
                }
            }
        }
        out
    }

    fn run<I, R>(&self, start: Start, records: I, complete: bool) -> Result<VerifyReport>
    where
        I: IntoIterator<Item = Result<R>>,
        R: Borrow<StoredRecord>,
    {
        let (from, start_prev) = start.seq_prev();
        let tenant_bytes = self.tenant.as_str().as_bytes();
        let checked = self.check_checkpoints();
        let mut w = Walk {
            from,
            anchored: from,
            checkpoint: None,
            breaks: Breaks::default(),
            skipped: checked.skipped,
        };
        if let Some(seq) = checked.fork {
            // The key holder signed two different logs of one size: nothing
            // this log shows can settle which is true.
            return Ok(self.report(w, Verdict::Fork, seq, from, start_prev));
        }
        let anchors = &checked.anchors;
        let mut prev = start_prev;
        if let Some((h, cp)) = anchors.get(&from) {
            if *h == start_prev {
                w.checkpoint = Some(*cp);
            } else {
                w.breaks
                    .add(from.saturating_sub(1), from, Verdict::Tampered);
                prev = *h;
            }
        }
        // 2. Walk the records. After a break, continue from the stored link
        // (or the other candidate: the recomputed one), so one edit is one
        // range and a later edit is still found.
        let mut expected = from;
        // Other candidates for the previous record's true link after a break
        // (the recomputed ones, when stored links were changed); at most
        // `MAX_ALTS`, the ones continuing the oldest candidate first.
        let mut alts: Vec<Link> = Vec::new();
        let mut unverifiable = false;
        let mut prune_at: Option<u64> = None;
        // Whether the walk starts at the log's first held record (so every
        // record before `from` is gone): a prune record may then only name
        // records before `from`.
        let whole_log = matches!(start, Start::Genesis | Start::Pruned { .. });
        // The Merkle roots of checkpoints that carry one are checked too, when
        // the walk starts at genesis (a pruned chain no longer has the leaves);
        // any break stops it, as the head checks already name that damage.
        let mut frontier = (matches!(start, Start::Genesis)
            && anchors.values().any(|(_, cp)| cp.checkpoint.root.is_some()))
        .then(Frontier::new);
        for item in records {
            let rec = match &item {
                Ok(r) => r.borrow(),
                Err(Error::Corrupt { .. } | Error::Malformed { .. }) => {
                    w.breaks.add(expected, expected, Verdict::Tampered);
                    expected = expected.checked_add(1).ok_or(Error::SequenceExhausted)?;
                    unverifiable = true;
                    frontier = None;
                    continue;
                }
                Err(_) => {
                    return item.map(|_| self.report(w, Verdict::Tampered, None, expected, prev));
                }
            };
            if rec.seq < expected {
                // A duplicate or a record out of order: it takes no place in the chain.
                w.breaks.add(expected, expected, Verdict::Tampered);
                frontier = None;
                continue;
            }
            if rec.seq > expected {
                // Records missing; this one cannot be checked without its predecessor.
                w.breaks.add(expected, rec.seq, Verdict::Tampered);
                expected = rec.seq;
                unverifiable = true;
            }
            let header_ok = matches!(peek_header(&rec.bytes), Ok(h) if h.tenant == tenant_bytes && h.seq == expected);
            let digest = record_digest(&rec.bytes);
            let mut ok = header_ok && !unverifiable;
            if ok {
                let link = chain_link(tenant_bytes, expected, &prev, &digest);
                // Links are public (stored beside every record): the plain
                // comparison, not `Link`'s constant-time one, in the loop
                // that runs once per record.
                if link.as_bytes() != rec.link.as_bytes() {
                    ok = alts
                        .iter()
                        .any(|alt| chain_link(tenant_bytes, expected, alt, &digest) == rec.link);
                }
            }
            let prev_alts = std::mem::take(&mut alts);
            // Read once per record without a full decode (the common case is no prune).
            let is_prune = ok && crate::encoding::action_is(&rec.bytes, PRUNE_ACTION);
            if is_prune && whole_log && prune_through(&rec.bytes).is_some_and(|t| t >= from) {
                // A prune record naming records the log still holds: a store
                // hides pruned records from readers as soon as the prune record
                // is in the chain (file store) or deletes them in the same
                // transaction (PostgreSQL), so this is a forged prune record,
                // put there to be covered by the next routine checkpoint before
                // the records it names are deleted.
                w.breaks.add(expected, expected, Verdict::Tampered);
            }
            if ok {
                if is_prune
                    && prune_at.is_none()
                    && is_prune_record_for(&rec.bytes, from, &start_prev)
                {
                    prune_at = Some(expected);
                }
                if let Some(f) = frontier.as_mut() {
                    f.push(leaf_hash(&digest));
                }
                prev = rec.link;
            } else {
                frontier = None;
                w.breaks.add(expected, expected, Verdict::Tampered);
                // Resynchronise: the stored link if only the record was
                // edited, a recomputed one if stored links were.
                if header_ok && !unverifiable {
                    alts = prev_alts
                        .iter()
                        .chain(std::iter::once(&prev))
                        .map(|p| chain_link(tenant_bytes, expected, p, &digest))
                        .take(MAX_ALTS)
                        .collect();
                }
                prev = rec.link;
            }
            unverifiable = false;
            expected = expected.checked_add(1).ok_or(Error::SequenceExhausted)?;
            if let Some((h, cp)) = anchors.get(&expected) {
                let root_ok = match (&frontier, cp.checkpoint.root) {
                    (Some(f), Some(r)) => f.root() == r,
                    _ => true,
                };
                if (*h == prev || alts.contains(h)) && root_ok {
                    // (The second: stored links were changed; the checkpoint
                    // confirms a recomputed one.)
                    prev = *h;
                    alts.clear();
                    w.anchored = expected;
                    w.checkpoint = Some(*cp);
                } else {
                    // The chain is self-consistent but disagrees with a signed
                    // checkpoint (a recomputed chain, or a cut and re-grown
                    // tail): the change lies after the last checkpoint that
                    // matched. Continue from the signed head.
                    w.breaks.add(w.anchored, expected - 1, Verdict::Tampered);
                    prev = *h;
                    alts.clear();
                }
            }
        }
        if matches!(start, Start::Pruned { .. }) {
            // The boundary is explained only by the prune record naming it and,
            // when checkpoints are checked, only if a verified checkpoint was
            // signed after that record: otherwise anyone who can delete the
            // oldest segment and append a record could "prune".
            let covered = match (self.keys, prune_at) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(_), Some(p)) => w.anchored > p,
            };
            if !covered {
                w.breaks.add(from, from, Verdict::Tampered);
            }
        }
        if let Some((&max, _)) = anchors
            .last_key_value()
            .filter(|(m, _)| complete && **m > expected)
        {
            w.breaks.add(expected, max - 1, Verdict::Truncated);
        }
        let (verdict, seq) = if let Some(b) = w.breaks.0.iter().min_by_key(|b| b.first) {
            (b.verdict, Some(b.first))
        } else if let Some((v, seq)) = checked.fault {
            (v, seq)
        } else if w.anchored >= expected {
            (Verdict::Intact, None)
        } else {
            (Verdict::UnanchoredTail, Some(w.anchored))
        };
        Ok(self.report(w, verdict, seq, expected, prev))
    }

    fn report(
        &self,
        w: Walk<'_>,
        verdict: Verdict,
        seq: Option<u64>,
        size: u64,
        head: Link,
    ) -> VerifyReport {
        if !verdict.is_ok() {
            tracing::warn!(tenant = %self.tenant, verdict = verdict.as_str(), seq, "audit chain verification failed");
        }
        VerifyReport {
            tenant: self.tenant.clone(),
            verdict,
            seq,
            verified_from: w.from,
            size,
            anchored_size: w.anchored,
            head,
            breaks: w.breaks.finish(),
            checkpoint: w.checkpoint.cloned(),
            skipped_checkpoints: w.skipped,
        }
    }
}

/// The checkpoints that verified, by size.
#[derive(Debug, Default)]
struct Checked<'a> {
    anchors: BTreeMap<u64, (Link, &'a SignedCheckpoint)>,
    fault: Option<(Verdict, Option<u64>)>,
    fork: Option<Option<u64>>,
    skipped: u64,
}

/// State of one walk.
#[derive(Debug)]
struct Walk<'a> {
    from: u64,
    anchored: u64,
    checkpoint: Option<&'a SignedCheckpoint>,
    breaks: Breaks,
    skipped: u64,
}

/// The last sequence number a prune record names as pruned (`None`: not a
/// prune record).
fn prune_through(bytes: &[u8]) -> Option<u64> {
    let (_, event) = decode_record(bytes).ok()?;
    if event.action() != PRUNE_ACTION {
        return None;
    }
    let diff = serde_json::from_str::<serde_json::Value>(event.diff()?).ok()?;
    Some(
        diff.get("through")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(u64::MAX),
    )
}

fn is_prune_record_for(bytes: &[u8], first_kept: u64, boundary: &Link) -> bool {
    let Ok((_, event)) = decode_record(bytes) else {
        return false;
    };
    if event.action() != PRUNE_ACTION {
        return false;
    }
    let Some(diff) = event
        .diff()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
    else {
        return false;
    };
    first_kept.checked_sub(1).is_some_and(|through| {
        diff.get("through").and_then(serde_json::Value::as_u64) == Some(through)
    }) && diff
        .get("boundary_link")
        .and_then(serde_json::Value::as_str)
        == Some(boundary.to_hex().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Verdict; 8] = [
        Verdict::Intact,
        Verdict::UnanchoredTail,
        Verdict::Tampered,
        Verdict::Truncated,
        Verdict::Fork,
        Verdict::UnknownSigningKey,
        Verdict::BadCheckpoint,
        Verdict::Unanchored,
    ];

    #[test]
    fn verdict_names_are_stable_snake_case_and_only_intact_or_tail_pass() {
        let names: Vec<(&str, String, bool)> = ALL
            .iter()
            .map(|v| (v.as_str(), v.to_string(), v.is_ok()))
            .collect();
        assert_eq!(
            names,
            [
                ("intact", "intact".to_owned(), true),
                ("unanchored_tail", "unanchored_tail".to_owned(), true),
                ("tampered", "tampered".to_owned(), false),
                ("truncated", "truncated".to_owned(), false),
                ("fork", "fork".to_owned(), false),
                (
                    "unknown_signing_key",
                    "unknown_signing_key".to_owned(),
                    false
                ),
                ("bad_checkpoint", "bad_checkpoint".to_owned(), false),
                ("unanchored", "unanchored".to_owned(), false),
            ]
        );
    }

    fn report(verified_from: u64, size: u64, anchored_size: u64) -> VerifyReport {
        VerifyReport {
            tenant: TenantId::parse("acme").unwrap(),
            verdict: Verdict::Intact,
            seq: None,
            verified_from,
            size,
            anchored_size,
            head: Link::GENESIS,
            breaks: Vec::new(),
            checkpoint: None,
            skipped_checkpoints: 0,
        }
    }

    #[test]
    fn anchored_means_a_checkpoint_covers_a_checked_record_or_none_was_checked() {
        // (verified_from, size, anchored_size) -> anchored
        for (from, size, anchored, want) in [
            (0, 0, 0, true),  // empty log: nothing to cover
            (4, 4, 4, true),  // nothing checked after a checkpoint start
            (0, 5, 0, false), // no checkpoint covers any record
            (0, 5, 1, true),  // the first record is covered
            (3, 5, 3, false), // covered only up to where the walk started
            (3, 5, 4, true),  // one checked record covered
            (3, 5, 5, true),
        ] {
            assert_eq!(
                report(from, size, anchored).is_anchored(),
                want,
                "from {from} size {size} anchored {anchored}"
            );
        }
    }

    #[test]
    fn report_json_carries_every_field_under_its_stable_name() {
        let mut r = report(2, 9, 5);
        r.verdict = Verdict::Tampered;
        r.seq = Some(6);
        r.head = Link([0xcd; 32]);
        r.skipped_checkpoints = 3;
        r.breaks = vec![
            BrokenRange {
                first: 6,
                last: 6,
                verdict: Verdict::Tampered,
            },
            BrokenRange {
                first: 8,
                last: 10,
                verdict: Verdict::Truncated,
            },
        ];
        assert_eq!(
            r.to_json(),
            serde_json::json!({
                "tenant": "acme",
                "verdict": "tampered",
                "ok": false,
                "seq": 6,
                "verified_from": 2,
                "size": 9,
                "anchored_size": 5,
                "head": "cd".repeat(32),
                "breaks": [
                    { "first": 6, "last": 6, "verdict": "tampered" },
                    { "first": 8, "last": 10, "verdict": "truncated" },
                ],
                "checkpoint": null,
                "skipped_checkpoints": 3,
            })
        );
        r.verdict = Verdict::UnanchoredTail;
        assert_eq!(r.to_json()["ok"], true);
    }

    #[test]
    fn every_failing_verdict_logs_a_warning_and_a_passing_one_none() {
        let t = TenantId::parse("acme").unwrap();
        let v = Verifier::new(&t, &[], None);
        for verdict in ALL {
            let (reported, events) = hisn_test_support::capture_events(|| {
                let w = Walk {
                    from: 0,
                    anchored: 0,
                    checkpoint: None,
                    breaks: Breaks::default(),
                    skipped: 0,
                };
                v.report(w, verdict, None, 0, Link::GENESIS).verdict
            });
            assert_eq!(reported, verdict);
            let warned: Vec<_> = events
                .iter()
                .filter(|e| e.level == tracing::Level::WARN)
                .map(|e| (e.field("tenant"), e.field("verdict")))
                .collect();
            let want = if verdict.is_ok() {
                vec![]
            } else {
                vec![(Some("acme"), Some(verdict.as_str()))]
            };
            assert_eq!(warned, want, "{verdict}");
        }
    }

    #[test]
    fn stored_record_debug_shows_position_length_and_link_never_the_record() {
        let r = StoredRecord {
            seq: 7,
            bytes: b"alice@example.com".to_vec(),
            link: Link([0xab; 32]),
        };
        let shown = format!("{r:?}");
        assert_eq!(
            shown,
            format!(
                "StoredRecord {{ seq: 7, len: 17, link: Link({}) }}",
                "ab".repeat(32)
            )
        );
        assert!(!shown.contains("alice"));
    }
}
