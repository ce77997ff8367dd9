//! Login protection shared through Redis: two guards stand for two server
//! instances (separate clients and connections, one Redis, one key prefix).
//! The shared server (HISN_TEST_REDIS_URL) is used under a unique prefix;
//! outage tests use a private `redis-server` and stop only that process.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hisn_rate_limit::breaker::BreakerConfig;
use hisn_rate_limit::login::RedisLoginGuard;
use hisn_rate_limit::redis::{HashTag, RedisConfig};
use hisn_rate_limit::*;
use hisn_test_support::TestRedis;

use crate::common::*;
use crate::redis_backend::{PrivateRedis, free_port};

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn account_policy() -> Policy {
    policy(
        "login-account",
        5,
        Duration::from_secs(300),
        KeyKind::Account,
    )
}

fn ip_policy() -> Policy {
    policy("login-ip", 20, Duration::from_secs(300), KeyKind::Ip)
}

/// A generous deadline: the machine running the tests is loaded, and a
/// missed deadline would be a (correct) fail-closed answer, not a flake.
fn config(prefix: &str) -> RedisConfig {
    RedisConfig::new(prefix)
        .unwrap()
        .deadline(Duration::from_secs(2))
        .unwrap()
}

/// One "instance": its own client (and so its own connection).
async fn instance(r: &TestRedis) -> RedisLoginGuard {
    let client = ::redis::Client::open(r.url()).unwrap();
    RedisLoginGuard::new(client, account_policy(), ip_policy(), config(r.prefix()))
        .await
        .unwrap()
}

/// Attempts on one account alternate between two instances, each from its
/// own IP (so only the account tier can deny): together they admit exactly
/// the account budget of 5, not 5 each, and both then deny.
#[tokio::test]
async fn redis_login_two_instances_share_the_account_budget_exactly() {
    let Some(r) =
        hisn_test_support::redis("redis_login_two_instances_share_the_account_budget_exactly")
            .await
    else {
        return;
    };
    let (a, b) = (instance(&r).await, instance(&r).await);
    let mut admitted = 0;
    for i in 0..12u8 {
        let ip = IpAddr::from([198, 51, 100, i]);
        // Spellings of one account share its budget across instances too.
        let (g, name) = if i % 2 == 0 {
            (&a, "alice")
        } else {
            (&b, " ALICE")
        };
        let d = g.begin(name, ip).await.unwrap();
        if d.is_allowed() {
            admitted += 1;
        } else {
            assert_eq!(d.denied_by(), Some("login-account"), "{d:?}");
            assert!(matches!(d.outcome(), Outcome::Denied { .. }));
        }
    }
    assert_eq!(admitted, 5);
    let fresh = IpAddr::from([203, 0, 113, 1]);
    for g in [&a, &b] {
        let d = g.peek("alice", fresh).await.unwrap();
        assert_eq!(d.denied_by(), Some("login-account"));
        assert!(d.retry_after() <= Duration::from_secs(60));
    }
    // Another account is untouched.
    assert!(b.begin("bob", fresh).await.unwrap().is_allowed());
}

/// Failures from one IP over many accounts, spread over two instances,
/// exhaust the one IP budget of 20; another IP is unaffected.
#[tokio::test]
async fn redis_login_two_instances_share_the_ip_budget_exactly() {
    let Some(r) =
        hisn_test_support::redis("redis_login_two_instances_share_the_ip_budget_exactly").await
    else {
        return;
    };
    let (a, b) = (instance(&r).await, instance(&r).await);
    let mut admitted = 0;
    for i in 0..50 {
        let g = if i % 2 == 0 { &a } else { &b };
        let d = g.record_failure(&format!("user{i}"), IP).await.unwrap();
        if d.is_allowed() {
            admitted += 1;
        } else {
            assert_eq!(d.denied_by(), Some("login-ip"));
        }
    }
    assert_eq!(admitted, 20);
    assert_eq!(
        a.peek("fresh-account", IP).await.unwrap().denied_by(),
        Some("login-ip")
    );
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    assert!(b.peek("fresh-account", other).await.unwrap().is_allowed());
}

/// 64 attempts in flight at once on one account, 32 per instance, none
/// finished: exactly the budget of 5 is admitted (the count comes before the
/// verification, atomically in the script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_login_concurrent_attempts_across_instances_stay_within_the_budget() {
    let Some(r) = hisn_test_support::redis(
        "redis_login_concurrent_attempts_across_instances_stay_within_the_budget",
    )
    .await
    else {
        return;
    };
    let guards = [Arc::new(instance(&r).await), Arc::new(instance(&r).await)];
    let admitted = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for t in 0..64u8 {
        let g = guards[usize::from(t % 2)].clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            let ip = IpAddr::from([10, 0, 0, t]);
            if g.begin("alice", ip).await.unwrap().is_allowed() {
                admitted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 5);
}

