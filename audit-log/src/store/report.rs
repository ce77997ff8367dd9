//! DSAR reports that prove what they show.
//!
//! Two things a store hands a report cannot be trusted: its subject index
//! (whoever can insert a row can make a report return another person's
//! record) and its stored links (whoever can edit a record can recompute
//! them, so "the links verify" proves nothing). A report therefore:
//!
//! - keeps a record only when its **decoded content** names the subject, as a
//!   data subject or as the actor; index rows that do not are counted in
//!   [`SubjectReport::dropped_index_rows`] and left out;
//! - proves each entry against a **verified signed checkpoint**: the chain is
//!   walked from the checkpoint before the record (or the chain's start) to
//!   the first verified checkpoint after it, and must reach its signed head.
//!   The entry then carries [`EntryProof::Checkpoint`] with that checkpoint's
//!   size; otherwise [`EntryProof::Unproven`] says why (no keys, after the
//!   newest checkpoint, the chain there does not verify).
//!
//! **Subject keys** are matched byte for byte, exactly as recorded: no case
//! folding, no Unicode or whitespace normalisation. Folding could merge two
//! people's keys and hand one of them the other's records, so the
//! normalisation is the caller's, once, before recording: one canonical
//! spelling per person (for example a lower-cased e-mail address, or a
//! [`Pseudonymizer`](crate::Pseudonymizer) pseudonym of it).
//!
//! Cost: proving reads every record between the checkpoints around each
//! entry, so it grows with the checkpoint interval times the number of
//! intervals holding entries; without keys nothing is read beyond the entries.

use std::collections::BTreeMap;

use crate::chain::Link;
use crate::checkpoint::{SignedCheckpoint, TrustedKeys, origin_for};
use crate::encoding::decode_record;
use crate::error::Result;
use crate::event::{Event, TenantId};
use crate::store::Bounds;
use crate::verify::{BrokenRange, Start, StoredRecord, Verdict, Verifier};

/// How one entry of a DSAR report is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryProof {
    /// The chain through this record was verified, in this report, up to the
    /// signed head of the verified checkpoint of this size: the record is the
    /// one the signer's log holds at its sequence number.
    Checkpoint {
        /// Size of the checkpoint (in [`SubjectReport::checkpoints`]).
        size: u64,
    },
    /// Not proven; the reason, for the reader of the report.
    Unproven {
        /// Why (stable text).
        reason: &'static str,
    },
}

/// One record in a DSAR report.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReportEntry {
    /// Sequence number.
    pub seq: u64,
    /// The decoded event (it names the subject).
    pub event: Event,
    /// The encoded record (what the chain hashes).
    pub record: Vec<u8>,
    /// The stored link of this record.
    pub link: Link,
    /// How the entry is proven.
    pub proof: EntryProof,
}

impl ReportEntry {
    /// Whether the entry is proven against a verified checkpoint.
    pub fn is_proven(&self) -> bool {
        matches!(self.proof, EntryProof::Checkpoint { .. })
    }
}

/// A data-subject access report.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubjectReport {
    /// Tenant.
    pub tenant: TenantId,
    /// The subject key searched for (matched exactly, see the module docs).
    pub subject: String,
    /// Every record whose content names the subject (as subject or actor), ascending.
    pub entries: Vec<ReportEntry>,
    /// The verified checkpoints the entries are proven against, ascending by size.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// Index rows whose record does not name the subject (left out; a
    /// non-zero count means the index was changed or is stale).
    pub dropped_index_rows: u64,
    /// Index rows whose record does not decode (damaged; run `verify`).
    pub undecodable: u64,
    /// Records naming the subject that the index did not list, found while
    /// proving other entries (the chain between two checkpoints is read
    /// whole anyway). They are in [`entries`](Self::entries), proven; a
    /// non-zero count means the index was changed, so records elsewhere may
    /// be missing too (run `verify`). Only the checkpoint intervals that hold
    /// an indexed entry are read, so an index that omits every record of an
    /// interval is not caught here.
    pub unindexed: u64,
    /// Ranges of the chain that failed verification while proving entries,
    /// and records a verified checkpoint commits to that the store no
    /// longer holds ([`Verdict::Truncated`]: the report cannot be complete).
    pub broken: Vec<BrokenRange>,
}

