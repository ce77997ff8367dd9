//! Third outside review of `hisn audit`: files planted in the store that are
//! not the regular, bounded files its writer makes.
//!
//! Class: **the audit commands hung or exhausted memory on special files in
//! the store**. `verify`, `report` and `checkpoint` opened every store file
//! by name and read it whole, so a FIFO planted as a segment, index, tile or
//! `checkpoints.jsonl` blocked the command for ever (a cron job verifying the
//! store never reports), and a link to `/dev/zero` or a sparse file of a
//! terabyte was read into memory. Root cause in `hisn-audit-log`: store files
//! were trusted to be regular and bounded. Now each is opened without
//! blocking, must be a regular file, and is read up to a bound the writer
//! never exceeds; the commands exit 1 (verification failed) for the tenant
//! whose files were planted, never hang, and `append` keeps serving the
//! other tenants.
//!
//! Also: tampering with the last records made to look like a torn tail
//! (clean-close mark deleted) was cut by the next `hisn audit append`
//! although the tenant's checkpoint log covered those records; now the
//! append is refused and `repair` names the damage.
//!
//! Also: `hisn audit checkpoint` signed whatever chain the store held, so a
//! chain rewritten without the key (its `checkpoints.jsonl` deleted) got a
//! genuine signature; it now verifies against held anchors first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::{EVENTS, checkpoint_to, hisn, report_args, setup, verify_held};
use crate::audit_exit::{segmented_store, segments, tdir};

const LIMIT: Duration = Duration::from_secs(30);

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    let _ = std::fs::remove_dir_all(p);
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// Exit code of `hisn args...`, killed after `LIMIT` (then `None`).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let o = hisn().args(args).timeout(LIMIT).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn copy(from: &str, to: &Path) -> String {
    crate::audit::copy_dir(Path::new(from), to);
    to.display().to_string()
}

#[test]
fn audit_commands_never_hang_on_fifos_planted_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = segmented_store(dir.path());
    let prefix = dir.path().join("ck").display().to_string();
    hisn()
        .args(["audit", "keygen", "--out", &prefix])
        .assert()
        .code(0);
    let (key, public) = (format!("{prefix}.key"), format!("{prefix}.pub"));
    let held = dir.path().join("held.notes");
    checkpoint_to(&pristine, &key, &held);
    let held = held.display().to_string();
    let segs = segments(&pristine);
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let (first, last) = (name(&segs[0]), name(segs.last().unwrap()));
    for (n, planted) in [
        "99999999999999999999.seg".to_owned(),
        last,
        format!("{first}.sidx"),
        "checkpoints.jsonl".to_owned(),
        "tiles/0".to_owned(),
        "synced.mark".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let store = copy(&pristine, &dir.path().join(format!("s{n}")));
        mkfifo(&tdir(&store).join(planted));
        let state = dir.path().join(format!("state{n}.json"));
        let mut verify = verify_held(&store, &public, &held);
        verify.extend(["--state", state.to_str().unwrap()]);
        let (code, err) = run(&verify);
        assert!(code.is_some(), "verify hung on a FIFO at {planted}");
        // Bookkeeping and derived files are rebuilt or ignored; anything the
        // chain or its checkpoints are read from fails verification.
        let derived =
            planted.ends_with(".sidx") || planted == "tiles/0" || planted == "synced.mark";
        assert_eq!(code, Some(if derived { 0 } else { 1 }), "{planted}: {err}");
        let mut report = report_args(&store, "emp-1");
        report.extend(["--pubkey", &public]);
        let (code, err) = run(&report);
        assert!(code.is_some(), "report hung on a FIFO at {planted}");
        assert!(matches!(code, Some(0 | 1)), "{planted}: {err}");
        let (code, err) = run(&[
            "audit",
            "checkpoint",
            "--store",
            &store,
            "--signing-key",
            &key,
        ]);
        assert!(code.is_some(), "checkpoint hung on a FIFO at {planted}");
        assert!(matches!(code, Some(0 | 1)), "{planted}: {err}");
    }
}

#[test]
fn audit_verify_refuses_a_device_or_sparse_terabyte_as_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = segmented_store(dir.path());
    for (n, target) in ["sparse", "/dev/zero"].into_iter().enumerate() {
        let store = copy(&pristine, &dir.path().join(format!("s{n}")));
        let planted = tdir(&store).join("99999999999999999999.seg");
        if target == "sparse" {
            std::fs::File::create(&planted)
                .unwrap()
                .set_len(1 << 40)
                .unwrap();
        } else {
            std::os::unix::fs::symlink(target, &planted).unwrap();
        }
        let (code, err) = run(&["audit", "verify", "--store", &store, "--allow-unanchored"]);
        assert_eq!(code, Some(1), "{target}: {err}");
    }
}

#[test]
fn audit_append_refuses_to_cut_logged_records_made_to_look_torn() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, public) = setup(dir.path());
    let held = dir.path().join("held.notes");
    checkpoint_to(&store, &key, &held);
    let seg = tdir(&store).join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a byte of the last record, delete the clean-close mark.
    let n = bytes.len();
    bytes[n - 40] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::remove_file(tdir(&store).join("synced.mark")).unwrap();
    let o = hisn()
        .args(["audit", "append", "--store", &store, "--tenant", "acme"])
        .write_stdin(EVENTS)
        .timeout(LIMIT)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "appended over signed records");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "evidence cut");
    let (code, err) = run(&["audit", "repair", "--store", &store]);
    assert_eq!(code, Some(1), "repair must name the damage: {err}");
    let (code, _) = run(&verify_held(&store, &public, held.to_str().unwrap()));
    assert_eq!(code, Some(1));
}

