"""Copy the tables of a DuckDB warehouse file into another target through the warehouse interface."""

from __future__ import annotations

from pathlib import Path

import duckdb
from dagster_dbt import DbtProject

from orchestration.catalog import load_catalog
from orchestration.dbt_project import ensure_manifest
from orchestration.settings import PROFILES_DIR, PROJECT_DIR, dbt_target_path
from orchestration.warehouse import Warehouse


def dbt_schema_prefix(engine: str) -> str:
    """The profile schema dbt's own schemas start with on `engine` (`main` on DuckDB, `public`
    on PostgreSQL, `cdp` on Spark), read from that target's parsed manifest (parsed if missing)."""
    project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROFILES_DIR, target=engine,
                         target_path=dbt_target_path(engine))
    marts = load_catalog(ensure_manifest(project)).relation("customers").split(".")[0]
    return marts.removesuffix("_marts")


def target_relation(relation: str, prefix: str) -> str:
    """A DuckDB relation under the name dbt gives it on the target: `main_marts.customers` is
    `public_marts.customers` on PostgreSQL; schemas dbt does not own (raw, privacy...) keep theirs."""
    schema, name = relation.split(".", 1)
    if schema == "main":
        schema = prefix
    elif schema.startswith("main_"):
        schema = prefix + schema[len("main"):]
    return f"{schema}.{name}"


def copy_tables(source: Path, target: Warehouse) -> list[str]:
    """Every table and view of the DuckDB file `source` written to `target` as a table (replace_table)
    under the name dbt gives it on the target's engine; returns the target relations, sorted."""
    prefix = dbt_schema_prefix(target.engine)
    con = duckdb.connect(str(source), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        relations = [f"{schema}.{name}" for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() order by 1, 2").fetchall()]
        copied = []
        for relation in relations:
            copied.append(target_relation(relation, prefix))
            target.replace_table(copied[-1],
                                 con.sql(f"select * from {relation}").to_arrow_table())
    finally:
        con.close()
    return sorted(copied)
