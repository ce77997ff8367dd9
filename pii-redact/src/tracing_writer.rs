//! A `tracing-subscriber` [`MakeWriter`] wrapper that redacts every formatted
//! line before it reaches the inner writer.
//!
//! ```
//! use hisn_pii_redact::{Redactor, tracing_writer::RedactingMakeWriter};
//! let make = RedactingMakeWriter::new(std::io::stderr, Redactor::default());
//! let subscriber = tracing_subscriber::fmt().with_writer(make).finish();
//! # drop(subscriber);
//! ```
//!
//! Each writer handed out buffers what the formatter writes, redacts each
//! complete line as soon as its newline arrives, and redacts the remainder when
//! it is flushed or dropped, so an event's fields are always redacted as one
//! line (a value split across two `write` calls is still found). A line longer
//! than [`MAX_LINE`] bytes is replaced by `[REDACTED:LINE_TOO_LONG]`: cutting
//! it could split a value into two undetectable halves. The trap: layers that
//! write somewhere else (a JSON exporter, an OpenTelemetry pipeline) do not go
//! through this writer and need their own redaction; and `make_writer_for` is
//! not forwarded, so an inner writer that routes by level (`with_max_level`,
//! `and`) sees every event through its `make_writer`.

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use crate::redactor::Redactor;

/// Longest line redacted as a whole (1 MiB).
pub const MAX_LINE: usize = 1 << 20;

const TOO_LONG: &[u8] = b"[REDACTED:LINE_TOO_LONG]";

/// Wraps a [`MakeWriter`] so that every line it receives is redacted first.
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
    redactor: Arc<Redactor>,
}

impl<M> RedactingMakeWriter<M> {
    /// Redact what is written through `inner` with `redactor`.
    pub fn new(inner: M, redactor: Redactor) -> Self {
        Self {
            inner,
            redactor: Arc::new(redactor),
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer(), Arc::clone(&self.redactor))
    }
}

/// The writer handed out by [`RedactingMakeWriter`]: buffers, redacts per line,
/// writes the redacted bytes to the inner writer.
#[derive(Debug)]
pub struct RedactingWriter<W: Write> {
    inner: W,
    redactor: Arc<Redactor>,
    buf: Vec<u8>,
    too_long: bool,
}

impl<W: Write> RedactingWriter<W> {
    fn new(inner: W, redactor: Arc<Redactor>) -> Self {
        Self {
            inner,
            redactor,
            buf: Vec::new(),
            too_long: false,
        }
    }

    fn emit_line(&mut self, line: &[u8], newline: bool) -> io::Result<()> {
        if self.too_long {
            self.inner.write_all(TOO_LONG)?;
        } else {
            let out = self.redactor.redact_bytes(line);
            self.inner.write_all(&out)?;
        }
        if newline {
            self.inner.write_all(b"\n")?;
        }
        self.too_long = false;
        Ok(())
    }

    fn drain(&mut self, all: bool) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let mut start = 0;
        while let Some(p) = buf[start..].iter().position(|&c| c == b'\n') {
            self.emit_line(&buf[start..start + p], true)?;
            start += p + 1;
        }
        if all {
            if start < buf.len() || self.too_long {
                self.emit_line(&buf[start..], false)?;
            }
        } else {
            self.buf = buf[start..].to_vec();
        }
        Ok(())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        for chunk in data.split_inclusive(|&c| c == b'\n') {
            if !self.too_long {
                self.buf.extend_from_slice(chunk);
            } else if chunk.ends_with(b"\n") {
                self.buf.push(b'\n');
            }
            if self.buf.len() > MAX_LINE && !self.buf.contains(&b'\n') {
                self.too_long = true;
                self.buf.clear();
            }
            if chunk.ends_with(b"\n") {
                self.drain(false)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain(true)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.drain(true);
        let _ = self.inner.flush();
    }
}
