//! The databases' own lexical rules: a small lexer for PostgreSQL and one for
//! SQLite, used to check that what `sqlparser` read is what the database
//! reads, and that the text the guard emits is read back as the tree it
//! printed.
//!
//! `sqlparser` is a parser for many dialects; its tokenizer and printer are
//! not PostgreSQL's or SQLite's (backslashes before quotes, `#--` read as one
//! operator, `N'..'` on SQLite, ...). Everything here follows the databases'
//! sources (PostgreSQL `scan.l` with `standard_conforming_strings = on`,
//! SQLite `tokenize.c`) for the subset an application statement uses, and
//! fails on anything else (`Err`), which the guard turns into a refusal:
//!
//! - whitespace and comments: `--` to the end of the line; `/* .. */`, nested
//!   on PostgreSQL, not nested (and allowed unterminated) on SQLite;
//! - words: `[A-Za-z_]` or any non-ASCII character, then also digits and `$`;
//! - quoted identifiers: `".."` with `""` (both), `` `..` `` and `[..]`
//!   (SQLite), decoded;
//! - strings: `'..'` with `''`, decoded; PostgreSQL `E'..'` (backslash escapes
//!   decoded) and dollar quotes `$tag$..$tag$`; SQLite blobs `X'..'`. Refused:
//!   PostgreSQL `B'..'`, `X'..'`, `N'..'`, `U&'..'`, `U&".."`, and two string
//!   tokens in a row (PostgreSQL concatenates them across a newline);
//! - numbers (decimal, `0x`/`0o`/`0b`, `_` separators, exponent), refused when a
//!   word character follows directly (PostgreSQL's "trailing junk");
//! - placeholders: `$n` (PostgreSQL), `?`, `?n`, `:x`, `@x`, `$x` (SQLite);
//! - operators: PostgreSQL's rule (the longest run of operator characters that
//!   contains no `--` or `/*`, trailing `+`/`-` dropped unless the run holds
//!   one of `~!@#%^&|`?`), SQLite's fixed set; punctuation.
//!
//! Every scan refuses (`Err`) rather than loops when a step would not move
//! forward, which only a bug in this lexer can cause: a lexer bug refuses the
//! SQL, it never hangs the caller.
//!
//! A NUL character anywhere is refused: both databases stop reading the
//! statement text at a NUL, which would cut off the tenant predicate.
//!
//! On PostgreSQL an identifier (quoted or not) longer than
//! [`PG_MAX_IDENT_LEN`] bytes is refused: PostgreSQL truncates it to its first
//! 63 bytes, so two names the guard tells apart (`<63 bytes>x` and the
//! registered `<63 bytes>`, a tenant column among them) would name the same
//! object in the database.

use std::borrow::Cow;

use super::Dialect;

/// What a token is, for comparing two readings of the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Spaces, tabs, newlines.
    Whitespace,
    /// A `--` or `/* */` comment.
    Comment,
    /// An unquoted identifier or keyword.
    Word,
    /// A quoted identifier; the value is decoded.
    QuotedIdent,
    /// A string constant; the value is decoded.
    String,
    /// A SQLite blob `X'..'`; the value is the hex digits.
    Blob,
    /// A numeric constant.
    Number,
    /// A parameter placeholder.
    Placeholder,
    /// An operator or punctuation.
    Op,
}

/// One token: its kind, its byte range in the text and its value (decoded for
/// strings and quoted identifiers, empty for whitespace, the text itself
/// otherwise). The value borrows from the text unless decoding changed it
/// (a doubled quote, an escape), so reading a statement allocates only for
/// those: the guard reads every statement three times on a cache miss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tok<'a> {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) value: Cow<'a, str>,
}

/// [`Tok`] with an owned value, for [`lex`]'s callers outside the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedTok {
    pub(crate) kind: Kind,
    pub(crate) value: String,
}

/// Why the text cannot be read safely. The message is for the developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError(pub(crate) String);

fn err<T>(msg: impl Into<String>) -> Result<T, LexError> {
    Err(LexError(msg.into()))
}

/// Refuses a scan step that did not move from byte `mark` forward to byte
/// `now` within a text of `len` bytes. Every loop of the lexer checks its
/// steps with this: none can fail on a correct lexer, but a bug that stops a
/// loop advancing, moves it back or runs it past the end refuses the SQL
/// instead of looping forever. It only checks, it never moves the position,
/// so one bug cannot both stall a loop and silence it.
fn ahead(mark: usize, now: usize, len: usize) -> Result<(), LexError> {
    if now > mark && now <= len {
        Ok(())
    } else {
        err("lexer made no progress (a bug in the lexer)")
    }
}

