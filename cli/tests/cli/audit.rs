//! `hisn audit` tests.
// Helpers outside #[test] functions unwrap too: a failed set-up should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use assert_cmd::Command;

pub(crate) fn hisn() -> Command {
    Command::cargo_bin("hisn").unwrap()
}

pub(crate) const EVENTS: &str = concat!(
    r#"{"actor":"u-1","action":"work_order.transition","entity_type":"work_order","entity_id":"wo-9","subjects":["emp-4"],"from_state":"open","to_state":"closed","diff":{"status":["open","closed"]},"source_ip":"203.0.113.7","request_id":"r-1"}"#,
    "\n",
    r#"{"actor":"u-2","action":"auth.login","subjects":["emp-5"]}"#,
    "\n",
    r#"{"actor":"u-1","action":"data.export","subjects":["emp-4"],"time":"2026-11-24T03:00:00Z"}"#,
    "\n",
);

pub(crate) fn setup(dir: &Path) -> (String, String, String) {
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
            "--json",
            "audit",
            "verify",
            "--store",
            &store,
            "--tenant",
            "acme",
            "--allow-unanchored",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tenants"][0]["verdict"], "unanchored_tail");
    assert_eq!(v["anchored"], false);
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

pub(crate) fn checkpoint_to(store: &str, key: &str, out: &Path) {
    let o = hisn()
        .args([
            "audit",
            "checkpoint",
            "--store",
            store,
            "--signing-key",
            key,
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut held = std::fs::read(out).unwrap_or_default();
    held.extend_from_slice(&o.stdout);
    std::fs::write(out, held).unwrap();
}

/// `hisn audit verify` of `store` against `public` and the notes in `held`.
pub(crate) fn verify_held<'a>(store: &'a str, public: &'a str, held: &'a str) -> Vec<&'a str> {
    vec![
        "audit",
        "verify",
        "--store",
        store,
        "--pubkey",
        public,
        "--checkpoint",
        held,
    ]
}

/// `hisn audit report` of tenant `acme`'s records about `subject`.
pub(crate) fn report_args<'a>(store: &'a str, subject: &'a str) -> Vec<&'a str> {
    vec![
        "audit",
        "report",
        "--store",
        store,
        "--tenant",
        "acme",
        "--subject",
        subject,
    ]
}

fn verify_code(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["--json", "audit", "verify"];
    all.extend_from_slice(args);
    let o = hisn().args(&all).output().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code(), v, String::from_utf8(o.stderr).unwrap())
}

/// Root cause (issue 12): `hisn audit verify` read only the store's own
/// checkpoints, so after a full rewrite without the key, deleting
/// `checkpoints.jsonl` made it print "intact". Checkpoints held elsewhere
/// (--checkpoint) catch the rewrite, and with --pubkey a chain no verified
/// checkpoint covers fails unless --allow-unanchored.
#[test]
fn verify_rewrite_with_checkpoints_deleted_is_caught_by_external_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    // Rewrite: a fresh chain with other contents, no checkpoints at all.
    std::fs::remove_dir_all(&store).unwrap();
    hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(EVENTS.replace("u-2", "u-3"))
        .assert()
        .code(0);
    let (code, v, stderr) = verify_code(&["--store", &store, "--pubkey", &public]);
    assert_eq!(
        (code, &v["tenants"][0]["verdict"]),
        (Some(1), &"unanchored".into()),
        "{stderr}"
    );
    let (code, v, _) = verify_code(&[
        "--store",
        &store,
        "--pubkey",
        &public,
        "--checkpoint",
        held.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(v["tenants"][0]["verdict"], "tampered");
    assert_eq!(v["tenants"][0]["breaks"][0]["first"], 0);
    let (code, _, _) = verify_code(&["--store", &store, "--pubkey", &public, "--allow-unanchored"]);
    assert_eq!(code, Some(0));
    // Anchors need keys to be checked.
    let (code, _, _) = verify_code(&["--store", &store, "--checkpoint", held.to_str().unwrap()]);
    assert_eq!(code, Some(2));
}

/// Root cause: nothing remembered what was verified before, so restoring an
/// older copy of the store (records and checkpoints together) read as intact.
/// --state keeps the newest verified checkpoint per tenant.
#[test]
fn verify_state_turns_a_rollback_into_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (store, public, state) = rolled_back_store(dir.path());
    let st = state.to_str().unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["tenants"]["acme"]["size"], 6);
    // The rolled-back store alone looks fine...
    assert_eq!(
        verify_code(&["--store", &store, "--pubkey", &public]).0,
        Some(0)
    );
    // ...but not to a verifier that remembers.
    let (code, v, _) = verify_code(&["--store", &store, "--pubkey", &public, "--state", st]);
    assert_eq!(code, Some(1));
    assert_eq!(
        (&v["tenants"][0]["verdict"], &v["tenants"][0]["seq"]),
        (&"truncated".into(), &3.into())
    );
    // A damaged state fails closed.
    std::fs::write(&state, "not a state").unwrap();
    assert_eq!(
        verify_code(&["--store", &store, "--pubkey", &public, "--state", st]).0,
        Some(1)
    );
}

