//! Configuration: command-line flags, each with an environment variable
//! (`--help` lists both), and an optional config file of `VAR=value` lines.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// `hisn-example-server`: the Hisn reference multi-tenant API.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hisn-example-server",
    version,
    about = "Reference multi-tenant API composing every Hisn crate",
    long_about = "Reference multi-tenant API composing every Hisn crate.\n\n\
        With no setup it keeps everything under --data-dir: a SQLite database, a file audit \
        store, and generated local keys (for local use only). With DATABASE_URL it runs on \
        PostgreSQL with row-level security (HISN_MIGRATE_DATABASE_URL: the owner role that \
        migrates; the server refuses to start if the RLS check has findings), with REDIS_URL \
        its limits, webhook replay and Idempotency-Key stores are shared between instances. \
        Every flag can also be set \
        with the environment variable shown, or in a --config file of VAR=value lines \
        (flags win over the environment, the environment over the file)."
)]
pub struct Cli {
    /// What to run (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server configuration.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Seed two tenants and print curl commands that show each control refusing an attack.
    Demo,
}

/// Server configuration.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HISN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded state (SQLite database, audit log, local keys).
    #[arg(long, env = "HISN_DATA_DIR", default_value = "./hisn-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL of the application role (not the tables' owner, no BYPASSRLS): PostgreSQL mode with row-level security, verified at start-up. Unset: embedded SQLite.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretUrl>,
    /// PostgreSQL URL of the tables' owner (not a superuser): when set, migrations and row-level security are applied at start-up as this role. Unset: the schema must already be current.
    #[arg(long, env = "HISN_MIGRATE_DATABASE_URL", hide_env_values = true)]
    pub migrate_database_url: Option<SecretUrl>,
    /// PostgreSQL URL of the audit role (required in PostgreSQL mode): the audit store's own connection, the only role (besides the owner) with any privilege on audit-log's tables; it must differ from the application role, which holds none (tenant transactions run under it and the audit tables have no row-level security).
    #[arg(long, env = "HISN_AUDIT_DATABASE_URL", hide_env_values = true)]
    pub audit_database_url: Option<SecretUrl>,
    /// PostgreSQL URL of the platform role (required in PostgreSQL mode): the platform pool's own connection (tenants, accounts and their password hashes, API keys, second factors, support grants, notifications, wrapped tenant keys), the only role (besides the owner) with any privilege on those tables; it must differ from the application role, which holds none (tenant transactions run under it and the platform tables have no row-level security).
    #[arg(long, env = "HISN_PLATFORM_DATABASE_URL", hide_env_values = true)]
    pub platform_database_url: Option<SecretUrl>,
    /// PostgreSQL URL of a platform-admin role with BYPASSRLS, for the operator console's audited escape hatch. Unset in PostgreSQL mode: the console answers 503.
    #[arg(long, env = "HISN_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_database_url: Option<SecretUrl>,
    /// Redis URL: API and webhook rate limits, webhook replay store and Idempotency-Key store shared by every instance. Unset: in-process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretUrl>,
    /// Prefix of every Redis key this deployment writes (two deployments sharing a Redis need different prefixes).
    #[arg(long, env = "HISN_REDIS_PREFIX", default_value = "hisn:")]
    pub redis_prefix: String,
    /// File of `VAR=value` lines (the variables listed here) read at start-up.
    #[arg(long, env = "HISN_CONFIG")]
    pub config: Option<PathBuf>,
    /// What the Redis-backed limits do while Redis is unreachable: `closed` (503 with Retry-After) or `open` (this instance's in-process limits).
    #[arg(
        long,
        env = "HISN_RATE_LIMIT_ON_REDIS_FAILURE",
        value_enum,
        default_value = "closed"
    )]
    pub rate_limit_on_redis_failure: OnRedisFailure,
    /// API limit per session, `N/SECONDS`.
    #[arg(long, env = "HISN_SESSION_RATE", default_value = "10/5")]
    pub session_rate: Rate,
    /// API limit per tenant, `N/SECONDS`.
    #[arg(long, env = "HISN_TENANT_RATE", default_value = "100/60")]
    pub tenant_rate: Rate,
    /// Limit per client IP on every route, `N/SECONDS`.
    #[arg(long, env = "HISN_IP_RATE", default_value = "600/60")]
    pub ip_rate: Rate,
    /// Login attempts per account, `N/SECONDS`.
    #[arg(long, env = "HISN_LOGIN_ACCOUNT_RATE", default_value = "5/300")]
    pub login_account_rate: Rate,
    /// Login attempts per client IP, `N/SECONDS`.
    #[arg(long, env = "HISN_LOGIN_IP_RATE", default_value = "30/300")]
    pub login_ip_rate: Rate,
    /// Webhook deliveries per source, `N/SECONDS`.
    #[arg(long, env = "HISN_WEBHOOK_RATE", default_value = "100/60")]
    pub webhook_rate: Rate,
    /// Largest request body, in bytes.
    #[arg(long, env = "HISN_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Lifetime of issued session tokens, in seconds (at most 86400).
    #[arg(long, env = "HISN_TOKEN_TTL_SECS", default_value_t = 900)]
    pub token_ttl_secs: u64,
    /// Seconds between signed audit checkpoints (when there are new records).
    #[arg(long, env = "HISN_CHECKPOINT_SECS", default_value_t = 60)]
    pub checkpoint_secs: u64,
    /// Reverse proxies (CIDRs, comma-separated) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "HISN_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Days after an admin's or owner's first sign-in before TOTP enrolment is required for admin actions.
    #[arg(long, env = "HISN_MFA_GRACE_DAYS", default_value_t = 14)]
    pub mfa_grace_days: u64,
    /// Longest age, in seconds, of the second factor that admin-only actions need (step-up).
    #[arg(long, env = "HISN_STEP_UP_MAX_AGE_SECS", default_value_t = 600)]
    pub step_up_max_age_secs: u64,
    /// Clock-skew allowance, in seconds, for support grants dated slightly ahead (never extends a grant).
    #[arg(long, env = "HISN_GRANT_LEEWAY_SECS", default_value_t = 5)]
    pub grant_leeway_secs: u64,
    /// Password hashes (argon2id, 19 MiB each) allowed to run at once; `0`: twice the available parallelism.
    #[arg(long, env = "HISN_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,
    /// Longest wait, in milliseconds, for a password-hashing slot before answering 503 with Retry-After.
    #[arg(long, env = "HISN_PASSWORD_HASH_WAIT_MS", default_value_t = 1000)]
    pub password_hash_wait_ms: u64,
    /// Seconds between whole-chain verifications of a tenant's audit chain for `GET /t/{tenant}/audit` (in between, each call verifies only the records appended since); 1 to 86400, the bound on how long an in-place edit of an old record can go unreported there.
    #[arg(long, env = "HISN_AUDIT_FULL_VERIFY_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub audit_full_verify_secs: u64,
    /// Log filter (`tracing` env-filter syntax).
    #[arg(long, env = "HISN_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// The defaults with `data_dir`, as tests and the demo use them.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut c = Cli::parse_from(["hisn-example-server"]).config;
        c.data_dir = data_dir.into();
        c
    }
}

