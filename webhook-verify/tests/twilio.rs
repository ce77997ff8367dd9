//! Twilio: the replay id follows what the signature covers, and the URL
//! verifies with and without its default port, as the provider's own
//! validators accept.

use hisn_webhook_verify::replay::{Claim, MemoryReplayStore, ReplayKey, ReplayPolicy};
use hisn_webhook_verify::{Error, Limits, Scheme, SignInput, Webhook};

const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const BODY: &str = "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";

fn twilio() -> Webhook {
    Webhook::builder(Scheme::Twilio)
        .secret("12345")
        .unwrap()
        .build()
        .unwrap()
}

/// Root cause: `Verified::replay_id` hashed the raw body, but Twilio signs
/// the URL followed by the sorted, percent-decoded parameters, and has no
/// timestamp. Reordering parameters, changing `%2B` to `%2b`, `+` to `%20` or
/// adding empty `&` pairs kept the signature valid and produced a fresh
/// replay id each time, so a captured delivery could be replayed without
/// limit. The replay id is now a digest of the signed string itself.
#[test]
fn twilio_replay_id_is_what_the_signature_covers() {
    let wh = twilio();
    let headers = wh.sign(&SignInput::new(BODY.as_bytes()).url(URL)).unwrap();
    // The documented signature: signing reproduces Twilio's own example.
    assert_eq!(headers[0].1, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    let original = wh.verify_with_url(&headers, URL, BODY.as_bytes()).unwrap();
    let id = original.replay_id(BODY.as_bytes());
    let variants = [
        // Reordered parameters.
        "To=%2B18005551212&From=%2B12349013030&Digits=1234&Caller=%2B12349013030&CallSid=CA1234567890ABCDE",
        // Lowercase percent escapes.
        "CallSid=CA1234567890ABCDE&Caller=%2b12349013030&Digits=1234&From=%2b12349013030&To=%2b18005551212",
        // Stray separators.
        "&&CallSid=CA1234567890ABCDE&Caller=%2B12349013030&&Digits=1234&From=%2B12349013030&To=%2B18005551212&",
        // Escaped plain characters.
        "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=%31234&From=%2B12349013030&To=%2B18005551212",
    ];
    let store = MemoryReplayStore::default();
    let key = ReplayKey::new("tenant", "twilio", &id).unwrap();
    assert!(matches!(
        store.claim_now(&key, &ReplayPolicy::DEFAULT).unwrap(),
        Claim::New(_)
    ));
    for body in variants {
        let v = wh.verify_with_url(&headers, URL, body.as_bytes()).unwrap();
        let vid = v.replay_id(body.as_bytes());
        assert_eq!(vid, id, "{body}");
        let key = ReplayKey::new("tenant", "twilio", &vid).unwrap();
        assert_eq!(
            store.claim_now(&key, &ReplayPolicy::DEFAULT).unwrap(),
            Claim::InProgress,
            "a variant got a fresh claim: {body}"
        );
    }
    // A different signed value is a different delivery, with another id.
    let other = BODY.replace("Digits=1234", "Digits=1235");
    let h2 = wh.sign(&SignInput::new(other.as_bytes()).url(URL)).unwrap();
    let v2 = wh.verify_with_url(&h2, URL, other.as_bytes()).unwrap();
    assert_ne!(v2.replay_id(other.as_bytes()), id);
    // The URL is covered too: another query is another id.
    let url2 = "https://mycompany.com/myapp.php?foo=1&bar=3";
    let h3 = wh.sign(&SignInput::new(BODY.as_bytes()).url(url2)).unwrap();
    let v3 = wh.verify_with_url(&h3, url2, BODY.as_bytes()).unwrap();
    assert_ne!(v3.replay_id(BODY.as_bytes()), id);
}

/// Root cause: the verifier signed-string used the URL exactly as given,
/// while Twilio's validators also accept the URL with the default port added
/// or removed (proxies and frameworks differ on whether `:443` appears), so
/// genuine deliveries failed. Both spellings are now tried, and both give one
/// replay id.
#[test]
fn twilio_url_verifies_with_and_without_the_default_port() {
    let wh = twilio();
    let pairs = [
        (
            "https://mycompany.com/myapp.php?foo=1",
            "https://mycompany.com:443/myapp.php?foo=1",
        ),
        ("http://mycompany.com/hook", "http://mycompany.com:80/hook"),
        ("https://mycompany.com", "https://mycompany.com:443"),
    ];
    for (plain, ported) in pairs {
        for (signed_with, received_at) in [(plain, ported), (ported, plain)] {
            let h = wh
                .sign(&SignInput::new(BODY.as_bytes()).url(signed_with))
                .unwrap();
            let v = wh
                .verify_with_url(&h, received_at, BODY.as_bytes())
                .unwrap_or_else(|e| panic!("{signed_with} at {received_at}: {e}"));
            let same = wh
                .verify_with_url(&h, signed_with, BODY.as_bytes())
                .unwrap();
            assert_eq!(
                v.replay_id(BODY.as_bytes()),
                same.replay_id(BODY.as_bytes())
            );
        }
    }
    // Only the scheme's own default port is optional.
    for (signed_with, received_at) in [
        ("https://mycompany.com/h", "https://mycompany.com:8443/h"),
        ("https://mycompany.com/h", "https://mycompany.com:80/h"),
        ("http://mycompany.com/h", "http://mycompany.com:443/h"),
        ("https://mycompany.com:8443/h", "https://mycompany.com/h"),
        ("https://mycompany.com/h", "https://mycompany.com/h/"),
    ] {
        let h = wh
            .sign(&SignInput::new(BODY.as_bytes()).url(signed_with))
            .unwrap();
        assert_eq!(
            wh.verify_with_url(&h, received_at, BODY.as_bytes()),
            Err(Error::NoMatchingSignature),
            "{signed_with} at {received_at}"
        );
    }
}

#[test]
fn twilio_json_body_replay_id_covers_the_body_hash() {
    let wh = twilio();
    let body = br#"{"a":1}"#;
    let hash = hex_sha256(body);
    let url = format!("https://mycompany.com/json?bodySHA256={hash}");
    let ported = format!("https://mycompany.com:443/json?bodySHA256={hash}");
    let h = wh.sign(&SignInput::new(body).url(&url)).unwrap();
    let a = wh.verify_with_url(&h, &url, body).unwrap();
    let b = wh.verify_with_url(&h, &ported, body).unwrap();
    assert_eq!(a.replay_id(body), b.replay_id(body));
    assert_eq!(
        wh.verify_with_url(&h, &url, br#"{"a":2}"#),
        Err(Error::NoMatchingSignature)
    );
}

/// The request URL is signed data of the sender's choosing, so it is held
/// to the header bound (`Limits::max_header`): a URL of exactly the bound
/// verifies, one byte longer is refused as `TooLarge` before any MAC.
#[test]
fn twilio_url_length_bound_is_inclusive() {
    let max = 100;
    let bounded = Webhook::builder(Scheme::Twilio)
        .secret("12345")
        .unwrap()
        .limits(Limits::new(Limits::DEFAULT_MAX_BODY, max, Limits::DEFAULT_MAX_ENTRIES).unwrap())
        .build()
        .unwrap();
    let base = "https://mycompany.com/hook?p=";
    let at = format!("{base}{}", "a".repeat(max - base.len()));
    let over = format!("{at}a");
    assert_eq!((at.len(), over.len()), (max, max + 1));
    let unbounded = twilio();
    for (url, want) in [(&at, Ok(())), (&over, Err(Error::TooLarge))] {
        let h = unbounded
            .sign(&SignInput::new(BODY.as_bytes()).url(url))
            .unwrap();
        assert!(unbounded.verify_with_url(&h, url, BODY.as_bytes()).is_ok());
        assert_eq!(
            bounded
                .verify_with_url(&h, url, BODY.as_bytes())
                .map(|_| ()),
            want,
            "{} bytes",
            url.len()
        );
    }
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}
