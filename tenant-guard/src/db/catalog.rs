//! What a pool reads from the database before its first transaction: the
//! columns of every registered table (so the guard can tell a column from a
//! function called by attribute notation), and, on SQLite, whether a tenant
//! table declares `ON CONFLICT REPLACE` (which would let an insert of tenant
//! A delete tenant B's conflicting row, beyond the guard's reach).

use crate::Error;
use crate::guard::QueryGuard;

/// The guard rebuilt with `columns` for each of its tables.
fn with_columns(
    guard: &QueryGuard,
    columns: Vec<(String, Vec<String>)>,
) -> Result<QueryGuard, Error> {
    let mut registry = guard.registry().clone();
    for (table, cols) in columns {
        if cols.is_empty() {
            return Err(Error::Config(
                "a registered table was not found in the database catalog",
            ));
        }
        registry.set_columns(&table, cols)?;
    }
    Ok(QueryGuard::new(registry, guard.dialect()))
}

/// PostgreSQL: columns from `pg_attribute` (live, not dropped), in order; and
/// `standard_conforming_strings` must be on, the lexical rules the guard parses
/// the application's literals with (`'a\'` is one string ending in a
/// backslash only then).
#[cfg(feature = "postgres")]
pub(crate) async fn prepare_pg(
    pool: &sqlx::PgPool,
    guard: &QueryGuard,
) -> Result<QueryGuard, Error> {
    let scs: String = sqlx::query_scalar("select current_setting('standard_conforming_strings')")
        .fetch_one(pool)
        .await?;
    if scs != "on" {
        return Err(Error::Config(
            "standard_conforming_strings must be on (the guard reads literals with that rule)",
        ));
    }
    let mut columns = Vec::new();
    for table in guard.registry().tables() {
        let cols: Vec<String> = sqlx::query_scalar(
            "select a.attname::text from pg_attribute a \
             where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped \
             order by a.attnum",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
        columns.push((table.to_owned(), cols));
    }
    with_columns(guard, columns)
}

/// SQLite: columns from `pragma_table_info`; refuses a tenant table whose
/// schema (column or table constraint) says `ON CONFLICT REPLACE`.
#[cfg(feature = "sqlite")]
pub(crate) async fn prepare_sqlite(
    pool: &sqlx::SqlitePool,
    guard: &QueryGuard,
) -> Result<QueryGuard, Error> {
    let mut columns = Vec::new();
    for table in guard.registry().tables() {
        let (schema, name) = table.split_once('.').unwrap_or(("main", table));
        let cols: Vec<String> =
            sqlx::query_scalar("select name from pragma_table_info(?1, ?2) order by cid")
                .bind(name)
                .bind(schema)
                .fetch_all(pool)
                .await?;
        if guard.registry().tenant_column(table).is_some() {
            // Registry names are identifiers (`[A-Za-z_][A-Za-z0-9_]*`), so the
            // schema can be quoted into the text.
            let ddl: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select sql from \"{schema}\".sqlite_master where type = 'table' and name = ?1 collate nocase"
            )))
            .bind(name)
            .fetch_all(pool)
            .await?;
            if ddl
                .iter()
                .flatten()
                .any(|sql| declares_conflict_replace(sql))
            {
                return Err(Error::Config(
                    "a SQLite tenant table declares ON CONFLICT REPLACE: an insert could replace another tenant's row",
                ));
            }
        }
        columns.push((table.to_owned(), cols));
    }
    with_columns(guard, columns)
}

/// Whether `CREATE TABLE` text declares `ON CONFLICT REPLACE` anywhere:
/// comments removed, case and whitespace ignored. A string literal that
/// happens to contain the words also counts (fail closed).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
fn declares_conflict_replace(sql: &str) -> bool {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            c if c.is_alphanumeric() || c == '_' => {
                word.push(c.to_ascii_uppercase());
                continue;
            }
            _ => {}
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .windows(2)
        .any(|w| matches!(w, [a, b] if a == "CONFLICT" && b == "REPLACE"))
}

#[cfg(test)]
mod tests {
    use super::declares_conflict_replace as replace;

    #[test]
    fn conflict_replace_is_found_in_any_spelling() {
        for sql in [
            "create table t (id text primary key on conflict replace)",
            "CREATE TABLE t (a, b, UNIQUE (a, b) ON CONFLICT REPLACE)",
            "create table t (id text unique on/* x */conflict\n\treplace)",
            "create table t (id text unique on -- c\n conflict -- d\n replace)",
        ] {
            assert!(replace(sql), "{sql}");
        }
        for sql in [
            "create table t (id text primary key on conflict abort)",
            "create table t (conflict text, replace text)",
            "create table t (id text) -- on conflict replace",
        ] {
            assert!(!replace(sql), "{sql}");
        }
    }
}
