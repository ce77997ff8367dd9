//! Retention: export a verified prefix, prune it through the owner's function.

use super::*;

impl PgStore {
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
    /// execute the prune function (see the [module docs](super)).
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
}
