//! `hisn keys`: generate master keys for field encryption.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use hisn_crypto_vault::MasterKey;

use crate::output::{CliError, Ctx};

/// `hisn keys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a new random 256-bit master key and print it as base64 (or write
    /// it to a new file with --out, readable by its owner only).
    GenerateMaster {
        /// Write the key to this file (must not exist) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Run one `hisn keys` subcommand.
pub(crate) fn run(cmd: KeysCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        KeysCommand::GenerateMaster { out } => {
            let key = MasterKey::generate().map_err(CliError::usage)?;
            let b64 = key.to_base64();
            let fingerprint = hex::encode(key.fingerprint());
            match out {
                None => ctx.emit(
                    &serde_json::json!({ "master_key": b64.as_str(), "fingerprint": fingerprint }),
                    &b64,
                ),
                Some(path) => {
                    write_new_private_file(&path, format!("{}\n", b64.as_str()).as_bytes())?;
                    ctx.emit(
                        &serde_json::json!({ "written": path.display().to_string(), "fingerprint": fingerprint }),
                        &format!("master key written to {} (fingerprint {fingerprint})", path.display()),
                    )
                }
            }
        }
    }
}

/// Create `path` (refusing to overwrite) with owner-only permissions and write `data`.
fn write_new_private_file(path: &std::path::Path, data: &[u8]) -> Result<(), CliError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| CliError::usage(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(data)
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))
}
