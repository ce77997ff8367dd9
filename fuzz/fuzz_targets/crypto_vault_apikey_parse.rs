//! API key parser on untrusted tokens: never panics; a token it accepts has the
//! documented shape; verification of a random token against a record fails.
#![no_main]

use hisn_crypto_vault::{ApiKeyRecord, ApiKeys, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = ApiKeys::new("hisn_live", SecretKey::from_bytes([1; 32])) else {
        return;
    };
    if let Ok(id) = keys.parse_id(token) {
        assert_eq!(id.len(), 12);
        assert!(token.starts_with("hisn_live_"));
        let record = ApiKeyRecord {
            id: id.to_owned(),
            hash: [0; 32],
            scopes: Default::default(),
            expires_at: None,
            revoked: false,
        };
        assert!(keys.verify(token, &record, 0, None).is_err());
    }
});
