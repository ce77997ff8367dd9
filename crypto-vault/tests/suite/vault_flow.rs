//! The vault over the memory and directory stores: envelope, cache, rotation,
//! re-encryption, master rotation, usage cap, shredding.

use std::num::NonZeroUsize;

use hisn_crypto_vault::{
    DirKeyStore, Error, FieldContext, KeyId, KeyPurpose, KeyStore, MasterKey, MemoryKeyStore,
    Reencrypted, Vault,
};

/// Provision `tenants` (keys are created only by this explicit call).
async fn provision<S: KeyStore>(v: &Vault<S>, tenants: &[&str]) {
    for t in tenants {
        v.provision_tenant(t).await.unwrap();
    }
}

fn ctx<'a>(tenant: &'a str, row: &'a str) -> FieldContext<'a> {
    FieldContext::new(tenant, "integrations", "oauth_token", row).unwrap()
}

#[tokio::test]
async fn ciphertext_from_tenant_b_does_not_decrypt_for_tenant_a() {
    let vault = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap());
    provision(&vault, &["a", "b"]).await;
    let b = vault.encrypt(&ctx("b", "1"), b"token-b").await.unwrap();
    assert!(matches!(
        vault.decrypt(&ctx("a", "1"), &b).await,
        Err(Error::Decrypt)
    ));
    assert_eq!(
        vault.decrypt(&ctx("b", "1"), &b).await.unwrap().as_bytes(),
        b"token-b"
    );
}

#[tokio::test]
async fn keys_are_stored_wrapped_and_swapping_wrapped_keys_between_tenants_fails() {
    let store = MemoryKeyStore::new();
    let master = MasterKey::generate().unwrap();
    let vault = Vault::new(store, master.clone());
    provision(&vault, &["a", "b"]).await;
    vault.encrypt(&ctx("a", "1"), b"x").await.unwrap();
    vault.encrypt(&ctx("b", "1"), b"x").await.unwrap();
    let a = vault.store().load("a").await.unwrap();
    let b = vault.store().load("b").await.unwrap();
    assert_eq!(a.len(), 2, "one data key and one index key");
    assert!(
        a.iter()
            .all(|k| k.wrapped.len() == hisn_crypto_vault::WRAPPED_LEN)
    );
    // Plant tenant b's wrapped data key as tenant a's in a fresh store.
    let planted = MemoryKeyStore::new();
    for k in &a {
        let mut k = k.clone();
        if k.purpose == KeyPurpose::Data {
            k.wrapped.clone_from(
                &b.iter()
                    .find(|x| x.purpose == KeyPurpose::Data)
                    .unwrap()
                    .wrapped,
            );
        }
        planted.insert(&k).await.unwrap();
    }
    let v2 = Vault::new(planted, master);
    assert!(matches!(v2.keyring("a").await, Err(Error::Unwrap)));
}

#[tokio::test]
async fn cache_is_bounded() {
    let vault = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap())
        .with_cache_capacity(NonZeroUsize::new(3).unwrap());
    for t in 0..10 {
        vault.provision_tenant(&t.to_string()).await.unwrap();
    }
    for t in 0..10 {
        let t = t.to_string();
        vault.encrypt(&ctx(&t, "1"), b"x").await.unwrap();
        assert!(vault.cached_tenants() <= 3);
    }
    assert_eq!(vault.cached_tenants(), 3);
    // Evicted tenants reload from the store transparently.
    let ct = vault.encrypt(&ctx("0", "1"), b"again").await.unwrap();
    assert_eq!(
        vault.decrypt(&ctx("0", "1"), &ct).await.unwrap().as_bytes(),
        b"again"
    );
}

