"""Copy the DuckDB raw (and predictions, suppression list) tables into the dbt target engine.

The loader writes landing files into the DuckDB file only. When dbt runs on another engine
(CDP_DBT_TARGET=postgres|spark), this module makes the same tables exist there before dbt runs:

* Postgres: one transaction; per table `drop table if exists`, `create table` with mapped column
  types, `copy ... from stdin` of a CSV that DuckDB writes. A failure rolls every table back.
* Spark (`method: thrift`, the `spark` target): each table goes through the warehouse interface's
  Spark engine (`replace_table` on the Spark Thrift server that dbt uses too).
* Spark (`method: session`, the `spark_session` target): DuckDB writes one parquet file per table,
  then a child Python process opens a SparkSession configured exactly like dbt's `session` profile
  (same warehouse dir and Derby metastore) and runs `saveAsTable('<schema>.<table>')` in overwrite
  mode. A child process, because the embedded Derby metastore admits one JVM at a time.

Tables of the `predictions` source that the DuckDB file does not hold yet are created empty on
the target, so dbt's sources resolve before the (DuckDB-only) prediction asset has ever run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import yaml

from orchestration.catalog import catalog
from orchestration.settings import PROFILES_DIR


def replicated_schemas() -> tuple[str, str]:
    """Every table of these schemas is copied: the raw schema of the landing sources and the
    schema of dbt source `predictions` (both as their source YAML declares) ..."""
    cat = catalog()
    return cat.raw_schema(), cat.source_schema("predictions")


# ... and these single tables: the privacy suppression list keeps erased people out of the
# identity graph (macros/privacy/suppression_list.sql), on every engine.
REPLICATED_TABLES = (("privacy", "suppression_list"),)
SUPPORTED_TARGETS = ("postgres", "spark")

# Columns of the tables the prediction asset writes (orchestration/predictions.py), for the empty
# placeholders created on the target when DuckDB does not have them yet.
PREDICTION_PLACEHOLDERS: Mapping[str, str] = {
    "customer_predictions": """
        customer_id varchar, as_of_at timestamp, p_alive double, expected_purchases_90d double,
        expected_purchases_365d double, predicted_clv_90d double, predicted_clv_365d double,
        expected_order_value double, churn_risk double, ltv_model_version varchar,
        churn_model_version varchar""",
}


class ReplicationError(Exception):
    """A table could not be copied; the message names the table and the target."""


@dataclass(frozen=True)
class TableCopy:
    schema: str
    table: str
    rows: int

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class _Column:
    name: str
    duckdb_type: str


# --------------------------------------------------------------------------------------------
# Profile (the single source of connection settings, shared with dbt)


def target_profile(target: str, profiles_dir: Path = PROFILES_DIR) -> dict[str, Any]:
    """The rendered output `target` of profile `cdp` (env_var() resolved as dbt would)."""
    path = profiles_dir / "profiles.yml"
    outputs = yaml.safe_load(path.read_text())["cdp"]["outputs"]
    if target not in outputs:
        raise ReplicationError(f"{path}: profile cdp has no output {target!r}")
    return _render(outputs[target])


def _env_var(name: str, default: str | None = None) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise ReplicationError(f"profiles.yml: env var {name} is required and not set")
    return default


def _render(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _render(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item) for item in value]
    if isinstance(value, str) and "{{" in value:
        return jinja2.Template(value).render(env_var=_env_var)
    return value


# --------------------------------------------------------------------------------------------
# Reading DuckDB


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_catalog = current_database() "
        "order by table_schema, table_name",
    ).fetchall()
    schemas = replicated_schemas()
    return [(schema, table) for schema, table in rows
            if schema in schemas or (schema, table) in REPLICATED_TABLES]


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[_Column]:
    return [_Column(name, str(kind)) for name, kind, *_ in con.execute(f"describe {relation}").fetchall()]


def _quote(identifier: str, quote: str = '"') -> str:
    return quote + identifier.replace(quote, quote * 2) + quote


def _sources(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(schema, table, DuckDB relation to read) for every table to copy, placeholders included."""
    present = _tables(con)
    raw_schema, predictions_schema = replicated_schemas()
    if not any(schema == raw_schema for schema, _ in present):
        raise ReplicationError("DuckDB warehouse has no raw tables: run load_landing_files first")
    sources = [(schema, table, f"{_quote(schema)}.{_quote(table)}") for schema, table in present]
    for table, columns in PREDICTION_PLACEHOLDERS.items():
        if (predictions_schema, table) not in present:
            con.execute(f"create or replace temp table {_quote('placeholder_' + table)} ({columns})")
            sources.append((predictions_schema, table, _quote("placeholder_" + table)))
    return sources


