//! The PostgreSQL tenant pool.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use crate::guard::{Dialect, QueryGuard};
use crate::rls::ContextKey;
use crate::{Clock, Error, SystemClock, TenantId};

/// `true` when the connection carries no session state that could catch the
/// next tenant's statements (see `SET_CONTEXT`):
/// - no temporary schema at all: `pg_my_temp_schema()` is `0` until the
///   session creates its first temporary object (table, view, sequence,
///   function, type, operator; `SELECT .. INTO TEMP`), and stays set after
///   they are dropped, so this one O(1) test covers every kind of temporary
///   object that could shadow a tenant table or a function, without scanning
///   the catalogs;
/// - no `LISTEN` channel, no SQL-level prepared statement (this scan costs
///   more with every statement in sqlx's per-connection statement cache,
///   see the README's Performance section);
/// - `search_path` (`$2`) and `role` (`$3`) as the role's reset values, read
///   once per pool with [`session_reset`] (a session-level `SET ROLE` would
///   run the next tenant as another role).
///
/// `WITH HOLD` cursors are not looked for: [`BEGIN`] closes every cursor in
/// the same message that opens the transaction, so none exists when this
/// check runs (and none can be opened between the two: nothing else is sent).
///
/// Other session settings are not compared (reading `pg_settings` costs a
/// millisecond a transaction): none that the application role can change
/// lifts RLS or the guard, but some change how the next borrower's values
/// are formatted (`DateStyle`, `TimeZone`, `bytea_output`) or how long it may
/// run (`statement_timeout`). See SECURITY.md.
///
/// Operators are qualified (`OPERATOR(pg_catalog.=)`): an unqualified `=`
/// resolves through the session's `search_path`, which is what this checks.
macro_rules! session_clean {
    () => {
        "pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.=) 0 \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_listening_channels()) \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql) \
         AND pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.=) $2 \
         AND pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) $3"
    };
}

/// The simple query that opens a tenant transaction: `BEGIN`, then
/// `CLOSE ALL`, in one message and one round trip (no tenant and no token in
/// it: both travel bound, in [`SET_CONTEXT`]). `CLOSE ALL` drops every cursor
/// an earlier transaction left on the connection (`DECLARE .. WITH HOLD`
/// survives its transaction; other cursors end with theirs), so a tenant's
/// statements never run beside one. This replaces looking for them in
/// `pg_cursors` on every transaction, which cost more than closing them
/// (`pg_cursor()` materialises every portal and builds its result
/// descriptor each time).
///
/// `DISCARD SEQUENCES` then forgets the `currval`/`lastval` values of earlier
/// transactions on the connection: the last borrower is usually another
/// tenant, and `SELECT lastval()` (which the guard lets through) returned the
/// id its last insert drew. Within the transaction both work as before.
const BEGIN: &str = "BEGIN; CLOSE ALL; DISCARD SEQUENCES";
/// [`BEGIN`] for a read-only break-glass grant (src/grant/tx.rs): the
/// transaction is read-only from its first statement, and cannot be switched
/// back to `READ WRITE` once the context statement has run (PostgreSQL
/// refuses that after the first query of a transaction).
const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY; CLOSE ALL; DISCARD SEQUENCES";

/// The statement, run right after `BEGIN`, that sets the tenant context for
/// the transaction and, in the same round trip, checks that the connection
/// carries no session state an earlier transaction could have planted (with
/// the guard off) to catch this tenant's statements (`session_clean!`).
///
/// `$1` is the signed token (never text in SQL, so it is not in
/// `pg_stat_activity`), set transaction-local only when the session is clean.
/// `$4` is the signed session scope (client grants and roles,
/// [`SCOPE_SETTING`](crate::rls::SCOPE_SETTING)) or NULL when the registry
/// needs none; it is set the same way in the same statement, so scoped
/// registries pay no extra round trip. Without a scope the setting is set
/// transaction-local to `''` (verifies to no client and no role), never left
/// as it was: a session-level scope token an earlier transaction planted on
/// the connection (another user's roles and clients of the same tenant)
/// would otherwise apply wherever the policies read it. On a dirty session the backend
/// terminates itself instead: the pool's release check then finds the
/// connection dead and drops it, so it is never handed out again (the first
/// column reports which branch ran).
const SET_CONTEXT: &str = concat!(
    "SELECT s.clean, CASE WHEN s.clean THEN pg_catalog.set_config('hisn.tenant_context', $1, true) \
     ELSE pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid())::pg_catalog.text END, \
     CASE WHEN s.clean \
     THEN pg_catalog.set_config('hisn.tenant_scope', COALESCE($4::pg_catalog.text, ''), true) END \
     FROM (SELECT ",
    session_clean!(),
    " AS clean OFFSET 0) s"
);

