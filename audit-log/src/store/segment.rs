//! Segment files of the file store: a header, then framed records.
//!
//! ```text
//! header:   "HISNALG1" | u8 version (1 or 2) | u8 tenant length | tenant
//!           | u64le first sequence | 32-byte link of the previous segment's last record
//!           | 16-byte random segment id | u32le CRC32C of everything before it
//! frame v2: u32le record length | u32le CRC32C(length || mark || record || link)
//!           | u64le synced mark | record | 32-byte link
//! frame v1: u32le record length | u32le CRC32C(length || record || link) | record | 32-byte link
//! ```
//!
//! The **synced mark** of a version-2 frame is the length of the segment that
//! was known to be on disk (`fdatasync`ed) when the frame's batch was written.
//! A crash, even a power loss, can only damage bytes past the newest synced
//! mark: the file system may have kept some pages of the unsynced batch and
//! lost others, which leaves zeros *followed by intact frames*. So damage at
//! offset `d` is a crash leftover (a torn tail, cut on recovery) when every
//! intact frame after it carries a mark `<= d`, and corruption when one of them
//! says that `d` had already been synced. Version-1 segments (written before
//! the mark existed) have no such evidence: damage followed by intact data is
//! corruption there, and `hisn audit repair` is the operator's way out.
//!
//! A writer syncing every batch keeps zeros written ahead of its records in
//! the open segment (preallocation: overwriting synced blocks syncs faster
//! than growing the file). Zeros from the end of the last frame to the end
//! of the file are the end of the segment; so is a damaged last frame whose
//! last byte and everything after it are zeros (a write into that tail cut
//! short). Neither hides anything a truncation would not: anchors
//! (checkpoints, the verifier's state) catch both.
//!
//! [`parse_segment`] never panics on any input (it is fuzzed) and classifies the
//! end of a segment: clean, a torn tail (damage past the synced mark, as a
//! crash leaves it), or corruption.

use crate::chain::Link;
use crate::error::{Error, Result, malformed};
use crate::event::TenantId;
use crate::limits;

/// Segment file magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"HISNALG1";
/// Segment format version written by this release (2: frames carry the synced mark).
pub const SEGMENT_VERSION: u8 = 2;
/// Bytes of frame overhead in a version-1 segment (length, CRC, link).
pub const FRAME_OVERHEAD: usize = 4 + 4 + 32;
/// Bytes of frame overhead in a version-2 segment (length, CRC, synced mark, link).
pub const FRAME_OVERHEAD_V2: usize = FRAME_OVERHEAD + 8;

/// Frame overhead of a segment `version`.
pub fn frame_overhead(version: u8) -> usize {
    if version >= 2 {
        FRAME_OVERHEAD_V2
    } else {
        FRAME_OVERHEAD
    }
}
/// Upper bound on bytes the corruption scan will checksum before giving up and
/// calling the damage corruption (fail closed).
const SCAN_BUDGET: usize = 64 << 20;

/// A segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version (1 or 2; new segments are [`SEGMENT_VERSION`]).
    pub version: u8,
    /// Tenant whose chain the segment holds.
    pub tenant: TenantId,
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Link of the record before the first (the previous segment's last link).
    pub prev_link: Link,
    /// Random identifier, so a segment copied from elsewhere can be recognised.
    pub segment_id: [u8; 16],
}

