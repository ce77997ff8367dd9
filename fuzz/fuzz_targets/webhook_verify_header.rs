//! Header parsing of every scheme: arbitrary header values (and body) must
//! never panic, and never verify under a key the input cannot know.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use hisn_webhook_verify::{ManualClock, Scheme, Webhook};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    scheme: u8,
    headers: Vec<(u8, &'a [u8])>,
    url: &'a str,
    body: &'a [u8],
}

const NAMES: [&str; 14] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "stripe-signature",
    "x-hub-signature-256",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
    "paddle-signature",
    "x-twilio-signature",
    "x-signature",
];

const SCHEMES: [(&str, &str); 10] = [
    (
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    ("svix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    (
        "standard-webhooks-v1a",
        "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=",
    ),
    ("stripe", "whsec_fuzz"),
    ("github", "fuzz"),
    ("slack", "fuzz"),
    ("shopify", "fuzz"),
    ("paddle", "fuzz"),
    ("twilio", "fuzz"),
    ("generic", "fuzz"),
];

fuzz_target!(|input: Input<'_>| {
    let (name, secret) = SCHEMES[usize::from(input.scheme) % SCHEMES.len()];
    let Some(scheme) = Scheme::from_name(name) else {
        return;
    };
    let Ok(builder) = Webhook::builder(scheme).secret(secret) else {
        return;
    };
    let Ok(wh) = builder
        .clock(Arc::new(ManualClock::new(1_700_000_000)))
        .build()
    else {
        return;
    };
    let headers: Vec<(&str, &[u8])> = input
        .headers
        .iter()
        .map(|(n, v)| (NAMES[usize::from(*n) % NAMES.len()], *v))
        .collect();
    let _ = wh.verify(&headers, input.body);
    let _ = wh.verify_with_url(&headers, input.url, input.body);
});
