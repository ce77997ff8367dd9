//! Structured JSON logs, every line through pii-redact before it is written:
//! e-mail addresses, phone numbers, IBANs, cards, national IDs, IPs, JWTs and
//! secrets in any field or message come out as placeholders.
//!
//! Panics go through the same pipeline: [`init`] installs [`panic_hook`],
//! which replaces the default hook (that one prints the panic message to
//! stderr, unredacted). The hook logs one `error` event (target
//! `hisn::example_server::panic`) with the location and the thread name.
//! The message is logged only when it is a literal (`panic!("text")`, a
//! `&'static str` payload), which cannot carry request data; a formatted
//! message (`expect`, `unwrap`, `panic!("{x}")`, index out of bounds, all
//! `String` payloads) may hold whatever the request sent, so it is withheld
//! (replaced by [`WITHHELD`]), even though the redactor would see it: the
//! redactor catches known shapes, not every secret. A panicking request is
//! answered `500` by [`crate::middleware::edge`].

use hisn_pii_redact::Redactor;
use hisn_pii_redact::tracing_writer::RedactingMakeWriter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// What the panic hook logs instead of a formatted panic message.
pub const WITHHELD: &str = "<formatted panic message withheld: it may hold request data>";

/// A JSON subscriber writing through the redactor to `writer`.
pub fn subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(RedactingMakeWriter::new(writer, Redactor::default()))
        .finish()
}

/// Install the subscriber for the process (stdout) and [`panic_hook`].
pub fn init(filter: &str) {
    let _ = tracing::subscriber::set_global_default(subscriber(filter, std::io::stdout));
    std::panic::set_hook(Box::new(panic_hook));
}

/// The process panic hook: one `tracing` event (so the redacting writer
/// applies), with the location, the thread and the message only if it is a
/// literal (see the module docs).
pub fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&'static str>()
        .copied()
        .unwrap_or(WITHHELD);
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let thread = std::thread::current();
    tracing::error!(
        target: "hisn::example_server::panic",
        location = location.as_deref().unwrap_or("-"),
        thread = thread.name().unwrap_or("-"),
        panic_message = message,
        "panic"
    );
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log writer a test reads back.
    #[derive(Clone, Default)]
    pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Panic on a thread of its own with `f`, logging to a fresh buffer
    /// through [`panic_hook`]; the log text.
    fn log_of_panic(f: fn()) -> String {
        let buf = Buf::default();
        let sink = buf.clone();
        let t = std::thread::Builder::new()
            .name("panicker".into())
            .spawn(move || {
                let sub = subscriber("info", move || sink.clone());
                let _g = hisn_test_support::set_default(sub);
                f();
            })
            .unwrap();
        assert!(t.join().is_err(), "the closure did not panic");
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_hook_logs_through_redaction_and_withholds_formatted_messages() {
        // The hook is process-wide: the previous one is put back after.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(panic_hook));
        let formatted = log_of_panic(|| {
            let email = String::from("fatima.alharbi@example.sa");
            panic!("no account for {email} with password hunter2-correct-horse")
        });
        let literal = log_of_panic(|| panic!("invariant broken: contact ops@hisn.example"));
        std::panic::set_hook(previous);

        let line: serde_json::Value = serde_json::from_str(formatted.trim()).unwrap();
        assert_eq!(line["target"], "hisn::example_server::panic", "{formatted}");
        assert_eq!(line["panic_message"], WITHHELD, "{formatted}");
        assert_eq!(line["thread"], "panicker");
        assert!(
            line["location"].as_str().unwrap().contains("logging.rs"),
            "{formatted}"
        );
        for needle in ["fatima", "hunter2", "example.sa"] {
            assert!(!formatted.contains(needle), "leaked {needle}: {formatted}");
        }
        // A literal message is kept, and goes through the redactor.
        assert!(literal.contains("invariant broken"), "{literal}");
        assert!(literal.contains("[EMAIL]"), "{literal}");
        assert!(!literal.contains("ops@hisn.example"), "{literal}");
    }
}
