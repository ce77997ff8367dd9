//! `hisn audit`: append to, checkpoint, verify and report on tamper-evident audit logs.

use std::io::{BufRead as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use hisn_audit_log::{
    Anchors, AuditRead, Event, FileStore, FileStoreOptions, MemoryStore, SignedCheckpoint,
    SigningKey, SystemClock, TenantId, TenantReader, TrustedKeys, Verdict, VerifierState,
    VerifyReport, VerifyingKey, WitnessKey, WitnessPolicy, has_chain, require_anchor,
    verify_store_witnessed,
};

use crate::output::{CliError, Ctx};

mod checkpoint;

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
    /// Verify the chains (exit 0 intact, 1 naming every broken range and the verdict).
    ///
    /// Every tenant needs a verified checkpoint covering its chain (from the
    /// store, --checkpoint or --state), or it fails: without --pubkey nothing
    /// is anchored, so every chain with records fails unless
    /// --allow-unanchored (then checked alone and reported as NOT anchored).
    /// Without --state, a rollback of the whole store to an older genuinely
    /// signed checkpoint (records and checkpoint notes restored together)
    /// cannot be detected: the output says "rollback not checked".
    Verify {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
        /// Only this tenant (default: every tenant the store or any checkpoint knows).
        #[arg(long)]
        tenant: Option<String>,
        /// Trusted keys and the anchors held outside the store.
        #[command(flatten)]
        anchors: AnchorArgs,
        /// Let a tenant pass with no verified checkpoint covering it, or verify
        /// without --pubkey (the chain alone proves nothing against someone
        /// who can rewrite the store).
        #[arg(long)]
        allow_unanchored: bool,
        /// A witness's public key (a file holding its verifier key text,
        /// `<name>+<hex key id>+<base64 key>`); repeatable. With witnesses, a
        /// checkpoint counts only when --witness-threshold of them cosigned
        /// it (C2SP tlog-cosignature). Needs --pubkey.
        #[arg(long, value_name = "FILE")]
        witness_key: Vec<PathBuf>,
        /// How many of the --witness-key witnesses must have cosigned a
        /// checkpoint (default: all of them). Each witness counts once, by
        /// public key.
        #[arg(long, value_name = "N", requires = "witness_key")]
        witness_threshold: Option<usize>,
    },
    /// Sign the current chain heads with a checkpoint key; prints the notes.
    ///
    /// A chain that does not verify is never signed. Give the anchors you
    /// hold (--checkpoint, --state, as for `verify`): whoever can write the
    /// store can rewrite a chain and delete the store's checkpoints, and
    /// only anchors held elsewhere show it. A tenant that contradicts one
    /// (truncated, tampered, fork, rolled back) is not signed: exit 1 naming
    /// it and the verdict; the other tenants are still signed.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Generate a checkpoint key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
        /// Key name written into checkpoint signatures.
        #[arg(long, default_value = "hisn-audit")]
        name: String,
    },
    /// Merkle proofs (RFC 6962): a record's inclusion in a signed checkpoint's
    /// tree, or the consistency of two checkpoints. With --pubkey the proof is
    /// checked against a verified checkpoint (exit 1 if it fails).
    Prove {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Prove that record SEQ is in the tree (of --size, default: the newest
        /// checkpoint with a Merkle root, else the whole chain).
        #[arg(
            long,
            value_name = "SEQ",
            conflicts_with = "consistency",
            required_unless_present = "consistency"
        )]
        inclusion: Option<u64>,
        /// Prove that the tree of OLD records is a prefix of the tree of NEW records.
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
        consistency: Vec<u64>,
        /// Tree size for --inclusion.
        #[arg(long, requires = "inclusion")]
        size: Option<u64>,
        /// Trusted checkpoint key (`PREFIX.pub`); repeatable.
        #[arg(long)]
        pubkey: Vec<PathBuf>,
        /// Checkpoints held outside the store (as for `verify`); repeatable.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
    },
    /// Cut a chain damaged below its synced mark back to its last intact
    /// record, moving the damage to quarantine (dry run without --apply).
    Repair(crate::cmd::audit_repair::RepairArgs),
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

