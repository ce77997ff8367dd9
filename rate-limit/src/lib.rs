#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod breaker;
pub mod clock;
mod decision;
pub mod error;
mod gcra;
#[cfg(feature = "tower")]
pub mod http;
mod key;
mod limiter;
pub mod login;
pub mod memory;
pub mod policy;
#[cfg(feature = "redis")]
pub mod redis;

pub use clock::{Clock, ManualClock, MonotonicClock, SystemClock};
pub use decision::{Decision, Outcome, TierStatus};
pub use error::{Error, Result};
pub use key::{KeyValue, RequestKeys};
pub use limiter::Limiter;
pub use memory::{MemoryConfig, MemoryLimiter};
pub use policy::{Disclosure, FailureMode, KeyKind, Mode, Policy, Tiers};
