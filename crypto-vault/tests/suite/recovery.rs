//! Recovery codes: batch generation, hashed storage, single use, forgiving
//! input, and what an attacker holding the stored set can and cannot do.

use std::collections::HashSet;

use hisn_crypto_vault::recovery::{CODE_SYMBOLS, DEFAULT_COUNT, MAX_COUNT};
use hisn_crypto_vault::{Error, FieldContext, RecoveryCodes, SecretKey, StoredRecoveryCodes};
use proptest::prelude::*;

const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn codes() -> RecoveryCodes {
    RecoveryCodes::new(SecretKey::from_bytes([11; 32]))
}

#[test]
fn a_batch_is_distinct_high_entropy_and_human_friendly() {
    let (batch, stored) = codes().generate(DEFAULT_COUNT).unwrap();
    assert_eq!(batch.len(), 10);
    assert_eq!(stored.len(), 10);
    let mut seen = HashSet::new();
    for c in batch.codes() {
        assert_eq!(c.len(), 14, "{c}");
        // 12 symbols of a 32-symbol alphabet: 60 bits each (>= 50 asked for).
        assert_eq!(c.replace('-', "").len(), CODE_SYMBOLS);
        assert!(c.replace('-', "").len() * 5 >= 50);
        let groups: Vec<&str> = c.split('-').collect();
        assert_eq!(groups.len(), 3);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert!(
            c.chars()
                .filter(|c| *c != '-')
                .all(|x| ALPHABET.contains(x))
        );
        assert!(seen.insert(c.to_owned()));
    }
    // Every symbol of the alphabet turns up across a few batches (no bias
    // that drops symbols, e.g. a modulo on the wrong range).
    let mut symbols = HashSet::new();
    for _ in 0..20 {
        let (b, _) = codes().generate(MAX_COUNT).unwrap();
        for c in b.codes() {
            symbols.extend(c.chars().filter(|c| *c != '-'));
        }
    }
    assert_eq!(symbols.len(), 32);
}

#[test]
fn each_code_is_single_use() {
    let rc = codes();
    let (batch, mut stored) = rc.generate(5).unwrap();
    let all: Vec<String> = batch.codes().map(str::to_owned).collect();
    for (i, c) in all.iter().enumerate() {
        assert_eq!(
            rc.verify(&stored, c).unwrap(),
            0,
            "codes are removed in order, #{i}"
        );
        let removed = stored.remove(0).unwrap();
        assert!(!stored.hashes().contains(&removed));
        assert!(matches!(rc.verify(&stored, c), Err(Error::TotpRejected)));
    }
    assert!(stored.is_empty());
    assert!(stored.remove(0).is_none());
}

#[test]
fn verify_returns_the_matching_index() {
    let rc = codes();
    let (batch, mut stored) = rc.generate(10).unwrap();
    let all: Vec<String> = batch.codes().map(str::to_owned).collect();
    for (i, c) in all.iter().enumerate() {
        assert_eq!(rc.verify(&stored, c).unwrap(), i);
    }
    stored.remove(3);
    assert_eq!(rc.verify(&stored, &all[4]).unwrap(), 3);
    assert!(rc.verify(&stored, &all[3]).is_err());
}

#[test]
fn typed_forms_are_forgiven() {
    let rc = codes();
    let (batch, stored) = rc.generate(1).unwrap();
    let c = batch.codes().next().unwrap().to_owned();
    let plain = c.replace('-', "");
    let lower = c.to_lowercase();
    let spaced = format!("{} {} {}", &plain[..4], &plain[4..8], &plain[8..]);
    // Crockford: O for 0 and I/L for 1, Arabic-Indic digits for ASCII.
    let misread = plain.replace('0', "O").replace('1', "l");
    let arabic: String = plain
        .chars()
        .map(|ch| match ch.to_digit(10) {
            Some(d) => char::from_u32(0x0660 + d).unwrap(),
            None => ch,
        })
        .collect();
    for form in [&plain, &lower, &spaced, &misread, &arabic] {
        assert_eq!(rc.verify(&stored, form).unwrap(), 0, "{form}");
    }
    for bad in [
        "",
        "nope",
        &plain[..11],
        &format!("{plain}0"),
        &"A".repeat(100),
    ] {
        assert!(
            matches!(rc.verify(&stored, bad), Err(Error::TotpMalformed)),
            "{bad}"
        );
    }
}

#[test]
fn storage_holds_no_code_and_needs_the_pepper_and_the_salt() {
    let rc = codes();
    let (batch, stored) = rc.generate(10).unwrap();
    let text = stored.to_text();
    assert!(text.starts_with("hrc1$"));
    for c in batch.codes() {
        assert!(!text.contains(c) && !text.contains(&c.replace('-', "")));
    }
    assert!(!format!("{batch:?}").contains(batch.codes().next().unwrap()));
    assert_eq!(StoredRecoveryCodes::from_text(&text).unwrap(), stored);

    let first = batch.codes().next().unwrap();
    // Another pepper (a stolen database without the server secret): nothing verifies.
    let other = RecoveryCodes::new(SecretKey::from_bytes([12; 32]));
    assert!(other.verify(&stored, first).is_err());
    // The same hashes under another batch's salt: nothing verifies.
    let (_, other_batch) = rc.generate(10).unwrap();
    assert_ne!(other_batch.salt(), stored.salt());
    let moved =
        StoredRecoveryCodes::from_parts(*other_batch.salt(), stored.hashes().to_vec()).unwrap();
    assert!(rc.verify(&moved, first).is_err());
    // Another batch's codes do not verify against this one.
    let (b2, _) = rc.generate(10).unwrap();
    for c in b2.codes() {
        assert!(rc.verify(&stored, c).is_err());
    }
}

