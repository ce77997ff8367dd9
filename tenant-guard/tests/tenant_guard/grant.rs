//! Break-glass grants (issue #15): signed, single-tenant, at most 24 hours,
//! refused after expiry or revocation, every use audited and notified, no
//! write unless the grant lists it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hisn_tenant_guard::grant::{
    GRANT_TYP, Grant, GrantAccess, GrantAuditHook, GrantId, GrantNotifier, GrantRequest,
    GrantRevocation, GrantUse, HookFuture, MAX_GRANT_LIFETIME_SECS, MemoryRevocations,
};
use hisn_tenant_guard::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey, Header};
use hisn_tenant_guard::{
    Error, GrantSigner, GrantVerifier, Issuer, ManualClock, Permission, RolePolicy, TenantId,
    TokenVerifier,
};
use proptest::prelude::*;
use serde_json::json;

use crate::common::*;

pub const GRANT_ISS: &str = "https://support.example.test";
pub const GRANT_AUD: &str = "hisn-support";
pub const GRANT_KID: &str = "grants-2026";
pub const GRANT_SECRET: &[u8] = b"break-glass-grant-test-secret-0123456789";
pub const SUPPORT: &str = "support:alice@example.test";
const HOUR: u64 = 3600;

/// One recorded hook call: grant id, tenant, support user, reason, ticket,
/// access, action, time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub grant: GrantId,
    pub tenant: TenantId,
    pub support_user: String,
    pub reason: String,
    pub ticket: String,
    pub access: GrantAccess,
    pub action: String,
    pub at: u64,
}

impl Call {
    fn of(u: GrantUse<'_>) -> Self {
        Self {
            grant: u.grant.id(),
            tenant: u.grant.tenant(),
            support_user: u.grant.support_user().to_owned(),
            reason: u.grant.reason().to_owned(),
            ticket: u.grant.ticket().to_owned(),
            access: u.grant.access().clone(),
            action: u.action.to_owned(),
            at: u.at,
        }
    }
}

/// Records calls; fails when `fail` is set.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: std::sync::Mutex<Vec<Call>>,
    pub fail: AtomicBool,
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn take(&self, u: GrantUse<'_>) -> HookFuture<'static, ()> {
        let fail = self.fail.load(Ordering::SeqCst);
        if !fail {
            self.calls.lock().unwrap().push(Call::of(u));
        }
        Box::pin(async move {
            if fail {
                Err("hook down".into())
            } else {
                Ok(())
            }
        })
    }
}

#[derive(Debug, Default)]
pub struct Audit(pub Recorder);
#[derive(Debug, Default)]
pub struct Notify(pub Recorder);

impl GrantAuditHook for Audit {
    fn record<'a>(&'a self, u: GrantUse<'a>) -> HookFuture<'a, ()> {
        self.0.take(u)
    }
}

impl GrantNotifier for Notify {
    fn notify<'a>(&'a self, u: GrantUse<'a>) -> HookFuture<'a, ()> {
        self.0.take(u)
    }
}

/// A revocation check that errors.
#[derive(Debug)]
struct BrokenRevocations;

impl GrantRevocation for BrokenRevocations {
    fn is_revoked<'a>(&'a self, _: &'a Grant) -> HookFuture<'a, bool> {
        Box::pin(async { Err("store down".into()) })
    }
}

pub struct Fx {
    pub clock: Arc<ManualClock>,
    pub signer: GrantSigner,
    pub verifier: GrantVerifier,
    pub audit: Arc<Audit>,
    pub notify: Arc<Notify>,
    pub revoked: Arc<MemoryRevocations>,
}

pub fn signer(clock: Arc<ManualClock>) -> GrantSigner {
    GrantSigner::new(
        GRANT_ISS,
        GRANT_AUD,
        Algorithm::HS256,
        GRANT_KID,
        EncodingKey::from_secret(GRANT_SECRET),
    )
    .unwrap()
    .clock(clock)
}

pub fn fx() -> Fx {
    fx_with(None)
}

