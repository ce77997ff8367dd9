//! [`Redacted<T>`]: a value whose `Display` and `Debug` print the redacted form.

use std::fmt;
use std::sync::OnceLock;

use crate::redactor::Redactor;

/// The default redactor shared by [`Redacted`] (every built-in kind,
/// placeholders).
pub fn default_redactor() -> &'static Redactor {
    static DEFAULT: OnceLock<Redactor> = OnceLock::new();
    DEFAULT.get_or_init(Redactor::default)
}

/// Wraps a value so that formatting it (`{}` or `{:?}`) prints its redacted
/// form, e.g. in `tracing` fields or `format!` calls that might reach a log.
///
/// The value is formatted into a buffer, the buffer redacted with
/// [`default_redactor`] (or the redactor given to [`Redacted::with`]), and only
/// the result written to the formatter.
pub struct Redacted<'r, T> {
    value: T,
    redactor: &'r Redactor,
}

impl<T> Redacted<'static, T> {
    /// Wrap `value`, redacting with the default redactor.
    pub fn new(value: T) -> Self {
        Self {
            value,
            redactor: default_redactor(),
        }
    }
}

impl<'r, T> Redacted<'r, T> {
    /// Wrap `value`, redacting with `redactor`.
    pub fn with(redactor: &'r Redactor, value: T) -> Self {
        Self { value, redactor }
    }

    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.value
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, raw: &str) -> fmt::Result {
        f.write_str(&self.redactor.redact(raw))
    }
}

impl<T: fmt::Display> fmt::Display for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.value.to_string();
        self.write(f, &raw)
    }
}

impl<T: fmt::Debug> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = if f.alternate() {
            format!("{:#?}", self.value)
        } else {
            format!("{:?}", self.value)
        };
        self.write(f, &raw)
    }
}
