//! The verifier and signer: a [`Scheme`], a keyring, a [`Tolerance`], [`Limits`]
//! and a [`Clock`]. Each scheme family parses its headers (and signs) in its
//! own module; this one holds what they share: bounds, the keyring, the
//! timestamp check and the MAC comparison.

mod generic;
mod limits;
pub(crate) mod parsed;
mod replay_window;
mod simple;
mod standard;
mod stripe_paddle;
mod twilio;

use std::sync::Arc;

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use limits::{Limits, MAX_ID_LEN, MAX_KEYS, Tolerance};
use parsed::{Parsed, Prefix, any_ct_eq, prefixed_sha1, prefixed_sha256};

use crate::clock::{Clock, SystemClock};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::scheme::{KeyMaterial, Scheme};

#[derive(Clone)]
struct KeyEntry {
    material: KeyMaterial,
    not_after: Option<u64>,
}

impl KeyEntry {
    fn live(&self, now: u64) -> bool {
        self.not_after.is_none_or(|t| now <= t)
    }
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kind", &self.material.kind())
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Builds a [`Webhook`]: choose the scheme, add keys, optionally change the
/// tolerance, limits and clock.
#[derive(Debug)]
pub struct WebhookBuilder {
    scheme: Scheme,
    keys: Vec<KeyEntry>,
    tolerance: Tolerance,
    limits: Limits,
    clock: Arc<dyn Clock>,
}

impl WebhookBuilder {
    /// Add a secret (or, for v1a, a `whsk_`/`whpk_` key) that never expires.
    /// The text is checked for common mistakes; see [`Error`] for each.
    pub fn secret(self, secret: &str) -> Result<Self> {
        self.add(secret, None)
    }

    /// Add a secret that stops verifying (and signing) after `not_after`
    /// (Unix seconds, inclusive): the rotation window of an old secret.
    pub fn secret_not_after(self, secret: &str, not_after: u64) -> Result<Self> {
        self.add(secret, Some(not_after))
    }

    fn add(mut self, secret: &str, not_after: Option<u64>) -> Result<Self> {
        if self.keys.len() >= MAX_KEYS {
            return Err(Error::InvalidConfig("too many keys in the keyring"));
        }
        let material = self.scheme.parse_key(secret)?;
        self.keys.push(KeyEntry {
            material,
            not_after,
        });
        Ok(self)
    }

    /// Timestamp tolerance (default [`Tolerance::DEFAULT`]).
    pub fn tolerance(mut self, tolerance: Tolerance) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Size bounds (default [`Limits::DEFAULT`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Finish; fails with [`Error::NoUsableKey`] when no key was added.
    pub fn build(self) -> Result<Webhook> {
        if self.keys.is_empty() {
            return Err(Error::NoUsableKey);
        }
        Ok(Webhook {
            scheme: self.scheme,
            keys: self.keys,
            tolerance: self.tolerance,
            limits: self.limits,
            clock: self.clock,
        })
    }
}

/// A configured verifier (and signer) for one scheme and keyring.
///
/// `Debug` prints the scheme, key kinds and expiries, never key material.
#[derive(Debug, Clone)]
pub struct Webhook {
    scheme: Scheme,
    keys: Vec<KeyEntry>,
    tolerance: Tolerance,
    limits: Limits,
    clock: Arc<dyn Clock>,
}

/// A successfully verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    key_index: usize,
    timestamp: Option<u64>,
    /// The last Unix second at which this delivery still verifies (the
    /// timestamp plus the past tolerance of the webhook that verified it),
    /// for schemes with a timestamp.
    accepted_until: Option<u64>,
    event_id: Option<EventId>,
    /// Twilio: SHA-256 of the signed string (URL without default port, then
    /// the sorted decoded parameters).
    replay_digest: Option<[u8; 32]>,
}

/// A signed message id, held inline (ids are at most [`MAX_ID_LEN`] visible
/// ASCII bytes): a verification allocates nothing for it.
#[derive(Clone, PartialEq, Eq)]
struct EventId {
    len: usize,
    /// The id, then zeros (so derived equality compares ids).
    buf: [u8; MAX_ID_LEN],
}

impl EventId {
    /// `None` if `id` is longer than [`MAX_ID_LEN`] (the caller has refused
    /// that, and checked that `id` is UTF-8).
    fn new(id: &[u8]) -> Option<Self> {
        let mut buf = [0u8; MAX_ID_LEN];
        buf.get_mut(..id.len())?.copy_from_slice(id);
        Some(Self { len: id.len(), buf })
    }

