//! Read paths never create keys and cannot be made to hammer the store (class:
//! read paths create keys).
//!
//! Root cause of the old failure: `Vault::keyring`, which every read path
//! calls, generated and stored a data key and an index key for any tenant
//! without one, so `decrypt` or `blind_indexer` for a tenant id an attacker
//! chose wrote keys (and filled the key store); and a ciphertext naming a key
//! id above the cached ones evicted and reloaded the keyring on every read.
//! Now provisioning is the explicit `Vault::provision_tenant`, a tenant found
//! without keys is remembered for the reload interval, a newer key id reloads
//! at most once per interval (time from an injected clock), and decryption
//! under an unknown key id or tenant is the same opaque `Error::Decrypt`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hisn_crypto_vault::{
    Ciphertext, Error, FieldContext, KeyStore, ManualClock, MasterKey, MemoryKeyStore, Vault,
};

use crate::probe::Probe;

const INTERVAL: Duration = Duration::from_secs(30);

fn vault() -> (Vault<Probe<MemoryKeyStore>>, ManualClock) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let v = Vault::new(
        Probe::new(MemoryKeyStore::new()),
        MasterKey::generate().unwrap(),
    )
    .with_clock(Arc::new(clock.clone()))
    .with_reload_interval(INTERVAL);
    (v, clock)
}

fn ctx<'a>(tenant: &'a str, row: &'a str) -> FieldContext<'a> {
    FieldContext::new(tenant, "users", "email", row).unwrap()
}

/// `ct` with its key id replaced (tag unchanged, so not authentic).
fn with_key_id(ct: &Ciphertext, id: u32) -> Ciphertext {
    let mut b = ct.as_bytes().to_vec();
    b[1..5].copy_from_slice(&id.to_be_bytes());
    Ciphertext::from_vec(b).unwrap()
}

#[tokio::test]
async fn read_paths_create_keys_unknown_tenant_reads_write_nothing() {
    let (v, clock) = vault();
    // A real ciphertext from another vault, presented for a tenant this store
    // has never seen.
    let (other, _) = vault();
    other.provision_tenant("victim").await.unwrap();
    let ct = other.encrypt(&ctx("victim", "1"), b"x").await.unwrap();

    for _ in 0..50 {
        assert!(matches!(
            v.decrypt(&ctx("victim", "1"), &ct).await,
            Err(Error::Decrypt)
        ));
        assert!(matches!(
            v.blind_indexer("victim", "users", "email").await,
            Err(Error::TenantNotProvisioned)
        ));
        assert!(matches!(
            v.keyring("victim").await,
            Err(Error::TenantNotProvisioned)
        ));
        assert!(matches!(
            v.encrypt(&ctx("victim", "1"), b"x").await,
            Err(Error::TenantNotProvisioned)
        ));
    }
    assert_eq!(v.store().writes(), 0, "a read path wrote to the store");
    assert!(v.store().tenants().await.unwrap().is_empty());
    assert_eq!(
        v.store().loads(),
        1,
        "unknown tenant looked up more than once"
    );
    clock.advance(INTERVAL);
    assert!(v.decrypt(&ctx("victim", "1"), &ct).await.is_err());
    assert_eq!(v.store().loads(), 2, "one more lookup per interval");
    assert_eq!(v.store().writes(), 0);

    // Explicit provisioning is seen at once by this vault.
    v.provision_tenant("victim").await.unwrap();
    assert!(v.store().writes() > 0);
    v.blind_indexer("victim", "users", "email").await.unwrap();
}

#[tokio::test]
async fn read_paths_create_keys_forged_key_ids_reload_at_most_once_per_interval() {
    let (v, clock) = vault();
    v.provision_tenant("t").await.unwrap();
    let ct = v.encrypt(&ctx("t", "1"), b"secret").await.unwrap();
    let writes = v.store().writes();
    let loads = v.store().loads();
    let forged = with_key_id(&ct, 9_999);
    for _ in 0..100 {
        assert!(matches!(
            v.decrypt(&ctx("t", "1"), &forged).await,
            Err(Error::Decrypt)
        ));
    }
    assert_eq!(
        v.store().loads(),
        loads + 1,
        "forged key ids forced reloads"
    );
    clock.advance(INTERVAL);
    for _ in 0..100 {
        assert!(v.decrypt(&ctx("t", "1"), &forged).await.is_err());
    }
    assert_eq!(v.store().loads(), loads + 2);
    // Nothing but usage counters was written by the reloads (eviction persists
    // them); no key was created.
    let keys = v.store().inner.load("t").await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(v.store().writes() >= writes);
    // The genuine value still decrypts.
    assert_eq!(
        v.decrypt(&ctx("t", "1"), &ct).await.unwrap().as_bytes(),
        b"secret"
    );
}

#[tokio::test]
async fn read_paths_create_keys_a_wrong_key_id_is_the_same_opaque_error() {
    let (v, _) = vault();
    v.provision_tenant("t").await.unwrap();
    let ct = v.encrypt(&ctx("t", "1"), b"secret").await.unwrap();
    // Below, above and far above the tenant's only key id: all `Decrypt`, as
    // is the value moved to another row.
    for id in [0, 2, u32::MAX] {
        assert!(matches!(
            v.decrypt(&ctx("t", "1"), &with_key_id(&ct, id)).await,
            Err(Error::Decrypt)
        ));
    }
    assert!(matches!(
        v.decrypt(&ctx("t", "2"), &ct).await,
        Err(Error::Decrypt)
    ));
}
