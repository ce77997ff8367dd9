//! Recovery codes for a second factor: generated in a batch, shown once,
//! stored hashed, each single-use.
//!
//! A code is 12 symbols of Crockford's base32 (`0-9 A-Z` without `I L O U`),
//! shown as `XXXX-XXXX-XXXX`: 60 bits from the operating system's generator.
//! Input is forgiving the way Crockford intends: case ignored, `O` read as
//! `0`, `I` and `L` as `1`, hyphens and spaces ignored, Arabic-Indic and
//! Eastern Arabic-Indic digits read as ASCII digits.
//!
//! # Storage: why a fast keyed hash
//!
//! Each code is stored as `HMAC-SHA256(pepper, "hisn-vault/recovery/v1\0" ||
//! salt || code)`, where `salt` is 32 random bytes per batch and `pepper` a
//! server secret kept outside the database (as for API keys). Passwords need
//! a slow hash because people choose them from a small space; these codes are
//! drawn uniformly from 2⁶⁰ values, so even an attacker holding the database
//! **and** the pepper must compute about 2⁶⁰ / 10 ≈ 1.2 × 10¹⁷ HMACs to find
//! one of a user's ten codes (years on a GPU rack for one account), while the
//! server pays one HMAC per try. The per-batch salt makes every batch a
//! separate search (no table computed once serves two users); the pepper
//! makes a database dump alone worthless.
//!
//! # Bound to the owner's row
//!
//! [`RecoveryCodes::generate_for`] hashes `"hisn-vault/recovery/v2\0" ||
//! owner || salt || code` instead, where `owner` is the set's tenant, table,
//! column and row id (four-byte lengths), and marks the set (`hrc2$`):
//! [`RecoveryCodes::verify_for`] with another owner verifies nothing. Without
//! it, anyone who can write the database copies their own set (whose codes
//! they hold) into another user's row and passes that user's second factor:
//! the attack the TOTP secret is sealed against. The unbound
//! [`RecoveryCodes::generate`]/[`RecoveryCodes::verify`] (`hrc1$`) remain for
//! sets stored before; a set of one kind never verifies as the other.
//!
//! # Single use, and the trap
//!
//! [`RecoveryCodes::verify`] compares the input's hash with every stored hash
//! in constant time (no early exit) and returns the index that matched; the
//! caller removes it ([`StoredRecoveryCodes::remove`]) and must persist the
//! removal **atomically with accepting the login**: with one row per hash,
//! `DELETE ... WHERE user_id = $1 AND hash = $2` and accept only if one row
//! went; with the whole set in one column, a compare-and-set on the old text.
//! Otherwise two concurrent requests can both spend the same code.
//!
//! Rate-limit recovery attempts like codes (the odds per try are 10 / 2⁶⁰,
//! negligible, but unthrottled tries still cost CPU and hide in the noise).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::{FieldContext, push_lp};
use crate::secret::SecretKey;
use crate::wrap::hmac_sha256;

/// Codes per batch by default.
pub const DEFAULT_COUNT: usize = 10;
/// Most codes per batch.
pub const MAX_COUNT: usize = 32;
/// Symbols per code (5 bits each: 60 bits).
pub const CODE_SYMBOLS: usize = 12;
/// Prefix of [`StoredRecoveryCodes::to_text`] for a set not bound to its
/// owner ([`RecoveryCodes::generate`]).
pub const TEXT_PREFIX: &str = "hrc1$";
/// Prefix of [`StoredRecoveryCodes::to_text`] for a set bound to its owner
/// ([`RecoveryCodes::generate_for`]).
pub const BOUND_TEXT_PREFIX: &str = "hrc2$";

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const MAX_INPUT: usize = 64;
const DOMAIN: &[u8] = b"hisn-vault/recovery/v1\0";
const BOUND_DOMAIN: &[u8] = b"hisn-vault/recovery/v2\0";

/// The owner a bound set's hashes cover: tenant, table, column and row id,
/// each with a four-byte length.
fn owner_bytes(owner: &FieldContext<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 64);
    for part in [owner.tenant(), owner.table(), owner.column(), owner.row()] {
        push_lp(&mut out, part.as_bytes());
    }
    out
}

