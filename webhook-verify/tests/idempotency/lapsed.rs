//! A request that outlives its lease still records its response (class:
//! idempotency state accepted twice).
//!
//! Root cause of the old failure: the Redis store keeps an in-flight record
//! only for its lease (`PX`), and `finish` wrote the response only over an
//! in-flight record holding the request's token. A request whose lease
//! lapsed (renewals failing during a Redis blip, or no tokio runtime to renew
//! on) found no record when its handler returned: `finish` wrote nothing and
//! still answered `Ok`, the layer sent the response as if stored, and the
//! client's retry with the same key began afresh and ran the side effect a
//! second time. The memory and PostgreSQL stores kept the lapsed record and
//! recorded the response; Redis did not. Now a Redis token carries the
//! request's fingerprint, and `finish` of a record that is gone records the
//! response under it; a record another request began meanwhile is left
//! alone (that request is the second run, and it records its own response).

use std::sync::Arc;
use std::time::Duration;

use hisn_webhook_verify::ManualClock;
use hisn_webhook_verify::idempotency::{
    Begin, IdempotencyStore, MemoryIdempotencyStore, StoredResponse,
};

/// `lapse(key)` makes the lease of `key` (scope `t`) run out on the store's
/// own clock.
async fn lapsed_lease_is_recorded<St, F, Fut>(s: &St, lapse: F)
where
    St: IdempotencyStore,
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let lease = Duration::from_secs(30);
    let expiry = Duration::from_secs(3600);
    let fp = [7u8; 32];
    // A slow request: its lease lapses, no one uses the key meanwhile.
    let Begin::New(slow) = s.begin("t", "slow", fp, lease).await.unwrap() else {
        panic!("first use must be new")
    };
    lapse("slow").await;
    let resp = StoredResponse::new(201, vec![("x-run".into(), b"1".to_vec())], b"ok".to_vec());
    s.finish("t", "slow", &slow, resp.clone(), expiry)
        .await
        .unwrap();
    assert_eq!(
        s.begin("t", "slow", fp, lease).await.unwrap(),
        Begin::Completed(resp),
        "the retry began afresh: the side effect runs a second time"
    );
    assert_eq!(
        s.begin("t", "slow", [8; 32], lease).await.unwrap(),
        Begin::Mismatch,
        "recorded under the request's own fingerprint"
    );
    // Taken over: the late finish leaves the new request's record alone.
    let Begin::New(first) = s.begin("t", "taken", fp, lease).await.unwrap() else {
        panic!("first use must be new")
    };
    lapse("taken").await;
    let Begin::New(second) = s.begin("t", "taken", fp, lease).await.unwrap() else {
        panic!("a lapsed lease is taken over")
    };
    let late = StoredResponse::new(200, vec![], b"first".to_vec());
    s.finish("t", "taken", &first, late, expiry).await.unwrap();
    assert_eq!(
        s.begin("t", "taken", fp, lease).await.unwrap(),
        Begin::InFlight
    );
    let own = StoredResponse::new(200, vec![], b"second".to_vec());
    s.finish("t", "taken", &second, own.clone(), expiry)
        .await
        .unwrap();
    assert_eq!(
        s.begin("t", "taken", fp, lease).await.unwrap(),
        Begin::Completed(own)
    );
}

#[tokio::test]
async fn idempotency_accepted_twice_after_a_lapsed_lease_memory() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let s = MemoryIdempotencyStore::with_clock(10, clock.clone());
    lapsed_lease_is_recorded(&s, |_| {
        clock.advance(30);
        std::future::ready(())
    })
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn idempotency_accepted_twice_after_a_lapsed_lease_redis() {
    use hisn_webhook_verify::idempotency::RedisIdempotencyStore;
    let Some(r) = hisn_test_support::redis("redis_idem_lapsed").await else {
        return;
    };
    let s = RedisIdempotencyStore::new(r.connection().await, r.prefix()).unwrap();
    let conn = r.connection().await;
    // Redis drops the in-flight record when its lease lapses.
    lapsed_lease_is_recorded(&s, |key| {
        let (key, mut conn) = (r.key(&format!("i1:t{key}")), conn.clone());
        async move {
            let n: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(n, 1, "the in-flight record");
        }
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn idempotency_accepted_twice_after_a_lapsed_lease_postgres() {
    use hisn_webhook_verify::idempotency::PgIdempotencyStore;
    let Some(db) = hisn_test_support::postgres("pg_idem_lapsed").await else {
        return;
    };
    let pool = db.pool().await;
    let s = PgIdempotencyStore::new(pool.clone());
    s.migrate().await.unwrap();
    lapsed_lease_is_recorded(&s, |key| {
        let pool = pool.clone();
        async move {
            let r = sqlx::query(
                "update hisn_idempotency set expires_at = now() - interval '1 second' where key = $1",
            )
            .bind(key)
            .execute(&pool)
            .await
            .unwrap();
            assert_eq!(r.rows_affected(), 1);
        }
    })
    .await;
}
