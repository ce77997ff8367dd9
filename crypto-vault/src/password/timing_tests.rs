//! `dummy_verify` does the same work as `verify` whatever the account holds.
//!
//! Asserted structurally, not by wall time: every KDF run (algorithm and cost)
//! is logged per thread in test builds, and the multiset of runs must be the
//! same for an unknown account and for accounts holding argon2id, bcrypt,
//! scrypt (PHC and `salt:hash`), PBKDF2 and wrapped hashes, for right, wrong
//! and over-long passwords. Equal work at equal cost is what makes the times
//! equal; a timing assertion would be flaky on a shared 2-core machine.

use super::legacy::{self, LegacyPolicy, SaltHashLayout, SaltInput, ScryptCost};
use super::{PasswordHasher, PasswordParams, Verification};
use crate::error::Error;

fn work_of(f: impl FnOnce()) -> Vec<String> {
    legacy::WORK.with(|w| w.borrow_mut().clear());
    f();
    let mut w = legacy::WORK.with(|w| std::mem::take(&mut *w.borrow_mut()));
    w.sort();
    w
}

fn b64(b: &[u8]) -> String {
    super::legacy::phc_b64_encode(b)
}

#[test]
fn dummy_verify_does_the_work_of_every_format() {
    let scrypt = ScryptCost::new(10, 8, 1).unwrap();
    let policy = LegacyPolicy::NONE
        .with_bcrypt(5)
        .unwrap()
        .with_scrypt(scrypt)
        .with_scrypt_salt_hash(SaltHashLayout::new(scrypt, SaltInput::Decoded))
        .with_pbkdf2_sha256(1000)
        .unwrap();
    let h = PasswordHasher::new(PasswordParams::new(256, 2, 1).unwrap()).with_legacy(policy);
    let pw = "correct horse";

    // Accounts, each at the policy's ceiling for its format.
    let salt = [9u8; 16];
    let mut dk = [0u8; 32];
    ::scrypt::scrypt(
        pw.as_bytes(),
        &salt,
        &::scrypt::Params::new(10, 8, 1).unwrap(),
        &mut dk,
    )
    .unwrap();
    let scrypt_phc = format!("$scrypt$ln=10,r=8,p=1${}${}", b64(&salt), b64(&dk));
    let salt_hash = format!("{}:{}", hex::encode(salt), hex::encode(dk));
    ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw.as_bytes(), &salt, 1000, &mut dk);
    let pbkdf2_phc = format!("$pbkdf2-sha256$i=1000,l=32${}${}", b64(&salt), b64(&dk));
    let bcrypt_digest = ::bcrypt::bcrypt(5, salt, b"correct horse\0");
    let b = |x: &[u8]| {
        use base64::Engine as _;
        base64::engine::GeneralPurpose::new(
            &base64::alphabet::BCRYPT,
            base64::engine::general_purpose::NO_PAD,
        )
        .encode(x)
    };
    let bcrypt_hash = format!("$2b$05${}{}", b(&salt), b(&bcrypt_digest[..23]));
    let accounts = [
        h.hash(pw).unwrap(),
        bcrypt_hash.clone(),
        scrypt_phc.clone(),
        salt_hash,
        pbkdf2_phc.clone(),
        h.wrap_legacy(&bcrypt_hash).unwrap(),
        h.wrap_legacy(&scrypt_phc).unwrap(),
        h.wrap_legacy(&pbkdf2_phc).unwrap(),
    ];
    for a in &accounts {
        assert!(h.verify(pw, a).unwrap().is_valid(), "{a}");
    }
    let _ = h.dummy_verify("warm-up").unwrap();

    let long = "x".repeat(super::MAX_PASSWORD_BYTES + 1);
    let over_bcrypt = "y".repeat(100);
    for attempt in [pw, "wrong", "", over_bcrypt.as_str(), long.as_str()] {
        let mut dummy_out = None;
        let dummy = work_of(|| dummy_out = Some(h.dummy_verify(attempt)));
        // One argon2id run at the policy and one run per enabled algorithm.
        assert_eq!(dummy.len(), 4, "{dummy:?}");
        for a in &accounts {
            let mut out = None;
            let known = work_of(|| out = Some(h.verify(attempt, a)));
            assert_eq!(
                known,
                dummy,
                "account {a}, password of {} bytes",
                attempt.len()
            );
            match (out.unwrap(), dummy_out.as_ref().unwrap()) {
                (Err(Error::PasswordTooLong), Err(Error::PasswordTooLong)) => {}
                (Ok(_), Ok(Verification::Invalid)) => {}
                other => panic!("{a}: outcomes differ in kind: {other:?}"),
            }
        }
    }
}

/// Without a legacy policy nothing changes: one argon2 run per call.
#[test]
fn no_policy_no_extra_work() {
    let h = PasswordHasher::new(PasswordParams::new(64, 1, 1).unwrap());
    let phc = h.hash("pw").unwrap();
    let _ = h.dummy_verify("warm-up").unwrap();
    assert_eq!(work_of(|| drop(h.verify("pw", &phc))).len(), 1);
    assert_eq!(work_of(|| drop(h.dummy_verify("pw"))).len(), 1);
}
