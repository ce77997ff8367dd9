//! Integration tests of `hisn-tenant-guard`: one binary, a module per area.
// Tests panic on unexpected results by design (clippy.toml allows unwrap and
// expect in #[test] fns; helpers outside them need the same allowance).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

// Helpers serve the feature-gated modules too; with fewer features some are unused.
#[allow(dead_code)]
mod common;
mod grant;
mod grant_attacks;
mod guard_checker;
mod guard_corpus;
mod guard_props;
mod jwt;
mod stepup;

#[cfg(feature = "sqlite")]
mod adoption;
#[cfg(feature = "sqlite")]
mod attack_review;
mod attack_review2;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod clients_common;
#[cfg(feature = "sqlite")]
mod clients_lite;
#[cfg(feature = "postgres")]
mod clients_pg;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod clients_props;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod corpus;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
mod cross_layer;
#[cfg(feature = "sqlite")]
mod eval_order;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod eval_order_attack;
#[cfg(feature = "postgres")]
mod eval_order_pg;
#[cfg(feature = "axum")]
mod extractor;
#[cfg(feature = "postgres")]
mod grant_pg;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
mod guard_differential;
#[cfg(feature = "axum")]
mod identity;
#[cfg(feature = "sqlite")]
mod once_lite;
#[cfg(feature = "sqlite")]
mod order_mutants;
#[cfg(feature = "postgres")]
mod pg_context;
#[cfg(feature = "postgres")]
mod pg_rls;
#[cfg(feature = "postgres")]
mod pg_session_state;
#[cfg(feature = "postgres")]
mod pg_tenant_tx;
#[cfg(feature = "postgres")]
mod pg_verify;
#[cfg(feature = "postgres")]
mod review3_context;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod review3_meaning;
#[cfg(feature = "postgres")]
mod review4_copies;
#[cfg(feature = "postgres")]
mod review4_explain;
#[cfg(feature = "sqlite")]
mod sqlite_tenant_tx;
#[cfg(feature = "sqlite")]
mod unscoped;
