//! The data-key usage cap holds across every process sharing a key store
//! (class: the AES-GCM key usage cap is per process, so several processes
//! together exceed it).
//!
//! Root cause of the old failure: each process counted its own encryptions
//! under a key in memory and wrote its count to the store with
//! `usage = greatest(usage, n)`. With N processes encrypting under one key the
//! true total is the *sum* of their counts, but the store kept the *largest*,
//! and a process that started read only that: N processes could together
//! spend N times the cap (2^30 each, past the 2^32 random-nonce limit with
//! four), and the uses since the last write were lost on a crash. Now a
//! process reserves a block of uses from the store before encrypting
//! (`KeyStore::reserve_usage`: an atomic add bounded by the cap) and
//! encrypts only within what it reserved; unspent uses are given back when a
//! keyring leaves the cache, or lost (counted) on a crash; no reservation, no
//! encryption.
//!
//! Several `Vault`s over one store stand for several processes over one
//! database; dropping a vault without anything else is a crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hisn_crypto_vault::{
    Error, FieldContext, KeyId, KeyPurpose, KeyStore, ManualClock, MasterKey, MemoryKeyStore,
    Vault, WrappedKey,
};
use proptest::prelude::*;

use crate::probe::Probe;

const INTERVAL: Duration = Duration::from_secs(30);

fn ctx(row: &str) -> FieldContext<'_> {
    FieldContext::new("t", "docs", "body", row).unwrap()
}

/// Encrypt concurrently through every vault (`tasks` tasks each) until each
/// task is refused; every refusal must be `KeyUsageExhausted`. Returns the
/// encryptions that succeeded, over all vaults.
pub(crate) async fn encrypt_until_refused<S: KeyStore + 'static>(
    vaults: &[Arc<Vault<S>>],
    tasks: usize,
    bound: u64,
) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for (vi, v) in vaults.iter().enumerate() {
        for ti in 0..tasks {
            let v = Arc::clone(v);
            set.spawn(async move {
                let mut ok = 0u64;
                // A bound so that a broken cap fails the test instead of hanging it.
                for i in 0..bound {
                    let row = format!("{vi}-{ti}-{i}");
                    match v.encrypt(&ctx(&row), b"x").await {
                        Ok(_) => ok += 1,
                        Err(Error::KeyUsageExhausted) => return ok,
                        Err(e) => panic!("refused with {e:?}, not KeyUsageExhausted"),
                    }
                }
                ok
            });
        }
    }
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        total += r.unwrap();
    }
    total
}

/// The stored usage of a data key (bypassing any failure injection).
pub(crate) async fn stored<S: KeyStore>(store: &S, key_id: KeyId) -> u64 {
    store
        .load("t")
        .await
        .unwrap()
        .iter()
        .find(|k| k.purpose == KeyPurpose::Data && k.key_id == key_id)
        .map_or(0, |k| k.usage)
}

