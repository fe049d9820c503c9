"""BI publication: after each run, copy the marts (PII hashed) into a separate, atomically swapped DuckDB file."""

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.dbt_assets import PROJECT, TRANSLATOR, ensure_manifest
from orchestration.settings import PROJECT_DIR
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

DEFAULT_SALT = "open-cdp-bi"
# Tables written by Python assets (no dbt YAML): published as they are, they hold no PII.
PYTHON_ASSET_TABLES = (("predictions", "customer_predictions"), ("predictions", "ltv_model_fits"))


@dataclass(frozen=True)
class PublishedTable:
    name: str
    schema: str
    columns: tuple[str, ...]
    pii_columns: frozenset[str]


def publication_path() -> Path:
    value = os.environ.get("CDP_PUBLICATION", "data/publication/cdp_bi.duckdb")
    path = Path(value)
    return (path if path.is_absolute() else PROJECT_DIR / path).resolve()


def is_pii(column: dict) -> bool:
    meta = {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}
    return bool(meta.get("pii"))


def published_tables(manifest: dict) -> list[PublishedTable]:
    """Every model under models/marts/, with the columns its YAML marks `pii: true`."""
    tables = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or not node["path"].startswith("marts/"):
            continue
        columns = node.get("columns", {})
        tables.append(PublishedTable(
            name=node["alias"] or node["name"],
            schema=node["schema"],
            columns=tuple(columns),
            pii_columns=frozenset(c for c, props in columns.items() if is_pii(props)),
        ))
    tables += [PublishedTable(name=name, schema=schema, columns=(), pii_columns=frozenset())
               for schema, name in PYTHON_ASSET_TABLES]
    return sorted(tables, key=lambda t: t.name)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _select_list(con: duckdb.DuckDBPyConnection, table: PublishedTable, salt: str) -> str:
    actual = [row[0] for row in con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [table.schema, table.name],
    ).fetchall()]
    parts = []
    for column in actual:
        if column in table.pii_columns:
            parts.append(
                f"case when {_quote(column)} is null then null else "
                f"sha256('{salt}' || cast({_quote(column)} as varchar)) end as {_quote(column)}"
            )
        else:
            parts.append(_quote(column))
    return ", ".join(parts)


def publish(warehouse: duckdb.DuckDBPyConnection, tables: list[PublishedTable], target: Path,
            salt: str | None = None) -> dict[str, int]:
    """Write every table into a new file next to `target`, then atomically replace `target`.

    Readers that hold the previous file open keep reading it; new connections see the new one.
    """
    salt = (salt or os.environ.get("CDP_PII_SALT") or DEFAULT_SALT).replace("'", "''")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging_file = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging_file.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    warehouse.execute(f"attach '{staging_file}' as bi_publication")
    try:
        for table in tables:
            exists = warehouse.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = ? and table_catalog = current_database()",
                [table.schema, table.name],
            ).fetchone()[0]
            if not exists:
                continue
            warehouse.execute(
                f"create table bi_publication.main.{_quote(table.name)} as "
                f"select {_select_list(warehouse, table, salt)} "
                f"from {_quote(table.schema)}.{_quote(table.name)}"
            )
            counts[table.name] = warehouse.execute(
                f"select count(*) from bi_publication.main.{_quote(table.name)}"
            ).fetchone()[0]
        warehouse.execute(
            "create table bi_publication.main._publication as select "
            "cast(? as timestamp) as published_at, ? as tables_json",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None), json.dumps(counts)],
        )
        warehouse.execute("detach bi_publication")
    except BaseException:
        warehouse.execute("detach database if exists bi_publication")
        staging_file.unlink(missing_ok=True)
        raise
    os.replace(staging_file, target)
    return counts


def _mart_asset_keys() -> list[dg.AssetKey]:
    manifest = json.loads(ensure_manifest(PROJECT).read_text())
    keys = []
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["path"].startswith("marts/"):
            keys.append(TRANSLATOR.get_asset_key(node))
    return keys + [dg.AssetKey([schema, name]) for schema, name in PYTHON_ASSET_TABLES]


@dg.asset(
    name="bi_publication",
    # After the privacy asset: a publication built before it would keep people erased this run.
    deps=[*_mart_asset_keys(), dg.AssetKey(["privacy", "privacy_requests_executed"])],
    pool=WAREHOUSE_POOL,
    group_name="publication",
    owners=["team:data-engineering"],
    kinds={"duckdb"},
    description=(
        "A read-only DuckDB file (CDP_PUBLICATION, default data/publication/cdp_bi.duckdb) with every "
        "mart, PII columns replaced by salted SHA-256 hashes. Swapped atomically after each run, so "
        "BI tools reading it never block the pipeline."
    ),
)
def bi_publication(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    manifest = json.loads(ensure_manifest(PROJECT).read_text())
    tables = published_tables(manifest)
    target = publication_path()
    with warehouse.connect() as con:
        counts = publish(con, tables, target)
    context.log.info(f"published {len(counts)} tables to {target}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(target)),
        "tables": dg.MetadataValue.json(counts),
        "pii_columns_hashed": dg.MetadataValue.json(
            {t.name: sorted(t.pii_columns) for t in tables if t.name in counts}
        ),
    })
