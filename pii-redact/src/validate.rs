//! Validators: the checks that turn a pattern-shaped candidate into a finding.
//!
//! They are public so that other code (and the naive baseline in the benches)
//! can reuse exactly the same rules. Every function takes digit *values*
//! (`0..=9`) or ASCII bytes and never panics.

/// Luhn (ISO/IEC 7812-1) check over digit values, rightmost digit being the
/// check digit. `false` for an empty slice or a value above 9.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        if d > 9 {
            return false;
        }
        let d = u32::from(d);
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

/// Saudi national ID (starts with 1) or Iqama (starts with 2): ten digits
/// whose Luhn check holds. The Ministry of Interior check (double the digits
/// in odd positions counting from one, add the digit sums) is the Luhn check
/// for ten-digit numbers.
pub fn saudi_national_id(digits: &[u8]) -> bool {
    digits.len() == 10 && matches!(digits[0], 1 | 2) && luhn(digits)
}

/// Whether the digits have the length and issuer prefix (IIN) of a payment
/// card network: Visa (incl. mada co-brands, 13/16/19), Mastercard (51-55 and
/// 2221-2720), American Express (34, 37), Discover (6011, 644-649, 65),
/// Diners (300-305, 3095, 36, 38-39), JCB (3528-3589), UnionPay (62, 81),
/// Maestro (50, 56-59, 63, 67; 12-19), Mir (2200-2204), RuPay (60, 82, 508),
/// Troy (9792), mada-only (9682), UATP (1, 15). Luhn is checked separately.
pub fn card_iin(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(12..=19).contains(&n) {
        return false;
    }
    let p = |k: usize| -> u32 {
        digits[..k]
            .iter()
            .fold(0u32, |a, &d| a * 10 + u32::from(d.min(9)))
    };
    let p2 = p(2);
    let p3 = p(3);
    let p4 = p(4);
    let long = (16..=19).contains(&n);
    match digits[0] {
        1 => n == 15,
        2 => ((2200..=2204).contains(&p4) && long) || ((2221..=2720).contains(&p4) && n == 16),
        3 => match p2 {
            34 | 37 => n == 15,
            36 => (14..=19).contains(&n),
            30 => ((300..=305).contains(&p3) || p4 == 3095) && (14..=19).contains(&n),
            38 | 39 => (14..=19).contains(&n),
            35 => (3528..=3589).contains(&p4) && long,
            _ => false,
        },
        4 => matches!(n, 13 | 16 | 19),
        5 => match p2 {
            51..=55 => n == 16,
            50 | 56..=59 => true,
            _ => false,
        },
        6 => match p2 {
            60 | 62 | 64 | 65 => long,
            63 | 67 => true,
            _ => false,
        },
        8 => matches!(p2, 81 | 82) && long,
        9 => (p4 == 9682 || p4 == 9792) && n == 16,
        _ => false,
    }
}

/// A payment card number: known IIN and length, and Luhn.
pub fn card(digits: &[u8]) -> bool {
    card_iin(digits) && luhn(digits)
}

/// The IBAN length of a country (ISO 13616 registry), by its two upper-case
/// letters; `None` for a country without IBANs.
pub fn iban_length(country: [u8; 2]) -> Option<usize> {
    // A dense 26x26 table built at compile time: this is asked for every word
    // of two or more letters, so it must cost one lookup.
    let [a, b] = country;
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return None;
    }
    let n = IBAN_BY_CODE[usize::from(a - b'A') * 26 + usize::from(b - b'A')];
    (n != 0).then_some(usize::from(n))
}

// `From` is not usable in a const block; the casts widen u8 to usize.
#[allow(clippy::cast_lossless)]
static IBAN_BY_CODE: [u8; 676] = {
    let mut t = [0u8; 676];
    let mut i = 0;
    while i < IBAN_LENGTHS.len() {
        let (c, n) = IBAN_LENGTHS[i];
        t[(c[0] - b'A') as usize * 26 + (c[1] - b'A') as usize] = n;
        i += 1;
    }
    t
};

// SWIFT IBAN registry (release 99, 2025): all GCC countries (SA 24, AE 23,
// BH 22, KW 30, QA 29, OM 23) and every European and other IBAN country.
// Sorted by country code for binary search.
const IBAN_LENGTHS: [([u8; 2], u8); 89] = [
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BI", 27),
    (*b"BR", 29),
    (*b"BY", 28),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DJ", 27),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FK", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HN", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IQ", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LC", 32),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"LY", 25),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MN", 20),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NI", 28),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"OM", 23),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"RU", 33),
    (*b"SA", 24),
    (*b"SC", 31),
    (*b"SD", 18),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"SO", 23),
    (*b"ST", 25),
    (*b"SV", 28),
    (*b"TL", 23),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
    (*b"YE", 30),
];

