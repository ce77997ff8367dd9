//! PostgreSQL store (feature `postgres`): an append-only table.
//!
//! - Record bytes are stored as `bytea` beside queryable columns (tenant, seq,
//!   time, actor, action, entity); the chain hashes the bytes, never a database
//!   rendering (`timestamptz` text depends on the session time zone, `jsonb`
//!   reorders keys).
//! - [`MIGRATION`] creates the tables and `ENABLE ALWAYS` triggers refusing
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

/// Schema: run once as the table owner (not the application role).
pub const MIGRATION: &str = r"
CREATE TABLE IF NOT EXISTS hisn_audit_log (
    tenant      text        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq >= 0),
    record      bytea       NOT NULL,
    link        bytea       NOT NULL CHECK (length(link) = 32),
    recorded_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    entity_type text        NOT NULL,
    entity_id   text        NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE IF NOT EXISTS hisn_audit_subject (
    tenant  text   NOT NULL,
    subject text   NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (tenant, subject, seq)
);
CREATE TABLE IF NOT EXISTS hisn_audit_checkpoint (
    tenant text   NOT NULL,
    size   bigint NOT NULL,
    note   text   NOT NULL,
    PRIMARY KEY (tenant, size, note)
);
-- Where each tenant's chain starts after a retention prune (the newest row per
-- tenant counts): the first sequence number held and the link of the record
-- before it. Written only by hisn_audit_prune_rows.
CREATE TABLE IF NOT EXISTS hisn_audit_prune_point (
    tenant     text   NOT NULL,
    first_seq  bigint NOT NULL CHECK (first_seq > 0),
    start_prev bytea  NOT NULL CHECK (length(start_prev) = 32),
    prune_seq  bigint NOT NULL CHECK (prune_seq >= first_seq),
    db_user    text   NOT NULL DEFAULT session_user,
    PRIMARY KEY (tenant, first_seq)
);
-- Take the tenant's chain lock (held to the end of the transaction), then read
-- the head. A volatile function's statements each take a fresh snapshot under
-- READ COMMITTED, so the head includes every append committed before the lock.
CREATE OR REPLACE FUNCTION hisn_audit_lock_head(p_tenant text, OUT seq bigint, OUT link bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('hisn-audit-log/' || p_tenant, 0));
    SELECT l.seq, l.link INTO seq, link FROM hisn_audit_log l
        WHERE l.tenant = p_tenant ORDER BY l.seq DESC LIMIT 1;
END $$;
-- The one-round-trip append: take the tenant's chain lock, read the head and
-- insert the record (and its subject-index rows) only if the head is the one
-- the client chained the record to (p_seq - 1 with link p_prev; none for
-- p_seq = 0). Otherwise insert nothing and return the current head, so the
-- client re-chains and retries. Runs as the caller (SECURITY INVOKER): the
-- application role still needs INSERT on the tables.
CREATE OR REPLACE FUNCTION hisn_audit_append(
    p_tenant text, p_seq bigint, p_prev bytea, p_record bytea, p_link bytea,
    p_micros bigint, p_actor text, p_action text, p_entity_type text,
    p_entity_id text, p_subjects text[],
    OUT appended boolean, OUT seq bigint, OUT link bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('hisn-audit-log/' || p_tenant, 0));
    SELECT l.seq, l.link INTO seq, link FROM hisn_audit_log l
        WHERE l.tenant = p_tenant ORDER BY l.seq DESC LIMIT 1;
    IF (seq IS NULL AND p_seq = 0) OR (seq = p_seq - 1 AND link = p_prev) THEN
        INSERT INTO hisn_audit_log
            (tenant, seq, record, link, recorded_at, actor, action, entity_type, entity_id)
            VALUES (p_tenant, p_seq, p_record, p_link,
                    timestamptz 'epoch' + p_micros * interval '1 microsecond',
                    p_actor, p_action, p_entity_type, p_entity_id);
        INSERT INTO hisn_audit_subject (tenant, subject, seq)
            SELECT p_tenant, s, p_seq FROM unnest(p_subjects) AS s;
        appended := true;
        seq := p_seq;
        link := p_link;
    ELSE
        appended := false;
    END IF;
END $$;
CREATE OR REPLACE FUNCTION hisn_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hisn audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['hisn_audit_log', 'hisn_audit_subject', 'hisn_audit_checkpoint', 'hisn_audit_prune_point'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION hisn_audit_refuse()', t || '_no_change', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_change');
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION hisn_audit_refuse()', t || '_no_truncate', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
    END LOOP;
