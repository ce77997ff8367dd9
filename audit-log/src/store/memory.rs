//! In-memory store, for tests and examples. Nothing survives the process.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{Checkpoint, SignedCheckpoint, SigningKey};
use crate::clock::{Clock, Timestamp};
use crate::encoding::{decode_record, encode_record};
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::store::{AuditRead, Bounds, Export, ExportReceipt, export_prefix, prune_event};
use crate::verify::StoredRecord;

#[derive(Debug, Default)]
struct Log {
    first_seq: u64,
    start_prev: Link,
    records: Vec<StoredRecord>,
    subjects: HashMap<String, Vec<u64>>,
    checkpoints: Vec<SignedCheckpoint>,
}

impl Log {
    fn size(&self) -> u64 {
        self.first_seq + self.records.len() as u64
    }
    fn head(&self) -> Link {
        self.records.last().map_or(self.start_prev, |r| r.link)
    }
}

/// A store in memory: one chain per tenant, appends serialised by a lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    logs: RwLock<HashMap<TenantId, Log>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `event` to its tenant's chain; returns its sequence number.
    ///
    /// # Errors
    /// [`Error::SequenceExhausted`]; encoding errors for events that break the limits.
    pub fn append(&self, event: &Event) -> Result<u64> {
        let mut logs = self.logs.write();
        let log = logs.entry(event.tenant().clone()).or_default();
        let seq = log.size();
        seq.checked_add(1).ok_or(Error::SequenceExhausted)?;
        let bytes = encode_record(seq, event)?;
        let link = chain_link(
            event.tenant().as_str().as_bytes(),
            seq,
            &log.head(),
            &record_digest(&bytes),
        );
        for s in event.subject_keys() {
            log.subjects.entry(s.to_owned()).or_default().push(seq);
        }
        log.records.push(StoredRecord { seq, bytes, link });
        Ok(seq)
    }

    /// Sign the current head of `tenant`'s chain and keep the checkpoint. It
    /// carries the Merkle root when the records start at 0 and chain to the
    /// head (none otherwise: a pruned chain, or records replaced for a test).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the tenant has no chain.
    pub fn checkpoint(
        &self,
        tenant: &TenantId,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<SignedCheckpoint> {
        let mut logs = self.logs.write();
        let log = logs.get_mut(tenant).ok_or(Error::NotFound)?;
        let mut unsigned = Checkpoint::new(tenant, log.size(), log.head(), now);
        // The Merkle root, computed from the records (`O(n)`: this store is
        // for tests), when they start at record 0 and chain to the head.
        if log.first_seq == 0
            && let Some(f) = crate::store::extend_chained(
                tenant,
                crate::merkle::Frontier::new(),
                Link::GENESIS,
                &log.records,
                &log.head(),
            )
            .ok()
        {
            unsigned = unsigned.with_root(f.root());
        }
        let cp = key.sign(unsigned);
        log.checkpoints.push(cp.clone());
        Ok(cp)
    }

    /// Replace `tenant`'s records wholesale (no checks). For tamper tests and for
    /// loading an exported log to verify it.
    pub fn replace_records(
        &self,
        tenant: &TenantId,
        first_seq: u64,
        start_prev: Link,
        records: Vec<StoredRecord>,
    ) {
        let mut logs = self.logs.write();
        let log = logs.entry(tenant.clone()).or_default();
        log.first_seq = first_seq;
        log.start_prev = start_prev;
        log.subjects.clear();
        for r in &records {
            if let Ok((_, e)) = decode_record(&r.bytes) {
                for s in e.subject_keys() {
                    log.subjects.entry(s.to_owned()).or_default().push(r.seq);
                }
            }
        }
        log.records = records;
    }

    /// Replace `tenant`'s locally kept checkpoints (for tests).
    pub fn replace_checkpoints(&self, tenant: &TenantId, checkpoints: Vec<SignedCheckpoint>) {
        self.logs
            .write()
            .entry(tenant.clone())
            .or_default()
            .checkpoints = checkpoints;
    }

    /// All records of `tenant`, ascending.
    pub fn records(&self, tenant: &TenantId) -> Vec<StoredRecord> {
        self.logs
            .read()
            .get(tenant)
            .map(|l| l.records.clone())
            .unwrap_or_default()
    }

    /// Read and verify the prefix up to `through` for export (step one of retention).
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the prefix is not held or does not verify.
    pub fn export(&self, tenant: &TenantId, through: u64) -> Result<Export> {
        export_prefix(self, tenant, through)
    }

    /// Prune the exported prefix: append the prune record (range, count, boundary
    /// link, actor), then drop the records. Returns the prune record's sequence number.
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the receipt does not match the current chain
    /// (already pruned, another tenant, a rewritten prefix).
    pub fn prune(&self, receipt: &ExportReceipt, actor: &str, clock: &dyn Clock) -> Result<u64> {
        {
            let logs = self.logs.read();
            let log = logs.get(&receipt.tenant).ok_or(Error::NotFound)?;
            let idx = receipt
                .through
                .checked_sub(log.first_seq)
                .and_then(|i| usize::try_from(i).ok());
            let held = idx.and_then(|i| log.records.get(i));
            if receipt.first != log.first_seq || held.is_none_or(|r| r.link != receipt.boundary) {
                return Err(Error::PruneRefused {
                    reason: "receipt does not match the stored prefix",
                });
            }
        }
        let seq = self.append(&prune_event(receipt, actor, clock)?)?;
        let mut logs = self.logs.write();
        let log = logs.get_mut(&receipt.tenant).ok_or(Error::NotFound)?;
        let n = usize::try_from(receipt.through - log.first_seq + 1)
            .map_err(|_| Error::SequenceExhausted)?;
        log.records.drain(..n);
        log.first_seq = receipt.through + 1;
        log.start_prev = receipt.boundary;
        for seqs in log.subjects.values_mut() {
            seqs.retain(|s| *s > receipt.through);
        }
        log.subjects.retain(|_, v| !v.is_empty());
        Ok(seq)
    }
}

impl AuditRead for MemoryStore {
    fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut t: Vec<_> = self.logs.read().keys().cloned().collect();
        t.sort();
        Ok(t)
    }

    fn bounds(&self, tenant: &TenantId) -> Result<Bounds> {
        let logs = self.logs.read();
        let log = logs.get(tenant).ok_or(Error::NotFound)?;
        Ok(Bounds {
            first_seq: log.first_seq,
            start_prev: log.start_prev,
            size: log.size(),
            head: log.head(),
        })
    }

    fn read_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Result<StoredRecord>>> {
        let logs = self.logs.read();
        let Some(log) = logs.get(tenant) else {
            return Ok(Vec::new());
        };
        let lo = usize::try_from(from.saturating_sub(log.first_seq))
            .unwrap_or(usize::MAX)
            .min(log.records.len());
        let hi = usize::try_from(to.saturating_sub(log.first_seq))
            .unwrap_or(usize::MAX)
            .min(log.records.len());
        Ok(log.records[lo..hi.max(lo)]
            .iter()
            .cloned()
            .map(Ok)
            .collect())
    }

    fn subject_seqs(&self, tenant: &TenantId, subject: &str) -> Result<Vec<u64>> {
        Ok(self
            .logs
            .read()
            .get(tenant)
            .and_then(|l| l.subjects.get(subject).cloned())
            .unwrap_or_default())
    }

    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        Ok(self
            .logs
            .read()
            .get(tenant)
            .map(|l| l.checkpoints.clone())
            .unwrap_or_default())
    }
}