/// The anchors `verify` and `checkpoint` check a chain against: trusted
/// checkpoint keys, checkpoints held outside the store and the verifier's
/// state (read through [`load_anchors`] by both).
#[derive(Debug, clap::Args)]
pub(crate) struct AnchorArgs {
    /// Trusted checkpoint key (`PREFIX.pub`); repeat for rotated keys.
    /// `verify` without it checks no checkpoints and every chain is
    /// unanchored (a failure unless --allow-unanchored); `checkpoint` always
    /// trusts its signing key's own public key as well.
    #[arg(long)]
    pub(crate) pubkey: Vec<PathBuf>,
    /// Checkpoints held outside the store (notes as `hisn audit checkpoint`
    /// prints them, or a checkpoint JSON-lines log); repeatable. `verify`
    /// needs --pubkey with it. A chain shorter than one (truncated) or
    /// differing from one at its size (tampered, fork) fails, and
    /// `checkpoint` does not sign it.
    #[arg(long)]
    pub(crate) checkpoint: Vec<PathBuf>,
    /// The verifier's own state: the newest verified checkpoint per tenant,
    /// read before and updated after (created when missing). A log shorter
    /// than or disagreeing with it fails and is not signed. `verify` needs
    /// --pubkey with it; without it, a rollback to an older signed
    /// checkpoint is not detected.
    #[arg(long)]
    pub(crate) state: Option<PathBuf>,
}

/// Run one `hisn audit` subcommand.
pub(crate) fn run(cmd: AuditCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Append { store, tenant } => append(&store, &tenant, ctx),
        AuditCommand::Verify {
            store,
            tenant,
            anchors,
            allow_unanchored,
            witness_key,
            witness_threshold,
        } => verify(
            &VerifyArgs {
                store: &store,
                tenant: tenant.as_deref(),
                pubkeys: &anchors.pubkey,
                checkpoints: &anchors.checkpoint,
                state: anchors.state.as_deref(),
                allow_unanchored,
                witness_keys: &witness_key,
                witness_threshold,
            },
            ctx,
        ),
        AuditCommand::Checkpoint(args) => checkpoint::run(&args, ctx),
        AuditCommand::Keygen { out, name } => keygen(&out, &name, ctx),
        AuditCommand::Prove {
            store,
            tenant,
            inclusion,
            consistency,
            size,
            pubkey,
            checkpoint,
        } => prove(
            &ProveArgs {
                store: &store,
                tenant: &tenant,
                inclusion,
                consistency: &consistency,
                size,
                pubkeys: &pubkey,
                checkpoints: &checkpoint,
            },
            ctx,
        ),
        AuditCommand::Report {
            store,
            tenant,
            subject,
            pubkey,
        } => report(&store, &tenant, &subject, &pubkey, ctx),
        AuditCommand::Repair(args) => crate::cmd::audit_repair::run(&args, ctx),
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

/// `hisn audit verify` arguments.
struct VerifyArgs<'a> {
    store: &'a Path,
    tenant: Option<&'a str>,
    pubkeys: &'a [PathBuf],
    checkpoints: &'a [PathBuf],
    state: Option<&'a Path>,
    allow_unanchored: bool,
    witness_keys: &'a [PathBuf],
    witness_threshold: Option<usize>,
}

/// The witness policy given on the command line (`None` without witnesses).
fn witness_policy(args: &VerifyArgs<'_>) -> Result<Option<WitnessPolicy>, CliError> {
    if args.witness_keys.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(args.witness_keys.len());
    for p in args.witness_keys {
        let text = std::fs::read_to_string(p)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", p.display())))?;
        keys.push(WitnessKey::from_text(text.trim()).map_err(|_| {
            CliError::usage(format!("{} is not a witness public key", p.display()))
        })?);
    }
    let n = args.witness_threshold.unwrap_or(keys.len());
    WitnessPolicy::new(keys, n).map(Some).map_err(|_| {
        CliError::usage(format!(
            "--witness-threshold {n} needs 1 to the number of distinct witness keys given"
        ))
    })
}

