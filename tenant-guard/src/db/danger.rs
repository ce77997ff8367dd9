//! Dangerous: tenant contexts without a token, statements that skip the
//! query guard.
//!
//! Nothing here is needed to serve tenants. It exists for operator tools and
//! tests (`hisn guard exec`, the cross-layer tests): a context built from a
//! tenant id the operator typed, and, on PostgreSQL, statements that reach
//! the database as written, inside a tenant transaction, as the application
//! role, with only RLS between them and other tenants' rows (on a database
//! without the generated RLS, they read and write every tenant). Never call
//! these with request data.

#[cfg(feature = "postgres")]
use crate::db::PgTenantTx;
use crate::{TenantContext, TenantId, UserId};

/// A [`TenantContext`] for `tenant` that no token vouches for, acting as
/// `user`, with no roles and no client grants. Whoever calls this decides the
/// tenant: an operator's tool, never a request handler.
pub fn context_without_token(tenant: TenantId, user: UserId) -> TenantContext {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "hisn::tenant_guard", %tenant, %user, "tenant context created without a token (danger::context_without_token)");
    TenantContext::new(tenant, user, Vec::new(), Vec::new())
}

/// [`context_without_token`] with `roles` and client grants `clients`: what
/// `hisn guard exec --roles .. --clients ..` runs as, to try role gates and
/// two-level tenancy from an operator's tool. Never with request data.
pub fn context_with_scope(
    tenant: TenantId,
    user: UserId,
    roles: Vec<crate::Role>,
    clients: Vec<crate::ClientId>,
) -> TenantContext {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "hisn::tenant_guard", %tenant, %user, roles = roles.len(), clients = clients.len(), "tenant context created without a token (danger::context_with_scope)");
    TenantContext::new(tenant, user, roles, clients)
}

#[cfg(feature = "postgres")]
/// The connection of `tx` with the query guard switched off: every statement
/// sent through it skips the guard (layer 2), including `SET`, `set_config`
/// and DDL. Row-level security (layer 3) still applies; use it to test that
/// and nothing else.
pub fn unguarded(tx: &mut PgTenantTx) -> &mut sqlx::PgConnection {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "hisn::tenant_guard", tenant = %tx.tenant(), "query guard switched off for a tenant transaction (danger::unguarded)");
    tx.raw_connection()
}
