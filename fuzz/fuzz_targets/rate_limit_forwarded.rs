//! The client-IP walk over `X-Forwarded-For`: arbitrary header bytes and proxy
//! lists must never panic, an untrusted peer is always the answer for itself,
//! and the answer is always the peer or an address written in the headers.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use hisn_rate_limit::http::TrustedProxies;
use hisn_rate_limit::http::forwarded::client_ip;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    peer: [u8; 16],
    peer_v4: bool,
    proxies: Vec<&'a str>,
    values: Vec<&'a [u8]>,
}

fuzz_target!(|input: Input<'_>| {
    let peer = if input.peer_v4 {
        IpAddr::from([input.peer[0], input.peer[1], input.peer[2], input.peer[3]])
    } else {
        IpAddr::from(input.peer)
    };
    let trusted = TrustedProxies::new(input.proxies.iter().copied()).unwrap_or_default();
    let ip = client_ip(peer, input.values.iter().copied(), &trusted);
    if !trusted.contains(peer) {
        assert_eq!(ip, peer);
    }
    if ip != peer {
        let text: String = input
            .values
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        assert!(!text.is_empty());
    }
});