/// ISO 13616 check of a compact IBAN given as upper-case ASCII letters and
/// digits (no spaces): known country, that country's length, two check
/// digits, and the mod-97 remainder 1.
pub fn iban(compact: &[u8]) -> bool {
    if compact.len() < 5
        || !compact
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return false;
    }
    let country = [compact[0], compact[1]];
    if !country.iter().all(u8::is_ascii_uppercase)
        || !compact[2].is_ascii_digit()
        || !compact[3].is_ascii_digit()
        || iban_length(country) != Some(compact.len())
    {
        return false;
    }
    let mut rem = 0u32;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        s.bytes().map(|c| c - b'0').collect()
    }

    #[test]
    fn luhn_accepts_valid_and_rejects_any_single_digit_change() {
        for s in ["4111111111111111", "79927398713", "5555555555554444"] {
            let v = d(s);
            assert!(luhn(&v), "{s}");
            for i in 0..v.len() {
                let mut w = v.clone();
                w[i] = (w[i] + 1) % 10;
                assert!(!luhn(&w), "{s} changed at {i}");
            }
        }
        assert!(!luhn(&[]));
        assert!(!luhn(&[10, 0]));
    }

    #[test]
    fn card_iin_two_series_needs_mir_range_with_long_length_or_mastercard_with_sixteen() {
        let with = |prefix: &str, n: usize| {
            let mut v = d(prefix);
            v.resize(n, 0);
            v
        };
        // Mir 2200-2204: 16-19 digits only.
        assert!(card_iin(&with("2200", 16)));
        assert!(card_iin(&with("2204", 19)));
        assert!(!card_iin(&with("2200", 14)));
        // Mastercard 2221-2720: exactly 16 digits.
        assert!(card_iin(&with("2221", 16)));
        assert!(card_iin(&with("2720", 16)));
        assert!(!card_iin(&with("2221", 17)));
        // Outside both ranges: never, whatever the length.
        for n in 12..=19 {
            assert!(!card_iin(&with("2721", n)), "2721 with {n} digits");
            assert!(!card_iin(&with("2210", n)), "2210 with {n} digits");
        }
    }

    #[test]
    fn card_iin_diners_30_series_needs_300_305_or_3095_and_fourteen_to_nineteen_digits() {
        let with = |prefix: &str, n: usize| {
            let mut v = d(prefix);
            v.resize(n, 0);
            v
        };
        assert!(card_iin(&with("300", 14)));
        assert!(card_iin(&with("3095", 19)));
        assert!(!card_iin(&with("300", 12)));
        assert!(!card_iin(&with("3095", 13)));
        for n in 12..=19 {
            assert!(!card_iin(&with("306", n)), "306 with {n} digits");
        }
    }

    #[test]
    fn card_iin_jcb_needs_3528_3589_and_sixteen_to_nineteen_digits() {
        let with = |prefix: &str, n: usize| {
            let mut v = d(prefix);
            v.resize(n, 0);
            v
        };
        assert!(card_iin(&with("3528", 16)));
        assert!(card_iin(&with("3589", 19)));
        assert!(!card_iin(&with("3528", 15)));
        assert!(!card_iin(&with("3527", 16)));
        assert!(!card_iin(&with("3590", 16)));
    }

    #[test]
    fn card_iin_eight_and_nine_series_need_their_prefix_and_length() {
        let with = |prefix: &str, n: usize| {
            let mut v = d(prefix);
            v.resize(n, 0);
            v
        };
        // UnionPay 81, RuPay 82: 16-19 digits.
        assert!(card_iin(&with("81", 16)));
        assert!(card_iin(&with("82", 19)));
        assert!(!card_iin(&with("81", 15)));
        assert!(!card_iin(&with("83", 16)));
        // mada-only 9682, Troy 9792: exactly 16 digits.
        assert!(card_iin(&with("9682", 16)));
        assert!(card_iin(&with("9792", 16)));
        assert!(!card_iin(&with("9682", 17)));
        assert!(!card_iin(&with("9000", 16)));
    }

    #[test]
    fn iban_table_is_sorted_and_holds_every_gcc_country() {
        assert!(IBAN_LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        for (c, n) in [
            ("SA", 24),
            ("AE", 23),
            ("BH", 22),
            ("KW", 30),
            ("QA", 29),
            ("OM", 23),
        ] {
            let c = c.as_bytes();
            assert_eq!(iban_length([c[0], c[1]]), Some(n));
        }
        assert_eq!(iban_length(*b"US"), None);
        // Both letters must be upper case: one lower-case or non-letter
        // byte is no country (and never indexes the table).
        for c in [*b"Sa", *b"sA", *b"S1", *b"1A", *b"S@", *b"[A"] {
            assert_eq!(iban_length(c), None, "{c:?}");
        }
    }

    #[test]
    fn iban_rejects_wrong_length_bad_checksum_and_lower_case() {
        assert!(iban(b"SA0380000000608010167519"));
        assert!(!iban(b"SA0380000000608010167518"));
        assert!(!iban(b"SA03800000006080101675190"));
        assert!(!iban(b"sa0380000000608010167519"));
        assert!(!iban(b"XX0380000000608010167519"));
        assert!(!iban(b""));
        // Check digits valid for 25 characters (mod 97 = 1), but SA IBANs
        // have 24: the country length alone must reject it.
        assert!(!iban(b"SA37800000006080101675190"));
        // Mod 97 = 1 and the right length, but a letter among the check
        // digits: not an IBAN.
        assert!(!iban(b"SAB880000000608010167519"));
        assert!(!iban(b"SA3C80000000608010167519"));
    }
}
