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
//! - proves each entry against a **verified signed checkpoint**. When the
//!   newest verified checkpoint the store holds whole carries a Merkle root
//!   (C2SP `tlog-checkpoint`, as `hisn audit checkpoint` signs), each entry
//!   before it carries an RFC 6962 inclusion proof ([`EntryInclusion`]: leaf
//!   hash, index, tree size, audit path) that the report verifies against
//!   that root: [`EntryProof::Merkle`]. The path comes from the store's
//!   persisted tree hashes (the file store's tiles, see
//!   [`merkle::tiles`](crate::merkle::tiles)) or, for a store without them,
//!   from the records' leaf hashes; it is never trusted, only checked. For a
//!   checkpoint without a root (or a pruned chain), the chain is walked from
//!   the checkpoint before the record (or the chain's start) to the first
//!   verified checkpoint after it, and must reach its signed head:
//!   [`EntryProof::Checkpoint`]. Otherwise [`EntryProof::Unproven`] says why
//!   (no keys, after the newest checkpoint, the record is not the signed
//!   leaf, the tree hashes do not lead to the signed root, the chain there
//!   does not verify, the log is shorter than a verified checkpoint).
//!
//! **Subject keys** are matched byte for byte, exactly as recorded: no case
//! folding, no Unicode or whitespace normalisation. Folding could merge two
//! people's keys and hand one of them the other's records, so the
//! normalisation is the caller's, once, before recording: one canonical
//! spelling per person (for example a lower-cased e-mail address, or a
//! [`Pseudonymizer`](crate::Pseudonymizer) pseudonym of it).
//!
//! Cost: a Merkle proof reads the 9 hashes it needs of its bottom tile and
//! one stored tile per tile level above, shared by the entries under it
//! (plus the records of the tree's right edge, at most 255, once per
//! report), so a report costs `O(entries * log n)` hashes however the
//! checkpoints are spaced. Every path is checked up to the signed root, but
//! entries are checked in order and a path stops being hashed where it
//! meets the previous entry's verified path with the same node and the same
//! path above it (what is left is the computation that already reached the
//! root): 5,000 entries spread over two million records hash ~11 nodes each
//! instead of 21. Walking the chain (checkpoints without a root) reads every record
//! between the checkpoints around each entry. Without keys nothing is read
//! beyond the entries.
//!
//! **Completeness** rests on the index. A report detects index rows that
//! point at other records (dropped) and, where it reads records anyway
//! (walking the chain, or computing tree hashes from records), records that
//! name the subject but were left out of the index ([`SubjectReport::unindexed`]).
//! It cannot detect an index that leaves out records it has no reason to
//! read, such as every row of one checkpoint interval: neither the chain nor
//! the Merkle tree commits to *who* a record is about, and the index itself
//! is written by the store, so whoever can rewrite it can recompute its
//! checksums. The only evidence of an omitted record is the record itself,
//! and finding it means reading every record: a store without persisted
//! tree hashes does (its tree is computed from every record, and those
//! naming the subject are taken); on the file store, removing a segment's
//! `.sidx` makes the next open rebuild it from the records. Detecting
//! omissions from a report alone would need the signer to commit to the
//! index (per checkpoint, a signed digest of each subject's rows); no
//! checkpoint does today.

use crate::chain::{Link, record_digest};
use crate::checkpoint::{SignedCheckpoint, TrustedKeys, origin_for};
use crate::encoding::peek_header;
use crate::event::{Event, TenantId};
use crate::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::verify::BrokenRange;

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
    /// The entry's RFC 6962 inclusion proof ([`ReportEntry::inclusion`])
    /// leads from the record's leaf hash to the Merkle root of the verified
    /// checkpoint of this size: the record is leaf `seq` of the signer's tree.
    Merkle {
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
    /// The RFC 6962 inclusion proof, with [`EntryProof::Merkle`].
    pub inclusion: Option<EntryInclusion>,
}

impl ReportEntry {
    /// Whether the entry is proven against a verified checkpoint.
    pub fn is_proven(&self) -> bool {
        matches!(
            self.proof,
            EntryProof::Checkpoint { .. } | EntryProof::Merkle { .. }
        )
    }
}

/// Why an entry's proof was not proven: stable texts, one per failure class.
pub mod reasons {
    /// The Merkle path from the stored tree hashes leads to the signed root
    /// from the leaf hash the store holds for this index, but the record's
    /// own leaf hash differs: the record was changed.
    pub const RECORD_CHANGED: &str =
        "the record is not the leaf the signed tree holds at its index";
    /// The stored tree hashes (tiles) do not lead to the signed root: they
    /// were changed or damaged (rebuilt on the next writable open).
    pub const TILES_DISAGREE: &str = "the stored Merkle tiles do not lead to the signed root";
    /// The record and the tree hashes computed from the records do not lead
    /// to the signed root (a record of the tree was changed).
    pub const ROOT_MISMATCH: &str = "the record and the tree hashes do not lead to the signed root";
    /// A record the tree needs could not be read.
    pub const TREE_UNREADABLE: &str = "the Merkle tree over the checkpoint cannot be read";
    /// A verified checkpoint commits to more records than the store holds
    /// (records cut, or the store rolled back).
    pub const LOG_SHORTER: &str = "the log is shorter than a verified checkpoint";
    /// The record does not carry its own sequence number or tenant.
    pub const MISPLACED: &str = "the record is not where the chain holds it";
}

