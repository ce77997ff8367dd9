//! The versioned, length-prefixed binary record encoding (version 1).
//!
//! This byte string, never a database rendering, is what the chain hashes.
//! All integers are big-endian.
//!
//! ```text
//! u8  version (= 1)
//! u8  tenant length, tenant bytes
//! u64 sequence number
//! i64 time, microseconds since the Unix epoch (UTC)
//! str actor, str action, str entity_type, str entity_id   (str = u16 length + UTF-8)
//! u8  subject count, then count x str
//! opt from_state, opt to_state, opt request_id           (opt = u8 0 | u8 1 + str)
//! u8  source IP tag: 0 none | 4 + 4 bytes | 6 + 16 bytes
//! u8  diff present: 0 | 1 + u32 length + canonical JSON text
//! ```
//!
//! The decoder accepts exactly what the encoder produces: any other byte string
//! (trailing bytes, a non-canonical diff, an out-of-range field) is refused, so a
//! record has one encoding and `encode(decode(b)) == b`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::clock::Timestamp;
use crate::error::{Error, Result, malformed};
use crate::event::{Event, TenantId, canonical_json, check_diff};
use crate::limits;

/// The current record format version.
pub const RECORD_VERSION: u8 = 1;

/// Encode `event` as record number `seq`.
///
/// # Errors
/// [`Error::InvalidField`]/[`Error::InvalidDiff`] if the event breaks the limits
/// (impossible for an event made by the builder).
pub fn encode_record(seq: u64, event: &Event) -> Result<Vec<u8>> {
    event.validate()?;
    let mut out = Vec::with_capacity(128 + event.diff.as_ref().map_or(0, String::len));
    out.push(RECORD_VERSION);
    let tenant = event.tenant.as_str().as_bytes();
    out.push(u8::try_from(tenant.len()).map_err(|_| Error::InvalidTenant)?);
    out.extend_from_slice(tenant);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&event.time.unix_micros().to_be_bytes());
    for s in [
        &event.actor,
        &event.action,
        &event.entity_type,
        &event.entity_id,
    ] {
        put_str(&mut out, s)?;
    }
    out.push(
        u8::try_from(event.subjects.len())
            .map_err(|_| Error::InvalidField { field: "subjects" })?,
    );
    for s in &event.subjects {
        put_str(&mut out, s)?;
    }
    for o in [&event.from_state, &event.to_state, &event.request_id] {
        match o {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_str(&mut out, s)?;
            }
        }
    }
    match event.source_ip {
        None => out.push(0),
        Some(IpAddr::V4(v4)) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
    match &event.diff {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(
                &u32::try_from(d.len())
                    .map_err(|_| Error::InvalidDiff)?
                    .to_be_bytes(),
            );
            out.extend_from_slice(d.as_bytes());
        }
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = u16::try_from(s.len()).map_err(|_| Error::InvalidField { field: "text" })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(malformed("record"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn str(&mut self) -> Result<String> {
        let len = u16::from_be_bytes(self.arr()?);
        let bytes = self.take(usize::from(len))?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| malformed("record"))
    }
    fn opt(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(malformed("record")),
        }
    }
}

/// The fixed prefix of a record: enough to check which chain and position it
/// claims, without decoding the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    /// Tenant bytes as stored.
    pub tenant: &'a [u8],
    /// Sequence number.
    pub seq: u64,
}

/// Read the version, tenant and sequence number of a record.
///
/// # Errors
/// [`Error::Malformed`] if the prefix is truncated or the version is unknown.
pub fn peek_header(bytes: &[u8]) -> Result<RecordHeader<'_>> {
    let mut r = Reader { buf: bytes };
    if r.u8()? != RECORD_VERSION {
        return Err(malformed("record version"));
    }
    let tlen = r.u8()?;
    let tenant = r.take(usize::from(tlen))?;
    let seq = u64::from_be_bytes(r.arr()?);
    Ok(RecordHeader { tenant, seq })
}

/// Whether a record's action is `action`, read without decoding the rest
/// (the verifier asks this of every record; a full decode costs more than the
/// record's hash). A record too short to hold an action answers `false`.
pub(crate) fn action_is(bytes: &[u8], action: &str) -> bool {
    fn skip(r: &mut Reader<'_>) -> Result<()> {
        let _version = r.u8()?;
        let tlen = r.u8()?;
        r.take(usize::from(tlen))?;
        let _seq: [u8; 8] = r.arr()?;
        let _time: [u8; 8] = r.arr()?;
        let alen = u16::from_be_bytes(r.arr()?);
        r.take(usize::from(alen))?;
        Ok(())
    }
    let mut r = Reader { buf: bytes };
    if skip(&mut r).is_err() {
        return false;
    }
    let Ok(len) = r.arr::<2>().map(u16::from_be_bytes) else {
        return false;
    };
    r.take(usize::from(len))
        .is_ok_and(|a| a == action.as_bytes())
}

