//! Integration tests of hisn-pii-redact: one binary, a module per area.
// Test helpers outside `#[test]` functions unwrap freely: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod detectors;
mod eval;
mod integrations;
mod lookalikes;
mod modes;
mod props;
mod support;