impl SegmentHeader {
    /// Encode the header.
    pub fn encode(&self) -> Vec<u8> {
        let t = self.tenant.as_str().as_bytes();
        let mut out = Vec::with_capacity(70 + t.len());
        out.extend_from_slice(SEGMENT_MAGIC);
        out.push(self.version);
        // Tenants are at most 64 bytes.
        out.push(u8::try_from(t.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(t);
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.prev_link.0);
        out.extend_from_slice(&self.segment_id);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decode a header from the start of `bytes`; returns it and its length.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the magic, version, tenant or CRC is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize)> {
        let bad = || malformed("segment header");
        if bytes.len() < 10 || &bytes[..8] != SEGMENT_MAGIC || !matches!(bytes[8], 1 | 2) {
            return Err(bad());
        }
        let version = bytes[8];
        let tlen = usize::from(bytes[9]);
        let len = 10 + tlen + 8 + 32 + 16 + 4;
        if bytes.len() < len {
            return Err(bad());
        }
        let tenant = std::str::from_utf8(&bytes[10..10 + tlen]).map_err(|_| bad())?;
        let tenant = TenantId::parse(tenant).map_err(|_| bad())?;
        let mut p = 10 + tlen;
        let first_seq = u64::from_le_bytes(arr(&bytes[p..p + 8]));
        p += 8;
        let prev_link = Link(arr(&bytes[p..p + 32]));
        p += 32;
        let segment_id = arr(&bytes[p..p + 16]);
        p += 16;
        let crc = u32::from_le_bytes(arr(&bytes[p..p + 4]));
        if crc != crc32c::crc32c(&bytes[..p]) {
            return Err(bad());
        }
        Ok((
            Self {
                version,
                tenant,
                first_seq,
                prev_link,
                segment_id,
            },
            len,
        ))
    }
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// Encode one version-2 frame; `synced` is the segment length known to be on
/// disk when the frame's batch is written (see the [module docs](self)).
pub fn encode_frame(record: &[u8], link: &Link, synced: u64) -> Vec<u8> {
    encode_frame_version(2, record, link, synced)
}

/// Encode one frame of a version-1 segment (no synced mark). Kept for tests
/// and tools that build old stores.
#[doc(hidden)]
pub fn encode_frame_v1(record: &[u8], link: &Link) -> Vec<u8> {
    encode_frame_version(1, record, link, 0)
}

fn encode_frame_version(version: u8, record: &[u8], link: &Link, synced: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame_overhead(version) + record.len());
    encode_frame_into(&mut out, version, record, link, synced);
    out
}

/// Append one frame of a segment of `version` to `out` (the writer encodes
/// straight into its batch buffer: no frame allocated and copied per record).
pub(crate) fn encode_frame_into(
    out: &mut Vec<u8>,
    version: u8,
    record: &[u8],
    link: &Link,
    synced: u64,
) {
    // Records are at most MAX_RECORD_LEN (1 MiB), far below u32::MAX.
    let len = u32::try_from(record.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mark = synced.to_le_bytes();
    let mut crc = crc32c::crc32c(&len);
    if version >= 2 {
        crc = crc32c::crc32c_append(crc, &mark);
    }
    crc = crc32c::crc32c_append(crc, record);
    crc = crc32c::crc32c_append(crc, &link.0);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    if version >= 2 {
        out.extend_from_slice(&mark);
    }
    out.extend_from_slice(record);
    out.extend_from_slice(&link.0);
}

/// One intact frame inside a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef {
    /// Offset of the frame in the segment file.
    pub offset: u64,
    /// Length of the record inside it.
    pub record_len: u32,
    /// The stored link.
    pub link: Link,
    /// The synced mark (0 in a version-1 segment).
    pub synced: u64,
    /// Bytes before the record (8 in version 1, 16 in version 2).
    pub head_len: u8,
}

impl FrameRef {
    /// Byte range of the record in the segment file.
    pub fn record_range(&self) -> std::ops::Range<usize> {
        let start = usize::try_from(self.offset)
            .unwrap_or(usize::MAX)
            .saturating_add(usize::from(self.head_len));
        start..start.saturating_add(self.record_len as usize)
    }

    /// Total frame length.
    pub fn frame_len(&self) -> u64 {
        u64::from(self.record_len) + u64::from(self.head_len) + 32
    }
}

/// How a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// The last frame ends exactly at the end of the file.
    Clean,
    /// The bytes from `valid_len` on are an incomplete or zero-filled last frame,
    /// as a crash leaves them; recovery cuts the file back to `valid_len`.
    TornTail {
        /// Length of the intact prefix.
        valid_len: u64,
        /// Whether the damaged frame's length field fits in the file (a whole
        /// frame with a bad checksum rather than a short or zero-filled one:
        /// not one whose end is zeros to the end of the file, nor one that
        /// overlaps a 512-byte sector of zeros, which a write cut short or a
        /// power loss leaves). Recovery cuts either; read-only verification
        /// reports a whole damaged frame as tampering.
        whole_frame: bool,
    },
    /// The frame at `offset` is damaged and intact data follows it: not a crash.
    Corrupt {
        /// Offset of the damaged frame.
        offset: u64,
    },
}

/// A parsed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSegment {
    /// The header.
    pub header: SegmentHeader,
    /// Intact frames, in file order.
    pub frames: Vec<FrameRef>,
    /// How the segment ends.
    pub end: SegmentEnd,
}

