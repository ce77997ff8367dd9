//! The signature schemes and how each one's secrets are parsed.

use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit};
use sha1::Sha1;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::encoding;
use crate::error::{Error, Result};

/// A webhook signature scheme.
///
/// | Scheme | Signature header | Signed bytes | Encoding |
/// |---|---|---|---|
/// | [`Scheme::StandardWebhooks`] / [`Scheme::Svix`] | `webhook-signature` (`svix-signature`): `v1,<sig>` entries | `id.timestamp.body` | base64 HMAC-SHA256 |
/// | [`Scheme::StandardWebhooksEd25519`] | `webhook-signature`: `v1a,<sig>` entries | `id.timestamp.body` | base64 Ed25519 |
/// | [`Scheme::Stripe`] | `Stripe-Signature: t=..,v1=..` | `t.body` | hex HMAC-SHA256 |
/// | [`Scheme::GitHub`] | `X-Hub-Signature-256: sha256=..` | `body` | hex HMAC-SHA256 |
/// | [`Scheme::Slack`] | `X-Slack-Signature: v0=..`, `X-Slack-Request-Timestamp` | `v0:ts:body` | hex HMAC-SHA256 |
/// | [`Scheme::Shopify`] | `X-Shopify-Hmac-Sha256` | `body` | base64 HMAC-SHA256 |
/// | [`Scheme::Paddle`] | `Paddle-Signature: ts=..;h1=..` | `ts:body` | hex HMAC-SHA256 |
/// | [`Scheme::Twilio`] | `X-Twilio-Signature` | URL + sorted form params | base64 HMAC-SHA1 |
/// | [`Scheme::Generic`] | configurable | `[id SEP][ts SEP]body` | hex or base64 HMAC-SHA256 |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// Standard Webhooks v1 (symmetric, `whsec_` secrets). Verification also
    /// accepts the `svix-*` header names.
    StandardWebhooks,
    /// Standard Webhooks v1 with `svix-*` header names when signing; verifies
    /// exactly like [`Scheme::StandardWebhooks`].
    Svix,
    /// Standard Webhooks v1a (Ed25519): `whsk_` signing keys, `whpk_` public keys.
    StandardWebhooksEd25519,
    /// Stripe (`Stripe-Signature`). The key is the literal `whsec_...` text.
    Stripe,
    /// GitHub (`X-Hub-Signature-256`). No timestamp: replay protection rests on
    /// the replay store alone.
    GitHub,
    /// Slack request signing (`v0`).
    Slack,
    /// Shopify (`X-Shopify-Hmac-Sha256`). No timestamp.
    Shopify,
    /// Paddle Billing (`Paddle-Signature`).
    Paddle,
    /// Twilio (`X-Twilio-Signature`, HMAC-SHA1). Needs the request URL. No
    /// timestamp.
    Twilio,
    /// A configurable HMAC-SHA256 scheme.
    Generic(GenericHmac),
}

