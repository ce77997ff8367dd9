#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod context;
mod error;
mod id;
mod jose;
mod session;

pub mod grant;
pub mod stepup;

pub mod guard;
pub mod rls;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod db;

pub use context::{MAX_NAME_LEN, MAX_SUBJECT_LEN, Permission, Role, RolePolicy, TenantContext};
pub use error::Error;
pub use grant::{GrantSession, GrantSigner, GrantVerifier};
pub use id::{ClientId, TenantId, UserId};
pub use session::{
    Clock, DEFAULT_MAX_LIFETIME_SECS, DEFAULT_TENANT_CLAIM, Issuer, MAX_LEEWAY_SECS, MAX_LIST_LEN,
    MAX_TOKEN_LEN, ManualClock, SystemClock, TokenVerifier, TokenVerifierBuilder,
};
pub use stepup::{AuthInfo, MfaStatus};

/// The `jsonwebtoken` version this crate verifies with (for building
/// [`Issuer`] keys: `jsonwebtoken::DecodingKey`, `jsonwebtoken::Algorithm`).
pub use jsonwebtoken;
/// The `sqlx` version the database integration is built against.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use sqlx;
