//! Fuzz the audit record decoder: never panics, and whatever it accepts
//! re-encodes to the same bytes (one encoding per record).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hisn_audit_log::peek_header(data);
    if let Ok((seq, event)) = hisn_audit_log::decode_record(data) {
        let again = hisn_audit_log::encode_record(seq, &event).expect("a decoded event re-encodes");
        assert_eq!(again, data, "decoder accepted a non-canonical encoding");
    }
});
