//! Stripe (`Stripe-Signature: t=..,v1=..`, signed `t.body`) and Paddle
//! (`Paddle-Signature: ts=..;h1=..`, signed `ts:body`): one timestamp and a
//! list of hex HMAC-SHA256 signatures in one header.

use super::SignInput;
use super::limits::Limits;
use super::parsed::{Parsed, Prefix, SigList, mac_sha256, parse_ts, required, widen};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::scheme::{KeyMaterial, Scheme};

/// The wire details of one of the two schemes.
struct Format {
    header: &'static str,
    sep: u8,
    ts_key: &'static [u8],
    sig_key: &'static [u8],
    joiner: &'static str,
}

fn format(scheme: &Scheme) -> Format {
    if matches!(scheme, Scheme::Stripe) {
        Format {
            header: "Stripe-Signature",
            sep: b',',
            ts_key: b"t",
            sig_key: b"v1",
            joiner: ".",
        }
    } else {
        Format {
            header: "Paddle-Signature",
            sep: b';',
            ts_key: b"ts",
            sig_key: b"h1",
            joiner: ":",
        }
    }
}

pub(crate) fn parse<'h, H: Headers + ?Sized>(
    scheme: &Scheme,
    headers: &'h H,
    limits: &Limits,
) -> Result<Parsed<'h>> {
    let f = format(scheme);
    let h = required(headers, f.header, limits)?;
    let (ts_raw, sigs) = parse_kv_list(h, &f, limits.max_entries)?;
    let ts = parse_ts(ts_raw)?;
    let mut prefix = Prefix::one(ts_raw);
    prefix.push(f.joiner.as_bytes());
    Ok(Parsed::list(prefix, sigs, 32, Some(ts)))
}

/// `key=value` list: exactly one timestamp entry, any number (up to `max`)
/// of other entries, of which the signature entries are kept and the rest
/// (`v0`, future versions) ignored.
fn parse_kv_list<'h>(h: &'h [u8], f: &Format, max: usize) -> Result<(&'h [u8], SigList)> {
    let mut ts = None;
    let mut sigs = SigList::new();
    let mut count = 0usize;
    for item in h.split(|&b| b == f.sep) {
        let Some(eq) = item.iter().position(|&b| b == b'=') else {
            return Err(Error::Malformed);
        };
        let (k, v) = (&item[..eq], &item[eq + 1..]);
        if k == f.ts_key {
            if ts.replace(v).is_some() {
                return Err(Error::Malformed);
            }
        } else {
            count += 1;
            if count > max {
                return Err(Error::TooLarge);
            }
            if k == f.sig_key
                && let Some(s) = encoding::hex_lower_exact::<32>(v)
            {
                sigs.push(widen(s));
            }
        }
    }
    Ok((ts.ok_or(Error::Malformed)?, sigs))
}

pub(crate) fn sign(
    scheme: &Scheme,
    live: &[&KeyMaterial],
    input: &SignInput<'_>,
    ts: &str,
) -> Result<Vec<(String, String)>> {
    let f = format(scheme);
    let (ts_key, sig_key) = (
        String::from_utf8_lossy(f.ts_key),
        String::from_utf8_lossy(f.sig_key),
    );
    let prefix = format!("{ts}{}", f.joiner);
    let mut v = format!("{ts_key}={ts}");
    for k in live {
        if let KeyMaterial::Sha256(s) = k {
            let mac = encoding::hex_lower(&mac_sha256(s, prefix.as_bytes(), input.body));
            v.push(char::from(f.sep));
            v.push_str(&format!("{sig_key}={mac}"));
        }
    }
    if v.len() == ts_key.len() + 1 + ts.len() {
        return Err(Error::SigningUnavailable);
    }
    Ok(vec![(f.header.to_owned(), v)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_bound_is_exact_and_the_timestamp_is_not_counted() {
        let f = format(&Scheme::Stripe);
        let sig = "v1=".to_owned() + &"ab".repeat(32);
        let three = format!("t=1,{sig},{sig},{sig}");
        assert_eq!(
            parse_kv_list(three.as_bytes(), &f, 3).map(|r| r.1.as_slice().len()),
            Ok(3)
        );
        assert_eq!(
            parse_kv_list(three.as_bytes(), &f, 2).err(),
            Some(Error::TooLarge)
        );
        // Unknown keys count towards the bound too (they cost parsing).
        let mixed = format!("t=1,v0=x,{sig}");
        assert_eq!(
            parse_kv_list(mixed.as_bytes(), &f, 1).err(),
            Some(Error::TooLarge)
        );
        assert!(parse_kv_list(mixed.as_bytes(), &f, 2).is_ok());
        assert_eq!(
            parse_kv_list(b"t=1,t=2", &f, 8).err(),
            Some(Error::Malformed)
        );
        assert_eq!(parse_kv_list(b"v1=ab", &f, 8).err(), Some(Error::Malformed));
        assert_eq!(
            parse_kv_list(b"t=1,junk", &f, 8).err(),
            Some(Error::Malformed)
        );
    }
}