pub fn fx_with(revocation: Option<Arc<dyn GrantRevocation>>) -> Fx {
    let clock = Arc::new(ManualClock::new(NOW));
    let audit = Arc::new(Audit::default());
    let notify = Arc::new(Notify::default());
    let revoked = Arc::new(MemoryRevocations::new());
    let verifier = GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::HS256)
        .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET))
        .clock(clock.clone())
        .revocation(revocation.unwrap_or_else(|| revoked.clone()))
        .audit(audit.clone())
        .notifier(notify.clone())
        .build()
        .unwrap();
    Fx {
        signer: signer(clock.clone()),
        clock,
        verifier,
        audit,
        notify,
        revoked,
    }
}

pub fn read_only(tenant: &str, hours: u64) -> GrantRequest {
    GrantRequest::read_only(
        SUPPORT,
        tenant.parse().unwrap(),
        "customer cannot see their work orders",
        "SUP-1234",
        Duration::from_secs(hours * HOUR),
    )
}

pub fn policy(clock: Arc<ManualClock>) -> RolePolicy {
    RolePolicy::default().clock(clock)
}

/// Sign arbitrary grant claims with the grant key and header type.
pub fn forge(claims: &serde_json::Value, alg: Algorithm, typ: Option<&str>) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(GRANT_KID.into());
    h.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(GRANT_SECRET)).unwrap()
}

pub fn grant_claims(iat: u64, exp: u64) -> serde_json::Value {
    json!({
        "iss": GRANT_ISS, "aud": GRANT_AUD, "sub": SUPPORT, "jti": GrantId::random().to_string(),
        "iat": iat, "exp": exp,
        "hisn_grant": {"tenant": TENANT_A, "access": "read_only", "reason": "r", "ticket": "T-1"},
    })
}

#[tokio::test]
async fn read_only_grant_opens_one_tenant_and_refuses_every_write() {
    let f = fx();
    let (grant, token) = f.signer.sign(&read_only(TENANT_A, 2)).unwrap();
    assert_eq!(grant.expires_at() - grant.issued_at(), 2 * HOUR);
    let s = f
        .verifier
        .open(&token, TENANT_A, "GET /t/a/work-orders")
        .await
        .unwrap();
    let ctx = s.context();
    assert_eq!(ctx.tenant().to_string(), TENANT_A);
    assert_eq!(ctx.subject(), SUPPORT);
    assert!(ctx.roles().is_empty() && ctx.clients().is_empty());
    assert_eq!(ctx.grant().unwrap().id(), grant.id());
    assert!(ctx.is_read_only());
    let p = policy(f.clock.clone());
    assert!(p.require(ctx, &Permission::READ).is_ok());
    for write in [
        Permission::WRITE,
        Permission::MANAGE_MEMBERS,
        Permission::MANAGE_CLIENTS,
        Permission::MANAGE_TENANT,
        Permission::CHANGE_PASSWORD,
        Permission::new("assets:delete").unwrap(),
    ] {
        assert!(
            matches!(p.require(ctx, &write), Err(Error::OutsideGrant)),
            "{write}"
        );
    }
    // Even a policy that would give every role everything cannot widen a grant.
    let wide = RolePolicy::empty().clock(f.clock.clone());
    assert!(matches!(
        wide.require(ctx, &Permission::WRITE),
        Err(Error::OutsideGrant)
    ));
}

