//! Fuzz the file store's persisted subject index (`<segment>.sidx`, v2): the
//! cold reader's header, bucket and offset reads and the writer's whole-file
//! decode never panic, never read past the file, and agree with each other.
//!
//! Input: `flags | key length (u8) | key | segment length (u16 LE) | segment
//! | index`. Flag bit 0 reseals the index first (recomputes its checksums and
//! segment binding, as anyone who can write the store can), so the parsers
//! behind the checksums are reached too.
#![no_main]

use hisn_audit_log::store::file::fuzz_subject_index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&klen, rest)) = rest.split_first() else {
        return;
    };
    let Some((key, rest)) = rest.split_at_checked(usize::from(klen)) else {
        return;
    };
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    let Some((slen, rest)) = rest.split_at_checked(2) else {
        return;
    };
    let slen = usize::from(u16::from_le_bytes([slen[0], slen[1]]));
    let Some((segment, index)) = rest.split_at_checked(slen) else {
        return;
    };
    if let Err(broken) = fuzz_subject_index(index, segment, key, flags & 1 == 1) {
        panic!("subject index invariant broken: {broken}");
    }
});