/// Root cause: the store-wide verify walked only tenants with segments, and
/// `--tenant T` for a vanished chain was a usage error (exit 2). A tenant whose
/// chain is gone while a checkpoint of it exists is now `truncated` (exit 1).
#[test]
fn vanished_tenant_is_truncated_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    let tdir = Path::new(&store).join(format!("t-{}", hex::encode("acme")));
    for e in std::fs::read_dir(&tdir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let h = held.to_str().unwrap();
    // The store's own checkpoint of the tenant is enough to notice.
    let (code, v, _) = verify_code(&["--store", &store, "--pubkey", &public]);
    assert_eq!(
        (
            code,
            &v["tenants"][0]["tenant"],
            &v["tenants"][0]["verdict"]
        ),
        (Some(1), &"acme".into(), &"truncated".into())
    );
    let (code, v, _) = verify_code(&["--store", &store, "--pubkey", &public, "--checkpoint", h]);
    assert_eq!(code, Some(1));
    assert_eq!(v["tenants"][0]["verdict"], "truncated");
    let (code, v, _) = verify_code(&[
        "--store",
        &store,
        "--tenant",
        "acme",
        "--pubkey",
        &public,
        "--checkpoint",
        h,
    ]);
    assert_eq!(
        (code, &v["tenants"][0]["verdict"]),
        (Some(1), &"truncated".into())
    );
    let (code, _, stderr) = verify_code(&["--store", &store, "--tenant", "acme"]);
    assert_eq!(code, Some(1), "{stderr}");
    // The whole store deleted: the held checkpoint still names the tenant.
    std::fs::remove_dir_all(&store).unwrap();
    let (code, v, _) = verify_code(&["--store", &store, "--pubkey", &public, "--checkpoint", h]);
    assert_eq!(
        (code, &v["tenants"][0]["verdict"]),
        (Some(1), &"truncated".into())
    );
}

/// Root cause: a malformed line in the store's checkpoint log made `verify`
/// fail with an input error (exit 2) for good. Store notes are untrusted: a bad
/// line is skipped and the rest still anchor the chain; a malformed note the
/// operator holds is a failed verification (exit 1).
#[test]
fn malformed_checkpoints_are_skipped_in_the_store_and_fail_closed_when_held() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    let log = Path::new(&store)
        .join(format!("t-{}", hex::encode("acme")))
        .join("checkpoints.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"note\":\"garbage\"}\n");
    std::fs::write(&log, text).unwrap();
    let (code, v, stderr) = verify_code(&["--store", &store, "--pubkey", &public]);
    assert_eq!(
        (code, &v["tenants"][0]["verdict"]),
        (Some(0), &"intact".into()),
        "{stderr}"
    );
    std::fs::write(&log, "{\"note\":\"garbage\"}\n").unwrap();
    assert_eq!(
        verify_code(&["--store", &store, "--pubkey", &public]).0,
        Some(1)
    );
    std::fs::write(&held, "hisn-audit-log/acme\n3\nnot base64\n").unwrap();
    let (code, _, _) = verify_code(&[
        "--store",
        &store,
        "--pubkey",
        &public,
        "--checkpoint",
        held.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
}

/// A store rolled back by an attacker: three events checkpointed, a copy
/// kept, three more appended and checkpointed, verified once with `--state`
/// (which remembers the newer checkpoint), then the copy restored over the
/// store, records and checkpoints together. Returns (store, public key,
/// state file).
pub(crate) fn rolled_back_store(dir: &Path) -> (String, String, std::path::PathBuf) {
    let (store, key, public) = setup(dir);
    let held = dir.join("held.notes");
    checkpoint_to(&store, &key, &held);
    let backup = dir.join("backup");
    copy_dir(Path::new(&store), &backup);
    hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(EVENTS)
        .assert()
        .code(0);
    checkpoint_to(&store, &key, &held);
    let state = dir.join("state.json");
    let st = state.to_str().unwrap();
    let (code, _, stderr) = verify_code(&["--store", &store, "--pubkey", &public, "--state", st]);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&backup, Path::new(&store));
    (store, public, state)
}

