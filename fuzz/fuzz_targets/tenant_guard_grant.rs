//! Break-glass grant verification on untrusted input: must never panic, and
//! every grant it accepts keeps the promises (at most 24 hours long and left,
//! not expired, not issued beyond the leeway, never the password change, the
//! tenant the claims named); no token is both a grant and an access token,
//! even when both verifiers hold the same key.
//!
//! Input: first byte selects the mode, then a newline splits the body from
//! the path tenant.
//! - mode % 3 == 0: the body is the whole token.
//! - mode % 3 == 1: the body is the claims JSON; the harness signs it under
//!   the grant header (`typ` `hisn-grant+jwt`), so the claims parser is
//!   reached, and opens the grant for the path tenant.
//! - mode % 3 == 2: the body is the header JSON; the harness signs valid
//!   grant claims (with a top-level `tenant_id` too) under it, so the header
//!   checks (`typ`, `alg`, `kid`, duplicates, `crit`) are reached.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use hisn_tenant_guard::grant::{
    Grant, GrantAuditHook, GrantNotifier, GrantUse, HookFuture, MAX_GRANT_LIFETIME_SECS,
    MemoryRevocations,
};
use hisn_tenant_guard::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use hisn_tenant_guard::{
    Error, GrantVerifier, Issuer, ManualClock, Permission, TenantId, TokenVerifier,
};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-grant-secret-fuzz-grant-secret";
const KID: &str = "g1";
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 60;

#[derive(Debug)]
struct Ok;

impl GrantAuditHook for Ok {
    fn record<'a>(&'a self, _: GrantUse<'a>) -> HookFuture<'a, ()> {
        Box::pin(async { Result::Ok(()) })
    }
}

impl GrantNotifier for Ok {
    fn notify<'a>(&'a self, _: GrantUse<'a>) -> HookFuture<'a, ()> {
        Box::pin(async { Result::Ok(()) })
    }
}

static GRANTS: LazyLock<GrantVerifier> = LazyLock::new(|| {
    GrantVerifier::builder("iss", "aud", Algorithm::HS256)
        .key(KID, DecodingKey::from_secret(SECRET))
        .leeway(LEEWAY)
        .clock(Arc::new(ManualClock::new(NOW)))
        .revocation(Arc::new(MemoryRevocations::new()))
        .audit(Arc::new(Ok))
        .notifier(Arc::new(Ok))
        .build()
        .unwrap()
});

/// An access-token verifier holding the same key (the worst misconfiguration).
static ACCESS: LazyLock<TokenVerifier> = LazyLock::new(|| {
    TokenVerifier::builder()
        .issuer(
            Issuer::new("iss", "aud", &[Algorithm::HS256])
                .key(KID, DecodingKey::from_secret(SECRET)),
        )
        .leeway(LEEWAY)
        .clock(Arc::new(ManualClock::new(NOW)))
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

fn signed(header: &[u8], claims: &[u8]) -> Option<String> {
    let input = format!("{}.{}", b64url(header), b64url(claims));
    let sig = hisn_tenant_guard::jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .ok()?;
    Some(format!("{input}.{sig}"))
}

/// The hooks are ready futures: one poll finishes `open`.
fn poll_once<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("open waited on ready hooks"),
    }
}

fn check(grant: &Grant) {
    assert!(grant.expires_at() > NOW, "expired grant accepted");
    assert!(grant.issued_at() <= NOW + LEEWAY, "future grant accepted");
    assert!(grant.expires_at() - grant.issued_at() <= MAX_GRANT_LIFETIME_SECS);
    assert!(grant.expires_at() - NOW <= MAX_GRANT_LIFETIME_SECS);
    assert!(!grant.access().allows(&Permission::CHANGE_PASSWORD));
    assert!(!grant.support_user().trim().is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Result::Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (body, path) = text.split_once('\n').unwrap_or((text, ""));
    let token = match mode % 3 {
        0 => body.to_owned(),
        1 => match signed(
            br#"{"alg":"HS256","typ":"hisn-grant+jwt","kid":"g1"}"#,
            body.as_bytes(),
        ) {
            Some(t) => t,
            None => return,
        },
        _ => {
            let claims = format!(
                r#"{{"iss":"iss","aud":"aud","sub":"support","jti":"6f9619ff-8b86-4011-b42d-00c04fc964ff","iat":{NOW},"exp":{},"tenant_id":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","hisn_grant":{{"tenant":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","access":"read_only","reason":"r","ticket":"T-1"}}}}"#,
                NOW + 3600
            );
            match signed(body.as_bytes(), claims.as_bytes()) {
                Some(t) => t,
                None => return,
            }
        }
    };
    match GRANTS.verify(&token) {
        Result::Ok(grant) => {
            check(&grant);
            // Never both a grant and an access token.
            assert!(
                ACCESS.verify(&token).is_err(),
                "a grant passed as an access token"
            );
            match poll_once(GRANTS.open(&token, path, "FUZZ /")) {
                Result::Ok(session) => {
                    assert_eq!(
                        Some(session.grant().tenant()),
                        path.parse::<TenantId>().ok()
                    );
                    assert_eq!(session.context().tenant(), session.grant().tenant());
                    assert!(session.context().roles().is_empty());
                }
                Err(e) => assert!(matches!(e, Error::NotFound), "{e:?}"),
            }
        }
        Err(e) => {
            assert!(matches!(e, Error::Unauthenticated), "{e:?}");
            assert!(poll_once(GRANTS.open(&token, path, "FUZZ /")).is_err());
        }
    }
});
