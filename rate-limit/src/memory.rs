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
use std::hash::BuildHasher;
use std::hash::RandomState;
use std::num::NonZeroU32;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::clock::{Clock, SystemClock, unix_micros};
use crate::decision::{Decision, Outcome, TierStatus};
use crate::error::{Error, Result};
use crate::gcra;
use crate::key::{KeyValue, RequestKeys};
use crate::policy::{MAX_TIERS, Tiers};

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

#[derive(Debug)]
struct Shard {
    map: HashMap<KeyValue, u64>,
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
                    map: HashMap::new(),
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

    fn shard(&self, key: &KeyValue) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        // `shards.len()` is a power of two ≤ 1024: the mask fits any usize.
        let mask = u64::try_from(self.shards.len() - 1).unwrap_or(0);
        let i = usize::try_from(h & mask).unwrap_or(0);
        &self.shards[i]
    }
}

/// The in-process limiter over a [`Tiers`] set.
#[derive(Debug)]
pub struct MemoryLimiter<C: Clock = SystemClock> {
    tiers: Tiers,
    stores: Vec<Store>,
    clock: C,
}

impl MemoryLimiter<SystemClock> {
    /// A limiter with the default bounds and the system clock.
    pub fn new(tiers: Tiers) -> Self {
        Self::with_clock(tiers, MemoryConfig::default(), SystemClock)
    }
}

/// Per-tier intermediate result of one decision.
#[derive(Clone, Copy)]
struct Pending {
    key: KeyValue,
    new_tat: u64,
    now: u64,
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
    pub fn check(&self, keys: &RequestKeys) -> Result<Decision> {
        self.check_n(keys, NonZeroU32::MIN)
    }

    /// Check `n` units against every applicable tier, all-or-nothing.
    /// `Err(WeightExceedsBurst)` when `n` exceeds an applicable tier's burst
    /// (such a request could never pass).
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
                store.shard(key).lock().map.remove(key);
            }
        }
    }

    /// Evict every idle key now (they are also evicted on demand when a shard is full).
    pub fn evict_idle(&self) {
        let now = unix_micros(self.clock.now());
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
        let policies = self.tiers.policies();
        for (i, p) in policies.iter().enumerate() {
            if mask & (1 << i) != 0 && keys.get(p.key_kind()).is_some() && n > p.burst() {
                return Err(Error::WeightExceedsBurst {
                    tier: p.name(),
                    weight: n.get(),
                    burst: p.burst().get(),
                });
            }
        }
        let now = unix_micros(self.clock.now());
        // Lock one shard per applicable tier, in tier order (a global order:
        // no deadlock), and hold them all until the decision is written.
        let mut guards: [Option<MutexGuard<'_, Shard>>; MAX_TIERS] = Default::default();
        let mut pending: [Option<Pending>; MAX_TIERS] = [None; MAX_TIERS];
        let mut decision = Decision::new(Outcome::Allowed);
        let mut worst: Option<(&'static str, u64)> = None;
        for (i, (p, store)) in policies.iter().zip(&self.stores).enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let Some(key) = keys.get(p.key_kind()) else {
                continue;
            };
            let mut shard = store.shard(key).lock();
            let t = now.max(shard.high_water);
            shard.high_water = t;
            let (iv, tol) = (p.interval_us(), p.tolerance_us());
            let old = shard.map.get(key).copied();
            let tat = old.unwrap_or(t);
            let verdict = match gcra::decide(tat, t, iv, tol, n.get()) {
                Ok(new_tat) if old.is_none() && shard.map.len() >= store.per_shard => {
                    if t >= shard.sweep_due() {
                        shard.sweep(t);
                    }
                    if shard.map.len() >= store.per_shard {
                        tracing::warn!(
                            target: "hisn::rate_limit::memory",
                            tier = p.name(),
                            "key cap reached: new key denied"
                        );
                        Err(shard.sweep_due().max(t.saturating_add(1)))
                    } else {
                        Ok(new_tat)
                    }
                }
                v => v,
            };
            match verdict {
                Ok(new_tat) => {
                    pending[i] = Some(Pending {
                        key: *key,
                        new_tat,
                        now: t,
                    });
                }
                Err(allow_at) => {
                    let wait = allow_at.saturating_sub(now).max(1);
                    if worst.is_none_or(|(_, w)| wait > w) {
                        worst = Some((p.name(), wait));
                    }
                }
            }
            decision.push(TierStatus::new(
                p,
                gcra::remaining(tat, t, iv, tol, p.burst().get()),
                tat.saturating_sub(t),
            ));
            guards[i] = Some(shard);
        }
        if let Some((tier, wait)) = worst {
            decision.set_outcome(Outcome::Denied {
                tier,
                retry_after: Duration::from_micros(wait),
            });
            return Ok(decision);
        }
        // All applicable tiers admit: write every new TAT (or only report).
        let mut decided = Decision::new(Outcome::Allowed);
        for (i, p) in policies.iter().enumerate() {
            let (Some(pend), Some(shard)) = (pending[i], guards[i].as_mut()) else {
                continue;
            };
            if commit {
                shard.map.insert(pend.key, pend.new_tat);
                // Keep `next_sweep` a lower bound of every TAT in the shard, or a
                // shard emptied by a sweep would never be swept again.
                shard.next_sweep = shard.next_sweep.min(pend.new_tat);
            }
            let (iv, tol) = (p.interval_us(), p.tolerance_us());
            decided.push(TierStatus::new(
                p,
                gcra::remaining(pend.new_tat, pend.now, iv, tol, p.burst().get()),
                pend.new_tat.saturating_sub(pend.now),
            ));
        }
        Ok(decided)
    }
}