/// A correct password on one instance clears the account's failures on every
/// instance, but never the IP's count (one valid account cannot launder an
/// IP's guesses), as in the in-process contract.
#[tokio::test]
async fn redis_login_success_clears_the_account_everywhere_but_not_the_ip() {
    let Some(r) = hisn_test_support::redis(
        "redis_login_success_clears_the_account_everywhere_but_not_the_ip",
    )
    .await
    else {
        return;
    };
    let (a, b) = (instance(&r).await, instance(&r).await);
    for _ in 0..5 {
        assert!(a.begin("alice", IP).await.unwrap().is_allowed());
    }
    assert_eq!(
        b.peek("alice", IP).await.unwrap().denied_by(),
        Some("login-account")
    );
    b.record_success("ALICE").await.unwrap();
    assert!(a.peek("alice", IP).await.unwrap().is_allowed());
    // The IP keeps its 5 counted attempts: 15 more fill its budget of 20.
    for i in 0..15 {
        let g = if i % 2 == 0 { &a } else { &b };
        assert!(g.begin(&format!("u{i}"), IP).await.unwrap().is_allowed());
    }
    a.record_success("u1").await.unwrap();
    assert_eq!(
        b.peek("anyone", IP).await.unwrap().denied_by(),
        Some("login-ip")
    );
    // An empty name has nothing to clear and is no error.
    a.record_success("  ").await.unwrap();
}

/// The guard never sees whether an account exists: the same calls for an
/// existing and an unknown account give the same outcomes and remaining
/// counts (reset times come from the server clock, so they are left out).
#[tokio::test]
async fn redis_login_answers_are_identical_for_existing_and_unknown_accounts() {
    let Some(r) = hisn_test_support::redis(
        "redis_login_answers_are_identical_for_existing_and_unknown_accounts",
    )
    .await
    else {
        return;
    };
    let g = instance(&r).await;
    let mut runs = Vec::new();
    for (account, ip) in [
        ("existing@example.com", IpAddr::from([192, 0, 2, 1])),
        ("no-such-user@example.com", IpAddr::from([192, 0, 2, 2])),
    ] {
        let mut out = Vec::new();
        for _ in 0..8 {
            for d in [
                g.peek(account, ip).await.unwrap(),
                g.begin(account, ip).await.unwrap(),
            ] {
                let remaining: Vec<u32> = d.tiers().iter().map(TierStatus::remaining).collect();
                out.push((d.is_allowed(), d.denied_by(), remaining));
            }
        }
        runs.push(out);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|(allowed, _, _)| !allowed));
}

/// Over-long names (above `KeyValue::MAX_ACCOUNT_LEN`) share one account key
/// across instances, a name at the cap has its own, and Redis holds no login
/// name: keys carry only the hashed account.
#[tokio::test]
async fn redis_login_over_long_names_share_one_budget_and_redis_holds_no_name() {
    let Some(r) = hisn_test_support::redis(
        "redis_login_over_long_names_share_one_budget_and_redis_holds_no_name",
    )
    .await
    else {
        return;
    };
    let (a, b) = (instance(&r).await, instance(&r).await);
    let max = KeyValue::MAX_ACCOUNT_LEN;
    let huge = |c: char, bytes: usize| std::iter::repeat_n(c, bytes).collect::<String>();
    for i in 0..5u8 {
        let g = if i % 2 == 0 { &a } else { &b };
        let name = huge(char::from(b'a' + i), max + 1 + usize::from(i) * 100_000);
        let ip = IpAddr::from([198, 51, 100, i]);
        assert!(g.begin(&name, ip).await.unwrap().is_allowed(), "{i}");
    }
    let fresh = IpAddr::from([203, 0, 113, 9]);
    assert_eq!(
        b.begin(&huge('z', 4 << 20), fresh)
            .await
            .unwrap()
            .denied_by(),
        Some("login-account")
    );
    assert!(a.begin(&huge('q', max), fresh).await.unwrap().is_allowed());
    a.begin("visible-name@example.com", fresh).await.unwrap();

    let mut conn = r.connection().await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}*", r.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    // 5 over-long IPs + the fresh IP; one over-long key, the cap-length and the
    // visible name's account keys.
    assert_eq!(keys.len(), 9, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.contains("visible") && !k.contains("qqqq"))
    );
    assert!(keys.iter().all(|k| k.contains("{tiers}:login-")));
}