/// `hisn --json audit checkpoint` with `extra` arguments: (exit code, JSON, stderr).
fn checkpoint_json(
    store: &str,
    key: &str,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec![
        "--json",
        "audit",
        "checkpoint",
        "--store",
        store,
        "--signing-key",
        key,
    ];
    args.extend_from_slice(extra);
    let o = hisn().args(&args).timeout(LIMIT).output().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Checkpoint notes kept in the store for `tenant`.
fn kept_notes(store: &str, tenant: &str) -> usize {
    let log = Path::new(store)
        .join(format!("t-{}", hex::encode(tenant)))
        .join("checkpoints.jsonl");
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

fn append(store: &str, tenant: &str, events: &str) {
    hisn()
        .args(["audit", "append", "--store", store, "--tenant", tenant])
        .write_stdin(events.to_owned())
        .timeout(LIMIT)
        .assert()
        .code(0);
}

/// Acme's chain rewritten by someone without the key: the tenant's directory
/// (records and `checkpoints.jsonl`) replaced by a fresh chain of `events`.
fn rewrite_acme(store: &str, events: &str) {
    std::fs::remove_dir_all(tdir(store)).unwrap();
    append(store, "acme", events);
}

/// Class: **`hisn audit checkpoint` signed whatever chain the store held**.
/// Whoever can write the store rewrote a tenant's chain and deleted its
/// `checkpoints.jsonl`; the operator's next checkpoint signed the rewrite
/// (a later `verify --state` said fork/tampered, but a fresh genuine
/// signature over the forgery existed). Now `checkpoint` takes the anchors
/// `verify` takes (--checkpoint, --state, --pubkey, read by the same code)
/// and verifies each tenant against them first: a tenant that contradicts
/// one is not signed (exit 1 naming it and the verdict), the others are.
#[test]
fn audit_checkpoint_refuses_to_sign_a_chain_that_contradicts_held_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let (pristine, key, _) = setup(dir.path());
    append(&pristine, "beta", EVENTS);
    let held = dir.path().join("held.notes");
    checkpoint_to(&pristine, &key, &held);
    let h = held.to_str().unwrap();
    let state = dir.path().join("state.json");
    let st = state.to_str().unwrap();
    let (code, v, err) = checkpoint_json(&pristine, &key, &["--state", st]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 2);
    let saved = std::fs::read_to_string(&state).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["tenants"]["acme"]["size"], 3, "{saved}");
    // Same size, other contents (tampered at 0); fewer records (truncated at 2).
    for (n, (events, verdict, seq)) in [
        (EVENTS.replace("u-2", "u-3"), "tampered", 0),
        (
            EVENTS.lines().take(2).collect::<Vec<_>>().join("\n"),
            "truncated",
            2,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        for anchor in [["--checkpoint", h], ["--state", st]] {
            let store = copy(&pristine, &dir.path().join(format!("s{n}{}", anchor[0])));
            rewrite_acme(&store, &events);
            let before = kept_notes(&store, "acme");
            let before_state = std::fs::read(&state).unwrap();
            let (code, v, err) = checkpoint_json(&store, &key, &anchor);
            let what = format!("{verdict} via {}: {err}", anchor[0]);
            assert_eq!(code, Some(1), "{what}");
            assert!(
                err.contains(&format!("acme: {verdict} at record {seq}")),
                "{what}"
            );
            assert_eq!(
                v["refused"],
                serde_json::json!([{ "tenant": "acme", "verdict": verdict, "seq": seq }]),
                "{what}"
            );
            // The other tenant is still signed; acme gets no new checkpoint.
            let signed = v["checkpoints"].as_array().unwrap();
            assert_eq!(signed.len(), 1, "{what}");
            assert_eq!(signed[0]["origin"], "hisn-audit-log/beta", "{what}");
            assert_eq!(kept_notes(&store, "acme"), before, "{what}");
            assert_eq!(std::fs::read(&state).unwrap(), before_state, "{what}");
            // Asked for by name: refused as well.
            let mut by_name = anchor.to_vec();
            by_name.extend(["--tenant", "acme"]);
            let (code, v, err) = checkpoint_json(&store, &key, &by_name);
            assert_eq!(
                (code, v["checkpoints"].as_array().map(Vec::len)),
                (Some(1), Some(0)),
                "{err}"
            );
            assert_eq!(kept_notes(&store, "acme"), before, "{what}");
            // Without anchors the rewrite is indistinguishable: signed (the
            // residual the options close).
            assert_eq!(checkpoint_json(&store, &key, &[]).0, Some(0));
        }
    }
    // Positive control: the chain only grew, store checkpoints deleted.
    let store = copy(&pristine, &dir.path().join("grown"));
    append(&store, "acme", EVENTS);
    std::fs::remove_file(tdir(&store).join("checkpoints.jsonl")).unwrap();
    let (code, v, err) = checkpoint_json(&store, &key, &["--checkpoint", h, "--state", st]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["refused"], serde_json::json!([]));
    let sizes: Vec<_> = v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size"].clone())
        .collect();
    assert_eq!(sizes, [serde_json::json!(6), serde_json::json!(3)]);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["tenants"]["acme"]["size"], 6, "{saved}");
    // The state now holds 6: the pristine store (3 records) is a rollback.
    let (code, v, err) = checkpoint_json(&pristine, &key, &["--state", st, "--tenant", "acme"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(v["refused"][0]["verdict"], "truncated");
}
