//! Bounded verification for `GET /t/{tenant}/audit`.
//!
//! Verifying a whole chain hashes every record: on every call of the audit
//! route that made the server's cost per request grow with the log, at the
//! request of any tenant admin. [`VerifiedChains`] keeps, per tenant, what
//! was last verified (size, recomputed head, verdict, when the last
//! whole-chain verification finished) and per call:
//!
//! 1. reads the record at the cached head and checks its stored link is
//!    still the head the last verification computed (a rewritten or cut
//!    chain, or a prune, fails this and triggers a whole-chain verification
//!    now);
//! 2. verifies only the records appended since (from the cached head, in
//!    chunks of [`CHUNK`], against the signed checkpoints that reach into
//!    them, including truncation below a checkpoint);
//! 3. runs the whole-chain verification instead when there is no cached
//!    state or the last one is older than `HISN_AUDIT_FULL_VERIFY_SECS`
//!    (default 900 s): at most once per tenant per interval, one at a time
//!    per tenant (concurrent calls wait for it and reuse it).
//!
//! **The bound.** A record of the already verified prefix edited in place
//! *with its stored link left alone* changes nothing steps 1 and 2 read: it
//! is reported by the next whole-chain verification, at most
//! `HISN_AUDIT_FULL_VERIFY_SECS` after the last one. Any edit that changes a
//! stored link up to the head (a recomputed chain), a cut, or damage in the
//! new records is reported by the next call. The route answers the verdict
//! with how much it covers and how old its whole-chain part is
//! ([`ChainStatus`]), so it never says "intact" for records it did not check.
//! A verdict that is not ok is kept until a whole-chain verification says
//! otherwise.
//!
//! Memory: one small entry per tenant that has called the route (tenants are
//! created by sign-up, behind its own rate limit, not chosen by the caller).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hisn_audit_log::{
    Bounds, Link, SignedCheckpoint, Start, StoredRecord, TenantId, TrustedKeys, Verdict, Verifier,
    VerifyReport,
};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Records verified per step of the incremental check (memory bound).
pub const CHUNK: u64 = 4096;

/// Default seconds between whole-chain verifications of a tenant.
pub const DEFAULT_FULL_EVERY_SECS: u64 = 900;

/// What the incremental check reads from a store.
pub(crate) trait ChainSource {
    /// The chain's bounds (`None`: no chain).
    async fn bounds(&self, t: &TenantId) -> Result<Option<Bounds>, ApiError>;
    /// Records `from..to`.
    async fn read(
        &self,
        t: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<hisn_audit_log::Result<StoredRecord>>, ApiError>;
    /// The store's checkpoints (untrusted copies) and the anchors held
    /// outside it (a bad one is a verdict).
    async fn checkpoints(
        &self,
        t: &TenantId,
    ) -> Result<(Vec<SignedCheckpoint>, Vec<SignedCheckpoint>), ApiError>;
    /// The whole-chain verification.
    async fn verify_all(&self, t: &TenantId) -> Result<VerifyReport, ApiError>;
    /// The keys checkpoints must be signed with.
    fn keys(&self) -> &TrustedKeys;
}

/// What was last verified of one chain.
#[derive(Debug, Clone, Copy)]
struct Checked {
    /// First held record (changes with a prune).
    first: u64,
    /// Records `first..size` are covered by `verdict`.
    size: u64,
    /// The recomputed link of record `size - 1`.
    head: Link,
    verdict: Verdict,
    /// When the last whole-chain verification finished, and its size.
    full_at: Instant,
    full_size: u64,
}

/// The verdict the audit route answers, and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainStatus {
    /// The verdict over records `..size`.
    pub verdict: Verdict,
    /// Records covered by the verdict.
    pub size: u64,
    /// Size of the chain at the last whole-chain verification.
    pub full_size: u64,
    /// Age of the last whole-chain verification.
    pub full_age: Duration,
    /// Records hashed for this answer.
    pub hashed: u64,
}

impl ChainStatus {
    fn empty() -> Self {
        Self {
            verdict: Verdict::Intact,
            size: 0,
            full_size: 0,
            full_age: Duration::ZERO,
            hashed: 0,
        }
    }

    /// The `verification` object of the audit route.
    pub fn to_json(&self, full_every: Duration) -> Value {
        json!({
            "verdict": self.verdict.as_str(),
            "verified_size": self.size,
            "full_verified_size": self.full_size,
            "full_verified_age_secs": self.full_age.as_secs(),
            "full_verify_every_secs": full_every.as_secs(),
        })
    }
}

