//! The verifier and signer: a [`Scheme`], a keyring, a [`Tolerance`], [`Limits`]
//! and a [`Clock`].

use std::sync::Arc;

use ed25519_dalek::Signature;
use ed25519_dalek::ed25519::signature::Signer as _;
use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::{Clock, SystemClock};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::{Headers, single};
use crate::scheme::{KeyMaterial, Scheme, SignatureEncoding};

/// Timestamp tolerance: how far in the past and in the future a signed
/// timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    past: u64,
    future: Option<u64>,
}

impl Tolerance {
    /// 300 s in the past and 300 s in the future.
    pub const DEFAULT: Self = Self {
        past: 300,
        future: Some(300),
    };
    /// The largest tolerance accepted on either side (one day).
    pub const MAX_SECS: u64 = 86_400;

    /// Separate past and future tolerances in seconds (each at most [`Tolerance::MAX_SECS`]).
    pub fn new(past_secs: u64, future_secs: u64) -> Result<Self> {
        if past_secs > Self::MAX_SECS || future_secs > Self::MAX_SECS {
            return Err(Error::InvalidConfig("tolerance exceeds one day"));
        }
        Ok(Self {
            past: past_secs,
            future: Some(future_secs),
        })
    }

    /// Past-only mode, as Stripe's own libraries check: a timestamp older than
    /// `past_secs` is refused, any future timestamp is accepted. Prefer
    /// [`Tolerance::new`] with a replay store.
    pub fn past_only(past_secs: u64) -> Result<Self> {
        if past_secs > Self::MAX_SECS {
            return Err(Error::InvalidConfig("tolerance exceeds one day"));
        }
        Ok(Self {
            past: past_secs,
            future: None,
        })
    }

    fn check(&self, ts: u64, now: u64) -> Result<()> {
        if ts < now.saturating_sub(self.past) {
            return Err(Error::Stale);
        }
        if let Some(f) = self.future
            && ts > now.saturating_add(f)
        {
            return Err(Error::Stale);
        }
        Ok(())
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Bounds checked before any MAC runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_body: usize,
    max_header: usize,
    max_entries: usize,
}

impl Limits {
    /// Default body limit: 1 MiB.
    pub const DEFAULT_MAX_BODY: usize = 1 << 20;
    /// Default limit on one signature-carrying header value: 4 KiB.
    pub const DEFAULT_MAX_HEADER: usize = 4096;
    /// Default limit on the number of signature entries in a header: 8.
    pub const DEFAULT_MAX_ENTRIES: usize = 8;
    /// Upper bound for `max_entries`.
    pub const MAX_ENTRIES: usize = 64;
    /// Upper bound for `max_header`.
    pub const MAX_HEADER: usize = 64 * 1024;
    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_body: Self::DEFAULT_MAX_BODY,
        max_header: Self::DEFAULT_MAX_HEADER,
        max_entries: Self::DEFAULT_MAX_ENTRIES,
    };