/// `k` vaults (processes) over clones of `store`, one master key.
fn processes<S: KeyStore + Clone>(
    store: &S,
    master: &MasterKey,
    k: usize,
    cap: u64,
    block: u64,
) -> Vec<Arc<Vault<S>>> {
    (0..k)
        .map(|_| {
            Arc::new(
                Vault::new(store.clone(), master.clone())
                    .with_usage_cap(cap)
                    .unwrap()
                    .with_usage_reservation_block(block)
                    .unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_usage_cap_three_vaults_over_one_memory_store_spend_the_cap_once() {
    const CAP: u64 = 200;
    let store = Probe::new(MemoryKeyStore::new());
    let master = MasterKey::generate().unwrap();
    let vaults = processes(&store, &master, 3, CAP, 8);
    vaults[0].provision_tenant("t").await.unwrap();
    let total = encrypt_until_refused(&vaults, 3, 4 * CAP).await;
    assert!(
        total <= CAP,
        "{total} encryptions under a key capped at {CAP}"
    );
    // No crash and no give-back: every reserved use was spent.
    assert_eq!(total, CAP);
    assert_eq!(stored(&*store.inner, KeyId(1)).await, CAP);
    // A process started now is refused at once.
    let late = processes(&store, &master, 1, CAP, 8);
    assert!(matches!(
        late[0].encrypt(&ctx("late"), b"x").await,
        Err(Error::KeyUsageExhausted)
    ));
}

/// Two processes on one key directory: `DirKeyStore` reserves under its
/// directory lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_usage_cap_two_vaults_over_one_key_directory_spend_the_cap_once() {
    use hisn_crypto_vault::DirKeyStore;

    const CAP: u64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let vaults: Vec<_> = (0..2)
        .map(|_| {
            Arc::new(
                Vault::new(DirKeyStore::open(dir.path()).unwrap(), master.clone())
                    .with_usage_cap(CAP)
                    .unwrap()
                    .with_usage_reservation_block(4)
                    .unwrap(),
            )
        })
        .collect();
    vaults[0].provision_tenant("t").await.unwrap();
    let total = encrypt_until_refused(&vaults, 2, 4 * CAP).await;
    assert!(
        total <= CAP,
        "{total} encryptions under a key capped at {CAP}"
    );
    assert_eq!(total, CAP);
    assert_eq!(stored(vaults[1].store(), KeyId(1)).await, CAP);
}

/// A process that dies holding a reservation: the uses it reserved and did
/// not spend are counted, never handed to another process.
#[tokio::test]
async fn global_usage_cap_a_crashed_vaults_reservation_is_never_reused() {
    const CAP: u64 = 20;
    let store = Probe::new(MemoryKeyStore::new());
    let master = MasterKey::generate().unwrap();
    let a = processes(&store, &master, 1, CAP, 8).remove(0);
    a.provision_tenant("t").await.unwrap();
    for i in 0..3 {
        a.encrypt(&ctx(&i.to_string()), b"x").await.unwrap();
    }
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 8, "reserved first");
    drop(a); // crash: nothing given back
    let b = processes(&store, &master, 1, CAP, 8);
    assert_eq!(b[0].usage("t").await.unwrap().get(&KeyId(1)), Some(&8));
    let after = encrypt_until_refused(&b, 2, 4 * CAP).await;
    assert_eq!(
        after,
        CAP - 8,
        "the dead process's unspent uses were reused"
    );
    assert!(3 + after <= CAP);
    // Restarted again: nothing left.
    let c = processes(&store, &master, 1, CAP, 8);
    assert!(matches!(
        c[0].encrypt(&ctx("c"), b"x").await,
        Err(Error::KeyUsageExhausted)
    ));
}

/// No reservation, no encryption: a store that cannot take a reservation
/// refuses the encryption with its error once the uses already held are
/// spent; reads go on; nothing panics; encryption resumes with the store.
#[tokio::test]
async fn global_usage_cap_no_encryption_without_a_reservation() {
    let store = Probe::new(MemoryKeyStore::new());
    let master = MasterKey::generate().unwrap();
    let v = processes(&store, &master, 1, 1000, 4).remove(0);
    v.provision_tenant("t").await.unwrap();
    let ct = v.encrypt(&ctx("0"), b"x").await.unwrap();
    store.fail_writes(true);
    // Three uses held from the first block; the refill after the second
    // fails (logged).
    for i in 1..=3 {
        v.encrypt(&ctx(&i.to_string()), b"x").await.unwrap();
    }
    for _ in 0..3 {
        assert!(
            matches!(v.encrypt(&ctx("4"), b"x").await, Err(Error::Store(_))),
            "encrypted without a reservation"
        );
    }
    assert!(matches!(
        v.keyring_for_encryption("t", 1).await,
        Err(Error::Store(_))
    ));
    assert_eq!(v.decrypt(&ctx("0"), &ct).await.unwrap().as_bytes(), b"x");
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 4);
    // A fresh process over the failing store is refused from the start.
    let fresh = processes(&store, &master, 1, 1000, 4).remove(0);
    assert!(matches!(
        fresh.encrypt(&ctx("5"), b"x").await,
        Err(Error::Store(_))
    ));
    store.fail_writes(false);
    v.encrypt(&ctx("6"), b"x").await.unwrap();
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 8);
}

