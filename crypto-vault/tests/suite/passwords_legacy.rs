//! Legacy password hashes (bcrypt, scrypt, PBKDF2-SHA256): published vectors,
//! hashes made by other implementations, planted costs, wrapped hashes.
//!
//! Vectors: `tests/data/*_pass.json` / `*_fail.json`, written by
//! `tests/data/gen_legacy_passwords.py` (sources named in each entry).

use std::time::{Duration, Instant};

use hisn_crypto_vault::password::{
    LegacyAlgorithm, LegacyHash, LegacyPolicy, SaltHashLayout, SaltInput, ScryptCost,
};
use hisn_crypto_vault::{Error, PasswordHasher, PasswordParams, Verification};
use proptest::prelude::*;
use serde_json::Value;

fn data(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(!v.is_empty(), "{name} is empty");
    v
}

fn layout(e: &Value) -> Option<SaltHashLayout> {
    match e["layout"].as_str() {
        Some("node") => Some(SaltHashLayout::NODE_DEFAULT),
        Some("decoded") => Some(SaltHashLayout::new(
            ScryptCost::NODE_DEFAULT,
            SaltInput::Decoded,
        )),
        None => None,
        Some(other) => panic!("unknown layout {other}"),
    }
}

struct Vector {
    source: String,
    password: Vec<u8>,
    hash: String,
    layout: Option<SaltHashLayout>,
    expect: Option<String>,
}

fn vectors(name: &str) -> Vec<Vector> {
    data(name)
        .iter()
        .map(|e| Vector {
            source: e["source"].as_str().unwrap().to_owned(),
            password: hex::decode(e["password_hex"].as_str().unwrap()).unwrap(),
            hash: e["hash"].as_str().unwrap().to_owned(),
            layout: layout(e),
            expect: e["expect"].as_str().map(str::to_owned),
        })
        .collect()
}

/// The cheapest argon2id policy: these tests are about the legacy side.
fn params() -> PasswordParams {
    PasswordParams::new(64, 1, 1).unwrap()
}

/// A hasher whose legacy policy admits exactly `hash`'s cost.
fn hasher_for(hash: &LegacyHash, layout: Option<SaltHashLayout>) -> PasswordHasher {
    let policy = match layout {
        Some(l) => LegacyPolicy::NONE.with_scrypt_salt_hash(l),
        None => LegacyPolicy::matching(hash),
    };
    PasswordHasher::new(params()).with_legacy(policy)
}

const PASS_FILES: &[&str] = &[
    "openwall_bcrypt_pass.json",
    "rfc7914_scrypt_pass.json",
    "rfc7914_pbkdf2_sha256_pass.json",
    "rfc6070_style_pbkdf2_sha256_pass.json",
    "python_legacy_hashes_pass.json",
];

const FAIL_FILES: &[&str] = &[
    "openwall_bcrypt_fail.json",
    "rfc7914_scrypt_fail.json",
    "python_legacy_hashes_fail.json",
];

#[test]
fn pass_vectors_verify_and_ask_for_a_rehash() {
    let mut through_hasher = 0;
    for file in PASS_FILES {
        for v in vectors(file) {
            let ctx = format!("{file}: {} {}", v.source, v.hash);
            let parsed = LegacyHash::parse(&v.hash, &LegacyPolicy::maximum(v.layout)).unwrap();
            assert!(parsed.verify(&v.password), "{ctx}");
            let mut wrong = v.password.clone();
            wrong.push(b'!');
            if wrong.len() <= 72 || parsed.algorithm() != LegacyAlgorithm::Bcrypt {
                assert!(!parsed.verify(&wrong), "{ctx}: wrong password matched");
            }
            // Through the hasher (UTF-8 passwords only: its API takes &str).
            if let Ok(pw) = std::str::from_utf8(&v.password) {
                let h = hasher_for(&parsed, v.layout);
                assert_eq!(
                    h.verify(pw, &v.hash).unwrap(),
                    Verification::ValidNeedsRehash,
                    "{ctx}"
                );
                assert_eq!(
                    h.verify(&format!("{pw}!"), &v.hash).unwrap(),
                    Verification::Invalid,
                    "{ctx}"
                );
                through_hasher += 1;
            }
        }
    }
    assert!(through_hasher > 40, "{through_hasher}");
}

