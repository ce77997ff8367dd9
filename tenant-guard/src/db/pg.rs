//! The PostgreSQL tenant pool.

use sqlx::Postgres;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use crate::guard::Dialect;
use crate::{Error, TenantId};

/// The statement that sets the tenant for one transaction; the tenant is `$1`.
const SET_TENANT: &str = "SELECT set_config('hisn.tenant_id', $1, true)";

/// Begin a transaction whose tenant setting is transaction-local
/// (`is_local = true`): it ends with the transaction, committed, rolled back
/// or dropped. The tenant is a bound parameter, never text in SQL.
async fn begin_tenant(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<sqlx::Transaction<'static, Postgres>, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(SET_TENANT)
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
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

#[cfg(test)]
mod tests {
    #[test]
    fn set_tenant_names_the_rls_setting_and_is_transaction_local() {
        assert!(super::SET_TENANT.contains(&format!("'{}'", crate::rls::TENANT_SETTING)));
        assert!(super::SET_TENANT.ends_with("$1, true)"));
    }
}
