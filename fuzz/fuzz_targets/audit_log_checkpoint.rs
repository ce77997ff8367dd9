//! Fuzz the checkpoint note, key, operator-text and verifier-state parsers:
//! never panic, and an accepted note renders back to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cp) = hisn_audit_log::SignedCheckpoint::parse(text) {
        assert_eq!(cp.to_note(), text);
        let _ = cp.verify(&hisn_audit_log::TrustedKeys::new());
    }
    let _ = hisn_audit_log::VerifyingKey::from_text(text);
    let _ = hisn_audit_log::SigningKey::from_text(text);
    let _ = hisn_audit_log::WitnessKey::from_text(text);
    let _ = hisn_audit_log::parse_checkpoint_log(text);
    if let Ok(cps) = hisn_audit_log::parse_checkpoint_text(text) {
        let mut anchors = hisn_audit_log::Anchors::new();
        for cp in cps {
            let _ = anchors.add(cp);
        }
    }
    if let Ok(state) = hisn_audit_log::VerifierState::from_json(text) {
        let again = hisn_audit_log::VerifierState::from_json(&state.to_json().to_string());
        assert_eq!(again.ok(), Some(state));
    }
});
