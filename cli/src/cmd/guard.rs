//! `hisn guard`: scope SQL statements to a tenant and verify PostgreSQL row-level security.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use hisn_tenant_guard::guard::{Dialect, GuardParam, QueryGuard, SessionScope, TableRegistry};
use hisn_tenant_guard::rls;
use hisn_tenant_guard::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::output::{CliError, Ctx};

/// How long `verify-rls` waits for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the guard and RLS enforce beyond the tenant: organisation-wide roles
/// and role gates (two-level tenancy and role-gated tables).
#[derive(Debug, Args)]
pub(crate) struct Declarations {
    /// Roles that see every client of their organisation in client-scoped
    /// tables (`--tables assets:tenant_id:client_id`): `firm_admin,partner`.
    #[arg(long, default_value = "")]
    org_roles: String,
    /// Role-gated tables or schemas, `;`-separated:
    /// `hr.salaries=hr_viewer|hr_admin/hr_admin` (read roles `/` write roles;
    /// `hr.*` for a whole schema). Write roles may also read.
    #[arg(long, default_value = "")]
    role_gates: String,
}

/// The session a statement runs for: its client grants and roles.
#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    /// The session's granted clients (UUIDs, comma-separated); none by default,
    /// so client-scoped tables show no rows.
    #[arg(long, default_value = "")]
    clients: String,
    /// The session's roles (comma-separated): role gates and organisation-wide roles.
    #[arg(long, default_value = "")]
    roles: String,
    /// The client an INSERT into a client-scoped table writes (default: the
    /// only granted client).
    #[arg(long)]
    active_client: Option<String>,
}

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
        #[command(flatten)]
        decl: Declarations,
        #[command(flatten)]
        session: SessionArgs,
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
        /// Tables without row-level security that the application role may
        /// reach and that hold no tenant's rows: `countries,public.currencies`.
        /// Any other such table is reported (what a copying trigger could fill).
        #[arg(long, default_value = "")]
        global: String,
        /// Trigger functions reviewed as copying no tenant rows anywhere RLS
        /// does not follow: `audit.stamp_updated_at`. Any other trigger on a
        /// tenant table is reported.
        #[arg(long, default_value = "")]
        trigger_functions: String,
        #[command(flatten)]
        decl: Declarations,
    },
    /// Run one statement in a tenant transaction through the same pool an
    /// application uses, commit, and print the rows as JSON lines (exit 1 if refused).
    Exec {
        /// `postgres://...` (connect as the application role) or `sqlite://PATH`.
        #[arg(long, env = "HISN_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Tenant tables and their tenant column: `assets:tenant_id,work_orders:tenant_id`.
        #[arg(long)]
        tables: String,
        /// Shared (tenant-less, read-only) tables: `countries,currencies`.
        #[arg(long, default_value = "")]
        shared: String,
        /// The tenant (a UUID) whose transaction the statement runs in.
        #[arg(long)]
        tenant: String,
        /// File holding the tenant context key (PostgreSQL; as for `rls-sql`).
        #[arg(long)]
        context_key_file: Option<PathBuf>,
        /// PostgreSQL only: skip the query guard, so that row-level security alone
        /// stands between the statement and other tenants (for testing RLS).
        #[arg(long)]
        unguarded: bool,
        #[command(flatten)]
        decl: Declarations,
        #[command(flatten)]
        session: SessionArgs,
        /// The statement.
        sql: String,
    },
    /// Print the SQL that puts the tenant tables under row-level security for an app role.
    RlsSql {
        /// Tenant tables and their tenant column: `assets:tenant_id,work_orders:tenant_id`.
        #[arg(long)]
        tables: String,
        /// The application role (must not own the tables).
        #[arg(long)]
        app_role: String,
        #[command(flatten)]
        decl: Declarations,
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
    /// Index of the granted-clients parameter, if the statement has one.
    clients_param: Option<usize>,
    /// Index of the active-client parameter (INSERT into a client table).
    active_client_param: Option<usize>,
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
            decl,
            session,
            sql,
        } => rewrite(ctx, &tables, &shared, &decl, &session, dialect, &sql),
        GuardCommand::VerifyRls {
            global,
            trigger_functions,
            database_url,
            tables,
            decl,
        } => verify_rls(
            ctx,
            &database_url,
            &tables,
            &verify_options(&global, &trigger_functions)?,
            &decl,
        ),
        GuardCommand::Exec {
            database_url,
            tables,
            shared,
            tenant,
            context_key_file,
            unguarded,
            decl,
            session,
            sql,
        } => exec::run(
            ctx,
            &exec::Args {
                url: &database_url,
                tables: &tables,
                shared: &shared,
                tenant: &tenant,
                key_file: context_key_file.as_deref(),
                unguarded,
                decl: &decl,
                session: &session,
                sql: &sql,
            },
        ),
        GuardCommand::RlsSql {
            tables,
            app_role,
            context_key_file,
            decl,
        } => {
            let tables = rls_tables(&tables, &decl)?;
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
pub(crate) fn read_context_key(path: &Path) -> Result<rls::ContextKey, CliError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "--context-key-file: cannot read {}: {e}",
            path.display()
        ))
    })?);
    rls::ContextKey::from_text(&text)
        .map_err(|e| CliError::usage(format!("--context-key-file: {e}")))
}