#[tokio::test]
async fn rotation_reencryption_census_and_retirement() {
    let vault = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap());
    provision(&vault, &["t"]).await;
    let rows: Vec<String> = (0..6).map(|i| i.to_string()).collect();
    let mut values = Vec::new();
    for r in &rows {
        values.push(vault.encrypt(&ctx("t", r), r.as_bytes()).await.unwrap());
    }
    assert_eq!(vault.rotate_data_key("t").await.unwrap(), KeyId(2));
    // A keyring used directly holds only the uses reserved for it: none yet
    // under the new key, so a batch stops before rewriting anything.
    let bare = vault.keyring("t").await.unwrap();
    let mut probe_value = [values[0].clone()];
    let [first_value] = &mut probe_value;
    assert!(matches!(
        bare.reencrypt_batch([(ctx("t", "0"), first_value)]),
        Err(Error::UsageNotReserved)
    ));
    assert_eq!(probe_value[0].key_id(), KeyId(1));
    let ring = vault.keyring_for_encryption("t", 6).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&bare, &ring), "one cached keyring");
    assert_eq!(ring.unspent(KeyId(2)), Some(6));
    assert_eq!(ring.primary(), KeyId(2));
    assert_eq!(ring.census(values.iter()).get(&KeyId(1)), Some(&6));
    // Resumable: first half, then (as after a restart) everything again.
    let (first, _) = values.split_at_mut(3);
    let report = ring
        .reencrypt_batch(rows[..3].iter().map(|r| ctx("t", r)).zip(first.iter_mut()))
        .unwrap();
    assert_eq!(report.rewritten.get(&KeyId(1)), Some(&3));
    assert_eq!(ring.census(values.iter()).get(&KeyId(1)), Some(&3));
    let report = ring
        .reencrypt_batch(rows.iter().map(|r| ctx("t", r)).zip(values.iter_mut()))
        .unwrap();
    assert_eq!(report.already_current, 3);
    assert_eq!(report.rewritten.get(&KeyId(1)), Some(&3));
    assert!(ring.census(values.iter()).is_empty());
    assert!(matches!(
        vault.reencrypt(&ctx("t", "0"), &values[0]).await.unwrap(),
        Reencrypted::Current
    ));
    // Primary cannot be deleted; the retired key can, and values stay readable.
    assert!(vault.delete_retired_key("t", KeyId(2)).await.is_err());
    vault.delete_retired_key("t", KeyId(1)).await.unwrap();
    for (r, v) in rows.iter().zip(&values) {
        assert_eq!(
            vault.decrypt(&ctx("t", r), v).await.unwrap().as_bytes(),
            r.as_bytes()
        );
    }
}

#[tokio::test]
async fn usage_cap_forces_rotation_and_counts_persist() {
    let vault = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap())
        .with_usage_cap(3)
        .unwrap();
    provision(&vault, &["t"]).await;
    for _ in 0..3 {
        vault.encrypt(&ctx("t", "1"), b"x").await.unwrap();
    }
    assert!(matches!(
        vault.encrypt(&ctx("t", "1"), b"x").await,
        Err(Error::KeyUsageExhausted)
    ));
    // Reserved in the store before use: nothing to persist.
    let stored = vault.store().load("t").await.unwrap();
    assert_eq!(
        stored
            .iter()
            .find(|k| k.purpose == KeyPurpose::Data)
            .unwrap()
            .usage,
        3
    );
    vault.rotate_data_key("t").await.unwrap();
    vault.encrypt(&ctx("t", "1"), b"x").await.unwrap();
    assert_eq!(vault.usage("t").await.unwrap().get(&KeyId(1)), Some(&3));
    assert!(
        Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap())
            .with_usage_cap((1 << 32) + 1)
            .is_err()
    );
}

async fn stored_data_usage(store: &impl KeyStore, tenant: &str) -> u64 {
    store
        .load(tenant)
        .await
        .unwrap()
        .iter()
        .find(|k| k.purpose == KeyPurpose::Data && k.key_id == KeyId(1))
        .unwrap()
        .usage
}

/// Uses are reserved in the store before they are spent, a block at a time
/// (here 3; the next block once at most one use is held), and a keyring
/// leaving the cache gives its unspent uses back, so the store then holds
/// exactly the encryptions performed.
#[tokio::test]
async fn usage_reservations_precede_use_and_eviction_gives_back_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let vault = Vault::new(DirKeyStore::open(dir.path()).unwrap(), master.clone())
        .with_usage_reservation_block(3)
        .unwrap()
        .with_cache_capacity(NonZeroUsize::new(1).unwrap());
    provision(&vault, &["a", "b"]).await;
    for bad in [0, (1 << 32) + 1] {
        assert!(
            Vault::new(MemoryKeyStore::new(), master.clone())
                .with_usage_reservation_block(bad)
                .is_err()
        );
    }
    for i in 0..7 {
        vault.encrypt(&ctx("a", "1"), b"x").await.unwrap();
        assert_eq!(
            stored_data_usage(vault.store(), "a").await,
            [3, 6, 6, 6, 9, 9, 9][i],
            "after {} encryptions",
            i + 1
        );
    }
    // A process starting now (or after this one crashed) counts the uses
    // this one reserved and has not spent: never fewer than were spent.
    let other = Vault::new(DirKeyStore::open(dir.path()).unwrap(), master);
    assert_eq!(other.usage("a").await.unwrap().get(&KeyId(1)), Some(&9));
    // Tenant b pushes a's keyring out of the one-entry cache: its two
    // unspent uses are given back on the way out.
    vault.encrypt(&ctx("b", "1"), b"x").await.unwrap();
    assert_eq!(vault.cached_tenants(), 1);
    assert_eq!(stored_data_usage(vault.store(), "a").await, 7);
    // Explicit eviction gives back too.
    vault.encrypt(&ctx("b", "1"), b"x").await.unwrap();
    assert_eq!(stored_data_usage(vault.store(), "b").await, 6);
    vault.evict("b").await;
    assert_eq!(stored_data_usage(vault.store(), "b").await, 2);
}