/// The anchors given on the command line: --checkpoint files and the state.
fn load_anchors(
    checkpoints: &[PathBuf],
    state: Option<&Path>,
) -> Result<(Anchors, Option<VerifierState>), CliError> {
    let mut anchors = Anchors::new();
    for p in checkpoints {
        let text = std::fs::read_to_string(p)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", p.display())))?;
        // The operator's own evidence: damaged notes fail closed, as tampering.
        anchors.add_text(&text).map_err(|_| {
            CliError::failed(format!(
                "verification failed: {} holds a malformed checkpoint note",
                p.display()
            ))
        })?;
    }
    let state = match state {
        Some(p) => {
            let st = VerifierState::load(p).map_err(|e| match e {
                hisn_audit_log::Error::Malformed { .. } => CliError::failed(format!(
                    "verification failed: {} is not a verifier state",
                    p.display()
                )),
                e => CliError::usage(format!("cannot read {}: {e}", p.display())),
            })?;
            anchors.add_state(&st);
            Some(st)
        }
        None => None,
    };
    Ok((anchors, state))
}

/// One human-readable line for a report. Without keys the chain alone was
/// checked (anyone who can write the store can rebuild one), and without a
/// state a rollback to an older genuine checkpoint cannot be seen: the line
/// says so rather than claim "intact".
fn describe(r: &VerifyReport, keys_given: bool, state_given: bool) -> String {
    let t = &r.tenant;
    let skipped = if r.skipped_checkpoints > 0 {
        format!(
            "; warning: {} checkpoint notes in the store skipped (not verifiable with the given keys)",
            r.skipped_checkpoints
        )
    } else {
        String::new()
    };
    let rollback = if state_given {
        ""
    } else {
        "; rollback not checked (no --state)"
    };
    match (r.verdict, r.seq) {
        (Verdict::Unanchored, _) if !keys_given => format!(
            "{t}: unanchored: no --pubkey given, so nothing shows its {} records were not rewritten (give --pubkey, or --allow-unanchored to check the chain alone)",
            r.size - r.verified_from
        ),
        (Verdict::Unanchored, _) => format!(
            "{t}: unanchored: no verified checkpoint covers its {} records (give --checkpoint or --state, or --allow-unanchored){skipped}",
            r.size - r.verified_from
        ),
        (v, _) if v.is_ok() && !keys_given => format!(
            "{t}: chain links consistent, {} records from {}; NOT anchored (no --pubkey given): whoever can write the store could have rewritten it",
            r.size - r.verified_from,
            r.verified_from,
        ),
        (v, Some(seq)) if v.is_ok() && r.size > seq && seq <= r.verified_from => format!(
            "{t}: chain links consistent, {} records from {}; NOT anchored (--allow-unanchored): no verified checkpoint covers any of them{skipped}",
            r.size - r.verified_from,
            r.verified_from,
        ),
        (v, Some(seq)) if v.is_ok() && r.size > seq => format!(
            "{t}: intact, {} records from {}; records from {seq} on are not covered by a verified checkpoint{rollback}{skipped}",
            r.size - r.verified_from,
            r.verified_from,
        ),
        (v, _) if v.is_ok() => format!(
            "{t}: intact, {} records from {}, all anchored{rollback}{skipped}",
            r.size - r.verified_from,
            r.verified_from
        ),
        (v, seq) => {
            let at = seq.map_or_else(String::new, |s| format!(" at record {s}"));
            let ranges: Vec<String> = r
                .breaks
                .iter()
                .map(|b| {
                    if b.first == b.last {
                        format!("{} {}", b.verdict, b.first)
                    } else {
                        format!("{} {}-{}", b.verdict, b.first, b.last)
                    }
                })
                .collect();
            let ranges = if ranges.len() > 1 || r.breaks.first().is_some_and(|b| b.first != b.last)
            {
                format!(" (broken: {})", ranges.join(", "))
            } else {
                String::new()
            };
            format!("{t}: {v}{at}{ranges}{skipped}")
        }
    }
}

