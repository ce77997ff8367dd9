//! The vault's cache of unwrapped keyrings, exact under concurrent loads,
//! rotation, shredding and eviction.
//!
//! Three rules make it exact (each guarded by the one cache mutex):
//!
//! 1. **Generations.** Every change that makes a stored or cached keyring stale
//!    (rotation, shredding, retirement of a cached keyring, a retired keyring's
//!    unspent uses given back to the store) bumps the generation of the tenant's stripe. A
//!    load notes the generation before it reads the store and inserts its
//!    keyring only if the generation is unchanged; otherwise it loads again.
//!    So a load that read the store before a shred or rotation can never put the
//!    old keys back.
//! 2. **First insert wins.** If another caller cached the tenant's keyring while
//!    this one was loading, the cached one is used: every caller of one tenant
//!    shares one keyring and so the uses it reserved (no second reservation
//!    per loader).
//! 3. **Retire, then give back.** A keyring leaving the cache is retired (its
//!    keys refuse further uses in the same atomic step that reads how many
//!    reserved uses they still held) and the vault gives those unspent uses
//!    back to the store. Nothing needs to be remembered here: uses are
//!    reserved in the store before they are spent, so the store never counts
//!    fewer than were spent, and a give-back that fails (an outage) only
//!    leaves those uses counted (fail safe).
//!
//! It also remembers, with the same bound as the keyrings, tenants found
//! without keys (so an unknown tenant costs one store read per reload interval,
//! not one per request) and when each tenant's keys were last reloaded because a
//! ciphertext named a key id newer than the cached ones (so a forged key id
//! forces at most one reload per interval).
//!
//! 4. **Single flight.** A cold tenant is loaded once however many callers
//!    want it: the first caller registers a [`Flight`] for the tenant at the
//!    current generation and reads the store; callers arriving meanwhile wait
//!    for it to land and then look the cache up again (they never take the
//!    loaded keyring from the flight, so rules 1–3 decide what they get). A
//!    flight is tied to the generation it started at: a bump for the tenant
//!    (shred, rotation, eviction) lands it at once, so its waiters never wait
//!    on a load that can no longer be inserted, and a paused load never holds
//!    up shredding or rotation, which never wait on a flight. A failed load
//!    (store error, unwrap failure) is not cached: the leader and the callers
//!    waiting on that flight get its error (a copy, see [`waiter_error`]), and
//!    the next caller starts a fresh load. A leader whose future is dropped
//!    mid-load lands its flight as "look up again" (see `FlightGuard` in
//!    `vault.rs`), so waiters never hang on a cancelled load.
//!
//! 5. **Checked once per interval.** Another process may shred the tenant or
//!    rotate or delete its keys through the shared store. A cached keyring is
//!    checked against the store once per reload interval (the first caller
//!    after it does the read; the others keep using the keyring meanwhile):
//!    shredded, changed keys or a store that cannot be read retire it (fail
//!    closed), so another process's shred or rotation is in force here within
//!    one interval plus one store read.
//!
//! Generations are kept per stripe (a hash of the tenant), not per tenant, so the
//! memory is fixed whatever tenant ids callers use; a collision only costs a
//! spurious reload.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher as _, RandomState};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;

use crate::error::Error;
use crate::format::KeyId;
use crate::keyring::Keyring;

/// Number of generation stripes.
const STRIPES: usize = 4096;

/// A keyring taken out of the cache: the reserved uses its keys held and
/// never spent, to be given back to the store, then [`Cache::given_back`].
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) tenant: String,
    pub(crate) unspent: Vec<(KeyId, u64)>,
}

/// A tenant known to have no usable keys.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Absent {
    /// No keys in the store at that time.
    NotProvisioned(SystemTime),
    /// Shredded: permanent.
    Shredded,
}

/// A cached keyring and when it was last known to match the store.
struct Cached {
    ring: Arc<Keyring>,
    checked: SystemTime,
}

