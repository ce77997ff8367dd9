//! Helpers shared by the test modules.

use hisn_pii_redact::{Kind, Redactor};

/// The kinds and texts found in `s` by the default redactor.
pub(crate) fn found(s: &str) -> Vec<(Kind, String)> {
    Redactor::default()
        .find(s.as_bytes())
        .into_iter()
        .map(|f| (f.kind, s[f.start..f.end].to_owned()))
        .collect()
}

/// Assert that `value`, embedded in `s` at `{}`, is found exactly as `kind`.
pub(crate) fn assert_found(template: &str, value: &str, kind: Kind) {
    let s = template.replace("{}", value);
    assert_eq!(found(&s), vec![(kind, value.to_owned())], "in {s:?}");
}

/// Assert nothing is found in `s` and it comes back borrowed.
pub(crate) fn assert_clean(s: &str) {
    let r = Redactor::default();
    assert_eq!(found(s), vec![], "in {s:?}");
    assert!(matches!(r.redact(s), std::borrow::Cow::Borrowed(_)));
}

/// Lines of a data file under tests/data, comments and blanks skipped.
pub(crate) fn data(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// ASCII digits rewritten as Arabic-Indic (`٠`-`٩`) or Eastern Arabic (`۰`-`۹`).
pub(crate) fn arabic_digits(s: &str, eastern: bool) -> String {
    let base = if eastern { 0x6F0 } else { 0x660 };
    s.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(base + d).unwrap(),
            None => c,
        })
        .collect()
}

/// Group a compact value in fours with spaces.
pub(crate) fn grouped(s: &str) -> String {
    s.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}