/// What a Redis-backed rate limit does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnRedisFailure {
    /// Refuse with `503` and `Retry-After` (an outage never lifts a limit).
    Closed,
    /// Fall back to this instance's in-process limit (per instance, not shared).
    Open,
}

impl OnRedisFailure {
    /// The rate-limit failure mode.
    pub fn mode(self) -> hisn_rate_limit::FailureMode {
        match self {
            Self::Closed => hisn_rate_limit::FailureMode::FailClosed,
            Self::Open => hisn_rate_limit::FailureMode::FailOpen,
        }
    }
}

/// A connection URL that may carry a password: `Debug` prints only its
/// scheme, so configuration dumps and logs never show credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(zeroize::Zeroizing<String>);

impl SecretUrl {
    /// The URL, for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.split_once("://").map_or("?", |(s, _)| s);
        write!(f, "SecretUrl({scheme}://..)")
    }
}

impl FromStr for SecretUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains("://") {
            Ok(Self(zeroize::Zeroizing::new(s.to_owned())))
        } else {
            Err("expected a URL (scheme://...)".into())
        }
    }
}

/// A rate: `quota` units per `period`, written `N/SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units per period.
    pub quota: NonZeroU32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    /// `quota` per `secs` seconds.
    pub fn new(quota: u32, secs: u64) -> Option<Self> {
        Some(Self {
            quota: NonZeroU32::new(quota)?,
            period: Duration::from_secs(secs).max(Duration::from_secs(1)),
        })
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, t) = s.split_once('/').ok_or("expected N/SECONDS")?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| "N must be a positive integer")?;
        let t: u64 = t
            .trim()
            .trim_end_matches('s')
            .parse()
            .map_err(|_| "SECONDS must be a positive integer")?;
        if t == 0 {
            return Err("SECONDS must be positive".into());
        }
        Rate::new(n, t).ok_or_else(|| "N must be positive".into())
    }
}

