-- hisn-tenant-guard query-guard corpus: statements the guard ACCEPTS.
--
-- Format (shared with the database tests, which run every entry on real
-- PostgreSQL and SQLite with two tenants' data loaded):
--   * Entries are separated by one or more blank lines.
--   * An entry starts with header lines `-- key: value`, followed by the
--     statement (possibly several lines, no trailing semicolon). Lines that
--     start with `--` before the first header of the file are this comment.
--   * Keys: `name` (unique id, required); `dialect` (`both`, `postgres` or
--     `sqlite`; default `both`); `kind` (`read` or `write`; writes should run in
--     a transaction that is rolled back); `expect` (the exact rewritten SQL, with
--     `{t}` standing for the tenant placeholder: `$1` on PostgreSQL, `?1` on
--     SQLite).
--   * No statement has parameters of its own: bind only the tenant (`$1`/`?1`).
--
-- Tables: tenant tables `assets(id, tenant_id, name, serial_no)` and
-- `work_orders(id, tenant_id, asset_id, title, status)` scoped by `tenant_id`;
-- shared table `countries(code, name)`. Registry spec:
-- `assets:tenant_id(id,name,serial_no),work_orders:tenant_id(id,asset_id,title,status),countries(code,name)`
-- (qualified names must be known columns).

-- name: plain_select
-- kind: read
-- expect: SELECT id, name FROM assets WHERE assets.tenant_id = {t}
SELECT id, name FROM assets

-- name: aliased_select_with_or
-- kind: read
-- expect: SELECT a.name FROM assets AS a WHERE (a.name = 'pump B1' OR 1 = 1) AND a.tenant_id = {t}
SELECT a.name FROM assets AS a WHERE a.name = 'pump B1' OR 1 = 1

-- name: tautology_cannot_widen
-- kind: read
-- expect: SELECT * FROM assets WHERE (tenant_id = tenant_id OR true) AND assets.tenant_id = {t}
SELECT * FROM assets WHERE tenant_id = tenant_id OR true

-- name: other_tenant_literal_is_anded
-- kind: read
-- expect: SELECT name FROM assets WHERE (tenant_id = 'b0000000-0000-4000-8000-00000000000b') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE tenant_id = 'b0000000-0000-4000-8000-00000000000b'

-- name: inner_join
-- kind: read
-- expect: SELECT a.name, w.title FROM assets AS a JOIN work_orders AS w ON w.asset_id = a.id WHERE a.tenant_id = {t} AND w.tenant_id = {t}
SELECT a.name, w.title FROM assets AS a JOIN work_orders AS w ON w.asset_id = a.id

-- name: join_on_id_only_across_tenants
-- kind: read
-- expect: SELECT a.name, w.title FROM assets AS a, work_orders AS w WHERE (w.asset_id = a.id OR true) AND a.tenant_id = {t} AND w.tenant_id = {t}
SELECT a.name, w.title FROM assets AS a, work_orders AS w WHERE w.asset_id = a.id OR true

-- name: left_join_nullable_side_in_on
-- kind: read
-- expect: SELECT a.name, w.title FROM assets AS a LEFT JOIN work_orders AS w ON (w.asset_id = a.id OR true) AND w.tenant_id = {t} WHERE a.tenant_id = {t}
SELECT a.name, w.title FROM assets AS a LEFT JOIN work_orders AS w ON w.asset_id = a.id OR true

-- name: right_join_nullable_side_in_on
-- kind: read
-- expect: SELECT a.name, w.title FROM assets AS a RIGHT JOIN work_orders AS w ON (true) AND a.tenant_id = {t} WHERE w.tenant_id = {t}
SELECT a.name, w.title FROM assets AS a RIGHT JOIN work_orders AS w ON true

-- name: shared_left_join_tenant
-- kind: read
-- expect: SELECT c.code, a.name FROM countries AS c LEFT JOIN assets AS a ON (true) AND a.tenant_id = {t}
SELECT c.code, a.name FROM countries AS c LEFT JOIN assets AS a ON true

-- name: nested_join_on_nullable_side
-- kind: read
-- expect: SELECT a.name, b.name FROM assets AS a LEFT JOIN (work_orders AS w JOIN assets AS b ON b.id = w.asset_id) ON (true) AND w.tenant_id = {t} AND b.tenant_id = {t} WHERE a.tenant_id = {t}
SELECT a.name, b.name FROM assets AS a LEFT JOIN (work_orders AS w JOIN assets AS b ON b.id = w.asset_id) ON true

-- name: three_table_join
-- kind: read
-- expect: SELECT a.name, w.title, c.name FROM assets AS a JOIN work_orders AS w ON w.asset_id = a.id LEFT JOIN countries AS c ON c.code = 'SA' WHERE (CASE WHEN (SELECT a.tenant_id = {t} AND w.tenant_id = {t}) THEN (a.name LIKE 'p%') END) AND a.tenant_id = {t} AND w.tenant_id = {t}
SELECT a.name, w.title, c.name FROM assets AS a JOIN work_orders AS w ON w.asset_id = a.id LEFT JOIN countries AS c ON c.code = 'SA' WHERE a.name LIKE 'p%'

-- name: subquery_in_where
-- kind: read
-- expect: SELECT name FROM assets WHERE (CASE WHEN (SELECT assets.tenant_id = {t}) THEN (id IN (SELECT asset_id FROM work_orders WHERE work_orders.tenant_id = {t})) END) AND assets.tenant_id = {t}
SELECT name FROM assets WHERE id IN (SELECT asset_id FROM work_orders)

-- name: subquery_in_select_list
-- kind: read
-- expect: SELECT a.name, (SELECT count(*) FROM work_orders AS w WHERE (w.asset_id = a.id) AND w.tenant_id = {t}) FROM assets AS a WHERE a.tenant_id = {t}
SELECT a.name, (SELECT count(*) FROM work_orders AS w WHERE w.asset_id = a.id) FROM assets AS a

-- name: uncorrelated_scalar_subquery_on_shared
-- kind: read
-- expect: SELECT (SELECT count(*) FROM assets WHERE assets.tenant_id = {t}) AS n FROM countries WHERE code = 'SA'
SELECT (SELECT count(*) FROM assets) AS n FROM countries WHERE code = 'SA'

-- name: exists_subquery
-- kind: read
-- expect: SELECT code FROM countries WHERE EXISTS (SELECT 1 FROM assets WHERE (assets.name = 'secret B2') AND assets.tenant_id = {t})
SELECT code FROM countries WHERE EXISTS (SELECT 1 FROM assets WHERE assets.name = 'secret B2')

-- name: not_exists_subquery
-- kind: read
-- expect: SELECT a.name FROM assets AS a WHERE (CASE WHEN (SELECT a.tenant_id = {t}) THEN (NOT EXISTS (SELECT 1 FROM work_orders AS w WHERE (w.asset_id = a.id) AND w.tenant_id = {t})) END) AND a.tenant_id = {t}
SELECT a.name FROM assets AS a WHERE NOT EXISTS (SELECT 1 FROM work_orders AS w WHERE w.asset_id = a.id)

-- name: derived_table
-- dialect: sqlite
-- kind: read
-- expect: SELECT s.name FROM (SELECT name FROM assets WHERE assets.tenant_id = {t} LIMIT -1) AS s
SELECT s.name FROM (SELECT name FROM assets) AS s

-- name: derived_table_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT s.name FROM (SELECT name FROM assets WHERE assets.tenant_id = {t} OFFSET 0) AS s
SELECT s.name FROM (SELECT name FROM assets) AS s

-- name: derived_table_with_column_aliases
-- dialect: postgres
-- kind: read
-- expect: SELECT s.x FROM (SELECT name FROM assets WHERE assets.tenant_id = {t} OFFSET 0) AS s (x)
SELECT s.x FROM (SELECT name FROM assets) AS s (x)

-- name: cte
-- dialect: sqlite
-- kind: read
-- expect: WITH mine AS (SELECT id, name FROM assets WHERE assets.tenant_id = {t} LIMIT -1) SELECT m.name FROM mine AS m JOIN work_orders AS w ON w.asset_id = m.id WHERE w.tenant_id = {t}
WITH mine AS (SELECT id, name FROM assets) SELECT m.name FROM mine AS m JOIN work_orders AS w ON w.asset_id = m.id

-- name: cte_postgres
-- dialect: postgres
-- kind: read
-- expect: WITH mine AS MATERIALIZED (SELECT id, name FROM assets WHERE assets.tenant_id = {t}) SELECT m.name FROM mine AS m JOIN work_orders AS w ON w.asset_id = m.id WHERE w.tenant_id = {t}
WITH mine AS (SELECT id, name FROM assets) SELECT m.name FROM mine AS m JOIN work_orders AS w ON w.asset_id = m.id

-- name: two_ctes_second_uses_first
-- dialect: sqlite
-- kind: read
-- expect: WITH a AS (SELECT id FROM assets WHERE assets.tenant_id = {t} LIMIT -1), b AS (SELECT * FROM a LIMIT -1) SELECT count(*) FROM b
WITH a AS (SELECT id FROM assets), b AS (SELECT * FROM a) SELECT count(*) FROM b

-- name: two_ctes_second_uses_first_postgres
-- dialect: postgres
-- kind: read
-- expect: WITH a AS MATERIALIZED (SELECT id FROM assets WHERE assets.tenant_id = {t}), b AS MATERIALIZED (SELECT * FROM a) SELECT count(*) FROM b
WITH a AS (SELECT id FROM assets), b AS (SELECT * FROM a) SELECT count(*) FROM b

-- name: recursive_cte_over_tenant_table
-- dialect: sqlite
-- kind: read
-- expect: WITH RECURSIVE r (id, depth) AS (SELECT id, 0 FROM assets WHERE assets.tenant_id = {t} UNION ALL SELECT w.asset_id, r.depth + 1 FROM r JOIN work_orders AS w ON w.asset_id = r.id WHERE (r.depth < 2) AND w.tenant_id = {t} LIMIT -1) SELECT count(*) FROM r
WITH RECURSIVE r(id, depth) AS (SELECT id, 0 FROM assets UNION ALL SELECT w.asset_id, r.depth + 1 FROM r JOIN work_orders AS w ON w.asset_id = r.id WHERE r.depth < 2) SELECT count(*) FROM r

-- name: recursive_cte_over_tenant_table_postgres
-- dialect: postgres
-- kind: read
-- expect: WITH RECURSIVE r (id, depth) AS MATERIALIZED (SELECT id, 0 FROM assets WHERE assets.tenant_id = {t} UNION ALL SELECT w.asset_id, r.depth + 1 FROM r JOIN work_orders AS w ON w.asset_id = r.id WHERE (r.depth < 2) AND w.tenant_id = {t}) SELECT count(*) FROM r
WITH RECURSIVE r(id, depth) AS (SELECT id, 0 FROM assets UNION ALL SELECT w.asset_id, r.depth + 1 FROM r JOIN work_orders AS w ON w.asset_id = r.id WHERE r.depth < 2) SELECT count(*) FROM r

-- name: union_all
-- kind: read
-- expect: SELECT name FROM assets WHERE assets.tenant_id = {t} UNION ALL SELECT title FROM work_orders WHERE work_orders.tenant_id = {t} UNION SELECT name FROM countries
SELECT name FROM assets UNION ALL SELECT title FROM work_orders UNION SELECT name FROM countries

-- name: except_and_intersect
-- kind: read
-- expect: SELECT id FROM assets WHERE assets.tenant_id = {t} EXCEPT SELECT asset_id FROM work_orders WHERE work_orders.tenant_id = {t}
SELECT id FROM assets EXCEPT SELECT asset_id FROM work_orders

-- name: schema_qualified_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT public.assets.name FROM public.assets WHERE public.assets.tenant_id = {t}
SELECT public.assets.name FROM public.assets

-- name: schema_qualified_sqlite
-- dialect: sqlite
-- kind: read
-- expect: SELECT main.assets.name FROM main.assets WHERE main.assets.tenant_id = {t}
SELECT main.assets.name FROM main.assets

-- name: upper_case_names
-- kind: read
-- expect: SELECT NAME FROM ASSETS WHERE ASSETS.tenant_id = {t}
SELECT NAME FROM ASSETS

-- name: aggregates_group_having_order_limit
-- kind: read
-- expect: SELECT a.name, count(w.id) AS n FROM assets AS a LEFT JOIN work_orders AS w ON (w.asset_id = a.id) AND w.tenant_id = {t} WHERE a.tenant_id = {t} GROUP BY a.name HAVING CASE WHEN count(CASE WHEN a.tenant_id = {t} THEN 1 END) = count(*) THEN (count(w.id) >= 0) END ORDER BY n DESC, a.name LIMIT 10 OFFSET 0
SELECT a.name, count(w.id) AS n FROM assets AS a LEFT JOIN work_orders AS w ON w.asset_id = a.id GROUP BY a.name HAVING count(w.id) >= 0 ORDER BY n DESC, a.name LIMIT 10 OFFSET 0

-- name: window_function
-- kind: read
-- expect: SELECT name, row_number() OVER (ORDER BY name) FROM assets WHERE assets.tenant_id = {t}
SELECT name, row_number() OVER (ORDER BY name) FROM assets

-- name: case_with_subquery
-- kind: read
-- expect: SELECT CASE WHEN EXISTS (SELECT 1 FROM work_orders WHERE work_orders.tenant_id = {t}) THEN 'busy' ELSE 'idle' END FROM countries
SELECT CASE WHEN EXISTS (SELECT 1 FROM work_orders) THEN 'busy' ELSE 'idle' END FROM countries

-- name: lateral_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT a.name, l.title FROM assets AS a CROSS JOIN LATERAL (SELECT w.title FROM work_orders AS w WHERE (w.asset_id = a.id) AND w.tenant_id = {t} OFFSET 0) AS l WHERE a.tenant_id = {t}
SELECT a.name, l.title FROM assets AS a CROSS JOIN LATERAL (SELECT w.title FROM work_orders AS w WHERE w.asset_id = a.id) AS l

-- name: for_update_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT id FROM assets WHERE assets.tenant_id = {t} FOR UPDATE
SELECT id FROM assets FOR UPDATE

-- name: comment_smuggling_is_dropped
-- kind: read
-- expect: SELECT name FROM assets WHERE assets.tenant_id = {t}
SELECT name FROM assets -- WHERE 1 = 0 UNION SELECT name FROM assets
/* ; DELETE FROM assets */

-- name: backslash_string_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT name FROM countries WHERE name = E'\\' UNION SELECT name FROM assets WHERE assets.tenant_id = {t}
SELECT name FROM countries WHERE name = '\' UNION SELECT name FROM assets

-- name: values_in_from
-- dialect: postgres
-- kind: read
-- expect: SELECT a.name FROM assets AS a JOIN (VALUES ('pump A1'), ('pump B1')) AS v (n) ON v.n = a.name WHERE a.tenant_id = {t}
SELECT a.name FROM assets AS a JOIN (VALUES ('pump A1'), ('pump B1')) AS v(n) ON v.n = a.name

-- name: insert_values
-- kind: write
-- expect: INSERT INTO assets (id, name, serial_no, tenant_id) VALUES ('c0000000-0000-4000-8000-000000000001', 'new one', 'S-9', {t}), ('c0000000-0000-4000-8000-000000000002', 'new two', NULL, {t}) RETURNING id, tenant_id
INSERT INTO assets (id, name, serial_no) VALUES ('c0000000-0000-4000-8000-000000000001', 'new one', 'S-9'), ('c0000000-0000-4000-8000-000000000002', 'new two', NULL) RETURNING id, tenant_id

-- name: insert_select
-- kind: write
-- expect: INSERT INTO work_orders (asset_id, title, tenant_id) SELECT a.id, 'copied', {t} FROM assets AS a WHERE a.tenant_id = {t}
INSERT INTO work_orders (asset_id, title) SELECT a.id, 'copied' FROM assets AS a

-- name: upsert_do_update
-- kind: write
-- expect: INSERT INTO assets (id, name, serial_no, tenant_id) VALUES ('c0000000-0000-4000-8000-000000000003', 'dup', 'S-1', {t}) ON CONFLICT(tenant_id, serial_no) DO UPDATE SET name = excluded.name WHERE assets.tenant_id = {t}
INSERT INTO assets (id, name, serial_no) VALUES ('c0000000-0000-4000-8000-000000000003', 'dup', 'S-1') ON CONFLICT (tenant_id, serial_no) DO UPDATE SET name = excluded.name

-- name: upsert_do_nothing
-- kind: write
-- expect: INSERT INTO assets (id, name, serial_no, tenant_id) VALUES ('c0000000-0000-4000-8000-000000000004', 'dup', 'S-1', {t}) ON CONFLICT DO NOTHING
INSERT INTO assets (id, name, serial_no) VALUES ('c0000000-0000-4000-8000-000000000004', 'dup', 'S-1') ON CONFLICT DO NOTHING

-- name: update_all_rows
-- kind: write
-- expect: UPDATE assets SET name = name || ' (checked)' WHERE assets.tenant_id = {t}
UPDATE assets SET name = name || ' (checked)'

-- name: update_with_subquery
-- kind: write
-- expect: UPDATE work_orders SET status = 'closed' WHERE (CASE WHEN (SELECT work_orders.tenant_id = {t}) THEN (asset_id IN (SELECT id FROM assets WHERE (CASE WHEN (SELECT assets.tenant_id = {t}) THEN (name LIKE '%B%') END) AND assets.tenant_id = {t})) END) AND work_orders.tenant_id = {t}
UPDATE work_orders SET status = 'closed' WHERE asset_id IN (SELECT id FROM assets WHERE name LIKE '%B%')

-- name: update_from
-- kind: write
-- expect: UPDATE work_orders AS w SET status = 'asset: ' || a.name FROM assets AS a WHERE (a.id = w.asset_id) AND w.tenant_id = {t} AND a.tenant_id = {t}
UPDATE work_orders AS w SET status = 'asset: ' || a.name FROM assets AS a WHERE a.id = w.asset_id

-- name: delete_all
-- kind: write
-- expect: DELETE FROM work_orders WHERE work_orders.tenant_id = {t}
DELETE FROM work_orders

-- name: delete_using_postgres
-- dialect: postgres
-- kind: write
-- expect: DELETE FROM work_orders AS w USING assets AS a WHERE (a.id = w.asset_id AND CASE WHEN (SELECT w.tenant_id = {t} AND a.tenant_id = {t}) THEN (a.name LIKE 'pump%') END) AND w.tenant_id = {t} AND a.tenant_id = {t}
DELETE FROM work_orders AS w USING assets AS a WHERE a.id = w.asset_id AND a.name LIKE 'pump%'

-- name: with_delete_postgres
-- dialect: postgres
-- kind: write
-- expect: WITH old AS MATERIALIZED (SELECT id FROM assets WHERE (CASE WHEN (SELECT assets.tenant_id = {t}) THEN (name LIKE 'secret%') END) AND assets.tenant_id = {t}) DELETE FROM work_orders WHERE (CASE WHEN (SELECT work_orders.tenant_id = {t}) THEN (asset_id IN (SELECT id FROM old)) END) AND work_orders.tenant_id = {t}
WITH old AS (SELECT id FROM assets WHERE name LIKE 'secret%') DELETE FROM work_orders WHERE asset_id IN (SELECT id FROM old)

-- name: array_subquery_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT ARRAY(SELECT name FROM assets WHERE assets.tenant_id = {t})
SELECT ARRAY(SELECT name FROM assets)

-- name: any_subquery_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT * FROM countries WHERE name = ANY(SELECT name FROM assets WHERE assets.tenant_id = {t})
SELECT * FROM countries WHERE name = ANY(SELECT name FROM assets)

-- name: row_value_in_subquery
-- kind: read
-- expect: SELECT * FROM countries WHERE (code, name) IN (SELECT serial_no, name FROM assets WHERE assets.tenant_id = {t})
SELECT * FROM countries WHERE (code, name) IN (SELECT serial_no, name FROM assets)

-- name: limit_subquery_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT name FROM assets WHERE assets.tenant_id = {t} LIMIT (SELECT count(*) FROM work_orders WHERE work_orders.tenant_id = {t})
SELECT name FROM assets LIMIT (SELECT count(*) FROM work_orders)

-- name: aliases_swap_table_names
-- kind: read
-- expect: SELECT assets.title FROM assets AS work_orders, work_orders AS assets WHERE work_orders.tenant_id = {t} AND assets.tenant_id = {t}
SELECT assets.title FROM assets AS work_orders, work_orders AS assets

-- name: dollar_and_escaped_strings_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT 'a''b', 'c''d', 'e''f' FROM assets WHERE assets.tenant_id = {t}
SELECT 'a''b', E'c\'d', $q$e'f$q$ FROM assets

-- name: backslash_quote_literal_sqlite
-- dialect: sqlite
-- kind: read
-- expect: SELECT name FROM assets WHERE (name = 'x\'') OR ?1 IS NOT NULL --') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE name = 'x\'') OR ?1 IS NOT NULL --'

