//! Persisted subject index of a sealed segment: `<segment>.sidx` next to it.
//!
//! Opening a store used to decode every record to rebuild the subject index,
//! so a cold `hisn audit report` paid for the whole log. A sealed segment
//! never changes, so its part of the index is written once (when the segment
//! is sealed, or on the next writable open) and read back on every open. It
//! also holds the segment's record locations (frame offsets), so a cold
//! reader ([`TenantReader`](super::TenantReader)) reads only the records it
//! is asked for.
//!
//! The file is not trusted blindly. It is MAC-free but self-checking:
//! - a SHA-256 of its own body (damage, truncation), of its header, and of
//!   each hash bucket of keys (bound to the header and the bucket number);
//! - the length and SHA-256 of the segment bytes it indexes, the segment's
//!   first sequence number and its record count (a stale index, an index of
//!   another segment or tenant, or one written for fewer records is refused).
//!
//! **Two ways to read it.** Opening a [`FileStore`] reads the segment anyway,
//! so it checks everything above, the frame offsets included. A cold
//! [`TenantReader`](super::TenantReader) does not read the segment: it checks
//! the header against the segment's length, first sequence number and record
//! count (the next segment must start where this one's count ends), the
//! bucket it looks a key up in, and every record it then reads (frame
//! checksum, and the record must name its tenant and sequence number). What
//! it cannot see without hashing the segment is a segment rewritten in place
//! to the same length under a still-valid index; chain verification is the
//! control for a rewritten segment.
//!
//! Any mismatch means the index is ignored and the segment's records are
//! decoded instead (a writer then rewrites the index). Every report re-checks
//! each record's decoded content, so an index can only hurt by omitting a
//! record; an omission by damage, staleness or a foreign file is caught by the
//! checks above. Someone able to rewrite both the body and its checksums can
//! rewrite the segments too: chain verification (`hisn audit verify`) is the
//! control for that, not this file.
//!
//! Written with write-to-temp + fsync + rename + directory fsync: a crash at
//! any point leaves no index (rebuilt) or a whole one.

use std::cell::Cell;
use std::fs::File;

use sha2::{Digest as _, Sha256};

use super::recovery::replace_file;
use super::*;

const MAGIC: &[u8; 8] = b"HISNSIX2";
/// Suffix of an index file (`<segment file name>.sidx`).
pub(super) const SUFFIX: &str = ".sidx";
/// Bytes of the fixed header, its checksum included.
const HEADER_LEN: usize = 88 + 32;
/// Keys per bucket the writer aims for (a lookup reads one bucket).
const KEYS_PER_BUCKET: usize = 8;
/// Largest bucket a lookup reads (a damaged directory cannot make it read more).
const MAX_BUCKET: u64 = 64 << 20;

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

/// Longest index a reader accepts for a segment of `segment_len` bytes.
/// An index holds per record its frame offset and a position per subject
/// key, and each key once: far less than 8 bytes for every segment byte
/// (a key costs the record at least its length prefix). A longer file was
/// not written by the store (a sparse file, say): every reader ignores it,
/// never reading it into memory.
pub(super) fn max_len(segment_len: u64) -> u64 {
    segment_len.saturating_mul(8).saturating_add(1 << 20)
}

/// The index file of `segment`.
pub(super) fn index_path(segment: &Path) -> PathBuf {
    let mut p = segment.as_os_str().to_owned();
    p.push(SUFFIX);
    PathBuf::from(p)
}

/// Subject keys of a segment: key -> record positions (0-based, ascending).
pub(super) type SegSubjects = Vec<(String, Vec<u32>)>;

/// The bucket of `key` among `nbuckets`.
fn bucket_of(key: &[u8], nbuckets: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(b"hisn-audit-log:sidx-bucket\0");
    h.update(key);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // The remainder is below nbuckets, a u32.
    u32::try_from(u64::from_le_bytes(first) % u64::from(nbuckets.max(1))).unwrap_or(0)
}

/// Checksum of bucket `b`'s entries, bound to the index's header (so a bucket
/// of another index, or another bucket of this one, does not check).
fn bucket_sum(header_sum: &[u8], b: u32, entries: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hisn-audit-log:sidx-bucket-sum\0");
    h.update(header_sum);
    h.update(b.to_le_bytes());
    h.update(entries);
    h.finalize().into()
}