#[test]
fn fail_vectors_are_refused_or_do_not_match() {
    let mut seen = std::collections::BTreeMap::new();
    for file in FAIL_FILES {
        for v in vectors(file) {
            let ctx = format!("{file}: {} {}", v.source, v.hash);
            let expect = v.expect.clone().unwrap();
            *seen.entry(expect.clone()).or_insert(0) += 1;
            let parsed = LegacyHash::parse(&v.hash, &LegacyPolicy::maximum(v.layout));
            let pw = std::str::from_utf8(&v.password).ok();
            match expect.as_str() {
                "mismatch" => {
                    let parsed = parsed.unwrap();
                    assert!(!parsed.verify(&v.password), "{ctx}");
                    if let Some(pw) = pw {
                        let h = hasher_for(&parsed, v.layout);
                        assert_eq!(
                            h.verify(pw, &v.hash).unwrap(),
                            Verification::Invalid,
                            "{ctx}"
                        );
                    }
                }
                "rejected" => {
                    assert!(
                        matches!(parsed, Err(Error::PasswordHashRejected(_))),
                        "{ctx}: {parsed:?}"
                    );
                }
                "unknown" => {
                    assert!(
                        matches!(parsed, Err(Error::PasswordHashUnknownFormat)),
                        "{ctx}: {parsed:?}"
                    );
                }
                "too_costly" => {
                    // Refused before any work: 2^31 bcrypt rounds, 1 GiB of
                    // scrypt or 4e9 PBKDF2 iterations would take hours.
                    assert!(
                        matches!(parsed, Err(Error::PasswordHashRejected(_))),
                        "{ctx}: {parsed:?}"
                    );
                    let h =
                        PasswordHasher::new(params()).with_legacy(LegacyPolicy::maximum(v.layout));
                    let t = Instant::now();
                    let r = h.verify(pw.unwrap(), &v.hash);
                    assert!(
                        matches!(r, Err(Error::PasswordHashRejected(_))),
                        "{ctx}: {r:?}"
                    );
                    assert!(t.elapsed() < Duration::from_secs(30), "{ctx}");
                }
                other => panic!("{ctx}: unknown expectation {other}"),
            }
        }
    }
    for kind in ["mismatch", "rejected", "unknown", "too_costly"] {
        assert!(seen.get(kind).copied().unwrap_or(0) > 0, "no {kind} vector");
    }
}

/// Defaults: a hasher without a legacy policy accepts argon2id only.
#[test]
fn legacy_hashes_are_refused_without_a_policy() {
    let h = PasswordHasher::new(params());
    for v in vectors("python_legacy_hashes_pass.json").iter().take(12) {
        let pw = std::str::from_utf8(&v.password).unwrap();
        assert!(
            matches!(h.verify(pw, &v.hash), Err(Error::PasswordHashRejected(_))),
            "{}",
            v.hash
        );
    }
    assert!(matches!(
        h.verify("pw", "$1$saltsalt$hash"),
        Err(Error::PasswordHashUnknownFormat)
    ));
    assert!(matches!(
        h.verify("pw", "not a hash at all"),
        Err(Error::PasswordHashUnknownFormat)
    ));
}

