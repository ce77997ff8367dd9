//! `hisn audit`: append to, checkpoint, verify and report on tamper-evident audit logs.

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn audit` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {}

/// Run one `hisn audit` subcommand.
pub(crate) fn run(cmd: AuditCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