/// Encode the index of a segment whose bytes are `segment`, whose frames
/// start at `offsets`.
///
/// ```text
/// header  "HISNSIX2" | u64 segment length | SHA-256 of the segment | u64 first seq
///         | u32 record count | u32 buckets | u64 keys | u64 offsets at | u64 directory at
///         | SHA-256 of the header so far
/// offsets u64 frame offset per record
/// dir     u64 file offset per bucket, and the end of the last one
/// bucket  (u32 key length | key | u32 count | u32 position...)... | bucket checksum
/// trailer SHA-256 of everything before it
/// ```
/// (all integers little-endian). A cold reader checks the header, reads the
/// directory entries and the one bucket a key hashes to, and the offsets of
/// the records it reads; a writer's open checks the whole file.
fn encode(segment: &[u8], first_seq: u64, offsets: &[u64], subjects: &SegSubjects) -> Vec<u8> {
    let count = u32::try_from(offsets.len()).unwrap_or(u32::MAX);
    let nbuckets = u32::try_from((subjects.len() / KEYS_PER_BUCKET).max(1)).unwrap_or(u32::MAX);
    let offsets_at = HEADER_LEN as u64;
    let dir_at = offsets_at + 8 * offsets.len() as u64;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(segment.len() as u64).to_le_bytes());
    header.extend_from_slice(&Sha256::digest(segment));
    header.extend_from_slice(&first_seq.to_le_bytes());
    header.extend_from_slice(&count.to_le_bytes());
    header.extend_from_slice(&nbuckets.to_le_bytes());
    header.extend_from_slice(&(subjects.len() as u64).to_le_bytes());
    header.extend_from_slice(&offsets_at.to_le_bytes());
    header.extend_from_slice(&dir_at.to_le_bytes());
    let header_sum = Sha256::digest(&header);
    header.extend_from_slice(&header_sum);
    let mut buckets: Vec<Vec<u8>> = vec![Vec::new(); nbuckets as usize];
    for (key, seqs) in subjects {
        let b = &mut buckets[bucket_of(key.as_bytes(), nbuckets) as usize];
        b.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(&u32::try_from(seqs.len()).unwrap_or(u32::MAX).to_le_bytes());
        for s in seqs {
            b.extend_from_slice(&s.to_le_bytes());
        }
    }
    let mut out = header;
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    let mut at = dir_at + 8 * (u64::from(nbuckets) + 1);
    for b in &buckets {
        out.extend_from_slice(&at.to_le_bytes());
        at += b.len() as u64 + 32;
    }
    out.extend_from_slice(&at.to_le_bytes());
    for (i, b) in buckets.iter().enumerate() {
        out.extend_from_slice(b);
        let n = u32::try_from(i).unwrap_or(u32::MAX);
        out.extend_from_slice(&bucket_sum(&header_sum, n, b));
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

/// The fixed header of an index file, checked against its own checksum.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub(super) segment_len: u64,
    segment_sha: [u8; 32],
    pub(super) first_seq: u64,
    pub(super) count: u32,
    nbuckets: u32,
    nkeys: u64,
    offsets_at: u64,
    dir_at: u64,
    sum: [u8; 32],
    /// Length of the index file (a lookup never reads, or allocates, past it).
    pub(super) file_len: u64,
}