#[tokio::test]
async fn every_use_calls_audit_then_notifier_with_the_grant() {
    let f = fx();
    let (grant, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    for (i, action) in ["GET /a", "GET /b", "GET /c"].into_iter().enumerate() {
        f.clock.set(NOW + i as u64 * 60);
        f.verifier.open(&token, TENANT_A, action).await.unwrap();
    }
    let audit = f.audit.0.calls();
    let notify = f.notify.0.calls();
    assert_eq!(audit.len(), 3);
    assert_eq!(audit, notify);
    for (i, c) in audit.iter().enumerate() {
        assert_eq!(c.grant, grant.id());
        assert_eq!(c.tenant.to_string(), TENANT_A);
        assert_eq!(c.support_user, SUPPORT);
        assert_eq!(c.reason, "customer cannot see their work orders");
        assert_eq!(c.ticket, "SUP-1234");
        assert_eq!(c.access, GrantAccess::ReadOnly);
        assert_eq!(c.at, NOW + i as u64 * 60);
    }
    assert_eq!(
        audit.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
        ["GET /a", "GET /b", "GET /c"]
    );
    // `verify` alone is not a use: no hook runs.
    f.verifier.verify(&token).unwrap();
    assert_eq!(f.audit.0.calls().len(), 3);
}

#[tokio::test]
async fn expired_grant_is_refused_and_not_audited() {
    let f = fx();
    let (grant, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    f.clock.set(grant.expires_at() - 1);
    let s = f.verifier.open(&token, TENANT_A, "GET /").await.unwrap();
    f.clock.set(grant.expires_at());
    assert!(matches!(
        f.verifier.open(&token, TENANT_A, "GET /").await,
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        f.verifier.verify(&token),
        Err(Error::Unauthenticated)
    ));
    assert_eq!(f.audit.0.calls().len(), 1);
    assert_eq!(f.notify.0.calls().len(), 1);
    // A session held past the expiry (a long job) loses every permission.
    let p = policy(f.clock.clone());
    assert!(matches!(
        p.require(s.context(), &Permission::READ),
        Err(Error::OutsideGrant)
    ));
    f.clock.set(grant.expires_at() - 1);
    assert!(p.require(s.context(), &Permission::READ).is_ok());
}

#[tokio::test]
async fn revoked_grant_is_refused_and_a_broken_check_fails_closed() {
    let f = fx();
    let (grant, token) = f.signer.sign(&read_only(TENANT_A, 4)).unwrap();
    f.verifier.open(&token, TENANT_A, "GET /").await.unwrap();
    f.revoked.revoke(&grant, NOW);
    assert_eq!(f.revoked.len(), 1);
    assert!(matches!(
        f.verifier.open(&token, TENANT_A, "GET /").await,
        Err(Error::Unauthenticated)
    ));
    assert_eq!(
        f.audit.0.calls().len(),
        1,
        "a refused use is not audited as a use"
    );
    // Another grant is unaffected.
    let (_, other) = f.signer.sign(&read_only(TENANT_A, 4)).unwrap();
    assert!(f.verifier.open(&other, TENANT_A, "GET /").await.is_ok());
    // Expired revocations are dropped when a new one is added.
    f.revoked.revoke(&grant, grant.expires_at());
    assert_eq!(f.revoked.len(), 1);

    let broken = fx_with(Some(Arc::new(BrokenRevocations)));
    let (_, token) = broken.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    assert!(matches!(
        broken.verifier.open(&token, TENANT_A, "GET /").await,
        Err(Error::GrantHook)
    ));
    assert!(broken.audit.0.calls().is_empty());
}

#[tokio::test]
async fn grant_for_another_tenant_is_not_found() {
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    for path in [
        TENANT_B,
        "not-a-uuid",
        "",
        "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb ",
    ] {
        assert!(
            matches!(
                f.verifier.open(&token, path, "GET /").await,
                Err(Error::NotFound)
            ),
            "{path}"
        );
    }
    assert!(f.audit.0.calls().is_empty());
    assert!(f.notify.0.calls().is_empty());
}

#[tokio::test]
async fn failing_audit_or_notifier_refuses_the_use() {
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    f.audit.0.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        f.verifier.open(&token, TENANT_A, "GET /").await,
        Err(Error::GrantHook)
    ));
    assert!(
        f.notify.0.calls().is_empty(),
        "no notice for an unrecorded use"
    );
    f.audit.0.fail.store(false, Ordering::SeqCst);
    f.notify.0.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        f.verifier.open(&token, TENANT_A, "GET /").await,
        Err(Error::GrantHook)
    ));
}

#[tokio::test]
async fn listed_permissions_allow_exactly_those() {
    let f = fx();
    let export = Permission::new("reports:export").unwrap();
    let req = read_only(TENANT_A, 1).permissions([Permission::READ, export.clone()]);
    let (grant, token) = f.signer.sign(&req).unwrap();
    assert_eq!(
        grant.access(),
        &GrantAccess::Permissions(BTreeSet::from([Permission::READ, export.clone()]))
    );
    let s = f
        .verifier
        .open(&token, TENANT_A, "POST /export")
        .await
        .unwrap();
    let p = policy(f.clock.clone());
    assert!(p.require(s.context(), &export).is_ok());
    assert!(matches!(
        p.require(s.context(), &Permission::WRITE),
        Err(Error::OutsideGrant)
    ));
    // A custom permission may write: only a `read`-only set is READ ONLY in the database.
    assert!(!s.context().is_read_only());

    let (_, token) = f
        .signer
        .sign(&read_only(TENANT_A, 1).permissions([Permission::READ, Permission::WRITE]))
        .unwrap();
    let s = f.verifier.open(&token, TENANT_A, "PUT /x").await.unwrap();
    assert!(p.require(s.context(), &Permission::WRITE).is_ok());
    assert!(!s.context().is_read_only());
    assert!(matches!(
        p.require(s.context(), &Permission::MANAGE_MEMBERS),
        Err(Error::OutsideGrant)
    ));
}

