//! Signing and verifying grants (compact JWS, `typ` `hisn-grant+jwt`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{
    GRANT_TYP, Grant, GrantAccess, GrantAuditHook, GrantId, GrantNotifier, GrantRequest,
    GrantRevocation, GrantSession, GrantUse, MAX_GRANT_LIFETIME_SECS, check_fields,
};
use crate::{Clock, Error, MAX_LEEWAY_SECS, MAX_TOKEN_LEN, Permission, SystemClock, TenantId};

/// The grant-specific claims, under one member (`hisn_grant`) so no access
/// token claim can be read as a grant claim or the reverse.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantClaim {
    tenant: String,
    /// `"read_only"`, or the list of permissions.
    access: serde_json::Value,
    reason: String,
    ticket: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    // JSON integers; a string or a float fails deserialisation.
    iat: u64,
    exp: u64,
    // Never written by the signer; honoured when present (a JSON integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    hisn_grant: GrantClaim,
}

fn refuse(_why: &'static str) -> Error {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "hisn::tenant_guard::grant", reason = _why, "grant refused");
    Error::Unauthenticated
}

fn access_to_json(access: &GrantAccess) -> serde_json::Value {
    match access {
        GrantAccess::ReadOnly => serde_json::Value::from("read_only"),
        GrantAccess::Permissions(set) => set.iter().map(|p| p.as_str()).collect(),
    }
}

fn access_from_json(v: &serde_json::Value) -> Result<GrantAccess, &'static str> {
    match v {
        serde_json::Value::String(s) if s == "read_only" => Ok(GrantAccess::ReadOnly),
        serde_json::Value::Array(items) => {
            if items.len() > super::MAX_GRANT_PERMISSIONS {
                return Err("too many permissions");
            }
            let mut set = BTreeSet::new();
            for item in items {
                let p = item
                    .as_str()
                    .and_then(|s| Permission::new(s).ok())
                    .ok_or("malformed permission")?;
                if !set.insert(p) {
                    return Err("permission listed twice");
                }
            }
            Ok(GrantAccess::Permissions(set))
        }
        _ => Err("access is neither \"read_only\" nor a permission list"),
    }
}

/// Signs grants. Hold it in the support tool that records the written
/// authorization, not in the service that serves tenants.
pub struct GrantSigner {
    issuer: String,
    audience: String,
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for GrantSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is never printed.
        f.debug_struct("GrantSigner")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl GrantSigner {
    /// A signer for grants from `issuer` to `audience`, signed with `key`
    /// under `kid` with `algorithm` (HS256 or EdDSA are the usual choices);
    /// [`Error::Config`] when the key is not of the algorithm's family or a
    /// name is empty.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithm: Algorithm,
        kid: impl Into<String>,
        key: EncodingKey,
    ) -> Result<Self, Error> {
        let (issuer, audience, kid) = (issuer.into(), audience.into(), kid.into());
        if issuer.is_empty() || audience.is_empty() || kid.is_empty() {
            return Err(Error::Config(
                "grant issuer, audience and kid must not be empty",
            ));
        }
        if key.family() != algorithm.family() {
            return Err(Error::Config("the grant key does not match the algorithm"));
        }
        Ok(Self {
            issuer,
            audience,
            kid,
            algorithm,
            key,
            clock: Arc::new(SystemClock),
        })
    }

    /// The clock that dates grants (default [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sign `request` with a fresh random id: the grant and its token.
    /// [`Error::Config`] when a field breaks the rules (empty or too long
    /// reason or ticket, control characters, an empty permission list, a
    /// lifetime of zero or above [`MAX_GRANT_LIFETIME_SECS`]).
    pub fn sign(&self, request: &GrantRequest) -> Result<(Grant, String), Error> {
        check_fields(
            &request.support_user,
            &request.access,
            &request.reason,
            &request.ticket,
        )
        .map_err(Error::Config)?;
        let lifetime = request.lifetime.as_secs();
        if lifetime == 0
            || lifetime > MAX_GRANT_LIFETIME_SECS
            || request.lifetime.subsec_nanos() != 0
        {
            return Err(Error::Config(
                "a grant lives whole seconds, at least one and at most 24 hours",
            ));
        }
        let now = self.clock.now_unix();
        let grant = Grant {
            id: GrantId::random(),
            issuer: self.issuer.clone(),
            support_user: request.support_user.clone(),
            tenant: request.tenant,
            access: request.access.clone(),
            reason: request.reason.clone(),
            ticket: request.ticket.clone(),
            issued_at: now,
            expires_at: now.saturating_add(lifetime),
        };
        let claims = Claims {
            iss: grant.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.support_user.clone(),
            jti: grant.id.to_string(),
            iat: grant.issued_at,
            exp: grant.expires_at,
            nbf: None,
            hisn_grant: GrantClaim {
                tenant: grant.tenant.to_string(),
                access: access_to_json(&grant.access),
                reason: grant.reason.clone(),
                ticket: grant.ticket.clone(),
            },
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some(GRANT_TYP.to_owned());
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|_| Error::Config("the grant key cannot sign"))?;
        Ok((grant, token))
    }
}

