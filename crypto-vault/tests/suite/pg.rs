//! `PgKeyStore` against a real PostgreSQL (via `hisn-test-support`).

use hisn_crypto_vault::{
    Error, FieldContext, KeyId, KeyPurpose, KeyStore, MasterKey, PgKeyStore, Vault,
};

async fn store(name: &str) -> Option<(hisn_test_support::TestDatabase, PgKeyStore)> {
    let db = hisn_test_support::postgres(name).await?;
    let s = PgKeyStore::new(db.pool().await);
    s.migrate().await.unwrap();
    s.migrate().await.unwrap(); // idempotent
    Some((db, s))
}

fn ctx(row: &str) -> FieldContext<'_> {
    FieldContext::new("acme", "docs", "body", row).unwrap()
}

#[tokio::test]
async fn pg_store_full_lifecycle() {
    let Some((_db, s)) = store("crypto_vault_pg_lifecycle").await else {
        return;
    };
    let master = MasterKey::generate().unwrap();
    let v = Vault::new(s.clone(), master.clone())
        .with_usage_cap(1000)
        .unwrap();
    v.provision_tenant("acme").await.unwrap();
    let ct1 = v.encrypt(&ctx("1"), b"one").await.unwrap();
    assert_eq!(v.rotate_data_key("acme").await.unwrap(), KeyId(2));
    let ct2 = v.encrypt(&ctx("2"), b"two").await.unwrap();
    // Gives back the unspent reservation (uses are reserved before use).
    v.release_unspent("acme").await.unwrap();

    // A second process over the same database reads both values.
    let v2 = Vault::new(s.clone(), master.clone());
    assert_eq!(
        v2.decrypt(&ctx("1"), &ct1).await.unwrap().as_bytes(),
        b"one"
    );
    assert_eq!(
        v2.decrypt(&ctx("2"), &ct2).await.unwrap().as_bytes(),
        b"two"
    );
    let keys = s.load("acme").await.unwrap();
    assert_eq!(
        keys.iter()
            .filter(|k| k.purpose == KeyPurpose::Data)
            .count(),
        2
    );
    assert_eq!(
        keys.iter().filter(|k| k.primary).count(),
        2,
        "one primary data key, one primary index key"
    );
    assert_eq!(
        keys.iter()
            .find(|k| k.key_id == KeyId(1) && k.purpose == KeyPurpose::Data)
            .unwrap()
            .usage,
        1
    );

    // The partial unique index refuses a second primary.
    let mut dup = keys
        .iter()
        .find(|k| k.primary && k.purpose == KeyPurpose::Data)
        .unwrap()
        .clone();
    dup.key_id = KeyId(99);
    assert!(!s.insert(&dup).await.unwrap());

    // Master rotation over PostgreSQL.
    let new = MasterKey::generate().unwrap();
    let v3 = Vault::new(s.clone(), new.clone()).with_previous_master(master);
    assert_eq!(v3.rewrap_all().await.unwrap().rewrapped, 3);
    let v4 = Vault::new(s.clone(), new);
    assert_eq!(
        v4.decrypt(&ctx("1"), &ct1).await.unwrap().as_bytes(),
        b"one"
    );

    // Retire, then shred.
    assert!(v4.delete_retired_key("acme", KeyId(2)).await.is_err());
    v4.shred_tenant("acme").await.unwrap();
    assert!(matches!(
        v4.decrypt(&ctx("2"), &ct2).await,
        Err(Error::TenantShredded)
    ));
    assert!(s.tenants().await.unwrap().is_empty());
    assert!(matches!(s.insert(&dup).await, Err(Error::TenantShredded)));
}

