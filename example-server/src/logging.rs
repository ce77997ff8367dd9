//! Structured JSON logs, every line through pii-redact before it is written:
//! e-mail addresses, phone numbers, IBANs, cards, national IDs, IPs, JWTs and
//! secrets in any field or message come out as placeholders.

use hisn_pii_redact::Redactor;
use hisn_pii_redact::tracing_writer::RedactingMakeWriter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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

/// Install the subscriber for the process (stdout).
pub fn init(filter: &str) {
    let _ = tracing::subscriber::set_global_default(subscriber(filter, std::io::stdout));
}
