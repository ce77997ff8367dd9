//! `Probe`: a key store wrapper for the concurrency and read-path tests. It
//! counts loads and writes, and can hold the next `n` loads after they have read
//! the store until the test releases them, so a race is reproduced every time.

use std::sync::atomic::{AtomicUsize, Ordering};

use hisn_crypto_vault::{KeyId, KeyPurpose, KeyStore, Result, WrappedKey};
use tokio::sync::Semaphore;

pub(crate) struct Probe<S> {
    pub(crate) inner: S,
    loads: AtomicUsize,
    writes: AtomicUsize,
    to_pause: AtomicUsize,
    reached: Semaphore,
    release: Semaphore,
}

impl<S: KeyStore> Probe<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            loads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            to_pause: AtomicUsize::new(0),
            reached: Semaphore::new(0),
            release: Semaphore::new(0),
        }
    }

    /// Loads so far.
    pub(crate) fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    /// Writes (of any kind) so far.
    pub(crate) fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Pause the next `n` loads.
    pub(crate) fn arm(&self, n: usize) {
        self.to_pause.store(n, Ordering::SeqCst);
    }

    /// Wait until `n` paused loads have read the store.
    pub(crate) async fn wait_reached(&self, n: u32) {
        self.reached.acquire_many(n).await.unwrap().forget();
    }

    /// Let every paused load return what it read.
    pub(crate) fn release_all(&self) {
        self.release.add_permits(1 << 16);
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

impl<S: KeyStore> KeyStore for Probe<S> {
    async fn load(&self, tenant: &str) -> Result<Vec<WrappedKey>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.load(tenant).await;
        let pause = self
            .to_pause
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if pause {
            self.reached.add_permits(1);
            self.release.acquire().await.unwrap().forget();
        }
        read
    }
    async fn insert(&self, key: &WrappedKey) -> Result<bool> {
        self.wrote();
        self.inner.insert(key).await
    }
    async fn set_primary(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.wrote();
        self.inner.set_primary(tenant, purpose, key_id).await
    }
    async fn rewrap(&self, key: &WrappedKey) -> Result<()> {
        self.wrote();
        self.inner.rewrap(key).await
    }
    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> Result<()> {
        self.wrote();
        self.inner
            .record_usage(tenant, purpose, key_id, usage)
            .await
    }
    async fn delete(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.wrote();
        self.inner.delete(tenant, purpose, key_id).await
    }
    async fn shred(&self, tenant: &str) -> Result<()> {
        self.wrote();
        self.inner.shred(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<String>> {
        self.inner.tenants().await
    }
}