    /// Checked limits: every value non-zero, `max_header` ≤ [`Limits::MAX_HEADER`],
    /// `max_entries` ≤ [`Limits::MAX_ENTRIES`].
    pub fn new(max_body: usize, max_header: usize, max_entries: usize) -> Result<Self> {
        if max_body == 0 || max_header == 0 || max_entries == 0 {
            return Err(Error::InvalidConfig("limits must be non-zero"));
        }
        if max_header > Self::MAX_HEADER || max_entries > Self::MAX_ENTRIES {
            return Err(Error::InvalidConfig("limit above its maximum"));
        }
        Ok(Self {
            max_body,
            max_header,
            max_entries,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Most keys a keyring holds.
pub const MAX_KEYS: usize = 16;
/// Longest message id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

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
pub struct Verified {
    key_index: usize,
    timestamp: Option<u64>,
    event_id: Option<String>,
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

    /// The message id covered by the signature (Standard Webhooks, generic
    /// with an id header). Unsigned id headers are never returned here.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The id to claim in a replay store: the signed event id when the scheme
    /// has one, otherwise `sha256:<hex of the body>` (providers retry with the
    /// same body, and an unsigned id header could be changed by an attacker).
    pub fn replay_id(&self, body: &[u8]) -> String {
        match &self.event_id {
            Some(id) => id.clone(),
            None => format!("sha256:{}", encoding::hex_lower(&Sha256::digest(body))),
        }
    }
}

/// What to sign: the body, and where the scheme needs them, an id, a
/// timestamp (default: the clock's now) and the URL (Twilio).
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    body: &'a [u8],
    id: Option<&'a str>,
    timestamp: Option<u64>,
    url: Option<&'a str>,
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

// Signature bytes of the widest scheme (Ed25519).
type SigBuf = [u8; 64];

/// What the header parser found: the signed parts ahead of the body, the
/// signature candidates and the metadata.
struct Parsed<'h> {
    prefix: Prefix,
    sigs: SigList,
    sig_len: usize,
    timestamp: Option<u64>,
    id: Option<&'h [u8]>,
    /// Twilio with `bodySHA256`: the expected SHA-256 of the body.
    body_sha256: Option<[u8; 32]>,
    /// The message is `prefix` alone (Twilio form: the body was folded into it).
    body_in_prefix: bool,
}

const PREFIX_INLINE: usize = 320;
const SIGS_INLINE: usize = 4;

/// The signed bytes ahead of the body, inline up to 320 bytes (every scheme's
/// prefix within the default limits fits), else on the heap: verification of
/// a typical delivery allocates nothing here.
struct Prefix {
    inline: [u8; PREFIX_INLINE],
    len: usize,
    heap: Option<Vec<u8>>,
}

impl Prefix {
    fn new() -> Self {
        Self {
            inline: [0; PREFIX_INLINE],
            len: 0,
            heap: None,
        }
    }

    fn from_slice(s: &[u8]) -> Self {
        let mut p = Self::new();
        p.extend_from_slice(s);
        p
    }

    fn from_vec(v: Vec<u8>) -> Self {
        Self {
            inline: [0; PREFIX_INLINE],
            len: 0,
            heap: Some(v),
        }
    }

    fn extend_from_slice(&mut self, s: &[u8]) {
        if let Some(h) = &mut self.heap {
            h.extend_from_slice(s);
        } else if let Some(dst) = self.inline.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s);
            self.len += s.len();
        } else {
            let mut v = Vec::with_capacity(self.len + s.len());
            v.extend_from_slice(&self.inline[..self.len]);
            v.extend_from_slice(s);
            self.heap = Some(v);
        }
    }

    fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }

    fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(h) => h,
            None => &self.inline[..self.len],
        }
    }
}

/// Signature candidates, inline up to four (rotation rarely sends more).
struct SigList {
    inline: [SigBuf; SIGS_INLINE],
    len: usize,
    heap: Vec<SigBuf>,
}