/// PostgreSQL's longest identifier in bytes (`NAMEDATALEN - 1`); longer ones
/// are truncated by the server, so the guard refuses them.
pub(crate) const PG_MAX_IDENT_LEN: usize = 63;

/// PostgreSQL's operator characters: `+-*/<>=~!@#%^&|`?` (`scan.l`'s
/// `op_chars`).
fn is_pg_op_char(c: char) -> bool {
    matches!(c, '+' | '-' | '*' | '/' | '<' | '>' | '=') || is_pg_op_special(c)
}

/// The operator characters that let a PostgreSQL operator end in `+`/`-`:
/// ``~!@#%^&|`?``.
fn is_pg_op_special(c: char) -> bool {
    matches!(c, '~' | '!' | '@' | '#' | '%' | '^' | '&' | '|' | '`' | '?')
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_word_part(c: char) -> bool {
    is_word_start(c) || c.is_ascii_digit() || c == '$'
}

fn is_space(c: char, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b'),
        Dialect::Sqlite => matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'),
    }
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    dialect: Dialect,
    out: Vec<Tok<'a>>,
}

/// Reads `sql` with the database's rules; values owned (the fuzzing API).
pub(crate) fn lex(sql: &str, dialect: Dialect) -> Result<Vec<OwnedTok>, LexError> {
    Ok(tokens(sql, dialect)?
        .into_iter()
        .map(|t| OwnedTok {
            kind: t.kind,
            value: t.value.into_owned(),
        })
        .collect())
}

/// Reads `sql` with the database's rules.
pub(crate) fn tokens(sql: &str, dialect: Dialect) -> Result<Vec<Tok<'_>>, LexError> {
    if sql.contains('\0') {
        return err("NUL character");
    }
    let mut lx = Lexer {
        s: sql,
        b: sql.as_bytes(),
        pos: 0,
        dialect,
        // Roughly one token or space per four bytes of SQL: avoids regrowing
        // (and copying) the vector while lexing.
        out: Vec::with_capacity(sql.len() / 4 + 4),
    };
    lx.run()?;
    if dialect == Dialect::Postgres {
        // `'a'` newline `'b'` is one string on PostgreSQL; two string tokens
        // in a row are never valid otherwise. Refuse both.
        let mut prev_string = false;
        for t in &lx.out {
            match t.kind {
                Kind::Whitespace | Kind::Comment => {}
                Kind::String => {
                    if prev_string {
                        return err("adjacent string constants");
                    }
                    prev_string = true;
                }
                _ => prev_string = false,
            }
        }
    }
    Ok(lx.out)
}

impl<'a> Lexer<'a> {
    /// Reads the tokens up to the end of the text. A token that does not
    /// move the position forward is refused: it would be read again forever.
    fn run(&mut self) -> Result<(), LexError> {
        while self.pos < self.b.len() {
            let mark = self.pos;
            self.token()?;
            ahead(mark, self.pos, self.b.len())?;
        }
        Ok(())
    }

    fn peek(&self, off: usize) -> Option<char> {
        self.char_at(self.pos + off)
    }

