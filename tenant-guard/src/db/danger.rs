//! Dangerous: statements that skip the query guard.
//!
//! Nothing here is needed to serve tenants. It exists so that an operator or
//! a test can check that row-level security *alone* holds (the `hisn guard
//! exec --unguarded` command and the cross-layer tests use it): statements
//! run here reach the database as written, inside a tenant transaction, as the
//! application role, with only RLS between them and other tenants' rows. On a
//! database without the generated RLS, they read and write every tenant.

use crate::db::PgTenantTx;

/// The connection of `tx` with the query guard switched off: every statement
/// sent through it skips the guard (layer 2), including `SET`, `set_config`
/// and DDL. Row-level security (layer 3) still applies; use it to test that
/// and nothing else.
pub fn unguarded(tx: &mut PgTenantTx) -> &mut sqlx::PgConnection {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "hisn::tenant_guard", tenant = %tx.tenant(), "query guard switched off for a tenant transaction (danger::unguarded)");
    tx.raw_connection()
}
