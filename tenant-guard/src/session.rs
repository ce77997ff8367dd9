//! Layer 1: verify a JWT and turn it into a [`TenantContext`].
//!
//! Traps this module closes:
//! - **Algorithm confusion** (`alg: none`, HS256 signed with an RSA public key):
//!   each issuer pins its algorithms, and each key is checked against them when
//!   the verifier is built; the token's `alg` must be one of the pinned ones.
//! - **Key injection**: the `kid` is looked up in the configured key set only;
//!   `jku`, `jwk`, `x5u` and `x5c` in the header are never used.
//! - **Missing claims**: `exp`, `iss`, `aud`, `sub` and the tenant claim are all
//!   required; `exp` must be a JSON integer (a string is refused, not ignored).
//! - **Time**: expiry is checked against an injected [`Clock`], so tests control
//!   it; `iat` in the future (beyond the leeway) is refused, and so is a token
//!   whose lifetime exceeds [`TokenVerifierBuilder::max_lifetime`].
//! - **Ambiguous JSON**: a header or claims object that repeats a member name
//!   (`tenant_id` twice, at any depth) is refused, so no other parser can read
//!   another tenant from the same signed token; a `crit` header is refused
//!   (RFC 7515 §4.1.11: no extension is understood).
//!
//! - **Token confusion**: a break-glass grant (header `typ` [`GRANT_TYP`](crate::grant::GRANT_TYP))
//!   is never accepted as an access token, whatever its claims.
//! - **Authentication facts** (`amr`, `acr`, `auth_time`, the second-factor
//!   time, `must_change_password`; see [`crate::stepup`]) must have their
//!   documented JSON types, and times must not lie in the future beyond the
//!   leeway; otherwise the token is refused.
//!
//! Every refusal is the same opaque [`Error::Unauthenticated`]; the reason goes
//! to a `tracing` debug event (feature `tracing`) and never to the caller.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::context::CustomClaims;
use crate::stepup::{
    AuthInfo, DEFAULT_MUST_CHANGE_PASSWORD_CLAIM, DEFAULT_SECOND_FACTOR_CLAIM, MAX_AMR_LEN,
};
use crate::{ClientId, Error, MAX_SUBJECT_LEN, Role, TenantContext, TenantId};

/// Longest token accepted, in bytes (longer input is refused before parsing).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Largest clock-skew leeway [`TokenVerifierBuilder::leeway`] accepts, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Default longest token lifetime accepted (`exp` minus `iat`, or minus now
/// when `iat` is absent): 24 hours. See [`TokenVerifierBuilder::max_lifetime`].
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 24 * 3600;
/// Default name of the tenant claim.
pub const DEFAULT_TENANT_CLAIM: &str = "tenant_id";
/// Most roles or client grants one token may carry.
pub const MAX_LIST_LEN: usize = 256;

/// A source of the current time, in seconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `now` seconds since the epoch.
    pub fn new(now: u64) -> Self {
        Self(AtomicU64::new(now))
    }

    /// Set the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Move the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One trusted token issuer: its `iss`, the audiences it may address, the
/// algorithms pinned for it and its keys by `kid`.
pub struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    keys: BTreeMap<String, DecodingKey>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material is never printed, only the key ids.
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Issuer {
    /// An issuer with value `iss` whose tokens must name `audience` and be
    /// signed with one of `algorithms`. Add keys with [`Issuer::key`].
    pub fn new(
        iss: impl Into<String>,
        audience: impl Into<String>,
        algorithms: &[Algorithm],
    ) -> Self {
        Self {
            issuer: iss.into(),
            audiences: vec![audience.into()],
            algorithms: algorithms.to_vec(),
            keys: BTreeMap::new(),
        }
    }

    /// Accept one more audience.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Add a verification key under `kid`.
    #[must_use]
    pub fn key(mut self, kid: impl Into<String>, key: DecodingKey) -> Self {
        self.keys.insert(kid.into(), key);
        self
    }
}

struct Compiled {
    issuer: Issuer,
    validation: Validation,
}

/// Builds a [`TokenVerifier`]; [`TokenVerifierBuilder::build`] checks the configuration.
#[derive(Debug)]
pub struct TokenVerifierBuilder {
    issuers: Vec<Issuer>,
    tenant_claim: String,
    leeway: u64,
    max_lifetime: u64,
    clock: Arc<dyn Clock>,
    second_factor_claim: String,
    must_change_password_claim: String,
}

