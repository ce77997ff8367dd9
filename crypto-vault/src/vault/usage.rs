//! The global usage cap: uses of a data key are reserved from the key store
//! in blocks before they are spent (hi/lo, like a database sequence's cache).
//!
//! The trap this module closes: counting uses in each process and writing the
//! count to the store keeps the *largest* process's count there, not the sum,
//! so N processes together could spend N times the cap, and a process that
//! died lost the uses it had not written. Here a process asks the store to
//! add a block to the key's count atomically ([`KeyStore::reserve_usage`],
//! bounded by the cap) and encrypts only within the uses the store granted
//! it. So the sum over every process, dead or alive, never passes the cap;
//! a crash loses the unspent part of at most one and a half blocks per key
//! (counted as spent: fail safe); a store that cannot be reached when a
//! reservation is needed refuses the encryption (fail closed).
//!
//! [`Vault::encrypt`] reserves ahead: when a keyring holds at most half a
//! block it reserves the next one (one reservation in flight per key), so
//! the store round trip rarely sits on an encryption's path. Uses a keyring
//! holds when it leaves the cache (eviction, rotation, the periodic check) are
//! given back ([`KeyStore::release_usage`]); a give-back that fails leaves them
//! counted.
//!
//! Every process must use the same cap: reservations are bounded by the cap of
//! the process that asks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Vault;
use crate::cache::Retired;
use crate::error::{Error, Result};
use crate::format::{Ciphertext, FieldContext, KeyId};
use crate::keyring::{Keyring, MAX_USAGE_CAP, Reencrypted, check_cap};
use crate::store::KeyStore;
use crate::wrap::KeyPurpose;

/// Releases a keyring's reservation slot (waking the callers waiting on it)
/// when dropped, also when the encrypting future is cancelled
/// mid-reservation.
struct RefillSlot<'a>(&'a Keyring);

impl Drop for RefillSlot<'_> {
    fn drop(&mut self) {
        self.0.end_refill();
    }
}

impl<S: KeyStore> Vault<S> {
    /// Set the per-data-key encryption cap (1..=2^32, default 2^30). It
    /// bounds the uses of every process sharing the key store together; every
    /// process must use the same cap.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside that range.
    pub fn with_usage_cap(mut self, cap: u64) -> Result<Self> {
        self.usage_cap = check_cap(cap)?;
        Ok(self)
    }

    /// Reserve `n` uses of a data key from the store at a time (1..=2^32,
    /// default [`crate::DEFAULT_RESERVATION_BLOCK`]): one store write per `n`
    /// encryptions per key and process; a crash loses at most `1.5 * n` uses
    /// per key and process (counted as spent, never reused).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside that range.
    pub fn with_usage_reservation_block(mut self, n: u64) -> Result<Self> {
        if n == 0 || n > MAX_USAGE_CAP {
            return Err(Error::InvalidConfig(
                "usage reservation block must be 1..=2^32",
            ));
        }
        self.block = n;
        Ok(self)
    }

    /// Former name of [`Vault::with_usage_reservation_block`]: uses are now
    /// reserved from the store in blocks of `n` before they are spent,
    /// instead of being counted in memory and written every `n`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for 0 or more than 2^32.
    #[deprecated(note = "renamed: use `with_usage_reservation_block`")]
    pub fn with_usage_persist_every(self, n: u64) -> Result<Self> {
        self.with_usage_reservation_block(n)
    }

    /// Encrypt a field value for `ctx` under the tenant's primary key.
    ///
    /// Spends one use this process reserved from the key store; when it holds
    /// none it reserves a block first, and when it holds at most half a block
    /// it reserves the next one after encrypting (see
    /// [`Vault::with_usage_reservation_block`]).
    ///
    /// # Errors
    /// As [`Vault::keyring`] and [`Keyring::encrypt`]; [`Error::Store`] when a
    /// reservation is needed and the store cannot make it (fail closed:
    /// nothing is encrypted without a reservation); [`Error::KeyUsageExhausted`]
    /// once the uses of every process together reached the cap.
    pub async fn encrypt(&self, ctx: &FieldContext<'_>, plaintext: &[u8]) -> Result<Ciphertext> {
        let (ring, ct) = self
            .with_reserved_use(ctx.tenant(), |ring| ring.encrypt(ctx, plaintext))
            .await?;
        self.reserve_ahead(&ring).await;
        Ok(ct)
    }

