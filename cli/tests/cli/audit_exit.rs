//! Exit codes of `hisn audit report` and `hisn audit prove`, path by path:
//! 0 ok, 1 verification failed (damage, or a store someone made unreadable),
//! 2 usage or input error (the operator's flags or files).
//!
//! Root cause of the class: both commands mapped store errors other than
//! `Corrupt` / `Malformed` to usage errors (exit 2), so an I/O error an
//! attacker caused by swapping a file for a directory read as operator
//! error, and `report` exited 0 while its JSON listed broken ranges and
//! unreadable records. Once the store directory exists, anything that stops
//! it being read, and any damage a report finds, is exit 1.

use std::path::{Path, PathBuf};

use crate::audit::{checkpoint_to, hisn, setup};

pub(crate) fn tdir(store: &str) -> PathBuf {
    Path::new(store).join(format!("t-{}", hex::encode("acme")))
}

pub(crate) fn code(args: &[&str]) -> (Option<i32>, String, String) {
    let o = hisn().args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

/// A file store under `root` with 120 events of tenant `acme` (subjects
/// `emp-0`..`emp-2` in turn) over several sealed segments, each with its
/// persisted subject index; returns the store's path.
pub(crate) fn segmented_store(root: &Path) -> String {
    use hisn_audit_log::{Durability, Event, FileStore, FileStoreOptions, SystemClock, TenantId};
    let store = root.join("store");
    let t = TenantId::parse("acme").unwrap();
    let s = FileStore::open(
        &store,
        FileStoreOptions::default()
            .durability(Durability::OsBuffered)
            .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES),
    )
    .unwrap();
    for i in 0..120 {
        let e = Event::state_transition(
            &t,
            "u-1",
            "work_order",
            &format!("wo-{i}"),
            "open",
            "closed",
        )
        .subject(&format!("emp-{}", i % 3))
        .build(&SystemClock)
        .unwrap();
        s.append(e).unwrap();
    }
    s.close().unwrap();
    store.display().to_string()
}

/// The store's segment files of tenant `acme`, in order (at least three).
pub(crate) fn segments(store: &str) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(tdir(store))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");
    segs
}

/// Swap `victim` for the other kind (file <-> directory) while `f` runs.
fn swapped<T>(victim: &Path, aside: &Path, f: impl FnOnce() -> T) -> T {
    std::fs::rename(victim, aside).unwrap();
    if aside.is_dir() {
        std::fs::write(victim, b"x").unwrap();
    } else {
        std::fs::create_dir(victim).unwrap();
    }
    let out = f();
    if victim.is_dir() {
        std::fs::remove_dir(victim).unwrap();
    } else {
        std::fs::remove_file(victim).unwrap();
    }
    std::fs::rename(aside, victim).unwrap();
    out
}

#[test]
fn report_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    checkpoint_to(&store, &key, &dir.path().join("held.notes"));
    let report = |extra: &[&str]| {
        let mut a = vec!["audit", "report", "--store", &store, "--subject", "emp-4"];
        a.extend_from_slice(extra);
        code(&a)
    };
    // 0: with and without keys.
    let (c, out, err) = report(&["--tenant", "acme"]);
    assert_eq!(c, Some(0), "{err}");
    assert!(out.contains("\"count\": 2"), "{out}");
    let (c, out, err) = report(&["--tenant", "acme", "--pubkey", &public]);
    assert_eq!(c, Some(0), "{err}");
    assert!(out.contains("\"proven\": 2"), "{out}");
    // Each entry carries its RFC 6962 inclusion proof against the rooted
    // checkpoint `hisn audit checkpoint` signed.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for e in v["entries"].as_array().unwrap() {
        assert_eq!(e["proof"]["method"], "rfc6962", "{out}");
        assert_eq!(e["proof"]["leaf_index"], e["seq"], "{out}");
        assert!(e["proof"]["path"].as_array().is_some_and(|p| !p.is_empty()));
    }
    // 2: the operator's input.
    assert_eq!(report(&["--tenant", "no/such"]).0, Some(2));
    let missing = dir.path().join("missing").display().to_string();
    assert_eq!(
        code(&[
            "audit",
            "report",
            "--store",
            &missing,
            "--tenant",
            "acme",
            "--subject",
            "x"
        ])
        .0,
        Some(2)
    );
    let nokey = dir.path().join("nokey.pub").display().to_string();
    assert_eq!(report(&["--tenant", "acme", "--pubkey", &nokey]).0, Some(2));
    std::fs::write(&nokey, "not a key").unwrap();
    assert_eq!(report(&["--tenant", "acme", "--pubkey", &nokey]).0, Some(2));
    // 1: the store made unreadable (each part swapped for the other kind).
    let aside = dir.path().join("aside");
    let td = tdir(&store);
    let seg = td.join(format!("{:020}.seg", 0));
    for victim in [td.clone(), seg.clone(), td.join("checkpoints.jsonl")] {
        let (c, _, err) = swapped(&victim, &aside, || {
            report(&["--tenant", "acme", "--pubkey", &public])
        });
        assert_eq!(c, Some(1), "{}: {err}", victim.display());
    }
    assert_eq!(
        report(&["--tenant", "acme", "--pubkey", &public]).0,
        Some(0)
    );
    // 1: a record changed under the checkpoint: the JSON is printed, with
    // the entry unproven and the break listed, and the exit is 1.
    let mut bytes = std::fs::read(&seg).unwrap();
    let pos = bytes.windows(4).position(|w| w == b"wo-9").unwrap();
    bytes[pos + 3] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let (c, out, err) = report(&["--tenant", "acme", "--pubkey", &public]);
    assert_eq!(c, Some(1), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["undecodable"].as_u64().unwrap() + v["broken"].as_array().unwrap().len() as u64 > 0,
        "{out}"
    );
    assert!(err.contains("verification failed"), "{err}");
}

