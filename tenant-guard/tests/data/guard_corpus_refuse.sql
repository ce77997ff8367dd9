-- hisn-tenant-guard query-guard corpus: statements the guard REFUSES.
--
-- Same format as guard_corpus_accept.sql (blank-line separated entries,
-- `-- key: value` headers, then the statement), with the key `reason`: the
-- name of the `GuardError` variant the guard must return (`Ddl`,
-- `UnknownTable`, ...). `dialect` defaults to `both`. A database test can also
-- run each statement UNGUARDED as the app role to see what the other layers do.

-- name: ddl_create
-- reason: Ddl
CREATE TABLE stolen AS SELECT * FROM assets

-- name: ddl_drop
-- reason: Ddl
DROP TABLE assets

-- name: ddl_alter_disable_rls
-- dialect: postgres
-- reason: Ddl
ALTER TABLE assets DISABLE ROW LEVEL SECURITY

-- name: ddl_truncate
-- dialect: postgres
-- reason: Ddl
TRUNCATE assets

-- name: ddl_create_view
-- reason: Ddl
CREATE VIEW all_assets AS SELECT * FROM assets

-- name: ddl_create_temp_shadow
-- reason: Ddl
CREATE TEMP TABLE assets (id text)

-- name: ddl_grant
-- dialect: postgres
-- reason: Ddl
GRANT ALL ON assets TO PUBLIC

-- name: select_into_creates_table
-- dialect: postgres
-- reason: Ddl
SELECT * INTO stolen FROM assets

-- name: set_guc
-- dialect: postgres
-- reason: SetOrSessionControl
SET hisn.tenant_id = 'b0000000-0000-4000-8000-00000000000b'

-- name: set_local_guc
-- dialect: postgres
-- reason: SetOrSessionControl
SET LOCAL hisn.tenant_id = 'b0000000-0000-4000-8000-00000000000b'

-- name: set_role
-- dialect: postgres
-- reason: SetOrSessionControl
SET ROLE postgres

-- name: reset_all
-- dialect: postgres
-- reason: SetOrSessionControl
RESET ALL

-- name: show_guc
-- dialect: postgres
-- reason: SetOrSessionControl
SHOW hisn.tenant_id

-- name: set_config_in_select
-- reason: ForbiddenFunction
SELECT set_config('hisn.tenant_id', 'b0000000-0000-4000-8000-00000000000b', false)

-- name: set_config_in_subquery
-- reason: ForbiddenFunction
SELECT name FROM assets WHERE name <> (SELECT set_config('hisn.tenant_id', 'x', true))

-- name: set_config_schema_qualified_upper
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT PG_CATALOG.SET_CONFIG('hisn.tenant_id', 'x', true)

-- name: set_config_in_cte
-- reason: ForbiddenFunction
WITH x AS (SELECT set_config('hisn.tenant_id', 'x', true)) SELECT * FROM x

-- name: set_config_in_update
-- reason: ForbiddenFunction
UPDATE assets SET name = set_config('hisn.tenant_id', 'x', true)

-- name: set_config_in_order_by
-- reason: ForbiddenFunction
SELECT name FROM assets ORDER BY set_config('hisn.tenant_id', name, true)

-- name: current_setting_read
-- reason: ForbiddenFunction
SELECT current_setting('hisn.tenant_id')

-- name: query_to_xml_runs_sql_text
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT query_to_xml('select * from assets', true, false, '')

-- name: pg_read_file
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT pg_read_file('/etc/passwd')

-- name: pg_sleep
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT pg_sleep(10)

-- name: dblink
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT dblink('dbname=test', 'select name from assets')

-- name: lo_import
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT lo_import('/etc/passwd')

-- name: sqlite_load_extension
-- dialect: sqlite
-- reason: ForbiddenFunction
SELECT load_extension('evil')

-- name: begin
-- reason: TransactionControl
BEGIN

-- name: commit
-- reason: TransactionControl
COMMIT

