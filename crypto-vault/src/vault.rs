//! The vault: per-tenant keyrings unwrapped on demand from a key store, cached
//! with a bound.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::blind::BlindIndexer;
use crate::cache::{Absent, Cache, Flight, Insert, Lookup, Retired};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::format::{Ciphertext, FieldContext, KeyId};
use crate::keyring::{DEFAULT_USAGE_CAP, Keyring};
use crate::secret::{MasterKey, Plaintext, SecretKey};
use crate::store::{KeyStore, WrappedKey};
use crate::wrap::{self, KeyPurpose};

mod usage;

/// Default number of uses of a data key a process reserves from the key store
/// at a time (2^12): one store write per 4096 encryptions per key and
/// process; a crash loses at most one and a half blocks per key and process
/// (counted as spent), against a cap of 2^30 and a limit of 2^32. See
/// [`Vault::with_usage_reservation_block`].
pub const DEFAULT_RESERVATION_BLOCK: u64 = 1 << 12;

/// Former default interval between writes of a usage counter. Uses are now
/// reserved in the store before they are spent: see
/// [`DEFAULT_RESERVATION_BLOCK`].
#[deprecated(note = "uses are reserved before they are spent: see DEFAULT_RESERVATION_BLOCK")]
pub const DEFAULT_PERSIST_EVERY: u64 = 1 << 16;

/// Default interval between store reads that a read path may cause for one
/// tenant: an unknown tenant is looked up again, and a ciphertext naming a key
/// id newer than the cached ones reloads the keyring, at most once per interval.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// Default number of tenant keyrings kept unwrapped in memory.
pub const DEFAULT_CACHE_CAPACITY: NonZeroUsize = match NonZeroUsize::new(1024) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// Result of [`Vault::rewrap_all`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Keys re-wrapped under the current master key.
    pub rewrapped: u64,
    /// Keys already under the current master key (skipped; makes the job resumable).
    pub already_current: u64,
}

/// Field encryption for many tenants: data keys generated per tenant, stored
/// wrapped under the master key in `S`, unwrapped on first use and kept in a
/// bounded LRU cache (evicted keyrings are zeroized when the last user drops
/// them).
///
/// Exact under concurrency (see the `cache` module): once
/// [`Vault::shred_tenant`] or [`Vault::rotate_data_key`] returns, no encryption
/// or decryption starts under the removed or replaced keys in this process, even
/// if a keyring load was in flight.
///
/// The usage cap ([`Vault::with_usage_cap`]) is global: before encrypting
/// under a data key, a process reserves a block of its uses from the store
/// ([`KeyStore::reserve_usage`], atomic) and encrypts only within what it
/// reserved, so the encryptions of every process sharing the store together
/// never pass the cap. Unspent uses are given back when a keyring leaves the
/// cache; a crash loses them (they stay counted).
pub struct Vault<S> {
    store: S,
    master: MasterKey,
    previous: Vec<MasterKey>,
    cache: Mutex<Cache>,
    usage_cap: u64,
    block: u64,
    clock: Arc<dyn Clock>,
    reload_interval: Duration,
}

impl<S> fmt::Debug for Vault<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One lock for both readings: a statement holding two guards of this
        // non-reentrant mutex deadlocks (temporaries live to the statement's end).
        let (cached, flights) = {
            let cache = self.cache.lock();
            (cache.len(), cache.flights())
        };
        f.debug_struct("Vault")
            .field("master", &self.master)
            .field("previous_masters", &self.previous.len())
            .field("cached_tenants", &cached)
            .field("loads_in_flight", &flights)
            .field("usage_cap", &self.usage_cap)
            .field("reservation_block", &self.block)
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

/// What [`Vault::land_load`] decided.
enum Landed {
    Use(Arc<Keyring>, Option<Retired>),
    Fail(Error),
    Again,
}

/// Lands a keyring load's flight as "look up again" if the leader's future is
/// dropped before the load returns (a cancelled request), so the callers
/// waiting on it never hang: the next of them starts a fresh load. Landing is
/// first-outcome-wins, so on the normal path this drop is a no-op.
struct FlightGuard<'a> {
    cache: &'a Mutex<Cache>,
    tenant: &'a str,
    flight: Arc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.cache.lock().end_flight(self.tenant, &self.flight);
        self.flight.land_retry();
    }
}

