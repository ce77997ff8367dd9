//! Password policy (NIST SP 800-63B) with a breached-list hook.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::password::MAX_PASSWORD_BYTES;

/// A source of known-breached passwords (a local list, a k-anonymity API client).
pub trait BreachedPasswords: Send + Sync {
    /// Whether `password` is known to be breached.
    fn is_breached(&self, password: &str) -> bool;
}

/// A breached-password list held in memory, compared case-insensitively.
#[derive(Clone, Default)]
pub struct BreachedList(HashSet<String>);

impl fmt::Debug for BreachedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BreachedList({} entries)", self.0.len())
    }
}

impl BreachedList {
    /// A list from entries.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(entries: I) -> Self {
        Self(
            entries
                .into_iter()
                .map(|s| s.as_ref().to_lowercase())
                .collect(),
        )
    }
}

impl BreachedPasswords for BreachedList {
    fn is_breached(&self, password: &str) -> bool {
        self.0.contains(&password.to_lowercase())
    }
}

/// Why a password was refused by [`PasswordPolicy::check`]. Messages are meant for
/// the user and never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than the minimum.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More characters than the maximum.
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Not enough character classes (lowercase, uppercase, digit, other).
    #[error("password must mix at least {required} of: lowercase, uppercase, digits, symbols")]
    TooFewClasses {
        /// Classes required.
        required: usize,
    },
    /// Found in the breached-password list.
    #[error("password appears in a list of breached passwords; choose another")]
    Breached,
    /// Contains a context word (user name, email, service name).
    #[error("password must not contain your user name, email or the service name")]
    ContainsContext,
}

/// A password policy. Defaults follow NIST SP 800-63B: at least 12 characters, at
/// most 128, no composition rules, breached-list check when a list is set.
#[derive(Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
    max_chars: usize,
    min_classes: usize,
    breached: Option<Arc<dyn BreachedPasswords>>,
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_chars", &self.min_chars)
            .field("max_chars", &self.max_chars)
            .field("min_classes", &self.min_classes)
            .field("breached_list", &self.breached.is_some())
            .finish()
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
            min_classes: 0,
            breached: None,
        }
    }
}

