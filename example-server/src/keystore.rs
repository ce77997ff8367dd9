//! Where the tenant data keys (wrapped under the master key) live: the data
//! directory in the embedded mode, PostgreSQL in PostgreSQL mode, so every
//! instance encrypts and decrypts a tenant's fields with the same keys and a
//! crypto-shred on one instance holds on all.
//!
//! # Crypto-shredding across instances
//!
//! crypto-vault's [`Vault`] keeps each tenant's unwrapped keyring in a cache
//! and, on a hit, does not read the store again: after instance A shreds a
//! tenant, instance B would go on encrypting and decrypting with the keys it
//! cached. [`TenantVault`] closes that in PostgreSQL mode: before every use
//! of a tenant's keys it reads crypto-vault's shred marker
//! (`hisn_vault_shredded`, written in the same transaction that deletes the
//! keys), and on a marker drops the cached keyring and refuses
//! ([`hisn_crypto_vault::Error::TenantShredded`]); the vault then caches the
//! tenant as shredded. Once A's erase has returned, B refuses the tenant's
//! keys on its next use, with no time window. The cost is one indexed read
//! per encryption or decryption, on the platform pool (the platform role,
//! which needs SELECT on the marker table; the shred itself needs INSERT,
//! both granted by the migration; the application role, under which tenant
//! transactions run, holds no privilege on the key tables). The embedded mode has one instance, whose
//! vault learns of its own shreds at once: no read there.

use hisn_crypto_vault::{
    Ciphertext, DirKeyStore, FieldContext, KeyId, KeyPurpose, KeyStore, PgKeyStore, Plaintext,
    Vault, WrappedKey,
};
use sqlx::PgPool;

type R<T> = hisn_crypto_vault::Result<T>;

/// The tenant key store of the configured mode.
#[derive(Debug)]
pub enum TenantKeys {
    /// `<data-dir>/tenant-keys` (one instance).
    Dir(DirKeyStore),
    /// `hisn_vault_keys` / `hisn_vault_shredded` (shared by the instances).
    Pg(PgKeyStore),
}

/// Forward one `KeyStore` call to the store in use.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Self::Dir($s) => $call.await,
            Self::Pg($s) => $call.await,
        }
    };
}

impl KeyStore for TenantKeys {
    async fn load(&self, tenant: &str) -> R<Vec<WrappedKey>> {
        each!(self, s => s.load(tenant))
    }

    async fn insert(&self, key: &WrappedKey) -> R<bool> {
        each!(self, s => s.insert(key))
    }

