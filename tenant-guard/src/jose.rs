//! Checks on a compact JWS that `jsonwebtoken` does not make, done on the raw
//! segments before the token is decoded.
//!
//! - **Duplicate member names** in the header or the claims, at any depth.
//!   RFC 7519 §4 lets a parser either refuse them or keep the last one; two
//!   parsers that disagree (a gateway keeping the first `tenant_id`, this crate
//!   keeping the last) see two different tenants in one signed token. Refused.
//! - **`crit`** (RFC 7515 §4.1.11): a recipient must refuse a token whose
//!   `crit` lists an extension it does not understand. This crate understands
//!   none, so any `crit` is refused (and so is `b64`, RFC 7797, which only
//!   means something when listed in `crit`).

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value walked only to prove that no object in it repeats a member name.
struct UniqueMembers;

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = UniqueMembers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMembers, A::Error> {
        let mut seen = HashSet::new();
        // Keys are compared after JSON unescaping: `"tenant_id"` and
        // `"tenant\u005fid"` are the same member.
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value::<UniqueMembers>()?;
        }
        Ok(UniqueMembers)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueMembers, A::Error> {
        while seq.next_element::<UniqueMembers>()?.is_some() {}
        Ok(UniqueMembers)
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }
    fn visit_unit<E>(self) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }
}

/// Decode one base64url segment and check that it is JSON with unique member
/// names everywhere.
fn unique_json(segment: &str) -> Result<Vec<u8>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "segment is not base64url")?;
    serde_json::from_slice::<UniqueMembers>(&bytes).map_err(|_| "duplicate member or bad JSON")?;
    Ok(bytes)
}

/// Refuse a compact token whose header or claims repeat a member name, or
/// whose header carries `crit` or `b64`. The reason is for a debug event only.
pub(crate) fn check_compact(token: &str) -> Result<(), &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three segments");
    };
    let header = unique_json(header)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|_| "header is not a JSON object")?;
    // Present at all, whatever the value (`null` included).
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err("crit or b64 header (no extension is understood)");
    }
    unique_json(claims)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.sig", seg(header), seg(claims))
    }

    #[test]
    fn duplicate_members_at_any_depth_are_refused() {
        let h = r#"{"alg":"HS256","kid":"k"}"#;
        assert!(check_compact(&token(h, r#"{"a":1,"b":{"c":[{"d":1}]}}"#)).is_ok());
        for claims in [
            r#"{"tenant_id":"a","tenant_id":"b"}"#,
            r#"{"tenant_id":"a","tenant\u005fid":"b"}"#,
            r#"{"sub":"a","x":{"y":1,"y":2}}"#,
            r#"{"x":[{"y":1,"y":1}]}"#,
        ] {
            assert!(check_compact(&token(h, claims)).is_err(), "{claims}");
        }
        assert!(check_compact(&token(r#"{"alg":"HS256","alg":"none"}"#, "{}")).is_err());
    }

    #[test]
    fn crit_and_b64_are_refused() {
        for h in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
            r#"{"alg":"HS256","b64":true}"#,
            r#"{"alg":"HS256","crit":null}"#,
        ] {
            assert!(check_compact(&token(h, "{}")).is_err(), "{h}");
        }
        assert!(check_compact("a.b").is_err());
        assert!(check_compact("a.b.c.d").is_err());
    }
}