-- name: backslash_quote_literal_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT name FROM assets WHERE (name = E'x\\'') OR $1 IS NOT NULL --') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE name = 'x\'') OR $1 IS NOT NULL --'

-- name: doubled_quotes_round_trip
-- kind: read
-- expect: SELECT name FROM assets WHERE (name <> 'O''''Brien') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE name <> 'O''''Brien'

-- name: escape_string_rendered_canonically
-- dialect: postgres
-- kind: read
-- expect: SELECT name FROM assets WHERE (name <> 'it''s' OR name = E'a\\b') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE name <> E'it\'s' OR name = E'a\\b'

-- name: dollar_quote_with_comment_text
-- dialect: postgres
-- kind: read
-- expect: SELECT name FROM assets WHERE (name <> ' $$ '' -- /* ') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE name <> $a$ $$ ' -- /* $a$

-- name: nested_comment_postgres
-- dialect: postgres
-- kind: read
-- expect: SELECT name FROM assets WHERE assets.tenant_id = {t}
SELECT name FROM assets /* outer /* inner */ WHERE false */

-- name: sentinel_like_text_is_a_plain_value
-- kind: read
-- expect: SELECT name FROM assets WHERE (name <> 'hisn_guard_literal_1' OR name = 'hisn_guard_literal_0') AND assets.tenant_id = {t}
SELECT name FROM assets WHERE name <> 'hisn_guard_literal_1' OR name = 'hisn_guard_literal_0'
