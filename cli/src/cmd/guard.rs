//! `hisn guard`: scope SQL statements to a tenant and verify PostgreSQL row-level security.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::rls;
use hisn_tenant_guard::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::output::{CliError, Ctx};

/// How long `verify-rls` waits for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `hisn guard` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GuardCommand {
    /// Print SQL scoped to the tenant (exit 1 with the reason if the guard refuses it).
    Rewrite {
        /// Tenant tables and their tenant column: `assets:tenant_id,work_orders:tenant_id`.
        #[arg(long)]
        tables: String,
        /// Shared (tenant-less, read-only) tables: `countries,currencies`.
        #[arg(long, default_value = "")]
        shared: String,
        /// SQL dialect of the statement.
        #[arg(long, value_enum, default_value_t = DialectArg::Postgres)]
        dialect: DialectArg,
        /// The statement.
        sql: String,
    },
    /// Check row-level security on PostgreSQL as the role in the URL (exit 1 if anything is found).
    VerifyRls {
        /// PostgreSQL URL; connect as the application role, not the owner.
        #[arg(long, env = "HISN_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Tenant tables and their tenant column: `assets:tenant_id,work_orders:tenant_id`.
        #[arg(long)]
        tables: String,
    },
    /// Print the SQL that puts the tenant tables under row-level security for an app role.
    RlsSql {
        /// Tenant tables and their tenant column: `assets:tenant_id,work_orders:tenant_id`.
        #[arg(long)]
        tables: String,
        /// The application role (must not own the tables).
        #[arg(long)]
        app_role: String,
        /// File holding the tenant context key (64 hex digits, or the base64 that
        /// `hisn keys generate-master` prints). The output contains it: keep it secret.
        #[arg(long)]
        context_key_file: PathBuf,
    },
}

/// `--dialect` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DialectArg {
    /// PostgreSQL (`$n` placeholders).
    Postgres,
    /// SQLite (`?` / `?NNN` placeholders).
    Sqlite,
}

#[derive(Serialize)]
struct Rewritten<'a> {
    sql: &'a str,
    user_params: usize,
    tenant_param: usize,
}

#[derive(Serialize)]
struct Refused {
    refused: String,
}

#[derive(Serialize)]
struct Verified {
    clean: bool,
    findings: Vec<String>,
}

#[derive(Serialize)]
struct RlsSql<'a> {
    sql: &'a str,
}

/// Run one `hisn guard` subcommand.
pub(crate) fn run(cmd: GuardCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        GuardCommand::Rewrite {
            tables,
            shared,
            dialect,
            sql,
        } => rewrite(ctx, &tables, &shared, dialect, &sql),
        GuardCommand::VerifyRls {
            database_url,
            tables,
        } => verify_rls(ctx, &database_url, &tables),
        GuardCommand::RlsSql {
            tables,
            app_role,
            context_key_file,
        } => {
            let tables = rls::parse_tables(&tables)
                .map_err(|e| CliError::usage(format!("--tables: {e}")))?;
            let key = read_context_key(&context_key_file)?;
            let sql = Zeroizing::new(
                rls::generate_sql(&tables, &app_role, &key)
                    .map_err(|e| CliError::usage(format!("--app-role: {e}")))?,
            );
            ctx.emit(&RlsSql { sql: &sql }, &sql)
        }
    }
}

/// Read the tenant context key from `path`; the content is never echoed.
fn read_context_key(path: &Path) -> Result<rls::ContextKey, CliError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "--context-key-file: cannot read {}: {e}",
            path.display()
        ))
    })?);
    rls::ContextKey::from_text(&text)
        .map_err(|e| CliError::usage(format!("--context-key-file: {e}")))
}

fn rewrite(
    ctx: &Ctx,
    tables: &str,
    shared: &str,
    dialect: DialectArg,
    sql: &str,
) -> Result<(), CliError> {
    let mut registry =
        TableRegistry::parse_spec(tables).map_err(|e| CliError::usage(format!("--tables: {e}")))?;
    for table in shared.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        registry = registry.shared_table(table);
    }
    let dialect = match dialect {
        DialectArg::Postgres => Dialect::Postgres,
        DialectArg::Sqlite => Dialect::Sqlite,
    };
    let guard = QueryGuard::new(registry, dialect).with_cache_capacity(0);
    match guard.scope(sql) {
        Ok(scoped) => ctx.emit(
            &Rewritten {
                sql: scoped.sql(),
                user_params: scoped.user_params(),
                tenant_param: scoped.tenant_param(),
            },
            scoped.sql(),
        ),
        Err(e) => {
            if ctx.json() {
                ctx.emit(
                    &Refused {
                        refused: e.to_string(),
                    },
                    "",
                )?;
            }
            Err(CliError::failed(format!("refused: {e}")))
        }
    }
}

fn verify_rls(ctx: &Ctx, url: &str, tables: &str) -> Result<(), CliError> {
    let tables =
        rls::parse_tables(tables).map_err(|e| CliError::usage(format!("--tables: {e}")))?;
    // The URL may hold a password: it is never echoed.
    let options: PgConnectOptions = url
        .parse()
        .map_err(|_| CliError::usage("--database-url is not a valid PostgreSQL URL"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::usage(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| CliError::usage(format!("cannot connect to the database: {e}")))?;
        let report = rls::verify(&pool, &tables)
            .await
            .map_err(|e| CliError::usage(format!("cannot inspect the catalog: {e}")));
        pool.close().await;
        report
    })?;
    let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    if findings.is_empty() {
        let human = format!(
            "ok: row-level security verified for {} table(s)",
            tables.len()
        );
        return ctx.emit(
            &Verified {
                clean: true,
                findings,
            },
            &human,
        );
    }
    let count = findings.len();
    let human = findings.join("\n");
    ctx.emit(
        &Verified {
            clean: false,
            findings,
        },
        &human,
    )?;
    Err(CliError::failed(format!(
        "row-level security: {count} finding(s)"
    )))
}
