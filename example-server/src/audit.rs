//! The audit trail: audit-log's file store (group commit, fsync), one chain per
//! tenant, checkpoints signed on a schedule (every N records or T seconds) and
//! published to `<data-dir>/audit-checkpoints.log` outside the store.
//!
//! Handlers append *before* committing the change they record: a failed append
//! rolls the change back (no unaudited change); a failed commit after a
//! successful append leaves a record of an attempt, which is the safe side.

use std::net::IpAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hisn_audit_log::{
    AuditRead, AutoCheckpoint, CheckpointPolicy, Event, EventBuilder, FileSink, FileStore,
    FileStoreOptions, SigningKey, SystemClock, TenantId as AuditTenant, TrustedKeys, Verdict,
    decode_record,
};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Checkpoint after this many records at the latest.
pub const CHECKPOINT_EVERY_RECORDS: u64 = 256;

/// The server's audit trail (clones share the store; the last one dropped
/// stops the writer after the queued appends).
#[derive(Debug, Clone)]
pub struct Audit {
    store: Arc<FileStore>,
    trusted: TrustedKeys,
    clock: SystemClock,
}

/// Who did it, from where: filled from the request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Subject of the session (user id, `apikey:<id>`, `webhook:<provider>`, `operator`).
    pub actor: String,
    /// Client IP.
    pub ip: IpAddr,
    /// Request id.
    pub request_id: String,
}

/// The audit tenant id for a tenant-guard tenant.
pub fn audit_tenant(t: hisn_tenant_guard::TenantId) -> Result<AuditTenant, ApiError> {
    AuditTenant::parse(&t.to_string()).map_err(ApiError::from)
}

impl Actor {
    /// Start an event by this actor in `tenant`, with source IP and request id.
    pub fn event(
        &self,
        tenant: hisn_tenant_guard::TenantId,
        action: &str,
    ) -> Result<EventBuilder, ApiError> {
        Ok(Event::builder(&audit_tenant(tenant)?, &self.actor, action)
            .source_ip(self.ip)
            .request_id(&self.request_id))
    }

    /// A state transition of `entity`/`id` from `from` to `to`.
    pub fn transition(
        &self,
        tenant: hisn_tenant_guard::TenantId,
        entity: &str,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<EventBuilder, ApiError> {
        Ok(
            Event::state_transition(&audit_tenant(tenant)?, &self.actor, entity, id, from, to)
                .source_ip(self.ip)
                .request_id(&self.request_id),
        )
    }
}

impl Audit {
    /// Open the file store in `dir`, signing checkpoints with `key` every
    /// `every` (when there are new records) or [`CHECKPOINT_EVERY_RECORDS`].
    pub fn open(
        dir: &Path,
        checkpoint_log: &Path,
        key: SigningKey,
        every: Duration,
    ) -> Result<Self, hisn_audit_log::Error> {
        let trusted = TrustedKeys::new().with(key.verifying_key());
        let policy = CheckpointPolicy {
            every_records: NonZeroU64::new(CHECKPOINT_EVERY_RECORDS).unwrap_or(NonZeroU64::MIN),
            every: every.max(Duration::from_secs(1)),
        };
        let auto = AutoCheckpoint::new(key, policy).sink(Arc::new(FileSink::new(checkpoint_log)));
        let store = FileStore::open(dir, FileStoreOptions::default().auto_checkpoint(auto))?;
        Ok(Self {
            store: Arc::new(store),
            trusted,
            clock: SystemClock,
        })
    }

    /// Build `event` and append it; resolves once the record is durable.
    pub async fn append(&self, event: EventBuilder) -> Result<u64, ApiError> {
        let event = event.build(&self.clock)?;
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store.append_with(event, move |r| {
            let _ = tx.send(r);
        })?;
        let seq = rx
            .await
            .map_err(|e| ApiError::internal("audit writer gone", &e))??;
        crate::metrics::global().audit_append(started.elapsed());
        Ok(seq)
    }

    /// Number of records in `tenant`'s chain.
    pub fn len(&self, tenant: hisn_tenant_guard::TenantId) -> Result<u64, ApiError> {
        let t = audit_tenant(tenant)?;
        Ok(self.store.bounds(&t).map(|b| b.size).unwrap_or(0))
    }

    /// Records `[from, from + limit)` of `tenant`'s chain, as JSON.
    pub fn records(
        &self,
        tenant: hisn_tenant_guard::TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let t = audit_tenant(tenant)?;
        let Ok(bounds) = self.store.bounds(&t) else {
            return Ok(Vec::new());
        };
        let from = from.max(bounds.first_seq);
        let to = from.saturating_add(limit).min(bounds.size);
        let mut out = Vec::new();
        for r in self.store.read_range(&t, from, to)? {
            let r = r?;
            let (_, event) = decode_record(&r.bytes)?;
            let mut v = event.to_json();
            if let Value::Object(m) = &mut v {
                m.insert("seq".into(), json!(r.seq));
            }
            out.push(v);
        }
        Ok(out)
    }

    /// Verify `tenant`'s chain against the store's signed checkpoints.
    pub fn verify(&self, tenant: hisn_tenant_guard::TenantId) -> Result<(Verdict, u64), ApiError> {
        let t = audit_tenant(tenant)?;
        let report = self.store.verify(&t, Some(&self.trusted), &[])?;
        Ok((report.verdict, report.size))
    }

    /// Sign a checkpoint of every chain now (also done on a schedule).
    pub fn checkpoint_now(&self, key: &SigningKey) -> Result<usize, ApiError> {
        let cps = self
            .store
            .checkpoint_now(None, key, hisn_audit_log::Clock::now(&self.clock))?;
        Ok(cps.len())
    }

    /// The data-subject report for `subject` in `tenant`, as JSON: every record
    /// naming the subject, each with whether it is proven by a signed checkpoint.
    pub fn subject_report(
        &self,
        tenant: hisn_tenant_guard::TenantId,
        subject: &str,
    ) -> Result<Value, ApiError> {
        let t = audit_tenant(tenant)?;
        let report = self
            .store
            .subject_report(&t, subject, Some(&self.trusted))?;
        let entries: Vec<Value> = report
            .entries
            .iter()
            .map(|e| {
                let mut v = e.event.to_json();
                if let Value::Object(m) = &mut v {
                    m.insert("seq".into(), json!(e.seq));
                    m.insert("proven".into(), json!(e.is_proven()));
                }
                v
            })
            .collect();
        Ok(json!({
            "subject": report.subject,
            "entries": entries,
            "checkpoints": report.checkpoints.len(),
            "intact": report.broken.is_empty() && report.undecodable == 0,
        }))
    }
}
