//! One tenant's unwrapped data keys: a primary for encryption plus older keys
//! for decryption.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aes_gcm::{Aes256Gcm, KeyInit};

use crate::error::{Error, Result};
use crate::format::{self, Ciphertext, FieldContext, KeyId};
use crate::secret::{Plaintext, SecretKey};

/// Default cap on encryptions per data key: 2^30, a 4x margin below the 2^32
/// random-nonce limit of NIST SP 800-38D §8.3.
pub const DEFAULT_USAGE_CAP: u64 = 1 << 30;
/// Largest cap accepted: 2^32 (NIST SP 800-38D, random 96-bit nonces).
pub const MAX_USAGE_CAP: u64 = 1 << 32;

/// Top bit of a usage counter: set when the keyring is retired. Reserving a
/// use (`fetch_add`) and retiring (`fetch_or`) are single atomic operations on
/// the same word, so every use is either counted in the final value that
/// retirement returns (and the vault persists) or refused.
const RETIRED: u64 = 1 << 63;

pub(crate) struct DataKey {
    cipher: Aes256Gcm,
    usage: AtomicU64,
}

/// A tenant's data keys. Cheap to share (`Arc`); obtained from
/// [`crate::Vault::keyring`] or built from raw keys with [`Keyring::from_keys`].
///
/// Every key is zeroized when the keyring is dropped. `Debug` shows the tenant
/// and key ids only.
pub struct Keyring {
    tenant: String,
    primary: KeyId,
    keys: BTreeMap<KeyId, DataKey>,
    index_root: Option<SecretKey>,
    usage_cap: u64,
    retired: AtomicBool,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("tenant", &self.tenant)
            .field("primary", &self.primary)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Outcome of [`Keyring::reencrypt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reencrypted {
    /// Already under the primary key: nothing to write.
    Current,
    /// Rewritten under the primary key: store this value.
    Rewritten(Ciphertext),
}

/// Report of one [`Keyring::reencrypt_batch`] call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Values rewritten under the primary key, by the retired key they used.
    pub rewritten: BTreeMap<KeyId, u64>,
    /// Values already under the primary key.
    pub already_current: u64,
    /// Values that could not be decrypted (wrong context, unknown key, tampered),
    /// by key id: they still use that key and need investigation.
    pub remaining: BTreeMap<KeyId, u64>,
}

impl Keyring {
    /// A keyring from raw keys (bring-your-own-key, tests, known-answer vectors).
    /// The usage counters start at zero.
    ///
    /// # Errors
    /// [`Error::InvalidContext`] for a bad tenant, [`Error::UnknownKey`] if `primary`
    /// is not among `keys`.
    pub fn from_keys(
        tenant: &str,
        primary: KeyId,
        keys: impl IntoIterator<Item = (KeyId, SecretKey)>,
    ) -> Result<Self> {
        let keys = keys.into_iter().map(|(id, k)| (id, (k, 0)));
        Self::build(tenant, primary, keys, None, DEFAULT_USAGE_CAP)
    }

    pub(crate) fn build(
        tenant: &str,
        primary: KeyId,
        keys: impl IntoIterator<Item = (KeyId, (SecretKey, u64))>,
        index_root: Option<SecretKey>,
        usage_cap: u64,
    ) -> Result<Self> {
        FieldContext::new(tenant, "-", "-", "-")?;
        let mut map = BTreeMap::new();
        for (id, (key, usage)) in keys {
            let cipher = Aes256Gcm::new_from_slice(key.expose_secret())
                .map_err(|_| Error::InvalidKey("data key length"))?;
            map.insert(
                id,
                DataKey {
                    cipher,
                    usage: AtomicU64::new(usage),
                },
            );
        }
        if !map.contains_key(&primary) {
            return Err(Error::UnknownKey);
        }
        Ok(Self {
            tenant: tenant.to_owned(),
            primary,
            keys: map,
            index_root,
            usage_cap,
            retired: AtomicBool::new(false),
        })
    }

    /// Set the per-key usage cap (1..=[`MAX_USAGE_CAP`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside that range.
    pub fn with_usage_cap(mut self, cap: u64) -> Result<Self> {
        self.usage_cap = check_cap(cap)?;
        Ok(self)
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The primary key id (used for new encryptions).
    pub fn primary(&self) -> KeyId {
        self.primary
    }

    /// Every key id in the ring.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys.keys().copied().collect()
    }

    /// Whether `key_id` is in the ring.
    pub fn contains(&self, key_id: KeyId) -> bool {
        self.keys.contains_key(&key_id)
    }

    /// Encryptions performed with `key_id` (as known to this process, starting from
    /// the count persisted in the key store).
    pub fn usage(&self, key_id: KeyId) -> Option<u64> {
        self.keys
            .get(&key_id)
            .map(|k| k.usage.load(Ordering::Acquire) & !RETIRED)
    }

    /// Whether the vault retired this keyring (rotation, shredding, eviction):
    /// it refuses to encrypt and decrypt ([`Error::KeyringRetired`]).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Retire the keyring: from now on it refuses every encryption and
    /// decryption. Returns each data key's final usage count: every encryption
    /// that was admitted is in it.
    pub(crate) fn retire(&self) -> Vec<(KeyId, u64)> {
        self.retired.store(true, Ordering::Release);
        self.keys
            .iter()
            .map(|(id, k)| (*id, k.usage.fetch_or(RETIRED, Ordering::AcqRel) & !RETIRED))
            .collect()
    }

    /// Raise a key's count to at least `floor` (counts of a retired copy of
    /// this keyring not yet written to the store). Only before the keyring is
    /// shared.
    pub(crate) fn raise_usage(&self, key_id: KeyId, floor: u64) {
        if let Some(k) = self.keys.get(&key_id) {
            k.usage.fetch_max(floor & !RETIRED, Ordering::AcqRel);
        }
    }

    /// Whether the primary key has reached its usage cap: rotate before encrypting.
    pub fn needs_rotation(&self) -> bool {
        self.usage(self.primary).is_none_or(|u| u >= self.usage_cap)
    }

    pub(crate) fn index_root(&self) -> Option<&SecretKey> {
        self.index_root.as_ref()
    }

    fn check_tenant(&self, ctx: &FieldContext<'_>) -> Result<()> {
        if ctx.tenant() != self.tenant {
            return Err(Error::InvalidContext(
                "context tenant differs from the keyring's tenant",
            ));
        }
        Ok(())
    }

    /// Encrypt `plaintext` for `ctx` under the primary key, with a fresh random
    /// nonce.
    ///
    /// # Errors
    /// [`Error::InvalidContext`] if `ctx` names another tenant,
    /// [`Error::KeyUsageExhausted`] at the usage cap, [`Error::KeyringRetired`]
    /// once the vault retired the keyring, [`Error::Rng`].
    pub fn encrypt(&self, ctx: &FieldContext<'_>, plaintext: &[u8]) -> Result<Ciphertext> {
        self.check_tenant(ctx)?;
        let key = self.keys.get(&self.primary).ok_or(Error::UnknownKey)?;
        // Reserve a use before encrypting, in one atomic step with the
        // retirement check; refuse (fail closed) at the cap.
        let prev = key.usage.fetch_add(1, Ordering::AcqRel);
        if prev & RETIRED != 0 {
            // Refused: give the reservation back so `usage` counts only
            // encryptions performed (the final count was taken at retirement).
            key.usage.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::KeyringRetired);
        }
        if prev >= self.usage_cap {
            key.usage.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(target: "hisn_crypto_vault", key_id = self.primary.0, "data key usage cap reached");
            return Err(Error::KeyUsageExhausted);
        }
        format::seal(&key.cipher, self.primary, ctx, plaintext)
    }

    /// Decrypt a value stored at `ctx`.
    ///
    /// # Errors
    /// [`Error::Decrypt`] (opaque) for every mismatch: a key id not in the ring,
    /// tampering, another tenant, row or column; [`Error::KeyringRetired`].
    pub fn decrypt(&self, ctx: &FieldContext<'_>, ct: &Ciphertext) -> Result<Plaintext> {
        if self.is_retired() {
            return Err(Error::KeyringRetired);
        }
        if ctx.tenant() != self.tenant {
            return Err(Error::Decrypt);
        }
        let Some(key) = self.keys.get(&ct.key_id()) else {
            tracing::debug!(target: "hisn_crypto_vault", key_id = ct.key_id().0, "field decryption under an unknown key id");
            return Err(Error::Decrypt);
        };
        format::open(&key.cipher, ctx, ct)
    }

    /// Re-encrypt one value under the primary key if it uses an older key.
    ///
    /// # Errors
    /// As [`Keyring::decrypt`] and [`Keyring::encrypt`].
    pub fn reencrypt(&self, ctx: &FieldContext<'_>, ct: &Ciphertext) -> Result<Reencrypted> {
        if ct.key_id() == self.primary {
            return Ok(Reencrypted::Current);
        }
        let pt = self.decrypt(ctx, ct)?;
        Ok(Reencrypted::Rewritten(self.encrypt(ctx, pt.as_bytes())?))
    }

    /// Re-encrypt a batch of stored values in place. Resumable: run it over every
    /// row in batches, persisting each batch; values already under the primary key
    /// are skipped, so a rerun after a crash continues where it stopped. Values that
    /// fail to decrypt are left untouched and counted in
    /// [`ReencryptReport::remaining`].
    ///
    /// # Errors
    /// [`Error::KeyUsageExhausted`] or [`Error::Rng`] stop the batch (values
    /// rewritten so far stay rewritten).
    pub fn reencrypt_batch<'c>(
        &self,
        rows: impl IntoIterator<Item = (FieldContext<'c>, &'c mut Ciphertext)>,
    ) -> Result<ReencryptReport> {
        let mut report = ReencryptReport::default();
        for (ctx, ct) in rows {
            let old = ct.key_id();
            match self.reencrypt(&ctx, ct) {
                Ok(Reencrypted::Current) => report.already_current += 1,
                Ok(Reencrypted::Rewritten(new)) => {
                    *ct = new;
                    *report.rewritten.entry(old).or_default() += 1;
                }
                Err(e @ (Error::KeyUsageExhausted | Error::Rng | Error::KeyringRetired)) => {
                    return Err(e);
                }
                Err(_) => *report.remaining.entry(old).or_default() += 1,
            }
        }
        Ok(report)
    }

    /// Count, per non-primary key id, how many of `values` still use it. When a
    /// retired key's count over every stored value is zero it can be deleted
    /// ([`crate::Vault::delete_retired_key`]).
    pub fn census<'c>(
        &self,
        values: impl IntoIterator<Item = &'c Ciphertext>,
    ) -> BTreeMap<KeyId, u64> {
        let mut out = BTreeMap::new();
        for ct in values {
            let id = ct.key_id();
            if id != self.primary {
                *out.entry(id).or_default() += 1;
            }
        }
        out
    }

    pub(crate) fn usages(&self) -> Vec<(KeyId, u64)> {
        self.keys
            .iter()
            .map(|(id, k)| (*id, k.usage.load(Ordering::Acquire) & !RETIRED))
            .collect()
    }
}

pub(crate) fn check_cap(cap: u64) -> Result<u64> {
    if cap == 0 || cap > MAX_USAGE_CAP {
        return Err(Error::InvalidConfig("usage cap must be 1..=2^32"));
    }
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::from_keys(
            "t",
            KeyId(2),
            [
                (KeyId(1), SecretKey::from_bytes([1; 32])),
                (KeyId(2), SecretKey::from_bytes([2; 32])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn usage_cap_is_enforced_and_fails_closed() {
        let r = ring().with_usage_cap(2).unwrap();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        r.encrypt(&ctx, b"x").unwrap();
        assert!(!r.needs_rotation());
        r.encrypt(&ctx, b"x").unwrap();
        assert!(r.needs_rotation());
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::KeyUsageExhausted)
        ));
        assert_eq!(r.usage(KeyId(2)), Some(2));
        assert!(ring().with_usage_cap(0).is_err());
        assert!(ring().with_usage_cap(MAX_USAGE_CAP + 1).is_err());
    }

    #[test]
    fn other_tenant_context_is_refused() {
        let r = ring();
        let ctx = FieldContext::new("other", "a", "b", "c").unwrap();
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::InvalidContext(_))
        ));
    }

    #[test]
    fn reencrypt_batch_moves_old_values_and_counts() {
        let old = Keyring::from_keys("t", KeyId(1), [(KeyId(1), SecretKey::from_bytes([1; 32]))])
            .unwrap();
        let r = ring();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        let bad_ctx = FieldContext::new("t", "a", "b", "zzz").unwrap();
        let mut v = [
            old.encrypt(&ctx, b"1").unwrap(),
            r.encrypt(&ctx, b"2").unwrap(),
            old.encrypt(&ctx, b"3").unwrap(),
        ];
        assert_eq!(r.census(v.iter()).get(&KeyId(1)), Some(&2));
        let [a, b, c] = &mut v;
        let report = r
            .reencrypt_batch([(ctx, a), (ctx, b), (bad_ctx, c)])
            .unwrap();
        assert_eq!(report.rewritten.get(&KeyId(1)), Some(&1));
        assert_eq!(report.already_current, 1);
        assert_eq!(report.remaining.get(&KeyId(1)), Some(&1));
        assert_eq!(r.census(v.iter()).get(&KeyId(1)), Some(&1));
        assert_eq!(r.decrypt(&ctx, &v[0]).unwrap().as_bytes(), b"1");
    }

    /// The accessors name what the ring was built from; `Debug` shows the
    /// tenant and key ids and no key material.
    #[test]
    fn keyring_reports_tenant_primary_and_key_ids_without_keys() {
        let r = ring();
        assert_eq!(r.tenant(), "t");
        assert_eq!(r.primary(), KeyId(2));
        assert_eq!(r.key_ids(), vec![KeyId(1), KeyId(2)]);
        assert!(r.contains(KeyId(1)) && r.contains(KeyId(2)) && !r.contains(KeyId(3)));
        assert_eq!(r.usage(KeyId(3)), None);
        assert_eq!(
            format!("{r:?}"),
            "Keyring { tenant: \"t\", primary: KeyId(2), key_ids: [KeyId(1), KeyId(2)], .. }"
        );
    }

    /// The cap is 1..=2^32 inclusive: 2^32 (NIST's random-nonce limit) is
    /// accepted, one more is not, and a cap of 1 allows exactly one use.
    #[test]
    fn usage_cap_bounds_are_one_and_two_to_the_32_inclusive() {
        assert_eq!(check_cap(MAX_USAGE_CAP).unwrap(), 1 << 32);
        assert_eq!(check_cap(1).unwrap(), 1);
        assert!(check_cap(MAX_USAGE_CAP + 1).is_err() && check_cap(0).is_err());
        assert_eq!(DEFAULT_USAGE_CAP, 1 << 30);
        let r = ring().with_usage_cap(1).unwrap();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        assert!(!r.needs_rotation());
        r.encrypt(&ctx, b"x").unwrap();
        assert!(r.needs_rotation());
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::KeyUsageExhausted)
        ));
    }

    /// Retirement: every later encryption and decryption is refused, and the
    /// counts retire returns (and `usage`/`usages` report) are the uses
    /// admitted, without the retired flag.
    #[test]
    fn retired_ring_refuses_work_and_reports_exact_counts() {
        let r = ring();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        let ct = r.encrypt(&ctx, b"x").unwrap();
        r.encrypt(&ctx, b"y").unwrap();
        assert!(!r.is_retired());
        assert_eq!(r.retire(), vec![(KeyId(1), 0), (KeyId(2), 2)]);
        assert!(r.is_retired());
        assert!(matches!(r.encrypt(&ctx, b"z"), Err(Error::KeyringRetired)));
        assert!(matches!(r.decrypt(&ctx, &ct), Err(Error::KeyringRetired)));
        assert_eq!(r.usage(KeyId(2)), Some(2), "refused uses are not counted");
        assert_eq!(r.usages(), vec![(KeyId(1), 0), (KeyId(2), 2)]);
        assert_eq!(r.retire(), vec![(KeyId(1), 0), (KeyId(2), 2)]);
        let old = Keyring::from_keys("t", KeyId(1), [(KeyId(1), SecretKey::from_bytes([1; 32]))])
            .unwrap();
        let mut v = [old.encrypt(&ctx, b"1").unwrap()];
        let [a] = &mut v;
        assert!(matches!(
            r.reencrypt_batch([(ctx, a)]),
            Err(Error::KeyringRetired)
        ));
    }

    /// `raise_usage` lifts a count to a floor, never lowers it, and ignores
    /// the retired bit in the floor.
    #[test]
    fn raise_usage_only_raises_and_strips_the_retired_bit() {
        let r = ring();
        r.raise_usage(KeyId(2), 5);
        assert_eq!(r.usage(KeyId(2)), Some(5));
        r.raise_usage(KeyId(2), 3);
        assert_eq!(r.usage(KeyId(2)), Some(5));
        r.raise_usage(KeyId(1), RETIRED | 7);
        assert_eq!(r.usage(KeyId(1)), Some(7));
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        r.encrypt(&ctx, b"x").unwrap();
        assert_eq!(r.usage(KeyId(2)), Some(6));
        r.raise_usage(KeyId(9), 1);
        assert_eq!(r.usage(KeyId(9)), None);
    }

    /// A batch stops at the usage cap with `KeyUsageExhausted`: the values
    /// before it stay rewritten, the rest untouched.
    #[test]
    fn reencrypt_batch_stops_at_the_usage_cap() {
        let old = Keyring::from_keys("t", KeyId(1), [(KeyId(1), SecretKey::from_bytes([1; 32]))])
            .unwrap();
        let r = ring().with_usage_cap(1).unwrap();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        let mut v = [
            old.encrypt(&ctx, b"1").unwrap(),
            old.encrypt(&ctx, b"2").unwrap(),
        ];
        let [a, b] = &mut v;
        assert!(matches!(
            r.reencrypt_batch([(ctx, a), (ctx, b)]),
            Err(Error::KeyUsageExhausted)
        ));
        assert_eq!(v[0].key_id(), KeyId(2));
        assert_eq!(v[1].key_id(), KeyId(1));
        assert_eq!(r.decrypt(&ctx, &v[0]).unwrap().as_bytes(), b"1");
    }

    /// Decryption under another tenant's context is the opaque `Decrypt`, as
    /// is a key id the ring does not hold.
    #[test]
    fn decrypt_for_another_tenant_or_unknown_key_is_opaque() {
        let r = ring();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        let ct = r.encrypt(&ctx, b"x").unwrap();
        let other = FieldContext::new("u", "a", "b", "c").unwrap();
        assert!(matches!(r.decrypt(&other, &ct), Err(Error::Decrypt)));
        let lone = Keyring::from_keys("t", KeyId(1), [(KeyId(1), SecretKey::from_bytes([2; 32]))])
            .unwrap();
        assert!(matches!(lone.decrypt(&ctx, &ct), Err(Error::Decrypt)));
        assert!(matches!(
            Keyring::from_keys("t", KeyId(5), [(KeyId(1), SecretKey::from_bytes([2; 32]))]),
            Err(Error::UnknownKey)
        ));
    }
}
