//! Publishing and reading checkpoints: sinks, the JSON-lines checkpoint log,
//! and the text an operator holds.

use std::fmt;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use super::SignedCheckpoint;
use crate::error::{Error, Result, malformed};
use crate::merkle::{Frontier, Hash};

/// Publishes checkpoints somewhere the log's writer cannot rewrite them (another
/// machine, a transparency log, a WORM bucket, a ticket). Only a checkpoint held
/// elsewhere protects against someone who can rewrite the store.
pub trait CheckpointSink: Send + Sync + fmt::Debug {
    /// Publish one checkpoint.
    ///
    /// # Errors
    /// [`Error::Sink`] when it could not be published.
    fn publish(&self, checkpoint: &SignedCheckpoint) -> Result<()>;
}

/// Appends checkpoints to a JSON-lines file (`{"note": "..."}` per line) and
/// fsyncs it. Point it at a file on other storage (an NFS mount, a synced
/// directory); a file beside the store protects nothing.
#[derive(Debug, Clone)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    /// A sink appending to `path` (created when missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl CheckpointSink for FileSink {
    fn publish(&self, checkpoint: &SignedCheckpoint) -> Result<()> {
        append_checkpoint_log(&self.path, checkpoint).map_err(Error::Sink)
    }
}

/// Prints each checkpoint note to stdout, followed by a blank line.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutSink;

impl CheckpointSink for StdoutSink {
    fn publish(&self, checkpoint: &SignedCheckpoint) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", checkpoint.to_note()).map_err(Error::Sink)
    }
}

/// Keeps checkpoints in memory; for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    published: parking_lot::Mutex<Vec<SignedCheckpoint>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published so far.
    pub fn published(&self) -> Vec<SignedCheckpoint> {
        self.published.lock().clone()
    }
}

impl CheckpointSink for MemorySink {
    fn publish(&self, checkpoint: &SignedCheckpoint) -> Result<()> {
        self.published.lock().push(checkpoint.clone());
        Ok(())
    }
}

impl<S: CheckpointSink + ?Sized> CheckpointSink for std::sync::Arc<S> {
    fn publish(&self, checkpoint: &SignedCheckpoint) -> Result<()> {
        (**self).publish(checkpoint)
    }
}

/// Append one checkpoint to a JSON-lines checkpoint log and fsync it.
pub(crate) fn append_checkpoint_log(path: &Path, cp: &SignedCheckpoint) -> std::io::Result<()> {
    append_checkpoint_log_with_edge(path, cp, None)
}

/// [`append_checkpoint_log`], keeping beside the note the right edge of the
/// Merkle tree at its size (`"frontier"`: the roots of the perfect subtrees,
/// largest first, as hex), so that a later signer can extend the tree from
/// this checkpoint without the records before it (after a prune, say). The
/// edge is derived data: readers use it only when it hashes to the note's
/// signed root ([`read_checkpoint_edges`]).
pub(crate) fn append_checkpoint_log_with_edge(
    path: &Path,
    cp: &SignedCheckpoint,
    edge: Option<&Frontier>,
) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    append_to(f, cp, edge)
}

/// [`append_checkpoint_log_with_edge`] for a log inside a store, whose
/// directory anyone able to write the store controls: the log must be a
/// regular file in a real directory, never reached through a symbolic link
/// (which could point the signer at the verifier's state file, or any file
/// it can write). Checked before and after opening (the opened file must be
/// the one at the path, so a link swapped in meanwhile is refused too).
pub(crate) fn append_store_checkpoint_log(
    path: &Path,
    cp: &SignedCheckpoint,
    edge: Option<&Frontier>,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    refuse_links(path)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let (opened, now) = (f.metadata()?, std::fs::symlink_metadata(path)?);
    if !now.file_type().is_file() || opened.dev() != now.dev() || opened.ino() != now.ino() {
        return Err(not_regular(path));
    }
    append_to(f, cp, edge)
}

fn not_regular(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "{} is not a regular file in a directory (a link?): not writing through it",
            path.display()
        ),
    )
}

