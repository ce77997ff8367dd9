//! The configurable HMAC-SHA256 scheme ([`crate::GenericHmac`]): signed
//! bytes `[id SEP][timestamp SEP]body`, MAC in hex or base64 after an
//! optional literal prefix.

use super::SignInput;
use super::limits::Limits;
use super::parsed::{Parsed, Prefix, mac_sha256, parse_ts, required, validate_id};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::scheme::{GenericHmac, KeyMaterial, SignatureEncoding};

pub(crate) fn parse<'h, H: Headers + ?Sized>(
    g: &'h GenericHmac,
    headers: &'h H,
    limits: &Limits,
) -> Result<Parsed<'h>> {
    let h = required(headers, &g.signature_header, limits)?;
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
        let v = required(headers, id_h, limits)?;
        validate_id(v)?;
        if v.contains(&g.separator) {
            return Err(Error::Malformed);
        }
        prefix.push(v);
        prefix.push(std::slice::from_ref(&g.separator));
        id = Some(v);
    }
    let mut timestamp = None;
    if let Some(ts_h) = &g.timestamp_header {
        let v = required(headers, ts_h, limits)?;
        timestamp = Some(parse_ts(v)?);
        prefix.push(v);
        prefix.push(std::slice::from_ref(&g.separator));
    }
    let mut p = Parsed::simple(prefix, sig, timestamp);
    p.id = id;
    Ok(p)
}

pub(crate) fn sign(
    g: &GenericHmac,
    first: &KeyMaterial,
    input: &SignInput<'_>,
    ts: &str,
) -> Result<Vec<(String, String)>> {
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
        out.push((id_h.clone(), id.to_owned()));
    }
    if let Some(ts_h) = &g.timestamp_header {
        prefix.push_str(ts);
        prefix.push(sep);
        out.push((ts_h.clone(), ts.to_owned()));
    }
    let mac = mac_sha256(s, prefix.as_bytes(), input.body);
    let enc = match g.encoding {
        SignatureEncoding::Hex => encoding::hex_lower(&mac),
        SignatureEncoding::Base64 => encoding::b64(&mac),
    };
    out.push((g.signature_header.clone(), format!("{}{enc}", g.prefix)));
    Ok(out)
}
