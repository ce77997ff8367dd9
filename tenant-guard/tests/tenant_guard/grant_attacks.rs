//! An outside reviewer's attacks on break-glass grants (issue #15): raw JWS
//! tricks (duplicate members, `alg: none`, `typ` spellings), time claims of
//! the wrong type or in the future, leeway stretching a grant past 24 hours,
//! tenant spellings, permission-set tricks, hook order and slow hooks, and a
//! grant session reaching the password change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hisn_tenant_guard::grant::{
    GRANT_TYP, Grant, GrantAccess, GrantAuditHook, GrantNotifier, GrantRequest, GrantRevocation,
    GrantUse, HookFuture, MAX_GRANT_LIFETIME_SECS,
};
use hisn_tenant_guard::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey};
use hisn_tenant_guard::{
    Error, GrantVerifier, Issuer, MAX_LEEWAY_SECS, ManualClock, Permission, RolePolicy,
    TokenVerifier,
};
use serde_json::json;

use crate::common::*;
use crate::grant::{
    GRANT_AUD, GRANT_ISS, GRANT_KID, GRANT_SECRET, SUPPORT, forge, fx, grant_claims, policy,
    read_only,
};

const HOUR: u64 = 3600;

/// Sign raw header and claims text (not re-serialised, so duplicate members
/// and odd spellings reach the verifier as written) with the grant key.
fn raw(header: &str, claims: &str) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &EncodingKey::from_secret(GRANT_SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{msg}.{sig}")
}

const HEADER: &str = r#"{"alg":"HS256","typ":"hisn-grant+jwt","kid":"grants-2026"}"#;

fn claims_text(iat: &str, exp: &str) -> String {
    format!(
        r#"{{"iss":"{GRANT_ISS}","aud":"{GRANT_AUD}","sub":"{SUPPORT}","jti":"{}","iat":{iat},"exp":{exp},"hisn_grant":{{"tenant":"{TENANT_A}","access":"read_only","reason":"r","ticket":"T-1"}}}}"#,
        hisn_tenant_guard::grant::GrantId::random()
    )
}

fn verifier_with_leeway(clock: Arc<ManualClock>, leeway: u64) -> GrantVerifier {
    let f = fx();
    GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::HS256)
        .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET))
        .clock(clock)
        .leeway(leeway)
        .revocation(f.revoked)
        .audit(f.audit)
        .notifier(f.notify)
        .build()
        .unwrap()
}

#[test]
fn raw_jws_tricks_are_refused() {
    let f = fx();
    let (now, exp) = (NOW.to_string(), (NOW + HOUR).to_string());
    // The control: the raw signer makes a grant the verifier accepts.
    assert!(
        f.verifier
            .verify(&raw(HEADER, &claims_text(&now, &exp)))
            .is_ok()
    );
    let refused = |t: &str| matches!(f.verifier.verify(t), Err(Error::Unauthenticated));
    // Duplicate members in the header (a second `typ`, `alg` or `kid`) or
    // in the grant claim (a second tenant, a second access).
    for h in [
        r#"{"alg":"HS256","typ":"JWT","typ":"hisn-grant+jwt","kid":"grants-2026"}"#,
        r#"{"alg":"none","alg":"HS256","typ":"hisn-grant+jwt","kid":"grants-2026"}"#,
        r#"{"alg":"HS256","typ":"hisn-grant+jwt","kid":"x","kid":"grants-2026"}"#,
    ] {
        assert!(refused(&raw(h, &claims_text(&now, &exp))), "{h}");
    }
    let base = claims_text(&now, &exp);
    let second_tenant = base.replace(
        r#""tenant":"#,
        &format!(r#""tenant":"{TENANT_B}","tenant":"#),
    );
    assert!(refused(&raw(HEADER, &second_tenant)));
    let second_access = base.replace(
        r#""access":"read_only""#,
        r#""access":["read","write"],"access":"read_only""#,
    );
    assert!(refused(&raw(HEADER, &second_access)));
    let second_exp = base.replace(
        r#""exp":"#,
        &format!(r#""exp":{},"exp":"#, NOW + 400 * HOUR),
    );
    assert!(refused(&raw(HEADER, &second_exp)));
    // `alg: none` with an empty signature, and with the HMAC signature kept.
    let none = r#"{"alg":"none","typ":"hisn-grant+jwt","kid":"grants-2026"}"#;
    let signed = raw(HEADER, &base);
    let sig = signed.rsplit('.').next().unwrap();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none),
        URL_SAFE_NO_PAD.encode(&base)
    );
    assert!(refused(&unsigned));
    assert!(refused(&format!("{unsigned}{sig}")));
    // `crit`, `jwk` and `jku` in the header: refused or never used.
    for h in [
        r#"{"alg":"HS256","typ":"hisn-grant+jwt","kid":"grants-2026","crit":["exp"]}"#,
        r#"{"alg":"HS256","typ":"hisn-grant+jwt","kid":"grants-2026","b64":false}"#,
    ] {
        assert!(refused(&raw(h, &base)), "{h}");
    }
}