/// Try to read an intact frame of a `version` segment at `off`.
fn frame_at(bytes: &[u8], off: usize, version: u8) -> Option<FrameRef> {
    let rest = bytes.get(off..)?;
    let overhead = frame_overhead(version);
    let head = overhead - 32;
    if rest.len() < overhead {
        return None;
    }
    let len = u32::from_le_bytes(arr(&rest[..4]));
    let ulen = len as usize;
    if ulen == 0 || ulen > limits::MAX_RECORD_LEN || rest.len() - overhead < ulen {
        return None;
    }
    let crc = u32::from_le_bytes(arr(&rest[4..8]));
    let mut c = crc32c::crc32c(&rest[..4]);
    c = crc32c::crc32c_append(c, &rest[8..head + ulen + 32]);
    if c != crc {
        return None;
    }
    let synced = if version >= 2 {
        u64::from_le_bytes(arr(&rest[8..16]))
    } else {
        0
    };
    Some(FrameRef {
        offset: off as u64,
        record_len: len,
        link: Link(arr(&rest[head + ulen..head + ulen + 32])),
        synced,
        // 8 or 16.
        head_len: u8::try_from(head).unwrap_or(u8::MAX),
    })
}

/// Check one frame of a `version` segment (exactly `frame.len()` bytes) and
/// split it into record and link.
pub fn parse_frame(frame: &[u8], version: u8) -> Option<(&[u8], Link)> {
    let f = frame_at(frame, 0, version)?;
    if f.frame_len() != frame.len() as u64 {
        return None;
    }
    Some((&frame[f.record_range()], f.link))
}

/// Parse a whole segment file.
///
/// # Errors
/// [`Error::Malformed`] when the header is damaged.
pub fn parse_segment(bytes: &[u8]) -> Result<ParsedSegment> {
    parse_segment_synced(bytes, 0)
}

/// [`parse_segment`] for a segment known to be on disk up to `synced` bytes
/// (the mark a writer recorded when it closed the store): damage below it is
/// corruption even when nothing follows it.
///
/// # Errors
/// [`Error::Malformed`] when the header is damaged.
pub fn parse_segment_synced(bytes: &[u8], synced: u64) -> Result<ParsedSegment> {
    let (header, mut off) = SegmentHeader::decode(bytes)?;
    let mut frames = Vec::new();
    while off < bytes.len() {
        match frame_at(bytes, off, header.version) {
            Some(f) => {
                off += usize::try_from(f.frame_len()).unwrap_or(usize::MAX);
                frames.push(f);
            }
            None => {
                let end = if (off as u64) < synced {
                    SegmentEnd::Corrupt { offset: off as u64 }
                } else {
                    classify_damage(bytes, off, header.version)
                };
                return Ok(ParsedSegment {
                    header,
                    frames,
                    end,
                });
            }
        }
    }
    Ok(ParsedSegment {
        header,
        frames,
        end: SegmentEnd::Clean,
    })
}

/// A damaged frame at `off`: a torn tail unless an intact frame follows that
/// says `off` had been synced (version 2), or any intact frame follows
/// (version 1, which records no synced mark).
fn classify_damage(bytes: &[u8], off: usize, version: u8) -> SegmentEnd {
    let rest = &bytes[off..];
    let overhead = frame_overhead(version);
    // A frame whose length fits in the file, unless
    // - its last byte and everything after it are zeros: a write into a
    //   preallocated (zero-filled) tail that stopped part-way, as a killed
    //   process leaves it or a reader racing the writer sees it (a write
    //   fills bytes in order, so what is missing is a suffix);
    // - or it overlaps a 512-byte sector that holds nothing but zeros
    //   ([`LOST_BLOCK`]): a power loss can keep a batch's sectors or pages
    //   out of order (a later one on disk, an earlier one still the zeros
    //   written ahead of it), and no frame a writer wrote holds one.
    // Either way the damage is not vouched for by any later frame (checked
    // below), and zeroing a frame that way only truncates the log, which
    // anchors catch as they catch a shorter file.
    let whole_frame = rest.len() >= overhead && {
        let len = u32::from_le_bytes(arr(&rest[..4])) as usize;
        len > 0
            && len <= limits::MAX_RECORD_LEN
            && rest.len() - overhead >= len
            && rest[overhead + len - 1..].iter().any(|b| *b != 0)
            && !overlaps_zero_block(bytes, off, off + overhead + len)
    };
    let torn = SegmentEnd::TornTail {
        valid_len: off as u64,
        whole_frame,
    };
    if rest.iter().all(|b| *b == 0) {
        return torn;
    }
    let corrupt = SegmentEnd::Corrupt { offset: off as u64 };
    let head = overhead - 32;
    let mut budget = SCAN_BUDGET;
    let mut cand = off + 1;
    while cand < bytes.len() {
        let Some(len_bytes) = bytes.get(cand..cand + 4) else {
            break;
        };
        let len = u32::from_le_bytes(arr(len_bytes)) as usize;
        if len == 0 || len > limits::MAX_RECORD_LEN || bytes.len() - cand < len + overhead {
            cand += 1;
            continue;
        }
        // Records start with the version byte: a cheap filter before the CRC.
        if bytes.get(cand + head) != Some(&crate::encoding::RECORD_VERSION) {
            cand += 1;
            continue;
        }
        if budget < len {
            return corrupt;
        }
        budget -= len;
        match frame_at(bytes, cand, version) {
            // An intact frame written after `off` was synced: damage, not a crash.
            Some(f) if version < 2 || f.synced > off as u64 => return corrupt,
            // Written while `off` was not yet synced: skip the whole frame.
            Some(f) => cand += usize::try_from(f.frame_len()).unwrap_or(usize::MAX),
            None => cand += 1,
        }
    }
    torn
}

