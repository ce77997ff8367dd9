//! The audit trail: one hash chain per tenant, checkpoints signed on a
//! schedule (every N records or T seconds) and published to
//! `<data-dir>/audit-checkpoints.log` outside the store.
//!
//! Two stores, one API:
//! - embedded mode: audit-log's file store under `<data-dir>/audit` (group
//!   commit, fsync; one instance);
//! - PostgreSQL mode (`DATABASE_URL`): audit-log's PostgreSQL store
//!   ([`pg`]): the chains live in the database, so every instance appends to
//!   the same chain of a tenant (audit-log serialises each tenant's head with
//!   an advisory lock; appends from several instances interleave into one
//!   verifying chain), and the audit route, the DSAR report and checkpoint
//!   signing read what every instance wrote.
//!
//! Handlers append *before* committing the change they record: a failed append
//! rolls the change back (no unaudited change); a failed commit after a
//! successful append leaves a record of an attempt, which is the safe side.
//! In PostgreSQL mode the append is its own transaction (group-committed with
//! other requests' appends), committed before the handler's tenant
//! transaction: the same rule, not one transaction for both (see [`pg`]).

pub mod pg;
pub mod verified;

use std::net::IpAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hisn_audit_log::{
    AuditRead, AutoCheckpoint, Bounds, CheckpointPolicy, Event, EventBuilder, FileSink, FileStore,
    FileStoreOptions, SignedCheckpoint, SigningKey, StoredRecord, SubjectReport, SystemClock,
    TenantId as AuditTenant, TrustedKeys, Verdict, VerifyReport, decode_record,
};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Checkpoint after this many records at the latest.
pub const CHECKPOINT_EVERY_RECORDS: u64 = 256;

/// The server's audit trail (clones share the store; the last one dropped
/// stops the writer after the queued appends).
#[derive(Debug, Clone)]
pub struct Audit {
    store: Store,
    trusted: TrustedKeys,
    clock: SystemClock,
    verified: verified::VerifiedChains,
}

/// The store of the configured mode.
#[derive(Debug, Clone)]
enum Store {
    /// `<data-dir>/audit` (one instance).
    File(Arc<FileStore>),
    /// `hisn_audit_*` tables (shared by the instances).
    Pg(Arc<pg::PgAudit>),
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

/// The checkpoint schedule: every `every` (when there are new records) or
/// every [`CHECKPOINT_EVERY_RECORDS`] records.
fn policy(every: Duration) -> CheckpointPolicy {
    CheckpointPolicy {
        every_records: NonZeroU64::new(CHECKPOINT_EVERY_RECORDS).unwrap_or(NonZeroU64::MIN),
        every: every.max(Duration::from_secs(1)),
    }
}

/// Run `f` on the file store on a blocking thread (its reads touch the disk).
async fn blocking<T: Send + 'static>(
    store: &Arc<FileStore>,
    f: impl FnOnce(&FileStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::task("audit task", &e))?
}

