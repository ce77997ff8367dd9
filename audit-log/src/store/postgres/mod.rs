//! PostgreSQL store (feature `postgres`): an append-only table.
//!
//! - Record bytes are stored as `bytea` beside queryable columns (tenant, seq,
//!   time, actor, action, entity); the chain hashes the bytes, never a database
//!   rendering (`timestamptz` text depends on the session time zone, `jsonb`
//!   reorders keys).
//! - [`MIGRATIONS`] (SQL files under `migrations/`, applied by
//!   [`PgStore::migrate`]) create the tables and `ENABLE ALWAYS` triggers refusing
//!   UPDATE, DELETE and TRUNCATE (they fire even with
//!   `session_replication_role = replica`); [`grant_app_role_sql`] grants the
//!   application role SELECT and INSERT only.
//! - Appends take `pg_advisory_xact_lock` on the tenant, so concurrent writers
//!   never fork a chain, and can join the caller's transaction
//!   ([`PgStore::append_in`]): an audited change and its record commit or roll
//!   back together.
//! - [`PgStore::append`] costs one statement in the common case: it chains the
//!   record to the head it remembers for the tenant and calls
//!   `hisn_audit_append`, which takes the lock, checks that head and inserts
//!   (or returns the real head when another writer moved it; the client then
//!   re-chains). The first append of a tenant, and a head that keeps moving
//!   under contention, take the lock first in a transaction instead.
//! - A superuser can still disable the triggers and delete rows; `verify`
//!   catches that (and a checkpoint held elsewhere catches a rewritten chain).
//!
//! # Retention
//!
//! [`PgStore::export`] reads and verifies a prefix and issues an
//! [`ExportReceipt`]; [`PgStore::prune`] checks the receipt against the stored
//! chain under the tenant's lock and then, in one transaction, appends the
//! prune record (range, count, boundary link, actor), records the new start in
//! the append-only `hisn_audit_prune_point` table and deletes the prefix.
//! Verification then starts at [`Start::Pruned`] and requires that prune record,
//! so rows deleted any other way still read as tampering.
//!
//! The deletion is done by `hisn_audit_prune_rows`, a `SECURITY DEFINER`
//! function owned by the table owner with a fixed `search_path`: it disables the
//! two `_no_change` triggers, deletes and re-enables them inside the caller's
//! transaction. Other sessions never see the triggers disabled (the catalog
//! change is not visible before commit, and the `SHARE ROW EXCLUSIVE` lock that
//! `ALTER TABLE .. DISABLE TRIGGER` takes keeps every other writer out until
//! then; readers are not blocked). `EXECUTE` is revoked from `PUBLIC` and
//! [`grant_app_role_sql`] does not grant it: prune with the owner's connection,
//! as a maintenance action. While it runs, appends of every tenant wait; a
//! transaction that appends to several tenants at once can make it fail with a
//! deadlock error (retry it).
//!
//! # Verification cost
//!
//! [`PgStore::verify`] reads the chain in one `REPEATABLE READ` snapshot, in
//! pages of at most 10,000 rows or 8 MiB of records (keyset pagination on
//! `seq`), and hashes them on a blocking thread while the next page is read: at
//! most three pages are in memory, whatever the length of the chain.

mod append;
mod checkpoint;
mod read;
mod retention;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{Checkpoint, SignedCheckpoint, SigningKey, TrustedKeys};
use crate::clock::{Clock, Timestamp};
use crate::encoding::encode_record;
use crate::error::{Error, Result, malformed};
use crate::event::{Event, TenantId};
use crate::store::{
    Bounds, Export, ExportReceipt, SubjectReport, check_export_range, export_start, finish_export,
    prune_event, verify_start,
};
use crate::verify::{Start, StoredRecord, Verifier, VerifyReport};

/// One versioned schema migration (the SQL files under `audit-log/migrations/`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Migration {
    /// Version number; migrations run in ascending order, each once.
    pub version: u32,
    /// Short name (the file name without number and extension).
    pub name: &'static str,
    /// The SQL, run as the table owner.
    pub sql: &'static str,
}

