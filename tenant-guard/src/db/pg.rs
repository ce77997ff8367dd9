//! The PostgreSQL tenant pool.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use crate::guard::{Dialect, QueryGuard};
use crate::rls::ContextKey;
use crate::{Clock, Error, SystemClock, TenantId};

/// The statement that sets the tenant context for one transaction; the signed
/// token is `$1` (never text in SQL, so it is not in `pg_stat_activity`).
/// In the same round trip it checks that the connection carries no session
/// state an earlier transaction could have planted (with the guard off) to
/// catch this tenant's statements: temporary relations (they shadow tenant
/// tables), a changed `search_path`, SQL-level prepared statements and open
/// (`WITH HOLD`) cursors. `false` means the connection is refused.
const SET_CONTEXT: &str = "SELECT set_config('hisn.tenant_context', $1, true)";

/// `true` when the connection carries no session state an earlier transaction
/// could have planted (with the guard off) to catch the next tenant's
/// statements: temporary relations (they shadow tenant tables), a changed
/// `search_path` (`$1`: the role's reset value, read once per pool with
/// [`SEARCH_PATH_RESET`]), SQL-level prepared statements, `WITH HOLD` cursors.
const SESSION_CLEAN: &str = "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema()) \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_cursors WHERE is_holdable) \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql) \
     AND pg_catalog.current_setting('search_path') = $1";

/// The `search_path` a connection of this role starts with. `pg_settings`
/// materialises every setting (~1 ms a query here), so the pool reads it once
/// and the per-transaction check compares the cheap `current_setting` with it.
const SEARCH_PATH_RESET: &str =
    "SELECT s.reset_val FROM pg_catalog.pg_settings s WHERE s.name = 'search_path'";

/// Default lifetime of a tenant context token: a transaction must *begin*
/// within this time of the token being signed (the database compares the
/// expiry with `now()`, the transaction's start, so a transaction may run
/// longer). It covers clock skew between the application and the database.
pub const DEFAULT_CONTEXT_TTL: Duration = Duration::from_secs(300);
/// Longest context token lifetime accepted.
pub const MAX_CONTEXT_TTL: Duration = Duration::from_secs(3600);

/// What the pool needs to sign a tenant context: the key, the token lifetime
/// and the clock.
pub(crate) struct PgContext {
    key: ContextKey,
    ttl: u64,
    clock: Arc<dyn Clock>,
    /// The role's reset `search_path`, read on the first transaction.
    search_path: std::sync::OnceLock<String>,
}

/// Begin a transaction and set its tenant context: a token signed with the
/// context key, transaction-local (`is_local = true`), so it ends with the
/// transaction, committed, rolled back or dropped. RLS trusts only a token
/// whose MAC verifies, so SQL that changes the setting cannot move the tenant.
async fn begin_tenant(
    pool: &PgPool,
    context: &PgContext,
    tenant: TenantId,
) -> Result<sqlx::Transaction<'static, Postgres>, Error> {
    let expiry = context.clock.now_unix().saturating_add(context.ttl);
    let token = context.key.token(tenant, expiry);
    let mut conn = pool.acquire().await?;
    let search_path = match context.search_path.get() {
        Some(p) => p.clone(),
        None => {
            let p: Option<String> = sqlx::query_scalar(SEARCH_PATH_RESET)
                .fetch_one(&mut *conn)
                .await?;
            let p = p.ok_or(Error::Config("the database reports no search_path"))?;
            context.search_path.get_or_init(|| p).clone()
        }
    };
    let clean: Option<bool> = sqlx::query_scalar(SESSION_CLEAN)
        .bind(search_path)
        .fetch_one(&mut *conn)
        .await?;
    if clean != Some(true) {
        // Fail closed: never run a tenant's statements on a connection an
        // earlier transaction left state on; close it instead of reusing it.
        conn.close_on_drop();
        return Err(Error::Config(
            "the connection carried session state (temporary objects, search_path, prepared statements or cursors) from an earlier transaction; it was closed",
        ));
    }
    let mut tx = sqlx::Transaction::begin(conn, None).await?;
    sqlx::query(SET_CONTEXT)
        .bind(token.as_str())
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
    context = PgContext,
    pool = PgTenantPool,
    tx = PgTenantTx,
    query = PgTenantQuery,
    query_as = PgTenantQueryAs,
    query_scalar = PgTenantQueryScalar,
    prepare = super::catalog::prepare_pg,
    name = "PostgreSQL",
}

impl PgTenantPool {
    /// Wrap `pool`; every statement will pass `guard` (which must use
    /// [`Dialect::Postgres`]) and every transaction carries a tenant context
    /// signed with `key`, the key [`rls::generate_sql`](crate::rls::generate_sql)
    /// installed in the database.
    ///
    /// The wrapper takes the pool by value and never returns it. Keep no other
    /// handle to it in code that serves tenants. `pool` must connect as the
    /// application role (not the tables' owner, no BYPASSRLS): check it with
    /// [`rls::verify`](crate::rls::verify) at start-up.
    pub fn new(pool: PgPool, guard: QueryGuard, key: ContextKey) -> Result<Self, Error> {
        if guard.dialect() != Dialect::Postgres {
            return Err(Error::Config(
                "the query guard's dialect does not match the database",
            ));
        }
        Ok(Self {
            pool,
            guard: Arc::new(guard),
            context: Arc::new(PgContext {
                key,
                ttl: DEFAULT_CONTEXT_TTL.as_secs(),
                clock: Arc::new(SystemClock),
                search_path: std::sync::OnceLock::new(),
            }),
            ready: Arc::default(),
        })
    }

    /// How long a signed tenant context stays usable for starting a transaction
    /// (default [`DEFAULT_CONTEXT_TTL`], at most [`MAX_CONTEXT_TTL`], at least
    /// one second), and the clock that dates it.
    pub fn with_context_ttl(mut self, ttl: Duration, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        if ttl > MAX_CONTEXT_TTL || ttl.as_secs() == 0 {
            return Err(Error::Config(
                "context ttl must be between 1 s and MAX_CONTEXT_TTL",
            ));
        }
        let key = self.context.key.clone();
        self.context = Arc::new(PgContext {
            key,
            ttl: ttl.as_secs(),
            clock,
            search_path: std::sync::OnceLock::new(),
        });
        Ok(self)
    }
}

impl PgTenantTx {
    /// The connection under the transaction, without the guard: for
    /// [`danger::unguarded`](super::danger::unguarded) only.
    pub(crate) fn raw_connection(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn set_context_names_the_rls_setting_and_is_transaction_local() {
        assert!(super::SET_CONTEXT.contains(&format!("'{}'", crate::rls::CONTEXT_SETTING)));
        assert!(super::SET_CONTEXT.ends_with("$1, true)"));
    }
}