#[tokio::test]
async fn master_rotation_rewraps_only_and_is_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let old = MasterKey::generate().unwrap();
    let new = MasterKey::generate().unwrap();
    let v_old = Vault::new(DirKeyStore::open(dir.path()).unwrap(), old.clone());
    provision(&v_old, &["t", "u"]).await;
    let ct = v_old.encrypt(&ctx("t", "1"), b"secret").await.unwrap();
    v_old.encrypt(&ctx("u", "1"), b"x").await.unwrap();
    let idx = v_old
        .blind_indexer("t", "integrations", "oauth_token")
        .await
        .unwrap()
        .index(b"v")
        .unwrap();
    drop(v_old);

    // Without the old master, nothing unwraps.
    let v_new_only = Vault::new(DirKeyStore::open(dir.path()).unwrap(), new.clone());
    assert!(matches!(
        v_new_only.decrypt(&ctx("t", "1"), &ct).await,
        Err(Error::Unwrap)
    ));

    let v =
        Vault::new(DirKeyStore::open(dir.path()).unwrap(), new.clone()).with_previous_master(old);
    let report = v.rewrap_all().await.unwrap();
    assert_eq!((report.rewrapped, report.already_current), (4, 0));
    let again = v.rewrap_all().await.unwrap();
    assert_eq!(
        (again.rewrapped, again.already_current),
        (0, 4),
        "second run skips what is done, and counts it"
    );
    drop(v);
    let v = Vault::new(DirKeyStore::open(dir.path()).unwrap(), new);
    // Field ciphertext unchanged, still decrypts; blind index unchanged.
    assert_eq!(
        v.decrypt(&ctx("t", "1"), &ct).await.unwrap().as_bytes(),
        b"secret"
    );
    assert_eq!(
        v.blind_indexer("t", "integrations", "oauth_token")
            .await
            .unwrap()
            .index(b"v")
            .unwrap(),
        idx
    );
}

#[tokio::test]
async fn shredding_removes_every_key_even_with_the_master_present() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let v = Vault::new(DirKeyStore::open(dir.path()).unwrap(), master.clone());
    provision(&v, &["gone", "kept"]).await;
    let ct = v.encrypt(&ctx("gone", "1"), b"pii").await.unwrap();
    let keep = v.encrypt(&ctx("kept", "1"), b"ok").await.unwrap();
    v.shred_tenant("gone").await.unwrap();
    assert!(matches!(
        v.decrypt(&ctx("gone", "1"), &ct).await,
        Err(Error::TenantShredded)
    ));
    // A new process with the same master key and store: still nothing.
    let v2 = Vault::new(DirKeyStore::open(dir.path()).unwrap(), master);
    assert!(matches!(
        v2.decrypt(&ctx("gone", "1"), &ct).await,
        Err(Error::TenantShredded)
    ));
    assert!(matches!(
        v2.store().load("gone").await,
        Err(Error::TenantShredded)
    ));
    assert_eq!(v2.store().tenants().await.unwrap(), vec!["kept".to_owned()]);
    assert_eq!(
        v2.decrypt(&ctx("kept", "1"), &keep)
            .await
            .unwrap()
            .as_bytes(),
        b"ok"
    );
}

