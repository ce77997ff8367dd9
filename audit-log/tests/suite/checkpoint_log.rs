//! Publishing and reading checkpoints: the sinks, the JSON-lines checkpoint
//! log (appended in order, one line per checkpoint, read leniently with a
//! warning for what is skipped) and the strict reader of the checkpoints an
//! operator holds.

use std::sync::Arc;

use hisn_audit_log::{
    Checkpoint, CheckpointSink, CosigningKey, Error, FileSink, Link, MemorySink, SignedCheckpoint,
    StdoutSink, Timestamp, parse_checkpoint_log, parse_checkpoint_text, parse_notes,
    read_checkpoint_log,
};
use hisn_test_support::capture_events;

use crate::common::*;

fn signed(size: u64) -> SignedCheckpoint {
    key("audit", 1).sign(Checkpoint::new(
        &tenant("acme"),
        size,
        Link([size as u8; 32]),
        Timestamp::from_unix_micros(1_000 + size as i64),
    ))
}

fn json_line(cp: &SignedCheckpoint) -> String {
    serde_json::json!({ "note": cp.to_note() }).to_string()
}

/// `f`'s result and the `skipped` count of each warning it logged (`None`
/// for a warning without one).
fn warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<Option<String>>) {
    let (out, events) = capture_events(f);
    let warned = events
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .map(|e| e.field("skipped").map(str::to_owned))
        .collect();
    (out, warned)
}

fn publish_all<S: CheckpointSink>(sink: &S, cps: &[SignedCheckpoint]) {
    for cp in cps {
        sink.publish(cp).unwrap();
    }
}

/// A file sink appends one `{"note": ...}` line per checkpoint, in publish
/// order, after what the file held; the log reader returns them in that order.
/// A sink shared behind an `Arc` is the same sink.
#[test]
fn a_file_sink_appends_one_line_per_checkpoint_in_publish_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.jsonl");
    let cps: Vec<_> = (1..=3).map(signed).collect();
    FileSink::new(&path).publish(&cps[0]).unwrap();
    publish_all(&Arc::new(FileSink::new(&path)), &cps[1..]);
    let text = std::fs::read_to_string(&path).unwrap();
    let want: String = cps.iter().map(|c| format!("{}\n", json_line(c))).collect();
    assert_eq!(text, want);
    assert_eq!(read_checkpoint_log(&path).unwrap(), cps);
    assert_eq!(parse_checkpoint_text(&text).unwrap(), cps);

    let mem = Arc::new(MemorySink::new());
    publish_all(&mem.clone(), &cps);
    let dyn_sink: Arc<dyn CheckpointSink> = mem.clone();
    dyn_sink.publish(&cps[0]).unwrap();
    assert_eq!(mem.published(), [&cps[..], &cps[..1]].concat());
}

/// A power loss during an append leaves a torn last line without its
/// newline. The next checkpoint is still written whole on a line of its own,
/// so it is read; the torn part is skipped as one malformed line.
#[test]
fn a_torn_last_line_does_not_swallow_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.jsonl");
    let sink = FileSink::new(&path);
    sink.publish(&signed(1)).unwrap();
    let torn = &json_line(&signed(2))[..40];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(torn.as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    sink.publish(&signed(3)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!(
            "{}\n{torn}\n{}\n",
            json_line(&signed(1)),
            json_line(&signed(3))
        )
    );
    assert_eq!(parse_checkpoint_log(&text), (vec![signed(1), signed(3)], 1));
    assert_eq!(read_checkpoint_log(&path).unwrap(), [signed(1), signed(3)]);
}

/// A missing log is an empty one; a log that cannot be read is an I/O error,
/// never mistaken for an empty log.
#[test]
fn a_missing_log_is_empty_and_an_unreadable_one_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        read_checkpoint_log(&dir.path().join("none.jsonl")).unwrap(),
        []
    );
    // (A directory is not a regular file: `Corrupt` since the third review.)
    assert!(matches!(
        read_checkpoint_log(dir.path()),
        Err(Error::Io(_) | Error::Corrupt { .. })
    ));
    let sink = FileSink::new(dir.path());
    assert!(matches!(sink.publish(&signed(1)), Err(Error::Sink(_))));
}