impl PasswordPolicy {
    /// Set the length bounds in characters (1 <= min <= max, max*4 <= [`MAX_PASSWORD_BYTES`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn with_length(mut self, min: usize, max: usize) -> Result<Self> {
        if min == 0 || min > max || max.saturating_mul(4) > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidConfig("password length bounds"));
        }
        self.min_chars = min;
        self.max_chars = max;
        Ok(self)
    }

    /// Require at least `n` (0..=4) character classes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `n > 4`.
    pub fn with_min_classes(mut self, n: usize) -> Result<Self> {
        if n > 4 {
            return Err(Error::InvalidConfig("at most 4 character classes"));
        }
        self.min_classes = n;
        Ok(self)
    }

    /// Check passwords against a breached list.
    pub fn with_breached(mut self, list: Arc<dyn BreachedPasswords>) -> Self {
        self.breached = Some(list);
        self
    }

    /// Check `password`; `context` holds words it must not contain (user name,
    /// email, service name; case-insensitive, words shorter than 4 characters are
    /// ignored). Returns every violation.
    ///
    /// # Errors
    /// The list of violations.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), Vec<PolicyViolation>> {
        let mut v = Vec::new();
        let n = password.chars().count();
        if n < self.min_chars {
            v.push(PolicyViolation::TooShort {
                min: self.min_chars,
            });
        }
        if n > self.max_chars {
            v.push(PolicyViolation::TooLong {
                max: self.max_chars,
            });
        }
        let classes = [
            password.chars().any(char::is_lowercase),
            password.chars().any(char::is_uppercase),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if classes < self.min_classes {
            v.push(PolicyViolation::TooFewClasses {
                required: self.min_classes,
            });
        }
        let lower = password.to_lowercase();
        if context
            .iter()
            .any(|w| w.chars().count() >= 4 && lower.contains(&w.to_lowercase()))
        {
            v.push(PolicyViolation::ContainsContext);
        }
        if self
            .breached
            .as_ref()
            .is_some_and(|b| b.is_breached(password))
        {
            v.push(PolicyViolation::Breached);
        }
        if v.is_empty() { Ok(()) } else { Err(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_reports_clear_violations() {
        let p = PasswordPolicy::default()
            .with_min_classes(3)
            .unwrap()
            .with_breached(Arc::new(BreachedList::new(["Password123!"])));
        assert_eq!(
            p.check("short", &[]).unwrap_err()[0],
            PolicyViolation::TooShort { min: 12 }
        );
        assert!(
            p.check("password123!", &[])
                .unwrap_err()
                .contains(&PolicyViolation::Breached)
        );
        assert!(
            p.check("alllowercaseletters", &[])
                .unwrap_err()
                .contains(&PolicyViolation::TooFewClasses { required: 3 })
        );
        assert!(
            p.check("Xy9!aliceSmith-long", &["alice"])
                .unwrap_err()
                .contains(&PolicyViolation::ContainsContext)
        );
        assert!(p.check("Tr0ub4dour&3-horse", &["alice"]).is_ok());
        assert_eq!(
            PolicyViolation::TooShort { min: 12 }.to_string(),
            "password must be at least 12 characters long"
        );
    }

    /// Length bounds: 1 <= min <= max and max * 4 <= MAX_PASSWORD_BYTES
    /// (256 characters), each inclusive; at most 4 classes.
    #[test]
    fn configuration_bounds_are_inclusive() {
        let p = PasswordPolicy::default;
        for (min, max) in [(1, 1), (8, 8), (1, 256)] {
            assert!(p().with_length(min, max).is_ok(), "{min}..={max}");
        }
        for (min, max) in [(0, 8), (9, 8), (1, 257)] {
            assert!(
                matches!(p().with_length(min, max), Err(Error::InvalidConfig(_))),
                "{min}..={max}"
            );
        }
        assert!(p().with_min_classes(4).is_ok());
        assert!(matches!(
            p().with_min_classes(5),
            Err(Error::InvalidConfig(_))
        ));
    }

    /// Length is checked in characters, inclusive at both ends.
    #[test]
    fn length_limits_are_inclusive_in_characters() {
        let p = PasswordPolicy::default().with_length(4, 6).unwrap();
        assert_eq!(
            p.check("abc", &[]),
            Err(vec![PolicyViolation::TooShort { min: 4 }])
        );
        assert_eq!(p.check("abcd", &[]), Ok(()));
        assert_eq!(p.check("ééééé", &[]), Ok(()), "5 characters, 10 bytes");
        assert_eq!(p.check("abcdef", &[]), Ok(()));
        assert_eq!(
            p.check("abcdefg", &[]),
            Err(vec![PolicyViolation::TooLong { max: 6 }])
        );
    }

    /// Classes: lower, upper, digit, other; exactly the required number passes.
    #[test]
    fn exactly_the_required_classes_pass() {
        let p = PasswordPolicy::default().with_min_classes(2).unwrap();
        assert_eq!(p.check("abcdefghijk!", &[]), Ok(()), "lower + symbol");
        assert_eq!(p.check("abcdefghijk1", &[]), Ok(()), "lower + digit");
        assert_eq!(p.check("ABCDEFGHIJKl", &[]), Ok(()), "upper + lower");
        assert_eq!(
            p.check("abcdefghijkl", &[]),
            Err(vec![PolicyViolation::TooFewClasses { required: 2 }])
        );
        let four = PasswordPolicy::default().with_min_classes(4).unwrap();
        assert_eq!(four.check("abcDEF123!?x", &[]), Ok(()));
        assert!(four.check("abcDEF123xyz", &[]).is_err());
    }

    /// `Debug` shows the settings and the list's size, never its entries.
    #[test]
    fn debug_shows_settings_not_entries() {
        let list = BreachedList::new(["hunter2", "letmein"]);
        assert_eq!(format!("{list:?}"), "BreachedList(2 entries)");
        let p = PasswordPolicy::default().with_breached(Arc::new(list));
        assert_eq!(
            format!("{p:?}"),
            "PasswordPolicy { min_chars: 12, max_chars: 128, min_classes: 0, breached_list: true }"
        );
    }
}
