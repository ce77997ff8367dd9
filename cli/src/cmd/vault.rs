//! `hisn vault`: encrypt and decrypt field values bound to tenant, table, column and row.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use hisn_crypto_vault::{
    Ciphertext, DirKeyStore, Error, FieldContext, FileKeyProvider, KeyProvider as _,
    MAX_PLAINTEXT_LEN, Vault,
};
use zeroize::Zeroizing;

use crate::output::{CliError, Ctx};

/// `hisn vault` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Encrypt stdin for (tenant, table, column, row); prints the ciphertext's text form.
    Encrypt(FieldArgs),
    /// Decrypt a ciphertext (text form on stdin) stored at (tenant, table, column,
    /// row); writes the plaintext to stdout. Exit 1 for anything that is not an
    /// authentic ciphertext for that place: tampered, moved, truncated,
    /// re-encoded, another prefix, not a ciphertext at all. Never creates keys.
    Decrypt(FieldArgs),
}

/// Where the keys are and where the value lives.
#[derive(Debug, Args)]
pub(crate) struct FieldArgs {
    /// File holding the master key (base64, from `hisn keys generate-master --out`).
    #[arg(long)]
    master_key_file: PathBuf,
    /// Directory holding the wrapped tenant keys (created on first use).
    #[arg(long)]
    keystore: PathBuf,
    /// Tenant id.
    #[arg(long)]
    tenant: String,
    /// Table name.
    #[arg(long)]
    table: String,
    /// Column name.
    #[arg(long)]
    column: String,
    /// Row id.
    #[arg(long)]
    row: String,
}

/// Read all of stdin, refusing more than `limit` bytes (exit 2).
pub(crate) fn read_stdin(limit: usize) -> Result<Zeroizing<Vec<u8>>, CliError> {
    read_stdin_bounded(limit)?
        .ok_or_else(|| CliError::usage(format!("input longer than {limit} bytes")))
}

/// Read all of stdin; `None` if it is longer than `limit` bytes.
fn read_stdin_bounded(limit: usize) -> Result<Option<Zeroizing<Vec<u8>>>, CliError> {
    let mut buf = Zeroizing::new(Vec::new());
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    std::io::stdin()
        .lock()
        .take(cap)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
    Ok((buf.len() <= limit).then_some(buf))
}

/// The one answer for every input that is not an authentic ciphertext for the
/// context (exit 1): scripts get one failure class for "not authentic".
fn not_authentic() -> CliError {
    CliError::failed(Error::Decrypt)
}

/// Parse stdin as a ciphertext's text form (surrounding white space ignored).
/// Anything else (too long, not UTF-8, another prefix, truncated, re-encoded)
/// cannot be authentic: exit 1, like a failed decryption.
fn read_ciphertext() -> Result<Ciphertext, CliError> {
    let input = read_stdin_bounded(MAX_PLAINTEXT_LEN * 2)?.ok_or_else(not_authentic)?;
    let text = std::str::from_utf8(&input).map_err(|_| not_authentic())?;
    Ciphertext::from_text(text.trim()).map_err(|_| not_authentic())
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| CliError::usage(format!("cannot start runtime: {e}")))
}

/// Map a library error: verification failures exit 1, everything else 2.
fn map_err(e: Error) -> CliError {
    match e {
        Error::Decrypt | Error::MalformedCiphertext | Error::UnsupportedVersion(_) => {
            not_authentic()
        }
        Error::UnknownKey | Error::Unwrap | Error::TenantShredded => {
            CliError::failed(format!("decryption failed: {e}"))
        }
        other => CliError::usage(other),
    }
}

/// Run one `hisn vault` subcommand.
pub(crate) fn run(cmd: VaultCommand, ctx: &Ctx) -> Result<(), CliError> {
    let (args, encrypt) = match cmd {
        VaultCommand::Encrypt(a) => (a, true),
        VaultCommand::Decrypt(a) => (a, false),
    };
    let rt = runtime()?;
    let master = rt
        .block_on(FileKeyProvider::new(&args.master_key_file).master_key())
        .map_err(|e| CliError::usage(format!("{e} ({})", args.master_key_file.display())))?;
    let field = FieldContext::new(&args.tenant, &args.table, &args.column, &args.row)
        .map_err(CliError::usage)?;
    if encrypt {
        let store = DirKeyStore::open(&args.keystore).map_err(CliError::usage)?;
        let vault = Vault::new(store, master);
        let input = read_stdin(MAX_PLAINTEXT_LEN)?;
        // Encrypting is the one command that may create the tenant's keys.
        rt.block_on(vault.provision_tenant(field.tenant()))
            .map_err(map_err)?;
        let ct = rt
            .block_on(vault.encrypt(&field, &input))
            .map_err(map_err)?;
        rt.block_on(vault.persist_usage(field.tenant()))
            .map_err(map_err)?;
        let text = ct.to_text();
        ctx.emit(
            &serde_json::json!({ "ciphertext": text, "key_id": ct.key_id().0 }),
            &text,
        )
    } else {
        let ct = read_ciphertext()?;
        // A read never writes: no keystore directory is created, and a
        // missing one means no keys, so nothing can be authentic.
        if !args.keystore.is_dir() {
            return Err(CliError::failed(Error::Decrypt));
        }
        let store = DirKeyStore::open(&args.keystore).map_err(CliError::usage)?;
        let vault = Vault::new(store, master);
        let pt = rt.block_on(vault.decrypt(&field, &ct)).map_err(map_err)?;
        if ctx.json() {
            use base64::Engine as _;
            let b64 =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pt.as_bytes()));
            ctx.emit(
                &serde_json::json!({ "plaintext": pt.as_str(), "plaintext_base64": b64.as_str() }),
                "",
            )
        } else {
            let mut out = std::io::stdout().lock();
            let res = out.write_all(pt.as_bytes()).and_then(|()| out.flush());
            crate::output::output_result(res)
        }
    }
}