impl Default for TokenVerifierBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            tenant_claim: DEFAULT_TENANT_CLAIM.to_owned(),
            leeway: 0,
            max_lifetime: DEFAULT_MAX_LIFETIME_SECS,
            clock: Arc::new(SystemClock),
            second_factor_claim: DEFAULT_SECOND_FACTOR_CLAIM.to_owned(),
            must_change_password_claim: DEFAULT_MUST_CHANGE_PASSWORD_CLAIM.to_owned(),
        }
    }
}

impl TokenVerifierBuilder {
    /// An empty builder: no issuers, tenant claim `tenant_id`, no leeway, system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The name of the claim that holds the tenant id (default `tenant_id`).
    #[must_use]
    pub fn tenant_claim(mut self, name: impl Into<String>) -> Self {
        self.tenant_claim = name.into();
        self
    }

    /// Clock-skew allowance for `exp` and `nbf`, at most [`MAX_LEEWAY_SECS`].
    #[must_use]
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// The longest lifetime a token may have, in seconds (default
    /// [`DEFAULT_MAX_LIFETIME_SECS`]): `exp - iat`, or `exp - now` for a token
    /// without `iat`. A stolen long-lived token is refused even though its
    /// issuer signed it. Must be at least one second.
    #[must_use]
    pub fn max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime = secs;
        self
    }

    /// The name of the claim holding the time of the last second factor, an
    /// integer in seconds since the epoch (default `mfa_time`; see
    /// [`crate::stepup`]).
    #[must_use]
    pub fn second_factor_claim(mut self, name: impl Into<String>) -> Self {
        self.second_factor_claim = name.into();
        self
    }

    /// The name of the boolean claim that restricts the session to changing
    /// the password (default `must_change_password`).
    #[must_use]
    pub fn must_change_password_claim(mut self, name: impl Into<String>) -> Self {
        self.must_change_password_claim = name.into();
        self
    }

    /// The clock used for `exp` and `nbf` (default [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Check the configuration: at least one issuer; each with a non-empty
    /// `iss`, audience, algorithm list and key set; every key of the family of
    /// every pinned algorithm (so an RSA key can never verify an HMAC token);
    /// `kid`s unique across issuers; leeway within bounds.
    pub fn build(self) -> Result<TokenVerifier, Error> {
        if self.issuers.is_empty() {
            return Err(Error::Config("no issuer configured"));
        }
        if self.leeway > MAX_LEEWAY_SECS {
            return Err(Error::Config("leeway above MAX_LEEWAY_SECS"));
        }
        if self.max_lifetime == 0 {
            return Err(Error::Config("max_lifetime must be at least one second"));
        }
        const REGISTERED: &[&str] = &[
            "exp",
            "iss",
            "aud",
            "sub",
            "nbf",
            "iat",
            "jti",
            "roles",
            "clients",
            "amr",
            "acr",
            "auth_time",
        ];
        if self.tenant_claim.is_empty() || REGISTERED.contains(&self.tenant_claim.as_str()) {
            return Err(Error::Config(
                "tenant claim name is empty or a registered claim",
            ));
        }
        for name in [&self.second_factor_claim, &self.must_change_password_claim] {
            if name.is_empty() || REGISTERED.contains(&name.as_str()) || *name == self.tenant_claim
            {
                return Err(Error::Config(
                    "second-factor or password claim name is empty, registered or the tenant claim",
                ));
            }
        }
        if self.second_factor_claim == self.must_change_password_claim {
            return Err(Error::Config(
                "second-factor and password claims need different names",
            ));
        }
        let mut kids = HashMap::new();
        let mut compiled = Vec::with_capacity(self.issuers.len());
        for (idx, issuer) in self.issuers.into_iter().enumerate() {
            if issuer.issuer.is_empty() || issuer.audiences.iter().any(String::is_empty) {
                return Err(Error::Config("issuer and audience must not be empty"));
            }
            let Some(first) = issuer.algorithms.first() else {
                return Err(Error::Config(
                    "an issuer needs at least one pinned algorithm",
                ));
            };
            let family = first.family();
            if issuer.algorithms.iter().any(|a| a.family() != family) {
                return Err(Error::Config(
                    "an issuer's pinned algorithms must share one family",
                ));
            }
            if issuer.keys.is_empty() {
                return Err(Error::Config("an issuer needs at least one key"));
            }
            for (kid, key) in &issuer.keys {
                if kid.is_empty() {
                    return Err(Error::Config("empty kid"));
                }
                if key.family() != family {
                    return Err(Error::Config(
                        "a key does not match the issuer's pinned algorithm family",
                    ));
                }
                if kids.insert(kid.clone(), idx).is_some() {
                    return Err(Error::Config("kid used twice"));
                }
            }
            let mut validation = Validation::new(*first);
            validation.algorithms.clone_from(&issuer.algorithms);
            validation.set_issuer(&[issuer.issuer.as_str()]);
            validation.set_audience(&issuer.audiences);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            // Expiry is checked below against the injected clock instead.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = true;
            validation.leeway = 0;
            compiled.push(Compiled { issuer, validation });
        }
        let single_kid = match (compiled.as_slice(), kids.len()) {
            ([one], 1) => one.issuer.keys.keys().next().cloned(),
            _ => None,
        };
        Ok(TokenVerifier {
            issuers: compiled,
            single_kid,
            kids,
            tenant_claim: self.tenant_claim,
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
            clock: self.clock,
            second_factor_claim: self.second_factor_claim,
            must_change_password_claim: self.must_change_password_claim,
        })
    }
}

