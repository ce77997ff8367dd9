//! A replay store and an idempotency store on one Redis under one key prefix
//! never share a key (class: keys repeat across stores sharing Redis).
//!
//! Root cause of the old failure: both stores named their keys
//! `<prefix><len>:<scope>...`: the replay store's `(scope, provider, event
//! id)` became `<len>:<scope><len>:<provider><event id>` and the idempotency
//! store's `(scope, key)` became `<len>:<scope><key>`. With one prefix for
//! both (nothing told the operator not to), an API client whose
//! `Idempotency-Key` was `6:githubevt_1` (a valid token) wrote the very key
//! the webhook `evt_1` from `github` would be claimed under in the same
//! scope: the webhook's claims failed (`StoreUnavailable`) for as long as the
//! client's record lived (24 h), and a webhook's done marker made the
//! client's requests fail the same way. Now idempotency keys carry an `i`
//! where replay keys carry a digit.

use std::time::Duration;

use hisn_webhook_verify::idempotency::{Begin, IdempotencyStore, RedisIdempotencyStore};
use hisn_webhook_verify::replay::{Claim, RedisReplayStore, ReplayKey, ReplayPolicy, ReplayStore};

#[tokio::test]
async fn redis_keys_repeat_across_stores_sharing_a_prefix() {
    let Some(r) = hisn_test_support::redis("redis_shared_prefix").await else {
        return;
    };
    let replay = RedisReplayStore::new(r.connection().await, r.prefix()).unwrap();
    let idem = RedisIdempotencyStore::new(r.connection().await, r.prefix()).unwrap();
    let lease = Duration::from_secs(30);
    let p = ReplayPolicy::DEFAULT;

    // A client's key spelled like a webhook's replay key, begun first.
    let Begin::New(_) = idem
        .begin("t", "6:githubevt_1", [1; 32], lease)
        .await
        .unwrap()
    else {
        panic!("first use must be new")
    };
    let k = ReplayKey::new("t", "github", "evt_1").unwrap();
    let Ok(Claim::New(token)) = replay.claim(&k, &p).await else {
        panic!("the client's idempotency record blocked the webhook's claim")
    };
    assert!(replay.complete(&k, &token, &p).await.unwrap());

    // The other way round: a webhook done first, then the client's key.
    let k = ReplayKey::new("t", "github", "evt_2").unwrap();
    let Claim::New(token) = replay.claim(&k, &p).await.unwrap() else {
        panic!("first claim must be new")
    };
    assert!(replay.complete(&k, &token, &p).await.unwrap());
    assert!(
        matches!(
            idem.begin("t", "6:githubevt_2", [1; 32], lease).await,
            Ok(Begin::New(_))
        ),
        "the webhook's done marker blocked the client's request"
    );
    assert_eq!(replay.claim(&k, &p).await.unwrap(), Claim::Done);
}
