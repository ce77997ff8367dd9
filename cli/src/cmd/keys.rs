//! `hisn keys`: generate master keys for field encryption.

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn keys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {}

/// Run one `hisn keys` subcommand.
pub(crate) fn run(cmd: KeysCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