#[test]
fn grant_typ_must_be_exact_and_access_tokens_refuse_every_spelling() {
    let f = fx();
    let c = grant_claims(NOW, NOW + HOUR);
    // The grant verifier accepts exactly `hisn-grant+jwt`.
    for typ in [
        "HISN-GRANT+JWT",
        "application/hisn-grant+jwt",
        "hisn-grant+jwt ",
        "at+jwt",
    ] {
        assert!(
            matches!(
                f.verifier.verify(&forge(&c, Algorithm::HS256, Some(typ))),
                Err(Error::Unauthenticated)
            ),
            "{typ}"
        );
    }
    // An access-token verifier sharing the grant key (the worst case) refuses
    // every spelling of the grant type, with the `application/` prefix too.
    let access = TokenVerifier::builder()
        .issuer(
            Issuer::new(GRANT_ISS, GRANT_AUD, &[Algorithm::HS256])
                .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET)),
        )
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    let at = json!({"iss": GRANT_ISS, "aud": GRANT_AUD, "sub": USER, "exp": NOW + 60, "iat": NOW, "tenant_id": TENANT_A});
    assert!(
        access
            .verify(&forge(&at, Algorithm::HS256, Some("JWT")))
            .is_ok()
    );
    for typ in [
        GRANT_TYP,
        "HISN-Grant+JWT",
        "application/hisn-grant+jwt",
        "Application/HISN-GRANT+JWT",
        " hisn-grant+jwt",
    ] {
        assert!(
            matches!(
                access.verify(&forge(&at, Algorithm::HS256, Some(typ))),
                Err(Error::Unauthenticated)
            ),
            "{typ}"
        );
    }
}

#[test]
fn time_claims_of_the_wrong_type_or_size_are_refused() {
    let f = fx();
    let now = NOW.to_string();
    let refused = |t: &str| matches!(f.verifier.verify(t), Err(Error::Unauthenticated));
    for exp in [
        format!("{}.0", NOW + HOUR),
        format!("{}.5", NOW + HOUR),
        format!("\"{}\"", NOW + HOUR),
        format!("{}e0", NOW + HOUR),
        "18446744073709551615".to_owned(),
        "18446744073709551616".to_owned(),
        "1e30".to_owned(),
        "-1".to_owned(),
        "null".to_owned(),
        "true".to_owned(),
    ] {
        assert!(refused(&raw(HEADER, &claims_text(&now, &exp))), "exp {exp}");
    }
    for iat in [format!("{NOW}.0"), format!("\"{NOW}\""), "null".to_owned()] {
        assert!(
            refused(&raw(HEADER, &claims_text(&iat, &(NOW + HOUR).to_string()))),
            "iat {iat}"
        );
    }
    // `nbf` is honoured when present (the signer never writes it).
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["nbf"] = json!(NOW + 1);
    assert!(refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))));
    c["nbf"] = json!(format!("{NOW}"));
    assert!(refused(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))));
    c["nbf"] = json!(NOW);
    assert!(
        f.verifier
            .verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP)))
            .is_ok()
    );
}

