//! One test group per detector: valid examples are found exactly (span and
//! kind) in several contexts, invalid look-alikes are not.

use hisn_pii_redact::{Kind, validate};

use crate::support::{arabic_digits, assert_clean, assert_found, data, found, grouped};

const CONTEXTS: [&str; 6] = [
    "{}",
    "value {} end",
    "key={} next=1",
    "{\"field\":\"{}\"}",
    "رقم {} شكرا",
    "(x: {}).",
];

fn in_every_context(value: &str, kind: Kind) {
    for c in CONTEXTS {
        assert_found(c, value, kind);
    }
}

#[test]
fn iban_registry_examples_pass_compact_grouped_any_case_and_in_arabic_digits() {
    let ibans = data("iban_registry_pass.txt");
    assert!(ibans.len() >= 48);
    for iban in &ibans {
        assert!(validate::iban(iban.as_bytes()), "{iban}");
        in_every_context(iban, Kind::Iban);
        in_every_context(&grouped(iban), Kind::Iban);
        in_every_context(&iban.to_lowercase(), Kind::Iban);
        in_every_context(&arabic_digits(iban, false), Kind::Iban);
        in_every_context(&arabic_digits(&grouped(iban), true), Kind::Iban);
    }
}

#[test]
fn iban_with_any_changed_character_or_wrong_length_is_not_found() {
    for iban in data("iban_registry_pass.txt") {
        // A changed check digit, a dropped and an added character.
        let mut b = iban.clone().into_bytes();
        b[3] = if b[3] == b'9' { b'0' } else { b[3] + 1 };
        let bad = String::from_utf8(b).unwrap();
        assert!(found(&bad).iter().all(|(k, _)| *k != Kind::Iban), "{bad}");
        let short = &iban[..iban.len() - 1];
        assert!(
            found(short).iter().all(|(k, _)| *k != Kind::Iban),
            "{short}"
        );
        let long = format!("{iban}7");
        assert!(found(&long).iter().all(|(k, _)| *k != Kind::Iban), "{long}");
    }
}

#[test]
fn iban_match_does_not_swallow_a_following_word_or_group() {
    // Root cause guarded: a grouped IBAN is read group by group; reading must
    // stop at the country's length, not at the end of the digit-and-space run.
    for (line, want) in [
        (
            "SA03 8000 0000 6080 1016 7519 please",
            "SA03 8000 0000 6080 1016 7519",
        ),
        (
            "GB82 WEST 1234 5698 7654 32 and more",
            "GB82 WEST 1234 5698 7654 32",
        ),
        (
            "SA03 8000 0000 6080 1016 7519 2024",
            "SA03 8000 0000 6080 1016 7519",
        ),
        ("NL91 ABNA 0417 1643 00 EUR", "NL91 ABNA 0417 1643 00"),
    ] {
        assert_eq!(found(line), vec![(Kind::Iban, want.to_owned())], "{line}");
    }
    // Glued to more characters: not an IBAN.
    assert_clean("SA0380000000608010167519X");
}

#[test]
fn card_network_test_numbers_pass_plain_spaced_dashed_and_in_arabic_digits() {
    for pan in data("cards_network_test_numbers_pass.txt") {
        assert!(validate::card(&digits(&pan)), "{pan}");
        in_every_context(&pan, Kind::Card);
        in_every_context(&grouped(&pan), Kind::Card);
        in_every_context(&grouped(&pan).replace(' ', "-"), Kind::Card);
        in_every_context(&arabic_digits(&pan, true), Kind::Card);
    }
    // Amex 4-6-5 grouping.
    in_every_context("3782 822463 10005", Kind::Card);
}

