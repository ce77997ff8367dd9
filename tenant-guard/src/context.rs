//! The verified tenant context and role-based access control as data.
//!
//! A [`TenantContext`] exists only after a token was verified
//! ([`TokenVerifier::verify`](crate::TokenVerifier::verify)); there is no public
//! constructor (tests can enable the `test-util` feature for
//! `TenantContext::for_tests`). Permissions are checked server-side with
//! [`RolePolicy::require`]: roles the policy does not know grant nothing.
//!
//! Two-level tenancy: the tenant is the organisation; the clients the user may
//! act for inside it come from the token's `clients` claim. An empty (or absent)
//! list means *no* clients, never all of them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::grant::GrantScope;
use crate::stepup::{AuthInfo, MfaStatus, StepUpRules, enrolment_overdue, second_factor_fresh};
use crate::{ClientId, Clock, Error, SystemClock, TenantId, UserId};

/// The longest role or permission name accepted.
pub const MAX_NAME_LEN: usize = 64;

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b':'
        })
}

/// `new`, `as_str` and `Display` for the name newtypes ([`Role`], [`Permission`]),
/// which share one syntax.
macro_rules! name_newtype {
    ($t:ident, $what:literal) => {
        impl $t {
            #[doc = concat!(
                        "Parse a ", $what, " name; [`Error::InvalidName`] if it is empty, ",
                        "longer than 64 characters or holds other characters than `a-z 0-9 _ - :`."
                    )]
            pub fn new(name: &str) -> Result<Self, Error> {
                if valid_name(name) {
                    Ok(Self(Cow::Owned(name.to_owned())))
                } else {
                    Err(Error::InvalidName)
                }
            }

            #[doc = concat!("The ", $what, "'s name.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A role name: 1 to 64 characters of `a-z 0-9 _ - :`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Role(Cow<'static, str>);

impl Role {
    /// Full control of the tenant.
    pub const OWNER: Role = Role(Cow::Borrowed("owner"));
    /// Administers members and clients.
    pub const ADMIN: Role = Role(Cow::Borrowed("admin"));
    /// Reads and writes the tenant's data.
    pub const MEMBER: Role = Role(Cow::Borrowed("member"));
    /// Reads the tenant's data.
    pub const VIEWER: Role = Role(Cow::Borrowed("viewer"));
}

name_newtype!(Role, "role");

/// A permission name: 1 to 64 characters of `a-z 0-9 _ - :`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Permission(Cow<'static, str>);

impl Permission {
    /// Read the tenant's data.
    pub const READ: Permission = Permission(Cow::Borrowed("read"));
    /// Create, change and delete the tenant's data.
    pub const WRITE: Permission = Permission(Cow::Borrowed("write"));
    /// Invite, remove and change the roles of members.
    pub const MANAGE_MEMBERS: Permission = Permission(Cow::Borrowed("manage_members"));
    /// Create clients and grant members access to them.
    pub const MANAGE_CLIENTS: Permission = Permission(Cow::Borrowed("manage_clients"));
    /// Change tenant settings, billing, and delete the tenant.
    pub const MANAGE_TENANT: Permission = Permission(Cow::Borrowed("manage_tenant"));
    /// Change one's own password: the only permission a session with
    /// `must_change_password` may use (see [`RolePolicy::password_change_permission`]).
    pub const CHANGE_PASSWORD: Permission = Permission(Cow::Borrowed("change_password"));
}

name_newtype!(Permission, "permission");

/// Longest `sub` accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;

/// The token's claims that this crate does not interpret (everything but the
/// registered claims, `roles`, `clients` and the tenant claim). `Debug` prints
/// only their names: values may be personal data.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct CustomClaims(pub(crate) serde_json::Map<String, serde_json::Value>);

impl fmt::Debug for CustomClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Who is calling, for which tenant, with which roles and client grants.
///
/// Only a verified token produces one, so holding a `TenantContext` is proof
/// that the tenant was authenticated.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TenantContext {
    tenant: TenantId,
    subject: String,
    user: Option<UserId>,
    roles: Vec<Role>,
    clients: Vec<ClientId>,
    active_client: Option<ClientId>,
    claims: CustomClaims,
    auth: AuthInfo,
    mfa: Option<MfaStatus>,
    grant: Option<Arc<GrantScope>>,
}

