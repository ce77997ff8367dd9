//! Persisted subject index of a sealed segment: `<segment>.sidx` next to it.
//!
//! Opening a store used to decode every record to rebuild the subject index,
//! so a cold `hisn audit report` paid for the whole log. A sealed segment
//! never changes, so its part of the index is written once (when the segment
//! is sealed, or on the next writable open) and read back on every open.
//!
//! The file is not trusted blindly. It is MAC-free but self-checking:
//! - a SHA-256 of its own body (damage, truncation);
//! - the length and SHA-256 of the segment bytes it indexes, the segment's
//!   first sequence number and its record count (a stale index, an index of
//!   another segment or tenant, or one written for fewer records is refused).
//!
//! Any mismatch means the index is ignored and the segment's records are
//! decoded instead (a writer then rewrites the index). Every report re-checks
//! each record's decoded content, so an index can only hurt by omitting a
//! record; an omission by damage, staleness or a foreign file is caught by the
//! checks above. Someone able to rewrite both the body and its checksum can
//! rewrite the segments too: chain verification (`hisn audit verify`) is the
//! control for that, not this file.
//!
//! Written with write-to-temp + fsync + rename + directory fsync: a crash at
//! any point leaves no index (rebuilt) or a whole one.

use std::cell::Cell;

use sha2::{Digest as _, Sha256};

use super::recovery::replace_file;
use super::*;

const MAGIC: &[u8; 8] = b"HISNSIX1";
/// Suffix of an index file (`<segment file name>.sidx`).
pub(super) const SUFFIX: &str = ".sidx";

thread_local! {
    static DECODES: Cell<u64> = const { Cell::new(0) };
}

/// Records decoded on this thread to build subject indexes while opening
/// stores (test hook: proves a persisted index was used).
#[doc(hidden)]
#[must_use]
pub fn index_decodes_on_this_thread() -> u64 {
    DECODES.with(Cell::get)
}

pub(super) fn count_decode() {
    DECODES.with(|c| c.set(c.get() + 1));
}

/// The index file of `segment`.
pub(super) fn index_path(segment: &Path) -> PathBuf {
    let mut p = segment.as_os_str().to_owned();
    p.push(SUFFIX);
    PathBuf::from(p)
}

/// Subject keys of a segment: key -> record positions (0-based, ascending).
pub(super) type SegSubjects = Vec<(String, Vec<u32>)>;

/// Encode the index of a segment whose bytes are `segment`.
fn encode(segment: &[u8], first_seq: u64, count: u32, subjects: &SegSubjects) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + subjects.len() * 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(segment.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(segment));
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(subjects.len() as u64).to_le_bytes());
    for (key, seqs) in subjects {
        out.extend_from_slice(&(key.len() as u64).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(seqs.len() as u64).to_le_bytes());
        for s in seqs {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Decode and check an index against the segment it claims to index; `None`
/// for anything that does not check (then the segment is decoded instead).
pub(super) fn decode(
    index: &[u8],
    segment: &[u8],
    first_seq: u64,
    count: usize,
) -> Option<SegSubjects> {
    let body_len = index.len().checked_sub(32)?;
    let (body, sum) = index.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut c = Cursor(body);
    if c.take(8)? != MAGIC
        || c.u64()? != segment.len() as u64
        || c.take(32)? != Sha256::digest(segment).as_slice()
        || c.u64()? != first_seq
        || usize::try_from(c.u32()?).ok()? != count
    {
        return None;
    }
    let nkeys = c.u64()?;
    let mut out = Vec::new();
    for _ in 0..nkeys {
        let klen = usize::try_from(c.u64()?).ok()?;
        let key = std::str::from_utf8(c.take(klen)?).ok()?.to_owned();
        let n = usize::try_from(c.u64()?).ok()?;
        if n == 0 || n > count {
            return None;
        }
        let mut seqs = Vec::with_capacity(n);
        for _ in 0..n {
            let s = c.u32()?;
            if usize::try_from(s).ok()? >= count || seqs.last().is_some_and(|l| *l >= s) {
                return None;
            }
            seqs.push(s);
        }
        out.push((key, seqs));
    }
    c.0.is_empty().then_some(out)
}

/// Decode the records of a parsed segment into its subject keys.
pub(super) fn build(bytes: &[u8], frames: &[crate::store::segment::FrameRef]) -> SegSubjects {
    let mut map: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, f) in frames.iter().enumerate() {
        count_decode();
        let Ok(pos) = u32::try_from(i) else { break };
        if let Ok((_, e)) = decode_record(&bytes[f.record_range()]) {
            for s in e.subject_keys() {
                map.entry(s.to_owned()).or_default().push(pos);
            }
        }
    }
    let mut v: SegSubjects = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Write the index of a sealed segment (atomically, see the module docs).
pub(super) fn write(
    segment: &Path,
    bytes: &[u8],
    first_seq: u64,
    count: usize,
    subjects: &SegSubjects,
) -> Result<()> {
    let Ok(count) = u32::try_from(count) else {
        return Ok(()); // Never indexed: decoded on open.
    };
    replace_file(
        &index_path(segment),
        &encode(bytes, first_seq, count, subjects),
    )
}

/// Index a segment that was just sealed, from its file (called off the
/// writer's critical path). A segment that does not parse cleanly is left
/// unindexed.
pub(super) fn index_sealed(segment: &Path) -> Result<()> {
    let bytes = fs::read(segment)?;
    let parsed = parse_segment_synced(&bytes, 0)?;
    if !matches!(parsed.end, SegmentEnd::Clean) {
        return Ok(());
    }
    let subjects = build(&bytes, &parsed.frames);
    write(
        segment,
        &bytes,
        parsed.header.first_seq,
        parsed.frames.len(),
        &subjects,
    )
}
