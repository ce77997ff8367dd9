//! Break-glass grants: time-bounded, signed, single-tenant access for support
//! staff, instead of any "log in as the customer" path.
//!
//! A [`Grant`] names the support user, **one** tenant, its access (read-only
//! or a listed permission set), a reason and a ticket reference, and an expiry
//! at most [`MAX_GRANT_LIFETIME_SECS`] (24 hours) after it was issued. The
//! [`GrantSigner`] signs it as a compact JWS with its own header type
//! ([`GRANT_TYP`]), so a grant is never accepted as an access token and an
//! access token is never accepted as a grant. The [`GrantVerifier`] checks it
//! like a token (algorithm, issuer and audience pinned, keys by `kid`,
//! duplicate members and `crit` refused, times against an injected clock) and
//! [`GrantVerifier::open`] turns it into a [`GrantSession`] for one request:
//!
//! 1. the grant's tenant must be the request's tenant ([`Error::NotFound`]
//!    otherwise, as for any other tenant's resource);
//! 2. the async [`GrantRevocation`] check runs (a revoked grant is
//!    [`Error::Unauthenticated`]; a failing check refuses, [`Error::GrantHook`]);
//! 3. the async [`GrantAuditHook`] records the use, then the
//!    [`GrantNotifier`] tells the tenant's admins; either failing refuses
//!    the use ([`Error::GrantHook`]): no record, no access.
//!
//! The session's [`TenantContext`] is scoped to the grant's tenant, has no
//! roles and no client grants, and [`RolePolicy::require`](crate::RolePolicy::require)
//! allows exactly the grant's permissions until it expires
//! ([`Error::OutsideGrant`] for anything else: every write under a read-only
//! grant). On PostgreSQL, a tenant transaction begun for a read-only grant
//! session is opened with `BEGIN READ ONLY`, and row-level security scopes it
//! to the grant's tenant like any other session. On SQLite (no RLS, no
//! read-only transactions on a shared connection) the permission check and
//! the query guard are what hold.
//!
//! Traps: the written authorization (who approved, when) is the
//! application's record; the grant carries its ticket reference. Keep the
//! grant signing key away from the access-token issuer, give grants their
//! own audience, and store revocations for at least 24 hours.

mod token;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod tx;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::{Clock, Error, Permission, TenantContext, TenantId};

pub use token::{GrantSigner, GrantVerifier, GrantVerifierBuilder};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use tx::admit;

/// The JWS header `typ` of a grant (RFC 8725 §3.11 explicit typing).
pub const GRANT_TYP: &str = "hisn-grant+jwt";
/// Longest grant lifetime: 24 hours (the promised auto-revoke).
pub const MAX_GRANT_LIFETIME_SECS: u64 = 24 * 3600;
/// Longest reason accepted, in bytes.
pub const MAX_GRANT_REASON_LEN: usize = 1024;
/// Longest ticket reference accepted, in bytes.
pub const MAX_TICKET_LEN: usize = 128;
/// Most permissions one grant may list.
pub const MAX_GRANT_PERMISSIONS: usize = 64;

/// A grant's identifier (`jti`), for revocation and audit records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct GrantId(Uuid);

impl GrantId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for GrantId {
    type Err = Error;

    /// A canonical hyphenated, non-nil UUID.
    fn from_str(s: &str) -> Result<Self, Error> {
        let u = Uuid::try_parse(s).map_err(|_| Error::InvalidId)?;
        if u.is_nil() || u.hyphenated().to_string() != s.to_ascii_lowercase() {
            return Err(Error::InvalidId);
        }
        Ok(Self(u))
    }
}

/// What a grant allows.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum GrantAccess {
    /// [`Permission::READ`] only; PostgreSQL transactions run `READ ONLY`.
    ReadOnly,
    /// Exactly these permissions (at least one, at most
    /// [`MAX_GRANT_PERMISSIONS`]). Transactions run `READ ONLY` when the set
    /// holds nothing but `read`.
    Permissions(BTreeSet<Permission>),
}

impl GrantAccess {
    /// Whether the grant allows `permission`.
    pub fn allows(&self, permission: &Permission) -> bool {
        match self {
            Self::ReadOnly => *permission == Permission::READ,
            Self::Permissions(set) => set.contains(permission),
        }
    }

    /// Whether the grant allows nothing but reading.
    pub fn is_read_only(&self) -> bool {
        match self {
            Self::ReadOnly => true,
            Self::Permissions(set) => set.iter().all(|p| *p == Permission::READ),
        }
    }
}

