//! PostgreSQL mode (`DATABASE_URL`): the same application on PostgreSQL, with
//! row-level security as a second isolation layer under the query guard.
//!
//! Five roles, five URLs:
//! - `DATABASE_URL`, the **application role**: serves every request. It must
//!   not own the tables and must not have BYPASSRLS (nor reach a role that
//!   has, through `SET ROLE`); [`rls::verify`] checks exactly that, and more,
//!   at every start, and the server refuses to start on any finding.
//! - `HISN_MIGRATE_DATABASE_URL`, the **owner role** (optional): owns the
//!   tables. When set, the server applies the pending migrations as this role
//!   at start-up, then installs row-level security (tenant-guard's
//!   [`rls::generate_sql`]: the context key table, the `SECURITY DEFINER`
//!   context function, `ENABLE` + `FORCE ROW LEVEL SECURITY` and the policies
//!   on every tenant table, and the grants) for the application role it finds
//!   behind `DATABASE_URL`, and audit-log's tables (its own versioned
//!   migrations; the audit role gets INSERT and SELECT only, the application
//!   role nothing), and grants the platform tables to the platform role (the
//!   application role nothing). It must not be a superuser (a
//!   superuser bypasses RLS even with `FORCE`), and must be able to create in
//!   schema `public`. When unset, the schema must already be current (another instance or a
//!   deploy step migrated it) or the server refuses to start.
//! - `HISN_AUDIT_DATABASE_URL`, the **audit role** (required): the audit
//!   store's own pool. audit-log's tables have no row-level security (one
//!   chain per tenant, read whole by verification), so a role that could
//!   read them reads every tenant's actors, actions and entity ids: the
//!   application role, under which every tenant transaction runs, must hold
//!   no privilege on them, and the audit role is the only one (besides the
//!   owner) that does, INSERT and SELECT only. At every start the server
//!   refuses an audit role equal to the application role, owning the audit
//!   tables or able to UPDATE, DELETE or TRUNCATE them, and an application
//!   role with any privilege on them or able to act as the audit role.
//! - `HISN_PLATFORM_DATABASE_URL`, the **platform role** (required): the
//!   platform pool ([`crate::db::Platform`]). The platform tables (`tenants`,
//!   `accounts` with every tenant's password hashes, `api_keys`,
//!   `account_totp`, `support_grants`, `admin_notifications`, crypto-vault's
//!   `hisn_vault_keys` and `hisn_vault_shredded`, `hisn_example_migrations`)
//!   have no row-level security: the identity provider reads them before any
//!   tenant context exists, and every query on them names the tenant
//!   ([`crate::db::platform`], [`crate::db::mfa`]). A tenant transaction's SQL
//!   with the query guard off must not reach them, so, as for the audit
//!   tables, the application role holds no privilege on them and the
//!   platform role holds exactly what the server needs
//!   (`PLATFORM_GRANTS` in `src/db/pg/roles.rs`). At every start the server refuses a
//!   platform role equal to the application or audit role, owning a platform
//!   table or lacking a privilege it needs, and an application role with any
//!   privilege on a platform table (table or column, directly, through
//!   `PUBLIC` or a role) or able to act as the platform role. Nothing is
//!   declared global to [`rls::verify_with`]: the application role can use no
//!   table without row-level security.
//! - `HISN_ADMIN_DATABASE_URL`, the **platform-admin role** (optional): the
//!   operator console's escape hatch, a role with BYPASSRLS. Unset, the
//!   console answers `503`.
//!
//! Every instance must sign tenant contexts with the key installed in the
//! database (`rls_context` in the key file): [`probe_context`] at start-up
//! refuses an instance whose key differs, which would otherwise see no rows
//! at all.

mod roles;

use std::time::Duration;

use hisn_tenant_guard::TenantContext;
use hisn_tenant_guard::db::PgTenantPool;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::rls::{self, ContextKey};
use sqlx::Executor;
use std::str::FromStr;

use hisn_audit_log::store::postgres::PgStore;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{MIGRATIONS, MIGRATIONS_TABLE, TENANT_TABLE_NAMES, TENANT_TABLES, TenantDb};
use crate::danger::Layers;

/// Serialises migrations of concurrently starting instances
/// (`pg_advisory_xact_lock` key).
const MIGRATION_LOCK: i64 = 0x6869_736e_5f73_7276; // "hisn_srv"