#[test]
fn lifetime_is_24_hours_exactly_at_sign_and_verify() {
    let f = fx();
    let req = |secs: u64| {
        GrantRequest::read_only(
            SUPPORT,
            TENANT_A.parse().unwrap(),
            "r",
            "T-1",
            Duration::from_secs(secs),
        )
    };
    let (g, token) = f.signer.sign(&req(MAX_GRANT_LIFETIME_SECS)).unwrap();
    assert_eq!(g.expires_at() - g.issued_at(), MAX_GRANT_LIFETIME_SECS);
    assert!(matches!(
        f.signer.sign(&req(MAX_GRANT_LIFETIME_SECS + 1)),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        f.signer.sign(&GrantRequest::read_only(
            SUPPORT,
            TENANT_A.parse().unwrap(),
            "r",
            "T-1",
            Duration::from_millis(MAX_GRANT_LIFETIME_SECS * 1000 + 1),
        )),
        Err(Error::Config(_))
    ));
    // Verified through its last second, refused at `exp`.
    f.clock.advance(MAX_GRANT_LIFETIME_SECS - 1);
    assert!(f.verifier.verify(&token).is_ok());
    f.clock.advance(1);
    assert!(matches!(
        f.verifier.verify(&token),
        Err(Error::Unauthenticated)
    ));
}

/// A leeway is for clocks that disagree, never a way to stretch a grant:
/// refused at `exp` whatever the leeway, and never more than 24 hours left on
/// the verifier's clock, even for a grant dated ahead within the leeway.
#[test]
fn leeway_never_extends_a_grant_past_24_hours() {
    let clock = Arc::new(ManualClock::new(NOW));
    let v = verifier_with_leeway(clock.clone(), MAX_LEEWAY_SECS);
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 24)).unwrap();
    clock.set(NOW + MAX_GRANT_LIFETIME_SECS - 1);
    assert!(v.verify(&token).is_ok());
    // At `exp` and within what used to be the leeway after it: refused.
    for after in [0, 1, MAX_LEEWAY_SECS - 1] {
        clock.set(NOW + MAX_GRANT_LIFETIME_SECS + after);
        assert!(
            matches!(v.verify(&token), Err(Error::Unauthenticated)),
            "{after}"
        );
    }
    // A signer clock 300 s ahead: a 24-hour grant dated NOW + 300 would
    // leave 24 h 5 min on this clock. Refused; a shorter one is accepted.
    clock.set(NOW);
    let ahead = NOW + MAX_LEEWAY_SECS;
    let c = grant_claims(ahead, ahead + MAX_GRANT_LIFETIME_SECS);
    assert!(matches!(
        v.verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))),
        Err(Error::Unauthenticated)
    ));
    let c = grant_claims(ahead, NOW + MAX_GRANT_LIFETIME_SECS);
    assert!(
        v.verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP)))
            .is_ok()
    );
    // Beyond the leeway: issued in the future.
    let c = grant_claims(ahead + 1, NOW + HOUR);
    assert!(matches!(
        v.verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))),
        Err(Error::Unauthenticated)
    ));
}

