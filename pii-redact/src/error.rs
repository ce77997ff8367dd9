//! The crate's error type. Only configuration can fail: redacting a line is
//! infallible, so no error can ever cause a raw line to be passed through.

/// Why a [`Redactor`](crate::Redactor) or one of its parts could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pseudonym key shorter than [`PseudonymKey::MIN_LEN`](crate::PseudonymKey::MIN_LEN)
    /// bytes. Remedy: generate 32 random bytes per deployment (or per tenant).
    #[error("pseudonym key too short")]
    KeyTooShort,
    /// Some kind is set to [`Mode::Pseudonym`](crate::Mode::Pseudonym) but no key
    /// was given. Remedy: call `pseudonym_key` on the builder, or pick another mode.
    #[error("pseudonym mode needs a pseudonym key")]
    MissingPseudonymKey,
    /// A custom detector name is not 1-32 bytes of `A-Z`, `0-9`, `_` starting
    /// with a letter. Remedy: use an upper-case label such as `ORDER_REF`.
    #[error("invalid custom detector name")]
    InvalidName,
    /// A custom detector pattern does not compile (or exceeds the regex size limit).
    #[error("invalid custom detector pattern")]
    InvalidPattern(#[source] Box<regex::Error>),
    /// A custom pattern matches its own placeholder, so redaction would not be
    /// idempotent. Remedy: make the pattern stricter.
    #[error("custom pattern matches its own placeholder")]
    PatternMatchesPlaceholder,
    /// More than [`MAX_CUSTOM`](crate::MAX_CUSTOM) custom detectors.
    #[error("too many custom detectors")]
    TooManyCustom,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