impl Scheme {
    /// The scheme for a CLI-style name: `standard-webhooks`, `svix`,
    /// `standard-webhooks-v1a`, `stripe`, `github`, `slack`, `shopify`,
    /// `paddle`, `twilio`, or `generic` (with [`GenericHmac::default`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "standard-webhooks" | "standard" | "standardwebhooks" => Self::StandardWebhooks,
            "svix" => Self::Svix,
            "standard-webhooks-v1a" | "v1a" | "ed25519" => Self::StandardWebhooksEd25519,
            "stripe" => Self::Stripe,
            "github" => Self::GitHub,
            "slack" => Self::Slack,
            "shopify" => Self::Shopify,
            "paddle" => Self::Paddle,
            "twilio" => Self::Twilio,
            "generic" => Self::Generic(GenericHmac::default()),
            _ => return None,
        })
    }

    /// The scheme's short name (the inverse of [`Scheme::from_name`]).
    pub fn name(&self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Svix => "svix",
            Self::StandardWebhooksEd25519 => "standard-webhooks-v1a",
            Self::Stripe => "stripe",
            Self::GitHub => "github",
            Self::Slack => "slack",
            Self::Shopify => "shopify",
            Self::Paddle => "paddle",
            Self::Twilio => "twilio",
            Self::Generic(_) => "generic",
        }
    }

    /// Whether the scheme signs a timestamp (and so enforces a tolerance).
    pub fn has_timestamp(&self) -> bool {
        match self {
            Self::StandardWebhooks | Self::Svix | Self::StandardWebhooksEd25519 => true,
            Self::Stripe | Self::Slack | Self::Paddle => true,
            Self::GitHub | Self::Shopify | Self::Twilio => false,
            Self::Generic(g) => g.timestamp_header.is_some(),
        }
    }

    /// Parse a secret (or, for v1a, a key) in this scheme's format, checking it
    /// for common mistakes.
    pub(crate) fn parse_key(&self, text: &str) -> Result<KeyMaterial> {
        check_common(text)?;
        match self {
            Self::StandardWebhooks | Self::Svix => {
                if text.starts_with("whpk_") || text.starts_with("whsk_") {
                    return Err(Error::SecretWrongPrefix);
                }
                let b64 = text.strip_prefix("whsec_").unwrap_or(text);
                let raw =
                    Zeroizing::new(encoding::b64_any(b64.as_bytes()).ok_or(Error::SecretEncoding)?);
                if raw.len() < MIN_STANDARD_SECRET_BYTES || raw.len() > MAX_SECRET_BYTES {
                    return Err(Error::SecretLength);
                }
                Ok(KeyMaterial::sha256(&raw))
            }
            Self::StandardWebhooksEd25519 => {
                if let Some(b64) = text.strip_prefix("whsk_") {
                    let seed = Zeroizing::new(ed_key_bytes(b64)?);
                    let signing = SigningKey::from_bytes(&seed);
                    Ok(KeyMaterial::Ed25519 {
                        verifying: signing.verifying_key(),
                        signing: Some(Box::new(signing)),
                    })
                } else if let Some(b64) = text.strip_prefix("whpk_") {
                    let bytes = ed_key_bytes(b64)?;
                    let verifying =
                        VerifyingKey::from_bytes(&bytes).map_err(|_| Error::SecretEncoding)?;
                    // A small-order point (identity or torsion) is refused when
                    // loaded, whatever encoding spelled it.
                    if verifying.is_weak() {
                        return Err(Error::SecretWeakKey);
                    }
                    Ok(KeyMaterial::Ed25519 {
                        verifying,
                        signing: None,
                    })
                } else {
                    Err(Error::SecretWrongPrefix)
                }
            }
            Self::Stripe => {
                if !text.starts_with("whsec_") {
                    return Err(Error::SecretWrongPrefix);
                }
                raw_key(text, KeyMaterial::sha256)
            }
            Self::Twilio => raw_key(text, KeyMaterial::sha1),
            Self::GitHub | Self::Slack | Self::Shopify | Self::Paddle | Self::Generic(_) => {
                raw_key(text, KeyMaterial::sha256)
            }
        }
    }
}

/// Minimum decoded length of a Standard Webhooks secret (the spec recommends
/// 24 to 64 bytes; below 16 is refused as a likely mistake).
pub const MIN_STANDARD_SECRET_BYTES: usize = 16;
/// Maximum length of any secret, decoded.
pub const MAX_SECRET_BYTES: usize = 1024;

fn raw_key(text: &str, f: fn(&[u8]) -> KeyMaterial) -> Result<KeyMaterial> {
    if text.len() > MAX_SECRET_BYTES {
        return Err(Error::SecretLength);
    }
    Ok(f(text.as_bytes()))
}

fn ed_key_bytes(b64: &str) -> Result<[u8; 32]> {
    encoding::b64_exact::<32>(b64.as_bytes()).ok_or(Error::SecretEncoding)
}

/// Mistakes every scheme refuses: empty, padded with whitespace, or a
/// signature pasted where the secret belongs.
fn check_common(text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::SecretEmpty);
    }
    if text.trim() != text {
        return Err(Error::SecretWhitespace);
    }
    const SIGNATURE_PREFIXES: [&str; 7] = ["v1,", "v1a,", "v1=", "v0=", "t=", "sha256=", "ts="];
    if SIGNATURE_PREFIXES.iter().any(|p| text.starts_with(p)) {
        return Err(Error::SecretLooksLikeSignature);
    }
    Ok(())
}

/// Parsed key material. The HMAC variants hold the keyed state (inner and
/// outer pad already absorbed), so a verification costs only the message
/// blocks; the state is zeroized on drop (the `zeroize` features of the hash
/// crates are enabled).
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    Sha256(Box<Hmac<Sha256>>),
    Sha1(Box<Hmac<Sha1>>),
    Ed25519 {
        verifying: VerifyingKey,
        signing: Option<Box<SigningKey>>,
    },
}

