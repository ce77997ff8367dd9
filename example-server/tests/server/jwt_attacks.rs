//! Tokens an attacker can make without tenant B's credentials.

use hisn_tenant_guard::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::Server;
use crate::isolation::World;

fn token(claims: &Value, key: &[u8], alg: Algorithm) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(hisn_example_server::auth::KID.to_owned());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// Tokens an attacker can make without B's credentials.
pub(crate) fn forged_tokens(srv: &Server, w: &World) -> Vec<(&'static str, String)> {
    let now = hisn_example_server::state::now_unix();
    let claims = |tenant: &str, iss: &str, aud: &str, exp: u64| json!({ "iss": iss, "aud": aud, "sub": w.a.owner, "tenant_id": tenant, "roles": ["owner"], "iat": now.saturating_sub(10), "exp": exp });
    let good = (
        hisn_example_server::auth::ISSUER,
        hisn_example_server::auth::AUDIENCE,
    );
    let secret = std::fs::read_to_string(srv.dir.path().join("local-keys.json")).unwrap();
    let jwt_key = {
        use base64::Engine;
        let v: Value = serde_json::from_str(&secret).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(v["jwt"].as_str().unwrap())
            .unwrap()
    };
    // alg none, and A's real token with its payload swapped for B's tenant.
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims(&w.b.id, good.0, good.1, now + 600))
    );
    let mut parts: Vec<&str> = w.a.token.split('.').collect();
    let swapped_payload = b64(&claims(&w.b.id, good.0, good.1, now + 600));
    parts[1] = &swapped_payload;
    let swapped = parts.join(".");
    vec![
        ("alg none", none),
        ("payload swapped to B", swapped),
        (
            "wrong key",
            token(
                &claims(&w.b.id, good.0, good.1, now + 600),
                b"not the server's key at all, 32b",
                Algorithm::HS256,
            ),
        ),
        (
            "expired",
            token(
                &claims(&w.b.id, good.0, good.1, now - 600),
                &jwt_key,
                Algorithm::HS256,
            ),
        ),
        (
            "wrong audience",
            token(
                &claims(&w.b.id, good.0, "other-api", now + 600),
                &jwt_key,
                Algorithm::HS256,
            ),
        ),
        (
            "wrong issuer",
            token(
                &claims(&w.b.id, "https://evil.example", good.1, now + 600),
                &jwt_key,
                Algorithm::HS256,
            ),
        ),
        (
            "HS384 (not pinned)",
            token(
                &claims(&w.b.id, good.0, good.1, now + 600),
                &jwt_key,
                Algorithm::HS384,
            ),
        ),
        (
            "lifetime above 24 h",
            token(
                &claims(&w.b.id, good.0, good.1, now + 3 * 86_400),
                &jwt_key,
                Algorithm::HS256,
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
    ]
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
