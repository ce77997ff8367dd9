//! Two vault instances over one key store (two processes sharing PostgreSQL):
//! a shred or rotation done through one is in force in the other within the
//! reload interval (class: cached keys outlive another instance's shred or
//! rotation).
//!
//! Root cause of the old failure: a cached keyring never expired. After
//! instance A shredded a tenant, instance B (which had the tenant's keyring
//! cached) went on decrypting its values, and after A rotated a data key, B
//! went on encrypting new values under the replaced key, until the keyring
//! happened to leave B's LRU cache or B restarted: with no bound in time. Now
//! a cached keyring is checked against the store once per reload interval
//! (`Vault::with_reload_interval`, time from the injected clock): shredded
//! answers `TenantShredded`, changed keys (rotation, deletion) are reloaded,
//! and a store that cannot be read retires the cached keys (fail closed).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hisn_crypto_vault::{
    Error, FieldContext, KeyId, KeyPurpose, KeyStore, ManualClock, MasterKey, MemoryKeyStore,
    Vault, WrappedKey,
};

use crate::probe::Probe;

const INTERVAL: Duration = Duration::from_secs(30);

/// One store shared by several vaults (as PostgreSQL is by several
/// processes); `fail_loads(true)` makes every load fail, as an unreachable
/// database does.
type Shared = Probe<MemoryKeyStore>;

/// Two instances over one store, one master key, one clock.
fn two_instances() -> (Vault<Shared>, Vault<Shared>, Shared, ManualClock) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let store = Probe::new(MemoryKeyStore::new());
    let master = MasterKey::generate().unwrap();
    let make = || {
        Vault::new(store.clone(), master.clone())
            .with_clock(Arc::new(clock.clone()))
            .with_reload_interval(INTERVAL)
    };
    let (a, b) = (make(), make());
    (a, b, store, clock)
}

fn ctx(row: &str) -> FieldContext<'_> {
    FieldContext::new("t", "users", "email", row).unwrap()
}

#[tokio::test]
async fn stale_keyring_across_instances_shred_through_another_instance_ends_decryption() {
    let (a, b, _, clock) = two_instances();
    a.provision_tenant("t").await.unwrap();
    let ct = a.encrypt(&ctx("1"), b"secret").await.unwrap();
    // B reads the value, so it caches the tenant's keys.
    assert_eq!(
        b.decrypt(&ctx("1"), &ct).await.unwrap().as_bytes(),
        b"secret"
    );
    a.shred_tenant("t").await.unwrap();
    assert!(matches!(
        a.decrypt(&ctx("1"), &ct).await,
        Err(Error::TenantShredded)
    ));
    clock.advance(INTERVAL);
    assert!(
        matches!(b.decrypt(&ctx("1"), &ct).await, Err(Error::TenantShredded)),
        "another instance still decrypts a shredded tenant's value"
    );
    assert!(matches!(
        b.encrypt(&ctx("2"), b"new").await,
        Err(Error::TenantShredded)
    ));
    assert!(matches!(
        b.blind_indexer("t", "users", "email").await,
        Err(Error::TenantShredded)
    ));
}

#[tokio::test]
async fn stale_keyring_across_instances_rotation_through_another_instance_is_used() {
    let (a, b, _, clock) = two_instances();
    a.provision_tenant("t").await.unwrap();
    let old = b.encrypt(&ctx("1"), b"before").await.unwrap();
    assert_eq!(old.key_id(), KeyId(1));
    assert_eq!(a.rotate_data_key("t").await.unwrap(), KeyId(2));
    // Within the interval B may still use its cached keys ...
    clock.advance(INTERVAL);
    // ... after it, never the replaced key.
    let new = b.encrypt(&ctx("2"), b"after").await.unwrap();
    assert_eq!(
        new.key_id(),
        KeyId(2),
        "another instance still encrypts under the replaced key"
    );
    assert_eq!(
        b.decrypt(&ctx("1"), &old).await.unwrap().as_bytes(),
        b"before"
    );
    assert_eq!(
        a.decrypt(&ctx("2"), &new).await.unwrap().as_bytes(),
        b"after"
    );
    // The key B used before the rotation kept its count in the store.
    assert_eq!(a.usage("t").await.unwrap().get(&KeyId(1)), Some(&1));
}

