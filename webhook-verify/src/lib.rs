#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod clock;
mod encoding;
pub mod error;
mod headers;
#[cfg(feature = "tower")]
pub mod idempotency;
pub mod replay;
mod scheme;
mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use headers::Headers;
pub use scheme::{
    GenericHmac, MAX_SECRET_BYTES, MIN_STANDARD_SECRET_BYTES, Scheme, SignatureEncoding,
};
pub use webhook::{
    Limits, MAX_ID_LEN, MAX_KEYS, SignInput, Tolerance, Verified, Webhook, WebhookBuilder,
};
