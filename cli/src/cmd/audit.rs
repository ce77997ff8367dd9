//! `hisn audit`: append to, checkpoint, verify and report on tamper-evident audit logs.

use std::io::{BufRead as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use hisn_audit_log::{
    AuditRead as _, Event, FileStore, FileStoreOptions, SigningKey, SystemClock, TenantId,
    TrustedKeys, VerifyingKey,
};

use crate::output::{CliError, Ctx};

/// `hisn audit` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Append JSON events from stdin (one per line) to a tenant's chain; prints
    /// the sequence numbers once the records are durable.
    Append {
        /// Store directory (created when missing).
        #[arg(long)]
        store: PathBuf,
        /// Tenant whose chain gets the events.
        #[arg(long)]
        tenant: String,
    },
    /// Verify the chains (exit 0 intact, 1 with the first failing record and verdict).
    Verify {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Trusted checkpoint key (`PREFIX.pub`); repeat for rotated keys.
        /// Without it checkpoints are not checked and the chain is unanchored.
        #[arg(long)]
        pubkey: Vec<PathBuf>,
    },
    /// Sign the current chain heads with a checkpoint key; prints the notes.
    Checkpoint {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Secret checkpoint key (`PREFIX.key`).
        #[arg(long)]
        signing_key: PathBuf,
    },
    /// Generate a checkpoint key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
        /// Key name written into checkpoint signatures.
        #[arg(long, default_value = "hisn-audit")]
        name: String,
    },
    /// DSAR report: every record about one data subject, as JSON.
    Report {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Subject key (as recorded: an identifier or its pseudonym).
        #[arg(long)]
        subject: String,
        /// Trusted checkpoint key, to name the checkpoint that anchors the records.
        #[arg(long)]
        pubkey: Vec<PathBuf>,
    },
}

/// Run one `hisn audit` subcommand.
pub(crate) fn run(cmd: AuditCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Append { store, tenant } => append(&store, &tenant, ctx),
        AuditCommand::Verify {
            store,
            tenant,
            pubkey,
        } => verify(&store, tenant.as_deref(), &pubkey, ctx),
        AuditCommand::Checkpoint {
            store,
            tenant,
            signing_key,
        } => checkpoint(&store, tenant.as_deref(), &signing_key, ctx),
        AuditCommand::Keygen { out, name } => keygen(&out, &name, ctx),
        AuditCommand::Report {
            store,
            tenant,
            subject,
            pubkey,
        } => report(&store, &tenant, &subject, &pubkey, ctx),
    }
}

fn tenant_id(t: &str) -> Result<TenantId, CliError> {
    TenantId::parse(t)
        .map_err(|_| CliError::usage(format!("invalid tenant {t:?}: use 1-64 of [A-Za-z0-9._-]")))
}

fn store_err(e: hisn_audit_log::Error) -> CliError {
    CliError::usage(format!("audit store: {e}"))
}

fn open_read(store: &Path) -> Result<FileStore, CliError> {
    if !store.is_dir() {
        return Err(CliError::usage(format!(
            "no audit store at {}",
            store.display()
        )));
    }
    FileStore::open_read_only(store).map_err(|e| match e {
        // A store too damaged to read is a failed verification, not bad usage.
        hisn_audit_log::Error::Corrupt { .. } | hisn_audit_log::Error::Malformed { .. } => {
            CliError::failed(format!("verification failed: {e}"))
        }
        e => store_err(e),
    })
}

fn trusted_keys(paths: &[PathBuf]) -> Result<Option<TrustedKeys>, CliError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut keys = TrustedKeys::new();
    for p in paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", p.display())))?;
        keys.add(VerifyingKey::from_text(&text).map_err(|_| {
            CliError::usage(format!("{} is not a checkpoint public key", p.display()))
        })?);
    }
    Ok(Some(keys))
}

fn append(store: &Path, tenant: &str, ctx: &Ctx) -> Result<(), CliError> {
    let tenant = tenant_id(tenant)?;
    // Parse everything first: a bad line appends nothing.
    let mut events = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = Event::from_json(&tenant, &line, &SystemClock)
            .map_err(|e| CliError::usage(format!("line {}: {e}", n + 1)))?;
        events.push(event);
    }
    let s = FileStore::open(store, FileStoreOptions::default()).map_err(store_err)?;
    // Submit everything, then wait: the writer commits them in a few fsynced
    // batches instead of one fsync per line.
    let n = events.len();
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, e) in events.into_iter().enumerate() {
        let tx = tx.clone();
        s.append_with(e, move |r| {
            let _ = tx.send((i, r));
        })
        .map_err(|e| CliError::failed(format!("append failed: {e}")))?;
    }
    drop(tx);
    let mut seqs = vec![0u64; n];
    for (i, r) in rx {
        seqs[i] = r.map_err(|e| CliError::failed(format!("append failed: {e}")))?;
    }
    s.close().map_err(store_err)?;
    let human: String = seqs.iter().map(|s| format!("{s}\n")).collect();
    ctx.emit(
        &serde_json::json!({ "tenant": tenant.as_str(), "seqs": seqs }),
        &human,
    )
}

