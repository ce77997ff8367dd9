//! Standard Webhooks v1 (HMAC-SHA256, with the `svix-*` alias) and v1a
//! (Ed25519): `webhook-id`, `webhook-timestamp`, and space-separated
//! `version,base64` entries in `webhook-signature`, over `id.timestamp.body`.

use ed25519_dalek::ed25519::signature::Signer as _;

use super::SignInput;
use super::limits::Limits;
use super::parsed::{Parsed, Prefix, SigList, bounded, mac_sha256, parse_ts, validate_id, widen};
use crate::encoding;
use crate::error::{Error, Result};
use crate::headers::{Headers, singles};
use crate::scheme::{KeyMaterial, Scheme};

pub(crate) fn parse<'h, H: Headers + ?Sized>(
    scheme: &Scheme,
    headers: &'h H,
    limits: &Limits,
) -> Result<Parsed<'h>> {
    // One pass over the headers; the answers are consumed in the order the
    // names were once looked up one by one, so the same error wins.
    let [sig, id, ts, svix_sig, svix_id, svix_ts] = singles(
        headers,
        [
            "webhook-signature",
            "webhook-id",
            "webhook-timestamp",
            "svix-signature",
            "svix-id",
            "svix-timestamp",
        ],
    );
    let (sig, id, ts) = match bounded(sig, limits)? {
        Some(sig) => (sig, id, ts),
        None => (
            bounded(svix_sig, limits)?.ok_or(Error::MissingHeader)?,
            svix_id,
            svix_ts,
        ),
    };
    let id = bounded(id, limits)?.ok_or(Error::MissingHeader)?;
    let ts_raw = bounded(ts, limits)?.ok_or(Error::MissingHeader)?;
    validate_id(id)?;
    let ts = parse_ts(ts_raw)?;
    let ed = matches!(scheme, Scheme::StandardWebhooksEd25519);
    let (version, len): (&[u8], usize) = if ed { (b"v1a", 64) } else { (b"v1", 32) };
    let mut sigs = SigList::new();
    let mut count = 0usize;
    for entry in sig.split(|&b| b == b' ').filter(|e| !e.is_empty()) {
        count += 1;
        if count > limits.max_entries {
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
    let mut prefix = Prefix::one(id);
    prefix.push(b".");
    prefix.push(ts_raw);
    prefix.push(b".");
    let mut p = Parsed::list(prefix, sigs, len, Some(ts));
    p.id = Some(id);
    Ok(p)
}

pub(crate) fn sign(
    scheme: &Scheme,
    live: &[&KeyMaterial],
    input: &SignInput<'_>,
    ts: &str,
) -> Result<Vec<(String, String)>> {
    let id = input.id.ok_or(Error::InvalidId)?;
    validate_id(id.as_bytes()).map_err(|_| Error::InvalidId)?;
    let prefix = format!("{id}.{ts}.");
    let mut entries = Vec::new();
    for k in live {
        match k {
            KeyMaterial::Sha256(s) => entries.push(format!(
                "v1,{}",
                encoding::b64(&mac_sha256(s, prefix.as_bytes(), input.body))
            )),
            KeyMaterial::Ed25519 {
                signing: Some(sk), ..
            } => {
                let mut msg = prefix.as_bytes().to_vec();
                msg.extend_from_slice(input.body);
                entries.push(format!("v1a,{}", encoding::b64(&sk.sign(&msg).to_bytes())));
            }
            _ => {}
        }
    }
    if entries.is_empty() {
        return Err(Error::SigningUnavailable);
    }
    let p = if matches!(scheme, Scheme::Svix) {
        "svix"
    } else {
        "webhook"
    };
    Ok(vec![
        (format!("{p}-id"), id.to_owned()),
        (format!("{p}-timestamp"), ts.to_owned()),
        (format!("{p}-signature"), entries.join(" ")),
    ])
}
