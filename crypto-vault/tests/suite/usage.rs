//! Per-key usage counters never undercount (class: counters that
//! undercount): the cap on encryptions under one data key (random 96-bit
//! nonces, NIST SP 800-38D) holds across evictions, store outages and
//! reloads, and a failed give-back of unspent uses keeps them counted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hisn_crypto_vault::{
    Error, FieldContext, KeyId, KeyStore, ManualClock, MasterKey, MemoryKeyStore, Vault,
};

use crate::probe::Probe;

const INTERVAL: Duration = Duration::from_secs(30);
const CAP: u64 = 4;

fn ctx() -> FieldContext<'static> {
    FieldContext::new("t", "users", "email", "1").unwrap()
}

fn vault() -> (
    Vault<Probe<MemoryKeyStore>>,
    Probe<MemoryKeyStore>,
    ManualClock,
) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let store = Probe::new(MemoryKeyStore::new());
    let v = Vault::new(store.clone(), MasterKey::generate().unwrap())
        .with_clock(Arc::new(clock.clone()))
        .with_reload_interval(INTERVAL)
        .with_usage_cap(CAP)
        .unwrap();
    (v, store, clock)
}

async fn stored_usage(store: &Probe<MemoryKeyStore>) -> u64 {
    store
        .inner
        .load("t")
        .await
        .unwrap()
        .iter()
        .find(|k| k.key_id == KeyId(1) && k.purpose == hisn_crypto_vault::KeyPurpose::Data)
        .map(|k| k.usage)
        .unwrap()
}

/// A store outage never resets a data key's usage count.
///
/// Root cause of the old failure: a keyring leaving the cache (eviction, or
/// the once-per-interval check finding the store unreachable) is retired and
/// its final counts are kept as floors until written to the store; but the
/// floors were dropped whether or not the write succeeded. In an outage the
/// write fails (the outage is what retired the keyring), so when the store
/// came back the keyring was reloaded from the count last persisted (every
/// 2^16 encryptions): each outage handed the key up to 2^16 more
/// encryptions per process, and a key at its cap encrypted again. Now uses
/// are reserved in the store before they are spent (see `global_cap.rs`), so
/// the store never holds fewer than were spent, and a failed give-back only
/// leaves unspent uses counted.
#[tokio::test]
async fn usage_counter_undercount_a_store_outage_keeps_the_retired_counts() {
    let (v, store, clock) = vault();
    v.provision_tenant("t").await.unwrap();
    for _ in 0..CAP {
        v.encrypt(&ctx(), b"x").await.unwrap();
    }
    assert!(matches!(
        v.encrypt(&ctx(), b"x").await,
        Err(Error::KeyUsageExhausted)
    ));
    assert_eq!(stored_usage(&store).await, CAP, "reserved before use");

    // The store is unreachable when the cached keys are due for their check:
    // they are retired (fail closed).
    store.fail_loads(true);
    store.fail_writes(true);
    clock.advance(INTERVAL);
    assert!(matches!(
        v.encrypt(&ctx(), b"x").await,
        Err(Error::Store(_))
    ));
    // Back: the keys reload from the store, which holds every use.
    store.fail_loads(false);
    store.fail_writes(false);
    assert!(
        matches!(v.encrypt(&ctx(), b"x").await, Err(Error::KeyUsageExhausted)),
        "the outage reset the usage counter: a key at its cap encrypted again"
    );
    assert_eq!(v.usage("t").await.unwrap().get(&KeyId(1)), Some(&CAP));

    // The same through an eviction whose give-back fails.
    store.fail_writes(true);
    v.evict("t").await;
    store.fail_writes(false);
    assert!(matches!(
        v.encrypt(&ctx(), b"x").await,
        Err(Error::KeyUsageExhausted)
    ));
    assert_eq!(stored_usage(&store).await, CAP);
    v.evict("t").await;
    assert_eq!(stored_usage(&store).await, CAP);
    assert_eq!(v.usage("t").await.unwrap().get(&KeyId(1)), Some(&CAP));
}

/// A give-back that fails leaves the unspent uses counted (fail safe: lost,
/// never reused); one that succeeds returns them.
#[tokio::test]
async fn usage_counter_a_failed_give_back_keeps_the_uses_counted() {
    let (v, store, _) = vault();
    v.provision_tenant("t").await.unwrap();
    v.encrypt(&ctx(), b"x").await.unwrap();
    assert_eq!(stored_usage(&store).await, CAP, "one block: the whole cap");
    store.fail_writes(true);
    assert!(matches!(v.release_unspent("t").await, Err(Error::Store(_))));
    store.fail_writes(false);
    assert_eq!(stored_usage(&store).await, CAP, "lost, not reused");
    assert!(matches!(
        v.encrypt(&ctx(), b"x").await,
        Err(Error::KeyUsageExhausted)
    ));
    v.release_unspent("t").await.unwrap();
    assert_eq!(v.cached_tenants(), 1);
}

/// The former knobs keep working: `with_usage_persist_every` (deprecated)
/// sets the reservation block, `persist_usage` gives the unspent uses back.
#[allow(deprecated)]
#[tokio::test]
async fn usage_counter_deprecated_knobs_keep_working() {
    let store = Probe::new(MemoryKeyStore::new());
    let v = Vault::new(store.clone(), MasterKey::generate().unwrap())
        .with_usage_persist_every(5)
        .unwrap();
    assert!(
        Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap())
            .with_usage_persist_every(0)
            .is_err()
    );
    assert_eq!(hisn_crypto_vault::DEFAULT_PERSIST_EVERY, 1 << 16);
    v.provision_tenant("t").await.unwrap();
    v.encrypt(&ctx(), b"x").await.unwrap();
    assert_eq!(stored_usage(&store).await, 5);
    v.persist_usage("t").await.unwrap();
    assert_eq!(stored_usage(&store).await, 1);
    v.encrypt(&ctx(), b"x").await.unwrap();
    assert_eq!(stored_usage(&store).await, 6);
    v.persist_usage("none").await.unwrap();
}