impl SigList {
    fn new() -> Self {
        Self {
            inline: [[0; 64]; SIGS_INLINE],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn one(s: SigBuf) -> Self {
        let mut l = Self::new();
        l.push(s);
        l
    }

    fn push(&mut self, s: SigBuf) {
        if self.len < SIGS_INLINE {
            self.inline[self.len] = s;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.inline);
            }
            self.heap.push(s);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[SigBuf] {
        if self.len <= SIGS_INLINE {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

#[cfg(test)]
thread_local! {
    pub(crate) static MAC_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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
        let event_id = match parsed.id {
            Some(id) => Some(
                std::str::from_utf8(id)
                    .map_err(|_| Error::Malformed)?
                    .to_owned(),
            ),
            None => None,
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
                    event_id,
                });
            }
        }
        Err(Error::NoMatchingSignature)
    }

    fn key_matches(&self, key: &KeyMaterial, parsed: &Parsed<'_>, body: &[u8]) -> bool {
        match key {
            KeyMaterial::Sha256(state) => {
                let mac = mac_sha256(state, parsed.prefix.as_slice(), body);
                any_ct_eq(parsed.sigs.as_slice(), parsed.sig_len, &mac)
            }
            KeyMaterial::Sha1(state) => {
                let mac = mac_sha1(state, parsed.prefix.as_slice(), body);
                any_ct_eq(parsed.sigs.as_slice(), parsed.sig_len, &mac)
            }
            KeyMaterial::Ed25519 { verifying, .. } => {
                if parsed.sig_len != 64 {
                    return false;
                }
                let prefix = parsed.prefix.as_slice();
                let mut msg = Vec::with_capacity(prefix.len() + body.len());
                msg.extend_from_slice(prefix);
                msg.extend_from_slice(body);
                parsed.sigs.as_slice().iter().any(|s| {
                    verifying
                        .verify_strict(&msg, &Signature::from_bytes(s))
                        .is_ok()
                })
            }
        }
    }

    fn header<'h, H: Headers + ?Sized>(
        &self,
        headers: &'h H,
        name: &'h str,
    ) -> Result<Option<&'h [u8]>> {
        let v = single(headers, name)?;
        if let Some(v) = v
            && v.len() > self.limits.max_header
        {
            return Err(Error::TooLarge);
        }
        Ok(v)
    }

    fn required<'h, H: Headers + ?Sized>(&self, headers: &'h H, name: &'h str) -> Result<&'h [u8]> {
        self.header(headers, name)?.ok_or(Error::MissingHeader)
    }

    fn parse<'h, H: Headers + ?Sized>(
        &'h self,
        headers: &'h H,
        body: &[u8],
        url: Option<&str>,
    ) -> Result<Parsed<'h>> {
        let max = self.limits.max_entries;
        match &self.scheme {
            Scheme::StandardWebhooks | Scheme::Svix | Scheme::StandardWebhooksEd25519 => {
                let (id_h, ts_h, sig) = match self.header(headers, "webhook-signature")? {
                    Some(sig) => ("webhook-id", "webhook-timestamp", sig),
                    None => (
                        "svix-id",
                        "svix-timestamp",
                        self.required(headers, "svix-signature")?,
                    ),
                };
                let id = self.required(headers, id_h)?;
                let ts_raw = self.required(headers, ts_h)?;
                validate_id(id)?;
                let ts = parse_ts(ts_raw)?;
                let ed = matches!(self.scheme, Scheme::StandardWebhooksEd25519);
                let (version, len): (&[u8], usize) = if ed { (b"v1a", 64) } else { (b"v1", 32) };
                let mut sigs = SigList::new();
                let mut count = 0usize;
                for entry in sig.split(|&b| b == b' ').filter(|e| !e.is_empty()) {
                    count += 1;
                    if count > max {
                        return Err(Error::TooLarge);
                    }
                    let Some(comma) = entry.iter().position(|&b| b == b',') else {
                        return Err(Error::Malformed);
                    };
                    let (v, rest) = (&entry[..comma], &entry[comma + 1..]);
                    if v != version {
                        continue; // other versions are ignored, as the spec says
                    }
                    let decoded = if ed {
                        encoding::b64_exact::<64>(rest)
                    } else {
                        encoding::b64_exact::<32>(rest).map(widen)
                    };
                    // A malformed entry of our version cannot match; skip it so a
                    // sender may add entries we do not understand.
                    if let Some(d) = decoded {
                        sigs.push(d);
                    }
                }
                let mut prefix = Prefix::from_slice(id);
                prefix.push(b'.');
                prefix.extend_from_slice(ts_raw);
                prefix.push(b'.');
                Ok(Parsed {
                    prefix,
                    sigs,
                    sig_len: len,
                    timestamp: Some(ts),
                    id: Some(id),
                    body_sha256: None,
                    body_in_prefix: false,
                })
            }
            Scheme::Stripe => {
                let h = self.required(headers, "stripe-signature")?;
                timestamped_list(h, b',', b"t", b"v1", b'.', max)
            }
            Scheme::Paddle => {
                let h = self.required(headers, "paddle-signature")?;
                timestamped_list(h, b';', b"ts", b"h1", b':', max)
            }
            Scheme::GitHub => {
                let h = self.required(headers, "x-hub-signature-256")?;
                let hex = h.strip_prefix(b"sha256=").ok_or(Error::Malformed)?;
                let sig = encoding::hex_lower_exact::<32>(hex).ok_or(Error::Malformed)?;
                Ok(simple(Prefix::new(), sig, None))
            }
            Scheme::Slack => {
                let h = self.required(headers, "x-slack-signature")?;
                let ts_raw = self.required(headers, "x-slack-request-timestamp")?;
                let ts = parse_ts(ts_raw)?;
                let hex = h.strip_prefix(b"v0=").ok_or(Error::Malformed)?;
                let sig = encoding::hex_lower_exact::<32>(hex).ok_or(Error::Malformed)?;
                let mut prefix = Prefix::from_slice(b"v0:");
                prefix.extend_from_slice(ts_raw);
                prefix.push(b':');
                Ok(simple(prefix, sig, Some(ts)))
            }
            Scheme::Shopify => {
                let h = self.required(headers, "x-shopify-hmac-sha256")?;
                let sig = encoding::b64_exact::<32>(h).ok_or(Error::Malformed)?;
                Ok(simple(Prefix::new(), sig, None))
            }
            Scheme::Twilio => {
                let url = url.ok_or(Error::UrlRequired)?;
                if url.len() > self.limits.max_header {
                    return Err(Error::TooLarge);
                }
                let h = self.required(headers, "x-twilio-signature")?;
                let sig = encoding::b64_exact::<20>(h).ok_or(Error::Malformed)?;
                let mut buf = [0u8; 64];
                buf[..20].copy_from_slice(&sig);
                let (prefix, body_sha256) = twilio_message(url, body)?;
                let body_in_prefix = true;
                Ok(Parsed {
                    prefix: Prefix::from_vec(prefix),
                    sigs: SigList::one(buf),
                    sig_len: 20,
                    timestamp: None,
                    id: None,
                    body_sha256,
                    body_in_prefix,
                })
            }
            Scheme::Generic(g) => {
                let h = self.required(headers, &g.signature_header)?;
                let enc = h
                    .strip_prefix(g.prefix.as_bytes())
                    .ok_or(Error::Malformed)?;
                let sig = match g.encoding {
                    SignatureEncoding::Hex => encoding::hex_lower_exact::<32>(enc),
                    SignatureEncoding::Base64 => encoding::b64_exact::<32>(enc),
                }
                .ok_or(Error::Malformed)?;
                let mut prefix = Prefix::new();
                let mut id = None;
                if let Some(id_h) = &g.id_header {
                    let v = self.required(headers, id_h)?;
                    validate_id(v)?;
                    if v.contains(&g.separator) {
                        return Err(Error::Malformed);
                    }
                    prefix.extend_from_slice(v);
                    prefix.push(g.separator);
                    id = Some(v);
                }
                let mut timestamp = None;
                if let Some(ts_h) = &g.timestamp_header {
                    let v = self.required(headers, ts_h)?;
                    timestamp = Some(parse_ts(v)?);
                    prefix.extend_from_slice(v);
                    prefix.push(g.separator);
                }
                let mut p = simple(prefix, sig, timestamp);
                p.id = id;
                Ok(p)
            }
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
        let ts_s = ts.to_string();
        let body = input.body;
        let hdr = |n: &str, v: String| (n.to_owned(), v);
        match &self.scheme {
            Scheme::StandardWebhooks | Scheme::Svix | Scheme::StandardWebhooksEd25519 => {
                let id = input.id.ok_or(Error::InvalidId)?;
                validate_id(id.as_bytes()).map_err(|_| Error::InvalidId)?;
                let prefix = format!("{id}.{ts_s}.");
                let mut entries = Vec::new();
                for k in &live {
                    match k {
                        KeyMaterial::Sha256(s) => entries.push(format!(
                            "v1,{}",
                            encoding::b64(&mac_sha256(s, prefix.as_bytes(), body))
                        )),
                        KeyMaterial::Ed25519 {
                            signing: Some(sk), ..
                        } => {
                            let mut msg = prefix.as_bytes().to_vec();
                            msg.extend_from_slice(body);
                            entries
                                .push(format!("v1a,{}", encoding::b64(&sk.sign(&msg).to_bytes())));
                        }
                        _ => {}
                    }
                }
                if entries.is_empty() {
                    return Err(Error::SigningUnavailable);
                }
                let p = if matches!(self.scheme, Scheme::Svix) {
                    "svix"
                } else {
                    "webhook"
                };
                Ok(vec![
                    hdr(&format!("{p}-id"), id.to_owned()),
                    hdr(&format!("{p}-timestamp"), ts_s),
                    hdr(&format!("{p}-signature"), entries.join(" ")),
                ])
            }
            Scheme::Stripe | Scheme::Paddle => {
                let stripe = matches!(self.scheme, Scheme::Stripe);
                let prefix = if stripe {
                    format!("{ts_s}.")
                } else {
                    format!("{ts_s}:")
                };
                let mut v = if stripe {
                    format!("t={ts_s}")
                } else {
                    format!("ts={ts_s}")
                };
                for k in &live {
                    if let KeyMaterial::Sha256(s) = k {
                        let mac = encoding::hex_lower(&mac_sha256(s, prefix.as_bytes(), body));
                        v.push_str(if stripe { ",v1=" } else { ";h1=" });
                        v.push_str(&mac);
                    }
                }
                Ok(vec![hdr(
                    if stripe {
                        "Stripe-Signature"
                    } else {
                        "Paddle-Signature"
                    },
                    v,
                )])
            }
            Scheme::GitHub => Ok(vec![hdr(
                "X-Hub-Signature-256",
                format!("sha256={}", hex_of(first, b"", body)?),
            )]),
            Scheme::Slack => {
                let prefix = format!("v0:{ts_s}:");
                Ok(vec![
                    hdr("X-Slack-Request-Timestamp", ts_s),
                    hdr(
                        "X-Slack-Signature",
                        format!("v0={}", hex_of(first, prefix.as_bytes(), body)?),
                    ),
                ])
            }
            Scheme::Shopify => {
                let KeyMaterial::Sha256(s) = first else {
                    return Err(Error::SigningUnavailable);
                };
                Ok(vec![hdr(
                    "X-Shopify-Hmac-Sha256",
                    encoding::b64(&mac_sha256(s, b"", body)),
                )])
            }
            Scheme::Twilio => {
                let url = input.url.ok_or(Error::UrlRequired)?;
                let KeyMaterial::Sha1(s) = first else {
                    return Err(Error::SigningUnavailable);
                };
                let (msg, _) = twilio_message(url, body)?;
                Ok(vec![hdr(
                    "X-Twilio-Signature",
                    encoding::b64(&mac_sha1(s, &msg, b"")),
                )])
            }
            Scheme::Generic(g) => {
                let KeyMaterial::Sha256(s) = first else {
                    return Err(Error::SigningUnavailable);
                };
                let sep = char::from(g.separator);
                let mut prefix = String::new();
                let mut out = Vec::new();
                if let Some(id_h) = &g.id_header {
                    let id = input.id.ok_or(Error::InvalidId)?;
                    if validate_id(id.as_bytes()).is_err() || id.contains(sep) {
                        return Err(Error::InvalidId);
                    }
                    prefix.push_str(id);
                    prefix.push(sep);
                    out.push(hdr(id_h, id.to_owned()));
                }
                if let Some(ts_h) = &g.timestamp_header {
                    prefix.push_str(&ts_s);
                    prefix.push(sep);
                    out.push(hdr(ts_h, ts_s));
                }
                let mac = mac_sha256(s, prefix.as_bytes(), body);
                let enc = match g.encoding {
                    SignatureEncoding::Hex => encoding::hex_lower(&mac),
                    SignatureEncoding::Base64 => encoding::b64(&mac),
                };
                out.push(hdr(&g.signature_header, format!("{}{enc}", g.prefix)));
                Ok(out)
            }
        }
    }
}

