//! Unit tests of the rewriter: exact rewrites and refusals.

use super::*;

pub(super) fn registry() -> TableRegistry {
    TableRegistry::parse_spec(
        "assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)",
    )
    .unwrap()
}

pub(super) fn pg(sql: &str) -> Result<String, GuardError> {
    rewrite(sql, &registry(), Dialect::Postgres, false).map(|r| r.sql)
}

pub(super) fn lite(sql: &str) -> Result<String, GuardError> {
    rewrite(sql, &registry(), Dialect::Sqlite, false).map(|r| r.sql)
}

#[track_caller]
fn accepts(sql: &str, expected: &str) {
    assert_eq!(pg(sql).as_deref(), Ok(expected), "{sql}");
}

#[track_caller]
fn refuses(sql: &str, expected: GuardError) {
    assert_eq!(pg(sql), Err(expected), "{sql}");
}

fn unsupported_refusal(sql: &str) -> bool {
    matches!(pg(sql), Err(GuardError::Unsupported(_)))
}

#[test]
fn select_gets_the_predicate_in_where() {
    accepts(
        "SELECT id FROM assets",
        "SELECT id FROM assets WHERE assets.tenant_id = $1",
    );
    accepts(
        "SELECT a.id FROM assets AS a WHERE a.name = $1 OR a.id = $2",
        "SELECT a.id FROM assets AS a WHERE (a.name = $1 OR a.id = $2) AND a.tenant_id = $3",
    );
    accepts(
        "SELECT * FROM public.assets",
        "SELECT * FROM public.assets WHERE public.assets.tenant_id = $1",
    );
    accepts("SELECT * FROM countries", "SELECT * FROM countries");
    accepts("SELECT 1", "SELECT 1");
}

#[test]
fn outer_joins_keep_their_meaning() {
    accepts(
        "SELECT * FROM assets a LEFT JOIN work_orders w ON w.asset_id = a.id",
        "SELECT * FROM assets a LEFT JOIN work_orders w ON (w.asset_id = a.id) AND w.tenant_id = $1 WHERE a.tenant_id = $1",
    );
    accepts(
        "SELECT * FROM assets a RIGHT JOIN work_orders w ON w.asset_id = a.id",
        "SELECT * FROM assets a RIGHT JOIN work_orders w ON (w.asset_id = a.id) AND a.tenant_id = $1 WHERE w.tenant_id = $1",
    );
    accepts(
        "SELECT * FROM countries c LEFT JOIN assets a ON a.name = c.name",
        "SELECT * FROM countries c LEFT JOIN assets a ON (a.name = c.name) AND a.tenant_id = $1",
    );
    accepts(
        "SELECT * FROM countries c FULL JOIN countries d ON c.code = d.code",
        "SELECT * FROM countries c FULL JOIN countries d ON c.code = d.code",
    );
    assert!(unsupported_refusal(
        "SELECT * FROM assets a FULL JOIN work_orders w ON w.asset_id = a.id"
    ));
    assert!(unsupported_refusal(
        "SELECT * FROM assets a LEFT JOIN work_orders w USING (id)"
    ));
    assert!(unsupported_refusal(
        "SELECT * FROM assets a NATURAL LEFT JOIN work_orders w"
    ));
}

#[test]
fn nested_joins_place_predicates_by_side() {
    accepts(
        "SELECT * FROM assets a LEFT JOIN (work_orders w JOIN assets b ON b.id = w.asset_id) ON w.asset_id = a.id",
        "SELECT * FROM assets a LEFT JOIN (work_orders w JOIN assets b ON b.id = w.asset_id) ON (w.asset_id = a.id) AND w.tenant_id = $1 AND b.tenant_id = $1 WHERE a.tenant_id = $1",
    );
    assert!(unsupported_refusal(
        "SELECT * FROM (assets a JOIN work_orders w ON a.id = w.asset_id) AS j"
    ));
}

