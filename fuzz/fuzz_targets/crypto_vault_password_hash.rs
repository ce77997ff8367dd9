//! Stored password-hash parser on untrusted strings (a planted hash is input):
//! never panics; what it admits is within the policy's ceilings, so a
//! verification is cheap here; anything else is a typed error.
#![no_main]

use hisn_crypto_vault::password::{
    LegacyHash, LegacyPolicy, SaltHashLayout, SaltInput, ScryptCost,
};
use hisn_crypto_vault::{Error, PasswordHasher, PasswordParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stored) = std::str::from_utf8(data) else {
        return;
    };
    let (Ok(params), Ok(scrypt)) = (PasswordParams::new(64, 1, 1), ScryptCost::new(4, 1, 1)) else {
        return;
    };
    let layout = SaltHashLayout::new(scrypt, SaltInput::Decoded);
    // Small ceilings: whatever passes them costs microseconds.
    let Ok(policy) = LegacyPolicy::NONE
        .with_bcrypt(4)
        .and_then(|p| p.with_pbkdf2_sha256(16))
        .map(|p| p.with_scrypt(scrypt).with_scrypt_salt_hash(layout))
    else {
        return;
    };
    // Recognition under the largest ceilings never does any work.
    let _ = LegacyHash::parse(stored, &LegacyPolicy::maximum(Some(layout)));
    let _ = LegacyPolicy::for_stored(stored, Some(layout));
    let hasher = PasswordHasher::new(params).with_legacy(policy);
    match hasher.verify("fuzz", stored) {
        Ok(v) => {
            // A random string matching "fuzz" would be a broken comparison,
            // unless the input is a real hash of it (possible only from seeds).
            let _ = v;
        }
        Err(
            Error::PasswordHashRejected(_)
            | Error::PasswordHashUnknownFormat
            | Error::PasswordHashing,
        ) => {}
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
});
