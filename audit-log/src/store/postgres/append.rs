//! Appending: one statement in the common case, batches, the caller's transaction.

use sqlx::Connection as _;

use super::*;

/// How a caller's connection stands (see [`PgStore::caller_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallerMode {
    /// In a `READ COMMITTED` transaction.
    ReadCommitted,
    /// Outside any transaction.
    Autocommit,
    /// In a `REPEATABLE READ` or `SERIALIZABLE` transaction.
    Snapshot,
}

impl PgStore {
    /// Append in a transaction of its own; returns the sequence number once committed.
    ///
    /// # Errors
    /// [`Error::Database`], encoding errors.
    pub async fn append(&self, event: &Event) -> Result<u64> {
        check_columns(event)?;
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
        // READ COMMITTED whatever the server's default: the head is read after the lock.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
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

    pub(super) fn remember(&self, tenant: &TenantId, seq: u64, link: Link) {
        if let Some(next) = seq.checked_add(1) {
            self.heads.lock().insert(tenant.clone(), (next, link));
        }
    }

    /// One statement in a transaction of its own: append `event` as record
    /// `seq` after `prev` if that is still the head. `Ok(Ok(link))` once
    /// committed, `Ok(Err((next seq, head)))` when the head moved (nothing written).
    pub(super) async fn append_if_head(
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
        .bind(event.subject_keys())
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
    pub(super) fn next_after(seq: Option<i64>, link: Option<Vec<u8>>) -> Result<(u64, Link)> {
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
    /// - In a `READ COMMITTED` transaction the head is read after the chain
    ///   lock is granted (a fresh snapshot), so concurrent callers are
    ///   serialised by the lock and every append commits.
    /// - On a connection outside any transaction (autocommit), the append runs
    ///   in a short `READ COMMITTED` transaction of its own on that
    ///   connection, so the lock covers both the head read and the insert.
    /// - In a `REPEATABLE READ` or `SERIALIZABLE` transaction it is refused
    ///   with [`Error::IsolationLevel`] before anything is locked or written:
    ///   the transaction's snapshot predates the lock, so the head it could
    ///   read may be stale, and under contention the append could fail on
    ///   every retry. Use [`append_in_tx`](Self::append_in_tx) there.
    ///
    /// # Errors
    /// [`Error::IsolationLevel`], [`Error::Database`], encoding errors.
    pub async fn append_in(conn: &mut PgConnection, event: &Event) -> Result<u64> {
        check_columns(event)?;
        match Self::caller_mode(conn).await? {
            CallerMode::ReadCommitted => Ok(Self::append_in_with_link(conn, event).await?.0),
            CallerMode::Autocommit => {
                let mut tx = conn
                    .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?;
                let appended = Self::append_in_with_link(&mut tx, event).await?;
                tx.commit().await?;
                Ok(appended.0)
            }
            CallerMode::Snapshot => Err(Error::IsolationLevel),
        }
    }

    /// Where a caller's connection stands: in a transaction (at which
    /// isolation level) or not. One round trip; nothing is locked.
    ///
    /// Root cause of `append_in` starving: it took the chain lock and read the
    /// head in whatever the caller had. In `REPEATABLE READ` / `SERIALIZABLE`
    /// the head came from a snapshot older than the lock (stale after every
    /// wait, so retries failed again and again), and on an autocommit
    /// connection the lock ended with its statement, before the insert.
    pub(super) async fn caller_mode(conn: &mut PgConnection) -> Result<CallerMode> {
        // `statement_timestamp() = transaction_timestamp()` holds exactly in
        // the first statement of a transaction: for a statement that is not
        // BEGIN, that means an implicit (autocommit) transaction. Sent as a
        // simple query (one message): in the extended protocol the statement
        // time is taken again at Bind/Execute, after the transaction began.
        let row = sqlx::raw_sql(
            "SELECT current_setting('transaction_isolation'), \
                    statement_timestamp() = transaction_timestamp()",
        )
        .fetch_one(&mut *conn)
        .await?;
        let isolation: String = row.try_get(0)?;
        let first: bool = row.try_get(1)?;
        Ok(if first && !conn.is_in_transaction() {
            CallerMode::Autocommit
        } else if isolation == "read committed" {
            CallerMode::ReadCommitted
        } else {
            CallerMode::Snapshot
        })
    }

    /// Append inside the caller's transaction (pass `&mut *tx`) at any
    /// isolation level, without retries under contention.
    ///
    /// A `REPEATABLE READ` or `SERIALIZABLE` transaction's snapshot is taken
    /// at its first statement, before the tenant's chain lock is granted, so
    /// [`append_in`](Self::append_in) would read a head that is stale by the
    /// time it holds the lock, fail on the primary key, and, retried under
    /// contention, could fail again and again. This method takes the lock in
    /// the caller's transaction and then reads the head on another connection
    /// (a fresh snapshot: the lock makes it exact, since
    /// no other append of the tenant can commit until the caller's
    /// transaction ends); that read uses a small pool of the store's own, never
    /// one of the caller's connections. In `READ COMMITTED` it costs one round
    /// trip more than `append_in`.
    /// A `SERIALIZABLE` transaction may still fail with a serialization error
    /// for its other reads; retry it as usual.
    ///
    /// # Errors
    /// [`Error::Database`], encoding errors.
    pub async fn append_in_tx(&self, conn: &mut PgConnection, event: &Event) -> Result<u64> {
        check_columns(event)?;
        let tenant = event.tenant().as_str();
        let lock = sqlx::query(
            "SELECT current_setting('transaction_isolation'),                     pg_advisory_xact_lock(hashtextextended('hisn-audit-log/' || $1, 0))::text",
        )
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        let isolation: String = lock.try_get(0)?;
        let head_sql =
            "SELECT seq, link FROM hisn_audit_log WHERE tenant = $1 ORDER BY seq DESC LIMIT 1";
        let head: Option<PgRow> = if isolation == "read committed" {
            // A new statement in READ COMMITTED takes a fresh snapshot.
            sqlx::query(head_sql)
                .bind(tenant)
                .fetch_optional(&mut *conn)
                .await?
        } else {
            sqlx::query(head_sql)
                .bind(tenant)
                .fetch_optional(self.head_pool())
                .await?
        };
        let (seq, prev) = match head {
            Some(h) => Self::next_after(h.try_get(0)?, h.try_get(1)?)?,
            None => (0, Link::GENESIS),
        };
        Self::insert_chained(conn, event, seq, &prev)
            .await
            .map(|(s, _)| s)
    }

    pub(super) async fn append_in_with_link(
        conn: &mut PgConnection,
        event: &Event,
    ) -> Result<(u64, Link)> {
        check_columns(event)?;
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
        Self::insert_chained(conn, event, seq, &prev).await
    }

    /// Insert `event` as record `seq` after `prev` (the caller holds the lock).
    async fn insert_chained(
        conn: &mut PgConnection,
        event: &Event,
        seq: u64,
        prev: &Link,
    ) -> Result<(u64, Link)> {
        let tenant = event.tenant().as_str();
        let record = encode_record(seq, event)?;
        let link = chain_link(tenant.as_bytes(), seq, prev, &record_digest(&record));
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
        .bind(event.subject_keys())
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
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
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
    /// [`Error::IsolationLevel`], [`Error::Database`], encoding errors.
    pub async fn append_batch_in(conn: &mut PgConnection, events: &[Event]) -> Result<Vec<u64>> {
        for e in events {
            check_columns(e)?;
        }
        match Self::caller_mode(conn).await? {
            CallerMode::ReadCommitted => Ok(Self::append_batch_with_heads(conn, events).await?.0),
            CallerMode::Autocommit => {
                let mut tx = conn
                    .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?;
                let seqs = Self::append_batch_with_heads(&mut tx, events).await?.0;
                tx.commit().await?;
                Ok(seqs)
            }
            CallerMode::Snapshot => Err(Error::IsolationLevel),
        }
    }

    pub(super) async fn append_batch_with_heads(
        conn: &mut PgConnection,
        events: &[Event],
    ) -> Result<(Vec<u64>, Vec<(TenantId, (u64, Link))>)> {
        // Nothing is sent unless every event is acceptable.
        // (Each event is encoded below before the one INSERT is sent.)
        for e in events {
            check_columns(e)?;
        }
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
            for subject in e.subject_keys() {
                s_tenant.push(t.as_str());
                s_subject.push(subject);
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
}
