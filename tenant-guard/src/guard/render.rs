//! Emitted SQL is exactly what was checked.
//!
//! `sqlparser`'s printer does not quote the way PostgreSQL and SQLite read:
//! it leaves a quote after a backslash undoubled (`'x\'') OR ..'` came out as
//! `'x\') OR ..'`), collapses `''` inside a value (`O''Brien` stored as
//! `O'Brien`) and prints operators such as `#--` verbatim (a comment on
//! PostgreSQL). The guard therefore never lets the printer render a string:
//!
//! 1. **Input.** The statement is read twice, by `sqlparser`'s tokenizer and
//!    by the database's own rules ([`super::lex`]); every significant token
//!    must have the same extent, the same class and (strings, quoted
//!    identifiers) the same decoded value, or the statement is refused
//!    ([`GuardError::Lexical`]). Every string constant is then swapped for a
//!    sentinel `'hisn_guard_literal_<n>'` and its value kept aside; quoted
//!    identifiers that hold a quote, a backslash or a control character are
//!    refused.
//! 2. **Print.** The rewritten tree is printed (sentinels are plain
//!    alphanumeric strings, which the printer renders faithfully) and parsed
//!    again: the result must equal the tree.
//! 3. **Render.** The printed text is read by the database's rules (and must
//!    read the same with `sqlparser`'s), must hold no comment, and each
//!    sentinel is replaced by the value rendered canonically: `'..'` with `''`
//!    doubling; on PostgreSQL a value with a backslash is written `E'..'` with
//!    `\\`, so the text means the same whatever `standard_conforming_strings`
//!    says.
//! 4. **Re-lex.** The final text is read once more by the database's rules:
//!    the same tokens as the printed text, with each string decoding to
//!    exactly the tree's value, no comment, no placeholder past the tenant's.
//!    Any difference refuses the statement (fail closed).

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::lex::{self, Kind, Tok};
use super::{Dialect, GuardError};

/// Prefix of the sentinels that stand for string constants while the tree
/// is printed.
pub(crate) const SENTINEL: &str = "hisn_guard_literal_";

fn lexical(msg: impl Into<String>) -> GuardError {
    GuardError::Lexical(msg.into())
}

/// The class and value `sqlparser` gives a token, comparable with [`Tok`].
fn class(token: &Token) -> Option<(Kind, Option<&str>)> {
    Some(match token {
        Token::Whitespace(_) | Token::EOF => return None,
        Token::Word(w) if w.quote_style.is_some() => (Kind::QuotedIdent, Some(w.value.as_str())),
        Token::Word(_) => (Kind::Word, None),
        Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => {
            (Kind::String, Some(s.as_str()))
        }
        Token::DollarQuotedString(d) => (Kind::String, Some(d.value.as_str())),
        Token::HexStringLiteral(s) => (Kind::Blob, Some(s.as_str())),
        Token::Number(..) => (Kind::Number, None),
        Token::Placeholder(_) => (Kind::Placeholder, None),
        Token::NationalStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::DoubleQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        // String forms the guard does not accept: a class no database token
        // has (whitespace is filtered out), so the comparison fails.
        | Token::NationalQuoteDelimitedStringLiteral(_) => (Kind::Whitespace, None),
        _ => (Kind::Op, None),
    })
}

/// Walks `sql` forward to turn byte offsets into `sqlparser` locations
/// (1-based line and column, columns counted in characters). Token bounds come
/// in order, so one pass over the text serves every token.
struct Locator<'s> {
    sql: &'s str,
    at: usize,
    line: u64,
    col: u64,
}

impl<'s> Locator<'s> {
    fn new(sql: &'s str) -> Self {
        Self {
            sql,
            at: 0,
            line: 1,
            col: 1,
        }
    }

    /// The location of byte `to`; `None` if `to` is behind the last one asked
    /// for, past the end or inside a character (never for a lexer's bounds).
    fn locate(&mut self, to: usize) -> Option<Location> {
        let passed = self.sql.get(self.at..to)?;
        for c in passed.chars() {
            if c == '\n' {
                self.line += 1;
                self.col = 1;
            } else {
                self.col += 1;
            }
        }
        self.at = to;
        Some(Location::new(self.line, self.col))
    }
}

