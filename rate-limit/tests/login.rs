//! Login-failure protection.

use std::net::IpAddr;
use std::time::Duration;

use hisn_rate_limit::login::LoginGuard;
use hisn_rate_limit::*;

use crate::common::*;

fn guard() -> (
    LoginGuard<std::sync::Arc<ManualClock>>,
    std::sync::Arc<ManualClock>,
) {
    let clock = std::sync::Arc::new(ManualClock::from_micros(T0));
    let g = LoginGuard::with_clock(
        policy(
            "login-account",
            5,
            Duration::from_secs(300),
            KeyKind::Account,
        ),
        policy("login-ip", 20, Duration::from_secs(300), KeyKind::Ip),
        MemoryConfig::default(),
        clock.clone(),
    )
    .unwrap();
    (g, clock)
}

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

#[test]
fn login_failures_block_per_account_without_permanent_lockout() {
    let (g, clock) = guard();
    for _ in 0..5 {
        assert!(g.check("alice", IP).unwrap().is_allowed());
        g.record_failure("alice", IP).unwrap();
    }
    let d = g.check("Alice ", IP).unwrap();
    assert_eq!(d.denied_by(), Some("login-account"));
    // Another account from the same IP is still allowed (IP budget 20).
    assert!(g.check("bob", IP).unwrap().is_allowed());
    // No permanent lockout: one emission interval (60 s) later a try is allowed.
    clock.advance(d.retry_after());
    assert!(g.check("alice", IP).unwrap().is_allowed());
    assert!(d.retry_after() <= Duration::from_secs(60));
}

#[test]
fn login_failures_block_per_ip_across_accounts() {
    let (g, _clock) = guard();
    for i in 0..20 {
        g.record_failure(&format!("user{i}"), IP).unwrap();
    }
    assert_eq!(
        g.check("fresh-account", IP).unwrap().denied_by(),
        Some("login-ip")
    );
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    assert!(g.check("fresh-account", other).unwrap().is_allowed());
}

/// Existing and unknown accounts get identical answers: the guard never sees
/// whether an account exists, so the same sequence of calls yields the same
/// sequence of decisions.
#[test]
fn login_answers_are_identical_for_existing_and_unknown_accounts() {
    let run = |account: &str| {
        let (g, clock) = guard();
        let mut out = Vec::new();
        for _ in 0..12 {
            out.push(g.check(account, IP).unwrap());
            g.record_failure(account, IP).unwrap();
            clock.advance_micros(7_000_000);
        }
        out
    };
    assert_eq!(run("existing@example.com"), run("no-such-user@example.com"));
}

#[test]
fn success_clears_the_account_but_not_the_ip() {
    let (g, _clock) = guard();
    for _ in 0..5 {
        g.record_failure("alice", IP).unwrap();
    }
    g.record_success("alice");
    assert!(g.check("alice", IP).unwrap().is_allowed());
    for i in 0..15 {
        g.record_failure(&format!("u{i}"), IP).unwrap();
    }
    g.record_success("u1");
    assert_eq!(g.check("anyone", IP).unwrap().denied_by(), Some("login-ip"));
}