    fn as_str(&self) -> &str {
        // Checked to be UTF-8 before it was built: "" cannot be reached.
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Verified {
    /// Index (in the order added) of the key that verified the signature.
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// The signed timestamp, for schemes that have one.
    pub fn timestamp(&self) -> Option<u64> {
        self.timestamp
    }

    /// The last Unix second at which this same delivery still verifies
    /// (its timestamp plus the past tolerance of the webhook that verified
    /// it), for schemes with a timestamp; `None` otherwise. A replay store
    /// must remember the delivery at least until then: see
    /// [`Webhook::replay_policy`].
    pub fn accepted_until(&self) -> Option<u64> {
        self.accepted_until
    }

    /// The message id covered by the signature (Standard Webhooks, generic
    /// with an id header). Unsigned id headers are never returned here.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_ref().map(EventId::as_str)
    }

    /// The id to claim in a replay store, derived only from what the
    /// signature covers: the signed event id when the scheme has one
    /// (Standard Webhooks, generic with an id header); for Twilio,
    /// `sha256:<hex>` of the signed string (URL without its default port,
    /// then the sorted decoded parameters), so reordered parameters, `%2B`
    /// versus `%2b`, stray `&` or an added `:443` give the same id; otherwise
    /// `sha256:<hex of the body>` (providers retry with the same body).
    ///
    /// Never an unsigned id header, which an attacker could change. `body`
    /// must be the body that was verified.
    pub fn replay_id(&self, body: &[u8]) -> String {
        match (&self.event_id, &self.replay_digest) {
            (Some(id), _) => id.as_str().to_owned(),
            (None, Some(d)) => format!("sha256:{}", encoding::hex_lower(d)),
            (None, None) => format!("sha256:{}", encoding::hex_lower(&Sha256::digest(body))),
        }
    }
}

/// What to sign: the body, and where the scheme needs them, an id, a
/// timestamp (default: the clock's now) and the URL (Twilio).
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    pub(crate) body: &'a [u8],
    pub(crate) id: Option<&'a str>,
    pub(crate) timestamp: Option<u64>,
    pub(crate) url: Option<&'a str>,
}

impl<'a> SignInput<'a> {
    /// Sign `body`.
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            id: None,
            timestamp: None,
            url: None,
        }
    }

    /// The message id (Standard Webhooks: required; generic with id header).
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// The timestamp to sign (default: now by the webhook's clock).
    pub fn timestamp(mut self, unix: u64) -> Self {
        self.timestamp = Some(unix);
        self
    }

    /// The full request URL (Twilio).
    pub fn url(mut self, url: &'a str) -> Self {
        self.url = Some(url);
        self
    }
}

fn debug_event(_scheme: &Scheme, _what: &'static str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        scheme = _scheme.name(),
        reason = _what,
        "webhook verification failed"
    );
}

