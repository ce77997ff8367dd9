//! Hard negatives: values shaped like personal data that fail validation, and
//! everyday log content, pass through byte for byte.

use crate::support::assert_clean;

#[test]
fn uuids_hashes_timestamps_versions_dates_and_order_numbers_survive() {
    for s in [
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5 d41d8cd98f00b204e9800998ecf8427e",
        "2026-11-27T16:13:13.123456Z",
        "Nov 27 16:13:13 host sshd[12345]: session opened",
        "ts=1700000019 iat: 1700000019 \"created_at\":1700000019",
        "epoch_ms=1700000000000",
        "version 1.2.3 build 20240115.1 rust 1.95.0",
        "ORD-2024-000123 INV/2024/000456 ticket #123456",
        "date 2024-01-15 15/01/2024 1445-06-12",
        "amount 1234567.89 SAR, qty 1,234,567",
        "port 8080 pid 4242 latency 12.5ms",
        "0x7ffd5b3c9a40 0xdeadbeef",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    ] {
        assert_clean(s);
    }
}

#[test]
fn unix_seconds_after_time_keys_are_not_national_ids() {
    // Root cause guarded: epoch seconds are ten digits starting with 1 and one
    // in ten passes Luhn; after a time-like key they are timestamps. The same
    // number after any other key is still redacted.
    assert!(hisn_pii_redact::validate::saudi_national_id(&[
        1, 7, 0, 0, 0, 0, 0, 0, 1, 9
    ]));
    assert_clean("exp=1700000019 nbf=1700000019 \"timestamp\": 1700000019");
    assert_eq!(
        hisn_pii_redact::Redactor::default().redact("national_id=1700000019"),
        "national_id=[NATIONAL_ID]"
    );
}

#[test]
fn adversarial_lines_take_linear_time() {
    // Root cause guarded: a failed JWT attempt scanned the whole base64url
    // run after every `eyJ` in it, so `eyJa-eyJa-…` was quadratic. Each
    // pattern below repeats one detector's failing prefix; a quadratic
    // detector would need minutes on 1 MiB, a linear one well under a second.
    let r = hisn_pii_redact::Redactor::default();
    for unit in [
        "eyJa-",
        "eyJaaaaaaaaaaa.x-",
        "a.",
        "a@",
        "a%40",
        "+",
        "(",
        "1 ",
        "1.",
        "::",
        "SA03 ",
        "sk_live_a_",
        "Bearer a",
        "password=\"",
        "0x",
        "1-",
        "fe80:",
    ] {
        let line = unit.repeat((1 << 20) / unit.len());
        let t = std::time::Instant::now();
        let out = r.redact(&line);
        assert!(out.len() <= r.max_output_len(line.len()));
        let took = t.elapsed();
        assert!(took.as_secs() < 20, "{unit:?}: {took:?}");
    }
}