/// Why PostgreSQL mode could not start (operator-facing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgStartError {
    /// A connection or statement failed.
    #[error("{what}: {source}")]
    Database {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// tenant-guard refused the setup (a bad role name, a missing table).
    #[error("{what}: {source}")]
    Guard {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: hisn_tenant_guard::Error,
    },
    /// `rls::verify` reported findings: the server does not serve.
    #[error(
        "row-level security check failed, refusing to start:\n{0}\nFix: run with HISN_MIGRATE_DATABASE_URL (the tables' owner, not a superuser) and connect DATABASE_URL as a role that neither owns the tables nor has BYPASSRLS"
    )]
    Rls(String),
    /// The schema is older than this build.
    #[error(
        "the database schema is at version {found}, this build needs {needed}: run once with HISN_MIGRATE_DATABASE_URL set to the tables' owner"
    )]
    Schema {
        /// Applied version.
        found: i64,
        /// Needed version.
        needed: i64,
    },
    /// A table another component needs was never created.
    #[error(
        "table {0} is missing: run once with HISN_MIGRATE_DATABASE_URL set to the tables' owner"
    )]
    MissingTable(&'static str),
    /// The application role could change the audit trail (or the audit
    /// tables are missing).
    #[error(
        "audit tables: {0}; run once with HISN_MIGRATE_DATABASE_URL set to the tables' owner (it installs audit-log's tables, grants the role of HISN_AUDIT_DATABASE_URL INSERT and SELECT only and revokes every privilege of the application role on them)"
    )]
    Audit(String),
    /// The application role could reach the platform tables, or the platform
    /// role is missing, shared or lacks a privilege it needs.
    #[error(
        "platform tables: {0}; run once with HISN_MIGRATE_DATABASE_URL set to the tables' owner (it grants the role of HISN_PLATFORM_DATABASE_URL what the platform pool needs on the platform tables and revokes every privilege of the application role on them)"
    )]
    Platform(String),
    /// The context key in the database is not this instance's.
    #[error(
        "the tenant context key installed in the database is not this instance's (rls_context in the key file): every instance must share the key file, or run with HISN_MIGRATE_DATABASE_URL to install this one"
    )]
    ContextKeyMismatch,
}

fn db(what: &'static str) -> impl Fn(sqlx::Error) -> PgStartError {
    move |source| PgStartError::Database { what, source }
}

fn guard(what: &'static str) -> impl Fn(hisn_tenant_guard::Error) -> PgStartError {
    move |source| PgStartError::Guard { what, source }
}

/// The pools of PostgreSQL mode.
#[derive(Debug)]
pub struct PgPools {
    /// Tenant data (application role): guarded transactions under RLS.
    pub tenant: TenantDb,
    /// Platform tables (the platform role, its own pool).
    pub platform: PgPool,
    /// The escape hatch's pool, when `HISN_ADMIN_DATABASE_URL` is set.
    pub admin: Option<PgPool>,
    /// The audit store's own pool (the audit role; see [`crate::audit::pg`]).
    pub audit: PgPool,
}

async fn connect(url: &str, max: u32, what: &'static str) -> Result<PgPool, PgStartError> {
    // Notices (the migration's `DROP POLICY IF EXISTS ... skipping`) are not
    // worth an operator's log line.
    let opts = PgConnectOptions::from_str(url)
        .map_err(db(what))?
        .options([("client_min_messages", "warning")]);
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(db(what))
}

/// The connection URLs of PostgreSQL mode (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct PgUrls<'a> {
    /// `DATABASE_URL`: the application role.
    pub database: &'a str,
    /// `HISN_MIGRATE_DATABASE_URL`: the owner role.
    pub migrate: Option<&'a str>,
    /// `HISN_AUDIT_DATABASE_URL`: the audit role.
    pub audit: Option<&'a str>,
    /// `HISN_PLATFORM_DATABASE_URL`: the platform role.
    pub platform: Option<&'a str>,
    /// `HISN_ADMIN_DATABASE_URL`: the platform-admin role.
    pub admin: Option<&'a str>,
}

async fn current_role(pool: &PgPool, what: &'static str) -> Result<String, PgStartError> {
    sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(pool)
        .await
        .map_err(db(what))
}

