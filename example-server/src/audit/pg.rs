//! The audit trail in PostgreSQL mode: audit-log's [`PgStore`] (tables
//! `hisn_audit_*`, created by audit-log's own migrations, which the owner
//! role runs at start-up beside the server's). The store connects as its own
//! **audit role** (`HISN_AUDIT_DATABASE_URL`), which may only INSERT and
//! SELECT there; the application role, under which tenant transactions run,
//! holds no privilege on them (the tables have no row-level security: a role
//! that reads them reads every tenant's trail). Start-up refuses either
//! role holding more, see [`crate::db::pg`].
//!
//! - **One chain per tenant for every instance.** Appends go through
//!   audit-log's [`PgGroupWriter`]: concurrent requests' events are appended
//!   in one transaction; each tenant's head is taken under its advisory lock
//!   in the database, so two instances appending to one tenant interleave
//!   into one chain instead of forking it.
//! - **Append before commit.** The writer's transaction commits before the
//!   handler's tenant transaction does, and a failed append fails the request
//!   (its transaction rolls back), as in the embedded mode. Appending inside
//!   the tenant transaction instead (tenant-guard's `append_audit` with
//!   `PgStore::append_in_tx`) would make record and change one commit, but
//!   would hold the tenant's chain lock for the whole transaction, so every
//!   write of a tenant would wait for the one before it, on every instance.
//! - **Its own pool.** The store gets a small pool of its own: a request
//!   holding a tenant connection while it waits for its append must never
//!   starve the writer of connections.
//! - **Checkpoints.** A task signs a checkpoint of each tenant this instance
//!   appended to, every `every` or after [`super::CHECKPOINT_EVERY_RECORDS`]
//!   of its records, into `hisn_audit_checkpoint` (so every instance's
//!   verification and DSAR report see it) and into this instance's
//!   checkpoint log (a copy outside the database, passed to verification as
//!   an anchor: a database rolled back behind it fails verification).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hisn_audit_log::store::pg_group::{GroupOptions, PgGroupWriter};
use hisn_audit_log::store::postgres::PgStore;
use hisn_audit_log::{
    CheckpointPolicy, CheckpointSink, Event, FileSink, SignedCheckpoint, SigningKey, TenantId,
    Timestamp, TrustedKeys, VerifyReport,
};
use tokio::sync::{Notify, oneshot};

use crate::error::ApiError;

/// Connections of the audit store's own pool.
pub const AUDIT_CONNECTIONS: u32 = 4;

/// The PostgreSQL audit store of one instance.
#[derive(Debug)]
pub struct PgAudit {
    store: PgStore,
    /// The audit role's pool (the store keeps its own handle).
    pool: sqlx::PgPool,
    writer: PgGroupWriter,
    log: PathBuf,
    pending: Arc<Pending>,
    /// Dropped with the store: the checkpoint task signs what is pending and stops.
    _stop: oneshot::Sender<()>,
}

/// Records appended by this instance and not yet under a checkpoint, per tenant.
#[derive(Debug, Default)]
struct Pending {
    tenants: Mutex<HashMap<TenantId, u64>>,
    kick: Notify,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, u64>> {
        // The map is a set of counters: a panic elsewhere leaves it usable.
        self.tenants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Note `n` new records of `tenant`; wake the task once `every` are pending.
    fn note(&self, tenant: TenantId, n: u64, every: u64) {
        let mut t = self.lock();
        let count = t.entry(tenant).or_default();
        *count = count.saturating_add(n);
        if *count >= every {
            self.kick.notify_one();
        }
    }

    fn take(&self) -> HashMap<TenantId, u64> {
        std::mem::take(&mut *self.lock())
    }
}

impl PgAudit {
    /// The store over `pool`, its group writer and its checkpoint task.
    pub(super) fn open(
        pool: sqlx::PgPool,
        log: &Path,
        key: SigningKey,
        policy: CheckpointPolicy,
    ) -> Self {
        let store = PgStore::new(pool.clone());
        let writer = PgGroupWriter::new(store.clone(), GroupOptions::default());
        let pending = Arc::new(Pending::default());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(checkpoints(
            store.clone(),
            key,
            log.to_owned(),
            Arc::clone(&pending),
            policy,
            stopped,
        ));
        Self {
            store,
            pool,
            writer,
            log: log.to_owned(),
            pending,
            _stop: stop,
        }
    }

    /// The store (reads).
    pub(super) fn store(&self) -> &PgStore {
        &self.store
    }

