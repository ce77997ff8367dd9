//! A circuit breaker for any dependency (the Redis backend uses it; so can
//! calls to a calendar or a payment provider), with a tower layer and an
//! optional retry layer (feature `tower`).
//!
//! States: **closed** (calls pass) → **open** after `consecutive_failures`
//! failures in a row (default 5) or, if configured, a failure ratio over a
//! window → every call is refused at once for the `cooldown` (default 30 s) →
//! **half-open**: `half_open_trials` calls (default 1) are let through; when
//! they all succeed the breaker closes, when one fails it re-opens for another
//! cool-down. While open a dead dependency costs no latency: no call, no dial.
//!
//! Results of calls started before the last transition are ignored (a slow
//! call admitted while closed cannot close a breaker that re-opened since).
//! A [`Permit`] dropped without a result (a cancelled call) counts as nothing
//! but gives its half-open trial back. Transitions are `tracing` events at
//! `info` (target `hisn::rate_limit::breaker`). Time is injected ([`Clock`]).

#[cfg(feature = "tower")]
mod layer;
#[cfg(feature = "tower")]
mod retry;

#[cfg(feature = "tower")]
pub use layer::{BreakerError, CircuitBreakerLayer, CircuitBreakerService};
#[cfg(feature = "tower")]
pub use retry::{RetryError, RetryLayer, RetryPolicy, RetryService, Retryable};

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

/// Trip on a failure ratio: at least `min_calls` calls in the current
/// `window`, of which at least `percent` % failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRatio {
    percent: u8,
    min_calls: NonZeroU32,
    window: Duration,
}

impl FailureRatio {
    /// `percent` in 1..=100; `window` ≥ 1 ms.
    pub fn new(percent: u8, min_calls: NonZeroU32, window: Duration) -> Result<Self> {
        if !(1..=100).contains(&percent) || window < Duration::from_millis(1) {
            return Err(Error::InvalidConfig(
                "failure ratio: percent in 1..=100 and window >= 1 ms",
            ));
        }
        Ok(FailureRatio {
            percent,
            min_calls,
            window,
        })
    }
}

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    consecutive_failures: NonZeroU32,
    ratio: Option<FailureRatio>,
    cooldown: Duration,
    half_open_trials: NonZeroU32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            ratio: None,
            cooldown: Duration::from_secs(30),
            half_open_trials: NonZeroU32::MIN,
        }
    }
}

impl BreakerConfig {
    /// Open after this many failures in a row (default 5).
    pub fn consecutive_failures(mut self, n: NonZeroU32) -> Self {
        self.consecutive_failures = n;
        self
    }
    /// Also open on a failure ratio.
    pub fn failure_ratio(mut self, ratio: FailureRatio) -> Self {
        self.ratio = Some(ratio);
        self
    }
    /// Time open before trials (1 ms..=1 h; default 30 s).
    pub fn cooldown(mut self, d: Duration) -> Result<Self> {
        if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
            return Err(Error::InvalidConfig("breaker cooldown must be 1 ms..=1 h"));
        }
        self.cooldown = d;
        Ok(self)
    }
    /// Trial calls let through while half-open (default 1).
    pub fn half_open_trials(mut self, n: NonZeroU32) -> Self {
        self.half_open_trials = n;
        self
    }
    /// The cool-down.
    pub fn cooldown_duration(&self) -> Duration {
        self.cooldown
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// A limited number of trial calls pass.
    HalfOpen,
}

/// A call was refused because the breaker is open (or half-open with every
/// trial slot taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open")]
pub struct Rejected {
    /// Time until the breaker lets a trial through (at least 1 ms).
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Incremented on every transition; permits of older generations are ignored.
    generation: u64,
    high_water: u64,
    consecutive: u32,
    window_start: u64,
    window_calls: u32,
    window_failures: u32,
    opened_at: u64,
    trials_issued: u32,
    trials_ok: u32,
}

#[derive(Debug)]
struct Shared<C> {
    name: &'static str,
    config: BreakerConfig,
    clock: C,
    inner: Mutex<Inner>,
}

/// A circuit breaker; cheap to clone (clones share the state).
#[derive(Debug)]
pub struct CircuitBreaker<C: Clock = SystemClock> {
    shared: Arc<Shared<C>>,
}

