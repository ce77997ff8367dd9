//! The vault's cache of unwrapped keyrings, exact under concurrent loads,
//! rotation, shredding and eviction.
//!
//! Three rules make it exact (each guarded by the one cache mutex):
//!
//! 1. **Generations.** Every change that makes a stored or cached keyring stale
//!    (rotation, shredding, retirement of a cached keyring, a retired keyring's
//!    counts reaching the store) bumps the generation of the tenant's stripe. A
//!    load notes the generation before it reads the store and inserts its
//!    keyring only if the generation is unchanged; otherwise it loads again.
//!    So a load that read the store before a shred or rotation can never put the
//!    old keys back.
//! 2. **First insert wins.** If another caller cached the tenant's keyring while
//!    this one was loading, the cached one is used: every caller of one tenant
//!    shares one keyring and so one usage counter per key.
//! 3. **Retire, then persist.** A keyring leaving the cache is retired (its
//!    counters refuse further uses in the same atomic step that reads their
//!    final value) and its final counts stay here as floors until written to the
//!    store, so a reload in between starts from them, not from the older store
//!    value.
//!
//! It also remembers, with the same bound as the keyrings, tenants found
//! without keys (so an unknown tenant costs one store read per reload interval,
//! not one per request) and when each tenant's keys were last reloaded because a
//! ciphertext named a key id newer than the cached ones (so a forged key id
//! forces at most one reload per interval).
//!
//! Generations are kept per stripe (a hash of the tenant), not per tenant, so the
//! memory is fixed whatever tenant ids callers use; a collision only costs a
//! spurious reload.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lru::LruCache;

use crate::error::Error;
use crate::format::KeyId;
use crate::keyring::Keyring;

/// Number of generation stripes.
const STRIPES: usize = 4096;

/// A keyring taken out of the cache: its final counts, to be written to the
/// store and then released with [`Cache::persisted`].
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) tenant: String,
    pub(crate) finals: Vec<(KeyId, u64)>,
}

/// A tenant known to have no usable keys.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Absent {
    /// No keys in the store at that time.
    NotProvisioned(SystemTime),
    /// Shredded: permanent.
    Shredded,
}

pub(crate) struct Cache {
    lru: LruCache<String, Arc<Keyring>>,
    absent: LruCache<String, Absent>,
    forced_reloads: LruCache<String, SystemTime>,
    gens: Box<[u64]>,
    floors: HashMap<(String, KeyId), u64>,
    hasher: RandomState,
}

/// Whether `interval` has passed between `at` and `now`. A clock that went
/// back counts as elapsed: a stale memory must not outlive a clock step.
fn elapsed(at: SystemTime, now: SystemTime, interval: Duration) -> bool {
    match now.duration_since(at) {
        Ok(d) => d >= interval,
        Err(_) => true,
    }
}

/// What [`Cache::lookup`] found.
pub(crate) enum Lookup {
    /// The cached keyring.
    Ring(Arc<Keyring>),
    /// Known to have no usable keys: this error.
    Absent(Error),
    /// Load it, presenting this generation.
    Load(u64),
}

/// What [`Cache::insert_if_current`] decided.
pub(crate) enum Insert {
    /// Use this keyring (the one inserted, or one cached meanwhile).
    Use(Arc<Keyring>, Option<Retired>),
    /// The tenant's keys changed while loading: load again.
    Stale,
}