pub(crate) struct Cache {
    lru: LruCache<String, Cached>,
    absent: LruCache<String, Absent>,
    forced_reloads: LruCache<String, SystemTime>,
    gens: Box<[u64]>,
    /// Loads in flight, one per tenant at most (rule 4). Bounded by the number
    /// of loads running at once: an entry leaves when its load lands.
    flights: HashMap<String, Arc<Flight>>,
    hasher: RandomState,
}

/// How a [`Flight`] ended, as its waiters see it.
enum Landed {
    /// Look the cache up again (the keyring was inserted, the tenant's absence
    /// remembered, or the load went stale or was cancelled).
    Retry,
    /// The load failed; nothing was cached.
    Failed(Error),
}

/// One store load of a tenant's keyring that other callers wait for.
///
/// A hand-written one-shot notifier (a waker list under a lock that is never
/// held across an await) rather than an async runtime's primitive: the crate is
/// runtime-agnostic and depends on no executor.
pub(crate) struct Flight {
    generation: u64,
    state: Mutex<FlightState>,
}

struct FlightState {
    landed: Option<Landed>,
    wakers: Vec<Waker>,
}

impl Flight {
    pub(crate) fn new(generation: u64) -> Self {
        Self {
            generation,
            state: Mutex::new(FlightState {
                landed: None,
                wakers: Vec::new(),
            }),
        }
    }

