//! `hisn password verify` with legacy hashes (bcrypt, scrypt, PBKDF2-SHA256,
//! wrapped): exit 0 and "rehash" on a match, 1 on a mismatch, 2 on a hash it
//! refuses. Hashes come from crypto-vault's vector files (published vectors
//! and hashes made by Python's hashlib and pyca/bcrypt).

use assert_cmd::Command;
use hisn_crypto_vault::password::LegacyPolicy;
use hisn_crypto_vault::{PasswordHasher, PasswordParams};
use serde_json::Value;

fn vectors(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../crypto-vault/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (password, hash, layout) of the first vector in `file` whose hash starts
/// with `prefix` and whose layout is `layout`.
fn pick(file: &str, prefix: &str, layout: Option<&str>) -> (String, String) {
    vectors(file)
        .into_iter()
        .find(|e| {
            e["hash"].as_str().unwrap().starts_with(prefix)
                && e["layout"].as_str() == layout
                && e.get("expect").is_none()
        })
        .map(|e| {
            let pw = hex::decode(e["password_hex"].as_str().unwrap()).unwrap();
            (
                String::from_utf8(pw).unwrap(),
                e["hash"].as_str().unwrap().to_owned(),
            )
        })
        .unwrap()
}

/// Run `hisn [--json] password verify --hash <hash> <extra>` with `pw` on stdin.
fn verify(json: bool, hash: &str, extra: &[&str], pw: &str) -> (i32, String, String) {
    let mut c = Command::cargo_bin("hisn").unwrap();
    if json {
        c.arg("--json");
    }
    let out = c
        .args([
            "password", "verify", "--hash", hash, "--m-cost", "256", "--t-cost", "1",
        ])
        .args(extra)
        .write_stdin(format!("{pw}\n"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const NODE: &[&str] = &["--scrypt-salt-hash", "14,8,1", "--salt-as-written"];
const DECODED: &[&str] = &["--scrypt-salt-hash", "14,8,1"];

fn legacy_cases() -> Vec<(&'static str, String, String, &'static [&'static str])> {
    let py = "python_legacy_hashes_pass.json";
    let mut v = Vec::new();
    let (p, h) = pick("openwall_bcrypt_pass.json", "$2a$", None);
    v.push(("bcrypt $2a$ (Openwall)", p, h, &[][..]));
    let (p, h) = pick(py, "$2b$", None);
    v.push(("bcrypt $2b$ (pyca/bcrypt)", p, h, &[][..]));
    let (p, h) = pick(py, "$2y$", None);
    v.push(("bcrypt $2y$", p, h, &[][..]));
    let (p, h) = pick("rfc7914_scrypt_pass.json", "$scrypt$ln=14", None);
    v.push(("scrypt PHC (RFC 7914)", p, h, &[][..]));
    let (p, h) = pick(py, "$pbkdf2-sha256$i=", None);
    v.push(("PBKDF2 PHC (hashlib)", p, h, &[][..]));
    let (p, h) = pick(py, "$pbkdf2-sha256$29000$", None);
    v.push(("PBKDF2 passlib layout", p, h, &[][..]));
    let (p, h) = pick(py, "", Some("node"));
    v.push(("scrypt salt:hash, Node.js idiom", p, h, NODE));
    let (p, h) = pick(py, "", Some("decoded"));
    v.push(("scrypt salt:hash, base64", p, h, DECODED));
    v
}

#[test]
fn legacy_hashes_verify_and_say_rehash() {
    for (what, pw, hash, extra) in legacy_cases() {
        let (code, out, err) = verify(false, &hash, extra, &pw);
        assert_eq!(code, 0, "{what}: {err}");
        assert!(out.contains("legacy hash: rehash"), "{what}: {out}");
        let (code, out, _) = verify(true, &hash, extra, &pw);
        assert_eq!(code, 0, "{what}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["valid"], true, "{what}");
        assert_eq!(v["needs_rehash"], true, "{what}");
        assert_eq!(v["legacy"], true, "{what}");
        let (code, _, _) = verify(false, &hash, extra, &format!("{pw}x"));
        assert_eq!(code, 1, "{what}: wrong password");
    }
}

#[test]
fn wrapped_hashes_verify_and_say_rehash() {
    let (pw, bcrypt) = pick("python_legacy_hashes_pass.json", "$2b$", None);
    let h = PasswordHasher::new(PasswordParams::new(256, 1, 1).unwrap())
        .with_legacy(LegacyPolicy::NONE.with_bcrypt(5).unwrap());
    let wrapped = h.wrap_legacy(&bcrypt).unwrap();
    let (code, out, err) = verify(false, &wrapped, &[], &pw);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("legacy hash: rehash"), "{out}");
    assert_eq!(verify(false, &wrapped, &[], "nope").0, 1);
}

#[test]
fn bcrypt_longer_than_72_bytes_is_a_mismatch() {
    let prefix = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let hash = "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui";
    assert_eq!(verify(false, hash, &[], prefix).0, 0);
    let (code, out, _) = verify(false, hash, &[], &format!("{prefix}chars after 72"));
    assert_eq!(code, 1, "{out}");
}

#[test]
fn refused_hashes_are_usage_errors_and_never_echo_the_password() {
    let secret = "S3cret-Do-Not-Print";
    let (_, node_hash) = pick("python_legacy_hashes_pass.json", "", Some("node"));
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("unknown", "$1$abc$def".to_owned(), &[]),
        ("garbage", "not a hash".to_owned(), &[]),
        (
            "$2x$",
            "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e".to_owned(),
            &[],
        ),
        (
            "planted bcrypt cost",
            "$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW".to_owned(),
            &[],
        ),
        (
            "planted scrypt memory",
            "$scrypt$ln=20,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            &[],
        ),
        (
            "planted PBKDF2 iterations",
            "$pbkdf2-sha256$i=4000000000,l=16$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            &[],
        ),
        ("salt:hash without a layout", node_hash.clone(), &[]),
        (
            "bad layout spec",
            node_hash.clone(),
            &["--scrypt-salt-hash", "14,8"],
        ),
        (
            "layout above the bounds",
            node_hash,
            &["--scrypt-salt-hash", "22,8,1"],
        ),
    ];
    for (what, hash, extra) in cases {
        let t = std::time::Instant::now();
        let (code, out, err) = verify(false, &hash, extra, secret);
        assert_eq!(code, 2, "{what}: {out} {err}");
        assert!(!out.contains(secret) && !err.contains(secret), "{what}");
        // Refused before any work (the planted costs would take hours).
        assert!(t.elapsed() < std::time::Duration::from_secs(60), "{what}");
    }
}
