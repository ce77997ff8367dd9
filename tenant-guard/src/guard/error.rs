//! The guard's refusal reasons.

/// Why the query guard refused a statement (or a registry specification).
///
/// Every refusal names its reason so that a developer can see which rule fired;
/// the guard never passes a statement it cannot prove tenant-scoped. These
/// messages may quote parts of the statement (table or function names, the
/// parser's message): they are meant for the application's developers and logs,
/// not for remote callers, who should get a generic error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The statement text is empty (or only whitespace and comments).
    /// Remedy: send a statement.
    #[error("empty statement")]
    Empty,
    /// The statement text is longer than [`MAX_SQL_LEN`](super::MAX_SQL_LEN) bytes
    /// or has more than [`MAX_TOKENS`](super::MAX_TOKENS) tokens, or nests deeper than
    /// [`MAX_DEPTH`](super::MAX_DEPTH). These limits bound the parser's work and stack
    /// use on hostile input. Remedy: split the statement.
    #[error("statement too large or too deeply nested")]
    TooComplex,
    /// `sqlparser` could not tokenize or parse the statement in the guard's dialect.
    /// Remedy: fix the SQL; the message is the parser's.
    #[error("SQL parse error: {0}")]
    Parse(String),
    /// The text holds more than one statement (`;`-separated). Each statement must
    /// be guarded on its own so that none escapes the tenant scope.
    #[error("multiple statements in one string")]
    MultipleStatements,
    /// DDL (`CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `GRANT`, `COMMENT`, `SELECT INTO`,
    /// ...): never allowed on a tenant connection; run migrations on the owner role.
    #[error("DDL statement refused")]
    Ddl,
    /// `SET`, `RESET`, `SET ROLE`, `SHOW`, `DISCARD`, `USE`, `PRAGMA` and the like:
    /// they change (or read) session state that would outlive the statement or
    /// touch the tenant setting.
    #[error("session control statement (SET, RESET, SET ROLE, SHOW, ...) refused")]
    SetOrSessionControl,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, ...: the tenant transaction is
    /// managed by the pool wrapper, never by guarded SQL.
    #[error("transaction control statement refused")]
    TransactionControl,
    /// `COPY` (and other bulk import/export statements): not scoped by the guard.
    #[error("COPY statement refused")]
    Copy,
    /// The statement reads or writes a table that is not registered (views,
    /// system catalogs, other schemas and table functions included). Register it
    /// as a tenant table or as a shared table.
    #[error("unknown table `{0}` (register it as a tenant or shared table)")]
    UnknownTable(String),
    /// The statement writes (`INSERT`, `UPDATE`, `DELETE`) a shared table: shared
    /// tables are read-only through the guard.
    #[error("shared table `{0}` cannot be written through the guard")]
    SharedTableWrite(String),
    /// `UPDATE` (or `ON CONFLICT DO UPDATE`) assigns the tenant column: a row
    /// would move to another tenant.
    #[error("UPDATE of the tenant column refused")]
    TenantColumnUpdate,
    /// `INSERT` names the tenant column itself: only the guard supplies its value
    /// (the bound tenant), so any value written by the statement (a literal, a
    /// placeholder, an expression) is refused. Remedy: leave the column out.
    #[error("INSERT supplies its own value for the tenant column (the guard sets it)")]
    LiteralTenantValue,
    /// `UPDATE` (or `ON CONFLICT DO UPDATE`) assigns the client column of a
    /// client-scoped table: a row would move to another client.
    #[error("UPDATE of the client column refused")]
    ClientColumnUpdate,
    /// `INSERT` into a client-scoped table names the client column: the guard
    /// writes the session's active client (one of its grants), so a statement
    /// never chooses the client of a new row (an `INSERT .. SELECT` could
    /// otherwise copy another client's id in). Remedy: leave the column out
    /// and choose the client with
    /// [`TenantContext::with_active_client`](crate::TenantContext::with_active_client).
    #[error("INSERT supplies its own value for the client column (the guard sets it)")]
    ClientColumnInsert,
    /// An `INSERT` into a client-scoped table in a session without one active
    /// client: it holds several client grants and chose none, or holds none,
    /// or chose a client it holds no grant for (and no organisation-wide
    /// role). Remedy: [`TenantContext::with_active_client`](crate::TenantContext::with_active_client)
    /// with a granted client.
    #[error("no active client for an INSERT into a client-scoped table")]
    NoActiveClient,
    /// The statement reads (or writes) a role-gated table, and the session
    /// holds none of the roles the gate lists for that access. The text names
    /// the table.
    #[error("table `{0}` requires a role the session does not hold")]
    RoleRequired(String),
    /// `INSERT` without a column list (or `DEFAULT VALUES`): the guard cannot tell
    /// where the tenant column goes. Remedy: list the columns.
    #[error("INSERT without a column list refused")]
    InsertWithoutColumns,
    /// `INSERT OR REPLACE`, `REPLACE INTO`, `UPDATE OR REPLACE`: on a unique
    /// conflict these delete the conflicting row, which may belong to another
    /// tenant. Use `ON CONFLICT .. DO UPDATE` (scoped by the guard) instead.
    #[error("REPLACE conflict resolution refused (it can delete another tenant's row)")]
    ReplaceConflict,
    /// The statement calls a function on the deny list (reads or changes session
    /// settings, runs SQL text, reads files or other sessions, ...). The list is
    /// documented in the [module docs](super).
    #[error("function `{0}` refused")]
    ForbiddenFunction(String),
    /// A common table expression has the name of a registered table: references
    /// to that name would be ambiguous. Rename the CTE.
    #[error("CTE `{0}` shadows a registered table")]
    ShadowedTable(String),
    /// A placeholder the guard cannot number safely: named parameters (`:x`,
    /// `@x`, `$x`), `?` on PostgreSQL, `$n` on SQLite, bare `?` mixed with `?NNN`,
    /// or an index out of range. Remedy: use `$1..$n` (PostgreSQL) or `?`/`?NNN`
    /// (SQLite) only.
    #[error("unsupported placeholder `{0}`")]
    UnsupportedPlaceholder(String),
    /// A construct the guard does not understand well enough to prove tenant
    /// scoping (fail closed). The text names the construct.
    #[error("unsupported construct: {0}")]
    Unsupported(String),
    /// A qualified name `x.f` where `f` is not a known column of the FROM item
    /// `x` (or `x` is not a FROM item in scope), or a field access on an
    /// expression (`(expr).f`). On PostgreSQL these call the function `f(x)`
    /// when `f` is not a column, so the guard only accepts columns it knows.
    /// Remedy: register the table's columns
    /// ([`TableRegistry::set_columns`](super::TableRegistry::set_columns)),
    /// alias computed columns of subqueries, or write the name unqualified.
    #[error("`{0}` is not a known column")]
    UnknownColumn(String),
    /// The statement uses a lexical form the guard cannot prove it reads the
    /// way the database does, or its emitted text would not read back as the
    /// checked tree (fail closed): for example `B'..'`, `X'..'` (PostgreSQL),
    /// `N'..'`, `U&'..'`, adjacent string constants, an operator that runs
    /// into a comment (`#--`), a quoted identifier containing a quote or
    /// backslash, a NUL character, text that `sqlparser` tokenizes
    /// differently from the database. Remedy: write the value as a plain
    /// `'..'` string (or bind it as a parameter) and use plain identifiers.
    #[error("lexically ambiguous SQL refused: {0}")]
    Lexical(String),
    /// A table-registry specification (`table:column,...`) is malformed.
    #[error("invalid table registry: {0}")]
    InvalidRegistry(String),
}