END $$;
-- Retention: delete tenant p_tenant's rows up to p_through, once the caller
-- has appended the prune record (p_prune_seq) in this transaction, and record
-- where the chain now starts. SECURITY DEFINER, so it runs as the owner, the
-- only role that may step past the append-only triggers: they are disabled
-- and re-enabled inside this transaction, which no other session sees (the
-- catalog change is invisible before commit, and DISABLE TRIGGER's SHARE ROW
-- EXCLUSIVE lock keeps every other writer out until then). Catalog names are
-- qualified and the search_path is pinned below, as a SECURITY DEFINER
-- function requires. EXECUTE is revoked from PUBLIC: only the owner prunes.
CREATE OR REPLACE FUNCTION hisn_audit_prune_rows(
    p_tenant text, p_through bigint, p_boundary bytea, p_prune_seq bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
DECLARE
    v_first bigint;
    v_deleted bigint;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('hisn-audit-log/' || p_tenant, 0::bigint));
    SELECT COALESCE(max(pp.first_seq), 0) INTO v_first
        FROM hisn_audit_prune_point pp WHERE pp.tenant = p_tenant;
    IF p_through IS NULL OR p_through < v_first THEN
        RAISE EXCEPTION 'hisn audit prune refused: range not held'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hisn_audit_log l
                   WHERE l.tenant = p_tenant AND l.seq = p_through AND l.link = p_boundary) THEN
        RAISE EXCEPTION 'hisn audit prune refused: boundary link does not match'
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_prune_seq <= p_through OR NOT EXISTS (
            SELECT 1 FROM hisn_audit_log l
            WHERE l.tenant = p_tenant AND l.seq = p_prune_seq AND l.action = 'audit.prune') THEN
        RAISE EXCEPTION 'hisn audit prune refused: no prune record after the range'
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO hisn_audit_prune_point (tenant, first_seq, start_prev, prune_seq)
        VALUES (p_tenant, p_through + 1, p_boundary, p_prune_seq);
    ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change;
    ALTER TABLE hisn_audit_subject DISABLE TRIGGER hisn_audit_subject_no_change;
    DELETE FROM hisn_audit_subject s WHERE s.tenant = p_tenant AND s.seq <= p_through;
    DELETE FROM hisn_audit_log l WHERE l.tenant = p_tenant AND l.seq <= p_through;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change;
    ALTER TABLE hisn_audit_subject ENABLE ALWAYS TRIGGER hisn_audit_subject_no_change;
    RETURN v_deleted;
END $$;
-- pg_catalog first (built-ins cannot be shadowed), then the schema holding the
-- audit tables (it must not be writable by untrusted roles; the default from
-- PostgreSQL 15), pg_temp last.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION hisn_audit_prune_rows(text, bigint, bytea, bigint) '
                   'SET search_path = pg_catalog, %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION hisn_audit_prune_rows(text, bigint, bytea, bigint) FROM PUBLIC;
";

/// SQL granting `role` SELECT and INSERT only on the audit tables (UPDATE,
/// DELETE and TRUNCATE revoked), SELECT only on `hisn_audit_prune_point`, and
/// no EXECUTE on the prune function (retention is the owner's job). Run it
/// again after upgrading to a [`MIGRATION`] that adds a table.
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

/// The retention function's signature (see [`MIGRATION`]).
const PRUNE_FUNCTION: &str = "hisn_audit_prune_rows(text, bigint, bytea, bigint)";

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
}