fn hex_of(key: &KeyMaterial, prefix: &[u8], body: &[u8]) -> Result<String> {
    match key {
        KeyMaterial::Sha256(s) => Ok(encoding::hex_lower(&mac_sha256(s, prefix, body))),
        _ => Err(Error::SigningUnavailable),
    }
}

/// Stripe (`t=..,v1=..`, signed `t.body`) and Paddle (`ts=..;h1=..`, signed
/// `ts:body`): one timestamp and a list of hex HMAC-SHA256 signatures in one
/// header; the signed prefix is the timestamp text and `joiner`.
fn timestamped_list(
    h: &[u8],
    sep: u8,
    ts_key: &[u8],
    sig_key: &[u8],
    joiner: u8,
    max: usize,
) -> Result<Parsed<'static>> {
    let (ts_raw, sigs) = parse_kv_list(h, sep, ts_key, sig_key, max)?;
    let ts = parse_ts(ts_raw)?;
    let mut prefix = Prefix::from_slice(ts_raw);
    prefix.push(joiner);
    Ok(Parsed {
        prefix,
        sigs,
        sig_len: 32,
        timestamp: Some(ts),
        id: None,
        body_sha256: None,
        body_in_prefix: false,
    })
}

fn simple(prefix: Prefix, sig: [u8; 32], timestamp: Option<u64>) -> Parsed<'static> {
    Parsed {
        prefix,
        sigs: SigList::one(widen(sig)),
        sig_len: 32,
        timestamp,
        id: None,
        body_sha256: None,
        body_in_prefix: false,
    }
}

