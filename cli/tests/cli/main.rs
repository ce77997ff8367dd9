//! Integration tests of the `hisn` binary: one binary, a module per group.

// Test helpers outside `#[test]` functions unwrap too: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod audit_exit;
mod audit_overclaim;
mod audit_repair;
mod audit_review3;
mod audit_witness;
mod conventions;
mod guard;
mod guard_clients;
mod password;
mod redact;
mod totp;
mod vault;
mod webhook;