#[test]
fn subqueries_ctes_and_set_operations_are_scoped() {
    accepts(
        "SELECT (SELECT count(*) FROM work_orders w WHERE w.asset_id = a.id) FROM assets a WHERE EXISTS (SELECT 1 FROM work_orders) UNION ALL SELECT 1 FROM countries",
        "SELECT (SELECT count(*) FROM work_orders w WHERE (w.asset_id = a.id) AND w.tenant_id = $1) FROM assets a WHERE (CASE WHEN (SELECT a.tenant_id = $1) THEN (EXISTS (SELECT 1 FROM work_orders WHERE work_orders.tenant_id = $1)) END) AND a.tenant_id = $1 UNION ALL SELECT 1 FROM countries",
    );
    accepts(
        "WITH x AS (SELECT * FROM assets) SELECT * FROM x",
        "WITH x AS MATERIALIZED (SELECT * FROM assets WHERE assets.tenant_id = $1) SELECT * FROM x",
    );
    accepts(
        "SELECT * FROM (SELECT * FROM assets) s WHERE s.id IN (SELECT asset_id FROM work_orders)",
        "SELECT * FROM (SELECT * FROM assets WHERE assets.tenant_id = $1 OFFSET 0) s WHERE s.id IN (SELECT asset_id FROM work_orders WHERE work_orders.tenant_id = $1)",
    );
    accepts(
        "SELECT max(id) FILTER (WHERE id IN (SELECT asset_id FROM work_orders)) FROM countries",
        "SELECT max(id) FILTER (WHERE id IN (SELECT asset_id FROM work_orders WHERE work_orders.tenant_id = $1)) FROM countries",
    );
}

#[test]
fn cte_scope_follows_sql_visibility() {
    // `y` is declared after `x`: inside `x` the name is a real table.
    assert_eq!(
        pg("WITH x AS (SELECT * FROM y), y AS (SELECT 1) SELECT * FROM x"),
        Err(GuardError::UnknownTable("y".into()))
    );
    accepts(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
        "WITH RECURSIVE t (n) AS MATERIALIZED (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
    );
    refuses(
        "WITH assets AS (SELECT 1) SELECT * FROM assets",
        GuardError::ShadowedTable("assets".into()),
    );
    refuses(
        "WITH \"countries\" AS (SELECT 1) SELECT * FROM countries",
        GuardError::ShadowedTable("countries".into()),
    );
    assert!(unsupported_refusal(
        "WITH d AS (DELETE FROM assets RETURNING *) SELECT * FROM d"
    ));
}

#[test]
fn insert_gets_the_tenant_column() {
    accepts(
        "INSERT INTO assets (id, name) VALUES ($1, $2), ($3, 'x') RETURNING id",
        "INSERT INTO assets (id, name, tenant_id) VALUES ($1, $2, $4), ($3, 'x', $4) RETURNING id",
    );
    accepts(
        "INSERT INTO work_orders (id, asset_id) SELECT id, id FROM assets WHERE id = $1",
        "INSERT INTO work_orders (id, asset_id, tenant_id) SELECT id, id, $2 FROM assets WHERE (id = $1) AND assets.tenant_id = $2",
    );
    accepts(
        "INSERT INTO assets (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        "INSERT INTO assets (id, name, tenant_id) VALUES ($1, $2, $3) ON CONFLICT(id) DO UPDATE SET name = excluded.name WHERE assets.tenant_id = $3",
    );
    accepts(
        "INSERT INTO assets AS a (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = 'n' WHERE a.name <> 'n'",
        "INSERT INTO assets AS a (id, tenant_id) VALUES (1, $1) ON CONFLICT(id) DO UPDATE SET name = 'n' WHERE a.tenant_id = $1 AND (a.name <> 'n')",
    );
    accepts(
        "INSERT INTO assets (id) VALUES (1) ON CONFLICT DO NOTHING",
        "INSERT INTO assets (id, tenant_id) VALUES (1, $1) ON CONFLICT DO NOTHING",
    );
}