/// The lenient reader keeps every checkpoint around malformed lines (torn
/// writes, foreign JSON, bad notes), counts what it skipped, ignores blank
/// lines, and warns once when it skipped any, never otherwise.
#[test]
fn the_lenient_log_reader_skips_and_counts_malformed_lines_with_one_warning() {
    let (a, b) = (signed(1), signed(2));
    let junk = [
        json_line(&a)[..30].to_owned(),
        r#"{"other": 1}"#.to_owned(),
        r#"{"note": "not a checkpoint"}"#.to_owned(),
        r#"{"note": 7}"#.to_owned(),
    ];
    let text = format!(
        "\n{}\n{}\n  \n{}\n{}\n{}\n{}\n\n",
        json_line(&a),
        junk[0],
        junk[1],
        junk[2],
        junk[3],
        json_line(&b)
    );
    assert_eq!(parse_checkpoint_log(&text), (vec![a.clone(), b.clone()], 4));
    assert_eq!(parse_checkpoint_log("\n \n"), (vec![], 0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.jsonl");
    std::fs::write(&path, &text).unwrap();
    let (read, warned) = warnings(|| read_checkpoint_log(&path).unwrap());
    assert_eq!(read, [a.clone(), b.clone()]);
    assert_eq!(warned, [Some("4".to_owned())]);
    std::fs::write(&path, format!("{}\n", json_line(&a))).unwrap();
    let (read, warned) = warnings(|| read_checkpoint_log(&path).unwrap());
    assert_eq!((read, warned), (vec![a], vec![]));
}

/// Notes kept one per row are read the same way: the good ones in order,
/// one warning when any was skipped, none otherwise.
#[test]
fn stored_notes_are_read_leniently_with_one_warning_for_skipped_ones() {
    let (a, b) = (signed(1), signed(2));
    let (na, nb) = (a.to_note(), b.to_note());
    let (read, warned) = warnings(|| parse_notes([na.as_str(), "junk", "", nb.as_str()]));
    assert_eq!(read, [a.clone(), b.clone()]);
    assert_eq!(warned, [Some("2".to_owned())]);
    let (read, warned) = warnings(|| parse_notes([na.as_str(), nb.as_str()]));
    assert_eq!((read, warned), (vec![a, b], vec![]));
}

/// The strict reader of an operator's checkpoints takes a JSON-lines log or
/// notes separated by blank lines (witness cosignatures included, the last
/// newline optional), in order; anything malformed is an error.
#[test]
fn checkpoint_text_is_json_lines_or_blank_separated_notes_read_strictly() {
    let (a, mut b) = (signed(1), signed(2));
    CosigningKey::from_bytes("w", &[9; 32])
        .unwrap()
        .cosign(&mut b, 1_700_000_000);
    let json = format!("  \n{}\n\n{}\n", json_line(&a), json_line(&b));
    assert_eq!(
        parse_checkpoint_text(&json).unwrap(),
        [a.clone(), b.clone()]
    );
    let torn = format!("{}\n{}\n", json_line(&a), &json_line(&b)[..30]);
    assert!(matches!(
        parse_checkpoint_text(&torn),
        Err(Error::Malformed { .. })
    ));

    let notes = format!("\n{}\n{}\n\n", a.to_note(), b.to_note());
    assert_eq!(
        parse_checkpoint_text(&notes).unwrap(),
        [a.clone(), b.clone()]
    );
    let unterminated = format!("{}\n{}", a.to_note(), b.to_note().trim_end());
    assert_eq!(
        parse_checkpoint_text(&unterminated).unwrap(),
        [a.clone(), b]
    );
    assert_eq!(parse_checkpoint_text("").unwrap(), []);
    assert_eq!(parse_checkpoint_text("\n\n").unwrap(), []);
    let junk = format!("{}\nnot a note\n", a.to_note());
    assert!(matches!(
        parse_checkpoint_text(&junk),
        Err(Error::Malformed { .. })
    ));
}

const STDOUT_CHILD: &str = "HISN_TEST_CHECKPOINT_STDOUT_CHILD";

/// The stdout sink prints each note followed by a blank line, which the
/// strict reader reads back. (Stdout is the process's own, so the test runs
/// itself as a child and reads its output.)
#[test]
fn the_stdout_sink_prints_each_note_and_a_blank_line() {
    let cps = [signed(1), signed(2)];
    if std::env::var_os(STDOUT_CHILD).is_some() {
        publish_all(&StdoutSink, &cps);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "checkpoint_log::the_stdout_sink_prints_each_note_and_a_blank_line",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STDOUT_CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed = format!("{}\n{}\n", cps[0].to_note(), cps[1].to_note());
    let at = stdout.find(&printed).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        parse_checkpoint_text(&stdout[at..at + printed.len()]).unwrap(),
        cps
    );
}