#[test]
fn card_numbers_failing_luhn_or_iin_are_kept() {
    for pan in data("cards_network_test_numbers_pass.txt") {
        let mut b = pan.clone().into_bytes();
        let last = b.len() - 1;
        b[last] = if b[last] == b'9' { b'0' } else { b[last] + 1 };
        let bad = String::from_utf8(b).unwrap();
        assert_clean(&format!("order {bad} shipped"));
    }
    // Luhn-valid but no card network starts with 7 or 0; 11 and 20 digits.
    for s in [
        "7000000000000006",
        "0000000000000000",
        "41111111117",
        "41111111111111111113",
    ] {
        assert!(!validate::card(&digits(s)) || s.len() > 19, "{s}");
        assert!(found(s).iter().all(|(k, _)| *k != Kind::Card), "{s}");
    }
}

#[test]
fn two_cards_in_a_row_and_a_card_before_a_year_are_found_separately() {
    assert_eq!(
        found("4111111111111111 5555555555554444"),
        vec![
            (Kind::Card, "4111111111111111".to_owned()),
            (Kind::Card, "5555555555554444".to_owned())
        ]
    );
    assert_eq!(
        found("4111 1111 1111 1111 2027"),
        vec![(Kind::Card, "4111 1111 1111 1111".to_owned())]
    );
}

#[test]
fn saudi_ids_with_valid_check_digit_are_found_in_every_writing() {
    for id in data("saudi_id_generated_pass.txt") {
        assert!(validate::saudi_national_id(&digits(&id)), "{id}");
        in_every_context(&id, Kind::NationalId);
        in_every_context(&arabic_digits(&id, false), Kind::NationalId);
        in_every_context(&arabic_digits(&id, true), Kind::NationalId);
    }
}

#[test]
fn saudi_ids_failing_the_check_digit_or_first_digit_are_kept() {
    for id in data("saudi_id_generated_pass.txt") {
        for pos in [0usize, 5, 9] {
            let mut b = id.clone().into_bytes();
            b[pos] = if b[pos] == b'9' { b'3' } else { b[pos] + 1 };
            let bad = String::from_utf8(b).unwrap();
            if !validate::saudi_national_id(&digits(&bad)) {
                assert_clean(&format!("id {bad} ok"));
            }
        }
    }
    // Luhn-valid ten digits starting with 3: not an ID.
    assert!(validate::luhn(&digits("3000000004")));
    assert_clean("id 3000000004 ok");
}

#[test]
fn saudi_mobiles_are_found_in_every_common_writing() {
    for v in [
        "+966501234567",
        "+966 50 123 4567",
        "+966-50-123-4567",
        "+966 (50) 123 4567",
        "(+966) 50 123 4567",
        "00966501234567",
        "00966 50 123 4567",
        "966501234567",
        "966 55 987 6543",
        "0501234567",
        "050 123 4567",
        "050-123-4567",
        "050.123.4567",
        "(050) 123 4567",
        "+966 050 123 4567",
        "+٩٦٦٥٠١٢٣٤٥٦٧",
        "٠٥٠١٢٣٤٥٦٧",
        "۰۵۹ ۸۷۶ ۵۴۳۲",
    ] {
        in_every_context(v, Kind::Phone);
    }
}

#[test]
fn landlines_gcc_and_e164_numbers_are_found() {
    for v in [
        "011 234 5678",
        "0112345678",
        "+966 11 234 5678",
        "+971 50 123 4567",
        "00971 4 123 4567",
        "+965 6123 4567",
        "+974 3312 3456",
        "+973 3612 3456",
        "+968 9123 4567",
        "+1 415 555 2671",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
    ] {
        in_every_context(v, Kind::Phone);
    }
}

#[test]
fn a_bare_ten_digit_number_is_not_a_phone_by_length_alone() {
    for s in [
        "1234567890",
        "5012345678",
        "9876543210",
        "501234567",
        "0012345678",
    ] {
        assert!(found(s).iter().all(|(k, _)| *k != Kind::Phone), "{s}");
    }
}

