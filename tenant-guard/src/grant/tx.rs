//! Tenant transactions of a grant session: `READ ONLY` on PostgreSQL.
//!
//! A read-only grant's PostgreSQL transaction cannot write, whatever SQL runs
//! in it: the pool opens it with `BEGIN READ ONLY` (in the same message as
//! `BEGIN`, so the grant costs no round trip; see `BEGIN_READ_ONLY` in
//! src/db/pg.rs), PostgreSQL refuses `INSERT`/`UPDATE`/`DELETE`/DDL in it,
//! and a transaction that has run a query (the tenant context statement runs
//! first) cannot be switched back to `READ WRITE`.
//!
//! SQLite has no per-transaction read-only mode on a shared connection
//! (`PRAGMA query_only` outlives the transaction): the permission check
//! ([`Error::OutsideGrant`]) and the query guard are what hold there.

use crate::{Error, TenantContext};

/// A grant session's context kept past the grant's expiry (it is `Clone`)
/// begins no transaction, whether or not the application asked
/// [`RolePolicy::require`](crate::RolePolicy::require) first. Checked by both
/// tenant pools before `BEGIN`.
pub(crate) fn admit(ctx: &TenantContext) -> Result<(), Error> {
    match ctx.grant() {
        Some(g) if g.is_expired() => Err(Error::OutsideGrant),
        _ => Ok(()),
    }
}
