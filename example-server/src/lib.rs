#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod danger;
pub mod db;
pub mod demo;
pub mod error;
pub mod hashing;
pub mod keys;
pub mod keystore;
pub mod logging;
pub mod metrics;
pub mod mfa;
pub mod middleware;
pub mod outbound;
pub mod routes;
pub mod shared;
pub mod state;

pub use app::{App, build};
pub use config::{Cli, Command, Config};
pub use error::ApiError;
pub use state::AppState;