#[test]
fn signer_refuses_bad_requests() {
    let clock = Arc::new(ManualClock::new(NOW));
    let s = signer(clock);
    let tenant: TenantId = TENANT_A.parse().unwrap();
    let req = |secs: u64| {
        GrantRequest::read_only(SUPPORT, tenant, "reason", "T-1", Duration::from_secs(secs))
    };
    assert!(s.sign(&req(MAX_GRANT_LIFETIME_SECS)).is_ok());
    assert!(matches!(
        s.sign(&req(MAX_GRANT_LIFETIME_SECS + 1)),
        Err(Error::Config(_))
    ));
    assert!(matches!(s.sign(&req(0)), Err(Error::Config(_))));
    assert!(matches!(
        s.sign(&GrantRequest::read_only(
            SUPPORT,
            tenant,
            "",
            "T-1",
            Duration::from_secs(60)
        )),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        s.sign(&GrantRequest::read_only(
            SUPPORT,
            tenant,
            "r",
            " ",
            Duration::from_secs(60)
        )),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        s.sign(&req(60).permissions([])),
        Err(Error::Config(_))
    ));
    assert!(
        GrantSigner::new(
            GRANT_ISS,
            GRANT_AUD,
            Algorithm::RS256,
            GRANT_KID,
            EncodingKey::from_secret(GRANT_SECRET)
        )
        .is_err()
    );
    let debug = format!("{s:?}");
    assert!(debug.contains(GRANT_KID) && !debug.contains("break-glass-grant-test-secret"));
}

#[test]
fn forged_or_misdirected_grants_are_refused() {
    let f = fx();
    let ok = forge(
        &grant_claims(NOW, NOW + HOUR),
        Algorithm::HS256,
        Some(GRANT_TYP),
    );
    assert!(f.verifier.verify(&ok).is_ok());
    let refused = |t: &str| matches!(f.verifier.verify(t), Err(Error::Unauthenticated));
    // Longer than 24 hours, even when the signer's key made it.
    assert!(refused(&forge(
        &grant_claims(NOW, NOW + MAX_GRANT_LIFETIME_SECS + 1),
        Algorithm::HS256,
        Some(GRANT_TYP)
    )));
    assert!(!refused(&forge(
        &grant_claims(NOW, NOW + MAX_GRANT_LIFETIME_SECS),
        Algorithm::HS256,
        Some(GRANT_TYP)
    )));
    // Issued in the future, exp before iat.
    assert!(refused(&forge(
        &grant_claims(NOW + 10, NOW + HOUR),
        Algorithm::HS256,
        Some(GRANT_TYP)
    )));
    assert!(refused(&forge(
        &grant_claims(NOW, NOW),
        Algorithm::HS256,
        Some(GRANT_TYP)
    )));
    // Without or with another header type; another algorithm of the same key.
    assert!(refused(&forge(
        &grant_claims(NOW, NOW + HOUR),
        Algorithm::HS256,
        None
    )));
    assert!(refused(&forge(
        &grant_claims(NOW, NOW + HOUR),
        Algorithm::HS256,
        Some("JWT")
    )));
    assert!(refused(&forge(
        &grant_claims(NOW, NOW + HOUR),
        Algorithm::HS384,
        Some(GRANT_TYP)
    )));
    // Wrong issuer or audience; unknown kid; missing iat; bad fields.
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["iss"] = json!("https://evil.test");
    assert!(refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))));
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["aud"] = json!(AUD);
    assert!(refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))));
    let mut c = grant_claims(NOW, NOW + HOUR);
    c.as_object_mut().unwrap().remove("iat");
    assert!(refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))));
    for (field, value) in [
        ("access", json!("read_write")),
        ("access", json!([])),
        ("access", json!(["read", "read"])),
        ("access", json!(["Not A Permission"])),
        ("tenant", json!("*")),
        ("reason", json!("")),
        ("ticket", json!("T\n2")),
    ] {
        let mut c = grant_claims(NOW, NOW + HOUR);
        c["hisn_grant"][field] = value.clone();
        assert!(
            refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))),
            "{field} {value}"
        );
    }
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["hisn_grant"]["tenants"] = json!([TENANT_B]);
    assert!(
        refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))),
        "unknown grant member"
    );
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some(GRANT_TYP.into());
    h.kid = Some("other".into());
    let t = jsonwebtoken::encode(
        &h,
        &grant_claims(NOW, NOW + HOUR),
        &EncodingKey::from_secret(GRANT_SECRET),
    )
    .unwrap();
    assert!(refused(&t));
    // Payload moved to another tenant, signature kept.
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let moved = URL_SAFE_NO_PAD.encode(payload.replace(TENANT_A, TENANT_B));
    assert!(refused(&format!("{}.{}.{}", parts[0], moved, parts[2])));
    // Duplicate member (a second tenant) is refused before decoding.
    let dup = payload.replacen(
        "\"tenant\"",
        &format!("\"tenant\":\"{TENANT_B}\",\"tenant\""),
        1,
    );
    assert!(refused(&format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(dup),
        parts[2]
    )));
}

