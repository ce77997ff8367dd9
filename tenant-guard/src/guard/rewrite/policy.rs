//! Policy: the function deny list and the refusal for statement kinds the
//! guard does not scope.

use super::*;

/// Function names (lowercase, any schema) the guard refuses outright.
const DENIED_FUNCTIONS: &[&str] = &[
    // Session settings: the tenant GUC lives here.
    "set_config",
    "current_setting",
    // Run SQL text the guard never sees.
    "ts_stat",
    "ts_rewrite",
    // Sequences: setval changes shared state.
    "setval",
    // Seeds `random()` for the rest of the session: the connection's next
    // borrower (another tenant) would draw predictable values.
    "setseed",
    // Follow a row's update chain by relation name and tuple id without row
    // level security: they report which of another tenant's rows changed.
    "currtid",
    "currtid2",
    // Other sessions' transactions (every tenant's): the ids of those in
    // progress and whether each later committed or aborted (the `pg_*`
    // forms, `pg_current_snapshot` and `pg_xact_status`, are denied above).
    "txid_current_snapshot",
    "txid_status",
    // Large-object descriptors (opened by the denied `lo_*` family).
    "loread",
    "lowrite",
    // SQLite connection state left by the connection's previous borrower
    // (usually another tenant): its last rowid and row counts. Use
    // `RETURNING` and the driver's rows-affected count instead.
    "last_insert_rowid",
    "changes",
    "total_changes",
    // SQLite: extensions and files.
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Function name prefixes (lowercase) the guard refuses outright.
const DENIED_PREFIXES: &[&str] = &[
    // Server files, other sessions, signals, advisory locks, sleeps, NOTIFY.
    "pg_",
    // Connections to other databases.
    "dblink",
    // Large objects are not tenant-scoped.
    "lo_",
    // They run the SQL text (or read a whole table/schema) given as argument.
    "query_to_xml",
    "table_to_xml",
    "cursor_to_xml",
    "schema_to_xml",
    "database_to_xml",
];

/// Whether a function name (any case, any schema) is on the deny list.
pub(crate) fn is_denied_function(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&name.as_str()) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The refusal for a statement kind the guard does not scope.
pub(super) fn classify(statement: &Statement) -> GuardError {
    let debug = format!("{statement:?}");
    let kind = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    match kind {
        "Set" | "Reset" | "ShowVariable" | "ShowVariables" | "ShowStatus" | "Use" | "Discard"
        | "AlterSession" | "Pragma" => GuardError::SetOrSessionControl,
        "StartTransaction" | "Commit" | "Rollback" | "Savepoint" | "ReleaseSavepoint" => {
            GuardError::TransactionControl
        }
        "Copy" | "CopyIntoSnowflake" | "Unload" | "LoadData" | "ExportData" => GuardError::Copy,
        k if [
            "Create", "Alter", "Drop", "Truncate", "Comment", "Rename", "Grant", "Revoke", "Deny",
            "Attach", "Detach",
        ]
        .iter()
        .any(|p| k.starts_with(p)) =>
        {
            GuardError::Ddl
        }
        k => GuardError::Unsupported(format!("{k} statement")),
    }
}

/// Whether a binary operator is on the allow-list: the standard comparison,
/// arithmetic, logic and concatenation operators and PostgreSQL's built-in
/// pattern, bit, array and JSON operators. A custom operator
/// (`OPERATOR(schema.op)`, or any operator the parser does not know, such as
/// `#--`, which PostgreSQL reads as `#` and a comment) is refused: the guard
/// cannot tell what it does or how the database splits it.
pub(super) fn allowed_binary(op: &BinaryOperator) -> bool {
    use BinaryOperator as B;
    matches!(
        op,
        B::Plus
            | B::Minus
            | B::Multiply
            | B::Divide
            | B::Modulo
            | B::StringConcat
            | B::Gt
            | B::Lt
            | B::GtEq
            | B::LtEq
            | B::Eq
            | B::NotEq
            | B::And
            | B::Or
            | B::BitwiseOr
            | B::BitwiseAnd
            | B::PGBitwiseXor
            | B::PGBitwiseShiftLeft
            | B::PGBitwiseShiftRight
            | B::PGExp
            | B::PGOverlap
            | B::PGRegexMatch
            | B::PGRegexIMatch
            | B::PGRegexNotMatch
            | B::PGRegexNotIMatch
            | B::PGLikeMatch
            | B::PGILikeMatch
            | B::PGNotLikeMatch
            | B::PGNotILikeMatch
            | B::PGStartsWith
            | B::Arrow
            | B::LongArrow
            | B::HashArrow
            | B::HashLongArrow
            | B::AtAt
            | B::AtArrow
            | B::ArrowAt
            | B::HashMinus
            | B::AtQuestion
            | B::Question
            | B::QuestionAnd
            | B::QuestionPipe
            | B::Glob
            | B::Match
            | B::Regexp
    )
}

/// Whether a unary operator is on the allow-list (sign, `NOT`, bitwise not,
/// PostgreSQL's `@`, `|/`, `||/`).
pub(super) fn allowed_unary(op: &UnaryOperator) -> bool {
    use UnaryOperator as U;
    matches!(
        op,
        U::Plus | U::Minus | U::Not | U::BitwiseNot | U::PGAbs | U::PGSquareRoot | U::PGCubeRoot
    )
}
