//! JWT corpus: every known way to forge, replay or stretch a token is refused
//! with the same opaque error; a valid token decodes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hisn_tenant_guard::jsonwebtoken::{Algorithm, EncodingKey};
use hisn_tenant_guard::{Error, Role};
use serde_json::json;

use crate::common::*;

fn refused(token: &str) {
    let (v, _) = verifier();
    assert!(
        matches!(v.verify(token), Err(Error::Unauthenticated)),
        "accepted: {token}"
    );
}

fn without(claim: &str) -> serde_json::Value {
    let mut c = claims(TENANT_A);
    c.as_object_mut().unwrap().remove(claim);
    c
}

#[test]
fn valid_rs256_token_decodes_into_context() {
    let (v, _) = verifier();
    let mut c = claims(TENANT_A);
    c["roles"] = json!(["owner", "viewer"]);
    c["clients"] = json!(["dddddddd-dddd-4ddd-8ddd-dddddddddddd"]);
    let ctx = v.verify(&rs256(&c)).unwrap();
    assert_eq!(ctx.tenant().to_string(), TENANT_A);
    assert_eq!(ctx.user().unwrap().to_string(), USER);
    assert_eq!(ctx.subject(), USER);
    assert_eq!(ctx.roles(), &[Role::OWNER, Role::VIEWER]);
    assert_eq!(ctx.clients().len(), 1);
}

#[test]
fn valid_hs256_token_of_the_hmac_issuer_decodes() {
    let (v, _) = verifier();
    let mut c = claims(TENANT_B);
    c["iss"] = json!(HMAC_ISS);
    let t = sign(
        Algorithm::HS256,
        Some(HMAC_KID),
        &c,
        &EncodingKey::from_secret(HMAC_SECRET),
    );
    assert_eq!(v.verify(&t).unwrap().tenant().to_string(), TENANT_B);
}

