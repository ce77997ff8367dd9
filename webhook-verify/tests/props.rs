//! Any single-bit change to the body, a signed header or the secret fails.

use std::sync::Arc;

use hisn_webhook_verify::{Error, ManualClock, Scheme, SignInput, Webhook};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

fn wh(scheme: &str, secret: &str) -> Webhook {
    Webhook::builder(Scheme::from_name(scheme).unwrap())
        .secret(secret)
        .unwrap()
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap()
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    let i = bit % (v.len() * 8);
    v[i / 8] ^= 1 << (i % 8);
    v
}

const SCHEMES: [(&str, &str); 8] = [
    (
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    (
        "standard-webhooks-v1a",
        "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=",
    ),
    ("stripe", "whsec_proptest_secret"),
    ("github", "github proptest secret"),
    ("slack", "slack-proptest-secret"),
    ("shopify", "shopify-proptest-secret"),
    ("paddle", "pdl_proptest_secret"),
    ("generic", "generic-proptest-secret"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn body_bit_flip_fails(idx in 0usize..SCHEMES.len(), body in proptest::collection::vec(any::<u8>(), 1..256), bit in any::<usize>()) {
        let (scheme, secret) = SCHEMES[idx];
        let w = wh(scheme, secret);
        let hs = w.sign(&SignInput::new(&body).id("msg_prop")).unwrap();
        prop_assert!(w.verify(&hs, &body).is_ok());
        prop_assert_eq!(w.verify(&hs, &flip(&body, bit)), Err(Error::NoMatchingSignature));
    }

    #[test]
    fn signed_header_bit_flip_fails(idx in 0usize..SCHEMES.len(), which in any::<usize>(), bit in any::<usize>()) {
        let (scheme, secret) = SCHEMES[idx];
        let w = wh(scheme, secret);
        let body = b"{\"amount\":100}";
        let hs = w.sign(&SignInput::new(body).id("msg_prop")).unwrap();
        let h = which % hs.len();
        let changed = flip(hs[h].1.as_bytes(), bit);
        let mut tampered: Vec<(String, Vec<u8>)> = hs.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
        tampered[h].1 = changed;
        prop_assert!(w.verify(&tampered, body).is_err());
    }

    #[test]
    fn secret_bit_flip_fails(bit in any::<usize>()) {
        // Raw-text secret schemes: flip one bit of the secret text (kept printable ASCII,
        // non-whitespace, so the secret still loads).
        let secret = "github-proptest-secret";
        let flipped = flip(secret.as_bytes(), bit % (secret.len() * 7));
        prop_assume!(flipped.iter().all(u8::is_ascii_graphic));
        let flipped = String::from_utf8(flipped).unwrap();
        let body = b"payload";
        for scheme in ["github", "slack", "shopify", "paddle", "generic"] {
            let hs = wh(scheme, secret).sign(&SignInput::new(body)).unwrap();
            prop_assert_eq!(wh(scheme, &flipped).verify(&hs, body), Err(Error::NoMatchingSignature));
        }
    }

    #[test]
    fn standard_secret_bit_flip_fails(bit in 0usize..(24 * 8)) {
        use base64::Engine as _;
        let raw = [7u8; 24];
        let b64 = base64::engine::general_purpose::STANDARD;
        let secret = format!("whsec_{}", b64.encode(raw));
        let flipped = format!("whsec_{}", b64.encode(flip(&raw, bit)));
        let body = b"payload";
        let hs = wh("standard-webhooks", &secret).sign(&SignInput::new(body).id("msg_x")).unwrap();
        prop_assert_eq!(wh("standard-webhooks", &flipped).verify(&hs, body), Err(Error::NoMatchingSignature));
    }

    #[test]
    fn arbitrary_headers_never_panic(sig in ".{0,300}", ts in ".{0,20}", id in ".{0,300}") {
        let w = wh("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let hs = [("webhook-id", id.as_str()), ("webhook-timestamp", ts.as_str()), ("webhook-signature", sig.as_str())];
        prop_assert!(w.verify(&hs, b"x").is_err());
        let s = wh("stripe", "whsec_x");
        prop_assert!(s.verify(&[("Stripe-Signature", sig.as_str())], b"x").is_err());
    }
}
