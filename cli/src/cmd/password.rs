//! `hisn password`: hash and verify passwords with argon2id.
//!
//! The password is read from stdin (one trailing newline removed), never from
//! the command line, where other users could see it in the process list.

use clap::{Args, Subcommand};
use hisn_crypto_vault::password::MAX_PASSWORD_BYTES;
use hisn_crypto_vault::{Error, PasswordHasher, PasswordParams, Verification};

use crate::cmd::vault::read_stdin;
use crate::output::{CliError, Ctx};

/// `hisn password` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PasswordCommand {
    /// Hash the password on stdin; prints a PHC string.
    Hash(CostArgs),
    /// Verify the password on stdin against a PHC string. Exit 1 if it does not match.
    Verify {
        /// The stored PHC string (`$argon2id$v=19$...`).
        #[arg(long)]
        hash: String,
        /// Current policy (to report whether the hash needs upgrading).
        #[command(flatten)]
        cost: CostArgs,
    },
}

/// argon2id cost parameters (defaults: OWASP minimum).
#[derive(Debug, Args)]
pub(crate) struct CostArgs {
    /// Memory cost in KiB.
    #[arg(long, default_value_t = PasswordParams::DEFAULT.m_cost())]
    m_cost: u32,
    /// Time cost (passes).
    #[arg(long, default_value_t = PasswordParams::DEFAULT.t_cost())]
    t_cost: u32,
    /// Parallelism.
    #[arg(long, default_value_t = PasswordParams::DEFAULT.p_cost())]
    p_cost: u32,
}

impl CostArgs {
    fn hasher(&self) -> Result<PasswordHasher, CliError> {
        let p =
            PasswordParams::new(self.m_cost, self.t_cost, self.p_cost).map_err(CliError::usage)?;
        Ok(PasswordHasher::new(p))
    }
}

fn read_password() -> Result<zeroize::Zeroizing<String>, CliError> {
    let raw = read_stdin(MAX_PASSWORD_BYTES + 2)?;
    let s = std::str::from_utf8(&raw).map_err(|_| CliError::usage("password is not UTF-8"))?;
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    if s.len() > MAX_PASSWORD_BYTES {
        return Err(CliError::usage(Error::PasswordTooLong));
    }
    Ok(zeroize::Zeroizing::new(s.to_owned()))
}

/// Run one `hisn password` subcommand.
pub(crate) fn run(cmd: PasswordCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        PasswordCommand::Hash(cost) => {
            let hasher = cost.hasher()?;
            let pw = read_password()?;
            let phc = hasher.hash(&pw).map_err(CliError::usage)?;
            ctx.emit(&serde_json::json!({ "hash": phc }), &phc)
        }
        PasswordCommand::Verify { hash, cost } => {
            let hasher = cost.hasher()?;
            let pw = read_password()?;
            match hasher.verify(&pw, hash.trim()).map_err(CliError::usage)? {
                Verification::Valid => ctx.emit(
                    &serde_json::json!({ "valid": true, "needs_rehash": false }),
                    "valid",
                ),
                Verification::ValidNeedsRehash => ctx.emit(
                    &serde_json::json!({ "valid": true, "needs_rehash": true }),
                    "valid (hash is below current parameters: rehash)",
                ),
                Verification::Invalid => {
                    ctx.emit(&serde_json::json!({ "valid": false }), "")?;
                    Err(CliError::failed("password does not match"))
                }
            }
        }
    }
}
