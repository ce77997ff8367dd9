//! `hisn audit repair`: cut a damaged chain back for an operator.
//!
//! Opening a store cuts crash leftovers by itself; damage below a chain's
//! synced mark (an edit, a failing disk) stops appends to that tenant and is
//! reported by `hisn audit verify`. When the damaged bytes cannot be restored
//! from a replica, this command cuts the chain back to the last intact record
//! before the damage and moves the rest to the tenant's `quarantine/`
//! directory. Without `--apply` it only reports (exit 1 when something needs
//! repairing). The store must not be open for writing.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use hisn_audit_log::store::file::{RepairMode, RepairReport};
use hisn_audit_log::{FileStore, TenantId};

use crate::output::{CliError, Ctx, output_result};

/// Arguments of `hisn audit repair`.
#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// Store directory.
    #[arg(long)]
    store: PathBuf,
    /// Only this tenant (default: every tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Make the cut (default: report what would be cut and change nothing).
    #[arg(long)]
    apply: bool,
}

/// Run `hisn audit repair`.
pub(crate) fn run(args: &RepairArgs, ctx: &Ctx) -> Result<(), CliError> {
    let tenant = args
        .tenant
        .as_deref()
        .map(|t| {
            TenantId::parse(t).map_err(|_| {
                CliError::usage(format!("invalid tenant {t:?}: use 1-64 of [A-Za-z0-9._-]"))
            })
        })
        .transpose()?;
    let mode = if args.apply {
        RepairMode::Apply
    } else {
        RepairMode::DryRun
    };
    let reports = FileStore::repair(&args.store, tenant.as_ref(), mode).map_err(|e| match e {
        hisn_audit_log::Error::NotFound => CliError::usage(format!(
            "no audit store (or tenant) at {}",
            args.store.display()
        )),
        hisn_audit_log::Error::Locked => {
            CliError::usage("the store is open for writing: stop its writer first")
        }
        e => CliError::usage(format!("audit store: {e}")),
    })?;
    print(&reports, ctx)?;
    let pending = reports
        .iter()
        .filter(|r| r.damage.is_some() && !r.applied)
        .count();
    if pending > 0 {
        return Err(CliError::failed(if args.apply {
            format!("{pending} damaged chain(s) not cut back: see above")
        } else {
            format!("{pending} damaged chain(s); run again with --apply to cut them back")
        }));
    }
    Ok(())
}

fn print(reports: &[RepairReport], ctx: &Ctx) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if ctx.json() {
        let v: Vec<_> = reports.iter().map(RepairReport::to_json).collect();
        return output_result(writeln!(out, "{}", serde_json::Value::Array(v)));
    }
    for r in reports {
        let line = match (&r.damage, r.applied) {
            (None, _) => format!("{}: no damage ({} records)", r.tenant, r.kept),
            (Some(d), applied) => format!(
                "{}: {} in {} at offset {}; {} {} records, {} {} intact records after it{}",
                r.tenant,
                d.what,
                d.file,
                d.offset,
                if applied { "kept" } else { "would keep" },
                r.kept,
                if applied { "removed" } else { "would remove" },
                r.dropped,
                if applied {
                    format!(
                        "; moved to {}",
                        r.quarantined
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                }
            ),
        };
        output_result(writeln!(out, "{line}"))?;
    }
    Ok(())
}