fn verify(args: &VerifyArgs<'_>, ctx: &Ctx) -> Result<(), CliError> {
    let keys = trusted_keys(args.pubkeys)?;
    if keys.is_none() && (!args.checkpoints.is_empty() || args.state.is_some()) {
        return Err(CliError::usage(
            "--checkpoint and --state need --pubkey to check the signatures",
        ));
    }
    if keys.is_none() && !args.witness_keys.is_empty() {
        return Err(CliError::usage(
            "--witness-key needs --pubkey (cosigned checkpoints are checked against the log's key first)",
        ));
    }
    let witnesses = witness_policy(args)?;
    let only = args.tenant.map(tenant_id).transpose()?;
    let (anchors, mut state) = load_anchors(args.checkpoints, args.state)?;
    // A store deleted outright is an empty store when anchors say it held something.
    let empty = MemoryStore::new();
    let file = if !args.store.is_dir() && !anchors.is_empty() {
        None
    } else {
        // (A path that is not a directory at all stays a usage error.)
        let dir = args.store.is_dir();
        Some(open_read(args.store).map_err(|e| if dir { unreadable_store(e) } else { e })?)
    };
    let s: &dyn AuditRead = match &file {
        Some(f) => f,
        None => &empty,
    };
    let mut reports = verify_store_witnessed(
        s,
        keys.as_ref(),
        witnesses.as_ref(),
        &anchors,
        only.as_ref(),
    )
    .map_err(|e| unreadable_store(verify_err(e)))?;
    let mut human = String::new();
    let mut first_failure = None;
    let mut index_json = Vec::with_capacity(reports.len());
    for r in &mut reports {
        if !args.allow_unanchored {
            // Without keys no checkpoint is checked: every chain with records
            // is unanchored, and fails unless asked for explicitly.
            if keys.is_none() && r.is_ok() && r.size > r.verified_from {
                r.anchored_size = 0;
            }
            require_anchor(r);
        }
        let line = if r.is_ok() && r.size == 0 && !has_chain(s, &r.tenant).map_err(verify_err)? {
            // Asked for by name, with nothing that says it ever existed.
            format!("{}: no chain in this store", r.tenant)
        } else {
            describe(r, keys.is_some(), state.is_some())
        };
        if (!r.is_ok() || line.ends_with("no chain in this store")) && first_failure.is_none() {
            first_failure = Some(line.clone());
        }
        human.push_str(&line);
        human.push('\n');
        // The chain does not commit to who a record is about: a persisted
        // subject index rewritten with consistent checksums would hide
        // records from DSAR reports, so each index is compared with its
        // segment's records.
        let mismatches = match &file {
            Some(f) => match f.check_subject_indexes(&r.tenant) {
                Ok(m) => m,
                Err(hisn_audit_log::Error::NotFound) => Vec::new(),
                Err(e) => return Err(unreadable_store(verify_err(e))),
            },
            None => Vec::new(),
        };
        for m in &mismatches {
            let line = format!(
                "{}: subject index of segment {} (records from {}) disagrees with the records for {} subject keys: DSAR reports could miss records; remove {}.sidx to have it rebuilt",
                r.tenant, m.segment, m.first_seq, m.keys, m.segment
            );
            if first_failure.is_none() {
                first_failure = Some(line.clone());
            }
            human.push_str(&line);
            human.push('\n');
        }
        index_json.push(
            mismatches
                .iter()
                .map(|m| serde_json::json!({ "segment": m.segment, "first_seq": m.first_seq, "keys": m.keys }))
                .collect::<Vec<_>>(),
        );
        if let Some(st) = state.as_mut() {
            st.update(r);
        }
    }
    if let (Some(st), Some(path)) = (&state, args.state) {
        st.save(path)
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
    }
    let ok = first_failure.is_none();
    let json: Vec<_> = reports
        .iter()
        .zip(index_json)
        .map(|(r, m)| {
            let mut j = r.to_json();
            j["index_mismatches"] = m.into();
            j
        })
        .collect();
    // What this run could check at all: signatures (--pubkey) and a
    // rollback to an older genuine checkpoint (--state).
    ctx.emit(
        &serde_json::json!({
            "ok": ok,
            "anchored": keys.is_some(),
            "rollback_checked": state.is_some(),
            "tenants": json,
        }),
        &human,
    )?;
    match first_failure {
        None => Ok(()),
        Some(msg) => Err(CliError::failed(format!("verification failed: {msg}"))),
    }
}

