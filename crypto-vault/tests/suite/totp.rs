//! TOTP: RFC 6238 Appendix B vectors (`tests/data/rfc6238_appendix_b_{pass,fail}.json`),
//! replay and window behaviour on a fake clock, enrolment through the vault,
//! and proptests for the replay and window properties.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hisn_crypto_vault::totp::{Algorithm, OtpAuthUri, parse_code};
use hisn_crypto_vault::{
    Clock, Error, FieldContext, KeyId, Keyring, ManualClock, MasterKey, MemoryKeyStore,
    PendingTotp, SecretKey, Totp, TotpParams, TotpSecret, TotpVerifier, Vault,
};
use proptest::prelude::*;
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn totp_of(v: &Value) -> Totp {
    let alg = Algorithm::parse(v["algorithm"].as_str().unwrap()).unwrap();
    let digits = u8::try_from(v["digits"].as_u64().unwrap()).unwrap();
    let period = u32::try_from(v["period"].as_u64().unwrap()).unwrap();
    Totp::new(
        TotpSecret::from_bytes(v["secret_ascii"].as_str().unwrap().as_bytes()).unwrap(),
        TotpParams::new(alg, digits, period).unwrap(),
    )
}

fn verifier(clock: &ManualClock) -> TotpVerifier {
    TotpVerifier::new(Arc::new(clock.clone()))
}

fn rfc_sha1(digits: u8) -> Totp {
    Totp::new(
        TotpSecret::from_bytes(b"12345678901234567890").unwrap(),
        TotpParams::new(Algorithm::Sha1, digits, 30).unwrap(),
    )
}

#[test]
fn rfc6238_appendix_b_pass() {
    let vectors = load("rfc6238_appendix_b_pass.json");
    assert_eq!(vectors.len(), 18);
    for v in &vectors {
        let t = totp_of(v);
        let time = v["time"].as_u64().unwrap();
        let code = v["code"].as_str().unwrap();
        assert_eq!(t.code_at(at(time)).unwrap().as_str(), code, "{v}");
        assert_eq!(t.step_at(at(time)).unwrap(), v["step"].as_u64().unwrap());
        let clock = ManualClock::new(at(time));
        assert_eq!(
            verifier(&clock).verify(&t, code, None).unwrap(),
            v["step"].as_u64().unwrap(),
            "{v}"
        );
    }
}

#[test]
fn rfc6238_appendix_b_fail() {
    for v in &load("rfc6238_appendix_b_fail.json") {
        let t = totp_of(v);
        let clock = ManualClock::new(at(v["time"].as_u64().unwrap()));
        let r = verifier(&clock).verify(&t, v["code"].as_str().unwrap(), None);
        assert!(
            matches!(r, Err(Error::TotpRejected | Error::TotpMalformed)),
            "{v}: {r:?}"
        );
    }
}

#[test]
fn no_code_is_accepted_twice() {
    let t = rfc_sha1(6);
    let clock = ManualClock::new(at(1_000_000_005));
    let v = verifier(&clock);
    let now = t.step_at(clock.now()).unwrap();
    let code = t.code_at_step(now);
    let last = v.verify(&t, &code, None).unwrap();
    assert_eq!(last, now);
    // The same code again, same moment: replay.
    assert!(matches!(
        v.verify(&t, &code, Some(last)),
        Err(Error::TotpRejected)
    ));
    // Still refused a step later, while it is inside the window.
    clock.advance(Duration::from_secs(30));
    assert!(matches!(
        v.verify(&t, &code, Some(last)),
        Err(Error::TotpRejected)
    ));
    // The previous step's code is inside the window but before the last
    // accepted step: refused.
    assert!(matches!(
        v.verify(&t, &t.code_at_step(now - 1), Some(last)),
        Err(Error::TotpRejected)
    ));
    // The next step's code is fresh.
    let next = v.verify(&t, &t.code_at_step(now + 1), Some(last)).unwrap();
    assert_eq!(next, now + 1);
    assert!(v.verify(&t, &t.code_at_step(now + 1), Some(next)).is_err());
}

