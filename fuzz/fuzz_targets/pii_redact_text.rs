//! Redaction of arbitrary log text: never panics, the output stays within
//! `max_output_len`, redaction is idempotent in every mode, and the `&str`
//! and byte entry points agree.
#![no_main]

use arbitrary::Arbitrary;
use hisn_pii_redact::{Mode, PseudonymKey, Redactor};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    mode: u8,
    text: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let redactor = match input.mode % 3 {
        0 => Redactor::default(),
        1 => match Redactor::builder().all(Mode::Partial).build() {
            Ok(r) => r,
            Err(_) => return,
        },
        _ => {
            let Ok(key) = PseudonymKey::new(&[0x42; 32]) else {
                return;
            };
            match Redactor::builder()
                .all(Mode::Pseudonym)
                .pseudonym_key(key)
                .build()
            {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    let once = redactor.redact_bytes(input.text);
    assert!(once.len() <= redactor.max_output_len(input.text.len()));
    let twice = redactor.redact_bytes(&once);
    assert_eq!(twice, once, "not idempotent");
    if let Ok(s) = std::str::from_utf8(input.text) {
        assert_eq!(redactor.redact(s).as_bytes(), &*once);
    }
});