/// Verifies bearer tokens and produces [`TenantContext`]s.
pub struct TokenVerifier {
    issuers: Vec<Compiled>,
    /// The only `kid` when one issuer with one key is configured: tokens
    /// without a `kid` header use it.
    single_kid: Option<String>,
    kids: HashMap<String, usize>,
    tenant_claim: String,
    leeway: u64,
    max_lifetime: u64,
    clock: Arc<dyn Clock>,
    second_factor_claim: String,
    must_change_password_claim: String,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "issuers",
                &self.issuers.iter().map(|c| &c.issuer).collect::<Vec<_>>(),
            )
            .field("tenant_claim", &self.tenant_claim)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .field("clock", &self.clock)
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    // A JSON integer; a string or a float fails deserialisation (fail closed).
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    // A JSON integer when present, like `exp`.
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    clients: Vec<String>,
    // RFC 8176 / OpenID Connect; a wrong JSON type fails deserialisation.
    #[serde(default)]
    amr: Vec<String>,
    #[serde(default)]
    acr: Option<String>,
    #[serde(default)]
    auth_time: Option<u64>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// Whether a header `typ` names a grant: media types are case-insensitive
/// and `typ` may carry or omit the `application/` prefix (RFC 7515 §4.1.9).
fn is_grant_typ(typ: &str) -> bool {
    let t = typ.trim();
    let t = match (t.get(..12), t.get(12..)) {
        (Some(p), Some(rest)) if p.eq_ignore_ascii_case("application/") => rest,
        _ => t,
    };
    t.eq_ignore_ascii_case(crate::grant::GRANT_TYP)
}

fn refuse(_why: &'static str) -> Error {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "hisn::tenant_guard", reason = _why, "token refused");
    Error::Unauthenticated
}

impl TokenVerifier {
    /// A builder.
    pub fn builder() -> TokenVerifierBuilder {
        TokenVerifierBuilder::new()
    }

