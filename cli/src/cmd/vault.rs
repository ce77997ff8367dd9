//! `hisn vault`: encrypt and decrypt field values bound to tenant, table, column and row.

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn vault` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {}

/// Run one `hisn vault` subcommand.
pub(crate) fn run(cmd: VaultCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
