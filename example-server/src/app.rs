//! Building the application: open every store, load or generate the keys,
//! wire the crates together, and serve with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hisn_crypto_vault::{ApiKeys, DirKeyStore, PgKeyStore, UrlSigner, Vault};
use hisn_rate_limit::http::{KeyExtractor, TrustedProxies};
use hisn_rate_limit::{KeyKind, Tiers};
use hisn_tenant_guard::db::PlatformAdmin;
use hisn_webhook_verify::{Scheme, Webhook};

use crate::audit::Audit;
use crate::config::{Config, SecretUrl};
use crate::danger::Layers;
use crate::keystore::{TenantKeys, TenantVault};
use crate::outbound::PartnerApi;
use crate::routes::EscapeHatchAudit;
use crate::shared::{self, SharedLimiter, SharedLoginGuard};
use crate::state::{AppState, Inner, api_tiers, shared_policy};
use crate::{auth, db, keys, middleware, routes};

/// Why the server could not start (operator-facing, with the cause).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is refused.
    #[error("configuration: {0}")]
    Config(String),
    /// The data directory or a store could not be opened.
    #[error("storage: {0}")]
    Storage(String),
    /// Keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// PostgreSQL mode could not start (includes row-level-security findings).
    #[error("postgresql: {0}")]
    Postgres(#[from] db::pg::PgStartError),
}

fn storage(what: &str) -> impl Fn(&dyn std::fmt::Display) -> StartError + '_ {
    move |e| StartError::Storage(format!("{what}: {e}"))
}

/// A built application.
#[derive(Debug)]
pub struct App {
    /// Shared state.
    pub state: AppState,
    /// The router, with every middleware.
    pub router: Router,
    /// Whether the local keys were generated on this start.
    pub keys_generated: bool,
}

/// Open the stores (under `config.data_dir`, and PostgreSQL / Redis when
/// configured) and build the application, every isolation layer on.
pub async fn build(config: Config) -> Result<App, StartError> {
    build_with(config, Layers::ALL).await
}

