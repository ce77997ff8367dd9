//! `PgKeyStore`: wrapped tenant keys in PostgreSQL (feature `postgres`).

use std::ops::Range;

use sqlx::postgres::PgPool;
use sqlx::{Acquire as _, Row as _};

use crate::error::{Error, Result};
use crate::format::KeyId;
use crate::store::{KeyStore, WrappedKey, reserved_end};
use crate::wrap::KeyPurpose;

/// The migration creating the tables (`hisn_vault_keys`, `hisn_vault_shredded`).
/// Idempotent. Also in `migrations/0001_hisn_vault_keys.sql`.
pub const MIGRATION: &str = include_str!("../migrations/0001_hisn_vault_keys.sql");

/// Wrapped tenant keys in PostgreSQL. Safe for several processes: inserts of a
/// first key race through `ON CONFLICT DO NOTHING` and a partial unique index
/// (one primary per tenant and purpose).
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    pool: PgPool,
}

fn db(op: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| {
        tracing::warn!(target: "hisn_crypto_vault", error = %e, op, "key store query failed");
        Error::Store(format!("{op} failed"))
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgKeyStore {
    /// A store over `pool`. Run [`PgKeyStore::migrate`] once (or apply the SQL with
    /// your migration tool).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Create the tables if they do not exist.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(MIGRATION)
            .execute(&self.pool)
            .await
            .map_err(db("migrate"))?;
        Ok(())
    }
}

impl KeyStore for PgKeyStore {
    async fn load(&self, tenant: &str) -> Result<Vec<WrappedKey>> {
        // One statement, so one snapshot: a shred (tombstone + delete in one
        // transaction) is seen entirely or not at all, never as "no keys".
        let rows = sqlx::query(
            "select s.shredded, k.purpose, k.key_id, k.is_primary, k.master_fingerprint, \
             k.wrapped, k.usage \
             from (select exists(select 1 from hisn_vault_shredded where tenant = $1) as shredded) s \
             left join hisn_vault_keys k on k.tenant = $1 \
             order by k.purpose, k.key_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(db("load"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let shredded: bool = r.try_get("shredded").map_err(db("load"))?;
            if shredded {
                return Err(Error::TenantShredded);
            }
            let purpose: Option<String> = r.try_get("purpose").map_err(db("load"))?;
            let Some(purpose) = purpose else {
                continue; // the tenant has no keys: the one row of the left join
            };
            let corrupt = || Error::Store("corrupt key row".into());
            let key_id: i64 = r.try_get("key_id").map_err(db("load"))?;
            let fp: Vec<u8> = r.try_get("master_fingerprint").map_err(db("load"))?;
            let usage: i64 = r.try_get("usage").map_err(db("load"))?;
            out.push(WrappedKey {
                tenant: tenant.to_owned(),
                purpose: KeyPurpose::parse(&purpose).ok_or_else(corrupt)?,
                key_id: KeyId(u32::try_from(key_id).map_err(|_| corrupt())?),
                primary: r.try_get("is_primary").map_err(db("load"))?,
                master_fingerprint: fp.try_into().map_err(|_| corrupt())?,
                wrapped: r.try_get("wrapped").map_err(db("load"))?,
                usage: u64::try_from(usage).map_err(|_| corrupt())?,
            });
        }
        Ok(out)
    }

    async fn insert(&self, key: &WrappedKey) -> Result<bool> {
        let mut conn = self.pool.acquire().await.map_err(db("insert"))?;
        let mut tx = conn.begin().await.map_err(db("insert"))?;
        let shredded = sqlx::query("select 1 from hisn_vault_shredded where tenant = $1 for share")
            .bind(&key.tenant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("insert"))?;
        if shredded.is_some() {
            return Err(Error::TenantShredded);
        }
        let res = sqlx::query(
            "insert into hisn_vault_keys (tenant, purpose, key_id, is_primary, master_fingerprint, wrapped, usage) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
        )
        .bind(&key.tenant)
        .bind(key.purpose.as_str())
        .bind(i64::from(key.key_id.0))
        .bind(key.primary)
        .bind(key.master_fingerprint.as_slice())
        .bind(key.wrapped.as_slice())
        .bind(i64_of(key.usage))
        .execute(&mut *tx)
        .await
        .map_err(db("insert"))?;
        tx.commit().await.map_err(db("insert"))?;
        Ok(res.rows_affected() == 1)
    }

    async fn set_primary(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db("set_primary"))?;
        let mut tx = conn.begin().await.map_err(db("set_primary"))?;
        let exists = sqlx::query("select 1 from hisn_vault_keys where tenant = $1 and purpose = $2 and key_id = $3 for update")
            .bind(tenant)
            .bind(purpose.as_str())
            .bind(i64::from(key_id.0))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("set_primary"))?;
        if exists.is_none() {
            return Err(Error::UnknownKey);
        }
        sqlx::query("update hisn_vault_keys set is_primary = false where tenant = $1 and purpose = $2 and is_primary")
            .bind(tenant)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db("set_primary"))?;
        sqlx::query("update hisn_vault_keys set is_primary = true where tenant = $1 and purpose = $2 and key_id = $3")
            .bind(tenant)
            .bind(purpose.as_str())
            .bind(i64::from(key_id.0))
            .execute(&mut *tx)
            .await
            .map_err(db("set_primary"))?;
        tx.commit().await.map_err(db("set_primary"))?;
        Ok(())
    }

    async fn rewrap(&self, key: &WrappedKey) -> Result<()> {
        let res = sqlx::query(
            "update hisn_vault_keys set wrapped = $4, master_fingerprint = $5 \
             where tenant = $1 and purpose = $2 and key_id = $3",
        )
        .bind(&key.tenant)
        .bind(key.purpose.as_str())
        .bind(i64::from(key.key_id.0))
        .bind(key.wrapped.as_slice())
        .bind(key.master_fingerprint.as_slice())
        .execute(&self.pool)
        .await
        .map_err(db("rewrap"))?;
        if res.rows_affected() == 0 {
            return Err(Error::UnknownKey);
        }
        Ok(())
    }

    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> Result<()> {
        sqlx::query(
            "update hisn_vault_keys set usage = greatest(usage, $4) \
             where tenant = $1 and purpose = $2 and key_id = $3",
        )
        .bind(tenant)
        .bind(purpose.as_str())
        .bind(i64::from(key_id.0))
        .bind(i64_of(usage))
        .execute(&self.pool)
        .await
        .map_err(db("record_usage"))?;
        Ok(())
    }

    /// One transaction: the key's row is locked (`for update`) while its
    /// usage is read and raised, so reservations of several processes are
    /// serialised by the database and never overlap.
    async fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> Result<Range<u64>> {
        let mut conn = self.pool.acquire().await.map_err(db("reserve_usage"))?;
        let mut tx = conn.begin().await.map_err(db("reserve_usage"))?;
        let usage: i64 = sqlx::query_scalar(
            "select usage from hisn_vault_keys \
             where tenant = $1 and purpose = $2 and key_id = $3 for update",
        )
        .bind(tenant)
        .bind(purpose.as_str())
        .bind(i64::from(key_id.0))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reserve_usage"))?
        .ok_or(Error::UnknownKey)?;
        let u = u64::try_from(usage).map_err(|_| Error::Store("corrupt key row".into()))?;
        let end = reserved_end(u, n, cap);
        if end == u {
            // Nothing to reserve: the row lock goes with the rollback on drop.
            return Ok(u..u);
        }
        sqlx::query(
            "update hisn_vault_keys set usage = $4 \
             where tenant = $1 and purpose = $2 and key_id = $3",
        )
        .bind(tenant)
        .bind(purpose.as_str())
        .bind(i64::from(key_id.0))
        .bind(i64_of(end))
        .execute(&mut *tx)
        .await
        .map_err(db("reserve_usage"))?;
        tx.commit().await.map_err(db("reserve_usage"))?;
        Ok(u..end)
    }

    async fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> Result<()> {
        // One statement: atomic against concurrent reservations.
        sqlx::query(
            "update hisn_vault_keys set usage = greatest(usage - $4, 0) \
             where tenant = $1 and purpose = $2 and key_id = $3",
        )
        .bind(tenant)
        .bind(purpose.as_str())
        .bind(i64::from(key_id.0))
        .bind(i64_of(n))
        .execute(&self.pool)
        .await
        .map_err(db("release_usage"))?;
        Ok(())
    }

    async fn delete(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        let row = sqlx::query("select is_primary from hisn_vault_keys where tenant = $1 and purpose = $2 and key_id = $3")
            .bind(tenant)
            .bind(purpose.as_str())
            .bind(i64::from(key_id.0))
            .fetch_optional(&self.pool)
            .await
            .map_err(db("delete"))?
            .ok_or(Error::UnknownKey)?;
        let primary: bool = row.try_get("is_primary").map_err(db("delete"))?;
        if primary {
            return Err(Error::InvalidConfig(
                "the primary key cannot be deleted; rotate first",
            ));
        }
        sqlx::query("delete from hisn_vault_keys where tenant = $1 and purpose = $2 and key_id = $3 and not is_primary")
            .bind(tenant)
            .bind(purpose.as_str())
            .bind(i64::from(key_id.0))
            .execute(&self.pool)
            .await
            .map_err(db("delete"))?;
        Ok(())
    }

    async fn shred(&self, tenant: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db("shred"))?;
        let mut tx = conn.begin().await.map_err(db("shred"))?;
        sqlx::query("insert into hisn_vault_shredded (tenant) values ($1) on conflict do nothing")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(db("shred"))?;
        sqlx::query("delete from hisn_vault_keys where tenant = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(db("shred"))?;
        tx.commit().await.map_err(db("shred"))?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("select distinct tenant from hisn_vault_keys order by tenant")
            .fetch_all(&self.pool)
            .await
            .map_err(db("tenants"))?;
        rows.iter()
            .map(|r| r.try_get("tenant").map_err(db("tenants")))
            .collect()
    }
}
