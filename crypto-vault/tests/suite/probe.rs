//! `Probe`: a key store wrapper for the concurrency, read-path and
//! multi-instance tests. It counts loads and writes, can hold the next `n`
//! loads after they have read the store until the test releases them (so a
//! race is reproduced every time), and can make every load, or every write,
//! fail as an unreachable database does (writes include usage reservations and
//! give-backs). Clones share the store and the counters, as
//! several processes share one database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hisn_crypto_vault::{Error, KeyId, KeyPurpose, KeyStore, Result, WrappedKey};
use tokio::sync::Semaphore;

pub(crate) struct Probe<S> {
    pub(crate) inner: Arc<S>,
    hooks: Arc<Hooks>,
}

impl<S> Clone for Probe<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            hooks: Arc::clone(&self.hooks),
        }
    }
}

struct Hooks {
    loads: AtomicUsize,
    writes: AtomicUsize,
    to_pause: AtomicUsize,
    fail: AtomicBool,
    fail_writes: AtomicBool,
    slow_reservations: AtomicBool,
    reached: Semaphore,
    release: Semaphore,
}

impl<S: KeyStore> Probe<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner: Arc::new(inner),
            hooks: Arc::new(Hooks {
                loads: AtomicUsize::new(0),
                writes: AtomicUsize::new(0),
                to_pause: AtomicUsize::new(0),
                fail: AtomicBool::new(false),
                fail_writes: AtomicBool::new(false),
                slow_reservations: AtomicBool::new(false),
                reached: Semaphore::new(0),
                release: Semaphore::new(0),
            }),
        }
    }

    /// Make every load fail (`true`) or succeed again (`false`).
    pub(crate) fn fail_loads(&self, fail: bool) {
        self.hooks.fail.store(fail, Ordering::SeqCst);
    }

    /// Make every write fail (`true`) or succeed again (`false`).
    pub(crate) fn fail_writes(&self, fail: bool) {
        self.hooks.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Make every usage reservation yield to the runtime a few times before it
    /// reaches the store (`true`), as a database round trip does, so that
    /// other tasks run while it is in flight.
    pub(crate) fn slow_reservations(&self, slow: bool) {
        self.hooks.slow_reservations.store(slow, Ordering::SeqCst);
    }

    /// Loads so far.
    pub(crate) fn loads(&self) -> usize {
        self.hooks.loads.load(Ordering::SeqCst)
    }

    /// Writes (of any kind) so far.
    pub(crate) fn writes(&self) -> usize {
        self.hooks.writes.load(Ordering::SeqCst)
    }

    /// Pause the next `n` loads.
    pub(crate) fn arm(&self, n: usize) {
        self.hooks.to_pause.store(n, Ordering::SeqCst);
    }

    /// Wait until `n` paused loads have read the store.
    pub(crate) async fn wait_reached(&self, n: u32) {
        self.hooks.reached.acquire_many(n).await.unwrap().forget();
    }

    /// Let every paused load return what it read.
    pub(crate) fn release_all(&self) {
        self.hooks.release.add_permits(1 << 16);
    }

    /// Count a write; `Err` if writes are made to fail.
    fn wrote(&self) -> Result<()> {
        self.hooks.writes.fetch_add(1, Ordering::SeqCst);
        if self.hooks.fail_writes.load(Ordering::SeqCst) {
            return Err(Error::Store("unreachable".into()));
        }
        Ok(())
    }
}

impl<S: KeyStore> KeyStore for Probe<S> {
    async fn load(&self, tenant: &str) -> Result<Vec<WrappedKey>> {
        self.hooks.loads.fetch_add(1, Ordering::SeqCst);
        if self.hooks.fail.load(Ordering::SeqCst) {
            return Err(Error::Store("unreachable".into()));
        }
        let read = self.inner.load(tenant).await;
        let pause = self
            .hooks
            .to_pause
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if pause {
            self.hooks.reached.add_permits(1);
            self.hooks.release.acquire().await.unwrap().forget();
        }
        read
    }
    async fn insert(&self, key: &WrappedKey) -> Result<bool> {
        self.wrote()?;
        self.inner.insert(key).await
    }
    async fn set_primary(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.wrote()?;
        self.inner.set_primary(tenant, purpose, key_id).await
    }
    async fn rewrap(&self, key: &WrappedKey) -> Result<()> {
        self.wrote()?;
        self.inner.rewrap(key).await
    }
    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> Result<()> {
        self.wrote()?;
        self.inner
            .record_usage(tenant, purpose, key_id, usage)
            .await
    }
    async fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> Result<std::ops::Range<u64>> {
        if self.hooks.slow_reservations.load(Ordering::SeqCst) {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
        self.wrote()?;
        self.inner
            .reserve_usage(tenant, purpose, key_id, n, cap)
            .await
    }
    async fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> Result<()> {
        self.wrote()?;
        self.inner.release_usage(tenant, purpose, key_id, n).await
    }
    async fn delete(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.wrote()?;
        self.inner.delete(tenant, purpose, key_id).await
    }
    async fn shred(&self, tenant: &str) -> Result<()> {
        self.wrote()?;
        self.inner.shred(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<String>> {
        self.inner.tenants().await
    }
}
