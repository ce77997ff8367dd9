//! In-memory replay store: sharded, bounded, with TTL. For a single process
//! (and tests); use Redis or PostgreSQL when several instances receive webhooks.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use super::{Claim, ClaimToken, ReplayKey, ReplayPolicy, ReplayStore, TokenRepr};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

#[derive(Debug)]
enum State {
    Pending { token: u64, until_ms: u64 },
    Done { until_ms: u64 },
}

impl State {
    fn until(&self) -> u64 {
        match self {
            Self::Pending { until_ms, .. } | Self::Done { until_ms } => *until_ms,
        }
    }
}

type Shard = Mutex<HashMap<String, State>>;

/// Sharded, bounded in-memory [`ReplayStore`].
///
/// At most `max_entries` keys are held. When a shard is full its expired
/// entries are swept; if it is still full the claim fails with
/// [`Error::StoreFull`] (fail closed: evicting a live entry would re-open a
/// replay window). [`MemoryReplayStore::purge_expired`] sweeps every shard.
#[derive(Debug)]
pub struct MemoryReplayStore {
    shards: Box<[Shard]>,
    per_shard: usize,
    // Randomly keyed, so callers cannot aim every key at one shard.
    shard_hasher: RandomState,
    clock: Arc<dyn Clock>,
}

impl MemoryReplayStore {
    /// Default bound: one million entries.
    pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;
    const SHARDS: usize = 16;

    /// A store holding at most `max_entries` keys (at least 16), on the system clock.
    pub fn new(max_entries: usize) -> Result<Self> {
        Self::with_clock(max_entries, Arc::new(SystemClock))
    }

    /// A store with an injected clock.
    pub fn with_clock(max_entries: usize, clock: Arc<dyn Clock>) -> Result<Self> {
        if max_entries < Self::SHARDS {
            return Err(Error::InvalidConfig(
                "memory replay store needs at least 16 entries",
            ));
        }
        let shards = (0..Self::SHARDS)
            .map(|_| Mutex::new(HashMap::new()))
            .collect();
        Ok(Self {
            shards,
            per_shard: max_entries / Self::SHARDS,
            shard_hasher: RandomState::new(),
            clock,
        })
    }

