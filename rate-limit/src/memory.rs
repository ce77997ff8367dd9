//! The in-process backend: GCRA (the same algorithm as `governor`, checked
//! decision-for-decision by a property test) over a sharded, bounded key store.
//!
//! # Why not `governor`'s limiter itself
//! Tiers must be all-or-nothing (a denial by one tier consumes nothing on the
//! others), which needs the state of several keys inspected and written under
//! one lock set; `governor`'s `StateStore` updates one key at a time and cannot
//! roll one back. Its keyed store also has no hard size cap, and its nanosecond
//! arithmetic cannot be reproduced by the Redis script (Lua numbers are
//! doubles): this backend uses whole microseconds, like Redis `TIME`.
//!
//! # Memory
//! Keys are attacker-chosen. Each tier holds at most `max_keys` keys (split
//! evenly over the shards). An entry whose TAT is not after now carries no
//! information (an absent key behaves identically) and is evicted when a shard
//! is full (a sweep costs O(keys in the shard) and runs at most once per
//! millisecond per shard, and only when some entry can have gone idle); if a
//! shard is still full of active keys, a request with a *new* key is denied
//! (fail closed) until the next sweep can free a slot. Active keys
//! cost an attacker requests: a key admitted once stays active for one
//! emission interval τ, so filling `max_keys` takes `max_keys / τ` requests per
//! second with distinct keys.
//!
//! # Clock
//! Each shard keeps the latest time it has seen; a clock that goes backwards
//! reads as that time (time stands still), so a step back neither panics nor
//! admits more than the contract allows.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::num::NonZeroU32;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::{Clock, MonotonicClock};
use crate::decision::{Decision, Outcome, TierStatus};
use crate::error::{Error, Result};
use crate::gcra;
use crate::key::{KeyValue, RequestKeys};
use crate::policy::{Policy, Tiers};

/// Default hard cap of keys per tier.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default number of lock shards per tier.
pub const DEFAULT_SHARDS: usize = 16;

/// Memory bounds of a [`MemoryLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    max_keys: usize,
    shards: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_keys: DEFAULT_MAX_KEYS,
            shards: DEFAULT_SHARDS,
        }
    }
}

impl MemoryConfig {
    /// At most `max_keys` keys per tier over `shards` lock shards (a power of
    /// two, 1..=1024; `max_keys >= shards`). The exact cap is
    /// `shards * (max_keys / shards)`.
    pub fn new(max_keys: usize, shards: usize) -> Result<Self> {
        Self::check(max_keys, shards)?;
        Ok(MemoryConfig { max_keys, shards })
    }

    /// The bounds [`MemoryConfig::new`] checks (outside `new`, which
    /// cargo-mutants never mutates: see docs/MUTATION.md).
    fn check(max_keys: usize, shards: usize) -> Result<()> {
        if !shards.is_power_of_two() || shards > 1024 || max_keys < shards {
            return Err(Error::InvalidConfig(
                "shards must be a power of two in 1..=1024 and max_keys >= shards",
            ));
        }
        Ok(())
    }
}

/// A key with its keyed (SipHash, per-process random key) hash computed once:
/// the same hash picks the shard (middle bits) and the bucket (through
/// [`PassThrough`]), so a lookup hashes the key once. Collisions stay as hard
/// to find as with `RandomState`, because this is `RandomState`'s hash.
#[derive(Debug, Clone, Copy)]
struct Hashed {
    hash: u64,
    key: KeyValue,
}

impl PartialEq for Hashed {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}
impl Eq for Hashed {}

impl Hash for Hashed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hands the precomputed hash of [`Hashed`] to the table unchanged.
#[derive(Debug, Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Hashed`; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Table = HashMap<Hashed, u64, BuildHasherDefault<PassThrough>>;

#[derive(Debug)]
struct Shard {
    map: Table,
    /// Latest time seen (µs): a clock going backwards reads as this.
    high_water: u64,
    /// No entry can be idle before this time (µs), so sweeping earlier is useless.
    next_sweep: u64,
    /// When the last sweep ran (µs).
    last_sweep: u64,
}

