//! The tower rate-limit layer: status codes, headers, key extraction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hisn_rate_limit::http::{
    KeyExtractor, PeerAddr, RateLimitIdentity, RateLimitLayer, TrustedProxies,
};
use hisn_rate_limit::*;
use tower::{Layer, ServiceExt, service_fn};

use crate::common::*;

fn app(
    limiter: Arc<MemoryLimiter<Arc<ManualClock>>>,
    extractor: KeyExtractor,
) -> impl FnMut(
    ::http::Request<()>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ::http::Response<String>> + Send>> {
    let svc = RateLimitLayer::new(limiter, extractor).layer(service_fn(
        |_req: ::http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(::http::Response::new("ok".to_owned()))
        },
    ));
    move |req| {
        let svc = svc.clone();
        Box::pin(async move { svc.oneshot(req).await.unwrap() })
    }
}

fn req(peer: &str, xff: Option<&str>, id: Option<RateLimitIdentity>) -> ::http::Request<()> {
    let mut b = ::http::Request::get("/");
    if let Some(x) = xff {
        b = b.header("x-forwarded-for", x);
    }
    let mut r = b.body(()).unwrap();
    r.extensions_mut()
        .insert(PeerAddr(SocketAddr::new(peer.parse().unwrap(), 4000)));
    if let Some(id) = id {
        r.extensions_mut().insert(id);
    }
    r
}

fn header<'a>(r: &'a ::http::Response<String>, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn denied_requests_get_429_with_retry_after_rounded_up_never_zero() {
    // τ = 1.5 s → Retry-After 2; τ = 10 ms → Retry-After 1 (never 0).
    for (quota, period, expect) in [
        (2, Duration::from_secs(3), "2"),
        (100, Duration::from_secs(1), "1"),
    ] {
        let (l, _clock) = limiter(vec![policy("ip", quota, period, KeyKind::Ip)]);
        let mut call = app(Arc::new(l), KeyExtractor::new());
        for _ in 0..quota {
            assert_eq!(call(req("192.0.2.1", None, None)).await.status(), 200);
        }
        let r = call(req("192.0.2.1", None, None)).await;
        assert_eq!(r.status(), 429);
        assert_eq!(header(&r, "retry-after"), Some(expect));
    }
}

#[tokio::test]
async fn ratelimit_headers_one_item_per_tier_tenant_hidden_from_untrusted() {
    let (l, _clock) = limiter(vec![
        policy("session", 10, Duration::from_secs(5), KeyKind::Session),
        policy("tenant", 100, Duration::from_secs(60), KeyKind::Tenant),
    ]);
    let mut call = app(Arc::new(l), KeyExtractor::new());
    let id = RateLimitIdentity::new().session("s1").tenant("acme");
    let r = call(req("192.0.2.1", None, Some(id.clone()))).await;
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"session\";q=10;w=5"));
    assert_eq!(header(&r, "ratelimit"), Some("\"session\";r=9;t=1"));
    let r = call(req("192.0.2.1", None, Some(id.trusted(true)))).await;
    assert_eq!(
        header(&r, "ratelimit-policy"),
        Some("\"session\";q=10;w=5, \"tenant\";q=100;w=60")
    );
    assert_eq!(
        header(&r, "ratelimit"),
        Some("\"session\";r=8;t=1, \"tenant\";r=98;t=2")
    );
}

