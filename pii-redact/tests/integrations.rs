//! The `tracing` writer, the JSON walker and `Redacted<T>`.

use hisn_pii_redact::{Redacted, Redactor};

#[test]
fn redacted_wrapper_prints_the_redacted_form_in_display_and_debug() {
    let v = Redacted::new("ali@example.sa paid with 4111111111111111");
    assert_eq!(v.to_string(), "[EMAIL] paid with [CARD]");
    assert_eq!(format!("{v:?}"), "\"[EMAIL] paid with [CARD]\"");
    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug only
    struct User {
        email: &'static str,
        phone: &'static str,
    }
    let u = Redacted::new(User {
        email: "a@b.co",
        phone: "0501234567",
    });
    assert_eq!(
        format!("{u:?}"),
        "User { email: \"[EMAIL]\", phone: \"[PHONE]\" }"
    );
    let r = Redactor::builder()
        .mode(hisn_pii_redact::Kind::Email, hisn_pii_redact::Mode::Off)
        .build()
        .unwrap();
    assert_eq!(
        Redacted::with(&r, "a@b.co 0501234567").to_string(),
        "a@b.co [PHONE]"
    );
}

#[cfg(feature = "serde_json")]
mod json {
    use hisn_pii_redact::Redactor;
    use hisn_pii_redact::json::{JsonRedactor, REDACTED};
    use serde_json::json;

    #[test]
    fn sensitive_keys_are_replaced_whole_and_other_values_redacted_by_content() {
        let mut v = json!({
            "user": {"email": "ali@example.sa", "nationalId": "1234567897", "Password": {"old": "x"}},
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": 123},
            "notes": ["call 0501234567", 966501234567u64, true, null],
            "company": "Acme", "spin": 3, "card_pin": 1234,
            "ali@example.sa": "keyed by address",
            "count": 42
        });
        JsonRedactor::new(Redactor::default()).redact(&mut v);
        assert_eq!(
            v,
            json!({
                "user": {"email": "[EMAIL]", "nationalId": REDACTED, "Password": REDACTED},
                "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED},
                "notes": ["call [PHONE]", "[PHONE]", true, null],
                "company": "Acme", "spin": 3, "card_pin": REDACTED,
                "[EMAIL]": "keyed by address",
                "count": 42
            })
        );
    }

    #[test]
    fn key_list_is_configurable() {
        let j = JsonRedactor::new(Redactor::default()).with_keys(["customer-ref"]);
        assert!(j.is_sensitive("customerRef") && j.is_sensitive("CUSTOMER_REF"));
        assert!(!j.is_sensitive("password"));
        let j = JsonRedactor::new(Redactor::default()).with_key("pwd_hint");
        assert!(j.is_sensitive("pwdHint") && j.is_sensitive("password"));
    }
}

#[cfg(feature = "tracing")]
mod tracing_writer {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use hisn_pii_redact::Redactor;
    use hisn_pii_redact::tracing_writer::{MAX_LINE, RedactingMakeWriter};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_formatted_event_is_redacted_before_the_sink() {
        let sink = Sink::default();
        let s2 = sink.clone();
        let make = RedactingMakeWriter::new(move || s2.clone(), Redactor::default());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                email = "ali@example.sa",
                iban = "SA0380000000608010167519",
                "login from 10.1.2.3"
            );
            tracing::warn!("second line card 4111-1111-1111-1111");
        });
        let out = sink.text();
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            out.contains("login from [IP]") && out.contains("email=\"[EMAIL]\""),
            "{out}"
        );
        assert!(
            out.contains("iban=\"[IBAN]\"") && out.contains("card [CARD]"),
            "{out}"
        );
        for raw in ["ali@example", "SA038", "10.1.2.3", "4111"] {
            assert!(!out.contains(raw), "{raw} leaked: {out}");
        }
    }

    #[test]
    fn a_value_split_across_writes_is_still_redacted_and_long_lines_are_replaced() {
        let sink = Sink::default();
        let s2 = sink.clone();
        let make = RedactingMakeWriter::new(move || s2.clone(), Redactor::default());
        {
            let mut w = make.make_writer();
            w.write_all(b"tel 0501").unwrap();
            w.write_all(b"234567 ok\nrest a@b.co").unwrap();
        }
        assert_eq!(sink.text(), "tel [PHONE] ok\nrest [EMAIL]");
        let sink = Sink::default();
        let s2 = sink.clone();
        let make = RedactingMakeWriter::new(move || s2.clone(), Redactor::default());
        {
            let mut w = make.make_writer();
            let long = vec![b'x'; MAX_LINE + 10];
            w.write_all(&long).unwrap();
            w.write_all(b"x 0501234567\nnext\n").unwrap();
        }
        assert_eq!(sink.text(), "[REDACTED:LINE_TOO_LONG]\nnext\n");
    }
}
