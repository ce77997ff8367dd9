//! Integration tests of hisn-rate-limit: one binary, a module per area.
// Test helpers outside `#[test]` functions unwrap freely: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod breaker;
mod common;
#[cfg(feature = "tower")]
mod http_layer;
mod login;
#[cfg(feature = "redis")]
mod login_shared;
mod memory;
mod props;
#[cfg(feature = "redis")]
mod redis_backend;
mod review;
