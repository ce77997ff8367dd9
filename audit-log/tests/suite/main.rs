//! Integration tests of `hisn-audit-log`: one binary, a module per concern.
// Test helpers outside #[test] functions unwrap freely: a failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::type_complexity
)]

mod anchors;
mod checkpoint_log;
mod checkpoint_notes;
mod checkpoint_sign;
mod cold_report;
mod common;
mod concurrency;
mod crash;
mod dsar;
mod golden;
mod merkle;
mod merkle_proof_checks;
mod merkle_report;
mod merkle_roots;
mod pg_group;
mod postgres;
mod postgres_prune;
mod prealloc;
mod props;
mod pruned_roots;
mod repair_planted;
mod review3;
mod review_attacks;
mod review_edges;
mod store_links;
mod subject_index;
mod tamper_file;
mod tamper_memory;
mod verify_walk;