/// Parse the process arguments, reading the config file (`--config` /
/// `HISN_CONFIG`) first: a variable it sets is used only when neither the
/// flag nor the environment variable is given.
pub fn parse_args() -> Result<Cli, String> {
    let args: Vec<String> = std::env::args().collect();
    let first = Cli::try_parse_from(&args).map_err(|e| e.to_string())?;
    let Some(path) = first.config.config.clone() else {
        return Ok(first);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let extra = file_args(&text, &args)?;
    let mut all = args;
    all.extend(extra);
    Cli::try_parse_from(all).map_err(|e| e.to_string())
}

/// Flags for the `VAR=value` lines of a config file whose flag is not on the
/// command line and whose variable is not in the environment.
fn file_args(text: &str, args: &[String]) -> Result<Vec<String>, String> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (var, value) = line
            .split_once('=')
            .ok_or_else(|| format!("config line {}: expected VAR=value", n + 1))?;
        let var = var.trim();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == var))
            .ok_or_else(|| format!("config line {}: unknown variable {var}", n + 1))?;
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("--{long}");
        let on_cli = args
            .iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        if on_cli || std::env::var_os(var).is_some() {
            continue;
        }
        out.push(format!("{flag}={}", value.trim()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The staleness bound of `GET /audit` is at most a day: a larger value
    /// (or 0) is refused at start, not taken.
    #[test]
    fn the_full_verify_interval_is_bounded() {
        let parse = |v: &str| Cli::try_parse_from(["x", &format!("--audit-full-verify-secs={v}")]);
        assert_eq!(
            parse("86400").unwrap().config.audit_full_verify_secs,
            86_400
        );
        for bad in ["0", "86401", "18446744073709551615"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_parse() {
        assert_eq!("10/5".parse::<Rate>(), Ok(Rate::new(10, 5).unwrap()));
        assert_eq!("100/60s".parse::<Rate>(), Ok(Rate::new(100, 60).unwrap()));
        assert!("0/5".parse::<Rate>().is_err());
        assert!("10/0".parse::<Rate>().is_err());
        assert!("ten".parse::<Rate>().is_err());
    }

    #[test]
    fn config_file_lines_become_flags_unless_given() {
        let args = vec!["x".to_owned(), "--listen=0.0.0.0:1".to_owned()];
        let out = file_args(
            "# comment\nHISN_LISTEN=1.2.3.4:5\nHISN_MAX_BODY_BYTES=1000\n",
            &args,
        )
        .unwrap();
        assert_eq!(out, vec!["--max-body-bytes=1000".to_owned()]);
        assert!(file_args("NOPE=1", &args).is_err());
        assert!(file_args("no equals", &args).is_err());
    }

    #[test]
    fn defaults_match_the_issue() {
        let c = Config::for_data_dir("/tmp/x");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.session_rate, Rate::new(10, 5).unwrap());
        assert_eq!(c.tenant_rate, Rate::new(100, 60).unwrap());
        assert!(c.database_url.is_none() && c.redis_url.is_none());
        assert_eq!(c.redis_prefix, "hisn:");
    }

    #[test]
    fn urls_never_print_their_credentials() {
        let u: SecretUrl = "postgres://app:s3cret@db/hisn".parse().unwrap();
        assert_eq!(u.expose(), "postgres://app:s3cret@db/hisn");
        assert!(!format!("{u:?}").contains("s3cret"));
        let mut c = Config::for_data_dir("/tmp/x");
        c.database_url = Some(u);
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!("not a url".parse::<SecretUrl>().is_err());
    }
}
