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
    assert_eq!(ctx.user().to_string(), USER);
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
        ("sub", json!("alice")),
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