/// A verified break-glass grant (from [`GrantVerifier::verify`] or
/// [`GrantSigner::sign`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Grant {
    pub(crate) id: GrantId,
    pub(crate) issuer: String,
    pub(crate) support_user: String,
    pub(crate) tenant: TenantId,
    pub(crate) access: GrantAccess,
    pub(crate) reason: String,
    pub(crate) ticket: String,
    pub(crate) issued_at: u64,
    pub(crate) expires_at: u64,
}

impl Grant {
    /// The grant's id (`jti`).
    pub fn id(&self) -> GrantId {
        self.id
    }
    /// Who signed it (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The support user it was issued to (`sub`).
    pub fn support_user(&self) -> &str {
        &self.support_user
    }
    /// The one tenant it opens.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
    /// What it allows.
    pub fn access(&self) -> &GrantAccess {
        &self.access
    }
    /// Why it was issued.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// The ticket (written authorization) reference.
    pub fn ticket(&self) -> &str {
        &self.ticket
    }
    /// When it was issued, seconds since the epoch.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// When it expires, seconds since the epoch (at most 24 hours after
    /// [`issued_at`](Self::issued_at)).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// What a [`GrantSigner`] is asked to sign: checked when signed.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    pub(crate) support_user: String,
    pub(crate) tenant: TenantId,
    pub(crate) access: GrantAccess,
    pub(crate) reason: String,
    pub(crate) ticket: String,
    pub(crate) lifetime: std::time::Duration,
}

impl GrantRequest {
    /// A read-only grant of `tenant` for `support_user`, for `lifetime`
    /// (at most 24 hours), with a `reason` and a `ticket` reference.
    pub fn read_only(
        support_user: impl Into<String>,
        tenant: TenantId,
        reason: impl Into<String>,
        ticket: impl Into<String>,
        lifetime: std::time::Duration,
    ) -> Self {
        Self {
            support_user: support_user.into(),
            tenant,
            access: GrantAccess::ReadOnly,
            reason: reason.into(),
            ticket: ticket.into(),
            lifetime,
        }
    }

    /// Allow exactly `permissions` instead of read-only access.
    #[must_use]
    pub fn permissions(mut self, permissions: impl IntoIterator<Item = Permission>) -> Self {
        self.access = GrantAccess::Permissions(permissions.into_iter().collect());
        self
    }
}

/// Longest action label the hooks receive, in bytes (longer is cut).
pub const MAX_ACTION_LEN: usize = 512;

/// Characters that reorder or hide text, or break lines: bidi overrides and
/// isolates, zero-width characters, line and paragraph separators.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// The action label as the hooks see it: invisible characters escaped
/// (`\n`, `\u{202e}`), at most [`MAX_ACTION_LEN`] bytes.
pub(crate) fn audit_label(action: &str) -> String {
    let mut out = String::with_capacity(action.len().min(MAX_ACTION_LEN));
    for c in action.chars() {
        let piece: String = if invisible(c) {
            c.escape_default().collect()
        } else {
            c.into()
        };
        if out.len() + piece.len() > MAX_ACTION_LEN {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The text rules for a grant's fields (the same at signing and verifying).
pub(crate) fn check_fields(
    support_user: &str,
    access: &GrantAccess,
    reason: &str,
    ticket: &str,
) -> Result<(), &'static str> {
    // Control characters, and the invisible ones that reorder or hide text
    // (bidi overrides and isolates, zero-width characters, line and
    // paragraph separators): these fields are shown to the tenant's admins
    // and written to audit records, where a spoofed reason must not pass.
    let clean =
        |s: &str, max: usize| !s.trim().is_empty() && s.len() <= max && !s.chars().any(invisible);
    if !clean(support_user, crate::MAX_SUBJECT_LEN) {
        return Err("support user empty, too long or with control characters");
    }
    if !clean(reason, MAX_GRANT_REASON_LEN) || !clean(ticket, MAX_TICKET_LEN) {
        return Err("reason or ticket empty, too long or with control characters");
    }
    if let GrantAccess::Permissions(set) = access {
        if set.is_empty() || set.len() > MAX_GRANT_PERMISSIONS {
            return Err("a permission grant lists 1 to MAX_GRANT_PERMISSIONS permissions");
        }
        // Setting the customer's password is taking over the account: the
        // "log in as the customer" path grants exist to replace.
        if set.contains(&Permission::CHANGE_PASSWORD) {
            return Err("a grant never allows changing the password");
        }
    }
    Ok(())
}

/// The part of a grant a [`TenantContext`] carries
/// ([`TenantContext::grant`]), with the verifier's clock so that a context
/// kept past the grant's expiry cannot begin a transaction.
#[derive(Clone)]
pub struct GrantScope {
    id: GrantId,
    access: GrantAccess,
    expires_at: u64,
    clock: Arc<dyn Clock>,
}

impl PartialEq for GrantScope {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.access == other.access && self.expires_at == other.expires_at
    }
}

impl Eq for GrantScope {}

impl fmt::Debug for GrantScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantScope")
            .field("id", &self.id)
            .field("access", &self.access)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl GrantScope {
    /// The grant's id.
    pub fn id(&self) -> GrantId {
        self.id
    }
    /// What the grant allows.
    pub fn access(&self) -> &GrantAccess {
        &self.access
    }
    /// When the grant expires; after that every permission is refused.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether the grant has expired, on the clock of the verifier that
    /// opened it.
    pub fn is_expired(&self) -> bool {
        self.clock.now_unix() >= self.expires_at
    }
}

/// One use of a grant, as given to the [`GrantAuditHook`] and the
/// [`GrantNotifier`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct GrantUse<'a> {
    /// The grant (support user, tenant, access, reason, ticket, expiry).
    pub grant: &'a Grant,
    /// What the support user is doing (the caller's label, for example the
    /// method and route of the request).
    pub action: &'a str,
    /// When, seconds since the epoch.
    pub at: u64,
}