/// Per-tenant verified state (clones share it).
#[derive(Debug, Clone)]
pub struct VerifiedChains {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tenants: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<Option<Checked>>>>>,
    full_every: Duration,
    hashed: AtomicU64,
    full_runs: AtomicU64,
}

impl VerifiedChains {
    /// A whole-chain verification at most every `full_every` per tenant.
    pub fn new(full_every: Duration) -> Self {
        Self {
            inner: Arc::new(Shared {
                tenants: Mutex::default(),
                full_every,
                hashed: AtomicU64::new(0),
                full_runs: AtomicU64::new(0),
            }),
        }
    }

    /// The interval between whole-chain verifications.
    pub fn full_every(&self) -> Duration {
        self.inner.full_every
    }

    /// Records hashed by verification so far (all tenants).
    pub fn hashed(&self) -> u64 {
        self.inner.hashed.load(Ordering::SeqCst)
    }

    /// Whole-chain verifications run so far (all tenants).
    pub fn full_runs(&self) -> u64 {
        self.inner.full_runs.load(Ordering::SeqCst)
    }

    /// Make every tenant's last whole-chain verification `by` older (tests:
    /// time passing without sleeping).
    #[doc(hidden)]
    pub async fn age(&self, by: Duration) {
        let slots: Vec<_> = self
            .inner
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let mut g = slot.lock().await;
            match g.as_mut().map(|c| c.full_at.checked_sub(by)) {
                Some(Some(at)) => {
                    if let Some(c) = g.as_mut() {
                        c.full_at = at;
                    }
                }
                // The monotonic clock started less than `by` ago: forget
                // the state, which forces the rerun as well.
                Some(None) => *g = None,
                None => {}
            }
        }
    }

    fn slot(&self, t: &TenantId) -> Arc<tokio::sync::Mutex<Option<Checked>>> {
        let mut map = self
            .inner
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(t.clone()).or_default())
    }

    fn count(&self, n: u64) {
        self.inner.hashed.fetch_add(n, Ordering::SeqCst);
    }

    /// The verdict of `t`'s chain (see the module docs).
    pub(crate) async fn status<S: ChainSource>(
        &self,
        src: &S,
        t: &TenantId,
    ) -> Result<ChainStatus, ApiError> {
        let slot = self.slot(t);
        let mut cached = slot.lock().await;
        let Some(bounds) = src.bounds(t).await? else {
            *cached = None;
            return Ok(ChainStatus::empty());
        };
        if let Some(c) = cached.as_mut()
            && c.full_at.elapsed() < self.inner.full_every
            && let Some(hashed) = self.extend(src, t, &bounds, c).await?
        {
            return Ok(ChainStatus {
                verdict: c.verdict,
                size: c.size,
                full_size: c.full_size,
                full_age: c.full_at.elapsed(),
                hashed,
            });
        }
        let report = src.verify_all(t).await?;
        let hashed = report.size.saturating_sub(report.verified_from);
        self.count(hashed);
        self.inner.full_runs.fetch_add(1, Ordering::SeqCst);
        let c = Checked {
            first: report.verified_from,
            size: report.size,
            head: report.head,
            verdict: report.verdict,
            full_at: Instant::now(),
            full_size: report.size,
        };
        *cached = Some(c);
        Ok(ChainStatus {
            verdict: c.verdict,
            size: c.size,
            full_size: c.full_size,
            full_age: Duration::ZERO,
            hashed,
        })
    }

    /// Steps 1 and 2: `None` when only a whole-chain verification can say
    /// (the head moved, a cut, a prune); else the records hashed.
    async fn extend<S: ChainSource>(
        &self,
        src: &S,
        t: &TenantId,
        bounds: &Bounds,
        c: &mut Checked,
    ) -> Result<Option<u64>, ApiError> {
        if bounds.first_seq != c.first || bounds.size < c.size || c.size <= c.first {
            return Ok(None);
        }
        let Some(last) = c.size.checked_sub(1) else {
            return Ok(None);
        };
        let head = src.read(t, last, c.size).await?;
        match head.first() {
            Some(Ok(r)) if r.seq == last && r.link.as_bytes() == c.head.as_bytes() => {}
            _ => return Ok(None),
        }
        if bounds.size == c.size {
            return Ok(Some(0));
        }
        let (mut store_cps, mut anchors) = src.checkpoints(t).await?;
        // Only checkpoints that reach into the new records (one of size
        // `c.size` is checked against the cached head): the older ones were
        // checked when their records were.
        store_cps.retain(|cp| cp.checkpoint.size >= c.size);
        anchors.retain(|cp| cp.checkpoint.size >= c.size);
        let mut hashed = 0;
        while c.size < bounds.size {
            let to = c.size.saturating_add(CHUNK).min(bounds.size);
            let records = src.read(t, c.size, to).await?;
            hashed += to - c.size;
            let verifier = Verifier::new(t, &store_cps, Some(src.keys())).anchors(&anchors);
            let start = Start::Trusted {
                seq: c.size,
                prev: c.head,
            };
            // The last chunk runs to the end of the log: a checkpoint beyond
            // it is a truncation.
            let report = if to == bounds.size {
                verifier.verify_log(start, records)?
            } else {
                verifier.verify_range(start, records)?
            };
            // A verdict that is not ok stays; an unanchored tail becomes
            // intact when a checkpoint further on matches the chain.
            if c.verdict.is_ok() {
                c.verdict = report.verdict;
            }
            c.size = report.size.max(to);
            c.head = report.head;
            if !report.verdict.is_ok() {
                break;
            }
        }
        self.count(hashed);
        Ok(Some(hashed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use hisn_audit_log::{AuditRead, Event, MemoryStore, SigningKey, Timestamp};

    use super::*;

    struct Mem {
        store: MemoryStore,
        keys: TrustedKeys,
    }

    impl ChainSource for Mem {
        async fn bounds(&self, t: &TenantId) -> Result<Option<Bounds>, ApiError> {
            match self.store.bounds(t) {
                Ok(b) => Ok(Some(b)),
                Err(hisn_audit_log::Error::NotFound) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        async fn read(
            &self,
            t: &TenantId,
            from: u64,
            to: u64,
        ) -> Result<Vec<hisn_audit_log::Result<StoredRecord>>, ApiError> {
            Ok(self.store.read_range(t, from, to)?)
        }
        async fn checkpoints(
            &self,
            t: &TenantId,
        ) -> Result<(Vec<SignedCheckpoint>, Vec<SignedCheckpoint>), ApiError> {
            Ok((self.store.checkpoints(t)?, Vec::new()))
        }
        async fn verify_all(&self, t: &TenantId) -> Result<VerifyReport, ApiError> {
            Ok(self.store.verify(t, Some(&self.keys), &[])?)
        }
        fn keys(&self) -> &TrustedKeys {
            &self.keys
        }
    }

    fn world(n: u64) -> (Mem, TenantId, SigningKey) {
        let key = SigningKey::from_bytes("test", &[7; 32]).unwrap();
        let mem = Mem {
            store: MemoryStore::new(),
            keys: TrustedKeys::new().with(key.verifying_key()),
        };
        let t = TenantId::parse("tenant-a").unwrap();
        append(&mem, &t, n);
        (mem, t, key)
    }

    fn append(mem: &Mem, t: &TenantId, n: u64) {
        for i in 0..n {
            let e = Event::builder(t, "user-1", "asset.update")
                .entity("asset", &format!("a{i}"))
                .build(&hisn_audit_log::FakeClock::new(
                    Timestamp::from_unix_micros(1_700_000_000_000_000),
                ))
                .unwrap();
            mem.store.append(&e).unwrap();
        }
    }

    fn sign(mem: &Mem, t: &TenantId, key: &SigningKey) {
        mem.store
            .checkpoint(t, key, Timestamp::from_unix_micros(1_700_000_100_000_000))
            .unwrap();
    }

    /// Edit record `seq`'s bytes, leaving every stored link alone.
    fn edit_in_place(mem: &Mem, t: &TenantId, seq: u64) {
        let b = mem.store.bounds(t).unwrap();
        let mut records = mem.store.records(t);
        let r = records.iter_mut().find(|r| r.seq == seq).unwrap();
        let last = r.bytes.len() - 1;
        r.bytes[last] ^= 1;
        mem.store
            .replace_records(t, b.first_seq, Link::GENESIS, records);
    }

    #[tokio::test]
    async fn per_call_hashing_is_the_new_records_not_the_log() {
        let (mem, t, key) = world(500);
        sign(&mem, &t, &key);
        let v = VerifiedChains::new(Duration::from_secs(3600));
        let first = v.status(&mem, &t).await.unwrap();
        assert_eq!(
            (first.verdict, first.size, first.hashed),
            (Verdict::Intact, 500, 500)
        );
        for _ in 0..5 {
            let s = v.status(&mem, &t).await.unwrap();
            assert_eq!((s.verdict, s.size, s.hashed), (Verdict::Intact, 500, 0));
        }
        append(&mem, &t, 3);
        let s = v.status(&mem, &t).await.unwrap();
        // Three new records, not checkpointed yet: checked, and said so.
        assert_eq!(
            (s.verdict, s.size, s.hashed),
            (Verdict::UnanchoredTail, 503, 3)
        );
        sign(&mem, &t, &key);
        append(&mem, &t, 1);
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!(
            (s.verdict, s.size, s.hashed),
            (Verdict::UnanchoredTail, 504, 1)
        );
        assert_eq!(v.full_runs(), 1);
        assert_eq!(v.hashed(), 504, "each record hashed once");
    }

    #[tokio::test]
    async fn a_rewritten_chain_or_a_cut_is_reported_by_the_next_call() {
        let (mem, t, key) = world(50);
        sign(&mem, &t, &key);
        let v = VerifiedChains::new(Duration::from_secs(3600));
        assert_eq!(v.status(&mem, &t).await.unwrap().verdict, Verdict::Intact);
        // Record 10 edited and every link after it recomputed: the head moves.
        let mut records = mem.store.records(&t);
        let tb = t.as_str().as_bytes();
        let mut prev = records[9].link;
        for r in records.iter_mut().skip(10) {
            if r.seq == 10 {
                let last = r.bytes.len() - 1;
                r.bytes[last] ^= 1;
            }
            r.link = hisn_audit_log::chain_link(
                tb,
                r.seq,
                &prev,
                &hisn_audit_log::record_digest(&r.bytes),
            );
            prev = r.link;
        }
        mem.store
            .replace_records(&t, 0, Link::GENESIS, records.clone());
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!(s.verdict, Verdict::Tampered, "{s:?}");
        assert_eq!(v.full_runs(), 2, "the moved head forced a whole-chain run");

        // A cut below the checkpoint.
        let (mem, t, key) = world(50);
        sign(&mem, &t, &key);
        let v = VerifiedChains::new(Duration::from_secs(3600));
        assert_eq!(v.status(&mem, &t).await.unwrap().verdict, Verdict::Intact);
        let mut records = mem.store.records(&t);
        records.truncate(40);
        mem.store.replace_records(&t, 0, Link::GENESIS, records);
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!(s.verdict, Verdict::Truncated, "{s:?}");
    }

    #[tokio::test]
    async fn damage_in_new_records_is_reported_and_stays() {
        let (mem, t, key) = world(20);
        sign(&mem, &t, &key);
        let v = VerifiedChains::new(Duration::from_secs(3600));
        assert_eq!(v.status(&mem, &t).await.unwrap().verdict, Verdict::Intact);
        append(&mem, &t, 5);
        edit_in_place(&mem, &t, 22);
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!((s.verdict, s.hashed), (Verdict::Tampered, 5), "{s:?}");
        append(&mem, &t, 2);
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!(
            s.verdict,
            Verdict::Tampered,
            "a bad verdict is sticky: {s:?}"
        );
    }

    #[tokio::test]
    async fn an_edit_in_the_verified_prefix_is_reported_within_the_bound() {
        let (mem, t, key) = world(100);
        sign(&mem, &t, &key);
        let v = VerifiedChains::new(Duration::from_secs(900));
        assert_eq!(v.status(&mem, &t).await.unwrap().verdict, Verdict::Intact);
        // Bytes of record 5 edited, its stored link and all others left:
        // nothing the incremental check reads changes...
        edit_in_place(&mem, &t, 5);
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!((s.verdict, s.hashed), (Verdict::Intact, 0));
        // ...and the answer says how old its whole-chain part is.
        assert!(s.full_age < Duration::from_secs(900));
        // Once the interval has passed, the next call verifies the whole
        // chain and reports the edit.
        v.age(Duration::from_secs(901)).await;
        let s = v.status(&mem, &t).await.unwrap();
        assert_eq!((s.verdict, s.hashed), (Verdict::Tampered, 100), "{s:?}");
        assert_eq!(s.full_age, Duration::ZERO);
    }
}
