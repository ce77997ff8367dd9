//! Bearer-token verification on untrusted input: must never panic, and must
//! never accept a token that is not HS256-signed with the configured secret.
//!
//! Input: first byte selects the mode, then a newline splits the token (or the
//! claims) from the path tenant.
//! - mode even: the bytes are the whole token (header, payload, signature).
//! - mode odd: the bytes are the claims JSON; the harness builds a correctly
//!   signed HS256 token around them, so the claims parser (exp types, tenant
//!   claim, roles, clients) is reached. Any context returned must then carry
//!   the tenant the claims named.
#![no_main]

use std::sync::{Arc, LazyLock};

use hisn_tenant_guard::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use hisn_tenant_guard::{Error, Issuer, ManualClock, TokenVerifier};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret";
const KID: &str = "k1";

static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| {
    TokenVerifier::builder()
        .issuer(
            Issuer::new("iss", "aud", &[Algorithm::HS256])
                .key(KID, DecodingKey::from_secret(SECRET)),
        )
        .clock(Arc::new(ManualClock::new(1_000)))
        .build()
        .unwrap()
});

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (body, path) = text.split_once('\n').unwrap_or((text, ""));
    if mode % 2 == 0 {
        // Only the two opaque errors may come back (or, should the fuzzer
        // ever produce a valid HMAC, a context for the path's tenant).
        match VERIFIER.verify_for_path(body, path) {
            Ok(ctx) => assert_eq!(ctx.tenant(), path.parse().unwrap()),
            Err(e) => assert!(
                matches!(e, Error::Unauthenticated | Error::NotFound),
                "{e:?}"
            ),
        }
        return;
    }
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let signing_input = format!("{header}.{}", b64url(body.as_bytes()));
    let Ok(sig) = hisn_tenant_guard::jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    ) else {
        return;
    };
    let token = format!("{signing_input}.{sig}");
    if let Ok(ctx) = VERIFIER.verify_for_path(&token, path) {
        // Accepted: the path named exactly the token's tenant.
        assert_eq!(ctx.tenant(), path.parse().unwrap());
    }
});
