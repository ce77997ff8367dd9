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

use parking_lot::{Mutex, MutexGuard};

use crate::clock::{Clock, MonotonicClock};
use crate::decision::{Decision, Outcome, TierStatus};
use crate::error::{Error, Result};
use crate::gcra;
use crate::key::{KeyValue, RequestKeys};
use crate::policy::{MAX_TIERS, Policy, Tiers};

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
        if !shards.is_power_of_two() || shards > 1024 || max_keys < shards {
            return Err(Error::InvalidConfig(
                "shards must be a power of two in 1..=1024 and max_keys >= shards",
            ));
        }
        Ok(MemoryConfig { max_keys, shards })
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
    clock: C,
}

impl MemoryLimiter<MonotonicClock> {
    /// A limiter with the default bounds and a [`MonotonicClock`].
    pub fn new(tiers: Tiers) -> Self {
        Self::with_clock(tiers, MemoryConfig::default(), MonotonicClock::new())
    }
}

/// Per-tier intermediate result of one decision: the table entry to write.
struct Pending<'a> {
    entry: Entry<'a, Hashed, u64>,
    next_sweep: &'a mut u64,
    /// The TAT before this decision (reported if another tier denies).
    tat: u64,
    new_tat: u64,
    now: u64,
    /// Position of the tier's status in the decision.
    slot: usize,
}

