//! Integration tests of the reference server: one binary, modules by concern.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod audit_coverage;
mod audit_role;
mod audit_verify;
mod bound_credentials;
mod common;
mod controls;
mod flows;
mod grants;
mod isolation;
mod jwt_attacks;
mod login_oracle;
mod mfa;
mod multi_instance;
mod openapi;
mod platform_role;
mod postgres;
mod review3;
mod review4;
mod services;
mod shared_state;