/// No permanent lockout: a denied account can try again after `Retry-After`
/// (the Redis server's clock, so the test waits in real time on a short
/// policy), on the other instance.
#[tokio::test]
async fn redis_login_lockout_ends_after_retry_after() {
    let Some(r) = hisn_test_support::redis("redis_login_lockout_ends_after_retry_after").await
    else {
        return;
    };
    let short = || {
        policy(
            "login-account",
            2,
            Duration::from_millis(600),
            KeyKind::Account,
        )
    };
    let mk = || async {
        RedisLoginGuard::new(
            ::redis::Client::open(r.url()).unwrap(),
            short(),
            ip_policy(),
            config(r.prefix()),
        )
        .await
        .unwrap()
    };
    let (a, b) = (mk().await, mk().await);
    assert!(a.begin("carol", IP).await.unwrap().is_allowed());
    assert!(b.begin("carol", IP).await.unwrap().is_allowed());
    let d = a.begin("carol", IP).await.unwrap();
    assert_eq!(d.denied_by(), Some("login-account"));
    assert!(d.retry_after() > Duration::ZERO && d.retry_after() <= Duration::from_millis(300));
    tokio::time::sleep(d.retry_after() + Duration::from_millis(20)).await;
    assert!(b.begin("carol", IP).await.unwrap().is_allowed());
}

/// Redis stopped mid-run, default policies (fail closed): every attempt on
/// both instances is answered `Unavailable` (503, Retry-After ≥ 1 s) for
/// existing and unknown accounts alike, so nothing is verified during the
/// outage; a success cannot be recorded (Err) and lifts nothing. Redis back:
/// the guards decide again.
#[tokio::test]
async fn redis_login_fails_closed_when_redis_is_down() {
    let port = free_port();
    let Some(mut server) = PrivateRedis::start(port) else {
        return;
    };
    let breaker = BreakerConfig::default()
        .cooldown(Duration::from_millis(300))
        .unwrap();
    let cfg = || config("login:").breaker(breaker);
    let a = RedisLoginGuard::new(server.client(), account_policy(), ip_policy(), cfg())
        .await
        .unwrap();
    let b = RedisLoginGuard::new(server.client(), account_policy(), ip_policy(), cfg())
        .await
        .unwrap();
    assert!(a.begin("alice", IP).await.unwrap().is_allowed());

    server.stop();
    for (g, account) in [
        (&a, "alice"),
        (&b, "no-such-user"),
        (&a, "bob"),
        (&b, "alice"),
    ] {
        for d in [
            g.begin(account, IP).await.unwrap(),
            g.record_failure(account, IP).await.unwrap(),
            g.peek(account, IP).await.unwrap(),
        ] {
            assert!(
                matches!(
                    d.outcome(),
                    Outcome::Unavailable {
                        tier: "login-account",
                        ..
                    }
                ),
                "{d:?}"
            );
            assert!(d.retry_after() >= Duration::from_secs(1));
        }
        assert!(matches!(
            g.record_success(account).await,
            Err(Error::Backend(_))
        ));
    }

    let _server = PrivateRedis::start(port).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(a.begin("alice", IP).await.unwrap().is_allowed());
    b.record_success("alice").await.unwrap();
}

/// Fail-open policies chosen explicitly: during the outage each instance
/// counts in its own memory, so each admits its own budget (the documented
/// price: N instances, N budgets).
#[tokio::test]
async fn redis_login_fail_open_counts_per_instance_during_an_outage() {
    let port = free_port();
    let Some(mut server) = PrivateRedis::start(port) else {
        return;
    };
    let open = |p: Policy| p.on_backend_failure(FailureMode::FailOpen);
    let mk = || async {
        RedisLoginGuard::new(
            server.client(),
            open(account_policy()),
            open(ip_policy()),
            config("login:"),
        )
        .await
        .unwrap()
    };
    let (a, b) = (mk().await, mk().await);
    server.stop();
    for g in [&a, &b] {
        let admitted = {
            let mut n = 0;
            for _ in 0..8 {
                n += u32::from(g.begin("alice", IP).await.unwrap().is_allowed());
            }
            n
        };
        assert_eq!(admitted, 5);
        assert_eq!(
            g.peek("alice", IP).await.unwrap().denied_by(),
            Some("login-account")
        );
    }
}

/// Configurations that would split the budgets are refused: per-key hash
/// tags, and policies keyed by the wrong kinds.
#[tokio::test]
async fn redis_login_refuses_configs_that_split_the_budgets() {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{}", free_port())).unwrap();
    for tag in [
        HashTag::ByKind(KeyKind::Account),
        HashTag::ByKind(KeyKind::Ip),
    ] {
        let err = RedisLoginGuard::new(
            client.clone(),
            account_policy(),
            ip_policy(),
            config("login:").hash_tag(tag),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    }
    let err = RedisLoginGuard::new(client, ip_policy(), account_policy(), config("login:"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
}
