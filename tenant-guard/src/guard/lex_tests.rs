//! Unit tests of the lexers: each pins what PostgreSQL's `scan.l` or
//! SQLite's `tokenize.c` does with the input.

use super::*;

fn kinds(sql: &str, d: Dialect) -> Vec<(Kind, String)> {
    tokens(sql, d)
        .unwrap()
        .into_iter()
        .filter(significant)
        .map(|t| (t.kind, t.value.into_owned()))
        .collect()
}

/// Backticks and brackets quote identifiers on SQLite only; on
/// PostgreSQL the backtick is an operator character (`scan.l`'s
/// `op_chars`) and brackets are subscripts.
#[test]
fn backticks_and_brackets_quote_identifiers_on_sqlite_only() {
    let op = |s: &str| (Kind::Op, s.to_owned());
    let word = |s: &str| (Kind::Word, s.to_owned());
    assert_eq!(
        kinds("`a` [b]", Dialect::Sqlite),
        [
            (Kind::QuotedIdent, "a".to_owned()),
            (Kind::QuotedIdent, "b".to_owned())
        ]
    );
    assert_eq!(
        kinds("`a` [b]", Dialect::Postgres),
        [op("`"), word("a"), op("`"), op("["), word("b"), op("]")]
    );
}

/// Fail closed: a scan step that does not move forward, or moves past the
/// end (only a lexer bug makes one), is refused instead of looping forever. No input reaches it
/// through `tokens`, so the check is pinned directly, and through a lexer
/// put where no correct scan leaves it: inside a character, where no token
/// can start and the reader would otherwise spin in place.
#[test]
fn a_scan_step_that_does_not_move_forward_is_refused() {
    assert_eq!(ahead(3, 4, 4), Ok(()));
    assert!(ahead(3, 3, 4).is_err());
    assert!(ahead(3, 2, 4).is_err());
    assert!(ahead(3, 5, 4).is_err());
    let sql = "é";
    let mut lx = Lexer {
        s: sql,
        b: sql.as_bytes(),
        pos: 1,
        dialect: Dialect::Postgres,
        out: Vec::new(),
    };
    assert!(lx.run().is_err());
    assert!(lx.out.is_empty());
}

#[test]
fn postgres_strings_follow_standard_conforming_strings() {
    let t = kinds(r"SELECT 'x\'') OR 1 --'", Dialect::Postgres);
    assert_eq!(t[1], (Kind::String, r"x\') OR 1 --".to_owned()));
    assert_eq!(t.len(), 2);
    assert_eq!(
        kinds(r"SELECT E'a\'b\\c\x41\101\u00e9'''", Dialect::Postgres)[1],
        (Kind::String, "a'b\\cAAé'".to_owned())
    );
    assert_eq!(
        kinds("SELECT $q$ it's $$ $q$, $$x$$", Dialect::Postgres)[1],
        (Kind::String, " it's $$ ".to_owned())
    );
    for bad in [
        "SELECT 'a'\n'b'",
        "SELECT B'101'",
        "SELECT X'1f'",
        "SELECT N'x'",
        "SELECT U&'x'",
        "SELECT U&\"x\"",
        "SELECT E'\\000'",
        "SELECT 'a\0'",
        "SELECT $x",
        "SELECT 1abc",
        "SELECT /* /* */",
    ] {
        assert!(lex(bad, Dialect::Postgres).is_err(), "{bad:?}");
    }
}

fn num(s: &str) -> (Kind, String) {
    (Kind::Number, s.to_owned())
}

fn op(s: &str) -> (Kind, String) {
    (Kind::Op, s.to_owned())
}

fn word(s: &str) -> (Kind, String) {
    (Kind::Word, s.to_owned())
}

