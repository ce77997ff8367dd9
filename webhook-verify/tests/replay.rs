//! Replay stores: the same contract against memory, real Redis and real
//! PostgreSQL, plus a concurrent stress test with zero double-claims.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hisn_webhook_verify::replay::{Claim, MemoryReplayStore, ReplayKey, ReplayPolicy, ReplayStore};

/// The contract every store honours.
async fn contract<S: ReplayStore>(store: &S) {
    let p = ReplayPolicy::DEFAULT;
    let k = ReplayKey::new("tenant-a", "stripe", "evt_1").unwrap();
    let Claim::New(token) = store.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    assert_eq!(store.claim(&k, &p).await.unwrap(), Claim::InProgress);
    // Another scope or provider is another key.
    let other = ReplayKey::new("tenant-b", "stripe", "evt_1").unwrap();
    assert!(matches!(
        store.claim(&other, &p).await.unwrap(),
        Claim::New(_)
    ));
    let other = ReplayKey::new("tenant-a", "github", "evt_1").unwrap();
    assert!(matches!(
        store.claim(&other, &p).await.unwrap(),
        Claim::New(_)
    ));
    assert!(store.complete(&k, &token, &p).await.unwrap());
    assert_eq!(
        store.claim(&k, &p).await.unwrap(),
        Claim::Done,
        "a replay is a no-op"
    );
    assert!(
        !store.complete(&k, &token, &p).await.unwrap(),
        "done claims cannot be completed twice"
    );
    // Release lets a retry claim again; a wrong token releases nothing.
    let k2 = ReplayKey::new("tenant-a", "stripe", "evt_2").unwrap();
    let Claim::New(t2) = store.claim(&k2, &p).await.unwrap() else {
        panic!()
    };
    let Claim::New(foreign) = store
        .claim(&ReplayKey::new("x", "y", "z").unwrap(), &p)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(!store.release(&k2, &foreign).await.unwrap());
    assert!(store.release(&k2, &t2).await.unwrap());
    assert!(matches!(store.claim(&k2, &p).await.unwrap(), Claim::New(_)));
}