/// [`build`] with the isolation layers `layers` ([`crate::danger`]).
pub(crate) async fn build_with(config: Config, layers: Layers) -> Result<App, StartError> {
    if layers != Layers::ALL && config.database_url.is_none() {
        return Err(StartError::Config(
            "isolation layers can be switched off only on PostgreSQL (SQLite has the query guard alone)".into(),
        ));
    }
    if !layers.query_guard() && !layers.rls() {
        return Err(StartError::Config(
            "refusing to run with no isolation layer".into(),
        ));
    }
    if config.token_ttl_secs == 0
        || config.token_ttl_secs > hisn_tenant_guard::DEFAULT_MAX_LIFETIME_SECS
    {
        return Err(StartError::Config(
            "HISN_TOKEN_TTL_SECS must be 1..=86400".into(),
        ));
    }
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| storage("data dir")(&e))?;
    let (k, keys_generated) = keys::load_or_generate(&dir)?;
    if keys_generated {
        tracing::warn!(
            target: "hisn::example_server",
            path = %dir.join(keys::KEY_FILE).display(),
            "GENERATED LOCAL KEYS (master key, token key, audit signing key) in the data directory: for local use only; production must supply keys from a KMS"
        );
    }

    let audit_key = || {
        hisn_audit_log::SigningKey::from_bytes("hisn-example-server", &k.audit_seed)
            .map_err(|e| storage("audit key")(&e))
    };
    let opened = open_database(&config, &dir, &k, layers).await?;
    let checkpoint_log = dir.join("audit-checkpoints.log");
    let every = Duration::from_secs(config.checkpoint_secs);
    // PostgreSQL mode keeps the audit trail in the database, shared by the
    // instances; the embedded mode in the data directory.
    let audit = match &opened.audit {
        Some(pool) => Audit::open_pg(pool.clone(), &checkpoint_log, audit_key()?, every),
        None => Audit::open(&dir.join("audit"), &checkpoint_log, audit_key()?, every)
            .map_err(|e| storage("audit store")(&e))?,
    }
    .full_verify_every(Duration::from_secs(config.audit_full_verify_secs));
    let hook = Arc::new(EscapeHatchAudit::new(audit.clone()));
    let admin = match opened.admin {
        AdminPool::Sqlite(pool) => db::Admin::Sqlite(PlatformAdmin::from_admin_pool(
            pool,
            hook,
            "operator-console",
        )),
        AdminPool::Pg(Some(pool)) => db::Admin::Pg(PlatformAdmin::from_admin_pool(
            pool,
            hook,
            "operator-console",
        )),
        AdminPool::Pg(None) => db::Admin::Unavailable,
    };
    let (tenant_db, platform) = (opened.tenant, opened.platform);

    let vault = TenantVault::new(
        Vault::new(
            match platform.as_pg() {
                // The platform role's pool (the application role, under which
                // tenant transactions run, may not touch the key tables).
                Some(pool) => TenantKeys::Pg(PgKeyStore::new(pool.clone())),
                None => TenantKeys::Dir(
                    DirKeyStore::open(dir.join("tenant-keys"))
                        .map_err(|e| storage("key store")(&e))?,
                ),
            },
            k.master,
        ),
        platform.as_pg().cloned(),
    );
    let verifier = auth::verifier(&k.jwt).map_err(|e| StartError::Config(e.to_string()))?;
    let rl = |e: hisn_rate_limit::Error| StartError::Config(e.to_string());
    let redis = match config.redis_url.as_ref() {
        Some(u) => Some(
            redis::Client::open(u.expose())
                .map_err(|e| StartError::Config(format!("REDIS_URL: {e}")))?,
        ),
        None => None,
    };
    let prefix = config.redis_prefix.as_str();
    let limiter = Arc::new(
        SharedLimiter::new(
            api_tiers(&config).map_err(rl)?,
            redis.as_ref(),
            &format!("{prefix}rl:api:"),
        )
        .await
        .map_err(rl)?,
    );
    let login_guard = SharedLoginGuard::new(
        shared_policy(
            "login_account",
            config.login_account_rate,
            KeyKind::Account,
            &config,
        )
        .map_err(rl)?,
        shared_policy("login_ip", config.login_ip_rate, KeyKind::Ip, &config).map_err(rl)?,
        redis.as_ref(),
        &format!("{prefix}rl:login:"),
    )
    .await
    .map_err(rl)?;
    let webhook_limiter = Arc::new(
        SharedLimiter::new(
            Tiers::new(vec![
                shared_policy(
                    "webhook",
                    config.webhook_rate,
                    KeyKind::WebhookSource,
                    &config,
                )
                .map_err(rl)?,
            ])
            .map_err(rl)?,
            redis.as_ref(),
            &format!("{prefix}rl:webhook:"),
        )
        .await
        .map_err(rl)?,
    );
    let shared = shared::stores(redis.as_ref(), prefix)
        .await
        .map_err(|e| StartError::Storage(format!("redis: {e}")))?;
    let proxies =
        TrustedProxies::new(config.trusted_proxies.iter().map(String::as_str)).map_err(rl)?;
    let webhook = Webhook::builder(Scheme::StandardWebhooks)
        .secret(&k.webhook_secret)
        .and_then(|b| b.build())
        .map_err(|e| StartError::Config(format!("webhook secret: {e}")))?;
    let api_keys = ApiKeys::new("hisn_live", k.api_key_pepper)
        .map_err(|e| StartError::Config(e.to_string()))?;

    let mfa = crate::mfa::Mfa::new(
        &config,
        &dir,
        audit.clone(),
        platform.clone(),
        redis.as_ref(),
        &format!("{prefix}rl:totp:"),
    )
    .await
    .map_err(|e| StartError::Config(e.to_string()))?;
    let policy = crate::mfa::policy(&config);
    let hash_gate = crate::hashing::HashGate::new(
        config.password_hash_concurrency,
        Duration::from_millis(config.password_hash_wait_ms),
    );
    let inner = Inner {
        token_ttl: Duration::from_secs(config.token_ttl_secs),
        config,
        db: tenant_db,
        platform,
        admin,
        verifier: Arc::new(verifier),
        jwt_key: auth::encoding_key(&k.jwt),
        policy,
        vault,
        hasher: Arc::new(crate::state::hasher()),
        hash_gate,
        api_keys,
        url_signer: UrlSigner::new(k.url),
        audit,
        audit_key: Arc::new(audit_key()?),
        limiter,
        extractor: KeyExtractor::new().trusted_proxies(proxies),
        login_guard,
        webhook_limiter,
        webhook,
        replay: shared.replay,
        idempotency: Arc::new(shared.idempotency),
        partner: PartnerApi::default(),
        operator_token: k.operator_token,
        mfa,
    };
    let state = AppState(Arc::new(inner));
    let router = layered(&state, routes::router(&state));
    Ok(App {
        state,
        router,
        keys_generated,
    })
}