#[test]
fn grants_and_access_tokens_are_never_confused() {
    // Worst case: the access-token issuer and the grant signer share a key.
    let clock = Arc::new(ManualClock::new(NOW));
    let access = TokenVerifier::builder()
        .issuer(
            Issuer::new(GRANT_ISS, GRANT_AUD, &[Algorithm::HS256])
                .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET)),
        )
        .tenant_claim("tenant")
        .clock(clock.clone())
        .build()
        .unwrap();
    let (_, grant) = signer(clock).sign(&read_only(TENANT_A, 1)).unwrap();
    assert!(matches!(access.verify(&grant), Err(Error::Unauthenticated)));
    // Even with the tenant claim at the top level and the grant's header type.
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["tenant"] = json!(TENANT_A);
    assert!(matches!(
        access.verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))),
        Err(Error::Unauthenticated)
    ));
    assert!(
        access
            .verify(&forge(&c, Algorithm::HS256, Some("JWT")))
            .is_ok()
    );
    // An access token is not a grant.
    let f = fx();
    let at = forge(
        &json!({"iss": GRANT_ISS, "aud": GRANT_AUD, "sub": USER, "exp": NOW + 60, "iat": NOW, "tenant_id": TENANT_A}),
        Algorithm::HS256,
        None,
    );
    assert!(matches!(
        f.verifier.verify(&at),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn verifier_builder_requires_every_hook_and_matching_keys() {
    let base = || {
        GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::HS256)
            .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET))
    };
    let audit = Arc::new(Audit::default());
    let notify = Arc::new(Notify::default());
    let rev = Arc::new(MemoryRevocations::new());
    assert!(
        base()
            .audit(audit.clone())
            .notifier(notify.clone())
            .build()
            .is_err()
    );
    assert!(
        base()
            .revocation(rev.clone())
            .notifier(notify.clone())
            .build()
            .is_err()
    );
    assert!(
        base()
            .revocation(rev.clone())
            .audit(audit.clone())
            .build()
            .is_err()
    );
    assert!(
        GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::RS256)
            .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET))
            .revocation(rev.clone())
            .audit(audit.clone())
            .notifier(notify.clone())
            .build()
            .is_err()
    );
    assert!(
        GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::HS256)
            .revocation(rev.clone())
            .audit(audit.clone())
            .notifier(notify.clone())
            .build()
            .is_err()
    );
    assert!(
        base()
            .revocation(rev)
            .audit(audit)
            .notifier(notify)
            .leeway(301)
            .build()
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any grant lifetime and any time at or after its expiry, every use
    /// is refused and never reaches the audit hook; before expiry it opens.
    #[test]
    fn any_use_after_expiry_is_refused(lifetime in 1u64..=MAX_GRANT_LIFETIME_SECS, after in 0u64..(400 * 24 * HOUR), before in 1u64..=MAX_GRANT_LIFETIME_SECS) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let f = fx();
        let (grant, token) = f.signer.sign(&GrantRequest::read_only(
            SUPPORT, TENANT_A.parse().unwrap(), "r", "T-1", Duration::from_secs(lifetime),
        )).unwrap();
        f.clock.set(grant.expires_at() + after);
        let r = rt.block_on(f.verifier.open(&token, TENANT_A, "GET /"));
        prop_assert!(matches!(r, Err(Error::Unauthenticated)));
        prop_assert!(f.audit.0.calls().is_empty());
        f.clock.set(grant.expires_at().saturating_sub(before).max(grant.issued_at()));
        prop_assert!(rt.block_on(f.verifier.open(&token, TENANT_A, "GET /")).is_ok());
    }

    /// For any permission set a grant lists and any permission, the grant
    /// session is allowed exactly the listed ones.
    #[test]
    fn permissions_outside_the_grant_are_refused(
        listed in proptest::collection::btree_set("[a-z][a-z:_-]{0,12}", 1..6),
        asked in "[a-z][a-z:_-]{0,12}",
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let f = fx();
        let set: BTreeSet<Permission> = listed.iter().map(|p| Permission::new(p).unwrap()).collect();
        let (_, token) = f.signer.sign(&read_only(TENANT_A, 1).permissions(set.clone())).unwrap();
        let s = rt.block_on(f.verifier.open(&token, TENANT_A, "GET /")).unwrap();
        let asked = Permission::new(&asked).unwrap();
        let r = policy(f.clock.clone()).require(s.context(), &asked);
        if set.contains(&asked) {
            prop_assert!(r.is_ok());
        } else {
            prop_assert!(matches!(r, Err(Error::OutsideGrant)));
        }
    }

    /// Arbitrary text never verifies as a grant (and never panics).
    #[test]
    fn arbitrary_text_is_not_a_grant(s in "\\PC{0,200}") {
        prop_assert!(matches!(fx().verifier.verify(&s), Err(Error::Unauthenticated)));
    }
}

