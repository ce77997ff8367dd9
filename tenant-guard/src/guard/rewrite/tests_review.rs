//! Attack classes found by the outside-attacker review of session 5
//! (issue 10): names written as string constants, and the order in which
//! the database evaluates an `ON CONFLICT .. DO UPDATE .. WHERE` on another
//! tenant's row. The same inputs run on real SQLite and PostgreSQL in
//! `tests/tenant_guard/attack_review.rs`.

use super::tests::{lite, pg};
use super::*;

fn is_lexical(r: &Result<String, GuardError>) -> bool {
    matches!(r, Err(GuardError::Lexical(_)))
}

/// Root cause: `sqlparser` takes a string constant where it expects a name
/// (`parse_identifier` accepts `'..'` in every dialect), and SQLite reads it
/// the same way, as the name spelled by the string's value. The guard swaps
/// every string constant for a sentinel before parsing, so it compared the
/// sentinel: `UPDATE assets SET 'tenant_id' = ?` was an assignment to some
/// other column, and the emitted text, the sentinel rendered back as
/// `'tenant_id'`, moved tenant A's rows to any tenant on SQLite (the guard is
/// the only layer there). `INSERT INTO assets ('tenant_id', ..)` inserted
/// into another tenant (SQLite keeps the first of two values for a column),
/// `WITH 'assets' AS (..)` shadowed the table the guard scoped. Every name
/// the guard decides on now refuses string quoting; PostgreSQL reads none
/// of these forms (a syntax error), so nothing valid there is lost.
#[test]
fn string_constants_in_name_positions_are_refused() {
    // The names the guard decides on: refused as what they are.
    for sql in [
        "UPDATE assets SET 'tenant_id' = 'B'",
        "UPDATE assets SET 'name' = 'x'",
        "UPDATE assets SET (name, 'tenant_id') = ('x', 'B')",
        "INSERT INTO assets ('tenant_id', id, name) VALUES ('B', 5, 'x')",
        "INSERT INTO assets (id, 'name') VALUES (5, 'x')",
        "INSERT INTO assets (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET 'tenant_id' = 'B'",
        "WITH 'assets' AS (SELECT 1 AS id) SELECT id FROM assets",
        "SELECT * FROM 'assets'",
        "SELECT id FROM 'main'.assets",
        "SELECT a.'name' FROM assets a",
        "UPDATE assets AS 'a' SET name = 'x'",
    ] {
        assert!(is_lexical(&lite(sql)), "{sql}: {:?}", lite(sql));
        assert!(pg(sql).is_err(), "{sql}: {:?}", pg(sql));
    }
    // Forms the parser reads otherwise (a field of a string, no alias on
    // SQLite's INSERT) are refused all the same.
    for sql in [
        "SELECT 'a'.name FROM assets a",
        "INSERT INTO assets AS 'a' (id) VALUES (1)",
    ] {
        assert!(lite(sql).is_err(), "{sql}: {:?}", lite(sql));
        assert!(pg(sql).is_err(), "{sql}: {:?}", pg(sql));
    }
    // Output aliases decide nothing: SQLite's `AS 'n'` stays allowed.
    assert_eq!(
        lite("SELECT count(*) AS 'n' FROM assets").as_deref(),
        Ok("SELECT count(*) AS 'n' FROM assets WHERE assets.tenant_id = ?1")
    );
}

/// PostgreSQL reads the first part of an assignment target as the column
/// (`SET tenant_id.f = ..` assigns a field of the tenant column); every
/// part is compared with the tenant and client columns.
#[test]
fn assignment_targets_naming_the_tenant_column_in_any_part_are_refused() {
    assert_eq!(
        pg("UPDATE assets SET tenant_id.f = 'x'"),
        Err(GuardError::TenantColumnUpdate)
    );
    assert_eq!(
        pg("INSERT INTO assets (tenant_id.f, id) VALUES ('x', 1)"),
        Err(GuardError::LiteralTenantValue)
    );
}