#[tokio::test]
async fn tenant_spellings_open_only_the_canonical_tenant() {
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    // The same UUID in upper case is the same tenant (ids are compared
    // parsed, never as text).
    let upper = TENANT_A.to_ascii_uppercase();
    let s = f.verifier.open(&token, &upper, "GET /x").await.unwrap();
    assert_eq!(s.grant().tenant().to_string(), TENANT_A);
    // Any other spelling is not a tenant: 404, and nothing is audited.
    let before = f.audit.0.calls().len();
    let simple = TENANT_A.replace('-', "");
    for path in [
        format!(" {TENANT_A}"),
        format!("{TENANT_A} "),
        format!("{TENANT_A}\n"),
        format!("{{{TENANT_A}}}"),
        format!("urn:uuid:{TENANT_A}"),
        simple,
        TENANT_B.to_owned(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        String::new(),
    ] {
        assert!(
            matches!(
                f.verifier.open(&token, &path, "GET /x").await,
                Err(Error::NotFound)
            ),
            "{path:?}"
        );
    }
    assert_eq!(f.audit.0.calls().len(), before);
    // In the grant itself: upper case is canonicalised, padding refused.
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["hisn_grant"]["tenant"] = json!(TENANT_A.to_ascii_uppercase());
    let g = f
        .verifier
        .verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP)))
        .unwrap();
    assert_eq!(g.tenant().to_string(), TENANT_A);
    for t in [format!(" {TENANT_A}"), format!("{{{TENANT_A}}}")] {
        c["hisn_grant"]["tenant"] = json!(t);
        assert!(
            f.verifier
                .verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP)))
                .is_err()
        );
    }
}

#[tokio::test]
async fn permission_set_tricks() {
    let f = fx();
    let pol = policy(f.clock.clone());
    let custom = Permission::new("billing:export").unwrap();
    // Unknown (application) permission names are allowed as listed, and
    // allow exactly themselves: not even `read`.
    let (_, token) = f
        .signer
        .sign(&read_only(TENANT_A, 1).permissions([custom.clone()]))
        .unwrap();
    let s = f.verifier.open(&token, TENANT_A, "GET /x").await.unwrap();
    assert!(pol.require(s.context(), &custom).is_ok());
    assert!(matches!(
        pol.require(s.context(), &Permission::READ),
        Err(Error::OutsideGrant)
    ));
    // A custom permission may write: the session is not `READ ONLY`.
    assert!(!s.context().is_read_only());
    // Duplicates at signing collapse into one; in a token they are refused.
    let (g, _) = f
        .signer
        .sign(&read_only(TENANT_A, 1).permissions([Permission::READ, Permission::READ]))
        .unwrap();
    assert_eq!(
        g.access(),
        &GrantAccess::Permissions([Permission::READ].into())
    );
    assert!(g.access().is_read_only());
    // Empty set, an access of the wrong shape or case: refused.
    assert!(matches!(
        f.signer
            .sign(&read_only(TENANT_A, 1).permissions(Vec::<Permission>::new())),
        Err(Error::Config(_))
    ));
    for access in [
        json!("READ_ONLY"),
        json!({"read": true}),
        json!(["READ"]),
        json!([null]),
        json!(null),
        json!((0..65).map(|i| format!("p{i}")).collect::<Vec<_>>()),
    ] {
        let mut c = grant_claims(NOW, NOW + HOUR);
        c["hisn_grant"]["access"] = access.clone();
        assert!(
            f.verifier
                .verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP)))
                .is_err(),
            "{access}"
        );
    }
}

/// Setting the customer's password under a grant is "log in as the
/// customer" by another road: no grant may list it, and a grant session is
/// refused the policy's password-change permission whatever it is named.
#[tokio::test]
async fn a_grant_never_reaches_the_password_change() {
    let f = fx();
    assert!(matches!(
        f.signer.sign(
            &read_only(TENANT_A, 1).permissions([Permission::READ, Permission::CHANGE_PASSWORD])
        ),
        Err(Error::Config(_))
    ));
    let mut c = grant_claims(NOW, NOW + HOUR);
    c["hisn_grant"]["access"] = json!(["read", "change_password"]);
    assert!(matches!(
        f.verifier
            .verify(&forge(&c, Algorithm::HS256, Some(GRANT_TYP))),
        Err(Error::Unauthenticated)
    ));
    // A policy whose password change has another name: listed in the grant,
    // still refused.
    let reset = Permission::new("reset_password").unwrap();
    let pol = RolePolicy::default()
        .password_change_permission(reset.clone())
        .clock(f.clock.clone());
    let (_, token) = f
        .signer
        .sign(&read_only(TENANT_A, 1).permissions([Permission::READ, reset.clone()]))
        .unwrap();
    let s = f.verifier.open(&token, TENANT_A, "POST /pw").await.unwrap();
    assert!(matches!(
        pol.require(s.context(), &reset),
        Err(Error::OutsideGrant)
    ));
    assert!(pol.require(s.context(), &Permission::READ).is_ok());
    // And the session is no customer session: no roles, no user id, and its
    // token is no access token.
    assert!(s.context().roles().is_empty());
    assert!(s.context().user().is_none());
    assert_eq!(s.context().subject(), SUPPORT);
    let (v, _) = verifier();
    assert!(matches!(v.verify(&token), Err(Error::Unauthenticated)));
}

