//! `hisn password`: hash and verify passwords with argon2id; verify legacy
//! hashes (bcrypt, scrypt, PBKDF2-SHA256, wrapped) and say they need a rehash.
//!
//! The password is read from stdin (one trailing newline removed), never from
//! the command line, where other users could see it in the process list.
//!
//! `verify` checks one hash at a time, so it admits a legacy hash at its own
//! cost (up to the library's hard ceilings) instead of a configured policy:
//! timing is no oracle here, unlike a login endpoint.

use clap::{Args, Subcommand};
use hisn_crypto_vault::password::{
    LegacyPolicy, MAX_PASSWORD_BYTES, SaltHashLayout, SaltInput, ScryptCost,
};
use hisn_crypto_vault::{Error, PasswordHasher, PasswordParams, Verification};

use crate::cmd::vault::read_stdin;
use crate::output::{CliError, Ctx};

/// `hisn password` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PasswordCommand {
    /// Hash the password on stdin; prints a PHC string.
    Hash(CostArgs),
    /// Verify the password on stdin against a stored hash. Exit 1 if it does not match.
    ///
    /// Accepts argon2id PHC strings, bcrypt (`$2a$`/`$2b$`/`$2y$`), scrypt
    /// (`$scrypt$...`, or `salt:hash` with --scrypt-salt-hash), PBKDF2-SHA256
    /// (`$pbkdf2-sha256$...`) and wrapped hashes (`$hisn-wrap-v1$...`). A legacy
    /// hash that matches always needs a rehash.
    Verify {
        /// The stored hash.
        #[arg(long)]
        hash: String,
        /// Read a `salt:hash` (hex or base64) hash as scrypt with these
        /// parameters: `ln,r,p` (log2 N, block size, parallelism), e.g. `14,8,1`
        /// for Node.js's defaults.
        #[arg(long, value_name = "LN,R,P")]
        scrypt_salt_hash: Option<String>,
        /// With --scrypt-salt-hash: feed the salt's text as written (the Node.js
        /// idiom) instead of its decoded bytes.
        #[arg(long, requires = "scrypt_salt_hash")]
        salt_as_written: bool,
        /// Current policy (to report whether the hash needs upgrading).
        #[command(flatten)]
        cost: CostArgs,
    },
}

/// `--scrypt-salt-hash ln,r,p` into a layout.
fn salt_hash_layout(spec: &str, as_written: bool) -> Result<SaltHashLayout, CliError> {
    let bad = || CliError::usage("--scrypt-salt-hash takes LN,R,P (for example 14,8,1)");
    let mut it = spec.split(',').map(|n| n.trim().parse::<u32>());
    let (Some(Ok(ln)), Some(Ok(r)), Some(Ok(p)), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(bad());
    };
    let ln = u8::try_from(ln).map_err(|_| bad())?;
    let cost = ScryptCost::new(ln, r, p).map_err(CliError::usage)?;
    let salt = if as_written {
        SaltInput::AsWritten
    } else {
        SaltInput::Decoded
    };
    Ok(SaltHashLayout::new(cost, salt))
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
        PasswordCommand::Verify {
            hash,
            scrypt_salt_hash,
            salt_as_written,
            cost,
        } => {
            let hash = hash.trim();
            let layout = scrypt_salt_hash
                .map(|s| salt_hash_layout(&s, salt_as_written))
                .transpose()?;
            let legacy = LegacyPolicy::for_stored(hash, layout).map_err(CliError::usage)?;
            let is_legacy = !legacy.is_none();
            let hasher = cost.hasher()?.with_legacy(legacy);
            let pw = read_password()?;
            match hasher.verify(&pw, hash).map_err(CliError::usage)? {
                Verification::Valid => ctx.emit(
                    &serde_json::json!({ "valid": true, "needs_rehash": false, "legacy": false }),
                    "valid",
                ),
                Verification::ValidNeedsRehash if is_legacy => ctx.emit(
                    &serde_json::json!({ "valid": true, "needs_rehash": true, "legacy": true }),
                    "valid (legacy hash: rehash with argon2id and store the new hash)",
                ),
                Verification::ValidNeedsRehash => ctx.emit(
                    &serde_json::json!({ "valid": true, "needs_rehash": true, "legacy": false }),
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