    /// Number of keys held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove every expired entry; returns how many were removed.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now_unix_millis();
        self.shards
            .iter()
            .map(|s| {
                let mut m = lock(s);
                let before = m.len();
                m.retain(|_, st| st.until() > now);
                before - m.len()
            })
            .sum()
    }

    fn shard(&self, flat: &str) -> &Shard {
        let idx =
            usize::try_from(self.shard_hasher.hash_one(flat) % (Self::SHARDS as u64)).unwrap_or(0);
        &self.shards[idx]
    }

    /// Synchronous claim (the trait's async `claim` calls this).
    pub fn claim_now(&self, key: &ReplayKey<'_>, policy: &ReplayPolicy) -> Result<Claim> {
        let flat = key.flat();
        let now = self.clock.now_unix_millis();
        let mut map = lock(self.shard(&flat));
        let len = map.len();
        let (token, claim) = ClaimToken::next_local();
        let pending = State::Pending {
            token,
            until_ms: now.saturating_add(policy.lease_millis()),
        };
        match map.entry(flat) {
            Entry::Occupied(mut e) => {
                if e.get().until() > now {
                    return Ok(match e.get() {
                        State::Pending { .. } => Claim::InProgress,
                        State::Done { .. } => Claim::Done,
                    });
                }
                e.insert(pending);
            }
            Entry::Vacant(v) => {
                if len >= self.per_shard {
                    let flat = v.into_key();
                    map.retain(|_, st| st.until() > now);
                    if map.len() >= self.per_shard {
                        return Err(Error::StoreFull);
                    }
                    map.insert(flat, pending);
                } else {
                    v.insert(pending);
                }
            }
        }
        Ok(Claim::New(claim))
    }

    fn finish(&self, key: &ReplayKey<'_>, token: &ClaimToken, done_ttl: Option<u64>) -> bool {
        let flat = key.flat();
        let now = self.clock.now_unix_millis();
        let mut map = lock(self.shard(&flat));
        let ours = |t: &u64| token.0 == TokenRepr::Local(*t);
        let settles = match (map.get(&flat), done_ttl) {
            // Release: only a live claim of this token.
            (Some(State::Pending { token: t, until_ms }), None) => ours(t) && *until_ms > now,
            (_, None) => false,
            // Complete: the handler ran. Record it unless another claim
            // holds the key or it is done already; a lapsed lease that no
            // one took over (still ours, or swept) is recorded too, or the
            // event would be processed again (see `ReplayStore::complete`).
            (Some(st), Some(_)) => {
                matches!(st, State::Pending { token: t, .. } if ours(t)) || st.until() <= now
            }
            (None, Some(_)) => true,
        };
        if !settles {
            return false;
        }
        match done_ttl {
            Some(ttl) => {
                // Never past the bound: a swept key may need a new slot.
                if !map.contains_key(&flat) && map.len() >= self.per_shard {
                    map.retain(|_, st| st.until() > now);
                    if map.len() >= self.per_shard {
                        return false;
                    }
                }
                map.insert(
                    flat,
                    State::Done {
                        until_ms: now.saturating_add(ttl),
                    },
                );
            }
            None => {
                map.remove(&flat);
            }
        }
        true
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        let shards = (0..Self::SHARDS)
            .map(|_| Mutex::new(HashMap::new()))
            .collect();
        Self {
            shards,
            per_shard: Self::DEFAULT_MAX_ENTRIES / Self::SHARDS,
            shard_hasher: RandomState::new(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A poisoned shard (a panic while holding it) still holds consistent data:
/// every mutation is a single map operation.
fn lock(s: &Shard) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReplayStore for MemoryReplayStore {
    fn claim(
        &self,
        key: &ReplayKey<'_>,
        policy: &ReplayPolicy,
    ) -> impl Future<Output = Result<Claim>> + Send {
        std::future::ready(self.claim_now(key, policy))
    }

    fn complete(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
        policy: &ReplayPolicy,
    ) -> impl Future<Output = Result<bool>> + Send {
        std::future::ready(Ok(self.finish(
            key,
            token,
            Some(policy.done_ttl_millis(token)),
        )))
    }

    fn release(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool>> + Send {
        std::future::ready(Ok(self.finish(key, token, None)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn key(id: &str) -> ReplayKey<'_> {
        ReplayKey::new("tenant", "stripe", id).unwrap()
    }

    #[test]
    fn claim_lifecycle_with_lease_and_ttl() {
        let clock = Arc::new(ManualClock::new(1000));
        let s = MemoryReplayStore::with_clock(64, clock.clone()).unwrap();
        let p = ReplayPolicy::new(Duration::from_secs(10), Duration::from_secs(100)).unwrap();
        let Claim::New(t) = s.claim_now(&key("e1"), &p).unwrap() else {
            panic!("first claim must be new")
        };
        assert_eq!(s.claim_now(&key("e1"), &p).unwrap(), Claim::InProgress);
        assert!(s.finish(&key("e1"), &t, Some(p.ttl_millis())));
        assert_eq!(s.claim_now(&key("e1"), &p).unwrap(), Claim::Done);
        clock.advance(99);
        assert_eq!(s.claim_now(&key("e1"), &p).unwrap(), Claim::Done);
        clock.advance(1);
        assert!(
            matches!(s.claim_now(&key("e1"), &p).unwrap(), Claim::New(_)),
            "done marker expires after the TTL"
        );
    }

    #[test]
    fn expired_lease_is_taken_over_and_old_token_cannot_complete() {
        let clock = Arc::new(ManualClock::new(0));
        let s = MemoryReplayStore::with_clock(64, clock.clone()).unwrap();
        let p = ReplayPolicy::new(Duration::from_secs(10), Duration::from_secs(100)).unwrap();
        let Claim::New(old) = s.claim_now(&key("e"), &p).unwrap() else {
            panic!()
        };
        clock.advance(10);
        let Claim::New(new) = s.claim_now(&key("e"), &p).unwrap() else {
            panic!("lease expired: takeover")
        };
        assert!(!s.finish(&key("e"), &old, Some(1000)));
        assert!(!s.finish(&key("e"), &old, None));
        assert!(s.finish(&key("e"), &new, None), "release");
        assert!(
            matches!(s.claim_now(&key("e"), &p).unwrap(), Claim::New(_)),
            "released claims can be re-claimed"
        );
    }

    /// A lease is over at exactly its end: from that instant its token can
    /// no longer release the claim (the next claim may take it over), and one
    /// millisecond earlier it still can. Completion, which means the handler
    /// ran, is recorded either way as long as no one took the claim over.
    #[test]
    fn token_releases_its_claim_only_before_the_lease_end() {
        let clock = Arc::new(ManualClock::new(0));
        let s = MemoryReplayStore::with_clock(64, clock.clone()).unwrap();
        let p = ReplayPolicy::new(Duration::from_secs(10), Duration::from_secs(100)).unwrap();
        let claim = |id| match s.claim_now(&key(id), &p) {
            Ok(Claim::New(t)) => t,
            other => panic!("{other:?}"),
        };
        let (done, released, late_done, late_released) =
            (claim("a"), claim("b"), claim("c"), claim("d"));
        clock.advance_millis(9_999);
        assert!(s.finish(&key("a"), &done, Some(p.ttl_millis())));
        assert!(s.finish(&key("b"), &released, None));
        clock.advance_millis(1);
        assert!(s.finish(&key("c"), &late_done, Some(p.ttl_millis())));
        assert!(!s.finish(&key("d"), &late_released, None));
        // The late completion is recorded; the lapsed claim that was not
        // released is taken over by the next claim.
        assert_eq!(s.claim_now(&key("a"), &p), Ok(Claim::Done));
        assert_eq!(s.claim_now(&key("c"), &p), Ok(Claim::Done));
        assert!(matches!(s.claim_now(&key("d"), &p), Ok(Claim::New(_))));
    }

    /// `purge_expired` removes exactly the lapsed entries (a lease at exactly
    /// its end included), keeps the live ones, and counts what it removed.
    #[test]
    fn purge_removes_and_counts_exactly_the_lapsed_entries() {
        let clock = Arc::new(ManualClock::new(0));
        let s = MemoryReplayStore::with_clock(64, clock.clone()).unwrap();
        for (id, lease) in [("a", 1), ("b", 2), ("c", 5)] {
            let p = ReplayPolicy::new(Duration::from_secs(lease), Duration::from_secs(10)).unwrap();
            assert!(matches!(s.claim_now(&key(id), &p), Ok(Claim::New(_))));
        }
        assert_eq!(s.purge_expired(), 0);
        clock.advance_millis(1_000);
        assert_eq!(s.purge_expired(), 1);
        assert_eq!(s.len(), 2);
        assert_eq!(s.purge_expired(), 0);
        clock.advance_millis(1_000);
        assert_eq!(s.purge_expired(), 1);
        assert_eq!(s.len(), 1);
        let p = ReplayPolicy::DEFAULT;
        assert_eq!(s.claim_now(&key("c"), &p), Ok(Claim::InProgress));
    }

    /// A full shard sweeps lapsed entries itself when a new key arrives: a
    /// lease is over at exactly its end (`until <= now`), so at that instant
    /// the new claim takes the freed room; one millisecond earlier the shard
    /// is still full. `len` and `is_empty` count what is held.
    #[test]
    fn full_shard_frees_lapsed_entries_at_exactly_the_lease_end() {
        let clock = Arc::new(ManualClock::new(0));
        let s = MemoryReplayStore::with_clock(16, clock.clone()).unwrap();
        assert!(s.is_empty());
        let p = ReplayPolicy::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        // One key per shard (the bound is 16 keys, one per shard).
        let mut i = 0;
        while s.len() < 16 {
            // Bounded, so a broken store fails here instead of hanging.
            assert!(i < 10_000, "16 keys did not fill the store: {}", s.len());
            let _ = s.claim_now(&key(&format!("fill{i}")), &p);
            i += 1;
        }
        assert!(!s.is_empty());
        clock.advance_millis(999);
        assert_eq!(s.claim_now(&key("late"), &p), Err(Error::StoreFull));
        clock.advance_millis(1);
        assert!(matches!(s.claim_now(&key("late"), &p), Ok(Claim::New(_))));
        assert!(s.len() <= 16, "{}", s.len());
    }

    #[test]
    fn memory_is_bounded_and_fails_closed() {
        let clock = Arc::new(ManualClock::new(0));
        let s = MemoryReplayStore::with_clock(16, clock.clone()).unwrap();
        let p = ReplayPolicy::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        let mut full = 0;
        for i in 0..1000 {
            match s.claim_now(&key(&i.to_string()), &p) {
                Ok(Claim::New(_)) => {}
                Err(Error::StoreFull) => full += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(s.len() <= 16, "{}", s.len());
        assert!(full >= 1000 - 16);
        clock.advance(1);
        let held = s.len();
        assert_eq!(s.purge_expired(), held);
        assert!(s.is_empty());
        assert!(matches!(
            s.claim_now(&key("fresh"), &p).unwrap(),
            Claim::New(_)
        ));
    }
}