#[test]
fn a_future_code_moves_the_last_step_past_the_current_one() {
    let t = rfc_sha1(6);
    let clock = ManualClock::new(at(1_000_000_005));
    let v = verifier(&clock);
    let now = t.step_at(clock.now()).unwrap();
    // A phone a step ahead: accepted at now + 1 ...
    let last = v.verify(&t, &t.code_at_step(now + 1), None).unwrap();
    assert_eq!(last, now + 1);
    // ... so the current step's code, seen earlier on the wire, is dead.
    assert!(v.verify(&t, &t.code_at_step(now), Some(last)).is_err());
}

#[test]
fn window_is_plus_minus_one_by_default_and_configurable() {
    let t = rfc_sha1(8);
    let clock = ManualClock::new(at(2_000_000_000));
    let now = t.step_at(clock.now()).unwrap();
    let v = verifier(&clock);
    assert_eq!(v.window(), 1);
    for off in [-1i64, 0, 1] {
        let s = now.checked_add_signed(off).unwrap();
        assert_eq!(v.verify(&t, &t.code_at_step(s), None).unwrap(), s);
    }
    for off in [-3i64, -2, 2, 3] {
        let s = now.checked_add_signed(off).unwrap();
        assert!(matches!(
            v.verify(&t, &t.code_at_step(s), None),
            Err(Error::TotpRejected)
        ));
    }
    let strict = verifier(&clock).with_window(0).unwrap();
    assert!(strict.verify(&t, &t.code_at_step(now + 1), None).is_err());
    assert!(strict.verify(&t, &t.code_at_step(now), None).is_ok());
    let wide = verifier(&clock).with_window(2).unwrap();
    assert!(wide.verify(&t, &t.code_at_step(now - 2), None).is_ok());
    assert!(wide.verify(&t, &t.code_at_step(now + 3), None).is_err());
    assert!(verifier(&clock).with_window(5).is_err());
}