/// The future the grant hooks return.
pub type HookFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>>;

/// Says whether a grant was revoked. Async: usually a store lookup. An error
/// refuses the grant (fail closed).
pub trait GrantRevocation: Send + Sync + fmt::Debug {
    /// `true` if `grant` was revoked.
    fn is_revoked<'a>(&'a self, grant: &'a Grant) -> HookFuture<'a, bool>;
}

/// Records every use of a grant (the reference server appends it to the audit
/// log). An error refuses the use: no record, no access.
pub trait GrantAuditHook: Send + Sync + fmt::Debug {
    /// Record `grant_use`.
    fn record<'a>(&'a self, grant_use: GrantUse<'a>) -> HookFuture<'a, ()>;
}

/// Tells the tenant's admins that support used a grant on their tenant. An
/// error refuses the use (they are promised to be told).
pub trait GrantNotifier: Send + Sync + fmt::Debug {
    /// Notify the admins of `grant_use.grant.tenant()`.
    fn notify<'a>(&'a self, grant_use: GrantUse<'a>) -> HookFuture<'a, ()>;
}

/// An in-memory [`GrantRevocation`] list, for tests and single-process
/// services. An entry is kept until its grant expires (then the grant is
/// refused anyway), so memory is bounded by the grants revoked in the last
/// 24 hours.
#[derive(Debug, Default)]
pub struct MemoryRevocations {
    revoked: Mutex<HashMap<GrantId, u64>>,
}

impl MemoryRevocations {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revoke `grant`; entries of grants that expired before `now` are dropped.
    pub fn revoke(&self, grant: &Grant, now: u64) {
        let mut map = self.revoked.lock();
        map.retain(|_, exp| *exp > now);
        map.insert(grant.id, grant.expires_at);
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.revoked.lock().len()
    }

    /// Whether no revocation is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl GrantRevocation for MemoryRevocations {
    fn is_revoked<'a>(&'a self, grant: &'a Grant) -> HookFuture<'a, bool> {
        let revoked = self.revoked.lock().contains_key(&grant.id);
        Box::pin(async move { Ok(revoked) })
    }
}

/// One request's access under a grant: the verified [`Grant`] and a
/// [`TenantContext`] scoped to its tenant whose permissions are the grant's.
#[derive(Clone, Debug)]
pub struct GrantSession {
    grant: Grant,
    ctx: TenantContext,
}

impl GrantSession {
    pub(crate) fn new(grant: Grant, clock: Arc<dyn Clock>) -> Self {
        let scope = GrantScope {
            id: grant.id,
            access: grant.access.clone(),
            expires_at: grant.expires_at,
            clock,
        };
        let ctx = TenantContext::for_grant(grant.tenant, grant.support_user.clone(), scope);
        Self { grant, ctx }
    }

    /// The grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The context to check permissions with and to begin tenant
    /// transactions from.
    pub fn context(&self) -> &TenantContext {
        &self.ctx
    }