/// The `search_path` and `role` a connection of this role starts with.
/// `pg_settings` materialises every setting (~1 ms a query here), so the pool
/// reads them once and the per-transaction check compares the cheap
/// `current_setting` with them. An unset `role` reads as `none`.
///
/// The reset values are not to be trusted as they are: any role may `ALTER
/// ROLE CURRENT_USER SET search_path = ..` without a privilege, and the value
/// becomes the reset value of its later connections. So the same statement
/// asks whether a role the application role can become can create objects in
/// a schema on that path, or create a schema the path names
/// ([`SEARCH_PATH_WRITERS`](crate::rls::SEARCH_PATH_WRITERS)): an object
/// there is found before the one a tenant's statement means (a table before
/// the tenant table, an `=` before `pg_catalog`'s), and runs in that tenant's
/// transaction with its context. The pool then refuses to begin (fail
/// closed). Everything is qualified: the path is what is being checked.
/// A role that bypasses RLS (superuser, BYPASSRLS: the guard alone scopes it,
/// and `rls::verify` reports it) has no RLS context to protect and is not
/// checked: a superuser can create anywhere.
fn session_reset() -> String {
    format!(
        "SELECT x.p, CASE WHEN x.r IS NULL OR x.r OPERATOR(pg_catalog.=) '' THEN 'none' ELSE x.r END, \
         EXISTS ({writers}) AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles u \
           WHERE u.rolname OPERATOR(pg_catalog.=) current_user AND (u.rolsuper OR u.rolbypassrls)) \
         FROM (SELECT \
           pg_catalog.max(s.reset_val) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'search_path') AS p, \
           pg_catalog.max(s.reset_val) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'role') AS r \
           FROM pg_catalog.pg_settings s \
           WHERE s.name OPERATOR(pg_catalog.=) ANY (ARRAY['search_path', 'role'])) x",
        writers = crate::rls::SEARCH_PATH_WRITERS,
    )
}

/// SQLSTATE `57P01` (`admin_shutdown`): the backend ended itself on a dirty
/// session.
const ADMIN_SHUTDOWN: &str = "57P01";

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
    /// The role's reset `search_path` and `role`, read on the first
    /// transaction.
    reset: std::sync::OnceLock<(String, String)>,
}