/// Decode a record into its sequence number and event.
///
/// # Errors
/// [`Error::Malformed`] for anything the encoder would not have produced; the
/// builder's errors when a field breaks the limits.
pub fn decode_record(bytes: &[u8]) -> Result<(u64, Event)> {
    if bytes.len() > limits::MAX_RECORD_LEN {
        return Err(malformed("record"));
    }
    let mut r = Reader { buf: bytes };
    if r.u8()? != RECORD_VERSION {
        return Err(malformed("record version"));
    }
    let tlen = r.u8()?;
    let tenant =
        std::str::from_utf8(r.take(usize::from(tlen))?).map_err(|_| malformed("record"))?;
    let tenant = TenantId::parse(tenant)?;
    let seq = u64::from_be_bytes(r.arr()?);
    let time = Timestamp::from_unix_micros(i64::from_be_bytes(r.arr()?));
    let actor = r.str()?;
    let action = r.str()?;
    let entity_type = r.str()?;
    let entity_id = r.str()?;
    let n = r.u8()?;
    let mut subjects = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let s = r.str()?;
        if subjects.contains(&s) {
            return Err(malformed("record"));
        }
        subjects.push(s);
    }
    let from_state = r.opt()?;
    let to_state = r.opt()?;
    let request_id = r.opt()?;
    let source_ip = match r.u8()? {
        0 => None,
        4 => Some(IpAddr::V4(Ipv4Addr::from(r.arr::<4>()?))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(r.arr::<16>()?))),
        _ => return Err(malformed("record")),
    };
    let diff = match r.u8()? {
        0 => None,
        1 => {
            let len = u32::from_be_bytes(r.arr()?);
            let len = usize::try_from(len).map_err(|_| malformed("record"))?;
            if len > limits::MAX_DIFF_LEN {
                return Err(malformed("record"));
            }
            let text = std::str::from_utf8(r.take(len)?).map_err(|_| malformed("record"))?;
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|_| malformed("record diff"))?;
            // Canonical: the fast writer first, the canonicaliser when it
            // differs (see `jcs`); either way the limits are checked.
            check_diff(&value)?;
            if !crate::jcs::renders_as(&value, text) && canonical_json(&value)? != text {
                return Err(malformed("record diff"));
            }
            Some(text.to_owned())
        }
        _ => return Err(malformed("record")),
    };
    if !r.buf.is_empty() {
        return Err(malformed("record"));
    }
    let event = Event {
        tenant,
        time,
        actor,
        action,
        entity_type,
        entity_id,
        subjects,
        from_state,
        to_state,
        diff,
        source_ip,
        request_id,
    };
    event.validate()?;
    Ok((seq, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    fn sample() -> Event {
        let t = TenantId::parse("acme").unwrap();
        Event::builder(&t, "u-1", "work_order.transition")
            .entity("work_order", "wo-9")
            .subject("emp-4")
            .transition("open", "closed")
            .diff(&serde_json::json!({"status": ["open", "closed"]}))
            .source_ip("203.0.113.7".parse().unwrap())
            .request_id("r-1")
            .build(&FakeClock::new(Timestamp::from_unix_micros(
                1_700_000_000_000_000,
            )))
            .unwrap()
    }

    /// `action_is` reads the action where `decode_record` does: the
    /// verifier's prune checks skip the full decode on its answer, so a
    /// disagreement would let a prune record pass unexamined.
    #[test]
    fn action_is_agrees_with_the_decoder() {
        let e = sample();
        let b = encode_record(42, &e).unwrap();
        assert!(action_is(&b, "work_order.transition"));
        for other in [
            "work_order.transitio",
            "work_order.transition2",
            "",
            "u-1",
            "acme",
        ] {
            assert!(!action_is(&b, other), "{other}");
        }
        // Every truncation that cuts into the action answers false, never panics.
        let action_end = b
            .windows(e.action().len())
            .position(|w| w == e.action().as_bytes())
            .unwrap()
            + e.action().len();
        for n in 0..action_end {
            assert!(!action_is(&b[..n], "work_order.transition"), "{n}");
        }
        let clock = FakeClock::new(Timestamp::from_unix_micros(1));
        let t = TenantId::parse("a").unwrap();
        let prune = Event::builder(&t, "ops", crate::verify::PRUNE_ACTION)
            .danger_build_reserved(&clock)
            .unwrap();
        let pb = encode_record(0, &prune).unwrap();
        assert!(action_is(&pb, crate::verify::PRUNE_ACTION));
        assert!(!action_is(&b, crate::verify::PRUNE_ACTION));
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let b = encode_record(42, &e).unwrap();
        let (seq, d) = decode_record(&b).unwrap();
        assert_eq!((seq, &d), (42, &e));
        assert_eq!(encode_record(seq, &d).unwrap(), b);
        let h = peek_header(&b).unwrap();
        assert_eq!((h.tenant, h.seq), (&b"acme"[..], 42));
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let b = encode_record(1, &sample()).unwrap();
        for n in 0..b.len() {
            assert!(decode_record(&b[..n]).is_err(), "prefix {n}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode_record(&longer).is_err());
    }

    #[test]
    fn non_canonical_diff_is_refused() {
        let e = sample();
        let b = encode_record(1, &e).unwrap();
        let canon = br#"{"status":["open","closed"]}"#;
        let pos = b.windows(canon.len()).position(|w| w == canon).unwrap();
        let mut bad = b.clone();
        bad[pos..pos + canon.len()].copy_from_slice(br#"{"status":["open","closed"] "#);
        assert!(decode_record(&bad).is_err());
    }
}
