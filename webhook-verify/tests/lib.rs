//! Integration tests of hisn-webhook-verify: one binary, a module per area.
// Test helpers outside `#[test]` functions unwrap freely: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod boundaries;
mod errors;
#[cfg(feature = "tower")]
mod idempotency;
mod props;
mod replay;
mod replay_window;
mod twilio;
mod vectors;
