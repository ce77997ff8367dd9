//! The bounded in-memory store, with a bound per scope.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::{Begin, IdempotencyStore, StoredResponse};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::replay::{ClaimToken, TokenRepr};

#[derive(Debug)]
enum Record {
    InFlight {
        token: u64,
        fingerprint: [u8; 32],
        until_ms: u64,
    },
    Done {
        fingerprint: [u8; 32],
        response: StoredResponse,
        until_ms: u64,
    },
}

impl Record {
    fn until(&self) -> u64 {
        match self {
            Self::InFlight { until_ms, .. } | Self::Done { until_ms, .. } => *until_ms,
        }
    }
}

type Scopes = HashMap<String, HashMap<String, Record>>;

/// Bounded in-memory [`IdempotencyStore`] (one process).
///
/// The entry bound applies **per scope**: one tenant filling its share gets
/// [`Error::StoreFull`] (answered `503`) while every other tenant keeps
/// working. The number of scopes is bounded as well
/// ([`MemoryIdempotencyStore::DEFAULT_MAX_SCOPES`]). Expired records are swept
/// when a bound is reached; a live record is never evicted.
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    scopes: Mutex<Scopes>,
    max_per_scope: usize,
    max_scopes: usize,
    clock: Arc<dyn Clock>,
}

