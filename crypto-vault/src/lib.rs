#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod apikey;
pub mod blind;
mod cache;
mod clock;
mod error;
mod format;
mod keyring;
pub mod password;
mod provider;
pub mod recovery;
mod rng;
mod secret;
pub mod signed_url;
mod store;
pub mod totp;
mod vault;
mod wrap;

#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "serde")]
mod serde_impl;
#[cfg(feature = "sqlx")]
mod sqlx_impl;

pub use apikey::{ApiKeyRecord, ApiKeyToken, ApiKeys};
pub use blind::{BlindIndex, BlindIndexer, Normalization};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use format::{
    Ciphertext, FORMAT_VERSION, FieldContext, HEADER_LEN, KeyId, MAX_CONTEXT_COMPONENT_LEN,
    MAX_PLAINTEXT_LEN, NONCE_LEN, OVERHEAD, TAG_LEN, TEXT_PREFIX,
};
pub use keyring::{DEFAULT_USAGE_CAP, Keyring, MAX_USAGE_CAP, ReencryptReport, Reencrypted};
pub use password::{PasswordHasher, PasswordParams, PasswordPolicy, Verification};
#[cfg(feature = "postgres")]
pub use pg::{MIGRATION as PG_MIGRATION, PgKeyStore};
pub use provider::{EnvKeyProvider, FileKeyProvider, KeyProvider, StaticKeyProvider};
pub use recovery::{RecoveryBatch, RecoveryCodes, StoredRecoveryCodes};
pub use rng::RESEED_AFTER_BYTES;
pub use secret::{KEY_LEN, MasterKey, Plaintext, SecretKey};
pub use signed_url::UrlSigner;
#[cfg(feature = "sqlx")]
pub use sqlx_impl::TextCiphertext;
pub use store::{DirKeyStore, KeyStore, MemoryKeyStore, WrappedKey};
pub use totp::{PendingTotp, Totp, TotpParams, TotpSecret, TotpVerifier};
#[allow(deprecated)] // re-exported for compatibility; see its deprecation note
pub use vault::DEFAULT_PERSIST_EVERY;
pub use vault::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_RELOAD_INTERVAL, DEFAULT_RESERVATION_BLOCK, RewrapReport, Vault,
};
pub use wrap::{KeyPurpose, WRAP_VERSION, WRAPPED_LEN};