/// The smallest unit a power loss keeps or loses: a disk sector (512 bytes;
/// file-system blocks of 1-4 KiB and memory pages are whole multiples of
/// it). No frame a writer wrote holds 512 zero bytes in a row: records are
/// text (control characters refused) and a few fixed-width integers.
pub(crate) const LOST_BLOCK: usize = 512;

/// Whether some [`LOST_BLOCK`]-aligned block of the file that overlaps
/// `start..end` holds only zeros (the last block counts up to the file's end).
fn overlaps_zero_block(bytes: &[u8], start: usize, end: usize) -> bool {
    let mut block = start / LOST_BLOCK * LOST_BLOCK;
    while block < end.min(bytes.len()) {
        let stop = (block + LOST_BLOCK).min(bytes.len());
        if bytes[block..stop].iter().all(|b| *b == 0) {
            return true;
        }
        block += LOST_BLOCK;
    }
    false
}

/// How many intact frames follow damage at `off` (what a repair would drop).
pub(crate) fn intact_frames_after(bytes: &[u8], off: u64, version: u8) -> u64 {
    let mut n = 0;
    let mut cand = usize::try_from(off).unwrap_or(usize::MAX).saturating_add(1);
    while cand < bytes.len() {
        match frame_at(bytes, cand, version) {
            Some(f) => {
                n += 1;
                cand += usize::try_from(f.frame_len()).unwrap_or(usize::MAX);
            }
            None => cand += 1,
        }
    }
    n
}

/// Check a parsed segment for use by a writer: an error unless it is clean or
/// (when `last`) ends in a torn tail.
pub(crate) fn require_usable(p: &ParsedSegment, last: bool, file: &str) -> Result<()> {
    match p.end {
        SegmentEnd::Clean => Ok(()),
        SegmentEnd::TornTail { .. } if last => Ok(()),
        SegmentEnd::TornTail {
            valid_len: offset, ..
        } => Err(Error::Corrupt {
            what: "torn frame in a sealed segment",
            file: file.to_owned(),
            offset,
        }),
        SegmentEnd::Corrupt { offset } => Err(Error::Corrupt {
            what: "damaged frame",
            file: file.to_owned(),
            offset,
        }),
    }
}