/// A freshly generated batch: show it to the user once, never store it.
/// Zeroized on drop; `Debug` prints only the count.
pub struct RecoveryBatch {
    codes: Vec<Zeroizing<String>>,
}

impl RecoveryBatch {
    /// The codes, formatted `XXXX-XXXX-XXXX`.
    pub fn codes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.codes.iter().map(|c| c.as_str())
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the batch is empty (never, for a generated batch).
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

impl fmt::Debug for RecoveryBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryBatch([REDACTED; {} codes])", self.codes.len())
    }
}

/// What the server stores for one batch: the salt and one keyed hash per
/// unused code, and whether the hashes are bound to their owner. Holds no
/// secret.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredRecoveryCodes {
    salt: [u8; 32],
    hashes: Vec<[u8; 32]>,
    bound: bool,
}

impl StoredRecoveryCodes {
    /// The per-batch salt.
    pub fn salt(&self) -> &[u8; 32] {
        &self.salt
    }

    /// The hashes of the codes not yet used (one row each, if you store rows).
    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }

    /// Codes left.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether every code was used.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Remove the code at `index` (as returned by [`RecoveryCodes::verify`]);
    /// returns its hash, or `None` for an index out of range.
    pub fn remove(&mut self, index: usize) -> Option<[u8; 32]> {
        (index < self.hashes.len()).then(|| self.hashes.remove(index))
    }

    /// Whether the hashes are bound to their owner
    /// ([`RecoveryCodes::generate_for`]; verify with
    /// [`RecoveryCodes::verify_for`]).
    pub fn is_bound(&self) -> bool {
        self.bound
    }

    /// Rebuild an unbound set ([`RecoveryCodes::generate`]) from a salt and
    /// hashes read from storage (at most [`MAX_COUNT`] hashes).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for more than [`MAX_COUNT`] hashes.
    pub fn from_parts(salt: [u8; 32], hashes: Vec<[u8; 32]>) -> Result<Self> {
        Self::parts(salt, hashes, false)
    }

    /// Like [`StoredRecoveryCodes::from_parts`], for a set bound to its owner
    /// ([`RecoveryCodes::generate_for`]).
    ///
    /// # Errors
    /// As [`StoredRecoveryCodes::from_parts`].
    pub fn from_parts_bound(salt: [u8; 32], hashes: Vec<[u8; 32]>) -> Result<Self> {
        Self::parts(salt, hashes, true)
    }

    fn parts(salt: [u8; 32], hashes: Vec<[u8; 32]>, bound: bool) -> Result<Self> {
        if hashes.len() > MAX_COUNT {
            return Err(Error::InvalidInput("too many recovery code hashes"));
        }
        Ok(Self {
            salt,
            hashes,
            bound,
        })
    }

    /// One text value for a column: `hrc1$<salt>$<hash>,<hash>,...`
    /// (`hrc2$` for a set bound to its owner), each part unpadded standard
    /// base64 (an empty list when every code was used).
    pub fn to_text(&self) -> String {
        let hashes: Vec<String> = self
            .hashes
            .iter()
            .map(|h| STANDARD_NO_PAD.encode(h))
            .collect();
        let prefix = if self.bound {
            BOUND_TEXT_PREFIX
        } else {
            TEXT_PREFIX
        };
        format!(
            "{prefix}{}${}",
            STANDARD_NO_PAD.encode(self.salt),
            hashes.join(",")
        )
    }

    /// Parse [`StoredRecoveryCodes::to_text`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else.
    pub fn from_text(text: &str) -> Result<Self> {
        const BAD: Error = Error::InvalidInput("not a stored recovery code set");
        let text = text.trim();
        let (rest, bound) = match text.strip_prefix(BOUND_TEXT_PREFIX) {
            Some(rest) => (rest, true),
            None => (text.strip_prefix(TEXT_PREFIX).ok_or(BAD)?, false),
        };
        let (salt, list) = rest.split_once('$').ok_or(BAD)?;
        let arr = |s: &str| -> Result<[u8; 32]> {
            STANDARD_NO_PAD
                .decode(s)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
                .ok_or(BAD)
        };
        let salt = arr(salt)?;
        let hashes = if list.is_empty() {
            Vec::new()
        } else {
            if list.split(',').count() > MAX_COUNT {
                return Err(BAD);
            }
            list.split(',').map(arr).collect::<Result<Vec<_>>>()?
        };
        Self::parts(salt, hashes, bound)
    }
}