#[tokio::test]
async fn ciphertext_round_trips_through_bytea_and_text_columns() {
    let Some(db) = hisn_test_support::postgres("crypto_vault_pg_columns").await else {
        return;
    };
    let pool = db.pool().await;
    sqlx::query("create table secrets (id text primary key, b bytea not null, t text not null)")
        .execute(&pool)
        .await
        .unwrap();
    let v = Vault::new(
        hisn_crypto_vault::MemoryKeyStore::new(),
        MasterKey::generate().unwrap(),
    );
    v.provision_tenant("acme").await.unwrap();
    let ct = v.encrypt(&ctx("1"), b"oauth-token").await.unwrap();
    sqlx::query("insert into secrets values ($1, $2, $3)")
        .bind("1")
        .bind(&ct)
        .bind(hisn_crypto_vault::TextCiphertext(ct.clone()))
        .execute(&pool)
        .await
        .unwrap();
    let (b, t): (
        hisn_crypto_vault::Ciphertext,
        hisn_crypto_vault::TextCiphertext,
    ) = sqlx::query_as("select b, t from secrets where id = '1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(b, ct);
    assert_eq!(t.0, ct);
    let text: String = sqlx::query_scalar("select t from secrets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(text.starts_with("hv1:"));
    assert_eq!(
        v.decrypt(&ctx("1"), &b).await.unwrap().as_bytes(),
        b"oauth-token"
    );
    // A malformed column value is a decode error, not a panic.
    sqlx::query("update secrets set b = '\\x0102'::bytea")
        .execute(&pool)
        .await
        .unwrap();
    let bad: Result<(hisn_crypto_vault::Ciphertext,), _> = sqlx::query_as("select b from secrets")
        .fetch_one(&pool)
        .await;
    assert!(bad.is_err());
}

/// The key cache races with shredding and rotation, under real concurrency on
/// PostgreSQL (see `races.rs` for the pinned interleavings and the root cause):
/// workers encrypt for two tenants through a one-entry cache (every switch
/// evicts, retires and persists the other tenant's keyring) while another task
/// evicts, rotates and finally shreds. The cap admits exactly its value, no
/// encryption that starts after `rotate_data_key` returns uses the old key, and
/// none that starts after `shred_tenant` returns succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_cache_races_pg_stress_cap_rotation_and_shred_are_exact() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let Some((_db, s)) = store("crypto_vault_pg_key_cache_races").await else {
        return;
    };
    const CAP: u64 = 120;
    let v = Arc::new(
        Vault::new(s.clone(), MasterKey::generate().unwrap())
            .with_usage_cap(CAP)
            .unwrap()
            .with_usage_reservation_block(7)
            .unwrap()
            .with_cache_capacity(std::num::NonZeroUsize::new(1).unwrap()),
    );
    for t in ["capped", "other", "rotated"] {
        v.provision_tenant(t).await.unwrap();
    }
    let rotated = Arc::new(AtomicBool::new(false));
    let shredded = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..6 {
        let (v, rotated, shredded) = (Arc::clone(&v), Arc::clone(&rotated), Arc::clone(&shredded));
        tasks.spawn(async move {
            let mut capped_ok = 0u64;
            for i in 0..60 {
                let row = format!("{w}-{i}");
                let capped = FieldContext::new("capped", "docs", "body", &row).unwrap();
                match v.encrypt(&capped, b"x").await {
                    Ok(_) => capped_ok += 1,
                    Err(Error::KeyUsageExhausted) => {}
                    Err(e) => panic!("capped: {e:?}"),
                }
                // Below the cap for `other` (90 uses) and per key of `rotated`
                // (120 uses over two keys).
                if i % 4 == 0 {
                    let other = FieldContext::new("other", "docs", "body", &row).unwrap();
                    v.encrypt(&other, b"y").await.unwrap();
                }
                if i % 3 != 0 {
                    continue;
                }
                let after_rotation = rotated.load(Ordering::SeqCst);
                let after_shred = shredded.load(Ordering::SeqCst);
                let r = FieldContext::new("rotated", "docs", "body", &row).unwrap();
                match v.encrypt(&r, b"z").await {
                    Ok(ct) => {
                        assert!(!after_shred, "encrypted after shred returned");
                        if after_rotation {
                            assert_eq!(ct.key_id(), KeyId(2), "old key after rotation returned");
                        }
                    }
                    Err(Error::TenantShredded) => {}
                    Err(e) => panic!("rotated: {e:?}"),
                }
            }
            capped_ok
        });
    }
    {
        let (v, rotated, shredded) = (Arc::clone(&v), Arc::clone(&rotated), Arc::clone(&shredded));
        tasks.spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                v.evict("capped").await;
            }
            assert_eq!(v.rotate_data_key("rotated").await.unwrap(), KeyId(2));
            rotated.store(true, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            v.shred_tenant("rotated").await.unwrap();
            shredded.store(true, Ordering::SeqCst);
            0
        });
    }
    let mut capped_ok = 0;
    while let Some(r) = tasks.join_next().await {
        capped_ok += r.unwrap();
    }
    assert!(rotated.load(Ordering::SeqCst) && shredded.load(Ordering::SeqCst));
    assert_eq!(capped_ok, CAP, "the cap admitted a different count");
    v.evict("capped").await;
    v.evict("other").await;
    let stored = s.load("capped").await.unwrap();
    let data = stored
        .iter()
        .find(|k| k.purpose == KeyPurpose::Data)
        .unwrap();
    assert_eq!(data.usage, CAP);
    assert!(matches!(
        s.load("rotated").await,
        Err(Error::TenantShredded)
    ));
    assert_eq!(v.cached_tenants(), 0);
}

