//! Exact limit boundaries and configuration that must reach the wire: each
//! test pins one bound at `max` (accepted) and `max + 1` (refused), or proves a
//! setting is used by checking against an independent implementation.

use std::sync::Arc;

use base64::Engine as _;
use hisn_webhook_verify::{
    Error, GenericHmac, Limits, MAX_ID_LEN, ManualClock, Scheme, SignInput, SignatureEncoding,
    Tolerance, Webhook,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn standard(limits: Limits, tolerance: Tolerance) -> Webhook {
    Webhook::builder(Scheme::StandardWebhooks)
        .secret(SECRET)
        .unwrap()
        .limits(limits)
        .tolerance(tolerance)
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap()
}

fn signed(wh: &Webhook, body: &[u8], ts: u64) -> Vec<(String, String)> {
    wh.sign(&SignInput::new(body).id("msg_1").timestamp(ts))
        .unwrap()
}

#[test]
fn signature_entry_bound_is_inclusive() {
    let wh = standard(Limits::new(1 << 20, 4096, 3).unwrap(), Tolerance::DEFAULT);
    let mut h = signed(&wh, b"{}", NOW);
    let good = h[2].1.clone();
    let junk = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    // Exactly three entries (the genuine one last): accepted.
    h[2].1 = format!("{junk} {junk} {good}");
    assert!(wh.verify(&h, b"{}").is_ok());
    // Four: refused before any MAC.
    h[2].1 = format!("{junk} {junk} {junk} {good}");
    assert_eq!(wh.verify(&h, b"{}"), Err(Error::TooLarge));
}

#[test]
fn header_and_body_bounds_are_inclusive() {
    let body = vec![b'x'; 100];
    let good_len = signed(&standard(Limits::DEFAULT, Tolerance::DEFAULT), &body, NOW)[2]
        .1
        .len();
    // The signature header exactly at the bound verifies; one byte less of
    // bound refuses it.
    let at = standard(
        Limits::new(1 << 20, good_len, 8).unwrap(),
        Tolerance::DEFAULT,
    );
    assert!(at.verify(&signed(&at, &body, NOW), &body).is_ok());
    let under = standard(
        Limits::new(1 << 20, good_len - 1, 8).unwrap(),
        Tolerance::DEFAULT,
    );
    assert_eq!(
        under.verify(&signed(&at, &body, NOW), &body),
        Err(Error::TooLarge)
    );
    // The body exactly at the bound verifies; one byte more is refused.
    let wh = standard(Limits::new(100, 4096, 8).unwrap(), Tolerance::DEFAULT);
    assert!(wh.verify(&signed(&wh, &body, NOW), &body).is_ok());
    let mut longer = body.clone();
    longer.push(b'x');
    let big = standard(Limits::DEFAULT, Tolerance::DEFAULT);
    assert_eq!(
        wh.verify(&signed(&big, &longer, NOW), &longer),
        Err(Error::TooLarge)
    );
    assert_eq!(
        wh.sign(&SignInput::new(&longer).id("m")),
        Err(Error::TooLarge)
    );
    assert!(Limits::new(1, Limits::MAX_HEADER, Limits::MAX_ENTRIES).is_ok());
    assert!(Limits::new(1, Limits::MAX_HEADER + 1, 8).is_err());
    assert!(Limits::new(1, 4096, Limits::MAX_ENTRIES + 1).is_err());
}

/// Each limit must be non-zero on its own: one zero among valid values is
/// refused (a zero body or header limit would refuse every delivery, a zero
/// entry limit every signature).
#[test]
fn every_limit_is_refused_at_zero_on_its_own() {
    assert!(Limits::new(1, 1, 1).is_ok());
    assert!(Limits::new(0, 4096, 8).is_err());
    assert!(Limits::new(1 << 20, 0, 8).is_err());
    assert!(Limits::new(1 << 20, 4096, 0).is_err());
}

#[test]
fn past_only_tolerance_bounds_the_past_exactly_and_not_the_future() {
    let wh = standard(Limits::DEFAULT, Tolerance::past_only(60).unwrap());
    assert!(wh.verify(&signed(&wh, b"{}", NOW - 60), b"{}").is_ok());
    assert_eq!(
        wh.verify(&signed(&wh, b"{}", NOW - 61), b"{}"),
        Err(Error::Stale)
    );
    assert!(
        wh.verify(&signed(&wh, b"{}", NOW + 86_400 * 365), b"{}")
            .is_ok()
    );
    assert!(Tolerance::past_only(Tolerance::MAX_SECS).is_ok());
    assert!(Tolerance::past_only(Tolerance::MAX_SECS + 1).is_err());
    assert!(Tolerance::new(Tolerance::MAX_SECS, Tolerance::MAX_SECS).is_ok());
    assert!(Tolerance::new(0, Tolerance::MAX_SECS + 1).is_err());
}

/// Every setting of the generic scheme reaches the wire: a signature computed
/// independently (the `hmac` crate, by hand) over `id SEP ts SEP body` with
/// the configured header names, prefix, separator and encoding verifies, and
/// the same MAC under the default of any one setting does not.
#[test]
fn generic_hmac_configuration_is_honoured() {
    let key = "generic-secret";
    let cfg = || {
        GenericHmac::new("X-Sig")
            .unwrap()
            .prefix("sha256=")
            .unwrap()
            .encoding(SignatureEncoding::Base64)
            .timestamp_header("X-Ts")
            .unwrap()
            .id_header("X-Id")
            .unwrap()
            .separator(b':')
            .unwrap()
    };
    let wh = |g: GenericHmac| {
        Webhook::builder(Scheme::Generic(g))
            .secret(key)
            .unwrap()
            .clock(Arc::new(ManualClock::new(NOW)))
            .build()
            .unwrap()
    };
    let body = b"payload";
    let mac = |msg: &str| {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        m.update(msg.as_bytes());
        m.update(body);
        m.finalize().into_bytes()
    };
    let b64 = |m: &[u8]| base64::engine::general_purpose::STANDARD.encode(m);
    let good = format!("sha256={}", b64(&mac(&format!("evt_9:{NOW}:"))));
    let headers = |sig: &str| {
        vec![
            ("X-Id".to_owned(), "evt_9".to_owned()),
            ("X-Ts".to_owned(), NOW.to_string()),
            ("X-Sig".to_owned(), sig.to_owned()),
        ]
    };
    let v = wh(cfg()).verify(&headers(&good), body).unwrap();
    assert_eq!(v.event_id(), Some("evt_9"));
    assert_eq!(v.replay_id(body), "evt_9");
    assert_eq!(v.timestamp(), Some(NOW));
    // The SDK's own signer agrees with the independent computation.
    let signed = wh(cfg())
        .sign(&SignInput::new(body).id("evt_9").timestamp(NOW))
        .unwrap();
    assert!(signed.contains(&("x-sig".to_owned(), good.clone())));
    // Any one setting at its default breaks verification of that MAC.
    let wrong = [
        format!("sha256={}", b64(&mac(&format!("evt_9.{NOW}.")))), // separator
        format!("sha256={}", hex::encode(mac(&format!("evt_9:{NOW}:")))), // encoding
        b64(&mac(&format!("evt_9:{NOW}:"))),                       // prefix
        format!("sha256={}", b64(&mac(&format!("{NOW}:")))),       // id part
        format!("sha256={}", b64(&mac("evt_9:"))),                 // timestamp part
    ];
    for sig in wrong {
        assert!(wh(cfg()).verify(&headers(&sig), body).is_err(), "{sig}");
    }
    // A header under another name is not read.
    let mut renamed = headers(&good);
    renamed[2].0 = "X-Signature".into();
    assert_eq!(wh(cfg()).verify(&renamed, body), Err(Error::MissingHeader));
    let mut no_ts = headers(&good);
    no_ts.remove(1);
    assert_eq!(wh(cfg()).verify(&no_ts, body), Err(Error::MissingHeader));
    let mut no_id = headers(&good);
    no_id.remove(0);
    assert_eq!(wh(cfg()).verify(&no_id, body), Err(Error::MissingHeader));
}

/// Standard Webhooks headers are found in one pass over a header list
/// (`Headers::pairs`) but by name lookups in an `http::HeaderMap`. Both must
/// give the same answer, including which error wins when several apply: the
/// one-pass lookup answers in the order the names were once looked up one by
/// one (signature, then the svix alias, then id, then timestamp).
#[cfg(feature = "http")]
#[test]
fn standard_header_lookup_answers_alike_from_a_list_and_a_header_map() {
    let wh = standard(Limits::new(1 << 20, 200, 8).unwrap(), Tolerance::DEFAULT);
    let body = b"{}";
    let good = signed(&wh, body, NOW);
    let (id, ts, sig) = (good[0].1.clone(), good[1].1.clone(), good[2].1.clone());
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let long = "v1,".to_owned() + &"A".repeat(300);
    type Case = (Vec<(String, String)>, Result<(), Error>);
    let cases: Vec<Case> = vec![
        (good.clone(), Ok(())),
        (
            h(&[
                ("Webhook-ID", &id),
                ("WEBHOOK-timestamp", &ts),
                ("webhook-Signature", &sig),
            ]),
            Ok(()),
        ),
        (
            h(&[
                ("svix-id", &id),
                ("svix-timestamp", &ts),
                ("svix-signature", &sig),
            ]),
            Ok(()),
        ),
        // The webhook-* set wins; svix junk, even repeated, is not read.
        (
            h(&[
                ("webhook-id", &id),
                ("svix-id", "x"),
                ("svix-id", "y"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
            ]),
            Ok(()),
        ),
        (
            h(&[("webhook-id", &id), ("webhook-timestamp", &ts)]),
            Err(Error::MissingHeader),
        ),
        (
            h(&[("webhook-id", &id), ("webhook-signature", &sig)]),
            Err(Error::MissingHeader),
        ),
        (
            h(&[("webhook-timestamp", &ts), ("webhook-signature", &sig)]),
            Err(Error::MissingHeader),
        ),
        (
            h(&[
                ("webhook-id", &id),
                ("webhook-id", &id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
            ]),
            Err(Error::Malformed),
        ),
        (
            h(&[
                ("webhook-id", &id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
                ("Webhook-Signature", &sig),
            ]),
            Err(Error::Malformed),
        ),
        // The signature's error comes first: too large before a repeated id.
        (
            h(&[
                ("webhook-id", &id),
                ("webhook-id", &id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &long),
            ]),
            Err(Error::TooLarge),
        ),
        // A repeated id before a missing timestamp.
        (
            h(&[
                ("webhook-id", &id),
                ("webhook-id", &id),
                ("webhook-signature", &sig),
            ]),
            Err(Error::Malformed),
        ),
        // The svix alias: its own repeats and bounds.
        (
            h(&[
                ("svix-id", &id),
                ("svix-timestamp", &ts),
                ("svix-signature", &sig),
                ("svix-signature", &sig),
            ]),
            Err(Error::Malformed),
        ),
        (
            h(&[
                ("svix-id", &id),
                ("svix-timestamp", &ts),
                ("svix-signature", &long),
            ]),
            Err(Error::TooLarge),
        ),
    ];
    for (i, (list, want)) in cases.into_iter().enumerate() {
        let mut map = http::HeaderMap::new();
        for (k, v) in &list {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let from_list = wh.verify(&list, body).map(|_| ());
        let from_map = wh.verify(&map, body).map(|_| ());
        assert_eq!(from_list, want, "case {i}: list");
        assert_eq!(from_map, want, "case {i}: header map");
    }
}

/// A signed message id is 1..=256 visible characters ([`MAX_ID_LEN`]): an id
/// of exactly 256 is signed, verified and returned whole; 257 is refused by
/// the signer and by the verifier (before any MAC).
#[test]
fn message_id_length_limit_is_256_bytes_inclusive() {
    assert_eq!(MAX_ID_LEN, 256);
    let wh = standard(Limits::DEFAULT, Tolerance::DEFAULT);
    let id = "i".repeat(MAX_ID_LEN);
    let h = wh
        .sign(&SignInput::new(b"{}").id(&id).timestamp(NOW))
        .unwrap();
    let v = wh.verify(&h, b"{}").unwrap();
    assert_eq!(v.event_id(), Some(id.as_str()));
    assert_eq!(v.replay_id(b"{}"), id);
    let longer = "i".repeat(MAX_ID_LEN + 1);
    assert_eq!(
        wh.sign(&SignInput::new(b"{}").id(&longer).timestamp(NOW)),
        Err(Error::InvalidId)
    );
    let mut h = h;
    h[0].1 = longer;
    assert_eq!(wh.verify(&h, b"{}"), Err(Error::Malformed));
}

/// The generic scheme signs `id SEP ts SEP body`: an id holding the separator
/// would let the parts split two ways, so the signer refuses it (as it
/// refuses any id that is not a valid message id) and the verifier answers
/// `Malformed`.
#[test]
fn generic_ids_holding_the_separator_are_refused_both_ways() {
    let g = GenericHmac::new("X-Sig")
        .unwrap()
        .id_header("X-Id")
        .unwrap()
        .separator(b':')
        .unwrap();
    let wh = Webhook::builder(Scheme::Generic(g))
        .secret("generic-secret")
        .unwrap()
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    let sign = |id: &str| wh.sign(&SignInput::new(b"body").id(id));
    // ':' is a valid id character elsewhere, not next to a ':' separator.
    assert_eq!(sign("evt:1"), Err(Error::InvalidId));
    // Not a message id at all (a '.', a space), separator or not.
    assert_eq!(sign("evt.1"), Err(Error::InvalidId));
    assert_eq!(sign("evt 1"), Err(Error::InvalidId));
    assert_eq!(wh.sign(&SignInput::new(b"body")), Err(Error::InvalidId));
    let mut h = sign("evt-1").unwrap();
    assert!(wh.verify(&h, b"body").is_ok());
    let id = h.iter_mut().find(|(k, _)| k == "x-id").unwrap();
    id.1 = "evt:1".into();
    assert_eq!(wh.verify(&h, b"body"), Err(Error::Malformed));
}

/// Secret length bounds, inclusive: a Standard Webhooks secret decodes to
/// 16..=1024 bytes; a raw secret (GitHub and the other text secrets) is at
/// most 1024 bytes.
#[test]
fn secret_length_limits_are_inclusive() {
    let b64 = |n: usize| {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
        )
    };
    let add = |scheme: Scheme, secret: &str| Webhook::builder(scheme).secret(secret).map(|_| ());
    assert_eq!(
        add(Scheme::StandardWebhooks, &b64(15)),
        Err(Error::SecretLength)
    );
    assert_eq!(add(Scheme::StandardWebhooks, &b64(16)), Ok(()));
    assert_eq!(add(Scheme::StandardWebhooks, &b64(1024)), Ok(()));
    assert_eq!(
        add(Scheme::StandardWebhooks, &b64(1025)),
        Err(Error::SecretLength)
    );
    assert_eq!(add(Scheme::GitHub, &"k".repeat(1024)), Ok(()));
    assert_eq!(
        add(Scheme::GitHub, &"k".repeat(1025)),
        Err(Error::SecretLength)
    );
    let stripe = |n: usize| format!("whsec_{}", "k".repeat(n - 6));
    assert_eq!(add(Scheme::Stripe, &stripe(1024)), Ok(()));
    assert_eq!(add(Scheme::Stripe, &stripe(1025)), Err(Error::SecretLength));
}

/// The generic prefix is 0..=32 visible ASCII characters.
#[test]
fn generic_prefix_is_at_most_32_visible_characters() {
    let g = || GenericHmac::new("X-Sig").unwrap();
    assert!(g().prefix("").is_ok());
    assert!(g().prefix(&"p".repeat(32)).is_ok());
    assert!(g().prefix(&"p".repeat(33)).is_err());
    assert!(g().prefix("sha256 =").is_err());
    assert!(g().prefix("é").is_err());
}