/// Every schema migration, oldest first. [`PgStore::migrate`] applies the ones
/// a database has not seen yet and records them in
/// `hisn_audit_schema_migrations`. Migration 1 is idempotent, so a database
/// set up by an earlier release (before versions were recorded) migrates
/// cleanly.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "checkpoint_frontier",
        sql: include_str!("../../../migrations/0002_checkpoint_frontier.sql"),
    },
];

/// The table recording applied migrations (owner-only: nothing is granted on it).
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS hisn_audit_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// SQL granting `role` SELECT and INSERT only on the audit tables (UPDATE,
/// DELETE and TRUNCATE revoked), SELECT only on `hisn_audit_prune_point`, and
/// no EXECUTE on the prune function (retention is the owner's job). Run it
/// again after a migration that adds a table.
/// `role` must match `[a-z_][a-z0-9_]{0,62}`.
///
/// # Errors
/// [`Error::Malformed`] for another role name.
pub fn grant_app_role_sql(role: &str) -> Result<String> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(malformed("role name"));
    }
    let mut sql: String = [
        "hisn_audit_log",
        "hisn_audit_subject",
        "hisn_audit_checkpoint",
    ]
    .iter()
    .map(|t| {
        format!("REVOKE ALL ON {t} FROM \"{role}\"; GRANT SELECT, INSERT ON {t} TO \"{role}\";\n")
    })
    .collect();
    // Readers need the start of a pruned chain; only the prune function writes it.
    sql.push_str(&format!(
        "REVOKE ALL ON hisn_audit_prune_point FROM \"{role}\"; \
         GRANT SELECT ON hisn_audit_prune_point TO \"{role}\";\n\
         REVOKE ALL ON FUNCTION {PRUNE_FUNCTION} FROM \"{role}\";\n"
    ));
    Ok(sql)
}

/// The retention function's signature (see [`MIGRATIONS`]).
const PRUNE_FUNCTION: &str = "hisn_audit_prune_rows(text, bigint, bytea, bigint)";

/// Earliest event time the PostgreSQL store accepts: 0001-01-01T00:00:00Z.
pub const PG_MIN_TIME_MICROS: i64 = -62_135_596_800_000_000;
/// Latest event time the PostgreSQL store accepts: 9999-12-31T23:59:59.999999Z.
pub const PG_MAX_TIME_MICROS: i64 = 253_402_300_799_999_999;

/// Refuse, before anything is sent, what the database would refuse for this
/// event (so one bad event never fails a statement, a batch or a group
/// commit): a time outside [`PG_MIN_TIME_MICROS`]..=[`PG_MAX_TIME_MICROS`]
/// (`timestamptz` overflows beyond), a record the encoder refuses, text
/// PostgreSQL cannot store (NUL; the event builder already refuses control
/// characters).
///
/// # Errors
/// [`Error::InvalidField`] naming the field; encoding errors.
pub fn check_event(event: &Event) -> Result<()> {
    check_columns(event)?;
    encode_record(0, event)?;
    Ok(())
}

/// The part of [`check_event`] that needs no encoding (for paths that encode
/// every event before anything is committed anyway).
pub(crate) fn check_columns(event: &Event) -> Result<()> {
    let t = event.time().unix_micros();
    if !(PG_MIN_TIME_MICROS..=PG_MAX_TIME_MICROS).contains(&t) {
        return Err(Error::InvalidField { field: "time" });
    }
    let texts = [
        ("actor", event.actor()),
        ("action", event.action()),
        ("entity_type", event.entity_type()),
        ("entity_id", event.entity_id()),
    ];
    for (field, v) in texts {
        if v.contains('\0') {
            return Err(Error::InvalidField { field });
        }
    }
    if event.subjects().iter().any(|s| s.contains('\0')) {
        return Err(Error::InvalidField { field: "subjects" });
    }
    Ok(())
}

fn i64_of(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::SequenceExhausted)
}

fn u64_of(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| malformed("sequence number"))
}

