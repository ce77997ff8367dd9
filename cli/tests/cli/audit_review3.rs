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

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::{EVENTS, checkpoint_to, hisn, setup};
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
        let (code, err) = run(&[
            "audit",
            "verify",
            "--store",
            &store,
            "--pubkey",
            &public,
            "--checkpoint",
            &held,
            "--state",
            state.to_str().unwrap(),
        ]);
        assert!(code.is_some(), "verify hung on a FIFO at {planted}");
        // Bookkeeping and derived files are rebuilt or ignored; anything the
        // chain or its checkpoints are read from fails verification.
        let derived =
            planted.ends_with(".sidx") || planted == "tiles/0" || planted == "synced.mark";
        assert_eq!(code, Some(if derived { 0 } else { 1 }), "{planted}: {err}");
        let (code, err) = run(&[
            "audit",
            "report",
            "--store",
            &store,
            "--tenant",
            "acme",
            "--subject",
            "emp-1",
            "--pubkey",
            &public,
        ]);
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
    let (code, _) = run(&[
        "audit",
        "verify",
        "--store",
        &store,
        "--pubkey",
        &public,
        "--checkpoint",
        held.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
}
