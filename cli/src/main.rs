//! `hisn`: the operator's tool over the Hisn crates.
//!
//! Conventions shared by every subcommand (see `cli/README.md`):
//! - exit 0: success (or "valid", "intact");
//! - exit 1: verification failed or access denied, with one line saying why;
//! - exit 2: usage or input error (bad flags, unreadable file, malformed input);
//! - `--json` switches results to one JSON document on stdout;
//! - errors go to stderr as one line starting with `hisn: `;
//! - secret material is printed only by commands that exist to mint it.
#![forbid(unsafe_code)]

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{CliError, Ctx};

/// Hisn: operator's tool for tenant isolation, field encryption, audit trails and
/// webhook verification.
#[derive(Debug, Parser)]
#[command(
    name = "hisn",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Exit codes: 0 ok, 1 verification failed or denied, 2 usage or input error."
)]
struct Cli {
    /// Print results as one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign and verify webhook deliveries (Standard Webhooks, Stripe, GitHub, Slack, ...).
    #[command(subcommand)]
    Webhook(cmd::webhook::WebhookCommand),
    /// Generate master keys for field encryption.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Encrypt and decrypt field values bound to tenant, table, column and row.
    #[command(subcommand)]
    Vault(cmd::vault::VaultCommand),
    /// Hash and verify passwords with argon2id.
    #[command(subcommand)]
    Password(cmd::password::PasswordCommand),
    /// Mint and check API keys.
    #[command(subcommand)]
    Apikey(cmd::apikey::ApikeyCommand),
    /// Enrol, compute and verify TOTP (RFC 6238) second-factor codes.
    #[command(subcommand)]
    Totp(cmd::totp::TotpCommand),
    /// Append to, checkpoint, verify and report on tamper-evident audit logs.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Scope SQL statements to a tenant and verify PostgreSQL row-level security.
    #[command(subcommand)]
    Guard(cmd::guard::GuardCommand),
    /// Redact personal data and secrets from log lines (files or stdin), streaming.
    Redact(cmd::redact::RedactArgs),
}

fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx::new(cli.json);
    match cli.command {
        Command::Webhook(c) => cmd::webhook::run(c, &ctx),
        Command::Keys(c) => cmd::keys::run(c, &ctx),
        Command::Vault(c) => cmd::vault::run(c, &ctx),
        Command::Password(c) => cmd::password::run(c, &ctx),
        Command::Apikey(c) => cmd::apikey::run(c, &ctx),
        Command::Totp(c) => cmd::totp::run(c, &ctx),
        Command::Audit(c) => cmd::audit::run(c, &ctx),
        Command::Guard(c) => cmd::guard::run(c, &ctx),
        Command::Redact(c) => cmd::redact::run(&c, &ctx),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::clap_error(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