/// Connect, migrate (when an owner URL is given), install and verify RLS,
/// check the roles, and build the tenant pool. `layers` switches layers off
/// for the isolation suite only ([`crate::danger`]).
pub async fn open(
    urls: PgUrls<'_>,
    key: &ContextKey,
    layers: Layers,
) -> Result<PgPools, PgStartError> {
    let app = connect(urls.database, 16, "connect DATABASE_URL").await?;
    let app_role = current_role(&app, "read the application role").await?;
    let audit_url = urls.audit;
    let audit_url = audit_url.ok_or_else(|| {
        PgStartError::Audit(
            "HISN_AUDIT_DATABASE_URL is unset: the audit store needs a role of its own (the application role may not read the audit tables, which have no row-level security)".into(),
        )
    })?;
    let audit_pool = connect(
        audit_url,
        crate::audit::pg::AUDIT_CONNECTIONS,
        "connect HISN_AUDIT_DATABASE_URL",
    )
    .await?;
    let audit_role = current_role(&audit_pool, "read the audit role").await?;
    if audit_role == app_role {
        return Err(PgStartError::Audit(
            "HISN_AUDIT_DATABASE_URL connects as the application role: the audit store needs a role of its own".into(),
        ));
    }
    let platform_url = urls.platform.ok_or_else(|| {
        PgStartError::Platform(
            "HISN_PLATFORM_DATABASE_URL is unset: the platform pool needs a role of its own (the application role may not read the platform tables, which have no row-level security)".into(),
        )
    })?;
    let platform = connect(platform_url, 8, "connect HISN_PLATFORM_DATABASE_URL").await?;
    let platform_role = current_role(&platform, "read the platform role").await?;
    if platform_role == app_role || platform_role == audit_role {
        return Err(PgStartError::Platform(format!(
            "HISN_PLATFORM_DATABASE_URL connects as the {} role: the platform pool needs a role of its own",
            if platform_role == app_role {
                "application"
            } else {
                "audit"
            }
        )));
    }
    let tables = rls::parse_tables(TENANT_TABLES).map_err(guard("tenant tables"))?;
    if let Some(url) = urls.migrate {
        let owner = connect(url, 1, "connect HISN_MIGRATE_DATABASE_URL").await?;
        migrate(
            &owner,
            &app_role,
            &platform_role,
            key,
            &tables,
            layers.rls(),
        )
        .await?;
        // audit-log's tables, by its own versioned migrations (serialised
        // across instances by its advisory lock), then the audit role's
        // INSERT and SELECT on them, and nothing for the application role
        // (which earlier versions granted INSERT and SELECT).
        PgStore::migrate(&owner).await.map_err(audit("migrate"))?;
        hisn_audit_log::store::postgres::grant_app_role(&owner, &audit_role)
            .await
            .map_err(audit("grant the audit role"))?;
        roles::revoke_audit_tables(&owner, &app_role).await?;
        owner.close().await;
    }
    // The platform role reads the schema version: the application role may
    // not read any platform table.
    let found: i64 =
        match sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM hisn_example_migrations")
            .fetch_one(&platform)
            .await
        {
            Ok(v) => v,
            // 42P01 undefined_table: never migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => 0,
            // 42501 insufficient_privilege: migrated by an earlier version,
            // which granted the platform tables to the application role.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
                return Err(PgStartError::Platform(
                    "the platform role may not SELECT hisn_example_migrations".into(),
                ));
            }
            Err(e) => return Err(db("read the schema version")(e)),
        };
    let needed = super::latest_version();
    if found < needed {
        return Err(PgStartError::Schema { found, needed });
    }
    for table in ["hisn_vault_keys", "hisn_vault_shredded"] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("public.{table}"))
            .fetch_one(&platform)
            .await
            .map_err(db("look for the key tables"))?;
        if !exists {
            return Err(PgStartError::MissingTable(table));
        }
    }
    roles::check_audit_role(&audit_pool).await?;
    roles::check_app_role_has_no_audit_access(&app, &audit_role).await?;
    roles::check_platform_role(&platform).await?;
    roles::check_app_role_has_no_platform_access(&app, &platform_role).await?;
    if layers.rls() {
        // Nothing is declared global: the application role can use no table
        // without row-level security (the platform and audit tables belong
        // to their own roles), so any such table it can reach is a finding.
        let options = rls::VerifyOptions::new();
        let report = rls::verify_with(&app, &tables, &options)
            .await
            .map_err(guard("rls verify"))?;
        if !report.is_clean() {
            tracing::error!(target: "hisn::example_server", findings = report.findings.len(), "row-level security check failed");
            return Err(PgStartError::Rls(report.to_string()));
        }
    } else {
        tracing::warn!(target: "hisn::example_server", "DANGER: row-level security is not installed nor verified (isolation suite only): the query guard alone scopes tenant data");
    }
    let registry =
        TableRegistry::parse_spec(TENANT_TABLES).map_err(|e| guard("tenant tables")(e.into()))?;
    let pool = PgTenantPool::new(
        app,
        QueryGuard::new(registry, Dialect::Postgres),
        key.clone(),
    )
    .map_err(guard("tenant pool"))?;
    pool.start().await.map_err(guard("tenant pool start"))?;
    let tenant = if layers.query_guard() {
        TenantDb::Pg(pool)
    } else {
        tracing::warn!(target: "hisn::example_server", "DANGER: the query guard is switched off (isolation suite only): row-level security alone scopes tenant data");
        TenantDb::PgUnguarded(pool)
    };
    let admin = match urls.admin {
        Some(url) => Some(connect(url, 2, "connect HISN_ADMIN_DATABASE_URL").await?),
        None => None,
    };
    Ok(PgPools {
        tenant,
        platform,
        admin,
        audit: audit_pool,
    })
}