#[test]
fn insert_refusals() {
    refuses(
        "INSERT INTO assets (id, tenant_id) VALUES (1, 'other')",
        GuardError::LiteralTenantValue,
    );
    refuses(
        "INSERT INTO assets (id, \"TENANT_ID\") VALUES (1, $1)",
        GuardError::LiteralTenantValue,
    );
    refuses(
        "INSERT INTO assets VALUES (1, 'x')",
        GuardError::InsertWithoutColumns,
    );
    refuses(
        "INSERT INTO assets DEFAULT VALUES",
        GuardError::InsertWithoutColumns,
    );
    refuses(
        "INSERT INTO countries (code) VALUES ('SA')",
        GuardError::SharedTableWrite("countries".into()),
    );
    refuses(
        "INSERT INTO audit (x) VALUES (1)",
        GuardError::UnknownTable("audit".into()),
    );
    refuses(
        "INSERT INTO assets (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id",
        GuardError::TenantColumnUpdate,
    );
    assert_eq!(
        lite("INSERT OR REPLACE INTO assets (id) VALUES (?)"),
        Err(GuardError::ReplaceConflict)
    );
    assert_eq!(
        lite("REPLACE INTO assets (id) VALUES (?)"),
        Err(GuardError::ReplaceConflict)
    );
}

#[test]
fn update_and_delete_are_scoped() {
    accepts(
        "UPDATE assets a SET name = $1 FROM work_orders w WHERE w.asset_id = a.id",
        "UPDATE assets a SET name = $1 FROM work_orders w WHERE (w.asset_id = a.id) AND a.tenant_id = $2 AND w.tenant_id = $2",
    );
    accepts(
        "UPDATE assets SET name = 'x'",
        "UPDATE assets SET name = 'x' WHERE assets.tenant_id = $1",
    );
    accepts(
        "DELETE FROM assets USING work_orders w WHERE w.asset_id = assets.id",
        "DELETE FROM assets USING work_orders w WHERE (w.asset_id = assets.id) AND assets.tenant_id = $1 AND w.tenant_id = $1",
    );
    accepts(
        "WITH d AS (SELECT id FROM work_orders) DELETE FROM assets WHERE id IN (SELECT id FROM d)",
        "WITH d AS MATERIALIZED (SELECT id FROM work_orders WHERE work_orders.tenant_id = $1) DELETE FROM assets WHERE (CASE WHEN (SELECT assets.tenant_id = $1) THEN (id IN (SELECT id FROM d)) END) AND assets.tenant_id = $1",
    );
    refuses(
        "UPDATE assets SET tenant_id = $1",
        GuardError::TenantColumnUpdate,
    );
    refuses(
        "UPDATE assets SET (name, Tenant_Id) = ('x', 'y')",
        GuardError::TenantColumnUpdate,
    );
    refuses(
        "UPDATE countries SET name = 'x'",
        GuardError::SharedTableWrite("countries".into()),
    );
    refuses(
        "DELETE FROM countries",
        GuardError::SharedTableWrite("countries".into()),
    );
    assert_eq!(
        lite("UPDATE OR REPLACE assets SET id = 1"),
        Err(GuardError::ReplaceConflict)
    );
}

#[test]
fn statement_kinds_are_refused_with_their_reason() {
    refuses("CREATE TABLE x (id int)", GuardError::Ddl);
    refuses("DROP TABLE assets", GuardError::Ddl);
    refuses("TRUNCATE assets", GuardError::Ddl);
    refuses(
        "ALTER TABLE assets DISABLE ROW LEVEL SECURITY",
        GuardError::Ddl,
    );
    refuses("GRANT ALL ON assets TO public", GuardError::Ddl);
    refuses("SELECT * INTO copy FROM assets", GuardError::Ddl);
    refuses("SET hisn.tenant_id = 'x'", GuardError::SetOrSessionControl);
    refuses("SET ROLE postgres", GuardError::SetOrSessionControl);
    refuses("RESET ALL", GuardError::SetOrSessionControl);
    refuses("SHOW hisn.tenant_id", GuardError::SetOrSessionControl);
    refuses("BEGIN", GuardError::TransactionControl);
    refuses("COMMIT", GuardError::TransactionControl);
    refuses("SAVEPOINT s", GuardError::TransactionControl);
    refuses("COPY assets TO STDOUT", GuardError::Copy);
    refuses("SELECT 1; SELECT 2", GuardError::MultipleStatements);
    assert!(unsupported_refusal("EXPLAIN SELECT * FROM assets"));
    assert!(unsupported_refusal("CALL p()"));
}