    /// Verify `token` and return the context it proves.
    ///
    /// Any failure is [`Error::Unauthenticated`], whatever the reason.
    pub fn verify(&self, token: &str) -> Result<TenantContext, Error> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(refuse("token length"));
        }
        crate::jose::check_compact(token).map_err(refuse)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed header"))?;
        if header.typ.as_deref().is_some_and(is_grant_typ) {
            return Err(refuse("a break-glass grant is not an access token"));
        }
        // Without a `kid`, the key is unambiguous only when the verifier holds
        // exactly one key in all.
        let kid = match header.kid.as_deref() {
            Some(kid) => kid,
            None => self.single_kid.as_deref().ok_or_else(|| refuse("no kid"))?,
        };
        let idx = *self.kids.get(kid).ok_or_else(|| refuse("unknown kid"))?;
        let compiled = self.issuers.get(idx).ok_or_else(|| refuse("unknown kid"))?;
        if !compiled.issuer.algorithms.contains(&header.alg) {
            return Err(refuse("algorithm not pinned for this issuer"));
        }
        let key = compiled
            .issuer
            .keys
            .get(kid)
            .ok_or_else(|| refuse("unknown kid"))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &compiled.validation)
            .map_err(|_| refuse("signature or claims invalid"))?;
        let claims = data.claims;
        let now = self.clock.now_unix();
        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(refuse("expired"));
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.leeway) < nbf)
        {
            return Err(refuse("not yet valid"));
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(refuse("issued in the future"));
        }
        let start = claims.iat.map_or(now, |iat| iat.min(now));
        if claims.exp.saturating_sub(start) > self.max_lifetime {
            return Err(refuse("lifetime above the maximum"));
        }
        let tenant = claims
            .other
            .get(&self.tenant_claim)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| refuse("tenant claim missing"))?
            .parse::<TenantId>()
            .map_err(|_| refuse("tenant claim malformed"))?;
        if claims.sub.is_empty()
            || claims.sub.len() > MAX_SUBJECT_LEN
            || claims.sub.chars().any(char::is_control)
        {
            return Err(refuse("sub empty, too long or with control characters"));
        }
        if claims.roles.len() > MAX_LIST_LEN || claims.clients.len() > MAX_LIST_LEN {
            return Err(refuse("too many roles or clients"));
        }
        let roles = claims
            .roles
            .iter()
            .map(|r| Role::new(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| refuse("malformed role"))?;
        let clients = claims
            .clients
            .iter()
            .map(|c| c.parse::<ClientId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| refuse("malformed client id"))?;
        let mut custom = claims.other;
        custom.remove(&self.tenant_claim);
        for registered in ["iss", "aud", "jti"] {
            custom.remove(registered);
        }
        let auth = self.auth_info(claims.amr, claims.acr, claims.auth_time, &mut custom, now)?;
        Ok(TenantContext::with_subject(
            tenant,
            claims.sub,
            roles,
            clients,
            CustomClaims(custom.into_iter().collect()),
        )
        .with_auth(auth))
    }

    /// The authentication facts, type-checked; the second-factor and password
    /// claims are taken out of the custom claims.
    fn auth_info(
        &self,
        amr: Vec<String>,
        acr: Option<String>,
        auth_time: Option<u64>,
        custom: &mut BTreeMap<String, serde_json::Value>,
        now: u64,
    ) -> Result<AuthInfo, Error> {
        let short = |s: &String| s.len() <= MAX_AMR_LEN && !s.chars().any(char::is_control);
        if amr.len() > MAX_LIST_LEN || !amr.iter().all(short) || !acr.iter().all(short) {
            return Err(refuse("amr or acr too long or with control characters"));
        }
        let mfa_time = match custom.remove(&self.second_factor_claim) {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| refuse("second-factor time is not an integer"))?,
            ),
        };
        let latest = now.saturating_add(self.leeway);
        if auth_time.is_some_and(|t| t > latest) || mfa_time.is_some_and(|t| t > latest) {
            return Err(refuse("auth_time or second-factor time in the future"));
        }
        let must_change = match custom.remove(&self.must_change_password_claim) {
            None => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(refuse("must-change-password claim is not a boolean")),
        };
        Ok(AuthInfo::new(amr, acr, auth_time, mfa_time, must_change))
    }

    /// Verify `token` for a request addressed to `path_tenant` (the `{tenant}`
    /// of `/t/{tenant}/...`).
    ///
    /// A bad token is [`Error::Unauthenticated`]; a valid token for another
    /// tenant (or a malformed path tenant) is [`Error::NotFound`], the same
    /// answer as for a resource that does not exist.
    pub fn verify_for_path(&self, token: &str, path_tenant: &str) -> Result<TenantContext, Error> {
        let ctx = self.verify(token)?;
        ctx.check_path_tenant(path_tenant)?;
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret";

    fn verifier(clock: Arc<ManualClock>) -> TokenVerifier {
        TokenVerifier::builder()
            .issuer(
                Issuer::new("https://idp.test", "hisn-api", &[Algorithm::HS256])
                    .key("k1", DecodingKey::from_secret(SECRET)),
            )
            .clock(clock)
            .build()
            .unwrap()
    }

    fn token(claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn claims(exp: u64) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://idp.test", "aud": "hisn-api", "exp": exp,
            "sub": "22222222-2222-4222-8222-222222222222",
            "tenant_id": "11111111-1111-4111-8111-111111111111",
            "roles": ["member"],
        })
    }

    #[test]
    fn expiry_follows_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(1_000));
        let v = verifier(clock.clone());
        let t = token(&claims(1_060));
        assert_eq!(v.verify(&t).unwrap().roles(), &[Role::MEMBER]);
        clock.advance(59);
        assert!(v.verify(&t).is_ok());
        clock.advance(1);
        assert!(matches!(v.verify(&t), Err(Error::Unauthenticated)));
    }

    /// A correctly signed token whose compact form is exactly `len` bytes
    /// long: the claims carry a `pad` string, the header a `typ` of varying
    /// length (base64url never yields a segment of length 4k + 1, so the
    /// claims alone cannot reach every length).
    fn signed_token_of_len(len: usize, exp: u64) -> Option<String> {
        for typ in ["JWT", "JWTa", "JWTab"] {
            for n in len.saturating_sub(400) * 3 / 4..len * 3 / 4 {
                let mut c = claims(exp);
                c["pad"] = serde_json::json!("p".repeat(n));
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some("k1".into());
                h.typ = Some(typ.into());
                let t = jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(SECRET)).unwrap();
                if t.len() == len {
                    return Some(t);
                }
            }
        }
        None
    }

    #[test]
    fn token_of_exactly_eight_kib_is_verified_and_one_byte_more_refused() {
        let v = verifier(Arc::new(ManualClock::new(1_000)));
        let at_limit = signed_token_of_len(8 * 1024, 2_000).unwrap();
        assert_eq!(v.verify(&at_limit).unwrap().roles(), &[Role::MEMBER]);
        // Signed by the same key and valid in every other respect.
        let over = signed_token_of_len(8 * 1024 + 1, 2_000).unwrap();
        assert!(matches!(v.verify(&over), Err(Error::Unauthenticated)));
    }

    #[test]
    fn default_lifetime_is_twenty_four_hours() {
        // No `iat`: the lifetime left counts from the clock.
        let v = verifier(Arc::new(ManualClock::new(1_000)));
        assert!(v.verify(&token(&claims(1_000 + 86_400))).is_ok());
        assert!(matches!(
            v.verify(&token(&claims(1_000 + 86_401))),
            Err(Error::Unauthenticated)
        ));
    }

    #[test]
    fn system_clock_reads_the_unix_time() {
        let secs = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let before = secs();
        let now = SystemClock.now_unix();
        let after = secs();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    fn hs256_issuer() -> Issuer {
        Issuer::new("https://idp.test", "hisn-api", &[Algorithm::HS256])
            .key("k1", DecodingKey::from_secret(SECRET))
    }

    #[test]
    fn leeway_of_five_minutes_is_accepted_and_one_second_more_refused() {
        let clock = Arc::new(ManualClock::new(1_299));
        let v = TokenVerifier::builder()
            .issuer(hs256_issuer())
            .leeway(300)
            .clock(clock.clone())
            .build()
            .unwrap();
        // Expired 299 s ago: within the leeway; 300 s ago: not.
        assert!(v.verify(&token(&claims(1_000))).is_ok());
        clock.advance(1);
        assert!(matches!(
            v.verify(&token(&claims(1_000))),
            Err(Error::Unauthenticated)
        ));
        let r = TokenVerifier::builder()
            .issuer(hs256_issuer())
            .leeway(301)
            .build();
        assert!(matches!(r, Err(Error::Config(_))));
    }

    #[test]
    fn tenant_claim_name_is_configurable_and_never_empty_or_registered() {
        let v = TokenVerifier::builder()
            .issuer(hs256_issuer())
            .tenant_claim("org")
            .clock(Arc::new(ManualClock::new(1_000)))
            .build()
            .unwrap();
        let mut c = claims(2_000);
        c["org"] = serde_json::json!("33333333-3333-4333-8333-333333333333");
        let ctx = v.verify(&token(&c)).unwrap();
        assert_eq!(
            ctx.tenant().to_string(),
            "33333333-3333-4333-8333-333333333333"
        );
        // Each refused on its own: empty (not registered), registered (not empty).
        for name in ["", "exp", "sub", "roles"] {
            let r = TokenVerifier::builder()
                .issuer(hs256_issuer())
                .tenant_claim(name)
                .build();
            assert!(matches!(r, Err(Error::Config(_))), "{name:?}");
        }
    }

    #[test]
    fn must_change_password_claim_name_is_configurable() {
        let v = TokenVerifier::builder()
            .issuer(hs256_issuer())
            .must_change_password_claim("https://idp.test/pwd_reset")
            .clock(Arc::new(ManualClock::new(1_000)))
            .build()
            .unwrap();
        let mut c = claims(2_000);
        c["https://idp.test/pwd_reset"] = serde_json::json!(true);
        assert!(v.verify(&token(&c)).unwrap().auth().must_change_password());
        // The default name is now an ordinary custom claim.
        let mut c = claims(2_000);
        c["must_change_password"] = serde_json::json!(true);
        assert!(!v.verify(&token(&c)).unwrap().auth().must_change_password());
    }

    #[test]
    fn auth_claim_names_are_never_empty_registered_the_tenant_claim_or_shared() {
        let build = |b: TokenVerifierBuilder| b.issuer(hs256_issuer()).build();
        for name in ["", "exp", "amr", "auth_time", "tenant_id"] {
            let r = build(TokenVerifier::builder().second_factor_claim(name));
            assert!(matches!(r, Err(Error::Config(_))), "{name:?}");
            let r = build(TokenVerifier::builder().must_change_password_claim(name));
            assert!(matches!(r, Err(Error::Config(_))), "{name:?}");
        }
        let r = build(
            TokenVerifier::builder()
                .second_factor_claim("x")
                .must_change_password_claim("x"),
        );
        assert!(matches!(r, Err(Error::Config(_))));
    }

    #[test]
    fn issuer_and_every_audience_must_be_non_empty() {
        let key = || DecodingKey::from_secret(SECRET);
        for issuer in [
            Issuer::new("", "hisn-api", &[Algorithm::HS256]).key("k1", key()),
            Issuer::new("https://idp.test", "", &[Algorithm::HS256]).key("k1", key()),
            Issuer::new("https://idp.test", "hisn-api", &[Algorithm::HS256])
                .audience("")
                .key("k1", key()),
        ] {
            let r = TokenVerifier::builder().issuer(issuer).build();
            assert!(matches!(r, Err(Error::Config(_))));
        }
    }

    #[test]
    fn token_is_valid_from_nbf_minus_the_leeway() {
        let v = verifier(Arc::new(ManualClock::new(1_000)));
        let with_nbf = |nbf: u64| {
            let mut c = claims(2_000);
            c["nbf"] = serde_json::json!(nbf);
            token(&c)
        };
        assert!(v.verify(&with_nbf(1_000)).is_ok());
        assert!(matches!(
            v.verify(&with_nbf(1_001)),
            Err(Error::Unauthenticated)
        ));
        let lenient = TokenVerifier::builder()
            .issuer(hs256_issuer())
            .leeway(30)
            .clock(Arc::new(ManualClock::new(1_000)))
            .build()
            .unwrap();
        assert!(lenient.verify(&with_nbf(1_030)).is_ok());
        assert!(lenient.verify(&with_nbf(1_031)).is_err());
    }

    #[test]
    fn subject_of_256_bytes_is_accepted_and_one_byte_more_refused() {
        let v = verifier(Arc::new(ManualClock::new(1_000)));
        let mut c = claims(2_000);
        c["sub"] = serde_json::json!("s".repeat(MAX_SUBJECT_LEN));
        assert_eq!(v.verify(&token(&c)).unwrap().subject(), "s".repeat(256));
        c["sub"] = serde_json::json!("s".repeat(MAX_SUBJECT_LEN + 1));
        assert!(matches!(v.verify(&token(&c)), Err(Error::Unauthenticated)));
    }

    #[test]
    fn token_carries_at_most_256_roles() {
        let v = verifier(Arc::new(ManualClock::new(1_000)));
        let mut c = claims(2_000);
        c["roles"] = serde_json::json!(vec!["member"; MAX_LIST_LEN]);
        assert_eq!(v.verify(&token(&c)).unwrap().roles().len(), 256);
        // Refused on the roles alone (no client grants in the token).
        c["roles"] = serde_json::json!(vec!["member"; MAX_LIST_LEN + 1]);
        assert!(matches!(v.verify(&token(&c)), Err(Error::Unauthenticated)));
    }

    #[test]
    fn token_carries_at_most_256_amr_values() {
        let v = verifier(Arc::new(ManualClock::new(1_000)));
        let mut c = claims(2_000);
        c["amr"] = serde_json::json!(vec!["otp"; MAX_LIST_LEN]);
        assert_eq!(v.verify(&token(&c)).unwrap().auth().amr().len(), 256);
        c["amr"] = serde_json::json!(vec!["otp"; MAX_LIST_LEN + 1]);
        assert!(matches!(v.verify(&token(&c)), Err(Error::Unauthenticated)));
    }

    #[test]
    fn builder_refuses_key_of_wrong_family() {
        let r = TokenVerifier::builder()
            .issuer(
                Issuer::new("i", "a", &[Algorithm::RS256])
                    .key("k", DecodingKey::from_secret(SECRET)),
            )
            .build();
        assert!(matches!(r, Err(Error::Config(_))));
        let r = TokenVerifier::builder()
            .issuer(Issuer::new("i", "a", &[Algorithm::HS256]))
            .build();
        assert!(matches!(r, Err(Error::Config(_))));
        assert!(matches!(
            TokenVerifier::builder().build(),
            Err(Error::Config(_))
        ));
        let r = TokenVerifier::builder()
            .issuer(
                Issuer::new("i", "a", &[Algorithm::HS256, Algorithm::RS256])
                    .key("k", DecodingKey::from_secret(SECRET)),
            )
            .build();
        assert!(matches!(r, Err(Error::Config(_))));
    }

    #[test]
    fn debug_prints_no_key_material() {
        let v = verifier(Arc::new(ManualClock::new(0)));
        let s = format!("{v:?}");
        assert!(s.contains("k1"));
        assert!(!s.contains("unit-test-secret"));
    }

    #[test]
    fn oversized_token_is_refused() {
        let v = verifier(Arc::new(ManualClock::new(0)));
        assert!(matches!(
            v.verify(&"a".repeat(MAX_TOKEN_LEN + 1)),
            Err(Error::Unauthenticated)
        ));
    }
}

