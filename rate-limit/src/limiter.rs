//! The backend-independent limiter interface the tower layer uses.

use std::future::Future;
use std::num::NonZeroU32;

use crate::clock::Clock;
use crate::decision::Decision;
use crate::error::Result;
use crate::key::RequestKeys;
use crate::memory::MemoryLimiter;
use crate::policy::Tiers;

/// A limiter: in-process ([`MemoryLimiter`]) or Redis-backed.
pub trait Limiter: Send + Sync + 'static {
    /// The tier set.
    fn tier_set(&self) -> &Tiers;

    /// Check `n` units against every applicable tier, all-or-nothing.
    fn check_keys(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
    ) -> impl Future<Output = Result<Decision>> + Send;
}

impl<C: Clock + 'static> Limiter for MemoryLimiter<C> {
    fn tier_set(&self) -> &Tiers {
        self.tiers()
    }

    fn check_keys(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
    ) -> impl Future<Output = Result<Decision>> + Send {
        std::future::ready(self.check_n(keys, n))
    }
}

#[cfg(feature = "redis")]
impl<C: Clock + Clone + 'static> Limiter for crate::redis::RedisLimiter<C> {
    fn tier_set(&self) -> &Tiers {
        self.tiers()
    }

    fn check_keys(
        &self,
        keys: &RequestKeys,
        n: NonZeroU32,
    ) -> impl Future<Output = Result<Decision>> + Send {
        self.check_n(keys, n)
    }
}