/// Begin a transaction and set its tenant context: a token signed with the
/// context key, transaction-local (`is_local = true`), so it ends with the
/// transaction, committed, rolled back or dropped. RLS trusts only a token
/// whose MAC verifies, so SQL that changes the setting cannot move the tenant.
///
/// With `scope`, the session's client grants and roles are set beside it, in
/// the same statement ([`SET_CONTEXT`]).
async fn begin_tenant(
    pool: &PgPool,
    context: &PgContext,
    ctx: &crate::TenantContext,
    scope: bool,
) -> Result<sqlx::Transaction<'static, Postgres>, Error> {
    let expiry = context.clock.now_unix().saturating_add(context.ttl);
    let token = context.key.token(ctx.tenant(), expiry);
    let scope_token = scope.then(|| crate::rls::scope_token(&context.key, ctx, expiry));
    let mut conn = pool.acquire().await?;
    let (search_path, role) = match context.reset.get() {
        Some(r) => r.clone(),
        None => {
            let (p, r, writable): (Option<String>, Option<String>, Option<bool>) =
                sqlx::query_as(sqlx::AssertSqlSafe(session_reset()))
                    .fetch_one(&mut *conn)
                    .await?;
            let p = p.ok_or(Error::Config("the database reports no search_path"))?;
            let r = r.ok_or(Error::Config("the database reports no role"))?;
            if writable != Some(false) {
                #[cfg(feature = "tracing")]
                tracing::error!(target: "hisn::tenant_guard", search_path = %p, "the application role can create objects in a schema on its search_path; no tenant transaction begins (see rls::verify)");
                return Err(Error::Config(
                    "the application role can create objects in a schema on its search_path (rls::verify names it); no tenant transaction begins",
                ));
            }
            context.reset.get_or_init(|| (p, r)).clone()
        }
    };
    let begin = if ctx.is_read_only() {
        BEGIN_READ_ONLY
    } else {
        BEGIN
    };
    let mut tx =
        sqlx::Transaction::begin(conn, Some(sqlx::SqlSafeStr::into_sql_str(begin))).await?;
    type Set = (Option<bool>, Option<String>, Option<String>);
    let set: Result<Set, sqlx::Error> = sqlx::query_as(SET_CONTEXT)
        .bind(token.as_str())
        .bind(search_path)
        .bind(role)
        .bind(scope_token.as_ref().map(|t| t.as_str()))
        .fetch_one(&mut *tx)
        .await;
    match set {
        Ok((Some(true), Some(_), Some(set_scope))) if set_scope.is_empty() != scope => Ok(tx),
        // Fail closed: never run a tenant's statements on a connection an
        // earlier transaction left state on. The backend has ended itself
        // (the pool drops the dead connection on release); should it not
        // have, the connection stays refused by this same check.
        Ok(_) => Err(dirty_session()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(ADMIN_SHUTDOWN) => {
            Err(dirty_session())
        }
        Err(e) => Err(e.into()),
    }
}

/// A single statement on PostgreSQL is a tenant transaction: row-level
/// security needs the transaction-local context.
async fn begin_once(
    pool: &PgPool,
    context: &PgContext,
    ctx: &crate::TenantContext,
    scope: bool,
) -> Result<super::OnceConn<Postgres>, Error> {
    Ok(super::OnceConn::Tx(
        begin_tenant(pool, context, ctx, scope).await?,
    ))
}

fn dirty_session() -> Error {
    Error::Config(
        "the connection carried session state (temporary objects, LISTEN, search_path, role or prepared statements) from an earlier transaction; it was closed",
    )
}

/// The tenant is bound as a `uuid`.
fn tenant_value(tenant: TenantId) -> Uuid {
    tenant.as_uuid()
}

/// The active client of an `INSERT`, as a `uuid`.
fn client_value(client: crate::ClientId) -> Uuid {
    client.as_uuid()
}

/// The granted clients, as a `uuid[]` (`client_id = ANY($n)`).
fn clients_value(session: &crate::guard::SessionScope) -> Vec<Uuid> {
    session
        .clients()
        .iter()
        .map(crate::ClientId::as_uuid)
        .collect()
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
    once = PgTenantOnce,
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
                reset: std::sync::OnceLock::new(),
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
            reset: std::sync::OnceLock::new(),
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
    fn set_context_names_the_rls_settings_and_is_transaction_local() {
        assert!(super::SET_CONTEXT.contains(&format!("'{}'", crate::rls::CONTEXT_SETTING)));
        assert!(super::SET_CONTEXT.contains("$1, true) ELSE"));
        assert!(super::SET_CONTEXT.contains(&format!(
            "set_config('{}', COALESCE($4::pg_catalog.text, ''), true)",
            crate::rls::SCOPE_SETTING
        )));
    }

    /// Every operator of the session check and of the reset read is
    /// `pg_catalog`'s: an unqualified `=` resolves through the search path
    /// these statements are there to check.
    #[test]
    fn session_checks_name_pg_catalog_operators_only() {
        for sql in [super::SET_CONTEXT.to_owned(), super::session_reset()] {
            let bare = sql
                .replace("OPERATOR(pg_catalog.=)", "")
                .replace("OPERATOR(pg_catalog.<>)", "")
                .replace("OPERATOR(pg_catalog.~~)", "");
            for op in [" = ", " <> ", " IN (", " LIKE ", "::text"] {
                assert!(!bare.contains(op), "{op} in {sql}");
            }
        }
        assert!(super::session_reset().contains(crate::rls::SEARCH_PATH_WRITERS));
    }
}
