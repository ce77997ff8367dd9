//! Reading: bounds, ranges, checkpoints, paged verification, DSAR reports.

use super::*;
use crate::verify::Verdict;

impl PgStore {
    /// Bounds of `tenant`'s chain: after a retention prune it starts at the
    /// newest prune point.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub async fn bounds(&self, tenant: &TenantId) -> Result<Bounds> {
        let mut conn = self.pool.acquire().await?;
        Self::bounds_on(&mut conn, tenant).await
    }

    pub(super) async fn bounds_on(conn: &mut PgConnection, tenant: &TenantId) -> Result<Bounds> {
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

    pub(super) async fn read_range_on(
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
    pub(super) async fn read_page(
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

    /// Checkpoints kept in the database for `tenant`.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::Malformed`].
    pub async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<SignedCheckpoint>> {
        let mut conn = self.pool.acquire().await?;
        Self::checkpoints_on(&mut conn, tenant).await
    }

    pub(super) async fn checkpoints_on(
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Vec<SignedCheckpoint>> {
        let notes: Vec<String> = sqlx::query_scalar(
            "SELECT note FROM hisn_audit_checkpoint WHERE tenant = $1 ORDER BY size",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await?;
        // Any role that may INSERT here can add a note: a malformed one is
        // skipped (with a warning), never fatal to verification.
        Ok(crate::checkpoint::parse_notes(
            notes.iter().map(String::as_str),
        ))
    }

    /// Tenants with a checkpoint in the store (their chains may be gone: a
    /// verifier compares this with the tenants that still have records).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn checkpoint_tenants(&self) -> Result<Vec<TenantId>> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tenant FROM hisn_audit_checkpoint ORDER BY tenant")
                .fetch_all(&self.pool)
                .await?;
        Ok(names
            .iter()
            .filter_map(|n| TenantId::parse(n).ok())
            .collect())
    }

    /// Verify `tenant`'s whole chain (from its prune point, if any) against the
    /// stored checkpoints (untrusted: a bad one is skipped) and `extra`
    /// (checkpoints the caller holds elsewhere: a bad one is a verdict).
    ///
    /// Memory stays bounded: the chain is read from one snapshot in pages of at
    /// most 10,000 records or 8 MiB, hashed on a blocking thread while the next
    /// page is read; reading goes on past a break so every broken range is
    /// reported.
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
    pub(super) async fn verify_paged(
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
        let cps = Self::checkpoints_on(&mut tx, tenant).await?;
        let anchors = extra.to_vec();
        // The verifier pulls records from an iterator; it runs on a blocking
        // thread and the iterator waits for the pages this task sends. When it
        // reaches a verdict early it drops the receiver and reading stops.
        let (pages, mut received) = mpsc::channel::<Vec<StoredRecord>>(VERIFY_QUEUE);
        let (owned_tenant, owned_keys) = (tenant.clone(), keys.cloned());
        let verifier = tokio::task::spawn_blocking(move || {
            let records = std::iter::from_fn(move || received.blocking_recv())
                .flatten()
                .map(Ok::<_, Error>);
            Verifier::new(&owned_tenant, &cps, owned_keys.as_ref())
                .anchors(&anchors)
                .verify_log(start, records)
        });
        let (mut next, mut read) = (from, 0u64);
        let mut disagree: Option<u64> = None;
        while next < size {
            let records = Self::read_page(&mut tx, tenant, next, size, page).await?;
            let Some(last) = records.last() else { break };
            next = last.seq.saturating_add(1);
            read += 1;
            if disagree.is_none() {
                disagree = Self::columns_disagree(&mut tx, tenant, &records).await?;
            }
            if pages.send(records).await.is_err() {
                break;
            }
        }
        drop(pages);
        if disagree.is_none() {
            // Index rows for records that do not exist (past the head or
            // before the start) name nothing: they are forged.
            let stray: Option<i64> = sqlx::query_scalar(
                "SELECT min(seq) FROM hisn_audit_subject WHERE tenant = $1 AND (seq >= $2 OR seq < $3)",
            )
            .bind(tenant.as_str())
            .bind(i64_of(size)?)
            .bind(i64_of(from)?)
            .fetch_one(&mut *tx)
            .await?;
            disagree = stray.and_then(|s| u64::try_from(s).ok());
        }
        tx.commit().await?;
        let mut report = join_blocking(verifier).await??;
        if let Some(seq) = disagree {
            tracing::warn!(tenant = %tenant, seq, "audit store: queryable columns or subject index disagree with the hashed record");
            report.breaks.push(crate::verify::BrokenRange {
                first: seq,
                last: seq,
                verdict: Verdict::Tampered,
            });
            report.breaks.sort_by_key(|b| b.first);
            // The chain's own first break stays the headline; this one is listed.
            if report.verdict.is_ok() {
                report.verdict = Verdict::Tampered;
                report.seq = Some(seq);
            }
        }
        Ok((report, read))
    }

    /// The first record of `records` whose queryable columns (time, actor,
    /// action, entity) or subject-index rows differ from what its hashed
    /// bytes say. The chain covers only the bytes; a query or a DSAR report
    /// that trusts the columns must be able to rely on them too.
    pub(super) async fn columns_disagree(
        conn: &mut PgConnection,
        tenant: &TenantId,
        records: &[StoredRecord],
    ) -> Result<Option<u64>> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(None);
        };
        let (lo, hi) = (i64_of(first.seq)?, i64_of(last.seq)?);
        let rows = sqlx::query(
            "SELECT seq, (extract(epoch FROM recorded_at) * 1000000)::bigint, actor, action, entity_type, entity_id \
             FROM hisn_audit_log WHERE tenant = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut *conn)
        .await?;
        let subjects: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, subject FROM hisn_audit_subject WHERE tenant = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq, subject",
        )
        .bind(tenant.as_str())
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_seq: HashMap<i64, Vec<String>> = HashMap::new();
        for (seq, subject) in subjects {
            by_seq.entry(seq).or_default().push(subject);
        }
        for (r, row) in records.iter().zip(&rows) {
            let Ok((_, e)) = crate::encoding::decode_record(&r.bytes) else {
                continue; // The verifier names an undecodable record.
            };
            let seq: i64 = row.try_get(0)?;
            let micros: i64 = row.try_get(1)?;
            let same = u64_of(seq)? == r.seq
                && micros == e.time().unix_micros()
                && row.try_get::<&str, _>(2)? == e.actor()
                && row.try_get::<&str, _>(3)? == e.action()
                && row.try_get::<&str, _>(4)? == e.entity_type()
                && row.try_get::<&str, _>(5)? == e.entity_id();
            let mut want: Vec<String> = e.subject_keys().into_iter().map(str::to_owned).collect();
            want.sort();
            let mut got = by_seq.remove(&seq).unwrap_or_default();
            got.sort();
            if !same || want != got {
                return Ok(Some(r.seq));
            }
        }
        // Index rows for seqs this page does not hold (a gap in the records is
        // the verifier's to name).
        Ok(by_seq.keys().min().and_then(|s| u64::try_from(*s).ok()))
    }

    /// The DSAR report for `subject`: index hits whose decoded record names
    /// the subject, each proven against a verified checkpoint or marked
    /// unproven (see [`SubjectReport`]). Everything is read from one snapshot.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn subject_report(
        &self,
        tenant: &TenantId,
        subject: &str,
        keys: Option<&TrustedKeys>,
    ) -> Result<SubjectReport> {
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        let cps = match keys {
            Some(_) => Self::checkpoints_on(&mut tx, tenant).await?,
            None => Vec::new(),
        };
        let b = match Self::bounds_on(&mut tx, tenant).await {
            Ok(b) => b,
            Err(Error::NotFound) => Bounds::EMPTY,
            Err(e) => return Err(e),
        };
        let rows = sqlx::query(
            "SELECT l.seq, l.record, l.link FROM hisn_audit_log l \
             WHERE l.tenant = $1 AND l.seq IN \
                 (SELECT s.seq FROM hisn_audit_subject s WHERE s.tenant = $1 AND s.subject = $2) \
             ORDER BY l.seq",
        )
        .bind(tenant.as_str())
        .bind(subject)
        .fetch_all(&mut *tx)
        .await?;
        let candidates: Vec<StoredRecord> =
            rows.iter().map(stored_record).collect::<Result<_>>()?;
        let seqs: Vec<u64> = candidates.iter().map(|r| r.seq).collect();
        let plan = crate::store::ReportPlan::new(tenant, keys, &cps, &b, &seqs);
        let mut ranges = Vec::new();
        for (from, to) in plan.ranges() {
            let records = Self::read_range_on(&mut tx, tenant, from, to).await?;
            ranges.push(records.into_iter().map(Ok).collect());
        }
        // No persisted tree here: the Merkle paths come from the records'
        // leaf hashes, read in the same snapshot (`O(size)`).
        let merkle = match plan.merkle_size() {
            Some(size) => {
                let records = Self::read_range_on(&mut tx, tenant, 0, size).await?;
                plan.prove_merkle_from_records(&records, subject)?
            }
            None => crate::store::plan::MerkleInput::default(),
        };
        tx.commit().await?;
        plan.finish(
            subject,
            candidates.into_iter().map(Ok).collect(),
            ranges,
            merkle,
        )
    }
}
