//! Helpers for tests that need a real PostgreSQL or Redis.
//!
//! Every service-backed test in the workspace goes through this crate, so the
//! rules are the same everywhere:
//!
//! - The service is named by an environment variable:
//!   [`DATABASE_URL_VAR`] (`HISN_TEST_DATABASE_URL`) for PostgreSQL,
//!   [`REDIS_URL_VAR`] (`HISN_TEST_REDIS_URL`) for Redis.
//! - Unset: the helper prints one line saying the test is skipped and why, and
//!   returns `None`; the test returns early.
//! - With [`REQUIRE_VAR`] (`HISN_REQUIRE_SERVICES=1`, as `.ci/run` sets it), an
//!   unset variable or an unreachable service fails the test instead: CI can never
//!   pass by silently skipping what it was meant to prove.
//! - Each test gets its own fresh database ([`TestDatabase`]) or its own key prefix
//!   ([`TestRedis`]), so tests run in parallel without seeing each other's data.
//!   Both are removed again when the handle is dropped.
//!
//! ```no_run
//! # async fn example() {
//! let Some(db) = hisn_test_support::postgres("my_test").await else { return };
//! let pool = db.pool().await;
//! sqlx::query("create table t (id int)").execute(&pool).await.unwrap();
//! # }
//! ```
//!
//! It also holds [`capture_events`], the one way tests capture the `tracing`
//! events (level, target, message, fields) the code under test emits, and
//! [`set_default`], for a test that needs its own subscriber (a formatter, a
//! writer) as the thread's default: unlike `tracing`'s own, it keeps a
//! parallel test without a subscriber from disabling the callsites it reads.
#![forbid(unsafe_code)]
// This crate exists to make tests fail loudly: panicking on a broken service is
// its documented behaviour, not an accident.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod capture;

pub use capture::{CapturedEvent, capture_events, set_default};

use std::fmt;
use std::io::Write;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

/// Environment variable naming the PostgreSQL server used by tests
/// (for example `postgres://postgres@127.0.0.1:5432/test`).
pub const DATABASE_URL_VAR: &str = "HISN_TEST_DATABASE_URL";
/// Environment variable naming the Redis server used by tests
/// (for example `redis://127.0.0.1:6379`).
pub const REDIS_URL_VAR: &str = "HISN_TEST_REDIS_URL";
/// When set to `1`, a missing or unreachable service fails the test.
pub const REQUIRE_VAR: &str = "HISN_REQUIRE_SERVICES";

/// Prefix of every database this crate creates; a database left behind by a
/// killed test run can be recognised (and dropped) by it.
pub const DATABASE_PREFIX: &str = "hisn_t_";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `HISN_REQUIRE_SERVICES=1` is in force.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1")
}

/// Decide what to do about an unavailable service: skip (print and return) or,
/// when services are required, fail the test.
fn unavailable(test: &str, what: &str) {
    if services_required() {
        panic!("{test}: {what}, and {REQUIRE_VAR}=1 requires it");
    }
    // Written to the stderr handle directly, not with `eprintln!`: libtest
    // captures the print macros of passing tests, and a skip must be visible.
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipping {test}: {what} (set it to run this test)"
    );
}

fn env_url(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            unavailable(test, &format!("{var} is not set"));
            None
        }
    }
}