fn widen(s: [u8; 32]) -> SigBuf {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&s);
    b
}

fn mac_sha256(state: &hmac::Hmac<Sha256>, prefix: &[u8], body: &[u8]) -> [u8; 32] {
    #[cfg(test)]
    MAC_CALLS.with(|c| c.set(c.get() + 1));
    let mut m = state.clone();
    m.update(prefix);
    m.update(body);
    m.finalize().into_bytes().into()
}

fn mac_sha1(state: &hmac::Hmac<sha1::Sha1>, prefix: &[u8], body: &[u8]) -> [u8; 20] {
    #[cfg(test)]
    MAC_CALLS.with(|c| c.set(c.get() + 1));
    let mut m = state.clone();
    m.update(prefix);
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Constant-time comparison of `mac` with every candidate (no early exit).
fn any_ct_eq(sigs: &[SigBuf], len: usize, mac: &[u8]) -> bool {
    if mac.len() != len {
        return false;
    }
    let mut ok = subtle::Choice::from(0u8);
    for s in sigs {
        ok |= ct_eq_words(&s[..len], mac);
    }
    bool::from(ok)
}

/// Constant-time equality of two equal-length byte strings, eight bytes at a
/// time (`subtle` on `u64` words, then on the remaining bytes): the same
/// guarantee as `subtle`'s slice comparison with an eighth of the barriers.
fn ct_eq_words(a: &[u8], b: &[u8]) -> subtle::Choice {
    if a.len() != b.len() {
        return subtle::Choice::from(0u8);
    }
    let mut eq = subtle::Choice::from(1u8);
    let (aw, bw) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (aw.remainder(), bw.remainder());
    for (x, y) in aw.zip(bw) {
        let mut xa = [0u8; 8];
        let mut ya = [0u8; 8];
        xa.copy_from_slice(x);
        ya.copy_from_slice(y);
        eq &= u64::from_ne_bytes(xa).ct_eq(&u64::from_ne_bytes(ya));
    }
    eq & ar.ct_eq(br)
}

/// A message id: 1..=256 visible ASCII bytes without `.` (a `.` would let
/// `id.timestamp.body` split two ways, so one signature could serve another
/// id/body pair).
pub(crate) fn validate_id(id: &[u8]) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
    if ok { Ok(()) } else { Err(Error::Malformed) }
}

