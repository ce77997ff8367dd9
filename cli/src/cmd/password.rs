//! `hisn password`: hash and verify passwords with argon2id.

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn password` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PasswordCommand {}

/// Run one `hisn password` subcommand.
pub(crate) fn run(cmd: PasswordCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