/// Many tasks claim overlapping ids; every id is won exactly once.
async fn stress<S: ReplayStore + 'static>(store: Arc<S>, tasks: usize, ids: usize) {
    let winners = Arc::new(Mutex::new(Vec::new()));
    let claims = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, winners, claims) = (store.clone(), winners.clone(), claims.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..ids {
                // Each task walks the ids from a different offset, so claims overlap.
                let id = format!("evt_{}", (i + t * 7) % ids);
                let k = ReplayKey::new("tenant", "stress", &id).unwrap();
                claims.fetch_add(1, Ordering::Relaxed);
                if let Claim::New(_) = store.claim(&k, &ReplayPolicy::DEFAULT).await.unwrap() {
                    winners.lock().unwrap().push(id);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let winners = winners.lock().unwrap();
    let unique: HashSet<_> = winners.iter().collect();
    assert_eq!(claims.load(Ordering::Relaxed), tasks * ids);
    assert_eq!(winners.len(), unique.len(), "an id was claimed twice");
    assert_eq!(unique.len(), ids, "every id claimed once");
}

/// A claim token settles only the claim of the store that issued it (class:
/// claim tokens repeat across store instances).
///
/// Root cause of the old failure: every `MemoryReplayStore` numbered its
/// tokens from 1, so the first claim of one store and the first claim of
/// another (one store per endpoint, say) had equal tokens, and the token of
/// one completed or released the other's claim of the same key. Now tokens
/// come from one process-wide counter shared by every in-memory store.
#[tokio::test]
async fn claim_tokens_repeat_across_stores_never_settle_another_stores_claim() {
    let p = ReplayPolicy::DEFAULT;
    let k = ReplayKey::new("tenant-a", "stripe", "evt_1").unwrap();
    let (one, two) = (MemoryReplayStore::default(), MemoryReplayStore::default());
    let Claim::New(t1) = one.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    let Claim::New(t2) = two.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    assert_ne!(t1, t2, "two stores issued the same token");
    assert!(!two.complete(&k, &t1, &p).await.unwrap());
    assert!(!two.release(&k, &t1).await.unwrap());
    assert_eq!(two.claim(&k, &p).await.unwrap(), Claim::InProgress);
    assert!(two.complete(&k, &t2, &p).await.unwrap());
    assert!(one.release(&k, &t1).await.unwrap());
}

/// A handler that outlives its lease still records its event done
/// (class: replay state accepted twice).
///
/// Root cause of the old failure: `complete` checked that the claim was ours
/// *and its lease unexpired*, so a handler that ran longer than the lease
/// (60 s by default; the replay store has no renewal) could not record the
/// event although no one had taken it over: the store answered `false`, kept
/// nothing (Redis had already dropped the key, PostgreSQL and memory left a
/// lapsed lease), and the next delivery of the event was claimed `New` and
/// processed a second time. For GitHub, Shopify and Twilio, which sign no
/// timestamp, that is a captured delivery replayed at will for the whole TTL.
/// Now a completion is recorded unless another claim holds the key; a
/// takeover that already happened is reported (`false`) and left alone.
async fn late_completion<S: ReplayStore, F, Fut>(store: &S, lapse: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let p = ReplayPolicy::new(Duration::from_secs(1), Duration::from_secs(3600)).unwrap();
    // A slow handler: its lease lapses, no one claims meanwhile.
    let k = ReplayKey::new("t", "github", "slow").unwrap();
    let Claim::New(slow) = store.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    lapse("slow").await;
    assert!(
        store.complete(&k, &slow, &p).await.unwrap(),
        "the late completion was refused although no one took the claim over"
    );
    assert_eq!(
        store.claim(&k, &p).await.unwrap(),
        Claim::Done,
        "the event was processed and is claimable again: a replay runs it twice"
    );
    // Taken over: the late completion does not touch the new claim.
    let k = ReplayKey::new("t", "github", "taken").unwrap();
    let Claim::New(first) = store.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    lapse("taken").await;
    let Claim::New(second) = store.claim(&k, &p).await.unwrap() else {
        panic!("a lapsed lease is taken over")
    };
    assert!(!store.complete(&k, &first, &p).await.unwrap());
    assert_eq!(store.claim(&k, &p).await.unwrap(), Claim::InProgress);
    assert!(store.complete(&k, &second, &p).await.unwrap());
    assert_eq!(store.claim(&k, &p).await.unwrap(), Claim::Done);
    assert!(
        !store.complete(&k, &first, &p).await.unwrap(),
        "done stays done"
    );
    // A late release after a lapse gives nothing up that is not its own.
    let k = ReplayKey::new("t", "github", "released").unwrap();
    let Claim::New(gone) = store.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    lapse("released").await;
    let Claim::New(_now) = store.claim(&k, &p).await.unwrap() else {
        panic!("a lapsed lease is taken over")
    };
    assert!(!store.release(&k, &gone).await.unwrap());
    assert_eq!(store.claim(&k, &p).await.unwrap(), Claim::InProgress);
}

#[tokio::test]
async fn replay_accepted_twice_after_a_late_completion_memory() {
    let clock = Arc::new(hisn_webhook_verify::ManualClock::new(1_000));
    let store = MemoryReplayStore::with_clock(64, clock.clone()).unwrap();
    late_completion(&store, |_| {
        clock.advance(1);
        std::future::ready(())
    })
    .await;
}

#[tokio::test]
async fn memory_store_honours_the_contract() {
    contract(&MemoryReplayStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_stress_has_zero_double_claims() {
    stress(Arc::new(MemoryReplayStore::default()), 32, 500).await;
}

#[test]
fn memory_store_threads_stress_has_zero_double_claims() {
    let store = Arc::new(MemoryReplayStore::default());
    let won = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, won) = (store.clone(), won.clone());
            s.spawn(move || {
                for i in 0..2000 {
                    let id = format!("{}", (i * 3 + t) % 2000);
                    let k = ReplayKey::new("t", "p", &id).unwrap();
                    if let Claim::New(_) = store.claim_now(&k, &ReplayPolicy::DEFAULT).unwrap() {
                        won.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(won.load(Ordering::Relaxed), 2000);
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use hisn_webhook_verify::replay::RedisReplayStore;

    #[tokio::test]
    async fn replay_accepted_twice_after_a_late_completion_redis() {
        let Some(r) = hisn_test_support::redis("replay_late_completion").await else {
            return;
        };
        let store = RedisReplayStore::new(r.connection().await, r.prefix()).unwrap();
        let conn = r.connection().await;
        // Redis drops the key when the lease lapses.
        late_completion(&store, |id| {
            let (key, mut conn) = (r.key(&format!("1:t6:github{id}")), conn.clone());
            async move {
                let n: i64 = redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(n, 1, "the claim's key");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn redis_store_honours_the_contract() {
        let Some(r) = hisn_test_support::redis("redis_store_honours_the_contract").await else {
            return;
        };
        let store = RedisReplayStore::new(r.connection().await, r.prefix()).unwrap();
        contract(&store).await;
    }

    #[tokio::test]
    async fn redis_lease_and_ttl_are_set_with_px() {
        let Some(r) = hisn_test_support::redis("redis_lease_and_ttl_px").await else {
            return;
        };
        let store = RedisReplayStore::new(r.connection().await, r.prefix()).unwrap();
        let p = ReplayPolicy::new(Duration::from_secs(60), Duration::from_secs(3600)).unwrap();
        let k = ReplayKey::new("t", "p", "e").unwrap();
        let Claim::New(token) = store.claim(&k, &p).await.unwrap() else {
            panic!()
        };
        // Read the server-side expiry instead of sleeping.
        let mut conn = r.connection().await;
        let pttl = |conn: &mut redis::aio::MultiplexedConnection| {
            let key = r.key("1:t1:pe");
            let mut conn = conn.clone();
            async move {
                redis::cmd("PTTL")
                    .arg(key)
                    .query_async::<i64>(&mut conn)
                    .await
                    .unwrap()
            }
        };
        let lease = pttl(&mut conn).await;
        assert!((55_000..=60_000).contains(&lease), "lease PTTL {lease}");
        assert!(store.complete(&k, &token, &p).await.unwrap());
        let ttl = pttl(&mut conn).await;
        assert!((3_595_000..=3_600_000).contains(&ttl), "done PTTL {ttl}");
        // Expire it on the server: the next claim is new again.
        let _: () = redis::cmd("PEXPIRE")
            .arg(r.key("1:t1:pe"))
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(r.key("1:t1:pe"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(matches!(store.claim(&k, &p).await.unwrap(), Claim::New(_)));
    }

    /// The store reads only what it writes (`p:<token>` in progress, `d`
    /// done): any other value under a key is refused as a store fault
    /// (`StoreUnavailable`), never taken for a claim in progress or done.
    #[tokio::test]
    async fn redis_claim_fails_closed_on_a_value_it_did_not_write() {
        let Some(r) = hisn_test_support::redis("redis_foreign_value").await else {
            return;
        };
        let store = RedisReplayStore::new(r.connection().await, r.prefix()).unwrap();
        assert!(format!("{store:?}").contains(r.prefix()));
        let k = ReplayKey::new("t", "p", "e").unwrap();
        let mut conn = r.connection().await;
        for foreign in ["x", "p", "P:1", "done", ""] {
            let _: () = redis::cmd("SET")
                .arg(r.key("1:t1:pe"))
                .arg(foreign)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(
                store.claim(&k, &ReplayPolicy::DEFAULT).await,
                Err(hisn_webhook_verify::Error::StoreUnavailable),
                "{foreign:?}"
            );
        }
        // What the store itself writes is read back as such.
        for (own, want) in [("p:abc", Claim::InProgress), ("d", Claim::Done)] {
            let _: () = redis::cmd("SET")
                .arg(r.key("1:t1:pe"))
                .arg(own)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(store.claim(&k, &ReplayPolicy::DEFAULT).await, Ok(want));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_stress_has_zero_double_claims() {
        let Some(r) = hisn_test_support::redis("redis_stress").await else {
            return;
        };
        let store = Arc::new(RedisReplayStore::new(r.connection().await, r.prefix()).unwrap());
        stress(store, 16, 100).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;
    use hisn_webhook_verify::replay::PgReplayStore;

    async fn store(name: &str) -> Option<(hisn_test_support::TestDatabase, PgReplayStore)> {
        let db = hisn_test_support::postgres(name).await?;
        let store = PgReplayStore::new(db.pool().await);
        store.migrate().await.unwrap();
        store.migrate().await.unwrap(); // idempotent
        Some((db, store))
    }

    #[tokio::test]
    async fn replay_accepted_twice_after_a_late_completion_postgres() {
        let Some((db, store)) = store("pg_replay_late_completion").await else {
            return;
        };
        let pool = db.pool().await;
        late_completion(&store, |id| {
            let pool = pool.clone();
            async move {
                let r = sqlx::query(
                    "update hisn_webhook_replay set expires_at = now() - interval '1 second' where event_id = $1",
                )
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
                assert_eq!(r.rows_affected(), 1);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn postgres_store_honours_the_contract() {
        let Some((_db, store)) = store("pg_replay_contract").await else {
            return;
        };
        contract(&store).await;
    }

    #[tokio::test]
    async fn postgres_expired_rows_are_taken_over_and_purged() {
        let Some((db, store)) = store("pg_replay_expiry").await else {
            return;
        };
        let k = ReplayKey::new("t", "p", "e").unwrap();
        assert!(matches!(
            store.claim(&k, &ReplayPolicy::DEFAULT).await.unwrap(),
            Claim::New(_)
        ));
        // Age the row in the database instead of sleeping.
        let pool = db.pool().await;
        sqlx::query("update hisn_webhook_replay set expires_at = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
        assert!(
            matches!(
                store.claim(&k, &ReplayPolicy::DEFAULT).await.unwrap(),
                Claim::New(_)
            ),
            "takeover"
        );
        sqlx::query("update hisn_webhook_replay set expires_at = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(store.purge_expired().await.unwrap(), 1);
    }

    /// `purge_expired` deletes exactly the expired rows (lapsed leases and
    /// done markers past their TTL) and reports how many; live rows stay.
    #[tokio::test]
    async fn postgres_purge_removes_and_counts_exactly_the_expired_rows() {
        let Some((db, store)) = store("pg_replay_purge").await else {
            return;
        };
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        let keys = ["e1", "e2", "e3"].map(|e| ReplayKey::new("t", "p", e).unwrap());
        for k in &keys {
            assert!(matches!(
                store.claim(k, &ReplayPolicy::DEFAULT).await.unwrap(),
                Claim::New(_)
            ));
        }
        let pool = db.pool().await;
        sqlx::query(
            "update hisn_webhook_replay set expires_at = now() - interval '1 second' where event_id <> 'e3'",
        )
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(store.purge_expired().await.unwrap(), 2);
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        assert_eq!(
            store.claim(&keys[2], &ReplayPolicy::DEFAULT).await.unwrap(),
            Claim::InProgress
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_stress_has_zero_double_claims() {
        let Some((_db, store)) = store("pg_replay_stress").await else {
            return;
        };
        stress(Arc::new(store), 8, 60).await;
    }
}
