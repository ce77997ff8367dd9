//! Unit tests of two-level tenancy (client predicate, active client) and
//! role gates in the rewriter.

use super::*;

fn registry() -> TableRegistry {
    TableRegistry::parse_spec(
        "assets:tenant_id:client_id(id,name),work_orders:tenant_id(id,asset_id,title),hr.salaries:tenant_id(id,amount)",
    )
    .unwrap()
    .parse_role_gates("hr.salaries=hr_viewer/hr_admin")
    .unwrap()
    .org_wide_roles(["firm_admin"])
    .unwrap()
}

fn pg(sql: &str) -> Result<String, GuardError> {
    rewrite(sql, &registry(), Dialect::Postgres, false).map(|r| r.sql)
}

fn lite(sql: &str) -> Result<String, GuardError> {
    rewrite(sql, &registry(), Dialect::Sqlite, false).map(|r| r.sql)
}

fn org(sql: &str) -> Result<String, GuardError> {
    rewrite(sql, &registry(), Dialect::Postgres, true).map(|r| r.sql)
}

#[test]
fn select_gets_the_client_predicate_beside_the_tenant_one() {
    assert_eq!(
        pg("SELECT name FROM assets WHERE id = $1").unwrap(),
        "SELECT name FROM assets WHERE (id = $1) AND assets.tenant_id = $2 AND assets.client_id = ANY($3)"
    );
    assert_eq!(
        lite("SELECT name FROM assets WHERE id = ?").unwrap(),
        "SELECT name FROM assets WHERE (id = ?1) AND assets.tenant_id = ?2 \
         AND assets.client_id IN (SELECT value FROM json_each(?3))"
    );
    // Tables without a client column keep the tenant predicate alone.
    assert_eq!(
        pg("SELECT title FROM work_orders").unwrap(),
        "SELECT title FROM work_orders WHERE work_orders.tenant_id = $1"
    );
    // Organisation-wide sessions: no client predicate and no client param.
    let r = rewrite(
        "SELECT name FROM assets",
        &registry(),
        Dialect::Postgres,
        true,
    )
    .unwrap();
    assert_eq!(r.sql, "SELECT name FROM assets WHERE assets.tenant_id = $1");
    assert!(r.extra.is_empty());
}

#[test]
fn every_reference_is_scoped_with_one_clients_parameter() {
    let r = rewrite(
        "WITH x AS (SELECT id FROM assets) SELECT a.name, (SELECT count(*) FROM assets b) FROM assets a \
         LEFT JOIN assets c ON c.id = a.id WHERE a.id IN (SELECT id FROM x)",
        &registry(),
        Dialect::Postgres,
        false,
    )
    .unwrap();
    assert_eq!(r.extra, [GuardParam::Clients]);
    // Four references, and the guard of the impure `IN (subquery)` conjunct
    // repeats a's and c's predicates (evaluation order, `order.rs`).
    assert_eq!(r.sql.matches("client_id = ANY($2)").count(), 6, "{}", r.sql);
    assert_eq!(r.sql.matches("tenant_id = $1").count(), 6, "{}", r.sql);
    assert!(
        r.sql
            .contains("ON (c.id = a.id) AND c.tenant_id = $1 AND c.client_id = ANY($2)"),
        "{}",
        r.sql
    );
}

#[test]
fn insert_writes_the_active_client() {
    let r = rewrite(
        "INSERT INTO assets (id, name) VALUES ($1, $2)",
        &registry(),
        Dialect::Postgres,
        false,
    )
    .unwrap();
    assert_eq!(
        r.sql,
        "INSERT INTO assets (id, name, tenant_id, client_id) VALUES ($1, $2, $3, $4)"
    );
    assert_eq!(r.extra, [GuardParam::ActiveClient]);
    // INSERT .. SELECT: the source is scoped to the granted clients first.
    let r = rewrite(
        "INSERT INTO assets (id, name) SELECT id, name FROM assets WHERE name = $1",
        &registry(),
        Dialect::Postgres,
        false,
    )
    .unwrap();
    assert_eq!(
        r.sql,
        "INSERT INTO assets (id, name, tenant_id, client_id) SELECT id, name, $2, $4 FROM assets \
         WHERE (name = $1) AND assets.tenant_id = $2 AND assets.client_id = ANY($3)"
    );
    assert_eq!(r.extra, [GuardParam::Clients, GuardParam::ActiveClient]);
}