impl KeyMaterial {
    fn sha256(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; the fallback
        // keeps the code panic-free regardless.
        Self::Sha256(Box::new(
            <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default())),
        ))
    }

    fn sha1(key: &[u8]) -> Self {
        Self::Sha1(Box::new(
            <Hmac<Sha1> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| <Hmac<Sha1> as KeyInit>::new(&Default::default())),
        ))
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "hmac-sha256",
            Self::Sha1(_) => "hmac-sha1",
            Self::Ed25519 {
                signing: Some(_), ..
            } => "ed25519-private",
            Self::Ed25519 { signing: None, .. } => "ed25519-public",
        }
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// How the generic scheme encodes the MAC in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureEncoding {
    /// Lowercase hex.
    Hex,
    /// Padded standard base64.
    Base64,
}

/// Configuration of the generic HMAC-SHA256 scheme: the signed bytes are
/// `[id SEP][timestamp SEP]body`, where the id and timestamp parts are present
/// only when their header is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericHmac {
    pub(crate) signature_header: String,
    pub(crate) prefix: String,
    pub(crate) encoding: SignatureEncoding,
    pub(crate) timestamp_header: Option<String>,
    pub(crate) id_header: Option<String>,
    pub(crate) separator: u8,
}

impl Default for GenericHmac {
    /// `X-Signature: <hex>` over the body, with `X-Timestamp` signed as `ts.body`.
    fn default() -> Self {
        Self {
            signature_header: "x-signature".into(),
            prefix: String::new(),
            encoding: SignatureEncoding::Hex,
            timestamp_header: Some("x-timestamp".into()),
            id_header: None,
            separator: b'.',
        }
    }
}

impl GenericHmac {
    /// A scheme with signature header `signature_header`, hex encoding, no
    /// prefix, no timestamp and no id: the MAC covers the body alone.
    pub fn new(signature_header: &str) -> Result<Self> {
        Ok(Self {
            signature_header: header_name(signature_header)?,
            prefix: String::new(),
            encoding: SignatureEncoding::Hex,
            timestamp_header: None,
            id_header: None,
            separator: b'.',
        })
    }

    /// A literal prefix before the encoded MAC (for example `sha256=`).
    pub fn prefix(mut self, prefix: &str) -> Result<Self> {
        if prefix.len() > 32 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidConfig(
                "generic prefix must be at most 32 visible ASCII characters",
            ));
        }
        self.prefix = prefix.to_owned();
        Ok(self)
    }

    /// The MAC's encoding.
    pub fn encoding(mut self, encoding: SignatureEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Sign and check a Unix-seconds timestamp carried in `header`.
    pub fn timestamp_header(mut self, header: &str) -> Result<Self> {
        self.timestamp_header = Some(header_name(header)?);
        Ok(self)
    }

    /// Sign a message id carried in `header`; it becomes the replay id.
    pub fn id_header(mut self, header: &str) -> Result<Self> {
        self.id_header = Some(header_name(header)?);
        Ok(self)
    }

    /// The separator between the signed parts (default `.`); must be a visible
    /// ASCII character.
    pub fn separator(mut self, sep: u8) -> Result<Self> {
        if !sep.is_ascii_graphic() || sep.is_ascii_digit() {
            return Err(Error::InvalidConfig(
                "generic separator must be visible ASCII and not a digit",
            ));
        }
        self.separator = sep;
        Ok(self)
    }
}