fn parse_header(bytes: &[u8]) -> Option<Header> {
    let bytes = bytes.get(..HEADER_LEN)?;
    let (body, sum) = bytes.split_at(HEADER_LEN - 32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut c = Cursor(body);
    if c.take(8)? != MAGIC {
        return None;
    }
    let h = Header {
        segment_len: c.u64()?,
        segment_sha: c.take(32)?.try_into().ok()?,
        first_seq: c.u64()?,
        count: c.u32()?,
        nbuckets: c.u32()?,
        nkeys: c.u64()?,
        offsets_at: c.u64()?,
        dir_at: c.u64()?,
        sum: sum.try_into().ok()?,
        file_len: 0,
    };
    (h.nbuckets > 0
        && h.offsets_at == HEADER_LEN as u64
        && h.dir_at == h.offsets_at + 8 * u64::from(h.count))
    .then_some(h)
}

/// Parse the entries of bucket `b` (checksum and key placement checked).
fn parse_bucket(h: &Header, b: u32, bytes: &[u8]) -> Option<SegSubjects> {
    let body_len = bytes.len().checked_sub(32)?;
    let (entries, sum) = bytes.split_at(body_len);
    if bucket_sum(&h.sum, b, entries) != sum {
        return None;
    }
    let count = h.count;
    let mut c = Cursor(entries);
    let mut out = Vec::new();
    while !c.0.is_empty() {
        let klen = usize::try_from(c.u32()?).ok()?;
        let key = std::str::from_utf8(c.take(klen)?).ok()?.to_owned();
        // The writer puts each bucket's keys in ascending order, so a key
        // appears once: a repeated key would let the cold reader (first
        // match) and a whole-file decode (every match) answer differently.
        if bucket_of(key.as_bytes(), h.nbuckets) != b
            || out
                .last()
                .is_some_and(|(prev, _): &(String, Vec<u32>)| *prev >= key)
        {
            return None;
        }
        let n = c.u32()?;
        if n == 0 || n > count {
            return None;
        }
        let mut seqs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let s = c.u32()?;
            if s >= count || seqs.last().is_some_and(|l| *l >= s) {
                return None;
            }
            seqs.push(s);
        }
        out.push((key, seqs));
    }
    Some(out)
}

/// Decode and check a whole index against the segment it claims to index
/// (its bytes, first sequence number and frame offsets); `None` for anything
/// that does not check (then the segment is decoded instead).
pub(super) fn decode(
    index: &[u8],
    segment: &[u8],
    first_seq: u64,
    offsets: &[u64],
) -> Option<SegSubjects> {
    let body_len = index.len().checked_sub(32)?;
    let (body, sum) = index.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let h = parse_header(body)?;
    if h.segment_len != segment.len() as u64
        || h.segment_sha != Sha256::digest(segment).as_slice()
        || h.first_seq != first_seq
        || usize::try_from(h.count).ok()? != offsets.len()
    {
        return None;
    }
    let mut c = Cursor(body.get(HEADER_LEN..)?);
    for o in offsets {
        if c.u64()? != *o {
            return None;
        }
    }
    let dir: Vec<u64> = (0..=h.nbuckets).map(|_| c.u64()).collect::<Option<_>>()?;
    let mut at = h.dir_at + 8 * (u64::from(h.nbuckets) + 1);
    let mut out = Vec::new();
    for b in 0..h.nbuckets {
        let (start, end) = (dir[b as usize], dir[b as usize + 1]);
        if start != at || end < start {
            return None;
        }
        let bytes = c.take(usize::try_from(end - start).ok()?)?;
        out.extend(parse_bucket(&h, b, bytes)?);
        at = end;
    }
    if !c.0.is_empty() || out.len() as u64 != h.nkeys {
        return None;
    }
    Some(out)
}

/// Positioned reads of an index: a file (cold reads) or bytes (fuzzing).
pub(super) trait ReadAt {
    /// Fill `buf` from offset `at`, or fail.
    fn read_at_exact(&self, buf: &mut [u8], at: u64) -> Option<()>;
    /// Length in bytes.
    fn len_bytes(&self) -> Option<u64>;
}

impl ReadAt for File {
    fn read_at_exact(&self, buf: &mut [u8], at: u64) -> Option<()> {
        self.read_exact_at(buf, at).ok()
    }
    fn len_bytes(&self) -> Option<u64> {
        self.metadata().ok().map(|m| m.len())
    }
}

impl ReadAt for [u8] {
    fn read_at_exact(&self, buf: &mut [u8], at: u64) -> Option<()> {
        let at = usize::try_from(at).ok()?;
        buf.copy_from_slice(self.get(at..at.checked_add(buf.len())?)?);
        Some(())
    }
    fn len_bytes(&self) -> Option<u64> {
        Some(self.len() as u64)
    }
}