#[test]
fn the_client_column_is_never_written_by_the_statement() {
    for sql in [
        "INSERT INTO assets (id, client_id) VALUES ($1, $2)",
        "INSERT INTO assets (id, CLIENT_ID) SELECT id, client_id FROM assets",
        r#"INSERT INTO assets (id, "client_id") VALUES ($1, 'x')"#,
    ] {
        assert_eq!(pg(sql), Err(GuardError::ClientColumnInsert), "{sql}");
        let sql = sql.replace("$1", "?1").replace("$2", "?2");
        assert_eq!(lite(&sql), Err(GuardError::ClientColumnInsert), "{sql}");
    }
    for sql in [
        "UPDATE assets SET client_id = $1",
        "UPDATE assets SET name = 'x', Client_Id = $1 WHERE id = $2",
        "UPDATE assets SET (name, client_id) = ($1, $2)",
        "INSERT INTO assets (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id",
    ] {
        assert_eq!(pg(sql), Err(GuardError::ClientColumnUpdate), "{sql}");
        assert_eq!(org(sql), Err(GuardError::ClientColumnUpdate), "{sql}");
    }
}

#[test]
fn writes_are_scoped_to_the_granted_clients() {
    assert_eq!(
        pg("UPDATE assets SET name = $1 WHERE id = $2").unwrap(),
        "UPDATE assets SET name = $1 WHERE (id = $2) AND assets.tenant_id = $3 AND assets.client_id = ANY($4)"
    );
    assert_eq!(
        pg("DELETE FROM assets a USING assets b WHERE a.id = b.id").unwrap(),
        "DELETE FROM assets a USING assets b WHERE (a.id = b.id) AND a.tenant_id = $1 \
         AND a.client_id = ANY($2) AND b.tenant_id = $1 AND b.client_id = ANY($2)"
    );
    // ON CONFLICT DO UPDATE never updates another client's row.
    assert_eq!(
        pg("INSERT INTO assets (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name")
            .unwrap(),
        "INSERT INTO assets (id, name, tenant_id, client_id) VALUES ($1, $2, $3, $4) ON CONFLICT(id) \
         DO UPDATE SET name = excluded.name WHERE assets.tenant_id = $3 AND assets.client_id = ANY($5)"
    );
}

#[test]
fn role_gates_are_recorded_per_access() {
    let read = rewrite(
        "SELECT amount FROM hr.salaries",
        &registry(),
        Dialect::Postgres,
        false,
    )
    .unwrap();
    assert_eq!(
        read.gates,
        [(
            "hr.salaries".to_owned(),
            vec!["hr_admin".to_owned(), "hr_viewer".to_owned()]
        )]
    );
    let write = rewrite(
        "UPDATE hr.salaries SET amount = $1",
        &registry(),
        Dialect::Postgres,
        false,
    )
    .unwrap();
    assert_eq!(
        write.gates,
        [("hr.salaries".to_owned(), vec!["hr_admin".to_owned()])]
    );
    // A gated table in a subquery is still recorded.
    let nested = rewrite(
        "SELECT name FROM assets WHERE id IN (SELECT id FROM hr.salaries)",
        &registry(),
        Dialect::Postgres,
        false,
    )
    .unwrap();
    assert_eq!(nested.gates.len(), 1);
    assert!(
        rewrite(
            "SELECT name FROM assets",
            &registry(),
            Dialect::Postgres,
            false
        )
        .unwrap()
        .gates
        .is_empty()
    );
}

/// The role gates the guard finds in `sql` on PostgreSQL.
fn pg_gates(registry: &TableRegistry, sql: &str) -> Vec<(String, Vec<String>)> {
    rewrite(sql, registry, Dialect::Postgres, false)
        .unwrap()
        .gates
}

#[test]
fn schema_gates_apply_to_every_table_of_the_schema() {
    let registry =
        TableRegistry::parse_spec("hr.pay:tenant_id(id),hr.grades(code),ledger:tenant_id")
            .unwrap()
            .parse_role_gates("hr.*=hr_viewer/hr_admin; hr.pay=payroll")
            .unwrap();
    let gates = |sql: &str| pg_gates(&registry, sql);
    // Its own gate and the schema's: a session needs a role of each.
    assert_eq!(
        gates("SELECT id FROM hr.pay"),
        [
            ("hr.pay".to_owned(), vec!["payroll".to_owned()]),
            (
                "hr.pay".to_owned(),
                vec!["hr_admin".to_owned(), "hr_viewer".to_owned()]
            ),
        ]
    );
    // A shared table of the schema is gated for reading too.
    assert_eq!(gates("SELECT code FROM hr.grades").len(), 1);
    assert!(gates("SELECT tenant_id FROM ledger").is_empty());
}

/// A schema gate with no table gate beside it still gates every table of
/// the schema (the registry holds gates of one kind only).
#[test]
fn a_schema_gate_alone_gates_its_tables() {
    let registry = TableRegistry::parse_spec("hr.pay:tenant_id(id),ledger:tenant_id")
        .unwrap()
        .parse_role_gates("hr.*=hr_viewer")
        .unwrap();
    let gates = |sql: &str| pg_gates(&registry, sql);
    assert_eq!(
        gates("SELECT id FROM hr.pay"),
        [("hr.pay".to_owned(), vec!["hr_viewer".to_owned()])]
    );
    assert!(gates("SELECT tenant_id FROM ledger").is_empty());
}