fn header_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(Error::InvalidConfig(
            "header name must be 1-64 token characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_secret_mistakes_have_specific_errors() {
        let sw = Scheme::StandardWebhooks;
        assert_eq!(sw.parse_key("").err(), Some(Error::SecretEmpty));
        assert_eq!(
            sw.parse_key("whsec_abc\n").err(),
            Some(Error::SecretWhitespace)
        );
        assert_eq!(
            sw.parse_key("v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .err(),
            Some(Error::SecretLooksLikeSignature)
        );
        assert_eq!(
            sw.parse_key("whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(Error::SecretWrongPrefix)
        );
        assert_eq!(
            sw.parse_key("whsec_not base64!").err(),
            Some(Error::SecretEncoding)
        );
        assert_eq!(sw.parse_key("whsec_AAAA").err(), Some(Error::SecretLength));
        assert!(
            sw.parse_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .is_ok()
        );
        assert!(sw.parse_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert_eq!(
            Scheme::Stripe.parse_key("sk_test_123").err(),
            Some(Error::SecretWrongPrefix)
        );
        assert_eq!(
            Scheme::Stripe.parse_key("t=1,v1=ab").err(),
            Some(Error::SecretLooksLikeSignature)
        );
        assert_eq!(
            Scheme::GitHub.parse_key("sha256=abcd").err(),
            Some(Error::SecretLooksLikeSignature)
        );
        assert_eq!(
            Scheme::StandardWebhooksEd25519.parse_key("whsec_abc").err(),
            Some(Error::SecretWrongPrefix)
        );
        assert_eq!(
            Scheme::StandardWebhooksEd25519.parse_key("whpk_AAAA").err(),
            Some(Error::SecretEncoding)
        );
    }

    /// Root cause: `whpk_` keys were decoded with `VerifyingKey::from_bytes`
    /// alone, which accepts every point on the curve, including the eight
    /// points of small order (and non-canonical spellings of them). Such a key
    /// is never a real sender's key and lets crafted signatures verify for
    /// many messages under the non-strict equation; the key is now refused
    /// when loaded (`is_weak`: the point times the cofactor is the identity).
    #[test]
    fn small_order_ed25519_public_keys_are_refused_when_loaded() {
        // The eight small-order points (canonical encodings, as listed by
        // libsodium and the "Taming the many EdDSAs" paper), plus
        // non-canonical encodings of the identity and of the order-2 point.
        const SMALL_ORDER: [&str; 11] = [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "0100000000000000000000000000000000000000000000000000000000000080",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ];
        let v1a = Scheme::StandardWebhooksEd25519;
        for hex_key in SMALL_ORDER {
            let raw = hex::decode(hex_key).unwrap();
            let text = format!("whpk_{}", encoding::b64(&raw));
            let err = v1a.parse_key(&text).err();
            assert!(
                matches!(err, Some(Error::SecretWeakKey | Error::SecretEncoding)),
                "{hex_key}: {err:?}"
            );
        }
        // Every canonical small-order point decodes, so it is the weak-key
        // check (not the decoder) that refuses it.
        for hex_key in &SMALL_ORDER[..8] {
            let text = format!("whpk_{}", encoding::b64(&hex::decode(hex_key).unwrap()));
            assert_eq!(
                v1a.parse_key(&text).err(),
                Some(Error::SecretWeakKey),
                "{hex_key}"
            );
        }
        // A real public key (RFC 8032 test 1) still loads.
        let rfc8032 =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        assert!(
            v1a.parse_key(&format!("whpk_{}", encoding::b64(&rfc8032)))
                .is_ok()
        );
    }

    #[test]
    fn names_round_trip() {
        for n in [
            "standard-webhooks",
            "svix",
            "standard-webhooks-v1a",
            "stripe",
            "github",
            "slack",
            "shopify",
            "paddle",
            "twilio",
            "generic",
        ] {
            assert_eq!(Scheme::from_name(n).map(|s| s.name()), Some(n));
        }
        assert_eq!(Scheme::from_name("nope"), None);
    }

    #[test]
    fn debug_of_key_material_prints_no_key() {
        let k = Scheme::GitHub
            .parse_key("It's a Secret to Everybody")
            .unwrap();
        let s = format!("{k:?}");
        assert!(s.contains("hmac-sha256") && !s.contains("Secret"), "{s}");
    }

    #[test]
    fn key_states_zeroize_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        // `Hmac<D>` holds the inner and outer hash states as `D`'s block-level
        // cores; with the `zeroize` features those wipe themselves on drop.
        assert_zeroize_on_drop::<Sha256>();
        assert_zeroize_on_drop::<Sha1>();
        assert_zeroize_on_drop::<SigningKey>();
    }

    #[test]
    fn generic_config_is_checked() {
        assert!(GenericHmac::new("").is_err());
        assert!(GenericHmac::new("x sig").is_err());
        assert!(GenericHmac::new("X-Sig").unwrap().separator(b'1').is_err());
        assert!(GenericHmac::new("X-Sig").unwrap().prefix("a b").is_err());
        assert_eq!(GenericHmac::new("X-Sig").unwrap().signature_header, "x-sig");
    }
}