/// Test-only Ed25519 key pair (generated for this suite): the support tool
/// holds the private key, services only the public key.
const ED_PRIVATE: &[u8] = include_bytes!("../data/grant_ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../data/grant_ed25519_public.pem");

#[tokio::test]
async fn ed25519_grants_verify_with_the_public_key_only() {
    let clock = Arc::new(ManualClock::new(NOW));
    let signer = GrantSigner::new(
        GRANT_ISS,
        GRANT_AUD,
        Algorithm::EdDSA,
        "ed-1",
        EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
    )
    .unwrap()
    .clock(clock.clone());
    let audit = Arc::new(Audit::default());
    let verifier = GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::EdDSA)
        .key("ed-1", DecodingKey::from_ed_pem(ED_PUBLIC).unwrap())
        .clock(clock)
        .revocation(Arc::new(MemoryRevocations::new()))
        .audit(audit.clone())
        .notifier(Arc::new(Notify::default()))
        .build()
        .unwrap();
    let (grant, token) = signer.sign(&read_only(TENANT_A, 24)).unwrap();
    let s = verifier.open(&token, TENANT_A, "GET /").await.unwrap();
    assert_eq!(s.grant(), &grant);
    assert_eq!(audit.0.calls().len(), 1);
    // An HMAC grant (even with a valid HMAC key elsewhere) is refused: EdDSA is pinned.
    let (_, hmac) = fx().signer.sign(&read_only(TENANT_A, 1)).unwrap();
    assert!(matches!(
        verifier.verify(&hmac),
        Err(Error::Unauthenticated)
    ));
    // The public key cannot be used as an HMAC secret to forge one.
    let forged = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("ed-1".into());
        h.typ = Some(GRANT_TYP.into());
        jsonwebtoken::encode(
            &h,
            &grant_claims(NOW, NOW + HOUR),
            &EncodingKey::from_secret(ED_PUBLIC),
        )
        .unwrap()
    };
    assert!(matches!(
        verifier.verify(&forged),
        Err(Error::Unauthenticated)
    ));
}