impl Webhook {
    /// Start building a verifier for `scheme`.
    pub fn builder(scheme: Scheme) -> WebhookBuilder {
        WebhookBuilder {
            scheme,
            keys: Vec::new(),
            tolerance: Tolerance::DEFAULT,
            limits: Limits::DEFAULT,
            clock: Arc::new(SystemClock),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Verify a delivery from its headers and raw body bytes.
    ///
    /// Bounds are checked first, then the header is parsed strictly, then the
    /// timestamp, and only then at most one MAC per live key is computed and
    /// compared in constant time with every signature entry.
    pub fn verify<H: Headers + ?Sized>(&self, headers: &H, body: &[u8]) -> Result<Verified> {
        self.verify_inner(headers, body, None)
    }

    /// Like [`Webhook::verify`], with the full request URL (needed by Twilio,
    /// ignored by the other schemes).
    pub fn verify_with_url<H: Headers + ?Sized>(
        &self,
        headers: &H,
        url: &str,
        body: &[u8],
    ) -> Result<Verified> {
        self.verify_inner(headers, body, Some(url))
    }

    fn verify_inner<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        url: Option<&str>,
    ) -> Result<Verified> {
        let res = self.verify_checked(headers, body, url);
        if let Err(e) = &res {
            debug_event(
                &self.scheme,
                match e {
                    Error::MissingHeader => "missing header",
                    Error::TooLarge => "size limit",
                    Error::Stale => "timestamp outside tolerance",
                    Error::NoMatchingSignature => "no matching signature",
                    _ => "malformed",
                },
            );
        }
        res
    }

    fn verify_checked<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        url: Option<&str>,
    ) -> Result<Verified> {
        if body.len() > self.limits.max_body {
            return Err(Error::TooLarge);
        }
        let parsed = self.parse(headers, body, url)?;
        let now = self.clock.now_unix();
        if let Some(ts) = parsed.timestamp {
            self.tolerance.check(ts, now)?;
        }
        if let Some(expected) = parsed.body_sha256 {
            let actual: [u8; 32] = Sha256::digest(body).into();
            if !bool::from(actual.ct_eq(&expected)) {
                return Err(Error::NoMatchingSignature);
            }
        }
        // Checked here (before any MAC), copied only once a signature matched.
        let event_id = match parsed.id {
            Some(id) if std::str::from_utf8(id).is_err() || id.len() > MAX_ID_LEN => {
                return Err(Error::Malformed);
            }
            id => id,
        };
        let body_part: &[u8] = if parsed.body_in_prefix { &[] } else { body };
        for (index, key) in self.keys.iter().enumerate() {
            if !key.live(now) {
                continue;
            }
            if self.key_matches(&key.material, &parsed, body_part) {
                return Ok(Verified {
                    key_index: index,
                    timestamp: parsed.timestamp,
                    accepted_until: parsed.timestamp.map(|ts| self.tolerance.accepted_until(ts)),
                    event_id: event_id.and_then(EventId::new),
                    replay_digest: parsed.replay_digest,
                });
            }
        }
        Err(Error::NoMatchingSignature)
    }

    fn key_matches(&self, key: &KeyMaterial, parsed: &Parsed<'_>, body: &[u8]) -> bool {
        let alt = parsed.alt_prefix.as_deref().map(Prefix::one);
        let prefixes = std::iter::once(&parsed.prefix).chain(alt.as_ref());
        match key {
            KeyMaterial::Sha256(state) => prefixes.into_iter().any(|p| {
                let mac = prefixed_sha256(state, p, body);
                any_ct_eq(parsed.sigs.as_slice(), parsed.sig_len, &mac)
            }),
            KeyMaterial::Sha1(state) => prefixes.into_iter().any(|p| {
                let mac = prefixed_sha1(state, p, body);
                any_ct_eq(parsed.sigs.as_slice(), parsed.sig_len, &mac)
            }),
            KeyMaterial::Ed25519 { verifying, .. } => {
                if parsed.sig_len != 64 {
                    return false;
                }
                let mut msg = parsed.prefix.to_vec();
                msg.extend_from_slice(body);
                parsed.sigs.as_slice().iter().any(|s| {
                    verifying
                        .verify_strict(&msg, &Signature::from_bytes(s))
                        .is_ok()
                })
            }
        }
    }