impl TenantContext {
    /// `subject` must be checked by the caller (`valid_subject`).
    pub(crate) fn with_subject(
        tenant: TenantId,
        subject: String,
        roles: Vec<Role>,
        clients: Vec<ClientId>,
        claims: CustomClaims,
    ) -> Self {
        let user = subject.parse().ok();
        Self {
            tenant,
            subject,
            user,
            roles,
            clients,
            active_client: None,
            claims,
            auth: AuthInfo::default(),
            mfa: None,
            grant: None,
        }
    }

    /// Attach how the session was authenticated (from the token).
    pub(crate) fn with_auth(mut self, auth: AuthInfo) -> Self {
        self.auth = auth;
        self
    }

    /// A context for a break-glass grant session: no roles, no clients; its
    /// permissions are exactly the grant's.
    pub(crate) fn for_grant(tenant: TenantId, subject: String, scope: GrantScope) -> Self {
        let mut ctx = Self::with_subject(
            tenant,
            subject,
            Vec::new(),
            Vec::new(),
            CustomClaims::default(),
        );
        // The support user is never a user of the tenant, even when the
        // grant's `sub` happens to be a UUID (a customer's user id, say):
        // code that compares `user()` with a row's owner must not see the
        // customer in a grant session.
        ctx.user = None;
        ctx.grant = Some(Arc::new(scope));
        ctx
    }

    #[cfg(any(feature = "postgres", feature = "sqlite", feature = "test-util", test))]
    pub(crate) fn new(
        tenant: TenantId,
        user: UserId,
        roles: Vec<Role>,
        clients: Vec<ClientId>,
    ) -> Self {
        Self::with_subject(
            tenant,
            user.to_string(),
            roles,
            clients,
            CustomClaims::default(),
        )
    }

    /// Build a context without a token, for tests only (feature `test-util`).
    #[cfg(feature = "test-util")]
    pub fn for_tests(
        tenant: TenantId,
        user: UserId,
        roles: Vec<Role>,
        clients: Vec<ClientId>,
    ) -> Self {
        Self::new(tenant, user, roles, clients)
    }

    /// The tenant (organisation).
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The subject (`sub`) as the issuer wrote it: a UUID, or an opaque id
    /// such as `auth0|5f7c...`. At most [`MAX_SUBJECT_LEN`] bytes, no control
    /// characters.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The user id, when `sub` is a canonical UUID ([`UserId`]); `None` for an
    /// opaque subject (use [`subject`](Self::subject) then) and always `None`
    /// in a break-glass grant session (the support user is nobody's account).
    pub fn user(&self) -> Option<UserId> {
        self.user
    }

