#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod chars;
pub mod custom;
mod detect;
pub mod error;
#[cfg(feature = "serde_json")]
pub mod json;
mod kind;
mod redacted;
mod redactor;
#[cfg(feature = "tracing")]
pub mod tracing_writer;
pub mod validate;

pub use custom::CustomDetector;
pub use detect::Finding;
pub use error::{Error, Result};
pub use kind::{Kind, Mode};
pub use redacted::{Redacted, default_redactor};
pub use redactor::{
    MAX_CUSTOM, MAX_PLACEHOLDER_LEN, PseudonymKey, Redactor, RedactorBuilder, Stats,
};
