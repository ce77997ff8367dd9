//! Ciphertext decoder (binary and text forms) on untrusted bytes: must never
//! panic, must round-trip what it accepts, and must never decrypt garbage.
#![no_main]

use hisn_crypto_vault::{Ciphertext, FieldContext, Keyring, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parsed = if mode & 1 == 0 {
        Ciphertext::from_bytes(rest)
    } else {
        match std::str::from_utf8(rest) {
            Ok(s) => Ciphertext::from_text(s),
            Err(_) => return,
        }
    };
    if let Ok(ct) = parsed {
        assert_eq!(
            Ciphertext::from_text(&ct.to_text()).ok().as_ref(),
            Some(&ct)
        );
        assert_eq!(
            Ciphertext::from_bytes(ct.as_bytes()).ok().as_ref(),
            Some(&ct)
        );
        let ring = Keyring::from_keys(
            "t",
            ct.key_id(),
            [(ct.key_id(), SecretKey::from_bytes([7; 32]))],
        );
        if let (Ok(ring), Ok(ctx)) = (ring, FieldContext::new("t", "a", "b", "c")) {
            // Forging a valid tag for a fixed key without the key is infeasible.
            assert!(ring.decrypt(&ctx, &ct).is_err());
        }
    }
});
