//! Publishing and reading checkpoints: sinks, the JSON-lines checkpoint log,
//! and the text an operator holds.

use std::fmt;
use std::io::Write as _;
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
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut line = serde_json::json!({ "note": cp.to_note() });
    if let Some(e) = edge.filter(|e| e.size() == cp.checkpoint.size) {
        let hex: String = e.roots().map(hex::encode).collect();
        line["frontier"] = serde_json::Value::String(hex);
    }
    let line = line.to_string();
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

/// Read a JSON-lines checkpoint log written by [`FileSink`] or a file store.
/// A missing file is an empty log. A line that is not a checkpoint (a torn
/// write, or a note anyone with write access to the file added) is skipped
/// with a warning: the notes in a store are untrusted input, and one bad line
/// must neither stop verification nor hide what the others show.
///
/// # Errors
/// [`Error::Io`].
pub fn read_checkpoint_log(path: &Path) -> Result<Vec<SignedCheckpoint>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let (cps, skipped) = parse_checkpoint_log(&String::from_utf8_lossy(&text));
    if skipped > 0 {
        tracing::warn!(skipped, "audit checkpoint log: malformed lines skipped");
    }
    Ok(cps)
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
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&text);
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
    Ok(out)
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
