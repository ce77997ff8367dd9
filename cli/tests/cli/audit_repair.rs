//! `hisn audit repair` tests.
// Helpers outside #[test] functions unwrap too: a failed set-up should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::audit::hisn;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = hisn().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A store damaged below its synced mark: `repair` reports it (exit 1, nothing
/// changed), `--apply` cuts it back (exit 0) and appends work again.
#[test]
fn repair_reports_then_cuts_damage_and_appends_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let events = "{\"actor\":\"u-1\",\"action\":\"a.b\"}\n".repeat(5);
    let out = hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(events.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let seg = dir
        .path()
        .join("store")
        .join(format!("t-{}", hex::encode("acme")))
        .join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    // Appends to the damaged chain are refused.
    let out = hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(events.clone())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let (code, stdout) = run(&["--json", "audit", "repair", "--store", &store]);
    assert_eq!(code, Some(1), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["applied"], false);
    assert!(v[0]["damage"]["offset"].as_u64().unwrap() <= mid as u64);
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    let (code, stdout) = run(&["audit", "repair", "--store", &store, "--apply"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("moved to"), "{stdout}");
    let out = hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(events)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (code, stdout) = run(&["audit", "repair", "--store", &store]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("no damage"), "{stdout}");
    // A missing store is a usage error.
    let (code, _) = run(&["audit", "repair", "--store", "/nonexistent/hisn-store"]);
    assert_eq!(code, Some(2));
}
