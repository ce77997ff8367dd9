//! `hisn webhook` tests: exit codes 0/1/2, one-line reasons, `--json`, and the
//! providers' documented examples.
// Test helpers outside `#[test]` fns unwrap: a broken fixture should fail the test.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use assert_cmd::Command;

fn hisn() -> Command {
    Command::cargo_bin("hisn").unwrap()
}

fn body_file(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f
}

const GH_SIG: &str =
    "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn verify_github_documented_example_exits_0() {
    let f = body_file(b"Hello, World!");
    let out = hisn()
        .args([
            "webhook",
            "verify",
            "--scheme",
            "github",
            "--secret",
            "It's a Secret to Everybody",
        ])
        .args(["--header", GH_SIG, "--body-file"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("valid"));
}

#[test]
fn verify_tampered_body_exits_1_with_one_line() {
    let f = body_file(b"Hello, World?");
    let out = hisn()
        .args([
            "webhook",
            "verify",
            "--scheme",
            "github",
            "--secret",
            "It's a Secret to Everybody",
        ])
        .args(["--header", GH_SIG, "--body-file"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr, "hisn: invalid: no matching webhook signature\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn verify_standard_webhooks_from_stdin_with_now_and_json() {
    let args = [
        "--json",
        "webhook",
        "verify",
        "--scheme",
        "standard-webhooks",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--header",
        "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--header",
        "webhook-timestamp: 1614265330",
        "--header",
        "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "--body-file",
        "-",
    ];
    let ok = hisn()
        .args(args)
        .args(["--now", "1614265400"])
        .write_stdin(r#"{"test": 2432232314}"#)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["event_id"], "msg_p5jXN8AQM9LWM0D4loKWxJek");

    // Ten minutes later: stale, exit 1, JSON report on stdout, one line on stderr.
    let stale = hisn()
        .args(args)
        .args(["--now", "1614265931"])
        .write_stdin(r#"{"test": 2432232314}"#)
        .output()
        .unwrap();
    assert_eq!(stale.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["reason"], "webhook timestamp outside the tolerance");
    assert_eq!(String::from_utf8(stale.stderr).unwrap().lines().count(), 1);

    // A wider tolerance accepts it.
    let wide = hisn()
        .args(args)
        .args(["--now", "1614265931", "--tolerance", "900"])
        .write_stdin(r#"{"test": 2432232314}"#)
        .output()
        .unwrap();
    assert_eq!(wide.status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    let f = body_file(b"x");
    let base = |scheme: &str, secret: &str, extra: &[&str]| {
        let mut c = hisn();
        c.args(["webhook", "verify", "--scheme", scheme, "--secret", secret])
            .args(extra)
            .arg("--body-file")
            .arg(f.path());
        c
    };
    let twilio_sig = [
        "--header",
        "X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ];
    for (mut cmd, needle) in [
        (base("nope", "s", &[]), "unknown scheme"),
        (
            base("standard-webhooks", "v1,whsec_abc", &[]),
            "looks like a signature",
        ),
        (base("stripe", "sk_live_123", &[]), "wrong prefix"),
        (
            base("github", "s", &["--header", "no colon"]),
            "Name: value",
        ),
        (base("twilio", "tok", &twilio_sig), "--url"),
    ] {
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{needle}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(
            !stderr.contains("whsec_abc") && !stderr.contains("sk_live_123"),
            "secret echoed: {stderr}"
        );
    }
    let out = hisn()
        .args([
            "webhook",
            "verify",
            "--scheme",
            "github",
            "--secret",
            "s",
            "--body-file",
            "/nonexistent/body",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sign_then_verify_round_trips() {
    let f = body_file(b"{\"id\":\"evt_1\"}");
    let out = hisn()
        .args([
            "webhook",
            "sign",
            "--scheme",
            "stripe",
            "--secret",
            "whsec_cli_test",
            "--timestamp",
            "1700000000",
        ])
        .arg("--body-file")
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("Stripe-Signature: t=1700000000,v1="),
        "{line}"
    );
    let out = hisn()
        .args([
            "webhook",
            "verify",
            "--scheme",
            "stripe",
            "--secret",
            "whsec_cli_test",
            "--now",
            "1700000010",
        ])
        .args(["--header", line.trim(), "--body-file"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn sign_standard_webhooks_reproduces_the_published_vector_and_needs_an_id() {
    let f = body_file(br#"{"test": 2432232314}"#);
    let sign = |extra: &[&str]| {
        hisn()
            .args(["--json", "webhook", "sign", "--scheme", "standard-webhooks"])
            .args([
                "--secret",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "--timestamp",
                "1614265330",
            ])
            .args(extra)
            .arg("--body-file")
            .arg(f.path())
            .output()
            .unwrap()
    };
    let out = sign(&["--id", "msg_p5jXN8AQM9LWM0D4loKWxJek"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["headers"][2]["name"], "webhook-signature");
    assert_eq!(
        v["headers"][2]["value"],
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let out = sign(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--id"));
}