#[tokio::test]
async fn blind_indexes_match_within_and_differ_across_tenants() {
    let v = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap());
    provision(&v, &["a", "b"]).await;
    let a1 = v.blind_indexer("a", "users", "email").await.unwrap();
    let a2 = v.blind_indexer("a", "users", "email").await.unwrap();
    let b = v.blind_indexer("b", "users", "email").await.unwrap();
    let a_phone = v.blind_indexer("a", "users", "phone").await.unwrap();
    assert_eq!(a1.index(b"x@y").unwrap(), a2.index(b"x@y").unwrap());
    assert_ne!(a1.index(b"x@y").unwrap(), b.index(b"x@y").unwrap());
    assert_ne!(a1.index(b"x@y").unwrap(), a_phone.index(b"x@y").unwrap());
}

#[tokio::test]
async fn a_key_rotated_by_another_process_is_picked_up_on_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let a = Vault::new(DirKeyStore::open(dir.path()).unwrap(), master.clone());
    let b = Vault::new(DirKeyStore::open(dir.path()).unwrap(), master);
    provision(&a, &["t"]).await;
    a.encrypt(&ctx("t", "1"), b"x").await.unwrap(); // a caches key 1
    b.rotate_data_key("t").await.unwrap();
    let new = b.encrypt(&ctx("t", "2"), b"from b").await.unwrap();
    assert_eq!(new.key_id(), KeyId(2));
    assert_eq!(
        a.decrypt(&ctx("t", "2"), &new).await.unwrap().as_bytes(),
        b"from b"
    );
    // Explicit eviction makes `a` encrypt under the new primary too.
    a.evict("t").await;
    assert_eq!(
        a.encrypt(&ctx("t", "3"), b"y").await.unwrap().key_id(),
        KeyId(2)
    );
    let long = "x".repeat(101);
    assert!(matches!(
        a.encrypt(&ctx(&long, "1"), b"x").await,
        Err(Error::Store(_))
    ));
}

/// Provisioning completes a tenant left with one of its two keys (a crash
/// between the two inserts, or keys from before blind indexes): it adds the
/// missing key and leaves the existing one alone.
#[tokio::test]
async fn provisioning_completes_a_half_provisioned_tenant() {
    let master = MasterKey::generate().unwrap();
    let full = MemoryKeyStore::new();
    let seed = Vault::new(full, master.clone());
    provision(&seed, &["t"]).await;
    let before = seed.encrypt(&ctx("t", "1"), b"kept").await.unwrap();
    let records = seed.store().load("t").await.unwrap();
    for kept in [KeyPurpose::Data, KeyPurpose::BlindIndex] {
        let half = MemoryKeyStore::new();
        for r in records.iter().filter(|r| r.purpose == kept) {
            assert!(half.insert(r).await.unwrap());
        }
        let v = Vault::new(half, master.clone());
        v.provision_tenant("t").await.unwrap();
        let after = v.store().load("t").await.unwrap();
        for purpose in [KeyPurpose::Data, KeyPurpose::BlindIndex] {
            let ids: Vec<_> = after
                .iter()
                .filter(|r| r.purpose == purpose && r.primary)
                .map(|r| r.key_id)
                .collect();
            assert_eq!(ids, [KeyId(1)], "{purpose:?} after keeping {kept:?}");
        }
        let old = records.iter().find(|r| r.purpose == kept).unwrap();
        let same = after.iter().find(|r| r.purpose == kept).unwrap();
        assert_eq!(same.wrapped, old.wrapped, "the kept key is not replaced");
        v.blind_indexer("t", "users", "email").await.unwrap();
        v.encrypt(&ctx("t", "2"), b"x").await.unwrap();
        if kept == KeyPurpose::Data {
            assert_eq!(
                v.decrypt(&ctx("t", "1"), &before).await.unwrap().as_bytes(),
                b"kept"
            );
        }
    }
}

/// `Debug` shows the vault's settings and cache state, and no key.
#[tokio::test]
async fn vault_debug_shows_settings_and_cache_state() {
    let v = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap())
        .with_previous_master(MasterKey::generate().unwrap());
    provision(&v, &["t"]).await;
    v.encrypt(&ctx("t", "1"), b"x").await.unwrap();
    let d = format!("{v:?}");
    for part in [
        "Vault {",
        "previous_masters: 1",
        "cached_tenants: 1",
        "loads_in_flight: 0",
        "usage_cap: 1073741824",
        "reservation_block: 4096",
        "reload_interval: 30s",
    ] {
        assert!(d.contains(part), "{d} lacks {part}");
    }
}