/// A name that is unique to this call: `prefix` followed by 32 hex digits.
/// Useful for roles, schemas and other cluster-wide names a test creates.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh PostgreSQL database for one test, dropped (with `FORCE`) when this
/// handle is dropped.
pub struct TestDatabase {
    name: String,
    admin: PgConnectOptions,
    options: PgConnectOptions,
    url: String,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Create a fresh database for `test` on the server named by
/// `HISN_TEST_DATABASE_URL`.
///
/// Returns `None` (after printing a skip line) when the variable is unset or the
/// server is unreachable; panics instead when `HISN_REQUIRE_SERVICES=1`.
pub async fn postgres(test: &str) -> Option<TestDatabase> {
    let url = env_url(test, DATABASE_URL_VAR)?;
    let admin: PgConnectOptions = match url.parse() {
        Ok(o) => o,
        Err(e) => panic!("{test}: {DATABASE_URL_VAR} is not a valid PostgreSQL URL: {e}"),
    };
    let mut conn =
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&admin)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                unavailable(
                    test,
                    &format!("PostgreSQL at {DATABASE_URL_VAR} is unreachable ({e})"),
                );
                return None;
            }
            Err(_) => {
                unavailable(
                    test,
                    &format!("PostgreSQL at {DATABASE_URL_VAR} did not answer in time"),
                );
                return None;
            }
        };
    let name = unique_name(DATABASE_PREFIX);
    // `name` is our own [a-z0-9_] identifier, so quoting it is enough.
    if let Err(e) = sqlx::query(AssertSqlSafe(format!("create database \"{name}\"")))
        .execute(&mut conn)
        .await
    {
        panic!("{test}: could not create test database {name}: {e}");
    }
    let _ = conn.close().await;
    let options = admin.clone().database(&name);
    let url = replace_database(&url, &name);
    Some(TestDatabase {
        name,
        admin,
        options,
        url,
    })
}

/// Swap the database path of a `postgres://` URL, keeping any query string.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDatabase {
    /// The database's name (unique per test).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL for this database, as the superuser from the variable.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connection options for this database, as the superuser from the variable.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// A small pool connected to this database as the superuser.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(self.options.clone())
            .await
            .unwrap_or_else(|e| panic!("connect to test database {}: {e}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = std::mem::take(&mut self.name);
        // Drop may run inside or outside a runtime; a thread with its own
        // current-thread runtime works in both.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "drop database if exists \"{name}\" with (force)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A unique key prefix on the Redis server named by `HISN_TEST_REDIS_URL`.
/// Every key under the prefix is deleted when this handle is dropped.
pub struct TestRedis {
    url: String,
    prefix: String,
    client: redis::Client,
}

impl fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRedis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Reserve a fresh key prefix for `test` on the Redis server named by
/// `HISN_TEST_REDIS_URL`, after checking that the server answers `PING`.
///
/// Returns `None` (after printing a skip line) when the variable is unset or the
/// server is unreachable; panics instead when `HISN_REQUIRE_SERVICES=1`.
pub async fn redis(test: &str) -> Option<TestRedis> {
    let url = env_url(test, REDIS_URL_VAR)?;
    let client = match redis::Client::open(url.as_str()) {
        Ok(c) => c,
        Err(e) => panic!("{test}: {REDIS_URL_VAR} is not a valid Redis URL: {e}"),
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            unavailable(
                test,
                &format!("Redis at {REDIS_URL_VAR} is unreachable ({e})"),
            );
            return None;
        }
        Err(_) => {
            unavailable(
                test,
                &format!("Redis at {REDIS_URL_VAR} did not answer in time"),
            );
            return None;
        }
    }
    let prefix = format!("{}:", unique_name("hisn:t:"));
    Some(TestRedis {
        url,
        prefix,
        client,
    })
}

impl TestRedis {
    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This test's key prefix (ends with `:`); put every key under it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix` + `suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// A client for the server.
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// A multiplexed async connection.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to Redis: {e}"))
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(mut conn) = self.client.get_connection_with_timeout(CONNECT_TIMEOUT) else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = match redis::cmd("KEYS").arg(&pattern).query(&mut conn) {
            Ok(k) => k,
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_database_keeps_host_and_query() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h:1", "x"), "postgres://h:1/x");
    }

    #[test]
    fn unique_names_differ_and_keep_prefix() {
        let a = unique_name("p_");
        let b = unique_name("p_");
        assert_ne!(a, b);
        assert!(a.starts_with("p_") && a.len() == 2 + 32);
    }
}
