//! Chain verification: whole chain, from a checkpoint, a range, one record.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{CheckpointFault, SignedCheckpoint, TrustedKeys, origin_for};
use crate::encoding::{decode_record, peek_header};
use crate::error::{Error, Result};
use crate::event::TenantId;

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
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl VerifyReport {
    /// Whether the log passed.
    pub fn is_ok(&self) -> bool {
        self.verdict.is_ok()
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
    /// record is the prune record naming exactly this boundary.
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
#[derive(Debug, Clone)]
pub struct Verifier<'a> {
    tenant: &'a TenantId,
    checkpoints: &'a [SignedCheckpoint],
    keys: Option<&'a TrustedKeys>,
}

impl<'a> Verifier<'a> {
    /// A verifier for `tenant`'s chain. Without `keys` the checkpoints are ignored
    /// and the whole log is reported as unanchored (the chain alone proves
    /// nothing against someone who can rewrite the store).
    pub fn new(
        tenant: &'a TenantId,
        checkpoints: &'a [SignedCheckpoint],
        keys: Option<&'a TrustedKeys>,
    ) -> Self {
        Self {
            tenant,
            checkpoints,
            keys,
        }
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

    fn report(
        &self,
        verdict: Verdict,
        seq: Option<u64>,
        from: u64,
        size: u64,
        anchored: u64,
        head: Link,
    ) -> VerifyReport {
        if !verdict.is_ok() {
            tracing::warn!(tenant = %self.tenant, verdict = verdict.as_str(), seq, "audit chain verification failed");
        }
        VerifyReport {
            tenant: self.tenant.clone(),
            verdict,
            seq,
            verified_from: from,
            size,
            anchored_size: anchored,
            head,
        }
    }

    fn run<I, R>(&self, start: Start, records: I, complete: bool) -> Result<VerifyReport>
    where
        I: IntoIterator<Item = Result<R>>,
        R: Borrow<StoredRecord>,
    {
        let (from, start_prev) = start.seq_prev();
        let tenant_bytes = self.tenant.as_str().as_bytes();
        // 1. Checkpoints: origin, signature, forks.
        let mut anchors: BTreeMap<u64, Link> = BTreeMap::new();
        if let Some(keys) = self.keys {
            let origin = origin_for(self.tenant);
            for cp in self.checkpoints {
                let c = &cp.checkpoint;
                let claims = c.size.checked_sub(1);
                let fail = |v| Ok(self.report(v, claims, from, from, from, start_prev));
                if c.origin != origin {
                    return fail(Verdict::BadCheckpoint);
                }
                match cp.verify(keys) {
                    Ok(()) => {}
                    Err(CheckpointFault::UnknownKey) => return fail(Verdict::UnknownSigningKey),
                    Err(_) => return fail(Verdict::BadCheckpoint),
                }
                match anchors.get(&c.size) {
                    Some(h) if *h != c.head => return fail(Verdict::Fork),
                    Some(_) => {}
                    None => {
                        anchors.insert(c.size, c.head);
                    }
                }
            }
        }
        let mut anchored = from;
        if anchors.get(&from).is_some_and(|h| *h != start_prev) {
            return Ok(self.report(
                Verdict::Tampered,
                from.checked_sub(1),
                from,
                from,
                from,
                start_prev,
            ));
        }
        // 2. Walk the records.
        let mut need_prune_record = matches!(start, Start::Pruned { .. });
        let mut expected = from;
        let mut prev = start_prev;
        for item in records {
            let rec = match &item {
                Ok(r) => r.borrow(),
                Err(Error::Corrupt { .. } | Error::Malformed { .. }) => {
                    return Ok(self.report(
                        Verdict::Tampered,
                        Some(expected),
                        from,
                        expected,
                        anchored,
                        prev,
                    ));
                }
                Err(_) => {
                    return item.map(|_| {
                        self.report(
                            Verdict::Tampered,
                            Some(expected),
                            from,
                            expected,
                            anchored,
                            prev,
                        )
                    });
                }
            };
            let tampered = |prev| {
                Ok(self.report(
                    Verdict::Tampered,
                    Some(expected),
                    from,
                    expected,
                    anchored,
                    prev,
                ))
            };
            if rec.seq != expected {
                return tampered(prev);
            }
            match peek_header(&rec.bytes) {
                Ok(h) if h.tenant == tenant_bytes && h.seq == expected => {}
                _ => return tampered(prev),
            }
            let link = chain_link(tenant_bytes, expected, &prev, &record_digest(&rec.bytes));
            if link != rec.link {
                return tampered(prev);
            }
            if need_prune_record && is_prune_record_for(&rec.bytes, from, &start_prev) {
                need_prune_record = false;
            }
            prev = link;
            expected = expected.checked_add(1).ok_or(Error::SequenceExhausted)?;
            if let Some(h) = anchors.get(&expected) {
                if *h != link {
                    // The chain is self-consistent but disagrees with a signed
                    // checkpoint (a recomputed chain, or a cut and re-grown tail):
                    // name the first record after the last checkpoint that matched.
                    return Ok(self.report(
                        Verdict::Tampered,
                        Some(anchored),
                        from,
                        expected,
                        anchored,
                        prev,
                    ));
                }
                anchored = expected;
            }
        }
        if need_prune_record {
            return Ok(self.report(
                Verdict::Tampered,
                Some(from),
                from,
                expected,
                anchored,
                prev,
            ));
        }
        if complete
            && anchors
                .last_key_value()
                .is_some_and(|(&max, _)| max > expected)
        {
            return Ok(self.report(
                Verdict::Truncated,
                Some(expected),
                from,
                expected,
                anchored,
                prev,
            ));
        }
        if anchored >= expected {
            Ok(self.report(Verdict::Intact, None, from, expected, anchored, prev))
        } else {
            Ok(self.report(
                Verdict::UnanchoredTail,
                Some(anchored),
                from,
                expected,
                anchored,
                prev,
            ))
        }
    }
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