/// Canonical symbols of a typed code, or `None`.
fn canonical(input: &str) -> Option<Zeroizing<[u8; CODE_SYMBOLS]>> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let mut out = Zeroizing::new([0u8; CODE_SYMBOLS]);
    let mut n = 0;
    for c in input.chars() {
        let b = match c {
            '-' | ' ' => continue,
            '\u{0660}'..='\u{0669}' => b'0' + u8::try_from(u32::from(c) - 0x0660).ok()?,
            '\u{06F0}'..='\u{06F9}' => b'0' + u8::try_from(u32::from(c) - 0x06F0).ok()?,
            c if c.is_ascii() => match u8::try_from(c).ok()?.to_ascii_uppercase() {
                b'O' => b'0',
                b'I' | b'L' => b'1',
                b if CROCKFORD.contains(&b) => b,
                _ => return None,
            },
            _ => return None,
        };
        *out.get_mut(n)? = b;
        n += 1;
    }
    (n == CODE_SYMBOLS).then_some(out)
}

/// Generates and verifies recovery codes under one server pepper.
pub struct RecoveryCodes {
    pepper: SecretKey,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes").finish_non_exhaustive()
    }
}

impl RecoveryCodes {
    /// Codes hashed under `pepper` (a server secret kept outside the database).
    pub fn new(pepper: SecretKey) -> Self {
        Self { pepper }
    }

    /// The stored hash of a code: under `owner` (its encoding) for a bound
    /// set, so the hash is valid in that owner's row only.
    fn hash(
        &self,
        owner: Option<&[u8]>,
        salt: &[u8; 32],
        canonical: &[u8; CODE_SYMBOLS],
    ) -> [u8; 32] {
        let key = self.pepper.expose_secret();
        match owner {
            Some(o) => hmac_sha256(key, &[BOUND_DOMAIN, o, salt, canonical]),
            None => hmac_sha256(key, &[DOMAIN, salt, canonical]),
        }
    }

    /// A batch of `count` distinct codes (1..=[`MAX_COUNT`], usually
    /// [`DEFAULT_COUNT`]) and what to store for them. Show the batch once.
    /// A new batch replaces the old one entirely.
    ///
    /// The stored set is not bound to its owner: with write access to the
    /// database, one user's set (whose codes they know) pasted into another
    /// user's row verifies there. Prefer [`RecoveryCodes::generate_for`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad count, [`Error::Rng`].
    pub fn generate(&self, count: usize) -> Result<(RecoveryBatch, StoredRecoveryCodes)> {
        self.generate_inner(None, count)
    }

    /// Like [`RecoveryCodes::generate`], with every hash bound to `owner`
    /// (tenant, table, column and row id of the stored set, as for field
    /// encryption): the set verifies only through
    /// [`RecoveryCodes::verify_for`] with the same owner, so a set copied to
    /// another user's row, table or tenant verifies nothing there.
    ///
    /// # Errors
    /// As [`RecoveryCodes::generate`].
    pub fn generate_for(
        &self,
        owner: &FieldContext<'_>,
        count: usize,
    ) -> Result<(RecoveryBatch, StoredRecoveryCodes)> {
        self.generate_inner(Some(&owner_bytes(owner)), count)
    }

