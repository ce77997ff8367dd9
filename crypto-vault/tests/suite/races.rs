//! The key cache under concurrency, with the interleaving pinned (class: the key
//! cache races with shredding and rotation).
//!
//! Root cause of the old failures: `Vault::keyring` read the store, unwrapped,
//! and then pushed its keyring into the cache unconditionally. A load that read
//! the store before `shred_tenant` or `rotate_data_key` and finished after it put
//! the shredded (or superseded) keys back in the cache, where every later call
//! used them; and concurrent cold-cache loads each built their own keyring with
//! its own usage counter, so a cap of 10 admitted one round per loader. Now a
//! load inserts only if the tenant's generation is unchanged (shred and rotation
//! bump it), the first keyring inserted is shared by every caller, and retired
//! keyrings refuse use in the same atomic step that reads their final count.
//!
//! `Probe` (see `probe.rs`) holds the next `n` loads after they have read the
//! store, until the test releases them: the race is reproduced every time.

use std::sync::Arc;

use hisn_crypto_vault::{
    Error, FieldContext, KeyId, KeyPurpose, KeyStore, MasterKey, MemoryKeyStore, Vault,
};

use crate::probe::Probe;

fn ctx(row: &str) -> FieldContext<'_> {
    FieldContext::new("t", "docs", "body", row).unwrap()
}

/// A vault whose tenant `t` has keys in the store and nothing in the cache.
async fn cold_vault(cap: u64) -> Arc<Vault<Probe<MemoryKeyStore>>> {
    let v = Vault::new(
        Probe::new(MemoryKeyStore::new()),
        MasterKey::generate().unwrap(),
    )
    .with_usage_cap(cap)
    .unwrap();
    v.provision_tenant("t").await.unwrap();
    v.evict("t").await;
    assert_eq!(v.cached_tenants(), 0);
    Arc::new(v)
}

#[tokio::test]
async fn key_cache_races_a_load_in_flight_during_shred_does_not_restore_the_keys() {
    let v = cold_vault(1000).await;
    let stored = {
        let warm = v.encrypt(&ctx("0"), b"before").await.unwrap();
        v.evict("t").await;
        warm
    };
    v.store().arm(1);
    let in_flight = tokio::spawn({
        let v = Arc::clone(&v);
        async move { v.encrypt(&ctx("1"), b"after shred?").await }
    });
    v.store().wait_reached(1).await;
    v.shred_tenant("t").await.unwrap();
    v.store().release_all();
    assert!(matches!(
        in_flight.await.unwrap(),
        Err(Error::TenantShredded)
    ));
    assert_eq!(v.cached_tenants(), 0, "shredded keys back in the cache");
    assert!(matches!(
        v.encrypt(&ctx("2"), b"x").await,
        Err(Error::TenantShredded)
    ));
    assert!(matches!(
        v.decrypt(&ctx("0"), &stored).await,
        Err(Error::TenantShredded)
    ));
    assert!(matches!(
        v.blind_indexer("t", "docs", "body").await,
        Err(Error::TenantShredded)
    ));
}

#[tokio::test]
async fn key_cache_races_a_load_in_flight_during_rotation_does_not_restore_the_old_key() {
    let v = cold_vault(1000).await;
    v.store().arm(1);
    let in_flight = tokio::spawn({
        let v = Arc::clone(&v);
        async move { v.encrypt(&ctx("1"), b"x").await }
    });
    v.store().wait_reached(1).await;
    assert_eq!(v.rotate_data_key("t").await.unwrap(), KeyId(2));
    v.store().release_all();
    // The in-flight encryption read the old keys, but finishes after the
    // rotation: it loads again and uses the new primary.
    assert_eq!(in_flight.await.unwrap().unwrap().key_id(), KeyId(2));
    for i in 0..3 {
        let row = i.to_string();
        assert_eq!(
            v.encrypt(&ctx(&row), b"y").await.unwrap().key_id(),
            KeyId(2)
        );
    }
}

#[tokio::test]
async fn key_cache_races_cold_cache_encryptions_share_one_usage_counter() {
    const CALLERS: u32 = 16;
    const CAP: u64 = 10;
    let v = cold_vault(CAP).await;
    v.store().arm(CALLERS as usize);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let v = Arc::clone(&v);
        tasks.spawn(async move { v.encrypt(&ctx(&i.to_string()), b"x").await });
    }
    // Every caller has read the store with a cold cache before any inserts.
    v.store().wait_reached(CALLERS).await;
    v.store().release_all();
    let (mut ok, mut exhausted) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::KeyUsageExhausted) => exhausted += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, CAP, "the cap admitted more than {CAP}");
    assert_eq!(exhausted, u64::from(CALLERS) - CAP);
    assert_eq!(v.usage("t").await.unwrap().get(&KeyId(1)), Some(&CAP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_cache_races_counts_survive_eviction_while_encrypting() {
    // Eviction (explicit or LRU) retires the keyring in the same atomic step
    // that reads its count: uses on the evicted copy are refused and retried on
    // the reloaded one, which starts from every admitted use.
    const CAP: u64 = 300;
    let v = cold_vault(CAP).await;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let v = Arc::clone(&v);
        tasks.spawn(async move {
            let mut ok = 0u64;
            for i in 0..100 {
                let row = format!("{w}-{i}");
                match v.encrypt(&ctx(&row), b"x").await {
                    Ok(_) => ok += 1,
                    Err(Error::KeyUsageExhausted) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
                if i % 7 == 0 {
                    v.evict("t").await;
                }
                tokio::task::yield_now().await;
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        ok += r.unwrap();
    }
    assert_eq!(ok, CAP);
    v.evict("t").await;
    let stored = v.store().load("t").await.unwrap();
    let data = stored
        .iter()
        .find(|k| k.purpose == KeyPurpose::Data)
        .unwrap();
    assert_eq!(data.usage, CAP);
}