/// Events across the three hooks, in the order they happened.
#[derive(Debug, Default)]
struct Trace {
    events: Mutex<Vec<&'static str>>,
    fail_audit: bool,
    /// Advance this clock in the audit hook (a slow audit sink).
    slow: Option<(Arc<ManualClock>, u64)>,
}

impl GrantRevocation for Trace {
    fn is_revoked<'a>(&'a self, _: &'a Grant) -> HookFuture<'a, bool> {
        self.events.lock().unwrap().push("revocation");
        Box::pin(async { Ok(false) })
    }
}

impl GrantAuditHook for Trace {
    fn record<'a>(&'a self, _: GrantUse<'a>) -> HookFuture<'a, ()> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if let Some((clock, secs)) = &self.slow {
                clock.advance(*secs);
            }
            self.events.lock().unwrap().push("audit");
            if self.fail_audit {
                Err("audit sink down".into())
            } else {
                Ok(())
            }
        })
    }
}

impl GrantNotifier for Trace {
    fn notify<'a>(&'a self, _: GrantUse<'a>) -> HookFuture<'a, ()> {
        self.events.lock().unwrap().push("notify");
        Box::pin(async { Ok(()) })
    }
}

fn traced(clock: Arc<ManualClock>, trace: Arc<Trace>) -> GrantVerifier {
    GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::HS256)
        .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET))
        .clock(clock)
        .revocation(trace.clone())
        .audit(trace.clone())
        .notifier(trace)
        .build()
        .unwrap()
}

#[tokio::test]
async fn hooks_run_revocation_audit_notify_before_the_session_exists() {
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    let trace = Arc::new(Trace::default());
    let v = traced(f.clock.clone(), trace.clone());
    assert!(v.open(&token, TENANT_A, "GET /x").await.is_ok());
    assert_eq!(
        *trace.events.lock().unwrap(),
        ["revocation", "audit", "notify"]
    );
    // A failing audit: no notification, no session.
    let trace = Arc::new(Trace {
        fail_audit: true,
        ..Trace::default()
    });
    let v = traced(f.clock.clone(), trace.clone());
    assert!(matches!(
        v.open(&token, TENANT_A, "GET /x").await,
        Err(Error::GrantHook)
    ));
    assert_eq!(*trace.events.lock().unwrap(), ["revocation", "audit"]);
    // Another tenant or a bad token: no hook runs at all.
    let trace = Arc::new(Trace::default());
    let v = traced(f.clock.clone(), trace.clone());
    assert!(v.open(&token, TENANT_B, "GET /x").await.is_err());
    assert!(v.open("not.a.grant", TENANT_A, "GET /x").await.is_err());
    assert!(trace.events.lock().unwrap().is_empty());
}

