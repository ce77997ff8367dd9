//! User-defined detectors: a regular expression plus an optional validator.
//!
//! Patterns use the `regex` crate (finite automata: linear time, no
//! backtracking) with a compiled-size limit. Each custom detector is one extra
//! linear pass over the input on top of the single pass of the built-in
//! detectors; put several alternatives in one pattern to keep it to one pass.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Compiled-size limit of a custom pattern (bytes of automaton).
pub const MAX_PATTERN_SIZE: usize = 1 << 20;

type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A user-defined detector: matches of `pattern` (for which the validator, if
/// any, returns `true`) are redacted as `[NAME]`.
#[derive(Clone)]
pub struct CustomDetector {
    pub(crate) name: String,
    pub(crate) regex: regex::bytes::Regex,
    pub(crate) validator: Option<Validator>,
}

impl fmt::Debug for CustomDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomDetector")
            .field("name", &self.name)
            .field("pattern", &self.regex.as_str())
            .field("validator", &self.validator.is_some())
            .finish()
    }
}

impl CustomDetector {
    /// A detector named `name` (1-32 bytes of `A-Z0-9_`, starting with a
    /// letter; the placeholder is `[NAME]`) for `pattern`.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidPattern`], or
    /// [`Error::PatternMatchesPlaceholder`] when the pattern matches `[NAME]`.
    pub fn new(name: &str, pattern: &str) -> Result<Self> {
        let ok = (1..=32).contains(&name.len())
            && name.as_bytes()[0].is_ascii_uppercase()
            && name
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
        if !ok {
            return Err(Error::InvalidName);
        }
        let regex = regex::bytes::RegexBuilder::new(pattern)
            .size_limit(MAX_PATTERN_SIZE)
            .build()
            .map_err(|e| Error::InvalidPattern(Box::new(e)))?;
        let placeholder = format!("[{name}]");
        if regex.is_match(placeholder.as_bytes()) {
            return Err(Error::PatternMatchesPlaceholder);
        }
        Ok(Self {
            name: name.to_owned(),
            regex,
            validator: None,
        })
    }

    /// Keep only matches for which `validator` returns `true` (it receives the
    /// matched text, invalid UTF-8 replaced by U+FFFD).
    #[must_use]
    pub fn with_validator(
        mut self,
        validator: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// The detector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn find(&self, b: &[u8], mut f: impl FnMut(usize, usize)) {
        for m in self.regex.find_iter(b) {
            if m.is_empty() {
                continue;
            }
            let ok = self
                .validator
                .as_ref()
                .is_none_or(|v| v(&String::from_utf8_lossy(m.as_bytes())));
            if ok {
                f(m.start(), m.end());
            }
        }
    }
}