/// A planted hash above the ceiling is refused before any work, whatever the
/// parameter it raises.
#[test]
fn costs_above_the_ceiling_are_refused() {
    let policy = LegacyPolicy::NONE
        .with_bcrypt(5)
        .unwrap()
        .with_scrypt(ScryptCost::new(10, 8, 1).unwrap())
        .with_pbkdf2_sha256(29_000)
        .unwrap();
    let h = PasswordHasher::new(params()).with_legacy(policy);
    let ok_bcrypt = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
    assert_eq!(
        h.verify("U*U", ok_bcrypt).unwrap(),
        Verification::ValidNeedsRehash
    );
    let salt = "c2FsdHNhbHQ";
    let dk = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    for planted in [
        ok_bcrypt.replace("$05$", "$06$"),
        ok_bcrypt.replace("$05$", "$14$"),
        format!("$scrypt$ln=11,r=8,p=1${salt}${dk}"),
        format!("$scrypt$ln=10,r=9,p=1${salt}${dk}"),
        format!("$scrypt$ln=10,r=8,p=2${salt}${dk}"),
        format!("$scrypt$ln=30,r=8,p=1${salt}${dk}"),
        format!("$pbkdf2-sha256$i=29001,l=32${salt}${dk}"),
        format!("$pbkdf2-sha256$4294967295${salt}${dk}"),
    ] {
        let t = Instant::now();
        assert!(
            matches!(
                h.verify("pw", &planted),
                Err(Error::PasswordHashRejected(_))
            ),
            "{planted}"
        );
        assert!(t.elapsed() < Duration::from_secs(30), "{planted}");
    }
    // Ceilings themselves are bounded.
    assert!(LegacyPolicy::NONE.with_bcrypt(15).is_err());
    assert!(LegacyPolicy::NONE.with_bcrypt(3).is_err());
    assert!(LegacyPolicy::NONE.with_pbkdf2_sha256(0).is_err());
    assert!(LegacyPolicy::NONE.with_pbkdf2_sha256(2_000_001).is_err());
    assert!(ScryptCost::new(18, 8, 1).is_err());
}

/// bcrypt reads 72 bytes: a longer password never matches, not even the hash
/// of its own first 72 bytes (and not through a wrapped hash either).
#[test]
fn bcrypt_never_matches_a_truncated_password() {
    let h = PasswordHasher::new(params()).with_legacy(LegacyPolicy::NONE.with_bcrypt(5).unwrap());
    let prefix = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let hash = "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui";
    assert_eq!(prefix.len(), 72);
    assert_eq!(
        h.verify(prefix, hash).unwrap(),
        Verification::ValidNeedsRehash
    );
    for tail in ["x", "chars after 72 are ignored", &"y".repeat(300)] {
        assert_eq!(
            h.verify(&format!("{prefix}{tail}"), hash).unwrap(),
            Verification::Invalid
        );
    }
    assert_eq!(
        h.verify(
            "U*U\0tail",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
        )
        .unwrap(),
        Verification::Invalid
    );
    let wrapped = h.wrap_legacy(hash).unwrap();
    assert_eq!(
        h.verify(prefix, &wrapped).unwrap(),
        Verification::ValidNeedsRehash
    );
    assert_eq!(
        h.verify(&format!("{prefix}x"), &wrapped).unwrap(),
        Verification::Invalid
    );
    // Over MAX_PASSWORD_BYTES: the usual error, for legacy hashes too.
    let huge = "z".repeat(2000);
    assert!(matches!(h.verify(&huge, hash), Err(Error::PasswordTooLong)));
    assert!(matches!(h.dummy_verify(&huge), Err(Error::PasswordTooLong)));
}