#[test]
fn emails_are_found_plain_in_urls_query_strings_and_percent_encoded() {
    for v in [
        "john.doe@example.com",
        "a+tag@sub.example.co.uk",
        "x_y-z@xn--mgbh0fb.xn--ngbrx",
    ] {
        in_every_context(v, Kind::Email);
    }
    for (line, want) in [
        (
            "GET /reset?email=john.doe@example.com&x=1",
            "john.doe@example.com",
        ),
        (
            "GET /reset?email=john.doe%40example.com&x=1",
            "john.doe%40example.com",
        ),
        // Every dot percent-encoded too (a client encoding the whole address
        // in a URL path), or only the domain's.
        (
            "GET /users/fatima%2Ealharbi%40example%2Esa/orders",
            "fatima%2Ealharbi%40example%2Esa",
        ),
        ("to=ali@example%2esa&x=1", "ali@example%2esa"),
        ("mailto:info@example.sa", "info@example.sa"),
        ("<user@example.org>", "user@example.org"),
    ] {
        assert_eq!(found(line), vec![(Kind::Email, want.to_owned())], "{line}");
    }
    // A number detector's match inside the local part merges into the address.
    assert_eq!(
        found("0501234567@example.com"),
        vec![(Kind::Email, "0501234567@example.com".to_owned())]
    );
}

#[test]
fn email_lookalikes_are_kept() {
    for s in [
        "serde@1.0.200",
        "@mention here",
        "user@localhost",
        "icon@2x.png",
        "a@b.c",
        "x@-bad.com",
    ] {
        assert!(found(s).iter().all(|(k, _)| *k != Kind::Email), "{s}");
    }
}

#[test]
fn ip_addresses_are_found_and_version_strings_are_not() {
    for v in [
        "192.168.1.10",
        "8.8.8.8",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.0.2.128",
    ] {
        in_every_context(v, Kind::IpAddress);
    }
    // Root cause guarded: the version rule once took any `<word>/` before a
    // quad for a product token, so a path segment hid an address. Only a
    // product token at the start of a field makes a version.
    for line in [
        "http://10.0.0.1/x",
        "GET /hosts/10.0.0.1 200",
        "path=/ip/10.0.0.1",
    ] {
        assert_eq!(
            found(line),
            vec![(Kind::IpAddress, "10.0.0.1".to_owned())],
            "{line}"
        );
    }
    for s in [
        "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36",
        "Version/17.1.2.3",
        "ua=\"Mozilla/5.0 (Windows NT 10.0) Edg/120.0.2210.91\"",
        "v1.2.3.4",
        "1.2.3.4.5",
        "999.1.1.1",
        "at 10:30:00",
        "mac 00:1a:2b:3c:4d:5e",
        "std::fmt a::b cafe::babe",
    ] {
        assert_clean(s);
    }
}

#[test]
fn jwts_bearer_tokens_and_api_keys_are_found() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    in_every_context(jwt, Kind::Jwt);
    assert_eq!(
        found("curl -H 'Bearer abcDEF123456'"),
        vec![(Kind::BearerToken, "abcDEF123456".to_owned())]
    );
    for key in [
        "hisn_live_AbCdEf123456_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-abcdefghij",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
        "glpat-abcdefghij0123456789",
    ] {
        in_every_context(key, Kind::ApiKey);
    }
    for s in [
        "basic authentication enabled",
        "Bearer tokens expire",
        "sk_live_short",
        "AKIAshort",
    ] {
        assert_clean(s);
    }
}

#[test]
fn values_after_sensitive_keys_are_found() {
    for (line, want) in [
        ("password=hunter2 user=bob", "hunter2"),
        ("client_secret: s3cr3t-value", "s3cr3t-value"),
        ("{\"access_token\":\"abc\\\"def\"}", "abc\\\"def"),
        ("X-Api-Key: 0123abcd", "0123abcd"),
        (
            "Authorization: Digest username=\"a\", response=\"b\"",
            "Digest username=\"a\", response=\"b\"",
        ),
        ("Cookie: sid=1; theme=dark", "sid=1; theme=dark"),
    ] {
        assert_eq!(found(line), vec![(Kind::Secret, want.to_owned())], "{line}");
    }
    for s in [
        "tokens=5",
        "token_count=3",
        "password_hint is empty",
        "password=[SECRET]",
    ] {
        assert_clean(s);
    }
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|c| c - b'0')
        .collect()
}