/// Unix seconds: 1..=12 ASCII digits, no sign, no leading zero.
fn parse_ts(raw: &[u8]) -> Result<u64> {
    if raw.is_empty() || raw.len() > 12 || (raw.len() > 1 && raw[0] == b'0') {
        return Err(Error::Malformed);
    }
    let mut v: u64 = 0;
    for &c in raw {
        if !c.is_ascii_digit() {
            return Err(Error::Malformed);
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Ok(v)
}

/// `key=value` list (Stripe `,`, Paddle `;`): exactly one timestamp entry,
/// any number (up to `max`) of signature entries, other keys ignored.
fn parse_kv_list<'h>(
    h: &'h [u8],
    sep: u8,
    ts_key: &[u8],
    sig_key: &[u8],
    max: usize,
) -> Result<(&'h [u8], SigList)> {
    let mut ts = None;
    let mut sigs = SigList::new();
    let mut count = 0usize;
    for item in h.split(|&b| b == sep) {
        let Some(eq) = item.iter().position(|&b| b == b'=') else {
            return Err(Error::Malformed);
        };
        let (k, v) = (&item[..eq], &item[eq + 1..]);
        if k == ts_key {
            if ts.replace(v).is_some() {
                return Err(Error::Malformed);
            }
        } else {
            count += 1;
            if count > max {
                return Err(Error::TooLarge);
            }
            if k == sig_key
                && let Some(s) = encoding::hex_lower_exact::<32>(v)
            {
                sigs.push(widen(s));
            }
        }
    }
    Ok((ts.ok_or(Error::Malformed)?, sigs))
}

/// Twilio's signed string: the URL, then for a form body every parameter name
/// and value (percent-decoded), sorted by name then value. When the URL holds
/// `bodySHA256` (JSON bodies) the URL alone is signed and the body must hash
/// to that value.
fn twilio_message(url: &str, body: &[u8]) -> Result<(Vec<u8>, Option<[u8; 32]>)> {
    let mut msg = url.as_bytes().to_vec();
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split_once('#').map_or(q, |(q, _)| q));
    if let Some(q) = query {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("bodySHA256=") {
                let h = encoding::hex_lower_exact::<32>(v.as_bytes()).ok_or(Error::Malformed)?;
                return Ok((msg, Some(h)));
            }
        }
    }
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        params.push((form_decode(k)?, form_decode(v)?));
    }
    params.sort();
    for (k, v) in params {
        msg.extend_from_slice(&k);
        msg.extend_from_slice(&v);
    }
    Ok((msg, None))
}