#[test]
fn denied_functions_are_refused_anywhere() {
    for sql in [
        "SELECT set_config('hisn.tenant_id', 'x', false)",
        "SELECT * FROM assets WHERE name = current_setting('hisn.tenant_id')",
        "SELECT PG_CATALOG.SET_CONFIG('a', 'b', true)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_sleep(10)",
        "SELECT dblink('x', 'select 1')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT query_to_xml('select * from assets', true, false, '')",
        "SELECT id FROM assets ORDER BY current_setting('x')",
        "SELECT (SELECT set_config('a', 'b', false))",
    ] {
        assert!(
            matches!(pg(sql), Err(GuardError::ForbiddenFunction(_))),
            "{sql}: {:?}",
            pg(sql)
        );
    }
    assert!(matches!(
        lite("SELECT load_extension('x')"),
        Err(GuardError::ForbiddenFunction(_))
    ));
    assert!(is_denied_function("Pg_Terminate_Backend"));
    assert!(!is_denied_function("count"));
}

#[test]
fn unknown_tables_views_and_functions_are_refused() {
    for sql in [
        "SELECT * FROM pg_user",
        "SELECT * FROM assets_view",
        "SELECT * FROM other.assets",
        "SELECT * FROM \"Assets\"",
        "SELECT * FROM db.public.assets",
        "SELECT * FROM generate_series(1, 3)",
        "SELECT * FROM assets WHERE id IN (SELECT id FROM pg_class)",
    ] {
        assert!(
            matches!(pg(sql), Err(GuardError::UnknownTable(_))),
            "{sql}: {:?}",
            pg(sql)
        );
    }
    // SQLite compares quoted names case-insensitively and knows `main`.
    assert_eq!(
        lite("SELECT * FROM main.\"ASSETS\"").as_deref(),
        Ok("SELECT * FROM main.\"ASSETS\" WHERE main.\"ASSETS\".tenant_id = ?1")
    );
    assert!(matches!(
        lite("SELECT * FROM temp.assets"),
        Err(GuardError::UnknownTable(_))
    ));
}

#[test]
fn column_alias_lists_on_tenant_tables_are_refused() {
    assert!(unsupported_refusal(
        "SELECT * FROM assets AS a(id, name, tenant_id)"
    ));
    accepts(
        "SELECT * FROM (SELECT id FROM assets) AS s(x)",
        "SELECT * FROM (SELECT id FROM assets WHERE assets.tenant_id = $1 OFFSET 0) AS s (x)",
    );
}

#[test]
fn sqlite_placeholders_are_numbered() {
    assert_eq!(
        lite("SELECT * FROM assets WHERE id = ? AND name = ?").as_deref(),
        Ok("SELECT * FROM assets WHERE (id = ?1 AND name = ?2) AND assets.tenant_id = ?3")
    );
    assert_eq!(
        lite("INSERT INTO assets (id, name) VALUES (?, ?)").as_deref(),
        Ok("INSERT INTO assets (id, name, tenant_id) VALUES (?1, ?2, ?3)")
    );
    assert!(matches!(
        lite("SELECT * FROM assets WHERE id = :id"),
        Err(GuardError::UnsupportedPlaceholder(_))
    ));
    assert!(matches!(
        pg("SELECT * FROM assets WHERE id = :id"),
        Err(GuardError::UnsupportedPlaceholder(_))
    ));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
    assert_eq!(pg(&deep), Err(GuardError::TooComplex));
    let long_chain = format!("SELECT 1{}", " + 1".repeat(2000));
    assert_eq!(pg(&long_chain), Err(GuardError::TooComplex));
    let ok_chain = format!("SELECT 1{}", " OR 1 = 1".repeat(100));
    assert!(pg(&ok_chain).is_ok());
}

