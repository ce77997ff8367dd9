//! Formats (`Debug`, `Display`, errors) every public type that holds a key or a
//! plaintext with a sentinel value inside, and asserts the sentinel never appears.

use std::sync::Arc;

use hisn_crypto_vault::password::{BreachedList, PolicyViolation};
use hisn_crypto_vault::{
    ApiKeys, BlindIndexer, Error, FieldContext, FileKeyProvider, KeyId, KeyProvider, Keyring,
    MasterKey, MemoryKeyStore, PasswordHasher, PasswordParams, PasswordPolicy, Plaintext,
    SecretKey, StaticKeyProvider, UrlSigner, Vault,
};

/// Sentinel plaintext/password.
const SENTINEL: &str = "SENTINEL-7f3a9c";
/// Sentinel key bytes: 32 x 0x5A ("ZZZZ..." in ASCII).
const KEY: [u8; 32] = [0x5A; 32];

fn renderings(key_b64: &str) -> Vec<String> {
    vec![
        SENTINEL.to_owned(),
        SENTINEL.to_lowercase(),
        hex::encode(SENTINEL),
        "ZZZZZZZZ".to_owned(),
        "5a5a5a5a".to_owned(),
        "5A5A5A5A".to_owned(),
        "90, 90, 90".to_owned(),
        key_b64.to_owned(),
        key_b64[..16].to_owned(),
    ]
}

fn assert_clean(what: &str, s: &str, key_b64: &str) {
    for needle in renderings(key_b64) {
        assert!(!s.contains(&needle), "{what} leaks {needle:?}: {s}");
    }
}

#[test]
fn no_secret_holding_type_prints_its_secret() {
    let key = SecretKey::from_bytes(KEY);
    let b64 = key.to_base64().to_string();
    let mut out: Vec<(&str, String)> = Vec::new();

    out.push(("SecretKey", format!("{key:?}")));
    let master = MasterKey::new(key.clone());
    out.push(("MasterKey", format!("{master:?}")));
    out.push((
        "StaticKeyProvider",
        format!("{:?}", StaticKeyProvider::new(master.clone())),
    ));
    let pt = Plaintext::from(SENTINEL);
    out.push(("Plaintext", format!("{pt:?}")));
    out.push(("Plaintext alt", format!("{pt:#?}")));

    let ring = Keyring::from_keys("t", KeyId(1), [(KeyId(1), key.clone())]).unwrap();
    out.push(("Keyring", format!("{ring:?}")));
    let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
    let ct = ring.encrypt(&ctx, SENTINEL.as_bytes()).unwrap();
    out.push(("Ciphertext Debug", format!("{ct:?}")));
    out.push(("Ciphertext Display", format!("{ct}")));
    out.push((
        "decrypted Plaintext",
        format!("{:?}", ring.decrypt(&ctx, &ct).unwrap()),
    ));
    let wrong = FieldContext::new("t", "a", "b", "d").unwrap();
    let err = ring.decrypt(&wrong, &ct).unwrap_err();
    out.push(("decrypt error", format!("{err} {err:?}")));

    let bi = BlindIndexer::new(&key, "t", "a", "b").unwrap();
    out.push(("BlindIndexer", format!("{bi:?}")));

    let hasher = PasswordHasher::new(PasswordParams::new(64, 1, 1).unwrap());
    out.push(("PasswordHasher", format!("{hasher:?}")));
    let err = hasher
        .hash(&format!("{SENTINEL}{}", "x".repeat(2000)))
        .unwrap_err();
    out.push(("password error", format!("{err} {err:?}")));
    let policy = PasswordPolicy::default().with_breached(Arc::new(BreachedList::new([SENTINEL])));
    out.push(("PasswordPolicy", format!("{policy:?}")));
    let violations: Vec<PolicyViolation> = policy.check(SENTINEL, &[]).unwrap_err();
    out.push((
        "policy violations",
        format!(
            "{violations:?} {}",
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<String>()
        ),
    ));

    let keys = ApiKeys::new("hisn_live", key.clone()).unwrap();
    out.push(("ApiKeys", format!("{keys:?}")));
    let (token, record) = keys.mint(["read"], None).unwrap();
    let token_debug = format!("{token:?} {record:?}");
    let secret_part = &token.expose_secret()["hisn_live_".len() + 13..];
    assert!(
        !token_debug.contains(secret_part),
        "API key token leaks its secret: {token_debug}"
    );
    out.push(("ApiKeyToken/Record", token_debug));

    out.push(("UrlSigner", format!("{:?}", UrlSigner::new(key.clone()))));
    let vault = Vault::new(MemoryKeyStore::new(), master);
    out.push(("Vault", format!("{vault:?}")));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k");
    std::fs::write(&p, format!("{SENTINEL}-not-base64")).unwrap();
    let fp = FileKeyProvider::new(&p);
    out.push(("FileKeyProvider", format!("{fp:?}")));
    let err: Error = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fp.master_key())
        .unwrap_err();
    out.push(("FileKeyProvider error", format!("{err} {err:?}")));
    let err = MasterKey::from_base64(SENTINEL).unwrap_err();
    out.push(("MasterKey::from_base64 error", format!("{err} {err:?}")));

    for (what, s) in &out {
        assert_clean(what, s, &b64);
    }
}
