//! One tenant's unwrapped data keys: a primary for encryption plus older keys
//! for decryption.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aes_gcm::{Aes256Gcm, KeyInit};

use crate::cache::Flight;
use crate::error::{Error, Result};
use crate::format::{self, Ciphertext, FieldContext, KeyId};
use crate::secret::{Plaintext, SecretKey};

/// Default cap on encryptions per data key: 2^30, a 4x margin below the 2^32
/// random-nonce limit of NIST SP 800-38D §8.3.
pub const DEFAULT_USAGE_CAP: u64 = 1 << 30;
/// Largest cap accepted: 2^32 (NIST SP 800-38D, random 96-bit nonces).
pub const MAX_USAGE_CAP: u64 = 1 << 32;

/// Top bit of a key's unspent-uses word: set when the keyring is retired.
/// Spending a use (a compare-and-swap that decrements) and retiring
/// (`fetch_or`) are single atomic operations on the same word, so every use is
/// either spent before retirement (and not in the unspent count retirement
/// returns, which the vault gives back to the store) or refused.
const RETIRED: u64 = 1 << 63;

pub(crate) struct DataKey {
    cipher: Aes256Gcm,
    /// Uses this keyring may still spend, with [`RETIRED`] as its top bit: a
    /// keyring from raw keys holds its whole cap; one from the vault holds
    /// only what it reserved from the key store and has not spent.
    unspent: AtomicU64,
    /// The key's count against the cap as last known here: the store's total
    /// when the keyring was loaded or after its latest reservation (every
    /// process's reservations), or the cap for a keyring from raw keys.
    known: AtomicU64,
    /// The store answered a reservation with nothing: the cap is reached
    /// (a count at the cap seen in a load is confirmed with the store first,
    /// since another process may have given uses back since).
    at_cap: AtomicBool,
}

