//! `hisn apikey`: mint and check API keys.

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn apikey` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ApikeyCommand {}

/// Run one `hisn apikey` subcommand.
pub(crate) fn run(cmd: ApikeyCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
