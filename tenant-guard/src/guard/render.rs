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

/// The `sqlparser` location (1-based line and column, columns counted in
/// characters) of every token boundary of `toks`, in order.
fn locations(sql: &str, toks: &[&Tok]) -> Vec<(Location, Location)> {
    let mut bounds: Vec<usize> = toks.iter().flat_map(|t| [t.start, t.end]).collect();
    bounds.sort_unstable();
    let mut at = Vec::with_capacity(bounds.len());
    let (mut line, mut col) = (1u64, 1u64);
    let mut next = bounds.iter().peekable();
    for (i, c) in sql.char_indices().chain(std::iter::once((sql.len(), ' '))) {
        while next.peek().is_some_and(|b| **b == i) {
            at.push((i, Location::new(line, col)));
            next.next();
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    let find = |b: usize| {
        at.binary_search_by_key(&b, |(i, _)| *i)
            .ok()
            .map_or(Location::new(0, 0), |k| at[k].1)
    };
    toks.iter().map(|t| (find(t.start), find(t.end))).collect()
}

/// Reads `sql` with the database's rules and checks that `sqlparser`'s tokens
/// (`theirs`) are the same tokens. Returns the database's tokens.
pub(crate) fn same_reading(
    sql: &str,
    dialect: Dialect,
    theirs: &[TokenWithSpan],
) -> Result<Vec<Tok>, GuardError> {
    let mine = lex::lex(sql, dialect).map_err(|e| lexical(e.0))?;
    if let Some(named) = mine
        .iter()
        .find(|t| t.kind == Kind::Placeholder && !t.value.starts_with(['?', '$']))
    {
        return Err(GuardError::UnsupportedPlaceholder(named.value.clone()));
    }
    let ours: Vec<&Tok> = mine.iter().filter(|t| lex::significant(t)).collect();
    let theirs: Vec<(&TokenWithSpan, (Kind, Option<&str>))> = theirs
        .iter()
        .filter_map(|t| class(&t.token).map(|c| (t, c)))
        .collect();
    if ours.len() != theirs.len() {
        return Err(lexical(
            "the parser and the database split the text differently",
        ));
    }
    for ((ours, (start, end)), (theirs, (kind, value))) in
        ours.iter().zip(locations(sql, &ours)).zip(&theirs)
    {
        let same = theirs.span.start == start
            && theirs.span.end == end
            && ours.kind == *kind
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
pub(crate) fn render_string(value: &str, dialect: Dialect) -> String {
    let doubled = value.replace('\'', "''");
    if dialect == Dialect::Postgres && value.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
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
    let mut expected: Vec<(Kind, &str)> = Vec::new();
    for t in &toks {
        match t.kind {
            Kind::Comment => return Err(lexical("comment in the emitted SQL")),
            Kind::Whitespace => out.push(' '),
            Kind::String => {
                let i = sentinel_index(&t.value, literals)
                    .ok_or_else(|| lexical("string constant the guard did not record"))?;
                out.push_str(&render_string(&literals[i], dialect));
                expected.push((Kind::String, &literals[i]));
            }
            kind => {
                out.push_str(&printed[t.start..t.end]);
                expected.push((kind, &t.value));
            }
        }
    }
    let relexed = lex::lex(&out, dialect).map_err(|e| lexical(e.0))?;
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
                got.push((t.kind, t.value.as_str()));
            }
            kind => got.push((kind, t.value.as_str())),
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
    use super::*;

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