/// Refuse a store file (or its directory) that is anything but a regular
/// file (directory) at its own path: a symbolic link planted in the store
/// must never be written through.
pub(crate) fn refuse_links(path: &Path) -> std::io::Result<()> {
    let not_regular = || not_regular(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !std::fs::symlink_metadata(dir)?.file_type().is_dir()
    {
        return Err(not_regular());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return Err(not_regular()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

fn append_to(
    mut f: std::fs::File,
    cp: &SignedCheckpoint,
    edge: Option<&Frontier>,
) -> std::io::Result<()> {
    let mut line = serde_json::json!({ "note": cp.to_note() });
    if let Some(e) = edge.filter(|e| e.size() == cp.checkpoint.size) {
        let hex: String = e.roots().map(hex::encode).collect();
        line["frontier"] = serde_json::Value::String(hex);
    }
    let mut out = String::new();
    // A power loss during an earlier append can leave a torn last line
    // without its newline: start on a line of our own rather than be glued
    // to it, which would make this checkpoint unreadable too. (The torn part
    // stays a malformed line, which readers skip.)
    if !ends_with_newline(&mut f)? {
        out.push('\n');
    }
    out.push_str(&line.to_string());
    out.push('\n');
    f.write_all(out.as_bytes())?;
    f.sync_data()
}

/// Whether `f` is empty or its last byte is a newline.
fn ends_with_newline(f: &mut std::fs::File) -> std::io::Result<bool> {
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    f.seek(std::io::SeekFrom::End(-1))?;
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Read a JSON-lines checkpoint log written by [`FileSink`] or a file store.
/// A missing file is an empty log. A line that is not a checkpoint (a torn
/// write, or a note anyone with write access to the file added) is skipped
/// with a warning: the notes in a store are untrusted input, and one bad line
/// must neither stop verification nor hide what the others show.
///
/// # Errors
/// [`Error::Io`]; [`Error::Corrupt`] when the path is not a regular file (a
/// FIFO or device) or is longer than
/// [`MAX_CHECKPOINT_LOG_LEN`](crate::limits::MAX_CHECKPOINT_LOG_LEN).
pub fn read_checkpoint_log(path: &Path) -> Result<Vec<SignedCheckpoint>> {
    let Some(text) = read_log_bytes(path)? else {
        return Ok(Vec::new());
    };
    let (cps, skipped) = parse_checkpoint_log(&String::from_utf8_lossy(&text));
    if skipped > 0 {
        tracing::warn!(skipped, "audit checkpoint log: malformed lines skipped");
    }
    Ok(cps)
}

/// The bytes of a checkpoint log (`None` when missing). It may sit in a
/// store anyone able to write the store controls: never a FIFO (which would
/// block), a device or a file longer than
/// [`MAX_CHECKPOINT_LOG_LEN`](crate::limits::MAX_CHECKPOINT_LOG_LEN).
fn read_log_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    crate::fsread::read_if_exists(path, crate::limits::MAX_CHECKPOINT_LOG_LEN as u64)
}

/// Parse a JSON-lines checkpoint log leniently: the checkpoints, and how many
/// non-blank lines were skipped as malformed.
pub fn parse_checkpoint_log(text: &str) -> (Vec<SignedCheckpoint>, u64) {
    let (mut out, mut skipped) = (Vec::new(), 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_log_line(line) {
            Ok(cp) => out.push(cp),
            Err(_) => skipped += 1,
        }
    }
    (out, skipped)
}

/// Parse stored note texts leniently (for stores that keep one note per row):
/// malformed notes are skipped with a warning.
pub fn parse_notes<'a>(notes: impl IntoIterator<Item = &'a str>) -> Vec<SignedCheckpoint> {
    let mut skipped = 0u64;
    let out = notes
        .into_iter()
        .filter_map(|n| {
            let cp = SignedCheckpoint::parse(n).ok();
            skipped += u64::from(cp.is_none());
            cp
        })
        .collect();
    if skipped > 0 {
        tracing::warn!(skipped, "audit checkpoint notes: malformed notes skipped");
    }
    out
}

/// The store's own checkpoint log, each checkpoint with the Merkle edge kept
/// beside it ([`append_checkpoint_log_with_edge`]) when that edge is well
/// formed and hashes to the note's root; `None` otherwise. Lenient like
/// [`read_checkpoint_log`]. The notes are not verified here: an edge is
/// trusted only as far as the caller trusts the signature on its note.
///
/// # Errors
/// [`Error::Io`].
pub(crate) fn read_checkpoint_edges(
    path: &Path,
) -> Result<Vec<(SignedCheckpoint, Option<Frontier>)>> {
    let Some(text) = read_log_bytes(path)? else {
        return Ok(Vec::new());
    };
    Ok(parse_checkpoint_edges(&String::from_utf8_lossy(&text)))
}

/// The parser behind [`read_checkpoint_edges`] (public for fuzzing, not API):
/// each note that parses, with its kept edge when that edge is well formed,
/// has the note's size and hashes to its root.
#[doc(hidden)]
pub fn parse_checkpoint_edges(text: &str) -> Vec<(SignedCheckpoint, Option<Frontier>)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(cp) = parse_log_line(line) else {
            continue;
        };
        let edge = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("frontier")?.as_str().map(str::to_owned))
            .and_then(|h| edge_of(&cp, &h));
        out.push((cp, edge));
    }
    out
}