#[tokio::test]
async fn a_derived_session_or_tenant_key_is_the_same_budget_as_its_text() {
    // Longer than 32 bytes: the text form is hashed, the derived key is that hash.
    let long = "s".repeat(64);
    let (l, _clock) = limiter(vec![
        policy("session", 2, Duration::from_secs(60), KeyKind::Session),
        policy("tenant", 3, Duration::from_secs(60), KeyKind::Tenant),
    ]);
    let mut call = app(Arc::new(l), KeyExtractor::new());
    let derived = KeyValue::text(&long).unwrap();
    let by_text = RateLimitIdentity::new().session(long.clone());
    assert_eq!(
        call(req("192.0.2.1", None, Some(by_text.clone())))
            .await
            .status(),
        200
    );
    // The derived key wins over a session string that differs from it.
    let by_key = RateLimitIdentity::new()
        .session("other")
        .session_key(derived);
    assert_eq!(
        call(req("192.0.2.1", None, Some(by_key.clone())))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(req("192.0.2.1", None, Some(by_text))).await.status(),
        429
    );
    assert_eq!(
        call(req("192.0.2.1", None, Some(by_key))).await.status(),
        429
    );
    assert_eq!(
        call(req(
            "192.0.2.1",
            None,
            Some(RateLimitIdentity::new().session("other"))
        ))
        .await
        .status(),
        200
    );
    let t = KeyValue::text("acme-tenant-0123456789-0123456789-x").unwrap();
    for _ in 0..2 {
        let id = RateLimitIdentity::new().tenant("acme-tenant-0123456789-0123456789-x");
        assert_eq!(call(req("192.0.2.2", None, Some(id))).await.status(), 200);
    }
    let id = RateLimitIdentity::new().tenant("x").tenant_key(t);
    assert_eq!(
        call(req("192.0.2.2", None, Some(id.clone())))
            .await
            .status(),
        200
    );
    assert_eq!(call(req("192.0.2.2", None, Some(id))).await.status(), 429);
}