impl SubjectReport {
    /// The newest checkpoint an entry is proven against.
    pub fn checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.checkpoints.last()
    }

    /// Whether every entry is proven and nothing was dropped, missing from
    /// the index or found broken.
    pub fn is_fully_proven(&self) -> bool {
        self.entries.iter().all(ReportEntry::is_proven)
            && self.dropped_index_rows == 0
            && self.unindexed == 0
            && self.undecodable == 0
            && self.broken.is_empty()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let entries: Vec<_> = self
            .entries
            .iter()
            .map(|e| {
                let proof = match e.proof {
                    EntryProof::Checkpoint { size } => {
                        serde_json::json!({ "proven": true, "checkpoint_size": size })
                    }
                    EntryProof::Unproven { reason } => {
                        serde_json::json!({ "proven": false, "reason": reason })
                    }
                };
                serde_json::json!({
                    "seq": e.seq,
                    "event": e.event.to_json(),
                    "record": hex::encode(&e.record),
                    "link": e.link.to_hex(),
                    "proof": proof,
                })
            })
            .collect();
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "subject": self.subject,
            "count": self.entries.len(),
            "proven": self.entries.iter().filter(|e| e.is_proven()).count(),
            "entries": entries,
            "checkpoints": self.checkpoints.iter().map(SignedCheckpoint::to_note).collect::<Vec<_>>(),
            "dropped_index_rows": self.dropped_index_rows,
            "undecodable": self.undecodable,
            "unindexed": self.unindexed,
            "broken": self.broken.iter().map(BrokenRange::to_json).collect::<Vec<_>>(),
        })
    }
}

impl SubjectReport {
    /// Write the report as JSON to `w`, streaming: the same document as
    /// [`to_json`](Self::to_json) (same keys and values), laid out one entry
    /// per line, without building it in memory first. A report of thousands
    /// of entries is mostly this output, so `hisn audit report` writes it
    /// this way (building the [`serde_json::Value`] tree and pretty-printing
    /// it cost several times the report itself).
    ///
    /// # Errors
    /// Errors of `w`.
    pub fn write_json<W: std::io::Write>(&self, mut w: W) -> std::io::Result<()> {
        let mut o = Vec::with_capacity(4096);
        o.extend_from_slice(b"{\n  \"tenant\": ");
        json_str(&mut o, self.tenant.as_str());
        o.extend_from_slice(b",\n  \"subject\": ");
        json_str(&mut o, &self.subject);
        let proven = self.entries.iter().filter(|e| e.is_proven()).count();
        for (k, n) in [
            ("count", self.entries.len() as u64),
            ("proven", proven as u64),
            ("dropped_index_rows", self.dropped_index_rows),
            ("undecodable", self.undecodable),
            ("unindexed", self.unindexed),
        ] {
            o.extend_from_slice(b",\n  \"");
            o.extend_from_slice(k.as_bytes());
            o.extend_from_slice(b"\": ");
            json_u64(&mut o, n);
        }
        o.extend_from_slice(b",\n  \"broken\": [");
        for (i, b) in self.broken.iter().enumerate() {
            o.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            o.extend_from_slice(b"{\"first\": ");
            json_u64(&mut o, b.first);
            o.extend_from_slice(b", \"last\": ");
            json_u64(&mut o, b.last);
            o.extend_from_slice(b", \"verdict\": ");
            json_str(&mut o, b.verdict.as_str());
            o.push(b'}');
        }
        close_list(&mut o, self.broken.is_empty());
        o.extend_from_slice(b",\n  \"checkpoints\": [");
        for (i, c) in self.checkpoints.iter().enumerate() {
            o.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            json_str(&mut o, &c.to_note());
        }
        close_list(&mut o, self.checkpoints.is_empty());
        o.extend_from_slice(b",\n  \"entries\": [");
        w.write_all(&o)?;
        for (i, e) in self.entries.iter().enumerate() {
            // One entry per write: each is built in `o`, then handed on.
            o.clear();
            o.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            o.extend_from_slice(b"{\"seq\": ");
            json_u64(&mut o, e.seq);
            o.extend_from_slice(b", \"event\": ");
            write_event_json(&mut o, &e.event);
            o.extend_from_slice(b", \"record\": \"");
            hex_into(&mut o, &e.record);
            o.extend_from_slice(b"\", \"link\": \"");
            hex_into(&mut o, e.link.as_bytes());
            o.extend_from_slice(b"\", \"proof\": ");
            match e.proof {
                EntryProof::Checkpoint { size } => {
                    o.extend_from_slice(b"{\"proven\": true, \"checkpoint_size\": ");
                    json_u64(&mut o, size);
                }
                EntryProof::Unproven { reason } => {
                    o.extend_from_slice(b"{\"proven\": false, \"reason\": ");
                    json_str(&mut o, reason);
                }
            }
            o.extend_from_slice(b"}}");
            w.write_all(&o)?;
        }
        o.clear();
        close_list(&mut o, self.entries.is_empty());
        o.extend_from_slice(b"\n}");
        w.write_all(&o)
    }
}