#[test]
fn stored_text_is_parsed_strictly() {
    let (_, stored) = codes().generate(3).unwrap();
    let text = stored.to_text();
    for bad in [
        String::new(),
        text.replace("hrc1$", "hrc3$"),
        text[..text.len() - 2].to_owned(),
        format!("{text},"),
        text.replacen('$', "", 2),
    ] {
        assert!(StoredRecoveryCodes::from_text(&bad).is_err(), "{bad}");
    }
    let mut empty = stored.clone();
    while empty.remove(0).is_some() {}
    assert_eq!(
        StoredRecoveryCodes::from_text(&empty.to_text()).unwrap(),
        empty
    );
    assert!(StoredRecoveryCodes::from_parts([0; 32], vec![[0; 32]; MAX_COUNT + 1]).is_err());
}

#[test]
fn batch_size_is_bounded() {
    assert!(codes().generate(0).is_err());
    assert!(codes().generate(MAX_COUNT + 1).is_err());
    assert_eq!(codes().generate(MAX_COUNT).unwrap().0.len(), MAX_COUNT);
}

proptest! {
    /// Any input: no panic, and only inputs of 12 alphabet symbols are
    /// well-formed.
    #[test]
    fn verify_is_total(input in "\\PC{0,40}") {
        let rc = codes();
        let (_, stored) = rc.generate(2).unwrap();
        match rc.verify(&stored, &input) {
            Err(Error::TotpMalformed | Error::TotpRejected) => {}
            other => prop_assert!(false, "{other:?}"),
        }
    }
}

/// A recovery code set works only in the row it was made for (class: stored
/// value not bound to its context).
///
/// Root cause of the old failure: a stored set was `HMAC(pepper, salt ||
/// code)` and nothing else, so it was valid in any row. An attacker who can
/// write the database (the threat the TOTP secret is sealed against: it is
/// bound to tenant, table, column and row) copied their own set, whose codes
/// they hold, into the victim's row and passed the victim's second factor
/// with one of their own codes. `generate_for`/`verify_for` bind every hash
/// to its owner (tenant, table, column, row id); a bound set is refused by
/// the unbound `verify`, and `verify_for` refuses an unbound set, so a set
/// cannot be moved into another row, table or tenant, nor downgraded.
#[test]
fn value_not_bound_to_its_context_recovery_codes_pasted_into_another_row_fail() {
    let rc = codes();
    let mallory = FieldContext::new("t1", "users", "recovery", "mallory").unwrap();
    let (batch, set) = rc.generate_for(&mallory, 10).unwrap();
    let code = batch.codes().next().unwrap();
    assert!(set.is_bound());
    assert!(set.to_text().starts_with("hrc2$"));
    assert_eq!(rc.verify_for(&mallory, &set, code).unwrap(), 0);
    // The set pasted into the victim's row (or another tenant's, table's,
    // column's) verifies nothing there.
    let pasted = StoredRecoveryCodes::from_text(&set.to_text()).unwrap();
    for elsewhere in [
        ("t1", "users", "recovery", "alice"),
        ("t2", "users", "recovery", "mallory"),
        ("t1", "admins", "recovery", "mallory"),
        ("t1", "users", "recovery_old", "mallory"),
    ] {
        let (t, tb, c, r) = elsewhere;
        let victim = FieldContext::new(t, tb, c, r).unwrap();
        for code in batch.codes() {
            assert!(
                matches!(
                    rc.verify_for(&victim, &pasted, code),
                    Err(Error::TotpRejected)
                ),
                "{elsewhere:?}"
            );
        }
    }
    // No downgrade: a bound set is not checked without its owner, an
    // unbound one not as if bound, and the parts keep the kind.
    assert!(matches!(rc.verify(&set, code), Err(Error::TotpRejected)));
    let unbound = StoredRecoveryCodes::from_parts(*set.salt(), set.hashes().to_vec()).unwrap();
    assert!(!unbound.is_bound());
    assert!(matches!(
        rc.verify_for(&mallory, &unbound, code),
        Err(Error::TotpRejected)
    ));
    assert!(matches!(
        rc.verify(&unbound, code),
        Err(Error::TotpRejected)
    ));
    let rebuilt =
        StoredRecoveryCodes::from_parts_bound(*set.salt(), set.hashes().to_vec()).unwrap();
    assert_eq!(rebuilt, set);
    assert_eq!(rc.verify_for(&mallory, &rebuilt, code).unwrap(), 0);
    // Malformed input is still told apart first, as by `verify`.
    assert!(matches!(
        rc.verify_for(&mallory, &set, "not a code"),
        Err(Error::TotpMalformed)
    ));
    let (old_batch, old) = rc.generate(2).unwrap();
    assert!(old.to_text().starts_with("hrc1$"));
    let old_code = old_batch.codes().next().unwrap();
    assert_eq!(rc.verify(&old, old_code).unwrap(), 0);
}