/// Read and check the header of an index file (cold reads; see [`lookup`]).
pub(super) fn read_header<R: ReadAt + ?Sized>(f: &R) -> Option<Header> {
    let mut buf = [0u8; HEADER_LEN];
    f.read_at_exact(&mut buf, 0)?;
    let mut h = parse_header(&buf)?;
    h.file_len = f.len_bytes()?;
    // The offsets and the directory lie inside the file.
    (h.dir_at.checked_add(8 * (u64::from(h.nbuckets) + 1))? <= h.file_len).then_some(h)
}

/// The positions of `key` in the segment, reading only the index's header
/// (already read into `h`), two directory entries and one bucket: `Some`
/// (empty when the key is absent) or `None` when the index does not check
/// (then the segment is decoded instead).
///
/// This does not re-hash the segment: a cold lookup is bound to it by its
/// length, first sequence number and record count (checked by the caller),
/// by the checksums of the header and the bucket, and by every record read
/// through it naming its own sequence number. See the module docs.
pub(super) fn lookup<R: ReadAt + ?Sized>(f: &R, h: &Header, key: &str) -> Option<Vec<u32>> {
    let b = bucket_of(key.as_bytes(), h.nbuckets);
    Some(
        read_bucket(f, h, b)?
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, p)| p)
            .unwrap_or_default(),
    )
}

/// Bucket `b` as a cold lookup reads it: two directory entries and the
/// bucket, checked; `None` when it does not check.
fn read_bucket<R: ReadAt + ?Sized>(f: &R, h: &Header, b: u32) -> Option<SegSubjects> {
    let mut d = [0u8; 16];
    f.read_at_exact(&mut d, h.dir_at.checked_add(8 * u64::from(b))?)?;
    let start = u64::from_le_bytes(d[..8].try_into().ok()?);
    let end = u64::from_le_bytes(d[8..].try_into().ok()?);
    let min = h.dir_at + 8 * (u64::from(h.nbuckets) + 1);
    if start < min || end < start.checked_add(32)? || end - start > MAX_BUCKET || end > h.file_len {
        return None;
    }
    let mut bytes = vec![0u8; usize::try_from(end - start).ok()?];
    f.read_at_exact(&mut bytes, start)?;
    parse_bucket(h, b, &bytes)
}

/// Frame offsets of records `lo..lo + n` (positions in the segment).
pub(super) fn offsets<R: ReadAt + ?Sized>(f: &R, h: &Header, lo: u32, n: u32) -> Option<Vec<u64>> {
    if u64::from(lo) + u64::from(n) > u64::from(h.count) {
        return None;
    }
    let mut buf = vec![0u8; 8 * n as usize];
    f.read_at_exact(&mut buf, h.offsets_at + 8 * u64::from(lo))?;
    Some(
        buf.chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect(),
    )
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
    offsets: &[u64],
    subjects: &SegSubjects,
) -> Result<()> {
    if u32::try_from(offsets.len()).is_err() {
        return Ok(()); // Never indexed: decoded on open.
    }
    replace_file(
        &index_path(segment),
        &encode(bytes, first_seq, offsets, subjects),
    )
}

/// Frame offsets of a parsed segment.
pub(super) fn frame_offsets(frames: &[crate::store::segment::FrameRef]) -> Vec<u64> {
    frames.iter().map(|f| f.offset).collect()
}

/// Index a segment that was just sealed, from its file (called off the
/// writer's critical path). A segment that does not parse cleanly is left
/// unindexed.
pub(super) fn index_sealed(segment: &Path) -> Result<()> {
    index_from_file(segment, |_| {})
}

/// Index `segment` from its file, with `edit` applied to the subjects its
/// records name before the index is written; a segment that does not parse
/// cleanly is left unindexed.
fn index_from_file(segment: &Path, edit: impl FnOnce(&mut SegSubjects)) -> Result<()> {
    let bytes = read_segment(segment)?;
    let parsed = parse_segment_synced(&bytes, 0)?;
    if !matches!(parsed.end, SegmentEnd::Clean) {
        return Ok(());
    }
    let mut subjects = build(&bytes, &parsed.frames);
    edit(&mut subjects);
    write(
        segment,
        &bytes,
        parsed.header.first_seq,
        &frame_offsets(&parsed.frames),
        &subjects,
    )
}

