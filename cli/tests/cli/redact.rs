//! `hisn redact` tests.
// Test helpers outside #[test] fns: unwrap is the assertion mechanism here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

fn hisn() -> Command {
    Command::cargo_bin("hisn").unwrap()
}

fn run(args: &[&str], stdin: &[u8]) -> std::process::Output {
    hisn()
        .arg("redact")
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .unwrap()
}

#[test]
fn redact_writes_one_redacted_line_per_input_line_in_order() {
    let input = b"user ali@example.sa logged in\n\nclean line\ncard 4111 1111 1111 1111\nno newline 0501234567";
    let out = run(&[], input);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "user [EMAIL] logged in\n\nclean line\ncard [CARD]\nno newline [PHONE]"
    );
}

#[test]
fn redact_modes_partial_and_pseudonym() {
    let out = run(
        &["--mode", "partial"],
        b"iban SA03 8000 0000 6080 1016 7519\n",
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "iban [IBAN ****7519]\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("p.key");
    std::fs::write(&key, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n").unwrap();
    let k = key.to_str().unwrap();
    let out = run(
        &["--mode", "pseudonym", "--key-file", k],
        b"0501234567\n+966 50 123 4567\n",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], lines[1], "same number, same pseudonym");
    assert!(
        lines[0].starts_with("[PHONE:") && !lines[0].contains("0501"),
        "{text}"
    );

    let out = run(&["--mode", "pseudonym"], b"x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn redact_json_lines_structurally_and_text_lines_by_content() {
    let input = b"{\"password\":\"hunter2\",\"msg\":\"from ali@example.sa\",\"n\":1}\nnot json ali@example.sa\n";
    let out = run(&["--json"], input);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"password": "[REDACTED]", "msg": "from [EMAIL]", "n": 1})
    );
    assert_eq!(lines[1], "not json [EMAIL]");
}

#[test]
fn redact_invalid_utf8_is_redacted_around_not_dropped() {
    let out = run(&[], b"\xff bad a@b.co \xc3\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"\xff bad [EMAIL] \xc3\n");
}

#[test]
fn redact_stats_go_to_stderr_and_files_are_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    std::fs::write(&a, "a@b.co c@d.co\n").unwrap();
    std::fs::write(&b, "0501234567\n").unwrap();
    let out = hisn()
        .args(["redact", "--stats"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[EMAIL] [EMAIL]\n[PHONE]\n"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("lines=2") && err.contains("EMAIL=2") && err.contains("PHONE=1"),
        "{err}"
    );

    let out = hisn()
        .args(["redact"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn redact_replaces_an_oversized_line_and_keeps_going() {
    let mut input = vec![b'x'; (1 << 20) + 5];
    input.extend_from_slice(b" 0501234567\nnext a@b.co\n");
    let out = run(&[], &input);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[REDACTED:LINE_TOO_LONG]\nnext [EMAIL]\n"
    );
}