#[test]
fn alg_none_is_refused() {
    let header = B64.encode(br#"{"alg":"none","typ":"JWT","kid":"issuer-2026"}"#);
    let payload = B64.encode(claims(TENANT_A).to_string());
    refused(&format!("{header}.{payload}."));
    refused(&format!("{header}.{payload}"));
    let header = B64.encode(br#"{"alg":"None","kid":"issuer-2026"}"#);
    refused(&format!("{header}.{payload}."));
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic algorithm-confusion attack: the verifier must never use the
    // RSA public key as an HMAC secret.
    let t = sign(
        Algorithm::HS256,
        Some(KID),
        &claims(TENANT_A),
        &EncodingKey::from_secret(ISSUER_PUBLIC),
    );
    refused(&t);
}

#[test]
fn unknown_and_malicious_kids_are_refused() {
    let attacker = EncodingKey::from_rsa_pem(ATTACKER_PRIVATE).unwrap();
    let c = claims(TENANT_A);
    refused(&sign(Algorithm::RS256, Some("attacker-key"), &c, &attacker));
    refused(&sign(
        Algorithm::RS256,
        Some("../../../../dev/null"),
        &c,
        &attacker,
    ));
    refused(&sign(
        Algorithm::RS256,
        Some("https://evil.test/jwks.json"),
        &c,
        &attacker,
    ));
    refused(&sign(Algorithm::RS256, None, &c, &attacker));
    // The right kid with the attacker's key: signature mismatch.
    refused(&sign(Algorithm::RS256, Some(KID), &c, &attacker));
    // The HMAC issuer's kid with an RSA signature: algorithm not pinned there.
    refused(&sign(Algorithm::RS256, Some(HMAC_KID), &c, &attacker));
    // An embedded jwk/jku in the header is never used.
    let header = B64.encode(
        json!({"alg":"RS256","kid":"attacker-key","jku":"https://evil.test/jwks.json"}).to_string(),
    );
    refused(&format!("{header}.{}.AAAA", B64.encode(c.to_string())));
}

#[test]
fn expired_token_is_refused_by_the_injected_clock() {
    let (v, clock) = verifier();
    let t = rs256(&claims(TENANT_A));
    assert!(v.verify(&t).is_ok());
    clock.advance(3600);
    assert!(matches!(v.verify(&t), Err(Error::Unauthenticated)));
    let mut c = claims(TENANT_A);
    c["exp"] = json!(NOW - 1);
    refused(&rs256(&c));
}

#[test]
fn exp_must_be_an_integer() {
    for exp in [
        json!((NOW + 3600).to_string()),
        json!(1.8e9 + 3600.5),
        json!(null),
        json!(-1),
        json!([NOW + 3600]),
    ] {
        let mut c = claims(TENANT_A);
        c["exp"] = exp;
        refused(&rs256(&c));
    }
}

#[test]
fn not_yet_valid_token_is_refused() {
    let mut c = claims(TENANT_A);
    c["nbf"] = json!(NOW + 60);
    refused(&rs256(&c));
}

#[test]
fn missing_required_claims_are_refused() {
    for claim in ["aud", "iss", "tenant_id", "sub", "exp"] {
        refused(&rs256(&without(claim)));
    }
}

#[test]
fn wrong_issuer_audience_or_malformed_ids_are_refused() {
    for (k, v) in [
        ("iss", json!("https://evil.test")),
        ("iss", json!(HMAC_ISS)),
        ("aud", json!("other-api")),
        ("aud", json!([])),
        ("tenant_id", json!("not-a-uuid")),
        ("tenant_id", json!("00000000-0000-0000-0000-000000000000")),
        ("tenant_id", json!(42)),
        ("tenant_id", json!([TENANT_A])),
        ("sub", json!("")),
        ("sub", json!("a\u{0}b")),
        ("roles", json!(["Owner; drop"])),
        ("roles", json!("owner")),
        ("clients", json!(["*"])),
    ] {
        let mut c = claims(TENANT_A);
        c[k] = v;
        refused(&rs256(&c));
    }
}

#[test]
fn garbage_is_refused_without_panicking() {
    for t in [
        "",
        ".",
        "..",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9..",
        &"A".repeat(10_000),
        "Bearer x.y.z",
    ] {
        refused(t);
    }
}

#[test]
fn path_tenant_mismatch_is_not_found() {
    let (v, _) = verifier();
    let t = rs256(&claims(TENANT_A));
    assert!(v.verify_for_path(&t, TENANT_A).is_ok());
    assert!(matches!(
        v.verify_for_path(&t, TENANT_B),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        v.verify_for_path(&t, "../admin"),
        Err(Error::NotFound)
    ));
    // A bad token stays 401-shaped even on a mismatching path.
    assert!(matches!(
        v.verify_for_path("x.y.z", TENANT_B),
        Err(Error::Unauthenticated)
    ));
}

/// The corpus as data files: `tests/data/jwt_corpus_{pass,fail}.txt`, one
/// `name<TAB>token<TAB>path tenant` per line, verified at `NOW` by `verifier()`.
/// Regenerate with `cargo test -p hisn-tenant-guard --test tenant_guard -- --ignored regenerate`.
/// `(name, token, path tenant)`.
type Case = (String, String, String);

fn corpus_cases() -> (Vec<Case>, Vec<Case>) {
    let attacker = EncodingKey::from_rsa_pem(ATTACKER_PRIVATE).unwrap();
    let mut pass = vec![(
        "rs256_valid".to_owned(),
        rs256(&claims(TENANT_A)),
        TENANT_A.to_owned(),
    )];
    let mut c = claims(TENANT_B);
    c["iss"] = json!(HMAC_ISS);
    pass.push((
        "hs256_valid_hmac_issuer".into(),
        sign(
            Algorithm::HS256,
            Some(HMAC_KID),
            &c,
            &EncodingKey::from_secret(HMAC_SECRET),
        ),
        TENANT_B.into(),
    ));
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT","kid":"issuer-2026"}"#);
    let payload = B64.encode(claims(TENANT_A).to_string());
    let mut fail = vec![
        (
            "alg_none".to_owned(),
            format!("{none_header}.{payload}."),
            TENANT_A.to_owned(),
        ),
        (
            "hs256_with_rsa_public_key".into(),
            sign(
                Algorithm::HS256,
                Some(KID),
                &claims(TENANT_A),
                &EncodingKey::from_secret(ISSUER_PUBLIC),
            ),
            TENANT_A.into(),
        ),
        (
            "unknown_kid".into(),
            sign(
                Algorithm::RS256,
                Some("attacker-key"),
                &claims(TENANT_A),
                &attacker,
            ),
            TENANT_A.into(),
        ),
        (
            "kid_url".into(),
            sign(
                Algorithm::RS256,
                Some("https://evil.test/jwks.json"),
                &claims(TENANT_A),
                &attacker,
            ),
            TENANT_A.into(),
        ),
        (
            "right_kid_wrong_key".into(),
            sign(Algorithm::RS256, Some(KID), &claims(TENANT_A), &attacker),
            TENANT_A.into(),
        ),
        (
            "path_tenant_mismatch".into(),
            rs256(&claims(TENANT_A)),
            TENANT_B.into(),
        ),
    ];
    let mut expired = claims(TENANT_A);
    expired["exp"] = json!(NOW - 1);
    fail.push(("expired".into(), rs256(&expired), TENANT_A.into()));
    let mut exp_string = claims(TENANT_A);
    exp_string["exp"] = json!((NOW + 3600).to_string());
    fail.push(("exp_as_string".into(), rs256(&exp_string), TENANT_A.into()));
    for claim in ["aud", "iss", "tenant_id", "sub", "exp"] {
        fail.push((
            format!("missing_{claim}"),
            rs256(&without(claim)),
            TENANT_A.into(),
        ));
    }
    (pass, fail)
}

fn corpus_file(kind: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/jwt_corpus_{kind}.txt"))
}

#[test]
#[ignore = "writes the corpus files; run by hand after changing the cases"]
fn regenerate_jwt_corpus_files() {
    let (pass, fail) = corpus_cases();
    for (kind, cases) in [("pass", pass), ("fail", fail)] {
        let mut text = format!(
            "# hisn-tenant-guard JWT corpus ({kind}): name<TAB>token<TAB>path tenant.\n\
             # Verified at unix time {NOW} by tests/tenant_guard/common.rs::verifier().\n"
        );
        for (name, token, path) in cases {
            text.push_str(&format!("{name}\t{token}\t{path}\n"));
        }
        std::fs::write(corpus_file(kind), text).unwrap();
    }
}

fn read_corpus(kind: &str) -> Vec<Case> {
    std::fs::read_to_string(corpus_file(kind))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split('\t');
            let (n, t, p) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (n.to_owned(), t.to_owned(), p.to_owned())
        })
        .collect()
}

