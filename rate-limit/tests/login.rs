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
        assert!(g.begin("alice", IP).unwrap().is_allowed());
    }
    let d = g.peek("Alice ", IP).unwrap();
    assert_eq!(d.denied_by(), Some("login-account"));
    // Another account from the same IP is still allowed (IP budget 20).
    assert!(g.peek("bob", IP).unwrap().is_allowed());
    // No permanent lockout: one emission interval (60 s) later a try is allowed.
    clock.advance(d.retry_after());
    assert!(g.peek("alice", IP).unwrap().is_allowed());
    assert!(d.retry_after() <= Duration::from_secs(60));
}

#[test]
fn login_failures_block_per_ip_across_accounts() {
    let (g, _clock) = guard();
    for i in 0..20 {
        g.record_failure(&format!("user{i}"), IP).unwrap();
    }
    assert_eq!(
        g.peek("fresh-account", IP).unwrap().denied_by(),
        Some("login-ip")
    );
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    assert!(g.peek("fresh-account", other).unwrap().is_allowed());
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
            out.push(g.peek(account, IP).unwrap());
            out.push(g.begin(account, IP).unwrap());
            clock.advance_micros(7_000_000);
        }
        out
    };
    assert_eq!(run("existing@example.com"), run("no-such-user@example.com"));
}

/// Account-name normalisation costs time in proportion to the name, and the
/// name is the attacker's choice. Root cause: `KeyValue::account` normalised
/// (NFD, case folding, NFKD, NFKC) whatever it was given, so one login
/// attempt with a multi-megabyte name cost seconds of CPU. Names over
/// `KeyValue::MAX_ACCOUNT_LEN` bytes now skip normalisation and share one
/// account budget: they neither escape the account tier nor get a fresh
/// budget per spelling, and existing and unknown names still answer alike.
#[test]
fn over_long_account_names_cost_nothing_to_key_and_share_one_budget() {
    let (g, _clock) = guard();
    let max = KeyValue::MAX_ACCOUNT_LEN;
    let huge = |c: char, bytes: usize| std::iter::repeat_n(c, bytes).collect::<String>();
    // Five failures with five different over-long names, each from its own
    // IP (so only the account tier can deny), exhaust the shared budget.
    for i in 0..5u8 {
        let ip = IpAddr::from([198, 51, 100, i]);
        let name = huge(char::from(b'a' + i), max + 1 + usize::from(i) * 1_000_000);
        assert!(g.begin(&name, ip).unwrap().is_allowed(), "{i}");
    }
    let fresh = IpAddr::from([203, 0, 113, 9]);
    assert_eq!(
        g.begin(&huge('z', 4 << 20), fresh).unwrap().denied_by(),
        Some("login-account")
    );
    // A name at the cap is a normal account with its own budget.
    assert!(g.begin(&huge('q', max), fresh).unwrap().is_allowed());

    // Existing or not, over-long names get the same answers.
    let run = |account: &str| {
        let (g, clock) = guard();
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(g.begin(account, IP).unwrap());
            clock.advance_micros(7_000_000);
        }
        out
    };
    let existing = format!("{}@example.com", huge('e', max));
    let unknown = format!("{}@example.com", huge('u', max));
    assert_eq!(run(&existing), run(&unknown));
}

#[test]
fn success_clears_the_account_but_not_the_ip() {
    let (g, _clock) = guard();
    for _ in 0..5 {
        g.record_failure("alice", IP).unwrap();
    }
    g.record_success("alice");
    assert!(g.peek("alice", IP).unwrap().is_allowed());
    for i in 0..15 {
        g.record_failure(&format!("u{i}"), IP).unwrap();
    }
    g.record_success("u1");
    assert_eq!(g.peek("anyone", IP).unwrap().denied_by(), Some("login-ip"));
}