impl Shard {
    /// Drop idle entries (TAT ≤ now) and note when the next one goes idle.
    fn sweep(&mut self, now: u64) {
        let mut next = u64::MAX;
        self.map.retain(|_, tat| {
            let keep = *tat > now;
            if keep {
                next = next.min(*tat);
            }
            keep
        });
        self.next_sweep = next;
        self.last_sweep = now;
    }

    /// A full shard meets `key` at `now`: `None` if the key is already held
    /// or a sweep frees a slot, else `Some(earliest time a sweep may run)`
    /// (a new key is then denied until then: fail closed). Out of line: only
    /// a full shard gets here.
    #[cold]
    #[inline(never)]
    fn room_for(&mut self, key: &Hashed, now: u64, cap: usize, tier: &'static str) -> Option<u64> {
        if self.map.contains_key(key) {
            return None;
        }
        if now >= self.sweep_due() {
            self.sweep(now);
        }
        if self.map.len() < cap {
            return None;
        }
        tracing::warn!(
            target: "hisn::rate_limit::memory",
            tier,
            "key cap reached: new key denied"
        );
        Some(self.sweep_due())
    }

    /// Earliest time the next sweep may run: when an entry can be idle, and
    /// at most once per [`MIN_SWEEP_INTERVAL_US`] (a sweep costs O(keys in the
    /// shard); under a flood of new keys this bounds that work per shard).
    fn sweep_due(&self) -> u64 {
        self.next_sweep
            .max(self.last_sweep.saturating_add(MIN_SWEEP_INTERVAL_US))
    }
}

/// Minimum time between two sweeps of one shard (1 ms).
const MIN_SWEEP_INTERVAL_US: u64 = 1_000;

#[derive(Debug)]
struct Store {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl Store {
    fn new(cfg: MemoryConfig) -> Self {
        let shards = (0..cfg.shards)
            .map(|_| {
                Mutex::new(Shard {
                    map: Table::default(),
                    high_water: 0,
                    next_sweep: 0,
                    last_sweep: 0,
                })
            })
            .collect();
        Store {
            shards,
            per_shard: cfg.max_keys / cfg.shards,
            hasher: RandomState::new(),
        }
    }

    /// The key with its hash, and its shard. The shard index comes from bits
    /// 32.. of the hash: the table uses the low bits for the bucket and the top
    /// seven for its tag, so the three stay independent.
    #[inline]
    fn locate(&self, key: &KeyValue) -> (Hashed, &Mutex<Shard>) {
        let hash = self.hasher.hash_one(key);
        // `shards.len()` is a power of two ≤ 1024: the mask fits any usize.
        let mask = u64::try_from(self.shards.len() - 1).unwrap_or(0);
        let i = usize::try_from((hash >> 32) & mask).unwrap_or(0);
        (Hashed { hash, key: *key }, &self.shards[i])
    }
}

/// The in-process limiter over a [`Tiers`] set.
#[derive(Debug)]
pub struct MemoryLimiter<C: Clock = MonotonicClock> {
    tiers: Tiers,
    stores: Vec<Store>,
    /// The smallest burst of any tier: a weight up to it fits every tier.
    min_burst: NonZeroU32,
    clock: C,
}

impl MemoryLimiter<MonotonicClock> {
    /// A limiter with the default bounds and a [`MonotonicClock`].
    pub fn new(tiers: Tiers) -> Self {
        Self::with_clock(tiers, MemoryConfig::default(), MonotonicClock::new())
    }
}

/// The state of one decision while its tiers are checked.
struct Walk<'k> {
    keys: &'k RequestKeys,
    n: u32,
    now: u64,
    commit: bool,
    /// The denying tier with the longest wait so far (the first one on ties).
    worst: Option<(&'static str, u64)>,
    decision: Decision,
}

impl<C: Clock> MemoryLimiter<C> {
    /// A limiter with explicit bounds and clock.
    pub fn with_clock(tiers: Tiers, config: MemoryConfig, clock: C) -> Self {
        let stores = tiers
            .policies()
            .iter()
            .map(|_| Store::new(config))
            .collect();
        let min_burst = tiers
            .policies()
            .iter()
            .map(Policy::burst)
            .min()
            .unwrap_or(NonZeroU32::MIN);
        MemoryLimiter {
            tiers,
            stores,
            min_burst,
            clock,
        }
    }

