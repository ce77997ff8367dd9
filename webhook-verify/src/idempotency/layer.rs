//! The layer: a small `Clone` configuration.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::service::IdempotencyService;
use super::store::IdempotencyStore;
use crate::error::{Error, Result};

type ScopeFn = dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync;

/// Response headers never stored nor replayed, whatever the deny list says:
/// a replayed `Set-Cookie` would hand one client's session to another.
pub const ALWAYS_DENIED: [HeaderName; 2] = [
    http::header::SET_COOKIE,
    HeaderName::from_static("set-cookie2"),
];

/// Configuration shared by every clone of the service.
pub(crate) struct Config {
    pub(crate) required: bool,
    pub(crate) expiry: Duration,
    pub(crate) lease: Duration,
    pub(crate) max_body: usize,
    pub(crate) scope: Arc<ScopeFn>,
    pub(crate) deny: Vec<HeaderName>,
}

impl Config {
    pub(crate) fn denied(&self, name: &str) -> bool {
        ALWAYS_DENIED
            .iter()
            .chain(&self.deny)
            .any(|d| d.as_str().eq_ignore_ascii_case(name))
    }
}

/// The layer. Cheap to clone.
pub struct IdempotencyLayer<St> {
    config: Arc<Config>,
    store: Arc<St>,
}

impl<St> Clone for IdempotencyLayer<St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            store: self.store.clone(),
        }
    }
}

impl<St> std::fmt::Debug for IdempotencyLayer<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("required", &self.config.required)
            .field("expiry", &self.config.expiry)
            .field("lease", &self.config.lease)
            .field("max_body", &self.config.max_body)
            .field("deny", &self.config.deny)
            .finish_non_exhaustive()
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// Default expiry of a stored response: 24 hours.
    pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);
    /// Default lease of an in-flight request: 30 seconds, renewed every
    /// third of it while the request runs.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
    /// Default body bound: 1 MiB.
    pub const DEFAULT_MAX_BODY: usize = 1 << 20;

    /// A layer over `store` whose keys live in the scope `scope` returns for
    /// each request (the authenticated tenant and credential, for example
    /// from a request extension set by the authentication layer). `None`
    /// refuses the request with `400`.
    ///
    /// There is no default scope: one global key space would let one tenant
    /// replay another tenant's stored response by reusing its key.
    /// Defaults: key required, 24 h expiry, 30 s lease, 1 MiB bodies, only
    /// `set-cookie` denied.
    pub fn new(
        store: Arc<St>,
        scope: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                required: true,
                expiry: Self::DEFAULT_EXPIRY,
                lease: Self::DEFAULT_LEASE,
                max_body: Self::DEFAULT_MAX_BODY,
                scope: Arc::new(scope),
                deny: Vec::new(),
            }),
            store,
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let c = &*self.config;
        let mut new = Config {
            required: c.required,
            expiry: c.expiry,
            lease: c.lease,
            max_body: c.max_body,
            scope: c.scope.clone(),
            deny: c.deny.clone(),
        };
        f(&mut new);
        self.config = Arc::new(new);
        self
    }

    /// Whether a `POST`/`PATCH` without a key is refused with `400` (default
    /// `true`); when `false` such requests pass through.
    pub fn required(self, required: bool) -> Self {
        self.edit(|c| c.required = required)
    }

    /// How long a stored response is replayed (1 s to 30 days).
    pub fn expiry(self, expiry: Duration) -> Result<Self> {
        if expiry < Duration::from_secs(1) || expiry > Duration::from_secs(30 * 86_400) {
            return Err(Error::InvalidConfig(
                "idempotency expiry must be 1 s to 30 days",
            ));
        }
        Ok(self.edit(|c| c.expiry = expiry))
    }

    /// The in-flight lease (1 s to 1 h; never longer than the expiry). The
    /// layer renews it every third of the lease while the request runs (this
    /// needs a tokio runtime with its timer); a request whose worker died
    /// blocks its key with `409` for at most one lease.
    pub fn lease(self, lease: Duration) -> Result<Self> {
        if lease < Duration::from_secs(1) || lease > Duration::from_secs(3600) {
            return Err(Error::InvalidConfig("idempotency lease must be 1 s to 1 h"));
        }
        Ok(self.edit(|c| c.lease = lease))
    }

    /// Largest request body accepted, and largest response body stored, in
    /// bytes. A larger request is refused with `413`; a larger successful
    /// response is sent in full, and recorded without its body (see
    /// [`super::StoredResponse::body_omitted`]).
    pub fn max_body(self, max_body: usize) -> Result<Self> {
        if max_body == 0 {
            return Err(Error::InvalidConfig(
                "idempotency max_body must be non-zero",
            ));
        }
        Ok(self.edit(|c| c.max_body = max_body))
    }

    /// Never store or replay the response header `name` (in addition to
    /// [`ALWAYS_DENIED`]); for example a per-client token or a trace id.
    pub fn deny_header(self, name: &str) -> Result<Self> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidConfig("idempotency deny list: invalid header name"))?;
        Ok(self.edit(|c| {
            if !c.deny.contains(&name) {
                c.deny.push(name);
            }
        }))
    }
}

impl<S, St> tower_layer::Layer<S> for IdempotencyLayer<St> {
    type Service = IdempotencyService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService::new(inner, self.config.clone(), self.store.clone())
    }
}
