//! `hisn webhook`: sign and verify webhook deliveries (Standard Webhooks, Stripe, GitHub, Slack, ...).
//!
//! `verify` exits 0 when the delivery is valid, 1 with a one-line reason when it
//! is not, 2 on usage or input errors (unknown scheme, bad secret, unreadable
//! body file). Secrets given with `--secret` are visible in the process list;
//! prefer `HISN_WEBHOOK_SECRET` on shared machines.

use std::io::Read;
use std::sync::Arc;

use clap::{Args, Subcommand};
use hisn_webhook_verify::{Error, Limits, ManualClock, Scheme, SignInput, Tolerance, Webhook};

use crate::output::{CliError, Ctx};

/// `hisn webhook` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Verify a delivery: exit 0 valid, 1 invalid (one-line reason), 2 usage error.
    Verify(VerifyArgs),
    /// Sign a body: prints the headers a sender attaches, one `Name: value` per line.
    Sign(SignArgs),
}

/// Options shared by `verify` and `sign`.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Scheme: standard-webhooks, svix, standard-webhooks-v1a, stripe, github,
    /// slack, shopify, paddle, twilio, generic.
    #[arg(long)]
    scheme: String,
    /// Secret (repeat for a keyring during rotation). For v1a: a `whsk_` or
    /// `whpk_` key.
    #[arg(
        long = "secret",
        env = "HISN_WEBHOOK_SECRET",
        hide_env_values = true,
        required = true
    )]
    secrets: Vec<String>,
    /// The raw body: a file path, or `-` for stdin.
    #[arg(long)]
    body_file: String,
    /// The full request URL (Twilio).
    #[arg(long)]
    url: Option<String>,
    /// Current time as Unix seconds (default: the system clock).
    #[arg(long)]
    now: Option<u64>,
}

/// `hisn webhook verify` arguments.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    common: Common,
    /// A request header, `Name: value` (repeat for each header).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Timestamp tolerance in seconds, past and future (default 300).
    #[arg(long)]
    tolerance: Option<u64>,
}

/// `hisn webhook sign` arguments.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    common: Common,
    /// Message id (required by Standard Webhooks and Svix, and by a generic
    /// scheme with an id header).
    #[arg(long)]
    id: Option<String>,
    /// Timestamp to sign, Unix seconds (default: now).
    #[arg(long)]
    timestamp: Option<u64>,
}

fn read_body(path: &str) -> Result<Vec<u8>, CliError> {
    // One byte over the limit is enough for the verifier to report TooLarge.
    let limit = u64::try_from(Limits::DEFAULT_MAX_BODY)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut buf = Vec::new();
    let res = if path == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut buf))
    };
    res.map_err(|e| CliError::usage(format!("cannot read body file {path}: {e}")))?;
    Ok(buf)
}

fn webhook(common: &Common, tolerance: Option<u64>) -> Result<Webhook, CliError> {
    let scheme = Scheme::from_name(&common.scheme)
        .ok_or_else(|| CliError::usage(format!("unknown scheme `{}`", common.scheme)))?;
    let mut b = Webhook::builder(scheme);
    for s in &common.secrets {
        b = b
            .secret(s)
            .map_err(|e| CliError::usage(format!("invalid secret: {e}")))?;
    }
    if let Some(t) = tolerance {
        b = b.tolerance(Tolerance::new(t, t).map_err(CliError::usage)?);
    }
    if let Some(now) = common.now {
        b = b.clock(Arc::new(ManualClock::new(now)));
    }
    b.build().map_err(CliError::usage)
}

fn parse_header(h: &str) -> Result<(String, String), CliError> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| CliError::usage(format!("header `{h}` is not `Name: value`")))?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(CliError::usage(format!("header `{h}` has an invalid name")));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Run one `hisn webhook` subcommand.
pub(crate) fn run(cmd: WebhookCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        WebhookCommand::Verify(a) => verify(&a, ctx),
        WebhookCommand::Sign(a) => sign(&a, ctx),
    }
}

fn verify(a: &VerifyArgs, ctx: &Ctx) -> Result<(), CliError> {
    let wh = webhook(&a.common, a.tolerance)?;
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let body = read_body(&a.common.body_file)?;
    let res = match &a.common.url {
        Some(url) => wh.verify_with_url(&headers, url, &body),
        None => wh.verify(&headers, &body),
    };
    match res {
        Ok(v) => {
            let replay_id = v.replay_id(&body);
            let human = format!("valid (key {}, replay id {replay_id})", v.key_index());
            ctx.emit(
                &serde_json::json!({
                    "valid": true,
                    "scheme": wh.scheme().name(),
                    "key_index": v.key_index(),
                    "timestamp": v.timestamp(),
                    "event_id": v.event_id(),
                    "replay_id": replay_id,
                }),
                &human,
            )
        }
        Err(Error::UrlRequired) => Err(CliError::usage("this scheme needs --url")),
        Err(e) => {
            if ctx.json() {
                ctx.emit(
                    &serde_json::json!({ "valid": false, "reason": e.to_string() }),
                    "",
                )?;
            }
            Err(CliError::failed(format!("invalid: {e}")))
        }
    }
}

fn sign(a: &SignArgs, ctx: &Ctx) -> Result<(), CliError> {
    let wh = webhook(&a.common, None)?;
    let body = read_body(&a.common.body_file)?;
    let mut input = SignInput::new(&body);
    if let Some(id) = &a.id {
        input = input.id(id);
    }
    if let Some(ts) = a.timestamp {
        input = input.timestamp(ts);
    }
    if let Some(url) = &a.common.url {
        input = input.url(url);
    }
    let headers = wh.sign(&input).map_err(|e| match e {
        Error::InvalidId => CliError::usage(
            "this scheme needs a valid --id (no `.`, at most 256 visible characters)",
        ),
        Error::UrlRequired => CliError::usage("this scheme needs --url"),
        other => CliError::usage(other),
    })?;
    let human: String = headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
    let json: Vec<_> = headers
        .iter()
        .map(|(n, v)| serde_json::json!({ "name": n, "value": v }))
        .collect();
    ctx.emit(&serde_json::json!({ "headers": json }), &human)
}