/// Root cause: the guard appended its predicate after the statement's own
/// `DO UPDATE .. WHERE` condition. That clause runs on the existing row the
/// new one conflicts with, before anything filtered it, and both databases
/// evaluate it in order and stop at the first false conjunct: with a unique
/// key that does not include the tenant column, the statement's condition
/// ran on another tenant's row, and an error it raises there (`1 / 0`,
/// `json('x')`) told the caller any fact about that row. The tenant (and
/// client) predicates now come first, and a condition that can raise an
/// error is also wrapped in the evaluation guard (`order.rs`), which does
/// not rely on the database keeping the written order (PostgreSQL orders
/// a qual's conjuncts by cost).
#[test]
fn on_conflict_where_runs_the_tenant_predicate_first() {
    assert_eq!(
        pg("INSERT INTO assets (id, name) VALUES (2, 'x') ON CONFLICT (id) DO UPDATE SET name = 'y' \
            WHERE 1 / (CASE WHEN assets.name = 'b' THEN 0 ELSE 1 END) = 1")
        .as_deref(),
        Ok("INSERT INTO assets (id, name, tenant_id) VALUES (2, 'x', $1) ON CONFLICT(id) DO UPDATE \
            SET name = 'y' WHERE assets.tenant_id = $1 AND (CASE WHEN (SELECT assets.tenant_id = $1) \
            THEN (1 / (CASE WHEN assets.name = 'b' THEN 0 ELSE 1 END) = 1) END)")
    );
    assert_eq!(
        lite(
            "INSERT INTO assets (id) VALUES (2) ON CONFLICT (id) DO UPDATE SET name = 'y' \
              WHERE assets.name = 'b' OR assets.id = 3"
        )
        .as_deref(),
        Ok(
            "INSERT INTO assets (id, tenant_id) VALUES (2, ?1) ON CONFLICT(id) DO UPDATE \
            SET name = 'y' WHERE assets.tenant_id = ?1 AND (assets.name = 'b' OR assets.id = 3)"
        )
    );
}

/// `setseed` changes session state that outlives the transaction: the
/// connection's next borrower, usually another tenant, would draw
/// predictable `random()` values. Denied like the other session-state
/// functions.
#[test]
fn setseed_is_denied_as_session_state() {
    for sql in [
        "SELECT setseed(0.5)",
        "SELECT pg_catalog.SETSEED(0.5) FROM assets",
    ] {
        assert_eq!(
            pg(sql),
            Err(GuardError::ForbiddenFunction("setseed".into())),
            "{sql}"
        );
    }
}

/// SQLite keeps the last inserted rowid and the row counts per connection,
/// not per transaction: through a pooled connection, `last_insert_rowid()`
/// returned the rowid the previous borrower (another tenant) inserted, and
/// `changes()`/`total_changes()` how many rows it wrote. Refused on both
/// dialects, in any case and schema.
#[test]
fn sqlite_connection_state_functions_are_denied() {
    for (sql, name) in [
        ("SELECT last_insert_rowid()", "last_insert_rowid"),
        ("SELECT CHANGES() FROM assets", "changes"),
        ("SELECT main.total_changes()", "total_changes"),
    ] {
        for r in [lite(sql), pg(sql)] {
            assert_eq!(r, Err(GuardError::ForbiddenFunction(name.into())), "{sql}");
        }
    }
}

/// `currtid2(relation, tid)` (and the older `currtid`) follow a row's update
/// chain by tuple id without row level security: tenant A learned which of
/// tenant B's rows changed. Denied in any case and schema.
#[test]
fn currtid_functions_are_denied() {
    for (sql, name) in [
        ("SELECT currtid2('assets', '(0,1)')", "currtid2"),
        (
            "SELECT pg_catalog.CURRTID2('assets', '(0,1)') FROM assets",
            "currtid2",
        ),
        (
            "SELECT name FROM assets WHERE currtid(1, '(0,1)') IS NULL",
            "currtid",
        ),
    ] {
        assert_eq!(
            pg(sql),
            Err(GuardError::ForbiddenFunction(name.into())),
            "{sql}"
        );
    }
}