    /// Append `event`; returns its sequence number once committed.
    pub(super) async fn append(&self, event: Event) -> Result<u64, ApiError> {
        let tenant = event.tenant().clone();
        let seq = self.writer.append(event).await?;
        self.pending
            .note(tenant, 1, super::CHECKPOINT_EVERY_RECORDS);
        Ok(seq)
    }

    /// Verify `tenant`'s chain: checkpoints in the database (untrusted
    /// copies, a bad one skipped) and this instance's log (anchors: a bad
    /// one, or a chain shorter than one, is a verdict).
    pub(super) async fn verify(
        &self,
        tenant: &TenantId,
        trusted: &TrustedKeys,
    ) -> Result<VerifyReport, ApiError> {
        let anchors = local_checkpoints(&self.log, tenant).await?;
        Ok(self.store.verify(tenant, Some(trusted), &anchors).await?)
    }

    /// This instance's checkpoints of `tenant` (held outside the database).
    pub(super) async fn anchors(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<SignedCheckpoint>, ApiError> {
        local_checkpoints(&self.log, tenant).await
    }

    /// Sign a checkpoint of every tenant whose chain grew since its newest
    /// checkpoint (whichever instance appended); returns how many.
    pub(super) async fn checkpoint_all(
        &self,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<usize, ApiError> {
        // audit-log's PgStore lists the tenants with a checkpoint, not the
        // tenants with a chain: read them from its table.
        let names: Vec<String> =
            sqlx::query_scalar("SELECT tenant FROM hisn_audit_log GROUP BY tenant")
                .fetch_all(&self.pool)
                .await?;
        self.pending.take();
        let mut n = 0;
        for t in names.iter().filter_map(|n| TenantId::parse(n).ok()) {
            let Some(b) = found(self.store.bounds(&t).await)? else {
                continue;
            };
            let newest = self
                .store
                .checkpoints(&t)
                .await?
                .iter()
                .map(|c| c.checkpoint.size)
                .max();
            if newest.is_some_and(|s| s >= b.size) {
                continue;
            }
            sign(&self.store, key, &self.log, &t, now).await?;
            n += 1;
        }
        Ok(n)
    }
}

fn found<T>(r: hisn_audit_log::Result<T>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(hisn_audit_log::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// This instance's checkpoints of `tenant` from its log.
async fn local_checkpoints(
    log: &Path,
    tenant: &TenantId,
) -> Result<Vec<SignedCheckpoint>, ApiError> {
    let (log, tenant) = (log.to_owned(), tenant.clone());
    tokio::task::spawn_blocking(move || {
        Ok(hisn_audit_log::read_checkpoint_log(&log)?
            .into_iter()
            .filter(|c| c.checkpoint.tenant().as_ref() == Some(&tenant))
            .collect())
    })
    .await
    .map_err(|e| ApiError::task("audit task", &e))?
}

/// Sign `tenant`'s head into the database and this instance's log.
async fn sign(
    store: &PgStore,
    key: &SigningKey,
    log: &Path,
    tenant: &TenantId,
    now: Timestamp,
) -> Result<(), ApiError> {
    let cp = store.checkpoint(tenant, key, now).await?;
    let sink = FileSink::new(log);
    tokio::task::spawn_blocking(move || sink.publish(&cp))
        .await
        .map_err(|e| ApiError::task("audit task", &e))??;
    Ok(())
}

/// The checkpoint task: every `policy.every`, or when a tenant has
/// `policy.every_records` pending, sign the pending tenants; on stop, sign
/// what is pending and end. A failed checkpoint stays pending (retried on the
/// next round).
async fn checkpoints(
    store: PgStore,
    key: SigningKey,
    log: PathBuf,
    pending: Arc<Pending>,
    policy: CheckpointPolicy,
    mut stop: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(policy.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            () = pending.kick.notified() => false,
            _ = &mut stop => true,
        };
        let now = hisn_audit_log::Clock::now(&hisn_audit_log::SystemClock);
        for (tenant, n) in pending.take() {
            if sign(&store, &key, &log, &tenant, now).await.is_err() {
                // The cause is logged where it happened.
                tracing::warn!(target: "hisn::example_server::audit", "audit checkpoint failed; retried on the next round");
                // Not `note`: a failing database must not wake the task in a loop.
                let mut t = pending.lock();
                let count = t.entry(tenant).or_default();
                *count = count.saturating_add(n);
            }
        }
        if last {
            break;
        }
    }
}
