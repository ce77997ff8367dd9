//! Every error renders to a fixed, coarse message holding no secret material.

use hisn_webhook_verify::Error;

#[test]
fn every_error_renders_coarsely() {
    let all: [(Error, &str); 20] = [
        (Error::MissingHeader, "missing webhook header"),
        (Error::Malformed, "malformed webhook header"),
        (
            Error::TooLarge,
            "webhook request exceeds a configured size limit",
        ),
        (Error::NoMatchingSignature, "no matching webhook signature"),
        (Error::Stale, "webhook timestamp outside the tolerance"),
        (Error::UrlRequired, "this scheme needs the request URL"),
        (Error::SecretEmpty, "webhook secret is empty"),
        (
            Error::SecretWhitespace,
            "webhook secret has leading or trailing whitespace",
        ),
        (
            Error::SecretLooksLikeSignature,
            "webhook secret looks like a signature, not a secret",
        ),
        (
            Error::SecretWrongPrefix,
            "webhook secret has the wrong prefix for this scheme",
        ),
        (Error::SecretEncoding, "webhook secret is not valid base64"),
        (Error::SecretLength, "webhook secret has the wrong length"),
        (
            Error::SecretWeakKey,
            "webhook public key is a weak (small-order) point",
        ),
        (Error::NoUsableKey, "webhook keyring has no usable key"),
        (
            Error::InvalidConfig("tolerance exceeds one day"),
            "invalid webhook configuration: tolerance exceeds one day",
        ),
        (Error::SigningUnavailable, "signing needs a private key"),
        (Error::InvalidId, "invalid webhook message id"),
        (Error::StoreUnavailable, "webhook replay store unavailable"),
        (Error::StoreFull, "webhook replay store full"),
        (
            Error::InvalidConfig("limits must be non-zero"),
            "invalid webhook configuration: limits must be non-zero",
        ),
    ];
    for (e, msg) in all {
        assert_eq!(e.to_string(), msg);
    }
}

#[test]
fn failures_never_echo_secret_signature_or_body() {
    use std::sync::Arc;

    use hisn_webhook_verify::{ManualClock, Scheme, SignInput, Webhook};
    let secret = "whsec_SECRETSECRETSECRETSECRET";
    let wh = Webhook::builder(Scheme::Stripe)
        .secret(secret)
        .unwrap()
        .clock(Arc::new(ManualClock::new(100)))
        .build()
        .unwrap();
    let good = wh.sign(&SignInput::new(b"BODYBYTES")).unwrap();
    let expected_hex = good[0].1.split("v1=").nth(1).unwrap().to_owned();
    let bad = [(
        "Stripe-Signature",
        "t=100,v1=0000000000000000000000000000000000000000000000000000000000000000",
    )];
    let err = wh.verify(&bad, b"BODYBYTES").unwrap_err();
    for shown in [err.to_string(), format!("{err:?}"), format!("{wh:?}")] {
        assert!(
            !shown.contains("SECRET")
                && !shown.contains(&expected_hex)
                && !shown.contains("BODYBYTES"),
            "{shown}"
        );
    }
    // Secret mistakes are reported without echoing the secret either.
    let e = Webhook::builder(Scheme::StandardWebhooks)
        .secret("v1,whsec_SECRETSECRET")
        .unwrap_err();
    assert_eq!(e, Error::SecretLooksLikeSignature);
    assert!(!e.to_string().contains("SECRET"));
}