    async fn set_primary(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> R<()> {
        each!(self, s => s.set_primary(tenant, purpose, key_id))
    }

    async fn rewrap(&self, key: &WrappedKey) -> R<()> {
        each!(self, s => s.rewrap(key))
    }

    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> R<()> {
        each!(self, s => s.record_usage(tenant, purpose, key_id, usage))
    }

    // Forwarded, not left to the trait's defaults: the stores reserve
    // atomically (a row lock, a file lock), so the usage cap holds across
    // every instance; the default is exact only within one process.
    async fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> R<std::ops::Range<u64>> {
        each!(self, s => s.reserve_usage(tenant, purpose, key_id, n, cap))
    }

    async fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> R<()> {
        each!(self, s => s.release_usage(tenant, purpose, key_id, n))
    }

    async fn delete(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> R<()> {
        each!(self, s => s.delete(tenant, purpose, key_id))
    }

    async fn shred(&self, tenant: &str) -> R<()> {
        each!(self, s => s.shred(tenant))
    }

    async fn tenants(&self) -> R<Vec<String>> {
        each!(self, s => s.tenants())
    }
}

/// The server's vault: crypto-vault's [`Vault`] over [`TenantKeys`], with the
/// cross-instance shred check of PostgreSQL mode (see the module docs).
#[derive(Debug)]
pub struct TenantVault {
    vault: Vault<TenantKeys>,
    /// PostgreSQL mode: where the shred marker is read.
    shared: Option<PgPool>,
}

impl TenantVault {
    /// `vault`; with `shared` (PostgreSQL mode), every use first checks the
    /// tenant's shred marker there.
    pub fn new(vault: Vault<TenantKeys>, shared: Option<PgPool>) -> Self {
        Self { vault, shared }
    }

    /// The vault, for `tenant`'s keys: refused with
    /// [`hisn_crypto_vault::Error::TenantShredded`] once any instance shredded
    /// the tenant (its cached keyring is dropped here first).
    ///
    /// # Errors
    /// `TenantShredded`; [`hisn_crypto_vault::Error::Store`] when the marker
    /// cannot be read (fail closed: no key is used).
    pub async fn checked(&self, tenant: &str) -> R<&Vault<TenantKeys>> {
        let Some(pool) = &self.shared else {
            return Ok(&self.vault);
        };
        let shredded: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hisn_vault_shredded WHERE tenant = $1)")
                .bind(tenant)
                .fetch_one(pool)
                .await
                .map_err(|e| {
                    tracing::error!(target: "hisn::example_server", error = %e, "cannot read the shred marker");
                    hisn_crypto_vault::Error::Store("shred marker".into())
                })?;
        if shredded {
            // Another instance shredded it: forget the cached keys, and let
            // the vault remember the tenant as shredded (its reload finds no keys).
            self.vault.evict(tenant).await;
            crate::metrics::global().deny("shredded_tenant");
            return Err(hisn_crypto_vault::Error::TenantShredded);
        }
        Ok(&self.vault)
    }

    /// [`Vault::encrypt`] after [`checked`](Self::checked).
    ///
    /// # Errors
    /// As `checked` and [`Vault::encrypt`].
    pub async fn encrypt(&self, ctx: &FieldContext<'_>, plaintext: &[u8]) -> R<Ciphertext> {
        self.checked(ctx.tenant())
            .await?
            .encrypt(ctx, plaintext)
            .await
    }

    /// [`Vault::decrypt`] after [`checked`](Self::checked).
    ///
    /// # Errors
    /// As `checked` and [`Vault::decrypt`].
    pub async fn decrypt(&self, ctx: &FieldContext<'_>, ct: &Ciphertext) -> R<Plaintext> {
        self.checked(ctx.tenant()).await?.decrypt(ctx, ct).await
    }

    /// [`Vault::provision_tenant`] (a shredded tenant is refused by the store).
    ///
    /// # Errors
    /// As [`Vault::provision_tenant`].
    pub async fn provision_tenant(&self, tenant: &str) -> R<()> {
        self.vault.provision_tenant(tenant).await
    }

    /// [`Vault::shred_tenant`]: the keys and the marker in the store, the
    /// cache of this instance; other instances see the marker on their next use.
    ///
    /// # Errors
    /// As [`Vault::shred_tenant`].
    pub async fn shred_tenant(&self, tenant: &str) -> R<()> {
        self.vault.shred_tenant(tenant).await
    }

    /// Number of keyrings this instance holds unwrapped (tests, diagnostics).
    pub fn cached_tenants(&self) -> usize {
        self.vault.cached_tenants()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Two instances over one key store (two `DirKeyStore`s on one directory,
    /// as two processes would hold it) reserving uses of one key at once get
    /// disjoint ranges: `TenantKeys` forwards to the store's atomic
    /// reservation. The trait's default (read, then raise) hands both
    /// instances the same uses when their calls interleave.
    #[test]
    fn reservations_of_two_instances_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let master = hisn_crypto_vault::MasterKey::generate().unwrap();
        let vault = Vault::new(
            TenantKeys::Dir(DirKeyStore::open(dir.path()).unwrap()),
            master,
        );
        rt.block_on(vault.provision_tenant("acme")).unwrap();
        let key = rt
            .block_on(TenantKeys::Dir(DirKeyStore::open(dir.path()).unwrap()).load("acme"))
            .unwrap()
            .into_iter()
            .find(|k| k.purpose == KeyPurpose::Data)
            .expect("a data key");
        let key_id = key.key_id;
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let path = dir.path().to_owned();
                std::thread::spawn(move || {
                    let keys = TenantKeys::Dir(DirKeyStore::open(&path).unwrap());
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    (0..200)
                        .map(|_| {
                            rt.block_on(keys.reserve_usage(
                                "acme",
                                KeyPurpose::Data,
                                key_id,
                                3,
                                1 << 30,
                            ))
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ranges: Vec<std::ops::Range<u64>> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        ranges.sort_by_key(|r| r.start);
        assert_eq!(ranges.len(), 400);
        for w in ranges.windows(2) {
            assert!(w[0].end <= w[1].start, "overlap: {:?} and {:?}", w[0], w[1]);
        }
        assert!(ranges.iter().all(|r| r.end - r.start == 3));
    }
}