impl PgStore {
    /// A store over `pool` (connected as the application role).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            heads: Arc::default(),
        }
    }

    /// Run [`MIGRATION`] (as the table owner).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn migrate(pool: &PgPool) -> Result<()> {
        sqlx::raw_sql(MIGRATION).execute(pool).await?;
        Ok(())
    }

    /// Append in a transaction of its own; returns the sequence number once committed.
    ///
    /// # Errors
    /// [`Error::Database`], encoding errors.
    pub async fn append(&self, event: &Event) -> Result<u64> {
        let tenant = event.tenant();
        let mut guess = self.heads.lock().get(tenant).copied();
        for _ in 0..FAST_ATTEMPTS {
            let Some((seq, prev)) = guess else { break };
            match self.append_if_head(event, seq, &prev).await {
                Ok(Ok(link)) => {
                    self.remember(tenant, seq, link);
                    return Ok(seq);
                }
                // Another writer moved the head: chain to the one the database holds.
                Ok(Err(head)) => guess = Some(head),
                Err(e) => {
                    self.heads.lock().remove(tenant);
                    return Err(e);
                }
            }
        }
        // First append of this tenant by this store, or a contended head: take
        // the lock first, then read the head and insert (always succeeds).
        let mut tx = self.pool.begin().await?;
        let appended = match Self::append_in_with_link(&mut tx, event).await {
            Ok(a) => a,
            Err(e) => {
                self.heads.lock().remove(tenant);
                return Err(e);
            }
        };
        tx.commit().await?;
        self.remember(tenant, appended.0, appended.1);
        Ok(appended.0)
    }

    fn remember(&self, tenant: &TenantId, seq: u64, link: Link) {
        if let Some(next) = seq.checked_add(1) {
            self.heads.lock().insert(tenant.clone(), (next, link));
        }
    }

    /// One statement in a transaction of its own: append `event` as record
    /// `seq` after `prev` if that is still the head. `Ok(Ok(link))` once
    /// committed, `Ok(Err((next seq, head)))` when the head moved (nothing written).
    async fn append_if_head(
        &self,
        event: &Event,
        seq: u64,
        prev: &Link,
    ) -> Result<std::result::Result<Link, (u64, Link)>> {
        let tenant = event.tenant().as_str();
        let record = encode_record(seq, event)?;
        let link = chain_link(tenant.as_bytes(), seq, prev, &record_digest(&record));
        let row = sqlx::query(
            "SELECT appended, seq, link FROM hisn_audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(tenant)
        .bind(i64_of(seq)?)
        .bind(&prev.0[..])
        .bind(&record)
        .bind(&link.0[..])
        .bind(event.time().unix_micros())
        .bind(event.actor())
        .bind(event.action())
        .bind(event.entity_type())
        .bind(event.entity_id())
        .bind(event.subjects())
        .fetch_one(&self.pool)
        .await?;
        if row.try_get::<bool, _>(0)? {
            return Ok(Ok(link));
        }
        Ok(Err(Self::next_after(
            row.try_get::<Option<i64>, _>(1)?,
            row.try_get::<Option<Vec<u8>>, _>(2)?,
        )?))
    }

    /// The next sequence number and previous link after a head row.
    fn next_after(seq: Option<i64>, link: Option<Vec<u8>>) -> Result<(u64, Link)> {
        match (seq, link) {
            (Some(s), Some(l)) => Ok((
                u64_of(s)?.checked_add(1).ok_or(Error::SequenceExhausted)?,
                link_of(&l)?,
            )),
            _ => Ok((0, Link::GENESIS)),
        }
    }

    /// Append inside the caller's transaction (pass `&mut *tx`): the record
    /// commits or rolls back with the caller's change. Holds the tenant's chain
    /// lock until that transaction ends, so keep it short.
    ///
    /// In a `REPEATABLE READ` or `SERIALIZABLE` transaction the head is read
    /// from the transaction's snapshot, so an append that committed after it was
    /// taken makes this one fail on the primary key: retry the transaction (the
    /// chain never forks).
    ///
    /// Outside a transaction the lock is released when the statement ends and
    /// concurrent appends could collide on the primary key (one fails; the chain
    /// never forks).
    ///
    /// # Errors
    /// [`Error::Database`], encoding errors.
    pub async fn append_in(conn: &mut PgConnection, event: &Event) -> Result<u64> {
        Ok(Self::append_in_with_link(conn, event).await?.0)
    }

    async fn append_in_with_link(conn: &mut PgConnection, event: &Event) -> Result<(u64, Link)> {
        let tenant = event.tenant().as_str();
        // One round trip: take the tenant's chain lock, then read the head
        // (a fresh snapshot after the lock, see `hisn_audit_lock_head`).
        let head = sqlx::query("SELECT seq, link FROM hisn_audit_lock_head($1)")
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await?;
        let (seq, prev) = Self::next_after(
            head.try_get::<Option<i64>, _>(0)?,
            head.try_get::<Option<Vec<u8>>, _>(1)?,
        )?;
        let record = encode_record(seq, event)?;
        let link = chain_link(tenant.as_bytes(), seq, &prev, &record_digest(&record));
        // One round trip for the record and its subject-index rows.
        sqlx::query(
            "WITH ins AS (INSERT INTO hisn_audit_log \
                 (tenant, seq, record, link, recorded_at, actor, action, entity_type, entity_id) \
                 VALUES ($1, $2, $3, $4, timestamptz 'epoch' + $5 * interval '1 microsecond', $6, $7, $8, $9) \
                 RETURNING tenant, seq) \
             INSERT INTO hisn_audit_subject (tenant, subject, seq) \
             SELECT ins.tenant, s, ins.seq FROM ins, unnest($10::text[]) AS s",
        )
        .bind(tenant)
        .bind(i64_of(seq)?)
        .bind(&record)
        .bind(&link.0[..])
        .bind(event.time().unix_micros())
        .bind(event.actor())
        .bind(event.action())
        .bind(event.entity_type())
        .bind(event.entity_id())
        .bind(event.subjects())
        .execute(&mut *conn)
        .await?;
        Ok((seq, link))
    }

    /// Append `events` in one transaction of its own (one commit for all of
    /// them); returns their sequence numbers, in order, once committed. Events
    /// may belong to several tenants: each tenant's lock is taken in sorted
    /// order (so concurrent batches cannot deadlock) and its records are chained
    /// in the order given.
    ///
    /// # Errors
    /// [`Error::Database`], encoding errors; on error nothing is appended.
    pub async fn append_batch(&self, events: &[Event]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let (seqs, heads) = Self::append_batch_with_heads(&mut tx, events).await?;
        tx.commit().await?;
        for (tenant, (next, link)) in heads {
            self.heads.lock().insert(tenant, (next, link));
        }
        Ok(seqs)
    }

    /// [`append_batch`](Self::append_batch) inside the caller's transaction
    /// (pass `&mut *tx`); the same rules as [`append_in`](Self::append_in).
    ///
    /// # Errors
    /// [`Error::Database`], encoding errors.
    pub async fn append_batch_in(conn: &mut PgConnection, events: &[Event]) -> Result<Vec<u64>> {
        Ok(Self::append_batch_with_heads(conn, events).await?.0)
    }

    async fn append_batch_with_heads(
        conn: &mut PgConnection,
        events: &[Event],
    ) -> Result<(Vec<u64>, Vec<(TenantId, (u64, Link))>)> {
        let mut tenants: Vec<&TenantId> = events.iter().map(Event::tenant).collect();
        tenants.sort();
        tenants.dedup();
        let mut heads: HashMap<&TenantId, (u64, Link)> = HashMap::with_capacity(tenants.len());
        for t in &tenants {
            let head = sqlx::query("SELECT seq, link FROM hisn_audit_lock_head($1)")
                .bind(t.as_str())
                .fetch_one(&mut *conn)
                .await?;
            let next = Self::next_after(
                head.try_get::<Option<i64>, _>(0)?,
                head.try_get::<Option<Vec<u8>>, _>(1)?,
            )?;
            heads.insert(t, next);
        }
        let n = events.len();
        let (mut c_tenant, mut c_seq, mut c_record, mut c_link, mut c_micros) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut c_actor, mut c_action, mut c_etype, mut c_eid) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut s_tenant, mut s_subject, mut s_seq) = (Vec::new(), Vec::new(), Vec::new());
        let mut seqs = Vec::with_capacity(n);
        for e in events {
            let t = e.tenant();
            let (seq, prev) = heads.get(t).copied().ok_or(Error::Closed)?;
            let record = encode_record(seq, e)?;
            let link = chain_link(t.as_str().as_bytes(), seq, &prev, &record_digest(&record));
            let next = seq.checked_add(1).ok_or(Error::SequenceExhausted)?;
            heads.insert(t, (next, link));
            let seq_i = i64_of(seq)?;
            for subject in e.subjects() {
                s_tenant.push(t.as_str());
                s_subject.push(subject.as_str());
                s_seq.push(seq_i);
            }
            c_tenant.push(t.as_str());
            c_seq.push(seq_i);
            c_record.push(record);
            c_link.push(link.0.to_vec());
            c_micros.push(e.time().unix_micros());
            c_actor.push(e.actor());
            c_action.push(e.action());
            c_etype.push(e.entity_type());
            c_eid.push(e.entity_id());
            seqs.push(seq);
        }
        // One round trip for every record and subject-index row (a data-modifying
        // CTE always runs to completion).
        sqlx::query(
            "WITH ins AS (INSERT INTO hisn_audit_log \
                 (tenant, seq, record, link, recorded_at, actor, action, entity_type, entity_id) \
                 SELECT t, s, r, l, timestamptz 'epoch' + m * interval '1 microsecond', a, ac, et, ei \
                 FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bigint[], \
                             $6::text[], $7::text[], $8::text[], $9::text[]) \
                      AS u(t, s, r, l, m, a, ac, et, ei)) \
             INSERT INTO hisn_audit_subject (tenant, subject, seq) \
             SELECT * FROM unnest($10::text[], $11::text[], $12::bigint[])",
        )
        .bind(&c_tenant)
        .bind(&c_seq)
        .bind(&c_record)
        .bind(&c_link)
        .bind(&c_micros)
        .bind(&c_actor)
        .bind(&c_action)
        .bind(&c_etype)
        .bind(&c_eid)
        .bind(&s_tenant)
        .bind(&s_subject)
        .bind(&s_seq)
        .execute(&mut *conn)
        .await?;
        let heads = heads.into_iter().map(|(t, h)| (t.clone(), h)).collect();
        Ok((seqs, heads))
    }

    /// Bounds of `tenant`'s chain: after a retention prune it starts at the
    /// newest prune point.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub async fn bounds(&self, tenant: &TenantId) -> Result<Bounds> {
        let mut conn = self.pool.acquire().await?;
        Self::bounds_on(&mut conn, tenant).await
    }

    async fn bounds_on(conn: &mut PgConnection, tenant: &TenantId) -> Result<Bounds> {
        let row = sqlx::query(
            "SELECT p.first_seq, p.start_prev, h.seq, h.link FROM (SELECT) AS one \
             LEFT JOIN LATERAL (SELECT first_seq, start_prev FROM hisn_audit_prune_point \
                 WHERE tenant = $1 ORDER BY first_seq DESC LIMIT 1) AS p ON true \
             LEFT JOIN LATERAL (SELECT seq, link FROM hisn_audit_log \
                 WHERE tenant = $1 ORDER BY seq DESC LIMIT 1) AS h ON true",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let (Some(last), Some(head)) = (
            row.try_get::<Option<i64>, _>(2)?,
            row.try_get::<Option<Vec<u8>>, _>(3)?,
        ) else {
            return Err(Error::NotFound);
        };
        // Without a prune point the chain starts at 0: rows missing from its
        // start were deleted some other way, and verification reports it.
        let (first_seq, start_prev) = match (
            row.try_get::<Option<i64>, _>(0)?,
            row.try_get::<Option<Vec<u8>>, _>(1)?,
        ) {
            (Some(first), Some(prev)) => (u64_of(first)?, link_of(&prev)?),
            _ => (0, Link::GENESIS),
        };
        Ok(Bounds {
            first_seq,
            start_prev,
            size: u64_of(last)?
                .checked_add(1)
                .ok_or(Error::SequenceExhausted)?,
            head: link_of(&head)?,
        })
    }

    /// Records `from..to` (by sequence number; missing rows are simply absent).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn read_range(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredRecord>> {
        let mut conn = self.pool.acquire().await?;
        Self::read_range_on(&mut conn, tenant, from, to).await
    }

    async fn read_range_on(
        conn: &mut PgConnection,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredRecord>> {
        let rows = sqlx::query("SELECT seq, record, link FROM hisn_audit_log WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq")
            .bind(tenant.as_str())
            .bind(i64_of(from.min(i64::MAX as u64))?)
            .bind(i64_of(to.min(i64::MAX as u64))?)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(stored_record).collect()
    }

    /// One page of records from `from` (inclusive) to `to` (exclusive), in
    /// order: the next rows held, whatever gaps lie between them.
    async fn read_page(
        conn: &mut PgConnection,
        tenant: &TenantId,
        from: u64,
        to: u64,
        page: Page,
    ) -> Result<Vec<StoredRecord>> {
        // The running sum stops a page at `page.bytes` of records without
        // detoasting them (octet_length of a bytea reads only its header).
        let rows = sqlx::query(
            "SELECT seq, record, link FROM ( \
                 SELECT seq, record, link, \
                        sum(octet_length(record)) OVER (ORDER BY seq) - octet_length(record) AS before \
                 FROM hisn_audit_log WHERE tenant = $1 AND seq >= $2 AND seq < $3 \
                 ORDER BY seq LIMIT $4) AS p \
             WHERE before < $5 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(i64_of(from)?)
        .bind(i64_of(to)?)
        .bind(page.rows)
        .bind(page.bytes)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(stored_record).collect()
    }

    /// Sign and keep a checkpoint of `tenant`'s current head.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub async fn checkpoint(
        &self,
        tenant: &TenantId,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<SignedCheckpoint> {
        let b = self.bounds(tenant).await?;
        let cp = key.sign(Checkpoint::new(tenant, b.size, b.head, now));
        sqlx::query("INSERT INTO hisn_audit_checkpoint (tenant, size, note) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant.as_str())
            .bind(i64_of(b.size)?)
            .bind(cp.to_note())
            .execute(&self.pool)
            .await?;
        Ok(cp)
    }

    /// Checkpoints kept in the database for `tenant`.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::Malformed`].
    pub async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        let mut conn = self.pool.acquire().await?;
        Self::checkpoints_on(&mut conn, tenant).await
    }

    async fn checkpoints_on(
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Vec<SignedCheckpoint>> {
        let notes: Vec<String> = sqlx::query_scalar(
            "SELECT note FROM hisn_audit_checkpoint WHERE tenant = $1 ORDER BY size",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await?;
        notes.iter().map(|n| SignedCheckpoint::parse(n)).collect()
    }

    /// Verify `tenant`'s whole chain (from its prune point, if any) against the
    /// stored checkpoints plus `extra`.
    ///
    /// Memory stays bounded: the chain is read from one snapshot in pages of at
    /// most 10,000 records or 8 MiB, hashed on a blocking thread while the next
    /// page is read, and reading stops at the first failure.
    ///
    /// # Errors
    /// [`Error::Database`]; damage is a verdict.
    pub async fn verify(
        &self,
        tenant: &TenantId,
        keys: Option<&TrustedKeys>,
        extra: &[SignedCheckpoint],
    ) -> Result<VerifyReport> {
        Ok(self.verify_paged(tenant, keys, extra, VERIFY_PAGE).await?.0)
    }

    /// [`verify`](Self::verify) with a page size; also returns the number of
    /// pages read.
    async fn verify_paged(
        &self,
        tenant: &TenantId,
        keys: Option<&TrustedKeys>,
        extra: &[SignedCheckpoint],
        page: Page,
    ) -> Result<(VerifyReport, u64)> {
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        let (start, from, size) = match Self::bounds_on(&mut tx, tenant).await {
            Ok(b) => (verify_start(&b), b.first_seq, b.size),
            Err(Error::NotFound) => (Start::Genesis, 0, 0),
            Err(e) => return Err(e),
        };
        let mut cps = Self::checkpoints_on(&mut tx, tenant).await?;
        cps.extend_from_slice(extra);
        // The verifier pulls records from an iterator; it runs on a blocking
        // thread and the iterator waits for the pages this task sends. When it
        // reaches a verdict early it drops the receiver and reading stops.
        let (pages, mut received) = mpsc::channel::<Vec<StoredRecord>>(VERIFY_QUEUE);
        let (owned_tenant, owned_keys) = (tenant.clone(), keys.cloned());
        let verifier = tokio::task::spawn_blocking(move || {
            let records = std::iter::from_fn(move || received.blocking_recv())
                .flatten()
                .map(Ok::<_, Error>);
            Verifier::new(&owned_tenant, &cps, owned_keys.as_ref()).verify_log(start, records)
        });
        let (mut next, mut read) = (from, 0u64);
        while next < size {
            let records = Self::read_page(&mut tx, tenant, next, size, page).await?;
            let Some(last) = records.last() else { break };
            next = last.seq.saturating_add(1);
            read += 1;
            if pages.send(records).await.is_err() {
                break;
            }
        }
        drop(pages);
        tx.commit().await?;
        Ok((join_blocking(verifier).await??, read))
    }

    /// Read and verify the prefix `first..=through` for export (step one of
    /// retention), from one snapshot. The records are returned in memory.
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the prefix is not held or does not verify;
    /// [`Error::NotFound`], [`Error::Database`].
    pub async fn export(&self, tenant: &TenantId, through: u64) -> Result<Export> {
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        let b = Self::bounds_on(&mut tx, tenant).await?;
        check_export_range(&b, through)?;
        let records = Self::read_range_on(&mut tx, tenant, b.first_seq, through + 1).await?;
        tx.commit().await?;
        let (start, owned_tenant) = (export_start(&b), tenant.clone());
        let (records, report) = join_blocking(tokio::task::spawn_blocking(move || {
            let report =
                Verifier::new(&owned_tenant, &[], None).verify_range(start, records.iter().map(Ok));
            (records, report)
        }))
        .await?;
        finish_export(tenant, &b, through, records, &report?)
    }

    /// Prune the exported prefix (step two of retention). In one transaction,
    /// holding the tenant's chain lock: check the receipt against the stored
    /// chain, append the prune record (range, count, boundary link, `actor`),
    /// record the new start and delete the prefix's rows (through
    /// `hisn_audit_prune_rows`). Returns the prune record's sequence number.
    ///
    /// Needs the table owner's connection: the application role may not
    /// execute the prune function (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::PruneRefused`] when the receipt does not match the stored chain
    /// (its first record is not the chain's first, its boundary is not the
    /// stored link of its last record, or that record is not held: already
    /// pruned, another store, a rewritten prefix); [`Error::NotFound`];
    /// [`Error::Database`] (also a role without EXECUTE on the prune function,
    /// or a deadlock with a transaction appending to several tenants: retry);
    /// encoding errors for `actor`. On error nothing changes.
    pub async fn prune(
        &self,
        receipt: &ExportReceipt,
        actor: &str,
        clock: &dyn Clock,
    ) -> Result<u64> {
        let event = prune_event(receipt, actor, clock)?;
        let tenant = &receipt.tenant;
        let mut tx = self.pool.begin().await?;
        // The tenant's chain lock, held to commit: no append or prune of this
        // tenant can come between the checks and the deletion.
        sqlx::query("SELECT seq FROM hisn_audit_lock_head($1)")
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let b = Self::bounds_on(&mut tx, tenant).await?;
        if receipt.first != b.first_seq {
            return Err(Error::PruneRefused {
                reason: "receipt does not start at the chain's first record",
            });
        }
        check_export_range(&b, receipt.through)?;
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT link FROM hisn_audit_log WHERE tenant = $1 AND seq = $2")
                .bind(tenant.as_str())
                .bind(i64_of(receipt.through)?)
                .fetch_optional(&mut *tx)
                .await?;
        if stored.as_deref() != Some(&receipt.boundary.0[..]) {
            return Err(Error::PruneRefused {
                reason: "boundary link does not match the stored chain",
            });
        }
        let (seq, link) = Self::append_in_with_link(&mut tx, &event).await?;
        sqlx::query("SELECT hisn_audit_prune_rows($1, $2, $3, $4)")
            .bind(tenant.as_str())
            .bind(i64_of(receipt.through)?)
            .bind(&receipt.boundary.0[..])
            .bind(i64_of(seq)?)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        self.remember(tenant, seq, link);
        Ok(seq)
    }

    /// The DSAR report for `subject`, through the subject index. After a prune
    /// the first remaining record's predecessor link comes from the prune point.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn subject_report(
        &self,
        tenant: &TenantId,
        subject: &str,
        keys: Option<&TrustedKeys>,
    ) -> Result<SubjectReport> {
        // Each record with its predecessor's link, in one query (one snapshot).
        let rows = sqlx::query(
            "SELECT l.seq, l.record, l.link, COALESCE(p.link, pp.start_prev) FROM hisn_audit_log l \
             LEFT JOIN hisn_audit_log p ON p.tenant = l.tenant AND p.seq = l.seq - 1 \
             LEFT JOIN hisn_audit_prune_point pp ON pp.tenant = l.tenant AND pp.first_seq = l.seq \
             WHERE l.tenant = $1 AND l.seq IN \
                 (SELECT s.seq FROM hisn_audit_subject s WHERE s.tenant = $1 AND s.subject = $2) \
             ORDER BY l.seq",
        )
        .bind(tenant.as_str())
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq = u64_of(r.try_get(0)?)?;
            let record: Vec<u8> = r.try_get(1)?;
            let (_, event) = crate::encoding::decode_record(&record)?;
            let prev = r
                .try_get::<Option<Vec<u8>>, _>(3)?
                .map_or(Ok(Link::GENESIS), |b| link_of(&b))?;
            entries.push(crate::store::ReportEntry {
                seq,
                event,
                record,
                prev_link: prev,
                link: link_of(&r.try_get::<Vec<u8>, _>(2)?)?,
                anchored: false,
            });
        }
        let checkpoint = match keys {
            Some(k) => self
                .checkpoints(tenant)
                .await?
                .into_iter()
                .filter(|c| c.verify(k).is_ok())
                .max_by_key(|c| c.checkpoint.size),
            None => None,
        };
        for e in &mut entries {
            e.anchored = checkpoint
                .as_ref()
                .is_some_and(|c| c.checkpoint.size > e.seq);
        }
        Ok(SubjectReport {
            tenant: tenant.clone(),
            subject: subject.to_owned(),
            entries,
            checkpoint,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::verify::Verdict;

    fn events(t: &TenantId, n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::builder(t, "u-1", "work_order.close")
                    .entity("work_order", &format!("wo-{i}"))
                    .subject("emp-1")
                    .build(&FakeClock::new(Timestamp::from_unix_micros(
                        1_764_000_000_000_000 + i,
                    )))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn migration_matches_the_rust_side() {
        // The function checks for the prune record by its action.
        assert!(MIGRATION.contains(&format!("l.action = '{}'", crate::verify::PRUNE_ACTION)));
        assert!(MIGRATION.contains(&format!("ON FUNCTION {PRUNE_FUNCTION} FROM PUBLIC")));
        let grant = grant_app_role_sql("app").unwrap();
        assert!(grant.contains(&format!(
            "REVOKE ALL ON FUNCTION {PRUNE_FUNCTION} FROM \"app\""
        )));
        assert!(grant.contains("GRANT SELECT ON hisn_audit_prune_point TO \"app\""));
        assert!(!grant.contains("GRANT EXECUTE"));
    }

    /// Paged verification gives exactly the one-page verdicts (checkpoint
    /// inside a page, truncation, pruned start whose prune record is on a later
    /// page) and finds a tampered record on the second page.
    #[tokio::test]
    async fn verify_reads_pages_and_stops_at_tamper_on_a_later_page() {
        let Some(db) = hisn_test_support::postgres("audit_pg_verify_pages").await else {
            return;
        };
        let pool = db.pool().await;
        PgStore::migrate(&pool).await.unwrap();
        let store = PgStore::new(pool.clone());
        let key = SigningKey::from_bytes("audit", &[1; 32]).unwrap();
        let mut keys = TrustedKeys::new();
        keys.add(key.verifying_key());
        let four = Page {
            rows: 4,
            bytes: i64::MAX,
        };
        let all = Page {
            rows: 1_000,
            bytes: i64::MAX,
        };
        let one_byte = Page {
            rows: 1_000,
            bytes: 1,
        };
        let run = |t: TenantId, page: Page| {
            let (store, keys) = (store.clone(), keys.clone());
            async move {
                store
                    .verify_paged(&t, Some(&keys), &[], page)
                    .await
                    .unwrap()
            }
        };

        // Intact chain with a checkpoint inside the second page.
        let a = TenantId::parse("acme").unwrap();
        let evs = events(&a, 12);
        store.append_batch(&evs[..5]).await.unwrap();
        store
            .checkpoint(&a, &key, Timestamp::from_unix_micros(1))
            .await
            .unwrap();
        store.append_batch(&evs[5..]).await.unwrap();
        let (whole, pages) = run(a.clone(), all).await;
        assert_eq!(pages, 1);
        assert_eq!(
            (whole.verdict, whole.seq, whole.size, whole.anchored_size),
            (Verdict::UnanchoredTail, Some(5), 12, 5)
        );
        let (paged, pages) = run(a.clone(), four).await;
        assert_eq!((paged, pages), (whole.clone(), 3));
        let (by_bytes, pages) = run(a.clone(), one_byte).await;
        assert_eq!((by_bytes, pages), (whole, 12), "the byte cap ends a page");

        // A record on the second page (seqs 4..8) altered by a superuser.
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(
            "ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change; \
             UPDATE hisn_audit_log SET record = set_byte(record, 40, get_byte(record, 40) # 1) \
                 WHERE tenant = 'acme' AND seq = 6; \
             ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change;",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let (whole, _) = run(a.clone(), all).await;
        assert_eq!((whole.verdict, whole.seq), (Verdict::Tampered, Some(6)));
        let (paged, pages) = run(a.clone(), four).await;
        assert!(pages >= 2, "read {pages} pages");
        assert_eq!(paged, whole);
        assert_eq!(store.verify(&a, Some(&keys), &[]).await.unwrap(), whole);

        // Truncation against a checkpoint, found after the last page.
        let b = TenantId::parse("beta").unwrap();
        store.append_batch(&events(&b, 10)).await.unwrap();
        store
            .checkpoint(&b, &key, Timestamp::from_unix_micros(1))
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(
            "ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change; \
             DELETE FROM hisn_audit_log WHERE tenant = 'beta' AND seq >= 7; \
             ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change;",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let (whole, _) = run(b.clone(), all).await;
        assert_eq!((whole.verdict, whole.seq), (Verdict::Truncated, Some(7)));
        assert_eq!(run(b.clone(), four).await, (whole, 2));

        // Pruned start: the prune record (seq 10) is on the second page.
        let c = TenantId::parse("gamma").unwrap();
        store.append_batch(&events(&c, 10)).await.unwrap();
        let export = store.export(&c, 2).await.unwrap();
        let clock = FakeClock::new(Timestamp::from_unix_micros(1_764_000_001_000_000));
        assert_eq!(
            store.prune(&export.receipt, "ops", &clock).await.unwrap(),
            10
        );
        let (whole, _) = run(c.clone(), all).await;
        assert_eq!(
            (whole.verdict, whole.verified_from, whole.size),
            (Verdict::UnanchoredTail, 3, 11)
        );
        assert_eq!(run(c.clone(), four).await, (whole, 2));
        drop(db);
    }
}
