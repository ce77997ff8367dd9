//! Fuzz the checkpoint note, key, operator-text, store-log (with kept Merkle
//! edges) and verifier-state parsers: never panic, an accepted note renders
//! back to the same text, and a kept edge is returned only when it has the
//! note's size and root.
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
    // The store's own log with the Merkle edge kept beside a note: an edge
    // comes back only when it is one of the note's size and root.
    for (cp, edge) in hisn_audit_log::parse_checkpoint_edges(text) {
        if let Some(f) = edge {
            assert_eq!(f.size(), cp.checkpoint.size);
            assert_eq!(Some(f.root()), cp.checkpoint.root);
        }
    }
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