/// `]` of a list written one item per line.
fn close_list(o: &mut Vec<u8>, empty: bool) {
    o.extend_from_slice(if empty { b"]" } else { b"\n  ]" });
}

fn json_u64(o: &mut Vec<u8>, n: u64) {
    o.extend_from_slice(n.to_string().as_bytes());
}

/// A JSON string: copied as it is when nothing in it needs escaping,
/// otherwise escaped by serde_json.
fn json_str(o: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *o, s);
    } else {
        o.push(b'"');
        o.extend_from_slice(s.as_bytes());
        o.push(b'"');
    }
}

/// An optional JSON string.
fn json_opt(o: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(o, s),
        None => o.extend_from_slice(b"null"),
    }
}

/// Lower-case hex of `bytes`.
fn hex_into(o: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let start = o.len();
    o.resize(start + bytes.len() * 2, 0);
    for (d, b) in o[start..].chunks_exact_mut(2).zip(bytes) {
        d[0] = HEX[usize::from(b >> 4)];
        d[1] = HEX[usize::from(b & 15)];
    }
}

/// The event as [`Event::to_json`] renders it, streamed. The diff is written
/// as its stored canonical JSON text: an [`Event`]'s diff is always one
/// canonical JSON value (the builder canonicalises it, the decoder refuses
/// any other), so it cannot break out of the document.
fn write_event_json(o: &mut Vec<u8>, e: &Event) {
    o.extend_from_slice(b"{\"tenant\": ");
    json_str(o, e.tenant.as_str());
    o.extend_from_slice(b", \"time\": ");
    json_str(o, &e.time.to_rfc3339());
    for (k, v) in [
        (&b", \"actor\": "[..], &e.actor),
        (b", \"action\": ", &e.action),
        (b", \"entity_type\": ", &e.entity_type),
        (b", \"entity_id\": ", &e.entity_id),
    ] {
        o.extend_from_slice(k);
        json_str(o, v);
    }
    o.extend_from_slice(b", \"subjects\": [");
    for (i, s) in e.subjects.iter().enumerate() {
        if i > 0 {
            o.extend_from_slice(b", ");
        }
        json_str(o, s);
    }
    o.extend_from_slice(b"], \"from_state\": ");
    json_opt(o, e.from_state.as_deref());
    o.extend_from_slice(b", \"to_state\": ");
    json_opt(o, e.to_state.as_deref());
    o.extend_from_slice(b", \"diff\": ");
    match e.diff.as_deref() {
        Some(d) => o.extend_from_slice(d.as_bytes()),
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b", \"source_ip\": ");
    match e.source_ip {
        Some(ip) => json_str(o, &ip.to_string()),
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b", \"request_id\": ");
    json_opt(o, e.request_id.as_deref());
    o.push(b'}');
}

/// Whether `event` names `subject` as a data subject or as the actor.
pub(crate) fn names_subject(event: &Event, subject: &str) -> bool {
    event.actor() == subject || event.subjects().iter().any(|s| s == subject)
}

