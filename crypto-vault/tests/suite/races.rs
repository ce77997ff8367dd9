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
    Error, FieldContext, KeyId, KeyPurpose, KeyStore, MasterKey, MemoryKeyStore, Vault, WrappedKey,
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

/// Let every spawned task run until it blocks (the tests run on tokio's
/// current-thread runtime: a yield puts this task behind every ready one).
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn key_cache_races_cold_cache_encryptions_share_one_usage_counter() {
    const CALLERS: u32 = 16;
    const CAP: u64 = 10;
    let v = cold_vault(CAP).await;
    let before = v.store().loads();
    v.store().arm(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let v = Arc::clone(&v);
        tasks.spawn(async move { v.encrypt(&ctx(&i.to_string()), b"x").await });
    }
    // One caller has read the store with a cold cache; the others wait on its
    // load (single flight) before anything is inserted.
    v.store().wait_reached(1).await;
    settle().await;
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
    assert_eq!(
        v.store().loads() - before,
        1,
        "one cold load for all callers"
    );
    assert_eq!(v.usage("t").await.unwrap().get(&KeyId(1)), Some(&CAP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_cache_races_counts_survive_eviction_while_encrypting() {
    // Eviction (explicit or LRU) retires the keyring in the same atomic step
    // that takes its unspent reserved uses (given back to the store): uses on
    // the evicted copy are refused and retried on the reloaded one, which
    // reserves from the store's count (every use reserved, less those given
    // back). The cap is never passed; exactness here also relies on a
    // keyring confirming an at-cap count with the store before refusing.
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

// Single flight (class: cold-cache load stampede). Root cause of the old
// behaviour: every caller that found the tenant's keyring missing read the
// store itself, so 64 concurrent first requests for one tenant were 64 store
// round trips and 64 unwraps (and, with a slow store, 64 queued connections).
// Now the first caller loads and the others wait for its flight, then look the
// cache up again; a shred or rotation lands the flight at once (its waiters
// never see the old keys, and never wait on a paused load).

/// Encrypt once under `t`, then empty the cache: a value to decrypt cold.
async fn stored_value(v: &Vault<Probe<MemoryKeyStore>>) -> hisn_crypto_vault::Ciphertext {
    let ct = v.encrypt(&ctx("r"), b"secret").await.unwrap();
    v.evict("t").await;
    assert_eq!(v.cached_tenants(), 0);
    ct
}

#[tokio::test]
async fn key_cache_single_flight_64_cold_decrypts_load_the_store_once() {
    let v = cold_vault(1000).await;
    let ct = stored_value(&v).await;
    let before = v.store().loads();
    v.store().arm(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (v, ct) = (Arc::clone(&v), ct.clone());
        tasks.spawn(async move { v.decrypt(&ctx("r"), &ct).await });
    }
    v.store().wait_reached(1).await;
    settle().await;
    v.store().release_all();
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().as_bytes(), b"secret");
        ok += 1;
    }
    assert_eq!(ok, 64);
    assert_eq!(v.store().loads() - before, 1, "64 cold decrypts, one load");
}

#[tokio::test]
async fn key_cache_single_flight_64_cold_encrypts_load_the_store_once() {
    let v = cold_vault(1000).await;
    let before = v.store().loads();
    v.store().arm(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let v = Arc::clone(&v);
        tasks.spawn(async move { v.encrypt(&ctx(&i.to_string()), b"x").await });
    }
    v.store().wait_reached(1).await;
    settle().await;
    v.store().release_all();
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().key_id(), KeyId(1));
    }
    assert_eq!(v.store().loads() - before, 1, "64 cold encrypts, one load");
    assert_eq!(v.usage("t").await.unwrap().get(&KeyId(1)), Some(&64));
}

#[tokio::test]
async fn key_cache_single_flight_shred_during_the_load_reaches_every_waiter() {
    let v = cold_vault(1000).await;
    let ct = stored_value(&v).await;
    let before = v.store().loads();
    v.store().arm(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (v, ct) = (Arc::clone(&v), ct.clone());
        tasks.spawn(async move {
            if i % 2 == 0 {
                v.decrypt(&ctx("r"), &ct).await.map(|_| ())
            } else {
                v.encrypt(&ctx("w"), b"x").await.map(|_| ())
            }
        });
    }
    // The leader has read the keys and is paused; 63 callers wait on it.
    v.store().wait_reached(1).await;
    settle().await;
    // Shredding does not wait for the paused load.
    tokio::time::timeout(std::time::Duration::from_secs(10), v.shred_tenant("t"))
        .await
        .expect("shred waited on a paused load")
        .unwrap();
    settle().await;
    v.store().release_all();
    while let Some(r) = tasks.join_next().await {
        assert!(
            matches!(r.unwrap(), Err(Error::TenantShredded)),
            "a waiter got the shredded key"
        );
    }
    assert_eq!(v.cached_tenants(), 0, "shredded keys back in the cache");
    assert_eq!(v.store().loads() - before, 1, "waiters saw the tombstone");
}

