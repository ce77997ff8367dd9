//! `hisn apikey`: mint and check API keys.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use hisn_crypto_vault::{ApiKeyRecord, ApiKeys, SecretKey};
use zeroize::Zeroizing;

use crate::cmd::vault::read_stdin;
use crate::output::{CliError, Ctx};

/// `hisn apikey` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ApikeyCommand {
    /// Mint a key: prints the token (show it once) and what to store (id, HMAC hash).
    Mint {
        /// Token prefix and pepper.
        #[command(flatten)]
        common: Common,
        /// Scope to grant (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Expiry, Unix seconds.
        #[arg(long)]
        expires_at: Option<u64>,
    },
    /// Check the token on stdin: format and checksum; with --hash also the secret,
    /// expiry and scope. Exit 1 if rejected.
    Check {
        /// Token prefix and pepper.
        #[command(flatten)]
        common: Common,
        /// Stored HMAC hash (hex) to verify the secret against.
        #[arg(long, requires = "id")]
        hash: Option<String>,
        /// Stored id the hash belongs to.
        #[arg(long)]
        id: Option<String>,
        /// Scope the stored key grants (repeatable).
        #[arg(long = "granted-scope")]
        granted: Vec<String>,
        /// Scope the request needs.
        #[arg(long)]
        require_scope: Option<String>,
        /// Stored expiry, Unix seconds.
        #[arg(long)]
        expires_at: Option<u64>,
        /// Current time, Unix seconds (default: the system clock).
        #[arg(long)]
        now: Option<u64>,
    },
}

/// Options shared by mint and check.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Token prefix.
    #[arg(long, default_value = "hisn_live")]
    prefix: String,
    /// File holding the server pepper (base64 of 32 bytes; `hisn keys generate-master --out` makes one).
    #[arg(long)]
    pepper_file: PathBuf,
}

impl Common {
    fn keys(&self) -> Result<ApiKeys, CliError> {
        let text = Zeroizing::new(std::fs::read_to_string(&self.pepper_file).map_err(|e| {
            CliError::usage(format!("cannot read {}: {e}", self.pepper_file.display()))
        })?);
        let pepper = SecretKey::from_base64(&text).map_err(CliError::usage)?;
        ApiKeys::new(&self.prefix, pepper).map_err(CliError::usage)
    }
}

/// Run one `hisn apikey` subcommand.
pub(crate) fn run(cmd: ApikeyCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        ApikeyCommand::Mint {
            common,
            scopes,
            expires_at,
        } => {
            let keys = common.keys()?;
            let (token, record) = keys.mint(scopes, expires_at).map_err(CliError::usage)?;
            let hash = hex::encode(record.hash);
            let human = format!(
                "{}\nid: {}\nhash: {hash}\nscopes: {}\n",
                token.expose_secret(),
                record.id,
                record.scopes.iter().cloned().collect::<Vec<_>>().join(",")
            );
            ctx.emit(
                &serde_json::json!({
                    "token": token.expose_secret(),
                    "id": record.id,
                    "hash": hash,
                    "scopes": record.scopes,
                    "expires_at": record.expires_at,
                }),
                &human,
            )
        }
        ApikeyCommand::Check {
            common,
            hash,
            id,
            granted,
            require_scope,
            expires_at,
            now,
        } => {
            let keys = common.keys()?;
            let raw = read_stdin(1024)?;
            let token = std::str::from_utf8(&raw)
                .map_err(|_| CliError::usage("token is not UTF-8"))?
                .trim();
            let parsed_id = keys
                .parse_id(token)
                .map_err(|e| CliError::failed(format!("{e}: bad format or checksum")))?
                .to_owned();
            if let (Some(hash), Some(id)) = (hash, id) {
                let hash: [u8; 32] = hex::decode(hash.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| CliError::usage("--hash must be 64 hex digits"))?;
                let record = ApiKeyRecord {
                    id,
                    hash,
                    scopes: granted.into_iter().collect::<BTreeSet<_>>(),
                    expires_at,
                    revoked: false,
                };
                let now = match now {
                    Some(n) => n,
                    None => std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_err(|_| CliError::usage("system clock before 1970"))?
                        .as_secs(),
                };
                keys.verify(token, &record, now, require_scope.as_deref())
                    .map_err(CliError::failed)?;
                ctx.emit(
                    &serde_json::json!({ "valid": true, "id": parsed_id }),
                    &format!("valid: id {parsed_id}"),
                )
            } else {
                ctx.emit(
                    &serde_json::json!({ "well_formed": true, "id": parsed_id }),
                    &format!("well-formed: id {parsed_id}"),
                )
            }
        }
    }
}