/// Subject keys on which the persisted index of `segment` disagrees with the
/// segment's records, as either reader would use it: the cold reader's
/// lookups (header bound to the segment's length, first sequence number and
/// record count, one bucket per key) and a whole-file decode (bound to the
/// segment's SHA-256 and frame offsets too). A key counts when a reader that
/// accepts the index would answer other positions for it than the records
/// give (an omission hides records from DSAR reports), or the decode lists
/// a key no record names. `0` when there is no index, nothing accepts it
/// (every reader then decodes the segment), or the segment does not parse
/// cleanly (chain verification names that damage). Returned with the
/// segment's first sequence number.
///
/// # Errors
/// [`Error::Io`].
pub(super) fn disagreements(segment: &Path) -> Result<(u64, u64)> {
    let ipath = index_path(segment);
    let index = match crate::fsread::open(&ipath) {
        Ok(i) => i,
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        // A FIFO or device: every reader opens it this way and ignores it.
        Err(Error::Corrupt { .. }) => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let bytes = read_segment(segment)?;
    let index = match crate::fsread::read_opened(index, &ipath, max_len(bytes.len() as u64)) {
        Ok(i) => i,
        // Longer than any index of this segment: every reader ignores it.
        Err(Error::Corrupt { .. }) => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let Ok(parsed) = parse_segment_synced(&bytes, 0) else {
        return Ok((0, 0));
    };
    if !matches!(parsed.end, SegmentEnd::Clean) {
        return Ok((0, 0));
    }
    let first_seq = parsed.header.first_seq;
    let offsets = frame_offsets(&parsed.frames);
    let records = build(&bytes, &parsed.frames);
    // A whole-file decode that checks answers what both readers would: the
    // cold reader reads the same, checked, buckets.
    if let Some(mut all) = decode(&index, &bytes, first_seq, &offsets) {
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        return Ok((first_seq, differing_keys(&records, &all, |_| true, true)));
    }
    // Otherwise the cold reader's view, when its header binds the index to
    // this segment (length and first sequence number, as the cold reader
    // checks them): every bucket that checks (a key of one that does not is
    // looked up in the decoded segment instead).
    let Some(h) = read_header(index.as_slice())
        .filter(|h| h.segment_len == bytes.len() as u64 && h.first_seq == first_seq)
    else {
        return Ok((first_seq, 0));
    };
    // The cold reader takes the segment's record count from the header,
    // bound only by where the next segment's header says it starts: a count
    // other than the segment's hides its last records (or invents some)
    // from cold reads whenever that next header agrees.
    let miscounted = u64::from(usize::try_from(h.count).is_ok_and(|c| c != offsets.len()));
    let mut usable = vec![false; usize::try_from(h.nbuckets).unwrap_or(0)];
    let mut cold = Vec::new();
    for b in 0..h.nbuckets {
        if let Some(entries) = read_bucket(index.as_slice(), &h, b) {
            usable[b as usize] = true;
            cold.extend(entries);
        }
    }
    cold.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let checked = |k: &str| usable[bucket_of(k.as_bytes(), h.nbuckets) as usize];
    // (Keys only the cold view lists are never asked for: not counted.)
    let n = differing_keys(&records, &cold, checked, false);
    Ok((first_seq, n.max(miscounted)))
}

/// Keys (both lists sorted by key) on which `indexed` differs from
/// `records`: other or no positions for a key the records name, among keys
/// `checked` accepts, and (with `extra`) keys only `indexed` lists.
fn differing_keys(
    records: &[(String, Vec<u32>)],
    indexed: &[(String, Vec<u32>)],
    checked: impl Fn(&str) -> bool,
    extra: bool,
) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0u64);
    while i < records.len() || j < indexed.len() {
        let ord = match (records.get(i), indexed.get(j)) {
            (Some((rk, _)), Some((xk, _))) => rk.cmp(xk),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Equal => {
                let ((k, rp), (_, xp)) = (&records[i], &indexed[j]);
                n += u64::from(checked(k) && rp != xp);
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                n += u64::from(checked(&records[i].0));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                n += u64::from(extra);
                j += 1;
            }
        }
    }
    n
}