#[tokio::test]
async fn key_cache_single_flight_rotation_releases_waiters_of_a_paused_load() {
    let v = cold_vault(1000).await;
    v.store().arm(1);
    let leader = tokio::spawn({
        let v = Arc::clone(&v);
        async move { v.encrypt(&ctx("0"), b"x").await }
    });
    v.store().wait_reached(1).await;
    let mut waiters = tokio::task::JoinSet::new();
    for i in 1..16 {
        let v = Arc::clone(&v);
        waiters.spawn(async move { v.encrypt(&ctx(&i.to_string()), b"x").await });
    }
    settle().await;
    let rotate = tokio::time::timeout(std::time::Duration::from_secs(10), v.rotate_data_key("t"));
    assert_eq!(
        rotate
            .await
            .expect("rotation waited on a paused load")
            .unwrap(),
        KeyId(2)
    );
    // The paused load is stale: its waiters were released and loaded the new
    // keys while it is still paused.
    while let Some(r) = waiters.join_next().await {
        assert_eq!(r.unwrap().unwrap().key_id(), KeyId(2));
    }
    assert!(!leader.is_finished());
    v.store().release_all();
    assert_eq!(leader.await.unwrap().unwrap().key_id(), KeyId(2));
}

/// A store whose loads can be made to fail (after reading, so the failure
/// lands while the load is paused and waited on).
struct Failing {
    probe: Probe<MemoryKeyStore>,
    fail: std::sync::atomic::AtomicBool,
}

impl KeyStore for Failing {
    async fn load(&self, tenant: &str) -> hisn_crypto_vault::Result<Vec<WrappedKey>> {
        let read = self.probe.load(tenant).await;
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Store("injected load failure".into()));
        }
        read
    }
    async fn insert(&self, key: &WrappedKey) -> hisn_crypto_vault::Result<bool> {
        self.probe.insert(key).await
    }
    async fn set_primary(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> hisn_crypto_vault::Result<()> {
        self.probe.set_primary(tenant, purpose, key_id).await
    }
    async fn rewrap(&self, key: &WrappedKey) -> hisn_crypto_vault::Result<()> {
        self.probe.rewrap(key).await
    }
    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> hisn_crypto_vault::Result<()> {
        self.probe
            .record_usage(tenant, purpose, key_id, usage)
            .await
    }
    async fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> hisn_crypto_vault::Result<std::ops::Range<u64>> {
        self.probe
            .reserve_usage(tenant, purpose, key_id, n, cap)
            .await
    }
    async fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> hisn_crypto_vault::Result<()> {
        self.probe.release_usage(tenant, purpose, key_id, n).await
    }
    async fn delete(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> hisn_crypto_vault::Result<()> {
        self.probe.delete(tenant, purpose, key_id).await
    }
    async fn shred(&self, tenant: &str) -> hisn_crypto_vault::Result<()> {
        self.probe.shred(tenant).await
    }
    async fn tenants(&self) -> hisn_crypto_vault::Result<Vec<String>> {
        self.probe.tenants().await
    }
}

#[tokio::test]
async fn key_cache_single_flight_a_failed_load_fails_its_waiters_and_is_not_cached() {
    use std::sync::atomic::Ordering;
    let v = Arc::new(Vault::new(
        Failing {
            probe: Probe::new(MemoryKeyStore::new()),
            fail: false.into(),
        },
        MasterKey::generate().unwrap(),
    ));
    v.provision_tenant("t").await.unwrap();
    let ct = v.encrypt(&ctx("r"), b"secret").await.unwrap();
    v.evict("t").await;
    let probe = &v.store().probe;
    let before = probe.loads();
    v.store().fail.store(true, Ordering::SeqCst);
    probe.arm(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (v, ct) = (Arc::clone(&v), ct.clone());
        tasks.spawn(async move { v.decrypt(&ctx("r"), &ct).await });
    }
    probe.wait_reached(1).await;
    settle().await;
    probe.release_all();
    while let Some(r) = tasks.join_next().await {
        assert!(matches!(r.unwrap(), Err(Error::Store(_))));
    }
    assert_eq!(
        probe.loads() - before,
        1,
        "the waiters shared the failed load"
    );
    assert_eq!(v.cached_tenants(), 0);
    // The failure was not cached: the next call loads again and succeeds.
    v.store().fail.store(false, Ordering::SeqCst);
    assert_eq!(
        v.decrypt(&ctx("r"), &ct).await.unwrap().as_bytes(),
        b"secret"
    );
    assert_eq!(probe.loads() - before, 2);
}

#[tokio::test]
async fn key_cache_single_flight_a_cancelled_leader_does_not_strand_its_waiters() {
    let v = cold_vault(1000).await;
    let ct = stored_value(&v).await;
    let before = v.store().loads();
    v.store().arm(1);
    let leader = tokio::spawn({
        let (v, ct) = (Arc::clone(&v), ct.clone());
        async move { v.decrypt(&ctx("r"), &ct).await }
    });
    v.store().wait_reached(1).await;
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (v, ct) = (Arc::clone(&v), ct.clone());
        waiters.spawn(async move { v.decrypt(&ctx("r"), &ct).await });
    }
    settle().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let all = async {
        while let Some(r) = waiters.join_next().await {
            assert_eq!(r.unwrap().unwrap().as_bytes(), b"secret");
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), all)
        .await
        .expect("waiters stranded by a cancelled load");
    assert_eq!(
        v.store().loads() - before,
        2,
        "one new load after the cancel"
    );
    v.store().release_all();
}
