//! `hisn audit checkpoint`: sign the chain heads, never over a chain that
//! contradicts the anchors the operator holds.
//!
//! Whoever can write the store can rewrite a tenant's chain and delete the
//! store's `checkpoints.jsonl`: the chain is then self-consistent and nothing
//! in the store contradicts it, so signing it would vouch for the rewrite.
//! With `--checkpoint` / `--state` (read as `hisn audit verify` reads them,
//! through the same code) each tenant is verified against those anchors
//! first; a tenant that contradicts one is refused and named, the others
//! are still signed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use hisn_audit_log::{
    AuditRead as _, SystemClock, TenantId, TrustedKeys, Verdict, VerifyReport, has_chain,
};

use super::{
    AnchorArgs, load_anchors, open_read, read_signing_key, store_err, tenant_id, trusted_keys,
    unreadable_store, verify_err,
};
use crate::output::{CliError, Ctx};

/// Arguments of `hisn audit checkpoint`.
#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// Store directory.
    #[arg(long)]
    store: PathBuf,
    /// Only this tenant (default: every tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Secret checkpoint key (`PREFIX.key`).
    #[arg(long)]
    signing_key: PathBuf,
    /// Trusted keys (besides the signing key's own) and the anchors held
    /// outside the store, read exactly as `hisn audit verify` reads them.
    #[command(flatten)]
    anchors: AnchorArgs,
}

/// Run `hisn audit checkpoint`.
pub(crate) fn run(args: &CheckpointArgs, ctx: &Ctx) -> Result<(), CliError> {
    let key = read_signing_key(&args.signing_key)?;
    let tenant = args.tenant.as_deref().map(tenant_id).transpose()?;
    let held = &args.anchors;
    let mut keys = trusted_keys(&held.pubkey)?.unwrap_or_else(TrustedKeys::new);
    keys.add(key.verifying_key());
    // The anchors exactly as `verify` reads them.
    let (anchors, mut state) = load_anchors(&held.checkpoint, held.state.as_deref())?;
    let store: &Path = &args.store;
    if !store.is_dir() {
        return Err(CliError::usage(format!(
            "no audit store at {}",
            store.display()
        )));
    }
    // Read-only: the application may hold the store open meanwhile.
    let s = open_read(store)?;
    let now = hisn_audit_log::Clock::now(&SystemClock);
    // Every tenant the store or an anchor knows, verified against the
    // store's notes and the anchors before anything is signed.
    let mut refused: Vec<(TenantId, Verdict, Option<u64>)> = Vec::new();
    let mut passed: BTreeMap<TenantId, VerifyReport> = BTreeMap::new();
    let anchored = !held.pubkey.is_empty() || !held.checkpoint.is_empty() || state.is_some();
    if anchored {
        let reports = hisn_audit_log::verify_store(&s, Some(&keys), &anchors, tenant.as_ref())
            .map_err(|e| unreadable_store(verify_err(e)))?;
        for r in reports {
            if r.is_ok() {
                passed.insert(r.tenant.clone(), r);
            } else {
                refused.push((r.tenant.clone(), r.verdict, r.seq));
            }
        }
    }
    let contradicts = |t: &TenantId| refused.iter().any(|(r, _, _)| r == t);
    let tenants = match tenant {
        Some(t) if contradicts(&t) => Vec::new(),
        Some(t) => {
            if !has_chain(&s, &t).map_err(store_err)? {
                return Err(CliError::usage("tenant has no chain in this store"));
            }
            vec![t]
        }
        None => s
            .tenants()
            .map_err(store_err)?
            .into_iter()
            .filter(|t| !contradicts(t))
            .collect(),
    };
    let mut cps = Vec::new();
    for t in &tenants {
        // With the Merkle root (C2SP tlog-checkpoint form) when the chain still
        // starts at genesis and every record verifies (kept with the tree's
        // edge, so roots survive a later prune); otherwise the store's
        // verified signing (a pruned chain extends the edge kept since its
        // prune point; it re-reads a live writer's tail and refuses to sign
        // over damage).
        match s.checkpoint_from_records(t, &key, now) {
            Ok(cp) => cps.push(cp),
            Err(hisn_audit_log::Error::NotFound | hisn_audit_log::Error::Corrupt { .. }) => {
                let run = s
                    .checkpoint_verified(Some(t), &key, now)
                    .map_err(verify_err)?;
                cps.extend(run.signed);
                refused.extend(run.refused);
            }
            Err(e) => return Err(verify_err(e)),
        }
    }
    if let (Some(st), Some(path)) = (state.as_mut(), held.state.as_deref()) {
        for cp in &cps {
            let Some(r) = cp.checkpoint.tenant().and_then(|t| passed.get(&t)) else {
                continue;
            };
            // The new checkpoint signs exactly the head just verified against
            // the anchors: remember it, as `verify` remembers the checkpoint
            // a passing chain matched. A head that moved meanwhile (a live
            // writer) leaves the anchor that was verified.
            if r.size == cp.checkpoint.size && r.head == cp.checkpoint.head {
                let mut r = r.clone();
                r.checkpoint = Some(cp.clone());
                r.anchored_size = cp.checkpoint.size;
                st.update(&r);
            } else {
                st.update(r);
            }
        }
        st.save(path)
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
    }
    let human: String = cps.iter().map(|c| format!("{}\n", c.to_note())).collect();
    let json: Vec<_> = cps
        .iter()
        .map(|c| serde_json::json!({ "origin": c.checkpoint.origin, "size": c.checkpoint.size, "note": c.to_note() }))
        .collect();
    let refused_json: Vec<_> = refused
        .iter()
        .map(|(t, v, seq)| serde_json::json!({ "tenant": t.as_str(), "verdict": v.as_str(), "seq": seq }))
        .collect();
    ctx.emit(
        &serde_json::json!({ "checkpoints": json, "refused": refused_json }),
        &human,
    )?;
    if refused.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = refused
        .iter()
        .map(|(t, v, seq)| {
            let at = seq.map_or_else(String::new, |s| format!(" at record {s}"));
            format!("{t}: {v}{at}")
        })
        .collect();
    Err(CliError::failed(format!(
        "verification failed: {}; refusing to sign a checkpoint over it",
        named.join("; ")
    )))
}