/// `routes` with every middleware of the server (body limit, the
/// [`middleware::edge`] envelope with panic catching, rate limits, identity)
/// and `state`. [`build`] serves [`routes::router`] through it; tests use it
/// to put a route of their own (one that panics) behind the same layers.
#[doc(hidden)]
pub fn layered(state: &AppState, routes: Router<AppState>) -> Router {
    routes
        .fallback(|| async { crate::error::ApiError::NotFound })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            middleware::Edge {
                app: state.clone(),
                sessions: Arc::new(auth::SessionCache::new(
                    Arc::clone(&state.verifier),
                    auth::SESSION_CACHE_CAPACITY,
                )),
            },
            middleware::edge,
        ))
        .with_state(state.clone())
}

/// The escape hatch's pool, before the audit hook is attached.
enum AdminPool {
    /// The SQLite file.
    Sqlite(sqlx::SqlitePool),
    /// `HISN_ADMIN_DATABASE_URL`, when set.
    Pg(Option<sqlx::PgPool>),
}

/// What [`open_database`] opened.
struct Opened {
    tenant: db::TenantDb,
    platform: db::Platform,
    admin: AdminPool,
    /// PostgreSQL mode: the audit store's pool.
    audit: Option<sqlx::PgPool>,
}

/// The database of the configured mode: embedded SQLite, or PostgreSQL
/// (migrated by the owner role when configured, RLS verified, the context
/// key probed) with the escape hatch's admin pool and the audit store's pool.
async fn open_database(
    config: &Config,
    dir: &std::path::Path,
    k: &keys::ServerKeys,
    layers: Layers,
) -> Result<Opened, StartError> {
    Ok(match config.database_url.as_ref() {
        None => {
            let pool = db::open_sqlite(&dir.join("hisn.sqlite3"))
                .await
                .map_err(|e| storage("sqlite")(&e))?;
            db::migrate(&pool)
                .await
                .map_err(|e| storage("migrations")(&e))?;
            let tenant_db = db::sqlite_tenant_pool(pool.clone())
                .await
                .map_err(|e| storage("tenant pool")(&e))?;
            Opened {
                tenant: tenant_db,
                platform: db::Platform::Sqlite(pool.clone()),
                admin: AdminPool::Sqlite(pool),
                audit: None,
            }
        }
        Some(url) => {
            let key = k.rls_context.as_ref().ok_or_else(|| {
                StartError::Config(format!(
                    "{} has no rls_context key (written before PostgreSQL mode): add one (64 hex digits) shared by every instance",
                    dir.join(keys::KEY_FILE).display()
                ))
            })?;
            let urls = db::pg::PgUrls {
                database: url.expose(),
                migrate: config.migrate_database_url.as_ref().map(SecretUrl::expose),
                audit: config.audit_database_url.as_ref().map(SecretUrl::expose),
                platform: config.platform_database_url.as_ref().map(SecretUrl::expose),
                admin: config.admin_database_url.as_ref().map(SecretUrl::expose),
            };
            let pools = db::pg::open(urls, key, layers).await?;
            if layers.rls() {
                // A session of a tenant that does not exist, issued and verified
                // like any other: its transaction must see its tenant through RLS.
                let probe = hisn_tenant_guard::TenantId::from_uuid(uuid::Uuid::new_v4())
                    .map_err(|e| StartError::Config(e.to_string()))?;
                let token = auth::issue_with(
                    &auth::encoding_key(&k.jwt),
                    Duration::from_secs(60),
                    probe,
                    &uuid::Uuid::new_v4().to_string(),
                    "viewer",
                    &auth::SessionAuth {
                        amr: &["pwd"],
                        ..auth::SessionAuth::default()
                    },
                )
                .map_err(|_| StartError::Config("cannot issue the probe session".into()))?;
                let ctx = auth::verifier(&k.jwt)
                    .and_then(|v| v.verify(&token.token))
                    .map_err(|e| StartError::Config(format!("probe session: {e}")))?;
                db::pg::probe_context(&pools.tenant, &ctx).await?;
            }
            Opened {
                tenant: pools.tenant,
                platform: db::Platform::Pg(pools.platform),
                admin: AdminPool::Pg(pools.admin),
                audit: Some(pools.audit),
            }
        }
    })
}

/// Serve `app` on `listener` until ctrl-c / SIGTERM, finishing requests in flight.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let App { router, state, .. } = app;
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!(target: "hisn::example_server", "shutting down: flushing the audit log");
    drop(state);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
