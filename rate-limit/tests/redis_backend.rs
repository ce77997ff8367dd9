//! Redis backend against real Redis. The shared server (HISN_TEST_REDIS_URL)
//! is only used under a unique key prefix; outage and restart tests start a
//! private `redis-server` on a free loopback port and stop only that process.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hisn_rate_limit::breaker::{BreakerConfig, BreakerState};
use hisn_rate_limit::redis::{DEFAULT_DEADLINE, HashTag, RedisConfig, RedisLimiter};
use hisn_rate_limit::*;

use crate::common::*;

/// A redis-server child process on a private port, killed on drop.
pub(crate) struct PrivateRedis {
    child: Option<Child>,
    port: u16,
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateRedis {
    pub(crate) fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if !hisn_test_support::services_required() => {
                eprintln!("skipping: redis-server not runnable ({e})");
                return None;
            }
            Err(e) => panic!("redis-server not runnable: {e}"),
        };
        let me = PrivateRedis {
            child: Some(child),
            port,
        };
        let client = me.client();
        for _ in 0..200 {
            if let Ok(mut c) = client.get_connection()
                && ::redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Some(me);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("private redis-server did not start on port {port}");
    }

    pub(crate) fn client(&self) -> ::redis::Client {
        ::redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap()
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Open a `MONITOR` connection: every command the server runs, one line
    /// each; commands run by a script are marked `lua`.
    fn monitor(&self) -> std::net::TcpStream {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(b"MONITOR\r\n").unwrap();
        let mut ok = [0u8; 5];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        s
    }
}

/// Commands seen on a MONITOR stream until it is quiet: (from clients, from scripts).
fn drain_monitor(mut s: std::net::TcpStream) -> (usize, usize) {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&all);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('+')).collect();
    let script = lines.iter().filter(|l| l.contains(" lua] ")).count();
    (lines.len() - script, script)
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tiers() -> Tiers {
    Tiers::new(vec![
        policy("session", 10, Duration::from_secs(5), KeyKind::Session),
        policy("tenant", 25, Duration::from_secs(60), KeyKind::Tenant)
            .with_burst(nz(30))
            .unwrap(),
        policy("strict-ip", 6, Duration::from_secs(2), KeyKind::Ip)
            .with_burst(nz(2))
            .and_then(Policy::strict)
            .unwrap(),
    ])
    .unwrap()
}

/// The Lua script and the in-process limiter make identical decisions
/// (outcome, denying tier, wait, remaining and reset of every tier) on the same
/// trace, with the time injected into the script.
#[tokio::test]
async fn redis_script_and_in_process_decide_identically() {
    let Some(r) = hisn_test_support::redis("redis_script_and_in_process_decide_identically").await
    else {
        return;
    };
    let redis = RedisLimiter::new(
        r.client(),
        tiers(),
        RedisConfig::new(r.prefix())
            .unwrap()
            .deadline(Duration::from_secs(2))
            .unwrap(),
    )
    .await;
    let clock = Arc::new(ManualClock::from_micros(T0));
    let memory = MemoryLimiter::with_clock(tiers(), MemoryConfig::default(), clock.clone());
    // A deterministic pseudo-random trace (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut denied = 0;
    for _ in 0..600 {
        clock.advance_micros(next() % 400_000);
        let r = next();
        let mut keys = RequestKeys::new().with(
            KeyKind::Session,
            KeyValue::text(&format!("s{}", r % 3)).unwrap(),
        );
        if r & 8 != 0 {
            keys.set(KeyKind::Tenant, KeyValue::text("t").unwrap());
        }
        if r & 16 != 0 {
            keys.set(
                KeyKind::Ip,
                KeyValue::ip([10, 0, 0, u8::try_from(r % 2).unwrap()].into(), 64),
            );
        }
        let n = nz(u32::try_from(1 + (r >> 8) % 2).unwrap());
        let ours = memory.check_n(&keys, n).unwrap();
        let theirs = redis.check_n_at(&keys, n, clock.now()).await.unwrap();
        assert_eq!(ours, theirs);
        denied += usize::from(!ours.is_allowed());
    }
    assert!(denied > 50, "the trace must exercise denials ({denied})");
}