#[test]
fn arabic_indic_digits_and_spaces_verify() {
    let t = rfc_sha1(6);
    let clock = ManualClock::new(at(1_234_567_890));
    let v = verifier(&clock);
    let code = t.code_at(clock.now()).unwrap();
    let arabic: String = code
        .chars()
        .map(|c| char::from_u32(0x0660 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    let persian: String = code
        .chars()
        .map(|c| char::from_u32(0x06F0 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    for form in [arabic.as_str(), persian.as_str(), spaced.as_str()] {
        assert_eq!(parse_code(form, 6).unwrap(), code.parse::<u32>().unwrap());
        assert!(v.verify(&t, form, None).is_ok(), "{form}");
    }
    assert!(matches!(
        v.verify(&t, &format!("{}0", code.as_str()), None),
        Err(Error::TotpMalformed)
    ));
}

#[test]
fn every_hash_verifies_only_its_own_codes() {
    let clock = ManualClock::new(at(1_700_000_000));
    let v = verifier(&clock);
    let secret = TotpSecret::from_bytes(&[42; 64]).unwrap();
    let algs = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
    let creds: Vec<Totp> = algs
        .iter()
        .map(|a| Totp::new(secret.clone(), TotpParams::new(*a, 8, 30).unwrap()))
        .collect();
    for (i, a) in creds.iter().enumerate() {
        let code = a.code_at(clock.now()).unwrap();
        for (j, b) in creds.iter().enumerate() {
            assert_eq!(v.verify(b, &code, None).is_ok(), i == j);
        }
    }
}

#[tokio::test]
async fn enrolment_completes_only_after_a_valid_code() {
    let vault = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap());
    vault.provision_tenant("t1").await.unwrap();
    let pending_ctx = FieldContext::new("t1", "users", "totp_pending", "u1").unwrap();
    let active_ctx = FieldContext::new("t1", "users", "totp_secret", "u1").unwrap();
    let clock = ManualClock::new(at(1_800_000_000));
    let v = verifier(&clock);

    // Start: a secret >= 160 bits, shown as a URI, stored sealed.
    let pending = PendingTotp::generate(TotpParams::DEFAULT).unwrap();
    assert!(pending.secret_base32().len() >= 32);
    let uri = pending.uri("Hisn Example", "alice@example.com").unwrap();
    assert!(uri.starts_with("otpauth://totp/Hisn%20Example:alice%40example.com?secret="));
    let app = OtpAuthUri::parse(&uri).unwrap().into_totp(); // the phone's copy
    let sealed = pending.seal_in(&vault, &pending_ctx).await.unwrap();
    assert!(!sealed.to_text().contains(pending.secret_base32().as_str()));
    // A pending record does not open as an active one, nor elsewhere.
    assert!(matches!(
        Totp::open_in(&vault, &pending_ctx, &sealed).await,
        Err(Error::Decrypt)
    ));
    let other_row = FieldContext::new("t1", "users", "totp_pending", "u2").unwrap();
    assert!(
        PendingTotp::open_in(&vault, &other_row, &sealed)
            .await
            .is_err()
    );

    // Next request: open, confirm. A wrong code leaves it pending.
    let pending = PendingTotp::open_in(&vault, &pending_ctx, &sealed)
        .await
        .unwrap();
    let now = app.step_at(clock.now()).unwrap();
    let wrong = app.code_at_step(now + 5);
    assert!(matches!(
        v.confirm(&pending, &wrong),
        Err(Error::TotpRejected)
    ));
    let code = app.code_at(clock.now()).unwrap();
    let (active, last) = v.confirm(&pending, &code).unwrap();
    assert_eq!(last, now);
    let stored = active.seal_in(&vault, &active_ctx).await.unwrap();

    // Login: the confirming code is spent; the next one works.
    let active = Totp::open_in(&vault, &active_ctx, &stored).await.unwrap();
    assert!(matches!(
        PendingTotp::open_in(&vault, &active_ctx, &stored).await,
        Err(Error::Decrypt)
    ));
    assert!(v.verify(&active, &code, Some(last)).is_err());
    clock.advance(Duration::from_secs(30));
    let code2 = app.code_at(clock.now()).unwrap();
    assert_eq!(v.verify(&active, &code2, Some(last)).unwrap(), now + 1);
}

#[test]
fn sealed_parameters_cannot_be_swapped() {
    // The parameters are sealed with the secret: the same secret sealed with
    // 8 digits opens with 8 digits, whatever the caller expects.
    let ring =
        Keyring::from_keys("t1", KeyId(1), [(KeyId(1), SecretKey::from_bytes([3; 32]))]).unwrap();
    let ctx = FieldContext::new("t1", "users", "totp_secret", "u1").unwrap();
    let t = Totp::new(
        TotpSecret::from_bytes(&[5; 32]).unwrap(),
        TotpParams::new(Algorithm::Sha256, 8, 60).unwrap(),
    );
    let ct = t.seal(&ring, &ctx).unwrap();
    let back = Totp::open(&ring, &ctx, &ct).unwrap();
    assert_eq!(back.params(), t.params());
    let mut bytes = ct.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = hisn_crypto_vault::Ciphertext::from_vec(bytes).unwrap();
    assert!(matches!(
        Totp::open(&ring, &ctx, &tampered),
        Err(Error::Decrypt)
    ));
}

#[test]
fn debug_never_prints_the_secret() {
    let pending = PendingTotp::generate(TotpParams::DEFAULT).unwrap();
    let b32 = pending.secret_base32();
    let clock = ManualClock::new(at(0));
    let v = verifier(&clock);
    let uri = OtpAuthUri::parse(&pending.uri("I", "a").unwrap()).unwrap();
    let code = uri.totp().code_at(at(0)).unwrap();
    let (active, _) = v.confirm(&pending, &code).unwrap();
    for dbg in [
        format!("{pending:?}"),
        format!("{active:?}"),
        format!("{uri:?}"),
        format!("{v:?}"),
        format!("{:?}", active.secret()),
    ] {
        assert!(!dbg.contains(&b32[..8]), "{dbg}");
    }
}

fn documented_code_char(c: char) -> bool {
    c == ' '
        || c.is_ascii_digit()
        || ('\u{0660}'..='\u{0669}').contains(&c)
        || ('\u{06F0}'..='\u{06F9}').contains(&c)
}

fn any_totp() -> impl Strategy<Value = Totp> {
    (
        proptest::collection::vec(any::<u8>(), 16..=64),
        prop_oneof![
            Just(Algorithm::Sha1),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha512)
        ],
        6u8..=8,
        prop_oneof![Just(30u32), Just(60u32), 15u32..=300],
    )
        .prop_map(|(s, a, d, p)| {
            Totp::new(
                TotpSecret::from_bytes(&s).unwrap(),
                TotpParams::new(a, d, p).unwrap(),
            )
        })
}

proptest! {
    /// A code verified at step s is refused at any later call whose last
    /// step is >= s (unless, by a chance collision, it is also the code of a
    /// fresh step inside the window: then the step returned is that fresh
    /// one, never one at or before the last).
    #[test]
    fn verified_code_is_refused_at_any_later_call(
        t in any_totp(),
        start in 1_000_000u64..4_000_000_000,
        later in 0u64..1_000,
        extra in 0u64..5,
        window in 0u8..=4,
    ) {
        let clock = ManualClock::new(at(start));
        let v = verifier(&clock).with_window(window).unwrap();
        let code = t.code_at(at(start)).unwrap();
        let s = v.verify(&t, &code, None).unwrap();
        prop_assert_eq!(s, t.step_at(at(start)).unwrap());
        clock.advance(Duration::from_secs(later));
        let last = s + extra;
        match v.verify(&t, &code, Some(last)) {
            Err(e) => prop_assert!(matches!(e, Error::TotpRejected)),
            Ok(n) => {
                prop_assert!(n > last);
                let at_n = t.code_at_step(n);
                prop_assert_eq!(at_n.as_str(), code.as_str());
            }
        }
    }

    /// A code of a step outside the window is refused (unless it collides
    /// with the code of a step inside it).
    #[test]
    fn codes_outside_the_window_are_refused(
        t in any_totp(),
        now in 100_000_000u64..4_000_000_000,
        distance in 1u64..10_000,
        before in any::<bool>(),
        window in 0u8..=4,
    ) {
        let clock = ManualClock::new(at(now));
        let v = verifier(&clock).with_window(window).unwrap();
        let cur = t.step_at(at(now)).unwrap();
        let w = u64::from(window);
        let step = if before { cur - w - distance } else { cur + w + distance };
        let code = t.code_at_step(step);
        let collides = (cur - w..=cur + w).any(|s| t.code_at_step(s) == code);
        prop_assume!(!collides);
        prop_assert!(matches!(v.verify(&t, &code, None), Err(Error::TotpRejected)));
    }

    /// Code parsing never panics and accepts only what it documents.
    #[test]
    fn parse_code_total(input in "\\PC{0,20}", digits in 0u8..12) {
        if let Ok(v) = parse_code(&input, digits) {
            prop_assert!((6..=8).contains(&digits));
            prop_assert!(v < 10u32.pow(u32::from(digits)));
            prop_assert!(input.chars().all(documented_code_char));
        }
    }

    /// URI parsing never panics; what it accepts re-encodes to a URI that
    /// parses to the same credential.
    #[test]
    fn otpauth_parse_total(tail in "\\PC{0,80}") {
        for input in [tail.clone(), format!("otpauth://totp/{tail}")] {
            if let Ok(u) = OtpAuthUri::parse(&input)
                && let Some(issuer) = u.issuer()
                && let Ok(again) = OtpAuthUri::new(issuer, u.account(), u.totp().clone())
            {
                let text = again.to_uri().unwrap();
                prop_assert_eq!(OtpAuthUri::parse(&text).unwrap(), again);
            }
        }
    }
}
