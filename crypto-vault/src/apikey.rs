//! API keys: `<prefix>_<id>_<secret><checksum>`.
//!
//! - `prefix`: configurable, e.g. `hisn_live` or `hisn_test` (lowercase ASCII
//!   letters, digits and `_`, 1..=32 characters, starting with a letter).
//! - `id`: 12 base62 characters (~71 bits), public, used to look the key up.
//! - `secret`: 43 base62 characters (62^43 > 2^256).
//! - `checksum`: CRC32 of everything before it, as 6 base62 characters, so
//!   secret scanners and the server reject look-alikes and typos before any
//!   database lookup. It is not a security control: the HMAC is.
//!
//! The server stores only `HMAC-SHA256(pepper, token)` (the pepper is a server
//! secret kept outside the database), compared in constant time, with expiry,
//! revocation and scopes.
//!
//! # Bound records
//!
//! [`ApiKeys::mint_for`] and [`ApiKeys::verify_for`] hash the token together
//! with its owner (the tenant and principal the key acts as), its scopes and
//! its expiry: a record whose owner, scopes or expiry was changed in the
//! database, or that was copied to another owner, no longer verifies. With the
//! plain [`ApiKeys::mint`]/[`ApiKeys::verify`], anyone who can write the
//! database turns their own key into an admin key of another tenant by
//! editing those columns. Revocation is a later change of state and cannot be
//! bound: keep a write to `revoked` audited.
//!
//! A regex for secret scanners (for the prefix `hisn_live`):
//!
//! ```text
//! \bhisn_live_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b
//! ```
//!
//! [`ApiKeys::scanner_regex`] returns it for the configured prefix.

use std::collections::BTreeSet;
use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::push_lp;
use crate::secret::SecretKey;
use crate::wrap::hmac_sha256;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the public id.
pub const ID_LEN: usize = 12;
/// Length of the secret part.
pub const SECRET_LEN: usize = 43;
/// Length of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Longest token accepted by the parser.
pub const MAX_TOKEN_LEN: usize = 32 + 1 + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

/// A freshly minted API key token: shown to the user once, never stored.
/// Zeroized on drop; `Debug` prints only the public id.
pub struct ApiKeyToken {
    token: Zeroizing<String>,
    id: String,
}