#[test]
fn prove_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    let held = held.display().to_string();
    let prove = |store: &str, extra: &[&str]| {
        let mut a = vec!["audit", "prove", "--store", store, "--tenant", "acme"];
        a.extend_from_slice(extra);
        code(&a)
    };
    // 0.
    let (c, _, err) = prove(&store, &["--inclusion", "1", "--pubkey", &public]);
    assert_eq!(c, Some(0), "{err}");
    // 2: flags and records nobody claims.
    assert_eq!(
        prove(&store, &["--inclusion", "1", "--size", "9"]).0,
        Some(2)
    );
    assert_eq!(
        code(&[
            "audit",
            "prove",
            "--store",
            &store,
            "--tenant",
            "a b",
            "--inclusion",
            "0"
        ])
        .0,
        Some(2)
    );
    let missing = dir.path().join("missing").display().to_string();
    assert_eq!(prove(&missing, &["--inclusion", "0"]).0, Some(2));
    // 1: a verified checkpoint held elsewhere covers records, and the store
    // is gone.
    let (c, _, err) = prove(
        &missing,
        &[
            "--inclusion",
            "0",
            "--pubkey",
            &public,
            "--checkpoint",
            &held,
        ],
    );
    assert_eq!(c, Some(1), "{err}");
    // 1: the store made unreadable.
    let aside = dir.path().join("aside");
    let td = tdir(&store);
    for victim in [
        td.join(format!("{:020}.seg", 0)),
        td.join("checkpoints.jsonl"),
    ] {
        let (c, _, err) = swapped(&victim, &aside, || {
            prove(
                &store,
                &[
                    "--inclusion",
                    "1",
                    "--pubkey",
                    &public,
                    "--checkpoint",
                    &held,
                ],
            )
        });
        assert_eq!(c, Some(1), "{}: {err}", victim.display());
    }
    assert_eq!(
        prove(&store, &["--inclusion", "1", "--pubkey", &public]).0,
        Some(0)
    );
}

/// Class: a subject index rewritten with consistent checksums hides records
/// from `hisn audit report`, and `hisn audit verify` said "intact": the
/// chain (and the Merkle tree) does not commit to who a record is about.
/// Verify now compares every persisted index with its segment's records and
/// fails (exit 1) naming the segment, in text and in JSON.
#[test]
fn verify_names_a_subject_index_forged_to_omit_records() {
    use hisn_audit_log::store::file::forge_index_omitting;
    use hisn_audit_log::{FileStore, FileStoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = segmented_store(dir.path());
    let (ok, out, err) = code(&[
        "--json",
        "audit",
        "verify",
        "--store",
        &store,
        "--allow-unanchored",
    ]);
    assert_eq!(ok, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tenants"][0]["index_mismatches"], serde_json::json!([]));

    let segs = segments(&store);
    forge_index_omitting(&segs[0], "emp-1").unwrap();
    let name = segs[0].file_name().unwrap().to_str().unwrap().to_owned();
    let (code_, out, err) = code(&[
        "--json",
        "audit",
        "verify",
        "--store",
        &store,
        "--allow-unanchored",
    ]);
    assert_eq!(code_, Some(1), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    // The chain itself verifies (no checkpoint was signed: an unanchored
    // tail, which passes without --pubkey only with --allow-unanchored).
    assert_eq!(v["tenants"][0]["verdict"], "unanchored_tail");
    assert_eq!(
        v["tenants"][0]["index_mismatches"][0]["segment"],
        name.as_str()
    );
    assert_eq!(v["tenants"][0]["index_mismatches"][0]["keys"], 1);
    assert!(
        err.contains(&format!("subject index of segment {name}")),
        "{err}"
    );
    // Removing the forged index (as the message says) and reopening rebuilds it.
    std::fs::remove_file(format!("{}.sidx", segs[0].display())).unwrap();
    FileStore::open(&store, FileStoreOptions::default())
        .unwrap()
        .close()
        .unwrap();
    let (ok, _, err) = code(&["audit", "verify", "--store", &store, "--allow-unanchored"]);
    assert_eq!(ok, Some(0), "{err}");
}
