//! Key extractors: which [`RequestKeys`] a request carries.
//!
//! - **IP**: the TCP peer from the [`PeerAddr`] request extension (insert it
//!   from your server's connection info), resolved through
//!   [`TrustedProxies`]; IPv6 grouped by a prefix (/64 by default).
//! - **Account, session, tenant, webhook source, custom**: from the
//!   [`RateLimitIdentity`] extension that your authentication layer (which
//!   runs before this one) inserts — never from raw headers a client controls.
//!   Account names are normalised then hashed ([`KeyValue::account`]).

use std::net::{IpAddr, SocketAddr};

use http::Request;

use super::forwarded::{TrustedProxies, client_ip};
use crate::key::{KeyValue, RequestKeys};
use crate::policy::KeyKind;

/// The TCP peer of the connection, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What the authentication layer knows about the caller, as a request extension.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RateLimitIdentity {
    /// Account name (e.g. the login form's user name, for login tiers).
    pub account: Option<String>,
    /// Authenticated session id.
    pub session: Option<String>,
    /// Authenticated tenant id.
    pub tenant: Option<String>,
    /// The session key already derived ([`KeyValue::text`] of the session
    /// id, e.g. computed once per session and cached by the authentication
    /// layer): used instead of `session` when set. The same value as
    /// `KeyValue::text(session)`, so budgets and Redis key names do not
    /// depend on which of the two carried it.
    pub session_key: Option<KeyValue>,
    /// The tenant key already derived, like `session_key`: used instead of
    /// `tenant` when set.
    pub tenant_key: Option<KeyValue>,
    /// Verified webhook source.
    pub webhook_source: Option<String>,
    /// Custom keys (name, value) for [`KeyKind::Custom`] tiers.
    pub custom: Vec<(&'static str, String)>,
    /// A trusted caller (e.g. the tenant's own admin) sees tenant-level numbers.
    pub trusted: bool,
}

impl RateLimitIdentity {
    /// An empty identity.
    pub fn new() -> Self {
        Self::default()
    }
    /// With a session id.
    pub fn session(mut self, s: impl Into<String>) -> Self {
        self.session = Some(s.into());
        self
    }
    /// With a tenant id.
    pub fn tenant(mut self, t: impl Into<String>) -> Self {
        self.tenant = Some(t.into());
        self
    }
    /// With a session key already derived (see [`RateLimitIdentity::session_key`]).
    pub fn session_key(mut self, k: KeyValue) -> Self {
        self.session_key = Some(k);
        self
    }
    /// With a tenant key already derived (see [`RateLimitIdentity::tenant_key`]).
    pub fn tenant_key(mut self, k: KeyValue) -> Self {
        self.tenant_key = Some(k);
        self
    }
    /// With an account name.
    pub fn account(mut self, a: impl Into<String>) -> Self {
        self.account = Some(a.into());
        self
    }
    /// With a webhook source.
    pub fn webhook_source(mut self, s: impl Into<String>) -> Self {
        self.webhook_source = Some(s.into());
        self
    }
    /// With a custom key.
    pub fn custom(mut self, kind: &'static str, v: impl Into<String>) -> Self {
        self.custom.push((kind, v.into()));
        self
    }
    /// Mark the caller trusted.
    pub fn trusted(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }
}

/// How keys are taken from requests.
#[derive(Debug, Clone)]
pub struct KeyExtractor {
    proxies: TrustedProxies,
    v6_prefix: u8,
}

impl Default for KeyExtractor {
    fn default() -> Self {
        KeyExtractor {
            proxies: TrustedProxies::none(),
            v6_prefix: 64,
        }
    }
}

impl KeyExtractor {
    /// No trusted proxies, IPv6 /64.
    pub fn new() -> Self {
        Self::default()
    }

    /// Believe `X-Forwarded-For` from these proxies.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// IPv6 grouping prefix (clamped to 32..=128).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.v6_prefix = bits.clamp(32, 128);
        self
    }

    /// The client IP of `req`, if the peer address is known.
    pub fn client_ip<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = req.extensions().get::<PeerAddr>()?.0.ip();
        Some(self.client_ip_from(peer, req))
    }

    /// The client IP of `req` arriving from `peer` (the TCP peer, given
    /// directly instead of as a [`PeerAddr`] extension).
    pub fn client_ip_from<B>(&self, peer: IpAddr, req: &Request<B>) -> IpAddr {
        let xff = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes());
        client_ip(peer, xff, &self.proxies)
    }

    /// The keys `req` carries, and whether the caller is trusted.
    pub fn keys<B>(&self, req: &Request<B>) -> (RequestKeys, bool) {
        self.keys_for(
            self.client_ip(req),
            req.extensions().get::<RateLimitIdentity>(),
        )
    }

    /// The keys of a request from `client_ip` (as [`KeyExtractor::client_ip`]
    /// gives it) whose caller is `id`, and whether the caller is trusted:
    /// what [`KeyExtractor::keys`] reads from the request's extensions,
    /// given directly.
    pub fn keys_for(
        &self,
        client_ip: Option<IpAddr>,
        id: Option<&RateLimitIdentity>,
    ) -> (RequestKeys, bool) {
        let mut keys = RequestKeys::new();
        if let Some(ip) = client_ip {
            keys.set(KeyKind::Ip, KeyValue::ip(ip, self.v6_prefix));
        }
        let Some(id) = id else {
            return (keys, false);
        };
        if let Some(k) = id
            .account
            .as_deref()
            .and_then(|a| KeyValue::account(a).ok())
        {
            keys.set(KeyKind::Account, k);
        }
        let text = [
            (KeyKind::Session, id.session_key, &id.session),
            (KeyKind::Tenant, id.tenant_key, &id.tenant),
            (KeyKind::WebhookSource, None, &id.webhook_source),
        ];
        for (kind, derived, v) in text {
            if let Some(k) = derived.or_else(|| v.as_deref().and_then(|s| KeyValue::text(s).ok())) {
                keys.set(kind, k);
            }
        }
        for (name, v) in &id.custom {
            if let Ok(k) = KeyValue::text(v) {
                keys.set(KeyKind::Custom(name), k);
            }
        }
        (keys, id.trusted)
    }
}