#[cfg(test)]
// Small test indices; truncation cannot happen.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            version: 1,
            tenant: TenantId::parse("acme").unwrap(),
            first_seq: 5,
            prev_link: Link([3; 32]),
            segment_id: [9; 16],
        }
    }

    fn segment(n: usize) -> Vec<u8> {
        let mut b = header().encode();
        for i in 0..n {
            let rec = [1u8, 4, b'a', b'c', b'm', b'e', i as u8, 0, 0, 0];
            b.extend(encode_frame_v1(&rec, &Link([i as u8; 32])));
        }
        b
    }

    #[test]
    fn header_round_trip_and_crc() {
        let h = header();
        let enc = h.encode();
        assert_eq!(SegmentHeader::decode(&enc).unwrap(), (h, enc.len()));
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn clean_torn_and_corrupt_are_told_apart() {
        let full = segment(3);
        let p = parse_segment(&full).unwrap();
        assert_eq!((p.frames.len(), p.end), (3, SegmentEnd::Clean));
        let last = p.frames[2].offset;
        for cut in last as usize + 1..full.len() {
            let p = parse_segment(&full[..cut]).unwrap();
            assert!(
                matches!(p.end, SegmentEnd::TornTail { valid_len, whole_frame: false } if valid_len == last),
                "cut {cut}"
            );
            assert_eq!(p.frames.len(), 2);
        }
        let mut zeroed = full.clone();
        zeroed.extend([0u8; 100]);
        assert_eq!(
            parse_segment(&zeroed).unwrap().end,
            SegmentEnd::TornTail {
                valid_len: full.len() as u64,
                whole_frame: false
            }
        );
        let mut mid = full.clone();
        let first = p.frames[0].record_range().start;
        mid[first + 2] ^= 1;
        assert_eq!(
            parse_segment(&mid).unwrap().end,
            SegmentEnd::Corrupt {
                offset: p.frames[0].offset
            }
        );
    }

    /// A last frame written into zeros and cut short (a suffix missing) is
    /// a torn tail, never a whole damaged frame; one damaged in place with
    /// its end intact is a whole frame, zeros after it or not.
    #[test]
    fn a_frame_cut_short_in_a_zero_tail_is_torn_and_one_damaged_in_place_is_whole() {
        let full = segment(3);
        let p = parse_segment(&full).unwrap();
        let last = p.frames[2];
        let (start, stop) = (
            last.offset as usize,
            (last.offset + last.frame_len()) as usize,
        );
        for k in 4..stop - start {
            let mut torn = full.clone();
            torn[start + k..].fill(0);
            torn.extend([0u8; 256]);
            assert_eq!(
                parse_segment(&torn).unwrap().end,
                SegmentEnd::TornTail {
                    valid_len: last.offset,
                    whole_frame: false
                },
                "cut after {k} bytes"
            );
        }
        for zeros in [0, 256] {
            let mut edited = full.clone();
            edited[last.record_range().start + 1] ^= 0x20;
            edited.extend(std::iter::repeat_n(0u8, zeros));
            assert_eq!(
                parse_segment(&edited).unwrap().end,
                SegmentEnd::TornTail {
                    valid_len: last.offset,
                    whole_frame: true
                },
                "{zeros} zeros after"
            );
        }
    }

    /// A power loss that kept a later page of a frame but not an earlier one
    /// (a block of the zeros written ahead of it still on disk) is a torn
    /// tail; the same frame with one byte changed and no block of zeros is
    /// a whole damaged frame.
    #[test]
    fn a_frame_overlapping_a_block_of_zeros_is_torn() {
        let mut full = segment(2);
        let mut rec = vec![1u8, 4, b'a', b'c', b'm', b'e', 2, 0, 0, 0];
        rec.resize(3 * LOST_BLOCK, b'x');
        let start = full.len();
        full.extend(encode_frame_v1(&rec, &Link([7; 32])));
        assert_eq!(parse_segment(&full).unwrap().frames.len(), 3);
        let first_block = start.div_ceil(LOST_BLOCK);
        let last_block = full.len() / LOST_BLOCK;
        assert!(last_block > first_block, "the frame spans whole blocks");
        for b in first_block..last_block {
            let mut lost = full.clone();
            lost[b * LOST_BLOCK..(b + 1) * LOST_BLOCK].fill(0);
            assert_eq!(
                parse_segment(&lost).unwrap().end,
                SegmentEnd::TornTail {
                    valid_len: start as u64,
                    whole_frame: false
                },
                "block {b} lost"
            );
            // Zeros that stop one byte short of a block are not a lost block.
            let mut short = full.clone();
            short[b * LOST_BLOCK + 1..(b + 1) * LOST_BLOCK].fill(0);
            assert_eq!(
                parse_segment(&short).unwrap().end,
                SegmentEnd::TornTail {
                    valid_len: start as u64,
                    whole_frame: true
                },
                "block {b} zeroed but its first byte"
            );
        }
        assert!(overlaps_zero_block(&[0; 10], 3, 5));
        assert!(!overlaps_zero_block(&[0, 0, 0, 1], 0, 2));
        let mut tail = vec![1u8; LOST_BLOCK];
        tail.extend([0u8; 10]);
        assert!(overlaps_zero_block(&tail, LOST_BLOCK - 2, LOST_BLOCK + 3));
        assert!(!overlaps_zero_block(&tail, 0, LOST_BLOCK));
    }
}
