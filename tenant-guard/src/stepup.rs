//! How a session was authenticated, and the rules that make a permission
//! depend on it: step-up (a recent second factor), MFA enrolment with a grace
//! period, and the "must change password" restriction.
//!
//! The token carries the facts ([`AuthInfo`], parsed by the
//! [`TokenVerifier`](crate::TokenVerifier)):
//!
//! | claim | meaning | type |
//! |-------|---------|------|
//! | `amr` | authentication methods (RFC 8176) | array of strings |
//! | `acr` | authentication context class | string |
//! | `auth_time` | when the user authenticated (OpenID Connect) | integer, seconds |
//! | `mfa_time` | when the user last presented a second factor (this crate's choice of name; see [`TokenVerifierBuilder::second_factor_claim`](crate::TokenVerifierBuilder::second_factor_claim)) | integer, seconds |
//! | `must_change_password` | the session may only change the password | boolean |
//!
//! A claim of the wrong type refuses the whole token (fail closed), as does a
//! `mfa_time` or `auth_time` in the future beyond the verifier's leeway.
//!
//! **The time of the last second factor** is `mfa_time` when the token has
//! it; otherwise `auth_time` when `amr` names a second factor (`mfa` or `otp`,
//! [`SECOND_FACTOR_AMR`]): at `auth_time` the user presented several factors.
//! An identity provider that re-authenticates with TOTP for a step-up should
//! set `mfa_time` (or issue a new token with a fresh `auth_time` and `amr`).
//!
//! The application supplies what the token cannot know: the time of the
//! user's first sign-in and whether MFA is enrolled ([`MfaStatus`], attached
//! with [`TenantContext::with_mfa_status`](crate::TenantContext::with_mfa_status)).
//! The rules live in the [`RolePolicy`](crate::RolePolicy):
//! [`require_second_factor`](crate::RolePolicy::require_second_factor) and
//! [`require_mfa_enrolment`](crate::RolePolicy::require_mfa_enrolment).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Permission, Role};

/// `amr` values (RFC 8176 §2) that prove a second factor: `mfa` (several
/// factors) and `otp` (a one-time password, such as TOTP).
pub const SECOND_FACTOR_AMR: &[&str] = &["mfa", "otp"];
/// Default name of the claim holding the time of the last second factor.
pub const DEFAULT_SECOND_FACTOR_CLAIM: &str = "mfa_time";
/// Default name of the boolean claim that restricts a session to changing
/// the password.
pub const DEFAULT_MUST_CHANGE_PASSWORD_CLAIM: &str = "must_change_password";
/// The grace period the trust pages promise for enrolling TOTP in an admin
/// role: 14 days from the first sign-in.
pub const DEFAULT_MFA_GRACE: Duration = Duration::from_secs(14 * 24 * 3600);
/// Longest `amr` entry or `acr` accepted, in bytes.
pub const MAX_AMR_LEN: usize = 64;

/// How the session was authenticated, from the token's claims.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AuthInfo {
    amr: Vec<String>,
    acr: Option<String>,
    auth_time: Option<u64>,
    mfa_time: Option<u64>,
    must_change_password: bool,
}

impl AuthInfo {
    pub(crate) fn new(
        amr: Vec<String>,
        acr: Option<String>,
        auth_time: Option<u64>,
        mfa_time: Option<u64>,
        must_change_password: bool,
    ) -> Self {
        Self {
            amr,
            acr,
            auth_time,
            mfa_time,
            must_change_password,
        }
    }

    /// The authentication methods (`amr`), as the issuer wrote them.
    pub fn amr(&self) -> &[String] {
        &self.amr
    }

    /// The authentication context class (`acr`).
    pub fn acr(&self) -> Option<&str> {
        self.acr.as_deref()
    }

    /// When the user authenticated (`auth_time`), seconds since the epoch.
    pub fn auth_time(&self) -> Option<u64> {
        self.auth_time
    }

    /// Whether the session shows a second factor: an `mfa_time` claim, or
    /// `amr` naming one of [`SECOND_FACTOR_AMR`].
    pub fn has_second_factor(&self) -> bool {
        self.mfa_time.is_some()
            || self
                .amr
                .iter()
                .any(|m| SECOND_FACTOR_AMR.contains(&m.as_str()))
    }

    /// When the user last presented a second factor: `mfa_time`, else
    /// `auth_time` when `amr` names a second factor, else `None`.
    pub fn second_factor_time(&self) -> Option<u64> {
        self.mfa_time.or_else(|| {
            self.amr
                .iter()
                .any(|m| SECOND_FACTOR_AMR.contains(&m.as_str()))
                .then_some(self.auth_time)
                .flatten()
        })
    }

    /// Whether the session may only change the password (claim
    /// `must_change_password: true`, for example on first login).
    pub fn must_change_password(&self) -> bool {
        self.must_change_password
    }
}

/// What the application knows about the user's MFA enrolment: when the user
/// first signed in and whether a second factor (TOTP) is enrolled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MfaStatus {
    first_sign_in: u64,
    enrolled: bool,
}