/// Fuzzing entry point (not API): read `index` as an untrusted `.sidx` of
/// `segment` both ways the store does (the cold reader's header, one bucket
/// and offsets; a writer's whole-file decode), looking up `key`.
///
/// With `reseal`, the checksums and the segment binding are first
/// recomputed over whatever the bytes hold, as anyone able to write the
/// store can do (the file has no MAC): the parsers behind the checksums are
/// an untrusted surface too, and a fuzzer cannot forge SHA-256 on its own.
///
/// Returns `Err` naming a broken invariant: the two readers disagree, a
/// lookup answers positions outside the segment or out of order, or a
/// header the cold reader refuses is accepted by the whole-file decode.
#[doc(hidden)]
pub fn fuzz_index(
    index: &[u8],
    segment: &[u8],
    key: &str,
    reseal: bool,
) -> std::result::Result<(), &'static str> {
    let mut index = index.to_vec();
    if reseal {
        reseal_for_fuzzing(&mut index, segment);
    }
    let index = index.as_slice();
    let Some(h) = read_header(index) else {
        // Whatever the cold reader refuses, the whole-file decode refuses too
        // (for any offsets, the right ones included).
        if let Some(ph) = parse_header(index)
            && ph.count == 0
            && decode(index, segment, ph.first_seq, &[]).is_some()
        {
            return Err("decode accepted a header the cold reader refused");
        }
        return Ok(());
    };
    let sorted_below =
        |p: &[u32]| p.windows(2).all(|w| w[0] < w[1]) && p.iter().all(|s| *s < h.count);
    let cold = lookup(index, &h, key);
    if cold.as_deref().is_some_and(|p| !sorted_below(p)) {
        return Err("lookup answered positions out of order or outside the segment");
    }
    // Offsets as the index states them (bounded, like a cold read of many records).
    let n = h.count.min(1 << 16);
    let offs = offsets(index, &h, 0, n);
    if offs.as_ref().is_some_and(|o| o.len() != n as usize) {
        return Err("offsets answered the wrong number of records");
    }
    let Some(offs) = offs.filter(|_| n == h.count) else {
        return Ok(());
    };
    let Some(all) = decode(index, segment, h.first_seq, &offs) else {
        return Ok(());
    };
    if all.len() as u64 != h.nkeys {
        return Err("decode answered a different number of keys than the header");
    }
    for (k, p) in &all {
        if !sorted_below(p) {
            return Err("decode answered positions out of order or outside the segment");
        }
        if lookup(index, &h, k).as_ref() != Some(p) {
            return Err("cold lookup and whole-file decode disagree on a key");
        }
    }
    let want = all
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, p)| p.clone())
        .unwrap_or_default();
    if cold.as_ref() != Some(&want) {
        return Err("cold lookup and whole-file decode disagree on the fuzzed key");
    }
    Ok(())
}

/// Recompute the segment binding and every checksum of `index` over its
/// current bytes (see [`fuzz_index`]).
fn reseal_for_fuzzing(index: &mut [u8], segment: &[u8]) {
    if index.len() < HEADER_LEN {
        return;
    }
    index[8..16].copy_from_slice(&(segment.len() as u64).to_le_bytes());
    index[16..48].copy_from_slice(&Sha256::digest(segment));
    let header_sum = Sha256::digest(&index[..HEADER_LEN - 32]);
    index[HEADER_LEN - 32..HEADER_LEN].copy_from_slice(&header_sum);
    if let Some(h) = parse_header(&index[..HEADER_LEN]) {
        for b in 0..h.nbuckets.min(1 << 16) {
            let at = h.dir_at + 8 * u64::from(b);
            let mut d = [0u8; 16];
            if index.read_at_exact(&mut d, at).is_none() {
                break;
            }
            let start = u64::from_le_bytes(d[..8].try_into().unwrap_or_default());
            let end = u64::from_le_bytes(d[8..].try_into().unwrap_or_default());
            let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
                continue;
            };
            if start.checked_add(32).is_some_and(|s| s <= end) && end <= index.len() {
                let sum = bucket_sum(&h.sum, b, &index[start..end - 32]);
                index[end - 32..end].copy_from_slice(&sum);
            }
        }
    }
    if let Some(body) = index.len().checked_sub(32).filter(|b| *b >= HEADER_LEN) {
        let sum = Sha256::digest(&index[..body]);
        index[body..].copy_from_slice(&sum);
    }
}