-- name: rollback_to_savepoint
-- reason: TransactionControl
ROLLBACK TO SAVEPOINT s

-- name: copy_out
-- dialect: postgres
-- reason: Copy
COPY assets TO STDOUT

-- name: copy_query_out
-- dialect: postgres
-- reason: Copy
COPY (SELECT * FROM assets) TO STDOUT

-- name: two_statements
-- reason: MultipleStatements
SELECT name FROM countries; SELECT name FROM assets

-- name: stacked_delete
-- reason: MultipleStatements
SELECT 1; DELETE FROM assets

-- name: unknown_table
-- reason: UnknownTable
SELECT * FROM secrets

-- name: view_is_unknown
-- reason: UnknownTable
SELECT * FROM assets_view

-- name: catalog_postgres
-- dialect: postgres
-- reason: UnknownTable
SELECT * FROM pg_catalog.pg_settings

-- name: catalog_sqlite
-- dialect: sqlite
-- reason: UnknownTable
SELECT * FROM sqlite_master

-- name: other_schema
-- reason: UnknownTable
SELECT * FROM other.assets

-- name: three_part_name
-- dialect: postgres
-- reason: UnknownTable
SELECT * FROM test.public.assets

-- name: quoted_mixed_case_is_another_table_postgres
-- dialect: postgres
-- reason: UnknownTable
SELECT * FROM "Assets"

-- name: table_function
-- dialect: postgres
-- reason: UnknownTable
SELECT * FROM generate_series(1, 3)

-- name: unknown_table_in_subquery
-- reason: UnknownTable
SELECT name FROM assets WHERE id IN (SELECT id FROM secrets)

-- name: forward_cte_reference_is_a_real_table
-- reason: UnknownTable
WITH x AS (SELECT * FROM y), y AS (SELECT 1) SELECT * FROM x

-- name: update_tenant_column
-- reason: TenantColumnUpdate
UPDATE assets SET tenant_id = 'b0000000-0000-4000-8000-00000000000b'

-- name: update_tenant_column_quoted_case
-- reason: TenantColumnUpdate
UPDATE assets SET "TENANT_ID" = 'b0000000-0000-4000-8000-00000000000b'

-- name: update_tenant_column_tuple
-- dialect: postgres
-- reason: TenantColumnUpdate
UPDATE assets SET (name, tenant_id) = ('x', 'b0000000-0000-4000-8000-00000000000b')

-- name: upsert_moves_tenant
-- reason: TenantColumnUpdate
INSERT INTO assets (id, name) VALUES ('c0000000-0000-4000-8000-000000000005', 'x') ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id

-- name: insert_literal_tenant
-- reason: LiteralTenantValue
INSERT INTO assets (id, tenant_id, name) VALUES ('c0000000-0000-4000-8000-000000000006', 'b0000000-0000-4000-8000-00000000000b', 'planted')

-- name: insert_select_with_tenant_column
-- reason: LiteralTenantValue
INSERT INTO assets (id, tenant_id, name) SELECT id, tenant_id, name FROM assets

-- name: insert_without_columns
-- reason: InsertWithoutColumns
INSERT INTO assets VALUES ('c0000000-0000-4000-8000-000000000007', 'b0000000-0000-4000-8000-00000000000b', 'x', NULL)

-- name: insert_default_values
-- reason: InsertWithoutColumns
INSERT INTO assets DEFAULT VALUES

-- name: insert_or_replace
-- dialect: sqlite
-- reason: ReplaceConflict
INSERT OR REPLACE INTO assets (id, name) VALUES ('b0000000-0000-4000-8000-000000000001', 'overwritten')

-- name: replace_into
-- dialect: sqlite
-- reason: ReplaceConflict
REPLACE INTO assets (id, name) VALUES ('b0000000-0000-4000-8000-000000000001', 'overwritten')

-- name: update_or_replace
-- dialect: sqlite
-- reason: ReplaceConflict
UPDATE OR REPLACE assets SET serial_no = 'S-1'