impl ApiKeyToken {
    /// The full token (show it to the user once).
    pub fn expose_secret(&self) -> &str {
        &self.token
    }
    /// The public id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the server stores for one API key. Holds no secret: `hash` is an HMAC
/// under the server pepper.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id (lookup key).
    pub id: String,
    /// `HMAC-SHA256(pepper, token)`.
    pub hash: [u8; 32],
    /// Granted scopes.
    pub scopes: BTreeSet<String>,
    /// Expiry, Unix seconds (exclusive); `None` = never.
    pub expires_at: Option<u64>,
    /// Whether the key was revoked.
    pub revoked: bool,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// Mints, parses and verifies API keys for one prefix and pepper.
pub struct ApiKeys {
    prefix: String,
    pepper: SecretKey,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Rounds of 64 random bytes `base62_random` draws before giving up: each
/// round keeps ~62 of them on average, so a working generator fills the 43
/// characters of a secret in one round; 16 rounds short would take a
/// generator stuck at bytes >= 248.
const BASE62_MAX_ROUNDS: usize = 16;

fn base62_random(n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    let mut buf = Zeroizing::new([0u8; 64]);
    for _ in 0..BASE62_MAX_ROUNDS {
        crate::rng::os_fill(buf.as_mut())?;
        base62_push(&mut out, n, buf.as_ref());
        if out.len() == n {
            return Ok(out);
        }
    }
    // Fail closed rather than spin (or mint a short key).
    Err(Error::Rng)
}

/// Append base62 characters drawn from the random `bytes` to `out` until it
/// holds `n`. Rejection sampling: 248 = 4 * 62, so `b % 62` is uniform for
/// b < 248, and bytes 248..=255 are skipped.
fn base62_push(out: &mut String, n: usize, bytes: &[u8]) {
    for &b in bytes.iter().filter(|b| **b < 248) {
        if out.len() == n {
            break;
        }
        out.push(char::from(BASE62[usize::from(b % 62)]));
    }
}

fn checksum(body: &str) -> String {
    let mut v = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl ApiKeys {
    /// Keys with `prefix` (e.g. `hisn_live`), hashed under `pepper`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad prefix.
    pub fn new(prefix: &str, pepper: SecretKey) -> Result<Self> {
        if !Self::valid_prefix(prefix) {
            return Err(Error::InvalidConfig(
                "API key prefix must be [a-z][a-z0-9_]{0,31}, not ending in _",
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            pepper,
        })
    }

    /// The prefix rule [`ApiKeys::new`] checks (outside `new`, which
    /// cargo-mutants never mutates: see docs/MUTATION.md).
    fn valid_prefix(prefix: &str) -> bool {
        (1..=32).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && !prefix.ends_with('_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A regex matching this prefix's tokens, for secret scanners.
    pub fn scanner_regex(&self) -> String {
        format!(
            r"\b{}_[0-9A-Za-z]{{{ID_LEN}}}_[0-9A-Za-z]{{{}}}\b",
            self.prefix,
            SECRET_LEN + CHECKSUM_LEN
        )
    }

    /// Mint a key. Store the record, show the token once.
    ///
    /// # Errors
    /// [`Error::Rng`].
    pub fn mint(
        &self,
        scopes: impl IntoIterator<Item = impl Into<String>>,
        expires_at: Option<u64>,
    ) -> Result<(ApiKeyToken, ApiKeyRecord)> {
        let id = base62_random(ID_LEN)?;
        let secret = Zeroizing::new(base62_random(SECRET_LEN)?);
        let mut token = Zeroizing::new(String::with_capacity(MAX_TOKEN_LEN));
        token.push_str(&self.prefix);
        token.push('_');
        token.push_str(&id);
        token.push('_');
        token.push_str(&secret);
        let sum = checksum(&token);
        token.push_str(&sum);
        let record = ApiKeyRecord {
            id: id.clone(),
            hash: self.hash(&token),
            scopes: scopes.into_iter().map(Into::into).collect(),
            expires_at,
            revoked: false,
        };
        Ok((ApiKeyToken { token, id }, record))
    }

    /// The keyed hash stored for `token`.
    pub fn hash(&self, token: &str) -> [u8; 32] {
        hmac_sha256(
            self.pepper.expose_secret(),
            &[b"hisn-vault/apikey/v1\0", token.as_bytes()],
        )
    }

    /// The keyed hash stored for `token` minted by [`ApiKeys::mint_for`]:
    /// over the token, its owner, its scopes (sorted, each length-prefixed)
    /// and its expiry, so none of them can be changed in storage.
    pub fn hash_for(
        &self,
        owner: &str,
        token: &str,
        scopes: &BTreeSet<String>,
        expires_at: Option<u64>,
    ) -> [u8; 32] {
        let mut msg = Vec::with_capacity(64 + owner.len() + token.len());
        push_lp(&mut msg, owner.as_bytes());
        push_lp(&mut msg, token.as_bytes());
        // The count first, so scopes and expiry can never blur together.
        msg.extend_from_slice(
            &u32::try_from(scopes.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for s in scopes {
            push_lp(&mut msg, s.as_bytes());
        }
        match expires_at {
            Some(e) => {
                msg.push(1);
                msg.extend_from_slice(&e.to_be_bytes());
            }
            None => msg.push(0),
        }
        hmac_sha256(
            self.pepper.expose_secret(),
            &[b"hisn-vault/apikey/v2\0", &msg],
        )
    }

    /// Like [`ApiKeys::mint`], with the stored hash bound to `owner` (the
    /// tenant and principal the key acts as, in one string of your choosing,
    /// e.g. `"tenant-7/user-42"`), the scopes and the expiry: verify it with
    /// [`ApiKeys::verify_for`] and the same owner. Store the owner beside the
    /// record as before; a record moved to another owner, or whose scopes or
    /// expiry were edited, is rejected.
    ///
    /// # Errors
    /// [`Error::Rng`]; [`Error::InvalidInput`] for an empty owner.
    pub fn mint_for(
        &self,
        owner: &str,
        scopes: impl IntoIterator<Item = impl Into<String>>,
        expires_at: Option<u64>,
    ) -> Result<(ApiKeyToken, ApiKeyRecord)> {
        if owner.is_empty() {
            return Err(Error::InvalidInput("API key owner must not be empty"));
        }
        let (token, mut record) = self.mint(scopes, expires_at)?;
        record.hash = self.hash_for(
            owner,
            token.expose_secret(),
            &record.scopes,
            record.expires_at,
        );
        Ok((token, record))
    }

    /// Check the format and checksum and return the public id to look up. No
    /// secret is checked here; call [`ApiKeys::verify`] with the stored record.
    ///
    /// # Errors
    /// [`Error::ApiKeyMalformed`].
    pub fn parse_id<'t>(&self, token: &'t str) -> Result<&'t str> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::ApiKeyMalformed);
        }
        let rest = token
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .ok_or(Error::ApiKeyMalformed)?;
        if rest.len() != ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN || !rest.is_char_boundary(ID_LEN) {
            return Err(Error::ApiKeyMalformed);
        }
        let (id, tail) = rest.split_at(ID_LEN);
        let tail = tail.strip_prefix('_').ok_or(Error::ApiKeyMalformed)?;
        if !is_base62(id) || !is_base62(tail) {
            return Err(Error::ApiKeyMalformed);
        }
        let body_len = token.len() - CHECKSUM_LEN;
        if checksum(&token[..body_len]) != token[body_len..] {
            return Err(Error::ApiKeyMalformed);
        }
        Ok(id)
    }

    /// Verify `token` against its stored record at time `now` (Unix seconds),
    /// requiring `scope` if given.
    ///
    /// # Errors
    /// [`Error::ApiKeyMalformed`] before any comparison; otherwise
    /// [`Error::ApiKeyRejected`] (opaque) for a wrong secret, another id, expiry,
    /// revocation or a missing scope.
    pub fn verify(
        &self,
        token: &str,
        record: &ApiKeyRecord,
        now: u64,
        scope: Option<&str>,
    ) -> Result<()> {
        self.check(token, record, now, scope, None)
    }

    /// [`ApiKeys::verify`] for a record from [`ApiKeys::mint_for`], read for
    /// `owner`.
    ///
    /// # Errors
    /// As [`ApiKeys::verify`]; [`Error::ApiKeyRejected`] also for a record
    /// minted for another owner or whose scopes or expiry were changed, and
    /// for a record from the plain [`ApiKeys::mint`].
    pub fn verify_for(
        &self,
        owner: &str,
        token: &str,
        record: &ApiKeyRecord,
        now: u64,
        scope: Option<&str>,
    ) -> Result<()> {
        self.check(token, record, now, scope, Some(owner))
    }

    fn check(
        &self,
        token: &str,
        record: &ApiKeyRecord,
        now: u64,
        scope: Option<&str>,
        owner: Option<&str>,
    ) -> Result<()> {
        let id = self.parse_id(token)?;
        let expected = match owner {
            Some(o) => self.hash_for(o, token, &record.scopes, record.expires_at),
            None => self.hash(token),
        };
        let hash_ok: bool = expected.ct_eq(&record.hash).into();
        let id_ok: bool = id.as_bytes().ct_eq(record.id.as_bytes()).into();
        let live = !record.revoked && record.expires_at.is_none_or(|e| now < e);
        let scoped = scope.is_none_or(|s| record.scopes.contains(s));
        if hash_ok && id_ok && live && scoped {
            Ok(())
        } else {
            tracing::info!(target: "hisn_crypto_vault", key_id = %record.id, "API key rejected");
            Err(Error::ApiKeyRejected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new("hisn_live", SecretKey::from_bytes([9; 32])).unwrap()
    }

    #[test]
    fn mint_parse_verify() {
        let k = keys();
        let (tok, rec) = k.mint(["read"], Some(1000)).unwrap();
        let t = tok.expose_secret();
        assert!(t.starts_with("hisn_live_"));
        assert_eq!(
            t.len(),
            "hisn_live_".len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN
        );
        assert_eq!(k.parse_id(t).unwrap(), rec.id);
        k.verify(t, &rec, 999, Some("read")).unwrap();
        assert!(matches!(
            k.verify(t, &rec, 1000, None),
            Err(Error::ApiKeyRejected)
        ));
        assert!(matches!(
            k.verify(t, &rec, 1, Some("write")),
            Err(Error::ApiKeyRejected)
        ));
        let revoked = ApiKeyRecord {
            revoked: true,
            ..rec.clone()
        };
        assert!(matches!(
            k.verify(t, &revoked, 1, None),
            Err(Error::ApiKeyRejected)
        ));
        let (other, _) = k.mint(Vec::<String>::new(), None).unwrap();
        assert!(matches!(
            k.verify(other.expose_secret(), &rec, 1, None),
            Err(Error::ApiKeyRejected)
        ));
        let other_pepper = ApiKeys::new("hisn_live", SecretKey::from_bytes([8; 32])).unwrap();
        assert!(matches!(
            other_pepper.verify(t, &rec, 1, None),
            Err(Error::ApiKeyRejected)
        ));
    }

    #[test]
    fn checksum_rejects_look_alikes() {
        let k = keys();
        let (tok, _) = k.mint(["read"], None).unwrap();
        let t = tok.expose_secret();
        let mut b = t.as_bytes().to_vec();
        let i = "hisn_live_".len() + ID_LEN + 5;
        b[i] = if b[i] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(b).unwrap();
        assert!(matches!(k.parse_id(&bad), Err(Error::ApiKeyMalformed)));
        assert!(matches!(
            k.parse_id("hisn_test_x"),
            Err(Error::ApiKeyMalformed)
        ));
        assert!(matches!(k.parse_id(""), Err(Error::ApiKeyMalformed)));
        assert!(matches!(
            k.parse_id(&t.replace("hisn_live", "hisn_test")),
            Err(Error::ApiKeyMalformed)
        ));
    }

    #[test]
    fn prefix_is_validated_and_regex_names_it() {
        assert!(ApiKeys::new("Bad", SecretKey::from_bytes([0; 32])).is_err());
        assert!(ApiKeys::new("x_", SecretKey::from_bytes([0; 32])).is_err());
        assert_eq!(
            keys().scanner_regex(),
            r"\bhisn_live_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b"
        );
        assert!(!format!("{:?}", keys()).contains("9, 9"));
    }

    /// Rejection sampling keeps the alphabet uniform: bytes 248..=255 are
    /// skipped (248 = 4 * 62), every other byte maps to `BASE62[b % 62]`, and
    /// drawing stops at the requested length.
    #[test]
    fn base62_sampling_skips_bytes_from_248_and_stops_at_n() {
        let mut out = String::new();
        base62_push(&mut out, 6, &[247, 248, 255, 0, 61, 62, 123, 124, 1]);
        assert_eq!(out, "z0z0z0");
        let mut out = String::from("ab");
        base62_push(&mut out, 3, &[250, 10, 11]);
        assert_eq!(out, "abA", "appends to what is there, up to n");
    }

    /// The checksum is CRC-32 (IEEE) of everything before it, written as six
    /// base62 digits, most significant first: scanners written in other
    /// languages must compute the same value.
    #[test]
    fn checksum_is_crc32_in_six_base62_digits() {
        // CRC-32 check value: crc32("123456789") = 0xCBF43926 = 3421780262.
        assert_eq!(checksum("123456789"), "3jZRME");
        assert_eq!(checksum(""), "000000");
        let body = format!(
            "hisn_live_{}_{}",
            "A".repeat(ID_LEN),
            "B".repeat(SECRET_LEN)
        );
        assert_eq!(checksum(&body), "3ApAMJ");
        let token = format!("{body}3ApAMJ");
        assert_eq!(keys().parse_id(&token).unwrap(), "A".repeat(ID_LEN));
    }

    /// The longest token (a 32-character prefix) is exactly `MAX_TOKEN_LEN`
    /// bytes and parses; one byte more is refused before anything else.
    #[test]
    fn longest_prefix_token_is_max_token_len_and_parses() {
        assert_eq!(MAX_TOKEN_LEN, 95);
        let k = ApiKeys::new(&"p".repeat(32), SecretKey::from_bytes([1; 32])).unwrap();
        let (tok, rec) = k.mint(["s"], None).unwrap();
        assert_eq!(tok.expose_secret().len(), MAX_TOKEN_LEN);
        assert_eq!(k.parse_id(tok.expose_secret()).unwrap(), rec.id);
        k.verify(tok.expose_secret(), &rec, 0, Some("s")).unwrap();
        let longer = format!("{}0", tok.expose_secret());
        assert!(matches!(k.parse_id(&longer), Err(Error::ApiKeyMalformed)));
    }

    /// A token with the right length and checksum but a character outside
    /// base62 in the id or in the secret is malformed; so is a multi-byte
    /// character across the id's end (refused, not a panic).
    #[test]
    fn right_length_and_checksum_with_non_base62_is_malformed() {
        let k = keys();
        let with_sum = |body: String| {
            let sum = checksum(&body);
            body + &sum
        };
        let bad_id = with_sum(format!(
            "hisn_live_{}-_{}",
            "A".repeat(ID_LEN - 1),
            "B".repeat(SECRET_LEN)
        ));
        let bad_secret = with_sum(format!(
            "hisn_live_{}_{}+",
            "A".repeat(ID_LEN),
            "B".repeat(SECRET_LEN - 1)
        ));
        let good = with_sum(format!(
            "hisn_live_{}_{}",
            "A".repeat(ID_LEN),
            "B".repeat(SECRET_LEN)
        ));
        assert!(k.parse_id(&good).is_ok());
        assert!(matches!(k.parse_id(&bad_id), Err(Error::ApiKeyMalformed)));
        assert!(matches!(
            k.parse_id(&bad_secret),
            Err(Error::ApiKeyMalformed)
        ));
        // 'é' (2 bytes) straddles byte ID_LEN; the total length is still right.
        let straddle = format!(
            "hisn_live_{}é{}",
            "A".repeat(ID_LEN - 1),
            "B".repeat(1 + SECRET_LEN + CHECKSUM_LEN - 1)
        );
        assert_eq!(
            straddle.len(),
            "hisn_live_".len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN
        );
        assert!(matches!(k.parse_id(&straddle), Err(Error::ApiKeyMalformed)));
    }

    /// Each condition of `verify` rejects on its own: a record for another
    /// id with this token's hash is refused although the hash matches.
    #[test]
    fn verify_refuses_a_record_whose_id_differs_even_with_the_right_hash() {
        let k = keys();
        let (tok, rec) = k.mint(["read"], None).unwrap();
        let moved = ApiKeyRecord {
            id: "ZZZZZZZZZZZZ".into(),
            ..rec.clone()
        };
        assert!(matches!(
            k.verify(tok.expose_secret(), &moved, 1, None),
            Err(Error::ApiKeyRejected)
        ));
        k.verify(tok.expose_secret(), &rec, 1, None).unwrap();
        k.verify(tok.expose_secret(), &rec, u64::MAX, Some("read"))
            .unwrap();
    }

    /// Prefix rules: 1..=32 characters of `[a-z0-9_]`, starting with a letter,
    /// not ending in `_`.
    #[test]
    fn prefix_rules_accept_exactly_the_documented_set() {
        let new = |p: &str| ApiKeys::new(p, SecretKey::from_bytes([0; 32]));
        for ok in ["a", "hisn_live", "h2_test_9", &"p".repeat(32)] {
            assert_eq!(new(ok).unwrap().prefix(), ok);
        }
        for bad in [
            "",
            "9live",
            "_live",
            "hisn-live",
            "hisn live",
            "hisnLive",
            "live_",
            &"p".repeat(33),
        ] {
            assert!(matches!(new(bad), Err(Error::InvalidConfig(_))), "{bad:?}");
        }
    }

    /// `Debug` shows the public parts (id, prefix, scopes, expiry, revocation)
    /// and never the token, its secret or the stored hash.
    #[test]
    fn debug_shows_public_parts_only() {
        let k = keys();
        let (tok, rec) = k.mint(["read"], Some(77)).unwrap();
        assert_eq!(tok.id(), rec.id);
        let secret_part = &tok.expose_secret()["hisn_live_".len() + ID_LEN + 1..];
        let t = format!("{tok:?}");
        assert!(t.contains(&rec.id) && !t.contains(secret_part), "{t}");
        let r = format!("{rec:?}");
        for part in [rec.id.as_str(), "read", "77", "revoked: false"] {
            assert!(r.contains(part), "{r} lacks {part}");
        }
        assert!(
            !r.contains(&format!("{:?}", rec.hash)) && !r.contains("hash"),
            "{r}"
        );
        let d = format!("{k:?}");
        assert!(d.contains("hisn_live") && !d.contains("pepper"), "{d}");
    }
}
