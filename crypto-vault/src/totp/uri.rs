//! `otpauth://totp/` URIs (the Key URI Format authenticator apps read) and
//! RFC 4648 base32.
//!
//! Built: `otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&algorithm=<SHA1|SHA256|SHA512>&digits=<n>&period=<s>`,
//! issuer and account percent-encoded (every byte outside RFC 3986's
//! unreserved set `A-Z a-z 0-9 - . _ ~` becomes `%XX`, space is `%20`), the
//! secret unpadded upper-case base32. Parsed: the same shape, strictly (an
//! untrusted input): bounded length, `totp` only, each known parameter at
//! most once, a label issuer that differs from the `issuer` parameter
//! refused, unknown parameters ignored (apps add `image`, `color`, ...).

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::code::Totp;
use super::{Algorithm, TotpParams, TotpSecret};
use crate::error::{Error, Result};

/// Longest URI [`OtpAuthUri::parse`] accepts, in bytes.
pub const MAX_URI_LEN: usize = 2048;
/// Longest issuer or account name, in bytes (decoded).
pub const MAX_LABEL_LEN: usize = 256;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Unpadded upper-case RFC 4648 base32.
pub(crate) fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32[usize::from(low_byte(acc >> bits) & 31)]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            B32[usize::from(low_byte(acc << (5 - bits)) & 31)],
        ));
    }
    acc.zeroize();
    out
}

fn low_byte(x: u32) -> u8 {
    x.to_le_bytes()[0]
}

/// RFC 4648 base32, ASCII case-insensitive; spaces anywhere and `=` padding at
/// the end ignored. `None` for anything else or more than 512 characters.
pub(crate) fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    if text.len() > 512 {
        return None;
    }
    let body = text.trim_end_matches(['=', ' ']);
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() * 5 / 8));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in body.bytes() {
        let v = match b {
            b' ' => continue,
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a',
            b'2'..=b'7' => b - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(low_byte(acc >> bits));
        }
        acc &= (1 << bits) - 1;
    }
    acc.zeroize();
    Some(out)
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode (`+` is a space in query values, as apps write it).
fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push((hi << 4) | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

fn check_label(s: &str, what: &'static str) -> Result<()> {
    if s.trim().is_empty()
        || s.len() > MAX_LABEL_LEN
        || s.contains(':')
        || s.chars().any(char::is_control)
    {
        return Err(Error::InvalidInput(what));
    }
    Ok(())
}

fn decode_label(s: &str, plus_is_space: bool, what: &'static str) -> Result<String> {
    let bytes = percent_decode(s, plus_is_space).ok_or(Error::InvalidInput(what))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::InvalidInput(what))?;
    let text = text.trim().to_owned();
    check_label(&text, what)?;
    Ok(text)
}

/// An `otpauth://totp/` URI: issuer, account and credential. `Debug` prints
/// no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpAuthUri {
    issuer: Option<String>,
    account: String,
    totp: Totp,
}

impl fmt::Debug for OtpAuthUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpAuthUri")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("totp", &self.totp)
            .finish()
    }
}

impl OtpAuthUri {
    /// A URI for `totp`, shown by apps as "issuer (account)".
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an issuer or account that is blank, longer
    /// than [`MAX_LABEL_LEN`] bytes, or holds a colon or a control character.
    pub fn new(issuer: &str, account: &str, totp: Totp) -> Result<Self> {
        check_label(
            issuer,
            "TOTP issuer must be 1..=256 bytes, no colon or control character",
        )?;
        check_label(
            account,
            "TOTP account must be 1..=256 bytes, no colon or control character",
        )?;
        Ok(Self {
            issuer: Some(issuer.to_owned()),
            account: account.to_owned(),
            totp,
        })
    }

    /// The issuer, if the URI names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The credential.
    pub fn totp(&self) -> &Totp {
        &self.totp
    }