    /// The tier set.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Check one unit against every applicable tier.
    #[inline]
    pub fn check(&self, keys: &RequestKeys) -> Result<Decision> {
        self.check_n(keys, NonZeroU32::MIN)
    }

    /// Check `n` units against every applicable tier, all-or-nothing.
    /// `Err(WeightExceedsBurst)` when `n` exceeds an applicable tier's burst
    /// (such a request could never pass).
    #[inline]
    pub fn check_n(&self, keys: &RequestKeys, n: NonZeroU32) -> Result<Decision> {
        self.decide(keys, n, u8::MAX, true)
    }

    /// What [`MemoryLimiter::check_n`] would answer, without consuming anything.
    pub fn peek_n(&self, keys: &RequestKeys, n: NonZeroU32) -> Result<Decision> {
        self.decide(keys, n, u8::MAX, false)
    }

    /// Forget the state of `kind`-keyed tiers for `key` (e.g. an account's
    /// failure count after a successful login).
    pub fn reset(&self, tier: &str, key: &KeyValue) {
        for (p, store) in self.tiers.policies().iter().zip(&self.stores) {
            if p.name() == tier {
                let (hashed, shard) = store.locate(key);
                shard.lock().map.remove(&hashed);
            }
        }
    }

    /// Evict every idle key now (they are also evicted on demand when a shard is full).
    pub fn evict_idle(&self) {
        let now = self.clock.now_micros();
        for store in &self.stores {
            for shard in &store.shards {
                let mut s = shard.lock();
                let now = now.max(s.high_water);
                s.sweep(now);
            }
        }
    }

    /// Keys held, over all tiers.
    pub fn key_count(&self) -> usize {
        self.stores
            .iter()
            .flat_map(|s| s.shards.iter())
            .map(|s| s.lock().map.len())
            .sum()
    }

    /// Hash-table slots allocated over all tiers (for memory-bound tests).
    #[doc(hidden)]
    pub fn allocated_slots(&self) -> usize {
        self.stores
            .iter()
            .flat_map(|s| s.shards.iter())
            .map(|s| s.lock().map.capacity())
            .sum()
    }

    /// The decision over the tiers selected by `mask` (bit i = tier i).
    pub(crate) fn decide(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
        mask: u8,
        commit: bool,
    ) -> Result<Decision> {
        // The applicable tiers (bit i = tier i): selected, and keyed by a
        // kind the request carries. A weight above an applicable tier's burst
        // could never pass: an error before any lock is taken (checked only
        // when the weight exceeds the smallest burst).
        let mut applicable = 0u8;
        for (i, p) in self.tiers.policies().iter().enumerate() {
            let bit = 1u8
                .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                .unwrap_or(0);
            if mask & bit != 0 && keys.get(p.key_kind()).is_some() {
                if n > self.min_burst {
                    p.check_weight(n)?;
                }
                applicable |= bit;
            }
        }
        let now = self.clock.now_micros();
        if applicable.is_power_of_two() {
            let i = applicable.trailing_zeros() as usize;
            if let (Some(p), Some(store)) = (self.tiers.policies().get(i), self.stores.get(i))
                && let Some(key) = keys.get(p.key_kind())
                && let Some(d) = self.decide_one(i, p, store, key, n.get(), now, commit)
            {
                return Ok(d);
            }
        }
        let mut walk = Walk {
            keys,
            n: n.get(),
            now,
            commit,
            worst: None,
            decision: Decision::new(Outcome::Allowed),
        };
        if applicable != 0 {
            self.walk(&mut walk, applicable, 0);
        }
        if let Some((tier, wait)) = walk.worst {
            walk.decision.set_outcome(Outcome::Denied {
                tier,
                retry_after: Duration::from_micros(wait),
            });
        }
        Ok(walk.decision)
    }

