//! The PostgreSQL tenant pool.

use sqlx::Postgres;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use crate::guard::Dialect;
use crate::rls::TENANT_SETTING;
use crate::{Error, TenantId};

/// Begin a transaction whose tenant setting is transaction-local
/// (`is_local = true`): it ends with the transaction, committed, rolled back
/// or dropped.
///
/// `BEGIN` and `set_config` go in one simple-query round trip, so the tenant is
/// a literal here. That is safe only because a `TenantId` always prints as a
/// hyphenated UUID; the check below makes that an invariant, not an assumption.
async fn begin_tenant(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<sqlx::Transaction<'static, Postgres>, Error> {
    let tenant = tenant.to_string();
    if tenant.len() != 36 || !tenant.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(Error::InvalidId);
    }
    let begin = format!("BEGIN; SELECT set_config('{TENANT_SETTING}', '{tenant}', true)");
    Ok(pool.begin_with(sqlx::AssertSqlSafe(begin)).await?)
}

/// The tenant is bound as a `uuid`.
fn tenant_value(tenant: TenantId) -> Uuid {
    tenant.as_uuid()
}

super::tenant_pool! {
    db = Postgres,
    sqlx_pool = PgPool,
    row = PgRow,
    dialect = Dialect::Postgres,
    pool = PgTenantPool,
    tx = PgTenantTx,
    query = PgTenantQuery,
    name = "PostgreSQL",
}
