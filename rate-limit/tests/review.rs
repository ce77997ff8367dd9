//! Outside-review attacks, one class per test: tests that found a bug carry a
//! paragraph on the root cause; the others pin behaviour that held.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hisn_rate_limit::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use hisn_rate_limit::*;

use crate::common::*;

fn clocked(policies: Vec<Policy>, at: u64) -> (MemoryLimiter<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::from_micros(at));
    let l = MemoryLimiter::with_clock(
        Tiers::new(policies).unwrap(),
        MemoryConfig::default(),
        clock.clone(),
    );
    (l, clock)
}

/// Over-admission through overflow of the GCRA arithmetic.
///
/// Root cause: `gcra::decide` computed the new TAT with `saturating_add`. With
/// a clock reading near `u64::MAX` µs (a custom `Clock`, or a `SystemTime`
/// far in the future, which `unix_micros` saturates), the new TAT saturated at
/// `u64::MAX`, so it stopped growing: every later request saw the same TAT,
/// the same `allow_at <= now`, and was admitted — unlimited admission. A TAT
/// that cannot be represented now denies (fail closed) on both the one-tier
/// and the multi-tier path.
#[test]
fn over_admission_gcra_overflow_near_the_end_of_time_never_admits_past_burst() {
    for at in [
        u64::MAX,
        u64::MAX - 1,
        u64::MAX - 2_000_000,
        u64::MAX - 3_500_000,
    ] {
        for tiers in [1usize, 2] {
            let mut ps = vec![
                policy("session", 3, Duration::from_secs(1), KeyKind::Session)
                    .with_burst(nz(3))
                    .unwrap(),
            ];
            if tiers == 2 {
                ps.push(policy(
                    "tenant",
                    1000,
                    Duration::from_secs(1),
                    KeyKind::Tenant,
                ));
            }
            let (l, _clock) = clocked(ps, at);
            let keys = session_tenant("s", "t");
            let admitted = (0..50)
                .filter(|_| l.check(&keys).unwrap().is_allowed())
                .count();
            assert!(
                admitted <= 3,
                "at {at}, {tiers} tiers: admitted {admitted} > burst 3"
            );
            // A denial near the end of time still has a positive wait.
            let d = l.check(&keys).unwrap();
            assert!(!d.is_allowed() && d.retry_after() > Duration::ZERO);
        }
    }
}

/// Weights at, above and far above the burst, on fresh and used keys.
#[test]
fn over_admission_weights_at_and_above_burst() {
    let (l, _clock) = limiter(vec![
        policy("ai", 500, Duration::from_secs(86_400), KeyKind::Tenant)
            .with_burst(nz(50))
            .unwrap(),
    ]);
    let k = RequestKeys::new().with(KeyKind::Tenant, KeyValue::text("t").unwrap());
    for n in [51, 1_000, u32::MAX] {
        assert!(matches!(
            l.check_n(&k, nz(n)),
            Err(Error::WeightExceedsBurst { .. })
        ));
    }
    assert!(l.check_n(&k, nz(50)).unwrap().is_allowed());
    // The burst is spent: neither the full weight nor one unit passes, and
    // the denials consumed nothing (the wait does not grow).
    let w1 = l.check_n(&k, nz(50)).unwrap().retry_after();
    let w2 = l.check_n(&k, nz(50)).unwrap().retry_after();
    assert!(w1 > Duration::ZERO && w1 == w2);
    assert!(!l.check(&k).unwrap().is_allowed());
}