fn audit(what: &'static str) -> impl Fn(hisn_audit_log::Error) -> PgStartError {
    move |e| PgStartError::Audit(format!("{what}: {e}"))
}

/// A tenant transaction for `ctx` (a session of a tenant that need not
/// exist) must see its tenant through the RLS context function; otherwise
/// this instance's context key is not the one installed in the database.
pub async fn probe_context(db: &TenantDb, ctx: &TenantContext) -> Result<(), PgStartError> {
    let mut tx = db.begin(ctx).await.map_err(guard("probe begin"))?;
    let seen: Option<String> = tx
        .query_scalar(&format!(
            "SELECT CAST(public.{}() AS text)",
            rls::CONTEXT_FUNCTION
        ))
        .map_err(guard("probe statement"))?
        .fetch_one()
        .await
        .map_err(guard("probe"))?;
    drop(tx); // rolled back
    if seen == Some(ctx.tenant().to_string()) {
        Ok(())
    } else {
        Err(PgStartError::ContextKeyMismatch)
    }
}

/// As the owner: the pending migrations, then row-level security and the
/// application role's grants, in one transaction (concurrent starts wait
/// on an advisory lock).
async fn migrate(
    owner: &PgPool,
    app_role: &str,
    platform_role: &str,
    key: &ContextKey,
    tables: &[rls::TenantTable],
    with_rls: bool,
) -> Result<(), PgStartError> {
    if !is_plain_identifier(app_role) {
        return Err(PgStartError::Guard {
            what: "application role name",
            source: hisn_tenant_guard::Error::Config("the role must match [a-z_][a-z0-9_]*"),
        });
    }
    let m = db("migrate");
    let mut tx = owner.begin().await.map_err(&m)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(&m)?;
    tx.execute(MIGRATIONS_TABLE).await.map_err(&m)?;
    for mig in MIGRATIONS {
        let done = sqlx::query("SELECT 1 FROM hisn_example_migrations WHERE version = $1")
            .bind(mig.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(&m)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(mig.postgres))
            .execute(&mut *tx)
            .await
            .map_err(&m)?;
        sqlx::query(
            "INSERT INTO hisn_example_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(mig.version)
        .bind(mig.name)
        .bind(crate::state::now_unix_i64())
        .execute(&mut *tx)
        .await
        .map_err(&m)?;
        tracing::info!(target: "hisn::example_server", version = mig.version, name = mig.name, "migration applied");
    }
    // crypto-vault's wrapped tenant keys (idempotent, its own `if not exists`).
    sqlx::raw_sql(hisn_crypto_vault::PG_MIGRATION)
        .execute(&mut *tx)
        .await
        .map_err(db("crypto-vault key tables"))?;
    // `app_role` is a plain identifier (checked above), so quoting it is exact.
    // The platform tables: the platform role's, nothing for the application
    // role (earlier versions granted it them: revoked here).
    let mut grants =
        roles::platform_grants_sql(app_role, platform_role).map_err(PgStartError::Platform)?;
    if with_rls {
        let sql = rls::generate_sql(tables, app_role, key).map_err(guard("rls sql"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(db("install row-level security"))?;
        // With the guard on, it writes the tenant column; with it off (the
        // isolation suite's RLS-alone run), the column defaults to the
        // verified context, and the policies' WITH CHECK refuses any other.
        for t in TENANT_TABLE_NAMES {
            grants.push_str(&format!(
                "ALTER TABLE {t} ALTER COLUMN tenant_id SET DEFAULT public.{}();\n",
                rls::CONTEXT_FUNCTION
            ));
        }
    } else {
        for t in TENANT_TABLE_NAMES {
            grants.push_str(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO \"{app_role}\";\n"
            ));
        }
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(grants))
        .execute(&mut *tx)
        .await
        .map_err(db("grant the application role"))?;
    tx.commit().await.map_err(&m)?;
    Ok(())
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes: a role name that needs no escaping.
fn is_plain_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= 63
        && b.next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

#[cfg(test)]
mod tests {
    #[test]
    fn role_names_must_be_plain() {
        assert!(super::is_plain_identifier("hisn_app"));
        assert!(!super::is_plain_identifier("Hisn"));
        assert!(!super::is_plain_identifier("a\"; drop"));
        assert!(!super::is_plain_identifier(""));
    }
}