/// Once the store directory exists, anything that stops it being read is a
/// failed verification (exit 1), never a usage error (exit 2): whoever can
/// write the store can turn a tenant's directory, a segment or its
/// `checkpoints.jsonl` into something unreadable (a file for a directory, a
/// directory for a file), and that must not read as "operator error".
fn unreadable_store(e: CliError) -> CliError {
    match e {
        CliError::Usage(msg) => CliError::failed(format!("verification failed: {msg}")),
        e => e,
    }
}

/// Errors while verifying: damage the store could not even read is a failed
/// verification (exit 1), anything else an input error.
fn verify_err(e: hisn_audit_log::Error) -> CliError {
    match e {
        hisn_audit_log::Error::Corrupt { .. } | hisn_audit_log::Error::Malformed { .. } => {
            CliError::failed(format!("verification failed: {e}"))
        }
        e => store_err(e),
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

/// `hisn audit prove` arguments.
struct ProveArgs<'a> {
    store: &'a Path,
    tenant: &'a str,
    inclusion: Option<u64>,
    consistency: &'a [u64],
    size: Option<u64>,
    pubkeys: &'a [PathBuf],
    checkpoints: &'a [PathBuf],
}

fn prove(args: &ProveArgs<'_>, ctx: &Ctx) -> Result<(), CliError> {
    let keys = trusted_keys(args.pubkeys)?;
    let tenant = tenant_id(args.tenant)?;
    let (anchors, _) = load_anchors(args.checkpoints, None)?;
    // Once the store directory exists, anything that stops it being read is
    // a failed verification (exit 1), as for `verify`.
    let dir = args.store.is_dir();
    if !dir
        && let Some(k) = &keys
        && anchors
            .for_tenant(&tenant)
            .iter()
            .any(|c| c.verify(k).is_ok())
    {
        // A verified checkpoint held elsewhere says records existed: a
        // deleted store cannot produce them.
        return Err(CliError::failed(format!(
            "verification failed: {tenant}: a verified checkpoint covers records, and there is no store at {}",
            args.store.display()
        )));
    }
    let s = open_read(args.store).map_err(|e| if dir { unreadable_store(e) } else { e })?;
    let mut cps = s.checkpoints(&tenant).map_err(read_failed)?;
    cps.extend_from_slice(anchors.for_tenant(&tenant));
    // Checkpoints with a Merkle root, verified when keys are given, by size.
    let usable: Vec<SignedCheckpoint> = cps
        .into_iter()
        .filter(|c| {
            c.checkpoint.root.is_some()
                && c.checkpoint.tenant().as_ref() == Some(&tenant)
                && keys.as_ref().is_none_or(|k| c.verify(k).is_ok())
        })
        .collect();
    let at = |size: u64| usable.iter().find(|c| c.checkpoint.size == size);
    // Records a verified checkpoint claims but the store cannot produce are a
    // failed verification; records nobody claims are a usage error.
    let proof_err = |claimed: bool| {
        move |e: hisn_audit_log::Error| match e {
            hisn_audit_log::Error::NotFound if claimed => CliError::failed(
                "verification failed: records a verified checkpoint covers are not held (cut or pruned)",
            ),
            hisn_audit_log::Error::NotFound => {
                CliError::usage("those records are not held (pruned, or beyond the chain)")
            }
            e => read_failed(e),
        }
    };
    let (json, verified, what) = if let Some(seq) = args.inclusion {
        let size = match args.size {
            Some(n) => n,
            None => match usable.iter().map(|c| c.checkpoint.size).max() {
                Some(n) => n,
                None => s.bounds(&tenant).map_err(proof_err(false))?.size,
            },
        };
        let claimed = keys.is_some() && at(size).is_some();
        let p = s
            .merkle_inclusion(&tenant, seq, size)
            .map_err(proof_err(claimed))?;
        let verified = keys
            .as_ref()
            .map(|k| at(size).is_some_and(|c| p.verify(&tenant, c, k)));
        (
            serde_json::json!({ "inclusion": p.to_json(), "checkpoint": at(size).map(SignedCheckpoint::to_note) }),
            verified,
            format!("record {seq} in the tree of {size}"),
        )
    } else {
        let (old, new) = match args.consistency {
            [old, new] => (*old, *new),
            _ => return Err(CliError::usage("--consistency takes OLD NEW")),
        };
        let claimed = keys.is_some() && at(new).is_some();
        let p = s
            .merkle_consistency(&tenant, old, new)
            .map_err(proof_err(claimed))?;
        let verified = keys.as_ref().map(|k| match (at(old), at(new)) {
            (Some(o), Some(n)) => p.verify(&tenant, o, n, k),
            _ => false,
        });
        (
            serde_json::json!({
                "consistency": p.to_json(),
                "old_checkpoint": at(old).map(SignedCheckpoint::to_note),
                "new_checkpoint": at(new).map(SignedCheckpoint::to_note),
            }),
            verified,
            format!("the tree of {old} is a prefix of the tree of {new}"),
        )
    };
    let mut json = json;
    json["verified"] = serde_json::json!(verified);
    let human = match verified {
        Some(true) => format!("{tenant}: proven: {what}\n"),
        Some(false) => format!(
            "{tenant}: NOT proven: {what} (no verified checkpoint with a Merkle root of that size, or the proof fails)\n"
        ),
        None => format!(
            "{tenant}: proof of {what} built; not checked (no --pubkey given)\n{}\n",
            json
        ),
    };
    ctx.emit(&json, &human)?;
    match verified {
        Some(false) => Err(CliError::failed(format!(
            "verification failed: {tenant}: {what} is not proven"
        ))),
        _ => Ok(()),
    }
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
    if !store.is_dir() {
        return Err(CliError::usage(format!(
            "no audit store at {}",
            store.display()
        )));
    }
    // Cold path: only this tenant's indexes and the records the report needs
    // are read; what is returned is checked exactly as on a full open.
    // From here on the store exists: anything that stops it being read, or a
    // report that found damage, is a failed verification (exit 1).
    let s = TenantReader::open(store, &tenant).map_err(read_failed)?;
    // Before anything is printed: the chain does not commit to who a record
    // is about, so a persisted subject index rewritten (with consistent
    // checksums) to omit the subject would make this report silently miss
    // their records. Each index is compared with its segment's records, as
    // `verify` does; a mismatch prints no report.
    let mismatches = s.check_subject_indexes().map_err(read_failed)?;
    if let Some(m) = mismatches.first() {
        return Err(CliError::failed(format!(
            "verification failed: {tenant}: subject index of segment {} (records from {}) disagrees with the records for {} subject keys ({} segments in all): this report could miss records; no report printed; remove {}.sidx and open the store writable (e.g. `hisn audit append` with empty input) to have it rebuilt",
            m.segment,
            m.first_seq,
            m.keys,
            mismatches.len(),
            m.segment
        )));
    }
    let r = s
        .subject_report(&tenant, subject, keys.as_ref())
        .map_err(read_failed)?;
    // The report is JSON with or without --json, streamed (one entry per
    // line) rather than built as a value tree and pretty-printed: for a
    // large subject the output is most of the command's cost. Buffered:
    // stdout is line buffered.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let res = r
        .write_json(&mut out)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    let damage =
        (!r.broken.is_empty() || r.undecodable > 0 || r.dropped_index_rows > 0 || r.unindexed > 0)
            .then_some((
                r.broken.len(),
                r.undecodable,
                r.dropped_index_rows,
                r.unindexed,
            ));
    // The process ends here: freeing a large report entry by entry (tens of
    // thousands of strings) cost ~6% of the command, for memory the exit
    // returns anyway. It holds no secrets (records are what was printed).
    std::mem::forget(r);
    crate::output::output_result(res)?;
    if let Some((broken, unreadable, dropped, unindexed)) = damage {
        return Err(CliError::failed(format!(
            "verification failed: {tenant}: the report found damage ({broken} broken ranges, {unreadable} unreadable records, {dropped} index rows naming someone else, {unindexed} records missing from the index)"
        )));
    }
    Ok(())
}

/// An error reading a store that exists: a failed verification (exit 1),
/// whatever the error; whoever can write the store can make it unreadable.
fn read_failed(e: hisn_audit_log::Error) -> CliError {
    CliError::failed(format!("verification failed: audit store: {e}"))
}