/// The registry of `--tables`, `--shared`, `--org-roles` and `--role-gates`.
pub(crate) fn registry(
    tables: &str,
    shared: &str,
    decl: &Declarations,
) -> Result<TableRegistry, CliError> {
    let mut registry =
        TableRegistry::parse_spec(tables).map_err(|e| CliError::usage(format!("--tables: {e}")))?;
    for table in shared.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        registry = registry.shared_table(table);
    }
    let roles = list(&decl.org_roles);
    registry = registry
        .org_wide_roles(&roles)
        .map_err(|e| CliError::usage(format!("--org-roles: {e}")))?
        .parse_role_gates(&decl.role_gates)
        .map_err(|e| CliError::usage(format!("--role-gates: {e}")))?;
    Ok(registry)
}

/// The RLS tables of `--tables` with the declarations.
fn rls_tables(tables: &str, decl: &Declarations) -> Result<Vec<rls::TenantTable>, CliError> {
    let registry = registry(tables, "", decl)?;
    rls::tables_from_registry(&registry).map_err(|e| CliError::usage(format!("--tables: {e}")))
}

/// A comma-separated list, empty entries dropped.
fn list(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect()
}

/// The session of `--clients`, `--roles` and `--active-client`.
pub(crate) fn session_scope(args: &SessionArgs) -> Result<SessionScope, CliError> {
    let clients = parse_clients(&args.clients)?;
    let mut session = SessionScope::new(
        parse_roles(&args.roles)?.iter().map(|r| r.as_str()),
        clients,
    );
    if let Some(active) = &args.active_client {
        session = session.with_active_client(
            active
                .parse()
                .map_err(|_| CliError::usage("--active-client must be a UUID"))?,
        );
    }
    Ok(session)
}

fn parse_clients(s: &str) -> Result<Vec<hisn_tenant_guard::ClientId>, CliError> {
    list(s)
        .into_iter()
        .map(|c| {
            c.parse()
                .map_err(|_| CliError::usage("--clients must be comma-separated UUIDs"))
        })
        .collect()
}

fn parse_roles(s: &str) -> Result<Vec<hisn_tenant_guard::Role>, CliError> {
    list(s)
        .into_iter()
        .map(|r| {
            hisn_tenant_guard::Role::new(r)
                .map_err(|_| CliError::usage("--roles: role names are a-z 0-9 _ - : (at most 64)"))
        })
        .collect()
}

