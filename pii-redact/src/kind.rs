//! What was found ([`Kind`]) and how it is written out ([`Mode`]).

use std::fmt;

/// A type of personal data or secret the redactor detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// E-mail address (also percent-encoded `%40` inside URLs).
    Email,
    /// Telephone number: Saudi mobile and landline in every common writing,
    /// other GCC numbers and international E.164 numbers.
    Phone,
    /// IBAN (ISO 13616), validated with mod-97 and the country's length.
    Iban,
    /// Payment card number (PAN), Luhn-valid with a known IIN range.
    Card,
    /// Saudi national ID or Iqama number (10 digits, 1 or 2 first, Luhn).
    NationalId,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// JSON Web Token (`eyJ...` header, payload and signature).
    Jwt,
    /// The credential after `Bearer` or `Basic` (e.g. in `Authorization`).
    BearerToken,
    /// An API key in a well-known format (`hisn_`, `sk_live_`, `ghp_`, `AKIA`, ...).
    ApiKey,
    /// The value after a sensitive key name in `key=value` or `key: value`
    /// text (`password=...`, `client_secret: ...`).
    Secret,
    /// A user-defined detector; the index is its position in the builder.
    Custom(u16),
}

impl Kind {
    /// Every built-in kind, in a stable order.
    pub const BUILT_IN: [Kind; 10] = [
        Kind::Email,
        Kind::Phone,
        Kind::Iban,
        Kind::Card,
        Kind::NationalId,
        Kind::IpAddress,
        Kind::Jwt,
        Kind::BearerToken,
        Kind::ApiKey,
        Kind::Secret,
    ];

    /// The placeholder label (`EMAIL` in `[EMAIL]`). Custom kinds use their own
    /// name, looked up by the redactor.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::Iban => "IBAN",
            Kind::Card => "CARD",
            Kind::NationalId => "NATIONAL_ID",
            Kind::IpAddress => "IP",
            Kind::Jwt => "JWT",
            Kind::BearerToken => "TOKEN",
            Kind::ApiKey => "API_KEY",
            Kind::Secret => "SECRET",
            Kind::Custom(_) => "CUSTOM",
        }
    }

    /// Index into per-kind tables (built-ins only).
    pub(crate) fn index(self) -> usize {
        match self {
            Kind::Email => 0,
            Kind::Phone => 1,
            Kind::Iban => 2,
            Kind::Card => 3,
            Kind::NationalId => 4,
            Kind::IpAddress => 5,
            Kind::Jwt => 6,
            Kind::BearerToken => 7,
            Kind::ApiKey => 8,
            Kind::Secret => 9,
            Kind::Custom(_) => 10,
        }
    }

    /// Whether [`Mode::Partial`] keeps the last four characters for this kind
    /// (cards, IBANs and phone numbers); other kinds fall back to a placeholder.
    pub fn supports_partial(self) -> bool {
        matches!(self, Kind::Card | Kind::Iban | Kind::Phone)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How a detected value is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// A fixed placeholder such as `[EMAIL]` (the default).
    #[default]
    Placeholder,
    /// Keep the last four digits or characters of cards, IBANs and phone
    /// numbers (`[CARD ****1111]`); other kinds get the placeholder.
    Partial,
    /// A keyed pseudonym, `[EMAIL:kdjfhgpoanebmcli]`: HMAC-SHA256 under the
    /// redactor's [`PseudonymKey`](crate::PseudonymKey) of the normalised value,
    /// truncated to 64 bits and written with the letters `a`-`p`, so the same
    /// value maps to the same token without being reversible. Needs a key.
    Pseudonym,
    /// Do not detect this kind at all.
    Off,
}

impl Mode {
    /// Parse `placeholder`, `partial`, `pseudonym` or `off`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "placeholder" => Some(Self::Placeholder),
            "partial" => Some(Self::Partial),
            "pseudonym" => Some(Self::Pseudonym),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}