/// `None` for a tenant without a chain.
fn found<T>(r: hisn_audit_log::Result<T>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(hisn_audit_log::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A record as JSON, with its sequence number.
fn record_json(r: &StoredRecord) -> Result<Value, ApiError> {
    let (_, event) = decode_record(&r.bytes)?;
    let mut v = event.to_json();
    if let Value::Object(m) = &mut v {
        m.insert("seq".into(), json!(r.seq));
    }
    Ok(v)
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
        let auto =
            AutoCheckpoint::new(key, policy(every)).sink(Arc::new(FileSink::new(checkpoint_log)));
        let store = FileStore::open(dir, FileStoreOptions::default().auto_checkpoint(auto))?;
        Ok(Self {
            store: Store::File(Arc::new(store)),
            trusted,
            clock: SystemClock,
            verified: default_verified(),
        })
    }

    /// The PostgreSQL store over `pool` (the application role; a pool of its
    /// own, see [`pg`]), signing checkpoints with `key` on the same schedule
    /// as [`open`](Self::open), into the database and `checkpoint_log`.
    /// Spawns the group writer and the checkpoint task: call it inside the
    /// tokio runtime.
    pub fn open_pg(
        pool: sqlx::PgPool,
        checkpoint_log: &Path,
        key: SigningKey,
        every: Duration,
    ) -> Self {
        let trusted = TrustedKeys::new().with(key.verifying_key());
        Self {
            store: Store::Pg(Arc::new(pg::PgAudit::open(
                pool,
                checkpoint_log,
                key,
                policy(every),
            ))),
            trusted,
            clock: SystemClock,
            verified: default_verified(),
        }
    }

    /// Verify each tenant's whole chain at most every `every` for
    /// [`chain_status`](Self::chain_status) (default
    /// [`verified::DEFAULT_FULL_EVERY_SECS`]); in between only new records.
    #[must_use]
    pub fn full_verify_every(mut self, every: Duration) -> Self {
        self.verified = verified::VerifiedChains::new(every);
        self
    }

    /// The per-tenant verified state of [`chain_status`](Self::chain_status).
    pub fn verified(&self) -> &verified::VerifiedChains {
        &self.verified
    }

    /// The verdict of `tenant`'s chain for the audit route, bounded per call
    /// (see [`verified`]).
    pub async fn chain_status(
        &self,
        tenant: hisn_tenant_guard::TenantId,
    ) -> Result<verified::ChainStatus, ApiError> {
        let t = audit_tenant(tenant)?;
        self.verified.status(self, &t).await
    }

    async fn verify_report(&self, t: AuditTenant) -> Result<VerifyReport, ApiError> {
        match &self.store {
            Store::File(store) => {
                let trusted = self.trusted.clone();
                blocking(store, move |s| Ok(s.verify(&t, Some(&trusted), &[])?)).await
            }
            Store::Pg(pg) => pg.verify(&t, &self.trusted).await,
        }
    }

    /// Whether the chains live in PostgreSQL.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Pg(_))
    }

    /// Build `event` and append it; resolves once the record is durable.
    pub async fn append(&self, event: EventBuilder) -> Result<u64, ApiError> {
        let event = event.build(&self.clock)?;
        let started = Instant::now();
        let seq = match &self.store {
            Store::File(store) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                store.append_with(event, move |r| {
                    let _ = tx.send(r);
                })?;
                rx.await
                    .map_err(|e| ApiError::internal("audit writer gone", &e))??
            }
            Store::Pg(pg) => pg.append(event).await?,
        };
        crate::metrics::global().audit_append(started.elapsed());
        Ok(seq)
    }

    async fn bounds(&self, t: &AuditTenant) -> Result<Option<Bounds>, ApiError> {
        match &self.store {
            Store::File(store) => {
                let t = t.clone();
                blocking(store, move |s| found(s.bounds(&t))).await
            }
            Store::Pg(pg) => found(pg.store().bounds(t).await),
        }
    }

    /// Number of records in `tenant`'s chain.
    pub async fn len(&self, tenant: hisn_tenant_guard::TenantId) -> Result<u64, ApiError> {
        let t = audit_tenant(tenant)?;
        Ok(self.bounds(&t).await?.map_or(0, |b| b.size))
    }

    /// Records `[from, from + limit)` of `tenant`'s chain, as JSON.
    pub async fn records(
        &self,
        tenant: hisn_tenant_guard::TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let t = audit_tenant(tenant)?;
        let Some(bounds) = self.bounds(&t).await? else {
            return Ok(Vec::new());
        };
        let from = from.max(bounds.first_seq);
        let to = from.saturating_add(limit).min(bounds.size);
        match &self.store {
            Store::File(store) => {
                blocking(store, move |s| {
                    s.read_range(&t, from, to)?
                        .into_iter()
                        .map(|r| record_json(&r?))
                        .collect()
                })
                .await
            }
            Store::Pg(pg) => pg
                .store()
                .read_range(&t, from, to)
                .await?
                .iter()
                .map(record_json)
                .collect(),
        }
    }

    /// Verify `tenant`'s chain against the signed checkpoints (in PostgreSQL
    /// mode also against this instance's own checkpoint log, held outside
    /// the database).
    pub async fn verify(
        &self,
        tenant: hisn_tenant_guard::TenantId,
    ) -> Result<(Verdict, u64), ApiError> {
        let report = self.verify_report(audit_tenant(tenant)?).await?;
        Ok((report.verdict, report.size))
    }

    /// Sign a checkpoint of every chain with new records now (also done on a
    /// schedule); returns how many were signed.
    pub async fn checkpoint_now(&self, key: Arc<SigningKey>) -> Result<usize, ApiError> {
        let now = hisn_audit_log::Clock::now(&self.clock);
        match &self.store {
            Store::File(store) => {
                blocking(store, move |s| Ok(s.checkpoint_now(None, &key, now)?.len())).await
            }
            Store::Pg(pg) => pg.checkpoint_all(&key, now).await,
        }
    }

    /// The data-subject report for `subject` in `tenant`, as JSON: every record
    /// naming the subject, each with whether it is proven by a signed checkpoint.
    pub async fn subject_report(
        &self,
        tenant: hisn_tenant_guard::TenantId,
        subject: &str,
    ) -> Result<Value, ApiError> {
        let t = audit_tenant(tenant)?;
        let report = match &self.store {
            Store::File(store) => {
                let (trusted, subject) = (self.trusted.clone(), subject.to_owned());
                blocking(store, move |s| {
                    Ok(s.subject_report(&t, &subject, Some(&trusted))?)
                })
                .await?
            }
            Store::Pg(pg) => {
                pg.store()
                    .subject_report(&t, subject, Some(&self.trusted))
                    .await?
            }
        };
        Ok(report_json(&report))
    }
}

