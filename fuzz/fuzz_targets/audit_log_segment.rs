//! Fuzz the file store's segment reader: never panics, frames it reports lie
//! inside the input, and a clean parse accounts for every byte.
#![no_main]

use hisn_audit_log::store::segment::{SegmentEnd, parse_frame, parse_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(seg) = parse_segment(data) else { return };
    let mut end = 0u64;
    for f in &seg.frames {
        let r = f.record_range();
        assert!(r.end + 32 <= data.len());
        let frame = &data[f.offset as usize..(f.offset + f.frame_len()) as usize];
        assert!(parse_frame(frame, seg.header.version).is_some());
        let _ = hisn_audit_log::decode_record(&data[r]);
        end = f.offset + f.frame_len();
    }
    match seg.end {
        SegmentEnd::Clean => assert!(seg.frames.is_empty() || end == data.len() as u64),
        SegmentEnd::TornTail { valid_len, .. } => assert!(valid_len <= data.len() as u64),
        SegmentEnd::Corrupt { offset } => assert!(offset < data.len() as u64),
    }
});