    /// Re-encrypt one value under the tenant's primary key if it uses an older one.
    ///
    /// # Errors
    /// As [`Keyring::reencrypt`] and [`Vault::encrypt`].
    pub async fn reencrypt(&self, ctx: &FieldContext<'_>, ct: &Ciphertext) -> Result<Reencrypted> {
        let (ring, out) = self
            .with_reserved_use(ctx.tenant(), |ring| ring.reencrypt(ctx, ct))
            .await?;
        if matches!(out, Reencrypted::Rewritten(_)) {
            self.reserve_ahead(&ring).await;
        }
        Ok(out)
    }

    /// Run `op` on the tenant's keyring; when it needs a reserved use the
    /// keyring does not hold, reserve a block from the store and run it again.
    async fn with_reserved_use<T>(
        &self,
        tenant: &str,
        op: impl Fn(&Keyring) -> Result<T>,
    ) -> Result<(Arc<Keyring>, T)> {
        let mut vanished = false;
        loop {
            let ring = self.keyring(tenant).await?;
            match op(&ring) {
                // Rotated, shredded or evicted since it was fetched.
                Err(Error::KeyringRetired) => continue,
                Err(Error::UsageNotReserved) => {
                    // One reservation per key at a time: a caller that finds
                    // one in flight waits for it (and shares its failure), so
                    // a crowd of callers on a cold keyring reserves one block,
                    // not one each.
                    let reserved = match ring.begin_refill() {
                        Ok(flight) => {
                            let _slot = RefillSlot(&ring);
                            // `None`: retired, at the cap or refilled
                            // meanwhile; the next attempt says which.
                            let r = match ring.reservation_wanted(self.block, 0) {
                                Some(n) => self.reserve(&ring, n).await,
                                None => Ok(()),
                            };
                            if let Err(e) = &r {
                                flight.land_failed(e);
                            }
                            r
                        }
                        Err(flight) => flight.landing().await,
                    };
                    match reserved {
                        Ok(()) => continue,
                        // The key left the store (another process shredded
                        // the tenant or deleted it): reload once.
                        Err(Error::UnknownKey) if !vanished => {
                            vanished = true;
                            self.retire_tenant(tenant).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                other => return Ok((ring, other?)),
            }
        }
    }

    /// Reserve up to `n` uses of the primary key of `ring` from the store and
    /// hand them to `ring`; given back at once if `ring` was retired
    /// meanwhile.
    async fn reserve(&self, ring: &Keyring, n: u64) -> Result<()> {
        let primary = ring.primary();
        let range = self
            .store
            .reserve_usage(ring.tenant(), KeyPurpose::Data, primary, n, self.usage_cap)
            .await
            .inspect_err(|e| {
                tracing::warn!(target: "hisn_crypto_vault", error = %e, "could not reserve data key uses; encryption refused until a reservation succeeds");
            })?;
        if range.is_empty() {
            tracing::warn!(target: "hisn_crypto_vault", key_id = primary.0, "data key usage cap reached across processes");
        }
        if !ring.add_reserved(primary, &range) {
            self.give_back(ring.tenant(), primary, range.end - range.start)
                .await;
        }
        Ok(())
    }

    /// After an encryption: if `ring` holds at most half a block, reserve the
    /// next block (unless a reservation is already in flight for the key). A
    /// failure is logged, and shared with callers that wait on this
    /// reservation because they hold no use: the held uses are spent first,
    /// then encryption fails closed until a reservation succeeds.
    async fn reserve_ahead(&self, ring: &Keyring) {
        let low = self.block / 2;
        if ring.reservation_wanted(self.block, low).is_none() {
            return;
        }
        let Ok(flight) = ring.begin_refill() else {
            return;
        };
        let _slot = RefillSlot(ring);
        if let Some(n) = ring.reservation_wanted(self.block, low)
            && let Err(e) = self.reserve(ring, n).await
        {
            // Logged in `reserve`.
            flight.land_failed(&e);
        }
    }

    /// Give `n` reserved, unspent uses of a key back to the store; on failure
    /// they stay counted (fail safe).
    async fn give_back(&self, tenant: &str, key_id: KeyId, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        match self
            .store
            .release_usage(tenant, KeyPurpose::Data, key_id, n)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(target: "hisn_crypto_vault", error = %e, "could not give back unspent data key uses; they stay counted");
                false
            }
        }
    }

    /// Give a retired keyring's unspent uses back to the store, then make
    /// loads in flight (which may have read the store before) load again.
    pub(super) async fn give_back_retired(&self, retired: Retired) {
        for (id, n) in &retired.unspent {
            self.give_back(&retired.tenant, *id, *n).await;
        }
        self.cache.lock().given_back(&retired.tenant);
    }

    /// The tenant's keyring, holding at least `uses` reserved uses of its
    /// primary key (fewer if the cap leaves fewer), for calling
    /// [`Keyring::encrypt`] or [`Keyring::reencrypt_batch`] directly. A keyring
    /// from [`Vault::keyring`] holds only what earlier encryptions reserved
    /// and answers [`Error::UsageNotReserved`] once it runs out. Unspent uses
    /// are given back when the keyring leaves the cache or by
    /// [`Vault::release_unspent`].
    ///
    /// # Errors
    /// As [`Vault::keyring`]; [`Error::Store`] if the reservation fails.
    pub async fn keyring_for_encryption(&self, tenant: &str, uses: u64) -> Result<Arc<Keyring>> {
        loop {
            let ring = self.keyring(tenant).await?;
            let held = ring.unspent(ring.primary()).unwrap_or(0);
            if held < uses
                && let Some(n) = ring.reservation_wanted(uses - held, u64::MAX)
            {
                self.reserve(&ring, n).await?;
            }
            if ring.is_retired() {
                continue;
            }
            return Ok(ring);
        }
    }

    /// Give back to the store the reserved uses this process holds for the
    /// tenant's keys and has not spent (at shutdown, or before a long idle
    /// period); the next encryption reserves again. Uses that cannot be given
    /// back stay counted.
    ///
    /// # Errors
    /// [`Error::Store`] if a give-back failed.
    pub async fn release_unspent(&self, tenant: &str) -> Result<()> {
        let ring = self.cache.lock().peek(tenant);
        let Some(ring) = ring else {
            return Ok(());
        };
        let mut ok = true;
        for id in ring.key_ids() {
            ok &= self.give_back(tenant, id, ring.take_unspent(id)).await;
        }
        if ok {
            Ok(())
        } else {
            Err(Error::Store(
                "could not give back unspent data key uses".into(),
            ))
        }
    }

    /// Former way to write usage counters, kept for compatibility (the `hisn`
    /// CLI calls it before exiting). Uses are now reserved in the store before
    /// they are spent, so the store never counts fewer than were spent and
    /// there is nothing to write: this gives back the tenant's unspent
    /// reserved uses, exactly as [`Vault::release_unspent`] (prefer that name).
    ///
    /// # Errors
    /// [`Error::Store`] if a give-back failed.
    pub async fn persist_usage(&self, tenant: &str) -> Result<()> {
        self.release_unspent(tenant).await
    }

    /// Per-key usage of the tenant's keyring, by key id: each key's count
    /// against the cap as seen by this process (see [`Keyring::usage`]).
    ///
    /// # Errors
    /// As [`Vault::keyring`].
    pub async fn usage(&self, tenant: &str) -> Result<BTreeMap<KeyId, u64>> {
        Ok(self.keyring(tenant).await?.usages().into_iter().collect())
    }
}
