//! Class: a store-controlled path made the file store write outside the
//! store. Whoever can write the store directory can plant symbolic links
//! where the store writes (tiles, temporary files of a segment roll or an
//! index rewrite, the checkpoint log); the writer followed them and
//! truncated or overwrote the target: the verifier's `--state` file, or any
//! file the application can write. Root cause: files in the store were
//! opened by name with `create`/`write`, following links. Now temporary
//! files are created exclusively (a planted entry is removed first, and
//! `create_new` never follows a link), tiles are derived data (a planted
//! link is replaced by a regular file) and the checkpoint log is refused
//! unless it is a regular file.

use hisn_audit_log::{AuditRead, Durability, FileStore, FileStoreOptions, SigningKey};

use crate::common::{event, now, tdir, tenant};

const CANARY: &[u8] = b"{\"version\":1,\"tenants\":{}}\n";

fn opts() -> FileStoreOptions {
    FileStoreOptions::default()
        .durability(Durability::OsBuffered)
        .max_segment_bytes(FileStoreOptions::MIN_SEGMENT_BYTES)
}

#[test]
fn links_planted_in_the_store_are_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let canary = dir.path().join("state.json");
    std::fs::write(&canary, CANARY).unwrap();
    let t = tenant("acme");
    let s = FileStore::open(&store, opts()).unwrap();
    for i in 0..5 {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    let td = tdir(&store, &t);
    // Every tile level, and the temporary file of every segment roll and
    // index rewrite the next appends can make.
    let tiles = td.join("tiles");
    for l in 0..4 {
        let p = tiles.join(l.to_string());
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(&canary, &p).unwrap();
    }
    let s = FileStore::open(&store, opts()).unwrap();
    for n in 0..400u64 {
        for suffix in ["seg.tmp", "seg.sidx.tmp"] {
            std::os::unix::fs::symlink(&canary, td.join(format!("{n:020}.{suffix}"))).unwrap();
        }
    }
    for i in 5..300 {
        s.append(event(&t, i)).unwrap();
    }
    s.close().unwrap();
    assert!(
        std::fs::read(&canary).unwrap() == CANARY,
        "written through a link"
    );
    assert!(
        std::fs::symlink_metadata(tiles.join("0"))
            .unwrap()
            .file_type()
            .is_file(),
        "the tile is rebuilt as a regular file"
    );
    // The store still reads and verifies: tiles are derived data.
    let s = FileStore::open(&store, opts()).unwrap();
    assert_eq!(s.bounds(&t).unwrap().size, 300);

    // The checkpoint log: a link is refused, nothing appended through it.
    let key = SigningKey::from_bytes("k", &[7; 32]).unwrap();
    let log = td.join("checkpoints.jsonl");
    let _ = std::fs::remove_file(&log);
    std::os::unix::fs::symlink(&canary, &log).unwrap();
    assert!(s.checkpoint_now(Some(&t), &key, now()).is_err());
    s.close().unwrap();
    assert!(
        std::fs::read(&canary).unwrap() == CANARY,
        "written through a link"
    );
    // The planted log fails only checkpointing: the store still opens for
    // writing and appends.
    let s = FileStore::open(&store, opts()).unwrap();
    s.append(event(&t, 300)).unwrap();
    s.close().unwrap();
    assert!(std::fs::read(&canary).unwrap() == CANARY);

    // A segment, or the whole tenant directory, replaced by a link to a copy
    // elsewhere: the writer refuses to append to that tenant and leaves the
    // target alone; other tenants carry on.
    let other = tenant("other");
    let s = FileStore::open(&store, opts()).unwrap();
    s.append(event(&other, 0)).unwrap();
    s.close().unwrap();
    let aside = dir.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    let mut segs: Vec<_> = std::fs::read_dir(&td)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let newest = segs.last().unwrap().clone();
    let copy = aside.join("newest.seg");
    std::fs::rename(&newest, &copy).unwrap();
    std::os::unix::fs::symlink(&copy, &newest).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let s = FileStore::open(&store, opts()).unwrap();
    assert!(
        s.append(event(&t, 301)).is_err(),
        "appended through a segment link"
    );
    s.append(event(&other, 1)).unwrap();
    s.close().unwrap();
    assert!(
        std::fs::read(&copy).unwrap() == before,
        "segment target written"
    );
    std::fs::remove_file(&newest).unwrap();
    std::fs::rename(&copy, &newest).unwrap();

    let moved = dir.path().join("moved-tenant");
    std::fs::rename(&td, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &td).unwrap();
    let len = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    let before = len(&newest.file_name().map(|n| moved.join(n)).unwrap());
    let s = FileStore::open(&store, opts()).unwrap();
    assert!(
        s.append(event(&t, 301)).is_err(),
        "appended through a tenant link"
    );
    s.append(event(&other, 2)).unwrap();
    s.close().unwrap();
    assert_eq!(
        len(&newest.file_name().map(|n| moved.join(n)).unwrap()),
        before
    );
}

/// The checkpoint log's repair (a torn last line is cut, at every writable
/// open and before every checkpoint) must never run through a link either:
/// a link to a file whose last line is unterminated would have the repair
/// truncate that file. The test above plants a link to a file that ends in a
/// newline, which the repair leaves alone, so it could not tell (the
/// in-diff mutants `refuse_links -> Ok(())` and its link guard forced false
/// survived it; issue 19).
#[test]
fn a_linked_checkpoint_log_is_never_repaired_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let canary = dir.path().join("notes.txt");
    let unterminated: &[u8] = b"first line\nno newline at the end";
    std::fs::write(&canary, unterminated).unwrap();
    let t = tenant("acme");
    let s = FileStore::open(&store, opts()).unwrap();
    s.append(event(&t, 0)).unwrap();
    s.close().unwrap();
    let log = tdir(&store, &t).join("checkpoints.jsonl");
    let _ = std::fs::remove_file(&log);
    std::os::unix::fs::symlink(&canary, &log).unwrap();

    let s = FileStore::open(&store, opts()).unwrap();
    assert_eq!(
        std::fs::read(&canary).unwrap(),
        unterminated,
        "repaired at open"
    );
    let key = SigningKey::from_bytes("k", &[7; 32]).unwrap();
    assert!(s.checkpoint_now(Some(&t), &key, now()).is_err());
    s.close().unwrap();
    assert_eq!(
        std::fs::read(&canary).unwrap(),
        unterminated,
        "repaired before a checkpoint"
    );
    assert!(
        std::fs::symlink_metadata(&log)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
