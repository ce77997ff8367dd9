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

/// Class: a planted FIFO or link among the segments. `repair --apply` moves
/// it out (exit 0) and verification passes again; before, it stopped with
/// an error (exit 2) on exactly the damage it is for. A linked tenant
/// directory is reported (exit 1), never written through.
#[test]
fn repair_moves_a_planted_fifo_or_link_out_and_reports_a_linked_tenant() {
    let events = "{\"actor\":\"u-1\",\"action\":\"a.b\"}\n".repeat(3);
    for kind in ["fifo", "link", "tenant-link"] {
        let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = dir.path().join("store").display().to_string();
        let out = hisn()
            .args(["audit", "append", "--store", &store, "--tenant", "acme"])
            .write_stdin(events.clone())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let tdir = dir
            .path()
            .join("store")
            .join(format!("t-{}", hex::encode("acme")));
        let planted = tdir.join(format!("{:020}.seg", 3));
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, b"not yours").unwrap();
        match kind {
            "fifo" => assert!(
                std::process::Command::new("mkfifo")
                    .arg(&planted)
                    .status()
                    .unwrap()
                    .success()
            ),
            "link" => std::os::unix::fs::symlink(&victim, &planted).unwrap(),
            _ => {
                let real = elsewhere.path().join("acme");
                std::fs::rename(&tdir, &real).unwrap();
                std::os::unix::fs::symlink(&real, &tdir).unwrap();
            }
        }
        let verify = ["audit", "verify", "--store", &store, "--allow-unanchored"];
        let (code, stdout) = run(&verify);
        // A linked tenant directory reads as what it points to (appends to
        // it are refused); a planted segment breaks the chain.
        let broken = if kind == "tenant-link" { 0 } else { 1 };
        assert_eq!(code, Some(broken), "{kind}: {stdout}");
        let (code, stdout) = run(&["audit", "repair", "--store", &store, "--apply"]);
        if kind == "tenant-link" {
            assert_eq!(code, Some(1), "{kind}: {stdout}");
            assert!(stdout.contains("tenant directory is a link"), "{stdout}");
            assert!(!elsewhere.path().join("acme").join("quarantine").exists());
            continue;
        }
        assert_eq!(code, Some(0), "{kind}: {stdout}");
        assert!(stdout.contains("moved to"), "{kind}: {stdout}");
        let (code, stdout) = run(&verify);
        assert_eq!(code, Some(0), "{kind}: {stdout}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    }
}