/// Wrapping: argon2id over the legacy digest, verified transparently; the
/// legacy digest is no longer in the stored string.
#[test]
fn wrapped_hashes_verify_transparently() {
    let mut wrapped_kinds = std::collections::BTreeSet::new();
    for v in vectors("python_legacy_hashes_pass.json") {
        let pw = std::str::from_utf8(&v.password).unwrap();
        let parsed = LegacyHash::parse(&v.hash, &LegacyPolicy::maximum(v.layout)).unwrap();
        let h = hasher_for(&parsed, v.layout);
        let w = h.wrap_legacy(&v.hash).unwrap();
        assert!(w.starts_with("$hisn-wrap-v1$"), "{w}");
        assert!(w.contains("$argon2id$v=19$m=64,t=1,p=1$"), "{w}");
        let digest_text = v.hash.rsplit(['$', ':']).next().unwrap();
        assert!(!w.contains(digest_text), "{w} still holds {digest_text}");
        assert_eq!(
            h.verify(pw, &w).unwrap(),
            Verification::ValidNeedsRehash,
            "{w}"
        );
        assert_eq!(
            h.verify(&format!("{pw}x"), &w).unwrap(),
            Verification::Invalid
        );
        // Without the legacy algorithm enabled, the wrapped hash is refused.
        assert!(matches!(
            PasswordHasher::new(params()).verify(pw, &w),
            Err(Error::PasswordHashRejected(_))
        ));
        // Tampering with the inner settings breaks the match.
        let tampered = w.replacen("$hisn-wrap-v1$2b$05$", "$hisn-wrap-v1$2b$04$", 1);
        if tampered != w {
            assert_eq!(h.verify(pw, &tampered).unwrap(), Verification::Invalid);
        }
        wrapped_kinds.insert(format!("{:?}", parsed.algorithm()));
    }
    assert_eq!(wrapped_kinds.len(), 3, "{wrapped_kinds:?}");
}

