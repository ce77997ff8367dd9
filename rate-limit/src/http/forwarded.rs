//! The client IP behind trusted proxies.
//!
//! `X-Forwarded-For` is written by whoever sent the request, so it is only
//! believed where a proxy you listed wrote it. The walk starts at the TCP peer:
//! if the peer is not a trusted proxy, the peer is the client and every header
//! is ignored. Otherwise the header's entries are read right to left (the
//! rightmost was appended by the nearest proxy), skipping trusted proxies; the
//! first untrusted address is the client. A malformed entry stops the walk at
//! the last trusted hop (so garbage can only make a request count against the
//! proxy, never against an address of the sender's choosing). At most
//! [`MAX_HOPS`] entries are read. The RFC 7239 `Forwarded` header is ignored.

use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};

/// Most `X-Forwarded-For` entries examined (from the right).
pub const MAX_HOPS: usize = 32;

/// The proxies whose `X-Forwarded-For` entries are believed (CIDR blocks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<(u128, u32, bool)>,
}

fn bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), true),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), true),
            None => (u128::from(v6), false),
        },
    }
}

impl TrustedProxies {
    /// No trusted proxy: the TCP peer is always the client (the safe default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Proxies given as CIDR blocks or single addresses, e.g.
    /// `["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]`.
    pub fn new<'a>(cidrs: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut nets = Vec::new();
        for c in cidrs {
            let bad = || Error::InvalidConfig("trusted proxy: expected an IP or CIDR block");
            let (addr, len) = match c.trim().split_once('/') {
                Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
                None => (c.trim(), None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let (value, v4) = bits(ip);
            let max = if v4 { 32 } else { 128 };
            // `::ffff:a.b.c.d/n` is the IPv4 block a.b.c.d/(n − 96).
            let len = match (ip, len) {
                (IpAddr::V6(_), Some(l)) if v4 => l.checked_sub(96).ok_or_else(bad)?,
                (_, l) => l.unwrap_or(max),
            };
            if len > max {
                return Err(bad());
            }
            let mask = if len == 0 {
                0
            } else {
                (u128::MAX << (128 - len)) >> (128 - max)
            };
            nets.push((value & mask, len, v4));
        }
        Ok(TrustedProxies { nets })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (value, v4) = bits(ip);
        let max = if v4 { 32 } else { 128 };
        self.nets.iter().any(|&(net, len, net_v4)| {
            let mask = if len == 0 {
                0
            } else {
                (u128::MAX << (128 - len)) >> (128 - max)
            };
            net_v4 == v4 && value & mask == net
        })
    }
}

/// One entry: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:80`, `[2001:db8::1]:80`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
}

/// The client address for a request from `peer` carrying the given
/// `X-Forwarded-For` header values (in order of appearance).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let values: Vec<&[u8]> = forwarded_for.into_iter().collect();
    let mut client = peer;
    let mut seen = 0;
    for value in values.iter().rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return client;
        };
        for entry in text.rsplit(',') {
            seen += 1;
            if seen > MAX_HOPS {
                return client;
            }
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0u8; 4]))
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let t = TrustedProxies::new(["10.0.0.0/8"]).unwrap_or_default();
        let spoof: &[u8] = b"203.0.113.9";
        assert_eq!(
            client_ip(ip("198.51.100.1"), [spoof], &t),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), [spoof], &t), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), [spoof], &TrustedProxies::none()),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn forwarded_for_walks_right_to_left_over_trusted_hops_only() {
        let t = TrustedProxies::new(["10.0.0.0/8", "2001:db8::/32"]).unwrap_or_default();
        // The sender wrote "1.1.1.1"; the edge proxy appended the real client.
        let v: &[u8] = b"1.1.1.1, 198.51.100.7, 10.0.0.2";
        assert_eq!(client_ip(ip("10.0.0.1"), [v], &t), ip("198.51.100.7"));
        // Split over two header lines, with ports and brackets.
        let a: &[u8] = b"1.1.1.1";
        let b: &[u8] = b"[2001:db9::5]:443, 10.9.9.9:8080";
        assert_eq!(client_ip(ip("2001:db8::1"), [a, b], &t), ip("2001:db9::5"));
        // Garbage stops the walk at the last trusted hop, never the sender's pick.
        let g: &[u8] = b"1.1.1.1, unknown, 10.0.0.2";
        assert_eq!(client_ip(ip("10.0.0.1"), [g], &t), ip("10.0.0.2"));
        let bad: &[u8] = b"\xff\xfe";
        assert_eq!(client_ip(ip("10.0.0.1"), [bad], &t), ip("10.0.0.1"));
        // All trusted: the leftmost hop.
        let all: &[u8] = b"10.0.0.9, 10.0.0.8";
        assert_eq!(client_ip(ip("10.0.0.1"), [all], &t), ip("10.0.0.9"));
    }

    #[test]
    fn cidr_parsing_and_matching() {
        assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::new(["nonsense"]).is_err());
        let t =
            TrustedProxies::new(["192.0.2.0/24", "::ffff:198.51.100.0/120"]).unwrap_or_default();
        assert!(t.contains(ip("192.0.2.200")));
        assert!(!t.contains(ip("192.0.3.1")));
        assert!(t.contains(ip("::ffff:192.0.2.1")));
        let all = TrustedProxies::new(["0.0.0.0/0"]).unwrap_or_default();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
    }
}