/// What the check compares (mutation testing found it untested): after a
/// rotation a tenant has two data keys and one blind-index key, and an
/// unchanged store must keep the same keyring (not reload it on every
/// check); a primary moved back to an existing key (no new id: the key
/// list alone does not show it) must be picked up within the interval.
#[tokio::test]
async fn stale_keyring_across_instances_check_compares_ids_and_primary() {
    let (a, b, store, clock) = two_instances();
    a.provision_tenant("t").await.unwrap();
    assert_eq!(a.rotate_data_key("t").await.unwrap(), KeyId(2));
    b.encrypt(&ctx("1"), b"x").await.unwrap();
    let ring = b.keyring("t").await.unwrap();
    assert_eq!(
        (ring.key_ids(), ring.primary()),
        (vec![KeyId(1), KeyId(2)], KeyId(2))
    );
    clock.advance(INTERVAL);
    b.encrypt(&ctx("2"), b"y").await.unwrap();
    assert!(
        Arc::ptr_eq(&ring, &b.keyring("t").await.unwrap()) && !ring.is_retired(),
        "unchanged keys (two data keys, one index key) were reloaded"
    );
    // The primary moves back to key 1 in the store (as a concurrent
    // rotation's last writer can leave it): same ids, another primary.
    store
        .set_primary("t", KeyPurpose::Data, KeyId(1))
        .await
        .unwrap();
    clock.advance(INTERVAL);
    let ct = b.encrypt(&ctx("3"), b"z").await.unwrap();
    assert_eq!(
        ct.key_id(),
        KeyId(1),
        "a primary changed in the store was not picked up"
    );
    assert!(ring.is_retired());
}

/// Unchanged keys cost one store read per interval and tenant, and keep the
/// same keyring (one usage counter); a store that cannot be read when the
/// check is due retires the cached keys instead of trusting them.
#[tokio::test]
async fn stale_keyring_across_instances_check_is_once_per_interval_and_fails_closed() {
    let (a, b, store, clock) = two_instances();
    a.provision_tenant("t").await.unwrap();
    let ct = b.encrypt(&ctx("1"), b"x").await.unwrap();
    let ring = b.keyring("t").await.unwrap();
    clock.advance(INTERVAL - Duration::from_secs(1));
    store.fail_loads(true);
    // Not yet due: served from the cache without a store read.
    b.decrypt(&ctx("1"), &ct).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(
        matches!(b.decrypt(&ctx("1"), &ct).await, Err(Error::Store(_))),
        "keys used past the check although the store could not be read"
    );
    assert!(ring.is_retired());
    store.fail_loads(false);
    assert_eq!(b.decrypt(&ctx("1"), &ct).await.unwrap().as_bytes(), b"x");
    let ring = b.keyring("t").await.unwrap();
    clock.advance(INTERVAL);
    b.encrypt(&ctx("2"), b"y").await.unwrap();
    assert!(
        Arc::ptr_eq(&ring, &b.keyring("t").await.unwrap()),
        "unchanged keys were reloaded"
    );
    assert!(!ring.is_retired());
}

/// Two processes sharing one key directory (the server and a `hisn vault`
/// command on its data directory) lose no update (class: two processes
/// sharing one key store lose updates).
///
/// Root cause of the old failure: `DirKeyStore` serialised its
/// read-modify-write of a tenant's key file with an in-process mutex only, and
/// every writer used the same temporary file name. Two instances (two
/// processes) interleaved: one's usage write, read before the other's
/// rotation, renamed the old key list back over it, so the new key vanished
/// (values under it undecryptable, and its id issued again to another key).
/// Now every change holds an exclusive lock on a lock file in the directory.
#[test]
fn shared_dir_key_store_two_instances_lose_no_update() {
    use hisn_crypto_vault::DirKeyStore;

    let dir = tempfile::tempdir().unwrap();
    let record = |id: u32, primary: bool| WrappedKey {
        tenant: "t".into(),
        purpose: KeyPurpose::Data,
        key_id: KeyId(id),
        primary,
        master_fingerprint: [7; 8],
        wrapped: vec![1; 61],
        usage: 0,
    };
    let block_on = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f);
    };
    let a = DirKeyStore::open(dir.path()).unwrap();
    let b = DirKeyStore::open(dir.path()).unwrap();
    block_on(Box::pin(async {
        assert!(a.insert(&record(1, true)).await.unwrap());
    }));
    const KEYS: u32 = 60;
    std::thread::scope(|s| {
        s.spawn(|| {
            block_on(Box::pin(async {
                for id in 2..=KEYS {
                    assert!(a.insert(&record(id, false)).await.unwrap());
                }
            }));
        });
        s.spawn(|| {
            block_on(Box::pin(async {
                for n in 1..=400u64 {
                    b.record_usage("t", KeyPurpose::Data, KeyId(1), n)
                        .await
                        .unwrap();
                }
            }));
        });
    });
    block_on(Box::pin(async {
        let keys = a.load("t").await.unwrap();
        let ids: Vec<u32> = keys.iter().map(|k| k.key_id.0).collect();
        assert_eq!(
            ids.len(),
            KEYS as usize,
            "keys lost to a concurrent write: {ids:?}"
        );
        assert_eq!(
            keys.iter().find(|k| k.key_id == KeyId(1)).unwrap().usage,
            400
        );
    }));
}