/// Reads `sql` with the database's rules and checks that `sqlparser`'s tokens
/// (`theirs`) are the same tokens. Returns the database's tokens.
pub(crate) fn same_reading<'a>(
    sql: &'a str,
    dialect: Dialect,
    theirs: &[TokenWithSpan],
) -> Result<Vec<Tok<'a>>, GuardError> {
    let mine = lex::tokens(sql, dialect).map_err(|e| lexical(e.0))?;
    if let Some(named) = mine
        .iter()
        .find(|t| t.kind == Kind::Placeholder && !t.value.starts_with(['?', '$']))
    {
        return Err(GuardError::UnsupportedPlaceholder(
            named.value.clone().into_owned(),
        ));
    }
    let ours = || mine.iter().filter(|t| lex::significant(t));
    let theirs = || {
        theirs
            .iter()
            .filter_map(|t| class(&t.token).map(|c| (t, c)))
    };
    if ours().count() != theirs().count() {
        return Err(lexical(
            "the parser and the database split the text differently",
        ));
    }
    let mut locator = Locator::new(sql);
    for (ours, (theirs, (kind, value))) in ours().zip(theirs()) {
        let (start, end) = (locator.locate(ours.start), locator.locate(ours.end));
        let same = start.is_some_and(|l| theirs.span.start == l)
            && end.is_some_and(|l| theirs.span.end == l)
            && ours.kind == kind
            && value.is_none_or(|v| v == ours.value);
        if !same {
            return Err(lexical(format!(
                "the parser and the database read `{}` differently",
                sql.get(ours.start..ours.end).unwrap_or_default()
            )));
        }
    }
    Ok(mine)
}

/// The input side: checks the reading, refuses unsafe quoted identifiers and
/// swaps every string constant for a sentinel. Returns the kept values in
/// sentinel order.
pub(crate) fn swap_literals(
    sql: &str,
    dialect: Dialect,
    tokens: &mut [TokenWithSpan],
) -> Result<Vec<String>, GuardError> {
    // Text that looks like a sentinel is harmless: every string token of the
    // input becomes a sentinel (whatever its value), and only string tokens of
    // the printed text are substituted, each by the value recorded for its
    // index. Values are never scanned again.
    same_reading(sql, dialect, tokens)?;
    let mut literals = Vec::new();
    for t in tokens.iter_mut() {
        match &mut t.token {
            Token::Word(w)
                if w.quote_style.is_some()
                    && w.value.chars().any(|c| {
                        matches!(c, '"' | '`' | '[' | ']' | '\'' | '\\') || c.is_control()
                    }) =>
            {
                return Err(lexical(
                    "quoted identifier containing a quote, bracket, backslash or control character",
                ));
            }
            Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => {
                literals.push(std::mem::take(s));
                t.token = Token::SingleQuotedString(format!("{SENTINEL}{}", literals.len() - 1));
            }
            Token::DollarQuotedString(d) => {
                literals.push(std::mem::take(&mut d.value));
                t.token = Token::SingleQuotedString(format!("{SENTINEL}{}", literals.len() - 1));
            }
            _ => {}
        }
    }
    Ok(literals)
}

/// A string constant both databases read as exactly `value`.
#[cfg(test)]
pub(crate) fn render_string(value: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    render_string_into(&mut out, value, dialect);
    out
}

/// Appends to `out` a string constant both databases read as exactly
/// `value`: `'..'` with `''` doubling; on PostgreSQL a value with a backslash
/// is written `E'..'` with `\\`, so that it reads the same whatever
/// `standard_conforming_strings` says.
fn render_string_into(out: &mut String, value: &str, dialect: Dialect) {
    let escape = dialect == Dialect::Postgres && value.contains('\\');
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if escape => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn sentinel_index(value: &str, literals: &[String]) -> Option<usize> {
    value
        .strip_prefix(SENTINEL)
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < literals.len())
}

