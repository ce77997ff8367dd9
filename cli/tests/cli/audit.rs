//! `hisn audit` tests.
// Helpers outside #[test] functions unwrap too: a failed set-up should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use assert_cmd::Command;

fn hisn() -> Command {
    Command::cargo_bin("hisn").unwrap()
}

const EVENTS: &str = concat!(
    r#"{"actor":"u-1","action":"work_order.transition","entity_type":"work_order","entity_id":"wo-9","subjects":["emp-4"],"from_state":"open","to_state":"closed","diff":{"status":["open","closed"]},"source_ip":"203.0.113.7","request_id":"r-1"}"#,
    "\n",
    r#"{"actor":"u-2","action":"auth.login","subjects":["emp-5"]}"#,
    "\n",
    r#"{"actor":"u-1","action":"data.export","subjects":["emp-4"],"time":"2026-11-24T03:00:00Z"}"#,
    "\n",
);

fn setup(dir: &Path) -> (String, String, String) {
    let store = dir.join("store").display().to_string();
    let prefix = dir.join("ck").display().to_string();
    let out = hisn()
        .args(["audit", "keygen", "--out", &prefix])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(EVENTS)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "0\n1\n2\n");
    (store, format!("{prefix}.key"), format!("{prefix}.pub"))
}

#[test]
fn keygen_writes_a_private_key_file_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k").display().to_string();
    let out = hisn()
        .args(["audit", "keygen", "--out", &prefix])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mode = std::fs::metadata(format!("{prefix}.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(format!("{prefix}.key")).unwrap();
    assert!(key.starts_with("PRIVATE+KEY+hisn-audit+"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(key.trim()), "the secret is never printed");
    assert!(
        std::fs::read_to_string(format!("{prefix}.pub"))
            .unwrap()
            .starts_with("hisn-audit+")
    );
    let again = hisn()
        .args(["audit", "keygen", "--out", &prefix])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn append_checkpoint_verify_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let out = hisn()
        .args([
            "audit",
            "checkpoint",
            "--store",
            &store,
            "--signing-key",
            &key,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("hisn-audit-log/acme\n3\n")
    );
    let out = hisn()
        .args(["audit", "verify", "--store", &store, "--pubkey", &public])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("acme: intact, 3 records from 0, all anchored")
    );
    let out = hisn()
        .args([
            "--json", "audit", "verify", "--store", &store, "--tenant", "acme",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tenants"][0]["verdict"], "unanchored_tail");
    let out = hisn()
        .args([
            "audit",
            "report",
            "--store",
            &store,
            "--tenant",
            "acme",
            "--subject",
            "emp-4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 2);
    assert_eq!(v["entries"][0]["event"]["entity_id"], "wo-9");
    assert_eq!(v["entries"][1]["event"]["time"], "2026-11-24T03:00:00Z");
}

#[test]
fn verify_exits_1_naming_the_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    hisn()
        .args([
            "audit",
            "checkpoint",
            "--store",
            &store,
            "--signing-key",
            &key,
        ])
        .assert()
        .code(0);
    let seg = Path::new(&store)
        .join(format!("t-{}", hex::encode("acme")))
        .join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let pos = bytes
        .windows(4)
        .position(|w| w == b"u-2\0")
        .unwrap_or(bytes.len() / 2);
    bytes[pos] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let out = hisn()
        .args([
            "--json", "audit", "verify", "--store", &store, "--pubkey", &public,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["tenants"][0]["verdict"], "tampered");
    assert_eq!(v["tenants"][0]["seq"], 1);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("acme: tampered at record 1"));
}

#[test]
fn bad_input_is_a_usage_error_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s").display().to_string();
    let out = hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin("{\"actor\":\"u\",\"action\":\"a\"}\nnot json\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("line 2"));
    assert!(!Path::new(&store).exists(), "nothing written");
    hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "a/b"])
        .write_stdin("")
        .assert()
        .code(2);
    hisn()
        .args(["audit", "verify", "--store", &store])
        .assert()
        .code(2);
    let pubf = dir.path().join("x.pub");
    std::fs::write(&pubf, "garbage").unwrap();
    hisn()
        .args([
            "audit",
            "verify",
            "--store",
            dir.path().to_str().unwrap(),
            "--pubkey",
            pubf.to_str().unwrap(),
        ])
        .assert()
        .code(2);
}
