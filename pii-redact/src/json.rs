//! Structural redaction of `serde_json::Value`s.
//!
//! Values under a sensitive key name are replaced whole (`"[REDACTED]"`,
//! whatever their type, objects and arrays included); every other string is
//! redacted by content; numbers are checked by content too (a phone number or
//! card stored as a JSON number is replaced by a placeholder string); object
//! keys are redacted by content (an address used as a key).
//!
//! Key names are compared after lower-casing and removing everything but
//! letters and digits, so `national_id`, `nationalId` and `National-ID` are one
//! name; a key is sensitive when its normalised form *ends with* a listed
//! name (`access_token`, `x-api-key`, `user_password`). The trap: a name that
//! does not end with a listed word (`pwd_hint`, `auth_data`) is only redacted
//! by content; add it with [`JsonRedactor::with_key`].

use serde_json::{Map, Value};

use crate::redactor::Redactor;

/// What a value under a sensitive key becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Default sensitive key names (normalised: lower-case letters and digits).
pub const DEFAULT_KEYS: [&str; 22] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "auth",
    "cookie",
    "session",
    "sessionid",
    "credential",
    "credentials",
    "privatekey",
    "iban",
    "nationalid",
    "iqama",
    "ssn",
    "cardnumber",
    "pan",
    "cvv",
    "pin",
];

/// Redacts JSON values by key name and by content.
#[derive(Debug, Clone)]
pub struct JsonRedactor {
    redactor: Redactor,
    keys: Vec<String>,
}

fn normalise(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl JsonRedactor {
    /// Content redaction with `redactor`, key names from [`DEFAULT_KEYS`].
    pub fn new(redactor: Redactor) -> Self {
        Self {
            redactor,
            keys: DEFAULT_KEYS.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    /// Add a sensitive key name (normalised as described in the module docs).
    #[must_use]
    pub fn with_key(mut self, name: &str) -> Self {
        let n = normalise(name);
        if !n.is_empty() && !self.keys.contains(&n) {
            self.keys.push(n);
        }
        self
    }

    /// Replace the whole list of sensitive key names.
    #[must_use]
    pub fn with_keys<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.keys = names
            .into_iter()
            .map(normalise)
            .filter(|n| !n.is_empty())
            .collect();
        self
    }

    /// Whether `key` is a sensitive key name.
    pub fn is_sensitive(&self, key: &str) -> bool {
        let n = normalise(key);
        // `pan`, `pin` and `auth` only as whole names: as suffixes they hit
        // `company`, `spin`, `oauth`-free words too often.
        self.keys.iter().any(|k| {
            if k.len() <= 4 {
                n == *k
                    || n.strip_suffix(k.as_str())
                        .is_some_and(|p| p.ends_with("card"))
            } else {
                n.ends_with(k.as_str())
            }
        })
    }

    /// Redact `value` in place.
    pub fn redact(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let std::borrow::Cow::Owned(r) = self.redactor.redact(s) {
                    *s = r;
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                if let std::borrow::Cow::Owned(r) = self.redactor.redact(&text) {
                    *value = Value::String(r);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                let mut new = Map::with_capacity(old.len());
                for (k, mut v) in old {
                    if self.is_sensitive(&k) {
                        v = Value::String(REDACTED.to_owned());
                    } else {
                        self.redact(&mut v);
                    }
                    new.insert(self.redactor.redact(&k).into_owned(), v);
                }
                *map = new;
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}