    /// A claim of the token this crate does not interpret (for example
    /// `email`, `org_name`, `https://example.com/plan`), as JSON. The
    /// registered claims, `roles`, `clients` and the tenant claim are not
    /// here: use the typed accessors.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.0.get(name)
    }

    /// The roles from the token (unknown roles grant nothing).
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// How the session was authenticated: `amr`, `acr`, the time of the last
    /// second factor, the must-change-password state (see [`crate::stepup`]).
    pub fn auth(&self) -> &AuthInfo {
        &self.auth
    }

    /// Attach what the application knows about the user's MFA enrolment
    /// (first sign-in, enrolled or not), for the enrolment rules of
    /// [`RolePolicy::require_mfa_enrolment`]. Without it, a role with an
    /// enrolment rule is treated as past its grace period unless the token
    /// shows a second factor (fail closed).
    #[must_use]
    pub fn with_mfa_status(mut self, status: MfaStatus) -> Self {
        self.mfa = Some(status);
        self
    }

    /// The MFA enrolment status the application attached, if any.
    pub fn mfa_status(&self) -> Option<&MfaStatus> {
        self.mfa.as_ref()
    }

    /// The break-glass grant this session runs under, if any
    /// ([`crate::grant`]). A grant session has no roles: its permissions are
    /// exactly the grant's, until the grant expires.
    pub fn grant(&self) -> Option<&GrantScope> {
        self.grant.as_deref()
    }

    /// Whether the session must not write to the database: it runs under a
    /// read-only grant. The PostgreSQL pool then begins its transactions
    /// `READ ONLY`.
    pub fn is_read_only(&self) -> bool {
        self.grant
            .as_ref()
            .is_some_and(|g| g.access().is_read_only())
    }

    /// The clients this user may act for; empty means none.
    pub fn clients(&self) -> &[ClientId] {
        &self.clients
    }

    /// Chooses the client this session acts for when it writes: the query
    /// guard writes it into the client column of rows `INSERT`ed into
    /// client-scoped tables. The guard accepts it only if the user holds a
    /// grant for `client` or an organisation-wide role
    /// ([`GuardError::NoActiveClient`](crate::guard::GuardError::NoActiveClient)
    /// otherwise); RLS checks the row's client against the grants again. A
    /// session with exactly one grant acts for that client without choosing.
    #[must_use]
    pub fn with_active_client(mut self, client: ClientId) -> Self {
        self.active_client = Some(client);
        self
    }

    /// The client chosen with [`with_active_client`](Self::with_active_client).
    pub fn active_client(&self) -> Option<ClientId> {
        self.active_client
    }

    /// Whether the user holds a grant for `client`. An empty grant list allows
    /// no client.
    pub fn has_client(&self, client: ClientId) -> bool {
        self.clients.contains(&client)
    }

    /// [`Error::Forbidden`] unless the user holds a grant for `client`.
    pub fn require_client(&self, client: ClientId) -> Result<(), Error> {
        if self.has_client(client) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// [`Error::NotFound`] unless `path_tenant` names this context's tenant: a
    /// request for another tenant's resource looks exactly like a request for a
    /// resource that does not exist.
    pub fn check_path_tenant(&self, path_tenant: &str) -> Result<(), Error> {
        match path_tenant.parse::<TenantId>() {
            Ok(t) if t == self.tenant => Ok(()),
            _ => Err(Error::NotFound),
        }
    }
}

/// Roles mapped to permissions, as data.
///
/// [`RolePolicy::default`] holds the four tenant-level roles:
///
/// | role   | permissions |
/// |--------|-------------|
/// | viewer | read, change_password |
/// | member | read, write, change_password |
/// | admin  | read, write, manage_members, manage_clients, change_password |
/// | owner  | everything admin has, and manage_tenant |
///
/// Every role of the default policy also grants `change_password`.
///
/// Beyond roles, [`require`](Self::require) enforces, in this order:
/// a break-glass grant's permission set ([`Error::OutsideGrant`]); the
/// must-change-password restriction ([`Error::PasswordChangeRequired`]); the
/// roles ([`Error::Forbidden`]); MFA enrolment after its grace period
/// ([`Error::MfaEnrolmentRequired`]); a recent second factor
/// ([`Error::StepUpRequired`]). Time comes from [`RolePolicy::clock`].
#[derive(Clone, Debug)]
pub struct RolePolicy {
    grants: BTreeMap<Role, BTreeSet<Permission>>,
    rules: StepUpRules,
    clock: Arc<dyn Clock>,
}

