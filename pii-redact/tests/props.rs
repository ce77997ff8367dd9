//! Property tests: generated personal data embedded in random text is always
//! removed; text without any is returned byte for byte; redaction is
//! idempotent in every mode; arbitrary bytes never panic and the output stays
//! within its bound.

use hisn_pii_redact::{Mode, PseudonymKey, Redactor};
use proptest::prelude::*;

use crate::support::{arabic_digits, grouped};

fn luhn_complete(body: &[u8]) -> Vec<u8> {
    (0..10u8)
        .map(|c| [body, &[c]].concat())
        .find(|v| hisn_pii_redact::validate::luhn(v))
        .unwrap()
}

fn ascii(d: &[u8]) -> String {
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}

/// A Saudi ID or Iqama with a valid check digit.
fn saudi_id() -> impl Strategy<Value = String> {
    (1u8..=2, proptest::collection::vec(0u8..10, 8))
        .prop_map(|(first, rest)| ascii(&luhn_complete(&[&[first][..], &rest].concat())))
}

/// A card number of a random network and length, Luhn-completed.
fn card() -> impl Strategy<Value = String> {
    let prefixes: [(&[u8], usize); 8] = [
        (&[4], 16),
        (&[4], 19),
        (&[5, 3], 16),
        (&[2, 4, 5, 0], 16),
        (&[3, 7], 15),
        (&[6, 2], 19),
        (&[9, 6, 8, 2], 16),
        (&[3, 5, 4, 0], 17),
    ];
    (0..prefixes.len(), proptest::collection::vec(0u8..10, 19)).prop_map(move |(i, fill)| {
        let (p, n) = prefixes[i];
        let body: Vec<u8> = p.iter().copied().chain(fill).take(n - 1).collect();
        ascii(&luhn_complete(&body))
    })
}

/// A Saudi IBAN with computed check digits.
fn iban() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, 20).prop_map(|bban| {
        let bban = ascii(&bban);
        let n: String = format!("{bban}281000"); // S=28, A=10, check 00
        let rem = n
            .bytes()
            .fold(0u32, |r, c| (r * 10 + u32::from(c - b'0')) % 97);
        format!("SA{:02}{bban}", 98 - rem)
    })
}

/// A Saudi mobile in one of its common writings.
fn mobile() -> impl Strategy<Value = String> {
    (proptest::collection::vec(0u8..10, 8), 0..7usize).prop_map(|(d, style)| {
        let s = ascii(&d);
        let (a, b, c) = (&s[..1], &s[1..4], &s[4..]);
        match style {
            0 => format!("+9665{a}{b}{c}"),
            1 => format!("+966 5{a} {b} {c}"),
            2 => format!("05{a}-{b}-{c}"),
            3 => format!("009665{a}{b}{c}"),
            4 => format!("(05{a}) {b} {c}"),
            5 => format!("9665{a}{b}{c}"),
            _ => format!("05{a}.{b}.{c}"),
        }
    })
}

fn email() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9._+-]{0,15}[a-z0-9]",
        "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        "(com|sa|org|co\\.uk|net)",
    )
        .prop_map(|(l, d, t)| format!("{l}@{d}.{t}"))
}

/// Secrets: a value after a sensitive key, a bearer credential, an API key.
fn secret() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9]{16,24}",
        prop_oneof![
            Just("password="),
            Just("token: "),
            Just("api_key="),
            Just("Bearer "),
            Just("sk_live_"),
            Just("hisn_live_")
        ],
    )
        .prop_map(|(v, k)| format!("{k}{v}9x"))
}

/// Any generated value, possibly in Arabic digits or grouped.
fn pii() -> impl Strategy<Value = String> {
    (
        prop_oneof![saudi_id(), card(), iban(), mobile(), email(), secret()],
        0..4u8,
    )
        .prop_map(|(v, style)| match style {
            1 if !v.contains(['@', '_', '=', ':', ' ']) => arabic_digits(&v, false),
            2 if !v.contains(['@', '_', '=', ':', ' ']) => arabic_digits(&v, true),
            3 if v.starts_with("SA") => grouped(&v),
            _ => v,
        })
}

/// Text with no personal data: words, short numbers, punctuation, Arabic
/// words and known look-alikes, never two numbers in a row.
fn clean_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "[a-z]{1,12}",
        "[0-9]{1,3}[a-z]{1,5}",
        "[,.;!?]",
        Just("مرحبا".to_owned()),
        Just("123e4567-e89b-12d3-a456-426614174000".to_owned()),
        Just("Chrome/120.0.0.0".to_owned()),
        Just("v1.2.3".to_owned()),
        Just("2024-01-15T10:30:00Z".to_owned()),
        Just("4111111111111112".to_owned()),
        Just("1234567890".to_owned()),
        Just("d41d8cd98f00b204e9800998ecf8427e".to_owned()),
    ];
    proptest::collection::vec(token, 0..30).prop_map(|t| t.join(" "))
}

fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z ,.:;=]{0,40}"
}

fn redactors() -> Vec<Redactor> {
    let key = PseudonymKey::new(&[3u8; 32]).unwrap();
    vec![
        Redactor::default(),
        Redactor::builder().all(Mode::Partial).build().unwrap(),
        Redactor::builder()
            .all(Mode::Pseudonym)
            .pseudonym_key(key)
            .build()
            .unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_pii_in_random_text_is_always_removed(
        a in filler(), v in pii(), b in filler(),
    ) {
        let line = format!("{a} {v} {b}");
        for r in redactors() {
            let out = r.redact(&line);
            prop_assert!(!out.contains(&v), "{v:?} survived in {out:?}");
        }
    }

    #[test]
    fn text_without_pii_is_unchanged_byte_for_byte(s in clean_text()) {
        let out = Redactor::default().redact(&s);
        prop_assert!(matches!(out, std::borrow::Cow::Borrowed(_)), "{s:?} -> {out:?}");
    }

    #[test]
    fn redaction_is_idempotent(a in filler(), v in pii(), b in "\\PC{0,40}") {
        let line = format!("{a} {v} {b}");
        for r in redactors() {
            let once = r.redact(&line).into_owned();
            let twice = r.redact(&once);
            prop_assert_eq!(&*twice, &once);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        for r in redactors() {
            let out = r.redact_bytes(&b);
            prop_assert!(out.len() <= r.max_output_len(b.len()));
            prop_assert_eq!(r.redact_bytes(&out), out.clone());
        }
    }
}
