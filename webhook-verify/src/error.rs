//! The crate's one error type.
//!
//! Verification failures are deliberately coarse: a caller (and so a remote
//! sender, if the message is echoed) learns only *which stage* failed, never the
//! secret, the expected signature, or any body bytes. Detail, when the `tracing`
//! feature is on, goes to a `debug` event without those either.

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A header the scheme requires is absent (or present more than once is
    /// reported as [`Error::Malformed`]). Remedy: the request did not come from
    /// the provider, or a proxy stripped the header.
    #[error("missing webhook header")]
    MissingHeader,
    /// A header or the message id is not in the scheme's canonical form (bad
    /// encoding, duplicate header, invalid id, unparsable timestamp). Remedy:
    /// none on the receiving side; reject the delivery.
    #[error("malformed webhook header")]
    Malformed,
    /// A bound was exceeded before any MAC ran: header size, number of
    /// signature entries, or body size (see [`crate::Limits`]).
    #[error("webhook request exceeds a configured size limit")]
    TooLarge,
    /// No signature in the request matches any live key in the keyring.
    #[error("no matching webhook signature")]
    NoMatchingSignature,
    /// The signed timestamp is outside the configured tolerance (see
    /// [`crate::Tolerance`]). Remedy: check the receiver's clock; otherwise it
    /// is a replay of an old delivery.
    #[error("webhook timestamp outside the tolerance")]
    Stale,
    /// The Twilio scheme needs the full request URL; call
    /// [`crate::Webhook::verify_with_url`]. A programming error.
    #[error("this scheme needs the request URL")]
    UrlRequired,
    /// The secret is empty.
    #[error("webhook secret is empty")]
    SecretEmpty,
    /// The secret has leading or trailing whitespace (often a newline read from
    /// a file). Trim it before loading.
    #[error("webhook secret has leading or trailing whitespace")]
    SecretWhitespace,
    /// The secret looks like a signature (`v1,...`, `v1=...`, `sha256=...`),
    /// not a secret: a signature header value was pasted instead of the key.
    #[error("webhook secret looks like a signature, not a secret")]
    SecretLooksLikeSignature,
    /// The secret has the wrong prefix for this scheme (for example `whpk_`
    /// where `whsec_` is expected, or a Stripe API key `sk_...` instead of the
    /// endpoint secret `whsec_...`).
    #[error("webhook secret has the wrong prefix for this scheme")]
    SecretWrongPrefix,
    /// The secret's payload is not canonical base64.
    #[error("webhook secret is not valid base64")]
    SecretEncoding,
    /// The decoded secret or key has the wrong length for the scheme.
    #[error("webhook secret has the wrong length")]
    SecretLength,
    /// The Ed25519 public key (`whpk_`) is a point of small order (the
    /// identity or a torsion point): every signature check against it is
    /// meaningless, since such a key admits signatures that verify for many
    /// messages. Remedy: the key is wrong or hostile; get the real one.
    #[error("webhook public key is a weak (small-order) point")]
    SecretWeakKey,
    /// The keyring has no key, too many keys, or no key that is still live for
    /// signing.
    #[error("webhook keyring has no usable key")]
    NoUsableKey,
    /// A configuration value is out of range; the text names the setting.
    #[error("invalid webhook configuration: {0}")]
    InvalidConfig(&'static str),
    /// The operation needs a private key, but the keyring holds only public
    /// keys (`whpk_`).
    #[error("signing needs a private key")]
    SigningUnavailable,
    /// A message id given to `sign` (or to a replay store) is empty, too long,
    /// or contains `.` or a control character.
    #[error("invalid webhook message id")]
    InvalidId,
    /// The replay or idempotency store could not be reached or answered
    /// unexpectedly. Detail goes to `tracing`; callers should fail closed
    /// (answer 5xx so the provider retries).
    #[error("webhook replay store unavailable")]
    StoreUnavailable,
    /// A verified delivery stays acceptable longer than a replay store can
    /// remember it: the time until its signed timestamp leaves the tolerance
    /// window exceeds [`crate::replay::ReplayPolicy::MAX_TTL`] (30 days).
    /// Only reachable in past-only mode ([`crate::Tolerance::past_only`]),
    /// which accepts any future timestamp, with a timestamp more than about
    /// 30 days ahead. Remedy: refuse the delivery (fail closed; answer 4xx,
    /// a retry carries the same timestamp), and prefer a tolerance with a
    /// future bound ([`crate::Tolerance::new`]).
    #[error("webhook delivery stays acceptable longer than a replay store can remember it")]
    ReplayWindowTooLong,
    /// The in-memory store is at its entry bound and no entry has expired.
    /// It refuses new claims rather than evicting live ones (eviction would
    /// re-open a replay window); answer 5xx so the provider retries later.
    #[error("webhook replay store full")]
    StoreFull,
}

/// Shorthand for `Result<T, hisn_webhook_verify::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;