    /// The common case of one applicable tier (tier `i`): one lock, one
    /// table lookup, no recursion. `None` when a new key meets a full shard:
    /// [`MemoryLimiter::walk`] then sweeps. Same arithmetic and results as
    /// the walk.
    #[inline]
    #[allow(clippy::too_many_arguments)] // one call site; a struct would be moved per call
    fn decide_one(
        &self,
        i: usize,
        p: &Policy,
        store: &Store,
        key: &KeyValue,
        n: u32,
        now: u64,
        commit: bool,
    ) -> Option<Decision> {
        let (hashed, shard) = store.locate(key);
        let mut guard = shard.lock();
        let shard = &mut *guard;
        let t = now.max(shard.high_water);
        shard.high_water = t;
        let (iv, tol, burst) = (p.interval_us(), p.tolerance_us(), p.burst().get());
        let full = shard.map.len() >= store.per_shard;
        let entry = shard.map.entry(hashed);
        let tat = match &entry {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(_) if full => return None,
            Entry::Vacant(_) => t,
        };
        let mut decision = Decision::new(Outcome::Allowed);
        let reported = match gcra::decide(tat, t, iv, tol, n) {
            Ok(new_tat) => {
                if commit {
                    match entry {
                        Entry::Occupied(mut e) => *e.get_mut() = new_tat,
                        Entry::Vacant(v) => {
                            v.insert(new_tat);
                            shard.next_sweep = shard.next_sweep.min(new_tat);
                        }
                    }
                }
                new_tat
            }
            Err(allow_at) => {
                decision.set_outcome(Outcome::Denied {
                    tier: p.name(),
                    retry_after: Duration::from_micros(allow_at.saturating_sub(now).max(1)),
                });
                tat
            }
        };
        decision.set(
            0,
            TierStatus::new(
                i,
                gcra::remaining(reported, t, iv, tol, burst),
                reported.saturating_sub(t),
            ),
        );
        Some(decision)
    }