/// A copy of a store directory (without its `LOCK` file).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `hisn audit checkpoint` signs the RFC 6962 root; `hisn audit prove` gives
/// O(log n) inclusion and consistency proofs checked against verified
/// checkpoints, and fails (exit 1) when a proof does not hold.
#[test]
fn prove_inclusion_and_consistency_against_signed_merkle_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(EVENTS.repeat(5))
        .assert()
        .code(0);
    checkpoint_to(&store, &key, &held);
    let notes = std::fs::read_to_string(&held).unwrap();
    assert!(notes.contains("\nhead "), "{notes}");
    let prove = |args: &[&str]| {
        let mut all = vec![
            "--json", "audit", "prove", "--store", &store, "--tenant", "acme",
        ];
        all.extend_from_slice(args);
        let o = hisn().args(&all).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        (o.status.code(), v, String::from_utf8(o.stderr).unwrap())
    };
    let (code, v, err) = prove(&["--inclusion", "4", "--pubkey", &public]);
    assert_eq!((code, &v["verified"]), (Some(0), &true.into()), "{err}");
    assert_eq!(v["inclusion"]["size"], 18);
    assert!(v["inclusion"]["path"].as_array().unwrap().len() <= 5);
    let (code, v, err) = prove(&["--consistency", "3", "18", "--pubkey", &public]);
    assert_eq!((code, &v["verified"]), (Some(0), &true.into()), "{err}");
    // No checkpoint of size 5: not proven.
    let (code, v, _) = prove(&["--consistency", "3", "5", "--pubkey", &public]);
    assert_eq!((code, &v["verified"]), (Some(1), &false.into()));
    // The records changed under the checkpoint (the record itself, relinked
    // by nobody): the store refuses to build proofs over a broken chain.
    let seg = Path::new(&store)
        .join(format!("t-{}", hex::encode("acme")))
        .join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let pos = bytes.windows(4).position(|w| w == b"u-2\0").unwrap();
    bytes[pos] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let (code, _, _) = prove(&["--inclusion", "4", "--pubkey", &public]);
    assert_eq!(code, Some(1));
    // Nor is a checkpoint signed over them.
    let o = hisn()
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
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Exit codes: a store made unreadable by someone who can write it (a
/// tenant's directory replaced by a file, a segment or `checkpoints.jsonl`
/// replaced by a directory) is a failed verification, exit 1, never 2.
///
/// Root cause: `verify` mapped every store error other than `Corrupt` /
/// `Malformed` to a usage error (exit 2), so an I/O error the attacker caused
/// ("Not a directory", "Is a directory") looked like operator error and a
/// monitor that alerts on exit 1 stayed quiet. Once the store directory
/// exists, any failure to read it is now exit 1.
#[test]
fn tampering_that_makes_the_store_unreadable_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    let tdir = Path::new(&store).join(format!("t-{}", hex::encode("acme")));
    let aside = dir.path().join("aside");
    let args = [
        "--store",
        store.as_str(),
        "--pubkey",
        public.as_str(),
        "--checkpoint",
        held.to_str().unwrap(),
    ];
    assert_eq!(verify_code(&args).0, Some(0));
    // Each file or directory of the tenant swapped for the other kind.
    let seg = std::fs::read_dir(&tdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    for victim in [tdir.clone(), seg, tdir.join("checkpoints.jsonl")] {
        std::fs::rename(&victim, &aside).unwrap();
        if victim == tdir {
            std::fs::write(&victim, b"x").unwrap();
        } else {
            std::fs::create_dir(&victim).unwrap();
        }
        let (code, _, stderr) = verify_code(&args);
        assert_eq!(code, Some(1), "{}: {stderr}", victim.display());
        if victim == tdir {
            std::fs::remove_file(&victim).unwrap();
        } else {
            std::fs::remove_dir(&victim).unwrap();
        }
        std::fs::rename(&aside, &victim).unwrap();
        assert_eq!(verify_code(&args).0, Some(0), "restored");
    }
    // A store path that does not exist (and no anchors) is still a usage error.
    let missing = dir.path().join("missing").display().to_string();
    assert_eq!(
        verify_code(&["--store", &missing, "--pubkey", &public]).0,
        Some(2)
    );
}

/// Prunes: a prune record appended like any event (no key) is refused by the
/// append path (the action is reserved for the store's own prune), so the
/// routine checkpoint the attacker waits for (to "cover" the prune before
/// deleting the oldest records) never covers one. A prune record written into
/// the store directly is tampering and never signed: root cause and test in
/// `review_attacks::forged_prune_record_naming_held_records_is_tampered`.
#[test]
fn forged_prune_record_is_tampered_and_not_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let o = hisn()
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
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["entries"][0]["seq"], 0);
    let link = rep["entries"][0]["link"].as_str().unwrap().to_owned();
    let forged = format!(
        r#"{{"actor":"u-9","action":"audit.prune","diff":{{"from":0,"through":0,"count":1,"boundary_link":"{link}"}}}}"#
    );
    // The action is reserved for the store's own prune: the append path
    // refuses it as input (exit 2) and writes nothing.
    hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(format!("{forged}\n"))
        .assert()
        .code(2);
    let o = hisn()
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
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (code, v, stderr) = verify_code(&["--store", &store, "--pubkey", &public]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(v["tenants"][0]["verdict"], "intact");
    assert_eq!(v["tenants"][0]["size"], 3);
}
