//! Wrapped legacy hashes: argon2id over a legacy digest, for a one-shot
//! offline migration.
//!
//! [`PasswordHasher::wrap_legacy`](super::PasswordHasher::wrap_legacy) turns a
//! stored legacy hash into
//!
//! ```text
//! $hisn-wrap-v1$<legacy settings>$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>
//! ```
//!
//! where the argon2id input is the legacy digest (`argon2id(bcrypt(pw))`) and
//! the legacy settings are the legacy hash without its digest, normalised:
//! `2b$<cost>$<salt>`, `scrypt$ln=..,r=..,p=..,l=<len>$<salt>` or
//! `pbkdf2-sha256$i=..,l=<len>$<salt>` (a `salt:hash` scrypt hash becomes the
//! second, with the salt bytes it fed to scrypt). The legacy digest is then
//! gone from the database: a dump no longer gives an attacker a bcrypt, scrypt
//! or PBKDF2 hash to attack, only an argon2id one (whose input they could
//! only guess through the legacy function too).
//!
//! Verification is transparent ([`PasswordHasher::verify`](super::PasswordHasher::verify)
//! recognises the prefix) and always answers `ValidNeedsRehash`, so the next
//! login stores a plain argon2id hash.
//!
//! # Trade-offs
//! - Every wrapped verification pays the legacy run and an argon2id run.
//! - The legacy function's limits stay until the rehash: for bcrypt, the
//!   72-byte rule of [`legacy`](super::legacy) (longer passwords never match);
//!   a legacy algorithm with low cost still lets an attacker with the dump
//!   test guesses at legacy speed *plus* argon2id speed, no cheaper than before.
//! - The legacy algorithm must stay enabled in the [`LegacyPolicy`] while
//!   wrapped hashes remain (its ceiling bounds the inner cost as for plain
//!   legacy hashes, and the outer argon2id is bounded like any stored argon2id
//!   hash).
//! - Irreversible: the legacy digest cannot be recovered, so keep a backup
//!   until the wrapped hashes verify in production.

use argon2::password_hash::phc::PasswordHash;

use super::PasswordParams;
use super::legacy::{self, LegacyHash, LegacyPolicy, Settings};
use crate::error::{Error, Result};

/// Prefix of a wrapped hash.
pub(crate) const PREFIX: &str = "$hisn-wrap-v1$";

/// A stored hash, parsed and bounded before any work.
pub(crate) enum Stored {
    /// An argon2id PHC string and its parameters.
    Argon2id(PasswordHash, PasswordParams),
    /// A legacy hash.
    Legacy(LegacyHash),
    /// argon2id over a legacy digest.
    Wrapped {
        inner: Settings,
        outer: PasswordHash,
    },
}

/// Recognise and bound `stored`: argon2id (bounded near `policy`), a wrapped
/// hash, or a legacy hash `legacy` admits.
pub(crate) fn parse(stored: &str, policy: PasswordParams, legacy: &LegacyPolicy) -> Result<Stored> {
    if stored.len() > legacy::MAX_STORED_LEN {
        return Err(Error::PasswordHashRejected("stored hash too long"));
    }
    if stored.starts_with("$argon2") {
        let (hash, params) = super::parse_phc(stored, policy)?;
        return Ok(Stored::Argon2id(hash, params));
    }
    if let Some(rest) = stored.strip_prefix(PREFIX) {
        let at = rest
            .find("$argon2id$")
            .ok_or(Error::PasswordHashRejected("malformed wrapped hash"))?;
        let inner = Settings::parse_inner(&format!("${}", &rest[..at]))?;
        legacy.admit(inner.kdf)?;
        let (outer, _) = super::parse_phc(&rest[at..], policy)?;
        return Ok(Stored::Wrapped { inner, outer });
    }
    if legacy::looks_legacy(stored) {
        return LegacyHash::parse(stored, legacy).map(Stored::Legacy);
    }
    Err(Error::PasswordHashUnknownFormat)
}

/// The wrapped string for a legacy hash's `settings` and the argon2id PHC
/// string over its digest.
pub(crate) fn compose(settings: &Settings, argon2_phc: &str) -> String {
    format!("{PREFIX}{}{argon2_phc}", settings.to_inner())
}