fn until(now: u64, d: Duration) -> u64 {
    now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl MemoryIdempotencyStore {
    /// Default bound on the number of scopes: 100,000.
    pub const DEFAULT_MAX_SCOPES: usize = 100_000;

    /// A store of at most `max_per_scope` records in each scope, on the
    /// system clock.
    pub fn new(max_per_scope: usize) -> Self {
        Self::with_clock(max_per_scope, Arc::new(SystemClock))
    }

    /// A store with an injected clock (leases and expiry follow it).
    pub fn with_clock(max_per_scope: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            scopes: Mutex::new(HashMap::new()),
            max_per_scope: max_per_scope.max(1),
            max_scopes: Self::DEFAULT_MAX_SCOPES,
            clock,
        }
    }

    /// Change the bound on the number of distinct scopes (at least 1).
    #[must_use]
    pub fn max_scopes(mut self, max_scopes: usize) -> Self {
        self.max_scopes = max_scopes.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scopes> {
        self.scopes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn begin_now(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        lease: Duration,
    ) -> Result<Begin> {
        let now = self.clock.now_unix_millis();
        let mut scopes = self.lock();
        if !scopes.contains_key(scope) && scopes.len() >= self.max_scopes {
            scopes.retain(|_, records| {
                records.retain(|_, r| r.until() > now);
                !records.is_empty()
            });
            if scopes.len() >= self.max_scopes {
                return Err(Error::StoreFull);
            }
        }
        let records = scopes.entry(scope.to_owned()).or_default();
        if let Some(r) = records.get(key)
            && r.until() > now
        {
            let (fp, done) = match r {
                Record::InFlight { fingerprint, .. } => (fingerprint, None),
                Record::Done {
                    fingerprint,
                    response,
                    ..
                } => (fingerprint, Some(response)),
            };
            if !bool::from(subtle::ConstantTimeEq::ct_eq(&fp[..], &fingerprint[..])) {
                return Ok(Begin::Mismatch);
            }
            return Ok(done.map_or(Begin::InFlight, |resp| Begin::Completed(resp.clone())));
        }
        if !records.contains_key(key) && records.len() >= self.max_per_scope {
            records.retain(|_, r| r.until() > now);
            if records.len() >= self.max_per_scope {
                return Err(Error::StoreFull);
            }
        }
        let (token, claim) = ClaimToken::next_local();
        records.insert(
            key.to_owned(),
            Record::InFlight {
                token,
                fingerprint,
                until_ms: until(now, lease),
            },
        );
        Ok(Begin::New(claim))
    }

    /// Apply `op` to the in-flight record owned by `token`; `false` if there
    /// is none.
    fn with_owned(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        op: impl FnOnce(&mut HashMap<String, Record>, [u8; 32]),
    ) -> bool {
        let mut scopes = self.lock();
        let Some(records) = scopes.get_mut(scope) else {
            return false;
        };
        let fp = match records.get(key) {
            Some(Record::InFlight {
                token: t,
                fingerprint,
                ..
            }) if token.0 == TokenRepr::Local(*t) => *fingerprint,
            _ => return false,
        };
        op(records, fp);
        if records.is_empty() {
            scopes.remove(scope);
        }
        true
    }

    /// Records held in `scope` (live or not yet swept).
    pub fn len_in_scope(&self, scope: &str) -> usize {
        self.lock().get(scope).map_or(0, HashMap::len)
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        lease: Duration,
    ) -> impl Future<Output = Result<Begin>> + Send {
        std::future::ready(self.begin_now(scope, key, fingerprint, lease))
    }

    fn renew(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool>> + Send {
        let now = self.clock.now_unix_millis();
        let ok = self.with_owned(scope, key, token, |records, _| {
            if let Some(Record::InFlight { until_ms, .. }) = records.get_mut(key) {
                *until_ms = until(now, lease);
            }
        });
        std::future::ready(Ok(ok))
    }

    fn finish(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        response: StoredResponse,
        expiry: Duration,
    ) -> impl Future<Output = Result<()>> + Send {
        let now = self.clock.now_unix_millis();
        self.with_owned(scope, key, token, |records, fingerprint| {
            records.insert(
                key.to_owned(),
                Record::Done {
                    fingerprint,
                    response,
                    until_ms: until(now, expiry),
                },
            );
        });
        std::future::ready(Ok(()))
    }

    fn abort(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<()>> + Send {
        self.with_owned(scope, key, token, |records, _| {
            records.remove(key);
        });
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn begin(s: &MemoryIdempotencyStore, scope: &str, key: &str) -> Result<Begin> {
        s.begin_now(scope, key, [7; 32], Duration::from_secs(30))
    }

    /// Root cause: the store had one entry bound shared by every scope, so
    /// one tenant creating keys until the bound made `begin` fail with
    /// `StoreFull` for every other tenant. The bound now applies per scope.
    #[test]
    fn memory_bound_is_per_scope() {
        let clock = Arc::new(ManualClock::new(1_000));
        let s = MemoryIdempotencyStore::with_clock(3, clock.clone());
        for k in ["a", "b", "c"] {
            assert!(matches!(begin(&s, "greedy", k), Ok(Begin::New(_))));
        }
        assert_eq!(begin(&s, "greedy", "d"), Err(Error::StoreFull));
        // Exactly at the bound: the fourth key of the same scope is refused,
        // an existing key still answers, another scope is unaffected.
        assert_eq!(begin(&s, "greedy", "a"), Ok(Begin::InFlight));
        for k in ["a", "b", "c"] {
            assert!(matches!(begin(&s, "polite", k), Ok(Begin::New(_))));
        }
        assert_eq!(s.len_in_scope("greedy"), 3);
        // Expired leases are swept when the bound is reached, never live ones.
        clock.advance(30);
        assert!(matches!(begin(&s, "greedy", "d"), Ok(Begin::New(_))));
        assert_eq!(s.len_in_scope("greedy"), 1);
    }

    #[test]
    fn number_of_scopes_is_bounded() {
        let clock = Arc::new(ManualClock::new(1_000));
        let s = MemoryIdempotencyStore::with_clock(10, clock.clone()).max_scopes(2);
        assert!(matches!(begin(&s, "t1", "k"), Ok(Begin::New(_))));
        assert!(matches!(begin(&s, "t2", "k"), Ok(Begin::New(_))));
        assert_eq!(begin(&s, "t3", "k"), Err(Error::StoreFull));
        assert_eq!(begin(&s, "t1", "k"), Ok(Begin::InFlight));
        clock.advance(31);
        assert!(matches!(begin(&s, "t3", "k"), Ok(Begin::New(_))));
    }

    /// At the scope bound, a scope whose records have all lapsed is swept
    /// for a new one, and a lease is over at exactly its end: one
    /// millisecond earlier the new scope is still refused.
    #[test]
    fn full_scope_table_frees_lapsed_scopes_at_exactly_the_lease_end() {
        let clock = Arc::new(ManualClock::new(1_000));
        let s = MemoryIdempotencyStore::with_clock(10, clock.clone()).max_scopes(1);
        assert!(matches!(begin(&s, "t1", "k"), Ok(Begin::New(_))));
        clock.advance_millis(29_999);
        assert_eq!(begin(&s, "t2", "k"), Err(Error::StoreFull));
        clock.advance_millis(1);
        assert!(matches!(begin(&s, "t2", "k"), Ok(Begin::New(_))));
        assert_eq!((s.len_in_scope("t1"), s.len_in_scope("t2")), (0, 1));
    }

    /// Lapsed records are swept only when the scope's bound is reached (a
    /// `begin` below the bound costs no sweep of the scope), and a lapsed
    /// key is taken over in place.
    #[test]
    fn lapsed_records_are_swept_only_at_the_bound() {
        let clock = Arc::new(ManualClock::new(1_000));
        let s = MemoryIdempotencyStore::with_clock(3, clock.clone());
        for k in ["a", "b"] {
            assert!(matches!(begin(&s, "t", k), Ok(Begin::New(_))));
        }
        clock.advance(30);
        // Below the bound: a new key and a takeover leave the lapsed `b`.
        assert!(matches!(begin(&s, "t", "c"), Ok(Begin::New(_))));
        assert!(matches!(begin(&s, "t", "a"), Ok(Begin::New(_))));
        assert_eq!(s.len_in_scope("t"), 3);
        // At the bound, a new key sweeps `b` and takes its room.
        assert!(matches!(begin(&s, "t", "d"), Ok(Begin::New(_))));
        assert_eq!(s.len_in_scope("t"), 3);
        assert_eq!(begin(&s, "t", "e"), Err(Error::StoreFull));
    }

    #[test]
    fn lease_expiry_allows_takeover_and_renewal_extends_it() {
        let clock = Arc::new(ManualClock::new(1_000));
        let s = MemoryIdempotencyStore::with_clock(10, clock.clone());
        let Ok(Begin::New(t)) = begin(&s, "t", "k") else {
            panic!("first begin")
        };
        clock.advance(29);
        assert!(matches!(
            futures_ready(s.renew("t", "k", &t, Duration::from_secs(30))),
            Ok(true)
        ));
        // Renewed at +29 s for 30 s: busy up to +58 s, free from +59 s.
        clock.advance(29);
        assert_eq!(begin(&s, "t", "k"), Ok(Begin::InFlight), "one second left");
        clock.advance(1);
        let Ok(Begin::New(t2)) = begin(&s, "t", "k") else {
            panic!("an expired lease is taken over")
        };
        // The old owner can neither renew nor finish any more.
        assert!(matches!(
            futures_ready(s.renew("t", "k", &t, Duration::from_secs(30))),
            Ok(false)
        ));
        assert!(futures_ready(s.renew("t", "k", &t2, Duration::from_secs(30))).unwrap_or(false));
    }

    fn futures_ready<T>(f: impl Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("memory store futures are ready"),
        }
    }
}