/// One stretch of chain to verify: `from..to`, from `start`, ending at the
/// verified checkpoint `anchor` (index into the plan's checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start: Start,
    from: u64,
    to: u64,
    anchor: usize,
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
    /// Interval of each candidate sequence number (None: unproven, with why).
    placed: BTreeMap<u64, std::result::Result<usize, &'static str>>,
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
                Some(o) if o.checkpoint.head != cp.checkpoint.head => forked = true,
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
        for &seq in seqs.iter().filter(held) {
            let after = plan.anchors.iter().position(|c| c.checkpoint.size > seq);
            let Some(ai) = after else {
                plan.placed
                    .insert(seq, Err("after the newest verified checkpoint"));
                continue;
            };
            let to = plan.anchors[ai].checkpoint.size;
            if to > bounds.size {
                plan.placed
                    .insert(seq, Err("the log is shorter than a verified checkpoint"));
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
            plan.placed.insert(seq, Ok(idx));
        }
        plan
    }

    /// The ranges to read, `(from, to)`, in the order [`finish`](Self::finish) expects them.
    pub(crate) fn ranges(&self) -> Vec<(u64, u64)> {
        self.intervals.iter().map(|i| (i.from, i.to)).collect()
    }

    /// Build the report from the candidate records (index hits, read as they
    /// are) and the records of each planned range.
    ///
    /// # Errors
    /// I/O errors carried by the records.
    pub(crate) fn finish(
        self,
        subject: &str,
        candidates: Vec<Result<StoredRecord>>,
        ranges: Vec<Vec<Result<StoredRecord>>>,
    ) -> Result<SubjectReport> {
        let mut proven: BTreeMap<u64, (StoredRecord, u64)> = BTreeMap::new();
        let mut failed: BTreeMap<usize, ()> = BTreeMap::new();
        let mut broken = self.broken.clone();
        let mut used = vec![false; self.anchors.len()];
        // Records of proven intervals that hold the subject's bytes but that
        // the index did not list (decoded below: a byte match is not a name).
        let finder = memchr::memmem::Finder::new(subject.as_bytes());
        let mut unlisted: BTreeMap<u64, (StoredRecord, u64)> = BTreeMap::new();
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
                failed.insert(idx, ());
                continue;
            }
            used[iv.anchor] = true;
            let size = self.anchors[iv.anchor].checkpoint.size;
            for r in records.into_iter().flatten() {
                match self.placed.get(&r.seq) {
                    Some(Ok(i)) if *i == idx => {
                        proven.insert(r.seq, (r, size));
                    }
                    None if !subject.is_empty() && finder.find(&r.bytes).is_some() => {
                        unlisted.insert(r.seq, (r, size));
                    }
                    _ => {}
                }
            }
        }
        let mut entries = Vec::new();
        let (mut dropped, mut undecodable, mut unreadable) = (0u64, 0u64, 0u64);
        let mut push = |r: StoredRecord, proof: EntryProof| match decode_record(&r.bytes) {
            Ok((_, event)) if names_subject(&event, subject) => entries.push(ReportEntry {
                seq: r.seq,
                event,
                record: r.bytes,
                link: r.link,
                proof,
            }),
            Ok(_) => dropped += 1,
            Err(_) => undecodable += 1,
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
                Some(Ok(i)) if failed.contains_key(i) => EntryProof::Unproven {
                    reason: "the chain around this record does not verify",
                },
                Some(Ok(_)) => match proven.remove(&r.seq) {
                    // The proven copy is the one shown: the bytes that were verified.
                    Some((verified, size)) => {
                        push(verified, EntryProof::Checkpoint { size });
                        continue;
                    }
                    None => EntryProof::Unproven {
                        reason: "the record is not where the chain holds it",
                    },
                },
            };
            push(r, proof);
        }
        let listed = entries.len();
        for (r, size) in unlisted.into_values() {
            if let Ok((_, event)) = decode_record(&r.bytes)
                && names_subject(&event, subject)
            {
                entries.push(ReportEntry {
                    seq: r.seq,
                    event,
                    record: r.bytes,
                    link: r.link,
                    proof: EntryProof::Checkpoint { size },
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