impl<S: KeyStore> Vault<S> {
    /// A vault over `store`, wrapping new keys under `master`.
    pub fn new(store: S, master: MasterKey) -> Self {
        Self {
            store,
            master,
            previous: Vec::new(),
            cache: Mutex::new(Cache::new(DEFAULT_CACHE_CAPACITY)),
            usage_cap: DEFAULT_USAGE_CAP,
            block: DEFAULT_RESERVATION_BLOCK,
            clock: Arc::new(SystemClock),
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }

    /// The clock used to rate-limit reloads (default [`SystemClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Store reads a read path may cause per tenant: at most one per `interval`
    /// (default [`DEFAULT_RELOAD_INTERVAL`]). A cached keyring is checked
    /// against the store once per interval, so a tenant provisioned, shredded,
    /// or a key rotated or deleted, by another process is in force here within
    /// this interval (or at once after [`Vault::evict`]); if the store cannot be
    /// read when the check is due, the cached keys are retired (fail closed).
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Also accept keys wrapped under an older master key (during a master-key
    /// rotation; see [`Vault::rewrap_all`]).
    pub fn with_previous_master(mut self, old: MasterKey) -> Self {
        self.previous.push(old);
        self
    }

    /// Bound the number of tenant keyrings kept unwrapped in memory.
    pub fn with_cache_capacity(self, capacity: NonZeroUsize) -> Self {
        self.cache.lock().resize(capacity);
        self
    }

    /// The key store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Number of keyrings currently cached.
    pub fn cached_tenants(&self) -> usize {
        self.cache.lock().len()
    }

    fn master_for(&self, fp: [u8; 8]) -> Result<&MasterKey> {
        std::iter::once(&self.master)
            .chain(self.previous.iter())
            .find(|m| m.fingerprint() == fp)
            .ok_or(Error::Unwrap)
    }

    fn new_record(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        primary: bool,
    ) -> Result<WrappedKey> {
        let key = SecretKey::generate()?;
        Ok(WrappedKey {
            tenant: tenant.to_owned(),
            purpose,
            key_id,
            primary,
            master_fingerprint: self.master.fingerprint(),
            wrapped: wrap::wrap(&self.master, purpose, tenant, key_id, &key)?,
            usage: 0,
        })
    }

    /// The tenant's keyring, from the cache or unwrapped from the store. Never
    /// creates keys: provision a tenant with [`Vault::provision_tenant`]. A tenant
    /// found without keys is remembered for the reload interval, so unknown
    /// tenants cost at most one store read per interval each.
    ///
    /// # Errors
    /// [`Error::TenantNotProvisioned`], [`Error::TenantShredded`],
    /// [`Error::Unwrap`] (wrong master key or tampered store), [`Error::Store`],
    /// [`Error::InvalidContext`] for a bad tenant.
    pub async fn keyring(&self, tenant: &str) -> Result<Arc<Keyring>> {
        FieldContext::new(tenant, "-", "-", "-")?;
        loop {
            let now = self.clock.now();
            let lookup = self.cache.lock().lookup(tenant, now, self.reload_interval);
            let (generation, flight) = match lookup {
                Lookup::Ring(ring) => return Ok(ring),
                // Cached for a reload interval: check it against the store
                // (another process may have shredded or rotated).
                Lookup::Check(ring) => {
                    if self.check_cached(tenant, &ring, now).await? {
                        return Ok(ring);
                    }
                    continue;
                }
                Lookup::Absent(e) => return Err(e),
                // Another caller is loading this tenant (single flight): wait
                // for it, then look up again (or share its failure).
                Lookup::Wait(flight) => {
                    flight.landing().await?;
                    continue;
                }
                Lookup::Lead(generation, flight) => (generation, flight),
            };
            let guard = FlightGuard {
                cache: &self.cache,
                tenant,
                flight,
            };
            let loaded = self.load_ring(tenant).await;
            match self.land_load(tenant, generation, now, &guard.flight, loaded) {
                Landed::Use(ring, victim) => {
                    if let Some(v) = victim {
                        self.give_back_retired(v).await;
                    }
                    return Ok(ring);
                }
                Landed::Fail(e) => return Err(e),
                // Rotated, shredded, provisioned or evicted while loading.
                Landed::Again => continue,
            }
        }
    }

    /// Check a cached keyring against the store: `true` if the stored keys
    /// are the cached ones. Otherwise the cached keyring is retired (its unspent
    /// uses given back) and `false` tells the caller to load again; a shredded tenant
    /// is remembered and answers [`Error::TenantShredded`]; a store that cannot
    /// be read retires it too and answers its error (fail closed: keys another
    /// process may have shredded are not used past the interval).
    async fn check_cached(
        &self,
        tenant: &str,
        ring: &Keyring,
        now: std::time::SystemTime,
    ) -> Result<bool> {
        match self.store.load(tenant).await {
            Ok(records) if same_keys(ring, &records) => {
                self.cache.lock().checked_unchanged(tenant, now);
                Ok(true)
            }
            Ok(_) => {
                tracing::info!(target: "hisn_crypto_vault", "tenant keys changed in the store; reloading");
                self.retire_tenant(tenant).await;
                Ok(false)
            }
            Err(Error::TenantShredded) => {
                self.forget_shredded(tenant);
                Err(Error::TenantShredded)
            }
            Err(e) => {
                tracing::warn!(target: "hisn_crypto_vault", error = %e, "could not check cached tenant keys against the store; retired them");
                self.retire_tenant(tenant).await;
                Err(e)
            }
        }
    }

    /// The tenant's keys are gone from the store: retire the cached keyring
    /// (nothing to give back) and remember the shred, in one critical section,
    /// so loads in flight (generation bump) and their waiters find the
    /// tombstone.
    fn forget_shredded(&self, tenant: &str) {
        let mut cache = self.cache.lock();
        // The keys are gone: nothing to give back.
        if cache.retire_tenant(tenant).is_some() {
            cache.given_back(tenant);
        }
        cache.shredded(tenant);
    }

    /// Put a finished load's outcome in the cache, end its flight, then land
    /// the flight so its waiters look up again (or share the failure).
    fn land_load(
        &self,
        tenant: &str,
        generation: u64,
        now: std::time::SystemTime,
        flight: &Flight,
        loaded: Result<Keyring>,
    ) -> Landed {
        let mut cache = self.cache.lock();
        cache.end_flight(tenant, flight);
        let landed = match loaded {
            Ok(ring) => match cache.insert_if_current(tenant, generation, ring, now) {
                Insert::Use(ring, victim) => Landed::Use(ring, victim),
                Insert::Stale => Landed::Again,
            },
            Err(e @ (Error::TenantNotProvisioned | Error::TenantShredded)) => {
                let absent = if matches!(e, Error::TenantShredded) {
                    Absent::Shredded
                } else {
                    Absent::NotProvisioned(now)
                };
                if cache.insert_absent_if_current(tenant, generation, absent) {
                    Landed::Fail(e)
                } else {
                    Landed::Again
                }
            }
            Err(e) => {
                // Not cached: the next caller loads again.
                drop(cache);
                flight.land_failed(&e);
                return Landed::Fail(e);
            }
        };
        drop(cache);
        flight.land_retry();
        landed
    }

    /// Create the tenant's data key and blind-index key if it has none yet.
    /// Idempotent, and safe to race with other processes (the store keeps one
    /// primary per tenant and purpose).
    ///
    /// # Errors
    /// [`Error::TenantShredded`] (a shredded tenant never gets keys again),
    /// [`Error::Store`], [`Error::InvalidContext`] for a bad tenant, [`Error::Rng`].
    pub async fn provision_tenant(&self, tenant: &str) -> Result<()> {
        FieldContext::new(tenant, "-", "-", "-")?;
        let records = self.store.load(tenant).await?;
        for purpose in [KeyPurpose::Data, KeyPurpose::BlindIndex] {
            if !records.iter().any(|r| r.purpose == purpose && r.primary) {
                self.store
                    .insert(&self.new_record(tenant, purpose, KeyId(1), true)?)
                    .await?;
            }
        }
        self.cache.lock().provisioned(tenant);
        Ok(())
    }

    /// Read and unwrap the tenant's keys from the store (not cached).
    async fn load_ring(&self, tenant: &str) -> Result<Keyring> {
        let records = self.store.load(tenant).await?;
        self.ring_from_records(tenant, &records)
    }

    /// Unwrap stored records into a keyring.
    fn ring_from_records(&self, tenant: &str, records: &[WrappedKey]) -> Result<Keyring> {
        if records.is_empty() {
            return Err(Error::TenantNotProvisioned);
        }
        let mut data = Vec::new();
        let mut primary = None;
        let mut index_root = None;
        for r in records {
            let key = wrap::unwrap(
                self.master_for(r.master_fingerprint)?,
                r.purpose,
                tenant,
                r.key_id,
                &r.wrapped,
            )?;
            match r.purpose {
                KeyPurpose::Data => {
                    if r.primary {
                        primary = Some(r.key_id);
                    }
                    data.push((r.key_id, (key, r.usage)));
                }
                KeyPurpose::BlindIndex => {
                    if r.primary {
                        index_root = Some(key);
                    }
                }
            }
        }
        let primary = primary.ok_or(Error::UnknownKey)?;
        Keyring::build(tenant, primary, data, index_root, self.usage_cap, true)
    }

    /// Retire the tenant's cached keyring (if any), make loads in flight start
    /// again (releasing their waiters), and give its unspent uses back.
    async fn retire_tenant(&self, tenant: &str) {
        let retired = self.cache.lock().retire_tenant(tenant);
        if let Some(r) = retired {
            self.give_back_retired(r).await;
        }
    }

    /// Decrypt a field value stored at `ctx`. Never writes to the store.
    ///
    /// # Errors
    /// [`Error::Decrypt`] (opaque) for every value that is not authentic for
    /// `ctx`: tampered, moved, under a key id the tenant does not have, or for a
    /// tenant that was never provisioned; [`Error::TenantShredded`] for a
    /// shredded tenant; otherwise as [`Vault::keyring`].
    ///
    /// A key id newer than every cached one (another process may have rotated)
    /// reloads the tenant's keys, at most once per reload interval
    /// ([`Vault::with_reload_interval`]): forged key ids cannot make every read
    /// a store round trip.
    pub async fn decrypt(&self, ctx: &FieldContext<'_>, ct: &Ciphertext) -> Result<Plaintext> {
        let tenant = ctx.tenant();
        let mut reloaded = false;
        loop {
            let ring = match self.keyring(tenant).await {
                Err(Error::TenantNotProvisioned) => return Err(Error::Decrypt),
                other => other?,
            };
            let newer = ring.key_ids().iter().all(|id| *id < ct.key_id());
            if newer && !reloaded {
                reloaded = true;
                let now = self.clock.now();
                let claimed =
                    self.cache
                        .lock()
                        .claim_forced_reload(tenant, now, self.reload_interval);
                if claimed {
                    self.evict(tenant).await;
                    continue;
                }
            }
            match ring.decrypt(ctx, ct) {
                Err(Error::KeyringRetired) => continue,
                other => return other,
            }
        }
    }

    /// Drop the tenant's cached keyring, giving its unspent reserved uses back
    /// to the store (its keys are zeroized once no caller holds it). Use it after another process
    /// rotated or shredded the tenant's keys; otherwise this process sees such
    /// changes when the entry is evicted.
    pub async fn evict(&self, tenant: &str) {
        self.retire_tenant(tenant).await;
    }

    /// Rotate the tenant's data key: a new random key becomes primary; older keys
    /// stay for decryption until [`Vault::delete_retired_key`]. Returns the new id.
    ///
    /// # Errors
    /// As [`Vault::keyring`]; [`Error::Store`].
    pub async fn rotate_data_key(&self, tenant: &str) -> Result<KeyId> {
        FieldContext::new(tenant, "-", "-", "-")?;
        // Read the store, not the cache: rotation must never wait on a load in
        // flight (that load may be paused; it is made stale below), and the
        // next id comes from the stored keys (another process may have
        // rotated). The keys are unwrapped to check they are ours, then dropped.
        let ring = self.ring_from_records(tenant, &self.store.load(tenant).await?)?;
        let next = ring
            .key_ids()
            .iter()
            .map(|k| k.0)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(Error::InvalidConfig("key ids exhausted"))?;
        let id = KeyId(next);
        if !self
            .store
            .insert(&self.new_record(tenant, KeyPurpose::Data, id, false)?)
            .await?
        {
            return Err(Error::Store("concurrent rotation; retry".into()));
        }
        self.store.set_primary(tenant, KeyPurpose::Data, id).await?;
        // Retire the cached keyring (its unspent uses are given back) and make
        // loads in flight, which may have read the old primary, load again.
        self.retire_tenant(tenant).await;
        tracing::info!(target: "hisn_crypto_vault", key_id = id.0, "tenant data key rotated");
        Ok(id)
    }

    /// Delete a retired (non-primary) data key once [`Keyring::census`] shows no
    /// stored value uses it. Values still under it become undecryptable.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for the primary key; [`Error::UnknownKey`]; [`Error::Store`].
    pub async fn delete_retired_key(&self, tenant: &str, key_id: KeyId) -> Result<()> {
        self.store.delete(tenant, KeyPurpose::Data, key_id).await?;
        self.evict(tenant).await;
        Ok(())
    }

    /// Re-wrap every stored key that is not under the current master key (found
    /// with the previous masters given to [`Vault::with_previous_master`]). Data keys
    /// are not changed, so no field value is re-encrypted. Resumable: keys already
    /// under the current master are skipped.
    ///
    /// # Errors
    /// [`Error::Unwrap`] if a key is under an unknown master; [`Error::Store`].
    pub async fn rewrap_all(&self) -> Result<RewrapReport> {
        let mut report = RewrapReport::default();
        let current = self.master.fingerprint();
        for tenant in self.store.tenants().await? {
            let records = match self.store.load(&tenant).await {
                Err(Error::TenantShredded) => continue,
                r => r?,
            };
            for mut r in records {
                if r.master_fingerprint == current {
                    report.already_current += 1;
                    continue;
                }
                let key = wrap::unwrap(
                    self.master_for(r.master_fingerprint)?,
                    r.purpose,
                    &tenant,
                    r.key_id,
                    &r.wrapped,
                )?;
                r.wrapped = wrap::wrap(&self.master, r.purpose, &tenant, r.key_id, &key)?;
                r.master_fingerprint = current;
                self.store.rewrap(&r).await?;
                report.rewrapped += 1;
            }
        }
        tracing::info!(target: "hisn_crypto_vault", rewrapped = report.rewrapped, "master key rotation re-wrapped tenant keys");
        Ok(report)
    }

    /// Crypto-shredding: destroy every key of `tenant` in the store and in this
    /// process's cache. Afterwards none of its values or blind indexes can be
    /// recovered, even with the master key, and no new key is issued for it.
    /// Backups of the key store taken before this call still hold the wrapped keys:
    /// see the README's backup caveat.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn shred_tenant(&self, tenant: &str) -> Result<()> {
        self.store.shred(tenant).await?;
        // The keys are gone: nothing to give back. Loads in flight that read
        // them before the shred cannot insert (generation bump); their waiters
        // are released and, in the same critical section, find the tombstone.
        self.forget_shredded(tenant);
        tracing::warn!(target: "hisn_crypto_vault", "tenant keys shredded");
        Ok(())
    }

    /// A blind indexer for (tenant, table, column).
    ///
    /// # Errors
    /// As [`Vault::keyring`].
    pub async fn blind_indexer(
        &self,
        tenant: &str,
        table: &str,
        column: &str,
    ) -> Result<BlindIndexer> {
        loop {
            let ring = self.keyring(tenant).await?;
            if ring.is_retired() {
                continue;
            }
            let root = ring.index_root().ok_or(Error::UnknownKey)?;
            return BlindIndexer::new(root, tenant, table, column);
        }
    }
}

/// Whether `records` (the tenant's stored keys) are the keys `ring` was built
/// from: the same data key ids, the same primary, an index root or not.
fn same_keys(ring: &Keyring, records: &[WrappedKey]) -> bool {
    let mut ids: Vec<KeyId> = records
        .iter()
        .filter(|r| r.purpose == KeyPurpose::Data)
        .map(|r| r.key_id)
        .collect();
    ids.sort_unstable();
    let primary = records
        .iter()
        .find(|r| r.purpose == KeyPurpose::Data && r.primary)
        .map(|r| r.key_id);
    let index = records
        .iter()
        .any(|r| r.purpose == KeyPurpose::BlindIndex && r.primary);
    ids == ring.key_ids() && primary == Some(ring.primary()) && index == ring.index_root().is_some()
}