-- name: write_shared_table
-- reason: SharedTableWrite
UPDATE countries SET name = 'x'

-- name: insert_shared_table
-- reason: SharedTableWrite
INSERT INTO countries (code, name) VALUES ('XX', 'x')

-- name: delete_shared_table
-- reason: SharedTableWrite
DELETE FROM countries

-- name: cte_shadows_tenant_table
-- reason: ShadowedTable
WITH assets AS (SELECT * FROM work_orders) SELECT * FROM assets

-- name: full_join_over_tenant_table
-- reason: Unsupported
SELECT * FROM assets AS a FULL JOIN work_orders AS w ON w.asset_id = a.id

-- name: left_join_using_over_tenant_table
-- reason: Unsupported
SELECT * FROM assets AS a LEFT JOIN work_orders AS w USING (id)

-- name: alias_columns_rename_tenant_column
-- reason: Unsupported
SELECT * FROM assets AS a (id, name, tenant_id)

-- name: data_modifying_cte
-- dialect: postgres
-- reason: Unsupported
WITH d AS (DELETE FROM assets RETURNING *) SELECT * FROM d

-- name: explain
-- reason: Unsupported
EXPLAIN SELECT * FROM assets

-- name: call_procedure
-- dialect: postgres
-- reason: Unsupported
CALL do_anything()

-- name: table_command
-- dialect: postgres
-- reason: Parse
TABLE assets

-- name: named_parameter
-- reason: UnsupportedPlaceholder
SELECT * FROM assets WHERE id = :id

-- name: question_mark_on_sqlite_mixed
-- dialect: sqlite
-- reason: UnsupportedPlaceholder
SELECT * FROM assets WHERE id = ? AND name = ?1

-- name: empty
-- reason: Empty
-- only a comment

-- name: garbage
-- reason: Parse
SELEKT * FROM assets

-- name: merge
-- dialect: postgres
-- reason: Unsupported
MERGE INTO assets a USING work_orders w ON a.id = w.asset_id WHEN MATCHED THEN UPDATE SET name = 'x'

-- name: lock_table
-- dialect: postgres
-- reason: Unsupported
LOCK TABLE assets IN ACCESS EXCLUSIVE MODE

-- name: prepare
-- dialect: postgres
-- reason: Unsupported
PREPARE p AS SELECT * FROM assets

-- name: do_block
-- dialect: postgres
-- reason: Parse
DO $$ BEGIN PERFORM set_config('hisn.tenant_id', 'x', false); END $$

-- name: notify
-- dialect: postgres
-- reason: Unsupported
NOTIFY tenant_channel, 'hello'

-- name: pg_notify_function
-- dialect: postgres
-- reason: ForbiddenFunction
SELECT pg_notify('tenant_channel', name) FROM assets

-- name: discard_all
-- dialect: postgres
-- reason: SetOrSessionControl
DISCARD ALL

-- name: set_transaction_isolation
-- dialect: postgres
-- reason: SetOrSessionControl
SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED

-- name: sqlite_attach
-- dialect: sqlite
-- reason: Ddl
ATTACH DATABASE 'other.db' AS other

-- name: sqlite_pragma_function_table
-- dialect: sqlite
-- reason: UnknownTable
SELECT * FROM pragma_table_info('assets')

-- name: sqlite_temp_schema_is_another_table
-- dialect: sqlite
-- reason: UnknownTable
SELECT * FROM temp.assets

-- name: table_sample
-- dialect: postgres
-- reason: Unsupported
SELECT * FROM assets TABLESAMPLE BERNOULLI (50)

-- name: nested_join_alias_hides_names
-- reason: Unsupported
SELECT * FROM (assets AS a JOIN work_orders AS w ON a.id = w.asset_id) AS j

-- name: shared_table_update_from
-- reason: SharedTableWrite
UPDATE countries SET name = a.name FROM assets AS a WHERE a.serial_no = countries.code

-- name: insert_into_cte
-- dialect: postgres
-- reason: Unsupported
WITH x AS (SELECT 1) INSERT INTO x (a) VALUES (1)

