//! The crate's error type.

/// Why an operation of this crate was refused or failed.
///
/// Authentication failures are deliberately opaque ([`Error::Unauthenticated`]
/// says nothing about which check failed) and a tenant mismatch is the same
/// [`Error::NotFound`] as a missing resource, so neither becomes an oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identifier is not a canonical, non-nil UUID. Remedy: send the
    /// hyphenated form.
    #[error("invalid identifier")]
    InvalidId,
    /// A role or permission name is empty, longer than 64 bytes or holds
    /// characters outside `a-z 0-9 _ - :`.
    #[error("invalid role or permission name")]
    InvalidName,
    /// The bearer token was missing, malformed, expired, signed with an
    /// unpinned algorithm or unknown key, or lacked a required claim. The
    /// reason is only in a `tracing` debug event. Remedy: obtain a new token.
    #[error("unauthenticated")]
    Unauthenticated,
    /// The resource does not exist *or belongs to another tenant*: both look
    /// the same to the caller.
    #[error("not found")]
    NotFound,
    /// The caller's roles or client grants do not allow the action.
    #[error("forbidden")]
    Forbidden,
    /// The configuration is invalid (the message names the rule broken).
    /// Remedy: fix the configuration at start-up.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The query guard refused the statement; the inner error names why.
    /// Remedy: rewrite the statement (or use a registered shared table).
    #[error("statement refused: {0}")]
    Refused(#[from] crate::guard::GuardError),
    /// A statement was executed with a different number of bound parameters
    /// than its placeholders; refused because the tenant is bound last.
    #[error("statement has {expected} parameter(s) but {bound} were bound")]
    ParamCount {
        /// Placeholders in the statement (without the tenant).
        expected: usize,
        /// Values bound by the caller.
        bound: usize,
    },
    /// `verify` found row-level-security problems; each is listed in the
    /// report it returned. Remedy: apply the generated RLS SQL and connect as
    /// a non-owner role without BYPASSRLS.
    #[error("row-level security is misconfigured ({0} finding(s))")]
    RlsMisconfigured(usize),
    /// An unscoped access was requested without a reason or an actor (or
    /// with one longer than 1 KiB).
    #[error("unscoped access needs a non-empty reason and actor")]
    MissingReason,
    /// The audit hook refused or failed to record an unscoped access, so the
    /// access was not granted (fail closed).
    #[error("unscoped access refused: the audit hook failed")]
    AuditHook,
    /// The permission requires a second factor the session lacks: none at
    /// all, or one older than `max_age` seconds. Remedy: the application asks
    /// the user to re-authenticate with the second factor (TOTP) and retries
    /// with the new token (the axum helper answers `401` with
    /// `WWW-Authenticate: Bearer error="insufficient_user_authentication"`,
    /// RFC 9470).
    #[error("step-up authentication required")]
    StepUpRequired {
        /// The oldest second factor accepted, in seconds; `None`: any age.
        max_age: Option<u64>,
    },
    /// The user holds a role that requires MFA enrolment, the grace period
    /// from the first sign-in is over and no second factor is enrolled, so
    /// the role's admin-only permissions are refused. Remedy: enrol TOTP.
    #[error("MFA enrolment required")]
    MfaEnrolmentRequired,
    /// The session must change its password first (`must_change_password`
    /// claim) and may use only the password-change permission. Remedy: change
    /// the password and sign in again.
    #[error("password change required")]
    PasswordChangeRequired,
    /// The session runs under a break-glass grant that does not allow the
    /// action: a write (or any permission) the grant does not list, or the
    /// grant has expired. Remedy: none for the support user; a new grant with
    /// a new written authorization.
    #[error("not allowed under the access grant")]
    OutsideGrant,
    /// A break-glass grant was not used because its revocation check, audit
    /// hook or notification hook failed (fail closed). Remedy: restore the
    /// failing dependency; the grant itself may be valid.
    #[error("grant use refused: a revocation, audit or notification hook failed")]
    GrantHook,
    /// A database error (connection, SQL, constraint violation, or a row-level
    /// security refusal).
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}