    fn generate_inner(
        &self,
        owner: Option<&[u8]>,
        count: usize,
    ) -> Result<(RecoveryBatch, StoredRecoveryCodes)> {
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(Error::InvalidConfig("recovery code count must be 1..=32"));
        }
        let mut salt = [0u8; 32];
        crate::rng::os_fill(&mut salt)?;
        let mut codes: Vec<Zeroizing<String>> = Vec::with_capacity(count);
        let mut hashes = Vec::with_capacity(count);
        while codes.len() < count {
            let mut raw = Zeroizing::new([0u8; 8]);
            crate::rng::os_fill(raw.as_mut())?;
            let v = Zeroizing::new(u64::from_le_bytes(*raw));
            let mut sym = Zeroizing::new([0u8; CODE_SYMBOLS]);
            for (i, s) in sym.iter_mut().enumerate() {
                *s = CROCKFORD[usize::from((*v >> (5 * i)).to_le_bytes()[0] & 31)];
            }
            let h = self.hash(owner, &salt, &sym);
            if hashes.contains(&h) {
                continue; // a repeat within one batch (p ≈ 2⁻⁵⁴): draw again
            }
            let mut shown = Zeroizing::new(String::with_capacity(CODE_SYMBOLS + 2));
            for (i, s) in sym.iter().enumerate() {
                if i > 0 && i % 4 == 0 {
                    shown.push('-');
                }
                shown.push(char::from(*s));
            }
            codes.push(shown);
            hashes.push(h);
        }
        Ok((
            RecoveryBatch { codes },
            StoredRecoveryCodes {
                salt,
                hashes,
                bound: owner.is_some(),
            },
        ))
    }

    /// Check a typed code against the stored set and return the index of the
    /// code it matched: remove that one ([`StoredRecoveryCodes::remove`]) and
    /// persist the removal atomically before accepting (see the module docs).
    /// Every stored hash is compared, in constant time.
    ///
    /// # Errors
    /// [`Error::TotpMalformed`] for input that cannot be a recovery code;
    /// [`Error::TotpRejected`] (opaque) for a code not in the set (wrong or
    /// already used), and for a set bound to its owner (verify it with
    /// [`RecoveryCodes::verify_for`]).
    pub fn verify(&self, stored: &StoredRecoveryCodes, input: &str) -> Result<usize> {
        self.verify_inner(None, stored, input)
    }

    /// [`RecoveryCodes::verify`] for a set from [`RecoveryCodes::generate_for`],
    /// read from `owner`'s row.
    ///
    /// # Errors
    /// As [`RecoveryCodes::verify`]; [`Error::TotpRejected`] also for a set
    /// generated for another owner (copied from another row, table or
    /// tenant) and for a set not bound to an owner.
    pub fn verify_for(
        &self,
        owner: &FieldContext<'_>,
        stored: &StoredRecoveryCodes,
        input: &str,
    ) -> Result<usize> {
        self.verify_inner(Some(&owner_bytes(owner)), stored, input)
    }

    fn verify_inner(
        &self,
        owner: Option<&[u8]>,
        stored: &StoredRecoveryCodes,
        input: &str,
    ) -> Result<usize> {
        let sym = canonical(input).ok_or(Error::TotpMalformed)?;
        if stored.bound != owner.is_some() {
            tracing::info!(target: "hisn::crypto_vault::recovery", "recovery code set of the other kind (bound or not) refused");
            return Err(Error::TotpRejected);
        }
        let h = self.hash(owner, &stored.salt, &sym);
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, stored_hash) in (0u64..).zip(stored.hashes.iter()) {
            let eq = h.ct_eq(stored_hash);
            index = u64::conditional_select(&index, &i, eq);
            found |= eq;
        }
        if bool::from(found) {
            usize::try_from(index).map_err(|_| Error::TotpRejected)
        } else {
            tracing::info!(target: "hisn::crypto_vault::recovery", "recovery code rejected");
            Err(Error::TotpRejected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let c = canonical("abcd-efgh-jkmn").unwrap();
        assert_eq!(&*c, b"ABCDEFGHJKMN");
        assert_eq!(&*canonical("o1l0 iooo ٠١٢۳").unwrap(), b"011010000123");
    }

    #[test]
    fn canonical_refuses() {
        for bad in [
            "",
            "ABCD-EFGH-JKM",
            "ABCD-EFGH-JKMNP",
            "ABCD-EFGH-JKMU",
            "ABCD_EFGH_JKMN",
            "ＡBCD-EFGH-JKMN",
        ] {
            assert!(canonical(bad).is_none(), "{bad}");
        }
        assert!(canonical(&"-".repeat(65)).is_none());
    }
}