/// An RFC 6962 inclusion proof of one report entry: everything a reader
/// needs, with the entry's record and the checkpoint note of `tree_size`
/// from the report, to check it without the store.
///
/// Check: `leaf_hash == SHA-256(0x00 || record_digest(record))` (see
/// [`record_digest`](crate::record_digest)), then RFC 9162 §2.1.3.2 with
/// `leaf_index`, `tree_size` and `path` must give the checkpoint's root.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInclusion {
    /// Index of the leaf (the record's sequence number).
    pub leaf_index: u64,
    /// Size of the tree (the checkpoint's size).
    pub tree_size: u64,
    /// The leaf hash (of the entry's record).
    pub leaf_hash: Hash,
    /// The audit path, leaf to root.
    pub path: Vec<Hash>,
}

/// The outcome of checking an [`EntryInclusion`], one verdict per failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InclusionCheck {
    /// The record is leaf `leaf_index` of the signed tree.
    Verified,
    /// The checkpoint is not the tenant's, has another size, or has no root.
    OtherCheckpoint,
    /// The checkpoint does not verify under the trusted keys.
    BadSignature,
    /// The record is not the proof's leaf (its hash, sequence number or
    /// tenant differs).
    OtherRecord,
    /// The path does not lead to the checkpoint's root.
    RootMismatch,
}

impl InclusionCheck {
    /// Stable text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::OtherCheckpoint => "other_checkpoint",
            Self::BadSignature => "bad_signature",
            Self::OtherRecord => "other_record",
            Self::RootMismatch => "root_mismatch",
        }
    }
}

impl EntryInclusion {
    /// Check that `record` is `tenant`'s leaf `leaf_index` of the tree the
    /// signed `checkpoint` commits to, under `keys`.
    pub fn verify(
        &self,
        tenant: &TenantId,
        record: &[u8],
        checkpoint: &SignedCheckpoint,
        keys: &TrustedKeys,
    ) -> InclusionCheck {
        let c = &checkpoint.checkpoint;
        let Some(root) = c.root else {
            return InclusionCheck::OtherCheckpoint;
        };
        if c.origin != origin_for(tenant) || c.size != self.tree_size {
            return InclusionCheck::OtherCheckpoint;
        }
        if checkpoint.verify(keys).is_err() {
            return InclusionCheck::BadSignature;
        }
        let named = peek_header(record)
            .is_ok_and(|h| h.tenant == tenant.as_str().as_bytes() && h.seq == self.leaf_index);
        if !named || leaf_hash(&record_digest(record)) != self.leaf_hash {
            return InclusionCheck::OtherRecord;
        }
        if verify_inclusion(
            &self.leaf_hash,
            self.leaf_index,
            self.tree_size,
            &self.path,
            &root,
        ) {
            InclusionCheck::Verified
        } else {
            InclusionCheck::RootMismatch
        }
    }

    fn write_json(&self, o: &mut Vec<u8>) {
        o.extend_from_slice(b", \"method\": \"rfc6962\", \"leaf_index\": ");
        json_u64(o, self.leaf_index);
        o.extend_from_slice(b", \"tree_size\": ");
        json_u64(o, self.tree_size);
        o.extend_from_slice(b", \"leaf_hash\": \"");
        hex_into(o, &self.leaf_hash);
        o.extend_from_slice(b"\", \"path\": [");
        for (i, h) in self.path.iter().enumerate() {
            if i > 0 {
                o.extend_from_slice(b", ");
            }
            o.push(b'"');
            hex_into(o, h);
            o.push(b'"');
        }
        o.push(b']');
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
    /// longer holds ([`Verdict::Truncated`](crate::Verdict::Truncated): the report cannot be complete).
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
                let proof = match (e.proof, &e.inclusion) {
                    (EntryProof::Merkle { size }, Some(p)) => serde_json::json!({
                        "proven": true,
                        "checkpoint_size": size,
                        "method": "rfc6962",
                        "leaf_index": p.leaf_index,
                        "tree_size": p.tree_size,
                        "leaf_hash": hex::encode(p.leaf_hash),
                        "path": p.path.iter().map(hex::encode).collect::<Vec<_>>(),
                    }),
                    (EntryProof::Checkpoint { size } | EntryProof::Merkle { size }, _) => {
                        serde_json::json!({ "proven": true, "checkpoint_size": size, "method": "chain" })
                    }
                    (EntryProof::Unproven { reason }, _) => {
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
            match (e.proof, &e.inclusion) {
                (EntryProof::Merkle { size }, Some(p)) => {
                    o.extend_from_slice(b"{\"proven\": true, \"checkpoint_size\": ");
                    json_u64(&mut o, size);
                    p.write_json(&mut o);
                }
                (EntryProof::Checkpoint { size } | EntryProof::Merkle { size }, _) => {
                    o.extend_from_slice(b"{\"proven\": true, \"checkpoint_size\": ");
                    json_u64(&mut o, size);
                    o.extend_from_slice(b", \"method\": \"chain\"");
                }
                (EntryProof::Unproven { reason }, _) => {
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
    // The two digits of each byte (most of a proven report is hex).
    const PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 15]];
            i += 1;
        }
        t
    };
    let start = o.len();
    o.resize(start + bytes.len() * 2, 0);
    for (d, b) in o[start..].chunks_exact_mut(2).zip(bytes) {
        d.copy_from_slice(&PAIRS[usize::from(*b)]);
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