-- name: placeholder_index_out_of_range
-- dialect: postgres
-- reason: UnsupportedPlaceholder
SELECT * FROM assets WHERE id = $65535

-- name: deeply_nested
-- reason: TooComplex
SELECT ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))

-- name: quoted_identifier_with_embedded_quote
-- reason: Lexical
SELECT * FROM assets AS "x"" = 1 OR ""y"

-- name: quoted_identifier_with_backslash
-- reason: Lexical
SELECT "a\" FROM assets

-- name: backtick_identifier_with_backslash
-- dialect: sqlite
-- reason: Lexical
SELECT `a\` FROM assets

-- name: custom_operator_with_line_comment
-- dialect: postgres
-- reason: Lexical
SELECT name FROM assets WHERE id #-- 1
= id

-- name: custom_operator_with_block_comment
-- dialect: postgres
-- reason: Lexical
SELECT name FROM assets WHERE id #/* x */ 1 = 1

-- name: custom_operator_keyword_form
-- dialect: postgres
-- reason: Unsupported
SELECT name FROM assets WHERE id OPERATOR(pg_catalog.=) 1

-- name: operator_not_on_the_allow_list
-- dialect: postgres
-- reason: Unsupported
SELECT name FROM assets WHERE id <-> 1 > 0

-- name: adjacent_string_constants
-- dialect: postgres
-- reason: Lexical
SELECT name FROM assets WHERE name = 'a'
'b'

-- name: national_string_sqlite
-- dialect: sqlite
-- reason: Parse
SELECT name FROM assets WHERE name = N'x'

-- name: bit_string_postgres
-- dialect: postgres
-- reason: Lexical
SELECT name FROM assets WHERE B'101' = B'101'

-- name: unicode_escape_string_postgres
-- dialect: postgres
-- reason: Lexical
SELECT name FROM assets WHERE name = U&'\0041'

-- name: non_nested_comment_sqlite
-- dialect: sqlite
-- reason: Parse
SELECT name FROM assets /* outer /* inner */ WHERE false */

-- name: attribute_call_ts_stat
-- dialect: postgres
-- reason: UnknownColumn
SELECT ((SELECT 'select * from assets')::text).ts_stat FROM assets

-- name: attribute_call_terminate_backend
-- dialect: postgres
-- reason: UnknownColumn
SELECT (id).pg_terminate_backend FROM assets

-- name: attribute_call_current_setting
-- reason: ForbiddenFunction
SELECT a.Current_Setting FROM assets AS a

-- name: attribute_call_advisory_lock
-- reason: ForbiddenFunction
SELECT assets.pg_advisory_lock FROM assets

-- name: attribute_not_a_known_column
-- reason: UnknownColumn
SELECT s.row_to_json FROM (SELECT id FROM assets) AS s

-- name: qualifier_not_in_scope
-- reason: UnknownColumn
SELECT x.id FROM assets

-- name: on_conflict_index_predicate_calls_a_denied_function
-- reason: ForbiddenFunction
INSERT INTO assets (id, name) VALUES ('x', 'y') ON CONFLICT (id) WHERE pg_sleep(1) IS NULL DO NOTHING

-- name: on_conflict_index_predicate_names_no_from_item
-- reason: UnknownColumn
INSERT INTO assets (id, name) VALUES ('x', 'y') ON CONFLICT (id) WHERE x.name IS NULL DO NOTHING

-- name: interval_on_sqlite_reads_a_column_and_an_alias
-- dialect: sqlite
-- reason: Unsupported
SELECT INTERVAL '1 day' FROM assets

-- name: interval_of_a_name_reads_a_column_and_an_alias_on_postgres
-- dialect: postgres
-- reason: Unsupported
SELECT INTERVAL name FROM assets

-- name: string_introducer_reads_a_column_and_an_alias_on_sqlite
-- dialect: sqlite
-- reason: Unsupported
SELECT _text 'x' FROM assets