impl DataKey {
    fn unspent(&self) -> u64 {
        self.unspent.load(Ordering::Acquire) & !RETIRED
    }
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
    /// Uses are reserved from a key store by the vault (see `Vault::encrypt`);
    /// otherwise the keyring holds its whole cap.
    reserved: bool,
    /// The reservation in flight for the primary key (the only one that
    /// reserves), if any: at most one, so callers that need a use meanwhile
    /// wait for it instead of reserving a block each.
    refill: parking_lot::Mutex<Option<Arc<Flight>>>,
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
        Self::build(tenant, primary, keys, None, DEFAULT_USAGE_CAP, false)
    }

    /// `reserved`: a vault keyring, which holds no use until the vault
    /// reserves some ([`Keyring::add_reserved`]) and starts from the stored
    /// counts; otherwise each key holds its whole cap less its count.
    pub(crate) fn build(
        tenant: &str,
        primary: KeyId,
        keys: impl IntoIterator<Item = (KeyId, (SecretKey, u64))>,
        index_root: Option<SecretKey>,
        usage_cap: u64,
        reserved: bool,
    ) -> Result<Self> {
        FieldContext::new(tenant, "-", "-", "-")?;
        let mut map = BTreeMap::new();
        for (id, (key, usage)) in keys {
            let cipher = Aes256Gcm::new_from_slice(key.expose_secret())
                .map_err(|_| Error::InvalidKey("data key length"))?;
            let usage = usage & !RETIRED;
            let (unspent, known) = if reserved {
                (0, usage)
            } else {
                (usage_cap.saturating_sub(usage), usage_cap.max(usage))
            };
            map.insert(
                id,
                DataKey {
                    cipher,
                    unspent: AtomicU64::new(unspent),
                    known: AtomicU64::new(known),
                    at_cap: AtomicBool::new(false),
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
            reserved,
            refill: parking_lot::Mutex::new(None),
            retired: AtomicBool::new(false),
        })
    }

    /// Set the per-key usage cap (1..=[`MAX_USAGE_CAP`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside that range.
    pub fn with_usage_cap(mut self, cap: u64) -> Result<Self> {
        let cap = check_cap(cap)?;
        self.usage_cap = cap;
        if !self.reserved {
            // Not shared yet (`self` is owned): keep each key's count (a
            // raw-key ring's `known` is the larger of its cap and its count).
            for k in self.keys.values() {
                let used = k.known.load(Ordering::Acquire).saturating_sub(k.unspent());
                k.known.store(cap.max(used), Ordering::Release);
                k.unspent.store(cap.saturating_sub(used), Ordering::Release);
            }
        }
        Ok(self)
    }

    /// A key's count against the cap: the last known total, less the uses
    /// this keyring holds and has not spent.
    fn usage_of(&self, k: &DataKey) -> u64 {
        let known = k.known.load(Ordering::Acquire).min(self.usage_cap);
        known.saturating_sub(k.unspent())
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

    /// Uses of `key_id` counted against its cap. For a keyring from raw keys:
    /// the encryptions it performed. For a keyring from [`crate::Vault`]: the
    /// key's total in the store as last seen here (every process's
    /// reservations, at the load or this process's latest reservation), less
    /// the reserved uses this process has not spent yet; an upper bound of the
    /// encryptions performed at that moment, not a live global count.
    pub fn usage(&self, key_id: KeyId) -> Option<u64> {
        self.keys.get(&key_id).map(|k| self.usage_of(k))
    }

    /// Uses of `key_id` this keyring holds and may still spend without a new
    /// reservation (for a keyring from raw keys, what remains of its cap).
    pub fn unspent(&self, key_id: KeyId) -> Option<u64> {
        self.keys.get(&key_id).map(DataKey::unspent)
    }

    /// Whether the vault retired this keyring (rotation, shredding, eviction):
    /// it refuses to encrypt and decrypt ([`Error::KeyringRetired`]).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Retire the keyring: from now on it refuses every encryption and
    /// decryption. Returns each data key's unspent uses at that instant (none
    /// can be spent afterwards), for the vault to give back to the store.
    pub(crate) fn retire(&self) -> Vec<(KeyId, u64)> {
        self.retired.store(true, Ordering::Release);
        self.keys
            .iter()
            .map(|(id, k)| {
                (
                    *id,
                    k.unspent.fetch_or(RETIRED, Ordering::AcqRel) & !RETIRED,
                )
            })
            .collect()
    }

    /// Add a reservation from the store (`range`, possibly empty: the key is
    /// at its cap) to `key_id`'s unspent uses. `false` if the keyring was
    /// retired meanwhile: the uses were not added and the caller gives them
    /// back.
    pub(crate) fn add_reserved(&self, key_id: KeyId, range: &std::ops::Range<u64>) -> bool {
        let Some(k) = self.keys.get(&key_id) else {
            return false;
        };
        let granted = range.end.saturating_sub(range.start);
        // An empty range means the store is at (or past) the cap.
        let total = if granted == 0 {
            k.at_cap.store(true, Ordering::Release);
            range.end.max(self.usage_cap)
        } else {
            range.end
        };
        k.known.fetch_max(total & !RETIRED, Ordering::AcqRel);
        k.unspent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & RETIRED == 0).then(|| w.saturating_add(granted).min(RETIRED - 1))
            })
            .is_ok()
    }

    /// Take every unspent use of `key_id` (to give them back to the store);
    /// 0 if retired (retirement took them).
    pub(crate) fn take_unspent(&self, key_id: KeyId) -> u64 {
        self.keys.get(&key_id).map_or(0, |k| {
            k.unspent
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                    (w & RETIRED == 0).then_some(0)
                })
                .unwrap_or(0)
        })
    }

    /// How many uses of the primary key to reserve now, if any: `Some(n)` when
    /// this is a vault keyring, not retired, holding at most `low` unspent
    /// uses, and the store has not answered that the cap is reached; `n` is
    /// `block`, bounded by what the cap leaves as last known (the store
    /// bounds it again).
    pub(crate) fn reservation_wanted(&self, block: u64, low: u64) -> Option<u64> {
        let k = self.keys.get(&self.primary)?;
        if !self.reserved
            || self.is_retired()
            || k.at_cap.load(Ordering::Acquire)
            || k.unspent() > low
        {
            return None;
        }
        let left = self
            .usage_cap
            .saturating_sub(k.known.load(Ordering::Acquire));
        Some(if left == 0 { block } else { block.min(left) })
    }

    /// Claim the primary key's one reservation slot: `Ok(flight)` to reserve
    /// and then release it with [`Keyring::end_refill`] (landing `flight` as
    /// failed first if the reservation failed), or `Err(flight)`: the
    /// reservation in flight, to wait for.
    pub(crate) fn begin_refill(&self) -> Result<Arc<Flight>, Arc<Flight>> {
        let mut slot = self.refill.lock();
        if let Some(f) = slot.as_ref() {
            return Err(Arc::clone(f));
        }
        let f = Arc::new(Flight::new(0));
        *slot = Some(Arc::clone(&f));
        Ok(f)
    }

    /// Release the slot [`Keyring::begin_refill`] claimed and wake the
    /// callers waiting on it (they look again; a flight already landed as
    /// failed stays failed).
    pub(crate) fn end_refill(&self) {
        let f = self.refill.lock().take();
        if let Some(f) = f {
            f.land_retry();
        }
    }

    /// Whether the primary key has reached its usage cap: rotate before encrypting.
    ///
    /// For a keyring from [`crate::Vault`]: it holds no unspent use and the
    /// store's total, as last seen here, is at the cap (every process shares
    /// the cap: another process may have spent it).
    pub fn needs_rotation(&self) -> bool {
        self.keys
            .get(&self.primary)
            .is_none_or(|k| k.unspent() == 0 && k.known.load(Ordering::Acquire) >= self.usage_cap)
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
    /// nonce. Spends one use the keyring holds: for a keyring from
    /// [`crate::Vault`], one the vault reserved from the key store
    /// ([`crate::Vault::encrypt`] reserves as needed; to call this directly,
    /// get the keyring from [`crate::Vault::keyring_for_encryption`]).
    ///
    /// # Errors
    /// [`Error::InvalidContext`] if `ctx` names another tenant,
    /// [`Error::KeyUsageExhausted`] at the usage cap,
    /// [`Error::UsageNotReserved`] for a vault keyring holding no reserved use
    /// (fail closed), [`Error::KeyringRetired`] once the vault retired the
    /// keyring, [`Error::Rng`].
    pub fn encrypt(&self, ctx: &FieldContext<'_>, plaintext: &[u8]) -> Result<Ciphertext> {
        self.check_tenant(ctx)?;
        let key = self.keys.get(&self.primary).ok_or(Error::UnknownKey)?;
        // Spend a held use before encrypting, in one atomic step with the
        // retirement check; refuse (fail closed) when none is held.
        let spent = key
            .unspent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & RETIRED == 0 && w > 0).then(|| w - 1)
            });
        if let Err(w) = spent {
            if w & RETIRED != 0 {
                return Err(Error::KeyringRetired);
            }
            if !self.reserved || key.at_cap.load(Ordering::Acquire) {
                tracing::warn!(target: "hisn_crypto_vault", key_id = self.primary.0, "data key usage cap reached");
                return Err(Error::KeyUsageExhausted);
            }
            return Err(Error::UsageNotReserved);
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
    /// [`Error::KeyUsageExhausted`], [`Error::UsageNotReserved`] (a vault
    /// keyring whose reserved uses ran out: see
    /// [`crate::Vault::keyring_for_encryption`]) or [`Error::Rng`] stop the
    /// batch (values rewritten so far stay rewritten).
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
                Err(
                    e @ (Error::KeyUsageExhausted
                    | Error::UsageNotReserved
                    | Error::Rng
                    | Error::KeyringRetired),
                ) => {
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
            .map(|(id, k)| (*id, self.usage_of(k)))
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
        // Retirement returns the unspent uses (a raw-key ring holds its cap).
        let cap = DEFAULT_USAGE_CAP;
        assert_eq!(r.retire(), vec![(KeyId(1), cap), (KeyId(2), cap - 2)]);
        assert!(r.is_retired());
        assert!(matches!(r.encrypt(&ctx, b"z"), Err(Error::KeyringRetired)));
        assert!(matches!(r.decrypt(&ctx, &ct), Err(Error::KeyringRetired)));
        assert_eq!(r.usage(KeyId(2)), Some(2), "refused uses are not counted");
        assert_eq!(r.usages(), vec![(KeyId(1), 0), (KeyId(2), 2)]);
        assert_eq!(r.retire(), vec![(KeyId(1), cap), (KeyId(2), cap - 2)]);
        let old = Keyring::from_keys("t", KeyId(1), [(KeyId(1), SecretKey::from_bytes([1; 32]))])
            .unwrap();
        let mut v = [old.encrypt(&ctx, b"1").unwrap()];
        let [a] = &mut v;
        assert!(matches!(
            r.reencrypt_batch([(ctx, a)]),
            Err(Error::KeyringRetired)
        ));
    }

    /// A vault keyring (uses reserved from a store) holds nothing until a
    /// reservation is added: it refuses with `UsageNotReserved` (fail
    /// closed), spends exactly what was added, refuses with
    /// `KeyUsageExhausted` once the store said the cap is reached, and a
    /// reservation landing after retirement is not added (the caller gives
    /// it back).
    #[test]
    fn reserved_ring_spends_only_what_was_reserved() {
        let r = Keyring::build(
            "t",
            KeyId(2),
            [(KeyId(2), (SecretKey::from_bytes([2; 32]), 5))],
            None,
            10,
            true,
        )
        .unwrap();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::UsageNotReserved)
        ));
        assert_eq!(r.usage(KeyId(2)), Some(5), "the stored count");
        assert!(!r.needs_rotation());
        assert_eq!(r.reservation_wanted(4, 2), Some(4));
        assert!(r.add_reserved(KeyId(2), &(5..7)));
        assert_eq!(r.unspent(KeyId(2)), Some(2));
        assert_eq!(r.usage(KeyId(2)), Some(5));
        assert_eq!(r.reservation_wanted(4, 1), None, "more than `low` held");
        assert_eq!(r.reservation_wanted(100, 2), Some(3), "bounded by the cap");
        r.encrypt(&ctx, b"x").unwrap();
        r.encrypt(&ctx, b"x").unwrap();
        assert_eq!(r.usage(KeyId(2)), Some(7));
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::UsageNotReserved)
        ));
        assert!(r.add_reserved(KeyId(2), &(7..10)));
        for _ in 0..3 {
            r.encrypt(&ctx, b"x").unwrap();
        }
        // At the cap as last seen here, but only the store can say that no
        // process gave uses back meanwhile: asked once more.
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::UsageNotReserved)
        ));
        assert_eq!(r.reservation_wanted(4, 0), Some(4));
        // The store answers an empty range: the cap is reached.
        assert!(r.add_reserved(KeyId(2), &(10..10)));
        assert!(r.needs_rotation());
        assert_eq!(r.reservation_wanted(4, 2), None);
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::KeyUsageExhausted)
        ));
        assert_eq!(r.usage(KeyId(2)), Some(10), "counted up to the cap");
        // Taking the unspent uses leaves none; retirement refuses additions.
        let r2 = Keyring::build(
            "t",
            KeyId(2),
            [(KeyId(2), (SecretKey::from_bytes([2; 32]), 0))],
            None,
            10,
            true,
        )
        .unwrap();
        assert!(r2.add_reserved(KeyId(2), &(0..4)));
        r2.encrypt(&ctx, b"x").unwrap();
        assert_eq!(r2.take_unspent(KeyId(2)), 3);
        assert_eq!(r2.unspent(KeyId(2)), Some(0));
        assert!(r2.add_reserved(KeyId(2), &(4..6)));
        assert_eq!(r2.retire(), vec![(KeyId(2), 2)]);
        assert!(!r2.add_reserved(KeyId(2), &(6..8)));
        assert_eq!(r2.take_unspent(KeyId(2)), 0);
        assert_eq!(r2.reservation_wanted(4, 2), None, "retired");
        assert!(!r2.add_reserved(KeyId(9), &(0..1)));
        // One reservation slot at a time; its end lands it for the waiters.
        let (Ok(lead), Err(wait)) = (r2.begin_refill(), r2.begin_refill()) else {
            panic!("the second claim must wait on the first");
        };
        assert!(Arc::ptr_eq(&lead, &wait));
        r2.end_refill();
        assert!(r2.begin_refill().is_ok());
    }

    /// Lowering the cap of a raw-key ring keeps its count; raising it gives
    /// the difference.
    #[test]
    fn raw_ring_cap_change_keeps_the_count() {
        let r = ring().with_usage_cap(5).unwrap();
        let ctx = FieldContext::new("t", "a", "b", "c").unwrap();
        for _ in 0..3 {
            r.encrypt(&ctx, b"x").unwrap();
        }
        let r = r.with_usage_cap(4).unwrap();
        assert_eq!(r.usage(KeyId(2)), Some(3));
        r.encrypt(&ctx, b"x").unwrap();
        assert!(matches!(
            r.encrypt(&ctx, b"x"),
            Err(Error::KeyUsageExhausted)
        ));
        let r = r.with_usage_cap(2).unwrap();
        assert_eq!(r.usage(KeyId(2)), Some(2), "shown up to the cap");
        assert!(r.needs_rotation());
        assert_eq!(r.reservation_wanted(4, 4), None, "raw rings never reserve");
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
