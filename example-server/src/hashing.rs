//! A bound on concurrent password hashing.
//!
//! Every argon2id run (sign-up, login, password change, a member created by
//! an admin) takes 19 MiB and a core for tens of milliseconds (OWASP
//! parameters). Without a bound, a burst of anonymous logins queues an
//! unbounded number of them on tokio's blocking pool (up to 512 threads):
//! memory and CPU run out before any rate limit notices. [`HashGate`] holds
//! a semaphore of `N` permits (`HISN_PASSWORD_HASH_CONCURRENCY`, default
//! twice the available parallelism); a request waits at most
//! `HISN_PASSWORD_HASH_WAIT_MS` for one, then gets `503` with `Retry-After`
//! ([`ApiError::Overloaded`]) and `hisn_password_hash_busy_total` counts it.
//!
//! Traps this avoids:
//! - the permit moves into the blocking task and is released when the hash
//!   *finishes*, not when the request future is dropped: a client that
//!   disconnects mid-hash cannot free its slot while the hash still runs;
//! - the refusal is the same for every account: the login route takes the
//!   permit before it looks the account up, after the per-account and per-IP
//!   budgets were charged (a refused attempt still counts against them).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Default wait for a hashing slot.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(1000);

/// The password-hashing bound (clones share it).
#[derive(Debug, Clone)]
pub struct HashGate {
    permits: Arc<Semaphore>,
    limit: usize,
    wait: Duration,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// A hashing slot: run one blocking hash job with it ([`HashPermit::run`]).
#[derive(Debug)]
pub struct HashPermit {
    permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// The default number of concurrent hashes: twice the available parallelism.
pub fn default_limit() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .saturating_mul(2)
}

impl HashGate {
    /// At most `limit` hashes at once (`0`: [`default_limit`]); a request
    /// waits at most `wait` for a slot.
    pub fn new(limit: usize, wait: Duration) -> Self {
        let limit = if limit == 0 { default_limit() } else { limit };
        let limit = limit.min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            wait,
            running: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// The number of concurrent hashes allowed.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot, waiting at most the configured time; else
    /// [`ApiError::Overloaded`] (counted in the metrics).
    pub async fn acquire(&self) -> Result<HashPermit, ApiError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(HashPermit {
                permit,
                running: Arc::clone(&self.running),
                peak: Arc::clone(&self.peak),
            }),
            // Timed out, or the semaphore closed (it never is): fail closed.
            Ok(Err(_)) | Err(_) => {
                crate::metrics::global().hash_busy();
                tracing::warn!(target: "hisn::example_server::hashing", limit = self.limit, "password hashing at capacity: answered 503");
                Err(ApiError::Overloaded)
            }
        }
    }

    /// [`acquire`](Self::acquire), then [`HashPermit::run`].
    pub async fn run<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.acquire().await?.run(job).await
    }

    /// The most hash jobs seen running at once (for tests and load checks).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Take a slot without running anything (tests: hold the gate full).
    #[doc(hidden)]
    pub async fn hold(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).acquire_owned().await.ok()
    }
}

impl HashPermit {
    /// Run `job` on the blocking pool holding this slot until it returns.
    pub async fn run<T, F>(self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Self {
            permit,
            running,
            peak,
        } = self;
        tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst).saturating_add(1);
            peak.fetch_max(now, Ordering::SeqCst);
            let out = job();
            running.fetch_sub(1, Ordering::SeqCst);
            // Released only now: the hash is over.
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::task("hash task", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_the_limit_at_once_and_refuses_when_full() {
        let gate = HashGate::new(2, Duration::from_secs(30));
        let jobs: Vec<_> = (0..12)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move {
                    g.run(|| std::thread::sleep(Duration::from_millis(15)))
                        .await
                        .is_ok()
                })
            })
            .collect();
        for j in jobs {
            assert!(j.await.unwrap_or(false));
        }
        assert_eq!(gate.peak(), 2, "the gate let more than 2 run, or fewer");

        let gate = HashGate::new(1, Duration::from_millis(20));
        let held = gate.hold().await;
        assert!(held.is_some());
        assert_eq!(gate.run(|| ()).await, Err(ApiError::Overloaded));
        drop(held);
        assert_eq!(gate.run(|| 7).await, Ok(7));
    }

    /// A client that disconnects mid-hash (its request future dropped) does
    /// not free the slot while the hash still runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_request_keeps_its_slot_until_the_hash_ends() {
        let gate = HashGate::new(1, Duration::from_millis(30));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let request = tokio::spawn(async move {
            g.run(move || {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            })
            .await
        });
        let started = tokio::task::spawn_blocking(move || started_rx.recv()).await;
        assert!(matches!(started, Ok(Ok(()))));
        request.abort();
        let _ = request.await;
        assert_eq!(
            gate.run(|| ()).await,
            Err(ApiError::Overloaded),
            "the slot was freed while the hash still ran"
        );
        assert!(release_tx.send(()).is_ok());
        let mut freed = false;
        for _ in 0..100 {
            if gate.run(|| ()).await.is_ok() {
                freed = true;
                break;
            }
        }
        assert!(freed, "the slot never came back");
    }

    #[test]
    fn zero_means_the_default() {
        assert_eq!(HashGate::new(0, DEFAULT_WAIT).limit(), default_limit());
        assert!(default_limit() >= 2);
    }
}
