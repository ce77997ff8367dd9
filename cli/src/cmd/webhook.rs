//! `hisn webhook`: sign and verify webhook deliveries (Standard Webhooks, Stripe, GitHub, Slack, ...).

use clap::Subcommand;

use crate::output::{CliError, Ctx};

/// `hisn webhook` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {}

/// Run one `hisn webhook` subcommand.
pub(crate) fn run(cmd: WebhookCommand, _ctx: &Ctx) -> Result<(), CliError> {
    match cmd {}
}
