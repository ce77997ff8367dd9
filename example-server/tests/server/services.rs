//! PostgreSQL and Redis for the multi-instance tests.
//!
//! `HISN_TEST_DATABASE_URL` (a superuser, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) and `HISN_TEST_REDIS_URL`
//! name the services; a test that needs an unset one prints a line and
//! passes, unless `HISN_REQUIRE_SERVICES=1`, where it fails.
//!
//! Each PostgreSQL test gets its own database `hisn_srv_<random>`, owned by
//! a fresh role `<db>_owner` (not a superuser: it migrates and installs RLS)
//! and served by fresh roles `<db>_app` (the application role),
//! `<db>_audit` (the audit store's role) and `<db>_platform` (the platform
//! pool's role); all five are dropped when the [`TestDb`] is. Redis keys get
//! a random prefix.

use std::str::FromStr;
use std::sync::Arc;

use hisn_example_server::Config;
use hisn_example_server::danger::Layers;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::common::{Server, test_config};

fn required() -> bool {
    std::env::var("HISN_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn service(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !required(),
                "{test}: {var} is unset and HISN_REQUIRE_SERVICES=1"
            );
            println!("skipping {test}: {var} is unset");
            None
        }
    }
}

/// The Redis URL, or `None` (test skipped).
pub fn redis_url(test: &str) -> Option<String> {
    service("HISN_TEST_REDIS_URL", test)
}

/// A random Redis key prefix for one test.
pub fn redis_prefix() -> String {
    format!(
        "hisn_test_{}:",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A database and its roles, dropped on drop.
pub struct TestDb {
    /// `hisn_srv_<random>`.
    pub name: String,
    /// Superuser pool on the test database (bypasses RLS: snapshots, sabotage).
    pub root: PgPool,
    base: String,
}

impl TestDb {
    /// A fresh database, or `None` (test skipped).
    pub async fn create(test: &str) -> Option<Arc<Self>> {
        let base = service("HISN_TEST_DATABASE_URL", test)?;
        let name = format!(
            "hisn_srv_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap();
        for sql in [
            format!("CREATE ROLE {name}_owner LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE ROLE {name}_app LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE ROLE {name}_audit LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE ROLE {name}_platform LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE DATABASE {name} OWNER {name}_owner"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .unwrap();
        }
        admin.close().await;
        let opts = PgConnectOptions::from_str(&base).unwrap().database(&name);
        let root = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .unwrap();
        Some(Arc::new(Self { name, root, base }))
    }

    /// The URL of the test database as `role` (trust authentication).
    pub fn url(&self, role: Option<&str>) -> String {
        let (scheme, rest) = self.base.split_once("://").unwrap();
        let after_user = rest.split_once('@').map_or(rest, |(_, h)| h);
        let host = after_user.split('/').next().unwrap();
        match role {
            Some(r) => format!("{scheme}://{r}@{host}/{}", self.name),
            None => {
                let user = rest.split_once('@').map_or("postgres", |(u, _)| u);
                format!("{scheme}://{user}@{host}/{}", self.name)
            }
        }
    }

    /// The application role's name.
    pub fn app_role(&self) -> String {
        format!("{}_app", self.name)
    }

    /// The audit role's name.
    pub fn audit_role(&self) -> String {
        format!("{}_audit", self.name)
    }

    /// The platform role's name.
    pub fn platform_role(&self) -> String {
        format!("{}_platform", self.name)
    }

    /// Start a server on this database (`migrate`: as the owner first);
    /// the start-up error's text if refused.
    pub async fn start(
        self: &Arc<Self>,
        dir: &std::path::Path,
        migrate: bool,
    ) -> Result<(), String> {
        let mut c = test_config(dir);
        self.configure(&mut c, migrate);
        hisn_example_server::danger::build_with_layers(c, Layers::ALL)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Run `sql` as the superuser, `{app}`, `{audit}` and `{platform}`
    /// naming this database's roles.
    pub async fn as_root(&self, sql: &str) {
        let sql = sql
            .replace("{app}", &self.app_role())
            .replace("{audit}", &self.audit_role())
            .replace("{platform}", &self.platform_role());
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.root)
            .await
            .unwrap();
    }

    /// `config` pointed at this database: the application role, the audit
    /// role, the platform role, the owner migrating, the superuser as the
    /// operator console's admin role.
    pub fn configure(&self, config: &mut Config, migrate: bool) {
        config.database_url = Some(self.url(Some(&self.app_role())).parse().unwrap());
        config.audit_database_url = Some(self.url(Some(&self.audit_role())).parse().unwrap());
        config.platform_database_url = Some(self.url(Some(&self.platform_role())).parse().unwrap());
        config.migrate_database_url = migrate.then(|| {
            self.url(Some(&format!("{}_owner", self.name)))
                .parse()
                .unwrap()
        });
        config.admin_database_url = Some(self.url(None).parse().unwrap());
    }

    /// A server on this database with `layers`, in a fresh data directory.
    pub async fn server(self: &Arc<Self>, layers: Layers) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        self.configure(&mut config, true);
        let app = hisn_example_server::danger::build_with_layers(config, layers)
            .await
            .unwrap();
        Server {
            app,
            dir,
            pg: Some(Arc::clone(self)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee (and during unwinding):
        // a thread with its own runtime drops the database and roles.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(admin) = PgPoolOptions::new().max_connections(1).connect(&base).await else {
                    return;
                };
                for sql in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("DROP ROLE IF EXISTS {name}_app"),
                    format!("DROP ROLE IF EXISTS {name}_audit"),
                    format!("DROP ROLE IF EXISTS {name}_platform"),
                    format!("DROP ROLE IF EXISTS {name}_owner"),
                ] {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&admin)
                        .await;
                }
                admin.close().await;
            });
        })
        .join();
    }
}