/// A grant that expires while a slow audit sink records its use is not
/// handed out: the session would otherwise start after `exp`.
#[tokio::test]
async fn a_grant_that_expires_during_slow_hooks_is_refused() {
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    f.clock.set(NOW + HOUR - 10);
    let trace = Arc::new(Trace {
        slow: Some((f.clock.clone(), 10)),
        ..Trace::default()
    });
    let v = traced(f.clock.clone(), trace.clone());
    assert!(matches!(
        v.open(&token, TENANT_A, "GET /x").await,
        Err(Error::Unauthenticated)
    ));
    // The attempt was audited (audit comes first), and refused after.
    assert_eq!(
        *trace.events.lock().unwrap(),
        ["revocation", "audit", "notify"]
    );
    // Nine seconds of hooks with ten left: the session opens, and expires
    // on the verifier's clock.
    f.clock.set(NOW + HOUR - 10);
    let trace = Arc::new(Trace {
        slow: Some((f.clock.clone(), 9)),
        ..Trace::default()
    });
    let v = traced(f.clock.clone(), trace);
    let s = v.open(&token, TENANT_A, "GET /x").await.unwrap();
    let scope = s.context().grant().unwrap();
    assert!(!scope.is_expired());
    f.clock.advance(1);
    assert!(scope.is_expired());
}

#[test]
fn debug_of_signer_verifier_and_session_prints_no_secret() {
    let f = fx();
    let secret = String::from_utf8_lossy(GRANT_SECRET).into_owned();
    let b64 = URL_SAFE_NO_PAD.encode(GRANT_SECRET);
    let (g, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    let sig = token.rsplit('.').next().unwrap().to_owned();
    for s in [
        format!("{:?}", f.signer),
        format!("{:?}", f.verifier),
        format!(
            "{:?}",
            GrantVerifier::builder(GRANT_ISS, GRANT_AUD, Algorithm::HS256)
                .key(GRANT_KID, DecodingKey::from_secret(GRANT_SECRET))
        ),
        format!("{g:?}"),
    ] {
        assert!(!s.contains(&secret) && !s.contains(&b64), "{s}");
        assert!(!s.contains(&sig), "{s}");
        assert!(!s.contains(&format!("{:?}", GRANT_SECRET)), "{s}");
    }
}

/// A grant whose `sub` is a UUID (worst case: the customer's own user id)
/// still gives a session with no user: code comparing `user()` with a row's
/// owner never sees the customer in a support session.
#[tokio::test]
async fn a_grant_subject_is_never_a_tenant_user() {
    let f = fx();
    let req = GrantRequest::read_only(
        USER,
        TENANT_A.parse().unwrap(),
        "customer asked",
        "T-1",
        Duration::from_secs(HOUR),
    );
    let (_, token) = f.signer.sign(&req).unwrap();
    let s = f.verifier.open(&token, TENANT_A, "GET /x").await.unwrap();
    assert_eq!(s.context().subject(), USER);
    assert_eq!(s.grant().support_user(), USER);
    assert!(s.context().user().is_none());
    // Bidi overrides in a reason the admins will read: refused at signing.
    let spoof = GrantRequest::read_only(
        SUPPORT,
        TENANT_A.parse().unwrap(),
        "routine check \u{202e}txt.exe",
        "T-1",
        Duration::from_secs(HOUR),
    );
    assert!(matches!(f.signer.sign(&spoof), Err(Error::Config(_))));
}

/// The action label often comes from the request: a newline or a bidi
/// override in it reaches the audit hook escaped, and a long one is cut.
#[tokio::test]
async fn action_labels_reach_the_audit_hook_escaped() {
    let f = fx();
    let (_, token) = f.signer.sign(&read_only(TENANT_A, 1)).unwrap();
    f.verifier
        .open(&token, TENANT_A, "GET /assets?q=x\nGRANT REVOKED\u{202e}")
        .await
        .unwrap();
    f.verifier
        .open(&token, TENANT_A, &"a".repeat(10_000))
        .await
        .unwrap();
    let calls = f.audit.0.calls();
    assert_eq!(calls[0].action, "GET /assets?q=x\\nGRANT REVOKED\\u{202e}");
    assert_eq!(
        calls[1].action.len(),
        hisn_tenant_guard::grant::MAX_ACTION_LEN
    );
    assert_eq!(f.notify.0.calls()[0].action, calls[0].action);
}
