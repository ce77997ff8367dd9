//! A fast check that a diff's stored text is its own RFC 8785 (JCS)
//! canonical form, for the decoder.
//!
//! Every record decode re-checks that the diff is canonical (a record whose
//! diff is not could be one event spelled two ways). Through
//! `serde_json_canonicalizer` that check was most of a decode (a DSAR report
//! of 5,000 records spent 60% of its decoding in it): it re-sorts every
//! object by UTF-16 keys it builds and formats through a generic serializer.
//! Here the parsed value is written out directly: keys are already sorted
//! by bytes (UTF-8 byte order is UTF-16 order unless a key holds a
//! character at or above U+E000; then they are sorted), strings that need
//! no escape are copied, integers are written as digits, and anything else
//! (non-integral numbers) is handed to `serde_json_canonicalizer` value by
//! value.
//!
//! It can only make the check faster, never change its answer: when the
//! fast rendering differs from the text, the text is compared with
//! `serde_json_canonicalizer`'s rendering as before (so a difference between
//! the two writers could cost time, never refuse a record that was written
//! canonically). A property test holds the two writers equal.

use std::cmp::Ordering;

use serde_json::Value;

/// Whether `text` is exactly the canonical rendering of `value` (which was
/// parsed from it), through the fast writer.
pub(crate) fn renders_as(value: &Value, text: &str) -> bool {
    let mut out = Vec::with_capacity(text.len());
    write(value, &mut out).is_some() && out == text.as_bytes()
}

/// Write `v` in JCS form; `None` when a number cannot be rendered.
fn write(v: &Value, out: &mut Vec<u8>) -> Option<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                let s = serde_json_canonicalizer::to_string(&Value::Number(n.clone())).ok()?;
                out.extend_from_slice(s.as_bytes());
            }
        }
        Value::String(s) => string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(x, out)?;
            }
            out.push(b']');
        }
        Value::Object(o) => {
            let mut entries: Vec<(&String, &Value)> = o.iter().collect();
            if !entries.is_sorted_by(|a, b| utf16_cmp(a.0, b.0) == Ordering::Less) {
                entries.sort_by(|a, b| utf16_cmp(a.0, b.0));
            }
            out.push(b'{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                write(x, out)?;
            }
            out.push(b'}');
        }
    }
    Some(())
}

/// A JSON string as JCS writes it (ECMAScript `JSON.stringify`): `"` and
/// `\` escaped, control characters as `\b \t \n \f \r` or `\u00xx`,
/// everything else as it is. serde_json's string escaping is exactly that.
fn string(s: &str, out: &mut Vec<u8>) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Order of two keys by UTF-16 code units (JCS's sort order).
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    // Below U+E000 (lead bytes under 0xEE), byte order is UTF-16 order.
    if a.bytes().chain(b.bytes()).all(|x| x < 0xEE) {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn json() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            "[a-z]{0,6}",
            any::<String>(),
            prop::collection::vec(
                prop_oneof![
                    Just('\u{0}'),
                    Just('\u{8}'),
                    Just('\u{1f}'),
                    Just('"'),
                    Just('\\'),
                    Just('/'),
                    Just('\u{7f}'),
                    Just('\u{2028}'),
                    Just('\u{e000}'),
                    Just('\u{ffff}'),
                    Just('\u{10000}'),
                    Just('😀'),
                    Just('é'),
                    Just('a'),
                ],
                0..6
            )
            .prop_map(|v| v.into_iter().collect::<String>()),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                Just(0.1),
                Just(1e21),
                Just(1e-7),
                Just(-0.0),
                Just(5e-324),
                Just(1.5)
            ]
            .prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fast writer renders exactly what serde_json_canonicalizer
        /// renders, for every kind of value, key order and string.
        #[test]
        fn fast_writer_equals_serde_json_canonicalizer(v in json()) {
            let slow = serde_json_canonicalizer::to_string(&v).unwrap();
            prop_assert!(renders_as(&v, &slow), "{slow}");
            let parsed: Value = serde_json::from_str(&slow).unwrap();
            prop_assert!(renders_as(&parsed, &slow), "{slow}");
        }
    }

    #[test]
    fn keys_beyond_u_e000_sort_by_utf16() {
        // U+10000 is D800 DC00 in UTF-16: before U+E000, after it in UTF-8.
        let v: Value = serde_json::from_str(r#"{"\ue000":1,"\ud800\udc00":2,"a":3}"#).unwrap();
        let slow = serde_json_canonicalizer::to_string(&v).unwrap();
        assert!(slow.find('\u{10000}') < slow.find('\u{e000}'));
        assert!(renders_as(&v, &slow));
        assert!(!renders_as(&v, r#"{"a":3,"\ue000":1,"𐀀":2}"#));
        // Not canonical: whitespace, key order, number spelling, escapes.
        for text in [
            r#"{"b":1, "a":2}"#,
            r#"{"b":1,"a":2}"#,
            "1.0",
            "1e2",
            r#""\u0041""#,
            "-0",
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert!(!renders_as(&v, text), "{text}");
        }
    }
}