# --------------------------------------------------------------------------------------------
# Postgres

_POSTGRES_TYPES = {
    "VARCHAR": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "HUGEINT": "numeric(38, 0)",
    "BOOLEAN": "boolean",
}


def postgres_type(duckdb_type: str, where: str) -> str:
    """The Postgres column type for a DuckDB type; `where` (table.column) names it in errors."""
    kind = duckdb_type.upper()
    if kind in _POSTGRES_TYPES:
        return _POSTGRES_TYPES[kind]
    if re.fullmatch(r"DECIMAL\(\d+,\s*\d+\)", kind):
        return kind.lower().replace("decimal", "numeric")
    raise ReplicationError(f"{where}: DuckDB type {duckdb_type} has no Postgres mapping")


def postgres_connect_args(profile: Mapping[str, Any]) -> dict[str, Any]:
    """psycopg2.connect() keyword arguments from the dbt profile's postgres output."""
    args = {
        "host": profile.get("host", "localhost"),
        "port": int(profile.get("port", 5432)),
        "user": profile.get("user", "postgres"),
        "password": profile.get("password", ""),
        "dbname": profile.get("dbname") or profile.get("database"),
    }
    return {key: value for key, value in args.items() if value not in ("", None)}


def _postgres_columns(cur: Any, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of an existing Postgres table in column order; empty when there is none."""
    cur.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and c.relkind = 'r' and a.attnum > 0 "
        "and not a.attisdropped order by a.attnum",
        (schema, table),
    )
    return [(name, _CANONICAL_POSTGRES.get(kind, kind)) for name, kind in cur.fetchall()]


# format_type() spellings of the types in _POSTGRES_TYPES
_CANONICAL_POSTGRES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
}


def replicate_to_postgres(
    con: duckdb.DuckDBPyConnection, profile: Mapping[str, Any]
) -> list[TableCopy]:
    """Replace every raw/predictions table in Postgres with the DuckDB rows, in one transaction."""
    import psycopg2

    copies: list[TableCopy] = []
    with tempfile.TemporaryDirectory(prefix="cdp_replication_") as scratch:
        pg = psycopg2.connect(**postgres_connect_args(profile))
        try:
            with pg, pg.cursor() as cur:
                for schema, table, relation in _sources(con):
                    name = f"{schema}.{table}"
                    columns = _columns(con, relation)
                    wanted = [(c.name, postgres_type(c.duckdb_type, f"{name}.{c.name}"))
                              for c in columns]
                    ddl = ", ".join(f"{_quote(column)} {kind}" for column, kind in wanted)
                    target = f"{_quote(schema)}.{_quote(table)}"
                    csv_path = Path(scratch) / f"{schema}__{table}.csv"
                    con.execute(f"copy (select * from {relation}) to '{csv_path}' "
                                "(format csv, header false, null '\\N')")
                    try:
                        cur.execute(f"create schema if not exists {_quote(schema)}")
                        if _postgres_columns(cur, schema, table) == wanted:
                            # same shape: keep the table, so dbt's views on it stay valid
                            cur.execute(f"truncate table {target}")
                        else:
                            cur.execute(f"drop table if exists {target} cascade")
                            cur.execute(f"create table {target} ({ddl})")
                        with csv_path.open("rb") as handle:
                            cur.copy_expert(
                                f"copy {target} from stdin with (format csv, null '\\N')", handle)
                    except psycopg2.Error as exc:
                        raise ReplicationError(f"postgres: copying {name} failed: {exc}") from exc
                    copies.append(TableCopy(schema, table, cur.rowcount))
        finally:
            pg.close()
    return copies


# --------------------------------------------------------------------------------------------
# Spark


def spark_session(profile: Mapping[str, Any]):  # noqa: ANN201 (pyspark is imported lazily)
    """A SparkSession configured like dbt-spark's `session` method (same server_side_parameters)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in (profile.get("server_side_parameters") or {}).items():
        builder = builder.config(str(key), str(value))
    return builder.getOrCreate()


def _spark_load(manifest_path: Path, target: str) -> None:
    """Child process: saveAsTable every parquet file listed in the manifest, then stop Spark."""
    manifest = json.loads(manifest_path.read_text())
    spark = spark_session(target_profile(target))
    try:
        for entry in manifest:
            schema, table = entry["schema"], entry["table"]
            spark.sql(f"create database if not exists `{schema}`")
            frame = spark.read.parquet(entry["path"])
            frame.write.mode("overwrite").format("parquet").saveAsTable(f"`{schema}`.`{table}`")
    finally:
        spark.stop()


def replicate_to_spark(
    con: duckdb.DuckDBPyConnection, target: str = "spark", timeout_seconds: int = 900
) -> list[TableCopy]:
    """Write each table to parquet with DuckDB, then load them all in one Spark child process."""
    copies: list[TableCopy] = []
    with tempfile.TemporaryDirectory(prefix="cdp_replication_") as scratch:
        manifest = []
        for schema, table, relation in _sources(con):
            path = Path(scratch) / f"{schema}__{table}.parquet"
            con.execute(f"copy (select * from {relation}) to '{path}' (format parquet)")
            rows = con.execute(f"select count(*) from {relation}").fetchone()[0]
            manifest.append({"schema": schema, "table": table, "path": str(path)})
            copies.append(TableCopy(schema, table, int(rows)))
        manifest_path = Path(scratch) / "manifest.json"
        manifest_path.write_text(json.dumps(manifest))
        result = subprocess.run(
            [sys.executable, "-m", "orchestration.replication", "spark-load", str(manifest_path),
             target],
            capture_output=True, text=True, timeout=timeout_seconds, env=os.environ.copy(),
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            names = ", ".join(copy.name for copy in copies)
            raise ReplicationError(f"spark: loading tables ({names}) failed:\n{tail}")
    return copies


def replicate_to_spark_server(con: duckdb.DuckDBPyConnection) -> list[TableCopy]:
    """Replace each table on the Spark Thrift server through the warehouse interface."""
    from orchestration.warehouse.spark_engine import SparkWarehouse

    copies: list[TableCopy] = []
    spark = SparkWarehouse()
    try:
        for schema, table, relation in _sources(con):
            rows = con.execute(f"select * from {relation}").to_arrow_table()
            try:
                count = spark.replace_table(f"{schema}.{table}", rows)
            except Exception as exc:
                raise ReplicationError(f"spark: loading {schema}.{table} failed: {exc}") from exc
            copies.append(TableCopy(schema, table, count))
    finally:
        spark.close()
    return copies


# --------------------------------------------------------------------------------------------
# Entry points


def replicate(warehouse: Path, target: str) -> list[TableCopy]:
    """Copy raw.* and predictions.* of the DuckDB file at `warehouse` into dbt target `target`."""
    if target not in SUPPORTED_TARGETS:
        raise ReplicationError(
            f"replication to target {target!r} is not supported (one of {SUPPORTED_TARGETS})")
    profile = target_profile(target)
    adapter = profile.get("type")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        if adapter == "postgres":
            return replicate_to_postgres(con, profile)
        if adapter == "spark" and profile.get("method") == "thrift":
            return replicate_to_spark_server(con)
        if adapter == "spark":
            return replicate_to_spark(con, target)
        raise ReplicationError(f"profiles.yml: target {target!r} has unsupported type {adapter!r}")
    finally:
        con.close()


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[0] == "spark-load":
        _spark_load(Path(argv[1]), argv[2])
        return 0
    if len(argv) == 2 and argv[0] == "replicate":
        for copy in replicate(Path(argv[1]), os.environ.get("CDP_DBT_TARGET", "duckdb")):
            print(f"{copy.name}: {copy.rows} rows")
        return 0
    print("usage: python -m orchestration.replication replicate WAREHOUSE.duckdb", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
