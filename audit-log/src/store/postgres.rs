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

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{AssertSqlSafe, Row as _};

use crate::chain::{Link, chain_link, record_digest};
use crate::checkpoint::{Checkpoint, SignedCheckpoint, SigningKey, TrustedKeys};
use crate::clock::Timestamp;
use crate::encoding::encode_record;
use crate::error::{Error, Result, malformed};
use crate::event::{Event, TenantId};
use crate::store::{Bounds, SubjectReport};
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
    FOREACH t IN ARRAY ARRAY['hisn_audit_log', 'hisn_audit_subject', 'hisn_audit_checkpoint'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION hisn_audit_refuse()', t || '_no_change', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_change');
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION hisn_audit_refuse()', t || '_no_truncate', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
    END LOOP;
END $$;
";

/// SQL granting `role` SELECT and INSERT only on the audit tables (UPDATE,
/// DELETE and TRUNCATE revoked). `role` must match `[a-z_][a-z0-9_]{0,62}`.
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
    Ok([
        "hisn_audit_log",
        "hisn_audit_subject",
        "hisn_audit_checkpoint",
    ]
    .iter()
    .map(|t| {
        format!("REVOKE ALL ON {t} FROM \"{role}\"; GRANT SELECT, INSERT ON {t} TO \"{role}\";\n")
    })
    .collect())
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

    /// Bounds of `tenant`'s chain.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub async fn bounds(&self, tenant: &TenantId) -> Result<Bounds> {
        let row = sqlx::query(
            "SELECT (SELECT seq FROM hisn_audit_log WHERE tenant = $1 ORDER BY seq ASC LIMIT 1), \
                    (SELECT seq FROM hisn_audit_log WHERE tenant = $1 ORDER BY seq DESC LIMIT 1), \
                    (SELECT link FROM hisn_audit_log WHERE tenant = $1 ORDER BY seq DESC LIMIT 1)",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await?;
        let (Some(first), Some(last), Some(head)) = (
            row.try_get::<Option<i64>, _>(0)?,
            row.try_get::<Option<i64>, _>(1)?,
            row.try_get::<Option<Vec<u8>>, _>(2)?,
        ) else {
            return Err(Error::NotFound);
        };
        // Rows are never pruned in PostgreSQL: a chain that does not start at 0
        // lost its first rows, which verification reports.
        let _ = first;
        Ok(Bounds {
            first_seq: 0,
            start_prev: Link::GENESIS,
            size: u64_of(last)? + 1,
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
        let rows = sqlx::query("SELECT seq, record, link FROM hisn_audit_log WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq")
            .bind(tenant.as_str())
            .bind(i64_of(from)?)
            .bind(i64_of(to.min(i64::MAX as u64))?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredRecord {
                    seq: u64_of(r.try_get(0)?)?,
                    bytes: r.try_get(1)?,
                    link: link_of(&r.try_get::<Vec<u8>, _>(2)?)?,
                })
            })
            .collect()
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
        let notes: Vec<String> = sqlx::query_scalar(
            "SELECT note FROM hisn_audit_checkpoint WHERE tenant = $1 ORDER BY size",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        notes.iter().map(|n| SignedCheckpoint::parse(n)).collect()
    }

    /// Verify `tenant`'s whole chain (loads it into memory).
    ///
    /// # Errors
    /// [`Error::Database`]; damage is a verdict.
    pub async fn verify(
        &self,
        tenant: &TenantId,
        keys: Option<&TrustedKeys>,
        extra: &[SignedCheckpoint],
    ) -> Result<VerifyReport> {
        let size = match self.bounds(tenant).await {
            Ok(b) => b.size,
            Err(Error::NotFound) => 0,
            Err(e) => return Err(e),
        };
        let mut cps = self.checkpoints(tenant).await?;
        cps.extend_from_slice(extra);
        let records = self.read_range(tenant, 0, size).await?;
        Verifier::new(tenant, &cps, keys).verify_log(Start::Genesis, records.iter().map(Ok))
    }

    /// The DSAR report for `subject`, through the subject index.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn subject_report(
        &self,
        tenant: &TenantId,
        subject: &str,
        keys: Option<&TrustedKeys>,
    ) -> Result<SubjectReport> {
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM hisn_audit_subject WHERE tenant = $1 AND subject = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        let seqs: Vec<u64> = seqs.into_iter().map(u64_of).collect::<Result<_>>()?;
        // Each record with its predecessor's link, in one query.
        let rows = sqlx::query(
            "SELECT l.seq, l.record, l.link, p.link FROM hisn_audit_log l \
             LEFT JOIN hisn_audit_log p ON p.tenant = l.tenant AND p.seq = l.seq - 1 \
             WHERE l.tenant = $1 AND l.seq = ANY($2::bigint[]) ORDER BY l.seq",
        )
        .bind(tenant.as_str())
        .bind(
            seqs.iter()
                .map(|s| i64_of(*s))
                .collect::<Result<Vec<_>>>()?,
        )
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