    /// The context, by value.
    pub fn into_context(self) -> TenantContext {
        self.ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_allows_exactly_its_permissions() {
        assert!(GrantAccess::ReadOnly.allows(&Permission::READ));
        assert!(!GrantAccess::ReadOnly.allows(&Permission::WRITE));
        assert!(GrantAccess::ReadOnly.is_read_only());
        let set = GrantAccess::Permissions([Permission::READ, Permission::WRITE].into());
        assert!(set.allows(&Permission::WRITE));
        assert!(!set.allows(&Permission::MANAGE_MEMBERS));
        assert!(!set.is_read_only());
        assert!(GrantAccess::Permissions([Permission::READ].into()).is_read_only());
    }

    /// A grant session's context carries its grant, is nobody's user (even
    /// with a UUID subject) and is read-only exactly when the grant allows
    /// nothing but `read` (the PostgreSQL pool then begins `READ ONLY`); a
    /// context without a grant has none, is not read-only and keeps its user.
    #[test]
    fn grant_context_is_read_only_exactly_when_the_grant_only_reads() {
        let tenant: TenantId = "11111111-1111-4111-8111-111111111111".parse().unwrap();
        let user = "22222222-2222-4222-8222-222222222222";
        let scope = |access| GrantScope {
            id: GrantId::random(),
            access,
            expires_at: 2_000_000_000,
            clock: Arc::new(crate::ManualClock::new(1_800_000_000)),
        };
        let read_only = TenantContext::for_grant(tenant, user.into(), scope(GrantAccess::ReadOnly));
        assert!(read_only.is_read_only());
        assert_eq!(
            read_only.grant().map(GrantScope::access),
            Some(&GrantAccess::ReadOnly)
        );
        assert_eq!(read_only.user(), None);
        let writes = GrantAccess::Permissions([Permission::READ, Permission::WRITE].into());
        assert!(!TenantContext::for_grant(tenant, user.into(), scope(writes)).is_read_only());
        let plain = TenantContext::new(tenant, user.parse().unwrap(), Vec::new(), Vec::new());
        assert!(!plain.is_read_only());
        assert!(plain.grant().is_none());
        assert_eq!(plain.user().map(|u| u.to_string()).as_deref(), Some(user));
    }

    #[test]
    fn grant_ids_are_canonical() {
        let id = GrantId::random();
        assert_eq!(id.to_string().parse::<GrantId>().unwrap(), id);
        assert!(
            "00000000-0000-0000-0000-000000000000"
                .parse::<GrantId>()
                .is_err()
        );
        assert!(id.to_string().replace('-', "").parse::<GrantId>().is_err());
        assert!(format!("{{{id}}}").parse::<GrantId>().is_err());
    }

    #[test]
    fn field_rules() {
        let ok = |u: &str, r: &str, t: &str| check_fields(u, &GrantAccess::ReadOnly, r, t).is_ok();
        assert!(ok("support@example", "customer asked", "TCK-1"));
        assert!(!ok("", "customer asked", "TCK-1"));
        assert!(!ok("s", " ", "TCK-1"));
        assert!(!ok("s", "r", ""));
        assert!(!ok("s", "r\u{1b}[2J", "T"));
        // Text that reorders or hides itself in the admins' notification.
        for spoof in [
            "r\u{202e}gnp.exe",
            "r\u{2066}x\u{2069}",
            "r\u{200b}",
            "r\u{2028}x",
            "\u{feff}r",
        ] {
            assert!(!ok("s", spoof, "T"), "{spoof:?}");
            assert!(!ok(spoof, "r", "T"), "{spoof:?}");
            assert!(!ok("s", "r", spoof), "{spoof:?}");
        }
        assert!(ok("s", "client écrit: «illisible» 日本", "T-1"));
        assert!(!ok("s", &"r".repeat(MAX_GRANT_REASON_LEN + 1), "T"));
        assert!(!ok("s", "r", &"t".repeat(MAX_TICKET_LEN + 1)));
        assert!(check_fields("s", &GrantAccess::Permissions(BTreeSet::new()), "r", "t").is_err());
    }

    #[test]
    fn action_labels_cannot_forge_audit_lines() {
        assert_eq!(audit_label("GET /t/x/assets"), "GET /t/x/assets");
        assert_eq!(
            audit_label("GET /a\nGRANT REVOKED by admin\u{202e}"),
            "GET /a\\nGRANT REVOKED by admin\\u{202e}"
        );
        let long = audit_label(&"é".repeat(MAX_ACTION_LEN));
        assert!(long.len() <= MAX_ACTION_LEN && long.chars().all(|c| c == 'é'));
        assert_eq!(
            audit_label(&"\n".repeat(MAX_ACTION_LEN)).len(),
            MAX_ACTION_LEN
        );
    }
}