fn rewrite(
    ctx: &Ctx,
    tables: &str,
    shared: &str,
    decl: &Declarations,
    session: &SessionArgs,
    dialect: DialectArg,
    sql: &str,
) -> Result<(), CliError> {
    let registry = registry(tables, shared, decl)?;
    let session = session_scope(session)?;
    let dialect = match dialect {
        DialectArg::Postgres => Dialect::Postgres,
        DialectArg::Sqlite => Dialect::Sqlite,
    };
    let guard = QueryGuard::new(registry, dialect).with_cache_capacity(0);
    match guard.scope_for(sql, &session) {
        Ok(scoped) => ctx.emit(
            &Rewritten {
                sql: scoped.sql(),
                user_params: scoped.user_params(),
                tenant_param: scoped.tenant_param(),
                clients_param: scoped.param_index(GuardParam::Clients),
                active_client_param: scoped.param_index(GuardParam::ActiveClient),
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

/// `--global` and `--trigger-functions` as [`rls::VerifyOptions`].
fn verify_options(global: &str, functions: &str) -> Result<rls::VerifyOptions, CliError> {
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    rls::VerifyOptions::new()
        .global_tables(list(global))
        .and_then(|o| o.trigger_functions(list(functions)))
        .map_err(|e| CliError::usage(format!("--global / --trigger-functions: {e}")))
}

fn verify_rls(
    ctx: &Ctx,
    url: &str,
    tables: &str,
    verify: &rls::VerifyOptions,
    decl: &Declarations,
) -> Result<(), CliError> {
    let tables = rls_tables(tables, decl)?;
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
        let report = rls::verify_with(&pool, &tables, verify)
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

/// `hisn guard exec`: one statement in a tenant transaction, rows as JSON lines.
mod exec {
    use std::path::Path;

    use hisn_tenant_guard::db::{PgTenantPool, SqliteTenantPool, danger};
    use hisn_tenant_guard::guard::{Dialect, QueryGuard};
    use hisn_tenant_guard::sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
    use hisn_tenant_guard::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
    use hisn_tenant_guard::sqlx::{self, AssertSqlSafe, Column as _, Row, TypeInfo as _};
    use hisn_tenant_guard::{Error, TenantId, UserId};
    use serde_json::{Map, Value};

    use super::{
        CONNECT_TIMEOUT, Declarations, SessionArgs, parse_clients, parse_roles, read_context_key,
        registry,
    };
    use crate::output::{CliError, Ctx, output_result};

    /// The acting user of an operator's `exec` (no token names one).
    const OPERATOR: &str = "00000000-0000-4000-8000-00000000c11a";

    pub(super) struct Args<'a> {
        pub(super) url: &'a str,
        pub(super) tables: &'a str,
        pub(super) shared: &'a str,
        pub(super) tenant: &'a str,
        pub(super) key_file: Option<&'a Path>,
        pub(super) unguarded: bool,
        pub(super) decl: &'a Declarations,
        pub(super) session: &'a SessionArgs,
        pub(super) sql: &'a str,
    }

    /// Rows, or the guard's refusal.
    enum Outcome {
        Rows(Vec<Map<String, Value>>),
        Refused(String),
    }

    pub(super) fn run(ctx: &Ctx, args: &Args<'_>) -> Result<(), CliError> {
        let tenant: TenantId = args
            .tenant
            .parse()
            .map_err(|_| CliError::usage("--tenant must be a UUID"))?;
        let registry = registry(args.tables, args.shared, args.decl)?;
        let op = operator_context(tenant, args.session)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::usage(format!("cannot start the async runtime: {e}")))?;
        let outcome = if let Some(path) = args.url.strip_prefix("sqlite://") {
            if args.unguarded {
                return Err(CliError::usage(
                    "--unguarded needs PostgreSQL (SQLite has no row-level security)",
                ));
            }
            let guard = QueryGuard::new(registry, Dialect::Sqlite);
            runtime.block_on(sqlite(path, guard, &op, args.sql))?
        } else {
            let key_file = args
                .key_file
                .ok_or_else(|| CliError::usage("--context-key-file is required for PostgreSQL"))?;
            let key = read_context_key(key_file)?;
            // The URL may hold a password: it is never echoed.
            let options: PgConnectOptions = args.url.parse().map_err(|_| {
                CliError::usage("--database-url is not a PostgreSQL or sqlite:// URL")
            })?;
            let guard = QueryGuard::new(registry, Dialect::Postgres);
            runtime.block_on(postgres(options, guard, key, &op, args))?
        };
        match outcome {
            Outcome::Rows(rows) => {
                let mut out = String::new();
                for row in rows {
                    out.push_str(&Value::Object(row).to_string());
                    out.push('\n');
                }
                output_result(std::io::Write::write_all(
                    &mut std::io::stdout().lock(),
                    out.as_bytes(),
                ))
            }
            Outcome::Refused(reason) => {
                if ctx.json() {
                    ctx.emit(&serde_json::json!({ "refused": reason }), "")?;
                }
                Err(CliError::failed(format!("refused: {reason}")))
            }
        }
    }

    fn db_error(e: &Error) -> CliError {
        CliError::usage(format!("database: {e}"))
    }

    /// The operator's context: the tenant, and the clients and roles given
    /// with `--clients` / `--roles` (none by default).
    fn operator_context(
        tenant: TenantId,
        session: &SessionArgs,
    ) -> Result<hisn_tenant_guard::TenantContext, CliError> {
        let user: UserId = OPERATOR
            .parse()
            .map_err(|_| CliError::usage("internal: operator id"))?;
        let clients = parse_clients(&session.clients)?;
        let roles = parse_roles(&session.roles)?;
        let mut ctx = danger::context_with_scope(tenant, user, roles, clients);
        if let Some(active) = &session.active_client {
            ctx = ctx.with_active_client(
                active
                    .parse()
                    .map_err(|_| CliError::usage("--active-client must be a UUID"))?,
            );
        }
        Ok(ctx)
    }

    async fn postgres(
        options: PgConnectOptions,
        guard: QueryGuard,
        key: hisn_tenant_guard::rls::ContextKey,
        op: &hisn_tenant_guard::TenantContext,
        args: &Args<'_>,
    ) -> Result<Outcome, CliError> {
        let raw = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| CliError::usage(format!("cannot connect to the database: {e}")))?;
        let pool = PgTenantPool::new(raw.clone(), guard, key).map_err(|e| db_error(&e))?;
        let mut tx = pool.begin(op).await.map_err(|e| db_error(&e))?;
        let rows = if args.unguarded {
            sqlx::raw_sql(AssertSqlSafe(args.sql.to_owned()))
                .fetch_all(danger::unguarded(&mut tx))
                .await
                .map_err(|e| db_error(&Error::Database(e)))?
        } else {
            match tx.query(args.sql) {
                Err(Error::Refused(e)) => return Ok(Outcome::Refused(e.to_string())),
                Err(e) => return Err(db_error(&e)),
                Ok(q) => q.fetch_all().await.map_err(|e| db_error(&e))?,
            }
        };
        let rows = rows.iter().map(pg_json).collect();
        tx.commit().await.map_err(|e| db_error(&e))?;
        drop(pool);
        raw.close().await;
        Ok(Outcome::Rows(rows))
    }

    async fn sqlite(
        path: &str,
        guard: QueryGuard,
        op: &hisn_tenant_guard::TenantContext,
        sql: &str,
    ) -> Result<Outcome, CliError> {
        let raw = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(SqliteConnectOptions::new().filename(path))
            .await
            .map_err(|e| CliError::usage(format!("cannot open the database: {e}")))?;
        let pool = SqliteTenantPool::new(raw.clone(), guard).map_err(|e| db_error(&e))?;
        let mut tx = pool.begin(op).await.map_err(|e| db_error(&e))?;
        let rows = match tx.query(sql) {
            Err(Error::Refused(e)) => return Ok(Outcome::Refused(e.to_string())),
            Err(e) => return Err(db_error(&e)),
            Ok(q) => q.fetch_all().await.map_err(|e| db_error(&e))?,
        };
        let rows = rows.iter().map(lite_json).collect();
        tx.commit().await.map_err(|e| db_error(&e))?;
        drop(pool);
        raw.close().await;
        Ok(Outcome::Rows(rows))
    }

    /// One PostgreSQL row as a JSON object: text, numbers, booleans, uuids as
    /// JSON; NULL as null; other types by their name.
    fn pg_json(row: &PgRow) -> Map<String, Value> {
        let mut map = Map::new();
        for (i, col) in row.columns().iter().enumerate() {
            let value = match col.type_info().name() {
                "INT2" => row.try_get::<Option<i16>, _>(i).map(|v| v.map(Value::from)),
                "INT4" => row.try_get::<Option<i32>, _>(i).map(|v| v.map(Value::from)),
                "INT8" => row.try_get::<Option<i64>, _>(i).map(|v| v.map(Value::from)),
                "FLOAT4" => row.try_get::<Option<f32>, _>(i).map(|v| v.map(Value::from)),
                "FLOAT8" => row.try_get::<Option<f64>, _>(i).map(|v| v.map(Value::from)),
                "BOOL" => row
                    .try_get::<Option<bool>, _>(i)
                    .map(|v| v.map(Value::from)),
                "UUID" => row
                    .try_get::<Option<uuid::Uuid>, _>(i)
                    .map(|v| v.map(|u| Value::from(u.to_string()))),
                "BYTEA" => row
                    .try_get::<Option<Vec<u8>>, _>(i)
                    .map(|v| v.map(|b| Value::from(hex::encode(b)))),
                _ => row
                    .try_get::<Option<String>, _>(i)
                    .map(|v| v.map(Value::from)),
            }
            .unwrap_or_else(|_| Some(Value::from(format!("<{}>", col.type_info().name()))));
            map.insert(col.name().to_owned(), value.unwrap_or(Value::Null));
        }
        map
    }

    /// One SQLite row as a JSON object (by each value's storage class).
    fn lite_json(row: &SqliteRow) -> Map<String, Value> {
        let mut map = Map::new();
        for (i, col) in row.columns().iter().enumerate() {
            let value = row
                .try_get::<Option<i64>, _>(i)
                .map(|v| v.map(Value::from))
                .or_else(|_| row.try_get::<Option<f64>, _>(i).map(|v| v.map(Value::from)))
                .or_else(|_| {
                    row.try_get::<Option<String>, _>(i)
                        .map(|v| v.map(Value::from))
                })
                .or_else(|_| {
                    row.try_get::<Option<Vec<u8>>, _>(i)
                        .map(|v| v.map(|b| Value::from(hex::encode(b))))
                })
                .unwrap_or(None);
            map.insert(col.name().to_owned(), value.unwrap_or(Value::Null));
        }
        map
    }
}
