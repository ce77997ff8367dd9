//! What the guard needs to know about a session beyond its tenant: its roles
//! (role gates, organisation-wide roles) and its client grants (two-level
//! tenancy), and the parameters the guard adds to a statement.

use crate::{ClientId, TenantContext};

/// A parameter the guard adds after the statement's own ones
/// ([`ScopedStatement::guard_params`](super::ScopedStatement::guard_params)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GuardParam {
    /// The tenant (PostgreSQL: `uuid`; SQLite: the hyphenated text).
    Tenant,
    /// The session's granted clients: PostgreSQL a `uuid[]`, SQLite a JSON
    /// array of the hyphenated ids (text), read with `json_each`. Empty when
    /// the session holds no grant: then no client-scoped row matches.
    Clients,
    /// The client an `INSERT` writes into a client-scoped table
    /// ([`QueryGuard::active_client`](super::QueryGuard::active_client)).
    ActiveClient,
}

/// The roles and client grants of a session, as the guard checks them.
///
/// Build it from a verified context with [`SessionScope::from_context`]
/// (the tenant pools do); [`SessionScope::default`] has no role and no
/// client: it reads no client-scoped row and no role-gated table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionScope {
    roles: Vec<String>,
    clients: Vec<ClientId>,
    active: Option<ClientId>,
}

impl SessionScope {
    /// A session holding `roles` and granted `clients`.
    pub fn new(
        roles: impl IntoIterator<Item = impl AsRef<str>>,
        clients: impl IntoIterator<Item = ClientId>,
    ) -> Self {
        Self {
            roles: sorted_unique(roles.into_iter().map(|r| r.as_ref().to_owned())),
            clients: sorted_unique(clients),
            active: None,
        }
    }

    /// The roles, client grants and chosen active client of a verified
    /// context.
    pub fn from_context(ctx: &TenantContext) -> Self {
        let mut s = Self::new(
            ctx.roles().iter().map(crate::Role::as_str),
            ctx.clients().iter().copied(),
        );
        s.active = ctx.active_client();
        s
    }

    /// Chooses the client `INSERT`s write (it must be granted, or the session
    /// organisation-wide: checked when a statement needs it).
    #[must_use]
    pub fn with_active_client(mut self, client: ClientId) -> Self {
        self.active = Some(client);
        self
    }

    /// The roles, sorted.
    pub fn roles(&self) -> impl Iterator<Item = &str> + '_ {
        self.roles.iter().map(String::as_str)
    }

    /// The granted clients, sorted.
    pub fn clients(&self) -> &[ClientId] {
        &self.clients
    }

    /// The client chosen with [`Self::with_active_client`], if any.
    pub fn chosen_client(&self) -> Option<ClientId> {
        self.active
    }

    /// The granted clients as the JSON array SQLite binds
    /// ([`GuardParam::Clients`]).
    pub fn clients_json(&self) -> String {
        let mut out = String::with_capacity(2 + self.clients.len() * 39);
        out.push('[');
        for (i, c) in self.clients.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(&c.to_string());
            out.push('"');
        }
        out.push(']');
        out
    }
}

/// `items` sorted, each once: a session's roles and grants compare equal
/// whatever order the token listed them in, and a client granted twice is
/// still the session's only grant (its `INSERT`s write into it).
///
/// Outside [`SessionScope::new`] because cargo-mutants never mutates inside a
/// function named `new` (docs/MUTATION.md).
fn sorted_unique<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.into_iter().collect();
    items.sort();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_json_is_a_json_array_of_ids() {
        let a: ClientId = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa".parse().unwrap();
        let b: ClientId = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb".parse().unwrap();
        assert_eq!(SessionScope::default().clients_json(), "[]");
        let s = SessionScope::new(["x", "x", "a"], [b, a, b]);
        assert_eq!(s.roles().collect::<Vec<_>>(), ["a", "x"]);
        let parsed: Vec<String> = serde_json::from_str(&s.clients_json()).unwrap();
        assert_eq!(parsed, [a.to_string(), b.to_string()]);
    }

    /// A verified context's session scope carries its roles, its grants and
    /// its chosen active client, nothing else.
    #[test]
    fn from_context_takes_roles_grants_and_the_active_client() {
        let a: ClientId = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa".parse().unwrap();
        let b: ClientId = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb".parse().unwrap();
        let ctx = TenantContext::new(
            "11111111-1111-4111-8111-111111111111".parse().unwrap(),
            "22222222-2222-4222-8222-222222222222".parse().unwrap(),
            vec![crate::Role::MEMBER, crate::Role::ADMIN],
            vec![b, a],
        );
        let s = SessionScope::from_context(&ctx);
        assert_eq!(s.roles().collect::<Vec<_>>(), ["admin", "member"]);
        assert_eq!(s.clients(), [a, b]);
        assert_eq!(s.chosen_client(), None);
        let s = SessionScope::from_context(&ctx.with_active_client(b));
        assert_eq!(s.chosen_client(), Some(b));
    }

    /// Roles and grants are a set: the order a token lists them in does not
    /// matter, and a client granted twice is still the session's only grant,
    /// so its `INSERT`s into a client-scoped table write into that client.
    #[test]
    fn roles_and_grants_are_sorted_sets() {
        let a: ClientId = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa".parse().unwrap();
        let b: ClientId = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb".parse().unwrap();
        assert_eq!(
            SessionScope::new(["x", "a"], [b, a]),
            SessionScope::new(["a", "x", "a"], [a, b, a])
        );
        let twice = SessionScope::new(["member"], [b, b]);
        assert_eq!(twice.clients(), [b]);
        let guard = super::super::QueryGuard::new(
            super::super::TableRegistry::parse_spec("ledger:tenant_id:client_id").unwrap(),
            super::super::Dialect::Postgres,
        );
        assert_eq!(guard.active_client(&twice), Ok(b));
    }
}