impl Cache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            lru: LruCache::new(capacity),
            absent: LruCache::new(capacity),
            forced_reloads: LruCache::new(capacity),
            gens: vec![0; STRIPES].into_boxed_slice(),
            floors: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn resize(&mut self, capacity: NonZeroUsize) {
        self.lru.resize(capacity);
        self.absent.resize(capacity);
        self.forced_reloads.resize(capacity);
    }

    pub(crate) fn len(&self) -> usize {
        self.lru.len()
    }

    fn stripe(&self, tenant: &str) -> usize {
        let h = self.hasher.hash_one(tenant);
        usize::try_from(h % STRIPES as u64).unwrap_or(0)
    }

    fn bump(&mut self, tenant: &str) {
        let s = self.stripe(tenant);
        self.gens[s] = self.gens[s].wrapping_add(1);
    }

    /// The cached keyring, a remembered absence (as its error), or the
    /// generation a load must present to insert its result.
    pub(crate) fn lookup(&mut self, tenant: &str, now: SystemTime, interval: Duration) -> Lookup {
        if let Some(r) = self.lru.get(tenant) {
            return Lookup::Ring(Arc::clone(r));
        }
        match self.absent.get(tenant) {
            Some(Absent::Shredded) => return Lookup::Absent(Error::TenantShredded),
            Some(Absent::NotProvisioned(at)) if !elapsed(*at, now, interval) => {
                return Lookup::Absent(Error::TenantNotProvisioned);
            }
            _ => {}
        }
        Lookup::Load(self.gens[self.stripe(tenant)])
    }

    /// Remember that the tenant has no usable keys, if nothing changed since
    /// `generation`; `false` if something did (the caller loads again).
    pub(crate) fn insert_absent_if_current(
        &mut self,
        tenant: &str,
        generation: u64,
        a: Absent,
    ) -> bool {
        if self.gens[self.stripe(tenant)] != generation {
            return false;
        }
        self.absent.put(tenant.to_owned(), a);
        true
    }

    /// Forget a remembered absence (the tenant was provisioned here) and make
    /// loads in flight start again.
    pub(crate) fn provisioned(&mut self, tenant: &str) {
        self.absent.pop(tenant);
        self.bump(tenant);
    }

    /// The tenant was shredded here: remember it, so reads fail without a
    /// store round trip.
    pub(crate) fn shredded(&mut self, tenant: &str) {
        self.absent.put(tenant.to_owned(), Absent::Shredded);
    }

    /// Claim the right to reload the tenant's keys because a ciphertext named a
    /// key id newer than the cached ones: granted at most once per `interval`.
    pub(crate) fn claim_forced_reload(
        &mut self,
        tenant: &str,
        now: SystemTime,
        interval: Duration,
    ) -> bool {
        if let Some(at) = self.forced_reloads.get(tenant)
            && !elapsed(*at, now, interval)
        {
            return false;
        }
        self.forced_reloads.put(tenant.to_owned(), now);
        true
    }

    /// The cached keyring without touching the LRU order.
    pub(crate) fn peek(&self, tenant: &str) -> Option<Arc<Keyring>> {
        self.lru.peek(tenant).cloned()
    }

    /// Insert a freshly loaded keyring if nothing changed since `generation`.
    pub(crate) fn insert_if_current(
        &mut self,
        tenant: &str,
        generation: u64,
        ring: Keyring,
    ) -> Insert {
        if self.gens[self.stripe(tenant)] != generation {
            return Insert::Stale;
        }
        if let Some(r) = self.lru.get(tenant) {
            return Insert::Use(Arc::clone(r), None);
        }
        for (id, _) in ring.usages() {
            if let Some(floor) = self.floors.get(&(tenant.to_owned(), id)) {
                ring.raise_usage(id, *floor);
            }
        }
        let ring = Arc::new(ring);
        let pushed = self.lru.push(tenant.to_owned(), Arc::clone(&ring));
        let victim = pushed.map(|(t, old)| self.retire(t, &old));
        Insert::Use(ring, victim)
    }

    /// Take the tenant's keyring out of the cache and retire it; bump the
    /// tenant's generation even when nothing was cached, so loads in flight
    /// start again.
    pub(crate) fn retire_tenant(&mut self, tenant: &str) -> Option<Retired> {
        self.bump(tenant);
        let ring = self.lru.pop(tenant)?;
        Some(self.retire(tenant.to_owned(), &ring))
    }

    fn retire(&mut self, tenant: String, ring: &Keyring) -> Retired {
        self.bump(&tenant);
        let finals = ring.retire();
        for (id, u) in &finals {
            let f = self.floors.entry((tenant.clone(), *id)).or_insert(0);
            *f = (*f).max(*u);
        }
        Retired { tenant, finals }
    }

    /// The retired counts were written (or given up on): drop their floors.
    pub(crate) fn persisted(&mut self, r: &Retired) {
        for (id, u) in &r.finals {
            let key = (r.tenant.clone(), *id);
            if self.floors.get(&key).is_some_and(|f| f <= u) {
                self.floors.remove(&key);
            }
        }
        self.bump(&r.tenant);
    }
}