/// The output side: renders the printed text `printed` (whose `sqlparser`
/// tokens are `theirs`) with the kept values, and re-lexes the result.
pub(crate) fn emit(
    printed: &str,
    theirs: &[TokenWithSpan],
    literals: &[String],
    dialect: Dialect,
    tenant_param: usize,
) -> Result<String, GuardError> {
    let toks = same_reading(printed, dialect, theirs)?;
    let mut out = String::with_capacity(printed.len() + 16);
    let mut expected: Vec<(Kind, &str)> = Vec::with_capacity(toks.len());
    for t in &toks {
        match t.kind {
            Kind::Comment => return Err(lexical("comment in the emitted SQL")),
            Kind::Whitespace => out.push(' '),
            Kind::String => {
                let i = sentinel_index(&t.value, literals)
                    .ok_or_else(|| lexical("string constant the guard did not record"))?;
                render_string_into(&mut out, &literals[i], dialect);
                expected.push((Kind::String, &literals[i]));
            }
            kind => {
                out.push_str(&printed[t.start..t.end]);
                expected.push((kind, &*t.value));
            }
        }
    }
    let relexed = lex::tokens(&out, dialect).map_err(|e| lexical(e.0))?;
    let mut got = Vec::with_capacity(expected.len());
    for t in &relexed {
        match t.kind {
            Kind::Comment => return Err(lexical("comment in the emitted SQL")),
            Kind::Whitespace => {}
            Kind::Placeholder => {
                let index = t.value.get(1..).and_then(super::params::parse_index);
                if index.is_none_or(|n| n > tenant_param) {
                    return Err(lexical("placeholder beyond the tenant's"));
                }
                got.push((t.kind, &*t.value));
            }
            kind => got.push((kind, &*t.value)),
        }
    }
    if got != expected {
        return Err(lexical(
            "the emitted SQL does not read back as the checked tree",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn parser_tokens(sql: &str) -> Vec<TokenWithSpan> {
        Tokenizer::new(&PostgreSqlDialect {}, sql)
            .with_unescape(true)
            .tokenize_with_location()
            .unwrap()
    }

    fn position(toks: &[TokenWithSpan], wanted: &Token) -> usize {
        toks.iter().position(|t| t.token == *wanted).unwrap()
    }

    /// The input check compares every significant token of the parser's
    /// reading with the database's: its start, its end, its class and (for
    /// strings) its decoded value. A reading that differs in any one of them
    /// alone is refused; the parser's own reading is accepted, on any line.
    #[test]
    fn same_reading_refuses_a_token_read_at_another_extent_class_or_value() {
        let sql = "SELECT name\nFROM assets WHERE name = 'a'";
        let toks = parser_tokens(sql);
        assert!(same_reading(sql, Dialect::Postgres, &toks).is_ok());
        let word = position(&toks, &Token::make_word("name", None));
        let string = position(&toks, &Token::SingleQuotedString("a".into()));

        let mut end = toks.clone();
        end[word].span.end = Location::new(1, 10);
        let mut start = toks.clone();
        start[word].span.start = Location::new(1, 9);
        let mut class = toks.clone();
        class[word].token = Token::Number("name".into(), false);
        let mut value = toks.clone();
        value[string].token = Token::SingleQuotedString("b".into());
        for (what, theirs) in [
            ("end", end),
            ("start", start),
            ("class", class),
            ("value", value),
        ] {
            assert!(
                matches!(
                    same_reading(sql, Dialect::Postgres, &theirs),
                    Err(GuardError::Lexical(_))
                ),
                "{what}"
            );
        }
    }

    /// The output side substitutes each sentinel by the value recorded at
    /// its own index, and refuses (never panics on) a sentinel past the
    /// recorded values.
    #[test]
    fn emit_puts_each_literal_back_at_its_index_and_refuses_unrecorded_ones() {
        let literals = vec!["a".to_owned(), "b".to_owned()];
        let printed = format!("SELECT '{SENTINEL}1', '{SENTINEL}0'");
        let theirs = parser_tokens(&printed);
        assert_eq!(
            emit(&printed, &theirs, &literals, Dialect::Postgres, 1).as_deref(),
            Ok("SELECT 'b', 'a'")
        );
        let past = format!("SELECT '{SENTINEL}2'");
        assert!(matches!(
            emit(
                &past,
                &parser_tokens(&past),
                &literals,
                Dialect::Postgres,
                1
            ),
            Err(GuardError::Lexical(_))
        ));
    }

    #[test]
    fn rendered_strings_decode_to_the_value_in_both_dialects() {
        for value in [
            "",
            "O''Brien",
            r"x\'') OR 1 --",
            "$$",
            "a\nb",
            r"\\",
            "é'\\",
        ] {
            for dialect in [Dialect::Postgres, Dialect::Sqlite] {
                let text = render_string(value, dialect);
                let toks = lex::lex(&text, dialect).unwrap();
                assert_eq!(toks.len(), 1, "{text}");
                assert_eq!(
                    (toks[0].kind, toks[0].value.as_str()),
                    (Kind::String, value)
                );
            }
        }
    }
}