/// Rotation through one process while another holds a reservation under the
/// old key: the rotating process gives its unspent uses back, the other
/// spends only what it reserved, and once every keyring left the cache the
/// store holds exactly the encryptions performed per key.
#[tokio::test]
async fn global_usage_cap_rotation_keeps_every_keys_count_exact() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let store = Probe::new(MemoryKeyStore::new());
    let master = MasterKey::generate().unwrap();
    let make = || {
        Vault::new(store.clone(), master.clone())
            .with_clock(Arc::new(clock.clone()))
            .with_reload_interval(INTERVAL)
            .with_usage_cap(20)
            .unwrap()
            .with_usage_reservation_block(8)
            .unwrap()
    };
    let (a, b) = (make(), make());
    a.provision_tenant("t").await.unwrap();
    a.encrypt(&ctx("a1"), b"x").await.unwrap();
    b.encrypt(&ctx("b1"), b"x").await.unwrap();
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 16, "a block each");
    assert_eq!(a.rotate_data_key("t").await.unwrap(), KeyId(2));
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 9, "a gave back 7");
    // Within the interval b may still spend the uses it holds under key 1.
    for i in 2..4 {
        let ct = b.encrypt(&ctx(&format!("b{i}")), b"x").await.unwrap();
        assert_eq!(ct.key_id(), KeyId(1));
    }
    clock.advance(INTERVAL);
    assert_eq!(
        b.encrypt(&ctx("b4"), b"x").await.unwrap().key_id(),
        KeyId(2)
    );
    b.evict("t").await;
    a.evict("t").await;
    // Key 1: a's 1 and b's 3; key 2: b's 1.
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 4);
    assert_eq!(stored(&*store.inner, KeyId(2)).await, 1);
}

/// A crowd of callers on a cold keyring reserves one block, not one each:
/// the callers that find a reservation in flight wait for it (and share its
/// failure: one store attempt, every caller refused with its error). Root
/// cause of the gap this closes: each caller that found no reserved use
/// reserved its own block, so 64 concurrent first requests held 64 blocks,
/// all lost on a crash (the "at most one and a half blocks" bound broke).
#[tokio::test]
async fn global_usage_cap_a_crowd_on_a_cold_keyring_reserves_one_block() {
    let store = Probe::new(MemoryKeyStore::new());
    let master = MasterKey::generate().unwrap();
    let v = processes(&store, &master, 1, 1 << 30, 4096).remove(0);
    v.provision_tenant("t").await.unwrap();
    store.slow_reservations(true);
    for fail in [true, false] {
        store.fail_writes(fail);
        let before = store.writes();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..64 {
            let v = Arc::clone(&v);
            set.spawn(async move { v.encrypt(&ctx(&i.to_string()), b"x").await });
        }
        while let Some(r) = set.join_next().await {
            match (fail, r.unwrap()) {
                (true, Err(Error::Store(_))) | (false, Ok(_)) => {}
                (_, other) => panic!("fail={fail}: {other:?}"),
            }
        }
        assert_eq!(store.writes() - before, 1, "one reservation for the crowd");
    }
    assert_eq!(stored(&*store.inner, KeyId(1)).await, 4096);
    assert_eq!(v.usage("t").await.unwrap()[&KeyId(1)], 64);
}

/// A key store written before reservations existed: only the required
/// methods, so the trait's defaults reserve (load, then `record_usage`) and
/// keep unspent uses counted instead of taking them back.
struct Legacy(MemoryKeyStore);

