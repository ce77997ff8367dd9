//! `hisn guard`: scope SQL statements to a tenant and verify PostgreSQL row-level security.

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn guard` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GuardCommand {}

/// Run one `hisn guard` subcommand.
pub(crate) fn run(cmd: GuardCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
