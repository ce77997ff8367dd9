//! Tokenizing with limits, and placeholder numbering.
//!
//! Placeholders are handled on the token stream, in text order, before parsing:
//! the tenant placeholder must never collide with one of the statement's own,
//! and SQLite numbers a bare `?` after the largest index seen so far, so bare
//! `?` are renumbered `?1..?n` here (the parser then sees only numbered ones).

use sqlparser::dialect::Dialect as SqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::{Dialect, GuardError, MAX_SQL_LEN, MAX_TOKENS};

/// Highest parameter index PostgreSQL accepts (the protocol's 16-bit count).
const PG_MAX_PARAMS: usize = 65_535;
/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER`.
const SQLITE_MAX_PARAMS: usize = 32_766;

/// The token stream ready for the parser and the statement's parameter count.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) tokens: Vec<TokenWithSpan>,
    pub(crate) user_params: usize,
    /// The string constants, in the order of their sentinels
    /// ([`super::render`]).
    pub(crate) literals: Vec<String>,
}

/// Tokenizes `sql`, enforces the size limits and numbers the placeholders.
pub(crate) fn prepare(
    sql: &str,
    parser_dialect: &dyn SqlDialect,
    dialect: Dialect,
) -> Result<Prepared, GuardError> {
    if sql.len() > MAX_SQL_LEN {
        return Err(GuardError::TooComplex);
    }
    let mut tokens = Tokenizer::new(parser_dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| GuardError::Parse(e.to_string()))?;
    let significant = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .count();
    if significant == 0 {
        return Err(GuardError::Empty);
    }
    if significant > MAX_TOKENS {
        return Err(GuardError::TooComplex);
    }
    let mut max = 0usize;
    let mut bare = 0usize;
    let mut numbered = false;
    for t in &mut tokens {
        let Token::Placeholder(p) = &mut t.token else {
            continue;
        };
        match dialect {
            Dialect::Postgres => {
                let n = p
                    .strip_prefix('$')
                    .and_then(parse_index)
                    .ok_or_else(|| GuardError::UnsupportedPlaceholder(p.clone()))?;
                max = max.max(n);
            }
            Dialect::Sqlite => {
                if p == "?" {
                    bare += 1;
                    *p = format!("?{bare}");
                } else {
                    let n = p
                        .strip_prefix('?')
                        .and_then(parse_index)
                        .ok_or_else(|| GuardError::UnsupportedPlaceholder(p.clone()))?;
                    numbered = true;
                    max = max.max(n);
                }
            }
        }
    }
    if bare > 0 && numbered {
        return Err(GuardError::UnsupportedPlaceholder(
            "bare `?` mixed with numbered `?NNN`".into(),
        ));
    }
    let user_params = max.max(bare);
    let limit = match dialect {
        Dialect::Postgres => PG_MAX_PARAMS,
        Dialect::Sqlite => SQLITE_MAX_PARAMS,
    };
    if user_params >= limit {
        return Err(GuardError::UnsupportedPlaceholder(format!(
            "parameter index {user_params} leaves no room for the tenant"
        )));
    }
    let literals = super::render::swap_literals(sql, dialect, &mut tokens)?;
    // Comments are whitespace tokens: drop them so that nothing the statement's
    // author wrote outside the tree reaches the output (the parser ignores them
    // anyway; this only saves work).
    tokens.retain(|t| {
        !matches!(
            t.token,
            Token::Whitespace(Whitespace::SingleLineComment { .. })
                | Token::Whitespace(Whitespace::MultiLineComment(_))
        )
    });
    Ok(Prepared {
        tokens,
        user_params,
        literals,
    })
}

/// A 1-based parameter index: ASCII digits, no sign, no leading zero, at most
/// five digits.
pub(crate) fn parse_index(digits: &str) -> Option<usize> {
    if digits.is_empty()
        || digits.len() > 5
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};

    fn pg(sql: &str) -> Result<usize, GuardError> {
        prepare(sql, &PostgreSqlDialect {}, Dialect::Postgres).map(|p| p.user_params)
    }

    fn lite(sql: &str) -> Result<Prepared, GuardError> {
        prepare(sql, &SQLiteDialect {}, Dialect::Sqlite)
    }

    #[test]
    fn postgres_counts_the_highest_index() {
        assert_eq!(pg("SELECT 1").unwrap(), 0);
        assert_eq!(pg("SELECT $2, $1, $7").unwrap(), 7);
        assert_eq!(pg("SELECT '$9', $$ $8 $$").unwrap(), 0);
        assert!(matches!(
            pg("SELECT $0"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
        assert!(matches!(
            pg("SELECT $01"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
        assert!(matches!(
            pg("SELECT $65535"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
        assert_eq!(pg("SELECT $65534").unwrap(), 65534);
    }

    #[test]
    fn sqlite_renumbers_bare_placeholders_in_text_order() {
        let p = lite("SELECT ?, ? FROM t WHERE a = ?").unwrap();
        assert_eq!(p.user_params, 3);
        let names: Vec<_> = p
            .tokens
            .iter()
            .filter_map(|t| match &t.token {
                Token::Placeholder(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["?1", "?2", "?3"]);
        assert_eq!(lite("SELECT ?3, ?1").unwrap().user_params, 3);
        assert!(matches!(
            lite("SELECT ?, ?2"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
        assert!(matches!(
            lite("SELECT $a"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
        assert!(matches!(
            lite("SELECT ?32766"),
            Err(GuardError::UnsupportedPlaceholder(_))
        ));
    }

    /// The length limit is exact: 64 KiB of text pass it (here, blank text
    /// is then empty), one byte more is too complex.
    #[test]
    fn text_of_exactly_64_kib_passes_the_length_limit() {
        assert_eq!(pg(&" ".repeat(65_536)).unwrap_err(), GuardError::Empty);
        assert_eq!(pg(&" ".repeat(65_537)).unwrap_err(), GuardError::TooComplex);
    }

    #[test]
    fn limits_and_empty_input() {
        assert_eq!(
            pg("  -- nothing\n /* at all */ ").unwrap_err(),
            GuardError::Empty
        );
        assert_eq!(
            pg(&" ".repeat(MAX_SQL_LEN + 1)).unwrap_err(),
            GuardError::TooComplex
        );
        assert_eq!(
            pg(&"1+".repeat(MAX_TOKENS)).unwrap_err(),
            GuardError::TooComplex
        );
        assert!(matches!(
            pg("SELECT 'unterminated"),
            Err(GuardError::Parse(_))
        ));
    }

    #[test]
    fn parse_index_is_strict() {
        assert_eq!(parse_index("1"), Some(1));
        assert_eq!(parse_index("99999"), Some(99999));
        for bad in ["", "0", "01", "+1", "-1", "1a", "123456", "١"] {
            assert_eq!(parse_index(bad), None, "{bad}");
        }
    }
}