/// Tiers under concurrency: many threads, one tenant, several sessions and an
/// IP tier; the admitted count is exactly the tightest applicable budget, and
/// denials by one tier consume nothing on the others.
#[test]
fn over_admission_tiers_all_or_nothing_under_concurrency() {
    let (l, _clock) = limiter(vec![
        policy("session", 10, Duration::from_secs(60), KeyKind::Session),
        policy("tenant", 25, Duration::from_secs(60), KeyKind::Tenant),
        policy("ip", 1_000, Duration::from_secs(60), KeyKind::Ip),
    ]);
    let per_session: Vec<AtomicU32> = (0..5).map(|_| AtomicU32::new(0)).collect();
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let (l, per_session) = (&l, &per_session);
            s.spawn(move || {
                for i in 0..200u32 {
                    let sid = usize::try_from((t + i) % 5).unwrap();
                    let keys = session_tenant(&format!("s{sid}"), "t")
                        .with(KeyKind::Ip, KeyValue::ip(IpAddr::from([192, 0, 2, 1]), 64));
                    if l.check(&keys).unwrap().is_allowed() {
                        per_session[sid].fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let counts: Vec<u32> = per_session
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .collect();
    assert_eq!(counts.iter().sum::<u32>(), 25, "{counts:?}");
    assert!(counts.iter().all(|&c| c <= 10), "{counts:?}");
    // 1600 − 25 denials consumed nothing on the IP tier: 975 remain.
    let ip_only =
        RequestKeys::new().with(KeyKind::Ip, KeyValue::ip(IpAddr::from([192, 0, 2, 1]), 64));
    let d = l.peek_n(&ip_only, nz(975)).unwrap();
    assert!(d.is_allowed(), "{d:?}");
    assert!(!l.peek_n(&ip_only, nz(976)).unwrap().is_allowed());
}

/// Strict mode against a greedy weighted client that retries exactly at
/// `retry_after`: at most N units in every window of length T, including
/// windows that start and end on admission instants.
#[test]
fn over_admission_strict_mode_at_window_boundaries() {
    let period = Duration::from_secs(1);
    let p = policy("strict", 10, period, KeyKind::Session)
        .with_burst(nz(4))
        .unwrap()
        .strict()
        .unwrap();
    let (l, clock) = limiter(vec![p]);
    let k = session("s");
    let mut admitted: Vec<(u64, u64)> = Vec::new();
    for i in 0..400u32 {
        let n = 1 + i % 3;
        let d = l.check_n(&k, nz(n)).unwrap();
        if d.is_allowed() {
            admitted.push((clock.micros(), u64::from(n)));
        } else {
            let wait = u64::try_from(d.retry_after().as_micros()).unwrap();
            clock.set_micros(clock.micros() + wait);
        }
    }
    let t = u64::try_from(period.as_micros()).unwrap();
    for &(s, _) in &admitted {
        let units: u64 = admitted
            .iter()
            .filter(|&&(a, _)| a >= s && a < s + t)
            .map(|&(_, n)| n)
            .sum();
        assert!(units <= 10, "{units} units in [{s}, {s}+T)");
    }
}

/// Memory: unique-key floods through the IP extractor path (many /64s), long
/// account names and long custom keys stay under the cap, and keys that
/// already hold state keep working while the store is full (the cap denies
/// only *new* keys, which is documented as a DoS lever).
#[test]
fn memory_unique_key_floods_stay_capped_and_existing_keys_keep_working() {
    let clock = Arc::new(ManualClock::from_micros(T0));
    let l = MemoryLimiter::with_clock(
        Tiers::new(vec![
            policy("ip", 5, Duration::from_secs(60), KeyKind::Ip),
            policy("acct", 5, Duration::from_secs(60), KeyKind::Account),
            policy(
                "model",
                5,
                Duration::from_secs(60),
                KeyKind::Custom("model"),
            ),
        ])
        .unwrap(),
        MemoryConfig::new(256, 4).unwrap(),
        clock.clone(),
    );
    let legit =
        RequestKeys::new().with(KeyKind::Ip, KeyValue::ip(IpAddr::from([192, 0, 2, 9]), 64));
    assert!(l.check(&legit).unwrap().is_allowed());
    // Longer than the 32-byte inline form, so every custom key takes the
    // hashed path (account keys always do). Longer names cost no more: a key
    // is a fixed-size value whatever the name's length (pinned below). The
    // names were 10,000 bytes; Unicode-normalising 20,000 of those in a debug
    // build took ~300 s and tested nothing a 64-byte name does not.
    let long = "x".repeat(64);
    let huge = "x".repeat(10_000);
    assert_eq!(
        KeyValue::text(&huge).unwrap(),
        KeyValue::text(&huge).unwrap(),
        "a 10,000-byte key is usable"
    );
    assert_eq!(
        std::mem::size_of_val(&KeyValue::account(&huge).unwrap()),
        std::mem::size_of_val(&KeyValue::text("x").unwrap()),
        "a key's footprint does not depend on the name's length"
    );
    for i in 0..20_000u128 {
        let v6 = IpAddr::from(std::net::Ipv6Addr::from(
            (0x2001_0db8_u128 << 96) | (i << 64) | 1,
        ));
        let keys = RequestKeys::new()
            .with(KeyKind::Ip, KeyValue::ip(v6, 64))
            .with(
                KeyKind::Account,
                KeyValue::account(&format!("{long}{i}")).unwrap(),
            )
            .with(
                KeyKind::Custom("model"),
                KeyValue::text(&format!("{long}{i}")).unwrap(),
            );
        let _ = l.check(&keys).unwrap();
    }
    assert!(l.key_count() <= 3 * 256, "{}", l.key_count());
    assert!(
        l.allocated_slots() <= 3 * 2 * 512,
        "{}",
        l.allocated_slots()
    );
    // The legitimate key that held state before the flood is still served.
    assert!(l.check(&legit).unwrap().is_allowed());
    // Once the flood's keys go idle, new keys are admitted again.
    clock.set_micros(T0 + 60_000_000);
    let fresh = RequestKeys::new().with(
        KeyKind::Ip,
        KeyValue::ip(IpAddr::from([198, 51, 100, 1]), 64),
    );
    assert!(l.check(&fresh).unwrap().is_allowed());
}

/// Header spoofing: IPv4-mapped IPv6 spellings of one address share its
/// budget, and an attacker cannot leave its own budget by switching between
/// the two spellings.
#[test]
fn header_spoofing_ipv4_mapped_ipv6_shares_the_ipv4_budget() {
    let (l, _clock) = limiter(vec![policy("ip", 3, Duration::from_secs(60), KeyKind::Ip)]);
    let spellings: [IpAddr; 3] = [
        "203.0.113.5".parse().unwrap(),
        "::ffff:203.0.113.5".parse().unwrap(),
        "::ffff:cb00:7105".parse().unwrap(),
    ];
    let admitted = (0..12)
        .filter(|i| {
            let k = RequestKeys::new().with(KeyKind::Ip, KeyValue::ip(spellings[i % 3], 64));
            l.check(&k).unwrap().is_allowed()
        })
        .count();
    assert_eq!(admitted, 3);
}

/// Circuit breaker: under concurrency, half-open lets exactly the configured
/// trials through, and nothing at all while open.
#[test]
fn breaker_half_open_trials_exact_under_concurrency() {
    let clock = Arc::new(ManualClock::from_micros(T0));
    let cfg = BreakerConfig::default()
        .cooldown(Duration::from_secs(1))
        .unwrap()
        .half_open_trials(nz(3));
    let b = CircuitBreaker::with_clock("dep", cfg, clock.clone());
    for _ in 0..5 {
        b.try_acquire().unwrap().failure();
    }
    assert_eq!(b.state(), BreakerState::Open);
    let granted = AtomicU32::new(0);
    let run = |expect_open: bool| {
        let permits = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if let Ok(p) = b.try_acquire() {
                            granted.fetch_add(1, Ordering::SeqCst);
                            permits.lock().unwrap().push(p);
                        }
                    }
                });
            }
        });
        if expect_open {
            assert_eq!(granted.load(Ordering::SeqCst), 0);
        }
        permits.into_inner().unwrap()
    };
    assert!(run(true).is_empty());
    clock.set_micros(T0 + 1_000_000);
    let permits = run(false);
    assert_eq!(granted.load(Ordering::SeqCst), 3);
    assert_eq!(permits.len(), 3);
    for p in permits {
        p.success();
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

/// Header spoofing: `X-Forwarded-For` parsing differentials behind a trusted
/// proxy. Whatever the sender writes (extra header lines, spaces, ports,
/// brackets, obfuscated identifiers, thousands of entries, a `Forwarded`
/// header), the client is the address the nearest trusted proxy appended, or
/// a trusted hop — never an address of the sender's choosing.
#[cfg(feature = "tower")]
#[test]
fn header_spoofing_forwarded_for_differentials() {
    use hisn_rate_limit::http::{KeyExtractor, PeerAddr, TrustedProxies};
    let ex = KeyExtractor::new()
        .trusted_proxies(TrustedProxies::new(["10.0.0.0/8", "2001:db8:ffff::/48"]).unwrap());
    let client = |peer: &str, lines: &[&str], forwarded: Option<&str>| {
        let mut b = ::http::Request::builder();
        for l in lines {
            b = b.header("x-forwarded-for", *l);
        }
        if let Some(f) = forwarded {
            b = b.header("forwarded", f);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut()
            .insert(PeerAddr(std::net::SocketAddr::new(
                peer.parse().unwrap(),
                443,
            )));
        ex.client_ip(&r).unwrap()
    };
    let real: IpAddr = "203.0.113.5".parse().unwrap();
    let via = "10.0.0.1";
    // The proxy appends the real client to the sender's header, or in a new line.
    let cases: &[&[&str]] = &[
        &["9.9.9.9, 203.0.113.5"],
        &["9.9.9.9", "8.8.8.8, 203.0.113.5"],
        &["9.9.9.9, 10.0.0.3", "203.0.113.5"],
        &["10.0.0.7,", "203.0.113.5"],
        &["_hidden, unknown, \"1.1.1.1\", 203.0.113.5"],
        &[" \t203.0.113.5 \t"],
        &["203.0.113.5:4711"],
        &["1.1.1.1, 203.0.113.5, 10.0.0.2:80, 10.0.0.3"],
        &["::ffff:203.0.113.5"],
        &["[::ffff:203.0.113.5]:80"],
    ];
    for lines in cases {
        let got = client(via, lines, None);
        assert_eq!(
            KeyValue::ip(got, 64),
            KeyValue::ip(real, 64),
            "{lines:?} gave {got}"
        );
    }
    let v6: IpAddr = "2001:db8:1:2::5".parse().unwrap();
    for lines in [
        &["[2001:db8:1:2::5]:443"][..],
        &["[2001:db8:1:2::5]"],
        &["2001:db8:1:2::5, 2001:db8:ffff::1"],
    ] {
        assert_eq!(client("2001:db8:ffff::9", lines, None), v6, "{lines:?}");
    }
    // Garbage where the proxy's entry should be: the walk stops at a trusted
    // hop (the request counts against the proxy), never at 1.1.1.1.
    for bad in [
        "1.1.1.1, fe80::1%eth0",
        "1.1.1.1, 0203.0.113.5",
        "1.1.1.1, 203.0.113.5.",
        "1.1.1.1, ",
        "1.1.1.1, _obf",
    ] {
        let got = client(via, &[bad], None);
        assert!(
            TrustedProxies::new(["10.0.0.0/8"]).unwrap().contains(got),
            "{bad:?} gave {got}"
        );
    }
    // Thousands of entries: the real client still wins; a chain of trusted
    // hops longer than the walk ends at a trusted hop, not at the sender's pick.
    let flood = format!("{}203.0.113.5", "1.1.1.1, ".repeat(5_000));
    assert_eq!(client(via, &[&flood], None), real);
    let deep = format!("1.1.1.1{}", ", 10.0.0.9".repeat(5_000));
    assert_eq!(
        client(via, &[&deep], None),
        "10.0.0.9".parse::<IpAddr>().unwrap()
    );
    // `Forwarded` is ignored; from an untrusted peer nothing is believed.
    assert_eq!(
        client(via, &[], Some("for=1.1.1.1")),
        via.parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        client("198.51.100.1", &["203.0.113.5"], Some("for=1.1.1.1")),
        "198.51.100.1".parse::<IpAddr>().unwrap()
    );
}

/// Redis key injection: attacker-chosen key values (hash-tag braces, binary,
/// very long) never reach a key name: every name has exactly one hash tag,
/// bounded length and a TTL, and distinct values stay distinct keys.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_key_injection_through_attacker_chosen_keys() {
    use hisn_rate_limit::redis::{HashTag, RedisConfig, RedisLimiter};
    let Some(r) =
        hisn_test_support::redis("redis_key_injection_through_attacker_chosen_keys").await
    else {
        return;
    };
    let tiers = Tiers::new(vec![
        policy("session", 2, Duration::from_secs(5), KeyKind::Session),
        policy("tenant", 100, Duration::from_secs(60), KeyKind::Tenant),
    ])
    .unwrap();
    let cfg = RedisConfig::new(r.prefix())
        .unwrap()
        .hash_tag(HashTag::ByKind(KeyKind::Tenant));
    let limiter = RedisLimiter::new(r.client(), tiers, cfg).await;
    let long = "}{".repeat(50_000);
    let hostile: [&[u8]; 6] = [
        b"{victim}",
        b"}:session:{",
        b"a}{b",
        b"\0\xff\r\n*3\r\n$3\r\nDEL",
        long.as_bytes(),
        b"{}",
    ];
    for v in hostile {
        let keys = RequestKeys::new()
            .with(KeyKind::Session, KeyValue::bytes(v).unwrap())
            .with(KeyKind::Tenant, KeyValue::bytes(v).unwrap());
        assert!(limiter.check(&keys).await.unwrap().is_allowed());
        assert!(limiter.check(&keys).await.unwrap().is_allowed());
        // The third is denied: the value's own budget, not another's.
        assert_eq!(
            limiter.check(&keys).await.unwrap().denied_by(),
            Some("session")
        );
    }
    let mut conn = r.connection().await;
    let names: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}*", r.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(names.len(), 2 * hostile.len(), "{names:?}");
    for n in &names {
        let rest = &n[r.prefix().len()..];
        assert_eq!(rest.matches('{').count(), 1, "{n}");
        assert_eq!(rest.matches('}').count(), 1, "{n}");
        assert!(
            rest.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"{}:._-".contains(&b)),
            "{n}"
        );
        assert!(n.len() <= r.prefix().len() + 200, "{n}");
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(n)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{n}: {ttl}");
    }
}
