//! `hisn totp`: enroll, code, verify (exit 0 ok, 1 refused, 2 usage or input).

use assert_cmd::Command;

/// RFC 6238's SHA-1 seed "12345678901234567890" in base32.
const RFC_SHA1: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn hisn() -> Command {
    let mut c = Command::cargo_bin("hisn").unwrap();
    c.env_remove("HISN_TOTP_SECRET");
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = hisn().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn enroll_prints_a_long_secret_and_its_uri() {
    let (code, out, err) = run(&[
        "totp",
        "enroll",
        "--issuer",
        "Hisn Ops",
        "--account",
        "alice@example.com",
    ]);
    assert_eq!(code, 0, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap();
    let uri = out.lines().find_map(|l| l.strip_prefix("uri: ")).unwrap();
    assert!(
        secret.len() >= 32,
        "160 bits is 32 base32 characters: {secret}"
    );
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Hisn%20Ops:alice%40example.com?secret={secret}&issuer=Hisn%20Ops&algorithm=SHA1&digits=6&period=30"
        )
    );
    // Not a terminal: no QR code unless asked.
    assert_eq!(out.lines().count(), 2);
    let (_, again, _) = run(&["totp", "enroll", "--issuer", "I", "--account", "a"]);
    assert_ne!(
        again.lines().next(),
        out.lines().next(),
        "a fresh secret each time"
    );
}

