//! `hisn redact`: redact personal data and secrets from log lines.
//!
//! Reads each FILE (or stdin, also `-`) line by line and writes each redacted
//! line to stdout in order: one output line per input line, streaming in
//! constant memory, so it can run as an exec filter in a log shipper (Vector,
//! Fluent Bit). With `--json` each line is parsed as a JSON log record and
//! redacted structurally (sensitive key names and content) and, when anything
//! changed, written back compact with its keys in sorted order; a line with
//! nothing to redact, or that is not JSON, keeps its bytes (redacted as text). Invalid UTF-8 is redacted around, never a reason
//! to drop or pass a line unredacted. A line longer than 1 MiB is replaced by
//! `[REDACTED:LINE_TOO_LONG]` (cutting it could split a value). `--stats`
//! prints counts per kind on stderr at the end.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use base64::Engine;
use clap::{Args, ValueEnum};
use hisn_pii_redact::json::JsonRedactor;
use hisn_pii_redact::{Mode, PseudonymKey, Redactor, Stats};
use zeroize::Zeroizing;

use crate::output::{CliError, Ctx, output_result};

/// Longest line redacted as a whole.
const MAX_LINE: usize = 1 << 20;
const TOO_LONG: &[u8] = b"[REDACTED:LINE_TOO_LONG]";

/// How values are written out.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RedactMode {
    /// `[EMAIL]`, `[CARD]`, ...
    Placeholder,
    /// Keep the last four of cards, IBANs and phones (`[CARD ****1111]`).
    Partial,
    /// Keyed HMAC pseudonym (`[EMAIL:kdjfhgpoanebmcli]`); needs --key-file.
    Pseudonym,
}

/// `hisn redact` arguments.
#[derive(Debug, Args)]
pub(crate) struct RedactArgs {
    /// Output mode for every kind.
    #[arg(long, value_enum, default_value = "placeholder")]
    mode: RedactMode,
    /// File holding the pseudonym key as base64 (32-64 bytes), e.g. from
    /// `hisn keys generate-master --out FILE`. Required with --mode pseudonym.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Print counts per kind on stderr when done.
    #[arg(long)]
    stats: bool,
    /// Files to read (default: stdin; `-` is stdin).
    files: Vec<PathBuf>,
}

fn redactor(args: &RedactArgs) -> Result<Redactor, CliError> {
    let b = Redactor::builder();
    let b = match args.mode {
        RedactMode::Placeholder => b,
        RedactMode::Partial => b.all(Mode::Partial),
        RedactMode::Pseudonym => {
            let Some(path) = &args.key_file else {
                return Err(CliError::usage("--mode pseudonym needs --key-file"));
            };
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read key file {}: {e}", path.display()))
            })?);
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| CliError::usage("key file is not base64"))?,
            );
            let key = PseudonymKey::new(&raw)
                .map_err(|_| CliError::usage("pseudonym key must be 32 to 64 bytes"))?;
            b.all(Mode::Pseudonym).pseudonym_key(key)
        }
    };
    b.build().map_err(CliError::usage)
}

/// Read one line (without its `\n`) into `buf`, at most `MAX_LINE` bytes kept.
/// Returns `None` at end of input, else whether the line ended with `\n` and
/// whether it was too long.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<(bool, bool)>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(any.then_some((false, too_long)));
        }
        any = true;
        let (chunk, newline) = match avail.iter().position(|&c| c == b'\n') {
            Some(p) => (&avail[..p], true),
            None => (avail, false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(newline);
        r.consume(used);
        if newline {
            return Ok(Some((true, too_long)));
        }
    }
}

struct Filter {
    redactor: Redactor,
    json: Option<JsonRedactor>,
    stats: Stats,
    lines: u64,
}

impl Filter {
    fn line<'a>(&mut self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if let Some(j) = &self.json
            && let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(line)
        {
            let before = v.clone();
            j.redact(&mut v);
            if v == before {
                return Cow::Borrowed(line);
            }
            if let Ok(out) = serde_json::to_vec(&v) {
                // Count what the structural pass changed by scanning the
                // original line's content findings.
                let _ = self.redactor.redact_bytes_counted(line, &mut self.stats);
                return Cow::Owned(out);
            }
        }
        self.redactor.redact_bytes_counted(line, &mut self.stats)
    }

    fn run(&mut self, input: impl Read, out: &mut impl Write) -> std::io::Result<()> {
        let mut r = BufReader::with_capacity(64 * 1024, input);
        let mut buf = Vec::new();
        while let Some((newline, too_long)) = read_line(&mut r, &mut buf)? {
            self.lines += 1;
            if too_long {
                out.write_all(TOO_LONG)?;
            } else {
                let red = self.line(&buf);
                out.write_all(&red)?;
            }
            if newline {
                out.write_all(b"\n")?;
            }
            // Nothing more buffered: the next read may block, so hand what we
            // have to the reader downstream (exec-filter use).
            if r.buffer().is_empty() {
                out.flush()?;
            }
        }
        out.flush()
    }
}

/// Run `hisn redact`.
pub(crate) fn run(args: &RedactArgs, ctx: &Ctx) -> Result<(), CliError> {
    let redactor = redactor(args)?;
    let json = ctx.json().then(|| JsonRedactor::new(redactor.clone()));
    let mut filter = Filter {
        redactor,
        json,
        stats: Stats::default(),
        lines: 0,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let stdin_only = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin_only[..]
    } else {
        &args.files[..]
    };
    for path in files {
        let res = if path.as_os_str() == "-" {
            filter.run(std::io::stdin().lock(), &mut out)
        } else {
            let f = File::open(path)
                .map_err(|e| CliError::usage(format!("cannot open {}: {e}", path.display())))?;
            filter.run(f, &mut out)
        };
        output_result(res)?;
    }
    if args.stats {
        let mut line = format!("hisn: redact stats: lines={}", filter.lines);
        for (kind, n) in filter.stats.iter() {
            line.push_str(&format!(" {}={n}", filter.redactor.label(kind)));
        }
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
    Ok(())
}