    /// The scheme family's parser.
    fn parse<'h, H: Headers + ?Sized>(
        &'h self,
        headers: &'h H,
        body: &[u8],
        url: Option<&str>,
    ) -> Result<Parsed<'h>> {
        let limits = &self.limits;
        match &self.scheme {
            Scheme::StandardWebhooks | Scheme::Svix | Scheme::StandardWebhooksEd25519 => {
                standard::parse(&self.scheme, headers, limits)
            }
            Scheme::Stripe | Scheme::Paddle => stripe_paddle::parse(&self.scheme, headers, limits),
            Scheme::GitHub | Scheme::Slack | Scheme::Shopify => {
                simple::parse(&self.scheme, headers, limits)
            }
            Scheme::Twilio => twilio::parse(headers, body, url, limits),
            Scheme::Generic(g) => generic::parse(g, headers, limits),
        }
    }

    /// Sign a delivery: the headers (name, value) a sender attaches.
    ///
    /// Schemes whose header can carry several signatures (Standard Webhooks,
    /// Stripe, Paddle) are signed with every live key, so receivers mid-rotation
    /// accept either; the others with the first live key.
    pub fn sign(&self, input: &SignInput<'_>) -> Result<Vec<(String, String)>> {
        if input.body.len() > self.limits.max_body {
            return Err(Error::TooLarge);
        }
        let ts = input.timestamp.unwrap_or_else(|| self.clock.now_unix());
        let now = self.clock.now_unix();
        let live: Vec<&KeyMaterial> = self
            .keys
            .iter()
            .filter(|k| k.live(now))
            .map(|k| &k.material)
            .collect();
        let first = *live.first().ok_or(Error::NoUsableKey)?;
        let ts = ts.to_string();
        match &self.scheme {
            Scheme::StandardWebhooks | Scheme::Svix | Scheme::StandardWebhooksEd25519 => {
                standard::sign(&self.scheme, &live, input, &ts)
            }
            Scheme::Stripe | Scheme::Paddle => stripe_paddle::sign(&self.scheme, &live, input, &ts),
            Scheme::GitHub | Scheme::Slack | Scheme::Shopify => {
                simple::sign(&self.scheme, first, input, &ts)
            }
            Scheme::Twilio => twilio::sign(first, input),
            Scheme::Generic(g) => generic::sign(g, first, input, &ts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn sw(now: u64) -> Webhook {
        Webhook::builder(Scheme::StandardWebhooks)
            .secret(SW_SECRET)
            .unwrap()
            .clock(Arc::new(ManualClock::new(now)))
            .build()
            .unwrap()
    }

    fn sw_headers(sig: &str) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp", "1614265330".into()),
            ("webhook-signature", sig.into()),
        ]
    }

    fn macs() -> usize {
        parsed::MAC_CALLS.with(std::cell::Cell::get)
    }

    /// `key_index` names the key (in the order added) whose signature
    /// verified, so an operator rotating secrets sees when the old one is no
    /// longer used; `Debug` of a verified delivery shows its signed id.
    #[test]
    fn verified_names_the_key_that_verified_and_shows_its_id() {
        let other = format!("whsec_{}", encoding::b64(&[9; 24]));
        let both = Webhook::builder(Scheme::StandardWebhooks)
            .secret(&other)
            .unwrap()
            .secret(SW_SECRET)
            .unwrap()
            .clock(Arc::new(ManualClock::new(1_614_265_330)))
            .build()
            .unwrap();
        let v = both.verify(&sw_headers(SW_SIG), SW_BODY).unwrap();
        assert_eq!(v.key_index(), 1);
        assert_eq!(
            format!("{v:?}"),
            "Verified { key_index: 1, timestamp: Some(1614265330), \
             accepted_until: Some(1614265630), event_id: Some(\"msg_p5jXN8AQM9LWM0D4loKWxJek\"), replay_digest: None }"
        );
        let signed_by_other = both
            .sign(&SignInput::new(SW_BODY).id("msg_1").timestamp(1_614_265_330))
            .unwrap();
        let first_only = Webhook::builder(Scheme::StandardWebhooks)
            .secret(&other)
            .unwrap()
            .clock(Arc::new(ManualClock::new(1_614_265_330)))
            .build()
            .unwrap();
        let v = first_only.verify(&signed_by_other, SW_BODY).unwrap();
        assert_eq!(v.key_index(), 0);
    }

    #[test]
    fn at_most_one_mac_per_key_whatever_the_header_holds() {
        let mut b = Webhook::builder(Scheme::StandardWebhooks)
            .clock(Arc::new(ManualClock::new(1_614_265_330)));
        for i in 0..3u8 {
            b = b
                .secret(&format!("whsec_{}", encoding::b64(&[i + 1; 24])))
                .unwrap();
        }
        let wh = b
            .limits(Limits::new(1 << 20, 4096, 64).unwrap())
            .build()
            .unwrap();
        let entries = ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="; 60].join(" ");
        let before = macs();
        assert_eq!(
            wh.verify(&sw_headers(&entries), SW_BODY),
            Err(Error::NoMatchingSignature)
        );
        assert_eq!(macs() - before, 3, "one MAC per configured key");
    }

    #[test]
    fn twilio_tries_the_second_url_spelling_only_for_default_ports() {
        let wh = Webhook::builder(Scheme::Twilio)
            .secret("12345")
            .unwrap()
            .build()
            .unwrap();
        let bad = [("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")];
        for (url, expected) in [
            ("https://a.example/h", 2),
            ("https://a.example:443/h", 2),
            ("https://a.example:8443/h", 1),
        ] {
            let before = macs();
            assert_eq!(
                wh.verify_with_url(&bad, url, b"a=1"),
                Err(Error::NoMatchingSignature)
            );
            assert_eq!(macs() - before, expected, "{url}");
        }
    }

    #[test]
    fn bounds_are_checked_before_any_mac() {
        let wh = sw(1_614_265_330);
        let before = macs();
        let many = [SW_SIG; 9].join(" ");
        assert_eq!(wh.verify(&sw_headers(&many), SW_BODY), Err(Error::TooLarge));
        let huge = "v1,".to_owned() + &"A".repeat(5000);
        assert_eq!(wh.verify(&sw_headers(&huge), SW_BODY), Err(Error::TooLarge));
        let body = vec![b'x'; Limits::DEFAULT_MAX_BODY + 1];
        assert_eq!(wh.verify(&sw_headers(SW_SIG), &body), Err(Error::TooLarge));
        assert_eq!(
            wh.verify(&sw_headers("v1,AAAA"), SW_BODY),
            Err(Error::NoMatchingSignature)
        );
        // The last call ran a MAC (it had nothing to compare to, but bounds passed).
        assert_eq!(macs() - before, 1);
    }

    #[test]
    fn timestamps_respect_past_and_future_tolerance() {
        let ts = 1_614_265_330;
        assert!(sw(ts + 300).verify(&sw_headers(SW_SIG), SW_BODY).is_ok());
        assert_eq!(
            sw(ts + 301).verify(&sw_headers(SW_SIG), SW_BODY),
            Err(Error::Stale)
        );
        assert!(sw(ts - 300).verify(&sw_headers(SW_SIG), SW_BODY).is_ok());
        assert_eq!(
            sw(ts - 301).verify(&sw_headers(SW_SIG), SW_BODY),
            Err(Error::Stale)
        );
        let past_only = Webhook::builder(Scheme::StandardWebhooks)
            .secret(SW_SECRET)
            .unwrap()
            .tolerance(Tolerance::past_only(10).unwrap())
            .clock(Arc::new(ManualClock::new(ts - 10_000)))
            .build()
            .unwrap();
        assert!(past_only.verify(&sw_headers(SW_SIG), SW_BODY).is_ok());
        let asym = Tolerance::new(5, 0).unwrap();
        assert_eq!(asym.check(ts + 1, ts), Err(Error::Stale));
        assert_eq!(asym.check(ts - 6, ts), Err(Error::Stale));
        assert!(asym.check(ts - 5, ts).is_ok());
        assert!(Tolerance::new(86_401, 0).is_err());
    }

    #[test]
    fn ids_with_dot_control_or_overlong_are_refused() {
        let wh = sw(1_614_265_330);
        for id in ["a.b", "a\tb", "", &"a".repeat(257)] {
            let mut h = sw_headers(SW_SIG);
            h[0].1 = id.to_owned();
            assert_eq!(wh.verify(&h, SW_BODY), Err(Error::Malformed), "{id:?}");
        }
        assert_eq!(
            wh.sign(&SignInput::new(b"x").id("a.b")),
            Err(Error::InvalidId)
        );
    }

    #[test]
    fn keyring_not_after_retires_a_key() {
        let clock = Arc::new(ManualClock::new(1_614_265_330));
        let old = Webhook::builder(Scheme::StandardWebhooks)
            .secret_not_after(SW_SECRET, 1_614_265_330)
            .unwrap()
            .secret(&format!("whsec_{}", encoding::b64(&[9; 24])))
            .unwrap()
            .clock(clock.clone())
            .build()
            .unwrap();
        assert_eq!(
            old.verify(&sw_headers(SW_SIG), SW_BODY)
                .map(|v| v.key_index()),
            Ok(0)
        );
        clock.advance(1);
        assert_eq!(
            old.verify(&sw_headers(SW_SIG), SW_BODY),
            Err(Error::NoMatchingSignature)
        );
    }

    /// Every refusal is logged (feature `tracing`) with the coarse reason of
    /// its error, the catch-all being `malformed`; a success logs nothing.
    #[cfg(feature = "tracing")]
    #[test]
    fn each_refusal_is_logged_with_its_coarse_reason() {
        let wh = sw(1_614_265_330);
        let mut missing = sw_headers(SW_SIG);
        missing.remove(0);
        let mut bad_ts = sw_headers(SW_SIG);
        bad_ts[1].1 = "01614265330".into();
        type Case<'a> = (Vec<(&'a str, String)>, &'a [u8], Error, &'a str);
        let cases: [Case<'_>; 5] = [
            (missing, SW_BODY, Error::MissingHeader, "missing header"),
            (
                sw_headers(SW_SIG),
                &[b'x'; Limits::DEFAULT_MAX_BODY + 1],
                Error::TooLarge,
                "size limit",
            ),
            (bad_ts, SW_BODY, Error::Malformed, "malformed"),
            (
                sw_headers(SW_SIG),
                b"{}",
                Error::NoMatchingSignature,
                "no matching signature",
            ),
            (
                sw_headers(SW_SIG),
                SW_BODY,
                Error::Stale,
                "timestamp outside tolerance",
            ),
        ];
        let late = sw(1_614_265_330 + 301);
        let ((), events) = hisn_test_support::capture_events(|| {
            assert!(wh.verify(&sw_headers(SW_SIG), SW_BODY).is_ok());
            for (i, (h, body, err, _)) in cases.iter().enumerate() {
                let w = if i == 4 { &late } else { &wh };
                assert_eq!(w.verify(h, body).err().as_ref(), Some(err), "case {i}");
            }
        });
        let seen: Vec<_> = events.iter().map(|e| e.field("reason")).collect();
        let want: Vec<_> = cases.iter().map(|c| Some(c.3)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn debug_never_shows_keys() {
        let s = format!("{:?}", sw(0));
        assert!(s.contains("hmac-sha256") && !s.contains("MfKQ"), "{s}");
    }
}