    /// Consume the URI, keeping the credential.
    pub fn into_totp(self) -> Totp {
        self.totp
    }

    /// The URI text. It holds the secret: show it once, never log it.
    ///
    /// # Errors
    /// None today; fallible so that the encoding can refuse values later.
    pub fn to_uri(&self) -> Result<Zeroizing<String>> {
        let p = self.totp.params();
        let mut out = Zeroizing::new(String::with_capacity(160 + 3 * self.account.len()));
        out.push_str("otpauth://totp/");
        if let Some(issuer) = &self.issuer {
            percent_encode(issuer, &mut out);
            out.push(':');
        }
        percent_encode(&self.account, &mut out);
        out.push_str("?secret=");
        out.push_str(&self.totp.secret().to_base32());
        if let Some(issuer) = &self.issuer {
            out.push_str("&issuer=");
            percent_encode(issuer, &mut out);
        }
        out.push_str("&algorithm=");
        out.push_str(p.algorithm().as_str());
        out.push_str(&format!("&digits={}&period={}", p.digits(), p.period()));
        Ok(out)
    }

    /// Parse an `otpauth://totp/` URI (untrusted input; see the module docs).
    /// Missing parameters take the Key URI Format defaults: SHA1, 6 digits,
    /// 30 seconds.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything malformed, an `hotp` URI, or
    /// parameters outside [`TotpParams`]' ranges; [`Error::InvalidKey`] for a
    /// missing, non-base32 or wrong-length secret.
    pub fn parse(uri: &str) -> Result<Self> {
        const BAD: Error = Error::InvalidInput("not an otpauth://totp/ URI");
        if uri.len() > MAX_URI_LEN {
            return Err(Error::InvalidInput("otpauth URI too long"));
        }
        let uri = uri.trim();
        let prefix = "otpauth://totp/";
        let head = uri.get(..prefix.len()).ok_or(BAD)?;
        if !head.eq_ignore_ascii_case(prefix) {
            return Err(BAD);
        }
        let rest = &uri[prefix.len()..];
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let label = std::str::from_utf8(&percent_decode(label, false).ok_or(BAD)?)
            .map_err(|_| BAD)?
            .to_owned();
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_owned()), a.trim().to_owned()),
            None => (None, label.trim().to_owned()),
        };
        check_label(
            &account,
            "otpauth account is blank, too long or holds a colon",
        )?;
        if let Some(i) = &label_issuer {
            check_label(i, "otpauth issuer is blank, too long or holds a colon")?;
        }

        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut period = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = if k.eq_ignore_ascii_case("secret") {
                &mut secret
            } else if k.eq_ignore_ascii_case("issuer") {
                &mut issuer
            } else if k.eq_ignore_ascii_case("algorithm") {
                &mut algorithm
            } else if k.eq_ignore_ascii_case("digits") {
                &mut digits
            } else if k.eq_ignore_ascii_case("period") {
                &mut period
            } else {
                continue;
            };
            if slot.replace(v).is_some() {
                return Err(Error::InvalidInput("otpauth parameter repeated"));
            }
        }
        let secret_text = Zeroizing::new(
            String::from_utf8(
                percent_decode(
                    secret.ok_or(Error::InvalidKey("otpauth URI has no secret"))?,
                    true,
                )
                .ok_or(Error::InvalidKey("TOTP secret is not base32"))?,
            )
            .map_err(|_| Error::InvalidKey("TOTP secret is not base32"))?,
        );
        let secret = TotpSecret::from_base32(&secret_text)?;
        let issuer = match issuer {
            Some(v) => Some(decode_label(
                v,
                true,
                "otpauth issuer parameter is malformed",
            )?),
            None => None,
        };
        let issuer = match (label_issuer, issuer) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::InvalidInput(
                    "otpauth label issuer differs from the issuer parameter",
                ));
            }
            (a, b) => b.or(a),
        };
        let algorithm = match algorithm {
            Some(a) => Algorithm::parse(a).ok_or(Error::InvalidInput(
                "otpauth algorithm is not SHA1, SHA256 or SHA512",
            ))?,
            None => Algorithm::Sha1,
        };
        let num = |v: Option<&str>, default: u32| -> Result<u32> {
            match v {
                None => Ok(default),
                Some(s)
                    if !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    s.parse()
                        .map_err(|_| Error::InvalidInput("otpauth number is malformed"))
                }
                Some(_) => Err(Error::InvalidInput("otpauth number is malformed")),
            }
        };
        let digits = u8::try_from(num(digits, 6)?)
            .map_err(|_| Error::InvalidInput("otpauth digits out of range"))?;
        let params = TotpParams::new(algorithm, digits, num(period, 30)?)
            .map_err(|_| Error::InvalidInput("otpauth digits or period out of range"))?;
        Ok(Self {
            issuer,
            account,
            totp: Totp::new(secret, params),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> Totp {
        Totp::new(
            TotpSecret::from_bytes(b"12345678901234567890").unwrap(),
            TotpParams::DEFAULT,
        )
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()).as_str(), enc);
            assert_eq!(base32_decode(enc).unwrap().as_slice(), plain.as_bytes());
        }
        assert_eq!(
            base32_decode("mzxw 6ytb oi======").unwrap().as_slice(),
            b"foobar"
        );
        assert!(base32_decode("MZXW1").is_none());
        assert!(base32_decode("MZ=XW").is_none());
    }

    #[test]
    fn built_uri_is_percent_encoded_and_round_trips() {
        let u = OtpAuthUri::new("ACME Co & Sons", "أحمد@example.com", totp()).unwrap();
        let text = u.to_uri().unwrap();
        assert_eq!(
            text.as_str(),
            "otpauth://totp/ACME%20Co%20%26%20Sons:%D8%A3%D8%AD%D9%85%D8%AF%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%20%26%20Sons\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(OtpAuthUri::parse(&text).unwrap(), u);
        assert!(!format!("{u:?}").contains("GEZDGNBV"));
    }

    #[test]
    fn labels_are_checked() {
        assert!(OtpAuthUri::new("a:b", "c", totp()).is_err());
        assert!(OtpAuthUri::new("a", "", totp()).is_err());
        assert!(OtpAuthUri::new("a", "x\ny", totp()).is_err());
        assert!(OtpAuthUri::new(&"a".repeat(257), "x", totp()).is_err());
    }

    #[test]
    fn parse_defaults_and_refusals() {
        let s = "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let u = OtpAuthUri::parse(s).unwrap();
        assert_eq!(u.issuer(), None);
        assert_eq!(u.account(), "alice");
        assert_eq!(u.totp().params(), TotpParams::DEFAULT);
        let u = OtpAuthUri::parse(
            "OTPAUTH://TOTP/Ex%3Abob?secret=gezdgnbvgy3tqojqgezdgnbvgy3tqojq&algorithm=sha512&digits=8&period=60&image=x",
        )
        .unwrap();
        assert_eq!(u.issuer(), Some("Ex"));
        assert_eq!(u.totp().params().algorithm(), Algorithm::Sha512);
        assert_eq!(u.totp().params().digits(), 8);
        for bad in [
            "otpauth://hotp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=1",
            "otpauth://totp/a",
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP",
            "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=9",
            "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=+6",
            "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&period=0",
            "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=MD5",
            "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "otpauth://totp/A:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=B",
            "otpauth://totp/:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "otpauth://totp/a%ZZ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "otpauth://totp/a%FF?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "otpauth://totp/",
            "https://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "otpau",
        ] {
            assert!(OtpAuthUri::parse(bad).is_err(), "{bad}");
        }
        assert!(OtpAuthUri::parse(&format!("otpauth://totp/{}", "a".repeat(3000))).is_err());
    }
}