#[cfg(test)]
mod proptests {
    use std::sync::Arc;

    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"proptest-secret-proptest-secret";

    fn verifier() -> TokenVerifier {
        TokenVerifier::builder()
            .issuer(
                Issuer::new("i", "a", &[Algorithm::HS256])
                    .key("k", DecodingKey::from_secret(SECRET)),
            )
            .clock(Arc::new(ManualClock::new(1_000)))
            .build()
            .unwrap()
    }

    proptest! {
        /// Arbitrary text never panics and is never accepted.
        #[test]
        fn arbitrary_text_is_refused(s in "\\PC{0,300}") {
            prop_assert!(matches!(verifier().verify(&s), Err(Error::Unauthenticated)));
        }

        /// Correctly signed tokens with arbitrary claim values: never a panic,
        /// and an accepted token always carries a parsed tenant and an unexpired `exp`.
        #[test]
        fn signed_arbitrary_claims_never_panic(
            exp in prop_oneof![Just(serde_json::json!(2_000)), any::<i64>().prop_map(serde_json::Value::from), "\\PC{0,12}".prop_map(serde_json::Value::from)],
            tenant in prop_oneof![Just("11111111-1111-4111-8111-111111111111".to_owned()), "\\PC{0,40}"],
            sub in prop_oneof![Just("22222222-2222-4222-8222-222222222222".to_owned()), "\\PC{0,40}"],
            roles in proptest::collection::vec("[a-z:_-]{0,8}|\\PC{0,8}", 0..4),
        ) {
            let claims = serde_json::json!({"iss": "i", "aud": "a", "sub": sub, "exp": exp, "tenant_id": tenant, "roles": roles});
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("k".into());
            let token = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
            if let Ok(ctx) = verifier().verify(&token) {
                prop_assert_eq!(ctx.tenant().to_string(), tenant.to_ascii_lowercase());
                prop_assert!(claims["exp"].as_u64().is_some_and(|e| e > 1_000));
            }
        }
    }
}
