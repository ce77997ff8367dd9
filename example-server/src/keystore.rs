//! Where the tenant data keys (wrapped under the master key) live: the data
//! directory in the embedded mode, PostgreSQL in PostgreSQL mode, so every
//! instance encrypts and decrypts a tenant's fields with the same keys and a
//! crypto-shred on one instance holds on all.

use hisn_crypto_vault::{DirKeyStore, KeyId, KeyPurpose, KeyStore, PgKeyStore, WrappedKey};

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