#[test]
fn jwt_corpus_files_pass_and_fail_as_named() {
    let (v, _) = verifier();
    let pass = read_corpus("pass");
    let fail = read_corpus("fail");
    assert!(
        pass.len() >= 2 && fail.len() >= 13,
        "corpus files are incomplete"
    );
    for (name, token, path) in &pass {
        let ctx = v
            .verify_for_path(token, path)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&ctx.tenant().to_string(), path, "{name}");
    }
    for (name, token, path) in &fail {
        let r = v.verify_for_path(token, path);
        let expected_not_found = name == "path_tenant_mismatch";
        assert!(
            matches!(r, Err(Error::NotFound)) == expected_not_found && r.is_err(),
            "{name}: {r:?}"
        );
    }
}

/// HS256 over arbitrary header and claims *text* (serde cannot write duplicate
/// members), signed with the HMAC issuer's real secret.
fn hs256_raw(header: &str, claims: &str) -> String {
    use hmac::{KeyInit, Mac};
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(HMAC_SECRET).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        B64.encode(mac.finalize().into_bytes())
    )
}

const HMAC_HEADER: &str = r#"{"alg":"HS256","typ":"JWT","kid":"internal-1"}"#;

/// The HMAC issuer's valid claims as JSON text, with `extra` members appended.
fn hmac_claims_text(extra: &str) -> String {
    let mut c = claims(TENANT_A);
    c["iss"] = json!(HMAC_ISS);
    let text = c.to_string();
    format!("{}{extra}}}", &text[..text.len() - 1])
}