#[test]
fn keys_for_gives_what_keys_reads_from_the_request() {
    let ex = KeyExtractor::new().trusted_proxies(TrustedProxies::new(["10.0.0.0/8"]).unwrap());
    let id = RateLimitIdentity::new()
        .session("s1")
        .tenant_key(KeyValue::text("t").unwrap())
        .trusted(true);
    let r = req("10.0.0.5", Some("203.0.113.7"), Some(id.clone()));
    let (a, ta) = ex.keys(&r);
    let ip = ex.client_ip_from("10.0.0.5".parse().unwrap(), &r);
    assert_eq!(ip, "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(ex.client_ip(&r), Some(ip));
    let (b, tb) = ex.keys_for(Some(ip), Some(&id));
    assert!(ta && tb);
    for k in [
        KeyKind::Ip,
        KeyKind::Session,
        KeyKind::Tenant,
        KeyKind::Account,
    ] {
        assert_eq!(a.get(k), b.get(k));
    }
    assert_eq!(b.get(KeyKind::Session), KeyValue::text("s1").ok().as_ref());
    assert_eq!(b.get(KeyKind::Tenant), KeyValue::text("t").ok().as_ref());
    assert_eq!(
        b.get(KeyKind::Ip),
        Some(&KeyValue::ip("203.0.113.7".parse().unwrap(), 64))
    );
    // No identity: the IP key only, and not trusted.
    let (c, tc) = ex.keys_for(Some(ip), None);
    assert!(!tc);
    assert!(c.get(KeyKind::Session).is_none() && c.get(KeyKind::Tenant).is_none());
    assert_eq!(c.get(KeyKind::Ip), a.get(KeyKind::Ip));
}

#[tokio::test]
async fn spoofed_forwarded_for_from_untrusted_peer_shares_the_peer_budget() {
    let (l, _clock) = limiter(vec![policy("ip", 3, Duration::from_secs(60), KeyKind::Ip)]);
    let mut call = app(Arc::new(l), KeyExtractor::new());
    for i in 0..3 {
        let spoof = format!("203.0.113.{i}");
        assert_eq!(
            call(req("198.51.100.1", Some(&spoof), None)).await.status(),
            200
        );
    }
    assert_eq!(
        call(req("198.51.100.1", Some("203.0.113.99"), None))
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn forwarded_for_from_trusted_proxy_distinguishes_clients_and_groups_ipv6_by_64() {
    let (l, _clock) = limiter(vec![policy("ip", 2, Duration::from_secs(60), KeyKind::Ip)]);
    let ex = KeyExtractor::new().trusted_proxies(TrustedProxies::new(["10.0.0.0/8"]).unwrap());
    let mut call = app(Arc::new(l), ex);
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..2 {
            assert_eq!(
                call(req("10.0.0.5", Some(client), None)).await.status(),
                200
            );
        }
    }
    assert_eq!(
        call(req("10.0.0.5", Some("203.0.113.1"), None))
            .await
            .status(),
        429
    );
    // Two addresses in one /64 share a budget; another /64 does not.
    assert_eq!(call(req("2001:db8:0:1::1", None, None)).await.status(), 200);
    assert_eq!(
        call(req("2001:db8:0:1::ffff", None, None)).await.status(),
        200
    );
    assert_eq!(
        call(req("2001:db8:0:1:abcd::9", None, None)).await.status(),
        429
    );
    assert_eq!(call(req("2001:db8:0:2::1", None, None)).await.status(), 200);
}

#[tokio::test]
async fn ip_tier_without_peer_address_fails_closed() {
    let (l, _clock) = limiter(vec![policy("ip", 2, Duration::from_secs(60), KeyKind::Ip)]);
    let mut call = app(Arc::new(l), KeyExtractor::new());
    let r = call(::http::Request::get("/").body(()).unwrap()).await;
    assert_eq!(r.status(), 500);
}

#[tokio::test]
async fn account_keys_are_normalised_from_the_identity_extension() {
    let (l, _clock) = limiter(vec![policy(
        "login",
        2,
        Duration::from_secs(60),
        KeyKind::Account,
    )]);
    let mut call = app(Arc::new(l), KeyExtractor::new());
    for name in ["Alice@Example.com", " alice@example.com"] {
        let r = call(req(
            "192.0.2.1",
            None,
            Some(RateLimitIdentity::new().account(name)),
        ))
        .await;
        assert_eq!(r.status(), 200);
    }
    let r = call(req(
        "192.0.2.9",
        None,
        Some(RateLimitIdentity::new().account("ALICE@example.com")),
    ))
    .await;
    assert_eq!(r.status(), 429);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn fail_closed_tier_answers_503_with_retry_after_when_redis_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let tiers = Tiers::new(vec![policy(
        "tenant",
        10,
        Duration::from_secs(60),
        KeyKind::Tenant,
    )])
    .unwrap();
    let limiter = hisn_rate_limit::redis::RedisLimiter::new(
        client,
        tiers,
        hisn_rate_limit::redis::RedisConfig::new("x:").unwrap(),
    )
    .await;
    let svc = RateLimitLayer::new(Arc::new(limiter), KeyExtractor::new()).layer(service_fn(
        |_r: ::http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(::http::Response::new(String::new()))
        },
    ));
    let r = svc
        .clone()
        .oneshot(req(
            "192.0.2.1",
            None,
            Some(RateLimitIdentity::new().tenant("t")),
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(header(&r, "retry-after").unwrap().parse::<u64>().unwrap() >= 1);
}

proptest::proptest! {
    /// Arbitrary X-Forwarded-For bytes never panic; an untrusted peer is always
    /// its own client address whatever the headers say.
    #[test]
    fn arbitrary_forwarded_for_never_panics_and_untrusted_peer_wins(
        values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..4),
        text in "[0-9a-f:., \\[\\]]{0,80}",
        peer_last in 0u8..=255,
    ) {
        use hisn_rate_limit::http::forwarded::client_ip;
        let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let mut all: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        all.push(text.as_bytes());
        let untrusted: std::net::IpAddr = [198, 51, 100, peer_last].into();
        proptest::prop_assert_eq!(client_ip(untrusted, all.iter().copied(), &trusted), untrusted);
        let proxy: std::net::IpAddr = [10, 0, 0, peer_last].into();
        let _ = client_ip(proxy, all.iter().copied(), &trusted);
    }
}
