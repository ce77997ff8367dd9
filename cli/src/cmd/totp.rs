//! `hisn totp`: enrol, compute and verify TOTP (RFC 6238) codes.
//!
//! The secret is read from `--secret` or, to keep it out of the process list
//! and shell history, from the `HISN_TOTP_SECRET` environment variable. It is
//! base32 (as apps show it) or a whole `otpauth://totp/` URI, whose parameters
//! then apply.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use hisn_crypto_vault::totp::{Algorithm, MAX_WINDOW, OtpAuthUri};
use hisn_crypto_vault::{
    Clock, Error, ManualClock, PendingTotp, SystemClock, Totp, TotpParams, TotpSecret, TotpVerifier,
};
use zeroize::Zeroizing;

use crate::output::{CliError, Ctx};

/// `hisn totp` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TotpCommand {
    /// Start an enrolment: print a new secret (at least 160 bits) and its
    /// otpauth:// URI, with a QR code when stdout is a terminal. Show them
    /// once; the enrolment is complete once `hisn totp verify` accepts a code.
    Enroll {
        /// Issuer shown by the app (your service's name).
        #[arg(long)]
        issuer: String,
        /// Account shown by the app (the user's login).
        #[arg(long)]
        account: String,
        /// Hash, digits and period.
        #[command(flatten)]
        params: ParamArgs,
        /// Print the QR code even when stdout is not a terminal.
        #[arg(long)]
        qr: bool,
    },
    /// Print the code for a secret at the current time (or --now).
    Code {
        /// The secret.
        #[command(flatten)]
        secret: SecretArgs,
        /// Hash, digits and period (not with an otpauth:// secret).
        #[command(flatten)]
        params: ParamArgs,
        /// Time, Unix seconds (default: the system clock).
        #[arg(long)]
        now: Option<u64>,
    },
    /// Verify a code: exit 0 and print the new last step if accepted, exit 1
    /// if refused (wrong, replayed, outside the window).
    Verify {
        /// The secret.
        #[command(flatten)]
        secret: SecretArgs,
        /// Hash, digits and period (not with an otpauth:// secret).
        #[command(flatten)]
        params: ParamArgs,
        /// The code (ASCII, Arabic-Indic or Eastern Arabic-Indic digits; spaces allowed).
        #[arg(long)]
        code: String,
        /// Time, Unix seconds (default: the system clock).
        #[arg(long)]
        now: Option<u64>,
        /// Last accepted time step: a code at or before it is refused (replay).
        #[arg(long)]
        last_step: Option<u64>,
        /// Steps accepted on each side of the current one (0..=4).
        #[arg(long, default_value_t = 1)]
        window: u8,
    },
}

/// Where the secret comes from.
#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// Base32 secret or otpauth://totp/ URI (or set HISN_TOTP_SECRET).
    #[arg(long, env = "HISN_TOTP_SECRET", hide_env_values = true)]
    secret: String,
}

/// Credential parameters; defaults are what every app supports.
#[derive(Debug, Args)]
pub(crate) struct ParamArgs {
    /// HMAC hash: SHA1 (apps' default), SHA256 or SHA512.
    #[arg(long)]
    algorithm: Option<String>,
    /// Digits per code (6..=8).
    #[arg(long)]
    digits: Option<u8>,
    /// Time step, seconds (15..=300).
    #[arg(long)]
    period: Option<u32>,
}

impl ParamArgs {
    fn given(&self) -> bool {
        self.algorithm.is_some() || self.digits.is_some() || self.period.is_some()
    }

    fn params(&self) -> Result<TotpParams, CliError> {
        let d = TotpParams::DEFAULT;
        let algorithm = match &self.algorithm {
            Some(a) => Algorithm::parse(a)
                .ok_or_else(|| CliError::usage("--algorithm must be SHA1, SHA256 or SHA512"))?,
            None => d.algorithm(),
        };
        TotpParams::new(
            algorithm,
            self.digits.unwrap_or(d.digits()),
            self.period.unwrap_or(d.period()),
        )
        .map_err(CliError::usage)
    }
}

