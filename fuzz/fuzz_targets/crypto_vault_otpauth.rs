//! `otpauth://` URI and one-time code parsing on untrusted input: never panics;
//! an accepted URI re-encodes to one that parses to the same credential; an
//! accepted code is the configured number of digits; a verified code's step is
//! after the last accepted step and really carries that code.
//!
//! Input (lines, so seeds stay readable): `uri \n code \n now \n last_step`;
//! missing or non-numeric `now`/`last_step` take defaults.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hisn_crypto_vault::totp::{OtpAuthUri, parse_code};
use hisn_crypto_vault::{
    ManualClock, RecoveryCodes, SecretKey, Totp, TotpParams, TotpSecret, TotpVerifier,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let uri = lines.next().unwrap_or("");
    let code = lines.next().unwrap_or("");
    let now: u64 = lines
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(59)
        .min(1 << 40);
    let last: Option<u64> = lines.next().and_then(|s| s.trim().parse().ok());

    let totp = match OtpAuthUri::parse(uri) {
        Ok(parsed) => {
            if let Some(issuer) = parsed.issuer() {
                let again = OtpAuthUri::new(issuer, parsed.account(), parsed.totp().clone())
                    .expect("a parsed issuer and account are valid labels");
                let text = again.to_uri().expect("encoding cannot fail");
                assert_eq!(OtpAuthUri::parse(&text).expect("own output parses"), again);
            }
            parsed.into_totp()
        }
        Err(_) => Totp::new(
            TotpSecret::from_bytes(b"12345678901234567890").expect("20 bytes"),
            TotpParams::DEFAULT,
        ),
    };

    for digits in [6u8, 7, 8] {
        if let Ok(v) = parse_code(code, digits) {
            assert!(v < 10u32.pow(u32::from(digits)));
        }
    }

    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(now));
    let verifier = TotpVerifier::new(Arc::new(clock));
    if let Ok(step) = verifier.verify(&totp, code, last) {
        assert!(last.is_none_or(|l| step > l));
        let want = parse_code(code, totp.params().digits()).expect("verified, so well-formed");
        let got = parse_code(&totp.code_at_step(step), totp.params().digits()).expect("own code");
        assert_eq!(want, got);
        // Replay: the same code with the step just returned is refused, unless
        // it is also the code of a later step in the window (a collision).
        if let Ok(again) = verifier.verify(&totp, code, Some(step)) {
            assert!(again > step);
        }
    }

    let recovery = RecoveryCodes::new(SecretKey::from_bytes([1; 32]));
    if let Ok((_, stored)) = recovery.generate(2) {
        let _ = recovery.verify(&stored, code);
    }
});
