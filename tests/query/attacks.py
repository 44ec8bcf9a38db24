"""What a tenant with a valid key tries against the query sandbox, by family, written once for the
local directory (tests/query/test_sandbox.py) and S3 on moto (tests/cloud/test_cloud_sandbox.py).

``{root}`` stands for where the lake is (a directory or ``s3://bucket``), ``{other}`` for another
tenant's file that exists, ``{own}`` for one of the attacker's own files.
"""

from __future__ import annotations

RUNS_SQL_TEXT = [
    "SELECT * FROM query('SELECT current_setting(''s3_secret_access_key'') AS s')",
    "SELECT * FROM QUERY('SELECT 1')",
    "SELECT * FROM \"query\"('SELECT 1')",
    "SELECT * FROM main.query('SELECT 1')",
    "SELECT * FROM system.main.query('SELECT 1')",
    "SELECT * FROM query_table('log_entries')",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    "SELECT json_serialize_plan('SELECT * FROM log_entries')",
    "SELECT json_deserialize_sql(json_serialize_sql('SELECT 1'))",
    "WITH q AS (SELECT * FROM query('SELECT 1')) SELECT * FROM q",
    "SELECT (SELECT * FROM query('SELECT 1'))",
    "SELECT 1 WHERE EXISTS (FROM query('SELECT 1'))",
]
READS_SETTINGS = [
    "SELECT current_setting('s3_secret_access_key') AS s, current_setting('s3_session_token')",
    "SELECT CURRENT_SETTING('allowed_paths')",
    "SELECT main.current_setting('temp_directory')",
    "SELECT \"current_setting\"('home_directory')",
    "SELECT getvariable('x')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM duckdb_secrets(redact = false)",
    "SELECT * FROM which_secret('s3://bucket/x', 's3')",
    "SELECT * FROM duckdb_views()",
    "SELECT sql FROM duckdb_views",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM duckdb_temporary_files()",
    "SELECT * FROM duckdb_memory()",
    "SELECT * FROM duckdb_logs",
    "SELECT * FROM information_schema.views",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM pragma_show('log_entries')",
    "SELECT * FROM pragma_database_size()",
    "SELECT current_query()",
    "WITH x AS (SELECT 1) SELECT * FROM duckdb_settings()",
]
READS_FILES = [
    "SELECT * FROM read_parquet('{other}')",
    "SELECT * FROM read_parquet(['{own}', '{other}'])",
    "SELECT * FROM parquet_scan('{other}')",
    "SELECT * FROM '{other}'",
    'SELECT * FROM "{other}"',
    "SELECT * FROM read_blob('{other}')",
    "SELECT * FROM read_text('{other}')",
    "SELECT * FROM read_csv('{other}')",
    "SELECT * FROM read_csv_auto('{other}')",
    "SELECT * FROM read_json('{other}')",
    "SELECT * FROM read_json_objects('{other}')",
    "SELECT * FROM read_ndjson('{other}')",
    "SELECT * FROM sniff_csv('{other}')",
    "SELECT * FROM parquet_metadata('{other}')",
    "SELECT * FROM parquet_schema('{other}')",
    "SELECT * FROM parquet_kv_metadata('{other}')",
    "SELECT * FROM read_duckdb('{other}')",
    "SELECT * FROM glob('{root}/**')",
    "SELECT * FROM glob('/tmp/**')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_text('~/.aws/credentials')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "SELECT * FROM iceberg_scan('{root}/tables/log_entries')",
    "SELECT * FROM log_entries, read_parquet('{other}')",
    "SELECT * FROM log_entries WHERE message IN (SELECT message FROM read_parquet('{other}'))",
]
PATH_TRICKS = [
    "{own_dir}/../../tenant=globex/{other_tail}",
    "{own_dir}/../../../log_entries/tenant=globex/{other_tail}",
    "{root}/tables/log_entries/tenant=acme/../tenant=globex/{other_tail}",
    "{root}/tables/log_entries/tenant=acme/%2E%2E/tenant=globex/{other_tail}",
    "{root}/tables/log_entries/tenant=acme/./../tenant=globex/{other_tail}",
    "{root}/tables/log_entries//tenant=globex/{other_tail}",
    "{root}/tables/log_entries/tenant=globex/./{other_tail}",
    "{root}/tables/log_entries/tenant=globex/{other_tail}",
    "{root}/tables/log_entries/tenant=*/**/*.parquet",
    "{root}/tables/log_entries/tenant=globex/**",
    "{root}/tables/log_entries/tenant=acme/**/_compaction.json",
    "{root}/raw/**",
]
"""Paths a tenant's files could be confused with; each names another tenant's data, a glob, or a
file that holds no rows of the views."""
STATEMENTS = [
    "COPY log_entries TO '/tmp/stolen.csv'",
    "COPY (SELECT 1) TO '{root}/tables/log_entries/tenant=globex/x.parquet'",
    "EXPORT DATABASE '/tmp/out'",
    "IMPORT DATABASE '/tmp/out'",
    "ATTACH '/tmp/x.duckdb' AS x",
    "ATTACH ':memory:' AS x",
    "DETACH memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL httpfs FROM 'http://127.0.0.1:1/'",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "PRAGMA database_list",
    "CALL duckdb_settings()",
    "CREATE SECRET s (TYPE s3)",
    "CREATE TABLE t AS SELECT 1",
    "CREATE MACRO m() AS 1",
    "CREATE OR REPLACE VIEW log_entries AS SELECT 1",
    "DROP VIEW log_entries",
    "INSERT INTO log_entries VALUES (1)",
    "DELETE FROM log_entries",
    "UPDATE log_entries SET message = 'x'",
    "CHECKPOINT",
    "VACUUM",
    "USE memory",
    "BEGIN TRANSACTION",
    "EXPLAIN SELECT * FROM log_entries",
    "EXPLAIN ANALYZE SELECT * FROM log_entries",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
]
SEVERAL_STATEMENTS = [
    "SELECT 1; SELECT 2",
    "SELECT 1; SET enable_external_access = true",
    "SELECT 1;\nATTACH ':memory:' AS x",
    "SELECT 1 /* ; */; COPY (SELECT 1) TO '/tmp/x.csv'",
    "SELECT 1 -- comment\n; INSTALL httpfs",
    "SELECT 1;;SELECT 2",
    "SELECT ';' ; SELECT current_setting('temp_directory')",
    "SELECT $$;$$; LOAD httpfs",
]
CTE_TRICKS = [
    "WITH pg_settings AS (SELECT * FROM pg_settings) SELECT name, setting FROM pg_settings",
    "WITH a AS (SELECT sql FROM duckdb_views), duckdb_views AS (SELECT 1 AS sql) SELECT * FROM a",
    "WITH a AS MATERIALIZED (SELECT sql FROM sqlite_master), sqlite_master AS (SELECT 1 AS sql) "
    "SELECT * FROM a",
    "WITH RECURSIVE a AS (SELECT * FROM duckdb_databases), duckdb_databases AS (SELECT 1) "
    "SELECT * FROM a",
    "WITH a AS (SELECT * FROM duckdb_columns), b AS (SELECT 1) SELECT * FROM a",
    "WITH a AS (SELECT * FROM '{own}'), \"{own}\" AS (SELECT 1) SELECT * FROM a",
    "WITH a AS (SELECT * FROM '{other}'), \"{other}\" AS (SELECT 1) SELECT * FROM a",
    "WITH x AS (SELECT 1) SELECT * FROM (WITH y AS (SELECT * FROM x) SELECT * FROM pg_class)",
    "WITH log_entries AS (SELECT * FROM log_entries) SELECT * FROM log_entries",
]
"""Names that look like CTEs where DuckDB resolves them to something else: a CTE's own name in
its body, a later CTE's name, a system view's name, a path."""
MACROS_OVER_THE_CATALOG = [
    "SELECT string_agg(pg_get_viewdef(i), ' || ') FROM range(15000, 40000) t(i)",
    "SELECT pg_get_constraintdef(1)",
    "SELECT format_type(1, 1)",
    "SELECT get_block_size('memory')",
]
UNPARSABLE = ["SELECT 'abc", "SELECT 1 /* x", 'SELECT "abc', "SELECT $$abc", "SELEC 1", "(", ";"]

REFUSED = RUNS_SQL_TEXT + READS_SETTINGS + READS_FILES + STATEMENTS + SEVERAL_STATEMENTS
REFUSED += UNPARSABLE + CTE_TRICKS + MACROS_OVER_THE_CATALOG


def fill(sql: str, **places: str) -> str:
    """``sql`` with its ``{place}`` holders replaced (quotes doubled inside SQL strings)."""
    for name, value in places.items():
        sql = sql.replace("{" + name + "}", value.replace("'", "''"))
    return sql