/// Duplicated claims (issue 10). Root cause: JSON objects with repeated member
/// names are legal to write and parsers disagree on them (first wins, last
/// wins, error). A gateway that authorises on the first `tenant_id` and this
/// crate taking the last would see two tenants in one validly signed token;
/// serde kept the last one silently. The raw claims are now walked for
/// duplicates at every depth before anything is decoded.
#[test]
fn duplicated_claims_are_refused_whatever_the_claim() {
    let (v, _) = verifier();
    // Control: the hand-signed token without a duplicate is accepted.
    let ok = hs256_raw(HMAC_HEADER, &hmac_claims_text(""));
    assert_eq!(v.verify(&ok).unwrap().tenant().to_string(), TENANT_A);
    for dup in [
        format!(r#","tenant_id":"{TENANT_B}""#),
        format!(r#","tenant\u005fid":"{TENANT_B}""#),
        format!(r#","sub":"{TENANT_B}""#),
        r#","exp":99999999999"#.to_owned(),
        r#","iss":"https://evil.example""#.to_owned(),
        r#","aud":"hisn-api""#.to_owned(),
        r#","roles":["owner"]"#.to_owned(),
        r#","clients":[]"#.to_owned(),
        r#","iat":1800000000"#.to_owned(),
        r#","custom":{"a":1,"a":2}"#.to_owned(),
    ] {
        let t = hs256_raw(HMAC_HEADER, &hmac_claims_text(&dup));
        assert!(
            matches!(v.verify(&t), Err(Error::Unauthenticated)),
            "accepted a duplicate: {dup}"
        );
    }
    // A duplicated header member too.
    let t = hs256_raw(
        r#"{"alg":"HS256","kid":"internal-1","kid":"internal-1"}"#,
        &hmac_claims_text(""),
    );
    refused(&t);
}

/// `crit` (RFC 7515 §4.1.11): a recipient must refuse extensions it does not
/// understand. Root cause: `jsonwebtoken` parses `crit` but does not act on it,
/// so a token that demanded, say, `b64: false` processing was verified as if
/// the demand were not there.
#[test]
fn crit_header_entries_are_refused() {
    let (v, _) = verifier();
    for header in [
        r#"{"alg":"HS256","kid":"internal-1","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","kid":"internal-1","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","kid":"internal-1","crit":[]}"#,
    ] {
        let t = hs256_raw(header, &hmac_claims_text(""));
        assert!(
            matches!(v.verify(&t), Err(Error::Unauthenticated)),
            "{header}"
        );
    }
}

fn hmac_verifier(leeway: u64, max_lifetime: Option<u64>) -> hisn_tenant_guard::TokenVerifier {
    use hisn_tenant_guard::jsonwebtoken::DecodingKey;
    let mut b = hisn_tenant_guard::TokenVerifier::builder()
        .issuer(
            hisn_tenant_guard::Issuer::new(HMAC_ISS, AUD, &[Algorithm::HS256])
                .key(HMAC_KID, DecodingKey::from_secret(HMAC_SECRET)),
        )
        .leeway(leeway)
        .clock(std::sync::Arc::new(hisn_tenant_guard::ManualClock::new(
            NOW,
        )));
    if let Some(m) = max_lifetime {
        b = b.max_lifetime(m);
    }
    b.build().unwrap()
}

fn hmac_token(iat: Option<serde_json::Value>, exp: u64) -> String {
    let mut c = claims(TENANT_A);
    c["iss"] = json!(HMAC_ISS);
    c["exp"] = json!(exp);
    match iat {
        Some(i) => c["iat"] = i,
        None => {
            c.as_object_mut().unwrap().remove("iat");
        }
    }
    sign(
        Algorithm::HS256,
        Some(HMAC_KID),
        &c,
        &EncodingKey::from_secret(HMAC_SECRET),
    )
}

/// `iat` in the future. Root cause: `iat` was not read at all, so a token
/// minted with a clock far ahead (or by an attacker who can pick `iat` to
/// dodge a lifetime check) was accepted.
#[test]
fn iat_in_the_future_beyond_the_leeway_is_refused() {
    let exp = NOW + 3600;
    let strict = hmac_verifier(0, None);
    assert!(strict.verify(&hmac_token(Some(json!(NOW)), exp)).is_ok());
    assert!(
        strict
            .verify(&hmac_token(Some(json!(NOW + 1)), exp))
            .is_err()
    );
    let lenient = hmac_verifier(30, None);
    assert!(
        lenient
            .verify(&hmac_token(Some(json!(NOW + 30)), exp))
            .is_ok()
    );
    assert!(
        lenient
            .verify(&hmac_token(Some(json!(NOW + 31)), exp))
            .is_err()
    );
    // `iat` must be a JSON integer, like `exp`.
    for bad in [json!("1800000000"), json!(1.8e9), json!(-1)] {
        assert!(
            strict.verify(&hmac_token(Some(bad.clone()), exp)).is_err(),
            "{bad}"
        );
    }
}

/// Token lifetime. Root cause: any `exp` the issuer signed was honoured, so a
/// token minted for a year (a misconfigured issuer, a stolen signing key used
/// to mint long-lived tokens) stayed valid for a year.
#[test]
fn lifetime_above_the_maximum_is_refused() {
    let day = hisn_tenant_guard::DEFAULT_MAX_LIFETIME_SECS;
    let v = hmac_verifier(0, None);
    assert!(v.verify(&hmac_token(Some(json!(NOW)), NOW + day)).is_ok());
    assert!(
        v.verify(&hmac_token(Some(json!(NOW)), NOW + day + 1))
            .is_err()
    );
    // Without `iat` the lifetime left counts.
    assert!(v.verify(&hmac_token(None, NOW + day)).is_ok());
    assert!(v.verify(&hmac_token(None, NOW + day + 1)).is_err());
    // Issued long ago, still unexpired: its whole lifetime counts.
    assert!(
        v.verify(&hmac_token(Some(json!(NOW - day)), NOW + 60))
            .is_err()
    );
    // Configurable.
    let short = hmac_verifier(0, Some(600));
    assert!(
        short
            .verify(&hmac_token(Some(json!(NOW)), NOW + 600))
            .is_ok()
    );
    assert!(
        short
            .verify(&hmac_token(Some(json!(NOW)), NOW + 601))
            .is_err()
    );
    let long = hmac_verifier(0, Some(30 * 86_400));
    assert!(
        long.verify(&hmac_token(Some(json!(NOW)), NOW + 7 * day))
            .is_ok()
    );
    assert!(matches!(
        hisn_tenant_guard::TokenVerifier::builder()
            .issuer(hisn_tenant_guard::Issuer::new(
                HMAC_ISS,
                AUD,
                &[Algorithm::HS256]
            ))
            .max_lifetime(0)
            .build(),
        Err(Error::Config(_))
    ));
}
