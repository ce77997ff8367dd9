//! Group commit for the PostgreSQL store (feature `postgres`).
//!
//! Every [`PgStore::append`] is a transaction of its own, so one connection
//! appends at most one record per commit flush (a few hundred to a few
//! thousand a second, set by the server's WAL flush, with
//! `synchronous_commit = on`). [`PgGroupWriter`] does for PostgreSQL what the
//! file store's writer does for `fdatasync`: concurrent callers queue their
//! events, a writer task takes everything queued (up to a bound) and appends it
//! with [`PgStore::append_batch`] in one transaction, and every caller gets its
//! sequence number back only after that commit. Whatever queues during one
//! commit goes into the next.
//!
//! - Each writer task uses one pooled connection at a time; `writers` of them
//!   share the work by tenant (a tenant always goes to the same writer, so its
//!   records keep their submission order and writers never wait on each
//!   other's chain locks).
//! - Chains are linked exactly as by [`PgStore::append`]: the batch takes each
//!   tenant's advisory lock, so a group writer and plain appends (in this
//!   process or another) can write to the same tenant without forking it.
//! - An event that cannot be encoded is refused to its caller before it joins
//!   a batch; a database error fails the whole batch
//!   ([`Error::GroupCommit`], nothing acknowledged).
//! - Needs a tokio runtime: [`PgGroupWriter::new`] spawns the writer tasks.
//!   Dropping the writer (or [`PgGroupWriter::close`]) lets them finish what
//!   is queued and stop.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool, event: hisn_audit_log::Event) -> hisn_audit_log::Result<()> {
//! use hisn_audit_log::store::pg_group::{GroupOptions, PgGroupWriter};
//! use hisn_audit_log::store::postgres::PgStore;
//!
//! let writer = PgGroupWriter::new(PgStore::new(pool), GroupOptions::default());
//! let seq = writer.append(event).await?; // committed when this returns
//! # let _ = seq;
//! writer.close().await;
//! # Ok(())
//! # }
//! ```

use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::store::postgres::{PgStore, check_event};

/// Settings of a [`PgGroupWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOptions {
    writers: usize,
    max_batch: usize,
}

impl Default for GroupOptions {
    /// One writer, batches of up to 512 events.
    fn default() -> Self {
        Self {
            writers: 1,
            max_batch: 512,
        }
    }
}

impl GroupOptions {
    /// Number of writer tasks (each holds one connection while it commits);
    /// at least 1.
    #[must_use]
    pub fn writers(mut self, n: usize) -> Self {
        self.writers = n.max(1);
        self
    }

    /// Largest number of events in one transaction; at least 1.
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }
}

struct Job {
    event: Event,
    reply: oneshot::Sender<Result<u64>>,
}

/// Group-committing appender over a [`PgStore`]. See the [module docs](self).
#[derive(Debug)]
pub struct PgGroupWriter {
    queues: Vec<mpsc::UnboundedSender<Job>>,
    tasks: Vec<JoinHandle<()>>,
    hasher: RandomState,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl PgGroupWriter {
    /// Start `options.writers` writer tasks over `store` on the current tokio
    /// runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn new(store: PgStore, options: GroupOptions) -> Self {
        let (queues, tasks) = (0..options.writers)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(run(store.clone(), rx, options.max_batch));
                (tx, task)
            })
            .unzip();
        Self {
            queues,
            tasks,
            hasher: RandomState::new(),
        }
    }

    /// Append `event`; returns its sequence number once the batch holding it
    /// has committed.
    ///
    /// The event is queued on the first poll. Dropping the future after that
    /// (a cancelled request) does not withdraw it: it is appended with its
    /// batch, and only the answer is lost. Every queued event has a caller
    /// waiting (or one that went away), so the queue is bounded by the number
    /// of concurrent callers.
    ///
    /// # Errors
    /// Encoding errors (this event only), [`Error::GroupCommit`] when its batch
    /// failed, [`Error::Closed`] when the writer task is gone.
    pub async fn append(&self, event: Event) -> Result<u64> {
        // Refuse here whatever the database would refuse, so one caller's
        // event never fails the batch it would share with others.
        check_event(&event)?;
        let shard = usize::try_from(self.hasher.hash_one(event.tenant()))
            .unwrap_or(0)
            .checked_rem(self.queues.len())
            .unwrap_or(0);
        let queue = self.queues.get(shard).ok_or(Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { event, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Stop taking events, let the writers commit everything queued, and wait
    /// for them.
    pub async fn close(self) {
        drop(self.queues);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// One writer: take everything queued (up to `max_batch`), append it in one
/// transaction, answer every caller, repeat.
async fn run(store: PgStore, mut rx: mpsc::UnboundedReceiver<Job>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        let (events, replies): (Vec<Event>, Vec<_>) =
            jobs.drain(..).map(|j| (j.event, j.reply)).unzip();
        match store.append_batch(&events).await {
            Ok(seqs) => {
                for (reply, seq) in replies.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
            }
            // The database refused a statement: the transaction rolled back and
            // nothing committed. Append the events one by one, so only the
            // event it refuses fails, never the callers that shared its batch.
            Err(Error::Database(sqlx::Error::Database(_))) if events.len() > 1 => {
                tracing::warn!(target: "hisn_audit_log", records = replies.len(), "audit group commit refused; isolating the failing event");
                for (event, reply) in events.iter().zip(replies) {
                    let r = store
                        .append_batch(std::slice::from_ref(event))
                        .await
                        .map(|s| s.first().copied().unwrap_or(0));
                    let _ = reply.send(r.map_err(group_error));
                }
            }
            Err(e) => {
                tracing::warn!(target: "hisn_audit_log", error = %e, records = replies.len(), "audit group commit failed");
                let shared = match e {
                    Error::Database(db) => Arc::new(db),
                    other => Arc::new(sqlx::Error::Protocol(other.to_string())),
                };
                for reply in replies {
                    let _ = reply.send(Err(Error::GroupCommit(Arc::clone(&shared))));
                }
            }
        }
    }
}

/// A failed commit as every caller of its batch sees it (errors of the
/// caller's own event, such as validation, pass through unchanged).
fn group_error(e: Error) -> Error {
    match e {
        Error::Database(db) => Error::GroupCommit(Arc::new(db)),
        e @ (Error::InvalidField { .. }
        | Error::InvalidDiff
        | Error::InvalidTenant
        | Error::SequenceExhausted) => e,
        other => Error::GroupCommit(Arc::new(sqlx::Error::Protocol(other.to_string()))),
    }
}
