//! The few pieces that let a handler's SQL be written once for both
//! databases: bound values ([`Arg`]), rows ([`Row`]) and the placeholder
//! spelling (`?` in the source, `$n` on PostgreSQL).
//!
//! The SQL itself is written in the subset both dialects read the same way
//! (no `::` casts, no `RETURNING`, no `ON CONFLICT` clauses that differ);
//! column types are chosen so that the same Rust types decode on both:
//! ids are `TEXT`, times and counts `BIGINT`/`INTEGER` (`i64`), bytes
//! `BYTEA`/`BLOB`. The one exception is the tenant column of the tenant tables
//! on PostgreSQL, a `uuid`, because row-level security compares it with the
//! `uuid` its context function returns; handlers never name it (the query
//! guard binds it), and platform code binds it with [`Arg::Uuid`].

use std::borrow::Cow;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arg {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A nullable 64-bit integer.
    OptInt(Option<i64>),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A UUID: `uuid` on PostgreSQL, its hyphenated text on SQLite (how the
    /// SQLite schema stores tenant ids).
    Uuid(Uuid),
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}
impl From<Uuid> for Arg {
    fn from(v: Uuid) -> Self {
        Self::Uuid(v)
    }
}

/// Bind `arg` to a SQLite query.
pub(crate) fn bind_sqlite<'q>(
    q: Query<'q, Sqlite, SqliteArguments>,
    arg: Arg,
) -> Query<'q, Sqlite, SqliteArguments> {
    match arg {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Bytes(v) => q.bind(v),
        Arg::Uuid(v) => q.bind(v.hyphenated().to_string()),
    }
}

/// Bind `arg` to a PostgreSQL query.
pub(crate) fn bind_pg<'q>(
    q: Query<'q, Postgres, PgArguments>,
    arg: Arg,
) -> Query<'q, Postgres, PgArguments> {
    match arg {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Bytes(v) => q.bind(v),
        Arg::Uuid(v) => q.bind(v),
    }
}

/// A type both databases decode (`String`, `i64`, `Option<_>`, `Vec<u8>`, `bool`...).
pub trait Value:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}

impl<T> Value for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// A result row of either database.
#[derive(Debug)]
pub enum Row {
    /// From SQLite.
    Sqlite(SqliteRow),
    /// From PostgreSQL.
    Pg(PgRow),
}

impl Row {
    /// Column `col` decoded as `T`.
    pub fn try_get<T: Value>(&self, col: &str) -> Result<T, sqlx::Error> {
        use sqlx::Row as _;
        match self {
            Self::Sqlite(r) => r.try_get(col),
            Self::Pg(r) => r.try_get(col),
        }
    }

    /// Column number `i` decoded as `T`.
    pub fn try_get_at<T: Value>(&self, i: usize) -> Result<T, sqlx::Error> {
        use sqlx::Row as _;
        match self {
            Self::Sqlite(r) => r.try_get(i),
            Self::Pg(r) => r.try_get(i),
        }
    }
}

/// `sql` with its `?` placeholders numbered `$1..$n`, as PostgreSQL spells
/// them. Text inside string literals, quoted identifiers and comments is
/// copied unchanged. The statements are the application's own (constants and
/// `format!` of constant table and column names), never request data.
pub fn pg_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0_usize;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A statement and its values, run on a platform pool or transaction
/// ([`crate::db::Platform`]).
#[derive(Debug, Clone)]
pub struct Stmt {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
}

impl Stmt {
    /// A statement (`?` placeholders).
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Bind the next value.
    #[must_use]
    pub fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    pub(crate) fn sqlite(self) -> Query<'static, Sqlite, SqliteArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.into_owned()));
        for a in self.args {
            q = bind_sqlite(q, a);
        }
        q
    }

    pub(crate) fn pg(self) -> Query<'static, Postgres, PgArguments> {
        let sql = pg_placeholders(&self.sql).into_owned();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in self.args {
            q = bind_pg(q, a);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_literals_and_comments() {
        assert_eq!(
            pg_placeholders("SELECT a FROM t WHERE b = ? AND c = ? LIMIT ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 LIMIT $3"
        );
        assert_eq!(
            pg_placeholders("SELECT '?', \"a?\" FROM t WHERE x = ? -- why?\nAND y = ?"),
            "SELECT '?', \"a?\" FROM t WHERE x = $1 -- why?\nAND y = $2"
        );
        assert_eq!(
            pg_placeholders("SELECT 'it''s?' , ?"),
            "SELECT 'it''s?' , $1"
        );
        assert!(matches!(pg_placeholders("SELECT 1"), Cow::Borrowed(_)));
    }
}