#[test]
fn malformed_wrapped_hashes_are_refused() {
    let h = PasswordHasher::new(params()).with_legacy(LegacyPolicy::NONE.with_bcrypt(5).unwrap());
    let good = h
        .wrap_legacy("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
        .unwrap();
    for bad in [
        "$hisn-wrap-v1$".to_owned(),
        "$hisn-wrap-v1$2b$05$CCCCCCCCCCCCCCCCCCCCC.".to_owned(),
        good.replace("$argon2id$", "$argon2i$"),
        good.replace("$2b$05$", "$2x$05$"),
        good.replace("$2b$05$", "$2b$31$"),
        good.replace("$2b$05$", "$md5$"),
        good.replace("m=64,t=1,p=1", "m=4194304,t=1,p=1"),
    ] {
        assert!(
            matches!(h.verify("U*U", &bad), Err(Error::PasswordHashRejected(_))),
            "{bad}"
        );
    }
    assert_eq!(
        h.verify("U*U", &good).unwrap(),
        Verification::ValidNeedsRehash
    );
}

fn wrap_policy() -> LegacyPolicy {
    LegacyPolicy::NONE
        .with_bcrypt(4)
        .unwrap()
        .with_pbkdf2_sha256(10)
        .unwrap()
        .with_scrypt(ScryptCost::new(4, 1, 1).unwrap())
}

fn pbkdf2_phc(pw: &str, salt: &[u8; 8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut dk = [0u8; 32];
    pbkdf2_ref(pw.as_bytes(), salt, 10, &mut dk);
    format!(
        "$pbkdf2-sha256$i=10,l=32${}${}",
        b64.encode(salt),
        b64.encode(dk)
    )
}

/// PBKDF2-HMAC-SHA256 written out from RFC 8018 with `hmac`/`sha2` (not the
/// `pbkdf2` crate the library uses), for the property test's hashes.
fn pbkdf2_ref(pw: &[u8], salt: &[u8], c: u32, out: &mut [u8; 32]) {
    use hmac::{KeyInit, Mac};
    type H = hmac::Hmac<sha2::Sha256>;
    let mut m = <H as KeyInit>::new_from_slice(pw).unwrap();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = m.finalize().into_bytes().into();
    *out = u;
    for _ in 1..c {
        let mut m = <H as KeyInit>::new_from_slice(pw).unwrap();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// hash -> wrap -> verify round-trips, and no other password verifies.
    #[test]
    fn wrapped_pbkdf2_round_trips(pw in "\\PC{0,40}", other in "\\PC{0,40}", salt in any::<[u8; 8]>()) {
        let h = PasswordHasher::new(params()).with_legacy(wrap_policy());
        let legacy = pbkdf2_phc(&pw, &salt);
        prop_assert_eq!(h.verify(&pw, &legacy).unwrap(), Verification::ValidNeedsRehash);
        let w = h.wrap_legacy(&legacy).unwrap();
        prop_assert_eq!(h.verify(&pw, &w).unwrap(), Verification::ValidNeedsRehash);
        if other != pw {
            prop_assert_eq!(h.verify(&other, &w).unwrap(), Verification::Invalid);
            prop_assert_eq!(h.verify(&other, &legacy).unwrap(), Verification::Invalid);
        }
    }

    /// bcrypt: any password of at most 72 bytes without NUL round-trips
    /// through a wrapped hash; any longer extension of it never verifies.
    #[test]
    fn wrapped_bcrypt_never_matches_extensions(pw in "[^\\x00]{0,24}", tail in "[^\\x00]{1,8}") {
        prop_assume!(pw.len() <= 72);
        let h = PasswordHasher::new(params()).with_legacy(wrap_policy());
        let w = h.wrap_legacy(&bcrypt_hash(&pw)).unwrap();
        prop_assert_eq!(h.verify(&pw, &w).unwrap(), Verification::ValidNeedsRehash);
        prop_assert_eq!(h.verify(&format!("{pw}{tail}"), &w).unwrap(), Verification::Invalid);
        let long = format!("{pw}{}", "a".repeat(73 - pw.len()));
        prop_assert_eq!(h.verify(&long, &w).unwrap(), Verification::Invalid);
    }
}

/// A cost-4 bcrypt hash of `pw` from the `bcrypt` crate's high-level API (its
/// own encoding and key handling, not the library's parser).
fn bcrypt_hash(pw: &str) -> String {
    bcrypt::hash_with_salt(pw, 4, [0x11; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB)
}

/// Measurement, not a test (no assertion; wall time is noisy on a shared
/// machine): medians of `verify` per account format against `dummy_verify`,
/// with argon2id at the default parameters and a legacy policy of bcrypt 10 and
/// PBKDF2 100,000. Run with
/// `cargo test --release -p hisn-crypto-vault --test lib measure_ -- --ignored --nocapture`.
#[test]
#[ignore = "measurement: prints medians, asserts nothing"]
fn measure_verify_time_per_format() {
    let policy = LegacyPolicy::NONE
        .with_bcrypt(10)
        .unwrap()
        .with_pbkdf2_sha256(100_000)
        .unwrap();
    let h = PasswordHasher::new(PasswordParams::DEFAULT).with_legacy(policy);
    let pw = "correct horse battery staple";
    let bcrypt10 = bcrypt::hash_with_salt(pw, 10, [3; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB);
    let mut dk = [0u8; 32];
    pbkdf2_ref(pw.as_bytes(), b"saltsalt", 100_000, &mut dk);
    let pbkdf2 = {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD_NO_PAD;
        format!(
            "$pbkdf2-sha256$i=100000,l=32${}${}",
            b.encode(b"saltsalt"),
            b.encode(dk)
        )
    };
    let accounts = [
        ("argon2id", h.hash(pw).unwrap()),
        ("bcrypt 10", bcrypt10.clone()),
        ("pbkdf2 100k", pbkdf2),
        ("wrapped bcrypt", h.wrap_legacy(&bcrypt10).unwrap()),
    ];
    let median = |f: &dyn Fn()| {
        let mut t: Vec<Duration> = (0..15)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect();
        t.sort();
        t[7]
    };
    let _ = h.dummy_verify(pw);
    let dummy = median(&|| {
        let _ = h.dummy_verify("wrong");
    });
    println!("dummy_verify: {dummy:?}");
    for (name, stored) in &accounts {
        let m = median(&|| {
            let _ = h.verify("wrong", stored);
        });
        println!(
            "verify {name} (wrong password): {m:?} ({:.2}x dummy)",
            m.as_secs_f64() / dummy.as_secs_f64()
        );
    }
}