fn default_verified() -> verified::VerifiedChains {
    verified::VerifiedChains::new(Duration::from_secs(verified::DEFAULT_FULL_EVERY_SECS))
}

impl verified::ChainSource for Audit {
    async fn bounds(&self, t: &AuditTenant) -> Result<Option<Bounds>, ApiError> {
        Audit::bounds(self, t).await
    }

    async fn read(
        &self,
        t: &AuditTenant,
        from: u64,
        to: u64,
    ) -> Result<Vec<hisn_audit_log::Result<StoredRecord>>, ApiError> {
        match &self.store {
            Store::File(store) => {
                let t = t.clone();
                blocking(store, move |s| Ok(s.read_range(&t, from, to)?)).await
            }
            Store::Pg(pg) => Ok(pg
                .store()
                .read_range(t, from, to)
                .await?
                .into_iter()
                .map(Ok)
                .collect()),
        }
    }

    async fn checkpoints(
        &self,
        t: &AuditTenant,
    ) -> Result<(Vec<SignedCheckpoint>, Vec<SignedCheckpoint>), ApiError> {
        match &self.store {
            Store::File(store) => {
                let t = t.clone();
                let cps = blocking(store, move |s| Ok(s.checkpoints(&t)?)).await?;
                Ok((cps, Vec::new()))
            }
            Store::Pg(pg) => Ok((pg.store().checkpoints(t).await?, pg.anchors(t).await?)),
        }
    }

    async fn verify_all(&self, t: &AuditTenant) -> Result<VerifyReport, ApiError> {
        self.verify_report(t.clone()).await
    }

    fn keys(&self) -> &TrustedKeys {
        &self.trusted
    }
}

fn report_json(report: &SubjectReport) -> Value {
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
    json!({
        "subject": report.subject,
        "entries": entries,
        "checkpoints": report.checkpoints.len(),
        "intact": report.broken.is_empty() && report.undecodable == 0,
    })
}
