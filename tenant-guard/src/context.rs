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

use crate::{ClientId, Error, TenantId, UserId};

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
    claims: CustomClaims,
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
            claims,
        }
    }

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
    /// opaque subject (use [`subject`](Self::subject) then).
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

    /// The clients this user may act for; empty means none.
    pub fn clients(&self) -> &[ClientId] {
        &self.clients
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
/// | viewer | read |
/// | member | read, write |
/// | admin  | read, write, manage_members, manage_clients |
/// | owner  | everything admin has, and manage_tenant |
#[derive(Clone, Debug)]
pub struct RolePolicy {
    grants: BTreeMap<Role, BTreeSet<Permission>>,
}

impl RolePolicy {
    /// A policy in which no role grants anything.
    pub fn empty() -> Self {
        Self {
            grants: BTreeMap::new(),
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

    /// Whether any of the context's roles grants `permission`.
    pub fn permits(&self, ctx: &TenantContext, permission: &Permission) -> bool {
        ctx.roles()
            .iter()
            .any(|r| self.grants.get(r).is_some_and(|p| p.contains(permission)))
    }

    /// [`Error::Forbidden`] unless one of the context's roles grants `permission`.
    pub fn require(&self, ctx: &TenantContext, permission: &Permission) -> Result<(), Error> {
        if self.permits(ctx, permission) {
            Ok(())
        } else {
            #[cfg(feature = "tracing")]
            tracing::info!(target: "hisn::tenant_guard", tenant = %ctx.tenant(), subject = ctx.subject(), permission = %permission, "permission denied");
            Err(Error::Forbidden)
        }
    }
}

impl Default for RolePolicy {
    fn default() -> Self {
        use Permission as P;
        Self::empty()
            .grant(Role::VIEWER, [P::READ])
            .grant(Role::MEMBER, [P::READ, P::WRITE])
            .grant(
                Role::ADMIN,
                [P::READ, P::WRITE, P::MANAGE_MEMBERS, P::MANAGE_CLIENTS],
            )
            .grant(
                Role::OWNER,
                [
                    P::READ,
                    P::WRITE,
                    P::MANAGE_MEMBERS,
                    P::MANAGE_CLIENTS,
                    P::MANAGE_TENANT,
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
}