impl MfaStatus {
    /// `first_sign_in` in seconds since the epoch; `enrolled` when the user
    /// has an active second factor. A first sign-in more than
    /// [`MAX_LEEWAY_SECS`](crate::MAX_LEEWAY_SECS) ahead of the policy's
    /// clock counts as past the grace period (fail closed).
    pub fn new(first_sign_in: u64, enrolled: bool) -> Self {
        Self {
            first_sign_in,
            enrolled,
        }
    }

    /// The first sign-in, seconds since the epoch.
    pub fn first_sign_in(&self) -> u64 {
        self.first_sign_in
    }

    /// Whether a second factor is enrolled.
    pub fn enrolled(&self) -> bool {
        self.enrolled
    }
}

/// The step-up and enrolment rules of a [`RolePolicy`](crate::RolePolicy).
#[derive(Clone, Debug)]
pub(crate) struct StepUpRules {
    /// Permission -> the oldest second factor accepted (`None`: any age).
    pub(crate) second_factor: BTreeMap<Permission, Option<u64>>,
    /// Role -> grace period in seconds from the first sign-in.
    pub(crate) enrolment: BTreeMap<Role, u64>,
    /// The only permission a must-change-password session may use.
    pub(crate) password_change: Permission,
}

impl Default for StepUpRules {
    fn default() -> Self {
        Self {
            second_factor: BTreeMap::new(),
            enrolment: BTreeMap::new(),
            password_change: Permission::CHANGE_PASSWORD,
        }
    }
}

/// Whether the second factor satisfies a rule with `max_age` at `now`.
pub(crate) fn second_factor_fresh(auth: &AuthInfo, max_age: Option<u64>, now: u64) -> bool {
    match max_age {
        None => auth.has_second_factor(),
        Some(max) => auth
            .second_factor_time()
            .is_some_and(|t| now.saturating_sub(t) <= max),
    }
}

/// `true` when an enrolment grace period that started at `status`'s first
/// sign-in (or, without a status, never started: fail closed) is over at
/// `now`, and MFA is not active.
pub(crate) fn enrolment_overdue(
    auth: &AuthInfo,
    status: Option<&MfaStatus>,
    grace: u64,
    now: u64,
) -> bool {
    if auth.has_second_factor() || status.is_some_and(|s| s.enrolled) {
        return false;
    }
    match status {
        // A first sign-in later than now (beyond clock skew) is a bug or a
        // forged record; taken at its word it would postpone the deadline
        // forever, so it counts as overdue (fail closed).
        Some(s) => {
            s.first_sign_in > now.saturating_add(crate::MAX_LEEWAY_SECS)
                || now >= s.first_sign_in.saturating_add(grace)
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(amr: &[&str], auth_time: Option<u64>, mfa_time: Option<u64>) -> AuthInfo {
        AuthInfo::new(
            amr.iter().map(|s| (*s).to_owned()).collect(),
            None,
            auth_time,
            mfa_time,
            false,
        )
    }

    #[test]
    fn second_factor_time_prefers_mfa_time_then_amr_auth_time() {
        assert_eq!(auth(&["pwd"], Some(10), None).second_factor_time(), None);
        assert!(!auth(&["pwd"], Some(10), None).has_second_factor());
        assert_eq!(
            auth(&["pwd", "otp"], Some(10), None).second_factor_time(),
            Some(10)
        );
        assert_eq!(
            auth(&["mfa"], Some(10), Some(20)).second_factor_time(),
            Some(20)
        );
        assert_eq!(auth(&[], None, Some(20)).second_factor_time(), Some(20));
        // `mfa` without a time: a second factor, but of unknown age.
        let a = auth(&["mfa"], None, None);
        assert!(a.has_second_factor());
        assert!(second_factor_fresh(&a, None, 100));
        assert!(!second_factor_fresh(&a, Some(1_000_000), 100));
    }

    #[test]
    fn freshness_boundary_is_inclusive() {
        let a = auth(&[], None, Some(1_000));
        assert!(second_factor_fresh(&a, Some(300), 1_300));
        assert!(!second_factor_fresh(&a, Some(300), 1_301));
    }

    #[test]
    fn enrolment_without_status_is_overdue() {
        let a = auth(&["pwd"], None, None);
        assert!(enrolment_overdue(&a, None, 100, 0));
        assert!(!enrolment_overdue(
            &a,
            Some(&MfaStatus::new(0, false)),
            100,
            99
        ));
        assert!(enrolment_overdue(
            &a,
            Some(&MfaStatus::new(0, false)),
            100,
            100
        ));
        assert!(!enrolment_overdue(
            &a,
            Some(&MfaStatus::new(0, true)),
            100,
            1_000
        ));
        // A first sign-in in the future (beyond clock skew) does not
        // postpone the deadline: overdue.
        let late = Some(&MfaStatus::new(1_000 + crate::MAX_LEEWAY_SECS + 1, false));
        assert!(enrolment_overdue(&a, late, 100, 1_000));
        let skewed = Some(&MfaStatus::new(1_000 + crate::MAX_LEEWAY_SECS, false));
        assert!(!enrolment_overdue(&a, skewed, 100, 1_000));
        assert!(!enrolment_overdue(
            &a,
            Some(&MfaStatus::new(u64::MAX, true)),
            100,
            1_000
        ));
        assert!(!enrolment_overdue(
            &auth(&["otp"], None, None),
            None,
            100,
            1_000
        ));
    }
}