impl<C: Clock> Clone for CircuitBreaker<C> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl CircuitBreaker<SystemClock> {
    /// A breaker named `name` (used in tracing events) with the system clock.
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        Self::with_clock(name, config, SystemClock)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl<C: Clock> CircuitBreaker<C> {
    /// A breaker with an injected clock.
    pub fn with_clock(name: &'static str, config: BreakerConfig, clock: C) -> Self {
        CircuitBreaker {
            shared: Arc::new(Shared {
                name,
                config,
                clock,
                inner: Mutex::new(Inner {
                    state: BreakerState::Closed,
                    generation: 0,
                    high_water: 0,
                    consecutive: 0,
                    window_start: 0,
                    window_calls: 0,
                    window_failures: 0,
                    opened_at: 0,
                    trials_issued: 0,
                    trials_ok: 0,
                }),
            }),
        }
    }

    fn now(&self, inner: &mut Inner) -> u64 {
        let t = self.shared.clock.now_micros().max(inner.high_water);
        inner.high_water = t;
        t
    }

    /// The current state (an open breaker whose cool-down is over reads as
    /// half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.shared.inner.lock();
        let now = self.now(&mut inner);
        self.advance(&mut inner, now);
        inner.state
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: u64) {
        let from = inner.state;
        inner.state = to;
        inner.generation += 1;
        inner.consecutive = 0;
        inner.window_start = now;
        inner.window_calls = 0;
        inner.window_failures = 0;
        inner.trials_issued = 0;
        inner.trials_ok = 0;
        if to == BreakerState::Open {
            inner.opened_at = now;
        }
        tracing::info!(
            target: "hisn::rate_limit::breaker",
            breaker = self.shared.name,
            from = ?from,
            to = ?to,
            "circuit breaker transition"
        );
    }

    /// Open → half-open once the cool-down is over.
    fn advance(&self, inner: &mut Inner, now: u64) {
        let cooldown = micros(self.shared.config.cooldown);
        if inner.state == BreakerState::Open && now >= inner.opened_at.saturating_add(cooldown) {
            self.transition(inner, BreakerState::HalfOpen, now);
        }
    }

    /// Ask to make a call. `Err(Rejected)` while open (no call must be made).
    pub fn try_acquire(&self) -> Result<Permit<C>, Rejected> {
        let mut inner = self.shared.inner.lock();
        let now = self.now(&mut inner);
        self.advance(&mut inner, now);
        let cooldown = micros(self.shared.config.cooldown);
        match inner.state {
            BreakerState::Closed => {}
            BreakerState::Open => {
                let wait = inner.opened_at.saturating_add(cooldown).saturating_sub(now);
                return Err(Rejected {
                    retry_after: Duration::from_micros(wait.max(1_000)),
                });
            }
            BreakerState::HalfOpen => {
                if inner.trials_issued >= self.shared.config.half_open_trials.get() {
                    return Err(Rejected {
                        retry_after: Duration::from_micros(cooldown.max(1_000)),
                    });
                }
                inner.trials_issued += 1;
            }
        }
        Ok(Permit {
            breaker: self.clone(),
            generation: inner.generation,
            done: false,
        })
    }

    fn record(&self, generation: u64, ok: Option<bool>) {
        let mut inner = self.shared.inner.lock();
        let now = self.now(&mut inner);
        if generation != inner.generation {
            return;
        }
        let cfg = &self.shared.config;
        match (inner.state, ok) {
            (BreakerState::HalfOpen, None) => {
                inner.trials_issued = inner.trials_issued.saturating_sub(1);
            }
            (BreakerState::HalfOpen, Some(true)) => {
                inner.trials_ok += 1;
                if inner.trials_ok >= cfg.half_open_trials.get() {
                    self.transition(&mut inner, BreakerState::Closed, now);
                }
            }
            (BreakerState::HalfOpen, Some(false)) => {
                self.transition(&mut inner, BreakerState::Open, now);
            }
            (BreakerState::Closed, Some(ok)) => {
                if let Some(r) = cfg.ratio
                    && now >= inner.window_start.saturating_add(micros(r.window))
                {
                    inner.window_start = now;
                    inner.window_calls = 0;
                    inner.window_failures = 0;
                }
                inner.window_calls = inner.window_calls.saturating_add(1);
                if ok {
                    inner.consecutive = 0;
                    return;
                }
                inner.window_failures = inner.window_failures.saturating_add(1);
                inner.consecutive = inner.consecutive.saturating_add(1);
                let by_ratio = cfg.ratio.is_some_and(|r| {
                    inner.window_calls >= r.min_calls.get()
                        && u64::from(inner.window_failures) * 100
                            >= u64::from(r.percent) * u64::from(inner.window_calls)
                });
                if inner.consecutive >= cfg.consecutive_failures.get() || by_ratio {
                    self.transition(&mut inner, BreakerState::Open, now);
                }
            }
            _ => {}
        }
    }
}

/// Permission for one call. Report the result with [`Permit::success`] or
/// [`Permit::failure`]; dropping it unreported counts as nothing.
#[derive(Debug)]
#[must_use = "report the call's result with success() or failure()"]
pub struct Permit<C: Clock = SystemClock> {
    breaker: CircuitBreaker<C>,
    generation: u64,
    done: bool,
}

impl<C: Clock> Permit<C> {
    /// The call succeeded.
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.generation, Some(true));
    }

    /// The call failed (error, timeout, or a response classified as failure).
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.generation, Some(false));
    }
}

impl<C: Clock> Drop for Permit<C> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(self.generation, None);
        }
    }
}