fn verify(
    store: &Path,
    tenant: Option<&str>,
    pubkeys: &[PathBuf],
    ctx: &Ctx,
) -> Result<(), CliError> {
    let keys = trusted_keys(pubkeys)?;
    let s = open_read(store)?;
    let tenants = match tenant {
        Some(t) => {
            let t = tenant_id(t)?;
            if s.bounds(&t).is_err() {
                return Err(CliError::usage(format!(
                    "tenant {t} has no chain in this store"
                )));
            }
            vec![t]
        }
        None => s.tenants().map_err(store_err)?,
    };
    let mut reports = Vec::new();
    let mut human = String::new();
    let mut first_failure = None;
    for t in &tenants {
        let r = s.verify(t, keys.as_ref(), &[]).map_err(store_err)?;
        let line = match (r.verdict.is_ok(), r.seq) {
            (true, Some(seq)) if r.size > seq => format!(
                "{t}: intact, {} records from {}; records from {seq} on are not covered by a verified checkpoint{}",
                r.size - r.verified_from,
                r.verified_from,
                if keys.is_none() {
                    " (no --pubkey given)"
                } else {
                    ""
                }
            ),
            (true, _) => format!(
                "{t}: intact, {} records from {}, all anchored",
                r.size - r.verified_from,
                r.verified_from
            ),
            (false, seq) => {
                let at = seq.map_or_else(String::new, |s| format!(" at record {s}"));
                let msg = format!("{t}: {}{at}", r.verdict);
                first_failure.get_or_insert(msg.clone());
                msg
            }
        };
        human.push_str(&line);
        human.push('\n');
        reports.push(r.to_json());
    }
    let ok = first_failure.is_none();
    ctx.emit(&serde_json::json!({ "ok": ok, "tenants": reports }), &human)?;
    match first_failure {
        None => Ok(()),
        Some(msg) => Err(CliError::failed(format!("verification failed: {msg}"))),
    }
}

fn read_signing_key(path: &Path) -> Result<SigningKey, CliError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?,
    );
    SigningKey::from_text(&text).map_err(|_| {
        CliError::usage(format!(
            "{} is not a checkpoint signing key",
            path.display()
        ))
    })
}

fn checkpoint(store: &Path, tenant: Option<&str>, key: &Path, ctx: &Ctx) -> Result<(), CliError> {
    let key = read_signing_key(key)?;
    let tenant = tenant.map(tenant_id).transpose()?;
    if !store.is_dir() {
        return Err(CliError::usage(format!(
            "no audit store at {}",
            store.display()
        )));
    }
    let s = FileStore::open(store, FileStoreOptions::default()).map_err(store_err)?;
    let cps = s
        .checkpoint_now(
            tenant.as_ref(),
            &key,
            hisn_audit_log::Clock::now(&SystemClock),
        )
        .map_err(|e| match e {
            hisn_audit_log::Error::NotFound => CliError::usage("tenant has no chain in this store"),
            e => store_err(e),
        })?;
    s.close().map_err(store_err)?;
    let human: String = cps.iter().map(|c| format!("{}\n", c.to_note())).collect();
    let json: Vec<_> = cps
        .iter()
        .map(|c| serde_json::json!({ "origin": c.checkpoint.origin, "size": c.checkpoint.size, "note": c.to_note() }))
        .collect();
    ctx.emit(&serde_json::json!({ "checkpoints": json }), &human)
}

fn keygen(out: &Path, name: &str, ctx: &Ctx) -> Result<(), CliError> {
    let key = SigningKey::generate(name)
        .map_err(|e| CliError::usage(format!("cannot generate key: {e}")))?;
    let mut key_path = out.as_os_str().to_owned();
    key_path.push(".key");
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let (key_path, pub_path) = (PathBuf::from(key_path), PathBuf::from(pub_path));
    let write = |path: &Path, mode: u32, text: &str| -> Result<(), CliError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| CliError::usage(format!("cannot create {}: {e}", path.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))
    };
    let public = key.verifying_key().to_text();
    if pub_path.exists() {
        return Err(CliError::usage(format!(
            "{} exists; not overwriting",
            pub_path.display()
        )));
    }
    write(&key_path, 0o600, &key.to_text())?;
    write(&pub_path, 0o644, &public)?;
    ctx.emit(
        &serde_json::json!({ "key": key_path.display().to_string(), "pub": pub_path.display().to_string(), "public_key": public }),
        &format!("wrote {} (secret) and {}\n{public}", key_path.display(), pub_path.display()),
    )
}

fn report(
    store: &Path,
    tenant: &str,
    subject: &str,
    pubkeys: &[PathBuf],
    _ctx: &Ctx,
) -> Result<(), CliError> {
    let tenant = tenant_id(tenant)?;
    let keys = trusted_keys(pubkeys)?;
    let s = open_read(store)?;
    let r = s
        .subject_report(&tenant, subject, keys.as_ref())
        .map_err(store_err)?;
    // The report is JSON with or without --json.
    let mut out = std::io::stdout().lock();
    let res = serde_json::to_writer_pretty(&mut out, &r.to_json())
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out));
    crate::output::output_result(res)
}