impl RolePolicy {
    /// A policy in which no role grants anything.
    pub fn empty() -> Self {
        Self {
            grants: BTreeMap::new(),
            rules: StepUpRules::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Add `permissions` to `role` (creating the role if needed).
    #[must_use]
    pub fn grant(mut self, role: Role, permissions: impl IntoIterator<Item = Permission>) -> Self {
        self.grants.entry(role).or_default().extend(permissions);
        self
    }

    /// The permissions `role` grants (empty for an unknown role).
    pub fn permissions(&self, role: &Role) -> impl Iterator<Item = &Permission> {
        self.grants.get(role).into_iter().flatten()
    }

    /// Whether [`require`](Self::require) would allow `permission` now.
    pub fn permits(&self, ctx: &TenantContext, permission: &Permission) -> bool {
        self.check(ctx, permission).is_ok()
    }

    /// Whether one of the context's roles grants `permission` (roles only:
    /// no grant, step-up, enrolment or password rule).
    pub fn role_permits(&self, ctx: &TenantContext, permission: &Permission) -> bool {
        ctx.roles().iter().any(|r| self.role_grants(r, permission))
    }

    fn role_grants(&self, role: &Role, permission: &Permission) -> bool {
        self.grants
            .get(role)
            .is_some_and(|p| p.contains(permission))
    }

    /// Allow `permission` for `ctx`, or say why not:
    ///
    /// - [`Error::OutsideGrant`]: the session runs under a break-glass grant
    ///   that does not list the permission (a read-only grant lists only
    ///   `read`), or the grant has expired;
    /// - [`Error::PasswordChangeRequired`]: the session must change the
    ///   password first and `permission` is not the password-change one;
    /// - [`Error::Forbidden`]: no role of the context grants it;
    /// - [`Error::MfaEnrolmentRequired`]: every role of the context that grants
    ///   it requires MFA enrolment, the grace period from the first sign-in
    ///   is over and MFA is not active (the permission is admin-only: no role
    ///   of the policy without an enrolment rule grants it);
    /// - [`Error::StepUpRequired`]: the permission requires a second factor
    ///   (no older than `max_age` seconds, when set) that the session lacks.
    pub fn require(&self, ctx: &TenantContext, permission: &Permission) -> Result<(), Error> {
        let r = self.check(ctx, permission);
        #[cfg(feature = "tracing")]
        if let Err(e) = &r {
            tracing::info!(target: "hisn::tenant_guard", tenant = %ctx.tenant(), subject = ctx.subject(), permission = %permission, grant = ctx.grant().is_some(), reason = %e, "permission denied");
        }
        r
    }

    fn check(&self, ctx: &TenantContext, permission: &Permission) -> Result<(), Error> {
        let now = self.clock.now_unix();
        if let Some(grant) = ctx.grant() {
            // A grant session's permissions are the grant's, nothing else.
            // Never the password change, whatever its name in this policy:
            // that is taking over the customer's account.
            if now >= grant.expires_at()
                || !grant.access().allows(permission)
                || *permission == self.rules.password_change
            {
                return Err(Error::OutsideGrant);
            }
        } else {
            if ctx.auth().must_change_password() && *permission != self.rules.password_change {
                return Err(Error::PasswordChangeRequired);
            }
            let granting: Vec<&Role> = ctx
                .roles()
                .iter()
                .filter(|r| self.role_grants(r, permission))
                .collect();
            if granting.is_empty() {
                return Err(Error::Forbidden);
            }
            // Enrolment: a role past its grace period without MFA keeps only
            // the permissions some role without an enrolment rule also grants.
            let usable = granting.iter().any(|r| match self.rules.enrolment.get(*r) {
                None => true,
                Some(grace) => !enrolment_overdue(ctx.auth(), ctx.mfa_status(), *grace, now),
            });
            if !usable && self.admin_only(permission) {
                return Err(Error::MfaEnrolmentRequired);
            }
        }
        if let Some(max_age) = self.rules.second_factor.get(permission)
            && !second_factor_fresh(ctx.auth(), *max_age, now)
        {
            return Err(Error::StepUpRequired { max_age: *max_age });
        }
        Ok(())
    }

    /// No role of the policy without an enrolment rule grants `permission`.
    fn admin_only(&self, permission: &Permission) -> bool {
        !self.grants.iter().any(|(role, perms)| {
            !self.rules.enrolment.contains_key(role) && perms.contains(permission)
        })
    }

    /// `permission` requires a second factor in the session; with `max_age`,
    /// one presented no longer ago than that (step-up: re-authenticate with
    /// TOTP). Refusals are [`Error::StepUpRequired`].
    #[must_use]
    pub fn require_second_factor(
        mut self,
        permission: Permission,
        max_age: Option<std::time::Duration>,
    ) -> Self {
        self.rules
            .second_factor
            .insert(permission, max_age.map(|d| d.as_secs()));
        self
    }

    /// `role` requires MFA enrolment within `grace` of the user's first
    /// sign-in (the application attaches it with
    /// [`TenantContext::with_mfa_status`];
    /// [`DEFAULT_MFA_GRACE`](crate::stepup::DEFAULT_MFA_GRACE) is 14 days).
    /// After the grace period, until MFA is active (enrolled, or a second
    /// factor in the token), the role's admin-only permissions (those no role
    /// without an enrolment rule grants) are refused with
    /// [`Error::MfaEnrolmentRequired`].
    #[must_use]
    pub fn require_mfa_enrolment(mut self, role: Role, grace: std::time::Duration) -> Self {
        self.rules.enrolment.insert(role, grace.as_secs());
        self
    }

    /// The only permission a session with `must_change_password` may use
    /// (default [`Permission::CHANGE_PASSWORD`]).
    #[must_use]
    pub fn password_change_permission(mut self, permission: Permission) -> Self {
        self.rules.password_change = permission;
        self
    }

    /// The clock for step-up ages, enrolment grace periods and grant expiry
    /// (default [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// When the enrolment grace period of `ctx` ends (seconds since the
    /// epoch): the earliest deadline among its roles with an enrolment rule,
    /// while MFA is not active; `None` when no rule applies or MFA is active.
    /// For a "set up TOTP within N days" banner.
    pub fn enrolment_deadline(&self, ctx: &TenantContext) -> Option<u64> {
        if ctx.auth().has_second_factor() || ctx.mfa_status().is_some_and(|s| s.enrolled()) {
            return None;
        }
        let first = ctx.mfa_status().map_or(0, |s| s.first_sign_in());
        // A first sign-in in the future counts as overdue (see `MfaStatus::new`).
        let first = if first > self.clock.now_unix().saturating_add(crate::MAX_LEEWAY_SECS) {
            0
        } else {
            first
        };
        ctx.roles()
            .iter()
            .filter_map(|r| self.rules.enrolment.get(r))
            .map(|grace| first.saturating_add(*grace))
            .min()
    }
}

impl Default for RolePolicy {
    fn default() -> Self {
        use Permission as P;
        Self::empty()
            .grant(Role::VIEWER, [P::READ, P::CHANGE_PASSWORD])
            .grant(Role::MEMBER, [P::READ, P::WRITE, P::CHANGE_PASSWORD])
            .grant(
                Role::ADMIN,
                [
                    P::READ,
                    P::WRITE,
                    P::MANAGE_MEMBERS,
                    P::MANAGE_CLIENTS,
                    P::CHANGE_PASSWORD,
                ],
            )
            .grant(
                Role::OWNER,
                [
                    P::READ,
                    P::WRITE,
                    P::MANAGE_MEMBERS,
                    P::MANAGE_CLIENTS,
                    P::MANAGE_TENANT,
                    P::CHANGE_PASSWORD,
                ],
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(roles: Vec<Role>, clients: Vec<ClientId>) -> TenantContext {
        TenantContext::new(
            "11111111-1111-4111-8111-111111111111".parse().unwrap(),
            "22222222-2222-4222-8222-222222222222".parse().unwrap(),
            roles,
            clients,
        )
    }

    #[test]
    fn default_roles_grant_what_the_table_says() {
        let p = RolePolicy::default();
        let viewer = ctx(vec![Role::VIEWER], vec![]);
        assert!(p.require(&viewer, &Permission::READ).is_ok());
        assert!(matches!(
            p.require(&viewer, &Permission::WRITE),
            Err(Error::Forbidden)
        ));
        let member = ctx(vec![Role::MEMBER], vec![]);
        assert!(p.permits(&member, &Permission::WRITE));
        assert!(!p.permits(&member, &Permission::MANAGE_MEMBERS));
        let admin = ctx(vec![Role::ADMIN], vec![]);
        assert!(p.permits(&admin, &Permission::MANAGE_CLIENTS));
        assert!(!p.permits(&admin, &Permission::MANAGE_TENANT));
        let owner = ctx(vec![Role::OWNER], vec![]);
        assert!(p.permits(&owner, &Permission::MANAGE_TENANT));
    }

    #[test]
    fn unknown_roles_and_no_roles_grant_nothing() {
        let p = RolePolicy::default();
        assert!(!p.permits(&ctx(vec![], vec![]), &Permission::READ));
        assert!(!p.permits(
            &ctx(vec![Role::new("superuser").unwrap()], vec![]),
            &Permission::READ
        ));
        assert!(!RolePolicy::empty().permits(&ctx(vec![Role::OWNER], vec![]), &Permission::READ));
    }

    #[test]
    fn custom_permissions_are_data() {
        let export = Permission::new("reports:export").unwrap();
        let p = RolePolicy::default().grant(Role::new("auditor").unwrap(), [export.clone()]);
        assert!(p.permits(&ctx(vec![Role::new("auditor").unwrap()], vec![]), &export));
        assert!(!p.permits(&ctx(vec![Role::OWNER], vec![]), &export));
        assert!(Role::new("").is_err());
        assert!(Role::new("Owner").is_err());
        assert!(Permission::new(&"a".repeat(65)).is_err());
    }

    #[test]
    fn empty_client_grants_mean_no_client() {
        let c: ClientId = "33333333-3333-4333-8333-333333333333".parse().unwrap();
        let none = ctx(vec![Role::OWNER], vec![]);
        assert!(matches!(none.require_client(c), Err(Error::Forbidden)));
        let some = ctx(vec![Role::MEMBER], vec![c]);
        assert!(some.require_client(c).is_ok());
    }

    #[test]
    fn path_tenant_mismatch_is_not_found() {
        let c = ctx(vec![], vec![]);
        assert!(
            c.check_path_tenant("11111111-1111-4111-8111-111111111111")
                .is_ok()
        );
        assert!(matches!(
            c.check_path_tenant("44444444-4444-4444-8444-444444444444"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            c.check_path_tenant("not-a-uuid"),
            Err(Error::NotFound)
        ));
    }

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn auth(amr: &[&str], mfa_time: Option<u64>, must_change_password: bool) -> AuthInfo {
        AuthInfo::new(
            amr.iter().map(|s| (*s).to_owned()).collect(),
            None,
            Some(NOW),
            mfa_time,
            must_change_password,
        )
    }

    fn at(now: u64) -> Arc<crate::ManualClock> {
        Arc::new(crate::ManualClock::new(now))
    }

    /// `role_permits` answers from the roles alone: a session that must
    /// change its password (which `require` refuses) still has the roles'
    /// permissions there, and unknown or missing roles have none.
    #[test]
    fn role_permits_reads_the_roles_only() {
        let p = RolePolicy::default();
        let member = ctx(vec![Role::MEMBER], vec![]).with_auth(auth(&[], None, true));
        assert!(p.role_permits(&member, &Permission::WRITE));
        assert!(!p.permits(&member, &Permission::WRITE));
        assert!(!p.role_permits(&member, &Permission::MANAGE_MEMBERS));
        assert!(!p.role_permits(&ctx(vec![], vec![]), &Permission::READ));
        let unknown = ctx(vec![Role::new("auditor").unwrap()], vec![]);
        assert!(!p.role_permits(&unknown, &Permission::READ));
    }

    /// `permissions` lists exactly what the role table grants.
    #[test]
    fn permissions_lists_the_roles_table_row() {
        let p = RolePolicy::default();
        let viewer: Vec<_> = p.permissions(&Role::VIEWER).cloned().collect();
        assert_eq!(viewer, vec![Permission::CHANGE_PASSWORD, Permission::READ]);
        assert_eq!(p.permissions(&Role::OWNER).count(), 6);
        assert_eq!(p.permissions(&Role::new("auditor").unwrap()).count(), 0);
    }

    /// The enrolment deadline is the earliest first sign-in + grace over the
    /// roles with a rule; `None` once MFA is active (a second factor in the
    /// token, or enrolled). A first sign-in up to the clock-skew leeway in
    /// the future is taken as is; any later counts from the epoch (overdue).
    #[test]
    fn enrolment_deadline_is_the_earliest_grace_end_and_none_with_mfa() {
        let p = RolePolicy::default()
            .require_mfa_enrolment(Role::ADMIN, std::time::Duration::from_secs(14 * DAY))
            .require_mfa_enrolment(Role::OWNER, std::time::Duration::from_secs(7 * DAY))
            .clock(at(NOW));
        let both = ctx(vec![Role::ADMIN, Role::OWNER], vec![])
            .with_mfa_status(MfaStatus::new(NOW - DAY, false));
        assert_eq!(p.enrolment_deadline(&both), Some(NOW - DAY + 7 * DAY));
        let member = ctx(vec![Role::MEMBER], vec![]).with_mfa_status(MfaStatus::new(NOW, false));
        assert_eq!(p.enrolment_deadline(&member), None);
        // MFA active either way: no deadline.
        let otp = both.clone().with_auth(auth(&["otp"], None, false));
        assert_eq!(p.enrolment_deadline(&otp), None);
        let enrolled = both
            .clone()
            .with_mfa_status(MfaStatus::new(NOW - DAY, true));
        assert_eq!(p.enrolment_deadline(&enrolled), None);
        // Future first sign-in: within the leeway it stands, beyond it is 0.
        let edge = NOW + crate::MAX_LEEWAY_SECS;
        let admin =
            |first| ctx(vec![Role::ADMIN], vec![]).with_mfa_status(MfaStatus::new(first, false));
        assert_eq!(p.enrolment_deadline(&admin(edge)), Some(edge + 14 * DAY));
        assert_eq!(p.enrolment_deadline(&admin(edge + 1)), Some(14 * DAY));
        // No status at all: the grace period never started.
        let unknown = ctx(vec![Role::ADMIN], vec![]);
        assert_eq!(p.enrolment_deadline(&unknown), Some(14 * DAY));
    }

    /// Client grants: exactly the listed clients; the active client is the
    /// one chosen, none by default.
    #[test]
    fn client_grants_and_active_client_are_exact() {
        let c1: ClientId = "33333333-3333-4333-8333-333333333333".parse().unwrap();
        let c2: ClientId = "55555555-5555-4555-8555-555555555555".parse().unwrap();
        let one = ctx(vec![Role::MEMBER], vec![c1]);
        assert_eq!(one.clients(), &[c1]);
        assert!(one.has_client(c1));
        assert!(!one.has_client(c2));
        assert!(matches!(one.require_client(c2), Err(Error::Forbidden)));
        assert_eq!(one.active_client(), None);
        assert_eq!(one.with_active_client(c2).active_client(), Some(c2));
    }

    /// The context's `Debug` names the custom claims but never prints their
    /// values (they may be personal data).
    #[test]
    fn debug_names_custom_claims_without_their_values() {
        let mut claims = serde_json::Map::new();
        claims.insert("email".into(), serde_json::json!("alice@example.com"));
        let c = TenantContext::with_subject(
            "11111111-1111-4111-8111-111111111111".parse().unwrap(),
            "auth0|abc".into(),
            vec![Role::VIEWER],
            vec![],
            CustomClaims(claims),
        );
        let shown = format!("{c:?}");
        assert!(shown.contains("\"email\""), "{shown}");
        assert!(!shown.contains("alice"), "{shown}");
        assert_eq!(
            c.claim("email"),
            Some(&serde_json::json!("alice@example.com"))
        );
        assert_eq!(c.subject(), "auth0|abc");
        assert_eq!(c.user(), None, "an opaque subject is no user id");
    }

    /// Role and permission names: 1 to 64 of `a-z 0-9 _ - :`, each allowed
    /// character accepted on its own and nothing else.
    #[test]
    fn names_accept_exactly_the_documented_alphabet_and_length() {
        for ok in ["a", "z9", "hr_viewer", "hr-viewer", "reports:export", "0"] {
            assert!(Role::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(Permission::new(&"a".repeat(64)).unwrap().as_str().len(), 64);
        for bad in ["", "A", "hr viewer", "hr.viewer", "hr/viewer", "é", "a\n"] {
            assert!(Role::new(bad).is_err(), "{bad:?}");
        }
        assert!(Role::new(&"a".repeat(65)).is_err());
        assert_eq!(Role::new("hr:admin").unwrap().to_string(), "hr:admin");
    }
}