impl<C: Clock> MemoryLimiter<C> {
    /// A limiter with explicit bounds and clock.
    pub fn with_clock(tiers: Tiers, config: MemoryConfig, clock: C) -> Self {
        let stores = tiers
            .policies()
            .iter()
            .map(|_| Store::new(config))
            .collect();
        MemoryLimiter {
            tiers,
            stores,
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

    /// The common case of one applicable tier: one lock, one table lookup
    /// (entry API). `None` when a new key meets a full shard: the general path
    /// then sweeps. Same arithmetic and results as the general path.
    #[inline]
    fn decide_one(
        &self,
        i: usize,
        p: &Policy,
        key: &KeyValue,
        n: NonZeroU32,
        now: u64,
        commit: bool,
    ) -> Option<Decision> {
        let store = &self.stores[i];
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
        match gcra::decide(tat, t, iv, tol, n.get()) {
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
                decision.push(TierStatus::new(
                    i,
                    gcra::remaining(new_tat, t, iv, tol, burst),
                    new_tat.saturating_sub(t),
                ));
            }
            Err(allow_at) => {
                decision.push(TierStatus::new(
                    i,
                    gcra::remaining(tat, t, iv, tol, burst),
                    tat.saturating_sub(t),
                ));
                decision.set_outcome(Outcome::Denied {
                    tier: p.name(),
                    retry_after: Duration::from_micros(allow_at.saturating_sub(now).max(1)),
                });
            }
        }
        Some(decision)
    }

    /// The decision over the tiers selected by `mask` (bit i = tier i).
    pub(crate) fn decide(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
        mask: u8,
        commit: bool,
    ) -> Result<Decision> {
        let policies = self.tiers.policies();
        let now = self.clock.now_micros();
        let mut applicable = policies
            .iter()
            .enumerate()
            .filter(|&(i, p)| mask & (1 << i) != 0 && keys.get(p.key_kind()).is_some());
        if let (Some((i, p)), None) = (applicable.next(), applicable.next()) {
            p.check_weight(n)?;
            if let Some(key) = keys.get(p.key_kind())
                && let Some(d) = self.decide_one(i, p, key, n, now, commit)
            {
                return Ok(d);
            }
        }
        // Locate every applicable tier's key (one keyed hash each) and check
        // the weight before taking any lock.
        let mut located: [Option<(Hashed, &Mutex<Shard>)>; MAX_TIERS] = [None; MAX_TIERS];
        for (i, (p, store)) in policies.iter().zip(&self.stores).enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let Some(key) = keys.get(p.key_kind()) else {
                continue;
            };
            p.check_weight(n)?;
            located[i] = Some(store.locate(key));
        }
        // Lock one shard per applicable tier, in tier order (a global order:
        // no deadlock), and hold them all until the decision is written.
        let mut guards: [Option<MutexGuard<'_, Shard>>; MAX_TIERS] = Default::default();
        for (guard, loc) in guards.iter_mut().zip(&located) {
            if let Some((_, shard)) = loc {
                *guard = Some(shard.lock());
            }
        }
        // One table lookup per tier: the entry found here is written below.
        let mut pending: [Option<Pending<'_>>; MAX_TIERS] = std::array::from_fn(|_| None);
        let mut decision = Decision::new(Outcome::Allowed);
        let mut worst: Option<(&'static str, u64)> = None;
        for (i, ((guard, loc), p)) in guards.iter_mut().zip(&located).zip(policies).enumerate() {
            let (Some(shard), Some((hashed, _))) = (guard.as_mut(), loc) else {
                continue;
            };
            let store = &self.stores[i];
            let t = now.max(shard.high_water);
            shard.high_water = t;
            let (iv, tol) = (p.interval_us(), p.tolerance_us());
            let mut full = false;
            if shard.map.len() >= store.per_shard && !shard.map.contains_key(hashed) {
                if t >= shard.sweep_due() {
                    shard.sweep(t);
                }
                full = shard.map.len() >= store.per_shard;
            }
            let due = shard.sweep_due();
            let Shard {
                map, next_sweep, ..
            } = &mut **shard;
            let entry = map.entry(*hashed);
            let tat = match &entry {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(_) => t,
            };
            let verdict = if full {
                tracing::warn!(
                    target: "hisn::rate_limit::memory",
                    tier = p.name(),
                    "key cap reached: new key denied"
                );
                Err(due.max(t.saturating_add(1)))
            } else {
                gcra::decide(tat, t, iv, tol, n.get())
            };
            match verdict {
                Ok(new_tat) => {
                    // Its status depends on the outcome (the new TAT if every
                    // tier admits, the old one otherwise): filled in below, so
                    // `remaining` (a division) runs once per tier.
                    pending[i] = Some(Pending {
                        entry,
                        next_sweep,
                        tat,
                        new_tat,
                        now: t,
                        slot: decision.tiers().len(),
                    });
                    decision.push(TierStatus::new(i, 0, 0));
                }
                Err(allow_at) => {
                    let wait = allow_at.saturating_sub(now).max(1);
                    if worst.is_none_or(|(_, w)| wait > w) {
                        worst = Some((p.name(), wait));
                    }
                    decision.push(TierStatus::new(
                        i,
                        gcra::remaining(tat, t, iv, tol, p.burst().get()),
                        tat.saturating_sub(t),
                    ));
                }
            }
        }
        if let Some((tier, wait)) = worst {
            // Denied: nothing is written; the tiers that admitted report
            // their unchanged state.
            for (i, (pend, p)) in pending.iter().zip(policies).enumerate() {
                if let Some(pend) = pend {
                    let (iv, tol) = (p.interval_us(), p.tolerance_us());
                    decision.set(
                        pend.slot,
                        TierStatus::new(
                            i,
                            gcra::remaining(pend.tat, pend.now, iv, tol, p.burst().get()),
                            pend.tat.saturating_sub(pend.now),
                        ),
                    );
                }
            }
            decision.set_outcome(Outcome::Denied {
                tier,
                retry_after: Duration::from_micros(wait),
            });
            return Ok(decision);
        }
        // All applicable tiers admit: write every new TAT (or only report).
        for (i, (pend, p)) in pending.iter_mut().zip(policies).enumerate() {
            let Some(pend) = pend.take() else {
                continue;
            };
            if commit {
                match pend.entry {
                    Entry::Occupied(mut e) => *e.get_mut() = pend.new_tat,
                    Entry::Vacant(v) => {
                        v.insert(pend.new_tat);
                    }
                }
                // Keep `next_sweep` a lower bound of every TAT in the shard, or a
                // shard emptied by a sweep would never be swept again.
                *pend.next_sweep = (*pend.next_sweep).min(pend.new_tat);
            }
            let (iv, tol) = (p.interval_us(), p.tolerance_us());
            decision.set(
                pend.slot,
                TierStatus::new(
                    i,
                    gcra::remaining(pend.new_tat, pend.now, iv, tol, p.burst().get()),
                    pend.new_tat.saturating_sub(pend.now),
                ),
            );
        }
        Ok(decision)
    }
}