    /// Check the tiers in `pending` (bit i = tier i, at least one), the
    /// lowest first, at position `pos` of the decision; then write (or only
    /// report) each of them.
    ///
    /// One frame per applicable tier, in tier order: hash its key (once),
    /// lock its shard, look the key up (once: the entry found is the one
    /// written), check it, and recurse with the lock held. When the deepest
    /// frame is reached every applicable shard is locked, so the outcome
    /// (`worst`) is decided with all of them held; each frame then writes
    /// its new TAT (only if no tier denied) before releasing its lock. Every
    /// key is read and written under its own lock, so the tiers are
    /// all-or-nothing. Locks are taken in tier order (a global order: no
    /// deadlock). No per-decision arrays: the entry and the guard live in
    /// the frame.
    fn walk(&self, walk: &mut Walk<'_>, pending: u8, pos: usize) {
        let i = pending.trailing_zeros() as usize;
        let rest = pending & pending.wrapping_sub(1);
        let (Some(p), Some(store)) = (self.tiers.policies().get(i), self.stores.get(i)) else {
            return;
        };
        let Some(key) = walk.keys.get(p.key_kind()) else {
            return;
        };
        let (hashed, shard) = store.locate(key);
        let mut guard = shard.lock();
        let shard = &mut *guard;
        let t = walk.now.max(shard.high_water);
        shard.high_water = t;
        let full = if shard.map.len() >= store.per_shard {
            shard.room_for(&hashed, t, store.per_shard, p.name())
        } else {
            None
        };
        let Shard {
            map, next_sweep, ..
        } = shard;
        let entry = map.entry(hashed);
        let tat = match &entry {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(_) => t,
        };
        let (iv, tol) = (p.interval_us(), p.tolerance_us());
        let verdict = match full {
            Some(due) => Err(due.max(t.saturating_add(1))),
            None => gcra::decide(tat, t, iv, tol, walk.n),
        };
        let new_tat = match verdict {
            Ok(new_tat) => Some(new_tat),
            Err(allow_at) => {
                let wait = allow_at.saturating_sub(walk.now).max(1);
                if walk.worst.is_none_or(|(_, w)| wait > w) {
                    walk.worst = Some((p.name(), wait));
                }
                None
            }
        };
        if rest != 0 {
            self.walk(walk, rest, pos + 1);
        }
        // Every tier has been checked: denied, nothing is written and each
        // tier reports its unchanged state; admitted, each writes its new TAT.
        let reported = match (walk.worst, new_tat) {
            (None, Some(new_tat)) => {
                if walk.commit {
                    match entry {
                        Entry::Occupied(mut e) => *e.get_mut() = new_tat,
                        Entry::Vacant(v) => {
                            v.insert(new_tat);
                            // Keep `next_sweep` a lower bound of every TAT in
                            // the shard, or a shard emptied by a sweep would
                            // never be swept again. (Updating an occupied key
                            // only raises its TAT: the bound holds.)
                            *next_sweep = (*next_sweep).min(new_tat);
                        }
                    }
                }
                new_tat
            }
            _ => tat,
        };
        walk.decision.set(
            pos,
            TierStatus::new(
                i,
                gcra::remaining(reported, t, iv, tol, p.burst().get()),
                reported.saturating_sub(t),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::clock::ManualClock;
    use crate::policy::KeyKind;

    const T0: u64 = 1_700_000_000_000_000;

    type Manual = MemoryLimiter<ManualClock>;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn policy(name: &'static str, quota: u32, period: Duration, kind: KeyKind) -> Policy {
        Policy::new(name, nz(quota), period, kind).unwrap()
    }

    fn limiter(policies: Vec<Policy>, config: MemoryConfig) -> Manual {
        MemoryLimiter::with_clock(
            Tiers::new(policies).unwrap(),
            config,
            ManualClock::from_micros(T0),
        )
    }

    fn keys(pairs: &[(KeyKind, &str)]) -> RequestKeys {
        pairs.iter().fold(RequestKeys::new(), |k, (kind, v)| {
            k.with(*kind, KeyValue::text(v).unwrap())
        })
    }

    /// Runs a test body on its own thread and fails the test if it has not
    /// returned within 10 s. A check that takes a shard lock it already
    /// holds deadlocks; without this bound the suite would hang instead of
    /// failing.
    fn bounded(body: impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        let worker = thread::spawn(move || {
            body();
            let _ = tx.send(());
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("a limiter check did not return within 10 s (deadlock)")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Err(payload) = worker.join() {
                    std::panic::resume_unwind(payload);
                }
            }
        }
    }

    /// One shard holding two keys, one tier of 1000 per second: τ = 1 ms.
    fn tiny() -> Manual {
        limiter(
            vec![policy("ip", 1000, Duration::from_secs(1), KeyKind::Ip)],
            MemoryConfig::new(2, 1).unwrap(),
        )
    }

    fn ip(v: &str) -> RequestKeys {
        keys(&[(KeyKind::Ip, v)])
    }

    #[test]
    fn memory_config_shards_are_a_power_of_two_up_to_1024_and_at_most_max_keys() {
        assert!(MemoryConfig::new(1024, 1024).is_ok());
        assert!(MemoryConfig::new(1, 1).is_ok());
        assert!(MemoryConfig::new(4096, 2048).is_err());
        assert!(MemoryConfig::new(100, 12).is_err());
        assert!(MemoryConfig::new(15, 16).is_err());
        assert_eq!(
            MemoryConfig::default(),
            MemoryConfig::new(DEFAULT_MAX_KEYS, DEFAULT_SHARDS).unwrap()
        );
    }

    /// The table buckets by the keyed hash `locate` computed (`RandomState`'s,
    /// so collisions are as hard to find as with a plain `HashMap`), handed
    /// through unchanged: not a constant, which would put every key of a
    /// shard in one probe chain (a hash-flooding slowdown).
    #[test]
    fn table_buckets_by_the_keyed_hash_computed_once() {
        let store = Store::new(MemoryConfig::new(64, 4).unwrap());
        let table = BuildHasherDefault::<PassThrough>::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..64u32 {
            let key = KeyValue::text(&format!("key-{i}")).unwrap();
            let (hashed, _) = store.locate(&key);
            assert_eq!(hashed.hash, store.hasher.hash_one(key));
            assert_eq!(table.hash_one(hashed), hashed.hash);
            seen.insert(table.hash_one(hashed));
        }
        assert_eq!(seen.len(), 64, "distinct keys, distinct table hashes");
    }

    /// Keys spread over every shard (the shard index comes from the keyed
    /// hash), so the cap is `shards * (max_keys / shards)`, not one shard's
    /// share: 400 keys fit a 1024-key, 16-shard store (expected 25 a shard
    /// of 64 slots) and land in all 16 shards.
    #[test]
    fn keys_spread_over_every_shard_and_the_cap_is_their_sum() {
        bounded(|| {
            let l = limiter(
                vec![policy("ip", 1, Duration::from_secs(60), KeyKind::Ip)],
                MemoryConfig::new(1024, 16).unwrap(),
            );
            for i in 0..400u32 {
                let k = ip(&format!("10.0.{}.{}", i / 256, i % 256));
                assert!(l.check(&k).unwrap().is_allowed(), "key {i}");
            }
            assert_eq!(l.key_count(), 400);
            let store = &l.stores[0];
            assert_eq!(store.per_shard, 64);
            assert!(store.shards.iter().all(|s| !s.lock().map.is_empty()));
        });
    }

    /// Two keys whose 64-bit hashes collide stay two entries: a collision
    /// never merges two callers' budgets.
    #[test]
    fn colliding_hashes_never_merge_two_keys() {
        let a = Hashed {
            hash: 7,
            key: KeyValue::text("a").unwrap(),
        };
        let b = Hashed {
            hash: 7,
            key: KeyValue::text("b").unwrap(),
        };
        assert_ne!(a, b);
        assert_eq!(a, a);
        let mut table = Table::default();
        table.insert(a, 1);
        table.insert(b, 2);
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(&a), Some(&1));
    }

    /// An entry whose TAT is now carries no information: it is evicted at
    /// exactly its TAT, not one microsecond later.
    #[test]
    fn idle_entry_is_evicted_at_exactly_its_tat() {
        bounded(|| {
            let l = tiny();
            assert!(l.check(&ip("a")).unwrap().is_allowed());
            l.clock().advance_micros(999);
            l.evict_idle();
            assert_eq!(l.key_count(), 1);
            l.clock().advance_micros(1);
            l.evict_idle();
            assert_eq!(l.key_count(), 0);
        });
    }

    /// A full shard of active keys denies a new key (fail closed) and says
    /// exactly when a sweep may free a slot: not before the oldest key goes
    /// idle, and not sooner than 1 ms after the last sweep (a sweep costs
    /// O(keys); the interval bounds that work under a flood of new keys).
    #[test]
    fn full_shard_denies_new_keys_until_the_next_sweep_can_free_a_slot() {
        bounded(|| {
            let l = tiny();
            let clock = l.clock();
            assert!(l.check(&ip("a")).unwrap().is_allowed()); // idle at T0 + 1000
            clock.advance_micros(100);
            assert!(l.check(&ip("b")).unwrap().is_allowed()); // idle at T0 + 1100
            // T0 + 500: the sweep frees nothing; the next may run at T0 + 1500
            // (1 ms after this one), later than `a` goes idle.
            clock.set_micros(T0 + 500);
            let d = l.check(&ip("c")).unwrap();
            assert_eq!(d.denied_by(), Some("ip"));
            assert_eq!(d.retry_after(), Duration::from_micros(1000));
            // `a` is idle now, but the next sweep is not due before T0 + 1500.
            clock.set_micros(T0 + 1200);
            let d = l.check(&ip("c")).unwrap();
            assert_eq!(d.retry_after(), Duration::from_micros(300));
            clock.set_micros(T0 + 1499);
            let d = l.check(&ip("c")).unwrap();
            assert_eq!(d.retry_after(), Duration::from_micros(1));
            assert_eq!(l.key_count(), 2);
            clock.set_micros(T0 + 1500);
            assert!(l.check(&ip("c")).unwrap().is_allowed());
            assert_eq!(l.key_count(), 1, "the sweep evicted both idle keys");
        });
    }

    /// On a full shard, a new key passes at exactly the time the oldest
    /// entry goes idle (its TAT) once a sweep is due; active keys stay.
    #[test]
    fn full_shard_admits_a_new_key_at_the_tat_of_its_oldest_entry() {
        bounded(|| {
            let l = tiny();
            assert!(l.check(&ip("a")).unwrap().is_allowed()); // idle at T0 + 1000
            assert!(l.check_n(&ip("b"), nz(5)).unwrap().is_allowed()); // idle at T0 + 5000
            l.clock().set_micros(T0 + 1000);
            assert!(l.check(&ip("c")).unwrap().is_allowed());
            // `b` stayed (active), `a` went: the shard is full again.
            assert_eq!(l.key_count(), 2);
            let d = l.check(&ip("d")).unwrap();
            assert_eq!(d.denied_by(), Some("ip"));
            // Next sweep: 1 ms after this one, when `c` (T0 + 2000) is idle.
            assert_eq!(d.retry_after(), Duration::from_micros(1000));
        });
    }

    #[test]
    fn key_count_and_slots_cover_every_tier() {
        bounded(|| {
            let l = limiter(
                vec![
                    policy("session", 10, Duration::from_secs(1), KeyKind::Session),
                    policy("tenant", 100, Duration::from_secs(1), KeyKind::Tenant),
                ],
                MemoryConfig::default(),
            );
            for s in ["s1", "s2", "s3"] {
                let k = keys(&[(KeyKind::Session, s), (KeyKind::Tenant, "t")]);
                assert!(l.check(&k).unwrap().is_allowed());
            }
            assert_eq!(l.key_count(), 4, "three sessions and one tenant");
            assert!(l.allocated_slots() >= 4);
        });
    }

    /// A request that carries only the second tier's key is limited by that
    /// tier alone (the first tier does not apply and must not end the walk).
    #[test]
    fn a_request_with_only_a_later_tiers_key_is_limited_by_that_tier() {
        bounded(|| {
            let l = limiter(
                vec![
                    policy("session", 10, Duration::from_secs(1), KeyKind::Session),
                    policy("tenant", 1, Duration::from_secs(60), KeyKind::Tenant),
                ],
                MemoryConfig::default(),
            );
            let k = keys(&[(KeyKind::Tenant, "t")]);
            let d = l.check(&k).unwrap();
            assert!(d.is_allowed());
            assert_eq!(d.tiers().len(), 1);
            assert_eq!(d.tiers()[0].tier(), 1);
            assert_eq!(l.check(&k).unwrap().denied_by(), Some("tenant"));
        });
    }

    /// `decide` checks exactly the tiers its mask selects (and whose key the
    /// request carries). The Redis fail-open fallback passes a mask of the
    /// keyed fail-open tiers; with one such tier the mask is that tier's bit
    /// alone, and the fallback must still limit it.
    #[test]
    fn decide_limits_exactly_the_tiers_its_mask_selects() {
        bounded(|| {
            let l = limiter(
                vec![
                    policy("session", 1, Duration::from_secs(60), KeyKind::Session),
                    policy("tenant", 1, Duration::from_secs(60), KeyKind::Tenant),
                ],
                MemoryConfig::default(),
            );
            let k = keys(&[(KeyKind::Session, "s"), (KeyKind::Tenant, "t")]);
            let tenant_only = 0b10;
            let d = l.decide(&k, nz(1), tenant_only, true).unwrap();
            assert!(d.is_allowed());
            assert_eq!(d.tiers().len(), 1);
            assert_eq!(d.tiers()[0].tier(), 1);
            let d = l.decide(&k, nz(1), tenant_only, true).unwrap();
            assert_eq!(d.denied_by(), Some("tenant"));
            // The session tier was not selected: nothing was spent there.
            let d = l.decide(&k, nz(1), 0b01, true).unwrap();
            assert!(d.is_allowed());
            assert_eq!(l.decide(&k, nz(1), 0, true).unwrap().tiers().len(), 0);
        });
    }

    /// Several denying tiers: the longest wait is reported, and on equal
    /// waits the first tier in order.
    #[test]
    fn denial_names_the_longest_wait_and_the_first_tier_on_ties() {
        bounded(|| {
            let l = limiter(
                vec![
                    policy("session", 1, Duration::from_secs(1), KeyKind::Session),
                    policy("tenant", 1, Duration::from_secs(1), KeyKind::Tenant),
                    policy("ip", 1, Duration::from_secs(10), KeyKind::Ip),
                ],
                MemoryConfig::default(),
            );
            let both = keys(&[(KeyKind::Session, "s"), (KeyKind::Tenant, "t")]);
            assert!(l.check(&both).unwrap().is_allowed());
            let d = l.check(&both).unwrap();
            assert_eq!(d.denied_by(), Some("session"), "equal waits: first tier");
            assert_eq!(d.retry_after(), Duration::from_secs(1));
            assert_eq!(d.tiers().len(), 2);
            assert_eq!((d.tiers()[0].tier(), d.tiers()[1].tier()), (0, 1));
            // The 10 s tier denies longest, whatever its position.
            let all = keys(&[
                (KeyKind::Session, "s2"),
                (KeyKind::Tenant, "t2"),
                (KeyKind::Ip, "i"),
            ]);
            assert!(l.check(&all).unwrap().is_allowed());
            let d = l.check(&all).unwrap();
            assert_eq!(d.denied_by(), Some("ip"));
            assert_eq!(d.retry_after(), Duration::from_secs(10));
            assert_eq!(d.tiers().len(), 3);
        });
    }

    /// `reset` forgets the named tier's state for the key and no other's.
    #[test]
    fn reset_forgets_only_the_named_tier() {
        bounded(|| {
            let l = limiter(
                vec![
                    policy("account", 1, Duration::from_secs(60), KeyKind::Account),
                    policy("ip", 1, Duration::from_secs(60), KeyKind::Ip),
                ],
                MemoryConfig::default(),
            );
            let account = keys(&[(KeyKind::Account, "alice")]);
            let ip_only = keys(&[(KeyKind::Ip, "alice")]);
            assert!(l.check(&account).unwrap().is_allowed());
            assert!(l.check(&ip_only).unwrap().is_allowed());
            assert!(!l.check(&account).unwrap().is_allowed());
            l.reset("account", &KeyValue::text("alice").unwrap());
            assert!(l.check(&account).unwrap().is_allowed());
            assert_eq!(l.check(&ip_only).unwrap().denied_by(), Some("ip"));
        });
    }

    /// An admitted multi-tier check reports every tier's own state, in
    /// tier order.
    #[test]
    fn multi_tier_checks_report_every_tier_in_order() {
        bounded(|| {
            let l = limiter(
                vec![
                    policy("session", 3, Duration::from_secs(1), KeyKind::Session),
                    policy("tenant", 5, Duration::from_secs(1), KeyKind::Tenant),
                ],
                MemoryConfig::default(),
            );
            let k = keys(&[(KeyKind::Session, "s"), (KeyKind::Tenant, "t")]);
            let d = l.check(&k).unwrap();
            assert!(d.is_allowed());
            let remaining: Vec<_> = d
                .tiers()
                .iter()
                .map(|t| (t.tier(), t.remaining()))
                .collect();
            assert_eq!(remaining, vec![(0, 2), (1, 4)]);
        });
    }
}