/// Quoted identifiers decode `""`; an empty one is an error on both
/// (an empty string is not). PostgreSQL truncates identifiers to 63
/// bytes, so a longer one, quoted or not, is refused there; SQLite keeps
/// them whole. Nested comments nest on PostgreSQL only.
#[test]
fn identifiers_and_comments_as_the_databases_read_them() {
    let ident = |s: &str| (Kind::QuotedIdent, s.to_owned());
    for d in [Dialect::Postgres, Dialect::Sqlite] {
        assert_eq!(
            kinds(r#""a""b" ''"#, d),
            [ident("a\"b"), (Kind::String, String::new())]
        );
        assert!(lex(r#"SELECT """#, d).is_err(), "{d:?}");
        // A non-ASCII character is a word character, however many bytes.
        assert_eq!(kinds("€=1", d), [word("€"), op("="), num("1")], "{d:?}");
    }
    let (n63, n64) = ("n".repeat(63), "n".repeat(64));
    for ok in [n63.clone(), format!("\"{n63}\"")] {
        assert_eq!(kinds(&ok, Dialect::Postgres).len(), 1, "{ok:?}");
    }
    for long in [n64.clone(), format!("\"{n64}\"")] {
        assert!(lex(&long, Dialect::Postgres).is_err(), "{long:?}");
        assert_eq!(kinds(&long, Dialect::Sqlite).len(), 1, "{long:?}");
    }
    let (x, y) = (word("x"), word("y"));
    assert_eq!(
        kinds("x /* a /* b */ c */ y", Dialect::Postgres),
        [x.clone(), y.clone()]
    );
    assert_eq!(
        kinds("x /* a /* b */ y", Dialect::Sqlite),
        [x.clone(), y.clone()]
    );
    // A line comment ends at `\r` too on PostgreSQL (scan.l's `newline`),
    // only at `\n` on SQLite (tokenize.c): there `y` is still comment.
    assert_eq!(
        kinds("x -- a\ry\nz", Dialect::Postgres),
        [x.clone(), y.clone(), word("z")]
    );
    assert_eq!(
        kinds("x -- a\ry\nz", Dialect::Sqlite),
        [x.clone(), word("z")]
    );
}

/// Only `U&` straight before a quote is PostgreSQL's Unicode-escape
/// form (refused); `u&x` and a quote two characters after any other
/// character are ordinary tokens, and SQLite has no such form.
#[test]
fn only_u_ampersand_before_a_quote_is_a_unicode_escape() {
    let string = |s: &str| (Kind::String, s.to_owned());
    for d in [Dialect::Postgres, Dialect::Sqlite] {
        assert_eq!(kinds("u&x", d), [word("u"), op("&"), word("x")], "{d:?}");
        assert_eq!(
            kinds("x&'1'", d),
            [word("x"), op("&"), string("1")],
            "{d:?}"
        );
        assert_eq!(
            kinds("a,'x'", d),
            [word("a"), op(","), string("x")],
            "{d:?}"
        );
    }
    assert_eq!(
        kinds("U&'x'", Dialect::Sqlite),
        [word("U"), op("&"), string("x")]
    );
}

/// PostgreSQL 16's `scan.l` numbers: `0x`/`0o`/`0b` integers, `_`
/// between digits, `1.`, `.5`, exponents; `1..2` is `1`, `..`, `2`
/// (`numericfail`); a prefix without digits (`hexfail`) and a word
/// character straight after a number (`integer_junk`) are errors. SQLite
/// (`tokenize.c`) has only the `0x` prefix.
#[test]
fn numbers_end_where_the_database_ends_them() {
    let pg = |sql: &str| kinds(sql, Dialect::Postgres);
    for n in [
        "0", "0x1F", "0X_1f", "0o17", "0b1_0", "1_000", "1_0.0_1", "1.5", "1.", ".5", "1e5",
        "1E+5", "1.5e-3",
    ] {
        assert_eq!(pg(n), [num(n)], "{n:?}");
    }
    assert_eq!(pg("1+2"), [num("1"), op("+"), num("2")]);
    assert_eq!(pg("1..2"), [num("1"), op(".."), num("2")]);
    for bad in [
        "SELECT 0x",
        "0x_",
        "0x1F_",
        "0b2",
        "1_",
        "1__0",
        "1e",
        "1e+",
        "1.5x",
        "1abc",
    ] {
        assert!(lex(bad, Dialect::Postgres).is_err(), "{bad:?}");
    }
    assert_eq!(kinds("0x1F", Dialect::Sqlite), [num("0x1F")]);
    for bad in ["0o17", "0b1", "0x"] {
        assert!(lex(bad, Dialect::Sqlite).is_err(), "{bad:?}");
    }
}

/// PostgreSQL's `E'..'` escapes (`scan.l`'s `xeescape`, `xeoctesc`,
/// `xehexesc`, `xeunicode`): a letter that names no escape stands for
/// itself (`\q`, and `\x` without a hex digit), octal takes one to
/// three digits; NUL, bytes above ASCII and malformed `\u` are refused.
#[test]
fn escape_strings_decode_as_postgres_does() {
    assert_eq!(
        kinds(
            r"E'\b\f\n\r\t\q\xg\7\1010\U000000e9\x4a'",
            Dialect::Postgres
        ),
        [(Kind::String, "\u{8}\u{c}\n\r\tqxg\u{7}A0\u{e9}J".to_owned())]
    );
    for bad in [
        r"E'\u+0e9'",
        r"E'\u0000'",
        r"E'\u00e'",
        r"E'\UFFFFFFFF'",
        r"E'\xff'",
        r"E'\400'",
        r"E'abc",
        r"E'\",
    ] {
        assert!(lex(bad, Dialect::Postgres).is_err(), "{bad:?}");
    }
}

/// `$n` on both; dollar quotes on PostgreSQL (the tag is a word without
/// `$`, the body ends at the same tag); `$name`, `?n`, `:x`, `@x` on
/// SQLite.
#[test]
fn parameters_and_dollar_quotes_end_where_the_database_ends_them() {
    let ph = |s: &str| (Kind::Placeholder, s.to_owned());
    let string = |s: &str| (Kind::String, s.to_owned());
    assert_eq!(
        kinds("$1+$12", Dialect::Postgres),
        [ph("$1"), op("+"), ph("$12")]
    );
    assert_eq!(
        kinds("$q$ it's $$ $q$, $$x$$, $_t1$a$_t1$", Dialect::Postgres),
        [
            string(" it's $$ "),
            op(","),
            string("x"),
            op(","),
            string("a")
        ]
    );
    for bad in ["$1a", "$", "$q$x", "$q x$"] {
        assert!(lex(bad, Dialect::Postgres).is_err(), "{bad:?}");
    }
    assert_eq!(
        kinds("$a_b1 $1 ?2 :x @y ?", Dialect::Sqlite),
        [ph("$a_b1"), ph("$1"), ph("?2"), ph(":x"), ph("@y"), ph("?")]
    );
}

/// PostgreSQL reads the longest run of operator characters; a trailing
/// `+`/`-` is dropped (one at a time, keeping at least one character)
/// unless the run holds one of ``~!@#%^&|`?``, so `a*-1` is `*`, `-`
/// but `a ~=-1` is one operator `~=-`. SQLite has a fixed set.
#[test]
fn operators_are_the_databases_operators() {
    let pg = |sql: &str| kinds(sql, Dialect::Postgres);
    let (a, b, one) = (word("a"), word("b"), num("1"));
    for o in ["<=", "<>", "||", "!~~*", "|/", "::", ":=", "@>"] {
        assert_eq!(
            pg(&format!("a{o}b")),
            [a.clone(), op(o), b.clone()],
            "{o:?}"
        );
    }
    assert_eq!(pg("a*-1"), [a.clone(), op("*"), op("-"), one.clone()]);
    assert_eq!(
        pg("a+-+1"),
        [a.clone(), op("+"), op("-"), op("+"), one.clone()]
    );
    assert_eq!(pg("a ~=-1"), [a.clone(), op("~=-"), one.clone()]);
    assert_eq!(pg("a +/* c */ b"), [a.clone(), op("+"), b.clone()]);
    let lite = |sql: &str| kinds(sql, Dialect::Sqlite);
    assert_eq!(
        lite("a->>b->a==b!=a<>b||a.b<<1"),
        [
            a.clone(),
            op("->>"),
            b.clone(),
            op("->"),
            a.clone(),
            op("=="),
            b.clone(),
            op("!="),
            a.clone(),
            op("<>"),
            b.clone(),
            op("||"),
            a.clone(),
            op("."),
            b.clone(),
            op("<<"),
            one
        ]
    );
}

#[test]
fn postgres_operators_stop_before_comment_starters() {
    let t = kinds("a #-- b\n+ c", Dialect::Postgres);
    assert_eq!(t[1], (Kind::Op, "#".to_owned()));
    assert_eq!(t[2], (Kind::Op, "+".to_owned()));
    assert_eq!(t.len(), 4);
    let t = kinds("a #/* x */ b", Dialect::Postgres);
    assert_eq!(t[1], (Kind::Op, "#".to_owned()));
    assert_eq!(t.len(), 3);
    // Trailing `+`/`-` dropped unless the run has a special character.
    assert_eq!(kinds("a=-1", Dialect::Postgres)[1].1, "=");
    assert_eq!(kinds("a @- 1", Dialect::Postgres)[1].1, "@-");
    // Nested comments.
    assert_eq!(kinds("/* /* */ x */ y", Dialect::Postgres).len(), 1);
}

#[test]
fn sqlite_rules() {
    let t = kinds(r"SELECT 'x\''', `a``b`, [c] d", Dialect::Sqlite);
    assert_eq!(t[1], (Kind::String, r"x\'".to_owned()));
    assert_eq!(t[3], (Kind::QuotedIdent, "a`b".to_owned()));
    assert_eq!(t[5], (Kind::QuotedIdent, "c".to_owned()));
    assert_eq!(t[6], (Kind::Word, "d".to_owned()));
    // Not nested; unterminated at the end is a comment.
    assert_eq!(kinds("/* /* */ x", Dialect::Sqlite).len(), 1);
    assert_eq!(kinds("x /* y", Dialect::Sqlite).len(), 1);
    assert_eq!(kinds("SELECT X'0aFF'", Dialect::Sqlite)[1].0, Kind::Blob);
    assert!(lex("SELECT X'0'", Dialect::Sqlite).is_err());
    assert!(lex("SELECT #", Dialect::Sqlite).is_err());
}