fn form_decode(s: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or(Error::Malformed)?;
                let hi = (hex[0] as char).to_digit(16).ok_or(Error::Malformed)?;
                let lo = (hex[1] as char).to_digit(16).ok_or(Error::Malformed)?;
                out.push(u8::try_from(hi * 16 + lo).map_err(|_| Error::Malformed)?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
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
        MAC_CALLS.with(std::cell::Cell::get)
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
    fn timestamps_are_strict_decimal() {
        for bad in ["", "+1", "01", "1e9", " 1", "1234567890123"] {
            assert_eq!(parse_ts(bad.as_bytes()), Err(Error::Malformed), "{bad:?}");
        }
        assert_eq!(parse_ts(b"0"), Ok(0));
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

    #[test]
    fn inline_prefix_and_signature_lists_spill_to_the_heap() {
        let mut p = Prefix::from_slice(b"ab");
        p.push(b'.');
        assert_eq!(p.as_slice(), b"ab.");
        let long = vec![b'x'; PREFIX_INLINE];
        p.extend_from_slice(&long);
        assert_eq!(p.as_slice().len(), PREFIX_INLINE + 3);
        assert_eq!(&p.as_slice()[..3], b"ab.");
        p.push(b'!');
        assert_eq!(p.as_slice().last(), Some(&b'!'));
        let mut l = SigList::new();
        for i in 0..20u8 {
            l.push([i; 64]);
        }
        assert_eq!(l.as_slice().len(), 20);
        assert!(
            l.as_slice()
                .iter()
                .enumerate()
                .all(|(i, s)| usize::from(s[0]) == i)
        );
    }

    #[test]
    fn word_comparison_matches_byte_comparison() {
        let a: Vec<u8> = (0..32).collect();
        for len in [0, 1, 7, 8, 9, 20, 32] {
            assert!(bool::from(ct_eq_words(&a[..len], &a[..len])));
            for i in 0..len {
                let mut b = a[..len].to_vec();
                b[i] ^= 0x80;
                assert!(
                    !bool::from(ct_eq_words(&a[..len], &b)),
                    "len {len} byte {i}"
                );
            }
        }
        assert!(!bool::from(ct_eq_words(&a[..3], &a[..4])));
    }

    #[test]
    fn twilio_form_decoding_is_strict() {
        assert_eq!(form_decode(b"a+b%2Fc").unwrap(), b"a b/c");
        assert_eq!(form_decode(b"%2"), Err(Error::Malformed));
        assert_eq!(form_decode(b"%zz"), Err(Error::Malformed));
    }

    #[test]
    fn debug_never_shows_keys() {
        let s = format!("{:?}", sw(0));
        assert!(s.contains("hmac-sha256") && !s.contains("MfKQ"), "{s}");
    }
}