#[test]
fn enroll_draws_a_qr_code_on_request_and_json_has_none() {
    let (code, out, _) = run(&["totp", "enroll", "--issuer", "I", "--account", "a", "--qr"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() > 12);
    assert!(out.contains('█') || out.contains('▀') || out.contains('▄'));
    let (code, out, _) = run(&[
        "--json",
        "totp",
        "enroll",
        "--issuer",
        "I",
        "--account",
        "a",
        "--algorithm",
        "sha512",
        "--digits",
        "8",
        "--qr",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["algorithm"], "SHA512");
    assert_eq!(v["digits"], 8);
    // SHA-512 secrets are 64 bytes: 103 base32 characters.
    assert_eq!(v["secret"].as_str().unwrap().len(), 103);
    assert!(
        v["uri"]
            .as_str()
            .unwrap()
            .contains("algorithm=SHA512&digits=8&period=30")
    );
}

#[test]
fn enroll_refuses_bad_labels_and_parameters() {
    for args in [
        &["totp", "enroll", "--issuer", "a:b", "--account", "x"][..],
        &["totp", "enroll", "--issuer", "I", "--account", ""],
        &[
            "totp",
            "enroll",
            "--issuer",
            "I",
            "--account",
            "x",
            "--digits",
            "9",
        ],
        &[
            "totp",
            "enroll",
            "--issuer",
            "I",
            "--account",
            "x",
            "--algorithm",
            "md5",
        ],
        &[
            "totp",
            "enroll",
            "--issuer",
            "I",
            "--account",
            "x",
            "--period",
            "5",
        ],
        &["totp", "enroll", "--account", "x"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("hisn: "));
    }
}

#[test]
fn code_matches_rfc6238_for_every_hash() {
    let sha256 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
    let sha512 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA";
    for (secret, alg, want) in [
        (RFC_SHA1, "SHA1", "94287082"),
        (sha256, "SHA256", "46119246"),
        (sha512, "SHA512", "90693936"),
    ] {
        let (code, out, err) = run(&[
            "totp",
            "code",
            "--secret",
            secret,
            "--algorithm",
            alg,
            "--digits",
            "8",
            "--now",
            "59",
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), want, "{alg}");
    }
    let (_, out, _) = run(&[
        "--json",
        "totp",
        "code",
        "--secret",
        RFC_SHA1,
        "--digits",
        "8",
        "--now",
        "1111111109",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["code"], "07081804");
    assert_eq!(v["step"], 37_037_036);
    assert_eq!(v["valid_for_seconds"], 1);
}

#[test]
fn the_secret_can_come_from_the_environment_or_a_uri() {
    let out = hisn()
        .env("HISN_TOTP_SECRET", RFC_SHA1)
        .args(["totp", "code", "--digits", "8", "--now", "59"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "94287082");
    let uri = format!("otpauth://totp/I:a?secret={RFC_SHA1}&digits=8");
    let (code, out, _) = run(&["totp", "code", "--secret", &uri, "--now", "59"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "94287082");
    // Parameters come from the URI: flags beside it are a usage error.
    let (code, _, err) = run(&["totp", "code", "--secret", &uri, "--digits", "6"]);
    assert_eq!(code, 2, "{err}");
    // A missing secret is a usage error too.
    let (code, _, _) = run(&["totp", "code"]);
    assert_eq!(code, 2);
}

#[test]
fn verify_accepts_once_and_prints_the_new_last_step() {
    let base = [
        "totp", "verify", "--secret", RFC_SHA1, "--digits", "8", "--now", "59",
    ];
    let (code, out, err) = run(&[&base[..], &["--code", "94287082"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1");
    // Replay: the same code with the step just printed is refused.
    let (code, out, err) = run(&[&base[..], &["--code", "94287082", "--last-step", "1"]].concat());
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1);
    assert!(!err.contains(RFC_SHA1));
    // Wrong code: refused.
    let (code, _, _) = run(&[&base[..], &["--code", "94287083"]].concat());
    assert_eq!(code, 1);
    // JSON on both outcomes.
    let (code, out, _) = run(&[
        &["--json"][..],
        &base[..],
        &["--code", "94287082", "--last-step", "0"],
    ]
    .concat());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["last_step"].as_u64()),
        (Some(true), Some(1))
    );
    let (code, out, _) = run(&[&["--json"][..], &base[..], &["--code", "00000000"]].concat());
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
}

#[test]
fn verify_window_and_digits() {
    // 59 s is step 1; the code of step 1 checked at 119 s (step 3) is two steps old.
    let args = |now: &str, window: &str| {
        run(&[
            "totp", "verify", "--secret", RFC_SHA1, "--digits", "8", "--code", "94287082", "--now",
            now, "--window", window,
        ])
        .0
    };
    assert_eq!(args("119", "1"), 1);
    assert_eq!(args("119", "2"), 0);
    assert_eq!(args("59", "0"), 0);
    assert_eq!(args("59", "5"), 2);
    // Arabic-Indic and Eastern Arabic-Indic digits, spaces between groups.
    for typed in ["٩٤٢٨٧٠٨٢", "۹۴۲۸ ۷۰۸۲", "9428 7082"] {
        let (code, out, err) = run(&[
            "totp", "verify", "--secret", RFC_SHA1, "--digits", "8", "--code", typed, "--now", "59",
        ]);
        assert_eq!(code, 0, "{typed}: {err}");
        assert_eq!(out.trim(), "1");
    }
    // Malformed codes and secrets are input errors, exit 2.
    for (secret, typed) in [
        (RFC_SHA1, "9428708"),
        (RFC_SHA1, "94287O82"),
        ("not base32!", "94287082"),
        ("JBSWY3DPEHPK3PXP", "94287082"),
    ] {
        let (code, _, err) = run(&[
            "totp", "verify", "--secret", secret, "--digits", "8", "--code", typed, "--now", "59",
        ]);
        assert_eq!(code, 2, "{secret} {typed}: {err}");
        assert_eq!(err.lines().count(), 1);
    }
}

#[test]
fn enroll_code_verify_round_trip() {
    let (_, out, _) = run(&[
        "--json",
        "totp",
        "enroll",
        "--issuer",
        "I",
        "--account",
        "a",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let uri = v["uri"].as_str().unwrap();
    let (_, code, _) = run(&["totp", "code", "--secret", uri, "--now", "1800000000"]);
    let (status, step, _) = run(&[
        "totp",
        "verify",
        "--secret",
        uri,
        "--code",
        code.trim(),
        "--now",
        "1800000010",
    ]);
    assert_eq!(status, 0);
    assert_eq!(step.trim(), "60000000");
    let (status, _, _) = run(&[
        "totp",
        "verify",
        "--secret",
        uri,
        "--code",
        code.trim(),
        "--now",
        "1800000010",
        "--last-step",
        "60000000",
    ]);
    assert_eq!(status, 1);
}

#[test]
fn help_lists_the_group_and_its_commands() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.trim_start().starts_with("totp")));
    let (code, out, _) = run(&["totp", "--help"]);
    assert_eq!(code, 0);
    for sub in ["enroll", "code", "verify"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(sub)),
            "{out}"
        );
    }
}
