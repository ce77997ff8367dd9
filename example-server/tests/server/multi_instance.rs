//! Two server instances sharing PostgreSQL and Redis, as a load balancer
//! would spread one tenant's requests over them: the per-tenant quota holds
//! across both (the sum admitted equals the quota), a webhook delivered to
//! both is processed once, an Idempotency-Key retried on the other instance
//! replays the first response.

use axum::http::StatusCode;
use hisn_example_server::config::Rate;
use hisn_example_server::danger::Layers;
use serde_json::json;

use crate::common::{Server, request, test_config};
use crate::services::{TestDb, redis_prefix, redis_url};

/// The per-tenant quota of this test (small, a long period so nothing refills).
const QUOTA: u32 = 7;

/// An instance whose tenant quota is [`QUOTA`]; `migrate`: it runs the
/// owner's migration (the first instance of a deployment).
pub(crate) async fn instance(
    db: &std::sync::Arc<TestDb>,
    redis: &str,
    prefix: &str,
    keys_from: Option<&std::path::Path>,
    migrate: bool,
) -> Server {
    instance_with(db, redis, prefix, keys_from, migrate, |c| {
        c.tenant_rate = Rate::new(QUOTA, 600).unwrap();
    })
    .await
}

/// An instance on the shared PostgreSQL database and Redis, sharing the key
/// files of the instance in `keys_from`, its configuration adjusted by `tune`.
pub(crate) async fn instance_with(
    db: &std::sync::Arc<TestDb>,
    redis: &str,
    prefix: &str,
    keys_from: Option<&std::path::Path>,
    migrate: bool,
    tune: impl FnOnce(&mut hisn_example_server::config::Config),
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    if let Some(from) = keys_from {
        // Instances of one deployment share their keys (a KMS in production).
        for file in ["local-keys.json", hisn_example_server::mfa::KEY_FILE] {
            std::fs::copy(from.join(file), dir.path().join(file)).unwrap();
        }
    }
    let mut c = test_config(dir.path());
    db.configure(&mut c, migrate);
    c.redis_url = Some(redis.parse().unwrap());
    c.redis_prefix = prefix.to_owned();
    tune(&mut c);
    let app = hisn_example_server::danger::build_with_layers(c, Layers::ALL)
        .await
        .unwrap();
    Server {
        app,
        dir,
        pg: Some(std::sync::Arc::clone(db)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_tenant_quota_the_replay_store_and_idempotency_keys() {
    let test = "two_instances_share_the_tenant_quota_the_replay_store_and_idempotency_keys";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let a = instance(&db, &redis, &prefix, None, true).await;
    // The second instance does not migrate: it finds the schema current.
    let b = instance(&db, &redis, &prefix, Some(a.dir.path()), false).await;
    let t = a.tenant_without_totp("Alpha").await;
    // Sign-up and login carry no session: the tenant tier has not been used.
    let mut admitted = [0_u32; 2];
    let mut limited = [0_u32; 2];
    for i in 0..(3 * QUOTA) {
        let (n, srv) = if i % 2 == 0 { (0, &a) } else { (1, &b) };
        let r = srv
            .call("GET", &t.path("/assets"), Some(&t.token), None)
            .await;
        match r.status {
            StatusCode::OK => admitted[n] += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers.contains_key("retry-after"));
                limited[n] += 1;
            }
            other => panic!("instance {n}: {other}: {r:?}"),
        }
    }
    assert_eq!(
        admitted[0] + admitted[1],
        QUOTA,
        "admitted {admitted:?} across both instances"
    );
    assert!(
        admitted.iter().all(|&n| n > 0) && limited.iter().all(|&n| n > 0),
        "{admitted:?} {limited:?}"
    );

    // One webhook event delivered to both instances is processed once.
    let event = json!({ "type": "subscription.updated", "data": { "tenant_id": t.id, "plan": "pro", "status": "active" } });
    let first = a.send(a.webhook("evt_multi_1", &event)).await;
    assert_eq!(first.body["status"], "processed", "{first:?}");
    let again = b.send(b.webhook("evt_multi_1", &event)).await;
    assert_eq!(again.body["status"], "duplicate", "{again:?}");

    // An Idempotency-Key retried on the other instance replays the response
    // (a fresh tenant: the first one's quota is spent).
    let u = b.tenant("Beta").await;
    let body = json!({ "name": "Pump", "serial": "S-1", "location": "Jeddah" });
    let mut req = request("POST", &u.path("/assets"), Some(&u.token), Some(&body));
    req.headers_mut()
        .insert("idempotency-key", "\"multi-1\"".parse().unwrap());
    let r1 = a.send(req).await;
    assert_eq!(r1.status, StatusCode::CREATED, "{r1:?}");
    let mut req = request("POST", &u.path("/assets"), Some(&u.token), Some(&body));
    req.headers_mut()
        .insert("idempotency-key", "\"multi-1\"".parse().unwrap());
    let r2 = b.send(req).await;
    assert_eq!(r2.status, StatusCode::CREATED, "{r2:?}");
    assert_eq!(
        r1.body["id"], r2.body["id"],
        "the retry created a second asset"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM assets WHERE tenant_id = $1::uuid")
        .bind(&u.id)
        .fetch_one(&db.root)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // A secret encrypted through one instance decrypts through the other
    // (tenant keys in PostgreSQL, not in a data directory).
    let r = a
        .call(
            "POST",
            &u.path("/integrations"),
            Some(&u.token),
            Some(json!({ "name": "ERP", "base_url": "https://erp.example/api", "username": "svc", "oauth_token": "gho_shared5678", "password": "p@ss-w0rd-long" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let path = u.path(&format!("/integrations/{}", r.body["id"].as_str().unwrap()));
    // Read back through each instance's vault (the route answers only a hint).
    let hint = |srv: &Server| {
        let ctx = srv.app.state.verifier.verify(&u.token).unwrap();
        let state = srv.app.state.clone();
        let path = path.clone();
        async move {
            let id = path.rsplit('/').next().unwrap().to_owned();
            let mut tx = state.db.begin(&ctx).await.unwrap();
            let ct: String = tx
                .query_scalar("SELECT oauth_token FROM integrations WHERE id = ?")
                .unwrap()
                .bind(id.clone())
                .fetch_one()
                .await
                .unwrap();
            let tenant = ctx.tenant().to_string();
            let fc =
                hisn_crypto_vault::FieldContext::new(&tenant, "integrations", "oauth_token", &id)
                    .unwrap();
            let ct = hisn_crypto_vault::Ciphertext::from_text(&ct).unwrap();
            let plain = state.vault.decrypt(&fc, &ct).await.unwrap();
            String::from_utf8(plain.as_bytes().to_vec()).unwrap()
        }
    };
    assert_eq!(hint(&a).await, "gho_shared5678");
    assert_eq!(hint(&b).await, "gho_shared5678");

    cleanup_redis(&redis, &prefix).await;
}

/// Delete this test's keys (never FLUSHALL: the Redis is shared).
pub(crate) async fn cleanup_redis(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// A TCP proxy to `redis` that can be cut, to take Redis away from a
/// running server without touching the shared Redis.
struct Cuttable {
    url: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cuttable {
    async fn new(redis: &str) -> Self {
        let target = redis
            .split_once("://")
            .map_or(redis, |(_, r)| r)
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = std::sync::Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                t.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { url, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_follows_the_configured_failure_mode() {
    use hisn_example_server::config::OnRedisFailure;
    let Some(redis) = redis_url("redis_outage_follows_the_configured_failure_mode") else {
        return;
    };
    let prefix = redis_prefix();
    let mut servers = Vec::new();
    for mode in [OnRedisFailure::Closed, OnRedisFailure::Open] {
        let proxy = Cuttable::new(&redis).await;
        let dir = tempfile::tempdir().unwrap();
        let mut c = test_config(dir.path());
        c.redis_url = Some(proxy.url.parse().unwrap());
        c.redis_prefix = prefix.clone();
        c.rate_limit_on_redis_failure = mode;
        let srv = crate::common::server_with(c, dir).await;
        let r = srv.call("GET", "/health", None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{mode:?} before the outage");
        proxy.cut();
        servers.push((mode, srv, proxy));
    }
    for (mode, srv, _proxy) in &servers {
        let r = srv.call("GET", "/health", None, None).await;
        match mode {
            OnRedisFailure::Closed => {
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
                assert!(r.headers.contains_key("retry-after"));
            }
            OnRedisFailure::Open => {
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
                // The limits fell back to this instance; the stores fail closed.
                let t = srv.tenant("Alpha").await;
                let body = json!({ "name": "Pump", "serial": "S-9", "location": "Dammam" });
                let mut req = request("POST", &t.path("/assets"), Some(&t.token), Some(&body));
                req.headers_mut()
                    .insert("idempotency-key", "\"outage-1\"".parse().unwrap());
                let r = srv.send(req).await;
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
                let event = json!({ "type": "subscription.updated", "data": { "tenant_id": t.id, "plan": "pro", "status": "active" } });
                let r = srv.send(srv.webhook("evt_outage_1", &event)).await;
                assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{r:?}");
                let r = srv
                    .call("GET", &t.path("/subscription"), Some(&t.token), None)
                    .await;
                assert_eq!(
                    r.body["plan"], "free",
                    "a delivery was processed without its replay claim"
                );
            }
        }
    }
    cleanup_redis(&redis, &prefix).await;
}

/// An instance whose login budgets are `account_rate` attempts per account
/// (a long period, so nothing refills during the test).
async fn login_instance(
    db: &std::sync::Arc<TestDb>,
    redis: &str,
    prefix: &str,
    keys_from: Option<&std::path::Path>,
    account_rate: u32,
) -> Server {
    instance_with(db, redis, prefix, keys_from, keys_from.is_none(), |c| {
        c.login_account_rate = Rate::new(account_rate, 600).unwrap();
    })
    .await
}

/// Password guesses spread over two instances share one per-account budget
/// (the login guard is on Redis): together they get 5 verified guesses, not
/// 5 each, and then both answer 429 even to the right password. With Redis
/// cut, login fails closed: 503 with `Retry-After`, the same for an existing
/// and an unknown account, and no password is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_across_two_instances_share_one_budget() {
    let test = "login_failures_across_two_instances_share_one_budget";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let a = login_instance(&db, &redis, &prefix, None, 5).await;
    let b = login_instance(&db, &redis, &prefix, Some(a.dir.path()), 5).await;
    // Sign-up logs the owner in once; that success cleared the account's count.
    let t = a.tenant_without_totp("Alpha").await;
    let login = |password: &str| json!({ "tenant": t.id, "email": t.email, "password": password });
    let mut verified = [0_u32; 2];
    let mut limited = [0_u32; 2];
    for i in 0..12 {
        let (n, srv) = if i % 2 == 0 { (0, &a) } else { (1, &b) };
        let r = srv
            .call("POST", "/auth/login", None, Some(login("wrong password!")))
            .await;
        match r.status {
            StatusCode::UNAUTHORIZED => verified[n] += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers.contains_key("retry-after"));
                limited[n] += 1;
            }
            other => panic!("instance {n}: {other}: {r:?}"),
        }
    }
    assert_eq!(verified[0] + verified[1], 5, "{verified:?} {limited:?}");
    assert!(limited.iter().all(|&n| n > 0), "{limited:?}");
    for srv in [&a, &b] {
        let r = srv
            .call(
                "POST",
                "/auth/login",
                None,
                Some(login(crate::common::PASSWORD)),
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    }
    cleanup_redis(&redis, &prefix).await;

    // Redis cut (default failure mode: closed).
    let proxy = Cuttable::new(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path());
    c.redis_url = Some(proxy.url.parse().unwrap());
    c.redis_prefix = prefix.clone();
    let srv = crate::common::server_with(c, dir).await;
    let u = srv.tenant_without_totp("Beta").await;
    proxy.cut();
    let mut answers = Vec::new();
    for email in [u.email.as_str(), "nobody@beta.example"] {
        let body = json!({ "tenant": u.id, "email": email, "password": crate::common::PASSWORD });
        let r = srv.call("POST", "/auth/login", None, Some(body)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
        assert!(r.headers.contains_key("retry-after"));
        answers.push(r.body);
    }
    assert_eq!(answers[0], answers[1]);
    cleanup_redis(&redis, &prefix).await;
}
