//! The crate's one error type.

/// Everything that can go wrong in `hisn-audit-log`.
///
/// Messages never contain record contents, key material or subject identifiers.
/// Verification outcomes are *not* errors: they are reported as a
/// [`Verdict`](crate::Verdict) in a [`VerifyReport`](crate::VerifyReport).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event field is empty, too long or holds control characters.
    /// Remedy: fix the caller's input; the limits are in [`crate::limits`].
    #[error("invalid event field `{field}`")]
    InvalidField {
        /// Name of the offending field.
        field: &'static str,
    },
    /// A tenant identifier is not 1..=64 bytes of `[A-Za-z0-9._-]`.
    #[error("invalid tenant identifier")]
    InvalidTenant,
    /// The payload diff is not valid JSON or is larger than the limit.
    #[error("invalid diff: not JSON or too large")]
    InvalidDiff,
    /// Record, segment, checkpoint or key bytes do not follow their format.
    /// `what` names the structure, never its contents.
    #[error("malformed {what}")]
    Malformed {
        /// Which structure was malformed.
        what: &'static str,
    },
    /// A store file is damaged in a way that is not a torn tail after a crash
    /// (corruption in the middle of a segment, a bad segment header, a gap in
    /// sequence numbers). The store refuses to open rather than cut history;
    /// remedy: restore from a replica and run `hisn audit verify`.
    #[error("audit store is corrupt ({what}) in {file} at offset {offset}")]
    Corrupt {
        /// What is wrong.
        what: &'static str,
        /// The file, relative to the store directory.
        file: String,
        /// Byte offset of the damage.
        offset: u64,
    },
    /// An operating-system I/O error.
    #[error("audit store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An earlier I/O error stopped the writer; nothing after it was acknowledged.
    /// Remedy: fix the cause (disk full, failing device) and reopen the store,
    /// which recovers to the last durable record.
    #[error("audit store writer stopped after an I/O error; reopen the store")]
    Poisoned,
    /// The store was closed or its writer is gone.
    #[error("audit store is closed")]
    Closed,
    /// Another process holds the store's write lock.
    #[error("audit store is locked by another writer")]
    Locked,
    /// A sequence number would overflow (2^64 records in one tenant).
    #[error("sequence number space exhausted")]
    SequenceExhausted,
    /// A retention prune was refused: the range was not exported and verified, or
    /// it is not a prefix of the remaining chain.
    #[error("prune refused: {reason}")]
    PruneRefused {
        /// Why the prune was refused.
        reason: &'static str,
    },
    /// A requested record or tenant is not in the store.
    #[error("not found")]
    NotFound,
    /// A checkpoint sink could not publish a checkpoint.
    #[error("checkpoint sink failed: {0}")]
    Sink(std::io::Error),
    /// The random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// A PostgreSQL error (feature `postgres`).
    #[cfg(feature = "postgres")]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A group-committed batch failed ([`PgGroupWriter`](crate::store::pg_group::PgGroupWriter),
    /// feature `postgres`): none of its records was acknowledged, and every caller
    /// in the batch gets this same error. If the connection was lost during the
    /// commit the batch may still have committed; `verify` shows what is stored.
    #[cfg(feature = "postgres")]
    #[error("group commit failed: {0}")]
    GroupCommit(std::sync::Arc<sqlx::Error>),
    /// [`PgStore::append_in`](crate::store::postgres::PgStore::append_in) or
    /// `append_batch_in` was called in a `REPEATABLE READ` or `SERIALIZABLE`
    /// transaction (feature `postgres`). Its snapshot predates the chain lock,
    /// so the head it can read may be stale and, under contention, the append
    /// could fail on every retry. Nothing was written and no lock was taken.
    /// Remedy: use `PgStore::append_in_tx`, which reads the head outside the
    /// snapshot, or append in a `READ COMMITTED` transaction.
    #[cfg(feature = "postgres")]
    #[error(
        "append_in needs a READ COMMITTED transaction; use append_in_tx at this isolation level"
    )]
    IsolationLevel,
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str) -> Error {
    Error::Malformed { what }
}