/// A subquery over a tenant table is scoped wherever an expression may hold
/// it: function arguments (and their `ORDER BY` / `LIMIT` clauses), window
/// specifications, lists, the optional parts of `CASE`, `LIKE .. ESCAPE` and
/// `SUBSTRING`, `BETWEEN`, `TRIM`, `CONVERT`, `OVERLAY`, row values,
/// `IN UNNEST`, grouping sets; and a denied function is refused inside any
/// of them. (`INTERVAL <subquery>` is refused outright: PostgreSQL reads an
/// interval only with a string value, see `interval` in `exprs.rs`.)
#[test]
fn subqueries_are_scoped_in_every_expression_position() {
    let sub = "(SELECT id FROM assets LIMIT 1)";
    for expr in [
        format!("coalesce({sub}, 0)"),
        format!("string_agg(name, ',' ORDER BY {sub})"),
        format!("array_agg(name LIMIT {sub})"),
        format!("count(*) OVER (PARTITION BY {sub})"),
        format!("count(*) OVER (ORDER BY code ROWS {sub} PRECEDING)"),
        format!("1 IN ({sub}, 2)"),
        format!("ROW(1, {sub})"),
        format!("CASE {sub} WHEN 1 THEN 1 END"),
        format!("CASE WHEN true THEN 1 ELSE {sub} END"),
        format!("name LIKE 'a' ESCAPE {sub}"),
        format!("SUBSTRING(name FROM {sub})"),
        format!("{sub} BETWEEN 1 AND 2"),
        format!("TRIM(BOTH name FROM {sub})"),
        format!("CONVERT({sub}, TEXT)"),
        format!("OVERLAY(name PLACING {sub} FROM 1)"),
        format!("(1, {sub}) = (1, 2)"),
        format!("1 IN UNNEST({sub})"),
        format!("1 FROM countries GROUP BY ROLLUP (code, 1 + {sub})"),
        format!("1 FROM countries GROUP BY CUBE (code, 1 + {sub})"),
        format!("1 FROM countries GROUP BY GROUPING SETS ((code), (1 + {sub}))"),
    ] {
        let sql = match expr.split_once(" FROM countries ") {
            Some(_) => format!("SELECT {expr}"),
            None => format!("SELECT {expr} FROM countries"),
        };
        let out = pg(&sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(out.matches("assets.tenant_id = $1").count(), 1, "{out}");
        let denied = sql.replace(sub, "set_config('a', 'b', false)");
        assert_eq!(
            pg(&denied),
            Err(GuardError::ForbiddenFunction("set_config".into())),
            "{denied}"
        );
    }
}

/// `MAX_DEPTH` is exact: the query and its body are two levels, and each
/// `+` of a left-nested chain one more, so `SELECT 1 + .. + 1` with 197
/// additions reaches level 200 (the limit, accepted) and 198 reach 201.
#[test]
fn nesting_of_exactly_max_depth_levels_is_accepted_and_one_more_refused() {
    let chain = |n: usize| format!("SELECT 1{}", " + 1".repeat(n));
    assert!(pg(&chain(MAX_DEPTH - 3)).is_ok());
    assert_eq!(pg(&chain(MAX_DEPTH - 2)), Err(GuardError::TooComplex));
}

#[test]
fn quoted_keyword_columns_are_quoted() {
    let r = TableRegistry::new().tenant_table("t", "user");
    assert_eq!(
        rewrite("SELECT * FROM t", &r, Dialect::Postgres, false).map(|r| r.sql),
        Ok("SELECT * FROM t WHERE t.\"user\" = $1".to_string())
    );
}

/// The target of an `INSERT` into a schema-qualified table is in scope under
/// its full name and its bare table name (as in PostgreSQL), and under no
/// other qualifier.
#[test]
fn insert_target_is_named_by_its_full_or_bare_name() {
    accepts(
        "INSERT INTO public.assets (name) VALUES ($1) RETURNING assets.id, public.assets.name",
        "INSERT INTO public.assets (name, tenant_id) VALUES ($1, $2) RETURNING assets.id, public.assets.name",
    );
    refuses(
        "INSERT INTO public.assets (name) VALUES ($1) RETURNING public.id",
        GuardError::UnknownColumn("public.id".into()),
    );
}

/// The tenant column is written bare when it is a plain lowercase name (an
/// underscore may lead), and quoted when it is a keyword. (The registry
/// folds names to lower case, so that is the only other case.)
#[test]
fn tenant_column_is_quoted_exactly_when_it_is_not_a_plain_name() {
    for (column, written) in [("_tid", "_tid"), ("tid_2", "tid_2"), ("user", "\"user\"")] {
        let r = TableRegistry::new().tenant_table("t", column);
        assert_eq!(
            rewrite("SELECT 1 FROM t", &r, Dialect::Postgres, false).map(|r| r.sql),
            Ok(format!("SELECT 1 FROM t WHERE t.{written} = $1")),
            "{column}"
        );
    }
}

/// Clauses other dialects' grammars give `sqlparser` (SQL Server's `FOR
/// JSON`, `TOP`, table hints and `OUTPUT`; DuckDB's `BY NAME`; Hive's
/// `PARTITION`; ClickHouse's `ON CLUSTER`; MySQL's multi-table `DELETE`, `LIMIT` on writes) are
/// refused on both databases: the guard does not know how they scope.
#[test]
fn clauses_of_other_dialects_are_refused() {
    for (sql, what) in [
        ("SELECT id FROM assets FOR JSON PATH", "query clause"),
        ("SELECT TOP 5 id FROM assets", "SELECT clause"),
        ("SELECT id FROM assets WITH (NOLOCK)", "table modifier"),
        (
            "INSERT INTO assets BY NAME SELECT 'x' AS name",
            "INSERT variant",
        ),
        (
            "INSERT INTO assets (name) PARTITION (p0) VALUES ('x')",
            "INSERT .. SET / PARTITION",
        ),
        (
            "INSERT INTO assets (name) OUTPUT inserted.id VALUES ('x')",
            "INSERT clause",
        ),
        (
            "UPDATE assets WITH (NOLOCK) SET name = 'x'",
            "table modifier on the target of a write",
        ),
        (
            "UPDATE assets SET name = 'x' OUTPUT inserted.id",
            "UPDATE clause",
        ),
        ("UPDATE assets SET name = 'x' LIMIT 1", "UPDATE clause"),
        ("UPDATE assets ON CLUSTER c SET name = 'x'", "UPDATE clause"),
        ("DELETE a FROM assets a", "DELETE clause"),
        ("DELETE FROM assets LIMIT 1", "DELETE clause"),
    ] {
        let refused = Err(GuardError::Unsupported(what.into()));
        assert_eq!(pg(sql), refused, "{sql}");
        assert_eq!(lite(sql), refused, "{sql}");
    }
}

/// `WITH .. INSERT` and `WITH .. UPDATE` are scoped like the bare statement;
/// a data-modifying statement inside a CTE or a subquery is refused (its
/// rows would escape the statement's scope).
#[test]
fn data_modifying_statements_are_scoped_only_as_the_statement_itself() {
    accepts(
        "WITH c AS (SELECT 1 AS n) INSERT INTO assets (name) SELECT 'x' FROM c",
        "WITH c AS MATERIALIZED (SELECT 1 AS n) INSERT INTO assets (name, tenant_id) SELECT 'x', $1 FROM c",
    );
    accepts(
        "WITH c AS (SELECT 1 AS n) UPDATE assets SET name = 'x'",
        "WITH c AS MATERIALIZED (SELECT 1 AS n) UPDATE assets SET name = 'x' WHERE assets.tenant_id = $1",
    );
    for sql in [
        "WITH d AS (INSERT INTO assets (name) VALUES ('x') RETURNING id) SELECT * FROM d",
        "WITH d AS (UPDATE assets SET name = 'x' RETURNING id) SELECT * FROM d",
        "SELECT * FROM (INSERT INTO assets (name) VALUES ('x') RETURNING id) AS d",
    ] {
        refuses(
            sql,
            GuardError::Unsupported("data-modifying statement inside a query".into()),
        );
    }
}

/// On PostgreSQL a quoted CTE name is case-sensitive, so `"Assets"` is not
/// `assets`; a CTE whose name folds to a registered table is still refused
/// (a reader, or a later edit dropping the quotes, would take one for the
/// other). SQLite folds quoted names too.
#[test]
fn cte_names_that_fold_to_a_registered_table_are_refused() {
    let sql = r#"WITH "Assets" AS (SELECT 1) SELECT * FROM "Assets""#;
    assert_eq!(pg(sql), Err(GuardError::ShadowedTable("Assets".into())));
    assert_eq!(lite(sql), Err(GuardError::ShadowedTable("Assets".into())));
}

#[test]
fn qualified_wildcards_are_accepted_and_scoped() {
    accepts(
        "SELECT a.* FROM assets a",
        "SELECT a.* FROM assets a WHERE a.tenant_id = $1",
    );
}

/// A FULL OUTER JOIN preserves and nulls both sides, so no placement of a
/// tenant predicate is faithful: refused when either side is a tenant
/// table, accepted between shared tables.
#[test]
fn full_outer_join_is_refused_when_either_side_is_a_tenant_table() {
    for sql in [
        "SELECT * FROM assets a FULL JOIN countries c ON c.code = a.name",
        "SELECT * FROM countries c FULL JOIN assets a ON c.code = a.name",
    ] {
        refuses(
            sql,
            GuardError::Unsupported("FULL OUTER JOIN over a tenant table".into()),
        );
    }
    accepts(
        "SELECT * FROM countries c FULL JOIN countries d ON c.code = d.code",
        "SELECT * FROM countries c FULL JOIN countries d ON c.code = d.code",
    );
}

/// A join's ON condition is an expression like any other: denied functions
/// are refused and subqueries over tenant tables are scoped.
#[test]
fn join_conditions_are_checked_and_their_subqueries_scoped() {
    refuses(
        "SELECT * FROM assets a JOIN work_orders w ON set_config('a', 'b', true) = 'b'",
        GuardError::ForbiddenFunction("set_config".into()),
    );
    accepts(
        "SELECT * FROM countries c JOIN countries d ON c.code IN (SELECT name FROM assets)",
        "SELECT * FROM countries c JOIN countries d ON c.code IN (SELECT name FROM assets WHERE assets.tenant_id = $1)",
    );
}

/// `INSERT .. SELECT` from a set operation or a parenthesised query gets
/// the tenant value in every row the source produces.
#[test]
fn insert_sources_of_every_shape_get_the_tenant_in_every_row() {
    accepts(
        "INSERT INTO assets (name) SELECT 'a' UNION SELECT 'b'",
        "INSERT INTO assets (name, tenant_id) SELECT 'a', $1 UNION SELECT 'b', $1",
    );
    accepts(
        "INSERT INTO assets (name) (SELECT 'a')",
        "INSERT INTO assets (name, tenant_id) (SELECT 'a', $1)",
    );
}

/// On PostgreSQL `[` is an operator character (array subscripts and
/// slices), not the start of a bracketed identifier as on SQLite: both
/// readers must agree on it for the statement to pass.
#[test]
fn array_subscripts_and_slices_pass_on_postgres() {
    accepts(
        "SELECT name[1], name[1:2] FROM assets",
        "SELECT name[1], name[1:2] FROM assets WHERE assets.tenant_id = $1",
    );
}