impl KeyStore for Legacy {
    async fn load(&self, tenant: &str) -> hisn_crypto_vault::Result<Vec<WrappedKey>> {
        self.0.load(tenant).await
    }
    async fn insert(&self, key: &WrappedKey) -> hisn_crypto_vault::Result<bool> {
        self.0.insert(key).await
    }
    async fn set_primary(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> hisn_crypto_vault::Result<()> {
        self.0.set_primary(tenant, purpose, key_id).await
    }
    async fn rewrap(&self, key: &WrappedKey) -> hisn_crypto_vault::Result<()> {
        self.0.rewrap(key).await
    }
    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> hisn_crypto_vault::Result<()> {
        self.0.record_usage(tenant, purpose, key_id, usage).await
    }
    async fn delete(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> hisn_crypto_vault::Result<()> {
        self.0.delete(tenant, purpose, key_id).await
    }
    async fn shred(&self, tenant: &str) -> hisn_crypto_vault::Result<()> {
        self.0.shred(tenant).await
    }
    async fn tenants(&self) -> hisn_crypto_vault::Result<Vec<String>> {
        self.0.tenants().await
    }
}

/// The trait's default reservation (for stores that do not override it) is
/// exact within one process: the cap is spent once; the default give-back
/// keeps unspent uses counted (lost, never reused).
#[tokio::test]
async fn global_usage_cap_default_reservation_of_an_old_store_is_exact_in_one_process() {
    const CAP: u64 = 10;
    let v = Arc::new(
        Vault::new(
            Legacy(MemoryKeyStore::new()),
            MasterKey::generate().unwrap(),
        )
        .with_usage_cap(CAP)
        .unwrap()
        .with_usage_reservation_block(4)
        .unwrap(),
    );
    v.provision_tenant("t").await.unwrap();
    v.encrypt(&ctx("0"), b"x").await.unwrap();
    assert_eq!(stored(v.store(), KeyId(1)).await, 4);
    v.evict("t").await;
    assert_eq!(stored(v.store(), KeyId(1)).await, 4, "kept counted");
    let total = encrypt_until_refused(std::slice::from_ref(&v), 3, 4 * CAP).await;
    assert_eq!(total, CAP - 4);
    assert_eq!(stored(v.store(), KeyId(1)).await, CAP);
}

#[derive(Debug, Clone)]
enum Op {
    Encrypt(usize),
    Evict(usize),
    Crash(usize),
    Release(usize),
    Rotate(usize),
    Advance,
    FailWrites(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..4).prop_map(Op::Encrypt),
        1 => (0usize..4).prop_map(Op::Evict),
        1 => (0usize..4).prop_map(Op::Crash),
        1 => (0usize..4).prop_map(Op::Release),
        1 => (0usize..4).prop_map(Op::Rotate),
        1 => Just(Op::Advance),
        1 => any::<bool>().prop_map(Op::FailWrites),
    ]
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any interleaving of encryptions (with their reservations), evictions
    /// (give-backs), crashes, releases, rotations, reload checks and store
    /// outages over 2 to 4 vaults: the encryptions under each key, summed
    /// over every vault dead or alive, never pass the cap, and the store
    /// never counts fewer than were performed.
    #[test]
    fn global_usage_cap_any_interleaving_keeps_the_sum_within_the_cap(
        k in 2usize..=4,
        cap in 1u64..40,
        block in 1u64..10,
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        rt().block_on(async {
            let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
            let store = Probe::new(MemoryKeyStore::new());
            let master = MasterKey::generate().unwrap();
            let make = || {
                Vault::new(store.clone(), master.clone())
                    .with_clock(Arc::new(clock.clone()))
                    .with_reload_interval(INTERVAL)
                    .with_usage_cap(cap)
                    .unwrap()
                    .with_usage_reservation_block(block)
                    .unwrap()
            };
            let mut vaults: Vec<_> = (0..k).map(|_| make()).collect();
            vaults[0].provision_tenant("t").await.unwrap();
            let mut spent: BTreeMap<KeyId, u64> = BTreeMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Encrypt(i) => {
                        match vaults[i % k].encrypt(&ctx(&n.to_string()), b"x").await {
                            Ok(ct) => *spent.entry(ct.key_id()).or_default() += 1,
                            Err(Error::KeyUsageExhausted | Error::Store(_)) => {}
                            Err(e) => prop_assert!(false, "unexpected {e:?}"),
                        }
                    }
                    Op::Evict(i) => vaults[i % k].evict("t").await,
                    Op::Crash(i) => vaults[i % k] = make(),
                    Op::Release(i) => {
                        let _ = vaults[i % k].release_unspent("t").await;
                    }
                    Op::Rotate(i) => {
                        let _ = vaults[i % k].rotate_data_key("t").await;
                    }
                    Op::Advance => clock.advance(INTERVAL),
                    Op::FailWrites(f) => store.fail_writes(f),
                }
                let keys = store.inner.load("t").await.unwrap();
                for (id, used) in &spent {
                    prop_assert!(*used <= cap, "key {id:?}: {used} uses, cap {cap}");
                    let counted = keys.iter().find(|w| w.purpose == KeyPurpose::Data && w.key_id == *id)
                        .map_or(0, |w| w.usage);
                    prop_assert!(counted >= *used, "key {id:?}: store counts {counted} < {used} spent");
                }
                for w in &keys {
                    prop_assert!(w.usage <= cap, "store count {} past cap {cap}", w.usage);
                }
            }
            Ok(())
        })?;
    }
}
