//! Step-up, MFA enrolment grace and must-change-password (issue #15): the
//! facts come from a verified token, the rules from the `RolePolicy`, time
//! from a fake clock.

use std::sync::Arc;
use std::time::Duration;

use hisn_tenant_guard::jsonwebtoken::{Algorithm, EncodingKey};
use hisn_tenant_guard::stepup::DEFAULT_MFA_GRACE;
use hisn_tenant_guard::{
    Error, ManualClock, MfaStatus, Permission, Role, RolePolicy, TenantContext, TokenVerifier,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::*;

const DAY: u64 = 24 * 3600;

fn hmac_claims(roles: &[&str], extra: Value) -> Value {
    let mut c = json!({
        "iss": HMAC_ISS, "aud": AUD, "sub": USER, "exp": NOW + 3600, "iat": NOW,
        "tenant_id": TENANT_A, "roles": roles,
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn token(roles: &[&str], extra: Value) -> String {
    sign(
        Algorithm::HS256,
        Some(HMAC_KID),
        &hmac_claims(roles, extra),
        &EncodingKey::from_secret(HMAC_SECRET),
    )
}

fn ctx_with(v: &TokenVerifier, roles: &[&str], extra: Value) -> TenantContext {
    v.verify(&token(roles, extra)).unwrap()
}

/// A policy with the default roles, `manage_members` needing a second factor
/// no older than 5 minutes, `manage_tenant` one of any age, and admin/owner
/// needing TOTP enrolment within 14 days; on `clock`.
fn policy(clock: Arc<ManualClock>) -> RolePolicy {
    RolePolicy::default()
        .require_second_factor(Permission::MANAGE_MEMBERS, Some(Duration::from_secs(300)))
        .require_second_factor(Permission::MANAGE_TENANT, None)
        .require_mfa_enrolment(Role::ADMIN, DEFAULT_MFA_GRACE)
        .require_mfa_enrolment(Role::OWNER, DEFAULT_MFA_GRACE)
        .clock(clock)
}

#[test]
fn auth_claims_reach_the_context_typed() {
    let (v, _) = verifier();
    let ctx = ctx_with(
        &v,
        &["admin"],
        json!({"amr": ["pwd", "otp"], "acr": "urn:example:aal2", "auth_time": NOW - 60, "mfa_time": NOW - 30}),
    );
    assert_eq!(ctx.auth().amr(), ["pwd", "otp"]);
    assert_eq!(ctx.auth().acr(), Some("urn:example:aal2"));
    assert_eq!(ctx.auth().auth_time(), Some(NOW - 60));
    assert_eq!(ctx.auth().second_factor_time(), Some(NOW - 30));
    assert!(!ctx.auth().must_change_password());
    // Interpreted claims are not also left in the untyped map.
    assert!(ctx.claim("mfa_time").is_none());
    assert!(ctx.claim("amr").is_none());
    let plain = ctx_with(&v, &["admin"], json!({}));
    assert!(!plain.auth().has_second_factor());
    assert_eq!(plain.auth().second_factor_time(), None);
}

#[test]
fn malformed_or_future_auth_claims_refuse_the_token() {
    let (v, _) = verifier();
    for extra in [
        json!({"mfa_time": "1800000000"}),
        json!({"mfa_time": 1.5}),
        json!({"mfa_time": -1}),
        json!({"mfa_time": NOW + 1}),
        json!({"auth_time": NOW + 1}),
        json!({"auth_time": "now"}),
        json!({"amr": "otp"}),
        json!({"amr": [1]}),
        json!({"amr": ["x".repeat(65)]}),
        json!({"acr": ["aal2"]}),
        json!({"must_change_password": "false"}),
        json!({"must_change_password": 0}),
        json!({"must_change_password": null}),
    ] {
        assert!(
            matches!(
                v.verify(&token(&["admin"], extra.clone())),
                Err(Error::Unauthenticated)
            ),
            "{extra}"
        );
    }
}

#[test]
fn no_second_factor_is_a_distinct_step_up_error() {
    let (v, clock) = verifier();
    let p = policy(clock);
    let ctx = ctx_with(&v, &["owner"], json!({"amr": ["pwd"], "auth_time": NOW}))
        .with_mfa_status(MfaStatus::new(NOW, true));
    assert!(matches!(
        p.require(&ctx, &Permission::MANAGE_MEMBERS),
        Err(Error::StepUpRequired { max_age: Some(300) })
    ));
    assert!(matches!(
        p.require(&ctx, &Permission::MANAGE_TENANT),
        Err(Error::StepUpRequired { max_age: None })
    ));
    assert!(!p.permits(&ctx, &Permission::MANAGE_MEMBERS));
    // Permissions without a rule are unaffected; roles are still checked first.
    assert!(p.require(&ctx, &Permission::WRITE).is_ok());
    let viewer = ctx_with(&v, &["viewer"], json!({"mfa_time": NOW}));
    assert!(matches!(
        p.require(&viewer, &Permission::MANAGE_MEMBERS),
        Err(Error::Forbidden)
    ));
}

#[test]
fn second_factor_too_old_is_refused_fresh_is_allowed() {
    let (v, clock) = verifier();
    let p = policy(clock.clone());
    let ctx = ctx_with(&v, &["admin"], json!({"mfa_time": NOW - 10}));
    assert!(p.require(&ctx, &Permission::MANAGE_MEMBERS).is_ok());
    // 300 s after the second factor: still fresh; one second later: step up.
    clock.set(NOW - 10 + 300);
    assert!(p.require(&ctx, &Permission::MANAGE_MEMBERS).is_ok());
    clock.advance(1);
    assert!(matches!(
        p.require(&ctx, &Permission::MANAGE_MEMBERS),
        Err(Error::StepUpRequired { max_age: Some(300) })
    ));
    // A rule without an age keeps accepting it.
    assert!(p.require(&ctx, &Permission::MANAGE_CLIENTS).is_ok());
    // An old login with `otp` in `amr`: auth_time is the second factor's time.
    clock.set(NOW);
    let old = ctx_with(
        &v,
        &["admin"],
        json!({"amr": ["pwd", "otp"], "auth_time": NOW - 301}),
    );
    assert!(matches!(
        p.require(&old, &Permission::MANAGE_MEMBERS),
        Err(Error::StepUpRequired { .. })
    ));
    let fresh = ctx_with(
        &v,
        &["admin"],
        json!({"amr": ["mfa"], "auth_time": NOW - 299}),
    );
    assert!(p.require(&fresh, &Permission::MANAGE_MEMBERS).is_ok());
    // `mfa` without any time proves a factor, not its age.
    let ageless = ctx_with(&v, &["owner"], json!({"amr": ["mfa"]}));
    assert!(p.require(&ageless, &Permission::MANAGE_TENANT).is_ok());
    assert!(p.require(&ageless, &Permission::MANAGE_MEMBERS).is_err());
}

#[test]
fn second_factor_claim_name_is_configurable() {
    let clock = Arc::new(ManualClock::new(NOW));
    let v = TokenVerifier::builder()
        .issuer(
            hisn_tenant_guard::Issuer::new(HMAC_ISS, AUD, &[Algorithm::HS256]).key(
                HMAC_KID,
                hisn_tenant_guard::jsonwebtoken::DecodingKey::from_secret(HMAC_SECRET),
            ),
        )
        .second_factor_claim("https://example.test/otp_at")
        .clock(clock.clone())
        .build()
        .unwrap();
    let ctx = ctx_with(&v, &["admin"], json!({"https://example.test/otp_at": NOW}));
    assert_eq!(ctx.auth().second_factor_time(), Some(NOW));
    // The default name is now an ordinary custom claim.
    let other = ctx_with(&v, &["admin"], json!({"mfa_time": NOW}));
    assert_eq!(other.auth().second_factor_time(), None);
    assert!(
        TokenVerifier::builder()
            .issuer(
                hisn_tenant_guard::Issuer::new(HMAC_ISS, AUD, &[Algorithm::HS256]).key(
                    HMAC_KID,
                    hisn_tenant_guard::jsonwebtoken::DecodingKey::from_secret(HMAC_SECRET)
                ),
            )
            .second_factor_claim("tenant_id")
            .build()
            .is_err()
    );
}

#[test]
fn admin_actions_allowed_during_grace_refused_after_14_days() {
    let (v, _) = verifier();
    let clock = Arc::new(ManualClock::new(NOW));
    let p = policy(clock.clone());
    let first = NOW - 13 * DAY;
    let with_otp = ctx_with(&v, &["admin"], json!({"amr": ["otp"], "auth_time": NOW}))
        .with_mfa_status(MfaStatus::new(first, false));
    let member = ctx_with(&v, &["member"], json!({})).with_mfa_status(MfaStatus::new(0, false));
    let admin = ctx_with(&v, &["admin"], json!({"amr": ["pwd"]}))
        .with_mfa_status(MfaStatus::new(first, false));
    // Day 13: inside the grace period (manage_clients has no step-up rule).
    assert!(p.require(&admin, &Permission::MANAGE_CLIENTS).is_ok());
    assert_eq!(p.enrolment_deadline(&admin), Some(first + 14 * DAY));
    clock.set(first + 14 * DAY - 1);
    assert!(p.require(&admin, &Permission::MANAGE_CLIENTS).is_ok());
    // Day 14: admin-only actions are refused until enrolment ...
    clock.set(first + 14 * DAY);
    assert!(matches!(
        p.require(&admin, &Permission::MANAGE_CLIENTS),
        Err(Error::MfaEnrolmentRequired)
    ));
    // ... while what members may also do stays open to the admin.
    assert!(p.require(&admin, &Permission::READ).is_ok());
    assert!(p.require(&admin, &Permission::WRITE).is_ok());
    // Enrolled (application's record) or a second factor in the token: allowed.
    let enrolled = admin.clone().with_mfa_status(MfaStatus::new(first, true));
    assert!(p.require(&enrolled, &Permission::MANAGE_CLIENTS).is_ok());
    assert_eq!(p.enrolment_deadline(&enrolled), None);
    assert!(p.require(&with_otp, &Permission::MANAGE_CLIENTS).is_ok());
    // A member is never subject to the admin rule.
    assert!(p.require(&member, &Permission::WRITE).is_ok());
}

#[test]
fn enrolment_protects_only_permissions_no_rule_free_role_grants() {
    // With the rule on `admin` only, `owner` (no rule) also grants
    // manage_members, so it is not admin-only: put the rule on every role that
    // grants administrative permissions (the README says so).
    let (v, _) = verifier();
    let clock = Arc::new(ManualClock::new(NOW + 15 * DAY));
    let p = RolePolicy::default()
        .require_mfa_enrolment(Role::ADMIN, DEFAULT_MFA_GRACE)
        .clock(clock);
    let admin = ctx_with(&v, &["admin"], json!({})).with_mfa_status(MfaStatus::new(NOW, false));
    assert!(p.require(&admin, &Permission::MANAGE_MEMBERS).is_ok());
    // manage_clients: only admin and owner grant it ... owner has no rule either.
    assert!(p.require(&admin, &Permission::MANAGE_CLIENTS).is_ok());
    let strict = RolePolicy::empty()
        .grant(Role::ADMIN, [Permission::READ, Permission::MANAGE_MEMBERS])
        .grant(Role::MEMBER, [Permission::READ])
        .require_mfa_enrolment(Role::ADMIN, DEFAULT_MFA_GRACE)
        .clock(Arc::new(ManualClock::new(NOW + 15 * DAY)));
    assert!(matches!(
        strict.require(&admin, &Permission::MANAGE_MEMBERS),
        Err(Error::MfaEnrolmentRequired)
    ));
    assert!(strict.require(&admin, &Permission::READ).is_ok());
}

#[test]
fn enrolment_rule_without_status_fails_closed() {
    let (v, clock) = verifier();
    let p = policy(clock);
    let admin = ctx_with(&v, &["admin"], json!({}));
    assert!(matches!(
        p.require(&admin, &Permission::MANAGE_CLIENTS),
        Err(Error::MfaEnrolmentRequired)
    ));
    // A second role without the rule that grants the permission keeps it.
    let both = ctx_with(&v, &["admin", "member"], json!({}));
    assert!(p.require(&both, &Permission::WRITE).is_ok());
}

#[test]
fn must_change_password_allows_only_the_password_change() {
    let (v, clock) = verifier();
    let p = policy(clock);
    let ctx = ctx_with(
        &v,
        &["owner"],
        json!({"must_change_password": true, "mfa_time": NOW}),
    )
    .with_mfa_status(MfaStatus::new(NOW, true));
    assert!(ctx.auth().must_change_password());
    for perm in [
        Permission::READ,
        Permission::WRITE,
        Permission::MANAGE_MEMBERS,
        Permission::MANAGE_TENANT,
        Permission::new("reports:export").unwrap(),
    ] {
        assert!(
            matches!(p.require(&ctx, &perm), Err(Error::PasswordChangeRequired)),
            "{perm}"
        );
    }
    assert!(p.require(&ctx, &Permission::CHANGE_PASSWORD).is_ok());
    // The password-change permission is configurable.
    let custom = Permission::new("account:password").unwrap();
    let p2 = RolePolicy::default()
        .grant(Role::MEMBER, [custom.clone()])
        .password_change_permission(custom.clone());
    let member = ctx_with(&v, &["member"], json!({"must_change_password": true}));
    assert!(p2.require(&member, &custom).is_ok());
    assert!(matches!(
        p2.require(&member, &Permission::CHANGE_PASSWORD),
        Err(Error::PasswordChangeRequired)
    ));
    // `false` restricts nothing.
    let normal = ctx_with(&v, &["member"], json!({"must_change_password": false}));
    assert!(p.require(&normal, &Permission::WRITE).is_ok());
}

proptest! {
    /// For any rule age and any second-factor age, `require` allows exactly
    /// when the factor is no older than the rule says.
    #[test]
    fn step_up_allows_iff_fresh(max_age in 0u64..100_000, age in 0u64..200_000) {
        let clock = Arc::new(ManualClock::new(NOW));
        let p = RolePolicy::default()
            .require_second_factor(Permission::WRITE, Some(Duration::from_secs(max_age)))
            .clock(clock.clone());
        let (v, _) = verifier();
        let ctx = ctx_with(&v, &["member"], json!({"mfa_time": NOW - 200_000}));
        clock.set(NOW - 200_000 + age);
        let r = p.require(&ctx, &Permission::WRITE);
        if age <= max_age {
            prop_assert!(r.is_ok());
        } else {
            let refused = matches!(r, Err(Error::StepUpRequired { .. }));
            prop_assert!(refused);
        }
    }

    /// For any first sign-in and any time, an admin without MFA may use an
    /// admin-only permission exactly while the grace period runs.
    #[test]
    fn enrolment_allows_iff_within_grace(first in 0u64..NOW, elapsed in 0u64..(60 * DAY)) {
        let clock = Arc::new(ManualClock::new(first + elapsed));
        // Every role that grants admin permissions carries the rule.
        let p = RolePolicy::default()
            .require_mfa_enrolment(Role::ADMIN, DEFAULT_MFA_GRACE)
            .require_mfa_enrolment(Role::OWNER, DEFAULT_MFA_GRACE)
            .clock(clock);
        let (v, _) = verifier();
        let admin = ctx_with(&v, &["admin"], json!({})).with_mfa_status(MfaStatus::new(first, false));
        let r = p.require(&admin, &Permission::MANAGE_MEMBERS);
        if elapsed < 14 * DAY {
            prop_assert!(r.is_ok());
        } else {
            prop_assert!(matches!(r, Err(Error::MfaEnrolmentRequired)));
        }
        prop_assert!(p.require(&admin, &Permission::READ).is_ok());
    }
}

/// A first sign-in the application dates in the future (a bug, a clock
/// gone wrong, a forged profile field) must not postpone the 14-day
/// deadline forever: beyond clock skew it counts as overdue.
#[test]
fn a_first_sign_in_in_the_future_does_not_postpone_enrolment() {
    let (v, _) = verifier();
    let clock = Arc::new(ManualClock::new(NOW));
    let p = policy(clock.clone());
    let admin = |first: u64| {
        ctx_with(&v, &["admin"], json!({"amr": ["pwd"]}))
            .with_mfa_status(MfaStatus::new(first, false))
    };
    for first in [
        NOW + hisn_tenant_guard::MAX_LEEWAY_SECS + 1,
        NOW + 365 * DAY,
        u64::MAX,
    ] {
        let ctx = admin(first);
        assert!(
            matches!(
                p.require(&ctx, &Permission::MANAGE_CLIENTS),
                Err(Error::MfaEnrolmentRequired)
            ),
            "{first}"
        );
        assert!(p.enrolment_deadline(&ctx).is_some_and(|d| d <= NOW));
    }
    // Within clock skew: a grace period that has just begun.
    let ctx = admin(NOW + hisn_tenant_guard::MAX_LEEWAY_SECS);
    assert!(p.require(&ctx, &Permission::MANAGE_CLIENTS).is_ok());
    // Enrolled is enrolled, whatever the date.
    let ctx = admin(u64::MAX).with_mfa_status(MfaStatus::new(u64::MAX, true));
    assert!(p.require(&ctx, &Permission::MANAGE_CLIENTS).is_ok());
}

/// `mfa_time`, when present, is the second factor's time even when a newer
/// `auth_time` comes with `amr: ["mfa"]` (the conservative reading: the
/// issuer said when the factor was presented). `amr` values are
/// case-sensitive (RFC 8176): `MFA` proves nothing.
#[test]
fn mfa_time_wins_over_auth_time_and_amr_is_case_sensitive() {
    let (v, clock) = verifier();
    let p = policy(clock);
    let owner =
        |extra: Value| ctx_with(&v, &["owner"], extra).with_mfa_status(MfaStatus::new(NOW, true));
    let stale = owner(json!({"amr": ["mfa"], "auth_time": NOW, "mfa_time": NOW - 301}));
    assert!(matches!(
        p.require(&stale, &Permission::MANAGE_MEMBERS),
        Err(Error::StepUpRequired { max_age: Some(300) })
    ));
    // The boundary: exactly 300 s old is fresh.
    let edge = owner(json!({"amr": ["pwd"], "mfa_time": NOW - 300}));
    assert!(p.require(&edge, &Permission::MANAGE_MEMBERS).is_ok());
    for amr in [json!(["MFA"]), json!(["OTP", "pwd"]), json!([" otp"])] {
        let ctx = owner(json!({"amr": amr, "auth_time": NOW}));
        assert!(
            matches!(
                p.require(&ctx, &Permission::MANAGE_TENANT),
                Err(Error::StepUpRequired { max_age: None })
            ),
            "{amr}"
        );
    }
}

/// With a clock-skew leeway, a second factor dated up to the leeway ahead is
/// accepted (age 0), one beyond it refuses the whole token.
#[test]
fn second_factor_time_in_the_future_within_skew_only() {
    use hisn_tenant_guard::Issuer;
    use hisn_tenant_guard::jsonwebtoken::DecodingKey;
    let clock = Arc::new(ManualClock::new(NOW));
    let v = TokenVerifier::builder()
        .issuer(
            Issuer::new(HMAC_ISS, AUD, &[Algorithm::HS256])
                .key(HMAC_KID, DecodingKey::from_secret(HMAC_SECRET)),
        )
        .leeway(60)
        .clock(clock.clone())
        .build()
        .unwrap();
    let p = policy(clock);
    let ctx = ctx_with(&v, &["owner"], json!({"mfa_time": NOW + 60}))
        .with_mfa_status(MfaStatus::new(NOW, true));
    assert!(p.require(&ctx, &Permission::MANAGE_MEMBERS).is_ok());
    for extra in [
        json!({"mfa_time": NOW + 61}),
        json!({"auth_time": NOW + 61}),
    ] {
        assert!(v.verify(&token(&["owner"], extra)).is_err());
    }
}