    /// Land the flight (the first outcome wins) and wake its waiters.
    fn land(&self, outcome: Landed) {
        let wakers = {
            let mut st = self.state.lock();
            if st.landed.is_some() {
                return;
            }
            st.landed = Some(outcome);
            std::mem::take(&mut st.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Waiters: look the cache up again.
    pub(crate) fn land_retry(&self) {
        self.land(Landed::Retry);
    }

    /// Waiters: fail with (a copy of) `e`.
    pub(crate) fn land_failed(&self, e: &Error) {
        self.land(Landed::Failed(waiter_error(e)));
    }

    /// Wait until the flight lands: `Ok(())` to look the cache up again, or the
    /// failed load's error.
    pub(crate) fn landing(self: &Arc<Self>) -> Landing {
        Landing(Arc::clone(self))
    }
}

/// Future returned by [`Flight::landing`].
pub(crate) struct Landing(Arc<Flight>);

impl Future for Landing {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.0.state.lock();
        match &st.landed {
            Some(Landed::Retry) => Poll::Ready(Ok(())),
            Some(Landed::Failed(e)) => Poll::Ready(Err(waiter_error(e))),
            None => {
                if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    st.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// The error a waiter of a failed flight gets: the leader's error where it can
/// be copied, else a generic store error (`Error` is not `Clone`: it may one
/// day carry a source that is not).
fn waiter_error(e: &Error) -> Error {
    match e {
        Error::Store(m) => Error::Store(m.clone()),
        Error::Unwrap => Error::Unwrap,
        Error::UnknownKey => Error::UnknownKey,
        Error::TenantShredded => Error::TenantShredded,
        Error::TenantNotProvisioned => Error::TenantNotProvisioned,
        Error::InvalidKey(m) => Error::InvalidKey(m),
        Error::InvalidConfig(m) => Error::InvalidConfig(m),
        Error::InvalidContext(m) => Error::InvalidContext(m),
        Error::UnsupportedVersion(v) => Error::UnsupportedVersion(*v),
        _ => Error::Store("key load failed".into()),
    }
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
    /// The cached keyring, last checked against the store a reload interval
    /// ago or more: check it now (rule 5). Other callers meanwhile get it as
    /// [`Lookup::Ring`] until the next interval.
    Check(Arc<Keyring>),
    /// Known to have no usable keys: this error.
    Absent(Error),
    /// Another caller is loading it: wait for the flight, then look up again.
    Wait(Arc<Flight>),
    /// Load it, presenting this generation, and land this flight when done
    /// (after [`Cache::end_flight`]).
    Lead(u64, Arc<Flight>),
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
            flights: HashMap::new(),
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
        // The tenant's load in flight (if any) can no longer insert: release its
        // waiters now rather than when the (possibly slow) load returns.
        if let Some(f) = self.flights.remove(tenant) {
            f.land_retry();
        }
    }

    /// The load of `flight` returned: forget it (if it is still the tenant's
    /// current flight). The caller lands it after the cache reflects the
    /// load's outcome.
    pub(crate) fn end_flight(&mut self, tenant: &str, flight: &Flight) {
        if self
            .flights
            .get(tenant)
            .is_some_and(|f| std::ptr::eq(Arc::as_ptr(f), flight))
        {
            self.flights.remove(tenant);
        }
    }

    /// Loads in flight (for `Debug`).
    pub(crate) fn flights(&self) -> usize {
        self.flights.len()
    }

    /// The cached keyring, a remembered absence (as its error), a load in
    /// flight to wait for, or the generation (and flight) of a load to start.
    pub(crate) fn lookup(&mut self, tenant: &str, now: SystemTime, interval: Duration) -> Lookup {
        if let Some(c) = self.lru.get_mut(tenant) {
            if elapsed(c.checked, now, interval) {
                c.checked = now;
                return Lookup::Check(Arc::clone(&c.ring));
            }
            return Lookup::Ring(Arc::clone(&c.ring));
        }
        match self.absent.get(tenant) {
            Some(Absent::Shredded) => return Lookup::Absent(Error::TenantShredded),
            Some(Absent::NotProvisioned(at)) if !elapsed(*at, now, interval) => {
                return Lookup::Absent(Error::TenantNotProvisioned);
            }
            _ => {}
        }
        let generation = self.gens[self.stripe(tenant)];
        if let Some(f) = self.flights.get(tenant)
            && f.generation == generation
        {
            return Lookup::Wait(Arc::clone(f));
        }
        // None in flight, or one started before a bump of the tenant's stripe
        // by another tenant (it cannot insert): start one at this generation.
        // The old leader's `end_flight` leaves this one in place.
        let flight = Arc::new(Flight::new(generation));
        if let Some(old) = self.flights.insert(tenant.to_owned(), Arc::clone(&flight)) {
            old.land_retry();
        }
        Lookup::Lead(generation, flight)
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
        self.lru.peek(tenant).map(|c| Arc::clone(&c.ring))
    }

    /// The tenant's stored keys were read at `now` and match the cached ones:
    /// that read also answers a newer key id until the next interval.
    pub(crate) fn checked_unchanged(&mut self, tenant: &str, now: SystemTime) {
        self.forced_reloads.put(tenant.to_owned(), now);
    }

    /// Insert a freshly loaded keyring if nothing changed since `generation`.
    /// `loaded` is when the load began (the keys were read at or after it).
    pub(crate) fn insert_if_current(
        &mut self,
        tenant: &str,
        generation: u64,
        ring: Keyring,
        loaded: SystemTime,
    ) -> Insert {
        if self.gens[self.stripe(tenant)] != generation {
            return Insert::Stale;
        }
        if let Some(c) = self.lru.get(tenant) {
            return Insert::Use(Arc::clone(&c.ring), None);
        }
        let ring = Arc::new(ring);
        let cached = Cached {
            ring: Arc::clone(&ring),
            checked: loaded,
        };
        let pushed = self.lru.push(tenant.to_owned(), cached);
        let victim = pushed.map(|(t, old)| self.retire(t, &old.ring));
        Insert::Use(ring, victim)
    }

    /// Take the tenant's keyring out of the cache and retire it; bump the
    /// tenant's generation even when nothing was cached, so loads in flight
    /// start again.
    pub(crate) fn retire_tenant(&mut self, tenant: &str) -> Option<Retired> {
        self.bump(tenant);
        let cached = self.lru.pop(tenant)?;
        Some(self.retire(tenant.to_owned(), &cached.ring))
    }

    fn retire(&mut self, tenant: String, ring: &Keyring) -> Retired {
        self.bump(&tenant);
        let unspent = ring.retire();
        Retired { tenant, unspent }
    }

    /// A retired keyring's unspent uses were given back to the store (or its
    /// keys are gone: shredded): loads in flight, which may have read the
    /// store before, load again.
    pub(crate) fn given_back(&mut self, tenant: &str) {
        self.bump(tenant);
    }
}