/// Builds a [`GrantVerifier`]; the revocation check, the audit hook and the
/// notifier are all required.
pub struct GrantVerifierBuilder {
    issuer: String,
    audience: String,
    algorithm: Algorithm,
    keys: BTreeMap<String, DecodingKey>,
    leeway: u64,
    clock: Arc<dyn Clock>,
    revocation: Option<Arc<dyn GrantRevocation>>,
    audit: Option<Arc<dyn GrantAuditHook>>,
    notifier: Option<Arc<dyn GrantNotifier>>,
}

impl fmt::Debug for GrantVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantVerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GrantVerifierBuilder {
    /// Add a verification key under `kid`.
    #[must_use]
    pub fn key(mut self, kid: impl Into<String>, key: DecodingKey) -> Self {
        self.keys.insert(kid.into(), key);
        self
    }

    /// Clock-skew allowance for `iat` and `nbf` (a grant dated slightly
    /// ahead of this clock), at most [`MAX_LEEWAY_SECS`] (default 0). It never
    /// extends a grant past its `exp`, and a grant never has more than
    /// 24 hours left on this clock.
    #[must_use]
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// The clock for expiry (default [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The revocation check every use awaits.
    #[must_use]
    pub fn revocation(mut self, revocation: Arc<dyn GrantRevocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// The audit hook every use awaits.
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn GrantAuditHook>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The notifier for the tenant's admins every use awaits.
    #[must_use]
    pub fn notifier(mut self, notifier: Arc<dyn GrantNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Check the configuration: non-empty issuer and audience, at least one
    /// key, every key of the pinned algorithm's family, leeway within bounds,
    /// and all three hooks.
    pub fn build(self) -> Result<GrantVerifier, Error> {
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(Error::Config("grant issuer and audience must not be empty"));
        }
        if self.leeway > MAX_LEEWAY_SECS {
            return Err(Error::Config("leeway above MAX_LEEWAY_SECS"));
        }
        if self.keys.is_empty() {
            return Err(Error::Config("a grant verifier needs at least one key"));
        }
        if self
            .keys
            .iter()
            .any(|(kid, k)| kid.is_empty() || k.family() != self.algorithm.family())
        {
            return Err(Error::Config(
                "a grant key has an empty kid or does not match the pinned algorithm",
            ));
        }
        let (Some(revocation), Some(audit), Some(notifier)) =
            (self.revocation, self.audit, self.notifier)
        else {
            return Err(Error::Config(
                "a grant verifier needs a revocation check, an audit hook and a notifier",
            ));
        };
        let mut validation = Validation::new(self.algorithm);
        validation.algorithms = vec![self.algorithm];
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock instead.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Ok(GrantVerifier {
            issuer: self.issuer,
            keys: self.keys,
            algorithm: self.algorithm,
            validation,
            leeway: self.leeway,
            clock: self.clock,
            revocation,
            audit,
            notifier,
        })
    }
}

/// Verifies grants and opens [`GrantSession`]s (see the [module](super)).
pub struct GrantVerifier {
    issuer: String,
    keys: BTreeMap<String, DecodingKey>,
    algorithm: Algorithm,
    validation: Validation,
    leeway: u64,
    clock: Arc<dyn Clock>,
    revocation: Arc<dyn GrantRevocation>,
    audit: Arc<dyn GrantAuditHook>,
    notifier: Arc<dyn GrantNotifier>,
}

impl fmt::Debug for GrantVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantVerifier")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl GrantVerifier {
    /// A builder for grants from `issuer` to `audience`, signed with
    /// `algorithm` (pinned: no other is accepted).
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithm: Algorithm,
    ) -> GrantVerifierBuilder {
        GrantVerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithm,
            keys: BTreeMap::new(),
            leeway: 0,
            clock: Arc::new(SystemClock),
            revocation: None,
            audit: None,
            notifier: None,
        }
    }

    /// Check a grant's signature, header type, issuer, audience, times (not
    /// expired, not issued in the future, at most 24 hours long) and fields.
    /// Does *not* check revocation or call the hooks: use
    /// [`open`](Self::open) to act under a grant. Any failure is the opaque
    /// [`Error::Unauthenticated`].
    pub fn verify(&self, token: &str) -> Result<Grant, Error> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(refuse("token length"));
        }
        crate::jose::check_compact(token).map_err(refuse)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed header"))?;
        if header.typ.as_deref() != Some(GRANT_TYP) {
            return Err(refuse("not a grant (typ)"));
        }
        if header.alg != self.algorithm {
            return Err(refuse("algorithm not pinned"));
        }
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.get(kid),
            None => None,
        }
        .ok_or_else(|| refuse("missing or unknown kid"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| refuse("signature or claims invalid"))?
            .claims;
        let now = self.clock.now_unix();
        // Expiry is exact: the leeway never extends a grant past its `exp`
        // (the promise is an automatic revocation, and `RolePolicy::require`
        // ends the session at `exp` too).
        if now >= claims.exp {
            return Err(refuse("expired"));
        }
        let latest = now.saturating_add(self.leeway);
        if claims.iat > latest || claims.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(refuse("issued in the future or not yet valid"));
        }
        if claims.exp <= claims.iat || claims.exp - claims.iat > MAX_GRANT_LIFETIME_SECS {
            return Err(refuse("lifetime above 24 hours"));
        }
        // Also on the verifier's own clock: a grant dated up to `leeway`
        // seconds ahead cannot stretch its window past 24 hours here.
        if claims.exp - now > MAX_GRANT_LIFETIME_SECS {
            return Err(refuse("more than 24 hours left"));
        }
        let id: GrantId = claims.jti.parse().map_err(|_| refuse("malformed jti"))?;
        let tenant: TenantId = claims
            .hisn_grant
            .tenant
            .parse()
            .map_err(|_| refuse("malformed tenant"))?;
        let access = access_from_json(&claims.hisn_grant.access).map_err(refuse)?;
        let g = claims.hisn_grant;
        check_fields(&claims.sub, &access, &g.reason, &g.ticket).map_err(refuse)?;
        Ok(Grant {
            id,
            issuer: claims.iss,
            support_user: claims.sub,
            tenant,
            access,
            reason: g.reason,
            ticket: g.ticket,
            issued_at: claims.iat,
            expires_at: claims.exp,
        })
    }

    /// Use a grant for one request to `path_tenant` doing `action` (a label
    /// for the audit record, such as `GET /t/{tenant}/assets`; control and
    /// invisible characters reach the hooks escaped, and it is cut to
    /// [`MAX_ACTION_LEN`](super::MAX_ACTION_LEN) bytes, so a label built from
    /// request data cannot forge lines in the audit record).
    ///
    /// Verifies it ([`verify`](Self::verify)); refuses another tenant
    /// ([`Error::NotFound`]) and a revoked grant ([`Error::Unauthenticated`]);
    /// then awaits the audit hook and the notifier, in that order. A failing
    /// revocation check or hook refuses the use ([`Error::GrantHook`]); a
    /// grant that expired while the hooks ran is refused
    /// ([`Error::Unauthenticated`]).
    pub async fn open(
        &self,
        token: &str,
        path_tenant: &str,
        action: &str,
    ) -> Result<GrantSession, Error> {
        let grant = self.verify(token)?;
        match path_tenant.parse::<TenantId>() {
            Ok(t) if t == grant.tenant => {}
            _ => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "hisn::tenant_guard::grant", grant = %grant.id, tenant = %grant.tenant, "grant used for another tenant");
                return Err(Error::NotFound);
            }
        }
        let revoked = self.revocation.is_revoked(&grant).await.map_err(|_e| {
            #[cfg(feature = "tracing")]
            tracing::error!(target: "hisn::tenant_guard::grant", grant = %grant.id, "grant revocation check failed; use refused");
            Error::GrantHook
        })?;
        if revoked {
            #[cfg(feature = "tracing")]
            tracing::warn!(target: "hisn::tenant_guard::grant", grant = %grant.id, "revoked grant refused");
            return Err(Error::Unauthenticated);
        }
        let action = super::audit_label(action);
        let grant_use = GrantUse {
            grant: &grant,
            action: &action,
            at: self.clock.now_unix(),
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "hisn::tenant_guard::grant", grant = %grant.id, tenant = %grant.tenant, support_user = grant.support_user(), ticket = grant.ticket(), action, "break-glass grant used");
        self.audit.record(grant_use).await.map_err(|_e| {
            #[cfg(feature = "tracing")]
            tracing::error!(target: "hisn::tenant_guard::grant", grant = %grant.id, "grant audit hook failed; use refused");
            Error::GrantHook
        })?;
        self.notifier.notify(grant_use).await.map_err(|_e| {
            #[cfg(feature = "tracing")]
            tracing::error!(target: "hisn::tenant_guard::grant", grant = %grant.id, "grant notifier failed; use refused");
            Error::GrantHook
        })?;
        // The hooks may be slow (a network audit sink): a grant that expired
        // while they ran is not handed out.
        if self.clock.now_unix() >= grant.expires_at {
            return Err(refuse("expired while the hooks ran"));
        }
        Ok(GrantSession::new(grant, Arc::clone(&self.clock)))
    }
}
