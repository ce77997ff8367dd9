//! Exit codes, error reporting and `--json` output shared by every subcommand.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

/// Exit code for success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code for "verification failed" or "denied".
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code for usage and input errors.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Why a command did not succeed. Every message is one line and never holds
/// secret material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Verification failed or access was denied (exit 1). When `json` is set
    /// the command has already printed a JSON report on stdout.
    #[error("{0}")]
    Failed(String),
    /// Bad flags, unreadable or malformed input (exit 2).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// Shorthand for a usage or input error.
    pub(crate) fn usage(msg: impl std::fmt::Display) -> Self {
        Self::Usage(one_line(&msg.to_string()))
    }

    /// Shorthand for a failed verification or a denial.
    pub(crate) fn failed(msg: impl std::fmt::Display) -> Self {
        Self::Failed(one_line(&msg.to_string()))
    }

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => EXIT_FAILED,
            Self::Usage(_) => EXIT_USAGE,
        }
    }

    /// Print the one-line message on stderr and return the exit code.
    pub(crate) fn report(&self) -> ExitCode {
        let _ = writeln!(std::io::stderr().lock(), "hisn: {self}");
        ExitCode::from(self.exit_code())
    }
}

/// Turn the result of writing a command's output into the command's result. A
/// reader that went away (`hisn ... | head`) is not the command's failure: the
/// rest of the output is dropped silently and the command keeps its own exit
/// code.
pub(crate) fn output_result(res: std::io::Result<()>) -> Result<(), CliError> {
    match res {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| CliError::usage(format!("cannot write output: {e}"))),
    }
}

/// Collapse a message to one line, so that stderr always holds one line per error.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Report a clap parse error: help and version go to stdout with exit 0; every
/// real usage error becomes one line on stderr with exit 2.
pub(crate) fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = write!(std::io::stdout().lock(), "{}", e.render());
            ExitCode::from(EXIT_OK)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            // `hisn` or `hisn <group>` alone: show the help, but it is still a usage error.
            let _ = write!(std::io::stderr().lock(), "{}", e.render());
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid usage")
                .trim()
                .trim_start_matches("error:")
                .trim();
            let _ = writeln!(
                std::io::stderr().lock(),
                "hisn: {first} (see 'hisn --help')"
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// What every command receives: the output mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    json: bool,
}

impl Ctx {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Print a result: `value` as JSON with `--json`, otherwise `human` as text.
    /// A write error (for example a closed pipe) is an input/output error, exit 2.
    pub(crate) fn emit<T: Serialize>(&self, value: &T, human: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        let res = if self.json {
            serde_json::to_writer(&mut out, value)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else if human.is_empty() {
            Ok(())
        } else if human.ends_with('\n') {
            write!(out, "{human}")
        } else {
            writeln!(out, "{human}")
        };
        output_result(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line("a\nb  c\r\n"), "a b c");
    }

    #[test]
    fn exit_codes_follow_the_convention() {
        assert_eq!(CliError::failed("x").exit_code(), 1);
        assert_eq!(CliError::usage("x").exit_code(), 2);
    }
}
