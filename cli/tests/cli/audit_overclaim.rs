//! Second outside review of `hisn audit` (session 7): outputs that claimed
//! more than the tool had checked, and a write through a link the store's
//! writer planted. Each test is named by its class.

use crate::audit::{EVENTS, checkpoint_to, hisn, report_args, rolled_back_store, setup};
use crate::audit_exit::{code as run, segmented_store, segments, tdir};

/// Class: rollback to a genuine older checkpoint read as "all anchored".
/// Root cause: without --state the tool cannot know a newer checkpoint was
/// ever signed, yet it printed "intact, ..., all anchored" (JSON `ok`
/// with nothing saying rollback was unchecked). Without --state, the line
/// and the JSON now say the rollback was not checked; with --state the
/// same rollback is `truncated`, exit 1.
#[test]
fn rollback_without_state_is_not_reported_as_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (store, public, state) = rolled_back_store(dir.path());
    let st = state.to_str().unwrap();
    let (c, out, e) = run(&["audit", "verify", "--store", &store, "--pubkey", &public]);
    assert_eq!(c, Some(0), "{e}");
    assert!(out.contains("rollback not checked (no --state)"), "{out}");
    assert!(!out.contains("all anchored\n"), "{out}");
    let (c, out, e) = run(&[
        "--json", "audit", "verify", "--store", &store, "--pubkey", &public,
    ]);
    assert_eq!(c, Some(0), "{e}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rollback_checked"], false, "{v}");
    assert_eq!(v["anchored"], true, "{v}");

    let (c, out, _) = run(&[
        "--json", "audit", "verify", "--store", &store, "--pubkey", &public, "--state", st,
    ]);
    assert_eq!(c, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tenants"][0]["verdict"], "truncated", "{v}");
    assert_eq!(v["rollback_checked"], true, "{v}");
}

/// Class: a verify without --pubkey read as proof. Root cause: with no key
/// the chain alone was checked (anyone who can write the store can rebuild
/// it), yet the line began "intact", JSON said `ok: true` and the exit was
/// 0, so a rewritten store with the checkpoints deleted, or re-signed with
/// the attacker's own key, passed. Without --pubkey the tool now fails
/// (exit 1, "unanchored") unless --allow-unanchored, and even then never
/// says "intact".
#[test]
fn verify_without_pubkey_is_unanchored_not_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _key, public) = setup(dir.path());
    // The attacker's rewrite, re-signed with a key of their own.
    std::fs::remove_dir_all(&store).unwrap();
    hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(EVENTS.replace("u-2", "u-3"))
        .assert()
        .code(0);
    let evil = dir.path().join("evil").display().to_string();
    hisn()
        .args(["audit", "keygen", "--out", &evil])
        .assert()
        .code(0);
    checkpoint_to(
        &store,
        &format!("{evil}.key"),
        &dir.path().join("evil.notes"),
    );

    let (c, out, e) = run(&["audit", "verify", "--store", &store]);
    assert_eq!(c, Some(1), "{out}{e}");
    assert!(!out.contains("intact"), "{out}");
    assert!(out.contains("acme: unanchored"), "{out}");
    assert!(e.contains("no --pubkey"), "{e}");
    let (c, out, _) = run(&["--json", "audit", "verify", "--store", &store]);
    assert_eq!(c, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["ok"], &v["anchored"]),
        (&false.into(), &false.into()),
        "{v}"
    );
    assert_eq!(v["tenants"][0]["verdict"], "unanchored", "{v}");

    // Asked for explicitly, the chain check passes but is labelled for
    // what it is.
    let (c, out, e) = run(&["audit", "verify", "--store", &store, "--allow-unanchored"]);
    assert_eq!(c, Some(0), "{e}");
    assert!(!out.contains("intact"), "{out}");
    assert!(out.contains("NOT anchored"), "{out}");
    // With the real key and --allow-unanchored, a chain no verified
    // checkpoint covers is not "intact" either.
    let (c, out, e) = run(&[
        "audit",
        "verify",
        "--store",
        &store,
        "--pubkey",
        &public,
        "--allow-unanchored",
    ]);
    assert_eq!(c, Some(0), "{e}");
    assert!(!out.contains("intact"), "{out}");
    assert!(out.contains("NOT anchored"), "{out}");
    // A damaged chain still fails without a key.
    let seg = tdir(&store).join("00000000000000000000.seg");
    let mut b = std::fs::read(&seg).unwrap();
    let n = b.len();
    b[n - 20] ^= 1;
    std::fs::write(&seg, b).unwrap();
    let (c, _, _) = run(&["audit", "verify", "--store", &store, "--allow-unanchored"]);
    assert_eq!(c, Some(1));
}

/// Class: DSAR report silently missing a subject's records via index rows
/// removed in the store. Root cause: `hisn audit report` trusted a
/// persisted subject index that passes its own checksums (it has no MAC)
/// and only `hisn audit verify` compared indexes with their records, so a
/// report printed without the hidden records and exited 0. The report now
/// runs the index check for its tenant before printing and fails (exit 1)
/// naming the segment, printing no report.
#[test]
fn report_refuses_an_index_forged_to_omit_the_subject() {
    use hisn_audit_log::store::file::forge_index_omitting;
    let dir = tempfile::tempdir().unwrap();
    let store = segmented_store(dir.path());
    let report = |subject: &str| run(&report_args(&store, subject));
    let (c, out, e) = report("emp-1");
    assert_eq!(c, Some(0), "{e}");
    let full: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(full["entries"].as_array().unwrap().len(), 40);

    let segs = segments(&store);
    forge_index_omitting(&segs[0], "emp-1").unwrap();
    let name = segs[0].file_name().unwrap().to_str().unwrap().to_owned();
    let (c, out, e) = report("emp-1");
    assert_eq!(c, Some(1), "{out}{e}");
    assert!(out.is_empty(), "no report printed: {out}");
    assert!(
        e.contains(&format!("subject index of segment {name}")),
        "{e}"
    );
    // Another subject's report over the same store fails too: the index
    // of that segment cannot be trusted for anyone.
    let (c, _, _) = report("emp-2");
    assert_eq!(c, Some(1));
}

/// Class: a store-controlled path made the operator tool write outside the
/// store. Root cause: `hisn audit checkpoint` appended each signed note to
/// `<tenant>/checkpoints.jsonl` following symbolic links, so whoever can
/// write the store could point it at the verifier's --state file (or any
/// file the signer can write) and have a line appended to it. The store's
/// checkpoint log must now be a regular file: a link is refused, nothing
/// is written through it, and verify never writes into the store.
#[test]
fn checkpoint_log_symlink_in_the_store_is_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    checkpoint_to(&store, &key, &dir.path().join("n1"));
    let state = dir.path().join("state.json");
    let st = state.to_str().unwrap();
    let (c, _, e) = run(&[
        "audit", "verify", "--store", &store, "--pubkey", &public, "--state", st,
    ]);
    assert_eq!(c, Some(0), "{e}");
    let before = std::fs::read(&state).unwrap();
    let log = tdir(&store).join("checkpoints.jsonl");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&state, &log).unwrap();
    let (c, _, _) = run(&[
        "audit",
        "checkpoint",
        "--store",
        &store,
        "--signing-key",
        &key,
    ]);
    assert_ne!(c, Some(0));
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "state file written through the link"
    );
    // The verifier reads the link as untrusted input and still writes only
    // its own state.
    let (_, _, _) = run(&[
        "audit",
        "verify",
        "--store",
        &store,
        "--pubkey",
        &public,
        "--allow-unanchored",
    ]);
    assert_eq!(std::fs::read(&state).unwrap(), before);
}