fn credential(secret: &SecretArgs, params: &ParamArgs) -> Result<Totp, CliError> {
    let text = Zeroizing::new(secret.secret.trim().to_owned());
    if text.len() >= 8 && text[..8].eq_ignore_ascii_case("otpauth:") {
        if params.given() {
            return Err(CliError::usage(
                "--algorithm/--digits/--period come from the otpauth:// URI; drop them",
            ));
        }
        return Ok(OtpAuthUri::parse(&text)
            .map_err(CliError::usage)?
            .into_totp());
    }
    let secret = TotpSecret::from_base32(&text).map_err(CliError::usage)?;
    Ok(Totp::new(secret, params.params()?))
}

fn clock(now: Option<u64>) -> Arc<dyn Clock> {
    match now {
        Some(t) => Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(t))),
        None => Arc::new(SystemClock),
    }
}

/// The URI as a QR code of Unicode half blocks, light modules drawn dark so
/// that it scans from a terminal with a dark background.
pub(crate) fn qr_text(uri: &str) -> Result<String, CliError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| CliError::usage(format!("cannot draw a QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

/// Run one `hisn totp` subcommand.
pub(crate) fn run(cmd: TotpCommand, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        TotpCommand::Enroll {
            issuer,
            account,
            params,
            qr,
        } => {
            let params = params.params()?;
            let pending = PendingTotp::generate(params).map_err(CliError::usage)?;
            let uri = pending.uri(&issuer, &account).map_err(CliError::usage)?;
            let secret = pending.secret_base32();
            let mut human = Zeroizing::new(format!("secret: {}\nuri: {}\n", *secret, *uri));
            if !ctx.json() && (qr || std::io::stdout().is_terminal()) {
                human.push_str(&qr_text(&uri)?);
                human.push('\n');
            }
            ctx.emit(
                &serde_json::json!({
                    "secret": secret.as_str(),
                    "uri": uri.as_str(),
                    "algorithm": params.algorithm().as_str(),
                    "digits": params.digits(),
                    "period": params.period(),
                }),
                &human,
            )
        }
        TotpCommand::Code {
            secret,
            params,
            now,
        } => {
            let totp = credential(&secret, &params)?;
            let at = clock(now).now();
            let step = totp
                .step_at(at)
                .map_err(|_| CliError::usage("time before 1970"))?;
            let code = totp.code_at_step(step);
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let period = u64::from(totp.params().period());
            let valid_for = period - secs % period;
            ctx.emit(
                &serde_json::json!({ "code": code.as_str(), "step": step, "valid_for_seconds": valid_for }),
                &code,
            )
        }
        TotpCommand::Verify {
            secret,
            params,
            code,
            now,
            last_step,
            window,
        } => {
            let totp = credential(&secret, &params)?;
            let verifier = TotpVerifier::new(clock(now))
                .with_window(window)
                .map_err(|_| CliError::usage(format!("--window must be 0..={MAX_WINDOW}")))?;
            match verifier.verify(&totp, &code, last_step) {
                Ok(step) => ctx.emit(
                    &serde_json::json!({ "valid": true, "last_step": step }),
                    &step.to_string(),
                ),
                Err(Error::TotpMalformed) => Err(CliError::usage(
                    "malformed code: expected the configured number of digits",
                )),
                Err(e) => {
                    if ctx.json() {
                        ctx.emit(&serde_json::json!({ "valid": false }), "")?;
                    }
                    Err(CliError::failed(format!(
                        "{e}: wrong, already used or outside the window"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_code_is_drawn_with_half_blocks() {
        let q = qr_text("otpauth://totp/I:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert!(q.lines().count() > 10);
        assert!(q.contains('▀') || q.contains('▄') || q.contains('█'));
    }
}
