//! The crate's one error type.

/// Everything that can go wrong in this crate.
///
/// Decryption and verification failures are deliberately opaque
/// ([`Error::Decrypt`], [`Error::ApiKeyRejected`], [`Error::SignedUrlRejected`]):
/// whether the tag, the context, the key id or the tenant was wrong is never told
/// to the caller, so the error cannot become an oracle. Messages never contain key
/// material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A context component (tenant, table, column, row id) is empty or longer than
    /// [`crate::MAX_CONTEXT_COMPONENT_LEN`]. Remedy: pass a non-empty, bounded value.
    #[error("invalid encryption context: {0}")]
    InvalidContext(&'static str),
    /// The ciphertext is not in the documented format: too short, too long, bad text
    /// encoding. Remedy: the stored value is corrupt or is not a Hisn ciphertext.
    #[error("malformed ciphertext")]
    MalformedCiphertext,
    /// The ciphertext (or wrapped key) names a format version this build does not
    /// know. Remedy: upgrade the crate, or the value is corrupt.
    #[error("unsupported ciphertext format version {0}")]
    UnsupportedVersion(u8),
    /// A key id that is not in the tenant's keyring was named by an operation
    /// other than decryption (deleting or promoting a key). Decryption under an
    /// unknown key id answers [`Error::Decrypt`].
    #[error("unknown key id")]
    UnknownKey,
    /// Decryption failed. Opaque on purpose: a wrong tenant, row, column, key or a
    /// single flipped bit all give this same error.
    #[error("decryption failed")]
    Decrypt,
    /// A key could not be unwrapped with the configured master key(s). Opaque, like
    /// [`Error::Decrypt`].
    #[error("key unwrap failed")]
    Unwrap,
    /// The primary data key reached its usage cap; rotate the tenant's data key
    /// ([`crate::Vault::rotate_data_key`]) before encrypting more values.
    #[error("data key usage cap reached: rotate the tenant's data key")]
    KeyUsageExhausted,
    /// A keyring from [`crate::Vault`] holds no reserved use of its primary
    /// key: uses are reserved from the key store before they are spent, so
    /// that the usage cap holds across every process sharing the store, and
    /// nothing is encrypted without a reservation (fail closed). Remedy: encrypt
    /// through [`crate::Vault::encrypt`], which reserves as needed, or get the
    /// keyring from [`crate::Vault::keyring_for_encryption`] with the number of
    /// uses you need.
    #[error("no reserved use of the data key: reserve through the vault")]
    UsageNotReserved,
    /// The keyring was retired while in use: the tenant's data key was rotated,
    /// the tenant shredded, or the keyring left the vault's cache. [`crate::Vault`]'s
    /// own methods fetch the current keyring and retry; a caller holding a
    /// keyring from [`crate::Vault::keyring`] fetches it again.
    #[error("keyring retired: fetch the current one")]
    KeyringRetired,
    /// The tenant has no keys: provision it with
    /// [`crate::Vault::provision_tenant`]. Read paths never create keys;
    /// [`crate::Vault::decrypt`] answers [`Error::Decrypt`] instead, like any other
    /// failed decryption.
    #[error("tenant has no keys: provision it first")]
    TenantNotProvisioned,
    /// The tenant's keys were destroyed (crypto-shredding); nothing can be decrypted
    /// and no new key is created for it.
    #[error("tenant keys were destroyed")]
    TenantShredded,
    /// Key material is malformed (wrong length, bad base64, missing variable or file).
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    /// The operating system's random number generator failed. Fail closed: nothing
    /// was encrypted or generated.
    #[error("random number generator failure")]
    Rng,
    /// The key store failed (I/O or database). The message names the operation, never
    /// key material.
    #[error("key store error: {0}")]
    Store(String),
    /// An input value is not acceptable (for example a case-insensitive blind
    /// index value that is not valid UTF-8). Remedy: pass valid input.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// A configuration value is out of its documented range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A password is longer than [`crate::password::MAX_PASSWORD_BYTES`]; refused before
    /// hashing so that long inputs cannot be used to burn CPU.
    #[error("password too long")]
    PasswordTooLong,
    /// A stored password hash is not a PHC string this crate accepts (not argon2id,
    /// malformed, or parameters beyond the documented maxima). Refused before hashing.
    #[error("unsupported or malformed password hash: {0}")]
    PasswordHashRejected(&'static str),
    /// A stored password hash is in no format this crate recognises (argon2id
    /// PHC, bcrypt, scrypt, PBKDF2-SHA256, a wrapped legacy hash). Refused
    /// before hashing. Remedy: check the column holds password hashes; see
    /// `password::legacy` for the accepted layouts.
    #[error("unrecognised password hash format")]
    PasswordHashUnknownFormat,
    /// Password hashing failed internally.
    #[error("password hashing failed")]
    PasswordHashing,
    /// An API key token is not well-formed or its checksum is wrong; rejected before
    /// any database lookup.
    #[error("malformed API key")]
    ApiKeyMalformed,
    /// An API key was rejected: wrong secret, expired, revoked or missing a scope.
    /// Opaque on purpose.
    #[error("API key rejected")]
    ApiKeyRejected,
    /// A signed URL was rejected: bad or missing signature, wrong method or path,
    /// expired. Opaque on purpose.
    #[error("signed URL rejected")]
    SignedUrlRejected,
    /// A one-time code is not well-formed: not exactly the configured number of
    /// digits (ASCII, Arabic-Indic or Eastern Arabic-Indic, spaces between them
    /// allowed) or too long. Refused before any HMAC is computed. Remedy: ask
    /// the user to type the code again; count it against the caller's limiter
    /// like a wrong code.
    #[error("malformed one-time code")]
    TotpMalformed,
    /// A one-time code (or recovery code) was refused: wrong, already used
    /// (replay), outside the accepted window, or the clock is before 1970.
    /// Opaque on purpose; internal `tracing` events say which. Remedy: count
    /// the failure against the caller's limiter (see the `totp` module docs).
    #[error("one-time code rejected")]
    TotpRejected,
}

/// Shorthand for `Result<T, hisn_crypto_vault::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