fn link_of(b: &[u8]) -> Result<Link> {
    <[u8; 32]>::try_from(b)
        .map(Link)
        .map_err(|_| malformed("link"))
}

fn stored_record(r: &PgRow) -> Result<StoredRecord> {
    Ok(StoredRecord {
        seq: u64_of(r.try_get(0)?)?,
        bytes: r.try_get(1)?,
        link: link_of(&r.try_get::<Vec<u8>, _>(2)?)?,
    })
}

/// The result of a blocking task; a panic in it is resumed here.
async fn join_blocking<T>(task: JoinHandle<T>) -> Result<T> {
    match task.await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime shuts down under us.
        Err(_) => Err(Error::Closed),
    }
}

/// A consistent, read-only view for multi-statement reads: bounds, checkpoints
/// and every page come from one snapshot, so a concurrent append or prune
/// cannot make an intact chain look damaged.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// How much one query of a streaming read may return: `rows` records, and no
/// more records once `bytes` of them have been returned (so at least one).
#[derive(Debug, Clone, Copy)]
struct Page {
    rows: i64,
    bytes: i64,
}

/// Page size of [`PgStore::verify`]: with records of at most 1 MiB
/// ([`crate::limits::MAX_RECORD_LEN`]) a page holds at most 9 MiB.
const VERIFY_PAGE: Page = Page {
    rows: 10_000,
    bytes: 8 << 20,
};

/// Pages queued between the reader and the verifier thread (one more is being
/// read and one being hashed).
const VERIFY_QUEUE: usize = 1;

/// Attempts of the one-round-trip append before falling back to a transaction
/// that takes the lock first (only reached when other writers keep moving the
/// head of the same tenant).
const FAST_ATTEMPTS: usize = 4;

/// The PostgreSQL store.
///
/// [`append`](Self::append) remembers each tenant's head after its own appends
/// and sends the record chained to it in one statement
/// (`hisn_audit_append`: lock, check the head, insert). The database checks the
/// head under the tenant's lock, so a stale guess (another writer appended)
/// inserts nothing and costs one more round trip; it never forks the chain.
/// The memory is one entry (sequence number and link) per tenant appended to;
/// clones share it.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    heads: Arc<Mutex<HashMap<TenantId, (u64, Link)>>>,
    /// A small pool of its own (same connection options, at most
    /// [`HEAD_CONNECTIONS`]) for [`append_in_tx`](Self::append_in_tx)'s head
    /// reads: made on first use, and never the application's pool, whose
    /// connections may all be held by transactions waiting for the chain lock.
    head_pool: Arc<std::sync::OnceLock<PgPool>>,
}

/// Connections of the head-read pool.
const HEAD_CONNECTIONS: u32 = 2;

impl PgStore {
    /// A store over `pool` (connected as the application role).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            heads: Arc::default(),
            head_pool: Arc::default(),
        }
    }

    fn head_pool(&self) -> &PgPool {
        self.head_pool.get_or_init(|| {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(HEAD_CONNECTIONS)
                .connect_lazy_with((*self.pool.connect_options()).clone())
        })
    }

    /// Apply the [`MIGRATIONS`] the database has not seen yet, in one
    /// transaction, as the table owner. Concurrent callers are serialised by
    /// an advisory lock, so several instances may call it at start-up.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn migrate(pool: &PgPool) -> Result<()> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('hisn-audit-log/migrate', 0))")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(MIGRATIONS_TABLE).execute(&mut *tx).await?;
        let applied: Vec<i32> =
            sqlx::query_scalar("SELECT version FROM hisn_audit_schema_migrations")
                .fetch_all(&mut *tx)
                .await?;
        for m in MIGRATIONS {
            let version = i32::try_from(m.version).map_err(|_| malformed("migration version"))?;
            if applied.contains(&version) {
                continue;
            }
            sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO hisn_audit_schema_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Run a dynamic SQL string produced by [`grant_app_role_sql`].
///
/// # Errors
/// [`Error::Database`].
pub async fn grant_app_role(pool: &PgPool, role: &str) -> Result<()> {
    let sql = grant_app_role_sql(role)?;
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}