/// Two instances over one real PostgreSQL key store: a shred and a rotation
/// through one are in force in the other after one reload interval (class:
/// cached keys outlive another instance's shred or rotation; see
/// `instances.rs` for the root cause).
#[tokio::test]
async fn stale_keyring_across_instances_pg_shred_and_rotation_reach_the_other_instance() {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use hisn_crypto_vault::ManualClock;

    let Some((_db, s)) = store("crypto_vault_pg_instances").await else {
        return;
    };
    let interval = Duration::from_secs(30);
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let master = MasterKey::generate().unwrap();
    let make = || {
        Vault::new(s.clone(), master.clone())
            .with_clock(Arc::new(clock.clone()))
            .with_reload_interval(interval)
    };
    let (a, b) = (make(), make());
    a.provision_tenant("acme").await.unwrap();
    let ct = b.encrypt(&ctx("1"), b"one").await.unwrap();
    assert_eq!(ct.key_id(), KeyId(1));
    assert_eq!(a.rotate_data_key("acme").await.unwrap(), KeyId(2));
    clock.advance(interval);
    assert_eq!(
        b.encrypt(&ctx("2"), b"two").await.unwrap().key_id(),
        KeyId(2),
        "the other instance still encrypts under the replaced key"
    );
    a.shred_tenant("acme").await.unwrap();
    assert_eq!(b.decrypt(&ctx("1"), &ct).await.unwrap().as_bytes(), b"one");
    clock.advance(interval);
    assert!(
        matches!(b.decrypt(&ctx("1"), &ct).await, Err(Error::TenantShredded)),
        "the other instance still decrypts a shredded tenant's value"
    );
}

/// The usage cap is global over PostgreSQL (class: the key usage cap is per
/// process; see `global_cap.rs` for the root cause): four vaults (four
/// processes) over one database, encrypting concurrently until refused,
/// spend the cap once; a vault dropped holding a reservation (a crash) never
/// has its unspent uses reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_usage_cap_pg_four_vaults_spend_the_cap_once() {
    use std::sync::Arc;

    use crate::global_cap::{encrypt_until_refused, stored};

    let Some((_db, s)) = store("crypto_vault_pg_global_cap").await else {
        return;
    };
    const CAP: u64 = 150;
    let master = MasterKey::generate().unwrap();
    let make = || {
        Arc::new(
            Vault::new(s.clone(), master.clone())
                .with_usage_cap(CAP)
                .unwrap()
                .with_usage_reservation_block(8)
                .unwrap(),
        )
    };
    let vaults: Vec<_> = (0..4).map(|_| make()).collect();
    vaults[0].provision_tenant("t").await.unwrap();
    // A process that crashes holding a reservation.
    let crashed = make();
    let ctx = FieldContext::new("t", "docs", "body", "crash").unwrap();
    crashed.encrypt(&ctx, b"x").await.unwrap();
    assert_eq!(stored(&s, KeyId(1)).await, 8);
    drop(crashed);
    let total = encrypt_until_refused(&vaults, 2, 4 * CAP).await;
    let all = total + 1; // with the crashed process's one
    assert!(all <= CAP, "{all} encryptions under a key capped at {CAP}");
    assert_eq!(
        total,
        CAP - 8,
        "the crashed process's 7 unspent uses were reused"
    );
    assert_eq!(stored(&s, KeyId(1)).await, CAP);
}

/// `PgKeyStore::reserve_usage` is atomic under concurrency: eight tasks
/// reserving 7 at a time below a cap of 500 receive disjoint ranges that
/// cover the cap exactly, then empty ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_usage_cap_pg_concurrent_reservations_are_disjoint() {
    let Some((_db, s)) = store("crypto_vault_pg_reserve").await else {
        return;
    };
    let v = Vault::new(s.clone(), MasterKey::generate().unwrap());
    v.provision_tenant("t").await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = s.clone();
        set.spawn(async move {
            let mut got = Vec::new();
            loop {
                let r = s
                    .reserve_usage("t", KeyPurpose::Data, KeyId(1), 7, 500)
                    .await
                    .unwrap();
                if r.is_empty() {
                    assert_eq!(r.start, 500);
                    return got;
                }
                got.push(r);
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    all.sort_by_key(|r| r.start);
    let mut next = 0;
    for r in &all {
        assert_eq!(r.start, next, "overlapping or missing ranges: {all:?}");
        next = r.end;
    }
    assert_eq!(next, 500);
    assert!(matches!(
        s.reserve_usage("t", KeyPurpose::Data, KeyId(9), 1, 500)
            .await,
        Err(Error::UnknownKey)
    ));
    s.release_usage("t", KeyPurpose::Data, KeyId(1), 20)
        .await
        .unwrap();
    assert_eq!(
        s.reserve_usage("t", KeyPurpose::Data, KeyId(1), 50, 500)
            .await
            .unwrap(),
        480..500
    );
}