    /// The character that starts at byte `at`, or `None` at the end or
    /// inside a character.
    fn char_at(&self, at: usize) -> Option<char> {
        // An ASCII byte always starts a character (continuation bytes are
        // >= 0x80): the same answer as the general case, without decoding.
        match self.b.get(at) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            _ => self.s.get(at..)?.chars().next(),
        }
    }

    /// Moves past the characters for which `pred` (given the lexer, for
    /// lookahead, positioned on the character) holds.
    fn skip_while(&mut self, pred: impl Fn(&Self, char) -> bool) -> Result<(), LexError> {
        while let Some(c) = self.peek(0).filter(|&c| pred(self, c)) {
            let mark = self.pos;
            self.pos += c.len_utf8();
            ahead(mark, self.pos, self.b.len())?;
        }
        Ok(())
    }

    fn push(&mut self, kind: Kind, start: usize, value: Cow<'a, str>) {
        self.out.push(Tok {
            kind,
            start,
            end: self.pos,
            value,
        });
    }

    fn push_raw(&mut self, kind: Kind, start: usize) {
        let s: &'a str = self.s;
        self.push(kind, start, Cow::Borrowed(&s[start..self.pos]));
    }

    /// PostgreSQL truncates identifiers longer than [`PG_MAX_IDENT_LEN`]
    /// bytes; refuse them rather than model the truncation.
    fn ident_len(&self, value: &str) -> Result<(), LexError> {
        if self.dialect == Dialect::Postgres && value.len() > PG_MAX_IDENT_LEN {
            return err("identifier longer than 63 bytes (PostgreSQL truncates it)");
        }
        Ok(())
    }

    fn token(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        let Some(c) = self.peek(0) else {
            return Ok(());
        };
        let next = self.peek(1);
        let pg = self.dialect == Dialect::Postgres;
        if is_space(c, self.dialect) {
            self.skip_while(|lx, c| is_space(c, lx.dialect))?;
            // No value: nothing reads a space's text, and a space sits
            // between most tokens (one allocation fewer each).
            self.push(Kind::Whitespace, start, Cow::Borrowed(""));
            return Ok(());
        }
        if c == '-' && next == Some('-') {
            // PostgreSQL ends a line comment at `\n` or `\r` (scan.l's
            // `newline`); SQLite only at `\n` (tokenize.c).
            self.skip_while(|lx, c| c != '\n' && (c != '\r' || lx.dialect == Dialect::Sqlite))?;
            self.push_raw(Kind::Comment, start);
            return Ok(());
        }
        if c == '/' && next == Some('*') {
            return self.block_comment(start);
        }
        match c {
            '\'' => return self.quoted(start, '\'', Kind::String),
            '"' => return self.quoted(start, '"', Kind::QuotedIdent),
            '`' if !pg => return self.quoted(start, '`', Kind::QuotedIdent),
            '[' if !pg => {
                self.pos += 1;
                let Some(len) = self.s[self.pos..].find(']') else {
                    return err("unterminated [identifier]");
                };
                let s: &'a str = self.s;
                let value = &s[self.pos..self.pos + len];
                self.pos += len + 1;
                self.push(Kind::QuotedIdent, start, Cow::Borrowed(value));
                return Ok(());
            }
            _ => {}
        }
        if pg && (c == 'e' || c == 'E') && next == Some('\'') {
            self.pos += 1;
            return self.escape_string(start);
        }
        if matches!(c, 'x' | 'X') && next == Some('\'') {
            if pg {
                return err("bit-string constant X'..'");
            }
            self.pos += 1;
            self.quoted(start, '\'', Kind::Blob)?;
            let Some(t) = self.out.last() else {
                return err("blob");
            };
            if t.value.len() % 2 != 0 || !t.value.bytes().all(|b| b.is_ascii_hexdigit()) {
                return err("malformed blob literal");
            }
            return Ok(());
        }
        if pg && matches!(c, 'b' | 'B' | 'n' | 'N') && next == Some('\'') {
            return err("bit-string or national string constant");
        }
        if pg
            && matches!(c, 'u' | 'U')
            && next == Some('&')
            && matches!(self.peek(2), Some('\'' | '"'))
        {
            return err("Unicode-escaped constant U&'..'");
        }
        if is_word_start(c) {
            self.skip_while(|_, c| is_word_part(c))?;
            self.ident_len(&self.s[start..self.pos])?;
            self.push_raw(Kind::Word, start);
            return Ok(());
        }
        if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) {
            return self.number(start);
        }
        if c == '$' {
            return self.dollar(start);
        }
        if !pg && matches!(c, '?' | ':' | '@') && (c == '?' || next.is_some_and(is_word_start)) {
            self.pos += 1;
            self.skip_while(|_, c| c.is_ascii_alphanumeric() || c == '_')?;
            self.push_raw(Kind::Placeholder, start);
            return Ok(());
        }
        if pg {
            self.pg_operator(start)
        } else {
            self.sqlite_operator(start)
        }
    }

    fn block_comment(&mut self, start: usize) -> Result<(), LexError> {
        self.pos += 2;
        let mut depth = 1usize;
        while depth > 0 {
            let mark = self.pos;
            match (self.peek(0), self.peek(1)) {
                (None, _) if self.dialect == Dialect::Sqlite => break,
                (None, _) => return err("unterminated comment"),
                (Some('*'), Some('/')) => {
                    self.pos += 2;
                    depth -= 1;
                }
                (Some('/'), Some('*')) if self.dialect == Dialect::Postgres => {
                    self.pos += 2;
                    depth += 1;
                }
                (Some(c), _) => self.pos += c.len_utf8(),
            }
            ahead(mark, self.pos, self.b.len())?;
        }
        self.push_raw(Kind::Comment, start);
        Ok(())
    }

    /// A quote-delimited token whose quote is escaped by doubling it. The
    /// quotes are ASCII, and no byte of a multi-byte character is, so the
    /// scan is by bytes; the value borrows the text unless a doubled quote
    /// had to be collapsed.
    fn quoted(&mut self, start: usize, quote: char, kind: Kind) -> Result<(), LexError> {
        let (s, b): (&'a str, &'a [u8]) = (self.s, self.b);
        let q = u8::try_from(quote).unwrap_or(b'\'');
        self.pos += 1;
        let mut value: Cow<'a, str> = Cow::Borrowed("");
        let mut from = self.pos;
        loop {
            let mark = self.pos;
            let Some(off) = b
                .get(self.pos..)
                .and_then(|rest| rest.iter().position(|&c| c == q))
            else {
                return err("unterminated quoted token");
            };
            let at = self.pos + off;
            let run = &s[from..at];
            if b.get(at + 1) == Some(&q) {
                let v = value.to_mut();
                v.push_str(run);
                v.push(quote);
                self.pos = at + 2;
                ahead(mark, self.pos, self.b.len())?;
                from = self.pos;
            } else {
                match &mut value {
                    Cow::Owned(v) => v.push_str(run),
                    Cow::Borrowed(_) => value = Cow::Borrowed(run),
                }
                self.pos = at + 1;
                break;
            }
        }
        if kind == Kind::QuotedIdent {
            if value.is_empty() {
                return err("empty quoted identifier");
            }
            self.ident_len(&value)?;
        }
        self.push(kind, start, value);
        Ok(())
    }

    /// PostgreSQL `E'..'`: `''`, `\'` and the backslash escapes.
    fn escape_string(&mut self, start: usize) -> Result<(), LexError> {
        self.pos += 1; // the quote
        let mut value = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return err("unterminated E'..' constant");
            };
            let mark = self.pos;
            self.pos += c.len_utf8();
            match c {
                '\'' if self.peek(0) == Some('\'') => {
                    self.pos += 1;
                    value.push('\'');
                }
                '\'' => break,
                '\\' => {
                    let Some(e) = self.peek(0) else {
                        return err("unterminated E'..' constant");
                    };
                    self.pos += e.len_utf8();
                    let decoded = match e {
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        '0'..='7' => {
                            let mut n = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match self.peek(0).and_then(|d| d.to_digit(8)) {
                                    Some(d) => {
                                        n = n * 8 + d;
                                        self.pos += 1;
                                    }
                                    None => break,
                                }
                            }
                            ascii_escape(n)?
                        }
                        'x' if self.peek(0).is_some_and(|d| d.is_ascii_hexdigit()) => {
                            let mut n = 0;
                            for _ in 0..2 {
                                match self.peek(0).and_then(|d| d.to_digit(16)) {
                                    Some(d) => {
                                        n = n * 16 + d;
                                        self.pos += 1;
                                    }
                                    None => break,
                                }
                            }
                            ascii_escape(n)?
                        }
                        'u' | 'U' => {
                            let digits = if e == 'u' { 4 } else { 8 };
                            let hex = self.s.get(self.pos..self.pos + digits).unwrap_or("");
                            if hex.len() != digits || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return err("malformed \\u escape");
                            }
                            self.pos += digits;
                            match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                                Some(ch) if ch != '\0' => ch,
                                _ => return err("invalid \\u escape"),
                            }
                        }
                        other => other,
                    };
                    value.push(decoded);
                }
                other => value.push(other),
            }
            // Net progress over the whole step: an escape must not move the
            // position back to where the step began.
            ahead(mark, self.pos, self.b.len())?;
        }
        self.push(Kind::String, start, Cow::Owned(value));
        Ok(())
    }

    fn number(&mut self, start: usize) -> Result<(), LexError> {
        let b = self.b;
        let pg = self.dialect == Dialect::Postgres;
        // PostgreSQL reads `0x`, `0o` and `0b` integers, SQLite only `0x`.
        let radix = |c: u8| match c {
            b'x' | b'X' => Some(16),
            b'o' | b'O' if pg => Some(8),
            b'b' | b'B' if pg => Some(2),
            _ => None,
        };
        if b[self.pos] == b'0'
            && let Some(r) = b.get(self.pos + 1).copied().and_then(radix)
        {
            self.pos += 2;
            self.skip_while(|lx, c| {
                c.is_digit(r) || (c == '_' && lx.peek(1).is_some_and(|n| n.is_digit(r)))
            })?;
            // A prefix without digits (`0x`, `0x_`): an error on both.
            if self.pos == start + 2 {
                return err("integer prefix without digits");
            }
        } else {
            let digits = |lx: &mut Self| {
                lx.skip_while(|lx, c| {
                    c.is_ascii_digit()
                        || (c == '_' && lx.peek(1).is_some_and(|n| n.is_ascii_digit()))
                })
            };
            digits(self)?;
            // `1..2` is not a number followed by `.2`: leave `..` alone.
            if self.peek(0) == Some('.') && self.peek(1) != Some('.') {
                self.pos += 1;
                digits(self)?;
            }
            if matches!(self.peek(0), Some('e' | 'E')) {
                let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
                if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1 + sign;
                    digits(self)?;
                }
            }
        }
        if self.peek(0).is_some_and(is_word_part) {
            return err("trailing junk after a number");
        }
        self.push_raw(Kind::Number, start);
        Ok(())
    }

    fn dollar(&mut self, start: usize) -> Result<(), LexError> {
        let pg = self.dialect == Dialect::Postgres;
        self.pos += 1;
        if self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.skip_while(|_, c| c.is_ascii_digit())?;
            if self.peek(0).is_some_and(is_word_part) {
                return err("trailing junk after a parameter");
            }
            self.push_raw(Kind::Placeholder, start);
            return Ok(());
        }
        if !pg {
            // SQLite `$name` parameter.
            self.skip_while(|_, c| c.is_ascii_alphanumeric() || c == '_')?;
            self.push_raw(Kind::Placeholder, start);
            return Ok(());
        }
        // A dollar quote: `$tag$`, tag = word characters without `$`.
        if self.peek(0).is_some_and(is_word_start) {
            self.skip_while(|_, c| is_word_part(c) && c != '$')?;
        }
        if self.peek(0) != Some('$') {
            return err("`$` that is neither a parameter nor a dollar quote");
        }
        self.pos += 1;
        let delim = &self.s[start..self.pos];
        let Some(len) = self.s[self.pos..].find(delim) else {
            return err("unterminated dollar quote");
        };
        let s: &'a str = self.s;
        let value = &s[self.pos..self.pos + len];
        self.pos += len + delim.len();
        self.push(Kind::String, start, Cow::Borrowed(value));
        Ok(())
    }

    fn pg_operator(&mut self, start: usize) -> Result<(), LexError> {
        let c = self.peek(0).unwrap_or(' ');
        if matches!((c, self.peek(1)), (':', Some(':' | '=')) | ('.', Some('.'))) {
            self.pos += 2;
            self.push_raw(Kind::Op, start);
            return Ok(());
        }
        if matches!(c, '(' | ')' | '[' | ']' | ',' | ';' | ':' | '.') {
            self.pos += 1;
            self.push_raw(Kind::Op, start);
            return Ok(());
        }
        if !is_pg_op_char(c) {
            return err(format!("unexpected character {c:?}"));
        }
        let mut end = self.pos;
        while let Some(ch) = self.char_at(end) {
            if !is_pg_op_char(ch) {
                break;
            }
            let after = self.char_at(end + 1);
            if end > self.pos
                && ((ch == '-' && after == Some('-')) || (ch == '/' && after == Some('*')))
            {
                break;
            }
            let mark = end;
            end += 1;
            ahead(mark, end, self.b.len())?;
        }
        let mut op = &self.s[self.pos..end];
        if !op.chars().any(is_pg_op_special) {
            // Drop the trailing `+`/`-`, keeping at least one character (no
            // loop: a slip in it could only refuse, never spin).
            let kept = op.trim_end_matches(['+', '-']);
            op = if kept.is_empty() { &op[..1] } else { kept };
        }
        self.pos += op.len();
        self.push_raw(Kind::Op, start);
        Ok(())
    }

    fn sqlite_operator(&mut self, start: usize) -> Result<(), LexError> {
        const OPS: [&str; 25] = [
            "->>", "->", "==", "<=", "<>", "<<", ">=", ">>", "!=", "||", "-", "(", ")", ";", "+",
            "*", "/", "%", "=", "<", ">", "|", ",", "&", "~",
        ];
        let rest = &self.s[self.pos..];
        let Some(op) = OPS.iter().chain(&["."]).find(|op| rest.starts_with(**op)) else {
            return err(format!("unexpected character {:?}", rest.chars().next()));
        };
        self.pos += op.len();
        self.push_raw(Kind::Op, start);
        Ok(())
    }
}

/// An octal or hex escape in `E'..'`: only ASCII other than NUL (higher values
/// are single bytes that need not be valid UTF-8).
fn ascii_escape(n: u32) -> Result<char, LexError> {
    match char::from_u32(n) {
        Some(c) if c.is_ascii() && c != '\0' => Ok(c),
        _ => err("octal or hex escape outside ASCII"),
    }
}

/// Whether the token is significant (neither whitespace nor a comment).
pub(crate) fn significant(t: &Tok<'_>) -> bool {
    !matches!(t.kind, Kind::Whitespace | Kind::Comment)
}

#[cfg(test)]
#[path = "lex_tests.rs"]
mod tests;
