//! `hisn audit verify --witness-key FILE --witness-threshold N`: checkpoints
//! count only with N of M witness cosignatures (C2SP tlog-cosignature).

use std::path::Path;

use hisn_audit_log::{CosigningKey, parse_checkpoint_text};

use crate::audit::{checkpoint_to, hisn, setup};

fn verify(store: &str, public: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut a = vec!["audit", "verify", "--store", store, "--pubkey", public];
    a.extend_from_slice(extra);
    let o = hisn().args(&a).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

/// Witness `i`'s cosigning key and its public key file.
fn witness(dir: &Path, name: &str, seed: u8) -> (CosigningKey, String) {
    let k = CosigningKey::from_bytes(name, &[seed; 32]).unwrap();
    let path = dir.join(format!("{name}.wpub"));
    std::fs::write(&path, k.witness_key().to_text()).unwrap();
    (k, path.display().to_string())
}

/// Class: the witness policy existed in the library but not in the operator
/// tool, so `hisn audit verify` accepted a checkpoint the log operator alone
/// signed (a split view shown to this verifier only). With witness keys, a
/// held checkpoint without N valid cosignatures fails (exit 1), store notes
/// without them are skipped (so the chain is unanchored, exit 1), one key
/// under two names counts once, and bad flags are usage errors (exit 2).
#[test]
fn verify_requires_n_of_m_witness_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    let (w1, p1) = witness(dir.path(), "witness-1", 41);
    let (_w2, p2) = witness(dir.path(), "witness-2", 42);
    let (w3, p3) = witness(dir.path(), "witness-3", 43);
    // The same key as witness-1 under another name.
    let (_alias, p1b) = witness(dir.path(), "witness-1b", 41);
    let mut cps = parse_checkpoint_text(&std::fs::read_to_string(&held).unwrap()).unwrap();
    assert_eq!(cps.len(), 1);
    let mut cp = cps.remove(0);
    w1.cosign(&mut cp, 1_764_000_000);
    let one = dir.path().join("one.note");
    std::fs::write(&one, cp.to_note()).unwrap();
    w3.cosign(&mut cp, 1_764_000_001);
    let two = dir.path().join("two.note");
    std::fs::write(&two, cp.to_note()).unwrap();
    let (one, two, held) = (
        one.display().to_string(),
        two.display().to_string(),
        held.display().to_string(),
    );
    let ws = |n: &str| {
        vec![
            "--witness-key".to_owned(),
            p1.clone(),
            "--witness-key".to_owned(),
            p2.clone(),
            "--witness-key".to_owned(),
            p3.clone(),
            "--witness-threshold".to_owned(),
            n.to_owned(),
        ]
    };
    let run = |note: &str, n: &str| {
        let mut a = vec!["--checkpoint".to_owned(), note.to_owned()];
        a.extend(ws(n));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        verify(&store, &public, &a)
    };
    // Without witnesses: the log's signature is enough.
    assert_eq!(verify(&store, &public, &["--checkpoint", &held]).0, Some(0));
    // 2 of 3 met by the note cosigned by witnesses 1 and 3.
    let (c, out) = run(&two, "2");
    assert_eq!(c, Some(0), "{out}");
    // Not met: 3 of 3, or 2 of 3 with one cosignature, or none.
    for (note, n) in [(&two, "3"), (&one, "2"), (&held, "1")] {
        let (c, out) = run(note, n);
        assert_eq!(c, Some(1), "{note} {n}: {out}");
    }
    // The store's own notes carry no cosignatures: skipped, so unanchored.
    let mut a = ws("1");
    a.insert(0, "acme".to_owned());
    a.insert(0, "--tenant".to_owned());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (c, out) = verify(&store, &public, &a);
    assert_eq!(c, Some(1), "{out}");
    assert!(out.contains("unanchored"), "{out}");
    // Usage errors (exit 2).
    let not_key = dir.path().join("not.wpub");
    std::fs::write(&not_key, "nope").unwrap();
    let not_key = not_key.display().to_string();
    for bad in [
        vec!["--witness-key", p1.as_str(), "--witness-threshold", "0"],
        vec!["--witness-key", p1.as_str(), "--witness-threshold", "2"],
        // One key under two names is one witness: 2 of them cannot be met.
        vec![
            "--witness-key",
            p1.as_str(),
            "--witness-key",
            p1b.as_str(),
            "--witness-threshold",
            "2",
        ],
        vec!["--witness-key", not_key.as_str()],
        vec!["--witness-threshold", "1"],
    ] {
        let mut a = vec!["--checkpoint", two.as_str()];
        a.extend_from_slice(&bad);
        assert_eq!(verify(&store, &public, &a).0, Some(2), "{bad:?}");
    }
    let o = hisn()
        .args(["audit", "verify", "--store", &store, "--witness-key", &p1])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--witness-key without --pubkey");
}