/// Rewrite the index of the sealed (cleanly ending) `segment` so that it no longer lists
/// `subject`, with every checksum and the segment binding consistent: what
/// anyone able to write the store can do, as the file has no MAC (for tests
/// of [`FileStore::check_subject_indexes`], not API).
///
/// # Errors
/// [`Error::Io`], or the segment's own parse errors.
#[doc(hidden)]
pub fn forge_index_omitting(segment: &Path, subject: &str) -> Result<()> {
    index_from_file(segment, |s| s.retain(|(k, _)| k != subject))
}

/// The index file of a segment (for tests and seed corpora, not API).
#[doc(hidden)]
#[must_use]
pub fn index_file_of(segment: &Path) -> PathBuf {
    index_path(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz crash (`audit_log_subject_index`, resealed input): a bucket
    /// holding the same key twice was accepted. The cold reader answered the
    /// first entry's positions and the whole-file decode both entries, so
    /// the two ways of opening a store disagreed about which records name
    /// the subject (an index can only omit, but the omission then depended
    /// on the reader). Root cause: `parse_bucket` checked each key's bucket
    /// but not that keys are unique; the writer always writes a bucket's
    /// keys in ascending order, so anything else is refused now.
    #[test]
    fn a_bucket_with_a_repeated_or_unordered_key_is_refused() {
        let seg = b"segment bytes".to_vec();
        let offsets = [10u64, 20, 30];
        for subjects in [
            vec![("a".to_owned(), vec![0]), ("a".to_owned(), vec![1])],
            vec![("b".to_owned(), vec![0]), ("a".to_owned(), vec![1])],
        ] {
            // One bucket (fewer than KEYS_PER_BUCKET keys): both keys in it.
            let idx = encode(&seg, 7, &offsets, &subjects);
            assert!(decode(&idx, &seg, 7, &offsets).is_none());
            let h = read_header(idx.as_slice()).unwrap();
            assert!(lookup(idx.as_slice(), &h, "a").is_none());
            assert_eq!(fuzz_index(&idx, &seg, "a", false), Ok(()));
        }
    }

    #[test]
    fn differing_keys_counts_other_missing_and_extra_keys() {
        let v = |x: &[(&str, &[u32])]| -> SegSubjects {
            x.iter()
                .map(|(k, p)| ((*k).to_owned(), p.to_vec()))
                .collect()
        };
        let records = v(&[("a", &[0, 2]), ("b", &[1]), ("c", &[3])]);
        assert_eq!(differing_keys(&records, &records, |_| true, true), 0);
        // "b" omitted, "c" with other positions, "d" listed without a record.
        let forged = v(&[("a", &[0, 2]), ("c", &[4]), ("d", &[5])]);
        assert_eq!(differing_keys(&records, &forged, |_| true, true), 3);
        assert_eq!(differing_keys(&records, &forged, |_| true, false), 2);
        // Keys in buckets the reader would not use are not counted.
        assert_eq!(differing_keys(&records, &forged, |k| k != "b", false), 1);
        assert_eq!(differing_keys(&records, &[], |_| true, true), 3);
        assert_eq!(differing_keys(&[], &forged, |_| true, true), 3);
    }

    #[test]
    fn encode_decode_round_trip() {
        let seg = b"segment bytes".to_vec();
        let subjects: SegSubjects = vec![
            ("a".into(), vec![0, 2]),
            ("b".into(), vec![1]),
            ("emp-0".into(), vec![2]),
        ];
        let offsets = [10u64, 20, 30];
        let idx = encode(&seg, 7, &offsets, &subjects);
        let mut got = decode(&idx, &seg, 7, &offsets).unwrap();
        got.sort();
        assert_eq!(got, subjects);
        assert!(decode(&idx, &seg, 8, &offsets).is_none());
        assert!(decode(&idx, b"segment bytez", 7, &offsets).is_none());
        assert!(decode(&idx, &seg, 7, &[10, 20, 31]).is_none());
    }
}