/// 4 limiter instances (separate clients) × 64 tasks × 50 calls against a
/// limit of 100 admit exactly 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_admit_exactly_the_limit() {
    let Some(r) = hisn_test_support::redis("four_instances_admit_exactly_the_limit").await else {
        return;
    };
    let t = Tiers::new(vec![policy(
        "tenant",
        100,
        Duration::from_secs(3600),
        KeyKind::Tenant,
    )])
    .unwrap();
    let admitted = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = ::redis::Client::open(r.url()).unwrap();
        let cfg = RedisConfig::new(r.prefix())
            .unwrap()
            .deadline(Duration::from_secs(5))
            .unwrap();
        let limiter = Arc::new(RedisLimiter::new(client, t.clone(), cfg).await);
        for _ in 0..64 {
            let (limiter, admitted) = (limiter.clone(), admitted.clone());
            tasks.push(tokio::spawn(async move {
                let keys =
                    RequestKeys::new().with(KeyKind::Tenant, KeyValue::text("shared").unwrap());
                for _ in 0..50 {
                    let d = limiter.check(&keys).await.unwrap();
                    assert!(!matches!(d.outcome(), Outcome::Unavailable { .. }));
                    if d.is_allowed() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 100);
}

/// Every key has a TTL and the keys of one decision share a hash tag (one slot).
#[tokio::test]
async fn keys_have_a_ttl_and_share_one_hash_tag() {
    let Some(r) = hisn_test_support::redis("keys_have_a_ttl_and_share_one_hash_tag").await else {
        return;
    };
    let cfg = RedisConfig::new(r.prefix())
        .unwrap()
        .hash_tag(HashTag::ByKind(KeyKind::Tenant));
    let limiter = RedisLimiter::new(r.client(), tiers(), cfg).await;
    let keys =
        session_tenant("s", "acme").with(KeyKind::Ip, KeyValue::ip([192, 0, 2, 1].into(), 64));
    assert!(limiter.check(&keys).await.unwrap().is_allowed());
    assert!(matches!(
        limiter.check(&session("s")).await,
        Err(Error::InvalidKey(_))
    ));
    // A weight above a tier's burst is refused before any Redis command.
    assert!(matches!(
        limiter.check_n(&keys, nz(11)).await,
        Err(Error::WeightExceedsBurst {
            tier: "session",
            weight: 11,
            burst: 10
        })
    ));
    let mut conn = r.connection().await;
    let names: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}*", r.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(names.len(), 3);
    let tags: Vec<&str> = names
        .iter()
        .map(|n| &n[n.find('{').unwrap()..=n.find('}').unwrap()])
        .collect();
    assert!(tags.iter().all(|t| *t == tags[0]), "{names:?}");
    for n in &names {
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(n)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{n}: {ttl}");
    }
}

/// One Redis command per decision (EVALSHA), for any number of tiers.
#[tokio::test]
async fn one_redis_command_per_decision() {
    let Some(server) = PrivateRedis::start(free_port()) else {
        return;
    };
    let limiter =
        RedisLimiter::new(server.client(), tiers(), RedisConfig::new("c:").unwrap()).await;
    let keys = session_tenant("s", "t").with(KeyKind::Ip, KeyValue::ip([192, 0, 2, 1].into(), 64));
    limiter.check(&keys).await.unwrap(); // loads the script (NOSCRIPT → SCRIPT LOAD)
    let monitor = server.monitor();
    for _ in 0..40 {
        limiter.check(&keys).await.unwrap();
    }
    let (client_commands, script_commands) = drain_monitor(monitor);
    assert_eq!(client_commands, 40, "exactly one command per decision");
    assert!(
        script_commands >= 40 * 3,
        "the script did the work: {script_commands}"
    );
}

/// Redis stopped mid-run: fail-open tiers admit (in-process fallback),
/// fail-closed tiers answer Unavailable, the breaker opens and a dead Redis
/// then costs no latency; Redis restarted with an empty script cache:
/// decisions resume within one half-open interval.
#[tokio::test]
async fn outage_fails_per_tier_mode_and_restart_resumes() {
    let port = free_port();
    let Some(mut server) = PrivateRedis::start(port) else {
        return;
    };
    let tiers = Tiers::new(vec![
        policy("session", 1000, Duration::from_secs(60), KeyKind::Session)
            .on_backend_failure(FailureMode::FailOpen),
        policy("tenant", 1000, Duration::from_secs(60), KeyKind::Tenant),
    ])
    .unwrap();
    let cfg = RedisConfig::new("o:").unwrap().breaker(
        BreakerConfig::default()
            .cooldown(Duration::from_millis(300))
            .unwrap(),
    );
    assert_eq!(DEFAULT_DEADLINE, Duration::from_millis(50));
    let limiter = RedisLimiter::new(server.client(), tiers, cfg).await;
    let open_only = session("s");
    let with_closed = session_tenant("s", "t");
    assert!(limiter.check(&with_closed).await.unwrap().is_allowed());

    server.stop();
    let mut unavailable = 0;
    for _ in 0..10 {
        let d = limiter.check(&with_closed).await.unwrap();
        assert!(
            matches!(d.outcome(), Outcome::Unavailable { tier: "tenant", .. }),
            "{d:?}"
        );
        assert!(d.retry_after() >= Duration::from_secs(1));
        unavailable += 1;
    }
    assert_eq!(unavailable, 10);
    assert_eq!(limiter.breaker().state(), BreakerState::Open);
    let start = Instant::now();
    for _ in 0..100 {
        assert!(
            limiter.check(&open_only).await.unwrap().is_allowed(),
            "fail-open tier falls back"
        );
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "open breaker: no dial, no wait"
    );

    // Restart on the same port: a fresh server with an empty script cache.
    let _server = PrivateRedis::start(port).unwrap();
    tokio::time::sleep(Duration::from_millis(320)).await;
    let d = limiter.check(&with_closed).await.unwrap();
    assert!(
        d.is_allowed(),
        "first trial after the cool-down reaches Redis: {d:?}"
    );
    assert_eq!(limiter.breaker().state(), BreakerState::Closed);
    let mut c = _server.client().get_connection().unwrap();
    let n: u64 = ::redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 2, "the decision was made in Redis");
}

/// A Redis that accepts connections but never answers costs at most the
/// deadline per call, and only until the breaker opens.
#[tokio::test]
async fn unresponsive_redis_costs_at_most_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold connections without answering, until the test is done
    // (at most 30 s; it used to hold for a fixed 5 s, the test's whole run time).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held_until = done.clone();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end && !held_until.load(Ordering::SeqCst) {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let t = Tiers::new(vec![policy(
        "tenant",
        10,
        Duration::from_secs(1),
        KeyKind::Tenant,
    )])
    .unwrap();
    let limiter = RedisLimiter::new(client, t, RedisConfig::new("b:").unwrap()).await;
    let keys = RequestKeys::new().with(KeyKind::Tenant, KeyValue::text("t").unwrap());
    for _ in 0..5 {
        let start = Instant::now();
        let d = limiter.check(&keys).await.unwrap();
        assert!(matches!(d.outcome(), Outcome::Unavailable { .. }));
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }
    assert_eq!(limiter.breaker().state(), BreakerState::Open);
    let start = Instant::now();
    limiter.check(&keys).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(5));
    done.store(true, Ordering::SeqCst);
    holder.join().unwrap();
}
