//! One signature in one header, HMAC-SHA256: GitHub (`sha256=<hex>` over the
//! body), Slack (`v0=<hex>` over `v0:ts:body`, timestamp in its own header)
//! and Shopify (base64 over the body).

use super::SignInput;
use super::limits::Limits;
use super::parsed::{Parsed, Prefix, mac_sha256, parse_ts, required};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::scheme::{KeyMaterial, Scheme};

pub(crate) fn parse<'h, H: Headers + ?Sized>(
    scheme: &Scheme,
    headers: &'h H,
    limits: &Limits,
) -> Result<Parsed<'h>> {
    match scheme {
        Scheme::Slack => {
            let h = required(headers, "x-slack-signature", limits)?;
            let ts_raw = required(headers, "x-slack-request-timestamp", limits)?;
            let ts = parse_ts(ts_raw)?;
            let hex = h.strip_prefix(b"v0=").ok_or(Error::Malformed)?;
            let sig = encoding::hex_lower_exact::<32>(hex).ok_or(Error::Malformed)?;
            let mut prefix = Prefix::one(b"v0:");
            prefix.push(ts_raw);
            prefix.push(b":");
            Ok(Parsed::simple(prefix, sig, Some(ts)))
        }
        Scheme::Shopify => {
            let h = required(headers, "x-shopify-hmac-sha256", limits)?;
            let sig = encoding::b64_exact::<32>(h).ok_or(Error::Malformed)?;
            Ok(Parsed::simple(Prefix::new(), sig, None))
        }
        _ => {
            let h = required(headers, "x-hub-signature-256", limits)?;
            let hex = h.strip_prefix(b"sha256=").ok_or(Error::Malformed)?;
            let sig = encoding::hex_lower_exact::<32>(hex).ok_or(Error::Malformed)?;
            Ok(Parsed::simple(Prefix::new(), sig, None))
        }
    }
}

pub(crate) fn sign(
    scheme: &Scheme,
    first: &KeyMaterial,
    input: &SignInput<'_>,
    ts: &str,
) -> Result<Vec<(String, String)>> {
    let KeyMaterial::Sha256(s) = first else {
        return Err(Error::SigningUnavailable);
    };
    let body = input.body;
    Ok(match scheme {
        Scheme::Slack => {
            let prefix = format!("v0:{ts}:");
            let mac = encoding::hex_lower(&mac_sha256(s, prefix.as_bytes(), body));
            vec![
                ("X-Slack-Request-Timestamp".to_owned(), ts.to_owned()),
                ("X-Slack-Signature".to_owned(), format!("v0={mac}")),
            ]
        }
        Scheme::Shopify => vec![(
            "X-Shopify-Hmac-Sha256".to_owned(),
            encoding::b64(&mac_sha256(s, b"", body)),
        )],
        _ => vec![(
            "X-Hub-Signature-256".to_owned(),
            format!("sha256={}", encoding::hex_lower(&mac_sha256(s, b"", body))),
        )],
    })
}