/// The edge in `hex` when it is one for `cp`'s size and hashes to its root.
fn edge_of(cp: &SignedCheckpoint, hex: &str) -> Option<Frontier> {
    let root = cp.checkpoint.root?;
    let bytes = hex::decode(hex).ok()?;
    if bytes.len() % 32 != 0 {
        return None;
    }
    let roots: Vec<Hash> = bytes
        .chunks_exact(32)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect();
    Frontier::from_roots(cp.checkpoint.size, &roots).filter(|f| f.root() == root)
}

fn parse_log_line(line: &str) -> Result<SignedCheckpoint> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|_| malformed("checkpoint log"))?;
    let note = v
        .get("note")
        .and_then(|n| n.as_str())
        .ok_or_else(|| malformed("checkpoint log"))?;
    SignedCheckpoint::parse(note)
}

/// Parse checkpoints an operator holds: a JSON-lines log (`{"note": ...}` per
/// line, as [`FileSink`] writes) or notes one after another (as
/// [`StdoutSink`] and `hisn audit checkpoint` print them). Strict: these are
/// the verifier's own evidence, so anything malformed is an error.
///
/// # Errors
/// [`Error::Malformed`] when any part is not a checkpoint.
pub fn parse_checkpoint_text(text: &str) -> Result<Vec<SignedCheckpoint>> {
    if text.trim_start().starts_with('{') {
        return text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_log_line)
            .collect();
    }
    // Notes: body lines, a blank line, signature lines; notes separated by
    // blank lines.
    let mut out = Vec::new();
    let mut lines = text.split_inclusive('\n').peekable();
    loop {
        while lines.peek().is_some_and(|l| l.trim().is_empty()) {
            lines.next();
        }
        if lines.peek().is_none() {
            return Ok(out);
        }
        let mut note = String::new();
        for l in lines.by_ref() {
            note.push_str(l);
            if l == "\n" {
                break;
            }
        }
        while let Some(l) = lines.next_if(|l| l.starts_with('\u{2014}')) {
            note.push_str(l);
            if !l.ends_with('\n') {
                note.push('\n');
            }
        }
        out.push(SignedCheckpoint::parse(&note)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, SigningKey};
    use crate::event::TenantId;
    use crate::merkle::leaf_hash;

    /// A rooted checkpoint of a tree of `n` leaves and its edge.
    fn rooted(n: u8) -> (SignedCheckpoint, Frontier) {
        let mut f = Frontier::new();
        for i in 0..n {
            f.push(leaf_hash(&crate::chain::Link([i; 32])));
        }
        let t = TenantId::parse("acme").unwrap();
        let k = SigningKey::from_bytes("k", &[3; 32]).unwrap();
        let cp = Checkpoint::new(
            &t,
            u64::from(n),
            crate::chain::Link::GENESIS,
            crate::clock::Timestamp::from_unix_micros(1),
        )
        .with_root(f.root());
        (k.sign(cp), f)
    }

    fn hex_of(f: &Frontier) -> String {
        f.roots().map(hex::encode).collect()
    }

    #[test]
    fn an_edge_is_read_back_only_whole_of_the_notes_size_and_root() {
        let (cp, f) = rooted(11);
        assert_eq!(edge_of(&cp, &hex_of(&f)), Some(f.clone()));
        // Trailing bytes, a missing or changed hash, another tree's edge.
        assert_eq!(edge_of(&cp, &format!("{}00", hex_of(&f))), None);
        assert_eq!(
            edge_of(&cp, &format!("{}{}", hex_of(&f), "00".repeat(32))),
            None
        );
        let h = hex_of(&f);
        assert_eq!(edge_of(&cp, &h[..h.len() - 64]), None);
        let changed = format!("{}{}", if h.starts_with('0') { "1" } else { "0" }, &h[1..]);
        assert_eq!(edge_of(&cp, &changed), None);
        let (_, other) = rooted(12);
        assert_eq!(edge_of(&cp, &hex_of(&other)), None);
        assert_eq!(edge_of(&cp, "not hex"), None);
        // A note without a root keeps no edge.
        let (plain, _) = rooted(0);
        assert_eq!(edge_of(&plain, ""), Some(Frontier::new()));
        let t = TenantId::parse("acme").unwrap();
        let k = SigningKey::from_bytes("k", &[3; 32]).unwrap();
        let unrooted = k.sign(Checkpoint::new(
            &t,
            11,
            crate::chain::Link::GENESIS,
            crate::clock::Timestamp::from_unix_micros(1),
        ));
        assert_eq!(edge_of(&unrooted, &hex_of(&f)), None);
    }

    #[test]
    fn a_missing_store_log_has_no_edges_and_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let none = read_checkpoint_edges(&dir.path().join("none.jsonl")).unwrap();
        assert_eq!(none, vec![]);
        // A directory is no log: never read as empty (`Corrupt` since store
        // files must be regular files once open).
        assert!(matches!(
            read_checkpoint_edges(dir.path()),
            Err(Error::Io(_) | Error::Corrupt { .. })
        ));
    }

    #[test]
    fn the_store_log_keeps_the_edge_beside_its_note_and_only_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.jsonl");
        let (cp, f) = rooted(5);
        let (_, wrong) = rooted(6);
        append_checkpoint_log_with_edge(&path, &cp, Some(&f)).unwrap();
        append_checkpoint_log_with_edge(&path, &cp, Some(&wrong)).unwrap();
        append_checkpoint_log(&path, &cp).unwrap();
        let got = read_checkpoint_edges(&path).unwrap();
        assert_eq!(
            got,
            vec![
                (cp.clone(), Some(f)),
                (cp.clone(), None),
                (cp.clone(), None)
            ]
        );
        // Readers of notes only see the same three notes.
        assert_eq!(
            read_checkpoint_log(&path).unwrap(),
            vec![cp.clone(), cp.clone(), cp]
        );
    }

    /// `refuse_links` passes only a regular file (or none) whose directory
    /// is a real directory: a link at the name, a directory or other entry
    /// at the name, a name inside a linked directory and a name the system
    /// cannot look up are refused (a bare relative name has no directory to
    /// check). The store's log is never opened through any of them, and a
    /// regular log is appended to. Kills the in-diff mutants of the
    /// parent filter and of the `NotFound` guard (issue 19).
    #[test]
    fn the_store_log_is_refused_unless_a_regular_file_in_a_real_directory() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let target = d.path().join("target.json");
        std::fs::write(&target, b"{}\n").unwrap();
        let linked_dir = d.path().join("linked");
        symlink(&real, &linked_dir).unwrap();
        let link = real.join("link.jsonl");
        symlink(&target, &link).unwrap();
        let refused = |p: &Path| {
            let e = refuse_links(p).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{p:?}: {e}");
        };

        // Fine: a missing log, a regular one, a bare relative name.
        let log = real.join("checkpoints.jsonl");
        refuse_links(&log).unwrap();
        let (cp, _) = rooted(3);
        append_store_checkpoint_log(&log, &cp, None).unwrap();
        refuse_links(&log).unwrap();
        append_store_checkpoint_log(&log, &cp, None).unwrap();
        assert_eq!(
            read_checkpoint_log(&log).unwrap(),
            vec![cp.clone(), cp.clone()]
        );
        refuse_links(Path::new("hisn-no-such-checkpoint-log.jsonl")).unwrap();

        refused(&link);
        refused(&real);
        refused(&linked_dir.join("checkpoints.jsonl"));
        // Not "not found": the lookup itself fails (a name over NAME_MAX).
        let long = real.join("x".repeat(300));
        assert_ne!(
            refuse_links(&long).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );

        // Nothing is written through the link or into the linked directory.
        assert!(append_store_checkpoint_log(&link, &cp, None).is_err());
        assert!(append_store_checkpoint_log(&linked_dir.join("c.jsonl"), &cp, None).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"{}\n");
        assert!(!real.join("c.jsonl").exists());
    }
}