/// Login protection: spellings of one account name that an account lookup
/// may treat as the same account share one failure budget.
///
/// Root cause: `KeyValue::account` normalised with `trim` + `to_lowercase`
/// only, so compatibility forms (full-width letters, ligatures, the `ſ` long
/// s, `ß`/`ss`, combining vs precomposed accents) gave distinct keys. An
/// application whose lookup is case- or compatibility-insensitive (a
/// case-insensitive collation, or this SDK's own caseless blind index)
/// resolves all of them to one account, so every spelling was a fresh
/// per-account budget: the per-account brute-force limit could be multiplied
/// at will. Account keys now use the Unicode compatibility caseless form
/// (NFKD, full case folding, NFKC), which is at least as coarse as those lookups.
#[test]
fn login_account_spellings_share_one_budget() {
    let guard = LoginGuard::with_clock(
        policy("acct", 3, Duration::from_secs(900), KeyKind::Account),
        policy("ip", 1_000, Duration::from_secs(900), KeyKind::Ip),
        MemoryConfig::default(),
        std::sync::Arc::new(ManualClock::from_micros(T0)),
    )
    .unwrap();
    let groups: [&[&str]; 4] = [
        &[
            "alice@example.com",
            "ＡＬＩＣＥ@example.com",
            "ALICE@EXAMPLE.COM",
            " alice@example.com\u{3000}",
        ],
        &["strasse", "STRASSE", "straße", "STRAẞE"],
        &["josé", "jose\u{301}", "JOSÉ", "JOSE\u{301}"],
        &["fiona.sam", "\u{FB01}ona.\u{17F}am", "FIONA.SAM"],
    ];
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    for group in groups {
        let target = group[0];
        for name in &group[1..] {
            assert_eq!(
                KeyValue::account(name).unwrap(),
                KeyValue::account(target).unwrap(),
                "{name:?} vs {target:?}"
            );
        }
        let mut failures = 0;
        for name in group.iter().cycle().take(20) {
            if guard.record_failure(name, ip).unwrap().is_allowed() {
                failures += 1;
            }
        }
        assert_eq!(failures, 3, "{group:?}");
    }
    // Distinct accounts stay distinct.
    assert_ne!(
        KeyValue::account("alice").unwrap(),
        KeyValue::account("alicf").unwrap()
    );
}

/// Over-admission through the check-then-record race of login protection.
///
/// Root cause: the guard offered a read-only `check` before the password hash
/// and `record_failure` after it. Every attempt that arrives while earlier
/// hashes are still running passes `check`, because no failure has been
/// recorded yet: with a 100 ms hash, an attacker sending a thousand guesses at
/// once had all of them verified against a budget of five. `begin` now counts
/// the attempt before verification, in the same atomic step as the decision,
/// so concurrent attempts are admitted only while the budget lasts.
#[test]
fn over_admission_concurrent_login_attempts_stay_within_the_budget() {
    let (g, _clock) = guard();
    let admitted = std::sync::atomic::AtomicU32::new(0);
    // 64 attempts in flight at once, none finished (no result recorded yet).
    std::thread::scope(|s| {
        for t in 0..8 {
            let (g, admitted) = (&g, &admitted);
            s.spawn(move || {
                for i in 0..8 {
                    let name = if (t + i) % 2 == 0 { "alice" } else { "ALICE" };
                    if g.begin(name, IP).unwrap().is_allowed() {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 5);
    // A correct password afterwards clears the account but not the IP's count.
    g.record_success("alice");
    assert!(g.peek("alice", IP).unwrap().is_allowed());
    // The IP has 15 of its 20 left: the five admitted attempts stay counted.
    for i in 0..15 {
        assert!(g.begin(&format!("u{i}"), IP).unwrap().is_allowed());
    }
    assert_eq!(g.peek("alice", IP).unwrap().denied_by(), Some("login-ip"));
}

/// IP grouping for login: many /64s of one /48 share one budget when the
/// guard groups by /48, and stay apart at the default /64.
#[test]
fn login_ipv6_prefix_groups_a_48_into_one_budget() {
    let fresh = |bits: Option<u8>| {
        let (g, _clock) = guard();
        match bits {
            Some(b) => g.with_ipv6_prefix(b),
            None => g,
        }
    };
    let addr = |i: u16| IpAddr::from([0x2001, 0x0db8, 0x0042, i, 0, 0, 0, 1]);
    let g = fresh(Some(48));
    let admitted = (0..100u16)
        .filter(|&i| g.begin(&format!("u{i}"), addr(i)).unwrap().is_allowed())
        .count();
    assert_eq!(admitted, 20);
    let g = fresh(None);
    let admitted = (0..100u16)
        .filter(|&i| g.begin(&format!("u{i}"), addr(i)).unwrap().is_allowed())
        .count();
    assert_eq!(admitted, 100);
}
